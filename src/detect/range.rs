//! Range record (1.6): the lowest and highest value a series has ever shown (from 1.7, after
//! its first hour of event time: see `Params::range_startup_ms`). A window beyond
//! that range, once the series has shown enough windows to know it, marks an onset whatever
//! the seasonal model says: "more complaints about this topic than ever before" (or fewer than
//! ever, on a series that never reaches zero) is news even where the series is bursty enough
//! that the count model calls the window unremarkable.
//!
//! It feeds only `onset_score` (what the NAB backtest reads); the lifecycle is unchanged.
//! Measured on NAB (all 34 files, standard / reward low FP / reward low FN, shipped
//! threshold 0.5): 1.5 65.8 / 57.9 / 70.2; with the range record 73.0 / 64.7 / 77.5. Above
//! the range only: 68.8 / 60.6 / 73.2 (the drops are road speeds and occupancies, and the
//! artificial jumps down). Warm-up 288 / 600 / 1000 windows and margin 0 / 0.03 / 0.05 / 0.1
//! of the range: see `docs/detection.md`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Range {
    lo: f64,
    hi: f64,
    /// Windows seen (0: the range is empty).
    n: u64,
}

impl Range {
    /// How far `x` lies beyond the range, as a fraction of the range's width, when the range
    /// has `warmup` windows or more and `x` lies beyond it by more than `margin` of its width;
    /// otherwise 0. A series that has only ever shown one value breaks it by 1 with any other.
    pub fn excess(&self, x: f64, warmup: u64, margin: f64) -> f64 {
        if self.n == 0 || self.n < warmup || !x.is_finite() {
            return 0.0;
        }
        let width = self.hi - self.lo;
        let beyond = (x - self.hi).max(self.lo - x);
        if beyond <= 0.0 {
            return 0.0;
        }
        if width <= 0.0 {
            return 1.0;
        }
        let e = beyond / width;
        if e > margin { e } else { 0.0 }
    }

    pub fn learn(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        if self.n == 0 {
            self.lo = x;
            self.hi = x;
        } else {
            self.lo = self.lo.min(x);
            self.hi = self.hi.max(x);
        }
        self.n = self.n.saturating_add(1);
    }

    /// Onset score of a window that breaks the range by `excess` (from [`Range::excess`]):
    /// 0.5 plus half the excess, capped at 1; 0 when it does not break it.
    pub fn score(excess: f64) -> f64 {
        if excess > 0.0 {
            0.5 + 0.5 * excess.min(1.0)
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Range;

    fn seen(values: &[f64]) -> Range {
        let mut r = Range::default();
        for &v in values {
            r.learn(v);
        }
        r
    }

    #[test]
    fn breaks_only_after_warm_up_and_beyond_the_margin() {
        let r = seen(&[10.0, 20.0, 15.0, 12.0]);
        // Inside the range, or within 5 % of its width (0.5) beyond it: no break.
        assert_eq!(r.excess(20.0, 4, 0.05), 0.0);
        assert_eq!(r.excess(20.4, 4, 0.05), 0.0);
        assert_eq!(r.excess(9.6, 4, 0.05), 0.0);
        // 30 is one width above the top, 5 half a width below the bottom.
        assert!((r.excess(30.0, 4, 0.05) - 1.0).abs() < 1e-12);
        assert!((r.excess(5.0, 4, 0.05) - 0.5).abs() < 1e-12);
        // Too few windows seen yet.
        assert_eq!(r.excess(30.0, 5, 0.05), 0.0);
        assert_eq!(Range::default().excess(30.0, 0, 0.05), 0.0);
    }

    #[test]
    fn scores_from_one_half_up_to_one() {
        assert_eq!(Range::score(0.0), 0.0);
        assert!((Range::score(0.1) - 0.55).abs() < 1e-12);
        assert_eq!(Range::score(3.0), 1.0);
        let flat = seen(&[7.0, 7.0, 7.0]);
        assert_eq!(flat.excess(7.0, 3, 0.05), 0.0);
        assert_eq!(flat.excess(7.5, 3, 0.05), 1.0);
    }

    #[test]
    fn ignores_values_that_are_not_numbers() {
        let r = seen(&[1.0, f64::NAN, 3.0, f64::INFINITY]);
        assert_eq!(r, seen(&[1.0, 3.0]));
        assert_eq!(r.excess(f64::NAN, 0, 0.05), 0.0);
    }
}
