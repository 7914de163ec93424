//! `crisis-pulse simulate`: simulator traffic (seasonality, injected crises, a malformed
//! share) produced to `contacts.<channel>` topics for demos, benchmarks and tests.
//!
//! `--speedup X` runs simulated time X times faster than the wall clock; `--rate N` is the
//! target of events per wall second (the simulator's density is scaled to reach it). With
//! `--rate 0` the traffic is produced as fast as the broker takes it (loading).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::util::Timeout;

use crate::clock::Clock;
use crate::event::Channel;
use crate::sink::kafka::client_config;
use crate::source::kafka_config::KafkaConfig;
use crate::source::sim::{SimConfig, Simulator};

/// Options of `crisis-pulse simulate`.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    pub kafka: KafkaConfig,
    /// Target events per wall second (0: as fast as possible).
    pub rate: f64,
    /// Wall-clock duration (`None`: until stopped, or the end of the simulation when `rate` is 0).
    pub duration: Option<Duration>,
    /// Simulated seconds per wall second.
    pub speedup: f64,
    pub seed: u64,
    /// Partitions of topics created by the command.
    pub partitions: i32,
    /// Topic name prefix: records go to `<prefix><channel>`.
    pub topic_prefix: String,
}

/// Counts deliveries; failures are counted, not retried (message.timeout.ms is finite here).
#[derive(Default)]
pub struct LoadContext {
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
}

impl ClientContext for LoadContext {}
impl ProducerContext for LoadContext {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        match r {
            Ok(_) => self.delivered.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// A producer for loading records, waiting when its queue is full.
pub struct Loader {
    producer: ThreadedProducer<LoadContext>,
}

impl Loader {
    pub fn new(k: &KafkaConfig) -> anyhow::Result<Self> {
        let mut c = client_config(k, crate::sink::kafka::Role::Producer);
        c.set("linger.ms", "20")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", "200000")
            .set("enable.idempotence", "true");
        // Defaults above may be overridden by `kafka.properties`.
        crate::sink::kafka::apply_properties(&mut c, k, crate::sink::kafka::Role::Producer);
        Ok(Loader {
            producer: c.create_with_context(LoadContext::default())?,
        })
    }

    /// Sends one record; `partition` pins it (else by key).
    pub fn send(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: &[u8],
        payload: &[u8],
        timestamp_ms: Option<i64>,
    ) -> anyhow::Result<()> {
        let mut rec = BaseRecord::to(topic).key(key).payload(payload);
        if let Some(p) = partition {
            rec = rec.partition(p);
        }
        if let Some(t) = timestamp_ms {
            rec = rec.timestamp(t);
        }
        loop {
            match self.producer.send(rec) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    rec = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }

    /// Waits for every delivery; fails if any record was not delivered.
    pub fn finish(&self, timeout: Duration) -> anyhow::Result<u64> {
        self.producer.flush(Timeout::After(timeout))?;
        let ctx = self.producer.context();
        let failed = ctx.failed.load(Ordering::Relaxed);
        if failed > 0 {
            anyhow::bail!("{failed} records were not delivered");
        }
        Ok(ctx.delivered.load(Ordering::Relaxed))
    }
}

/// Mean events per simulated second of the demo traffic at `rate_scale` 1 (one day sampled).
fn natural_rate(seed: u64) -> f64 {
    let mut c = SimConfig::demo();
    c.seed = seed;
    c.duration_ms = 86_400_000;
    Simulator::new(c).count() as f64 / 86_400.0
}

/// Produces simulator traffic until the duration passes or `stop` is set.
pub fn run(opts: &SimulateOptions, stop: &AtomicBool) -> anyhow::Result<u64> {
    let topics: Vec<String> = Channel::ALL
        .iter()
        .map(|c| format!("{}{}", opts.topic_prefix, c.as_str()))
        .collect();
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    futures::executor::block_on(crate::admin::ensure_topics(
        &opts.kafka,
        &names,
        opts.partitions,
    ))?;
    let clock = Clock::System;
    let speedup = if opts.speedup > 0.0 {
        opts.speedup
    } else {
        1.0
    };
    let mut sim = SimConfig::demo();
    sim.seed = opts.seed;
    sim.start_ms = clock.now_ms().div_euclid(60_000) * 60_000;
    if opts.rate > 0.0 {
        sim.rate_scale = opts.rate / (natural_rate(opts.seed) * speedup);
    }
    if let Some(d) = opts.duration {
        sim.duration_ms = (d.as_secs_f64() * 1000.0 * speedup) as i64;
    }
    tracing::info!(rate = opts.rate, speedup, rate_scale = sim.rate_scale, topics = ?topics, "simulating");
    let loader = Loader::new(&opts.kafka)?;
    let started = Instant::now();
    let start_ms = sim.start_ms;
    let mut sent = 0u64;
    let mut refresh = Instant::now();
    for rec in Simulator::new(sim) {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if opts.rate > 0.0 {
            // Pace: a record is due when the wall clock reaches its simulated time.
            let due = Duration::from_secs_f64(
                ((rec.time_ms - start_ms).max(0) as f64 / 1000.0) / speedup,
            );
            let elapsed = started.elapsed();
            if due > elapsed {
                std::thread::sleep(due - elapsed);
            }
        }
        let topic = &topics[rec.channel.index()];
        let key = sent.to_be_bytes();
        loader.send(topic, None, &key, &rec.payload, Some(rec.time_ms))?;
        sent += 1;
        if refresh.elapsed() >= Duration::from_secs(10) {
            tracing::info!(sent, "progress");
            refresh = Instant::now();
        }
    }
    let delivered = loader.finish(Duration::from_secs(60))?;
    tracing::info!(
        sent,
        delivered,
        seconds = started.elapsed().as_secs_f64(),
        "simulation produced"
    );
    Ok(delivered)
}

/// Stops `run` on SIGINT/SIGTERM: a flag set from a signal-watching thread.
pub fn stop_on_signal() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            let signal = {
                let _in_runtime = rt.enter();
                crate::service::signal()
            };
            rt.block_on(signal);
            s.store(true, Ordering::Relaxed);
        }
    });
    stop
}
