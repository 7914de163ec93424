//! Fault tests of the durable service (`run --state-dir`), with the real binary as a child
//! process: `kill -9` at random points under a backlog of simulated traffic, several times in
//! a row, then a final run to the end of the stream. Afterwards the closed windows, crisis
//! events and dead letters must equal those of an uninterrupted run on the same input, and
//! the final checkpoint must have counted every event exactly once.
//!
//! - at least once, against the real broker (tansu in CI): duplicates are allowed in the
//!   output topics but must be identical under their key; after dedup, equal to the
//!   uninterrupted run;
//! - exactly once, against librdkafka's mock cluster (tansu 0.6.0 answers EndTxn with "not
//!   supported"): no duplicate at all for `read_committed` readers.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use crisis_pulse::event::CrisisEvent;
use crisis_pulse::sink::kafka::WindowRecord;
use crisis_pulse::state::{self, Checkpoint};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rdkafka::Message;
use rdkafka::message::OwnedMessage;

const KILLS: usize = 4;

/// One deployment of the service: its configuration, state directory and output topics.
struct Deployment {
    name: &'static str,
    dir: tempfile::TempDir,
    config: PathBuf,
    crisis: String,
    dlq: String,
    windows: String,
}

impl Deployment {
    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn log(&self, run: usize) -> PathBuf {
        self.dir.path().join(format!("run-{run}.log"))
    }

    fn spawn(&self, run: usize) -> Child {
        let log = std::fs::File::create(self.log(run)).expect("log file");
        Command::new(env!("CARGO_BIN_EXE_crisis-pulse"))
            .args(["run", "--http-addr", "127.0.0.1:0", "--config"])
            .arg(&self.config)
            .arg("--state-dir")
            .arg(self.state())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start crisis-pulse run")
    }

    /// The log of a run, for failure messages.
    fn tail(&self, run: usize) -> String {
        let text = std::fs::read_to_string(self.log(run)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

type Mock = rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>;

/// Creates topics on the real broker (admin API) or on the mock cluster.
async fn create(brokers: &str, mock: Option<&Mock>, topics: &[&str], partitions: i32) {
    match mock {
        Some(m) => {
            for t in topics {
                m.create_topic(t, partitions, 1).expect("mock topic");
            }
        }
        None => create_topics(brokers, topics, partitions).await,
    }
}

async fn deployment(
    name: &'static str,
    brokers: &str,
    mock: Option<&Mock>,
    inputs: &[String],
    delivery: &str,
) -> Deployment {
    let prefix = unique(name);
    let d = Deployment {
        name,
        dir: tempfile::tempdir().expect("tempdir"),
        config: PathBuf::new(),
        crisis: format!("{prefix}-crisis"),
        dlq: format!("{prefix}-dlq"),
        windows: format!("{prefix}-windows"),
    };
    create(brokers, mock, &[&d.crisis, &d.dlq, &d.windows], 1).await;
    let topics = inputs
        .iter()
        .map(|t| format!("{t:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let text = crisis_pulse::app::DEMO_CONFIG.replacen(
        "[window]\n",
        "[window]\nidle_timeout = \"2s\"\n",
        1,
    ) + &format!(
        r#"
[kafka]
brokers = "{brokers}"
group_id = "{group}"
topics = [{topics}]
crisis_topic = "{crisis}"
dlq_topic = "{dlq}"
windows_topic = "{windows}"
commit_interval = "200ms"
statistics_interval = "500ms"
drain_timeout = "10s"
delivery = "{delivery}"

[state]
checkpoint_interval = "500ms"
"#,
        group = unique("g"),
        crisis = d.crisis,
        dlq = d.dlq,
        windows = d.windows,
    );
    let config = d.dir.path().join("crisis-pulse.toml");
    std::fs::write(&config, text).expect("config");
    Deployment { config, ..d }
}

/// The newest checkpoint in `dir` and its sequence number.
fn newest(dir: &Path) -> Option<(u64, Checkpoint)> {
    let (seq, path) = state::list(dir).ok()?.pop()?;
    let bytes = std::fs::read(&path).ok()?;
    Some((seq, state::decode(&path, &bytes).ok()?))
}

fn consumed(cp: &Checkpoint) -> i64 {
    cp.positions.values().sum()
}

fn wait_for(what: &str, d: &Deployment, run: usize, child: &mut Child, timeout: Duration, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{}: run {run} exited ({status}) while waiting for {what}:\n{}", d.name, d.tail(run));
        }
        assert!(
            started.elapsed() < timeout,
            "{}: timed out waiting for {what}:\n{}",
            d.name,
            d.tail(run)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `d` over `total` input records, killing it with SIGKILL `kills` times at random
/// points; the last run reads to the end and stops with SIGTERM. Returns the final
/// checkpoint and how far (records consumed per the newest checkpoint) each kill came.
fn run_with_kills(d: &Deployment, total: i64, kills: usize, rng: &mut SmallRng) -> (Checkpoint, Vec<i64>) {
    let mut at_kill = Vec::new();
    for run in 0..kills {
        let mut child = d.spawn(run);
        let seq0 = newest(&d.state()).map_or(0, |(s, _)| s);
        // Progress first (two new checkpoints), then a random moment.
        wait_for("progress", d, run, &mut child, Duration::from_secs(180), || {
            newest(&d.state()).is_some_and(|(s, _)| s >= seq0 + 2)
        });
        std::thread::sleep(Duration::from_millis(rng.random_range(0..1500)));
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        at_kill.push(newest(&d.state()).map_or(0, |(_, cp)| consumed(&cp)));
    }
    let run = kills;
    let mut child = d.spawn(run);
    wait_for("the end of the input", d, run, &mut child, Duration::from_secs(300), || {
        newest(&d.state()).is_some_and(|(_, cp)| consumed(&cp) >= total)
    });
    // Let the idle timeout close the last windows and a checkpoint record it.
    std::thread::sleep(Duration::from_secs(4));
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{}: no exit after SIGTERM:\n{}", d.name, d.tail(run));
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{}: exit {exit} after SIGTERM:\n{}", d.name, d.tail(run));
    let (_, cp) = newest(&d.state()).expect("final checkpoint");
    assert_eq!(consumed(&cp), total, "{}: the final checkpoint covers every record", d.name);
    (cp, at_kill)
}

/// A topic's messages grouped by key; every duplicate must be byte-identical in `what`
/// matters. Returns (distinct, total).
fn group<T: Clone + PartialEq + std::fmt::Debug>(
    msgs: &[OwnedMessage],
    parse: impl Fn(&OwnedMessage) -> (String, T),
) -> (BTreeMap<String, T>, usize) {
    let mut out: BTreeMap<String, T> = BTreeMap::new();
    for m in msgs {
        let (k, v) = parse(m);
        if let Some(prev) = out.get(&k) {
            assert_eq!(prev, &v, "two different records under one key {k}");
        }
        out.insert(k, v);
    }
    (out, msgs.len())
}

fn windows_of(msgs: &[OwnedMessage]) -> (BTreeMap<String, WindowRecord>, usize) {
    group(msgs, |m| {
        let w: WindowRecord = serde_json::from_slice(m.payload().expect("body")).expect("window JSON");
        (format!("{} {} {}", w.window_start, w.topic, w.channel), w)
    })
}

/// What a crisis event says, without the arrival-order-dependent samples.
fn crises_of(msgs: &[OwnedMessage]) -> (BTreeMap<String, CrisisEvent>, usize) {
    group(msgs, |m| {
        let mut c: CrisisEvent = serde_json::from_slice(m.payload().expect("body")).expect("crisis JSON");
        c.sample_event_ids.clear();
        (c.event_id.clone(), c)
    })
}

fn dead_letters_of(msgs: &[OwnedMessage]) -> (BTreeMap<String, Vec<u8>>, usize) {
    group(msgs, |m| {
        let k = format!(
            "{}/{}/{}",
            header(m, "dlq_source_topic").unwrap_or_default(),
            header(m, "dlq_source_partition").unwrap_or_default(),
            header(m, "dlq_source_offset").unwrap_or_default()
        );
        (k, m.payload().unwrap_or(&[]).to_vec())
    })
}

struct Outputs {
    windows: (BTreeMap<String, WindowRecord>, usize),
    crises: (BTreeMap<String, CrisisEvent>, usize),
    dead: (BTreeMap<String, Vec<u8>>, usize),
}

fn outputs(brokers: &str, d: &Deployment) -> Outputs {
    let read = |t: &str| read_topic(brokers, t, 1, Duration::from_secs(3), Duration::from_secs(60));
    Outputs {
        windows: windows_of(&read(&d.windows)),
        crises: crises_of(&read(&d.crisis)),
        dead: dead_letters_of(&read(&d.dlq)),
    }
}

/// Plans `days` of simulated traffic over two channel topics of two partitions each.
async fn input(
    brokers: &str,
    mock: Option<&Mock>,
    days: i64,
    scale: f64,
) -> (Vec<String>, Vec<Planned>, i64) {
    let prefix = unique("faults");
    let topics = vec![format!("{prefix}.chat"), format!("{prefix}.email")];
    for t in &topics {
        create(brokers, mock, &[t], 2).await;
    }
    let sim = sim(days, scale, 11, true);
    let end = sim.iter().map(|r| r.time_ms).max().expect("records");
    let planned: Vec<Planned> = sim
        .iter()
        .enumerate()
        .map(|(i, r)| Planned {
            topic: topics[i % 2].clone(),
            partition: ((i / 2) % 2) as i32,
            payload: r.payload.clone(),
            timestamp_ms: r.time_ms,
        })
        .collect();
    produce(brokers, &planned);
    (topics, planned, end)
}

/// Everything both runs closed before the end of the data must be equal; the faulty run's
/// counters must equal the uninterrupted run's and the offline pipeline's.
fn compare(
    planned: &[Planned],
    end: i64,
    (clean_cp, clean): (&Checkpoint, &Outputs),
    (faulty_cp, faulty): (&Checkpoint, &Outputs),
) {
    let (c, f) = (&clean_cp.state.stats, &faulty_cp.state.stats);
    assert_eq!(f.events_by_channel, c.events_by_channel, "events counted per channel");
    assert_eq!(f.complaints_by_topic, c.complaints_by_topic, "complaints per topic");
    assert_eq!(f.late_events, c.late_events, "late events");
    let counted: u64 = f.events_by_channel.iter().sum::<u64>();
    assert_eq!(
        counted as usize + clean.dead.0.len(),
        planned.len(),
        "every record is counted or dead-lettered, once"
    );
    assert_eq!(faulty.dead.0, clean.dead.0, "dead letters (deduplicated)");

    let cutoff = crisis_pulse::event::format_rfc3339(end - 15 * MINUTE);
    let before = |m: &BTreeMap<String, WindowRecord>| -> BTreeMap<String, WindowRecord> {
        m.iter()
            .filter(|(_, w)| w.window_start < cutoff)
            .map(|(k, w)| (k.clone(), w.clone()))
            .collect()
    };
    let (cw, fw) = (before(&clean.windows.0), before(&faulty.windows.0));
    assert!(cw.len() > 1000, "{} windows compared", cw.len());
    assert_eq!(fw.len(), cw.len(), "closed windows before the end of the data");
    for (k, w) in &cw {
        assert_eq!(fw.get(k), Some(w), "window {k}");
    }
    let crises_before = |m: &BTreeMap<String, CrisisEvent>| -> BTreeMap<String, CrisisEvent> {
        m.iter()
            .filter(|(_, c)| c.window_start < cutoff)
            .map(|(k, c)| (k.clone(), c.clone()))
            .collect()
    };
    let (cc, fc) = (crises_before(&clean.crises.0), crises_before(&faulty.crises.0));
    assert!(!cc.is_empty(), "the injected crisis is found");
    assert_eq!(fc, cc, "crisis events (deduplicated by id)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_nothing_at_least_once() {
    let brokers = require_broker();
    let (topics, planned, end) = input(&brokers, None, 2, 3.0).await;
    let total = planned.len() as i64;
    let mut rng = SmallRng::seed_from_u64(
        std::env::var("CRISIS_PULSE_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(9),
    );

    let clean = deployment("clean", &brokers, None, &topics, "at-least-once").await;
    let (clean_cp, _) = run_with_kills(&clean, total, 0, &mut rng);
    let faulty = deployment("faulty", &brokers, None, &topics, "at-least-once").await;
    let (faulty_cp, at_kill) = run_with_kills(&faulty, total, KILLS, &mut rng);
    assert!(
        at_kill.iter().filter(|&&n| n < total).count() >= 2,
        "at least two kills landed mid-stream: {at_kill:?} of {total}"
    );

    let (co, fo) = (outputs(&brokers, &clean), outputs(&brokers, &faulty));
    compare(&planned, end, (&clean_cp, &co), (&faulty_cp, &fo));
    eprintln!(
        "at-least-once: {total} records, kills after {at_kill:?}; duplicates republished: windows {}, crises {}, dead letters {}",
        fo.windows.1 - fo.windows.0.len(),
        fo.crises.1 - fo.crises.0.len(),
        fo.dead.1 - fo.dead.0.len()
    );
}

/// The same faults in the exactly-once mode, on librdkafka's mock cluster (it implements
/// transactions; tansu 0.6.0 does not). `read_committed` readers see no duplicate at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_repeats_nothing_exactly_once() {
    let mock = Mock::new(1).expect("mock cluster");
    let brokers = mock.bootstrap_servers();
    let (topics, planned, end) = input(&brokers, Some(&mock), 2, 3.0).await;
    let total = planned.len() as i64;
    let mut rng = SmallRng::seed_from_u64(
        std::env::var("CRISIS_PULSE_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(9),
    );

    let clean = deployment("clean-eos", &brokers, Some(&mock), &topics, "exactly-once").await;
    let (clean_cp, _) = run_with_kills(&clean, total, 0, &mut rng);
    let faulty = deployment("faulty-eos", &brokers, Some(&mock), &topics, "exactly-once").await;
    let (faulty_cp, at_kill) = run_with_kills(&faulty, total, KILLS, &mut rng);
    assert!(
        at_kill.iter().filter(|&&n| n < total).count() >= 2,
        "at least two kills landed mid-stream: {at_kill:?} of {total}"
    );

    let (co, fo) = (outputs(&brokers, &clean), outputs(&brokers, &faulty));
    compare(&planned, end, (&clean_cp, &co), (&faulty_cp, &fo));
    for (what, distinct, total) in [
        ("windows", fo.windows.0.len(), fo.windows.1),
        ("crises", fo.crises.0.len(), fo.crises.1),
        ("dead letters", fo.dead.0.len(), fo.dead.1),
    ] {
        assert_eq!(total, distinct, "exactly once: no duplicate {what} after {KILLS} kills");
    }
    eprintln!("exactly-once: {total} records, kills after {at_kill:?}; no duplicates");
}
