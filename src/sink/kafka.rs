//! Kafka outputs: crisis events (CloudEvents binary-mode headers, JSON body, key = topic) and
//! the dead-letter topic (original payload, headers naming the reason and the source).
//!
//! Backpressure: when librdkafka's queue is full, `send` waits and retries; nothing is
//! dropped. Messages never time out in the queue (`message.timeout.ms=0`), so the only
//! delivery errors are permanent ones (authorisation, size); those are counted and logged as
//! errors (data loss needing an operator).

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext};

use super::poller::PolledProducer;
use rdkafka::util::Timeout;

use crate::event::{CrisisEvent, DecodeError};
use crate::metrics::Metrics;
use crate::pipeline::WindowReport;
use crate::source::kafka_config::{Delivery as Guarantee, KafkaConfig};

/// Longest a transactional call (init, commit, abort) may take.
const TXN_TIMEOUT: Duration = Duration::from_secs(30);

/// Producer errors that stop the service (start-up, flush at shutdown).
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("creating the producer: {0}")]
    Create(KafkaError),
    #[error("encoding a crisis event: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("producing to {topic}: {source}")]
    Produce { topic: String, source: KafkaError },
    #[error("flushing the producer: {0}")]
    Flush(KafkaError),
    #[error("Kafka transaction ({step}): {source}")]
    Transaction {
        step: &'static str,
        source: KafkaError,
    },
}

/// What a delivery report belongs to.
pub enum Delivery {
    Crisis {
        closed_at: Instant,
    },
    DeadLetter,
    Window,
    /// Group mode: a classified event (or hold marker) for the group's detector.
    Forward,
    /// Group mode: a chunk of the detector's checkpoint.
    State,
}

/// A closed window as published to `kafka.windows_topic` (JSON).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WindowRecord {
    pub schema_version: u32,
    pub topic: String,
    /// `all` for the topic's all-channels series.
    pub channel: String,
    pub window_start: String,
    pub window_end: String,
    /// Complaints as counted for detection (customers or events, `[window] count`).
    pub observed: u64,
    /// Complaint events, repeat contacts included.
    #[serde(default)]
    pub observed_events: u64,
    /// All contacts of the topic in the window (all-channels series only; else 0).
    pub contacts: u64,
    pub expected: f64,
    pub upper_bound: f64,
    pub p_value: f64,
    pub score: f64,
    pub state: String,
    pub detector_version: String,
}

impl WindowRecord {
    pub fn new(topic: &str, r: &WindowReport) -> Self {
        WindowRecord {
            schema_version: crate::event::SCHEMA_VERSION,
            topic: topic.to_string(),
            channel: r.channel.map_or("all", |c| c.as_str()).to_string(),
            window_start: crate::event::format_rfc3339(r.start_ms),
            window_end: crate::event::format_rfc3339(r.end_ms),
            observed: r.observed,
            observed_events: r.observed_events,
            contacts: r.contacts,
            expected: finite(r.expected),
            upper_bound: finite(r.upper),
            p_value: finite(r.p_value),
            score: finite(r.score),
            state: r.state.as_str().to_string(),
            detector_version: crate::detect::DETECTOR_VERSION.to_string(),
        }
    }
}

/// JSON has no NaN or infinity.
fn finite(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}

/// Counts deliveries and detection latency from the producer's own thread.
pub struct DeliveryContext {
    metrics: Metrics,
    /// Outputs the broker refused for good (never reset): a checkpoint must not cover the
    /// input they came from (see `KafkaSink::failed`).
    failed: std::sync::atomic::AtomicU64,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<Delivery>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Self::DeliveryOpaque) {
        let output = match *opaque {
            Delivery::Crisis { .. } => "crisis",
            Delivery::DeadLetter => "dlq",
            Delivery::Window => "windows",
            Delivery::Forward => "classified",
            Delivery::State => "state",
        };
        match result {
            Ok(_) => {
                if let Delivery::Crisis { closed_at } = *opaque {
                    self.metrics
                        .detection_latency
                        .observe(closed_at.elapsed().as_secs_f64());
                }
            }
            Err((e, _)) => {
                self.metrics
                    .delivery_errors
                    .with_label_values(&[output])
                    .inc();
                self.failed
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tracing::error!(output, error = %e, "delivery failed permanently; the input it came from is read again from the last checkpoint");
            }
        }
    }
}

/// Which kind of client a configuration is for: `kafka.properties` holds the properties of
/// all of them, and librdkafka warns (CONFWARN) at every start when a consumer-only property
/// reaches a producer or the reverse, so each client gets only the ones that apply to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Consumer,
    Producer,
    /// Admin and metadata clients: the properties common to both.
    Admin,
}

/// librdkafka properties that only a consumer reads (CONFIGURATION.md, "C").
const CONSUMER_ONLY: &[&str] = &[
    "group.instance.id",
    "partition.assignment.strategy",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "group.protocol.type",
    "group.protocol",
    "group.remote.assignor",
    "coordinator.query.interval.ms",
    "max.poll.interval.ms",
    "enable.auto.commit",
    "auto.commit.interval.ms",
    "enable.auto.offset.store",
    "queued.min.messages",
    "queued.max.messages.kbytes",
    "fetch.wait.max.ms",
    "fetch.queue.backoff.ms",
    "fetch.message.max.bytes",
    "max.partition.fetch.bytes",
    "fetch.max.bytes",
    "fetch.min.bytes",
    "fetch.error.backoff.ms",
    "isolation.level",
    "enable.partition.eof",
    "check.crcs",
    "auto.offset.reset",
    "consume.callback.max.messages",
];

/// librdkafka properties that only a producer reads (CONFIGURATION.md, "P").
const PRODUCER_ONLY: &[&str] = &[
    "transactional.id",
    "transaction.timeout.ms",
    "enable.idempotence",
    "enable.gapless.guarantee",
    "queue.buffering.max.messages",
    "queue.buffering.max.kbytes",
    "queue.buffering.max.ms",
    "linger.ms",
    "message.send.max.retries",
    "retries",
    "queue.buffering.backpressure.threshold",
    "compression.codec",
    "compression.type",
    "compression.level",
    "batch.num.messages",
    "batch.size",
    "delivery.report.only.error",
    "sticky.partitioning.linger.ms",
    "request.required.acks",
    "acks",
    "request.timeout.ms",
    "message.timeout.ms",
    "delivery.timeout.ms",
    "partitioner",
    "queuing.strategy",
    "produce.offset.report",
];

/// Whether the passthrough property `key` applies to a client of `role`.
pub fn applies(key: &str, role: Role) -> bool {
    let consumer_only = CONSUMER_ONLY.contains(&key);
    let producer_only = PRODUCER_ONLY.contains(&key);
    match role {
        Role::Consumer => !producer_only,
        Role::Producer => !consumer_only,
        Role::Admin => !consumer_only && !producer_only,
    }
}

/// Builds a client configuration with the brokers and the passthrough properties that apply
/// to `role`.
pub fn client_config(k: &KafkaConfig, role: Role) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers);
    apply_properties(&mut c, k, role);
    c
}

/// Applies `kafka.properties` that apply to `role` (after a client's own defaults, so they
/// can be overridden).
pub fn apply_properties(c: &mut ClientConfig, k: &KafkaConfig, role: Role) {
    for (key, v) in &k.properties {
        if applies(key, role) {
            c.set(key, v);
        }
    }
}

/// The crisis and dead-letter producer.
pub struct KafkaSink {
    producer: PolledProducer<DeliveryContext>,
    crisis_topic: String,
    dlq_topic: String,
    windows_topic: Option<String>,
    ce_source: String,
    metrics: Metrics,
    transactional: bool,
}

/// Where a refused record came from.
pub struct Origin<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
}

impl KafkaSink {
    pub fn new(k: &KafkaConfig, metrics: Metrics) -> Result<Self, SinkError> {
        let mut c = client_config(k, Role::Producer);
        c.set("linger.ms", "5");
        // Defaults above may be overridden by `kafka.properties`; these may not.
        apply_properties(&mut c, k, Role::Producer);
        c.set("enable.idempotence", "true")
            .set("message.timeout.ms", "0");
        let transactional = k.delivery == Guarantee::ExactlyOnce;
        if transactional {
            // A transaction must finish within this; checkpoints are far more frequent.
            c.set("transactional.id", k.transactional_id())
                .set("transaction.timeout.ms", "60000")
                // librdkafka refuses an infinite message timeout with transactions.
                .set("message.timeout.ms", "55000");
        }
        let producer = PolledProducer::new(
            &c,
            DeliveryContext {
                metrics: metrics.clone(),
                failed: Default::default(),
            },
        )
        .map_err(SinkError::Create)?;
        if transactional {
            // Fences any older instance with the same transactional.id and aborts its
            // unfinished transaction.
            producer
                .init_transactions(Timeout::After(TXN_TIMEOUT))
                .map_err(|source| SinkError::Transaction {
                    step: "init",
                    source,
                })?;
            tracing::info!(transactional_id = %k.transactional_id(), "exactly-once producer ready");
        }
        Ok(KafkaSink {
            producer,
            crisis_topic: k.crisis_topic.clone(),
            dlq_topic: k.dlq_topic.clone(),
            windows_topic: k.windows_topic.clone(),
            ce_source: k.ce_source.clone(),
            metrics,
            transactional,
        })
    }

    /// Whether crises and dead letters go out in Kafka transactions.
    pub fn is_transactional(&self) -> bool {
        self.transactional
    }

    /// Starts the transaction the next outputs belong to (exactly-once mode).
    pub fn begin(&self) -> Result<(), SinkError> {
        self.producer
            .begin_transaction()
            .map_err(|source| SinkError::Transaction {
                step: "begin",
                source,
            })
    }

    /// Commits the open transaction together with the consumer offsets `offsets` of the
    /// group `group`: the outputs become visible to `read_committed` readers and the input
    /// counts as consumed in one atomic step.
    pub fn commit(
        &self,
        offsets: Option<(
            &rdkafka::TopicPartitionList,
            &rdkafka::consumer::ConsumerGroupMetadata,
        )>,
    ) -> Result<(), SinkError> {
        let t = Timeout::After(TXN_TIMEOUT);
        if let Some((offsets, group)) = offsets {
            self.producer
                .send_offsets_to_transaction(offsets, group, t)
                .map_err(|source| SinkError::Transaction {
                    step: "send offsets",
                    source,
                })?;
        }
        self.producer
            .commit_transaction(t)
            .map_err(|source| SinkError::Transaction {
                step: "commit",
                source,
            })
    }

    /// Aborts the open transaction: its outputs are never visible to `read_committed`
    /// readers.
    pub fn abort(&self) -> Result<(), SinkError> {
        self.producer
            .abort_transaction(Timeout::After(TXN_TIMEOUT))
            .map_err(|source| SinkError::Transaction {
                step: "abort",
                source,
            })
    }

    /// Publishes a crisis event; `closed_at` is when its window closed (detection latency).
    pub fn crisis(&self, ev: &CrisisEvent, closed_at: Instant) -> Result<(), SinkError> {
        let payload = serde_json::to_vec(ev)?;
        let ce_type = format!("io.crisis-pulse.crisis.{}", ev.state.as_str());
        let headers = OwnedHeaders::new_with_capacity(6)
            .insert(h("ce_specversion", "1.0"))
            .insert(h("ce_id", &ev.event_id))
            .insert(h("ce_type", &ce_type))
            .insert(h("ce_source", &self.ce_source))
            .insert(h("ce_time", &ev.window_end))
            .insert(h("content-type", "application/json"));
        let rec = BaseRecord::with_opaque_to(
            &self.crisis_topic,
            Box::new(Delivery::Crisis { closed_at }),
        )
        .key(ev.topic.as_bytes())
        .payload(&payload[..])
        .headers(headers);
        send(&self.producer, rec, &self.metrics)
    }

    /// Whether closed windows are published.
    pub fn publishes_windows(&self) -> bool {
        self.windows_topic.is_some()
    }

    /// Publishes a closed window to `kafka.windows_topic` (if set); key = topic name.
    pub fn window(&self, topic: &str, r: &WindowReport) -> Result<(), SinkError> {
        let Some(to) = &self.windows_topic else {
            return Ok(());
        };
        let payload = serde_json::to_vec(&WindowRecord::new(topic, r))?;
        let headers =
            OwnedHeaders::new_with_capacity(1).insert(h("content-type", "application/json"));
        let rec = BaseRecord::with_opaque_to(to, Box::new(Delivery::Window))
            .key(topic.as_bytes())
            .payload(&payload[..])
            .headers(headers);
        send(&self.producer, rec, &self.metrics)
    }

    /// Publishes a refused record to the dead-letter topic, payload unchanged.
    pub fn dead_letter(
        &self,
        payload: &[u8],
        err: &DecodeError,
        from: &Origin<'_>,
    ) -> Result<(), SinkError> {
        let (partition, offset) = (from.partition.to_string(), from.offset.to_string());
        let mut detail = err.detail.as_str();
        if detail.len() > 512 {
            let mut end = 512;
            while !detail.is_char_boundary(end) {
                end -= 1;
            }
            detail = &detail[..end];
        }
        let headers = OwnedHeaders::new_with_capacity(5)
            .insert(h("dlq_reason", err.reason.as_str()))
            .insert(h("dlq_detail", detail))
            .insert(h("dlq_source_topic", from.topic))
            .insert(h("dlq_source_partition", &partition))
            .insert(h("dlq_source_offset", &offset));
        let mut rec = BaseRecord::with_opaque_to(&self.dlq_topic, Box::new(Delivery::DeadLetter))
            .payload(payload)
            .headers(headers);
        if let Some(key) = from.key {
            rec = rec.key(key);
        }
        send(&self.producer, rec, &self.metrics)?;
        self.metrics
            .dead_letters
            .with_label_values(&[err.reason.as_str()])
            .inc();
        Ok(())
    }

    /// Group mode: sends a record to an internal topic (`<group>.classified`, partition 0, or
    /// a chunk of a checkpoint to `<group>.state`).
    pub fn internal(
        &self,
        topic: &str,
        key: &[u8],
        payload: &[u8],
        state: bool,
    ) -> Result<(), SinkError> {
        let what = if state {
            Delivery::State
        } else {
            Delivery::Forward
        };
        let rec = BaseRecord::with_opaque_to(topic, Box::new(what))
            .partition(0)
            .key(key)
            .payload(payload);
        send(&self.producer, rec, &self.metrics)
    }

    /// Waits until every message sent so far is delivered (or `timeout` passes).
    pub fn flush(&self, timeout: Duration) -> Result<(), SinkError> {
        self.producer
            .flush(Timeout::After(timeout))
            .map_err(SinkError::Flush)?;
        self.metrics
            .producer_queue
            .set(i64::from(self.producer.in_flight_count()));
        Ok(())
    }

    /// Messages not yet delivered.
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }

    /// Outputs the broker refused for good since this sink started (monotonic). With
    /// `message.timeout.ms = 0` librdkafka retries every retriable error forever, so these are
    /// errors it deems permanent (measured: tansu answering "Unknown broker error" while it
    /// restarts). A caller compares it across a checkpoint: a rise means some output of the
    /// input read since the last checkpoint is missing, so that input must be read again.
    pub fn failed(&self) -> u64 {
        self.producer
            .context()
            .failed
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn h<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}

/// Sends, waiting while the queue is full: backpressure onto consumption, never a drop.
fn send<'a>(
    producer: &PolledProducer<DeliveryContext>,
    mut rec: BaseRecord<'a, [u8], [u8], Box<Delivery>>,
    metrics: &Metrics,
) -> Result<(), SinkError> {
    let mut waits = 0u32;
    loop {
        match producer.send(rec) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                rec = back;
                waits += 1;
                metrics
                    .producer_queue
                    .set(i64::from(producer.in_flight_count()));
                if waits == 1 {
                    tracing::warn!("producer queue full; consumption waits for deliveries");
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err((e, back)) => {
                return Err(SinkError::Produce {
                    topic: back.topic.to_string(),
                    source: e,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Role, applies};

    #[test]
    fn passthrough_properties_go_to_the_clients_that_read_them() {
        assert!(applies("session.timeout.ms", Role::Consumer));
        assert!(!applies("session.timeout.ms", Role::Producer));
        assert!(applies("linger.ms", Role::Producer));
        assert!(!applies("linger.ms", Role::Consumer));
        for role in [Role::Consumer, Role::Producer, Role::Admin] {
            assert!(applies("security.protocol", role));
            assert!(applies("sasl.password", role));
            assert!(applies("ssl.ca.location", role));
        }
        assert!(!applies("group.instance.id", Role::Admin));
        assert!(!applies("transactional.id", Role::Admin));
    }
}
