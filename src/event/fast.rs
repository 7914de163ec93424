//! A fast path for the usual shape of a contact event: one flat JSON object of known keys
//! whose strings hold no escapes and whose numbers are plain non-negative integers. Anything
//! else (escapes, `attributes`, `sentiment`, floats, negative numbers, unknown or repeated
//! keys, malformed JSON) returns `None` and is left to serde_json, which decides and words the
//! error; so this path can only be faster, never give another answer.
//! `fast_path_agrees_with_serde` holds it to that on mutated payloads.

use std::borrow::Cow;

use super::{ContactView, RawTime};

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn literal(&mut self, word: &str) -> bool {
        let hit = self.s.as_bytes()[self.i..].starts_with(word.as_bytes());
        if hit {
            self.i += word.len();
        }
        hit
    }

    /// A string without escapes or control characters, borrowed.
    fn string(&mut self) -> Option<&'a str> {
        if self.bump()? != b'"' {
            return None;
        }
        let b = self.s.as_bytes();
        let start = self.i;
        let mut i = start;
        // Eight bytes at a time: the lowest byte flagged by each test below is exact, so the
        // lowest of their union is the first quote, backslash or control character.
        while let Some(chunk) = b.get(i..i + 8) {
            let mut a = [0u8; 8];
            a.copy_from_slice(chunk);
            let v = u64::from_le_bytes(a);
            let quote = v ^ (ONES * u64::from(b'"'));
            let backslash = v ^ (ONES * u64::from(b'\\'));
            let stop = ((quote.wrapping_sub(ONES) & !quote)
                | (backslash.wrapping_sub(ONES) & !backslash)
                | (v.wrapping_sub(ONES * 0x20) & !v))
                & HIGH;
            if stop != 0 {
                i += (stop.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        while let Some(&c) = b.get(i) {
            if c == b'"' || c == b'\\' || c < 0x20 {
                break;
            }
            i += 1;
        }
        if b.get(i) != Some(&b'"') {
            return None;
        }
        self.i = i + 1;
        // `i` is at an ASCII quote and `start` after one: both are character boundaries.
        self.s.get(start..i)
    }

    /// A non-negative integer as JSON writes it (no leading zero, no fraction or exponent)
    /// that fits in a u64.
    fn uint(&mut self) -> Option<u64> {
        let b = self.s.as_bytes();
        let start = self.i;
        let mut v: u64 = 0;
        while let Some(&c) = b.get(self.i).filter(|c| c.is_ascii_digit()) {
            v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
            self.i += 1;
        }
        let len = self.i - start;
        if len == 0 || (len > 1 && b[start] == b'0') {
            return None;
        }
        match self.peek() {
            Some(b'.' | b'e' | b'E') => None,
            _ => Some(v),
        }
    }
}

/// Field slots, for catching a repeated key (serde refuses one, aliases included).
const SCHEMA_VERSION: u16 = 1 << 0;
const ID: u16 = 1 << 1;
const EVENT_TIME: u16 = 1 << 2;
const CHANNEL: u16 = 1 << 3;
const TEXT: u16 = 1 << 4;
const LANGUAGE: u16 = 1 << 5;
const TOPIC: u16 = 1 << 6;
const COMPLAINT: u16 = 1 << 7;
const CUSTOMER_ID: u16 = 1 << 8;

pub(super) fn parse(s: &str) -> Option<ContactView<'_>> {
    let mut c = Cursor { s, i: 0 };
    let mut v = ContactView {
        schema_version: None,
        id: Cow::Borrowed(""),
        event_time: None,
        channel: None,
        text: None,
        language: None,
        topic: None,
        complaint: None,
        sentiment: None,
        customer_id: None,
        attributes: None,
    };
    let mut seen = 0u16;
    c.ws();
    if c.bump()? != b'{' {
        return None;
    }
    loop {
        c.ws();
        let field = match c.string()? {
            "schema_version" => SCHEMA_VERSION,
            "id" => ID,
            "event_time" | "timestamp" | "time" => EVENT_TIME,
            "channel" => CHANNEL,
            "text" => TEXT,
            "language" => LANGUAGE,
            "topic" => TOPIC,
            "complaint" => COMPLAINT,
            "customer_id" => CUSTOMER_ID,
            _ => return None,
        };
        if seen & field != 0 {
            return None;
        }
        seen |= field;
        c.ws();
        if c.bump()? != b':' {
            return None;
        }
        c.ws();
        // `null` leaves an optional field at `None`; `id` is not optional.
        if field != ID && c.literal("null") {
        } else {
            match field {
                SCHEMA_VERSION => v.schema_version = Some(u32::try_from(c.uint()?).ok()?),
                ID => v.id = Cow::Borrowed(c.string()?),
                EVENT_TIME if c.peek() == Some(b'"') => {
                    v.event_time = Some(RawTime::Text(c.string()?))
                }
                EVENT_TIME => {
                    let n = c.uint()?;
                    v.event_time = Some(i64::try_from(n).map_or(RawTime::Invalid, RawTime::Millis))
                }
                CHANNEL => v.channel = Some(Cow::Borrowed(c.string()?)),
                TEXT => v.text = Some(Cow::Borrowed(c.string()?)),
                LANGUAGE => v.language = Some(Cow::Borrowed(c.string()?)),
                TOPIC => v.topic = Some(Cow::Borrowed(c.string()?)),
                CUSTOMER_ID => v.customer_id = Some(Cow::Borrowed(c.string()?)),
                _ if c.literal("true") => v.complaint = Some(true),
                _ if c.literal("false") => v.complaint = Some(false),
                _ => return None,
            }
        }
        c.ws();
        match c.bump()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    c.ws();
    (c.i == s.len() && seen & ID != 0).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde(s: &str) -> Result<String, String> {
        serde_json::from_str::<ContactView<'_>>(s)
            .map(|v| format!("{v:?}"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn takes_the_usual_shape() {
        let s = r#"{"channel":"chat","customer_id":"cust-1","event_time":"2026-01-01T00:00:00.000Z","id":"e1","language":"es","schema_version":1,"text":"Llevo una hora en espera ñ 😡","topic":null,"complaint":true}"#;
        let v = parse(s).expect("fast path");
        assert_eq!(Ok(format!("{v:?}")), serde(s));
    }

    #[test]
    fn fast_path_agrees_with_serde() {
        let seeds = [
            r#"{"channel":"chat","customer_id":"cust-1","event_time":"2026-01-01T00:00:00.000Z","id":"e1","language":"es","schema_version":1,"text":"no funciona la app, pésimo"}"#,
            r#" { "id" : "x" , "time" : 1699999999000 , "complaint" : false , "topic" : "billing" } "#,
            r#"{"id":"x","timestamp":18446744073709551615,"channel":null,"text":null,"language":null,"customer_id":null,"event_time":null,"schema_version":null,"complaint":null}"#,
            r#"{"id":"a\"b","event_time":1,"sentiment":-0.5,"attributes":{"k":[1,2]}}"#,
        ];
        let alphabet: &[&str] = &[
            "\"", "\\", ",", ":", "{", "}", " ", "\n", "0", "1", "9", "-", ".", "e", "null",
            "true", "false", "\"id\"", "\"time\"", "\"text\"", "\u{1}", "é", "x", "\t", "[",
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let mut fast_taken = 0;
        for round in 0..60_000 {
            let mut s = seeds[round % seeds.len()].to_string();
            for _ in 0..=next(3) {
                let mut at = next(s.len() + 1);
                while !s.is_char_boundary(at) {
                    at -= 1;
                }
                match next(3) {
                    0 => s.insert_str(at, alphabet[next(alphabet.len())]),
                    1 => {
                        let mut end = (at + 1 + next(4)).min(s.len());
                        while !s.is_char_boundary(end) {
                            end += 1;
                        }
                        s.replace_range(at..end, "");
                    }
                    _ => {
                        let mut end = (at + 1).min(s.len());
                        while !s.is_char_boundary(end) {
                            end += 1;
                        }
                        s.replace_range(at..end, alphabet[next(alphabet.len())]);
                    }
                }
            }
            if let Some(v) = parse(&s) {
                fast_taken += 1;
                assert_eq!(Ok(format!("{v:?}")), serde(&s), "{s}");
            }
        }
        assert!(fast_taken > 1_000, "{fast_taken}");
    }
}
