//! Contact events (input) and crisis events (output), with their newtypes and the decoder that
//! turns untrusted bytes into a [`ContactView`] or a [`DecodeError`] naming the reason.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use thiserror::Error;

mod fast;
mod timestamp;
pub use timestamp::{format_rfc3339, parse_timestamp};

/// Version of the contact and crisis event JSON schemas this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// Event time in milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EventTime(pub i64);

impl EventTime {
    pub fn millis(self) -> i64 {
        self.0
    }

    /// RFC 3339 text in UTC, millisecond precision.
    pub fn to_rfc3339(self) -> String {
        format_rfc3339(self.0)
    }
}

/// The channel a contact arrived on. The set is closed on purpose: it becomes a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Phone,
    Email,
    Chat,
    Social,
    Review,
    Other,
}

impl Channel {
    pub const ALL: [Channel; 6] = [
        Channel::Phone,
        Channel::Email,
        Channel::Chat,
        Channel::Social,
        Channel::Review,
        Channel::Other,
    ];
    pub const COUNT: usize = 6;

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Phone => "phone",
            Channel::Email => "email",
            Channel::Chat => "chat",
            Channel::Social => "social",
            Channel::Review => "review",
            Channel::Other => "other",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// Accepts the canonical names and a few common synonyms, case-insensitively.
    pub fn parse(s: &str) -> Option<Channel> {
        // Compared in place rather than lowercased into a new string: this runs per event.
        const NAMES: &[(&str, Channel)] = &[
            ("phone", Channel::Phone),
            ("call", Channel::Phone),
            ("voice", Channel::Phone),
            ("ivr", Channel::Phone),
            ("email", Channel::Email),
            ("e-mail", Channel::Email),
            ("mail", Channel::Email),
            ("chat", Channel::Chat),
            ("webchat", Channel::Chat),
            ("livechat", Channel::Chat),
            ("messaging", Channel::Chat),
            ("whatsapp", Channel::Chat),
            ("social", Channel::Social),
            ("twitter", Channel::Social),
            ("x", Channel::Social),
            ("facebook", Channel::Social),
            ("instagram", Channel::Social),
            ("review", Channel::Review),
            ("reviews", Channel::Review),
            ("appstore", Channel::Review),
            ("app_review", Channel::Review),
            ("other", Channel::Other),
        ];
        // The canonical names, as producers normally send them, without the scan.
        if let Some(&c) = Channel::ALL.iter().find(|c| c.as_str() == s) {
            return Some(c);
        }
        let s = s.trim();
        NAMES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(s))
            .map(|&(_, c)| c)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Index of a topic in the configured taxonomy; the last index is always `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopicId(pub u16);

impl TopicId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Why an input record was refused. Each reason is a bounded metric label and a DLQ header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecodeReason {
    Empty,
    Oversize,
    InvalidUtf8,
    MalformedJson,
    SchemaViolation,
    UnknownChannel,
    BadTimestamp,
}

impl DecodeReason {
    pub const ALL: [DecodeReason; 7] = [
        DecodeReason::Empty,
        DecodeReason::Oversize,
        DecodeReason::InvalidUtf8,
        DecodeReason::MalformedJson,
        DecodeReason::SchemaViolation,
        DecodeReason::UnknownChannel,
        DecodeReason::BadTimestamp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DecodeReason::Empty => "empty",
            DecodeReason::Oversize => "oversize",
            DecodeReason::InvalidUtf8 => "invalid_utf8",
            DecodeReason::MalformedJson => "malformed_json",
            DecodeReason::SchemaViolation => "schema_violation",
            DecodeReason::UnknownChannel => "unknown_channel",
            DecodeReason::BadTimestamp => "bad_timestamp",
        }
    }
}

/// A refused record: the reason (bounded) and a human detail (never contains the payload).
#[derive(Debug, Clone, Error, PartialEq)]
#[error("{}: {detail}", reason.as_str())]
pub struct DecodeError {
    pub reason: DecodeReason,
    pub detail: String,
}

impl DecodeError {
    pub fn new(reason: DecodeReason, detail: impl Into<String>) -> Self {
        DecodeError {
            reason,
            detail: detail.into(),
        }
    }
}

/// Event time as it arrives: epoch milliseconds or RFC 3339 text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RawTime<'a> {
    Millis(i64),
    Text(&'a str),
    Invalid,
}

impl<'de: 'a, 'a> Deserialize<'de> for RawTime<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = RawTime<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("epoch milliseconds or an RFC 3339 timestamp")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(RawTime::Millis(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(i64::try_from(v).map_or(RawTime::Invalid, RawTime::Millis))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                if v.is_finite() && v.abs() < 9.0e15 {
                    Ok(RawTime::Millis(v as i64))
                } else {
                    Ok(RawTime::Invalid)
                }
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(RawTime::Text(v))
            }
            fn visit_str<E: de::Error>(self, _v: &str) -> Result<Self::Value, E> {
                // Escaped strings cannot be borrowed; a timestamp never needs escapes.
                Ok(RawTime::Invalid)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// An optional string that borrows from the input unless the JSON string holds escapes.
/// (serde's own `Cow<str>` borrows only outside an `Option`: inside one it always copies,
/// which was five allocations per event.)
fn opt_cow<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    struct Str;
    impl<'de> Visitor<'de> for Str {
        type Value = Cow<'de, str>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_owned()))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v))
        }
    }
    struct Opt;
    impl<'de> Visitor<'de> for Opt {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(Str).map(Some)
        }
    }
    d.deserialize_option(Opt)
}

/// A decoded contact event borrowing from the input buffer: the hot path allocates nothing
/// unless the JSON text contains escapes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactView<'a> {
    #[serde(default)]
    pub schema_version: Option<u32>,
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    #[serde(borrow, alias = "timestamp", alias = "time")]
    pub event_time: Option<RawTime<'a>>,
    #[serde(borrow, default, deserialize_with = "opt_cow")]
    pub channel: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_cow")]
    pub text: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_cow")]
    pub language: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_cow")]
    pub topic: Option<Cow<'a, str>>,
    #[serde(default)]
    pub complaint: Option<bool>,
    #[serde(default)]
    pub sentiment: Option<f64>,
    #[serde(borrow, default, deserialize_with = "opt_cow")]
    pub customer_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub attributes: Option<&'a RawValue>,
}

/// A contact event after validation: time resolved, channel known.
#[derive(Debug, Clone)]
pub struct ContactEvent<'a> {
    pub id: Cow<'a, str>,
    pub event_time: EventTime,
    pub channel: Channel,
    pub text: Option<Cow<'a, str>>,
    pub language: Option<Cow<'a, str>>,
    pub topic: Option<Cow<'a, str>>,
    pub complaint: Option<bool>,
    pub sentiment: Option<f64>,
    /// Who contacted us: only ever hashed (`window::CustomerKey`), never logged or stored.
    pub customer_id: Option<Cow<'a, str>>,
}

/// Limits that make input "absurd". Times are checked against the processing clock.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Largest accepted payload in bytes.
    pub max_bytes: usize,
    /// Oldest accepted event time (epoch ms).
    pub min_time_ms: i64,
    /// How far in the future (ms, relative to `now`) an event time may be.
    pub max_future_ms: i64,
    /// Longest accepted id.
    pub max_id_len: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_bytes: 64 * 1024,
            // 2000-01-01: nothing a contact centre sends predates this.
            min_time_ms: 946_684_800_000,
            max_future_ms: 24 * 3600 * 1000,
            max_id_len: 256,
        }
    }
}

/// Where the decoder may take what the payload lacks.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecodeContext {
    /// Processing time now (ms), for the future-timestamp check.
    pub now_ms: i64,
    /// Kafka message timestamp, used when the payload has no event time.
    pub fallback_time_ms: Option<i64>,
    /// Channel implied by the source (topic name mapping), used when the payload has none.
    pub channel_hint: Option<Channel>,
}

/// Decodes and validates one JSON contact event.
pub fn decode<'a>(
    bytes: &'a [u8],
    limits: &DecodeLimits,
    ctx: &DecodeContext,
) -> Result<ContactEvent<'a>, DecodeError> {
    if bytes.len() > limits.max_bytes {
        return Err(DecodeError::new(
            DecodeReason::Oversize,
            format!(
                "{} bytes exceeds the limit of {}",
                bytes.len(),
                limits.max_bytes
            ),
        ));
    }
    if bytes.is_empty() || bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(DecodeError::new(DecodeReason::Empty, "empty payload"));
    }
    let text = utf8(bytes).map_err(|e| {
        DecodeError::new(
            DecodeReason::InvalidUtf8,
            format!("invalid UTF-8 at byte {}", e.valid_up_to()),
        )
    })?;
    let view = match fast::parse(text) {
        Some(view) => view,
        None => serde_json::from_str::<ContactView<'_>>(text).map_err(|e| {
            let reason = match e.classify() {
                serde_json::error::Category::Data => DecodeReason::SchemaViolation,
                _ => DecodeReason::MalformedJson,
            };
            DecodeError::new(reason, e.to_string())
        })?,
    };
    validate(view, limits, ctx)
}

/// `std::str::from_utf8`, with a cheaper check first for the usual all-ASCII payload: an OR
/// over every byte, which the compiler vectorises (the general validation was ~4 % of the
/// service's CPU).
fn utf8(bytes: &[u8]) -> Result<&str, std::str::Utf8Error> {
    if bytes.iter().fold(0u8, |acc, &b| acc | b) < 0x80 {
        // SAFETY: every byte is below 0x80, and ASCII is valid UTF-8.
        Ok(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes)
    }
}

/// Validates a decoded view (shared by JSON, CSV and Parquet readers).
pub fn validate<'a>(
    view: ContactView<'a>,
    limits: &DecodeLimits,
    ctx: &DecodeContext,
) -> Result<ContactEvent<'a>, DecodeError> {
    if let Some(v) = view.schema_version
        && v > SCHEMA_VERSION
    {
        return Err(DecodeError::new(
            DecodeReason::SchemaViolation,
            format!("schema_version {v} is newer than this build reads ({SCHEMA_VERSION})"),
        ));
    }
    if view.id.is_empty() || view.id.len() > limits.max_id_len {
        return Err(DecodeError::new(
            DecodeReason::SchemaViolation,
            format!("id must be 1..={} characters", limits.max_id_len),
        ));
    }
    let channel = match view.channel.as_deref() {
        Some(c) => Channel::parse(c).ok_or_else(|| {
            DecodeError::new(
                DecodeReason::UnknownChannel,
                format!("unknown channel {:?}", truncate(c, 32)),
            )
        })?,
        None => ctx.channel_hint.ok_or_else(|| {
            DecodeError::new(DecodeReason::SchemaViolation, "missing field `channel`")
        })?,
    };
    let millis = match view.event_time {
        Some(RawTime::Millis(ms)) => ms,
        Some(RawTime::Text(s)) => parse_timestamp(s).ok_or_else(|| {
            DecodeError::new(
                DecodeReason::BadTimestamp,
                format!("unparseable event_time {:?}", truncate(s, 40)),
            )
        })?,
        Some(RawTime::Invalid) => {
            return Err(DecodeError::new(
                DecodeReason::BadTimestamp,
                "event_time is not a valid timestamp",
            ));
        }
        None => ctx.fallback_time_ms.ok_or_else(|| {
            DecodeError::new(DecodeReason::SchemaViolation, "missing field `event_time`")
        })?,
    };
    check_time(millis, limits, ctx)?;
    if let Some(s) = view.sentiment
        && !(-1.0..=1.0).contains(&s)
    {
        return Err(DecodeError::new(
            DecodeReason::SchemaViolation,
            format!("sentiment {s} outside [-1, 1]"),
        ));
    }
    Ok(ContactEvent {
        id: view.id,
        event_time: EventTime(millis),
        channel,
        text: view.text,
        language: view.language,
        topic: view.topic,
        complaint: view.complaint,
        sentiment: view.sentiment,
        customer_id: view.customer_id,
    })
}

/// 9999-12-31T23:59:59.999Z: later times are refused even without a processing clock
/// (`now_ms` 0), so window arithmetic (`start + size`) cannot overflow.
const MAX_TIME_MS: i64 = 253_402_300_799_999;

fn check_time(ms: i64, limits: &DecodeLimits, ctx: &DecodeContext) -> Result<(), DecodeError> {
    if ms > MAX_TIME_MS {
        return Err(DecodeError::new(
            DecodeReason::BadTimestamp,
            format!("event_time {ms} is after the year 9999"),
        ));
    }
    if ms < limits.min_time_ms {
        return Err(DecodeError::new(
            DecodeReason::BadTimestamp,
            format!(
                "event_time {} is before {}",
                format_rfc3339(ms),
                format_rfc3339(limits.min_time_ms)
            ),
        ));
    }
    if ctx.now_ms > 0 && ms > ctx.now_ms.saturating_add(limits.max_future_ms) {
        return Err(DecodeError::new(
            DecodeReason::BadTimestamp,
            format!("event_time {} is in the future", format_rfc3339(ms)),
        ));
    }
    Ok(())
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Lifecycle state carried by a crisis event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrisisState {
    Opened,
    Escalated,
    Resolved,
}

impl CrisisState {
    pub fn as_str(self) -> &'static str {
        match self {
            CrisisState::Opened => "opened",
            CrisisState::Escalated => "escalated",
            CrisisState::Resolved => "resolved",
        }
    }
}

/// How bad a crisis is, from the ratio of observed to expected and its significance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// A crisis lifecycle change: self-explaining, validated by `schemas/crisis-event.schema.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrisisEvent {
    pub schema_version: u32,
    /// Deterministic: the same input yields the same id (topic + onset window).
    pub crisis_id: String,
    /// Unique per lifecycle change (crisis_id + state + window), for CloudEvents `ce_id`.
    pub event_id: String,
    pub topic: String,
    pub state: CrisisState,
    pub severity: Severity,
    pub window_start: String,
    pub window_end: String,
    pub onset: String,
    /// Complaints in the window as counted for detection (distinct customers, or events).
    pub observed: u64,
    /// Complaint events in the window, repeat contacts of a customer included.
    #[serde(default)]
    pub observed_events: u64,
    pub expected: f64,
    pub upper_bound: f64,
    /// This window alone: `P(X >= observed)` under the baseline's count model for a rise,
    /// `P(X <= observed)` for a drop.
    pub p_value: f64,
    pub score: f64,
    /// `(observed + 1) / (expected + 1)` for counts (finite when nothing was expected).
    pub ratio: f64,
    /// What carried the evidence (opened and escalated events only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<crate::detect::Evidence>,
    pub channels: ChannelCounts,
    pub top_terms: Vec<TermCount>,
    pub sample_event_ids: Vec<String>,
    pub peak_observed: u64,
    pub windows_in_crisis: u32,
    pub detector_version: String,
}

/// Complaint counts per channel in the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelCounts {
    pub phone: u64,
    pub email: u64,
    pub chat: u64,
    pub social: u64,
    pub review: u64,
    pub other: u64,
}

impl ChannelCounts {
    pub fn from_array(a: &[u64; Channel::COUNT]) -> Self {
        ChannelCounts {
            phone: a[0],
            email: a[1],
            chat: a[2],
            social: a[3],
            review: a[4],
            other: a[5],
        }
    }
}

/// A term and how many complaints in the window contained it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TermCount {
    pub term: String,
    pub count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> DecodeContext {
        DecodeContext {
            now_ms: 1_700_000_000_000,
            ..Default::default()
        }
    }

    #[test]
    fn ascii_check_agrees_with_from_utf8() {
        let cases: [&[u8]; 7] = [
            b"",
            b"plain ascii {\"id\":1}",
            "espa\u{f1}ol \u{1f621}".as_bytes(),
            &[b'a', 0x80],
            &[0xff; 40],
            &[b'x', 0xc3],
            &[0x7f; 33],
        ];
        for c in cases {
            assert_eq!(utf8(c), std::str::from_utf8(c), "{c:?}");
        }
    }

    #[test]
    fn decodes_rfc3339_and_millis() {
        let l = DecodeLimits::default();
        let a = br#"{"id":"a","event_time":"2023-11-14T22:13:20Z","channel":"chat","text":"hola"}"#;
        let b = br#"{"id":"b","event_time":1699999999000,"channel":"PHONE"}"#;
        let ea = decode(a, &l, &ctx()).unwrap();
        assert_eq!(ea.event_time, EventTime(1_700_000_000_000));
        assert_eq!(ea.channel, Channel::Chat);
        let eb = decode(b, &l, &ctx()).unwrap();
        assert_eq!(eb.channel, Channel::Phone);
        assert_eq!(eb.event_time.0, 1_699_999_999_000);
    }

    #[test]
    fn every_bad_input_has_its_reason() {
        let l = DecodeLimits {
            max_bytes: 200,
            ..Default::default()
        };
        let cases: Vec<(Vec<u8>, DecodeReason)> = vec![
            (b"".to_vec(), DecodeReason::Empty),
            (vec![b' '; 300], DecodeReason::Oversize),
            (vec![b'{', 0xff, b'}'], DecodeReason::InvalidUtf8),
            (b"{not json".to_vec(), DecodeReason::MalformedJson),
            (
                br#"{"id":5,"event_time":1,"channel":"chat"}"#.to_vec(),
                DecodeReason::SchemaViolation,
            ),
            (
                br#"{"event_time":1699999999000,"channel":"chat"}"#.to_vec(),
                DecodeReason::SchemaViolation,
            ),
            (
                br#"{"id":"x","event_time":1699999999000,"channel":"pigeon"}"#.to_vec(),
                DecodeReason::UnknownChannel,
            ),
            (
                br#"{"id":"x","event_time":0,"channel":"chat"}"#.to_vec(),
                DecodeReason::BadTimestamp,
            ),
            (
                br#"{"id":"x","event_time":"2100-01-01T00:00:00Z","channel":"chat"}"#.to_vec(),
                DecodeReason::BadTimestamp,
            ),
            (
                br#"{"id":"x","event_time":"yesterday","channel":"chat"}"#.to_vec(),
                DecodeReason::BadTimestamp,
            ),
            (
                br#"{"id":"x","event_time":1699999999000,"channel":"chat","bogus":1}"#.to_vec(),
                DecodeReason::SchemaViolation,
            ),
        ];
        for (bytes, want) in cases {
            let got = decode(&bytes, &l, &ctx()).unwrap_err();
            assert_eq!(
                got.reason,
                want,
                "{:?} -> {got}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let mut s =
            String::from(r#"{"id":"x","event_time":1699999999000,"channel":"chat","attributes":"#);
        s.push_str(&"[".repeat(100_000));
        let l = DecodeLimits {
            max_bytes: usize::MAX,
            ..Default::default()
        };
        assert!(decode(s.as_bytes(), &l, &ctx()).is_err());
    }

    #[test]
    fn fallbacks_fill_missing_time_and_channel() {
        let c = DecodeContext {
            now_ms: 1_700_000_000_000,
            fallback_time_ms: Some(1_699_000_000_000),
            channel_hint: Some(Channel::Email),
        };
        let e = decode(br#"{"id":"x"}"#, &DecodeLimits::default(), &c).unwrap();
        assert_eq!(e.channel, Channel::Email);
        assert_eq!(e.event_time.0, 1_699_000_000_000);
    }

    #[test]
    fn parses_export_timestamps() {
        assert_eq!(
            parse_timestamp("2015-02-21 06:00:00 -0800"),
            parse_timestamp("2015-02-21T14:00:00Z")
        );
        assert_eq!(
            parse_timestamp("2015-02-26 21:42:53"),
            parse_timestamp("2015-02-26T21:42:53Z")
        );
    }
}
