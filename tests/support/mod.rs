//! Simulated contact-centre counts per 5-minute window: a daily shape, a weekly shape,
//! negative-binomial noise, and injected events. Deterministic for a seed.

use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand_distr::{Distribution, Gamma, Poisson};

use crisis_pulse::detect::{Assessment, DetectConfig, Detector, Transition};

pub const WINDOW_MS: i64 = 300_000;
pub const HOUR: i64 = 12;
pub const DAY: i64 = 24 * HOUR;
pub const WEEK: i64 = 7 * DAY;
/// 2024-01-01 00:00 UTC, a Monday.
pub const T0: i64 = 1_704_067_200_000;

/// Office-hours shape: quiet nights, a morning and an afternoon peak.
pub fn daily_shape(window: i64) -> f64 {
    let h = (window % DAY) as f64 / HOUR as f64;
    let bump = |c: f64, w: f64| (-(h - c).powi(2) / (2.0 * w * w)).exp();
    0.15 + 0.9 * bump(10.5, 1.8) + 0.7 * bump(15.0, 2.0)
}

/// Weekends are quieter.
pub fn weekly_shape(window: i64) -> f64 {
    if (window / DAY) % 7 >= 5 { 0.5 } else { 1.0 }
}

/// Draws counts with mean `mean(window)` and overdispersion `phi` (var = m + phi m^2).
pub struct Sim {
    rng: SmallRng,
    pub phi: f64,
}

impl Sim {
    pub fn new(seed: u64, phi: f64) -> Self {
        Sim {
            rng: SmallRng::seed_from_u64(seed),
            phi,
        }
    }

    pub fn draw(&mut self, mean: f64) -> f64 {
        if mean <= 0.0 {
            return 0.0;
        }
        let m = if self.phi > 0.0 {
            let shape = 1.0 / self.phi;
            Gamma::new(shape, mean / shape).map_or(mean, |g| g.sample(&mut self.rng))
        } else {
            mean
        };
        Poisson::new(m.max(1e-9)).map_or(0.0, |p| p.sample(&mut self.rng))
    }
}

/// What happened over a run of one series.
#[derive(Debug, Default)]
pub struct Run {
    /// Window index of every `Opened`.
    pub opened: Vec<i64>,
    pub resolved: Vec<i64>,
    pub escalated: Vec<i64>,
    pub assessments: Vec<Assessment>,
}

impl Run {
    /// Windows from `onset` to the first `Opened` at or after it (None: never detected).
    pub fn delay(&self, onset: i64) -> Option<i64> {
        self.opened
            .iter()
            .find(|&&w| w >= onset)
            .map(|&w| w - onset)
    }

    /// `Opened` transitions outside `[from, to)` (false crises) within `[lo, hi)`.
    pub fn false_opens(&self, lo: i64, hi: i64, from: i64, to: i64) -> usize {
        self.opened
            .iter()
            .filter(|&&w| w >= lo && w < hi && !(w >= from && w < to))
            .count()
    }
}

/// Runs one series of `windows` windows through a fresh detector.
pub fn run(cfg: &DetectConfig, windows: i64, mut count: impl FnMut(i64) -> f64) -> Run {
    let mut det = Detector::new(cfg, WINDOW_MS);
    let mut out = Vec::new();
    let mut r = Run::default();
    for w in 0..windows {
        det.assess(T0 + w * WINDOW_MS, &[count(w)], &mut out);
        let Some(a) = out.first().copied() else {
            continue;
        };
        match a.transition {
            Some(Transition::Opened { .. }) => r.opened.push(w),
            Some(Transition::Resolved { .. }) => r.resolved.push(w),
            Some(Transition::Escalated { .. }) => r.escalated.push(w),
            None => {}
        }
        r.assessments.push(a);
    }
    r
}
