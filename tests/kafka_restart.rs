//! Restarts and rebalances against the real broker: stopping the service mid-stream and
//! starting it again loses no event (the windows both runs closed equal the offline
//! pipeline's) and republished crises are identical under their ids; two instances in one
//! group: when one stops, the other takes over its partitions and reads everything.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use crisis_pulse::config::Config;
use crisis_pulse::event::CrisisEvent;
use crisis_pulse::pipeline::WindowReport;
use crisis_pulse::service::{self, Running, ServiceOptions};
use rdkafka::Message;

/// Starts a service whose window observer is a rendezvous channel drained by a thread that,
/// once a window starting at or after `pause_at` arrives, sets `paused` and holds the service
/// (blocked on its next window) until `release` is set. Returns the service and the
/// collector (every window, until the service ends).
async fn paced(
    cfg: &Config,
    pause_at: i64,
    paused: Arc<AtomicBool>,
    release: Arc<AtomicBool>,
) -> (Running, std::thread::JoinHandle<Vec<WindowReport>>) {
    let (tx, rx) = std::sync::mpsc::sync_channel(0);
    let running = service::start(cfg, opts(Some(tx))).await.expect("service");
    let collector = std::thread::spawn(move || {
        let mut out = Vec::new();
        for w in rx {
            if w.start_ms >= pause_at && !paused.swap(true, Ordering::SeqCst) {
                while !release.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            out.push(w);
        }
        out
    });
    (running, collector)
}

fn opts(windows: Option<std::sync::mpsc::SyncSender<WindowReport>>) -> ServiceOptions {
    ServiceOptions {
        http_addr: Some("127.0.0.1:0".into()),
        windows,
        ..Default::default()
    }
}

async fn wait_until(what: &str, timeout: Duration, f: impl Fn() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn plan(topic: &str, sim: &[crisis_pulse::source::sim::SimRecord]) -> Vec<Planned> {
    sim.iter()
        .enumerate()
        .map(|(i, r)| Planned {
            topic: topic.to_string(),
            partition: (i % 4) as i32,
            payload: r.payload.clone(),
            timestamp_ms: r.time_ms,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_stream_loses_nothing() {
    let brokers = require_broker();
    let prefix = unique("restart");
    let topic = format!("{prefix}.chat");
    let (crisis_topic, dlq_topic) = (format!("{prefix}-crisis"), format!("{prefix}-dlq"));
    create_topics(&brokers, &[&topic], 4).await;
    create_topics(&brokers, &[&crisis_topic, &dlq_topic], 1).await;
    let cfg = config(
        &brokers,
        &unique("g"),
        std::slice::from_ref(&topic),
        &crisis_topic,
        &dlq_topic,
    );
    let sim = sim(2, 1.0, 5, true);
    let planned = plan(&topic, &sim);
    let start = sim[0].time_ms;
    let end = sim.iter().map(|r| r.time_ms).max().expect("records");
    let oracle = oracle(&cfg, &planned);
    // One record per batch: tansu skips the rest of a batch when a fetch starts inside it.
    produce_unbatched(&brokers, &planned);

    // First run: stopped in the middle of the stream (event time ~ 31 h in).
    let paused = Arc::new(AtomicBool::new(false));
    let release = Arc::new(AtomicBool::new(false));
    let (a, a_windows) = paced(
        &cfg,
        start + 31 * 3_600_000,
        paused.clone(),
        release.clone(),
    )
    .await;
    wait_until(
        "the first run to reach mid-stream",
        Duration::from_secs(300),
        || paused.load(Ordering::SeqCst),
    )
    .await;
    a.stop();
    release.store(true, Ordering::SeqCst);
    let a_summary = a
        .until(std::future::ready(()))
        .await
        .expect("first run stops cleanly");
    let a_windows = a_windows.join().expect("collector");
    assert!(
        a_summary.messages < planned.len() as u64,
        "stopped mid-stream"
    );

    // Second run, same group: resumes from the committed offsets.
    let (b, b_windows) = start_collecting(&cfg, end - 15 * MINUTE, Duration::from_secs(300)).await;
    b.until(std::future::ready(()))
        .await
        .expect("second run stops cleanly");

    // The window each run closed first is the one published: its counts must be the oracle's.
    let mut merged = by_key(&a_windows);
    for (k, w) in by_key(&b_windows) {
        merged.entry(k).or_insert(w);
    }
    let cutoff = end - 15 * MINUTE;
    let mut compared = 0;
    for (k, w) in by_key(&oracle.windows) {
        if k.0 >= cutoff {
            continue;
        }
        let got = merged
            .get(&k)
            .unwrap_or_else(|| panic!("window {k:?} never closed"));
        // The second run's detector starts cold; the counts are what must not change.
        assert_eq!(
            (got.observed, got.contacts),
            (w.observed, w.contacts),
            "window {k:?}"
        );
        compared += 1;
    }
    assert!(compared > 500);

    // Crises: the same id always carries the same event (safe to deduplicate by id), and
    // what the first run published is what the offline pipeline publishes.
    let msgs = read_topic(
        &brokers,
        &crisis_topic,
        0,
        Duration::from_secs(3),
        Duration::from_secs(30),
    );
    let mut by_id: BTreeMap<String, CrisisEvent> = BTreeMap::new();
    for m in &msgs {
        let ev: CrisisEvent = serde_json::from_slice(m.payload().expect("body")).expect("JSON");
        if let Some(prev) = by_id.get(&ev.event_id) {
            assert_eq!(
                prev, &ev,
                "two different crisis events share id {}",
                ev.event_id
            );
        }
        by_id.insert(ev.event_id.clone(), ev);
    }
    let oracle_ids: std::collections::BTreeSet<_> =
        oracle.crises.iter().map(|c| c.event_id.clone()).collect();
    let a_end = a_windows.iter().map(|w| w.end_ms).max().unwrap_or(start);
    for c in by_id.values() {
        let ws = crisis_pulse::event::parse_timestamp(&c.window_start).expect("time");
        if ws < a_end - 10 * MINUTE {
            assert!(
                oracle_ids.contains(&c.event_id),
                "unexpected crisis {}",
                c.event_id
            );
        }
    }
}

/// Against tansu 0.6.0 (the real broker). Ignored: it fails now and then, and the cause is
/// tansu's. Diagnosed with tansu's own coordinator log (`TANSU_LOG=tansu_broker::coordinator=debug`
/// for `scripts/broker.sh`) and librdkafka's (`CRISIS_PULSE_TEST_RDKAFKA_DEBUG=cgrp`): when the
/// instance that leaves is the group's leader, tansu's LeaveGroup removes the member but keeps
/// it as the leader of the forming group (`Forming { leader: Some(<departed member>) }`, the
/// survivor being the only member). The survivor's every JoinGroup answer names the departed
/// leader with no member list, its SyncGroup is answered "rebalance in progress", and it rejoins
/// forever (three minutes of that, 8 runs in a loop on a fresh broker: 7 passed, the leader
/// left in the eighth). The missed-heartbeat eviction that would clear the leader only looks at
/// current members. The same handover passes on librdkafka's mock cluster (the test below)
/// and in the two-process rebalance fault test, where the joining instance leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "tansu 0.6.0 bug, diagnosed: a departed leader stays the forming group's leader, so the survivor waits forever for its assignment (see the doc comment); the mock-cluster variant runs"]
async fn survivor_takes_over_partitions_of_a_stopped_instance() {
    let brokers = require_broker();
    survivor_takes_over(&brokers, None).await;
}

/// The same handover on librdkafka's mock cluster, whose group coordinator hands a departed
/// leader's role on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survivor_takes_over_partitions_of_a_stopped_instance_on_the_mock_cluster() {
    let mock = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
    let brokers = mock.bootstrap_servers();
    survivor_takes_over(&brokers, Some(&mock)).await;
}

async fn survivor_takes_over(
    brokers: &str,
    mock: Option<
        &rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    >,
) {
    let brokers = brokers.to_string();
    let prefix = unique("group");
    let topic = format!("{prefix}.email");
    let (crisis_topic, dlq_topic) = (format!("{prefix}-crisis"), format!("{prefix}-dlq"));
    match mock {
        Some(m) => {
            m.create_topic(&topic, 4, 1).expect("topic");
            for t in [&crisis_topic, &dlq_topic] {
                m.create_topic(t, 1, 1).expect("topic");
            }
        }
        None => {
            create_topics(&brokers, &[&topic], 4).await;
            create_topics(&brokers, &[&crisis_topic, &dlq_topic], 1).await;
        }
    }
    let group = unique("g");
    let cfg = config(
        &brokers,
        &group,
        std::slice::from_ref(&topic),
        &crisis_topic,
        &dlq_topic,
    );
    let sim = sim(1, 1.0, 3, true);
    let planned = plan(&topic, &sim);
    let mut per_partition = [0i64; 4];
    for p in &planned {
        per_partition[p.partition as usize] += 1;
    }
    let half = planned.len() / 2;
    produce(&brokers, &planned[..half]);

    let a = service::start(&cfg, opts(None)).await.expect("service a");
    let b = service::start(&cfg, opts(None)).await.expect("service b");
    let (am, bm) = (a.metrics.clone(), b.metrics.clone());
    wait_until("the partitions to split", Duration::from_secs(180), || {
        let (x, y) = (am.assigned_partitions.get(), bm.assigned_partitions.get());
        x > 0 && y > 0 && x + y == 4
    })
    .await;
    let a_summary = a
        .until(std::future::ready(()))
        .await
        .expect("a stops cleanly");

    // B takes over all four partitions and reads the rest, produced after A left.
    wait_until("b to take over", Duration::from_secs(180), || {
        bm.assigned_partitions.get() == 4
    })
    .await;
    produce(&brokers, &planned[half..]);
    let total = planned.len() as u64;
    let a_read = a_summary.messages;
    wait_until("b to read the rest", Duration::from_secs(300), || {
        bm.events_by_kafka_topic.with_label_values(&[&topic]).get() + a_read >= total
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await; // idle timeout: the last windows close
    let b_summary = b
        .until(std::future::ready(()))
        .await
        .expect("b stops cleanly");
    assert!(bm.rebalances.with_label_values(&["assign"]).get() >= 2);
    assert!(a_summary.messages + b_summary.messages >= total);

    // The group's committed offsets reached the end of every partition.
    let committed = committed_positions(&brokers, &group, std::slice::from_ref(&topic));
    for (p, &end) in per_partition.iter().enumerate() {
        let key = service::checkpoint::key(&topic, p as i32);
        assert_eq!(committed.get(&key), Some(&end), "partition {p}");
    }
}
