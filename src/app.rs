//! The drivers behind the CLI commands: they feed the shared [`Pipeline`] from a source and
//! hand its outputs to sinks. `demo` and `replay` are synchronous and deterministic.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::clock::Clock;
use crate::config::Config;
use crate::detect::EvidenceTest;
use crate::event::{self, Channel, CrisisEvent, DecodeContext, DecodeError, DecodeReason};
use crate::pipeline::{Ingested, Output, Pipeline};
use crate::sink::windows::WindowWriter;
use crate::source::file::{self, Format, Mapping, Record};
use crate::source::sim::{SimConfig, Simulator};
use crate::state::{self, Positions};

/// The demo's configuration (`examples/demo.toml`), built in.
pub const DEMO_CONFIG: &str = include_str!("../examples/demo.toml");

/// What a finite run (demo, replay) did.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub records: u64,
    pub accepted: u64,
    pub complaints: u64,
    pub late: u64,
    pub refused: BTreeMap<&'static str, u64>,
    pub windows: u64,
    pub crises: Vec<CrisisEvent>,
    pub first_event_ms: Option<i64>,
    pub last_event_ms: Option<i64>,
}

impl RunSummary {
    fn refuse(&mut self, r: DecodeReason) {
        *self.refused.entry(r.as_str()).or_insert(0) += 1;
    }

    /// A short human summary.
    pub fn human(&self, topics: &[String]) -> String {
        let mut s = String::new();
        let refused: u64 = self.refused.values().sum();
        s.push_str(&format!(
            "{} records: {} accepted ({} complaints), {} refused, {} late; {} windows closed\n",
            self.records, self.accepted, self.complaints, refused, self.late, self.windows
        ));
        if refused > 0 {
            let reasons: Vec<String> = self
                .refused
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            s.push_str(&format!("refused by reason: {}\n", reasons.join(", ")));
        }
        if let (Some(a), Some(b)) = (self.first_event_ms, self.last_event_ms) {
            s.push_str(&format!(
                "event time {} .. {}\n",
                event::format_rfc3339(a),
                event::format_rfc3339(b)
            ));
        }
        let opened: Vec<&CrisisEvent> = self
            .crises
            .iter()
            .filter(|c| c.state == event::CrisisState::Opened)
            .collect();
        s.push_str(&format!(
            "{} crises opened over {} topics:\n",
            opened.len(),
            topics.len()
        ));
        for c in opened {
            let resolved = self
                .crises
                .iter()
                .find(|r| r.crisis_id == c.crisis_id && r.state == event::CrisisState::Resolved);
            let peak = self
                .crises
                .iter()
                .filter(|r| r.crisis_id == c.crisis_id)
                .map(|r| r.severity)
                .max()
                .unwrap_or(c.severity);
            // The evidence that opened it, when several windows carried it.
            let evidence = match c.evidence {
                Some(e) if e.test == EvidenceTest::Scan => format!(
                    "; {} vs {:.1} over the last {} windows, p={:.1e}",
                    e.observed, e.expected, e.windows, e.p_value
                ),
                Some(e) if e.test == EvidenceTest::Ramp => {
                    format!("; rising for {} windows", e.windows)
                }
                _ => String::new(),
            };
            s.push_str(&format!(
                "  {:<18} opened {}  observed {} vs expected {:.1} (p={:.1e}{evidence})  peak severity {}  {}\n",
                c.topic,
                c.window_start,
                c.observed,
                c.expected,
                c.p_value,
                peak.as_str(),
                resolved.map_or("still open".to_string(), |r| format!("resolved {}", r.window_end)),
            ));
        }
        s
    }
}

/// Writes crisis events as NDJSON and, optionally, every window row.
pub struct Outputs<'a> {
    pub crises: &'a mut dyn Write,
    pub windows: Option<WindowWriter>,
}

impl Outputs<'_> {
    fn handle(&mut self, outs: &mut Vec<Output>, summary: &mut RunSummary) -> anyhow::Result<()> {
        for o in outs.drain(..) {
            match o {
                Output::Window(w) => {
                    if w.channel.is_none() {
                        summary.windows += 1;
                    }
                    if let Some(ww) = &mut self.windows {
                        ww.write(&w)?;
                    }
                }
                Output::Crisis(c) => {
                    serde_json::to_writer(&mut *self.crises, &*c)?;
                    self.crises.write_all(b"\n")?;
                    summary.crises.push(*c);
                }
            }
        }
        Ok(())
    }
}

/// Reports refused records on stderr, rate-limited: the first 20 in full, then a count.
struct RefusalLog {
    shown: u64,
}

impl RefusalLog {
    fn report(&mut self, line: u64, e: &DecodeError) {
        self.shown += 1;
        if self.shown <= 20 {
            tracing::warn!(line, reason = e.reason.as_str(), detail = %e.detail, "input record refused");
        } else if self.shown == 21 {
            tracing::warn!("further refused records are counted but not logged");
        }
    }
}

/// Where a driver stands when it hands closed windows to its [`Observer`].
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// The watermark just applied (epoch ms).
    pub watermark_ms: i64,
    /// The driver's processing clock (epoch ms; simulated in the demo).
    pub now_ms: i64,
    /// When the driver started closing these windows, for detection latency.
    pub started: std::time::Instant,
}

/// Live hooks of a driver: metrics, lifecycle log lines, pacing
/// ([`crate::metrics::LiveMetrics`]). `()` observes nothing.
pub trait Observer {
    /// After a watermark advance, with what it closed (often nothing), before it is written.
    fn advanced(&mut self, _pipeline: &Pipeline, _outputs: &[Output], _progress: Progress) {}
    /// A record was refused.
    fn refused(&mut self, _error: &DecodeError) {}
    /// The input is exhausted and every window flushed.
    fn finished(&mut self, _pipeline: &Pipeline) {}
}

impl Observer for () {}

/// Runs the built-in simulator through the pipeline.
pub fn demo(
    sim: SimConfig,
    cfg: &Config,
    outputs: &mut Outputs<'_>,
) -> anyhow::Result<(RunSummary, Pipeline)> {
    demo_observed(sim, cfg, outputs, &mut ())
}

/// [`demo`], reporting progress to `obs`.
pub fn demo_observed(
    sim: SimConfig,
    cfg: &Config,
    outputs: &mut Outputs<'_>,
    obs: &mut dyn Observer,
) -> anyhow::Result<(RunSummary, Pipeline)> {
    let mut p = Pipeline::new(cfg)?;
    let mut summary = RunSummary::default();
    let lateness = cfg.window.allowed_lateness.as_millis();
    let clock = Clock::manual(sim.start_ms);
    let mut outs = Vec::new();
    let mut max_t = i64::MIN;
    for rec in Simulator::new(sim) {
        summary.records += 1;
        // The simulated clock runs with the simulated traffic.
        clock.set_ms(rec.time_ms.max(max_t));
        let ctx = DecodeContext {
            now_ms: clock.now_ms(),
            fallback_time_ms: None,
            channel_hint: None,
        };
        match p.ingest_json(&rec.payload, &ctx) {
            Ok(i) => count(&mut summary, i, rec.time_ms),
            Err(e) => {
                obs.refused(&e);
                summary.refuse(e.reason);
            }
        }
        if rec.time_ms > max_t {
            max_t = rec.time_ms;
            let started = std::time::Instant::now();
            p.advance(max_t - lateness, &mut outs);
            observe(obs, &p, &outs, max_t - lateness, clock.now_ms(), started);
            outputs.handle(&mut outs, &mut summary)?;
        }
    }
    finish(&mut p, &mut outs, obs, max_t, clock.now_ms());
    outputs.handle(&mut outs, &mut summary)?;
    obs.finished(&p);
    Ok((summary, p))
}

fn observe(
    obs: &mut dyn Observer,
    p: &Pipeline,
    outs: &[Output],
    watermark_ms: i64,
    now_ms: i64,
    started: std::time::Instant,
) {
    let progress = Progress {
        watermark_ms,
        now_ms,
        started,
    };
    obs.advanced(p, outs, progress);
}

/// Flushes the last windows at the end of a finite input and shows them to `obs`.
fn finish(p: &mut Pipeline, outs: &mut Vec<Output>, obs: &mut dyn Observer, max_t: i64, now: i64) {
    let started = std::time::Instant::now();
    p.flush(outs);
    observe(obs, p, outs, max_t, now, started);
}

fn count(s: &mut RunSummary, i: Ingested, t: i64) {
    match i {
        Ingested::Counted { complaint, .. } => {
            s.accepted += 1;
            if complaint {
                s.complaints += 1;
            }
        }
        Ingested::Late { .. } => {
            s.accepted += 1;
            s.late += 1;
        }
    }
    s.first_event_ms = Some(s.first_event_ms.map_or(t, |f| f.min(t)));
    s.last_event_ms = Some(s.last_event_ms.map_or(t, |f| f.max(t)));
}

/// File replay options.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub input: PathBuf,
    pub format: Option<Format>,
    pub mapping: Mapping,
    /// Channel for rows that name none.
    pub default_channel: Option<Channel>,
}

/// Replays a file in event time.
pub fn replay(
    opts: &ReplayOptions,
    cfg: &Config,
    outputs: &mut Outputs<'_>,
) -> anyhow::Result<(RunSummary, Pipeline)> {
    replay_observed(opts, cfg, outputs, &mut ())
}

/// Checkpointing options of a replay (`--state-dir`, `--save-state`, `--reset-state`).
#[derive(Debug, Clone, Default)]
pub struct StateOptions {
    /// Resume from the newest checkpoint here, skipping the records it covers, and save the
    /// new state back here at the end.
    pub state_dir: Option<PathBuf>,
    /// Save a checkpoint here at the end of the replay (a warm start for `run`).
    pub save_state: Option<PathBuf>,
    /// Ignore an existing checkpoint in `state_dir` and start fresh (said in a warning).
    pub reset: bool,
    /// Stop after this many records from the file's start, as a crash would: checkpoint and
    /// leave the open windows open (no end-of-input flush).
    pub stop_after: Option<u64>,
}

/// Key of a replayed file's position (records already ingested) in [`Positions`].
pub const FILE_POSITION: &str = "file";

/// [`replay`], reporting progress to `obs`.
pub fn replay_observed(
    opts: &ReplayOptions,
    cfg: &Config,
    outputs: &mut Outputs<'_>,
    obs: &mut dyn Observer,
) -> anyhow::Result<(RunSummary, Pipeline)> {
    replay_with_state(opts, &StateOptions::default(), cfg, outputs, obs)
}

/// [`replay_observed`] with checkpointing: resumes from and/or saves a checkpoint. The
/// checkpoint is taken before the end-of-input flush, so the windows still open at the end
/// of the file stay open for whoever resumes (the flushed rows of this run's output are
/// provisional).
pub fn replay_with_state(
    opts: &ReplayOptions,
    st: &StateOptions,
    cfg: &Config,
    outputs: &mut Outputs<'_>,
    obs: &mut dyn Observer,
) -> anyhow::Result<(RunSummary, Pipeline)> {
    let format = opts
        .format
        .or_else(|| Format::from_path(&opts.input))
        .context("cannot tell the input format from the extension; pass --format")?;
    let records = file::read(&opts.input, format, &opts.mapping)?;
    let mut p = Pipeline::new(cfg)?;
    let resume_from = match &st.state_dir {
        Some(dir) => {
            let pos = state::resume(&mut p, dir, st.reset).with_context(|| {
                format!(
                    "cannot resume from --state-dir {} (pass --reset-state to start fresh)",
                    dir.display()
                )
            })?;
            pos.get(FILE_POSITION).copied().unwrap_or(0).max(0) as u64
        }
        None => 0,
    };
    let mut summary = RunSummary::default();
    let lateness = cfg.window.allowed_lateness.as_millis();
    let clock = Clock::System;
    let ctx = DecodeContext {
        now_ms: clock.now_ms(),
        fallback_time_ms: None,
        channel_hint: opts.default_channel,
    };
    let limits = *p.limits();
    let mut log = RefusalLog { shown: 0 };
    let mut outs = Vec::new();
    let mut max_t = p.max_event_ms().unwrap_or(i64::MIN);
    let mut position: u64 = 0;
    let mut stopped = false;
    for rec in records {
        if st.stop_after.is_some_and(|n| position >= n) {
            stopped = true;
            break;
        }
        position += 1;
        if position <= resume_from {
            continue;
        }
        summary.records += 1;
        let (line, result) = match &rec {
            Record::Json { line, bytes } => (
                *line,
                event::decode(bytes, &limits, &ctx).map(|e| (e.event_time.0, p.ingest(&e))),
            ),
            Record::Row { line, fields } => (
                *line,
                fields
                    .view()
                    .and_then(|v| event::validate(v, &limits, &ctx))
                    .map(|e| (e.event_time.0, p.ingest(&e))),
            ),
            Record::Broken { line, error } => (*line, Err(error.clone())),
        };
        match result {
            Ok((t, i)) => {
                count(&mut summary, i, t);
                if t > max_t {
                    max_t = t;
                    let started = std::time::Instant::now();
                    p.advance(max_t - lateness, &mut outs);
                    observe(obs, &p, &outs, max_t - lateness, clock.now_ms(), started);
                    outputs.handle(&mut outs, &mut summary)?;
                }
            }
            Err(e) => {
                log.report(line, &e);
                obs.refused(&e);
                summary.refuse(e.reason);
            }
        }
    }
    if resume_from > position {
        anyhow::bail!(
            "the checkpoint covers {resume_from} records but {} has only {position}: \
             not the file the checkpoint was taken from?",
            opts.input.display()
        );
    }
    save_replay_state(&p, st, position)?;
    if !stopped {
        finish(&mut p, &mut outs, obs, max_t, clock.now_ms());
        outputs.handle(&mut outs, &mut summary)?;
    }
    obs.finished(&p);
    Ok((summary, p))
}

fn save_replay_state(p: &Pipeline, st: &StateOptions, position: u64) -> anyhow::Result<()> {
    let mut dirs: Vec<&PathBuf> = st.save_state.iter().chain(st.state_dir.iter()).collect();
    dirs.dedup();
    if dirs.is_empty() {
        return Ok(());
    }
    let positions = Positions::from([(FILE_POSITION.to_string(), position as i64)]);
    let cp = p.checkpoint(positions);
    for dir in dirs {
        let path = state::save(dir, &cp)
            .with_context(|| format!("saving a checkpoint to {}", dir.display()))?;
        tracing::info!(path = %path.display(), records = position, "checkpoint saved");
    }
    Ok(())
}
