//! (window count, baseline) -> expected, significance, score, crisis lifecycle. Pure.
//!
//! Per series: a seasonal baseline ([`crate::baseline`]), a negative-binomial tail probability
//! for counts (Student-t on the standardised residual for continuous values), a scan over the
//! last 2/4/8 windows for counts too sparse to be significant one window at a time, a CUSUM for
//! slow ramps, minimum-count and minimum-ratio guards, a lifecycle with hysteresis and cooldown,
//! and an onset score (for NAB-style consumers) on the surprise judged by the series' own rate of
//! such surprises, weighted by an HTM-style likelihood of the series' recent surprise, marking
//! at most one onset in 36 hours per series.
//! Across series: Benjamini-Hochberg false-discovery-rate control each window.
//! See `docs/detection.md` for the model and its measured quality.

mod config;
mod day;
mod likelihood;
mod range;
mod scan;
mod series;
pub mod stats;

use serde::{Deserialize, Serialize};

use crate::event::Severity;
pub use config::{DetectConfig, Params, Sensitivity};
use series::{Observation, SeriesDetector};

/// Goes into every crisis event; bump it when scores or lifecycle rules change.
pub const DETECTOR_VERSION: &str = "cp-detect-1.9";

/// Older detectors whose checkpoints this one restores: their learned state (baselines,
/// dispersion, open crises) means the same here, and what was added since starts from its
/// default (1.2 added the onset likelihood and the one-onset-a-day quiet period, both
/// scoring memory; 1.3 the scan's per-window level and dispersion, refilled from the current
/// ones, and the watch run's start; 1.4 only scores differently, from the same learned state;
/// 1.5 added each series' tail calibration, which starts empty, i.e. calibrated; 1.6 each
/// series' range record, which starts empty and marks nothing until it is warm again; 1.7
/// only stops new series' ranges from learning their first hour; 1.8 counts each series' tail
/// at more levels, the 1.7 ones first and unchanged, the new ones starting at zero; 1.9 adds
/// each series' day record, which starts empty and marks nothing for eight days).
/// A checkpoint of any other detector is refused with `StateError::DetectorChanged` and needs
/// `--reset-state`.
pub const RESTORES_FROM: &[&str] = &[
    "cp-detect-1.8",
    "cp-detect-1.7",
    "cp-detect-1.6",
    "cp-detect-1.5",
    "cp-detect-1.4",
    "cp-detect-1.3",
    "cp-detect-1.2",
    "cp-detect-1.1",
];

/// Where a series stands after a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeriesState {
    Warmup,
    Normal,
    Watch,
    Crisis,
}

impl SeriesState {
    pub fn as_str(self) -> &'static str {
        match self {
            SeriesState::Warmup => "warmup",
            SeriesState::Normal => "normal",
            SeriesState::Watch => "watch",
            SeriesState::Crisis => "crisis",
        }
    }
    /// 0 normal/warmup, 1 watch, 2 crisis (the `crisis_state` gauge).
    pub fn gauge(self) -> i64 {
        match self {
            SeriesState::Warmup | SeriesState::Normal => 0,
            SeriesState::Watch => 1,
            SeriesState::Crisis => 2,
        }
    }
}

/// A lifecycle change produced by this window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Transition {
    Opened { onset_ms: i64 },
    Escalated { onset_ms: i64 },
    Resolved { onset_ms: i64 },
}

/// Which test carried a crisis's evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceTest {
    /// This window alone.
    Window,
    /// The sum of the last `windows` windows against their expected sum (a wave building over
    /// several windows, none significant alone).
    Scan,
    /// The change-point statistic (CUSUM) over the `windows` since the ramp began.
    Ramp,
}

impl EvidenceTest {
    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceTest::Window => "window",
            EvidenceTest::Scan => "scan",
            EvidenceTest::Ramp => "ramp",
        }
    }
}

/// The evidence behind an opening or escalation: which test, over how many windows, what was
/// observed against what was expected there, and its p-value before FDR adjustment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub test: EvidenceTest,
    pub windows: u32,
    pub observed: f64,
    pub expected: f64,
    pub p_value: f64,
}

/// The detector's verdict on one series for one window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assessment {
    pub expected: f64,
    /// The value above which this window would have been significant enough to open a crisis.
    pub upper: f64,
    /// p-value of the window before FDR adjustment (the multi-window scan's when it carried
    /// the evidence).
    pub p_value: f64,
    /// p-value of this window alone, in the direction of the verdict: `P(X >= observed)` for
    /// a rise, `P(X <= observed)` for a drop, two-sided for continuous values.
    pub p_window: f64,
    /// What carried the evidence, when this window opened or escalated a crisis.
    pub evidence: Option<Evidence>,
    /// Upward and downward tail probabilities before FDR adjustment (the likelier of the two,
    /// or twice the smaller for continuous values, is `p_value`).
    pub p_up: f64,
    pub p_down: f64,
    /// Residual in units of the robust spread (median-like forecast, mean absolute error).
    pub robust_z: f64,
    /// Anomaly score in [0, 1]; 0.5 is exactly the preset's evidence to open a crisis (after
    /// FDR control and guards), higher is stronger. 0 during warm-up.
    pub score: f64,
    /// `score` times the onset likelihood (how unusual the recent surprise is for this series),
    /// cut to 0.2 x score for a day after a window reached 0.5: what an onset-marking consumer
    /// such as the NAB backtest should threshold. The lifecycle does not use it.
    pub onset_score: f64,
    /// When this window's trailing day set a record (1.9, `day.rs`): how far its mean lies
    /// beyond every earlier day, above the busiest (0.05: 5 % above) or below the quietest
    /// (-0.05: 5 % below); else 0. At most once in 48 hours per series.
    pub day_record: f64,
    pub ratio: f64,
    pub state: SeriesState,
    pub severity: Severity,
    pub transition: Option<Transition>,
    /// Peak observed count since onset (when in crisis).
    pub peak: f64,
    /// Windows since onset (when in crisis).
    pub windows_in_crisis: u32,
}

/// Many series (indexed 0..n) assessed together each window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Detector {
    window_ms: i64,
    params: Params,
    series: Vec<SeriesDetector>,
    #[serde(skip)]
    obs: Vec<Observation>,
    #[serde(skip)]
    q: Vec<Option<f64>>,
    #[serde(skip)]
    scratch: Vec<(f64, usize)>,
}

impl Detector {
    pub fn new(cfg: &DetectConfig, window_ms: i64) -> Self {
        Detector {
            window_ms,
            params: Params::resolve(cfg, window_ms),
            series: Vec::new(),
            obs: Vec::new(),
            q: Vec::new(),
            scratch: Vec::new(),
        }
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Assesses every series for the window starting at `window_start_ms`; `observed[i]` is
    /// series i's count. `out` receives one assessment per series, in order.
    pub fn assess(&mut self, window_start_ms: i64, observed: &[f64], out: &mut Vec<Assessment>) {
        out.clear();
        while self.series.len() < observed.len() {
            self.series.push(SeriesDetector::new(self.window_ms));
        }
        let p = self.params;
        self.obs.clear();
        self.q.clear();
        for (s, &x) in self.series.iter().zip(observed) {
            let o = s.observe(window_start_ms, x, &p);
            self.q.push(o.warm.then_some(o.p));
            self.obs.push(o);
        }
        if p.fdr {
            stats::bh_adjust(&mut self.q, &mut self.scratch);
        }
        for ((s, o), q) in self.series.iter_mut().zip(&self.obs).zip(&self.q) {
            out.push(s.decide(window_start_ms, o, q.unwrap_or(1.0), &p));
        }
    }
}

#[cfg(test)]
mod tests;
