//! The pattern table: every topic phrase, lexicon entry and closed-class word, folded and
//! merged into one entry per distinct pattern, so that one automaton finds them all.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::lexicon::{self, ALL, EN, ES, Role};
use super::normalize::{fold_pattern, word_hash};
use super::{ClassifyError, TopicConfig};

/// How a topic phrase counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Selects the topic.
    Phrase,
    /// Selects the topic and signals a complaint.
    Cue,
    /// Vetoes the topic.
    Exclude,
}

/// One topic phrase behind a pattern.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PhraseRef {
    pub topic: u16,
    pub term: u32,
    pub kind: Kind,
    pub lang: u8,
}

/// Everything known about one distinct folded pattern.
#[derive(Debug, Default)]
pub(crate) struct Entry {
    /// Number of words in the pattern.
    pub words: u32,
    /// Valence per language (`[en, es]`); 0 when the lexicon has no entry.
    pub valence: [f32; 2],
    /// Languages in which the pattern negates what follows.
    pub negator: u8,
    /// Booster increment per language.
    pub booster: [f32; 2],
    /// Languages in which the pattern is a contrast word ("but").
    pub contrast: u8,
    /// Languages the pattern hints at (function words).
    pub hint: u8,
    pub phrases: Vec<PhraseRef>,
}

/// Patterns and entries, index-aligned with the automaton's pattern ids.
#[derive(Debug, Default)]
pub(crate) struct Table {
    pub patterns: Vec<String>,
    pub entries: Vec<Entry>,
    /// Topic phrases as written in the configuration, by term id.
    pub terms: Vec<String>,
    /// Entries the automaton finds, by automaton pattern id.
    pub automaton: Vec<u32>,
    /// Single-word entries, by [`word_hash`]: most of the lexicon. Kept out of the automaton,
    /// whose DFA would otherwise outgrow the CPU caches and report a match per word.
    pub words: HashMap<u64, u32, BuildHasherDefault<PassThrough>>,
    index: HashMap<String, usize>,
}

/// The keys are already hashes (`word_hash`).
#[derive(Default)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// `en`, `es` or `any` to a language mask.
pub(crate) fn lang_mask(code: &str) -> Option<u8> {
    match code {
        "en" => Some(EN),
        "es" => Some(ES),
        "any" => Some(ALL),
        _ => None,
    }
}

impl Table {
    fn entry(&mut self, pattern: String) -> &mut Entry {
        let next = self.entries.len();
        let i = *self.index.entry(pattern.clone()).or_insert(next);
        if i == next {
            let words = pattern.matches(' ').count().saturating_sub(1) as u32;
            self.patterns.push(pattern);
            self.entries.push(Entry {
                words,
                ..Entry::default()
            });
        }
        &mut self.entries[i]
    }

    /// The table for a taxonomy plus the built-in lexicons.
    pub fn build(topics: &[TopicConfig]) -> Result<Table, ClassifyError> {
        let mut t = Table::default();
        if topics.len() >= usize::from(u16::MAX) {
            return Err(ClassifyError::Invalid("too many topics".into()));
        }
        for (i, topic) in topics.iter().enumerate() {
            let lists = [
                (&topic.phrases, Kind::Phrase),
                (&topic.cues, Kind::Cue),
                (&topic.exclude, Kind::Exclude),
            ];
            for (map, kind) in lists {
                for (code, phrases) in map {
                    let lang = lang_mask(code).ok_or_else(|| {
                        ClassifyError::Invalid(format!(
                            "topic {:?}: language {code:?} is not one of en, es, any",
                            topic.name
                        ))
                    })?;
                    for p in phrases {
                        t.add_phrase(i as u16, kind, lang, &topic.name, p)?;
                    }
                }
            }
        }
        let lex = lexicon::builtin();
        for (li, map) in lex.valence.iter().enumerate() {
            for (pattern, v) in map {
                t.entry(pattern.clone()).valence[li] = *v;
            }
        }
        for (pattern, lang, role) in &lex.roles {
            let e = t.entry(pattern.clone());
            match role {
                Role::Negator => e.negator |= lang,
                Role::Contrast => e.contrast |= lang,
                Role::Hint => e.hint |= lang,
                Role::Booster(b) => {
                    for (li, bit) in [EN, ES].into_iter().enumerate() {
                        if lang & bit != 0 {
                            e.booster[li] = *b;
                        }
                    }
                }
            }
        }
        t.split();
        Ok(t)
    }

    /// Sends multi-word entries to the automaton and single words to the word map (the
    /// automaton too, on the unlikely hash collision).
    fn split(&mut self) {
        for (i, e) in self.entries.iter().enumerate() {
            let key = word_hash(self.patterns[i].trim().as_bytes());
            if e.words == 1 && !self.words.contains_key(&key) {
                self.words.insert(key, i as u32);
            } else {
                self.automaton.push(i as u32);
            }
        }
    }

    fn add_phrase(
        &mut self,
        topic: u16,
        kind: Kind,
        lang: u8,
        name: &str,
        phrase: &str,
    ) -> Result<(), ClassifyError> {
        let folded = fold_pattern(phrase).ok_or_else(|| {
            ClassifyError::Invalid(format!("topic {name:?}: phrase {phrase:?} has no words"))
        })?;
        let term = if kind == Kind::Exclude {
            u32::MAX
        } else {
            // The same phrase listed for two languages of one topic is one term.
            let existing = self.index.get(&folded).and_then(|&i| {
                self.entries[i]
                    .phrases
                    .iter()
                    .find(|r| r.topic == topic && r.kind != Kind::Exclude)
                    .map(|r| r.term)
            });
            match existing {
                Some(term) => term,
                None => {
                    self.terms.push(phrase.to_string());
                    (self.terms.len() - 1) as u32
                }
            }
        };
        self.entry(folded).phrases.push(PhraseRef {
            topic,
            term,
            kind,
            lang,
        });
        Ok(())
    }
}
