//! Raw text -> (topic, complaint?, terms). Pure: no I/O, no clocks, no async.
//!
//! One pass folds the text (lowercase, no diacritics, words split by single spaces) and hashes
//! its words; one pass over the words walks a trie of word hashes that holds every topic
//! phrase, lexicon word, negator and booster (all matches, so "not bad" yields "not" and
//! "bad"). The rest works on the few hits: topic by weighted phrase count, complaint by a
//! VADER-style score. Every step is linear in the text. See `docs/classification.md`.

mod complaint;
mod lexicon;
mod normalize;
mod taxonomy;
#[cfg(test)]
mod tests;
mod words;

use serde::Deserialize;
use std::collections::BTreeMap;
use thiserror::Error;

use crate::event::TopicId;
pub use complaint::ComplaintConfig;
use complaint::{Hit, ScoreScratch};
use lexicon::{ALL, EN, ES};
use normalize::Folded;
use taxonomy::{Kind, Table};
use words::WordTrie;

/// Counts loop iterations on the per-event path, in test builds only: the linear-cost test
/// (`tests.rs`) checks that the count grows in proportion to the text. Every loop whose trip
/// count depends on the input calls this.
#[inline(always)]
fn tick(_n: usize) {
    #[cfg(test)]
    tests::WORK.with(|w| w.set(w.get() + _n as u64));
}

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
    /// Bit set of term ids already in `Classification::terms`.
    term_seen: Vec<u64>,
    score: ScoreScratch,
}

pub struct Classifier {
    topics: Vec<String>,
    table: Table,
    matcher: WordTrie,
    complaint: ComplaintConfig,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("topics", &self.topics)
            .field("patterns", &self.table.patterns.len())
            .field("matcher_bytes", &self.matcher.memory_usage())
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
        let matcher = WordTrie::build(&table.patterns);
        Ok(Classifier {
            topics: names,
            table,
            matcher,
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

    /// Folds the text and finds every pattern occurrence within a sentence, in text order.
    fn find(&self, text: &str, s: &mut Scratch) {
        normalize::fold(text, self.matcher.seed, &mut s.text);
        s.hits.clear();
        self.matcher.find_all(&s.text, &mut s.hits);
    }

    /// Highest total phrase length (in words) wins: "damaged bag" beats "bag". Ties go to the
    /// topic listed first. Excluded topics cannot win; no phrase means `other`.
    fn text_topic(&self, lang: u8, s: &mut Scratch) -> TopicId {
        let n = self.topics.len() - 1;
        s.topic_score.clear();
        s.topic_score.resize(n, 0);
        s.excluded.clear();
        s.excluded.resize(n, false);
        tick(s.hits.len() + n);
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

    fn collect_terms(&self, topic: TopicId, lang: u8, s: &mut Scratch, out: &mut Classification) {
        s.term_seen.clear();
        s.term_seen.resize(self.table.terms.len().div_ceil(64), 0);
        tick(s.hits.len() + s.term_seen.len());
        for h in &s.hits {
            let e = &self.table.entries[h.entry as usize];
            for p in &e.phrases {
                if p.topic == topic.0 && p.kind != Kind::Exclude && p.lang & lang != 0 {
                    let (word, bit) = (p.term as usize / 64, 1u64 << (p.term % 64));
                    if s.term_seen[word] & bit == 0 {
                        s.term_seen[word] |= bit;
                        out.terms.push(p.term);
                    }
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
