//! Scan test for counts: the last few windows together against their forecasts.
//!
//! One window of 4 complaints where 1 is expected is weak evidence; six windows of 4 in a row
//! is a crisis. A topic with a handful of complaints an hour never reaches the opening evidence
//! in one window, so the scan also sums observed and expected over the last 2, 4 and 8 windows
//! (the current one included) and asks the negative binomial how likely that sum is.
//!
//! Windows are taken as independent given the forecast: a sum of NB(mu_i, phi) has mean
//! `M = sum mu_i` and variance `M + phi sum mu_i^2`, i.e. an NB with `phi' = phi sum mu_i^2 / M^2`.
//! From an expected count of `robust_min_mean` per window up, the sum must also be significant
//! under the Student-t on the robust residual, as a single window must. The smallest p over the
//! scales is multiplied by the number of scales (Bonferroni), so the scan costs the single-window
//! test nothing in false alarms beyond that factor.
//!
//! A span is judged against the baseline as it stood at the span's start: each window's
//! forecast is rescaled to the level of the span's first window, and the dispersion is the one
//! of that window. The one-step forecasts inside the span were raised by the span's own
//! windows (the level learns with a 12-hour half-life, the spread within hours on a sparse
//! series), so a storm building for hours would otherwise raise its own bar as it grows.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::config::Params;
use super::stats::{nb_upper, t_upper};
use crate::baseline::Forecast;

/// Window counts the scan sums over (the single window is the ordinary test).
pub const SCALES: [usize; 3] = [2, 4, 8];
const LONGEST: usize = 8;

/// What the scan found: the best scale's p-value (Bonferroni-corrected) and its sums.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScanResult {
    pub p: f64,
    /// Windows summed (1 when no scale applies).
    pub k: usize,
    pub observed: f64,
    pub expected: f64,
}

impl ScanResult {
    /// The guards' view of the sums: ratio as `(x + 1) / (mu + 1)`, like a single window's.
    pub fn ratio(&self) -> f64 {
        (self.observed + 1.0) / (self.expected + 1.0)
    }
}

/// The last windows of one count series: (observed, expected, robust expected), and the
/// level and overdispersion each was forecast with.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Scan {
    recent: VecDeque<(f64, f64, f64)>,
    /// Parallel to `recent` (absent from checkpoints before cp-detect-1.3: refilled on push).
    #[serde(default)]
    basis: VecDeque<(f64, f64)>,
}

impl Scan {
    /// Tests the current window `x` (forecast `f`) together with the windows before it.
    pub fn test(&self, x: f64, f: &Forecast, p: &Params) -> ScanResult {
        let none = ScanResult {
            p: 1.0,
            k: 1,
            observed: x,
            expected: f.mean,
        };
        if !f.counts || !p.scan {
            return none;
        }
        let (mut sx, mut sres) = (x, x - f.robust_mean);
        let mut best = none;
        let mut k = 1;
        let n = self.recent.len();
        let aligned = self.basis.len() == n;
        for (j, &(xi, _, rmi)) in self.recent.iter().rev().enumerate() {
            k += 1;
            sx += xi;
            sres += xi - rmi;
            if !SCALES.contains(&k) {
                continue;
            }
            // The span is recent[n-1-j..] plus the current window.
            let start = n - 1 - j;
            let (level0, phi0) = if aligned {
                self.basis[start]
            } else {
                (f.level, f.phi)
            };
            let rescale = |mu: f64, level: f64| {
                if level > 0.0 && level0 > 0.0 {
                    mu * level0 / level
                } else {
                    mu
                }
            };
            let cur = rescale(f.mean, f.level);
            let (mut smu, mut smu2) = (cur, cur * cur);
            for i in start..n {
                let level = if aligned { self.basis[i].0 } else { f.level };
                let m = rescale(self.recent[i].1, level);
                smu += m;
                smu2 += m * m;
            }
            let m = smu.max(0.5);
            let mut pk = nb_upper(sx, m, phi0 * smu2 / (m * m));
            if p.robust_counts && smu / k as f64 >= p.robust_min_mean {
                let z = sres / (f.robust_sd * (k as f64).sqrt());
                pk = pk.max(t_upper(z, p.t_df));
            }
            let pk = (pk * SCALES.len() as f64).min(1.0);
            if pk < best.p {
                best = ScanResult {
                    p: pk,
                    k,
                    observed: sx,
                    expected: smu,
                };
            }
        }
        best
    }

    /// Remembers a window (after it was assessed).
    pub fn push(&mut self, x: f64, f: &Forecast) {
        if !f.counts {
            self.clear();
            return;
        }
        if self.basis.len() != self.recent.len() {
            // A checkpoint from before the basis was kept: take the current one for all.
            self.basis = self.recent.iter().map(|_| (f.level, f.phi)).collect();
        }
        if self.recent.len() == LONGEST - 1 {
            self.recent.pop_front();
            self.basis.pop_front();
        }
        self.recent.push_back((x, f.mean, f.robust_mean));
        self.basis.push_back((f.level, f.phi));
    }

    /// Forgets the windows so far (a crisis opened on them: the next one needs new evidence).
    pub fn clear(&mut self) {
        self.recent.clear();
        self.basis.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::DetectConfig;

    fn forecast(mean: f64) -> Forecast {
        Forecast {
            mean,
            level: mean,
            phi: 0.05,
            sd: (mean + 0.05 * mean * mean).sqrt(),
            counts: true,
            robust_mean: mean,
            robust_sd: mean.sqrt().max(1.0),
        }
    }

    #[test]
    fn several_moderate_windows_add_up() {
        let p = Params::resolve(&DetectConfig::default(), 3_600_000);
        let f = forecast(1.0);
        let mut s = Scan::default();
        for _ in 0..7 {
            s.push(4.0, &f);
        }
        let r = s.test(4.0, &f, &p);
        assert_eq!(r.k, 8);
        assert!(r.p < 1e-6, "{r:?}");
        // One such window alone is unremarkable.
        assert!(nb_upper(4.0, 1.0, 0.05) > 1e-3);
    }

    #[test]
    fn a_span_is_judged_at_the_level_of_its_start() {
        // A storm the level has been learning from: one-step forecasts rose 1 -> 4.5 inside
        // the span; the span is judged against its starting level (8 windows x 1).
        let p = Params::resolve(&DetectConfig::default(), 3_600_000);
        let mut s = Scan::default();
        for i in 0..7 {
            s.push(5.0, &forecast(1.0 + 0.5 * f64::from(i)));
        }
        let r = s.test(5.0, &forecast(4.5), &p);
        assert_eq!(r.k, 8);
        assert!((r.expected - 8.0).abs() < 1e-9, "{r:?}");
        assert!(r.p < 1e-6, "{r:?}");
    }

    #[test]
    fn ordinary_windows_are_not_significant() {
        let p = Params::resolve(&DetectConfig::default(), 3_600_000);
        let f = forecast(20.0);
        let mut s = Scan::default();
        for x in [18.0, 22.0, 25.0, 17.0, 21.0, 19.0, 24.0] {
            s.push(x, &f);
        }
        let r = s.test(23.0, &f, &p);
        assert!(r.p > 0.05, "{r:?}");
    }

    #[test]
    fn continuous_series_are_not_scanned() {
        let p = Params::resolve(&DetectConfig::default(), 3_600_000);
        let f = Forecast {
            counts: false,
            ..forecast(1.0)
        };
        let mut s = Scan::default();
        for _ in 0..7 {
            s.push(40.0, &f);
        }
        assert_eq!(s.test(40.0, &f, &p).p, 1.0);
    }
}
