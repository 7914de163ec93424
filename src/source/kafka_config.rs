//! `[kafka]` configuration.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::Problem;

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
    /// Channel for events that do not name one, by source topic name.
    #[serde(default)]
    pub channel_by_topic: BTreeMap<String, String>,
    /// librdkafka properties passed through unchanged (`security.protocol`, `sasl.*`, `ssl.*`).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
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

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: default_brokers(),
            group_id: default_group(),
            topics: default_topics(),
            crisis_topic: default_crisis_topic(),
            dlq_topic: default_dlq_topic(),
            channel_by_topic: BTreeMap::new(),
            properties: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if self.brokers.trim().is_empty() {
            out.push(Problem {
                key: "kafka.brokers".into(),
                line: None,
                message: "must not be empty".into(),
            });
        }
        if self.topics.is_empty() {
            out.push(Problem {
                key: "kafka.topics".into(),
                line: None,
                message: "at least one topic or regex".into(),
            });
        }
        for (t, c) in &self.channel_by_topic {
            if crate::event::Channel::parse(c).is_none() {
                out.push(Problem {
                    key: format!("kafka.channel_by_topic.{t}"),
                    line: None,
                    message: format!("unknown channel {c:?}"),
                });
            }
        }
        out
    }
}
