//! Any bytes -> `event::decode`: an event or a `DecodeError` with a reason, never a panic.
#![no_main]

use crisis_pulse::event::{self, DecodeContext, DecodeLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits::default();
    for now_ms in [0, 1_772_409_600_000] {
        let ctx = DecodeContext {
            now_ms,
            ..Default::default()
        };
        let _ = event::decode(data, &limits, &ctx);
    }
});
