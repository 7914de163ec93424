//! The bench's reference points (see benches/e2e.sh):
//!
//! - `bare_consumer load --brokers B --topic T --count N [--partitions P]`: creates the topic
//!   and loads N simulator events (~250-300-byte JSON), event-time ordered per partition.
//! - `bare_consumer consume --brokers B --topic T --count N`: a bare rdkafka BaseConsumer
//!   (fresh group, from the beginning) that reads N messages and touches every payload byte;
//!   prints `events seconds cpu_seconds`.

use std::time::{Duration, Instant};

use crisis_pulse::config::KafkaConfig;
use crisis_pulse::simulate::Loader;
use crisis_pulse::source::sim::{SimConfig, Simulator};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the command name.
    (ticks(11) + ticks(12)) / 100.0
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).cloned().unwrap_or_default();
    let brokers = arg(&args, "--brokers").unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic = arg(&args, "--topic").ok_or_else(|| anyhow::anyhow!("--topic"))?;
    let count: usize = arg(&args, "--count")
        .unwrap_or_else(|| "1000000".into())
        .parse()?;
    let k = KafkaConfig {
        brokers: brokers.clone(),
        ..KafkaConfig::default()
    };
    match mode.as_str() {
        "load" => {
            let partitions: i32 = arg(&args, "--partitions")
                .unwrap_or_else(|| "4".into())
                .parse()?;
            if !args.iter().any(|a| a == "--no-create") {
                futures::executor::block_on(crisis_pulse::admin::ensure_topics(
                    &k,
                    &[&topic],
                    partitions,
                ))?;
            }
            let mut sim = SimConfig::demo();
            let days = 2;
            sim.duration_ms = days * 86_400_000;
            sim.start_ms =
                (crisis_pulse::clock::Clock::System.now_ms() - sim.duration_ms - 600_000) / 60_000
                    * 60_000;
            sim.rate_scale = count as f64 / (11_800.0 * days as f64) * 2.0;
            sim.malformed_share = 0.0;
            let loader = Loader::new(&k)?;
            let started = Instant::now();
            let mut bytes = 0usize;
            for (i, r) in Simulator::new(sim).take(count).enumerate() {
                bytes += r.payload.len();
                loader.send(
                    &topic,
                    Some((i % partitions as usize) as i32),
                    &(i as u64).to_be_bytes(),
                    &r.payload,
                    Some(r.time_ms),
                )?;
            }
            let n = loader.finish(Duration::from_secs(300))?;
            eprintln!(
                "loaded {n} events ({} bytes each on average) in {:.1} s",
                bytes / count.max(1),
                started.elapsed().as_secs_f64()
            );
        }
        "consume" => {
            let c: BaseConsumer = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .set("group.id", format!("bare-{}", std::process::id()))
                .set("enable.auto.commit", "false")
                .set("auto.offset.reset", "earliest")
                .create()?;
            c.subscribe(&[&topic])?;
            let cpu0 = cpu_seconds();
            let mut started: Option<(Instant, f64)> = None;
            let mut n = 0usize;
            let mut sum = 0u64;
            let deadline = Instant::now() + Duration::from_secs(600);
            while n < count && Instant::now() < deadline {
                match c.poll(Duration::from_millis(100)) {
                    Some(Ok(m)) => {
                        if started.is_none() {
                            started = Some((Instant::now(), cpu_seconds()));
                        }
                        sum += m
                            .payload()
                            .map_or(0, |p| p.iter().map(|&b| u64::from(b)).sum());
                        n += 1;
                    }
                    Some(Err(e)) => eprintln!("consumer error: {e}"),
                    None => {}
                }
            }
            let (t0, c0) = started.unwrap_or((Instant::now(), cpu0));
            println!(
                "{n} {:.3} {:.3}",
                t0.elapsed().as_secs_f64(),
                cpu_seconds() - c0
            );
            eprintln!("checksum {sum}");
        }
        _ => anyhow::bail!("usage: bare_consumer load|consume --topic T [--brokers B] [--count N]"),
    }
    Ok(())
}
