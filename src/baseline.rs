//! Expected value and spread per series and time of week, learned online. Pure.
//!
//! The forecast is `level x hour-of-day factor x day-of-week factor` for counts
//! (multiplicative: a quiet night is a fraction of a busy noon) and
//! `level + hour-of-day offset + day-of-week offset` for continuous values, which may be
//! negative. Both are learned for every series; a series is scored as counts while every value
//! seen is a non-negative integer.
//!
//! Seasonal slots are keyed by event time, so gaps in the data leave them intact; the level
//! forgets at a rate set by elapsed event time, so after a long gap it re-learns quickly.
//! The caller winsorizes what it teaches (see [`Baseline::learn`]): anomalies move the baseline
//! by at most a few standard deviations.

use serde::{Deserialize, Serialize};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// 1970-01-01 was a Thursday; shift so that index 0 is Monday.
const EPOCH_WEEKDAY: i64 = 3;
/// Continuous values: deviations below this fraction of the series' typical swing are noise.
const SWING_FLOOR: f64 = 0.05;
/// Least weight a sparse count window has on the level.
const SPARSE_WEIGHT_FLOOR: f64 = 0.05;
/// Overdispersion prior: the ratio estimator of `phi` is shrunk towards `PHI_PRIOR` with the
/// weight of `PHI_PRIOR_WEIGHT` windows of one expected count (in its `sum mu^2` units). A busy
/// series outweighs it within hours; a sparse one (a handful of complaints a day) would
/// otherwise get its `phi` from one or two clustered windows divided by a tiny `sum mu^2`.
const PHI_PRIOR: f64 = 0.1;
const PHI_PRIOR_WEIGHT: f64 = 48.0;
/// Whole-number series whose squared forecast error is below this fraction of the expected
/// value (Poisson noise alone gives 1) ...
const UNDERDISPERSED_RATIO: f64 = 0.5;
/// ... at an expected value of at least this (below it, rounding dominates the error) are
/// scored as continuous values, not counts (see `Baseline::is_counts`).
const UNDERDISPERSED_MIN_MEAN: f64 = 10.0;

/// How fast each part of the baseline learns.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    /// Half-life of the level, in event-time milliseconds.
    pub level_half_life_ms: i64,
    /// Weight of one window in its hour-of-day factor.
    pub hod: f64,
    /// Weight of one window in its day-of-week factor.
    pub dow: f64,
    /// Half-life of the spread estimates, in windows.
    pub spread_half_life: f64,
}

/// Level plus seasonal factors (multiplicative) or offsets (additive).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Profile {
    mult: bool,
    level: f64,
    hod: [f64; 24],
    hod_n: [u32; 24],
    dow: [f64; 7],
    dow_n: [u32; 7],
}

impl Profile {
    fn new(mult: bool) -> Self {
        let one = if mult { 1.0 } else { 0.0 };
        Profile {
            mult,
            level: 0.0,
            hod: [one; 24],
            hod_n: [0; 24],
            dow: [one; 7],
            dow_n: [0; 7],
        }
    }

    fn combine(&self, a: f64, b: f64) -> f64 {
        if self.mult { a * b } else { a + b }
    }

    /// Removes `season` from `x` (the inverse of `combine`).
    fn remove(&self, x: f64, season: f64) -> f64 {
        if self.mult {
            x / season.max(1e-3)
        } else {
            x - season
        }
    }

    /// `day` is the number of windows in a day (the weekday factors' unit of history); 0 uses
    /// every weekday's own factor.
    fn season(&self, slot: &Slot, seasonal: bool, day: u32) -> f64 {
        if !seasonal {
            return if self.mult { 1.0 } else { 0.0 };
        }
        let h = self.hod[slot.h0] * (1.0 - slot.w) + self.hod[slot.h1] * slot.w;
        self.combine(h, self.dow_used(slot.d, day))
    }

    /// Mean of the factors of the weekdays matching `keep` (by windows seen), if any.
    fn dow_mean(&self, keep: impl Fn(usize, u32) -> bool) -> Option<f64> {
        let (sum, n) = (0..7)
            .filter(|&i| keep(i, self.dow_n[i]))
            .fold((0.0, 0u32), |(s, c), i| (s + self.dow[i], c + 1));
        (n > 0).then(|| sum / f64::from(n))
    }

    /// A weekday not seen yet borrows the mean of the weekdays seen, so the first window of
    /// a new weekday is forecast like the others rather than with an unlearned factor.
    fn dow_factor(&self, d: usize) -> f64 {
        if self.dow_n[d] > 0 {
            return self.dow[d];
        }
        self.dow_mean(|_, n| n > 0)
            .unwrap_or(if self.mult { 1.0 } else { 0.0 })
    }

    /// The weekday factor the forecast uses. Until a weekday has a full day of history its own
    /// factor is still being learned from that very day, so a day unlike the others (a storm on
    /// the first Saturday a series sees) would be compared with itself: until then it borrows
    /// the mean of the weekdays that do have a full day (if any; else its own, as before).
    fn dow_used(&self, d: usize, day: u32) -> f64 {
        if self.dow_n[d] < day
            && let Some(m) = self.dow_mean(|i, n| i != d && n >= day)
        {
            return m;
        }
        self.dow_factor(d)
    }

    fn forecast(&self, slot: &Slot, seasonal: bool, day: u32) -> f64 {
        self.combine(self.level, self.season(slot, seasonal, day))
    }

    /// `weight` scales what this window teaches the level (see [`Baseline::learn`]).
    fn learn(
        &mut self,
        slot: &Slot,
        x: f64,
        alpha: f64,
        weight: f64,
        rates: &Rates,
        seasonal: bool,
    ) {
        // The decomposition learns with the weekday's own factor, borrowed or not: a quiet
        // first Saturday deseasonalized with the weekdays' factor would drag the level and the
        // hour-of-day shape down, and the next Monday would look like a crisis. Only the
        // forecast borrows (see `dow_used`).
        let season = self.season(slot, seasonal, 0);
        let deseason = self.remove(x, season);
        self.level += alpha * weight * (deseason - self.level);
        if !seasonal {
            return;
        }
        // Each factor learns what the level and the other factor leave unexplained.
        if self.dow_n[slot.d] == 0 {
            self.dow[slot.d] = self.dow_factor(slot.d);
        }
        let dow = self.dow[slot.d];
        let hod_target = self.remove(self.remove(x, dow), self.level);
        for (h, w) in [(slot.h0, 1.0 - slot.w), (slot.h1, slot.w)] {
            let rate = (w * rates.hod).max(w / (f64::from(self.hod_n[h]) + 1.0));
            self.hod[h] += rate * (hod_target - self.hod[h]);
            if w >= 0.5 {
                self.hod_n[h] = self.hod_n[h].saturating_add(1);
            }
        }
        let hod = self.hod[slot.h0] * (1.0 - slot.w) + self.hod[slot.h1] * slot.w;
        let dow_target = self.remove(self.remove(x, hod), self.level);
        let n = f64::from(self.dow_n[slot.d]);
        // The first day of each weekday moves its factor from the other weekdays' mean towards
        // that day's running mean (the prior counts as one window), then it tracks slowly.
        let rate = rates.dow.max(1.0 / (n + 2.0));
        self.dow[slot.d] += rate * (dow_target - self.dow[slot.d]);
        self.dow_n[slot.d] = self.dow_n[slot.d].saturating_add(1);
        if self.mult {
            for f in self.hod.iter_mut().chain(self.dow.iter_mut()) {
                *f = f.clamp(0.02, 50.0);
            }
        }
    }
}

/// Where a timestamp falls in the week: two neighbouring hours (for linear interpolation
/// between hour centres) and the weekday.
struct Slot {
    h0: usize,
    h1: usize,
    w: f64,
    d: usize,
}

impl Slot {
    fn of(t_ms: i64) -> Slot {
        // Hour centres are at hh:30; interpolate between the two nearest.
        let in_day = (t_ms - HOUR_MS / 2).rem_euclid(DAY_MS);
        let h0 = (in_day / HOUR_MS) as usize % 24;
        let w = (in_day % HOUR_MS) as f64 / HOUR_MS as f64;
        let d = (t_ms.div_euclid(DAY_MS) + EPOCH_WEEKDAY).rem_euclid(7) as usize;
        Slot {
            h0,
            h1: (h0 + 1) % 24,
            w,
            d,
        }
    }
}

/// A forecast for one window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    /// Expected value.
    pub mean: f64,
    /// The level behind it (`mean` = level x seasonal factors for counts): the scan rescales
    /// a span's forecasts to the level at its start.
    pub level: f64,
    /// Negative-binomial overdispersion (`var = mean + phi * mean^2`); counts only.
    pub phi: f64,
    /// Standard deviation of the one-step forecast error.
    pub sd: f64,
    /// Whether the series is scored as counts.
    pub counts: bool,
    /// The continuous model's forecast and robust spread, for every series: counts are also
    /// checked against it, so a bursty series' heavy tail is not mistaken for a crisis.
    pub robust_mean: f64,
    pub robust_sd: f64,
}

/// Expected value and spread of one series.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Baseline {
    window_ms: i64,
    seasonal: bool,
    count: Profile,
    cont: Profile,
    /// Every value so far was a non-negative integer.
    integral: bool,
    /// Windows learned.
    n: u64,
    first_ms: Option<i64>,
    last_ms: Option<i64>,
    /// Decayed sums for the ratio estimator of overdispersion.
    sq_err: f64,
    sum_mu: f64,
    sum_mu2: f64,
    /// Decayed mean absolute error of the continuous forecast.
    abs_err: f64,
    abs_w: f64,
    /// Decayed mean absolute deviation of the values around the level: the series' own swing.
    swing: f64,
}

impl Baseline {
    pub fn new(window_ms: i64) -> Self {
        Baseline {
            window_ms,
            // Daily and weekly shapes only make sense for windows of at most an hour.
            seasonal: window_ms <= HOUR_MS,
            count: Profile::new(true),
            cont: Profile::new(false),
            integral: true,
            n: 0,
            first_ms: None,
            last_ms: None,
            sq_err: 0.0,
            sum_mu: 0.0,
            sum_mu2: 0.0,
            abs_err: 0.0,
            abs_w: 0.0,
            swing: 0.0,
        }
    }

    /// Length of one window.
    pub fn window_ms(&self) -> i64 {
        self.window_ms
    }

    /// Windows learned so far.
    pub fn windows(&self) -> u64 {
        self.n
    }

    /// Event time covered since the first window learned.
    pub fn span_ms(&self) -> i64 {
        match (self.first_ms, self.last_ms) {
            (Some(a), Some(b)) => b - a + self.window_ms,
            _ => 0,
        }
    }

    /// Windows in a day (at least 1).
    fn day(&self) -> u32 {
        u32::try_from((DAY_MS / self.window_ms.max(1)).max(1)).unwrap_or(u32::MAX)
    }

    pub fn is_counts(&self) -> bool {
        self.integral && !self.underdispersed()
    }

    /// Whole numbers whose forecast errors are far smaller than Poisson noise allows are not
    /// counts of independent events (a speed in whole km/h, a time in whole seconds): their
    /// drops and shape changes need the continuous model, which scores both directions. A count
    /// series is never this regular: its one-step forecast error has at least the Poisson
    /// variance (the mean), more with any overdispersion or forecast error. Decided on the
    /// decayed sums the dispersion estimate already keeps, once a day of windows has been seen
    /// and the expected value is high enough that rounding does not dominate the error.
    fn underdispersed(&self) -> bool {
        self.n >= u64::from(self.day())
            && self.abs_w > 0.0
            && self.sum_mu >= UNDERDISPERSED_MIN_MEAN * self.abs_w
            && self.sq_err < UNDERDISPERSED_RATIO * self.sum_mu
    }

    pub fn expected(&self, t_ms: i64) -> f64 {
        self.forecast(t_ms).mean
    }

    pub fn forecast(&self, t_ms: i64) -> Forecast {
        let slot = Slot::of(t_ms);
        let day = self.day();
        let robust_mean = self.cont.forecast(&slot, self.seasonal, day);
        let mae = if self.abs_w > 0.0 {
            self.abs_err / self.abs_w
        } else {
            0.0
        };
        // MAE of a normal error is 0.8 sd. Floor the spread at a fraction of the series' own
        // swing and level, so a flat or perfectly periodic line does not make every rounding
        // or interpolation error infinitely surprising.
        let floor = (SWING_FLOOR * self.swing / self.abs_w.max(1e-9))
            .max(1e-3 * self.cont.level.abs())
            .max(1e-9);
        let robust_sd = (1.2533 * mae).max(floor);
        if self.is_counts() {
            let mean = self.count.forecast(&slot, self.seasonal, day).max(0.0);
            let phi = ((self.sq_err - self.sum_mu + PHI_PRIOR * PHI_PRIOR_WEIGHT)
                / (self.sum_mu2 + PHI_PRIOR_WEIGHT))
                .clamp(0.0, 4.0);
            Forecast {
                mean,
                level: self.count.level,
                phi,
                sd: (mean + phi * mean * mean).sqrt(),
                counts: true,
                robust_mean,
                robust_sd: robust_sd.max(1.0),
            }
        } else {
            Forecast {
                mean: robust_mean,
                level: self.cont.level,
                phi: 0.0,
                sd: robust_sd,
                counts: false,
                robust_mean,
                robust_sd,
            }
        }
    }

    /// Teaches the baseline the window at `t_ms`: `x` (winsorized by the caller) moves the
    /// level and seasonal factors; `spread_x` (clipped far less) feeds the spread estimates, so
    /// a bursty series learns that it is bursty.
    pub fn learn(&mut self, t_ms: i64, x: f64, spread_x: f64, rates: &Rates) {
        if !x.is_finite() || !spread_x.is_finite() {
            return;
        }
        let slot = Slot::of(t_ms);
        let day = self.day();
        let dt = self.last_ms.map_or(self.window_ms, |l| (t_ms - l).max(0));
        let decay = 0.5f64.powf(dt as f64 / rates.level_half_life_ms.max(1) as f64);
        let alpha = (1.0 - decay).max(1.0 / (self.n as f64 + 1.0));
        let spread = 0.5f64.powf(1.0 / rates.spread_half_life.max(1.0));
        if self.n > 0 {
            let mu = self.count.forecast(&slot, self.seasonal, day).max(0.0);
            self.sq_err = spread * self.sq_err + (spread_x - mu).powi(2);
            self.sum_mu = spread * self.sum_mu + mu;
            self.sum_mu2 = spread * self.sum_mu2 + mu * mu;
            let m = self.cont.forecast(&slot, self.seasonal, day);
            self.abs_err = spread * self.abs_err + (spread_x - m).abs();
            self.abs_w = spread * self.abs_w + 1.0;
            self.swing = spread * self.swing + (x - self.cont.level).abs();
        }
        // Sparse counts: a window expected to hold less than one count teaches the level in
        // proportion to its expected count (the Poisson estimate of a multiplicative level is a
        // ratio of sums). Dividing a night-time count by a small hour factor would otherwise
        // turn 3 complaints at 03:00 into a tripled level. Floored so a collapsed level recovers;
        // the first windows always teach fully.
        let weight = if self.n < 8 {
            1.0
        } else {
            self.count
                .forecast(&slot, self.seasonal, day)
                .clamp(SPARSE_WEIGHT_FLOOR, 1.0)
        };
        self.count
            .learn(&slot, x.max(0.0), alpha, weight, rates, self.seasonal);
        self.cont.learn(&slot, x, alpha, 1.0, rates, self.seasonal);
        self.n += 1;
        self.first_ms.get_or_insert(t_ms);
        self.last_ms = Some(t_ms);
    }

    /// Notes the raw value of every window (winsorized values are not integers, so the
    /// count/continuous decision is made here, on what was actually observed).
    pub fn note_raw(&mut self, x: f64) {
        if self.integral && x.is_finite() && (x < 0.0 || x.fract() != 0.0) {
            self.integral = false;
        }
    }

    /// Records that a window was seen without teaching its value (e.g. during a crisis),
    /// so warm-up and gap handling still see time pass.
    pub fn skip(&mut self, t_ms: i64) {
        self.first_ms.get_or_insert(t_ms);
        self.last_ms = Some(t_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates() -> Rates {
        Rates {
            level_half_life_ms: 6 * HOUR_MS,
            hod: 0.05,
            dow: 0.005,
            spread_half_life: 288.0,
        }
    }

    #[test]
    fn learns_a_daily_shape() {
        let mut b = Baseline::new(300_000);
        let r = rates();
        for i in 0..(14 * 288) {
            let t = i * 300_000;
            let hour = (t / HOUR_MS) % 24;
            let x = if (9..17).contains(&hour) { 100.0 } else { 20.0 };
            b.note_raw(x);
            b.learn(t, x, x, &r);
        }
        let noon = 15 * DAY_MS + 12 * HOUR_MS;
        let night = 15 * DAY_MS + 3 * HOUR_MS;
        assert!(
            (b.expected(noon) - 100.0).abs() < 15.0,
            "{}",
            b.expected(noon)
        );
        assert!(
            (b.expected(night) - 20.0).abs() < 5.0,
            "{}",
            b.expected(night)
        );
        assert!(b.is_counts());
    }

    #[test]
    fn continuous_values_switch_mode() {
        let mut b = Baseline::new(300_000);
        for i in 0..100 {
            let x = -1.5 + (i % 3) as f64 * 0.1;
            b.note_raw(x);
            b.learn(i * 300_000, x, x, &rates());
        }
        let f = b.forecast(100 * 300_000);
        assert!(!f.counts);
        assert!(f.mean < 0.0 && f.sd > 0.0 && f.sd.is_finite());
    }

    #[test]
    fn whole_numbers_far_steadier_than_poisson_are_not_counts() {
        // A speed in whole km/h: 64-66 every window. Poisson counts at 65 would vary by ~8.
        let mut b = Baseline::new(300_000);
        for i in 0..(2 * 288) {
            let x = 64.0 + (i % 3) as f64;
            b.note_raw(x);
            b.learn(i * 300_000, x, x, &rates());
        }
        let f = b.forecast(2 * 288 * 300_000);
        assert!(!f.counts, "{f:?}");
        assert!((f.mean - 65.0).abs() < 1.0, "{f:?}");

        // Counts with Poisson-like scatter (mean 65, sd ~8) stay counts.
        let mut b = Baseline::new(300_000);
        for i in 0..(2 * 288) {
            let x = [57.0, 73.0, 65.0, 61.0, 69.0, 52.0, 78.0][i as usize % 7];
            b.note_raw(x);
            b.learn(i * 300_000, x, x, &rates());
        }
        assert!(b.forecast(2 * 288 * 300_000).counts);

        // A sparse count series is never switched, however regular (rounding dominates).
        let mut b = Baseline::new(300_000);
        for i in 0..(2 * 288) {
            b.note_raw(2.0);
            b.learn(i * 300_000, 2.0, 2.0, &rates());
        }
        assert!(b.is_counts());
    }

    #[test]
    fn a_weekday_is_forecast_with_the_others_until_it_has_a_full_day() {
        // Monday 2024-01-01, five weekdays of 10 per window, then a Saturday of 40.
        let monday = 1_704_067_200_000;
        let mut b = Baseline::new(300_000);
        let r = rates();
        let mut t = monday;
        while t < monday + 5 * DAY_MS {
            b.note_raw(10.0);
            b.learn(t, 10.0, 10.0, &r);
            t += 300_000;
        }
        for _ in 0..100 {
            b.note_raw(40.0);
            b.learn(t, 40.0, 40.0, &r);
            t += 300_000;
        }
        // Saturday is compared with the weekdays, not with itself, until it has a whole day.
        let e = b.expected(t);
        assert!(e < 20.0, "{e}");
        // And once it has one, with its own factor.
        while t < monday + 6 * DAY_MS {
            b.note_raw(40.0);
            b.learn(t, 40.0, 40.0, &r);
            t += 300_000;
        }
        let e = b.expected(monday + 5 * DAY_MS + 12 * HOUR_MS);
        assert!(e > 25.0, "{e}");
    }

    #[test]
    fn weekday_index_is_monday_based() {
        // 2024-01-01 was a Monday.
        assert_eq!(Slot::of(1_704_067_200_000 + 12 * HOUR_MS).d, 0);
    }
}
