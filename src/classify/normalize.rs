//! Text folding: one pass over the text that lowercases, strips diacritics, splits words and
//! counts the typographic signals (`!`, `?`, capitals) that complaint scoring needs.
//!
//! The folded form is `" word word word "`: words of ASCII letters and digits (or letters of
//! other scripts, lowercased) separated by single spaces, with a space at both ends. Patterns
//! are folded the same way, so a pattern `" on hold "` can only match whole words: word
//! boundaries come for free from the automaton, with no per-match boundary check.

use unicode_normalization::char::{decompose_canonical, is_combining_mark};

/// One word of the folded text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Word {
    /// Byte offset of the word's first byte in the folded buffer.
    pub start: u32,
    /// Written in capitals: at least three capital letters, none lowercase. Two capitals are
    /// mostly abbreviations and initials ("TX", "JT"), which lexicons may read as words
    /// ("tx" = thanks) but which are not emphasis.
    pub caps: bool,
    /// First word after sentence punctuation (`.`, `!`, `?`, `;`, a line break ...).
    pub sentence_start: bool,
    /// [`word_hash`] of the word's bytes, computed while folding: the matcher walks a trie
    /// of word hashes (`words.rs`).
    pub hash: u64,
}

/// FxHash's mixing step.
#[inline(always)]
fn mix(h: u64, v: u64) -> u64 {
    (h.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95)
}

/// Hash of a folded word (no padding spaces): its bytes eight at a time (the last group
/// zero-padded), then its length. The fold computes the same value from the registers it
/// lowercases in (`Folder::run`). The seed enters through a multiplication, so that another
/// seed gives other collisions (see `words.rs`).
pub(crate) fn word_hash(word: &[u8], seed: u64) -> u64 {
    let mut h = mix(seed, 0);
    let mut chunks = word.chunks_exact(8);
    for c in &mut chunks {
        let mut a = [0u8; 8];
        a.copy_from_slice(c);
        h = mix(h, u64::from_le_bytes(a));
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut a = [0u8; 8];
        a[..tail.len()].copy_from_slice(tail);
        h = mix(h, u64::from_le_bytes(a));
    }
    mix(h, word.len() as u64)
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// 0x80 in each byte of `v` that lies in `lo..=hi`; `v`'s bytes must be below 0x80, so the
/// additions cannot carry from one byte into the next.
#[inline(always)]
fn in_range(v: u64, lo: u8, hi: u8) -> u64 {
    let above_hi = v + ONES * u64::from(0x7f - hi);
    let from_lo = v + ONES * u64::from(0x80 - lo);
    !above_hi & from_lo & HIGH
}

/// Eight bytes of `bytes` from `i`, zero-padded past the end (a zero byte ends any run).
#[inline(always)]
fn load8(bytes: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    match bytes.get(i..i + 8) {
        Some(s) => a.copy_from_slice(s),
        None => {
            let tail = bytes.get(i..).unwrap_or(&[]);
            a[..tail.len()].copy_from_slice(tail);
        }
    }
    u64::from_le_bytes(a)
}

/// The folded text and what was counted while folding. Reused across events.
#[derive(Debug, Default)]
pub(crate) struct Folded {
    /// Valid UTF-8; bytes because the automaton reads bytes.
    pub buf: Vec<u8>,
    pub words: Vec<Word>,
    pub exclamations: u32,
    pub questions: u32,
    /// Capital letters.
    pub upper: u32,
    /// Nonzero if there is any lowercase letter (counted by runs, not letters).
    pub lower: u32,
}

impl Folded {
    /// Mixed case: capitals are emphasis only when the writer also uses lowercase.
    pub fn mixed_case(&self) -> bool {
        self.upper > 0 && self.lower > 0
    }
}

/// What one character contributes.
enum Class {
    Word,
    Skip,
    Space,
    Break,
}

/// Tokens that are not content: `@handles` (an airline's handle is not praise: "united" is
/// positive in VADER) and URLs.
#[derive(Clone, Copy, PartialEq)]
enum Skip {
    No,
    Handle,
    Url,
}

struct Folder<'a> {
    out: &'a mut Folded,
    seed: u64,
    /// Running [`word_hash`] of the current word, valid while `hash_ok`: the word so far came
    /// from `run`s only, whose eight-byte groups line up with the word's.
    hash: u64,
    hash_ok: bool,
    /// The current word's length so far is a multiple of eight (a `run` may continue the
    /// running hash).
    aligned: bool,
    in_word: bool,
    pending_break: bool,
    word_upper: u32,
    word_lower: u32,
    /// Inside a `#hashtag`: a lower-to-upper change starts a word (`#NotHappy`).
    hashtag: bool,
    prev_lower: bool,
    skip: Skip,
}

impl Folder<'_> {
    fn begin_word(&mut self) {
        if !self.in_word {
            self.out.words.push(Word {
                start: self.out.buf.len() as u32,
                caps: false,
                sentence_start: self.pending_break,
                hash: 0,
            });
            self.in_word = true;
            self.pending_break = false;
            self.word_upper = 0;
            self.word_lower = 0;
        }
        // Any byte added other than by `run` breaks the running hash.
        self.hash_ok = false;
        self.aligned = false;
    }

    /// Appends the ASCII letters and digits at the start of the eight bytes `v` (lowercased)
    /// and returns how many there were; capitals are not taken inside a hashtag, where they
    /// start a new word. Eight bytes per step: most words take one.
    #[inline(always)]
    fn run(&mut self, v: u64) -> usize {
        let ascii = !v & HIGH;
        let v7 = v & !HIGH;
        let letters = in_range(v7 | (ONES * 0x20), b'a', b'z') & ascii;
        // Bit 5 clear: a capital; moved up to bit 7 to line up with the masks.
        let upper = letters & !(v7 << 2);
        let lower = letters & !upper;
        let mut take = lower | (in_range(v7, b'0', b'9') & ascii);
        if !self.hashtag {
            take |= upper;
        }
        let n = ((!take & HIGH).trailing_zeros() / 8) as usize;
        if n == 0 {
            return 0;
        }
        let keep = if n == 8 {
            u64::MAX
        } else {
            (1u64 << (8 * n)) - 1
        };
        let folded = (v | ((upper & take) >> 2)) & keep;
        let (upper, lower) = (upper & take & keep, lower & keep);
        if !self.in_word {
            self.begin_word();
            self.hash = mix(self.seed, 0);
            self.hash_ok = true;
        } else if !self.aligned {
            self.hash_ok = false;
        }
        if self.hash_ok {
            self.hash = mix(self.hash, folded);
        }
        self.aligned = self.hash_ok && n == 8;
        let len = self.out.buf.len();
        self.out.buf.extend_from_slice(&folded.to_le_bytes());
        self.out.buf.truncate(len + n);
        if upper != 0 {
            let u = upper.count_ones();
            self.word_upper += u;
            self.out.upper += u;
        }
        if lower != 0 {
            self.word_lower += 1;
            self.out.lower += 1;
            self.prev_lower = true;
        }
        n
    }

    fn end_word(&mut self) {
        if self.in_word {
            self.out.buf.push(b' ');
            if let Some(w) = self.out.words.last_mut() {
                w.caps = self.word_upper >= 3 && self.word_lower == 0;
                let start = w.start as usize;
                let len = self.out.buf.len() - 1 - start;
                w.hash = if self.hash_ok {
                    mix(self.hash, len as u64)
                } else {
                    super::tick(1 + len / 8);
                    word_hash(
                        self.out.buf.get(start..start + len).unwrap_or(&[]),
                        self.seed,
                    )
                };
            }
            self.in_word = false;
        }
    }

    /// The current word, if it is exactly `w`.
    fn word_is(&self, w: &str) -> bool {
        let start = self
            .out
            .words
            .last()
            .map_or(usize::MAX, |w| w.start as usize);
        self.in_word && self.out.buf.get(start..) == Some(w.as_bytes())
    }

    /// Drops the current word and skips to the next whitespace (a URL).
    fn drop_word_skip_url(&mut self) {
        if let Some(w) = self.out.words.pop() {
            self.out.buf.truncate(w.start as usize);
        }
        self.in_word = false;
        self.skip = Skip::Url;
    }

    fn push_ascii(&mut self, b: u8) {
        self.begin_word();
        self.push_byte(b);
    }

    fn push_byte(&mut self, b: u8) {
        self.hash_ok = false;
        self.aligned = false;
        self.out.buf.push(b);
    }

    /// Lowercase, then keep the non-combining part of the canonical decomposition
    /// (`É` -> `e`, `ñ` -> `n`).
    fn push_folded(&mut self, c: char) {
        self.begin_word();
        for l in c.to_lowercase() {
            let mut base = ['\0'; 4];
            let mut n = 0;
            decompose_canonical(l, |d| {
                if !is_combining_mark(d) && n < base.len() {
                    base[n] = d;
                    n += 1;
                }
            });
            for d in &base[..n] {
                let mut utf8 = [0u8; 4];
                for &b in d.encode_utf8(&mut utf8).as_bytes() {
                    self.push_byte(b);
                }
            }
        }
    }

    fn classify_non_ascii(c: char) -> Class {
        match c {
            '\u{2019}' | '\u{2018}' | '\u{02BC}' | '\u{00B4}' => Class::Skip,
            '\u{00A1}' | '\u{00BF}' | '\u{2026}' | '\u{3002}' => Class::Break,
            _ if is_combining_mark(c) => Class::Skip,
            _ if c.is_alphanumeric() => Class::Word,
            _ => Class::Space,
        }
    }
}

/// Base letters of U+00C0..=U+00FF (`À`..`ÿ`) whose canonical decomposition is an ASCII
/// letter plus marks; 0 for the rest (`Æ`, `ß`, `×`, ...), which take the general path.
const LATIN1_BASE: &[u8; 64] =
    b"aaaaaa\0ceeeeiiii\0nooooo\0\0uuuuy\0\0aaaaaa\0ceeeeiiii\0nooooo\0\0uuuuy\0y";

/// The folded letter of an accented Latin-1 letter (Spanish text is full of them) and whether
/// it is a capital: the same result as `push_folded`, from a table.
#[inline]
fn latin1_letter(c: char) -> Option<(u8, bool)> {
    let i = (c as u32).checked_sub(0xC0)? as usize;
    let base = *LATIN1_BASE.get(i)?;
    (base != 0).then_some((base, i < 0x20))
}

/// Folds `text` into `out` (cleared first), hashing words with `seed`. Allocation-free once
/// `out` has grown.
pub(crate) fn fold(text: &str, seed: u64, out: &mut Folded) {
    out.buf.clear();
    out.words.clear();
    out.exclamations = 0;
    out.questions = 0;
    out.upper = 0;
    out.lower = 0;
    out.buf.push(b' ');
    let mut f = Folder {
        out,
        seed,
        hash: 0,
        hash_ok: false,
        aligned: false,
        in_word: false,
        pending_break: false,
        word_upper: 0,
        word_lower: 0,
        hashtag: false,
        prev_lower: false,
        skip: Skip::No,
    };
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        super::tick(1);
        // Fast paths: most text is runs of ASCII letters and digits separated by spaces.
        if f.skip == Skip::No {
            if bytes[i] == b' ' {
                f.end_word();
                f.hashtag = false;
                i += 1;
                continue;
            }
            let n = f.run(load8(bytes, i));
            if n > 0 {
                super::tick(n);
                i += n;
                continue;
            }
        }
        let c = match bytes[i] {
            b if b.is_ascii() => char::from(b),
            _ => match text.get(i..).and_then(|rest| rest.chars().next()) {
                Some(c) => c,
                None => break,
            },
        };
        i += c.len_utf8();
        match f.skip {
            Skip::Handle if c.is_ascii_alphanumeric() || c == '_' => continue,
            Skip::Url if !c.is_whitespace() => continue,
            _ => f.skip = Skip::No,
        }
        let class = if c.is_ascii() {
            let b = c as u8;
            match b {
                b'a'..=b'z' => {
                    f.push_ascii(b);
                    f.word_lower += 1;
                    f.out.lower += 1;
                    f.prev_lower = true;
                    continue;
                }
                b'A'..=b'Z' => {
                    if f.hashtag && f.prev_lower {
                        f.end_word();
                    }
                    f.push_ascii(b | 0x20);
                    f.word_upper += 1;
                    f.out.upper += 1;
                    f.prev_lower = false;
                    continue;
                }
                b'0'..=b'9' => {
                    f.push_ascii(b);
                    continue;
                }
                b'@' => {
                    f.end_word();
                    f.skip = Skip::Handle;
                    continue;
                }
                b':' if f.word_is("http") || f.word_is("https") => {
                    f.drop_word_skip_url();
                    continue;
                }
                b'.' if f.word_is("www") => {
                    f.drop_word_skip_url();
                    continue;
                }
                b'#' => {
                    f.end_word();
                    f.hashtag = true;
                    f.prev_lower = false;
                    continue;
                }
                b'\'' | b'`' => Class::Skip,
                b'!' => {
                    f.out.exclamations += 1;
                    Class::Break
                }
                b'?' => {
                    f.out.questions += 1;
                    Class::Break
                }
                b'.' | b',' | b';' | b':' | b'\n' | b'\r' => Class::Break,
                _ => Class::Space,
            }
        } else if let Some((base, upper)) = latin1_letter(c) {
            // What `Class::Word` below does for these letters, without the Unicode tables.
            f.begin_word();
            if upper {
                f.word_upper += 1;
                f.out.upper += 1;
            } else {
                f.word_lower += 1;
                f.out.lower += 1;
            }
            f.push_byte(base);
            continue;
        } else {
            Folder::classify_non_ascii(c)
        };
        match class {
            Class::Word => {
                // The word starts (and its counts reset) before its first letter counts.
                f.begin_word();
                if c.is_uppercase() {
                    f.word_upper += 1;
                    f.out.upper += 1;
                } else if c.is_lowercase() {
                    f.word_lower += 1;
                    f.out.lower += 1;
                }
                f.push_folded(c);
            }
            Class::Skip => {}
            Class::Space => {
                f.end_word();
                f.hashtag = false;
            }
            Class::Break => {
                f.end_word();
                f.hashtag = false;
                f.pending_break = true;
            }
        }
    }
    f.end_word();
}

/// Folds a configured phrase or lexicon entry; `None` if nothing word-like is left.
pub(crate) fn fold_pattern(text: &str) -> Option<String> {
    let mut f = Folded::default();
    // Lexicons join multi-word entries with `_`.
    fold(&text.replace('_', " "), 0, &mut f);
    if f.words.is_empty() {
        return None;
    }
    String::from_utf8(f.buf).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folded(t: &str) -> String {
        let mut f = Folded::default();
        fold(t, 0, &mut f);
        String::from_utf8(f.buf).expect("utf-8")
    }

    #[test]
    fn folds_case_accents_and_punctuation() {
        assert_eq!(folded("Cancelación!!"), " cancelacion ");
        assert_eq!(folded("  ¿Dónde está MI PEDIDO?"), " donde esta mi pedido ");
        assert_eq!(folded("don't / can’t"), " dont cant ");
        assert_eq!(folded("@united #fail http://t.co/x ok"), " fail ok ");
        assert_eq!(
            folded("see www.x.com/a_b. #UnitedSucks #iPad"),
            " see united sucks i pad "
        );
        assert_eq!(folded("me@home @_x2:hi"), " me hi ");
        assert_eq!(folded("http https: http"), " http http ");
        assert_eq!(folded("año ÑANDÚ"), " ano nandu ");
        assert_eq!(folded("e\u{301}xito"), " exito ");
        assert_eq!(folded(""), " ");
        assert_eq!(folded("😡😡"), " ");
    }

    #[test]
    fn latin1_table_matches_the_unicode_fold() {
        for c in '\u{C0}'..='\u{FF}' {
            let Some((base, upper)) = latin1_letter(c) else {
                continue;
            };
            assert_eq!(folded(&c.to_string()), format!(" {} ", base as char), "{c}");
            assert_eq!(upper, c.is_uppercase(), "{c}");
            assert!(c.is_alphanumeric() && !is_combining_mark(c), "{c}");
        }
    }

    #[test]
    fn word_hashes_are_of_the_folded_bytes() {
        // Words made by the eight-byte fast path, by the character path and by both.
        let text = "Short CAPITALS exactlyE eightchr longerthaneightbytes12 don't \
                    can’t Cancelación ÉSTE #NotHappy #iPad naïve x2y3z \u{1F600} ab\u{301}cdefghij";
        for seed in [0, 99] {
            let mut f = Folded::default();
            fold(text, seed, &mut f);
            assert_eq!(f.words.len(), 16);
            for w in &f.words {
                let start = w.start as usize;
                let end = start + f.buf[start..].iter().position(|&b| b == b' ').unwrap_or(0);
                assert_eq!(
                    w.hash,
                    word_hash(&f.buf[start..end], seed),
                    "{:?}",
                    &f.buf[start..end]
                );
            }
        }
    }

    #[test]
    fn counts_signals() {
        let mut f = Folded::default();
        fold("This is AWFUL. Really?! ok", 7, &mut f);
        assert_eq!((f.exclamations, f.questions), (1, 1));
        assert!(f.mixed_case());
        let caps: Vec<bool> = f.words.iter().map(|w| w.caps).collect();
        assert_eq!(caps, [false, false, true, false, false]);
        let starts: Vec<bool> = f.words.iter().map(|w| w.sentence_start).collect();
        assert_eq!(starts, [false, false, false, true, true]);
        let starts: Vec<u32> = f.words.iter().map(|w| w.start).collect();
        assert_eq!(starts, [1, 6, 9, 15, 22]);
        assert_eq!(f.words[2].hash, word_hash(b"awful", 7));
        // Capitals: three letters or more, every letter counted (the first one too).
        fold("JT Ok ÉSTE #ItISN BAD", 0, &mut f);
        let caps: Vec<bool> = f.words.iter().map(|w| w.caps).collect();
        assert_eq!(caps, [false, false, true, false, true, true]);
    }
}
