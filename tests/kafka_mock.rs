//! Fast hermetic tests on librdkafka's mock cluster (alongside, never instead of, the tests
//! against the real broker): consumer-lag arithmetic, and a short service run.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use crisis_pulse::metrics::Metrics;
use crisis_pulse::service::{self, ServiceOptions};
use crisis_pulse::sink::kafka::KafkaSink;
use crisis_pulse::source::kafka::{self, Durability, ServiceContext};
use rdkafka::ClientConfig;
use rdkafka::consumer::Consumer;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

fn fill(brokers: &str, topic: &str, per_partition: &[usize], payload: impl Fn(usize) -> Vec<u8>) {
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("producer");
    let mut n = 0;
    for (part, &count) in per_partition.iter().enumerate() {
        for _ in 0..count {
            let body = payload(n);
            p.send(
                BaseRecord::<(), _>::to(topic)
                    .partition(part as i32)
                    .payload(&body),
            )
            .expect("send");
            n += 1;
        }
    }
    p.flush(Duration::from_secs(10)).expect("flush");
}

#[test]
fn consumer_lag_is_high_watermark_minus_position() {
    let mock = MockCluster::new(1).expect("mock cluster");
    mock.create_topic("contacts.chat", 2, 1).expect("topic");
    let brokers = mock.bootstrap_servers();
    fill(&brokers, "contacts.chat", &[100, 40], |i| {
        format!("{{\"n\":{i}}}").into_bytes()
    });

    let mut cfg = config(&brokers, "lag", &["contacts.chat".into()], "crisis", "dlq");
    cfg.kafka.statistics_interval = crisis_pulse::config::Dur(Duration::from_millis(100));
    let metrics = Metrics::new();
    let ctx = ServiceContext::new(
        metrics.clone(),
        Arc::new(KafkaSink::new(&cfg.kafka, metrics).expect("sink")),
        Duration::from_secs(5),
        Durability::Stateless,
    );
    let consumer = kafka::consumer(&cfg.kafka, ctx).expect("consumer");
    let mut consumed = 0;
    let started = Instant::now();
    while consumed < 50 && started.elapsed() < Duration::from_secs(20) {
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
            consumed += 1;
        }
    }
    assert!(consumed >= 50);
    // Wait for statistics to report both high watermarks.
    let started = Instant::now();
    loop {
        // Polling serves the statistics callback; count what it hands out too.
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(0)) {
            consumed += 1;
        }
        let highs = consumer.context().highs.lock().expect("lock").clone();
        if highs.len() == 2 && highs.values().all(|o| o.high > 0) {
            let pos = kafka::positions(&consumer);
            let total: i64 = highs
                .iter()
                .map(|(tp, o)| {
                    kafka::partition_lag(Some(*o), pos.get(tp).copied()).expect("known lag")
                })
                .sum();
            assert_eq!(
                total,
                140 - consumed,
                "positions {pos:?}, offsets {highs:?}"
            );
            let h: i64 = highs.values().map(|o| o.high).sum();
            assert_eq!(h, 140);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no statistics");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_on_mock_cluster_counts_and_dead_letters() {
    let mock = MockCluster::new(1).expect("mock cluster");
    for t in ["contacts.chat", "contacts.phone"] {
        mock.create_topic(t, 2, 1).expect("topic");
    }
    mock.create_topic("crisis.events", 1, 1).expect("topic");
    mock.create_topic("contacts.dlq", 1, 1).expect("topic");
    let brokers = mock.bootstrap_servers();
    let t0 = now_ms() - 3_600_000;
    let good = |i: usize| {
        format!(
            "{{\"id\":\"e{i}\",\"event_time\":\"{}\",\"text\":\"charged twice\"}}",
            crisis_pulse::event::format_rfc3339(t0 + i as i64 * 1000)
        )
        .into_bytes()
    };
    fill(&brokers, "contacts.chat", &[30, 30], good);
    fill(&brokers, "contacts.phone", &[5, 0], |i| {
        if i % 2 == 0 {
            b"{broken".to_vec()
        } else {
            good(i)
        }
    });
    let mut cfg = config(
        &brokers,
        "svc",
        &["^contacts\\.(chat|phone)$".into()],
        "crisis.events",
        "contacts.dlq",
    );
    cfg.kafka.statistics_interval = crisis_pulse::config::Dur(Duration::from_millis(100));
    let running = service::start(
        &cfg,
        ServiceOptions {
            http_addr: Some("127.0.0.1:0".into()),
            windows: None,
            ..Default::default()
        },
    )
    .await
    .expect("start");
    let m = running.metrics.clone();
    let started = Instant::now();
    let lag_zero = |m: &Metrics| {
        let fams = m.registry.gather();
        let lag: Vec<i64> = fams
            .iter()
            .filter(|f| f.name() == "crisis_pulse_consumer_lag_messages")
            .flat_map(|f| {
                f.get_metric()
                    .iter()
                    .map(|s| s.get_gauge().value() as i64)
                    .collect::<Vec<_>>()
            })
            .collect();
        lag.len() == 4 && lag.iter().all(|&l| l == 0)
    };
    while started.elapsed() < Duration::from_secs(30) {
        let seen = m
            .events_by_kafka_topic
            .with_label_values(&["contacts.chat"])
            .get()
            + m.events_by_kafka_topic
                .with_label_values(&["contacts.phone"])
                .get();
        if seen == 65 && lag_zero(&m) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        m.events_by_kafka_topic
            .with_label_values(&["contacts.chat"])
            .get(),
        60
    );
    assert_eq!(
        m.events_by_kafka_topic
            .with_label_values(&["contacts.phone"])
            .get(),
        5
    );
    assert!(
        lag_zero(&m),
        "lag per assigned partition is zero once caught up"
    );
    assert_eq!(m.assigned_partitions.get(), 4);
    running
        .until(std::future::ready(()))
        .await
        .expect("shutdown");
    assert_eq!(
        m.dead_letters.with_label_values(&["malformed_json"]).get(),
        3
    );
    assert_eq!(
        m.decode_errors.with_label_values(&["malformed_json"]).get(),
        3
    );
    assert_eq!(m.events_by_channel.with_label_values(&["chat"]).get(), 60);
    assert_eq!(m.events_by_channel.with_label_values(&["phone"]).get(), 2);
    assert!(m.rebalances.with_label_values(&["assign"]).get() >= 1);
}
