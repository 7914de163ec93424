//! The pattern table: every topic phrase, lexicon entry and closed-class word, folded and
//! merged into one entry per distinct pattern, so that one matcher (`words.rs`) finds them all.

use std::collections::HashMap;

use super::lexicon::{self, ALL, EN, ES, Role};
use super::normalize::fold_pattern;
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
    /// Languages in which the pattern is some topic's cue (from `phrases`).
    pub cue: u8,
    pub phrases: Vec<PhraseRef>,
}

/// Folded patterns (`" word word "`) and their entries, index-aligned: the entry id.
#[derive(Debug, Default)]
pub(crate) struct Table {
    pub patterns: Vec<String>,
    pub entries: Vec<Entry>,
    /// Topic phrases as written in the configuration, by term id.
    pub terms: Vec<String>,
    index: HashMap<String, usize>,
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
        for e in &mut t.entries {
            e.cue = e
                .phrases
                .iter()
                .filter(|p| p.kind == Kind::Cue)
                .fold(0, |m, p| m | p.lang);
        }
        Ok(t)
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
