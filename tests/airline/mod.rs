//! Replaying the airline tweets of ../shared/data/twitter-us-airline-sentiment/Tweets.csv
//! with the shipped `examples/airline.toml`: shared by `tests/southwest.rs` and
//! `examples/airline_bursts.rs` (which includes this file with `#[path]`).

#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;

use crisis_pulse::app::{self, Outputs, ReplayOptions};
use crisis_pulse::config::Config;
use crisis_pulse::event::{self, Channel, CrisisState};
use crisis_pulse::source::file::Mapping;

pub fn shared() -> PathBuf {
    let dir = std::env::var_os("CRISIS_PULSE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    assert!(
        dir.join("data/twitter-us-airline-sentiment/Tweets.csv")
            .exists(),
        "this replays real tweets from {}/data/twitter-us-airline-sentiment/Tweets.csv, \
         which is missing: CI places the shared reference folder beside the clone; set \
         CRISIS_PULSE_SHARED to its path",
        dir.display()
    );
    dir
}

/// Tweets to one airline as NDJSON contact events, the author (`name`) as the customer:
/// deduplicated by tweet_id, with the dataset's label leakage undone (its SOURCE.md: "cancel" was replaced by "Cancelled
/// Flight", "late" by "Late Flight", "booking" by "Flight Booking Problems").
pub fn airline_ndjson(airline: &str) -> (tempfile::NamedTempFile, usize) {
    let path = shared().join("data/twitter-us-airline-sentiment/Tweets.csv");
    let mut rdr = csv::Reader::from_path(&path).expect("Tweets.csv");
    let headers = rdr.headers().expect("header").clone();
    let col = |n: &str| headers.iter().position(|h| h == n).expect(n);
    let (id, air, text, created, author) = (
        col("tweet_id"),
        col("airline"),
        col("text"),
        col("tweet_created"),
        col("name"),
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
            "customer_id": &r[author],
        });
        serde_json::to_writer(&mut out, &v).expect("write");
        out.write_all(b"\n").expect("write");
        n += 1;
    }
    out.flush().expect("flush");
    (out, n)
}

pub fn ms(s: &str) -> i64 {
    event::parse_timestamp(s).expect(s)
}

/// Replays one airline's tweets and returns the crises opened.
pub fn opened(airline: &str) -> Vec<crisis_pulse::event::CrisisEvent> {
    let (file, n) = airline_ndjson(airline);
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
    summary
        .crises
        .into_iter()
        .filter(|c| c.state == CrisisState::Opened)
        .collect()
}
