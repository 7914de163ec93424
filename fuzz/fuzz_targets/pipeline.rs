//! Any bytes, split on newlines into payloads -> the whole pipeline (decode, classify,
//! windows, detection, checkpoint and restore): never a panic.
#![no_main]

use crisis_pulse::app::DEMO_CONFIG;
use crisis_pulse::config::Config;
use crisis_pulse::event::DecodeContext;
use crisis_pulse::pipeline::Pipeline;
use crisis_pulse::state::{self, Positions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(cfg) = Config::parse(DEMO_CONFIG, "examples/demo.toml") else {
        return;
    };
    let Ok(mut p) = Pipeline::new(&cfg) else {
        return;
    };
    let ctx = DecodeContext {
        now_ms: 1_772_409_600_000,
        ..Default::default()
    };
    let mut out = Vec::new();
    let mut max_t = i64::MIN;
    for line in data.split(|&b| b == b'\n') {
        if let Ok(e) = crisis_pulse::event::decode(line, p.limits(), &ctx) {
            let t = e.event_time.0;
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
