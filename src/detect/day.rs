//! Day record (1.9): the series' mean over the last day, against the busiest and the quietest
//! days it has shown.
//!
//! A storm that builds over a day can keep every window, and every span the scan tests, within
//! what the series has done before, while the day as a whole is the busiest the series has ever
//! had: Twitter AMZN on 2015-04-01 (NAB labels it) held 21,400 tweets, 8 % more than any
//! earlier day, without a window the count model or the range record would call unusual. This
//! member watches exactly that: the mean of the windows of the last 24 hours (and the current
//! one), against the record of that mean over every earlier day.
//!
//! - **Hourly buckets.** A series keeps one sum per hour that holds data, for the last 25 hours
//!   (the current, open one included), so its memory is a few hundred bytes whatever the
//!   window length. The trailing day is the current hour and the 24 before it.
//! - **Records.** Every window's trailing-day mean is a candidate. The highest and the lowest
//!   candidate of each hour join the records once that hour is a whole day old, so the current
//!   day is compared with days that do not overlap it, and a day does not move its own bar as
//!   it grows.
//! - **Both ways.** A day quieter than any before it is news too: a channel that broke, an
//!   intake that stopped, a topic's complaints routed elsewhere (Twitter GOOG's quietest day,
//!   2015-03-22, opens a window NAB labels; so does the quietest day of the road behind
//!   `TravelTime_451`). The near-silence test of the count model needs three windows at under
//!   a fifth of the forecast; a whole day a few per cent below every earlier one never
//!   reaches it.
//! - **A day needs its data.** A trailing day counts (as a candidate, or to mark) only when its
//!   data reach back [`Params::day_reach_hours`] hours: after a gap of several hours, the few
//!   hours since the gap are not a day (a road sensor that reports again at rush hour would
//!   otherwise "beat" every daily mean).
//! - **A mark** when the series has eight days of event time (a whole weekly cycle of trailing
//!   days in the records: the first day has none),
//!   the record is positive, the trailing day's mean lies beyond it (above the busiest, below
//!   the quietest) by more than [`Params::day_margin`] (on counts, and by at least
//!   [`Params::day_count_sd`] Poisson standard deviations of the day's total: a topic with a few
//!   dozen complaints a day swings by more than 3 % from one day to the next, and its record
//!   days would be noise), and the series' last day-record mark is
//!   [`Params::day_quiet_ms`] old or more (a day that stays above the record is one event).
//!
//! It feeds `onset_score` only, at [`DAY_RECORD_SCORE`], below the alarm threshold of 0.5: a
//! record day is worth a look, not a crisis on its own (measured: see `docs/detection.md`,
//! "1.9"). The lifecycle does not use it.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::config::Params;

/// `onset_score` of a window whose trailing day sets a record (when the window's own onset
/// score is lower).
pub const DAY_RECORD_SCORE: f64 = 0.3;

const HOUR_MS: i64 = 3_600_000;
/// Hours before the current one in the trailing day.
const DAY_HOURS: i64 = 24;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DayRecord {
    /// Hours with data, oldest first, as (hour since the epoch, sum, windows); the newest is the
    /// current hour.
    hours: VecDeque<(i64, f64, u32)>,
    /// Per hour, the highest and the lowest trailing-day mean seen in it, until the hour is a
    /// day old.
    pending: VecDeque<(i64, f64, f64)>,
    /// Highest trailing-day mean of the hours a day old or more.
    record: Option<f64>,
    /// Lowest trailing-day mean of the hours a day old or more.
    low: Option<f64>,
    /// Event time of the first window seen.
    first_ms: Option<i64>,
    last_mark_ms: Option<i64>,
}

impl DayRecord {
    /// Learns the window starting at `t_ms` with value `x`. When this window marks a record day,
    /// returns how far the trailing day's mean lies beyond the record: above the busiest day
    /// as a positive fraction (0.04: 4 % above), below the quietest as a negative one (-0.04:
    /// 4 % below); else 0. Windows arrive in event-time order; one earlier than the current
    /// hour is ignored.
    ///
    /// `counts`: the series is scored as counts, so a day's total varies by at least its
    /// Poisson standard deviation, and the margin is at least [`Params::day_count_sd`] of them.
    pub fn step(&mut self, t_ms: i64, x: f64, counts: bool, p: &Params) -> f64 {
        if !x.is_finite() {
            return 0.0;
        }
        let h = t_ms.div_euclid(HOUR_MS);
        let first = *self.first_ms.get_or_insert(t_ms);
        match self.hours.back_mut() {
            Some((last, sum, n)) if *last == h => {
                *sum += x;
                *n += 1;
            }
            Some((last, ..)) if *last > h => return 0.0,
            _ => self.hours.push_back((h, x, 1)),
        }
        while self.hours.front().is_some_and(|&(o, ..)| o < h - DAY_HOURS) {
            self.hours.pop_front();
        }
        while let Some(&(o, hi, lo)) = self.pending.front() {
            if o >= h - DAY_HOURS {
                break;
            }
            self.pending.pop_front();
            self.record = Some(self.record.map_or(hi, |r| r.max(hi)));
            self.low = Some(self.low.map_or(lo, |r| r.min(lo)));
        }
        let (sum, n) = self
            .hours
            .iter()
            .fold((0.0, 0u32), |(s, k), &(_, hs, hn)| (s + hs, k + hn));
        let oldest = self.hours.front().map_or(h, |&(o, ..)| o);
        if n == 0 || h - oldest < i64::from(p.day_reach_hours) {
            return 0.0;
        }
        let mean = sum / f64::from(n);
        let margin = if counts {
            p.day_margin.max(p.day_count_sd / sum.max(1.0).sqrt())
        } else {
            p.day_margin
        };
        let ready = t_ms - first >= p.day_warmup_ms
            && self.last_mark_ms.is_none_or(|m| t_ms - m >= p.day_quiet_ms);
        let mut excess = 0.0;
        if ready {
            if let Some(r) = self.record
                && r > 0.0
                && mean > r * (1.0 + margin)
            {
                excess = mean / r - 1.0;
            } else if let Some(r) = self.low
                && r > 0.0
                && mean < r * (1.0 - margin)
            {
                excess = mean / r - 1.0;
            }
        }
        if excess != 0.0 {
            self.last_mark_ms = Some(t_ms);
        }
        match self.pending.back_mut() {
            Some((o, hi, lo)) if *o == h => {
                *hi = hi.max(mean);
                *lo = lo.min(mean);
            }
            _ => self.pending.push_back((h, mean, mean)),
        }
        excess
    }
}

#[cfg(test)]
mod tests {
    use super::{DayRecord, HOUR_MS};
    use crate::detect::{DetectConfig, Params};

    const W: i64 = 300_000;

    fn params() -> Params {
        Params::resolve(&DetectConfig::default(), W)
    }

    /// Feeds `days` days of five-minute windows of `value(day, window of the day)` of a
    /// continuous series; returns the windows that marked, as (day, window of the day, excess).
    fn run(
        d: &mut DayRecord,
        days: std::ops::Range<i64>,
        value: impl Fn(i64, i64) -> f64,
    ) -> Vec<(i64, i64, f64)> {
        run_as(d, days, value, false)
    }

    /// [`run`], scored as counts or not.
    fn run_as(
        d: &mut DayRecord,
        days: std::ops::Range<i64>,
        value: impl Fn(i64, i64) -> f64,
        counts: bool,
    ) -> Vec<(i64, i64, f64)> {
        let p = params();
        let mut marks = Vec::new();
        for day in days {
            for w in 0..288 {
                let e = d.step(day * 24 * HOUR_MS + w * W, value(day, w), counts, &p);
                if e != 0.0 {
                    marks.push((day, w, e));
                }
            }
        }
        marks
    }

    /// A daily shape: quiet nights, busy afternoons.
    fn shape(w: i64) -> f64 {
        10.0 + 8.0 * ((w as f64 / 288.0 - 0.25) * std::f64::consts::TAU).sin()
    }

    /// Two ordinary weeks, then day 14 at `factor` x the ordinary day, then two ordinary
    /// days: asserts that exactly one window marked, on day 14, and returns its excess.
    fn one_record_day(factor: f64) -> f64 {
        let mut d = DayRecord::default();
        assert!(run(&mut d, 0..14, |_, w| shape(w)).is_empty());
        let marks = run(&mut d, 14..17, |day, w| {
            shape(w) * if day == 14 { factor } else { 1.0 }
        });
        assert_eq!(marks.len(), 1, "{marks:?}");
        let (day, w, e) = marks[0];
        assert_eq!(day, 14);
        assert!(w > 0 && w < 288, "{w}");
        e
    }

    #[test]
    fn a_busier_day_than_ever_marks_once() {
        // Day 14 is 20 % busier all day: the trailing day passes the record (+3 %) during it.
        let e = one_record_day(1.2);
        assert!(e > 0.03 && e < 0.2, "{e}");
    }

    #[test]
    fn a_quieter_day_than_ever_marks_once_below() {
        // Day 14 holds 30 % fewer complaints all day, none of its windows near silence.
        let e = one_record_day(0.7);
        assert!(e < -0.03 && e > -0.3, "{e}");
    }

    #[test]
    fn nothing_in_the_first_week_nor_at_ordinary_days_nor_within_the_margin() {
        // Rising days: every day is a record, but the first week is warm-up.
        let mut d = DayRecord::default();
        let marks = run(&mut d, 0..7, |day, w| shape(w) * (1.0 + 0.1 * day as f64));
        assert!(marks.is_empty(), "{marks:?}");
        // Ordinary days never mark; days 2 % busier or quieter lie within the margin.
        let mut d = DayRecord::default();
        let marks = run(&mut d, 0..14, |_, w| shape(w));
        assert!(marks.is_empty(), "{marks:?}");
        let marks = run(&mut d, 14..17, |_, w| shape(w) * 1.02);
        assert!(marks.is_empty(), "{marks:?}");
        let marks = run(&mut d, 17..20, |_, w| shape(w) * 0.98);
        assert!(marks.is_empty(), "{marks:?}");
    }

    #[test]
    fn a_day_above_the_record_is_one_event_until_the_quiet_period_ends() {
        let mut d = DayRecord::default();
        run(&mut d, 0..10, |_, w| shape(w));
        // Days keep rising by 10 %: a record every day, but one mark per 48 hours.
        let marks = run(&mut d, 10..16, |day, w| {
            shape(w) * 1.1f64.powi((day - 9) as i32)
        });
        let days: Vec<i64> = marks.iter().map(|m| m.0).collect();
        assert!(days.len() == 3 || days.len() == 2, "{marks:?}");
        for pair in marks.windows(2) {
            let gap = (pair[1].0 - pair[0].0) * 288 + pair[1].1 - pair[0].1;
            assert!(gap >= 48 * 12, "{marks:?}");
        }
    }

    #[test]
    fn a_few_hours_after_a_gap_are_not_a_day() {
        let mut d = DayRecord::default();
        run(&mut d, 0..10, |_, w| shape(w));
        // Two silent days (no windows at all), then the busiest hours of a day at 1.5 x: the
        // first hours after the gap lie far above the daily mean, but they are not a day.
        let p = params();
        let start = 12 * 24 * HOUR_MS;
        for w in 100..300 {
            let e = d.step(start + w * W, shape(w) * 1.5 + 20.0, false, &p);
            assert_eq!(e, 0.0, "window {w} after the gap marked");
        }
        // Once the data reach back far enough the day is judged: 1.5 x + 20 is a record.
        let mut marked = false;
        for w in 300..600 {
            marked |= d.step(start + w * W, shape(w) * 1.5 + 20.0, false, &p) > 0.0;
        }
        assert!(marked);
    }

    #[test]
    fn a_sparse_count_series_needs_three_poisson_sd() {
        // 0.2 complaints a window: about 58 a day, whose Poisson sd is 13 %. A day 10 % busier
        // than ever is within its noise; 60 % busier is not.
        let mut d = DayRecord::default();
        let steady = |_, _| 0.2;
        run_as(&mut d, 0..14, steady, true);
        assert!(run_as(&mut d, 14..15, |_, _| 0.22, true).is_empty());
        assert_eq!(run_as(&mut d, 15..16, |_, _| 0.32, true).len(), 1);
        // As a continuous series (no Poisson floor), 10 % above the record marks.
        let mut d = DayRecord::default();
        run(&mut d, 0..14, steady);
        assert_eq!(run(&mut d, 14..15, |_, _| 0.22).len(), 1);
    }

    #[test]
    fn late_windows_are_ignored_and_checkpoints_round_trip() {
        let mut d = DayRecord::default();
        run(&mut d, 0..9, |_, w| shape(w));
        let p = params();
        let before = d.clone();
        assert_eq!(d.step(3 * 24 * HOUR_MS, 1e6, false, &p), 0.0);
        assert_eq!(d, before);
        let mut bytes = Vec::new();
        ciborium::into_writer(&d, &mut bytes).unwrap();
        let back: DayRecord = ciborium::from_reader(bytes.as_slice()).unwrap();
        assert_eq!(back, d);
        assert!(bytes.len() < 1_200, "{} bytes", bytes.len());
    }
}
