//! Internal events: one struct per occurrence whose `emit()` both logs and counts, so callers
//! never pair an `info!` with a `counter.inc()` by hand (vector's `internal_events` pattern).
//! Every label value is from a closed set or the configured taxonomy.

use std::sync::atomic::{AtomicU64, Ordering};

use super::Metrics;
use super::latency::LatencySummary;
use crate::event::{CrisisEvent, CrisisState, DecodeReason};
use crate::pipeline::WindowReport;

/// A crisis opened, escalated or resolved. Logs one line an operator can read without the
/// JSON (`CRISIS OPENED topic=outage severity=high observed=37 expected=14.2 ...`) and counts
/// `crisis_pulse_crises_total{topic,state}`.
#[derive(Debug, Clone, Copy)]
pub struct CrisisChanged<'a> {
    pub event: &'a CrisisEvent,
}

/// Rounds for log fields: enough digits to read, numbers still numbers in JSON logs.
fn r1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

impl CrisisChanged<'_> {
    pub fn emit(&self, m: &Metrics) {
        let c = self.event;
        m.crisis(&c.topic, c.state);
        let what = match c.state {
            CrisisState::Opened => "CRISIS OPENED",
            CrisisState::Escalated => "CRISIS ESCALATED",
            CrisisState::Resolved => "CRISIS RESOLVED",
        };
        // Opened and escalated need a person; resolved is good news.
        macro_rules! log {
            ($lvl:ident) => {
                tracing::$lvl!(
                    topic = %c.topic,
                    severity = %c.severity.as_str(),
                    observed = c.observed,
                    expected = r1(c.expected),
                    upper_bound = r1(c.upper_bound),
                    p_value = c.p_value,
                    window_start = %c.window_start,
                    onset = %c.onset,
                    windows_in_crisis = c.windows_in_crisis,
                    crisis_id = %c.crisis_id,
                    "{what}"
                )
            };
        }
        match c.state {
            CrisisState::Opened | CrisisState::Escalated => log!(warn),
            CrisisState::Resolved => log!(info),
        }
    }
}

/// A topic-level window closed and was scored: sets the pulse gauges (observed, expected,
/// upper bound, score, state). Logged at `debug`: there is one per topic per window.
#[derive(Debug, Clone, Copy)]
pub struct WindowScored<'a> {
    pub topic: &'a str,
    pub report: &'a WindowReport,
}

impl WindowScored<'_> {
    pub fn emit(&self, m: &Metrics) {
        let r = self.report;
        if r.channel.is_some() {
            return;
        }
        m.window(self.topic, r);
        if let Some(direction) = r.record_day() {
            tracing::info!(
                topic = %self.topic,
                beyond_record_pct = r1(100.0 * r.day_record.abs()),
                "the last 24 hours are this topic's {direction} on record"
            );
        }
        tracing::debug!(
            topic = %self.topic,
            observed = r.observed,
            expected = r1(r.expected),
            upper_bound = r1(r.upper),
            score = r.score,
            state = r.state.as_str(),
            "window scored"
        );
    }
}

/// Records refused so far, process-wide: the log budget below.
static REFUSED_LOGGED: AtomicU64 = AtomicU64::new(0);

/// An input record was refused. Always counted; logged for the first 20, then every 10,000th,
/// so a poisoned topic cannot flood the logs. `detail` never contains the payload.
#[derive(Debug, Clone, Copy)]
pub struct RecordRefused<'a> {
    pub reason: DecodeReason,
    pub detail: &'a str,
}

impl RecordRefused<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.refused(self.reason);
        let n = REFUSED_LOGGED.fetch_add(1, Ordering::Relaxed) + 1;
        if n <= 20 || n.is_multiple_of(10_000) {
            tracing::warn!(
                reason = self.reason.as_str(),
                detail = %self.detail,
                refused_so_far = n,
                "input record refused"
            );
        }
    }
}

/// A refused record was published to the dead-letter topic.
#[derive(Debug, Clone, Copy)]
pub struct DeadLettered {
    pub reason: DecodeReason,
}

impl DeadLettered {
    pub fn emit(&self, m: &Metrics) {
        m.dead_letters
            .with_label_values(&[self.reason.as_str()])
            .inc();
        tracing::debug!(reason = self.reason.as_str(), "record dead-lettered");
    }
}

/// Where a failed delivery was going (the `output` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutput {
    Crisis,
    Dlq,
}

impl DeliveryOutput {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryOutput::Crisis => "crisis",
            DeliveryOutput::Dlq => "dlq",
        }
    }
}

/// A Kafka delivery failed for good (after librdkafka's retries): data loss, so `error`.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryFailed<'a> {
    pub output: DeliveryOutput,
    pub error: &'a str,
}

impl DeliveryFailed<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.delivery_errors
            .with_label_values(&[self.output.as_str()])
            .inc();
        tracing::error!(output = self.output.as_str(), error = %self.error, "delivery failed");
    }
}

/// Partitions assigned to or revoked from this consumer.
#[derive(Debug, Clone, Copy)]
pub struct Rebalanced {
    /// `true` for an assignment, `false` for a revocation.
    pub assigned: bool,
    /// Partitions in this change.
    pub partitions: usize,
    /// Partitions held after the change (`crisis_pulse_assigned_partitions`).
    pub now_held: usize,
}

impl Rebalanced {
    pub fn emit(&self, m: &Metrics) {
        let kind = if self.assigned { "assign" } else { "revoke" };
        m.rebalances.with_label_values(&[kind]).inc();
        m.assigned_partitions
            .set(i64::try_from(self.now_held).unwrap_or(i64::MAX));
        tracing::info!(
            kind,
            partitions = self.partitions,
            now_held = self.now_held,
            "consumer group rebalance"
        );
    }
}

/// Periodic latency percentiles from a [`super::LatencyRecorder`]'s HdrHistogram. Only logs:
/// the Prometheus histogram is fed on every sample.
#[derive(Debug, Clone, Copy)]
pub struct LatencyReported {
    pub name: &'static str,
    pub summary: LatencySummary,
}

impl LatencyReported {
    pub fn emit(&self) {
        let s = &self.summary;
        let us = |d: std::time::Duration| (d.as_secs_f64() * 1e7).round() / 10.0;
        tracing::info!(
            latency = self.name,
            count = s.count,
            p50_us = us(s.p50),
            p99_us = us(s.p99),
            p999_us = us(s.p999),
            max_us = us(s.max),
            "latency percentiles"
        );
    }
}

#[cfg(test)]
mod tests_support {
    use crate::event::{CrisisEvent, Severity};

    /// An `outage` crisis event: observed 37, expected 14.2, upper bound 25.5.
    pub(super) fn crisis() -> CrisisEvent {
        let line = r#"{"schema_version":1,"crisis_id":"cr-1","event_id":"e","topic":"outage",
            "state":"opened","severity":"high","window_start":"a","window_end":"b","onset":"a",
            "observed":37,"expected":14.2,"upper_bound":25.5,"p_value":1e-7,"score":1.0,
            "ratio":2.6,"channels":{"phone":1,"email":0,"chat":0,"social":0,"review":0,"other":0},
            "top_terms":[],"sample_event_ids":[],"peak_observed":37,"windows_in_crisis":1,
            "detector_version":"x"}"#;
        let mut c: CrisisEvent = serde_json::from_str(line).unwrap();
        c.severity = Severity::High;
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crisis(state: CrisisState) -> CrisisEvent {
        let mut c = tests_support::crisis();
        c.state = state;
        c
    }

    #[test]
    fn crisis_changed_counts_by_topic_and_state() {
        let m = Metrics::new();
        CrisisChanged {
            event: &crisis(CrisisState::Opened),
        }
        .emit(&m);
        CrisisChanged {
            event: &crisis(CrisisState::Resolved),
        }
        .emit(&m);
        let c = |s: &str| m.crises.with_label_values(&["outage", s]).get();
        assert_eq!((c("opened"), c("escalated"), c("resolved")), (1, 0, 1));
    }

    #[test]
    fn stream_events_count_with_bounded_labels() {
        let m = Metrics::new();
        RecordRefused {
            reason: DecodeReason::MalformedJson,
            detail: "expected value",
        }
        .emit(&m);
        DeadLettered {
            reason: DecodeReason::MalformedJson,
        }
        .emit(&m);
        DeliveryFailed {
            output: DeliveryOutput::Dlq,
            error: "timed out",
        }
        .emit(&m);
        Rebalanced {
            assigned: true,
            partitions: 3,
            now_held: 3,
        }
        .emit(&m);
        assert_eq!(
            m.decode_errors.with_label_values(&["malformed_json"]).get(),
            1
        );
        assert_eq!(
            m.dead_letters.with_label_values(&["malformed_json"]).get(),
            1
        );
        assert_eq!(m.delivery_errors.with_label_values(&["dlq"]).get(), 1);
        assert_eq!(m.rebalances.with_label_values(&["assign"]).get(), 1);
        assert_eq!(m.assigned_partitions.get(), 3);
    }
}
