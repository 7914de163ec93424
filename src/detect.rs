//! (window count, baseline) -> expected, significance, score, crisis lifecycle. Pure.
//!
//! PLACEHOLDER implementation: the public API below is the contract the pipeline relies on.

use serde::{Deserialize, Serialize};

use crate::baseline::Baseline;
use crate::event::Severity;

/// Goes into every crisis event; bump it when scores or lifecycle rules change.
pub const DETECTOR_VERSION: &str = "cp-detect-0.1";

/// Sensitivity presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Sensitivity {
    Sensitive,
    #[default]
    Balanced,
    Strict,
}

/// Detector settings (`[detect]` in the config file).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DetectConfig {
    /// Preset: `sensitive`, `balanced` (default) or `strict`.
    #[serde(default)]
    pub sensitivity: Sensitivity,
}

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

/// The detector's verdict on one series for one window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assessment {
    pub expected: f64,
    pub upper: f64,
    pub p_value: f64,
    /// Calibrated anomaly score in [0, 1].
    pub score: f64,
    pub ratio: f64,
    pub state: SeriesState,
    pub severity: Severity,
    pub transition: Option<Transition>,
    /// Peak observed count since onset (when in crisis).
    pub peak: f64,
    /// Windows since onset (when in crisis).
    pub windows_in_crisis: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SeriesDetector {
    baseline: Baseline,
    state: SeriesState,
    onset_ms: i64,
    severity: Severity,
    calm: u32,
    peak: f64,
    windows: u32,
}

/// Many series (indexed 0..n) assessed together each window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Detector {
    window_ms: i64,
    #[serde(skip)]
    cfg: DetectConfig,
    series: Vec<SeriesDetector>,
}

impl Detector {
    pub fn new(cfg: &DetectConfig, window_ms: i64) -> Self {
        Detector {
            window_ms,
            cfg: cfg.clone(),
            series: Vec::new(),
        }
    }

    /// Assesses every series for the window starting at `window_start_ms`; `observed[i]` is
    /// series i's count. `out` receives one assessment per series, in order.
    pub fn assess(&mut self, window_start_ms: i64, observed: &[f64], out: &mut Vec<Assessment>) {
        out.clear();
        while self.series.len() < observed.len() {
            self.series.push(SeriesDetector {
                baseline: Baseline::new(self.window_ms),
                state: SeriesState::Warmup,
                onset_ms: 0,
                severity: Severity::Low,
                calm: 0,
                peak: 0.0,
                windows: 0,
            });
        }
        let p_open = match self.cfg.sensitivity {
            Sensitivity::Sensitive => 1e-3,
            Sensitivity::Balanced => 1e-4,
            Sensitivity::Strict => 1e-6,
        };
        for (s, &x) in self.series.iter_mut().zip(observed) {
            let expected = s.baseline.expected(window_start_ms);
            let p = poisson_sf(x, expected.max(0.1));
            let ratio = x / expected.max(0.1);
            let warm = s.baseline.is_warm();
            let mut transition = None;
            let anomalous = warm && p < p_open && x >= 5.0 && ratio >= 1.5;
            match s.state {
                SeriesState::Crisis => {
                    s.windows += 1;
                    s.peak = s.peak.max(x);
                    if p > 0.05 {
                        s.calm += 1;
                        if s.calm >= 3 {
                            s.state = SeriesState::Normal;
                            transition = Some(Transition::Resolved {
                                onset_ms: s.onset_ms,
                            });
                        }
                    } else {
                        s.calm = 0;
                    }
                }
                _ if anomalous => {
                    s.state = SeriesState::Crisis;
                    s.onset_ms = window_start_ms;
                    s.peak = x;
                    s.windows = 1;
                    s.calm = 0;
                    transition = Some(Transition::Opened {
                        onset_ms: window_start_ms,
                    });
                }
                _ => {
                    s.state = if !warm {
                        SeriesState::Warmup
                    } else if p < 0.01 {
                        SeriesState::Watch
                    } else {
                        SeriesState::Normal
                    };
                }
            }
            if s.state != SeriesState::Crisis {
                s.baseline.learn(window_start_ms, x);
            }
            out.push(Assessment {
                expected,
                upper: expected + 3.0 * expected.sqrt(),
                p_value: p,
                score: (1.0 - p).clamp(0.0, 1.0),
                ratio,
                state: s.state,
                severity: s.severity,
                transition,
                peak: s.peak,
                windows_in_crisis: s.windows,
            });
        }
    }
}

/// P(X >= x) for X ~ Poisson(mean).
pub fn poisson_sf(x: f64, mean: f64) -> f64 {
    use statrs::distribution::{DiscreteCDF, Poisson};
    if x <= 0.0 {
        return 1.0;
    }
    match Poisson::new(mean) {
        Ok(d) => d.sf((x as u64).saturating_sub(1)),
        Err(_) => 1.0,
    }
}
