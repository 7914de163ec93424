//! Defines every metric once: name, help, labels and buckets, registered on the explicit
//! registry and recorded in the [`MetricInfo`] catalog (the source of the docs table and of the
//! tests that check dashboards and alert rules against what the code exports).

use std::sync::{Arc, Mutex};

use prometheus::core::Collector;
use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry,
};

use super::Metrics;
use super::latency::LatencyRecorder;
use crate::event::{Channel, DecodeReason};

/// One exported metric family, as documented in `docs/observability.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricInfo {
    pub name: String,
    /// `counter`, `gauge` or `histogram`.
    pub kind: &'static str,
    pub labels: Vec<String>,
    pub help: String,
}

/// Latency buckets in seconds: 100 µs to 10 s, roughly 1-2.5-5 per decade.
const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Kafka deliveries can fail for these outputs (the `output` label).
pub const DELIVERY_OUTPUTS: [&str; 5] = ["crisis", "dlq", "windows", "classified", "state"];
/// Kinds of consumer-group rebalance (the `kind` label).
pub const REBALANCE_KINDS: [&str; 2] = ["assign", "revoke"];
/// Label values of `crisis_pulse_group_skipped_total`.
pub const GROUP_SKIPPED: [&str; 3] = ["repeat", "foreign", "missing"];

struct Builder {
    registry: Registry,
    catalog: Vec<MetricInfo>,
}

impl Builder {
    fn add<C: Collector + Clone + 'static>(&mut self, kind: &'static str, c: C) -> C {
        for d in c.desc() {
            self.catalog.push(MetricInfo {
                name: d.fq_name.clone(),
                kind,
                labels: d.variable_labels.clone(),
                help: d.help.clone(),
            });
        }
        self.registry
            .register(Box::new(c.clone()))
            .expect("metric names are unique constants");
        c
    }
    fn gauge_vec(&mut self, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
        let g = GaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition");
        self.add("gauge", g)
    }
    fn int_gauge_vec(&mut self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition");
        self.add("gauge", g)
    }
    fn int_gauge(&mut self, name: &str, help: &str) -> IntGauge {
        let g = IntGauge::new(name, help).expect("valid metric definition");
        self.add("gauge", g)
    }
    fn gauge(&mut self, name: &str, help: &str) -> Gauge {
        let g = Gauge::new(name, help).expect("valid metric definition");
        self.add("gauge", g)
    }
    fn counter_vec(&mut self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
        self.add("counter", c)
    }
    fn counter(&mut self, name: &str, help: &str) -> IntCounter {
        let c = IntCounter::new(name, help).expect("valid metric definition");
        self.add("counter", c)
    }
    fn histogram(&mut self, name: &str, help: &str) -> Histogram {
        let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
        let h = Histogram::with_opts(opts).expect("valid metric definition");
        self.add("histogram", h)
    }
}

impl Metrics {
    /// A fresh registry with every crisis-pulse metric; label values from closed sets
    /// (channels, reasons, outputs, kinds) are pre-created so they render as zeros.
    pub fn new() -> Self {
        let mut b = Builder {
            registry: Registry::new(),
            catalog: Vec::new(),
        };
        let t = &["topic"];
        let mut m = Metrics {
            window_observed: b.gauge_vec(
                "crisis_pulse_window_observed_complaints",
                "Complaints in the last closed window, per topic, as counted for detection (`window.count`: distinct customers by default).",
                t,
            ),
            window_expected: b.gauge_vec(
                "crisis_pulse_window_expected_complaints",
                "Expected complaints for the last closed window (baseline), per topic.",
                t,
            ),
            window_upper: b.gauge_vec(
                "crisis_pulse_window_upper_bound_complaints",
                "Upper bound of the normal band for the last closed window, per topic.",
                t,
            ),
            window_score: b.gauge_vec(
                "crisis_pulse_window_anomaly_score",
                "Anomaly score in [0,1] of the last closed window, per topic.",
                t,
            ),
            crisis_state: b.int_gauge_vec(
                "crisis_pulse_crisis_state",
                "Crisis state per topic: 0 normal, 1 watch, 2 crisis.",
                t,
            ),
            day_records: b.counter_vec(
                "crisis_pulse_day_records_total",
                "Times a topic's last 24 hours of complaints were its busiest or quietest on record (more than 3 % beyond every earlier day, after eight days; at most once in 48 hours per topic), by topic and direction (busiest, quietest).",
                &["topic", "direction"],
            ),
            crises: b.counter_vec(
                "crisis_pulse_crises_total",
                "Crisis lifecycle changes, by topic and state (opened, escalated, resolved).",
                &["topic", "state"],
            ),
            events_by_channel: b.counter_vec(
                "crisis_pulse_events_total",
                "Valid contact events consumed, per channel.",
                &["channel"],
            ),
            events_by_kafka_topic: b.counter_vec(
                "crisis_pulse_kafka_messages_total",
                "Messages consumed, per Kafka topic.",
                &["kafka_topic"],
            ),
            complaints_by_topic: b.counter_vec(
                "crisis_pulse_complaints_total",
                "Events classified as complaints, per topic.",
                t,
            ),
            decode_errors: b.counter_vec(
                "crisis_pulse_decode_errors_total",
                "Input records refused, by reason.",
                &["reason"],
            ),
            dead_letters: b.counter_vec(
                "crisis_pulse_dead_letters_total",
                "Records published to the dead-letter topic, by reason.",
                &["reason"],
            ),
            late_events: b.counter(
                "crisis_pulse_late_events_total",
                "Events that arrived after their window closed (counted, not windowed).",
            ),
            windows_closed: b.counter(
                "crisis_pulse_windows_closed_total",
                "Event-time windows closed by the watermark.",
            ),
            consumer_lag: b.int_gauge_vec(
                "crisis_pulse_consumer_lag_messages",
                "Consumer lag per assigned partition (high watermark - position).",
                &["kafka_topic", "partition"],
            ),
            watermark_delay: b.gauge(
                "crisis_pulse_watermark_delay_seconds",
                "How far the event-time watermark is behind the processing clock.",
            ),
            watermark_time: b.gauge(
                "crisis_pulse_watermark_timestamp_seconds",
                "The event-time watermark, as Unix time.",
            ),
            rebalances: b.counter_vec(
                "crisis_pulse_rebalances_total",
                "Consumer group rebalances, by kind (assign, revoke).",
                &["kind"],
            ),
            producer_queue: b.int_gauge(
                "crisis_pulse_producer_queue_messages",
                "Messages waiting in the producer queue.",
            ),
            delivery_errors: b.counter_vec(
                "crisis_pulse_delivery_errors_total",
                "Failed deliveries to Kafka, by output (crisis, dlq, windows; in the group mode also classified, state).",
                &["output"],
            ),
            assigned_partitions: b.int_gauge(
                "crisis_pulse_assigned_partitions",
                "Partitions currently assigned to this instance.",
            ),
            checkpoints: b.counter(
                "crisis_pulse_checkpoints_total",
                "State checkpoints written (with the offsets they cover committed).",
            ),
            rewinds: b.counter(
                "crisis_pulse_rewinds_total",
                "Roll-backs to the last checkpoint, whose input is then read again: outputs the broker refused for good (at least once), or a transaction a rebalance aborted (exactly once). Outputs come again with the same ids.",
            ),
            checkpoint_seconds: b.histogram(
                "crisis_pulse_checkpoint_duration_seconds",
                "Time to flush outputs, write a checkpoint and commit its offsets.",
            ),
            checkpoint_bytes: b.int_gauge(
                "crisis_pulse_checkpoint_bytes",
                "Size of the newest checkpoint written to the group's state topic (group mode).",
            ),
            group_detector: b.int_gauge(
                "crisis_pulse_group_detector",
                "1 while this instance counts and detects for its group (group mode: it owns the classified partition).",
            ),
            group_skipped: b.counter_vec(
                "crisis_pulse_group_skipped_total",
                "Classified records the group's detector skipped, by reason: repeat (a source offset already counted, forwarded again after a crash or rebalance), foreign (another taxonomy, or undecodable) or missing (classified offsets absent from the topic after several reads).",
                &["reason"],
            ),
            up: b.int_gauge("crisis_pulse_up", "1 while the pipeline is running."),
            build_info: b.int_gauge_vec(
                "crisis_pulse_build_info",
                "Always 1; the version label tells which build is running.",
                &["version"],
            ),
            batch_latency: b.histogram(
                "crisis_pulse_batch_processing_seconds",
                "Processing time per batch of consumed records (demo: per closed window).",
            ),
            detection_latency: b.histogram(
                "crisis_pulse_detection_latency_seconds",
                "Wall time from the watermark closing a window to its results being published.",
            ),
            // Attached to the histograms just below.
            batch: LatencyRecorder::standalone("batch"),
            detection: LatencyRecorder::standalone("detection"),
            last: Arc::new(Mutex::new(Default::default())),
            catalog: Arc::new(b.catalog),
            registry: b.registry,
        };
        m.batch = LatencyRecorder::new("batch", Some(m.batch_latency.clone()));
        m.detection = LatencyRecorder::new("detection", Some(m.detection_latency.clone()));
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        for c in Channel::ALL {
            m.events_by_channel.with_label_values(&[c.as_str()]);
        }
        for r in DecodeReason::ALL {
            m.decode_errors.with_label_values(&[r.as_str()]);
            m.dead_letters.with_label_values(&[r.as_str()]);
        }
        for o in DELIVERY_OUTPUTS {
            m.delivery_errors.with_label_values(&[o]);
        }
        for k in REBALANCE_KINDS {
            m.rebalances.with_label_values(&[k]);
        }
        for r in GROUP_SKIPPED {
            m.group_skipped.with_label_values(&[r]);
        }
        m
    }

    /// Every metric family this build exports, in definition order.
    pub fn catalog(&self) -> &[MetricInfo] {
        &self.catalog
    }

    /// Every sample name Prometheus can see: histogram families add `_bucket`, `_sum` and
    /// `_count`. Dashboards and alert rules may only use these.
    pub fn sample_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        for m in self.catalog.iter() {
            if m.kind == "histogram" {
                for s in ["_bucket", "_sum", "_count"] {
                    out.push(format!("{}{s}", m.name));
                }
            } else {
                out.push(m.name.clone());
            }
        }
        out
    }

    /// The metrics reference as a Markdown table (kept in `docs/observability.md`).
    pub fn markdown_table(&self) -> String {
        let mut s = String::from("| name | type | labels | meaning |\n| --- | --- | --- | --- |\n");
        for m in self.catalog.iter() {
            s.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                m.name,
                m.kind,
                if m.labels.is_empty() {
                    "-".to_string()
                } else {
                    m.labels.join(", ")
                },
                m.help
            ));
        }
        s
    }
}
