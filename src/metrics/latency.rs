//! [`LatencyRecorder`]: every sample goes to an HdrHistogram (exact percentiles to 3
//! significant digits) and, when attached, to a Prometheus histogram (coarse buckets that
//! aggregate across instances). The HdrHistogram answers "what is p99.9 here" precisely; the
//! Prometheus one answers it approximately but over time and fleets.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram as Hdr;

/// Largest latency tracked exactly (60 s, in nanoseconds); longer samples saturate.
const MAX_NANOS: u64 = 60_000_000_000;

/// Percentiles of the samples recorded so far.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LatencySummary {
    pub count: u64,
    pub p50: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
}

impl fmt::Display for LatencySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "count={} p50={:?} p99={:?} p999={:?} max={:?}",
            self.count, self.p50, self.p99, self.p999, self.max
        )
    }
}

struct Inner {
    hdr: Hdr<u64>,
    last_log: Option<Instant>,
}

/// Records latencies into an HdrHistogram and an optional Prometheus histogram. Clones share
/// the same histograms, so a recorder can be handed to every task of a driver.
#[derive(Clone)]
pub struct LatencyRecorder {
    name: &'static str,
    prom: Option<prometheus::Histogram>,
    inner: Arc<Mutex<Inner>>,
}

impl LatencyRecorder {
    /// `name` appears in log lines (`batch`, `detection`, or a benchmark's name).
    pub fn new(name: &'static str, prom: Option<prometheus::Histogram>) -> Self {
        let hdr = Hdr::new_with_bounds(1, MAX_NANOS, 3).expect("static HdrHistogram bounds");
        LatencyRecorder {
            name,
            prom,
            inner: Arc::new(Mutex::new(Inner {
                hdr,
                last_log: None,
            })),
        }
    }

    /// A recorder without Prometheus, for benchmarks: record, then print [`Self::summary`].
    pub fn standalone(name: &'static str) -> Self {
        Self::new(name, None)
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Records one sample.
    pub fn record(&self, d: Duration) {
        if let Some(p) = &self.prom {
            p.observe(d.as_secs_f64());
        }
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1);
        if let Ok(mut i) = self.inner.lock() {
            i.hdr.saturating_record(nanos.min(MAX_NANOS));
        }
    }

    /// Runs `f`, records how long it took and returns its result.
    pub fn time<T>(&self, f: impl FnOnce() -> T) -> T {
        let t0 = Instant::now();
        let out = f();
        self.record(t0.elapsed());
        out
    }

    /// Percentiles of everything recorded since creation (or the last [`Self::reset`]).
    pub fn summary(&self) -> LatencySummary {
        let Ok(i) = self.inner.lock() else {
            return LatencySummary::default();
        };
        let q = |p: f64| Duration::from_nanos(i.hdr.value_at_quantile(p));
        LatencySummary {
            count: i.hdr.len(),
            p50: q(0.5),
            p99: q(0.99),
            p999: q(0.999),
            max: Duration::from_nanos(i.hdr.max()),
        }
    }

    /// Forgets the HdrHistogram's samples (the Prometheus histogram is cumulative by design).
    pub fn reset(&self) {
        if let Ok(mut i) = self.inner.lock() {
            i.hdr.reset();
        }
    }

    /// Emits a [`super::events::LatencyReported`] log line when `every` has passed since the
    /// last one (the first call only starts the clock). Call it from a periodic tick or the
    /// hot loop: it costs a lock and a clock read.
    pub fn log_every(&self, every: Duration) {
        let now = Instant::now();
        let due = match self.inner.lock() {
            Ok(mut i) => match i.last_log {
                Some(t) if now.duration_since(t) < every => false,
                Some(_) => {
                    i.last_log = Some(now);
                    true
                }
                None => {
                    i.last_log = Some(now);
                    false
                }
            },
            Err(_) => false,
        };
        if due {
            self.log_now();
        }
    }

    /// Logs the current percentiles (at the end of a run, for example).
    pub fn log_now(&self) {
        super::events::LatencyReported {
            name: self.name,
            summary: self.summary(),
        }
        .emit();
    }
}

impl fmt::Debug for LatencyRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LatencyRecorder({}: {})", self.name, self.summary())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_accurate_to_three_digits() {
        let r = LatencyRecorder::standalone("t");
        for us in 1..=1000u64 {
            r.record(Duration::from_micros(us));
        }
        let s = r.summary();
        assert_eq!(s.count, 1000);
        let close = |d: Duration, us: f64| (d.as_secs_f64() * 1e6 - us).abs() / us < 0.002;
        assert!(close(s.p50, 500.0), "{s}");
        assert!(close(s.p99, 990.0), "{s}");
        assert!(close(s.p999, 999.0), "{s}");
        assert!(close(s.max, 1000.0), "{s}");
    }

    #[test]
    fn feeds_the_prometheus_histogram_too() {
        let h = prometheus::Histogram::with_opts(prometheus::HistogramOpts::new("x_seconds", "x"))
            .unwrap();
        let r = LatencyRecorder::new("t", Some(h.clone()));
        r.time(|| ());
        r.record(Duration::from_secs(3600));
        assert_eq!(h.get_sample_count(), 2);
        assert_eq!(r.summary().count, 2);
        assert!(r.summary().max <= Duration::from_nanos(MAX_NANOS * 2));
        r.reset();
        assert_eq!(r.summary().count, 0);
        assert_eq!(h.get_sample_count(), 2);
    }
}
