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
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::util::Timeout;

use crate::event::{CrisisEvent, DecodeError};
use crate::metrics::Metrics;
use crate::source::kafka_config::KafkaConfig;

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
}

/// What a delivery report belongs to.
pub enum Delivery {
    Crisis { closed_at: Instant },
    DeadLetter,
}

/// Counts deliveries and detection latency from the producer's own thread.
pub struct DeliveryContext {
    metrics: Metrics,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<Delivery>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Self::DeliveryOpaque) {
        let output = match *opaque {
            Delivery::Crisis { .. } => "crisis",
            Delivery::DeadLetter => "dlq",
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
                tracing::error!(output, error = %e, "delivery failed permanently; record lost");
            }
        }
    }
}

/// Builds a client configuration with the brokers and the passthrough properties.
pub fn client_config(k: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers);
    apply_properties(&mut c, k);
    c
}

/// Applies `kafka.properties` (after a client's own defaults, so they can be overridden).
pub fn apply_properties(c: &mut ClientConfig, k: &KafkaConfig) {
    for (key, v) in &k.properties {
        c.set(key, v);
    }
}

/// The crisis and dead-letter producer.
pub struct KafkaSink {
    producer: ThreadedProducer<DeliveryContext>,
    crisis_topic: String,
    dlq_topic: String,
    ce_source: String,
    metrics: Metrics,
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
        let mut c = client_config(k);
        c.set("linger.ms", "5");
        // Defaults above may be overridden by `kafka.properties`; these may not.
        apply_properties(&mut c, k);
        c.set("enable.idempotence", "true")
            .set("message.timeout.ms", "0");
        let producer = c
            .create_with_context(DeliveryContext {
                metrics: metrics.clone(),
            })
            .map_err(SinkError::Create)?;
        Ok(KafkaSink {
            producer,
            crisis_topic: k.crisis_topic.clone(),
            dlq_topic: k.dlq_topic.clone(),
            ce_source: k.ce_source.clone(),
            metrics,
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
}

fn h<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}

/// Sends, waiting while the queue is full: backpressure onto consumption, never a drop.
fn send<'a>(
    producer: &ThreadedProducer<DeliveryContext>,
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
