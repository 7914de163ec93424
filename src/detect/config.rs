//! `[detect]`: one sensitivity preset, optional expert overrides, and the resolved parameters
//! the detector actually runs with.

use serde::{Deserialize, Serialize};

use crate::baseline::Rates;
use crate::config::Dur;

/// Sensitivity presets: how much evidence opens a crisis.
///
/// | preset      | p to open (after FDR) | min ratio | min count |
/// |-------------|-----------------------|-----------|-----------|
/// | `sensitive` | 1e-3                  | 1.3       | 4         |
/// | `balanced`  | 1e-5                  | 1.5       | 6         |
/// | `strict`    | 1e-7                  | 2.0       | 10        |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Sensitivity {
    /// Earlier and more alerts: for low-stakes topics or a human watching a dashboard.
    Sensitive,
    /// The default: a false crisis per topic is expected far less than once a month.
    #[default]
    Balanced,
    /// Only unmistakable waves: for topics that page someone at night.
    Strict,
}

/// Detector settings (`[detect]` in the config file). Only `sensitivity` is meant to be set;
/// the other keys override one aspect of the preset and default to it.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DetectConfig {
    /// Preset: `sensitive`, `balanced` (default) or `strict`.
    #[serde(default)]
    pub sensitivity: Sensitivity,
    /// p-value (after false-discovery-rate control across topics) below which a crisis opens.
    #[serde(default)]
    pub open_p: Option<f64>,
    /// A crisis needs at least this ratio of observed to expected.
    #[serde(default)]
    pub min_ratio: Option<f64>,
    /// A crisis needs at least this many complaints in the window.
    #[serde(default)]
    pub min_count: Option<f64>,
    /// Control the false-discovery rate across topics each window (Benjamini-Hochberg).
    /// Default true; turn off only to compare.
    #[serde(default)]
    pub fdr: Option<bool>,
    /// Event time a series must cover before it may alert (default `"1d"`).
    #[serde(default)]
    pub warmup: Option<Dur>,
    /// Half-life of the baseline level (default `"12h"`): shorter follows level shifts faster
    /// but also absorbs slow ramps.
    #[serde(default)]
    pub level_half_life: Option<Dur>,
    /// Quiet windows in a row that resolve a crisis (default 6).
    #[serde(default)]
    pub calm_windows: Option<u32>,
    /// After a crisis resolves, a new one on the series needs three times the usual evidence
    /// for this long (default `"12h"`): a relapse of the same wave does not page twice.
    #[serde(default)]
    pub cooldown: Option<Dur>,
    /// Count series: a drop below this fraction of the expected count (a channel gone silent)
    /// also opens a crisis (default 0.2; 0 disables).
    #[serde(default)]
    pub drop_ratio: Option<f64>,
}

/// Everything the detector runs with, resolved from a [`DetectConfig`] and the window length.
/// Stored in checkpoints so a restored detector behaves exactly as before.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Params {
    pub open_p: f64,
    pub min_ratio: f64,
    pub min_count: f64,
    pub fdr: bool,
    pub warmup_ms: i64,
    pub warmup_windows: u64,
    pub calm_windows: u32,
    pub cooldown_windows: u32,
    pub drop_ratio: f64,
    /// A window is calm when its p-value is above this and its ratio below `min_ratio`.
    pub calm_p: f64,
    /// Winsorize what the baseline learns at this many standard deviations.
    pub winsor_sd: f64,
    /// ... and the spread estimates at this many (bursty series must learn their burstiness).
    pub spread_winsor_sd: f64,
    /// After this many windows in crisis the baseline learns again (a level shift).
    pub adapt_windows: u32,
    /// CUSUM allowance and decision interval, in forecast standard deviations.
    pub cusum_k: f64,
    pub cusum_h: f64,
    /// Windows in a row a drop must last before it opens a crisis (a silent channel, not one
    /// empty window).
    pub drop_windows: u32,
    /// Counts must also be significant under the robust Student-t model of the residual.
    pub robust_counts: bool,
    /// ... from this expected count up (below it the negative binomial alone is right: a
    /// Student-t on 2 -> 12 would be far too lenient).
    pub robust_min_mean: f64,
    /// Degrees of freedom of the Student-t in the robust check on counts (and the scan's).
    pub t_df: f64,
    /// Degrees of freedom of the Student-t that scores continuous values (1.4: 15, was 5 like
    /// `t_df`). Their spread is already a robust, floored forecast error; with 5 df a value
    /// needed ~18 robust sd to reach the opening evidence (15 df: 6.5), so drops and level
    /// shifts of 6-15 sd in a steady series (a road's speed, an ad exchange's price) were
    /// scored below any useful threshold. Counts never use it.
    #[serde(default = "default_cont_t_df")]
    pub cont_t_df: f64,
    pub rates: Rates,
    /// In cooldown, a new crisis needs this many times the usual evidence.
    pub cooldown_evidence: f64,
    /// A crisis must out-surprise this fraction of the series' own decayed record surprise
    /// (bursty series alarm on their extremes only)...
    pub record_factor: f64,
    /// ... which decays by this factor per window (half-life two days).
    pub record_decay: f64,
    /// Anomaly-likelihood layer (off: on NAB it lost recall for no fewer false positives):
    /// whether it gates opening, the weight of the newest window in the short surprise average,
    /// the long-run learning rate, and the factor that maps its evidence onto the tail's scale.
    pub use_likelihood: bool,
    /// Counts: also test the sum of the last 2, 4 and 8 windows (see `scan.rs`).
    pub scan: bool,
    /// After an onset is marked (`onset_score` at or above 0.5), the series' `onset_score` is
    /// cut to 0.2 x score for this many windows (36 hours since 1.8, a day before): one onset
    /// a day and a half per series at most, whatever the lifecycle does (a crisis that resolves
    /// and reopens within hours, a bursty series' next spike). NAB counts each of those as a
    /// false positive. From 1.4 to 1.6 continuous values were quiet for a quarter of a day (see
    /// `series.rs`).
    #[serde(default)]
    pub onset_quiet_windows: u32,
    /// Onset likelihood (`likelihood.rs`): weight of the newest window in the short surprise
    /// average, and the long-run learning rate (two weeks).
    #[serde(default)]
    pub onset_short_alpha: f64,
    #[serde(default)]
    pub onset_long_alpha: f64,
    pub short_alpha: f64,
    pub long_alpha: f64,
    pub lik_scale: f64,
    /// Range record (1.6, see `range.rs`): once a series has shown this many windows, a window
    /// beyond everything it has shown...
    #[serde(default = "default_range_warmup_windows")]
    pub range_warmup_windows: u64,
    /// ... by more than this fraction of that range marks an onset.
    #[serde(default = "default_range_margin")]
    pub range_margin: f64,
    /// ... and what it has shown counts from this much event time after its first window (1.7):
    /// a series' first hour is its start-up, not its range.
    #[serde(default = "default_range_startup_ms")]
    pub range_startup_ms: i64,
    /// Day record (1.9, see `day.rs`): a trailing day's mean above the record of every
    /// earlier day by more than this fraction marks (`onset_score` 0.3)...
    #[serde(default = "default_day_margin")]
    pub day_margin: f64,
    /// ... once the series has this much event time (eight days: the first day has no whole
    /// trailing day, so after eight every hour of the week has one in the records; with seven,
    /// 500 simulated quiet topics marked 49 record days in two weeks, mostly the first Monday
    /// after the warm-up, against 22) ...
    #[serde(default = "default_day_warmup_ms")]
    pub day_warmup_ms: i64,
    /// ... and its last day-record mark is this old (48 hours: a day that stays above the
    /// record is one event) ...
    #[serde(default = "default_day_quiet_ms")]
    pub day_quiet_ms: i64,
    /// ... and a trailing day counts only when its data reach back this many hours.
    #[serde(default = "default_day_reach_hours")]
    pub day_reach_hours: u32,
    /// On counts the margin is at least this many Poisson standard deviations of the day's
    /// total (3: a topic's ordinary days never set records by noise alone).
    #[serde(default = "default_day_count_sd")]
    pub day_count_sd: f64,
}

/// What a checkpoint of a detector before 1.6 restores with, and the defaults (see `range.rs`
/// for how they were chosen).
fn default_range_warmup_windows() -> u64 {
    600
}

fn default_range_margin() -> f64 {
    0.05
}

/// What a checkpoint of a detector before 1.7 restores with: its series keep the range they
/// learned, start-up included; new series skip their first hour.
fn default_range_startup_ms() -> i64 {
    3_600_000
}

/// The day record's defaults, also what a checkpoint of a detector before 1.9 restores with
/// (see `day.rs` and `docs/detection.md` for how they were chosen).
fn default_day_margin() -> f64 {
    0.03
}

fn default_day_warmup_ms() -> i64 {
    8 * 24 * 3_600_000
}

fn default_day_quiet_ms() -> i64 {
    48 * 3_600_000
}

fn default_day_reach_hours() -> u32 {
    20
}

fn default_day_count_sd() -> f64 {
    3.0
}

/// Continuous values' Student-t degrees of freedom; also what a checkpoint of a detector before
/// 1.4 (which had none) restores with.
fn default_cont_t_df() -> f64 {
    15.0
}

impl Params {
    pub fn resolve(cfg: &DetectConfig, window_ms: i64) -> Params {
        let window_ms = window_ms.max(1);
        let (open_p, min_ratio, min_count) = match cfg.sensitivity {
            Sensitivity::Sensitive => (1e-3, 1.3, 4.0),
            Sensitivity::Balanced => (1e-5, 1.5, 6.0),
            Sensitivity::Strict => (1e-7, 2.0, 10.0),
        };
        let hour = 3_600_000;
        let windows_per = |ms: i64| u32::try_from((ms / window_ms).max(1)).unwrap_or(u32::MAX);
        let cooldown_ms = cfg.cooldown.map_or(12 * hour, Dur::as_millis);
        Params {
            open_p: cfg.open_p.unwrap_or(open_p).clamp(1e-300, 0.5),
            min_ratio: cfg.min_ratio.unwrap_or(min_ratio).max(1.0),
            min_count: cfg.min_count.unwrap_or(min_count).max(0.0),
            fdr: cfg.fdr.unwrap_or(true),
            warmup_ms: cfg.warmup.map_or(24 * hour, Dur::as_millis),
            warmup_windows: 48,
            calm_windows: cfg.calm_windows.unwrap_or(6).max(1),
            cooldown_windows: windows_per(cooldown_ms),
            drop_ratio: cfg.drop_ratio.unwrap_or(0.2).clamp(0.0, 1.0),
            calm_p: 0.01,
            winsor_sd: 3.0,
            spread_winsor_sd: 12.0,
            adapt_windows: windows_per(2 * hour),
            cusum_k: 1.0,
            cusum_h: 15.0,
            drop_windows: 3,
            t_df: 5.0,
            cont_t_df: default_cont_t_df(),
            robust_counts: true,
            robust_min_mean: 5.0,
            cooldown_evidence: 3.0,
            record_factor: 0.7,
            record_decay: 0.5f64.powf(1.0 / f64::from(windows_per(48 * hour))),
            use_likelihood: false,
            scan: true,
            onset_quiet_windows: windows_per(36 * hour),
            onset_short_alpha: 0.2,
            onset_long_alpha: 1.0 / f64::from(windows_per(14 * 24 * hour)),
            short_alpha: 0.5,
            long_alpha: 1.0 / f64::from(windows_per(7 * 24 * hour)),
            lik_scale: 2.0,
            range_warmup_windows: default_range_warmup_windows(),
            range_margin: default_range_margin(),
            range_startup_ms: default_range_startup_ms(),
            day_margin: default_day_margin(),
            day_warmup_ms: default_day_warmup_ms(),
            day_quiet_ms: default_day_quiet_ms(),
            day_reach_hours: default_day_reach_hours(),
            day_count_sd: default_day_count_sd(),
            rates: Rates {
                level_half_life_ms: cfg.level_half_life.map_or(12 * hour, Dur::as_millis),
                hod: 0.05,
                dow: 0.01,
                spread_half_life: 2.0 * f64::from(windows_per(24 * hour)),
            },
        }
    }

    /// Evidence (-log10 p) that opens a crisis.
    pub fn open_evidence(&self) -> f64 {
        -self.open_p.log10()
    }
}
