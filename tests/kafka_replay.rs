//! Replaying two days of history (hundreds of thousands of events over four partitions,
//! event-time ordered within each partition) through Kafka gives exactly the windows
//! `crisis-pulse replay` computes from the same events in a file. The broker serves the
//! partitions in whatever order it likes; the per-partition watermark makes that not matter.

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;
use crisis_pulse::app::{self, Outputs, ReplayOptions};
use crisis_pulse::source::file::Mapping;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_replay_matches_file_replay() {
    let brokers = require_broker();
    let prefix = unique("replay");
    let topic = format!("{prefix}.history");
    let (crisis_topic, dlq_topic) = (format!("{prefix}-crisis"), format!("{prefix}-dlq"));
    // 4 partitions; more under CRISIS_PULSE_TEST_BROKERS=mock, whose partitions keep only 5 MB.
    let partitions: i32 = if on_mock_cluster() { 16 } else { 4 };
    create_topics(&brokers, &[&topic], partitions).await;
    create_topics(&brokers, &[&crisis_topic, &dlq_topic], 1).await;
    let cfg = config(
        &brokers,
        &unique("g"),
        std::slice::from_ref(&topic),
        &crisis_topic,
        &dlq_topic,
    );

    let sim = sim(2, 12.0, 11, true);
    assert!(sim.len() > 200_000, "{} events", sim.len());
    let planned: Vec<Planned> = sim
        .iter()
        .enumerate()
        .map(|(i, r)| Planned {
            topic: topic.clone(),
            partition: (i % partitions as usize) as i32,
            payload: r.payload.clone(),
            timestamp_ms: r.time_ms,
        })
        .collect();
    let data_end = sim.iter().map(|r| r.time_ms).max().expect("records");

    // The same events in a file, replayed by `crisis-pulse replay`'s driver.
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("history.ndjson");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&input).expect("file"));
        for r in &sim {
            // A record holding a newline would split; the simulator's never do.
            f.write_all(&r.payload).expect("write");
            f.write_all(b"\n").expect("write");
        }
    }
    let mut crises_out = Vec::new();
    let opts = ReplayOptions {
        input,
        format: None,
        mapping: Mapping::default(),
        default_channel: None,
    };
    let (summary, _) = app::replay(
        &opts,
        &cfg,
        &mut Outputs {
            crises: &mut crises_out,
            windows: None,
        },
    )
    .expect("replay");
    let oracle = oracle(&cfg, &planned);
    assert_eq!(
        summary.windows,
        oracle
            .windows
            .iter()
            .filter(|w| w.channel.is_none())
            .count() as u64
    );
    assert_eq!(
        summary.crises, oracle.crises,
        "the oracle is the file replay"
    );
    assert_eq!(summary.late, 0);

    produce(&brokers, &planned);

    let (running, windows) =
        start_collecting(&cfg, data_end - 15 * MINUTE, Duration::from_secs(600)).await;
    let metrics = running.metrics.clone();
    running
        .until(std::future::ready(()))
        .await
        .expect("shutdown");
    assert_eq!(metrics.late_events.get(), 0, "no event was late");

    let mine = by_key(&windows);
    let theirs = by_key(&oracle.windows);
    eprintln!(
        "service windows {}..{} ({}), replay windows {}..{} ({})",
        mine.keys().next().map_or(0, |k| k.0),
        mine.keys().last().map_or(0, |k| k.0),
        mine.len(),
        theirs.keys().next().map_or(0, |k| k.0),
        theirs.keys().last().map_or(0, |k| k.0),
        theirs.len()
    );
    let cutoff = data_end - 15 * MINUTE;
    let mut compared = 0;
    for (k, w) in theirs {
        if k.0 < cutoff {
            assert_eq!(mine.get(&k), Some(&w), "window {k:?}");
            compared += 1;
        }
    }
    // Two days of 5-minute windows, 7 topics, each with 6 channel rows.
    assert!(compared > 570 * 7 * 7, "{compared} windows compared");
}
