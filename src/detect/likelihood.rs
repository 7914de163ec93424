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

/// Surprise levels (`-log10 p`) whose exceedances [`TailCalibration`] counts: every whole level
/// from 2 to 10, then 10 % apart up to 309 (p is floored at 1e-300). 1.5 to 1.7 counted 2 to 9
/// only, the same first eight, so a 1.7 checkpoint's counts keep their meaning.
const TAIL_WHOLE_LEVELS: usize = 9;
const TAIL_LEVELS: usize = TAIL_WHOLE_LEVELS + 36;

/// The levels themselves, ascending (computed once, at compile time).
const TAIL_LEVEL: [f64; TAIL_LEVELS] = {
    let mut t = [0.0; TAIL_LEVELS];
    let mut geometric = TAIL_WHOLE_LEVELS as f64 + 1.0;
    let mut i = 0;
    while i < TAIL_LEVELS {
        t[i] = if i < TAIL_WHOLE_LEVELS {
            2.0 + i as f64
        } else {
            geometric *= 1.1;
            geometric
        };
        i += 1;
    }
    t
};

/// How many levels lie at or below the surprise `s`.
fn levels_reached(s: f64) -> usize {
    TAIL_LEVEL.partition_point(|&l| l <= s)
}

/// How often a series reaches a given surprise, against how often its model says it should
/// (1.5; judged on the series' own rate since 1.8).
///
/// A calibrated model reaches `-log10 p >= L` in a fraction `10^-L` of windows. Tweets about a
/// company reach 6 every other day: bursts that the negative binomial, fitted to the bulk,
/// calls one-in-a-million; UPS's reach 40 twice a week. Decayed counts of the windows at or
/// above each level give the series' own rate there, and [`TailCalibration::calibrated`] turns
/// a window's surprise into the surprise of that rate: a series marks an onset only where it
/// is rare *for this series*. Unlike the onset likelihood (mean and variance of the surprise,
/// dominated by the bulk) this looks at the tail itself.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TailCalibration {
    /// Decayed number of windows learned.
    n: f64,
    /// Decayed number of those at or above each level (1.7 checkpoints hold the first 8).
    exceed: Vec<f64>,
}

impl TailCalibration {
    /// The surprise `s` judged by this series' own history: `-log10` of the decayed fraction
    /// of its windows at or above `s`'s level, with `model_weight` of a calibrated model mixed
    /// in (`(seen + w n 10^-s) / ((1 + w) n)`), and never more than `s`. A level the series
    /// has not reached leaves `s` as it is (the model's part alone is `10^-s`, less than any
    /// rate the series has shown); one it reaches every day brings `s` down to about 2.
    /// `forgiven` windows are taken off the count first: one earlier burst does not make a
    /// series bursty.
    pub fn calibrated(&self, s: f64, forgiven: f64, model_weight: f64) -> f64 {
        if !s.is_finite() {
            return 0.0;
        }
        let reached = levels_reached(s);
        if reached == 0 || self.n <= 0.0 {
            return s;
        }
        let seen = (self.exceed.get(reached - 1).copied().unwrap_or(0.0) - forgiven).max(0.0);
        let model = self.n * 10f64.powf(-s);
        let rate = (seen + model_weight * model) / ((1.0 + model_weight) * self.n);
        let own = -rate.log10();
        if own.is_finite() { own.min(s) } else { s }
    }

    /// Learns one window's surprise `s`; older windows weigh `decay` less per window.
    pub fn learn(&mut self, s: f64, decay: f64) {
        let decay = if decay.is_finite() {
            decay.clamp(0.0, 1.0)
        } else {
            1.0
        };
        self.n = self.n * decay + 1.0;
        self.exceed.resize(TAIL_LEVELS, 0.0);
        let reached = if s.is_nan() { 0 } else { levels_reached(s) };
        for (i, c) in self.exceed.iter_mut().enumerate() {
            *c *= decay;
            if i < reached {
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
        let (mut calm, mut bursty, mut wild) = (
            TailCalibration::default(),
            TailCalibration::default(),
            TailCalibration::default(),
        );
        let decay = 0.5f64.powf(1.0 / 4032.0);
        for i in 0..4000 {
            calm.learn(0.4, decay);
            // A surprise of 7 (or 60) every other day of 5-minute windows: one in 576 windows.
            let burst = i % 576 == 0;
            bursty.learn(if burst { 7.0 } else { 0.4 }, decay);
            wild.learn(if burst { 60.0 } else { 0.4 }, decay);
        }
        assert_eq!(calm.calibrated(7.5, 0.5, 0.01), 7.5);
        // Seven such windows in 4,000 (decayed to about 5.0 in 2,900, less the half forgiven):
        // the series reaches 7 in about one window in 650, a surprise of 2.8.
        let b = bursty.calibrated(7.5, 0.5, 0.01);
        assert!(b > 2.6 && b < 3.0, "{b}");
        // The same at any height: a series that reaches 60 every other day is not surprised
        // by another 60 (the levels there are 10 % apart: 55.6 counts it, 61.2 does not).
        let w = wild.calibrated(60.0, 0.5, 0.01);
        assert!(w > 2.6 && w < 3.0, "{w}");
        // Above anything it has shown, a surprise stands as it is.
        assert_eq!(bursty.calibrated(12.0, 0.5, 0.01), 12.0);
        assert_eq!(wild.calibrated(70.0, 0.5, 0.01), 70.0);
        assert_eq!(wild.calibrated(300.0, 0.5, 0.01), 300.0);
        assert_eq!(bursty.calibrated(1.0, 0.5, 0.01), 1.0);
        assert_eq!(bursty.calibrated(f64::NAN, 0.5, 0.01), 0.0);
        assert_eq!(TailCalibration::default().calibrated(9.0, 0.5, 0.01), 9.0);
    }

    #[test]
    fn one_earlier_burst_is_partly_forgiven() {
        let decay = 0.5f64.powf(1.0 / 4032.0);
        let mut once = TailCalibration::default();
        once.learn(7.0, decay);
        for _ in 0..999 {
            once.learn(0.4, decay);
        }
        let forgiven = once.calibrated(7.5, 0.5, 0.01);
        let counted = once.calibrated(7.5, 0.0, 0.01);
        assert!(
            forgiven > counted + 0.2 && forgiven < 7.5,
            "{forgiven} vs {counted}"
        );
        // A level seen at the top of the grid still counts.
        let mut top = TailCalibration::default();
        for _ in 0..10 {
            top.learn(299.0, decay);
        }
        assert!(top.calibrated(299.0, 0.5, 0.01) < 1.0);
    }
}
