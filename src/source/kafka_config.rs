//! `[kafka]` configuration, with environment-variable overrides for containers.
//!
//! | variable                              | key                  |
//! |---------------------------------------|----------------------|
//! | `CRISIS_PULSE_KAFKA_BROKERS`          | `kafka.brokers`      |
//! | `CRISIS_PULSE_KAFKA_GROUP_ID`         | `kafka.group_id`     |
//! | `CRISIS_PULSE_KAFKA_TOPICS` (a,b,^re) | `kafka.topics`       |
//! | `CRISIS_PULSE_KAFKA_CRISIS_TOPIC`     | `kafka.crisis_topic` |
//! | `CRISIS_PULSE_KAFKA_DLQ_TOPIC`        | `kafka.dlq_topic`    |
//! | `CRISIS_PULSE_KAFKA_PROP_<NAME>`      | `kafka.properties.<name>` (`SASL_PASSWORD` -> `sasl.password`) |

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::{Dur, Problem};
use crate::event::Channel;

/// `[kafka]`: where to consume contacts and publish crises.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated (`bootstrap.servers`).
    #[serde(default = "default_brokers")]
    pub brokers: String,
    /// Consumer group id.
    #[serde(default = "default_group")]
    pub group_id: String,
    /// Topics to subscribe to; an entry starting with `^` is a regex.
    #[serde(default = "default_topics")]
    pub topics: Vec<String>,
    /// Topic that receives crisis events.
    #[serde(default = "default_crisis_topic")]
    pub crisis_topic: String,
    /// Dead-letter topic for refused input.
    #[serde(default = "default_dlq_topic")]
    pub dlq_topic: String,
    /// Optional topic that receives every closed window of every series (the pulse itself:
    /// observed, expected, upper bound, p-value, score, state), key = topic. Unset: not
    /// published.
    #[serde(default)]
    pub windows_topic: Option<String>,
    /// Channel for events that do not name one, by source topic name. Topics not listed
    /// map `contacts.<channel>` to `<channel>`.
    #[serde(default)]
    pub channel_by_topic: BTreeMap<String, String>,
    /// librdkafka properties passed through unchanged to consumer, producer and admin
    /// (`security.protocol`, `sasl.*`, `ssl.*`). Secret values are never logged.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// How often (processing time) delivered effects are flushed and offsets stored.
    #[serde(default = "default_commit_interval")]
    pub commit_interval: Dur,
    /// librdkafka `statistics.interval.ms`: how often high watermarks (consumer lag) refresh.
    #[serde(default = "default_stats_interval")]
    pub statistics_interval: Dur,
    /// Longest a graceful shutdown (or a revoke) waits for the producer to deliver.
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout: Dur,
    /// CloudEvents `ce_source` of published crisis events.
    #[serde(default = "default_ce_source")]
    pub ce_source: String,
    /// Delivery guarantee of crisis events and dead letters: `at-least-once` (default;
    /// duplicates after a crash carry the same ids) or `exactly-once` (Kafka transactions;
    /// needs `[state] dir` and Apache Kafka >= 2.5; downstream reads with
    /// `isolation.level=read_committed`).
    #[serde(default)]
    pub delivery: Delivery,
    /// `transactional.id` of the exactly-once producer. Must be stable across restarts of an
    /// instance and unique per instance (default: `crisis-pulse-<group_id>`).
    #[serde(default)]
    pub transactional_id: Option<String>,
    /// How several instances of one group share the work: `standalone` (default; each
    /// instance windows and detects on the partitions it is assigned, with its own state) or
    /// `group` (every instance decodes and classifies its partitions and forwards the result
    /// to one internal topic; the one member that owns it counts and detects for the whole
    /// group, its state kept in a compacted Kafka topic, so it moves with the partition).
    #[serde(default)]
    pub mode: GroupMode,
    /// Group mode: the internal topic of classified events (one partition). Default:
    /// `<group_id>.classified`.
    #[serde(default)]
    pub classified_topic: Option<String>,
    /// Group mode: the compacted topic holding the detector's checkpoints. Default:
    /// `<group_id>.state`.
    #[serde(default)]
    pub state_topic: Option<String>,
}

/// `kafka.mode`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupMode {
    #[default]
    Standalone,
    Group,
}

impl GroupMode {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupMode::Standalone => "standalone",
            GroupMode::Group => "group",
        }
    }
}

/// `kafka.delivery`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    #[default]
    AtLeastOnce,
    ExactlyOnce,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::AtLeastOnce => "at-least-once",
            Delivery::ExactlyOnce => "exactly-once",
        }
    }
}

fn default_brokers() -> String {
    "127.0.0.1:9092".into()
}
fn default_group() -> String {
    "crisis-pulse".into()
}
fn default_topics() -> Vec<String> {
    vec!["^contacts\\..+".into()]
}
fn default_crisis_topic() -> String {
    "crisis.events".into()
}
fn default_dlq_topic() -> String {
    "contacts.dlq".into()
}
fn default_commit_interval() -> Dur {
    Dur::from_secs(1)
}
fn default_stats_interval() -> Dur {
    Dur::from_secs(2)
}
fn default_drain_timeout() -> Dur {
    Dur::from_secs(10)
}
fn default_ce_source() -> String {
    "/crisis-pulse".into()
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: default_brokers(),
            group_id: default_group(),
            topics: default_topics(),
            crisis_topic: default_crisis_topic(),
            dlq_topic: default_dlq_topic(),
            windows_topic: None,
            channel_by_topic: BTreeMap::new(),
            properties: BTreeMap::new(),
            commit_interval: default_commit_interval(),
            statistics_interval: default_stats_interval(),
            drain_timeout: default_drain_timeout(),
            ce_source: default_ce_source(),
            delivery: Delivery::default(),
            transactional_id: None,
            mode: GroupMode::default(),
            classified_topic: None,
            state_topic: None,
        }
    }
}

/// Property names whose values are secrets: never logged.
pub fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password")
        || k.contains("secret")
        || k.ends_with(".key.pem")
        || k == "sasl.oauthbearer.config"
}

impl KafkaConfig {
    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut bad = |key: String, message: String| {
            out.push(Problem {
                key,
                line: None,
                message,
            })
        };
        if self.brokers.trim().is_empty() {
            bad("kafka.brokers".into(), "must not be empty".into());
        }
        if self.topics.is_empty() {
            bad("kafka.topics".into(), "at least one topic or regex".into());
        }
        if self.crisis_topic.is_empty() || self.dlq_topic.is_empty() {
            bad(
                "kafka.crisis_topic".into(),
                "output topics must be named".into(),
            );
        }
        for (t, c) in &self.channel_by_topic {
            if Channel::parse(c).is_none() {
                bad(
                    format!("kafka.channel_by_topic.{t}"),
                    format!("unknown channel {c:?}"),
                );
            }
        }
        if self.commit_interval.as_millis() <= 0 {
            bad("kafka.commit_interval".into(), "must be positive".into());
        }
        if self.mode == GroupMode::Group && self.delivery == Delivery::ExactlyOnce {
            bad(
                "kafka.mode".into(),
                "the group mode runs at least once for now; kafka.delivery = \"exactly-once\" needs kafka.mode = \"standalone\"".into(),
            );
        }
        out
    }

    /// Applies `CRISIS_PULSE_KAFKA_*` overrides from `vars` (normally `std::env::vars()`).
    pub fn apply_env(&mut self, vars: impl IntoIterator<Item = (String, String)>) {
        for (k, v) in vars {
            let Some(name) = k.strip_prefix("CRISIS_PULSE_KAFKA_") else {
                continue;
            };
            match name {
                "BROKERS" => self.brokers = v,
                "GROUP_ID" => self.group_id = v,
                "TOPICS" => {
                    self.topics = v
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                }
                "CRISIS_TOPIC" => self.crisis_topic = v,
                "DLQ_TOPIC" => self.dlq_topic = v,
                "WINDOWS_TOPIC" => self.windows_topic = Some(v).filter(|s| !s.is_empty()),
                "DELIVERY" => match v.as_str() {
                    "at-least-once" => self.delivery = Delivery::AtLeastOnce,
                    "exactly-once" => self.delivery = Delivery::ExactlyOnce,
                    _ => {
                        tracing::warn!(value = %v, "CRISIS_PULSE_KAFKA_DELIVERY must be at-least-once or exactly-once; ignored")
                    }
                },
                "TRANSACTIONAL_ID" => self.transactional_id = Some(v),
                "MODE" => match v.as_str() {
                    "standalone" => self.mode = GroupMode::Standalone,
                    "group" => self.mode = GroupMode::Group,
                    _ => {
                        tracing::warn!(value = %v, "CRISIS_PULSE_KAFKA_MODE must be standalone or group; ignored")
                    }
                },
                _ => {
                    if let Some(prop) = name.strip_prefix("PROP_") {
                        let key = prop.to_ascii_lowercase().replace('_', ".");
                        self.properties.insert(key, v);
                    }
                }
            }
        }
    }

    /// The passthrough properties with secret values replaced, for logs.
    pub fn redacted_properties(&self) -> BTreeMap<&str, &str> {
        self.properties
            .iter()
            .map(|(k, v)| {
                let shown = if is_secret(k) { "***" } else { v.as_str() };
                (k.as_str(), shown)
            })
            .collect()
    }

    /// Group mode's internal topic of classified events.
    pub fn classified_topic(&self) -> String {
        self.classified_topic
            .clone()
            .unwrap_or_else(|| format!("{}.classified", self.group_id))
    }

    /// Group mode's compacted topic of detector checkpoints.
    pub fn state_topic(&self) -> String {
        self.state_topic
            .clone()
            .unwrap_or_else(|| format!("{}.state", self.group_id))
    }

    /// The exactly-once producer's `transactional.id`.
    pub fn transactional_id(&self) -> String {
        self.transactional_id
            .clone()
            .unwrap_or_else(|| format!("crisis-pulse-{}", self.group_id))
    }

    /// The channel implied by a source topic: `channel_by_topic`, else `contacts.<channel>`.
    pub fn channel_for_topic(&self, topic: &str) -> Option<Channel> {
        if let Some(c) = self.channel_by_topic.get(topic) {
            return Channel::parse(c);
        }
        topic.rsplit('.').next().and_then(Channel::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_and_redaction() {
        let mut k = KafkaConfig::default();
        k.apply_env([
            ("CRISIS_PULSE_KAFKA_BROKERS".to_string(), "b:1".to_string()),
            ("CRISIS_PULSE_KAFKA_TOPICS".into(), "a, ^b\\..+".into()),
            (
                "CRISIS_PULSE_KAFKA_PROP_SASL_PASSWORD".into(),
                "hunter2".into(),
            ),
            ("OTHER".into(), "x".into()),
        ]);
        assert_eq!(k.brokers, "b:1");
        assert_eq!(k.topics, vec!["a".to_string(), "^b\\..+".to_string()]);
        assert_eq!(k.properties["sasl.password"], "hunter2");
        assert_eq!(k.redacted_properties()["sasl.password"], "***");
    }

    #[test]
    fn group_mode_from_env_and_its_topics() {
        let mut k = KafkaConfig::default();
        assert_eq!(k.mode, GroupMode::Standalone);
        k.apply_env([("CRISIS_PULSE_KAFKA_MODE".to_string(), "group".to_string())]);
        assert_eq!(k.mode, GroupMode::Group);
        assert_eq!(k.classified_topic(), "crisis-pulse.classified");
        assert_eq!(k.state_topic(), "crisis-pulse.state");
        assert!(k.validate().is_empty());
        k.apply_env([("CRISIS_PULSE_KAFKA_MODE".to_string(), "both".to_string())]);
        assert_eq!(k.mode, GroupMode::Group, "an unknown value is ignored");
        k.delivery = Delivery::ExactlyOnce;
        let problems = k.validate();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "kafka.mode");
    }

    #[test]
    fn channel_from_topic_name() {
        let mut k = KafkaConfig::default();
        assert_eq!(k.channel_for_topic("contacts.phone"), Some(Channel::Phone));
        assert_eq!(k.channel_for_topic("contacts.dlq"), None);
        k.channel_by_topic.insert("calls".into(), "phone".into());
        assert_eq!(k.channel_for_topic("calls"), Some(Channel::Phone));
    }
}
