//! One series: its baseline, its change-point statistic and its crisis lifecycle.
//!
//! A window is scored in two steps because false-discovery-rate control needs every series'
//! p-value first: [`SeriesDetector::observe`] computes the evidence, the detector adjusts the
//! p-values across series, then [`SeriesDetector::decide`] runs the lifecycle and teaches the
//! baseline.

use serde::{Deserialize, Serialize};

use super::config::Params;
use super::day::{DAY_RECORD_SCORE, DayRecord};
use super::likelihood::{Likelihood, OnsetLikelihood, TailCalibration};
use super::range::Range;
use super::scan::{Scan, ScanResult};
use super::stats::{nb_lower, nb_upper, t_upper};
use super::{Assessment, Evidence, EvidenceTest, SeriesState, Transition};
use crate::baseline::{Baseline, Forecast};
use crate::event::Severity;

/// Factor applied to an `onset_score` below 0.5 (see [`SeriesDetector::decide`]).
const SUB_ALARM_ONSET_SCALE: f64 = 0.4;

/// Which way a window (or a crisis) departs from the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    Up,
    Down,
}

/// What [`SeriesDetector::observe`] found, before FDR adjustment.
#[derive(Debug, Clone, Copy)]
pub struct Observation {
    pub x: f64,
    pub f: Forecast,
    pub p_up: f64,
    pub p_down: f64,
    /// p-value of the likelier direction (two-sided for continuous values).
    pub p: f64,
    /// `p` from this window alone, without the multi-window scan: what a crisis event reports.
    pub p_alone: f64,
    pub dir: Direction,
    pub ratio: f64,
    pub z: f64,
    pub robust_z: f64,
    pub warm: bool,
    /// The scan over recent windows, and whether it (rather than this window alone) carries
    /// the upward evidence.
    pub scan: ScanResult,
    pub by_scan: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeriesDetector {
    baseline: Baseline,
    state: SeriesState,
    dir: Direction,
    onset_ms: i64,
    severity: Severity,
    calm: u32,
    peak: f64,
    windows: u32,
    cooldown: u32,
    cusum_up: f64,
    cusum_down: f64,
    /// Start of the current CUSUM excursion: the onset of a slow ramp.
    cusum_start_ms: i64,
    /// Consecutive windows in which a drop was significant.
    dropped: u32,
    likelihood: Likelihood,
    /// Decayed record surprise of this series.
    #[serde(default)]
    record: f64,
    /// Recent windows for the multi-window scan (counts).
    #[serde(default)]
    scan: Scan,
    /// Windows left in which a new onset is not marked (after one was).
    #[serde(default)]
    onset_quiet: u32,
    #[serde(default)]
    onset_lik: OnsetLikelihood,
    /// Start of the current run of warm windows in watch (p < calm_p), if any.
    #[serde(default)]
    watch_start_ms: Option<i64>,
    /// This series' own rate of extreme surprises (1.5; absent from older checkpoints: starts
    /// empty, i.e. calibrated).
    #[serde(default)]
    tail: TailCalibration,
    /// Every value this series has shown after its first hour (1.6; absent from older
    /// checkpoints: starts empty and marks nothing until it has seen `range_warmup_windows`
    /// again).
    #[serde(default)]
    range: Range,
    /// The busiest and quietest trailing days this series has shown (1.9; absent from older
    /// checkpoints: starts empty and marks nothing until it has eight days of event time
    /// again).
    #[serde(default)]
    day: DayRecord,
}

impl SeriesDetector {
    pub fn new(window_ms: i64) -> Self {
        SeriesDetector {
            baseline: Baseline::new(window_ms),
            state: SeriesState::Warmup,
            dir: Direction::Up,
            onset_ms: 0,
            severity: Severity::Low,
            calm: 0,
            peak: 0.0,
            windows: 0,
            cooldown: 0,
            cusum_up: 0.0,
            cusum_down: 0.0,
            cusum_start_ms: 0,
            dropped: 0,
            likelihood: Likelihood::new(),
            record: 0.0,
            scan: Scan::default(),
            onset_quiet: 0,
            onset_lik: OnsetLikelihood::default(),
            watch_start_ms: None,
            tail: TailCalibration::default(),
            range: Range::default(),
            day: DayRecord::default(),
        }
    }

    pub fn observe(&self, t_ms: i64, x: f64, p: &Params) -> Observation {
        let f = self.baseline.forecast(t_ms);
        let x = if x.is_finite() { x } else { 0.0 };
        let warm =
            self.baseline.windows() >= p.warmup_windows && self.baseline.span_ms() >= p.warmup_ms;
        let sd = if f.counts { f.sd.max(1.0) } else { f.sd };
        let z = ((x - f.mean) / sd).clamp(-1e6, 1e6);
        let ratio = if f.counts {
            (x + 1.0) / (f.mean + 1.0)
        } else {
            x / f.mean.abs().max(1e-9)
        };
        let scan = self.scan.test(x, &f, p);
        let mut by_scan = false;
        // `p_alone`: the likelier direction's p-value without the scan.
        let (p_up, p_down, pv, p_alone, dir) = if f.counts {
            let mut up = nb_upper(x, f.mean.max(0.5), f.phi);
            if p.robust_counts && f.mean >= p.robust_min_mean {
                up = up.max(t_upper((x - f.robust_mean) / f.robust_sd, p.t_df));
            }
            let alone_up = up;
            if scan.p < up {
                up = scan.p;
                by_scan = true;
            }
            let down = if ratio <= p.drop_ratio && f.mean >= p.min_count {
                nb_lower(x, f.mean, f.phi)
            } else {
                1.0
            };
            if down < up {
                (up, down, down, down, Direction::Down)
            } else {
                (up, down, up, alone_up, Direction::Up)
            }
        } else {
            let up = t_upper(z, p.cont_t_df);
            let down = t_upper(-z, p.cont_t_df);
            let dir = if z >= 0.0 {
                Direction::Up
            } else {
                Direction::Down
            };
            let two_sided = (2.0 * up.min(down)).min(1.0);
            (up, down, two_sided, two_sided, dir)
        };
        Observation {
            x,
            f,
            p_up,
            p_down,
            p: pv,
            p_alone,
            dir,
            ratio: if ratio.is_finite() { ratio } else { 0.0 },
            z,
            robust_z: ((x - f.robust_mean) / f.robust_sd.max(1e-12)).clamp(-1e6, 1e6),
            warm,
            scan,
            by_scan,
        }
    }

    /// Guard fraction in [0, 1]: 1 when the minimum-count and minimum-ratio guards pass.
    fn guard(&self, o: &Observation, p: &Params) -> f64 {
        if !o.f.counts {
            return 1.0;
        }
        match o.dir {
            Direction::Up => {
                // A scan is guarded on its sums: 6 complaints over 4 windows pass `min_count`.
                let (ratio, x) = if o.by_scan {
                    (o.scan.ratio(), o.scan.observed)
                } else {
                    (o.ratio, o.x)
                };
                let r = ((ratio - 1.0) / (p.min_ratio - 1.0).max(1e-9)).clamp(0.0, 1.0);
                let c = (x / p.min_count.max(1e-9)).clamp(0.0, 1.0);
                r.min(c)
            }
            Direction::Down => {
                if self.dropped >= p.drop_windows {
                    1.0
                } else {
                    0.0
                }
            }
        }
    }

    fn severity(o: &Observation, dir: Direction) -> Severity {
        if !o.f.counts {
            return match o.z.abs() {
                z if z >= 32.0 => Severity::Critical,
                z if z >= 16.0 => Severity::High,
                z if z >= 8.0 => Severity::Medium,
                _ => Severity::Low,
            };
        }
        if dir == Direction::Down {
            return Severity::High;
        }
        let by_ratio = match o.ratio {
            r if r >= 8.0 => Severity::Critical,
            r if r >= 4.0 => Severity::High,
            r if r >= 2.0 => Severity::Medium,
            _ => Severity::Low,
        };
        // A handful of extra complaints is never worse than medium, whatever the ratio.
        if o.x - o.f.mean < 30.0 {
            by_ratio.min(Severity::Medium)
        } else {
            by_ratio
        }
    }

    fn update_cusum(&mut self, t_ms: i64, o: &Observation, p: &Params) {
        if !o.warm {
            return;
        }
        let z = o.z.clamp(-4.0, 4.0);
        if self.cusum_up <= 0.0 && self.cusum_down <= 0.0 {
            self.cusum_start_ms = t_ms;
        }
        self.cusum_up = (self.cusum_up + z - p.cusum_k).max(0.0);
        self.cusum_down = if o.f.counts {
            0.0
        } else {
            (self.cusum_down - z - p.cusum_k).max(0.0)
        };
    }

    /// Runs the lifecycle on an observation whose p-value was adjusted to `q`.
    pub fn decide(&mut self, t_ms: i64, o: &Observation, q: f64, p: &Params) -> Assessment {
        let was_in_crisis = self.state == SeriesState::Crisis;
        self.update_cusum(t_ms, o, p);
        self.watch_start_ms = if o.warm && o.p < p.calm_p {
            Some(self.watch_start_ms.unwrap_or(t_ms))
        } else {
            None
        };
        let e_open = p.open_evidence();
        let e_tail = -q.max(1e-300).log10();
        let cusum = match o.dir {
            Direction::Up => self.cusum_up,
            Direction::Down => self.cusum_down,
        };
        // A ramp counts only while the current window is itself clearly high: a CUSUM fed by a
        // slightly biased forecast must not open crises on its own.
        let e_ramp = if o.p < p.calm_p {
            e_open * cusum / p.cusum_h
        } else {
            0.0
        };
        let ramp = e_ramp > e_tail;
        let e_raw = -o.p.max(1e-300).log10();
        let mut e = e_tail.max(e_ramp);
        if o.warm && p.record_factor > 0.0 {
            // Bursty series: a crisis must out-surprise the series' own recent record.
            let rec = p.record_factor * self.record;
            if e_raw < rec {
                e = e.min(e_open * 0.99 * (e_raw / rec.max(1e-9)));
            }
        }
        // Surprise during warm-up measures the unlearned baseline, not the series: a first-day
        // burst against an expected ~0 would otherwise set a record that gags the detector for
        // days after warm-up.
        if o.warm {
            self.record = (self.record * p.record_decay).max(e_raw.min(50.0));
        }
        if p.use_likelihood {
            let learn = o.warm && self.state != SeriesState::Crisis;
            let e_lik = self
                .likelihood
                .step(e_raw, p.short_alpha, p.long_alpha, learn);
            e = e.min(e_lik * p.lik_scale);
        }
        self.dropped = if o.f.counts && o.dir == Direction::Down {
            self.dropped.saturating_add(1)
        } else {
            0
        };
        let g = self.guard(o, p);
        if g < 1.0 {
            e = e.min(e_open) * 0.99 * g;
        }
        let score = if o.warm { e / (e + e_open) } else { 0.0 };
        let mut transition = None;
        if self.state == SeriesState::Crisis {
            transition = self.continue_crisis(o, p);
        } else {
            self.cooldown = self.cooldown.saturating_sub(1);
            // In cooldown a new crisis needs `cooldown_evidence` times the usual evidence: a
            // relapse of the same wave does not page twice, a much bigger one still does.
            let need = if self.cooldown == 0 {
                e_open
            } else {
                e_open * p.cooldown_evidence
            };
            if o.warm && e >= need {
                self.state = SeriesState::Crisis;
                self.dir = o.dir;
                self.onset_ms = if ramp {
                    self.cusum_start_ms
                } else if o.by_scan && o.dir == Direction::Up {
                    // The scanned span, from where this run of unusual windows began: windows
                    // before it were not unusual on their own.
                    let span = t_ms - (o.scan.k as i64 - 1) * self.baseline.window_ms();
                    self.watch_start_ms.map_or(span, |w| w.max(span))
                } else {
                    t_ms
                };
                self.severity = Self::severity(o, o.dir);
                self.peak = o.x;
                self.windows = 1;
                self.calm = 0;
                self.cusum_up = 0.0;
                self.cusum_down = 0.0;
                self.likelihood.reset_short();
                self.scan.clear();
                transition = Some(Transition::Opened {
                    onset_ms: self.onset_ms,
                });
            } else {
                self.state = if !o.warm {
                    SeriesState::Warmup
                } else if o.p < p.calm_p {
                    SeriesState::Watch
                } else {
                    SeriesState::Normal
                };
            }
        }
        // Onset marking: the score with the surprise judged by the series' own tail (1.5, see
        // `TailCalibration`; by its own rate since 1.8), weighted by how unusual the recent
        // surprise is for this series (a bursty series is surprising often; its onsets must be
        // rarer still).
        let excess = e_raw
            - self
                .tail
                .calibrated(e_raw, TAIL_FORGIVEN, TAIL_MODEL_WEIGHT);
        // The tail counts bursts, not the windows of one (1.8): a crisis's later windows stay
        // surprising for as long as the multi-window scan holds, and counting each of them
        // made one storm of 20 windows look like 20 storms (Twitter CVS, 03-26, hid 04-14).
        // The window that opens a crisis is learned; the ones inside it are not.
        if o.warm && !was_in_crisis {
            let decay = 0.5f64.powf(self.baseline.window_ms() as f64 / TAIL_HALF_LIFE_MS);
            self.tail.learn(e_raw, decay);
        }
        let e_onset = (e - excess).max(0.0);
        let onset_base = if o.warm {
            e_onset / (e_onset + e_open)
        } else {
            0.0
        };
        let lik = self
            .onset_lik
            .step(e_raw, p.onset_short_alpha, p.onset_long_alpha);
        let mut onset_score = onset_base * lik;
        // One onset in 36 hours per series at most (see `Params::onset_quiet_windows`). From 1.4
        // to 1.6 continuous values were quiet for six hours only: a measured quantity (a road's
        // speed) has separate incidents hours apart, and a day hid the second of them. Since
        // 1.6 the range record below marks such a second incident when it goes beyond the
        // first, and a day for every series was better (1.7; NAB's 34 files, continuous quiet
        // period of 3 / 6 / 12 / 24 h: 75.2 / 75.7 / 76.2 / 76.7 standard, the same 60 windows
        // found: the six-hour series were bursty ones marking their next spike). 1.8 made it
        // 36 h: with the tail judged by the series' own rate the quiet period no longer trades
        // windows found against phase luck (NAB's 34 files, standard at 0.5, 6 / 12 / 18 / 24 /
        // 30 / 36 / 42 / 48 / 54 / 72 h: 79.1 / 79.6 / 79.8 / 80.1 / 80.2 / 80.4 / 80.4 / 80.5
        // / 79.2 / 79.6, the same 60 windows up to 48 h; 36 h is the middle of the plateau,
        // away from the cliff at 54 h where a window is lost).
        if self.onset_quiet > 0 {
            self.onset_quiet -= 1;
            onset_score = onset_score.min(0.2 * score);
        } else if onset_score >= 0.5 {
            self.onset_quiet = p.onset_quiet_windows;
        }
        // A window beyond every value the series has shown marks an onset on its own (1.6,
        // `range.rs`), quiet period or not: the quiet period is there for a bursty series' next
        // ordinary spike, and this one is bigger than any before it. (Respecting the quiet
        // period: 71.8 / 63.8 / 76.2 on NAB's 34 files, against 73.0 / 64.7 / 77.5 in 1.6;
        // starting a quiet period of its own changes nothing.)
        let beyond = self
            .range
            .excess(o.x, p.range_warmup_windows, p.range_margin);
        onset_score = onset_score.max(Range::score(beyond));
        // The first hour is start-up (1.7): PFE's tweets open with 36 in their fourth window,
        // more than any later window shows in eight weeks, and with it in the range the
        // bursts of 13 and 17 that NAB labels (03-04, 03-14) broke nothing (first hour
        // skipped / not: 75.7 / 67.3 / 80.3 against 73.0 / 64.7 / 77.5 on NAB's 34 files; the
        // same from 30 minutes to 2 hours).
        if self.baseline.span_ms() >= p.range_startup_ms {
            self.range.learn(o.x);
        }
        // Below the alarm threshold the onset score is scaled to [0, 0.2) (1.9), so that a
        // record day (`day.rs`), marked at 0.3, lies above every unmarked window: an
        // onset-marking consumer can then take record days with a threshold of 0.3 and the
        // onsets alone with 0.5.
        if onset_score < 0.5 {
            onset_score *= SUB_ALARM_ONSET_SCALE;
        }
        let day_record = self.day.step(t_ms, o.x, o.f.counts, p);
        if day_record != 0.0 {
            onset_score = onset_score.max(DAY_RECORD_SCORE);
        }
        let in_crisis = self.state == SeriesState::Crisis;
        // The crisis this window belongs to: still open, or resolved by this very window.
        let reported = in_crisis || matches!(transition, Some(Transition::Resolved { .. }));
        // The window that opened a crisis was cleared from the scan with the ones before it.
        if !matches!(transition, Some(Transition::Opened { .. })) {
            self.scan.push(o.x, &o.f);
        }
        self.baseline.note_raw(o.x);
        if !in_crisis || self.windows > p.adapt_windows {
            self.learn(t_ms, o, p);
        } else {
            self.baseline.skip(t_ms);
        }
        Assessment {
            expected: o.f.mean,
            upper: o.f.mean + upper_z(p.open_p) * o.f.sd,
            p_value: o.p,
            p_window: o.p_alone,
            evidence: match transition {
                Some(Transition::Opened { .. } | Transition::Escalated { .. }) => {
                    Some(self.evidence(t_ms, o, ramp))
                }
                _ => None,
            },
            p_up: o.p_up,
            p_down: o.p_down,
            robust_z: o.robust_z,
            score,
            onset_score,
            day_record,
            ratio: o.ratio,
            state: self.state,
            severity: self.severity,
            transition,
            peak: if reported { self.peak } else { 0.0 },
            windows_in_crisis: if reported { self.windows } else { 0 },
        }
    }

    /// What carried the evidence of an opening or escalation, for the crisis event: the ramp
    /// (CUSUM) when it outweighed the tail test, else the scan when it carried the upward
    /// evidence, else this window alone.
    fn evidence(&self, t_ms: i64, o: &Observation, ramp: bool) -> Evidence {
        if ramp {
            Evidence {
                test: EvidenceTest::Ramp,
                windows: ((t_ms - self.cusum_start_ms) / self.baseline.window_ms().max(1) + 1)
                    .clamp(1, u32::MAX as i64) as u32,
                observed: o.x,
                expected: o.f.mean,
                p_value: o.p_alone,
            }
        } else if o.by_scan && o.dir == Direction::Up {
            Evidence {
                test: EvidenceTest::Scan,
                windows: o.scan.k as u32,
                observed: o.scan.observed,
                expected: o.scan.expected,
                p_value: o.scan.p,
            }
        } else {
            Evidence {
                test: EvidenceTest::Window,
                windows: 1,
                observed: o.x,
                expected: o.f.mean,
                p_value: o.p_alone,
            }
        }
    }

    fn continue_crisis(&mut self, o: &Observation, p: &Params) -> Option<Transition> {
        self.windows = self.windows.saturating_add(1);
        self.peak = match self.dir {
            Direction::Up => self.peak.max(o.x),
            Direction::Down => self.peak.min(o.x),
        };
        // Hysteresis: staying in crisis needs far less evidence than opening one.
        let calm = match (self.dir, o.f.counts) {
            (Direction::Up, true) => o.p_up > p.calm_p || o.ratio < (1.0 + p.min_ratio) / 2.0,
            (Direction::Down, true) => o.p_down > p.calm_p || o.ratio > 2.0 * p.drop_ratio,
            (Direction::Up, false) => o.p_up > p.calm_p,
            (Direction::Down, false) => o.p_down > p.calm_p,
        };
        self.calm = if calm { self.calm + 1 } else { 0 };
        if self.calm >= p.calm_windows {
            // `windows` and `peak` stay as they were: the resolved event reports them (the
            // next opening resets both).
            self.state = SeriesState::Normal;
            self.cooldown = p.cooldown_windows;
            return Some(Transition::Resolved {
                onset_ms: self.onset_ms,
            });
        }
        let now = Self::severity(o, self.dir);
        if !calm && now > self.severity {
            self.severity = now;
            return Some(Transition::Escalated {
                onset_ms: self.onset_ms,
            });
        }
        None
    }

    fn learn(&mut self, t_ms: i64, o: &Observation, p: &Params) {
        // During warm-up the detector cannot flag anything, so what the baseline learns must
        // protect itself: counts are clipped on the Poisson scale (the overdispersion is not
        // known yet and a burst in the first day would inflate it and its own clip), so a storm
        // in the first day does not become the hour-of-day shape. Continuous values have no
        // such scale: early on they clip only gross outliers.
        let (c, sd) = match (o.f.counts, o.warm) {
            (true, true) => (p.winsor_sd, o.f.sd.max(1.0)),
            (true, false) => (p.winsor_sd, o.f.mean.max(0.0).sqrt().max(1.0)),
            (false, true) => (p.winsor_sd, o.f.sd),
            (false, false) => (2.0 * p.winsor_sd, o.f.sd),
        };
        let (x, spread_x) = if self.baseline.windows() < 8 {
            (o.x, o.x)
        } else {
            // A burst during warm-up must not teach the count model a dispersion that then
            // hides the next one: clip the spread on the same Poisson scale, more loosely.
            // On a sparse series (expected below `robust_min_mean`, where the NB alone decides) a
            // window already unusual (watch) teaches the spread only as much as the level: a
            // storm building over hours must not raise the overdispersion that judges it.
            let sparse_watch = o.p_up < p.calm_p && o.f.mean < p.robust_min_mean;
            let cs = if o.f.counts && (!o.warm || sparse_watch) {
                if o.warm {
                    p.winsor_sd
                } else {
                    2.0 * p.winsor_sd
                }
            } else {
                p.spread_winsor_sd
            };
            (
                o.x.clamp(o.f.mean - c * sd, o.f.mean + c * sd),
                o.x.clamp(o.f.mean - cs * sd, o.f.mean + cs * sd),
            )
        };
        self.baseline.learn(t_ms, x, spread_x, &p.rates);
    }
}

/// [`TailCalibration`]: what a series has shown halves in two weeks (the onset likelihood's
/// memory); half a window is forgiven at each level (one earlier burst is not a habit); a
/// calibrated model weighs a hundredth against what the series has shown. NAB's 34 files,
/// standard at 0.5 (1.8 as shipped: 80.1): forgiven 0 / 0.25 / 0.75 / 1 / 2 give 77.8 / 79.2
/// / 80.0 / 79.5 / 78.9; half-life 7 / 28 days 79.9 / 79.0; model weight 0.001 / 0.1 / 1
/// 80.1 / 80.1 / 80.0 (docs/detection.md has the rest).
const TAIL_FORGIVEN: f64 = 0.5;
const TAIL_MODEL_WEIGHT: f64 = 0.01;
const TAIL_HALF_LIFE_MS: f64 = 14.0 * 24.0 * 3_600_000.0;

/// One-sided standard-normal quantile for `p` (the `upper` bound in standard deviations).
fn upper_z(p: f64) -> f64 {
    let z = std::f64::consts::SQRT_2 * statrs::function::erf::erfc_inv(2.0 * p.clamp(1e-300, 0.5));
    if z.is_finite() { z } else { 0.0 }
}
