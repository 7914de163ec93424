//! The matcher: a trie over word hashes. Every pattern (topic phrase, lexicon entry,
//! closed-class word) is a sequence of folded words, and the folded text is a sequence of
//! words whose hashes the fold already computed, so finding every pattern that starts at a
//! word is one hash probe, plus one more per word while a multi-word prefix continues
//! ("not" -> "not good"). Cost is linear in the number of words, with a constant bounded by
//! the longest pattern; a byte-level automaton would instead pay per byte.
//!
//! The trie lives in one open-addressing table keyed by (parent node, word hash); a node's id
//! is its slot index + 1 (0 is the root). A candidate is confirmed byte for byte against the
//! folded text, so a hash collision with a word of the text cannot invent a match; two
//! patterns whose words collide with each other are avoided at build time by changing the
//! hash seed.

use super::complaint::Hit;
use super::normalize::{Folded, word_hash};

/// `parent` of a free slot.
const EMPTY: u32 = u32::MAX;
/// `info` bit: the node has children (a longer pattern continues here).
const CHILDREN: u32 = 1 << 31;
/// `info` value of a node where no pattern ends.
const NO_ENTRY: u32 = CHILDREN - 1;

#[derive(Debug, Clone, Copy)]
struct Slot {
    hash: u64,
    parent: u32,
    /// Entry id ending at this node (`NO_ENTRY` if none) | `CHILDREN`.
    info: u32,
}

const FREE: Slot = Slot {
    hash: 0,
    parent: EMPTY,
    info: NO_ENTRY,
};

#[derive(Debug, Default)]
pub(crate) struct WordTrie {
    slots: Vec<Slot>,
    /// `64 - log2(slots.len())`: the slot index is the top bits of the mixed key.
    shift: u32,
    /// Seed of [`word_hash`] for this table; the fold must use the same one.
    pub seed: u64,
    /// Folded patterns (`" word word "`), concatenated, and each entry's byte range.
    bytes: Vec<u8>,
    spans: Vec<(u32, u32)>,
    /// One bit per `ROOT_BITS`-bit prefix of the hashes of first words: a word whose bit is
    /// clear starts no pattern, and is skipped without a probe. The table (half a MB with the
    /// lexicons) misses the cache on most probes; this 16 KB filter mostly hits it, and most
    /// words of a text start no pattern.
    roots: Vec<u64>,
}

/// Bits of the first-word filter's index: 2^17 bits for ~15,000 first words, so about one
/// word in nine that starts nothing still gets probed.
const ROOT_BITS: u32 = 17;

#[inline(always)]
fn root_bit(hash: u64) -> (usize, u64) {
    // The top bits: the hash's last step is a multiplication, whose low bits mix poorly.
    let i = (hash >> (64 - ROOT_BITS)) as usize;
    (i / 64, 1 << (i % 64))
}

/// Two different words of the vocabulary with the same hash under the same parent.
struct Collision;

impl WordTrie {
    /// The trie for folded patterns (`" word word "`, as `fold_pattern` returns them); the
    /// entry id of a pattern is its index.
    pub fn build(patterns: &[String]) -> WordTrie {
        // With 64-bit hashes a collision among a few tens of thousands of words is not
        // expected; the loop makes it harmless rather than assumed away.
        let mut seed = 0;
        loop {
            if let Ok(t) = Self::try_build(patterns, seed) {
                return t;
            }
            seed += 1;
        }
    }

    fn try_build(patterns: &[String], seed: u64) -> Result<WordTrie, Collision> {
        let nodes: usize = patterns.iter().map(|p| p.split_whitespace().count()).sum();
        // Load factor at most 1/2 keeps probe sequences short and guarantees a free slot.
        let size = (2 * nodes).next_power_of_two().max(16);
        let mut t = WordTrie {
            slots: vec![FREE; size],
            shift: 64 - size.trailing_zeros(),
            seed,
            bytes: Vec::new(),
            spans: Vec::with_capacity(patterns.len()),
            roots: vec![0; (1 << ROOT_BITS) / 64],
        };
        // The word each node was built for, to tell a collision from a shared prefix.
        let mut node_word: Vec<&str> = vec![""; size];
        for (entry, p) in patterns.iter().enumerate() {
            let start = t.bytes.len() as u32;
            t.bytes.extend_from_slice(p.as_bytes());
            t.spans.push((start, t.bytes.len() as u32));
            let words: Vec<&str> = p.split_whitespace().collect();
            let mut parent = 0;
            for (k, w) in words.iter().enumerate() {
                let hash = word_hash(w.as_bytes(), seed);
                if k == 0 {
                    let (word, bit) = root_bit(hash);
                    t.roots[word] |= bit;
                }
                let i = t.probe(parent, hash);
                if t.slots[i].parent == EMPTY {
                    t.slots[i] = Slot {
                        hash,
                        parent,
                        info: NO_ENTRY,
                    };
                    node_word[i] = w;
                } else if node_word[i] != *w {
                    return Err(Collision);
                }
                let slot = &mut t.slots[i];
                if k + 1 == words.len() {
                    // Patterns are distinct, so no other entry ends here.
                    slot.info = (slot.info & CHILDREN) | entry as u32;
                } else {
                    slot.info |= CHILDREN;
                }
                parent = i as u32 + 1;
            }
        }
        Ok(t)
    }

    /// The slot holding (parent, hash), or the free slot where it would go.
    #[inline]
    fn probe(&self, parent: u32, hash: u64) -> usize {
        let key = hash ^ u64::from(parent).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mask = self.slots.len() - 1;
        let mut i = (key.wrapping_mul(0xbf58_476d_1ce4_e5b9) >> self.shift) as usize;
        loop {
            let s = &self.slots[i];
            if (s.parent == parent && s.hash == hash) || s.parent == EMPTY {
                return i;
            }
            i = (i + 1) & mask;
        }
    }

    /// Appends every pattern occurrence in `text` to `hits`, ordered by start word, then by
    /// length. Patterns do not cross a sentence start.
    pub fn find_all(&self, text: &Folded, hits: &mut Vec<Hit>) {
        if self.slots.is_empty() {
            return;
        }
        let words = &text.words;
        for (i, w) in words.iter().enumerate() {
            let (word, bit) = root_bit(w.hash);
            if self.roots[word] & bit == 0 {
                // The probe below would find a free slot at once.
                super::tick(1);
                continue;
            }
            let (mut parent, mut hash, mut k) = (0, w.hash, i);
            loop {
                super::tick(1);
                let at = self.probe(parent, hash);
                let slot = self.slots[at];
                if slot.parent == EMPTY {
                    break;
                }
                let entry = slot.info & !CHILDREN;
                if entry != NO_ENTRY && self.confirm(entry, text, w.start) {
                    hits.push(Hit {
                        entry,
                        word: i as u32,
                    });
                }
                k += 1;
                match words.get(k) {
                    Some(next) if slot.info & CHILDREN != 0 && !next.sentence_start => {
                        parent = at as u32 + 1;
                        hash = next.hash;
                    }
                    _ => break,
                }
            }
        }
    }

    /// The folded text, from the space before word byte `start`, spells the entry's pattern.
    #[inline]
    fn confirm(&self, entry: u32, text: &Folded, start: u32) -> bool {
        let (a, b) = self.spans[entry as usize];
        let pattern = &self.bytes[a as usize..b as usize];
        let at = start as usize - 1;
        text.buf
            .get(at..at + pattern.len())
            .is_some_and(|t| same_bytes(t, pattern))
    }

    pub fn memory_usage(&self) -> usize {
        self.slots.len() * std::mem::size_of::<Slot>()
            + self.bytes.len()
            + self.spans.len() * 8
            + self.roots.len() * 8
    }
}

/// `a == b` for slices of equal length, eight bytes at a time: patterns are short, and a
/// `memcmp` call costs more than the comparison.
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let (mut x, mut y) = (a.chunks_exact(8), b.chunks_exact(8));
    for (p, q) in (&mut x).zip(&mut y) {
        if p != q {
            return false;
        }
    }
    x.remainder().iter().zip(y.remainder()).all(|(p, q)| p == q)
}
