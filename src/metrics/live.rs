//! [`LiveMetrics`]: the [`Observer`] the finite drivers (demo, replay) feed. It turns closed
//! windows into pulse gauges, crisis events into `CRISIS ...` log lines and counters, pipeline
//! stats into intake counters, and times batches and detection. With a pace it also sleeps
//! per closed window, so a scraper sees the pulse move in something like real time.

use std::time::{Duration, Instant};

use super::Metrics;
use super::events::{CrisisChanged, WindowScored};
use crate::app::{Observer, Progress};
use crate::event::DecodeError;
use crate::pipeline::{Output, Pipeline};

/// How often the latency percentiles are logged while a driver runs.
const LATENCY_LOG_EVERY: Duration = Duration::from_secs(60);

/// Publishes a driver's progress to [`Metrics`] and the log.
pub struct LiveMetrics {
    metrics: Metrics,
    pace: Option<Duration>,
    batch_started: Instant,
}

impl LiveMetrics {
    /// Sets `crisis_pulse_up` to 1 until [`Observer::finished`].
    pub fn new(metrics: Metrics) -> Self {
        metrics.up.set(1);
        LiveMetrics {
            metrics,
            pace: None,
            batch_started: Instant::now(),
        }
    }

    /// Sleeps `per_window` for every event-time window closed (zero: no pacing).
    pub fn with_pace(mut self, per_window: Duration) -> Self {
        self.pace = (!per_window.is_zero()).then_some(per_window);
        self
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

impl Observer for LiveMetrics {
    fn advanced(&mut self, p: &Pipeline, outputs: &[Output], progress: Progress) {
        if outputs.is_empty() {
            return;
        }
        let m = &self.metrics;
        let topics = p.topics();
        let mut windows = 0usize;
        let mut last_start = None;
        for o in outputs {
            match o {
                Output::Window(w) if w.channel.is_none() => {
                    if last_start != Some(w.start_ms) {
                        windows += 1;
                        last_start = Some(w.start_ms);
                    }
                    if let Some(topic) = topics.get(usize::from(w.topic)) {
                        WindowScored { topic, report: w }.emit(m);
                    }
                }
                Output::Window(_) => {}
                Output::Crisis(c) => CrisisChanged { event: c }.emit(m),
            }
        }
        m.sync_stats(topics, p.stats());
        m.watermark(progress.watermark_ms, progress.now_ms);
        m.detection.record(progress.started.elapsed());
        m.batch.record(self.batch_started.elapsed());
        m.batch.log_every(LATENCY_LOG_EVERY);
        m.detection.log_every(LATENCY_LOG_EVERY);
        if let Some(pace) = self.pace {
            std::thread::sleep(pace * u32::try_from(windows).unwrap_or(u32::MAX));
        }
        // Pacing is not processing: the next batch starts after the sleep.
        self.batch_started = Instant::now();
    }

    /// Counts only: the drivers decide how loudly to log refusals (replay logs a few, the
    /// demo's deliberately broken records are summarised at the end).
    fn refused(&mut self, e: &DecodeError) {
        self.metrics.refused(e.reason);
    }

    fn finished(&mut self, p: &Pipeline) {
        self.metrics.sync_stats(p.topics(), p.stats());
        self.metrics.up.set(0);
        self.metrics.batch.log_now();
        self.metrics.detection.log_now();
    }
}
