//! The only place that reads wall-clock time. Everything else takes time as an argument, so
//! tests can run a week of traffic in milliseconds and replays are deterministic.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// A source of processing time in epoch milliseconds.
#[derive(Debug, Clone)]
pub enum Clock {
    System,
    /// A manually driven clock for tests and replays.
    Manual(Arc<AtomicI64>),
}

impl Clock {
    pub fn manual(start_ms: i64) -> Self {
        Clock::Manual(Arc::new(AtomicI64::new(start_ms)))
    }

    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
            Clock::Manual(t) => t.load(Ordering::Relaxed),
        }
    }

    /// Sets a manual clock; no effect on the system clock.
    pub fn set_ms(&self, ms: i64) {
        if let Clock::Manual(t) = self {
            t.store(ms, Ordering::Relaxed);
        }
    }
}
