//! Sentiment lexicons, built in with `include_str!` (see `lexicons/README.md` for provenance
//! and licences), and the small closed word lists that shape a score: negators, intensifiers,
//! contrast words and language hints.
//!
//! Valences are on VADER's scale (about -4..+4). The files ship unchanged; everything derived
//! here (folding, AFINN rescaling, Spanish inflections) happens in memory at start-up.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::normalize::fold_pattern;

const VADER: &str = include_str!("../../lexicons/vader_lexicon.txt");
const AFINN_EN: &str = include_str!("../../lexicons/AFINN-en-165.txt");
const ELHPOLAR: &str = include_str!("../../lexicons/ElhPolar_esV1.lex");

/// AFINN (-5..+5) to VADER's scale: "bad" is -3 in AFINN, -2.5 in VADER.
const AFINN_SCALE: f32 = 0.8;
/// ElhPolar gives polarity only; a typical VADER magnitude for a clearly polar word.
const ELHPOLAR_VALENCE: f32 = 1.5;

/// Language bit masks.
pub(crate) const EN: u8 = 1;
pub(crate) const ES: u8 = 2;
pub(crate) const ALL: u8 = EN | ES;

/// A closed-class word's role in scoring.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Role {
    /// Flips the valence of a polar word within the next few words.
    Negator,
    /// Adds to (or, when negative, takes from) the magnitude of the next polar word.
    Booster(f32),
    /// "but": what follows weighs more than what precedes.
    Contrast,
    /// A frequent function word, used to guess the language of events that carry none.
    Hint,
}

/// Negators, folded (apostrophes removed: "don't" -> "dont").
const NEGATORS_EN: &[&str] = &[
    "not", "no", "never", "nothing", "nobody", "none", "nowhere", "neither", "nor", "without",
    "cannot", "cant", "dont", "doesnt", "didnt", "isnt", "wasnt", "arent", "werent", "wont",
    "wouldnt", "couldnt", "shouldnt", "hasnt", "havent", "hadnt", "aint", "neednt",
];
const NEGATORS_ES: &[&str] = &[
    "no", "nunca", "jamas", "sin", "nada", "nadie", "ni", "tampoco", "ningun", "ninguno", "ninguna",
];
/// VADER's booster increment, and a decrement for downtoners.
const B_INCR: f32 = 0.293;
const BOOSTERS_EN: &[(&str, f32)] = &[
    ("very", B_INCR),
    ("really", B_INCR),
    ("so", B_INCR),
    ("too", B_INCR),
    ("extremely", B_INCR),
    ("absolutely", B_INCR),
    ("completely", B_INCR),
    ("totally", B_INCR),
    ("incredibly", B_INCR),
    ("seriously", B_INCR),
    ("super", B_INCR),
    ("utterly", B_INCR),
    ("beyond", B_INCR),
    ("most", B_INCR),
    ("kind of", -B_INCR),
    ("sort of", -B_INCR),
    ("somewhat", -B_INCR),
    ("slightly", -B_INCR),
    ("a bit", -B_INCR),
    ("a little", -B_INCR),
];
const BOOSTERS_ES: &[(&str, f32)] = &[
    ("muy", B_INCR),
    ("realmente", B_INCR),
    ("tan", B_INCR),
    ("demasiado", B_INCR),
    ("super", B_INCR),
    ("totalmente", B_INCR),
    ("completamente", B_INCR),
    ("absolutamente", B_INCR),
    ("increiblemente", B_INCR),
    ("sumamente", B_INCR),
    ("bastante", B_INCR),
    ("un poco", -B_INCR),
    ("algo", -B_INCR),
];
const CONTRAST_EN: &[&str] = &["but"];
const CONTRAST_ES: &[&str] = &["pero"];
const HINTS_EN: &[&str] = &[
    "the", "and", "is", "are", "my", "you", "your", "to", "was", "for", "with", "this", "it", "of",
    "have", "i", "what", "how", "can",
];
const HINTS_ES: &[&str] = &[
    "el", "la", "los", "las", "que", "de", "mi", "por", "para", "con", "es", "y", "en", "una",
    "un", "lo", "muy", "pero", "como", "donde", "del", "esta",
];

/// The built-in word knowledge, keyed by folded pattern (`" word "`).
#[derive(Debug, Default)]
pub(crate) struct Lexicon {
    pub valence: [HashMap<String, f32>; 2],
    pub roles: Vec<(String, u8, Role)>,
}

/// Parsed once per process: the files are static.
pub(crate) fn builtin() -> &'static Lexicon {
    static LEX: OnceLock<Lexicon> = OnceLock::new();
    LEX.get_or_init(build)
}

fn build() -> Lexicon {
    let mut lex = Lexicon::default();
    let [en, es] = &mut lex.valence;
    // VADER first, AFINN only fills gaps: VADER's means are finer-grained.
    for line in VADER.lines() {
        let mut cols = line.split('\t');
        if let (Some(tok), Some(Ok(v))) = (cols.next(), cols.next().map(str::parse::<f32>)) {
            // Emoticons fold to nothing or to a stray letter; keep word entries only.
            if tok.bytes().any(|b| b.is_ascii_alphabetic())
                && tok
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'\'' || b == b' ')
            {
                insert(en, tok, v, true);
            }
        }
    }
    for line in AFINN_EN.lines() {
        if let Some((tok, v)) = line.rsplit_once('\t')
            && let Ok(v) = v.trim().parse::<f32>()
        {
            insert(en, tok, v * AFINN_SCALE, false);
        }
    }
    load_elhpolar(es);
    let negators = [(NEGATORS_EN, EN), (NEGATORS_ES, ES)];
    for (words, lang) in negators {
        for w in words {
            lex.roles.push((padded(w), lang, Role::Negator));
        }
    }
    for (words, lang) in [(BOOSTERS_EN, EN), (BOOSTERS_ES, ES)] {
        for (w, b) in words {
            lex.roles.push((padded(w), lang, Role::Booster(*b)));
        }
    }
    for (words, lang) in [(CONTRAST_EN, EN), (CONTRAST_ES, ES)] {
        for w in words {
            lex.roles.push((padded(w), lang, Role::Contrast));
        }
    }
    for (words, lang) in [(HINTS_EN, EN), (HINTS_ES, ES)] {
        for w in words {
            lex.roles.push((padded(w), lang, Role::Hint));
        }
    }
    // A negator's own valence ("no" is -1.2 in VADER) would count the negation twice.
    for (w, _, role) in &lex.roles {
        if *role == Role::Negator {
            en.remove(w);
            es.remove(w);
        }
    }
    lex
}

fn padded(w: &str) -> String {
    format!(" {w} ")
}

fn insert(map: &mut HashMap<String, f32>, tok: &str, v: f32, overwrite: bool) {
    if v == 0.0 {
        return;
    }
    if let Some(key) = fold_pattern(tok) {
        if overwrite {
            map.insert(key, v);
        } else {
            map.entry(key).or_insert(v);
        }
    }
}

/// ElhPolar: `lemma<TAB>positive|negative`, multi-word lemmas joined by `_`; a few lines use
/// spaces. Headwords listed with both polarities are dropped. Lemmas are expanded to the
/// common inflections (gender, number, participles), which the lexicon leaves out.
fn load_elhpolar(es: &mut HashMap<String, f32>) {
    let mut seen: HashMap<String, f32> = HashMap::new();
    for line in ELHPOLAR.lines() {
        let Some((lemma, pol)) = line.trim().rsplit_once(['\t', ' ']) else {
            continue;
        };
        let v = match pol.trim() {
            "positive" => ELHPOLAR_VALENCE,
            "negative" => -ELHPOLAR_VALENCE,
            _ => continue,
        };
        let Some(key) = fold_pattern(lemma.trim()) else {
            continue;
        };
        match seen.get(&key) {
            Some(old) if *old != v => {
                seen.insert(key, 0.0);
            }
            _ => {
                seen.insert(key, v);
            }
        }
    }
    for (key, v) in &seen {
        if *v != 0.0 {
            es.insert(key.clone(), *v);
        }
    }
    for (key, v) in &seen {
        if *v == 0.0 || key.matches(' ').count() != 2 {
            continue;
        }
        for form in inflections(key.trim()) {
            es.entry(padded(&form)).or_insert(*v);
        }
    }
}

/// Regular Spanish inflections of a single-word lemma. Over-generation is harmless: a form
/// that does not exist never occurs in text.
fn inflections(lemma: &str) -> Vec<String> {
    let stem = lemma.strip_suffix("se").filter(|s| s.ends_with('r'));
    let word = stem.unwrap_or(lemma);
    let mut out = Vec::new();
    if let Some(root) = word.strip_suffix("ar") {
        for end in ["ado", "ada", "ados", "adas", "a", "an", "o"] {
            out.push(format!("{root}{end}"));
        }
    } else if let Some(root) = word.strip_suffix("er").or_else(|| word.strip_suffix("ir")) {
        for end in ["ido", "ida", "idos", "idas", "e", "en", "o"] {
            out.push(format!("{root}{end}"));
        }
    } else if let Some(root) = word.strip_suffix('o') {
        for end in ["a", "os", "as"] {
            out.push(format!("{root}{end}"));
        }
    } else if word.ends_with(['a', 'e']) {
        out.push(format!("{word}s"));
    } else if let Some(root) = word.strip_suffix('z') {
        out.push(format!("{root}ces"));
    } else if word.ends_with(['l', 'n', 'd', 'r']) {
        out.push(format!("{word}es"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexicons_load() {
        let lex = builtin();
        let [en, es] = &lex.valence;
        assert!(en.len() > 7_000, "{}", en.len());
        assert!(es.len() > 5_000, "{}", es.len());
        assert_eq!(en.get(" worst "), Some(&-3.1));
        assert_eq!(en.get(" cant stand "), Some(&-2.0));
        assert_eq!(es.get(" malo "), Some(&-ELHPOLAR_VALENCE));
        assert_eq!(es.get(" malas "), Some(&-ELHPOLAR_VALENCE));
        assert_eq!(es.get(" a la deriva "), Some(&-ELHPOLAR_VALENCE));
        assert!(en.get(" no ").is_none());
    }

    #[test]
    fn inflects_spanish_lemmas() {
        assert!(inflections("quejarse").contains(&"quejado".to_string()));
        assert!(inflections("fatal").contains(&"fatales".to_string()));
        assert!(inflections("pesimo").contains(&"pesima".to_string()));
        assert!(inflections("feliz").contains(&"felices".to_string()));
    }
}
