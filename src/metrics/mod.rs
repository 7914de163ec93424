//! Prometheus metrics on an explicit registry. Names follow `crisis_pulse_<what>_<unit>[_total]`;
//! label values come from closed sets (channels, reasons, states) or the configured taxonomy
//! (topics, plus `other`), and Kafka topic/partition labels from the subscription. No customer
//! id, event id or free text ever becomes a label.
//!
//! - [`registry`]: every metric's definition and the catalog used by docs and tests
//! - [`events`]: one struct per internal event whose `emit()` logs and counts
//! - [`latency`]: [`LatencyRecorder`], HdrHistogram-accurate percentiles behind the histograms
//! - [`live`]: [`LiveMetrics`], the observer the demo and replay drivers feed

pub mod events;
pub mod latency;
pub mod live;
pub mod registry;

use std::sync::{Arc, Mutex};

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Registry, TextEncoder,
};

use crate::event::{CrisisState, DecodeReason};
use crate::pipeline::{Stats, WindowReport};

pub use latency::{LatencyRecorder, LatencySummary};
pub use live::LiveMetrics;
pub use registry::MetricInfo;

/// Every metric crisis-pulse exports. Cheap to clone: all handles share one registry.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    // The pulse, per topic.
    pub window_observed: GaugeVec,
    pub window_expected: GaugeVec,
    pub window_upper: GaugeVec,
    pub window_score: GaugeVec,
    pub day_records: IntCounterVec,
    pub crisis_state: IntGaugeVec,
    pub crises: IntCounterVec,
    // Intake.
    pub events_by_channel: IntCounterVec,
    pub events_by_kafka_topic: IntCounterVec,
    pub complaints_by_topic: IntCounterVec,
    pub decode_errors: IntCounterVec,
    pub dead_letters: IntCounterVec,
    pub late_events: IntCounter,
    pub windows_closed: IntCounter,
    // Health of the stream.
    pub consumer_lag: IntGaugeVec,
    pub watermark_delay: Gauge,
    pub watermark_time: Gauge,
    pub rebalances: IntCounterVec,
    pub producer_queue: IntGauge,
    pub delivery_errors: IntCounterVec,
    pub assigned_partitions: IntGauge,
    pub checkpoints: IntCounter,
    pub rewinds: IntCounter,
    pub checkpoint_seconds: Histogram,
    pub checkpoint_bytes: IntGauge,
    pub group_detector: IntGauge,
    pub group_skipped: IntCounterVec,
    // Latency: record through `batch` / `detection` so the HdrHistograms see every sample.
    pub batch_latency: Histogram,
    pub detection_latency: Histogram,
    /// Processing time per batch: feeds `batch_latency` and an HdrHistogram.
    pub batch: LatencyRecorder,
    /// Window close to published result: feeds `detection_latency` and an HdrHistogram.
    pub detection: LatencyRecorder,
    pub up: IntGauge,
    pub build_info: IntGaugeVec,
    /// Last published pipeline counters, to turn absolute stats into counter increments.
    last: Arc<Mutex<Stats>>,
    catalog: Arc<Vec<MetricInfo>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Pre-creates per-topic series so dashboards show zeros rather than gaps.
    pub fn init_topics(&self, topics: &[String]) {
        for t in topics {
            self.complaints_by_topic.with_label_values(&[t]);
            self.crisis_state.with_label_values(&[t]);
            for d in ["busiest", "quietest"] {
                self.day_records.with_label_values(&[t, d]);
            }
            for s in [
                CrisisState::Opened,
                CrisisState::Escalated,
                CrisisState::Resolved,
            ] {
                self.crises.with_label_values(&[t, s.as_str()]);
            }
        }
    }

    /// Publishes a topic-level window report (channel-level reports are not exported as
    /// gauges: topics x channels would multiply the series for little gain).
    pub fn window(&self, topic: &str, r: &WindowReport) {
        if r.channel.is_some() {
            return;
        }
        self.window_observed
            .with_label_values(&[topic])
            .set(r.observed as f64);
        self.window_expected
            .with_label_values(&[topic])
            .set(r.expected);
        self.window_upper.with_label_values(&[topic]).set(r.upper);
        self.window_score.with_label_values(&[topic]).set(r.score);
        if let Some(direction) = r.record_day() {
            self.day_records
                .with_label_values(&[topic, direction])
                .inc();
        }
        self.crisis_state
            .with_label_values(&[topic])
            .set(r.state.gauge());
    }

    /// Counts one lifecycle change (prefer [`events::CrisisChanged`], which also logs it).
    pub fn crisis(&self, topic: &str, state: CrisisState) {
        self.crises
            .with_label_values(&[topic, state.as_str()])
            .inc();
    }

    /// Counts one refused record (prefer [`events::RecordRefused`], which also logs it).
    pub fn refused(&self, reason: DecodeReason) {
        self.decode_errors
            .with_label_values(&[reason.as_str()])
            .inc();
    }

    /// Publishes the event-time watermark and how far it trails the processing clock.
    pub fn watermark(&self, watermark_ms: i64, now_ms: i64) {
        self.watermark_time.set(watermark_ms as f64 / 1000.0);
        self.watermark_delay
            .set((now_ms - watermark_ms).max(0) as f64 / 1000.0);
    }

    /// Turns the pipeline's absolute counters into counter increments. `topics` are the
    /// pipeline's own (taxonomy + `other`), so the `topic` label set stays bounded whatever
    /// the input says.
    pub fn sync_stats(&self, topics: &[String], s: &Stats) {
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        for (i, c) in crate::event::Channel::ALL.iter().enumerate() {
            let d = s.events_by_channel[i].saturating_sub(last.events_by_channel[i]);
            if d > 0 {
                self.events_by_channel
                    .with_label_values(&[c.as_str()])
                    .inc_by(d);
            }
        }
        last.complaints_by_topic
            .resize(s.complaints_by_topic.len(), 0);
        for (i, t) in topics.iter().enumerate() {
            let now = s.complaints_by_topic.get(i).copied().unwrap_or(0);
            let before = last.complaints_by_topic.get(i).copied().unwrap_or(0);
            let d = now.saturating_sub(before);
            if d > 0 {
                self.complaints_by_topic.with_label_values(&[t]).inc_by(d);
            }
        }
        self.late_events
            .inc_by(s.late_events.saturating_sub(last.late_events));
        self.windows_closed
            .inc_by(s.windows_closed.saturating_sub(last.windows_closed));
        *last = s.clone();
    }

    /// The registry in Prometheus text format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let enc = TextEncoder::new();
        if enc.encode(&self.registry.gather(), &mut buf).is_err() {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_with_expected_names() {
        let m = Metrics::new();
        m.init_topics(&["billing".to_string()]);
        let text = m.render();
        for name in [
            "crisis_pulse_events_total",
            "crisis_pulse_crisis_state",
            "crisis_pulse_decode_errors_total",
            "crisis_pulse_crises_total",
            "crisis_pulse_dead_letters_total",
            "crisis_pulse_build_info",
        ] {
            assert!(text.contains(name), "{name} missing");
        }
    }

    #[test]
    fn catalog_lists_every_registered_family_once() {
        let m = Metrics::new();
        let names: Vec<&str> = m.catalog().iter().map(|i| i.name.as_str()).collect();
        let mut dedup = names.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(names.len(), dedup.len());
        for n in &names {
            assert!(n.starts_with("crisis_pulse_"), "{n}");
        }
        assert!(
            m.sample_names()
                .iter()
                .any(|n| n == "crisis_pulse_batch_processing_seconds_bucket")
        );
    }

    #[test]
    fn watermark_delay_never_negative() {
        let m = Metrics::new();
        m.watermark(10_000, 4_000);
        assert_eq!(m.watermark_delay.get(), 0.0);
        m.watermark(10_000, 70_000);
        assert_eq!(m.watermark_delay.get(), 60.0);
        assert_eq!(m.watermark_time.get(), 10.0);
    }
}
