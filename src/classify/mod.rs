//! Raw text -> (topic, complaint?, terms). Pure: no I/O, no clocks, no async.
//!
//! PLACEHOLDER implementation: the public API below is the contract the pipeline relies on.

use serde::Deserialize;
use std::collections::BTreeMap;
use thiserror::Error;

use crate::event::TopicId;

/// Name of the catch-all topic; always the last topic id.
pub const OTHER_TOPIC: &str = "other";

/// One topic of the taxonomy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicConfig {
    /// Topic name: a metric label value and the Kafka key of its crises (`[a-z0-9_]+`).
    pub name: String,
    /// Phrases per language code (`en`, `es`, or `any`), matched case- and accent-insensitively
    /// on word boundaries.
    #[serde(default)]
    pub phrases: BTreeMap<String, Vec<String>>,
    /// Phrases that, when present, veto this topic.
    #[serde(default)]
    pub exclude: BTreeMap<String, Vec<String>>,
}

/// Complaint detection settings.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ComplaintConfig {}

#[derive(Debug, Error)]
pub enum ClassifyError {
    #[error("invalid taxonomy: {0}")]
    Invalid(String),
}

/// What the classifier is given: upstream fields win over text.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClassifyInput<'a> {
    pub text: Option<&'a str>,
    pub language: Option<&'a str>,
    pub topic: Option<&'a str>,
    pub complaint: Option<bool>,
    pub sentiment: Option<f64>,
}

/// Result of classifying one event. Reused across calls to avoid allocation.
#[derive(Debug, Clone, Default)]
pub struct Classification {
    pub topic: TopicId,
    pub complaint: bool,
    /// Matched term ids (see [`Classifier::term`]), deduplicated.
    pub terms: Vec<u32>,
}

impl Default for TopicId {
    fn default() -> Self {
        TopicId(0)
    }
}

/// Per-thread scratch buffers.
#[derive(Debug, Default)]
pub struct Scratch {
    buf: String,
}

pub struct Classifier {
    topics: Vec<String>,
    phrases: Vec<(u16, String)>,
}

impl Classifier {
    pub fn new(
        topics: &[TopicConfig],
        _complaint: &ComplaintConfig,
    ) -> Result<Self, ClassifyError> {
        let mut names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
        names.push(OTHER_TOPIC.to_string());
        let mut phrases = Vec::new();
        for (i, t) in topics.iter().enumerate() {
            for list in t.phrases.values() {
                for p in list {
                    phrases.push((i as u16, p.to_lowercase()));
                }
            }
        }
        Ok(Classifier {
            topics: names,
            phrases,
        })
    }

    /// Topic names; index = `TopicId`; the last is `other`.
    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    pub fn other(&self) -> TopicId {
        TopicId((self.topics.len() - 1) as u16)
    }

    pub fn topic_id(&self, name: &str) -> Option<TopicId> {
        self.topics
            .iter()
            .position(|t| t == name)
            .map(|i| TopicId(i as u16))
    }

    /// Text of a term id from [`Classification::terms`].
    pub fn term(&self, id: u32) -> &str {
        &self.phrases[id as usize].1
    }

    pub fn classify(
        &self,
        input: &ClassifyInput<'_>,
        scratch: &mut Scratch,
        out: &mut Classification,
    ) {
        out.terms.clear();
        out.topic = self.other();
        scratch.buf.clear();
        if let Some(t) = input.text {
            scratch.buf.push_str(&t.to_lowercase());
        }
        for (i, (topic, p)) in self.phrases.iter().enumerate() {
            if scratch.buf.contains(p.as_str()) {
                if out.terms.is_empty() {
                    out.topic = TopicId(*topic);
                }
                out.terms.push(i as u32);
            }
        }
        if let Some(name) = input.topic {
            out.topic = self.topic_id(name).unwrap_or(self.other());
        }
        out.complaint = input
            .complaint
            .or(input.sentiment.map(|s| s < -0.05))
            .unwrap_or(!out.terms.is_empty());
    }
}
