//! Raw text -> (topic, complaint?, terms). Pure: no I/O, no clocks, no async.
//!
//! One pass folds the text (lowercase, no diacritics, words split by single spaces); one
//! Aho-Corasick pass over the folded text finds every topic phrase, lexicon word, negator and
//! booster at once (overlapping matches, so "not bad" yields "not" and "bad"). The rest works
//! on the few hits: topic by weighted phrase count, complaint by a VADER-style score.
//! See `docs/classification.md`.

mod complaint;
mod lexicon;
mod normalize;
mod taxonomy;
#[cfg(test)]
mod tests;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use serde::Deserialize;
use std::collections::BTreeMap;
use thiserror::Error;

use crate::event::TopicId;
pub use complaint::ComplaintConfig;
use complaint::{Hit, ScoreScratch};
use lexicon::{ALL, EN, ES};
use normalize::Folded;
use taxonomy::{Kind, Table};

/// Name of the catch-all topic; always the last topic id.
pub const OTHER_TOPIC: &str = "other";

/// One topic of the taxonomy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicConfig {
    /// Topic name: a metric label value and the Kafka key of its crises (`[a-z0-9_]+`).
    pub name: String,
    /// Phrases per language code (`en`, `es`, or `any`), matched case- and accent-insensitively
    /// on word boundaries. No stemming: list the variants ("cancel", "cancelled").
    #[serde(default)]
    pub phrases: BTreeMap<String, Vec<String>>,
    /// Phrases that, when present, veto this topic.
    #[serde(default)]
    pub exclude: BTreeMap<String, Vec<String>>,
    /// Phrases that select this topic like `phrases` and also signal a complaint on their own
    /// ("cancelled", "on hold", "charged twice"), with weight `complaint.cue_weight`.
    #[serde(default)]
    pub cues: BTreeMap<String, Vec<String>>,
}

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

// Deriving needs a change to `event.rs` (owned elsewhere); this keeps `Classification: Default`.
#[allow(clippy::derivable_impls)]
impl Default for TopicId {
    fn default() -> Self {
        TopicId(0)
    }
}

/// Per-thread scratch buffers: after the first few events, classification allocates nothing.
#[derive(Debug, Default)]
pub struct Scratch {
    text: Folded,
    hits: Vec<Hit>,
    topic_score: Vec<u32>,
    excluded: Vec<bool>,
    score: ScoreScratch,
}

pub struct Classifier {
    topics: Vec<String>,
    table: Table,
    automaton: AhoCorasick,
    complaint: ComplaintConfig,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("topics", &self.topics)
            .field("patterns", &self.table.patterns.len())
            .field("automaton_patterns", &self.table.automaton.len())
            .field("automaton_bytes", &self.automaton.memory_usage())
            .finish()
    }
}

/// Language mask of an event's language tag (`en`, `es-MX`, `EN_us`); anything else is all.
fn event_lang(tag: Option<&str>) -> u8 {
    let Some(tag) = tag else { return ALL };
    let primary = tag.split(['-', '_']).next().unwrap_or("");
    if primary.eq_ignore_ascii_case("en") {
        EN
    } else if primary.eq_ignore_ascii_case("es") {
        ES
    } else {
        ALL
    }
}

impl Classifier {
    pub fn new(topics: &[TopicConfig], complaint: &ComplaintConfig) -> Result<Self, ClassifyError> {
        let mut names: Vec<String> = Vec::with_capacity(topics.len() + 1);
        for t in topics {
            if t.name == OTHER_TOPIC || names.contains(&t.name) {
                return Err(ClassifyError::Invalid(format!(
                    "topic {:?} is declared twice or is the implicit `other`",
                    t.name
                )));
            }
            names.push(t.name.clone());
        }
        names.push(OTHER_TOPIC.to_string());
        let table = Table::build(topics)?;
        // A DFA: the pattern set is fixed at start-up and lookups are the hot path.
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            // Every pattern starts with a space, so a start-byte prefilter would stop at
            // every word: pure overhead.
            .prefilter(false)
            .build(table.automaton.iter().map(|&i| &table.patterns[i as usize]))
            .map_err(|e| ClassifyError::Invalid(format!("automaton: {e}")))?;
        Ok(Classifier {
            topics: names,
            table,
            automaton,
            complaint: complaint.clone(),
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

    /// Text of a term id from [`Classification::terms`], as written in the configuration
    /// (empty for an unknown id).
    pub fn term(&self, id: u32) -> &str {
        self.table.terms.get(id as usize).map_or("", String::as_str)
    }

    pub fn classify(
        &self,
        input: &ClassifyInput<'_>,
        scratch: &mut Scratch,
        out: &mut Classification,
    ) {
        out.terms.clear();
        let lang = event_lang(input.language);
        self.find(input.text.unwrap_or(""), scratch);
        out.topic = match input.topic {
            Some(name) => self.topic_id(name).unwrap_or(self.other()),
            None => self.text_topic(lang, scratch),
        };
        self.collect_terms(out.topic, lang, scratch, out);
        out.complaint = match (input.complaint, input.sentiment) {
            (Some(c), _) => c,
            (None, Some(s)) if s.is_finite() => s < self.complaint.sentiment_threshold,
            _ => self.complaint_score(lang, scratch) <= self.complaint.threshold,
        };
    }

    /// The text's complaint score in -1..+1 (negative: complaint-like), ignoring upstream
    /// fields. For evaluation and debugging.
    pub fn score(&self, text: &str, language: Option<&str>, scratch: &mut Scratch) -> f64 {
        self.find(text, scratch);
        self.complaint_score(event_lang(language), scratch)
    }

    /// Folds the text, runs the automaton once (keeping hits that stay within a sentence) and
    /// looks up each word's hash in the word map.
    fn find(&self, text: &str, s: &mut Scratch) {
        normalize::fold(text, &mut s.text);
        s.hits.clear();
        let folded = &s.text;
        for m in self.automaton.find_overlapping_iter(&folded.buf) {
            let entry = self.table.automaton[m.pattern().as_usize()] as usize;
            let Some(word) = folded.word_at(m.start() + 1) else {
                continue;
            };
            let words = self.table.entries[entry].words as usize;
            let last = (word + words).min(folded.words.len());
            if folded.words[word + 1..last]
                .iter()
                .any(|w| w.sentence_start)
            {
                continue;
            }
            s.hits.push(Hit {
                entry: entry as u32,
                word: word as u32,
            });
        }
        for (i, w) in folded.words.iter().enumerate() {
            let Some(&entry) = self.table.words.get(&w.hash) else {
                continue;
            };
            // A hash collision must not invent a word: compare the padded bytes.
            let pattern = self.table.patterns[entry as usize].as_bytes();
            let at = (w.start as usize).saturating_sub(1);
            if folded.buf.get(at..at + pattern.len()) == Some(pattern) {
                s.hits.push(Hit {
                    entry,
                    word: i as u32,
                });
            }
        }
    }

    /// Highest total phrase length (in words) wins: "damaged bag" beats "bag". Ties go to the
    /// topic listed first. Excluded topics cannot win; no phrase means `other`.
    fn text_topic(&self, lang: u8, s: &mut Scratch) -> TopicId {
        let n = self.topics.len() - 1;
        s.topic_score.clear();
        s.topic_score.resize(n, 0);
        s.excluded.clear();
        s.excluded.resize(n, false);
        for h in &s.hits {
            let e = &self.table.entries[h.entry as usize];
            for p in e.phrases.iter().filter(|p| p.lang & lang != 0) {
                let t = usize::from(p.topic);
                match p.kind {
                    Kind::Exclude => s.excluded[t] = true,
                    Kind::Phrase | Kind::Cue => s.topic_score[t] += e.words,
                }
            }
        }
        let mut best = (0, n);
        for (t, &score) in s.topic_score.iter().enumerate() {
            if score > best.0 && !s.excluded[t] {
                best = (score, t);
            }
        }
        TopicId(best.1 as u16)
    }

    fn collect_terms(&self, topic: TopicId, lang: u8, s: &Scratch, out: &mut Classification) {
        for h in &s.hits {
            let e = &self.table.entries[h.entry as usize];
            for p in &e.phrases {
                if p.topic == topic.0
                    && p.kind != Kind::Exclude
                    && p.lang & lang != 0
                    && !out.terms.contains(&p.term)
                {
                    out.terms.push(p.term);
                }
            }
        }
    }

    fn complaint_score(&self, lang: u8, s: &mut Scratch) -> f64 {
        let entries = &self.table.entries;
        let lang = complaint::scoring_lang(lang, entries, &s.hits);
        complaint::score(
            &self.complaint,
            entries,
            &s.text,
            &s.hits,
            lang,
            &mut s.score,
        )
    }
}
