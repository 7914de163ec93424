//! Fixed workloads for instruction counting with callgrind (deterministic, unlike wall clock
//! on a shared machine): `cost classify N [long]` classifies the classify bench's eight texts
//! (144 bytes on average, or 288 with `long`) N times with the airline taxonomy;
//! `cost pipeline N` runs N simulated JSON events (the demo simulator's, ~200 bytes) through
//! decode + classify + window + detect, as `benches/pipeline.rs` does.
//!
//! ```sh
//! cargo build --release --example cost
//! valgrind --tool=callgrind --dump-instr=no --toggle-collect='cost::run_*' \
//!   target/release/examples/cost pipeline 20000
//! ```
//! Instructions per event = the collected total / the number of events printed.

use std::hint::black_box;

use crisis_pulse::app::DEMO_CONFIG;
use crisis_pulse::classify::{Classification, Classifier, Scratch};
use crisis_pulse::config::Config;
use crisis_pulse::event::DecodeContext;
use crisis_pulse::pipeline::Pipeline;
use crisis_pulse::source::sim::{SimConfig, Simulator};

include!("../benches/common/texts.rs");

#[inline(never)]
fn run_classify(cls: &Classifier, texts: &[(&str, String)], rounds: usize) -> usize {
    let (mut scratch, mut out) = (Scratch::default(), Classification::default());
    for _ in 0..rounds {
        classify_each(cls, texts, &mut scratch, &mut out);
    }
    rounds * texts.len()
}

#[inline(never)]
fn run_pipeline(p: &mut Pipeline, data: &[(i64, Vec<u8>)], ctx: &DecodeContext) -> usize {
    let mut out = Vec::new();
    let mut max_t = i64::MIN;
    for (t, payload) in data {
        let _ = black_box(p.ingest_json(payload, ctx));
        if *t > max_t {
            max_t = *t;
            p.advance(max_t - 120_000, &mut out);
            out.clear();
        }
    }
    p.flush(&mut out);
    black_box(out.len())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "pipeline".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    match mode.as_str() {
        "classify" => {
            let cfg = Config::parse(include_str!("airline.toml"), "airline.toml").expect("config");
            let cls = Classifier::new(&cfg.topics, &cfg.complaint).expect("taxonomy");
            // `cost classify N long` for the 288-byte texts.
            let (texts, size) = match args.next().as_deref() {
                Some("long") => (long_texts(), 288),
                _ => (short_texts(), 144),
            };
            let n = run_classify(&cls, &texts, n);
            println!("classified {n} texts of {size} bytes on average");
        }
        _ => {
            let mut sim = SimConfig::demo();
            sim.malformed_share = 0.0;
            sim.rate_scale = 20.0;
            let data: Vec<(i64, Vec<u8>)> = Simulator::new(sim)
                .take(n)
                .map(|r| (r.time_ms, r.payload))
                .collect();
            let cfg = Config::parse(DEMO_CONFIG, "demo.toml").expect("demo config");
            let ctx = DecodeContext {
                now_ms: 1_900_000_000_000,
                ..Default::default()
            };
            let bytes: usize = data.iter().map(|(_, p)| p.len()).sum();
            // Start-up (building the classifier) is not part of the per-event cost.
            let mut p = Pipeline::new(&cfg).expect("pipeline");
            run_pipeline(&mut p, &data, &ctx);
            println!(
                "pipeline: {n} events, mean payload {} bytes",
                bytes / n.max(1)
            );
        }
    }
}
