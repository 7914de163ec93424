//! Bad and hostile input, systematically: every payload is answered with a `DecodeError`
//! reason (a dead letter in Kafka mode) or counted, never a panic; label cardinality and
//! retained state stay bounded whatever the upstream sends. The proptest cases run with a
//! fixed case count and seed so `cargo test` is deterministic and bounded in time.

use crisis_pulse::app;
use crisis_pulse::config::Config;
use crisis_pulse::event::{self, DecodeContext, DecodeLimits, DecodeReason};
use crisis_pulse::pipeline::{Output, Pipeline};
use crisis_pulse::state::{self, Positions};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

const NOW: i64 = 1_772_409_600_000; // 2026-03-02

fn ctx() -> DecodeContext {
    DecodeContext {
        now_ms: NOW,
        ..Default::default()
    }
}

fn pipeline() -> Pipeline {
    let cfg = Config::parse(app::DEMO_CONFIG, "examples/demo.toml").expect("config");
    Pipeline::new(&cfg).expect("pipeline")
}

thread_local! {
    /// One pipeline per test thread, reused by every case of that test: building the
    /// classifier is most of a case's cost in a debug build, and state carried from one
    /// hostile case into the next is, if anything, more hostile.
    static SHARED: std::cell::RefCell<Pipeline> = std::cell::RefCell::new(pipeline());
}

fn with_shared<R>(f: impl FnOnce(&mut Pipeline) -> R) -> R {
    SHARED.with(|p| f(&mut p.borrow_mut()))
}

fn reason(bytes: &[u8]) -> Option<DecodeReason> {
    with_shared(|p| p.ingest_json(bytes, &ctx()).err().map(|e| e.reason))
}

fn ev(extra: &str) -> String {
    format!(r#"{{"id":"x","event_time":{NOW},"channel":"chat"{extra}}}"#)
}

#[test]
fn each_hostile_payload_has_its_reason() {
    use DecodeReason::*;
    let big = vec![b'a'; 10 * 1024 * 1024];
    let deep = format!(
        r#"{{"id":"x","event_time":{NOW},"channel":"chat","attributes":{}"#,
        "[".repeat(100_000)
    );
    let cases: Vec<(String, Vec<u8>, Option<DecodeReason>)> = vec![
        ("0 bytes".into(), vec![], Some(Empty)),
        ("whitespace".into(), b" \n\t ".to_vec(), Some(Empty)),
        ("10 MB".into(), big, Some(Oversize)),
        (
            "invalid UTF-8".into(),
            b"{\"id\":\"\xff\xfe\"}".to_vec(),
            Some(InvalidUtf8),
        ),
        (
            "number for id".into(),
            br#"{"id":5,"event_time":1772409600000,"channel":"chat"}"#.to_vec(),
            Some(SchemaViolation),
        ),
        (
            "number for channel".into(),
            br#"{"id":"x","event_time":1772409600000,"channel":3}"#.to_vec(),
            Some(SchemaViolation),
        ),
        (
            "number for text".into(),
            ev(r#","text":7"#).into_bytes(),
            Some(SchemaViolation),
        ),
        (
            "string for sentiment".into(),
            ev(r#","sentiment":"0.5""#).into_bytes(),
            Some(SchemaViolation),
        ),
        (
            "string for complaint".into(),
            ev(r#","complaint":"yes""#).into_bytes(),
            Some(SchemaViolation),
        ),
        (
            "string for schema_version".into(),
            ev(r#","schema_version":"1""#).into_bytes(),
            Some(SchemaViolation),
        ),
        (
            "numeric string time".into(),
            br#"{"id":"x","event_time":"1772409600000","channel":"chat"}"#.to_vec(),
            None,
        ),
        (
            "1970 millis".into(),
            br#"{"id":"x","event_time":0,"channel":"chat"}"#.to_vec(),
            Some(BadTimestamp),
        ),
        (
            "1970 text".into(),
            br#"{"id":"x","event_time":"1970-01-01T00:00:00Z","channel":"chat"}"#.to_vec(),
            Some(BadTimestamp),
        ),
        (
            "2100 text".into(),
            br#"{"id":"x","event_time":"2100-01-01T00:00:00Z","channel":"chat"}"#.to_vec(),
            Some(BadTimestamp),
        ),
        (
            "2100 millis".into(),
            br#"{"id":"x","event_time":4102444800000,"channel":"chat"}"#.to_vec(),
            Some(BadTimestamp),
        ),
        (
            "i64::MIN".into(),
            br#"{"id":"x","event_time":-9223372036854775808,"channel":"chat"}"#.to_vec(),
            Some(BadTimestamp),
        ),
        (
            "u64::MAX".into(),
            br#"{"id":"x","event_time":18446744073709551615,"channel":"chat"}"#.to_vec(),
            Some(BadTimestamp),
        ),
        (
            "1e300".into(),
            br#"{"id":"x","event_time":1e300,"channel":"chat"}"#.to_vec(),
            Some(BadTimestamp),
        ),
        (
            "NaN literal".into(),
            ev(r#","sentiment":NaN"#).into_bytes(),
            Some(MalformedJson),
        ),
        (
            "Infinity literal".into(),
            ev(r#","sentiment":Infinity"#).into_bytes(),
            Some(MalformedJson),
        ),
        (
            "-Infinity time".into(),
            br#"{"id":"x","event_time":-Infinity,"channel":"chat"}"#.to_vec(),
            Some(MalformedJson),
        ),
        (
            "sentiment out of range".into(),
            ev(r#","sentiment":1e308"#).into_bytes(),
            Some(SchemaViolation),
        ),
        (
            "duplicate id".into(),
            br#"{"id":"x","id":"y","event_time":1772409600000,"channel":"chat"}"#.to_vec(),
            Some(SchemaViolation),
        ),
        (
            "duplicate text".into(),
            ev(r#","text":"a","text":"b""#).into_bytes(),
            Some(SchemaViolation),
        ),
        (
            "top-level array".into(),
            b"[1,2,3]".to_vec(),
            Some(SchemaViolation),
        ),
        (
            "top-level string".into(),
            b"\"hi\"".to_vec(),
            Some(SchemaViolation),
        ),
        ("null".into(), b"null".to_vec(), Some(SchemaViolation)),
        (
            "trailing garbage".into(),
            format!("{} x", ev("")).into_bytes(),
            Some(MalformedJson),
        ),
        ("NUL bytes".into(), vec![0; 64], Some(MalformedJson)),
        (
            "BOM".into(),
            [b"\xef\xbb\xbf".as_slice(), ev("").as_bytes()].concat(),
            Some(MalformedJson),
        ),
        (
            "huge id".into(),
            format!(
                r#"{{"id":"{}","event_time":{NOW},"channel":"chat"}}"#,
                "i".repeat(1000)
            )
            .into_bytes(),
            Some(SchemaViolation),
        ),
        (
            "unknown channel".into(),
            br#"{"id":"x","event_time":1772409600000,"channel":"pigeon"}"#.to_vec(),
            Some(UnknownChannel),
        ),
    ];
    for (name, bytes, want) in cases {
        assert_eq!(reason(&bytes), want, "{name}");
    }
    // Refused, whichever reason serde_json's error category maps to.
    for bytes in [
        deep.into_bytes(),
        br#"{"id":"x","event_time":1e999,"channel":"chat"}"#.to_vec(),
    ] {
        assert!(reason(&bytes).is_some());
    }
}

#[test]
fn the_largest_default_event_is_decoded_and_classified() {
    // 10 MB payloads are refused by the default 64 KiB limit (see the table above), which
    // bounds memory per event. Classification cost is linear in the text (1 MB and 4 MB texts
    // are checked in `classify::tests::cost_is_linear_in_text_length`); this test exercises
    // the largest payload the default limit lets through.
    let text = "my parcel never arrived ".repeat(60 * 1024 / 24);
    let payload = ev(&format!(r#","text":"{text}""#));
    let limits = DecodeLimits {
        max_bytes: usize::MAX,
        ..Default::default()
    };
    let e = event::decode(payload.as_bytes(), &limits, &ctx()).expect("valid");
    let mut p = pipeline();
    p.ingest(&e);
    assert_eq!(p.stats().events_by_channel.iter().sum::<u64>(), 1);
}

/// Without a processing clock (`now_ms` 0) the future check is off: extreme but valid
/// times must still not overflow the window arithmetic.
#[test]
fn extreme_event_times_without_a_clock_do_not_overflow() {
    let limits = DecodeLimits::default();
    for t in [i64::MAX, i64::MAX - 1, 253_402_300_799_999, i64::MAX / 2] {
        let mut p = pipeline();
        let payload = format!(r#"{{"id":"x","event_time":{t},"channel":"chat"}}"#);
        if let Ok(e) = event::decode(payload.as_bytes(), &limits, &DecodeContext::default()) {
            p.ingest(&e);
        }
        let mut out = Vec::new();
        p.advance(t.saturating_sub(120_000), &mut out);
        p.flush(&mut out);
    }
}

/// A million distinct upstream topic strings: the topic labels stay the taxonomy plus
/// `other`, and the retained state (serialized checkpoint size) does not grow with them.
#[test]
fn a_million_upstream_topics_keep_labels_and_state_bounded() {
    let mut p = pipeline();
    let n_topics = p.topics().len();
    let size = |p: &Pipeline| {
        state::encode(&p.checkpoint(Positions::new()))
            .expect("encode")
            .len()
    };
    let mut buf = String::new();
    let mut feed = |p: &mut Pipeline, range: std::ops::Range<u32>| {
        for i in range {
            use std::fmt::Write;
            buf.clear();
            // Same window: only the labels vary.
            let _ = write!(
                buf,
                r#"{{"id":"e{i}","event_time":{NOW},"channel":"chat","topic":"upstream-{i}","complaint":true}}"#
            );
            p.ingest_json(buf.as_bytes(), &ctx()).expect("valid");
        }
    };
    feed(&mut p, 0..1_000);
    let before = size(&p);
    feed(&mut p, 1_000..1_000_000);
    let after = size(&p);
    assert_eq!(p.stats().complaints_by_topic.len(), n_topics);
    assert_eq!(p.stats().events_by_channel.iter().sum::<u64>(), 1_000_000);
    // Counters widen from 2- to 4-byte CBOR integers; nothing else may grow.
    assert!(
        after <= before + 256,
        "state grew from {before} to {after} bytes"
    );
    let mut out = Vec::new();
    p.flush(&mut out);
    let labels: std::collections::BTreeSet<u16> = out
        .iter()
        .filter_map(|o| match o {
            Output::Window(w) => Some(w.topic),
            Output::Crisis(_) => None,
        })
        .collect();
    assert!(labels.len() <= n_topics);
}

fn fixed(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0x5eed_c415),
        ..ProptestConfig::default()
    }
}

/// JSON-ish values where any field may hold any type.
fn json_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        prop::sample::select(vec![
            "null",
            "true",
            "NaN",
            "1e400",
            "-0",
            r#""2026-03-02T10:00:00Z""#,
            r#""chat""#,
        ])
        .prop_map(str::to_string),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:e}")),
        (1_700_000_000_000i64..1_900_000_000_000).prop_map(|n| n.to_string()),
        "[ -~]{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
        "\\PC{0,8}".prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(("[a-z_]{1,8}", inner), 0..4).prop_map(|kv| {
                let f: Vec<String> = kv.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                format!("{{{}}}", f.join(","))
            }),
        ]
    })
}

static FIELDS: [&str; 12] = [
    "id",
    "event_time",
    "timestamp",
    "channel",
    "text",
    "language",
    "topic",
    "complaint",
    "sentiment",
    "customer_id",
    "attributes",
    "schema_version",
];

proptest! {
    #![proptest_config(fixed(300))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        with_shared(|p| {
            let _ = p.ingest_json(&bytes, &ctx());
        });
    }

    /// Objects built from the schema's field names with values of any type: decoded events
    /// are ingested and windows closed; refusals carry a reason.
    #[test]
    fn any_field_any_type_never_panics(
        fields in prop::collection::vec((prop::sample::select(&FIELDS[..]), json_value()), 0..8),
    ) {
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        let payload = format!("{{{}}}", body.join(","));
        with_shared(|p| -> Result<(), TestCaseError> {
            match p.ingest_json(payload.as_bytes(), &ctx()) {
                Ok(_) => {
                    let mut out = Vec::new();
                    p.advance(NOW + 3_600_000, &mut out);
                    p.flush(&mut out);
                }
                Err(e) => prop_assert!(DecodeReason::ALL.contains(&e.reason)),
            }
            Ok(())
        })?;
    }
}
