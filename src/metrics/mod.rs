//! Prometheus metrics on an explicit registry. Names follow `crisis_pulse_<what>_<unit>[_total]`;
//! label values come from closed sets (channels, reasons, states) or the configured taxonomy
//! (topics, plus `other`), and Kafka topic/partition labels from the subscription. No customer
//! id, event id or free text ever becomes a label.

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::detect::SeriesState;
use crate::event::{Channel, CrisisState, DecodeReason};
use crate::pipeline::{Stats, WindowReport};

/// Every metric crisis-pulse exports.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    // The pulse, per topic.
    pub window_observed: GaugeVec,
    pub window_expected: GaugeVec,
    pub window_upper: GaugeVec,
    pub window_score: GaugeVec,
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
    pub rebalances: IntCounterVec,
    pub producer_queue: IntGauge,
    pub delivery_errors: IntCounterVec,
    pub assigned_partitions: IntGauge,
    // Latency.
    pub batch_latency: Histogram,
    pub detection_latency: Histogram,
    pub up: IntGauge,
    /// Last published pipeline counters, to turn absolute stats into counter increments.
    last: std::sync::Arc<std::sync::Mutex<Stats>>,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        macro_rules! reg {
            ($m:expr) => {{
                let m = $m.expect("metric definition");
                r.register(Box::new(m.clone()))
                    .expect("metric registration");
                m
            }};
        }
        let lat_buckets = vec![
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            2.5, 5.0, 10.0,
        ];
        let m = Metrics {
            window_observed: reg!(GaugeVec::new(
                opts(
                    "crisis_pulse_window_observed_complaints",
                    "Complaints in the last closed window, per topic."
                ),
                &["topic"]
            )),
            window_expected: reg!(GaugeVec::new(
                opts(
                    "crisis_pulse_window_expected_complaints",
                    "Expected complaints for the last closed window (baseline), per topic."
                ),
                &["topic"]
            )),
            window_upper: reg!(GaugeVec::new(
                opts(
                    "crisis_pulse_window_upper_bound_complaints",
                    "Upper bound of the normal band for the last closed window, per topic."
                ),
                &["topic"]
            )),
            window_score: reg!(GaugeVec::new(
                opts(
                    "crisis_pulse_window_anomaly_score",
                    "Anomaly score in [0,1] of the last closed window, per topic."
                ),
                &["topic"]
            )),
            crisis_state: reg!(IntGaugeVec::new(
                opts(
                    "crisis_pulse_crisis_state",
                    "Crisis state per topic: 0 normal, 1 watch, 2 crisis."
                ),
                &["topic"]
            )),
            crises: reg!(IntCounterVec::new(
                opts(
                    "crisis_pulse_crises_total",
                    "Crisis lifecycle changes, by topic and state (opened, escalated, resolved)."
                ),
                &["topic", "state"]
            )),
            events_by_channel: reg!(IntCounterVec::new(
                opts(
                    "crisis_pulse_events_total",
                    "Valid contact events consumed, per channel."
                ),
                &["channel"]
            )),
            events_by_kafka_topic: reg!(IntCounterVec::new(
                opts(
                    "crisis_pulse_kafka_messages_total",
                    "Messages consumed, per Kafka topic."
                ),
                &["kafka_topic"]
            )),
            complaints_by_topic: reg!(IntCounterVec::new(
                opts(
                    "crisis_pulse_complaints_total",
                    "Events classified as complaints, per topic."
                ),
                &["topic"]
            )),
            decode_errors: reg!(IntCounterVec::new(
                opts(
                    "crisis_pulse_decode_errors_total",
                    "Input records refused, by reason."
                ),
                &["reason"]
            )),
            dead_letters: reg!(IntCounterVec::new(
                opts(
                    "crisis_pulse_dead_letters_total",
                    "Records published to the dead-letter topic, by reason."
                ),
                &["reason"]
            )),
            late_events: reg!(IntCounter::new(
                "crisis_pulse_late_events_total",
                "Events that arrived after their window closed (counted, not windowed)."
            )),
            windows_closed: reg!(IntCounter::new(
                "crisis_pulse_windows_closed_total",
                "Event-time windows closed by the watermark."
            )),
            consumer_lag: reg!(IntGaugeVec::new(
                opts(
                    "crisis_pulse_consumer_lag_messages",
                    "Consumer lag per assigned partition (high watermark - position)."
                ),
                &["kafka_topic", "partition"]
            )),
            watermark_delay: reg!(Gauge::with_opts(opts(
                "crisis_pulse_watermark_delay_seconds",
                "How far the event-time watermark is behind the wall clock."
            ))),
            rebalances: reg!(IntCounterVec::new(
                opts(
                    "crisis_pulse_rebalances_total",
                    "Consumer group rebalances, by kind (assign, revoke)."
                ),
                &["kind"]
            )),
            producer_queue: reg!(IntGauge::new(
                "crisis_pulse_producer_queue_messages",
                "Messages waiting in the producer queue."
            )),
            delivery_errors: reg!(IntCounterVec::new(
                opts(
                    "crisis_pulse_delivery_errors_total",
                    "Failed deliveries to Kafka, by output (crisis, dlq)."
                ),
                &["output"]
            )),
            assigned_partitions: reg!(IntGauge::new(
                "crisis_pulse_assigned_partitions",
                "Partitions currently assigned to this instance."
            )),
            batch_latency: reg!(Histogram::with_opts(
                HistogramOpts::new(
                    "crisis_pulse_batch_processing_seconds",
                    "Processing time per consumed batch."
                )
                .buckets(lat_buckets.clone())
            )),
            detection_latency: reg!(Histogram::with_opts(
                HistogramOpts::new(
                    "crisis_pulse_detection_latency_seconds",
                    "Wall time from a window closing to its crisis event being published."
                )
                .buckets(lat_buckets)
            )),
            up: reg!(IntGauge::new(
                "crisis_pulse_up",
                "1 while the pipeline is running."
            )),
            last: Default::default(),
            registry: r,
        };
        for c in Channel::ALL {
            m.events_by_channel.with_label_values(&[c.as_str()]);
        }
        for r in DecodeReason::ALL {
            m.decode_errors.with_label_values(&[r.as_str()]);
        }
        m
    }

    /// Pre-creates per-topic series so dashboards show zeros rather than gaps.
    pub fn init_topics(&self, topics: &[String]) {
        for t in topics {
            self.complaints_by_topic.with_label_values(&[t]);
            self.crisis_state.with_label_values(&[t]);
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
        self.crisis_state
            .with_label_values(&[topic])
            .set(state_gauge(r.state));
    }

    pub fn crisis(&self, topic: &str, state: CrisisState) {
        self.crises
            .with_label_values(&[topic, state.as_str()])
            .inc();
    }

    pub fn refused(&self, reason: DecodeReason) {
        self.decode_errors
            .with_label_values(&[reason.as_str()])
            .inc();
    }

    /// Turns the pipeline's absolute counters into counter increments.
    pub fn sync_stats(&self, topics: &[String], s: &Stats) {
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        for (i, c) in Channel::ALL.iter().enumerate() {
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
            let d = now.saturating_sub(last.complaints_by_topic[i]);
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

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn state_gauge(s: SeriesState) -> i64 {
    s.gauge()
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Metrics>();
    is::<HistogramVec>();
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
        ] {
            assert!(text.contains(name), "{name} missing");
        }
    }
}
