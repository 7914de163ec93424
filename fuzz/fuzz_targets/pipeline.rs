//! Any bytes, split on newlines into payloads -> the whole pipeline (decode, classify,
//! windows, detection, checkpoint and restore): never a panic.
//!
//! Building the pipeline (the classifier's automata) takes far longer than one input, so it
//! is built once; every input starts from the same fresh state, restored from a checkpoint
//! taken right after the build, so an input's outcome does not depend on the ones before it.
#![no_main]

use std::sync::{Mutex, OnceLock};

use crisis_pulse::app::DEMO_CONFIG;
use crisis_pulse::config::Config;
use crisis_pulse::event::DecodeContext;
use crisis_pulse::pipeline::Pipeline;
use crisis_pulse::state::{self, Checkpoint, Positions};
use libfuzzer_sys::fuzz_target;

const DAY_MS: i64 = 86_400_000;

fn base() -> &'static (Mutex<Pipeline>, Checkpoint) {
    static BASE: OnceLock<(Mutex<Pipeline>, Checkpoint)> = OnceLock::new();
    BASE.get_or_init(|| {
        let cfg = Config::parse(DEMO_CONFIG, "examples/demo.toml").expect("demo config");
        let p = Pipeline::new(&cfg).expect("demo pipeline");
        let fresh = p.checkpoint(Positions::new());
        (Mutex::new(p), fresh)
    })
}

fuzz_target!(|data: &[u8]| {
    let (p, fresh) = base();
    let mut p = p.lock().unwrap_or_else(|e| e.into_inner());
    p.restore(fresh.clone()).expect("a fresh state restores");
    let ctx = DecodeContext {
        now_ms: 1_772_409_600_000,
        ..Default::default()
    };
    let mut out = Vec::new();
    let mut max_t = i64::MIN;
    let mut first = None;
    for line in data.split(|&b| b == b'\n') {
        if let Ok(e) = crisis_pulse::event::decode(line, p.limits(), &ctx) {
            let t = e.event_time.0;
            // Within three days of the first event: a jump of weeks closes up to four weeks
            // of zero windows for every series (bounded, see `WindowSpec::max_gap_windows`,
            // and tested in tests/hostile_input.rs), which took seconds an input here and
            // left the fuzzer at 1-2 inputs a second. Decoding every time is the `decode`
            // target's job.
            let t0 = *first.get_or_insert(t);
            if !(t0 - DAY_MS..=t0 + 2 * DAY_MS).contains(&t) {
                continue;
            }
            p.ingest(&e);
            if t > max_t {
                max_t = t;
                p.advance(t - 120_000, &mut out);
            }
        }
    }
    // The state round-trips through the file format.
    if let Ok(bytes) = state::encode(&p.checkpoint(Positions::new())) {
        if let Ok(cp) = state::decode(std::path::Path::new("fuzz"), &bytes) {
            let _ = p.restore(cp);
        }
    }
    p.flush(&mut out);
});
