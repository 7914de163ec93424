//! A real crisis, found: Southwest Airlines' Saturday 2015-02-21 (winter-storm cancellations
//! and hours-long phone holds), replayed from the real tweets in
//! ../shared/data/twitter-us-airline-sentiment/Tweets.csv with the shipped
//! `examples/airline.toml`, classifying from text only (the sentiment and reason labels are
//! never given to crisis-pulse).

use std::io::Write;
use std::path::PathBuf;

use crisis_pulse::app::{self, Outputs, ReplayOptions};
use crisis_pulse::config::Config;
use crisis_pulse::event::{self, Channel, CrisisState};
use crisis_pulse::source::file::Mapping;

fn shared() -> PathBuf {
    let dir = std::env::var_os("CRISIS_PULSE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    assert!(
        dir.join("data/twitter-us-airline-sentiment/Tweets.csv")
            .exists(),
        "this test replays real tweets from {}/data/twitter-us-airline-sentiment/Tweets.csv, \
         which is missing: CI places the shared reference folder beside the clone; set \
         CRISIS_PULSE_SHARED to its path",
        dir.display()
    );
    dir
}

/// Tweets to one airline as NDJSON contact events: deduplicated by tweet_id, with the
/// dataset's label leakage undone (its SOURCE.md: "cancel" was replaced by "Cancelled
/// Flight", "late" by "Late Flight", "booking" by "Flight Booking Problems").
fn airline_ndjson(airline: &str) -> (tempfile::NamedTempFile, usize) {
    let path = shared().join("data/twitter-us-airline-sentiment/Tweets.csv");
    let mut rdr = csv::Reader::from_path(&path).expect("Tweets.csv");
    let headers = rdr.headers().expect("header").clone();
    let col = |n: &str| headers.iter().position(|h| h == n).expect(n);
    let (id, air, text, created) = (
        col("tweet_id"),
        col("airline"),
        col("text"),
        col("tweet_created"),
    );
    let mut seen = std::collections::HashSet::new();
    let mut out = tempfile::Builder::new()
        .suffix(".ndjson")
        .tempfile()
        .expect("temp");
    let mut n = 0;
    for rec in rdr.records() {
        let r = rec.expect("record");
        if &r[air] != airline || !seen.insert(r[id].to_string()) {
            continue;
        }
        let t = r[text]
            .replace("Cancelled Flight", "cancel")
            .replace("Late Flight", "late")
            .replace("Flight Booking Problems", "booking")
            .replace("&amp;", "&")
            .replace("&gt;", ">")
            .replace("&lt;", "<");
        let v = serde_json::json!({
            "id": &r[id], "event_time": &r[created], "channel": "social", "text": t, "language": "en",
        });
        serde_json::to_writer(&mut out, &v).expect("write");
        out.write_all(b"\n").expect("write");
        n += 1;
    }
    out.flush().expect("flush");
    (out, n)
}

fn ms(s: &str) -> i64 {
    event::parse_timestamp(s).expect(s)
}

#[test]
fn southwest_crisis_of_2015_02_21_is_found_and_quiet_days_stay_quiet() {
    let (file, n) = airline_ndjson("Southwest");
    assert!(n > 2300, "expected ~2,400 unique Southwest tweets, got {n}");
    let cfg_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/airline.toml");
    let cfg = Config::load(&cfg_path).unwrap_or_else(|e| panic!("{e}"));
    let mut sink: Vec<u8> = Vec::new();
    let mut outputs = Outputs {
        crises: &mut sink,
        windows: None,
    };
    let opts = ReplayOptions {
        input: file.path().to_path_buf(),
        format: None,
        mapping: Mapping::default(),
        default_channel: Some(Channel::Social),
    };
    let (summary, _) = app::replay(&opts, &cfg, &mut outputs).expect("replay");
    assert_eq!(
        summary.accepted as usize, n,
        "every tweet is a valid contact event"
    );

    let opened: Vec<_> = summary
        .crises
        .iter()
        .filter(|c| c.state == CrisisState::Opened)
        .collect();
    for c in &opened {
        eprintln!(
            "opened {} at {} (observed {} vs {:.1})",
            c.topic, c.onset, c.observed, c.expected
        );
    }
    let (from, to) = (
        ms("2015-02-21T06:00:00-08:00"),
        ms("2015-02-21T14:00:00-08:00"),
    );
    for topic in ["cancellation", "customer_service"] {
        assert!(
            opened
                .iter()
                .any(|c| c.topic == topic && (from..to).contains(&ms(&c.onset))),
            "no {topic} crisis opened during 2015-02-21 06:00-14:00 -08:00"
        );
    }
    // The quiet days before it: after the warm-up, nothing opens until the storm day.
    let quiet_from = ms("2015-02-18T00:00:00-08:00");
    let storm_day = ms("2015-02-21T00:00:00-08:00");
    let false_alarms: Vec<_> = opened
        .iter()
        .filter(|c| (quiet_from..storm_day).contains(&ms(&c.onset)))
        .collect();
    assert!(
        false_alarms.is_empty(),
        "crises on quiet days: {false_alarms:?}"
    );
}
