//! The configuration file: serde structs, typed durations, and `validate()` that reports
//! every problem at once with its key and, where it can, its line.

mod duration;

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use serde::Deserialize;

use crate::classify::{ComplaintConfig, TopicConfig};
use crate::detect::DetectConfig;
pub use duration::Dur;

/// Kafka settings (`[kafka]`).
pub use crate::source::kafka_config::{Delivery, KafkaConfig};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Event-time windows.
    #[serde(default)]
    pub window: WindowConfig,
    /// Anomaly detection.
    #[serde(default)]
    pub detect: DetectConfig,
    /// Topic taxonomy, in priority order; `other` is implicit.
    #[serde(default)]
    pub topics: Vec<TopicConfig>,
    /// Complaint classification.
    #[serde(default)]
    pub complaint: ComplaintConfig,
    /// Input limits: what counts as bad input.
    #[serde(default)]
    pub input: InputConfig,
    /// Kafka source and sinks (used by `run`).
    #[serde(default)]
    pub kafka: KafkaConfig,
    /// HTTP endpoint for /metrics, /healthz, /readyz.
    #[serde(default)]
    pub http: HttpConfig,
    /// Durable state of the `run` service (checkpoints).
    #[serde(default)]
    pub state: StateConfig,
}

/// `[state]`: where `run` keeps its checkpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Checkpoint directory (local disk, one per instance). Unset: no state is kept; a
    /// restart re-reads the open windows' input from Kafka but relearns every baseline.
    #[serde(default)]
    pub dir: Option<std::path::PathBuf>,
    /// How often (processing time) a checkpoint is written and the offsets it covers are
    /// committed. Shorter: less re-read after a crash; longer: fewer fsyncs (and, in the
    /// exactly-once mode, fewer and larger transactions).
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval: Dur,
}

fn default_checkpoint_interval() -> Dur {
    Dur::from_secs(10)
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            dir: None,
            checkpoint_interval: default_checkpoint_interval(),
        }
    }
}

/// `[window]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Window length, e.g. `"5m"`.
    #[serde(default = "default_window")]
    pub size: Dur,
    /// Distance between window starts; set below `size` for hopping windows (earlier warning).
    /// Must divide `size`. Defaults to `size` (tumbling).
    #[serde(default)]
    pub hop: Option<Dur>,
    /// How far behind the newest event time an event may arrive and still be counted.
    #[serde(default = "default_lateness")]
    pub allowed_lateness: Dur,
    /// A partition silent this long (processing time) stops holding the watermark back.
    #[serde(default = "default_idle")]
    pub idle_timeout: Dur,
    /// Sample event ids kept per topic and window (for crisis events).
    #[serde(default = "default_samples")]
    pub samples_per_window: usize,
    /// What a window counts for detection: `"customers"` (distinct complaining customers per
    /// window and topic, by `customer_id`; a complaint without one counts on its own) or
    /// `"events"` (every complaint, repeat contacts included). Both are reported.
    #[serde(default)]
    pub count: crate::window::CountMode,
}

fn default_window() -> Dur {
    Dur::from_secs(300)
}
fn default_lateness() -> Dur {
    Dur::from_secs(120)
}
fn default_idle() -> Dur {
    Dur::from_secs(30)
}
fn default_samples() -> usize {
    5
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            size: default_window(),
            hop: None,
            allowed_lateness: default_lateness(),
            idle_timeout: default_idle(),
            samples_per_window: default_samples(),
            count: crate::window::CountMode::default(),
        }
    }
}

/// `[input]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// Largest accepted payload, bytes.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// Event times before this are refused (RFC 3339).
    #[serde(default = "default_min_time")]
    pub min_event_time: String,
    /// Event times further than this ahead of the clock are refused.
    #[serde(default = "default_max_future")]
    pub max_future: Dur,
}

fn default_max_bytes() -> usize {
    64 * 1024
}
fn default_min_time() -> String {
    "2000-01-01T00:00:00Z".to_string()
}
fn default_max_future() -> Dur {
    Dur::from_secs(24 * 3600)
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            max_bytes: default_max_bytes(),
            min_event_time: default_min_time(),
            max_future: default_max_future(),
        }
    }
}

impl InputConfig {
    pub fn limits(&self) -> crate::event::DecodeLimits {
        crate::event::DecodeLimits {
            max_bytes: self.max_bytes,
            min_time_ms: crate::event::parse_timestamp(&self.min_event_time)
                .unwrap_or(946_684_800_000),
            max_future_ms: self.max_future.as_millis(),
            ..Default::default()
        }
    }
}

/// `[http]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address for /metrics, /healthz and /readyz.
    #[serde(default = "default_http_addr")]
    pub addr: String,
}

fn default_http_addr() -> String {
    "127.0.0.1:9898".to_string()
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            addr: default_http_addr(),
        }
    }
}

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key, e.g. `window.hop` or `topics[2].name`.
    pub key: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}: {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// Every problem found in a configuration file.
#[derive(Debug, Clone)]
pub struct Problems {
    pub file: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {} problem(s)", self.file, self.problems.len())?;
        for p in &self.problems {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

impl Config {
    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, Problems> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| Problems {
            file: file.clone(),
            problems: vec![Problem {
                key: "(file)".into(),
                line: None,
                message: e.to_string(),
            }],
        })?;
        Self::parse(&text, &file)
    }

    /// Parses and validates configuration text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, Problems> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            Problems {
                file: file.to_string(),
                problems: vec![Problem {
                    key: "(syntax)".into(),
                    line,
                    message: e.message().to_string(),
                }],
            }
        })?;
        let mut problems = cfg.validate();
        for p in &mut problems {
            p.line = p.line.or_else(|| find_line(text, &p.key));
        }
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(Problems {
                file: file.to_string(),
                problems,
            })
        }
    }

    /// Topic names in `TopicId` order, as the classifier numbers them: the taxonomy, then
    /// `other`. Cheap: for sinks that need names before a pipeline exists.
    pub fn topic_names(&self) -> Vec<String> {
        self.topics
            .iter()
            .map(|t| t.name.clone())
            .chain(std::iter::once(crate::classify::OTHER_TOPIC.to_string()))
            .collect()
    }

    /// Every semantic problem, not just the first.
    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut bad = |key: &str, message: String| {
            out.push(Problem {
                key: key.to_string(),
                line: None,
                message,
            })
        };
        let w = &self.window;
        if w.size.as_millis() < 1000 {
            bad("window.size", "must be at least 1s".into());
        }
        if let Some(h) = w.hop {
            if h.as_millis() <= 0 || h.as_millis() > w.size.as_millis() {
                bad(
                    "window.hop",
                    "must be positive and at most window.size".into(),
                );
            } else if w.size.as_millis() % h.as_millis() != 0 {
                bad(
                    "window.hop",
                    format!("{h} does not divide window.size {}", w.size),
                );
            }
        }
        if w.samples_per_window > 100 {
            bad("window.samples_per_window", "at most 100".into());
        }
        if crate::event::parse_timestamp(&self.input.min_event_time).is_none() {
            bad("input.min_event_time", "not an RFC 3339 timestamp".into());
        }
        if self.input.max_bytes < 64 {
            bad("input.max_bytes", "at least 64 bytes".into());
        }
        let mut names = BTreeSet::new();
        for (i, t) in self.topics.iter().enumerate() {
            let key = format!("topics[{i}].name");
            if t.name.is_empty()
                || !t
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                bad(&key, format!("{:?} must match [a-z0-9_]+", t.name));
            }
            if t.name == crate::classify::OTHER_TOPIC {
                bad(&key, "`other` is implicit; do not declare it".into());
            }
            if !names.insert(t.name.clone()) {
                bad(&key, format!("duplicate topic {:?}", t.name));
            }
            if t.phrases.values().all(Vec::is_empty) {
                bad(
                    &format!("topics[{i}].phrases"),
                    "at least one phrase".into(),
                );
            }
        }
        if self.topics.len() > 500 {
            bad(
                "topics",
                "at most 500 topics (metric label cardinality)".into(),
            );
        }
        if self.state.checkpoint_interval.as_millis() <= 0 {
            bad("state.checkpoint_interval", "must be positive".into());
        }
        for p in self.kafka.validate() {
            out.push(p);
        }
        out
    }
}

/// Best-effort line of the last path segment of `key` (`window.hop` -> the `hop =` line
/// after `[window]`).
fn find_line(text: &str, key: &str) -> Option<usize> {
    let leaf = key.rsplit('.').next()?.split('[').next()?;
    let section = key.split('.').next().unwrap_or("");
    let mut in_section = !key.contains('.');
    for (n, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.starts_with('[') {
            let name = l.trim_matches(|c| c == '[' || c == ']');
            in_section = name == section || name.starts_with(&format!("{section}."));
            continue;
        }
        if in_section && l.starts_with(leaf) && l[leaf.len()..].trim_start().starts_with('=') {
            return Some(n + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_match_the_classifier() {
        let c = Config::parse(crate::app::DEMO_CONFIG, "demo.toml").unwrap();
        let cls = crate::classify::Classifier::new(&c.topics, &c.complaint).unwrap();
        assert_eq!(c.topic_names(), cls.topics());
    }

    #[test]
    fn defaults_run() {
        let c = Config::parse("", "t.toml").unwrap();
        assert_eq!(c.window.size.as_millis(), 300_000);
    }

    #[test]
    fn delivery_and_state_settings() {
        let ok = Config::parse(
            "[kafka]\ndelivery = \"exactly-once\"\ntransactional_id = \"cp-1\"\n[state]\ndir = \"/var/lib/cp\"\ncheckpoint_interval = \"5s\"\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(ok.kafka.transactional_id(), "cp-1");
        assert_eq!(ok.state.checkpoint_interval.as_millis(), 5000);
        assert_eq!(
            Config::default().kafka.transactional_id(),
            "crisis-pulse-crisis-pulse"
        );
        let bad = Config::parse("[kafka]\ndelivery = \"twice\"\n", "t.toml").unwrap_err();
        assert_eq!(bad.problems[0].key, "(syntax)");
        let bad = Config::parse("[state]\ncheckpoint_interval = \"0s\"\n", "t.toml").unwrap_err();
        assert_eq!(bad.problems[0].key, "state.checkpoint_interval");
    }

    #[test]
    fn reports_every_problem_with_key_and_line() {
        let text = "[window]\nsize = \"10m\"\nhop = \"3m\"\n\n[input]\nmax_bytes = 10\n";
        let err = Config::parse(text, "t.toml").unwrap_err();
        let keys: Vec<_> = err
            .problems
            .iter()
            .map(|p| (p.key.as_str(), p.line))
            .collect();
        assert_eq!(
            keys,
            vec![("window.hop", Some(3)), ("input.max_bytes", Some(6))]
        );
    }

    #[test]
    fn unknown_keys_are_refused_with_line() {
        let err = Config::parse("[window]\nsize = \"5m\"\nsizee = 3\n", "t.toml").unwrap_err();
        assert_eq!(err.problems[0].line, Some(3));
        assert!(err.problems[0].message.contains("sizee"));
    }
}
