//! Shared helpers for the Kafka tests: the broker (CRISIS_PULSE_TEST_BROKERS, default
//! 127.0.0.1:9092; start one with `scripts/broker.sh start`), unique names, a test
//! configuration, producing a stream and reading a topic back, and an offline oracle.
//!
//! Tests FAIL when the broker is absent: a missing broker is a broken test environment,
//! not a reason to pass.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crisis_pulse::app;
use crisis_pulse::config::{Config, Dur, KafkaConfig};
use crisis_pulse::event::{self, DecodeContext, DecodeReason};
use crisis_pulse::pipeline::{Output, Pipeline, WindowReport};
use crisis_pulse::simulate::Loader;
use crisis_pulse::source::sim::{SimConfig, SimRecord, Simulator};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

pub const DAY: i64 = 86_400_000;
pub const MINUTE: i64 = 60_000;

/// `CRISIS_PULSE_TEST_BROKERS=mock` runs against an in-process librdkafka mock cluster
/// instead (a development aid while no broker is at hand; it is not the real-broker run).
pub fn brokers() -> String {
    let b = std::env::var("CRISIS_PULSE_TEST_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    if b == "mock" {
        return mock().bootstrap_servers();
    }
    b
}

/// Whether the broker tests run on the in-process mock cluster (`CRISIS_PULSE_TEST_BROKERS=mock`).
pub fn on_mock_cluster() -> bool {
    std::env::var("CRISIS_PULSE_TEST_BROKERS").as_deref() == Ok("mock")
}

fn mock()
-> &'static rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    struct Shared(
        rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    );
    // The mock cluster is only used through librdkafka's thread-safe API.
    unsafe impl Sync for Shared {}
    unsafe impl Send for Shared {}
    static MOCK: std::sync::OnceLock<Shared> = std::sync::OnceLock::new();
    &MOCK
        .get_or_init(|| Shared(rdkafka::mocking::MockCluster::new(1).expect("mock cluster")))
        .0
}

/// Panics (fails the test) unless the broker answers a metadata request.
pub fn require_broker() -> String {
    let b = brokers();
    let k = KafkaConfig {
        brokers: b.clone(),
        ..KafkaConfig::default()
    };
    if let Err(e) = crisis_pulse::admin::wait_ready(&k, Duration::from_secs(10)) {
        panic!(
            "no Kafka broker at {b} ({e}); start one with `scripts/broker.sh start` or set CRISIS_PULSE_TEST_BROKERS"
        );
    }
    b
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{t}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn now_ms() -> i64 {
    crisis_pulse::clock::Clock::System.now_ms()
}

/// The demo taxonomy with `[kafka]` pointing at the test topics, short timers.
pub fn config(brokers: &str, group: &str, topics: &[String], crisis: &str, dlq: &str) -> Config {
    let mut cfg = Config::parse(app::DEMO_CONFIG, "demo.toml").expect("demo config");
    cfg.window.idle_timeout = Dur(Duration::from_secs(2));
    cfg.kafka = KafkaConfig {
        brokers: brokers.to_string(),
        group_id: group.to_string(),
        topics: topics.to_vec(),
        crisis_topic: crisis.to_string(),
        dlq_topic: dlq.to_string(),
        commit_interval: Dur(Duration::from_millis(200)),
        statistics_interval: Dur(Duration::from_millis(500)),
        drain_timeout: Dur(Duration::from_secs(10)),
        ..KafkaConfig::default()
    };
    // CRISIS_PULSE_TEST_RDKAFKA_DEBUG=cgrp,fetch: the service's log and librdkafka's debug
    // log on stderr (with --nocapture), for a post-mortem of an in-process Kafka test.
    if let Ok(contexts) = std::env::var("CRISIS_PULSE_TEST_RDKAFKA_DEBUG") {
        cfg.kafka.properties.insert("debug".into(), contexts);
        crisis_pulse::logging::init(crisis_pulse::logging::LogFormat::Text);
    }
    cfg
}

/// Simulated traffic ending `end_before_now` ago: `days` long, `scale` times the demo rate,
/// with the demo's malformed share, in event-time order apart from the simulator's disorder.
pub fn sim(days: i64, scale: f64, seed: u64, disorder: bool) -> Vec<SimRecord> {
    let mut c = SimConfig::demo();
    c.seed = seed;
    c.duration_ms = days * DAY;
    c.start_ms = (now_ms() - days * DAY - 10 * MINUTE).div_euclid(MINUTE) * MINUTE;
    c.rate_scale = scale;
    // One strong billing wave 30 h in, after the baseline has warmed up.
    c.crises = vec![crisis_pulse::source::sim::InjectedCrisis {
        topic: "billing",
        start_ms: 30 * 3_600_000,
        ramp_ms: 0,
        duration_ms: 60 * MINUTE,
        extra_per_minute: 12.0,
        channels: vec![],
    }];
    if !disorder {
        c.disorder_share = 0.0;
    }
    Simulator::new(c).collect()
}

/// A record on its way to a topic partition.
#[derive(Clone)]
pub struct Planned {
    pub topic: String,
    pub partition: i32,
    pub payload: Vec<u8>,
    pub timestamp_ms: i64,
}

/// Produces every record, in order, and waits for delivery.
pub fn produce(brokers: &str, records: &[Planned]) {
    produce_batched(brokers, records, true)
}

/// Produces every record in a batch of its own. tansu 0.6.0 answers a fetch from an offset
/// inside a stored batch with the *next* batch, silently skipping the rest of the batch
/// (measured: seek to 777 in a batch 1..4564 returns 4565 first). A consumer resuming from a
/// committed offset, as after every restart, loses those records; Apache Kafka returns the
/// whole batch and the client drops the records before the offset. Restart tests on tansu
/// therefore write their input one record per batch, so that every offset is a batch start.
pub fn produce_unbatched(brokers: &str, records: &[Planned]) {
    produce_batched(brokers, records, false)
}

fn produce_batched(brokers: &str, records: &[Planned], batched: bool) {
    let mut k = KafkaConfig {
        brokers: brokers.to_string(),
        ..KafkaConfig::default()
    };
    if !batched {
        k.properties.insert("batch.num.messages".into(), "1".into());
        k.properties.insert("linger.ms".into(), "0".into());
    }
    let loader = Loader::new(&k).expect("producer");
    for (i, r) in records.iter().enumerate() {
        loader
            .send(
                &r.topic,
                Some(r.partition),
                &(i as u64).to_be_bytes(),
                &r.payload,
                Some(r.timestamp_ms),
            )
            .expect("send");
    }
    let n = loader.finish(Duration::from_secs(120)).expect("delivery");
    assert!(
        n >= records.len() as u64,
        "delivered {n} of {}",
        records.len()
    );
}

pub async fn create_topics(brokers: &str, topics: &[&str], partitions: i32) {
    if std::env::var("CRISIS_PULSE_TEST_BROKERS").as_deref() == Ok("mock") {
        for t in topics {
            mock().create_topic(t, partitions, 1).expect("mock topic");
        }
        return;
    }
    let k = KafkaConfig {
        brokers: brokers.to_string(),
        ..KafkaConfig::default()
    };
    crisis_pulse::admin::ensure_topics(&k, topics, partitions)
        .await
        .expect("create topics");
}

/// Reads a topic from the beginning until `quiet` passes without a new message (after at
/// least `min` messages, or `max_wait` overall).
pub fn read_topic(
    brokers: &str,
    topic: &str,
    min: usize,
    quiet: Duration,
    max_wait: Duration,
) -> Vec<OwnedMessage> {
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("reader");
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for t in md.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                .expect("tpl");
        }
    }
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let started = Instant::now();
    let mut last = Instant::now();
    while started.elapsed() < max_wait {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                out.push(m.detach());
                last = Instant::now();
            }
            Some(Err(_)) | None => {
                if out.len() >= min && last.elapsed() >= quiet {
                    break;
                }
            }
        }
    }
    out
}

/// The group's committed offsets of every partition of `topics` that has one, keyed as
/// checkpoints key positions (`topic/partition`).
pub fn committed_positions(brokers: &str, group: &str, topics: &[String]) -> BTreeMap<String, i64> {
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for t in topics {
        let md = c
            .fetch_metadata(Some(t), Duration::from_secs(10))
            .expect("metadata");
        for p in md.topics()[0].partitions() {
            tpl.add_partition(t, p.id());
        }
    }
    c.committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets")
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((
                crisis_pulse::service::checkpoint::key(e.topic(), e.partition()),
                o,
            )),
            _ => None,
        })
        .collect()
}

/// The header value of `key`, as text.
pub fn header(m: &OwnedMessage, key: &str) -> Option<String> {
    use rdkafka::message::Headers;
    let h = m.headers()?;
    h.iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The offline oracle: decode each planned record the way the service does and run the
/// pipeline in the given order, closing with `flush`.
pub struct Oracle {
    pub windows: Vec<WindowReport>,
    pub crises: Vec<event::CrisisEvent>,
    pub refused: Vec<(DecodeReason, Vec<u8>)>,
}

pub fn oracle(cfg: &Config, records: &[Planned]) -> Oracle {
    let mut p = Pipeline::new(cfg).expect("pipeline");
    let lateness = cfg.window.allowed_lateness.as_millis();
    let limits = *p.limits();
    let mut outs = Vec::new();
    let mut max_t = i64::MIN;
    let mut refused = Vec::new();
    let now = now_ms();
    for r in records {
        let ctx = DecodeContext {
            now_ms: now,
            fallback_time_ms: Some(r.timestamp_ms),
            channel_hint: cfg.kafka.channel_for_topic(&r.topic),
        };
        match event::decode(&r.payload, &limits, &ctx) {
            Ok(ev) => {
                let t = ev.event_time.0;
                p.ingest(&ev);
                if t > max_t {
                    max_t = t;
                    p.advance(max_t - lateness, &mut outs);
                }
            }
            Err(e) => refused.push((e.reason, r.payload.clone())),
        }
    }
    p.flush(&mut outs);
    let mut o = Oracle {
        windows: Vec::new(),
        crises: Vec::new(),
        refused,
    };
    for out in outs {
        match out {
            Output::Window(w) => o.windows.push(w),
            Output::Crisis(c) => o.crises.push(*c),
        }
    }
    o
}

/// Collects windows from a service's observer channel until one starting at or after
/// `until_start` arrives (or `timeout`).
pub fn collect_windows(
    rx: &std::sync::mpsc::Receiver<WindowReport>,
    until_start: i64,
    timeout: Duration,
) -> Vec<WindowReport> {
    let started = Instant::now();
    let mut out = Vec::new();
    while started.elapsed() < timeout {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(w) => {
                let done = w.start_ms >= until_start;
                out.push(w);
                if done {
                    // Drain what is already queued.
                    while let Ok(w) = rx.try_recv() {
                        out.push(w);
                    }
                    return out;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => break,
        }
    }
    out
}

/// Starts the service with a window observer and collects the windows it closes until one
/// starting at or after `until_start` arrives (or `timeout`). The service is still running:
/// the caller checks what it needs, then stops it.
pub async fn start_collecting(
    cfg: &Config,
    until_start: i64,
    timeout: Duration,
) -> (crisis_pulse::service::Running, Vec<WindowReport>) {
    let (tx, rx) = std::sync::mpsc::sync_channel(4096);
    let running = crisis_pulse::service::start(
        cfg,
        crisis_pulse::service::ServiceOptions {
            http_addr: Some("127.0.0.1:0".into()),
            windows: Some(tx),
            ..Default::default()
        },
    )
    .await
    .expect("service starts");
    let windows = tokio::task::spawn_blocking(move || collect_windows(&rx, until_start, timeout))
        .await
        .expect("collector");
    (running, windows)
}

/// Windows keyed by (start, topic, channel).
pub type WindowKey = (i64, u16, Option<&'static str>);

pub fn by_key(ws: &[WindowReport]) -> BTreeMap<WindowKey, WindowReport> {
    ws.iter()
        .map(|w| {
            (
                (w.start_ms, w.topic, w.channel.map(|c| c.as_str())),
                w.clone(),
            )
        })
        .collect()
}
