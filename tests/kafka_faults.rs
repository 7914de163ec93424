#![allow(clippy::await_holding_lock)] // `serial()`: one fault test at a time, across runtimes

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

use std::collections::BTreeMap;
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

/// The fault deployments' `session.timeout.ms` on the suite's broker: a killed instance's
/// partitions go to its successor after this long, not after librdkafka's default 45 s.
const SESSION_TIMEOUT: Duration = Duration::from_secs(6);

/// The fault tests run one at a time: each drives two service processes hard, and
/// several at once on a 2-core machine would test the machine rather than the service.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// One deployment of the service: its configuration, state directory and output topics.
struct Deployment {
    name: String,
    dir: tempfile::TempDir,
    config: PathBuf,
    crisis: String,
    dlq: String,
    windows: String,
    group: String,
    brokers: String,
    /// `kafka.mode = "group"`: the state is in the group's state topic, read by `tail`.
    group_mode: bool,
    tail: std::cell::RefCell<Option<StateTail>>,
}

/// Follows a group's state topic (group mode) and decodes its newest complete checkpoint.
struct StateTail {
    consumer: rdkafka::consumer::BaseConsumer,
    topic: String,
    latest: BTreeMap<String, Vec<u8>>,
    newest: Option<(u64, Checkpoint)>,
}

impl StateTail {
    fn new(brokers: &str, topic: &str) -> Self {
        use rdkafka::consumer::Consumer;
        let consumer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", unique("state-tail"))
            .set("enable.auto.commit", "false")
            .create()
            .expect("state reader");
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
            .expect("tpl");
        consumer.assign(&tpl).expect("assign");
        StateTail {
            consumer,
            topic: topic.to_string(),
            latest: BTreeMap::new(),
            newest: None,
        }
    }

    fn poll(&mut self) -> Option<(u64, Checkpoint)> {
        let mut changed = false;
        while let Some(r) = self.consumer.poll(Duration::from_millis(10)) {
            let Ok(m) = r else { break };
            if let (Some(k), Some(v)) = (m.key(), m.payload()) {
                self.latest
                    .insert(String::from_utf8_lossy(k).into_owned(), v.to_vec());
                changed = true;
            }
        }
        if changed {
            let stored = crisis_pulse::service::group::assemble(&self.latest);
            if let Ok(Some((cp, _, seq))) =
                crisis_pulse::service::group::newest(stored, &self.topic)
            {
                self.newest = Some((seq, cp));
            }
        }
        self.newest.clone()
    }
}

impl Deployment {
    /// The newest checkpoint and its sequence number: in the state directory, or in the
    /// group's state topic.
    fn newest(&self) -> Option<(u64, Checkpoint)> {
        if !self.group_mode {
            return newest(&self.state());
        }
        let mut tail = self.tail.borrow_mut();
        tail.get_or_insert_with(|| StateTail::new(&self.brokers, &format!("{}.state", self.group)))
            .poll()
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn log(&self, run: usize) -> PathBuf {
        self.dir.path().join(format!("run-{run}.log"))
    }

    fn spawn(&self, run: usize) -> Child {
        self.spawn_with_state(run, &self.state())
    }

    /// A run with its own state directory (a second instance of the same deployment).
    fn spawn_with_state(&self, run: usize, state: &Path) -> Child {
        let log = std::fs::File::create(self.log(run)).expect("log file");
        Command::new(env!("CARGO_BIN_EXE_crisis-pulse"))
            .args(["run", "--http-addr", "127.0.0.1:0", "--config"])
            .arg(&self.config)
            .arg("--state-dir")
            .arg(state)
            .env(
                "RUST_LOG",
                if std::env::var_os("CRISIS_PULSE_FAULT_RDKAFKA_DEBUG").is_some() {
                    "info,librdkafka=debug"
                } else {
                    "info"
                },
            )
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
    name: String,
    brokers: &str,
    mock: Option<&Mock>,
    inputs: &[String],
    (delivery, mode): (&str, &str),
) -> Deployment {
    let prefix = unique(&name);
    let mut dir = tempfile::tempdir().expect("tempdir");
    // CRISIS_PULSE_FAULT_KEEP=1 keeps each deployment's logs and checkpoints for a post-mortem.
    if std::env::var_os("CRISIS_PULSE_FAULT_KEEP").is_some() {
        dir.disable_cleanup(true);
        eprintln!("{name}: {}", dir.path().display());
    }
    let d = Deployment {
        name: name.clone(),
        dir,
        config: PathBuf::new(),
        crisis: format!("{prefix}-crisis"),
        dlq: format!("{prefix}-dlq"),
        windows: format!("{prefix}-windows"),
        group: unique("g"),
        brokers: brokers.to_string(),
        group_mode: mode == "group",
        tail: std::cell::RefCell::new(None),
    };
    create(brokers, mock, &[&d.crisis, &d.dlq], 1).await;
    // Keyed by topic: spread over partitions (the mock cluster keeps only the newest 5 MB of a
    // partition, and a run publishes about that many bytes of windows).
    create(brokers, mock, &[&d.windows], 8).await;
    let topics = inputs
        .iter()
        .map(|t| format!("{t:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    // A partition that delivers nothing for `idle_timeout` stops holding the watermark back.
    // In group mode the hold markers of a lagging source partition travel through Kafka to the
    // detector, and under load they have arrived more than 2 s apart: the watermark passed the
    // partition's events and they were counted late (once, with two test processes on one
    // tansu: events per channel equal, complaints per topic 13 % low). 8 s there.
    let idle = if mode == "group" { "8s" } else { "2s" };
    let mut text = crisis_pulse::app::DEMO_CONFIG.replacen(
        "[window]\n",
        &format!("[window]\nidle_timeout = \"{idle}\"\n"),
        1,
    );
    if name.contains("brk") || (on_mock_cluster() && name.ends_with("-kill")) {
        // 30-minute windows: six times fewer window records to read back from the SQLite-backed
        // tansu, which serves fetches at a few hundred records a second (28,000 five-minute
        // windows took over eight minutes to read; a 60 s read found none). The kill test on
        // the shared mock cluster (`CRISIS_PULSE_TEST_BROKERS=mock`), which keeps only a
        // partition's newest 5 MB: one topic's five-minute windows over the two days are about
        // that much, and once a kill made the service publish a few thousand of them again,
        // the mock dropped that topic's first hours (the windows are keyed by topic, so more
        // partitions do not help). Not the tests on their own mock cluster: their faults
        // repeat less, and the refused-output test's crisis needs five-minute windows.
        text = text.replacen("size = \"5m\"", "size = \"30m\"", 1);
    }
    let text = text
        + &format!(
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
mode = "{mode}"
{properties}

[state]
checkpoint_interval = "500ms"
"#,
            group = d.group,
            // A killed instance's partitions go to its successor after 6 s, not after 45 s.
            // (Not with the test's own SQLite-backed broker, which answers heartbeats too slowly
            // under load for so short a session.)
            properties = {
                let mut props = Vec::new();
                if !name.contains("brk") {
                    props.push(format!(
                        r#""session.timeout.ms" = "{}", "heartbeat.interval.ms" = "500""#,
                        SESSION_TIMEOUT.as_millis()
                    ));
                } else {
                    // Static membership (KIP-345), as a stateful deployment should use it: a
                    // restarted instance rejoins as itself. Needed on tansu 0.6.0, whose group
                    // coordinator, once a member that could not leave (SIGTERM while the broker was
                    // down) is evicted for missing heartbeats, gives its successor an empty
                    // assignment and never rebalances again (measured; see docs/kafka.md).
                    props.push(format!(r#""group.instance.id" = "{name}""#));
                }
                // CRISIS_PULSE_FAULT_RDKAFKA_DEBUG=cgrp,fetch: librdkafka's own debug log in each
                // run's log file, for a post-mortem.
                if let Ok(contexts) = std::env::var("CRISIS_PULSE_FAULT_RDKAFKA_DEBUG") {
                    props.push(format!(r#""debug" = "{contexts}""#));
                }
                if props.is_empty() {
                    String::new()
                } else {
                    format!("properties = {{ {} }}", props.join(", "))
                }
            },
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

/// Records consumed per a checkpoint: its source positions (in the group mode, those of the
/// classified records counted, refused ones included).
fn consumed(cp: &Checkpoint) -> i64 {
    if cp.forwarded.is_empty() {
        cp.positions.values().sum()
    } else {
        cp.forwarded.values().sum()
    }
}

fn wait_for(
    what: &str,
    d: &Deployment,
    run: usize,
    child: &mut Child,
    timeout: Duration,
    done: impl Fn() -> bool,
) {
    let started = Instant::now();
    while !done() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{}: run {run} exited ({status}) while waiting for {what}:\n{}",
                d.name,
                d.tail(run)
            );
        }
        if started.elapsed() >= timeout {
            // A failed test leaves no service running behind it.
            let _ = child.kill();
            let _ = child.wait();
            panic!("{}: timed out waiting for {what}:\n{}", d.name, d.tail(run));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `d` over `total` input records with `faults` faults injected at random moments
/// (each once a checkpoint covers more input than at the previous fault): `fault(child, i)` injects one and returns
/// whether it killed the service (which is then started again). The last run reads to the end
/// and stops with SIGTERM. Returns the final checkpoint and how far (records consumed per the
/// newest checkpoint) the service had come at each fault.
fn run_with_faults(
    d: &Deployment,
    total: i64,
    end: i64,
    faults: usize,
    rng: &mut SmallRng,
    started: impl FnOnce(),
    mut fault: impl FnMut(&mut Child, usize) -> bool,
) -> (Checkpoint, Vec<i64>) {
    let mut at_fault = Vec::new();
    let mut run = 0;
    // Every wait below asks for a checkpoint written by the current run: one left by an
    // earlier run (which may already cover the whole input) proves nothing about this one.
    let seq_now = || d.newest().map_or(0, |(seq, _)| seq);
    let mut floor = seq_now();
    let mut child = d.spawn(run);
    started();
    for i in 0..faults {
        // Progress first: a checkpoint of this run that covers more input than at the last
        // fault, or all of it (the service may finish the backlog between a fault's snapshot
        // and the fault itself; nothing is left to make progress on then).
        let before = at_fault.last().copied().unwrap_or(0);
        wait_for(
            "progress",
            d,
            run,
            &mut child,
            Duration::from_secs(180),
            || {
                d.newest().is_some_and(|(seq, cp)| {
                    seq > floor && (consumed(&cp) > before || consumed(&cp) >= total)
                })
            },
        );
        // A short random delay: the service reads the whole backlog in a few seconds once it
        // runs (batch consumption), so a longer one let later faults land after the end.
        std::thread::sleep(Duration::from_millis(rng.random_range(0..300)));
        at_fault.push(d.newest().map_or(0, |(_, cp)| consumed(&cp)));
        if fault(&mut child, i) {
            child.wait().expect("reaped");
            run += 1;
            floor = seq_now();
            child = d.spawn(run);
        }
    }
    wait_for(
        "the end of the input",
        d,
        run,
        &mut child,
        Duration::from_secs(300),
        || {
            d.newest()
                .is_some_and(|(seq, cp)| seq > floor && consumed(&cp) >= total)
        },
    );
    // Wait until the watermark has passed the end of the data (idle partitions stop holding
    // it back; one whose offsets are not known yet holds it for up to a minute after its
    // assignment) and a checkpoint records it.
    wait_for(
        "the watermark to pass the end of the data",
        d,
        run,
        &mut child,
        Duration::from_secs(180),
        || {
            d.newest().is_some_and(|(seq, cp)| {
                seq > floor && cp.state.watermark_ms.is_some_and(|w| w >= end)
            })
        },
    );
    let exit = sigterm(&mut child, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("{}: no exit after SIGTERM:\n{}", d.name, d.tail(run)));
    assert!(
        exit.success(),
        "{}: exit {exit} after SIGTERM:\n{}",
        d.name,
        d.tail(run)
    );
    let (_, cp) = d.newest().expect("final checkpoint");
    assert_eq!(
        consumed(&cp),
        total,
        "{}: the final checkpoint covers every record",
        d.name
    );
    (cp, at_fault)
}

/// SIGTERM, then waits up to `timeout` for the exit.
fn sigterm(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let started = Instant::now();
    while started.elapsed() < timeout {
        if let Some(s) = child.try_wait().expect("wait") {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// SIGKILL.
fn kill_9(child: &mut Child, _: usize) -> bool {
    child.kill().expect("SIGKILL");
    true
}

/// SIGKILL, then the restart waits until the broker can see that the killed member is gone
/// (its session timed out), as an orchestrator's restart back-off would. tansu 0.6.0 needs
/// this: when a successor joins while the killed member is still the group's leader, it loops
/// JoinGroup / SyncGroup ("rebalance in progress") until the leader's session expires, and if
/// the expiry is first noticed while handling the successor's SyncGroup, the coordinator
/// clears the leader and then accepts that SyncGroup, from a follower with no assignments, as
/// the leader's: the group is formed with an empty assignment and never rebalances again
/// (tansu-broker 0.6.0 `coordinator/group/administrator.rs`, `Inner<Forming>::sync`: the
/// leader check passes when there is no leader). Failed 1 full run in 5 before this wait.
/// A successor that joins after the expiry evicts the dead member on its first JoinGroup and
/// becomes the leader itself. Apache Kafka waits for the old members' rejoin inside the
/// rebalance and has no such race; nothing here changes what is killed or when.
fn kill_9_then_session_expiry(child: &mut Child, i: usize) -> bool {
    let killed = kill_9(child, i);
    std::thread::sleep(SESSION_TIMEOUT + Duration::from_secs(1));
    killed
}

/// No fault: the uninterrupted reference run.
fn run_clean(d: &Deployment, total: i64, end: i64) -> Checkpoint {
    let mut rng = SmallRng::seed_from_u64(0);
    run_with_faults(d, total, end, 0, &mut rng, || {}, kill_9).0
}

fn seeded() -> SmallRng {
    SmallRng::seed_from_u64(
        std::env::var("CRISIS_PULSE_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(9),
    )
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
        let w: WindowRecord =
            serde_json::from_slice(m.payload().expect("body")).expect("window JSON");
        (format!("{} {} {}", w.window_start, w.topic, w.channel), w)
    })
}

/// What a crisis event says, without the arrival-order-dependent samples.
fn crises_of(msgs: &[OwnedMessage]) -> (BTreeMap<String, CrisisEvent>, usize) {
    group(msgs, |m| {
        let mut c: CrisisEvent =
            serde_json::from_slice(m.payload().expect("body")).expect("crisis JSON");
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
    outputs_within(brokers, d, Duration::from_secs(3), Duration::from_secs(60))
}

/// `outputs`, for a broker that serves reads slowly: each topic is read until `quiet` passes
/// without a message, or for at most `max_wait`.
fn outputs_within(brokers: &str, d: &Deployment, quiet: Duration, max_wait: Duration) -> Outputs {
    eprintln!("{}: reading its outputs", d.name);
    let started = Instant::now();
    let read = |t: &str| {
        let msgs = read_topic(brokers, t, 1, quiet, max_wait);
        eprintln!(
            "{}: {} messages from {t} after {:?}",
            d.name,
            msgs.len(),
            started.elapsed()
        );
        msgs
    };
    Outputs {
        windows: windows_of(&read(&d.windows)),
        crises: crises_of(&read(&d.crisis)),
        dead: dead_letters_of(&read(&d.dlq)),
    }
}

/// Plans `days` of simulated traffic over two channel topics of two partitions each, and
/// publishes it.
async fn input(
    brokers: &str,
    mock: Option<&Mock>,
    days: i64,
    scale: f64,
) -> (Vec<String>, Vec<Planned>, i64) {
    let (topics, planned, end) = plan(days, scale);
    publish(brokers, mock, &topics, &planned).await;
    (topics, planned, end)
}

/// Creates the input topics and produces the planned records, one per batch (see
/// `produce_unbatched`).
async fn publish(brokers: &str, mock: Option<&Mock>, topics: &[String], planned: &[Planned]) {
    for t in topics {
        create(brokers, mock, &[t], 2).await;
    }
    produce_unbatched(brokers, planned);
}

/// `days` of simulated traffic over two channel topics of two partitions each.
fn plan(days: i64, scale: f64) -> (Vec<String>, Vec<Planned>, i64) {
    let prefix = unique("faults");
    let topics = vec![format!("{prefix}.chat"), format!("{prefix}.email")];
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
    (topics, planned, end)
}

/// One fault test's two deployments of the service on the same input: the uninterrupted
/// reference run (run to the end by `Trial::new`) and the deployment the faults hit.
struct Trial {
    planned: Vec<Planned>,
    end: i64,
    total: i64,
    clean: Deployment,
    clean_cp: Checkpoint,
    clean_brokers: String,
    faulty: Deployment,
    faulty_brokers: String,
}

impl Trial {
    /// Publishes `days` of simulated input (see `plan`) to `brokers`, runs the reference
    /// deployment `clean-<label>` over it to the end and sets up `faulty-<label>`. With
    /// `own_broker`, the faulty deployment reads a copy of the input from that broker instead.
    async fn new(
        label: &str,
        brokers: &str,
        mock: Option<&Mock>,
        own_broker: Option<&str>,
        (days, scale): (i64, f64),
        delivery: (&str, &str),
    ) -> Trial {
        let (topics, planned, end) = input(brokers, mock, days, scale).await;
        let faulty_brokers = own_broker.unwrap_or(brokers).to_string();
        if own_broker.is_some() {
            publish(&faulty_brokers, None, &topics, &planned).await;
        }
        let total = planned.len() as i64;
        let clean = deployment(format!("clean-{label}"), brokers, mock, &topics, delivery).await;
        let clean_cp = run_clean(&clean, total, end);
        let faulty_mock = if own_broker.is_some() { None } else { mock };
        let faulty = deployment(
            format!("faulty-{label}"),
            &faulty_brokers,
            faulty_mock,
            &topics,
            delivery,
        )
        .await;
        Trial {
            planned,
            end,
            total,
            clean,
            clean_cp,
            clean_brokers: brokers.to_string(),
            faulty,
            faulty_brokers,
        }
    }

    /// Runs the faulty deployment with `faults` faults (see `run_with_faults`) and asserts
    /// that at least `mid_stream` of them landed mid-stream. Returns the final checkpoint and
    /// the progress at each fault.
    fn run(
        &self,
        faults: usize,
        mid_stream: usize,
        fault: impl FnMut(&mut Child, usize) -> bool,
    ) -> (Checkpoint, Vec<i64>) {
        self.run_after(faults, mid_stream, || {}, fault)
    }

    /// `run`, calling `started` once the first run of the service is spawned.
    fn run_after(
        &self,
        faults: usize,
        mid_stream: usize,
        started: impl FnOnce(),
        fault: impl FnMut(&mut Child, usize) -> bool,
    ) -> (Checkpoint, Vec<i64>) {
        let (cp, at_fault) = run_with_faults(
            &self.faulty,
            self.total,
            self.end,
            faults,
            &mut seeded(),
            started,
            fault,
        );
        self.assert_mid_stream(&at_fault, mid_stream);
        (cp, at_fault)
    }

    fn assert_mid_stream(&self, at_fault: &[i64], mid_stream: usize) {
        assert!(
            at_fault
                .iter()
                .filter(|&&n| n > 0 && n < self.total)
                .count()
                >= mid_stream,
            "at least {mid_stream} of the faults landed mid-stream: {at_fault:?} of {}",
            self.total
        );
    }

    /// Reads both deployments' outputs (the faulty one's within `slow` = (quiet, max wait)
    /// when its broker serves reads slowly), asserts that they and the final checkpoints agree
    /// (`compare`) and reports what the faults made the service publish twice.
    fn verify(
        &self,
        faulty_cp: &Checkpoint,
        what: &str,
        at_fault: &[i64],
        slow: Option<(Duration, Duration)>,
    ) -> Outputs {
        let co = outputs(&self.clean_brokers, &self.clean);
        let fo = match slow {
            Some((quiet, max_wait)) => {
                outputs_within(&self.faulty_brokers, &self.faulty, quiet, max_wait)
            }
            None => outputs(&self.faulty_brokers, &self.faulty),
        };
        compare(
            &self.planned,
            self.end,
            (&self.clean_cp, &co),
            (faulty_cp, &fo),
        );
        eprintln!(
            "{what}: {} records, faults after {at_fault:?}; records republished: windows {} (for {} distinct), crises {} (for {}), dead letters {} (for {})",
            self.total,
            fo.windows.1 - fo.windows.0.len(),
            fo.windows.0.len(),
            fo.crises.1 - fo.crises.0.len(),
            fo.crises.0.len(),
            fo.dead.1 - fo.dead.0.len(),
            fo.dead.0.len()
        );
        fo
    }
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
    assert_eq!(
        f.events_by_channel, c.events_by_channel,
        "events counted per channel"
    );
    assert_eq!(
        f.complaints_by_topic, c.complaints_by_topic,
        "complaints per topic"
    );
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
    let only = |a: &BTreeMap<String, WindowRecord>, b: &BTreeMap<String, WindowRecord>| {
        a.keys()
            .filter(|k| !b.contains_key(*k))
            .take(8)
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        fw.len(),
        cw.len(),
        "closed windows before the end of the data; only in the faulty run: {:?}; only in the clean run: {:?}",
        only(&fw, &cw),
        only(&cw, &fw)
    );
    for (k, w) in &cw {
        assert_eq!(fw.get(k), Some(w), "window {k}");
    }
    let crises_before = |m: &BTreeMap<String, CrisisEvent>| -> BTreeMap<String, CrisisEvent> {
        m.iter()
            .filter(|(_, c)| c.window_start < cutoff)
            .map(|(k, c)| (k.clone(), c.clone()))
            .collect()
    };
    let (cc, fc) = (
        crises_before(&clean.crises.0),
        crises_before(&faulty.crises.0),
    );
    assert!(!cc.is_empty(), "the injected crisis is found");
    assert_eq!(fc, cc, "crisis events (deduplicated by id)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_nothing_at_least_once() {
    let _serial = serial();
    let brokers = require_broker();
    let t = Trial::new(
        "kill",
        &brokers,
        None,
        None,
        (2, 3.0),
        ("at-least-once", "standalone"),
    )
    .await;
    // At least one kill mid-stream: a restart that reads the rest of the backlog before the
    // next kill is a fast service, not a failure (measured once: kills after 35,068 then
    // three times at the end, 57,330).
    let (cp, at_kill) = t.run(KILLS, 1, kill_9_then_session_expiry);
    t.verify(&cp, "at-least-once, kill -9", &at_kill, None);
}

/// The same faults in the exactly-once mode, on librdkafka's mock cluster: tansu 0.6.0
/// answers EndTxn with "not supported", and Apache Kafka cannot be installed here. The mock
/// speaks the whole transactional protocol (InitProducerId with fencing, AddPartitionsToTxn,
/// AddOffsetsToTxn, TxnOffsetCommit, EndTxn), so this proves the service drives it correctly
/// through four SIGKILLs and still ends with the uninterrupted run's windows, crises, dead
/// letters and counters. It cannot prove "no duplicate for read_committed readers": the mock
/// does not apply TxnOffsetCommit to the group's offsets and does not hide aborted records
/// (librdkafka `rdkafka_mock_handlers.c`: the handler reads the offsets and drops them; Fetch
/// answers LastStableOffset = end offset with no aborted list), so every restart here starts
/// over from the beginning. The rule a restart applies against a real broker is
/// `service::checkpoint::choose`, unit-tested case by case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_in_the_exactly_once_mode() {
    let _serial = serial();
    let mock = Mock::new(1).expect("mock cluster");
    let brokers = mock.bootstrap_servers();
    let t = Trial::new(
        "eos",
        &brokers,
        Some(&mock),
        None,
        (2, 3.0),
        ("exactly-once", "standalone"),
    )
    .await;
    let (cp, at_kill) = t.run(KILLS, 2, kill_9);
    for run in 0..=KILLS {
        let log = std::fs::read_to_string(t.faulty.log(run)).unwrap_or_default();
        assert!(
            log.contains("exactly-once producer ready"),
            "run {run} initialised its transactions (fencing the killed one):\n{}",
            t.faulty.tail(run)
        );
        assert!(
            !log.contains(" ERROR "),
            "run {run} logged an error:\n{}",
            t.faulty.tail(run)
        );
    }
    // The mock hides no aborted record: what a reader of it sees twice here, a
    // read_committed reader of Apache Kafka would not.
    t.verify(
        &cp,
        "exactly-once mode on the mock cluster, kill -9",
        &at_kill,
        None,
    );
}

/// Rebalance under load: a second instance joins the group mid-stream, takes some partitions,
/// and leaves again (SIGTERM); the first takes them back. Each instance counts what it
/// consumed in its own state: together they counted every record exactly once (the handoff
/// commits exactly what the leaving owner counted), and neither exits with an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_hands_partitions_over_without_loss_or_double_count() {
    let _serial = serial();
    let brokers = require_broker();
    let (topics, planned, _) = input(&brokers, None, 2, 3.0).await;
    let total = planned.len() as i64;
    let d = deployment(
        "rebalance".to_string(),
        &brokers,
        None,
        &topics,
        ("at-least-once", "standalone"),
    )
    .await;
    let state_b = d.dir.path().join("state-b");

    let mut a = d.spawn(0);
    wait_for(
        "instance A's progress",
        &d,
        0,
        &mut a,
        Duration::from_secs(180),
        || d.newest().is_some_and(|(_, cp)| consumed(&cp) > 0),
    );
    let mut b = d.spawn_with_state(1, &state_b);
    wait_for(
        "instance B to consume",
        &d,
        1,
        &mut b,
        Duration::from_secs(180),
        || {
            newest(&state_b)
                .is_some_and(|(_, cp)| cp.state.stats.events_by_channel.iter().sum::<u64>() > 0)
        },
    );
    std::thread::sleep(Duration::from_millis(seeded().random_range(0..1500)));
    let exit = sigterm(&mut b, Duration::from_secs(60)).expect("B exits after SIGTERM");
    assert!(exit.success(), "B: exit {exit}:\n{}", d.tail(1));
    // Per partition, the further of the two instances' positions: a partition B read to its
    // end is not read again by A.
    wait_for(
        "instance A to reach the end",
        &d,
        0,
        &mut a,
        Duration::from_secs(300),
        || {
            let mut pos: BTreeMap<String, i64> = BTreeMap::new();
            for dir in [d.state(), state_b.clone()] {
                if let Some((_, cp)) = newest(&dir) {
                    for (k, &o) in &cp.positions {
                        let e = pos.entry(k.clone()).or_insert(o);
                        *e = (*e).max(o);
                    }
                }
            }
            pos.values().sum::<i64>() >= total
        },
    );
    // Let A's next checkpoint cover what it read last.
    std::thread::sleep(Duration::from_secs(2));
    let exit = sigterm(&mut a, Duration::from_secs(60)).expect("A exits after SIGTERM");
    assert!(exit.success(), "A: exit {exit}:\n{}", d.tail(0));

    // Checkpoints and committed offsets agree: per partition, the further of the two final
    // checkpoints is exactly where the group's committed offset stands (a revoke's
    // checkpoint records what the leaving owner counted, not an older position).
    let mut furthest: BTreeMap<String, i64> = BTreeMap::new();
    for dir in [d.state(), state_b.clone()] {
        for (k, &o) in &newest(&dir).expect("a final checkpoint").1.positions {
            let e = furthest.entry(k.clone()).or_insert(o);
            *e = (*e).max(o);
        }
    }
    assert_eq!(
        furthest,
        committed_positions(&brokers, &d.group, &topics),
        "final checkpoints (left) and committed offsets (right)"
    );

    let counted = |dir: &Path| -> u64 {
        newest(dir).map_or(0, |(_, cp)| cp.state.stats.events_by_channel.iter().sum())
    };
    let (by_a, by_b) = (counted(&d.state()), counted(&state_b));
    let dead = dead_letters_of(&read_topic(
        &brokers,
        &d.dlq,
        1,
        Duration::from_secs(3),
        Duration::from_secs(60),
    ))
    .0
    .len();
    assert!(
        by_a > 0 && by_b > 0,
        "both instances consumed: A {by_a}, B {by_b}"
    );
    assert_eq!(
        by_a + by_b + dead as u64,
        total as u64,
        "A counted {by_a}, B {by_b}, {dead} dead letters: every record exactly once"
    );
    eprintln!("rebalance: {total} records; A counted {by_a}, B {by_b}, {dead} dead letters");
}

/// The group mode (`kafka.mode = "group"`) under `kill -9`: each restart is a new process
/// with no state of its own (the state directory is not used in this mode), so what it
/// resumes from can only come from the group's state topic. Windows, crises, dead letters and
/// counters equal an uninterrupted group-mode run's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_mode_kill_9_restores_the_detector_state_from_kafka() {
    let _serial = serial();
    let brokers = require_broker();
    let t = Trial::new(
        "gkill",
        &brokers,
        None,
        None,
        (2, 3.0),
        ("at-least-once", "group"),
    )
    .await;
    let (cp, at_kill) = t.run(KILLS, 1, |child, i| {
        let killed = kill_9_then_session_expiry(child, i);
        // Nothing survives the process but the group's Kafka topics.
        let _ = std::fs::remove_dir_all(t.faulty.state());
        killed
    });
    for run in 1..=KILLS {
        let log = std::fs::read_to_string(t.faulty.log(run)).unwrap_or_default();
        assert!(
            log.contains("state restored"),
            "run {run} restored the detector's state from the state topic:\n{}",
            t.faulty.tail(run)
        );
    }
    t.verify(&cp, "group mode, kill -9", &at_kill, None);
}

/// Records an instance has consumed, from its own `/metrics` (its address is in its log).
fn consumed_by(log: &Path) -> u64 {
    use std::io::{Read, Write};
    let Some(addr) = std::fs::read_to_string(log).ok().and_then(|l| {
        let at = l.find("serving /metrics")?;
        let rest = &l[at..];
        let a = rest.split("addr=").nth(1)?.split_whitespace().next()?;
        Some(a.to_string())
    }) else {
        return 0;
    };
    let Ok(mut s) = std::net::TcpStream::connect(&addr) else {
        return 0;
    };
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.lines()
        .filter(|l| l.starts_with("crisis_pulse_kafka_messages_total{"))
        // Source records only: a detector also counts its reads of the classified topic.
        .filter(|l| !l.contains(".classified\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The group mode under a rebalance: a second instance joins mid-stream, forwards the
/// partitions it is given, and leaves again (SIGTERM). Unlike the standalone mode, where each
/// instance counts its own partitions apart, the group counts as one: its windows and crises
/// equal those of one instance that ran alone and uninterrupted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_mode_rebalance_counts_as_one_instance() {
    let _serial = serial();
    let brokers = require_broker();
    let t = Trial::new(
        "grebalance",
        &brokers,
        None,
        None,
        (2, 3.0),
        ("at-least-once", "group"),
    )
    .await;
    let d = &t.faulty;
    let b_run = 99;
    // B starts as soon as A does and joins while A is consuming (the group reads this backlog
    // in about three seconds); once A's checkpoints show progress and B has forwarded records
    // of its own, B leaves. (Slowing A down with small fetches is no way to keep the load on:
    // tansu 0.6.0 cuts a stored batch at `max.partition.fetch.bytes` and answers the next fetch
    // from the next batch, so the detector lost classified records that way.)
    let b = std::cell::RefCell::new(None::<Child>);
    let (cp, at_leave) = t.run_after(
        1,
        1,
        || {
            std::thread::sleep(Duration::from_millis(seeded().random_range(0..1000)));
            *b.borrow_mut() = Some(d.spawn_with_state(b_run, &d.dir.path().join("state-b")));
        },
        |_, _| {
            let mut guard = b.borrow_mut();
            let b = guard.as_mut().expect("B started");
            wait_for(
                "instance B to forward records",
                d,
                b_run,
                b,
                Duration::from_secs(180),
                || consumed_by(&d.log(b_run)) > 0,
            );
            let exit = sigterm(b, Duration::from_secs(60)).expect("B exits after SIGTERM");
            assert!(exit.success(), "B: exit {exit}:\n{}", d.tail(b_run));
            false
        },
    );
    let log_b = std::fs::read_to_string(d.log(b_run)).unwrap_or_default();
    let forwarded_by_b: u64 = log_b
        .lines()
        .filter(|l| l.contains("consumer stopped"))
        .filter_map(|l| l.split("messages=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    assert!(
        forwarded_by_b > 0,
        "B consumed records while it was in the group:\n{}",
        d.tail(b_run)
    );
    t.verify(&cp, "group mode, rebalance", &at_leave, None);
    eprintln!("group mode rebalance: B forwarded {forwarded_by_b} records before it left");
}

/// Outputs the broker refuses for good (librdkafka's mock cluster answers the service's first
/// produce requests with MESSAGE_TOO_LARGE, a permanent error): the service checkpoints
/// nothing that covers them, rolls back to its last checkpoint and reads that input again, so
/// every window, crisis and dead letter still comes out, as in an uninterrupted run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_outputs_are_published_again_from_the_last_checkpoint() {
    use rdkafka::types::RDKafkaApiKey;
    use rdkafka::types::RDKafkaRespErr;
    let _serial = serial();
    let mock = Mock::new(1).expect("mock cluster");
    let brokers = mock.bootstrap_servers();
    let t = Trial::new(
        "refused",
        &brokers,
        Some(&mock),
        None,
        (2, 1.0),
        ("at-least-once", "standalone"),
    )
    .await;
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE; 3],
    );
    let (cp, _) = t.run(0, 0, kill_9);
    let log = std::fs::read_to_string(t.faulty.log(0)).expect("run log");
    assert!(
        log.contains("delivery failed permanently") && log.contains("state rolled back"),
        "the refused outputs were noticed and the state rolled back:\n{}",
        t.faulty.tail(0)
    );
    t.verify(&cp, "refused outputs", &[], None);
}

/// Two broker faults under a running service: fault 0, the broker goes away for 3 s and comes
/// back; fault 1, the broker goes away, the service is asked to stop (SIGTERM) while it cannot
/// reach it (its exit must be bounded), the broker comes back and the service is started again.
/// Returns the final checkpoint and the progress at each fault (one of which must be mid-stream).
fn broker_faults(t: &Trial, down: impl Fn(), up: impl Fn()) -> (Checkpoint, Vec<i64>) {
    let mut shutdown = None;
    let (cp, at_fault) = t.run(2, 1, |child, i| {
        down();
        if i == 0 {
            std::thread::sleep(Duration::from_secs(3));
            up();
            return false;
        }
        let started = Instant::now();
        let exit = sigterm(child, Duration::from_secs(60));
        shutdown = Some((exit, started.elapsed()));
        up();
        true
    });
    let (exit, took) = shutdown.expect("the SIGTERM fault ran");
    // Bounded: drain_timeout (10 s) for the producer, then the group leave; never a hang.
    let exit =
        exit.unwrap_or_else(|| panic!("no exit within 60 s of SIGTERM with the broker down"));
    eprintln!(
        "{}: SIGTERM with the broker down: exit {exit} after {took:?}",
        t.faulty.name
    );
    (cp, at_fault)
}

/// The broker (librdkafka's mock cluster, its one broker set down and up again) goes away
/// twice while the service runs: it reconnects, resumes, stops within bounds while the broker
/// is away, and its outputs and counters equal an uninterrupted run's. The tansu variant below
/// restarts a real broker process, but tansu 0.6.0 itself breaks under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_while_running_loses_nothing() {
    let _serial = serial();
    let mock = Mock::new(1).expect("mock cluster");
    let brokers = mock.bootstrap_servers();
    let t = Trial::new(
        "outage",
        &brokers,
        Some(&mock),
        None,
        (2, 1.0),
        ("at-least-once", "standalone"),
    )
    .await;
    let (cp, at_fault) = broker_faults(
        &t,
        || mock.broker_down(1).expect("broker down"),
        || mock.broker_up(1).expect("broker up"),
    );
    t.verify(&cp, "broker outages", &at_fault, None);
}

/// A tansu broker of the test's own, with SQLite storage (it survives a restart), on a free
/// port, managed by `scripts/broker.sh`.
struct OwnBroker {
    port: u16,
    dir: tempfile::TempDir,
}

impl OwnBroker {
    fn new() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut dir = tempfile::tempdir().expect("tempdir");
        // CRISIS_PULSE_FAULT_KEEP=1 keeps the broker's log and SQLite file too.
        if std::env::var_os("CRISIS_PULSE_FAULT_KEEP").is_some() {
            dir.disable_cleanup(true);
            eprintln!("broker: {}", dir.path().display());
        }
        let b = OwnBroker { port, dir };
        b.script("start");
        b
    }

    fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn script(&self, cmd: &str) {
        let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/broker.sh"))
            .args([cmd, "--storage", "sqlite", "--port", &self.port.to_string()])
            .env("CRISIS_PULSE_BROKER_DIR", self.dir.path())
            .env("CRISIS_PULSE_BIN", env!("CARGO_BIN_EXE_crisis-pulse"))
            .output()
            .expect("scripts/broker.sh");
        assert!(
            out.status.success(),
            "broker.sh {cmd}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.script("stop");
    }
}

/// The same two faults with a real broker process restarted: tansu 0.6.0 with SQLite storage
/// (it keeps its data across the restart), the reference run on the suite's broker. Ignored,
/// because tansu itself breaks, not the service; diagnosed from tansu's log, kept with
/// `CRISIS_PULSE_FAULT_KEEP=1`:
/// - when the restart lands while the service is mid-stream (its checkpoints progressing), the
///   restarted tansu panics in its group coordinator (`unreachable!()` in the storage
///   service's `update_group`, tansu-storage 0.6.0 src/service.rs:337, during a heartbeat) and
///   answers every later request with `Storage(UnableToSend)`; the service keeps retrying,
///   and no progress is possible;
/// - when the restarts land in the first seconds (measured once: 171 s, outputs equal to the
///   reference run), it passes.
/// Found and fixed on the way (each now tested on the mock cluster): a produce the restarting
/// broker refused for good ("Unknown broker error") let the next checkpoint commit past the
/// lost outputs; the roll-back that replaces it asked the broker for committed offsets and
/// died while the broker was away; a member that could not leave is, on tansu, never
/// rebalanced away (static membership avoids it, see `deployment`); the SQLite-backed tansu
/// serves fetches at a few hundred records a second (30-minute windows keep the read short).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "tansu 0.6.0 bug, diagnosed: restarted mid-stream, tansu panics in its group coordinator (unreachable!() in storage update_group) and answers every request with Storage(UnableToSend); see the doc comment. broker_outage_while_running_loses_nothing covers the service's side on the mock cluster"]
async fn broker_restart_while_running_loses_nothing() {
    let _serial = serial();
    // The uninterrupted reference runs on the suite's broker; the faulty run has a SQLite-backed
    // broker of its own, which it shares with nothing else (tansu 0.6.0 on SQLite answers
    // slowly under load: the less else it stores, the sooner it answers).
    let shared = require_broker();
    let broker = OwnBroker::new();
    let t = Trial::new(
        "brk",
        &shared,
        None,
        Some(&broker.brokers()),
        (2, 1.0),
        ("at-least-once", "standalone"),
    )
    .await;
    let (cp, at_fault) = broker_faults(&t, || broker.script("stop"), || broker.script("start"));
    // tansu 0.6.0 on SQLite serves fetches slowly (measured: a few hundred records/s from a
    // 28,000-record topic of 8 partitions, where librdkafka's default 60 s read found nothing).
    let slow = (Duration::from_secs(20), Duration::from_secs(600));
    t.verify(&cp, "broker restarts", &at_fault, Some(slow));
}
