//! Throughput of the in-process pipeline on ~300-byte JSON contact events with text:
//! decode alone, windowing alone, and decode + classify + window + detect together.
//! `cargo bench --bench pipeline`; criterion prints events/s (thrpt).

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

use crisis_pulse::app::DEMO_CONFIG;
use crisis_pulse::config::Config;
use crisis_pulse::event::{self, Channel, DecodeContext, EventTime, TopicId};
use crisis_pulse::pipeline::Pipeline;
use crisis_pulse::source::sim::{SimConfig, Simulator};
use crisis_pulse::window::{Aggregator, WindowSpec};

const N: usize = 100_000;

fn payloads() -> Vec<(i64, Vec<u8>)> {
    let mut sim = SimConfig::demo();
    sim.malformed_share = 0.0;
    sim.rate_scale = 20.0; // dense traffic: many events per window, as in production
    Simulator::new(sim)
        .take(N)
        .map(|r| (r.time_ms, r.payload))
        .collect()
}

fn benches(c: &mut Criterion) {
    let data = payloads();
    let bytes: usize = data.iter().map(|(_, p)| p.len()).sum();
    eprintln!(
        "{} events, mean payload {} bytes",
        data.len(),
        bytes / data.len()
    );
    let cfg = Config::parse(DEMO_CONFIG, "demo.toml").expect("demo config");
    let ctx = DecodeContext {
        now_ms: 1_900_000_000_000,
        ..Default::default()
    };
    let limits = cfg.input.limits();

    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(data.len() as u64));
    g.sample_size(10);

    g.bench_function("decode", |b| {
        b.iter(|| {
            for (_, p) in &data {
                black_box(event::decode(p, &limits, &ctx).is_ok());
            }
        })
    });

    g.bench_function("window", |b| {
        b.iter(|| {
            let mut a = Aggregator::new(WindowSpec::tumbling(300_000), 7, 5);
            let mut out = Vec::new();
            for (i, (t, _)) in data.iter().enumerate() {
                a.add(
                    EventTime(*t),
                    TopicId((i % 7) as u16),
                    Channel::Chat,
                    i % 3 == 0,
                    &[1],
                    "id",
                    None,
                );
                a.advance(*t - 120_000, &mut out);
            }
            black_box(out.len())
        })
    });

    // A fresh pipeline per iteration, built outside the timed part: start-up (parsing the
    // lexicons, building the matcher: tens of milliseconds) is not a per-event cost.
    g.bench_function("decode_classify_window_detect", |b| {
        b.iter_batched(
            || Pipeline::new(&cfg).expect("pipeline"),
            |mut p| {
                let mut out = Vec::new();
                let mut max_t = i64::MIN;
                for (t, payload) in &data {
                    let _ = black_box(p.ingest_json(payload, &ctx));
                    if *t > max_t {
                        max_t = *t;
                        p.advance(max_t - 120_000, &mut out);
                        out.clear();
                    }
                }
                p.flush(&mut out);
                // Returned, so that criterion drops it after the clock stops.
                (black_box(out.len()), p)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(pipeline, benches);
criterion_main!(pipeline);
