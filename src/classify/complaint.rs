//! Complaint scoring from the automaton's hits, after VADER (Hutto & Gilbert 2014): sum the
//! valences of polar words, flipped by a preceding negator, raised by boosters and capitals,
//! reweighted around "but", pushed by `!`; topic cues count as negative words; a question
//! pulls towards "not a complaint". The sum is squashed into -1..+1 like VADER's compound.

use serde::Deserialize;

use super::lexicon::{ALL, EN, ES};
use super::normalize::Folded;
use super::taxonomy::Entry;

/// Complaint detection settings (`[complaint]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplaintConfig {
    /// A text whose score (-1..+1, VADER-style compound) is at or below this is a complaint.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// An upstream `sentiment` below this marks a complaint (used when there is no upstream
    /// `complaint` flag).
    #[serde(default = "default_sentiment_threshold")]
    pub sentiment_threshold: f64,
    /// Valence (VADER scale, -4..+4) of a topic `cues` phrase: "cancelled" or "on hold"
    /// counts like a negative word of this strength (entered as a positive number).
    #[serde(default = "default_cue_weight")]
    pub cue_weight: f64,
    /// Shift towards "not a complaint" when the text asks a question (VADER-scale units).
    #[serde(default = "default_question_weight")]
    pub question_weight: f64,
    /// A negator flips polar words up to this many words after it (VADER uses 3).
    #[serde(default = "default_negation_scope")]
    pub negation_scope: u32,
}

fn default_threshold() -> f64 {
    -0.05
}
fn default_sentiment_threshold() -> f64 {
    -0.05
}
fn default_cue_weight() -> f64 {
    2.0
}
fn default_question_weight() -> f64 {
    1.5
}
fn default_negation_scope() -> u32 {
    3
}

impl Default for ComplaintConfig {
    fn default() -> Self {
        ComplaintConfig {
            threshold: default_threshold(),
            sentiment_threshold: default_sentiment_threshold(),
            cue_weight: default_cue_weight(),
            question_weight: default_question_weight(),
            negation_scope: default_negation_scope(),
        }
    }
}

/// VADER's constants: negation scalar, capitals increment, per-`!` increment.
const N_SCALAR: f32 = -0.74;
const C_INCR: f32 = 0.733;
const EXCL_INCR: f32 = 0.292;
/// Boosters further from the polar word count less (VADER: 1, 0.95, 0.9).
const BOOST_DECAY: [f32; 3] = [1.0, 0.95, 0.9];

/// One automaton match: an entry starting at a word.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hit {
    pub entry: u32,
    pub word: u32,
}

/// A polar span (lexicon word or cue) before weighting.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Polar {
    start: u32,
    end: u32,
    valence: f32,
    cue: bool,
}

/// Per-event buffers for scoring.
#[derive(Debug, Default)]
pub(crate) struct ScoreScratch {
    negator: Vec<bool>,
    boost: Vec<f32>,
    polar: Vec<Polar>,
}

/// The language whose lexicon scores the text: the event's, else a guess from function words.
pub(crate) fn scoring_lang(event: u8, entries: &[Entry], hits: &[Hit]) -> u8 {
    if event != ALL {
        return event;
    }
    let (mut en, mut es) = (0u32, 0u32);
    super::tick(hits.len());
    for h in hits {
        let hint = entries[h.entry as usize].hint;
        en += u32::from(hint & EN != 0);
        es += u32::from(hint & ES != 0);
    }
    match en.cmp(&es) {
        std::cmp::Ordering::Greater => EN,
        std::cmp::Ordering::Less => ES,
        std::cmp::Ordering::Equal => ALL,
    }
}

fn valence(e: &Entry, lang: u8) -> f32 {
    match lang {
        EN => e.valence[0],
        ES => e.valence[1],
        _ if e.valence[0] != 0.0 => e.valence[0],
        _ => e.valence[1],
    }
}

/// Compound score in -1..+1; negative means complaint-like. `hits` are in text order (by
/// start word, then by length), as the matcher reports them; one pass over them and one over
/// the words keeps the cost linear however long the text.
pub(crate) fn score(
    cfg: &ComplaintConfig,
    entries: &[Entry],
    text: &Folded,
    hits: &[Hit],
    lang: u8,
    s: &mut ScoreScratch,
) -> f64 {
    let n = text.words.len();
    super::tick(n);
    s.negator.clear();
    s.negator.resize(n, false);
    s.boost.clear();
    s.boost.resize(n, 0.0);
    s.polar.clear();
    let mut contrast = None;
    let booster_lang = if lang == ES { 1 } else { 0 };
    super::tick(hits.len());
    for h in hits {
        let e = &entries[h.entry as usize];
        let (start, end) = (h.word, h.word + e.words.max(1) - 1);
        let cue = e.cue & lang != 0;
        let mut v = valence(e, lang);
        if cue {
            v = v.min(-(cfg.cue_weight as f32));
        }
        if v != 0.0 {
            s.polar.push(Polar {
                start,
                end,
                valence: v,
                cue,
            });
        }
        let last = end as usize;
        if e.negator & lang != 0 && last < n {
            s.negator[last] = true;
        }
        if e.booster[booster_lang] != 0.0 && last < n {
            s.boost[last] = e.booster[booster_lang];
        }
        if e.contrast & lang != 0 && contrast.is_none_or(|c| start < c) {
            contrast = Some(start);
        }
    }
    let mixed = text.mixed_case();
    let scope = cfg.negation_scope as usize;
    // One scan of the words before the spans: the last sentence start and the last negator
    // before the current span.
    let (mut cursor, mut sentence, mut negator) = (0usize, 0usize, None::<usize>);
    // The furthest end of the spans that start before the current one.
    let mut reach_before: Option<u32> = None;
    let mut group = (u32::MAX, None::<u32>);
    let mut sum = 0.0f32;
    debug_assert!(
        s.polar
            .windows(2)
            .all(|w| (w[0].start, w[0].end) < (w[1].start, w[1].end))
    );
    super::tick(s.polar.len());
    for (i, p) in s.polar.iter().enumerate() {
        if p.start != group.0 {
            reach_before = reach_before.max(group.1);
            group = (p.start, None);
        }
        group.1 = group.1.max(Some(p.end));
        // Counted once, inside a longer span: by one that starts earlier and reaches as far,
        // or by a longer one from the same word (the next ones, spans being sorted by length).
        let longer_same_start = s.polar.get(i + 1).is_some_and(|q| q.start == p.start);
        if reach_before.is_some_and(|r| r >= p.end) || longer_same_start {
            continue;
        }
        let start = p.start as usize;
        super::tick(start.saturating_sub(cursor));
        while cursor < start {
            if text.words[cursor].sentence_start {
                sentence = cursor;
            }
            if s.negator[cursor] {
                negator = Some(cursor);
            }
            cursor += 1;
        }
        // Negators and boosters count from the span's sentence start on.
        let from = if text.words[start].sentence_start {
            start
        } else {
            sentence
        };
        let negated = negator.is_some_and(|w| w >= from && start - w <= scope);
        let sign = p.valence.signum();
        let mut v = p.valence;
        // Boosters one to three words before, in the same sentence.
        for back in 1..=3usize.min(start - from) {
            v += sign * s.boost[start - back] * BOOST_DECAY[back - 1];
        }
        if mixed && text.words[start].caps {
            v += sign * C_INCR;
        }
        if negated {
            v = if p.cue { 0.0 } else { v * N_SCALAR };
        }
        if let Some(c) = contrast {
            v *= if p.start < c { 0.5 } else { 1.5 };
        }
        sum += v;
    }
    if sum != 0.0 {
        sum += sum.signum() * text.exclamations.min(4) as f32 * EXCL_INCR;
    }
    let mut sum = f64::from(sum);
    if text.questions > 0 {
        sum += cfg.question_weight;
    }
    sum / (sum * sum + 15.0).sqrt()
}
