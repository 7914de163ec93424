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

    /// Like [`Clock::now_ms`], from the kernel's coarse clock (`CLOCK_REALTIME_COARSE`, one
    /// timer tick of resolution, a few ms): a fifth of the cost of a precise read, for the
    /// per-message paths where a few milliseconds do not matter (the future-time check,
    /// a partition's last-seen time against a 30 s idle timeout).
    pub fn now_ms_coarse(&self) -> i64 {
        match self {
            Clock::System => {
                coarse_ms(libc::CLOCK_REALTIME_COARSE).unwrap_or_else(|| self.now_ms())
            }
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

/// Monotonic milliseconds from the coarse clock (`CLOCK_MONOTONIC_COARSE`), for interval
/// timers on per-message paths (commit every second, advance every 100 ms). Resolution is one
/// timer tick (1-4 ms).
pub fn monotonic_coarse_ms() -> i64 {
    coarse_ms(libc::CLOCK_MONOTONIC_COARSE).unwrap_or_else(|| {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_millis() as i64
    })
}

// time_t and c_long are i64 here but narrower on 32-bit targets.
#[allow(clippy::unnecessary_cast)]
fn coarse_ms(id: libc::clockid_t) -> Option<i64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime only writes into it.
    let rc = unsafe { libc::clock_gettime(id, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as i64 * 1000 + ts.tv_nsec as i64 / 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_clocks_track_the_precise_ones() {
        let precise = Clock::System.now_ms();
        let coarse = Clock::System.now_ms_coarse();
        assert!((precise - coarse).abs() < 1_000, "{precise} vs {coarse}");
        let a = monotonic_coarse_ms();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let b = monotonic_coarse_ms();
        assert!((20..1_000).contains(&(b - a)), "{a} -> {b}");
    }
}
