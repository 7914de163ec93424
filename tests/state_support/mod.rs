//! Shared helpers for the state tests: simulated input files and a replay that collects
//! every output (closed windows and crisis events) in order.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use crisis_pulse::app::{self, Observer, Outputs, Progress, ReplayOptions, StateOptions};
use crisis_pulse::config::Config;
use crisis_pulse::pipeline::{Output, Pipeline, Stats};
use crisis_pulse::source::file::Mapping;
use crisis_pulse::source::sim::{InjectedCrisis, SimConfig, Simulator};

pub const HOUR: i64 = 3_600_000;
pub const DAY: i64 = 24 * HOUR;

pub fn demo_config() -> Config {
    Config::parse(app::DEMO_CONFIG, "examples/demo.toml").expect("demo config")
}

/// `days` of demo traffic at `rate` with an outage halfway through the last day (after the
/// one-day warm-up, so that crises open and resolve).
pub fn sim(days: i64, rate: f64) -> SimConfig {
    let mut s = SimConfig::demo();
    s.duration_ms = days * DAY;
    s.rate_scale = rate;
    s.crises = vec![InjectedCrisis {
        topic: "outage",
        start_ms: (days - 1) * DAY + 10 * HOUR,
        ramp_ms: 0,
        duration_ms: 2 * HOUR,
        extra_per_minute: 6.0,
        channels: vec![],
    }];
    s
}

/// Writes the simulator's records as NDJSON (malformed ones included); returns the count.
pub fn write_ndjson(path: &Path, sim: SimConfig) -> usize {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create input"));
    let mut n = 0;
    for r in Simulator::new(sim) {
        // A payload with a newline would split into two records; the simulator emits none,
        // but keep the count honest if it ever does.
        let line: Vec<u8> = r
            .payload
            .iter()
            .map(|&b| if b == b'\n' { b' ' } else { b })
            .collect();
        f.write_all(&line).expect("write");
        f.write_all(b"\n").expect("write");
        n += 1;
    }
    f.flush().expect("flush");
    n
}

/// Collects every output a driver shows its observer, in order.
#[derive(Default)]
pub struct Collect(pub Vec<Output>);

impl Observer for Collect {
    fn advanced(&mut self, _p: &Pipeline, outputs: &[Output], _progress: Progress) {
        self.0.extend_from_slice(outputs);
    }
}

pub struct Run {
    pub outputs: Vec<Output>,
    pub stats: Stats,
    pub max_event_ms: Option<i64>,
    pub records: u64,
}

/// Replays `input` with `st`, collecting outputs.
pub fn replay(input: &Path, cfg: &Config, st: &StateOptions) -> anyhow::Result<Run> {
    let opts = ReplayOptions {
        input: input.to_path_buf(),
        format: None,
        mapping: Mapping::default(),
        default_channel: None,
    };
    let mut sink = std::io::sink();
    let mut outputs = Outputs {
        crises: &mut sink,
        windows: None,
    };
    let mut obs = Collect::default();
    let (summary, p) = app::replay_with_state(&opts, st, cfg, &mut outputs, &mut obs)?;
    Ok(Run {
        outputs: obs.0,
        stats: p.stats().clone(),
        max_event_ms: p.max_event_ms(),
        records: summary.records,
    })
}

pub fn crises(outs: &[Output]) -> Vec<&Output> {
    outs.iter()
        .filter(|o| matches!(o, Output::Crisis(_)))
        .collect()
}

/// First `k` records checkpointed to `dir`, then the rest resumed from it.
pub fn split_replay(input: &Path, cfg: &Config, k: u64, dir: &Path) -> (Run, Run) {
    let first = replay(
        input,
        cfg,
        &StateOptions {
            save_state: Some(dir.to_path_buf()),
            stop_after: Some(k),
            ..Default::default()
        },
    )
    .expect("first half");
    let second = replay(
        input,
        cfg,
        &StateOptions {
            state_dir: Some(dir.to_path_buf()),
            ..Default::default()
        },
    )
    .expect("second half");
    (first, second)
}

pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state")
}
