//! An HTM-style anomaly-likelihood layer on the count model's surprise.
//!
//! The surprise of a window is `-log10 p`. If the count model were perfectly calibrated its
//! distribution would be the same for every series; in practice some series (bursty ones) are
//! surprising far more often than the model admits. The layer keeps a long-run mean and spread
//! of each series' own surprise and asks how unusual the *recent* surprise (a short average) is
//! against that history. A crisis needs both: a rare count under the model, and a surprise that
//! is rare for this series.

use serde::{Deserialize, Serialize};

use super::stats::t_upper;

/// Surprise is capped here so one absurd window cannot dominate the long-run spread.
const MAX_SURPRISE: f64 = 30.0;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Likelihood {
    mean: f64,
    var: f64,
    short: f64,
    n: u64,
}

impl Likelihood {
    pub fn new() -> Self {
        Likelihood {
            mean: 0.0,
            var: 0.0,
            short: 0.0,
            n: 0,
        }
    }

    /// Evidence (-log10 of the likelihood tail) for surprise `s` given the history, then
    /// learns `s`. `short_alpha` weights the newest window in the short average; `long_alpha`
    /// is the long-run learning rate; `learn` is false inside a crisis.
    pub fn step(&mut self, s: f64, short_alpha: f64, long_alpha: f64, learn: bool) -> f64 {
        let s = if s.is_finite() {
            s.clamp(0.0, MAX_SURPRISE)
        } else {
            0.0
        };
        self.short += short_alpha * (s - self.short);
        // A calibrated model's surprise has mean and sd ~0.43: the prior until history exists.
        let prior = 20.0;
        let w = self.n as f64 / (self.n as f64 + prior);
        let mean = w * self.mean + (1.0 - w) * 0.434;
        let var = w * self.var + (1.0 - w) * 0.19;
        let sd = var.sqrt().max(0.1);
        let z = (self.short - mean) / sd;
        let e = -t_upper(z, 5.0).max(1e-300).log10();
        if learn {
            let a = long_alpha.max(1.0 / (self.n as f64 + 1.0));
            // Winsorize what the history learns: an anomaly must not teach that anomalies are
            // normal.
            let s = s.min(mean + 4.0 * sd);
            let d = s - self.mean;
            self.mean += a * d;
            self.var = (1.0 - a) * (self.var + a * d * d);
            self.n += 1;
        }
        if e.is_finite() { e.max(0.0) } else { 0.0 }
    }

    /// Forgets the short average (after a crisis opens, so the next one needs fresh evidence).
    pub fn reset_short(&mut self) {
        self.short = 0.0;
    }
}

/// Onset likelihood for `onset_score`: how unusual the recent surprise of a series is against
/// its own surprise of the last weeks (HTM's anomaly likelihood on the count model's
/// `-log10 p`). A bursty series is surprising often; its onsets must be rarer still.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OnsetLikelihood {
    mean: f64,
    sq: f64,
    short: f64,
    n: u64,
}

/// Windows of history before the likelihood says anything (below it, 0).
const ONSET_MIN_HISTORY: u64 = 100;

impl OnsetLikelihood {
    /// Likelihood in [0, 1] that the recent surprise is unusual, given surprise `s` of this
    /// window; then learns `s`. `short_alpha` weights the newest window in the short average,
    /// `long_alpha` is the long-run learning rate (floored at 1 / windows seen).
    pub fn step(&mut self, s: f64, short_alpha: f64, long_alpha: f64) -> f64 {
        let s = if s.is_finite() {
            s.clamp(0.0, MAX_SURPRISE)
        } else {
            0.0
        };
        self.short = if self.n == 0 {
            s
        } else {
            self.short + short_alpha * (s - self.short)
        };
        let lik = if self.n >= ONSET_MIN_HISTORY {
            let var = (self.sq - self.mean * self.mean).max(1e-4);
            let z = (self.short - self.mean) / var.sqrt();
            1.0 - 0.5 * statrs::function::erf::erfc(z / std::f64::consts::SQRT_2)
        } else {
            0.0
        };
        let a = long_alpha.max(1.0 / (self.n as f64 + 1.0));
        self.mean += a * (s - self.mean);
        self.sq += a * (s * s - self.sq);
        self.n += 1;
        if lik.is_finite() {
            lik.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// Surprise levels (`-log10 p`) whose exceedances [`TailCalibration`] counts: 2, 3, ..., 9.
const TAIL_FIRST: i32 = 2;
const TAIL_LEVELS: usize = 8;

/// How much more often than its model admits a series reaches a given surprise (1.5).
///
/// A calibrated model reaches `-log10 p >= L` in a fraction `10^-L` of windows. Tweets about a
/// company reach 6 every other day: bursts that the negative binomial, fitted to the bulk,
/// calls one-in-a-million. Decayed counts of the windows at or above each level give the
/// series' own excess rate there, and `onset_score` is judged on the surprise minus its log:
/// a series marks an onset only where it is rare *for this series*, by exactly as much as it
/// has shown. Unlike the onset likelihood (mean and variance of the surprise, dominated by the
/// bulk) this looks at the tail itself.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TailCalibration {
    /// Decayed number of windows learned.
    n: f64,
    /// Decayed number of those at or above each level.
    exceed: [f64; TAIL_LEVELS],
}

impl TailCalibration {
    /// `log10` of the excess rate at the level of surprise `s` (whole levels, 9 and above
    /// share the top one): 0 where the series has not been more surprising than its model
    /// says. `pseudo` windows' worth of a calibrated model is added to both the seen and the
    /// expected count, so an excess needs more than a lone burst early in the series' life.
    pub fn excess(&self, s: f64, pseudo: f64) -> f64 {
        if !s.is_finite() || s < f64::from(TAIL_FIRST) {
            return 0.0;
        }
        let top = TAIL_FIRST + TAIL_LEVELS as i32 - 1;
        let level = (s.floor() as i32).clamp(TAIL_FIRST, top);
        let seen = self.exceed[(level - TAIL_FIRST) as usize];
        let expected = self.n * 10f64.powi(-level);
        let k = (seen + pseudo) / (expected + pseudo);
        if k.is_finite() {
            k.max(1.0).log10()
        } else {
            0.0
        }
    }

    /// Learns one window's surprise `s`; older windows weigh `decay` less per window.
    pub fn learn(&mut self, s: f64, decay: f64) {
        let decay = if decay.is_finite() {
            decay.clamp(0.0, 1.0)
        } else {
            1.0
        };
        self.n = self.n * decay + 1.0;
        for (i, c) in self.exceed.iter_mut().enumerate() {
            *c *= decay;
            if s >= f64::from(TAIL_FIRST + i as i32) {
                *c += 1.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_surprise_is_less_likely_an_onset_on_a_bursty_series() {
        let (mut calm, mut bursty) = (OnsetLikelihood::default(), OnsetLikelihood::default());
        for i in 0..2000 {
            calm.step(0.4, 0.2, 1.0 / 4032.0);
            bursty.step(if i % 10 == 0 { 6.0 } else { 0.4 }, 0.2, 1.0 / 4032.0);
        }
        let (c, b) = (
            calm.step(6.0, 0.2, 1.0 / 4032.0),
            bursty.step(6.0, 0.2, 1.0 / 4032.0),
        );
        assert!(c > 0.99 && b < c, "calm {c}, bursty {b}");
        assert_eq!(OnsetLikelihood::default().step(f64::NAN, 0.2, 0.01), 0.0);
    }

    #[test]
    fn a_series_that_bursts_often_has_a_heavier_tail_than_a_calm_one() {
        let (mut calm, mut bursty) = (TailCalibration::default(), TailCalibration::default());
        let decay = 0.5f64.powf(1.0 / 4032.0);
        for i in 0..4000 {
            calm.learn(0.4, decay);
            // A surprise of 7 every other day of 5-minute windows: one in 576 windows.
            bursty.learn(if i % 576 == 0 { 7.0 } else { 0.4 }, decay);
        }
        assert_eq!(calm.excess(7.5, 0.01), 0.0);
        // Seven such windows where a calibrated model expects 4e-4: about 2.8 orders of
        // magnitude (shrunk by the pseudo-count).
        let b = bursty.excess(7.5, 0.01);
        assert!(b > 2.5 && b < 3.0, "{b}");
        // Above anything it has shown, the series is judged by its top level seen (none).
        assert_eq!(bursty.excess(12.0, 0.01), 0.0);
        assert_eq!(bursty.excess(1.0, 0.01), 0.0);
        assert_eq!(bursty.excess(f64::NAN, 0.01), 0.0);
    }
}
