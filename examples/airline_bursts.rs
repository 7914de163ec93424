//! Per-burst report on real complaint data: replays every airline's tweets of
//! ../shared/data/twitter-us-airline-sentiment/Tweets.csv with the shipped
//! `examples/airline.toml` (classifying from text only), then prints, for each hand-found
//! burst of `derived_spike_events.csv`, whether and when crisis-pulse opened a crisis, and every
//! crisis it opened that matches no burst. The tables in the README come from
//!
//!     cargo run --example airline_bursts
//!
//! (set CRISIS_PULSE_SHARED when ../shared is elsewhere).

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
        "this report replays real tweets from {}/data/twitter-us-airline-sentiment/Tweets.csv, \
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

/// Replays one airline's tweets and returns the crises opened.
fn opened(airline: &str) -> Vec<crisis_pulse::event::CrisisEvent> {
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

/// The topic of `examples/airline.toml` that a hand-labelled `negativereason` corresponds to;
/// `None` for bursts of every negative reason (or of an unclear one): any topic matches.
fn topic_of_reason(reason: &str) -> Option<&'static str> {
    match reason {
        "Cancelled Flight" => Some("cancellation"),
        "Customer Service Issue" => Some("customer_service"),
        "Late Flight" => Some("delay"),
        "Lost Luggage" => Some("lost_luggage"),
        "Damaged Luggage" => Some("damaged_luggage"),
        "Flight Booking Problems" => Some("booking"),
        "Flight Attendant Complaints" => Some("flight_attendant"),
        "Bad Flight" => Some("bad_flight"),
        "longlines" => Some("long_lines"),
        _ => None,
    }
}

/// One hand-found burst of `derived_spike_events.csv`.
struct Burst {
    id: String,
    airline: String,
    reason: String,
    from_ms: i64,
    to_ms: i64,
    note: String,
}

fn bursts() -> Vec<Burst> {
    let path = shared().join("data/twitter-us-airline-sentiment/derived_spike_events.csv");
    let mut rdr = csv::Reader::from_path(&path).expect("derived_spike_events.csv");
    let headers = rdr.headers().expect("header").clone();
    let col = |n: &str| headers.iter().position(|h| h == n).expect(n);
    let (id, air, reason, from, to, note) = (
        col("event_id"),
        col("airline"),
        col("negativereason"),
        col("window_start"),
        col("window_end_exclusive"),
        col("note"),
    );
    rdr.records()
        .map(|r| {
            let r = r.expect("record");
            Burst {
                id: r[id].to_string(),
                airline: r[air].to_string(),
                reason: r[reason].to_string(),
                from_ms: ms(&r[from]),
                to_ms: ms(&r[to]),
                note: r[note].chars().take(60).collect(),
            }
        })
        .collect()
}

/// A crisis matches a burst when it is on the burst's airline and topic (any topic for an
/// all-reasons burst) and its onset falls in the burst or up to an hour before it (a window
/// that starts before the hand-picked hour boundary).
fn matches(b: &Burst, airline: &str, c: &crisis_pulse::event::CrisisEvent) -> bool {
    let onset = ms(&c.onset);
    b.airline == airline
        && topic_of_reason(&b.reason).is_none_or(|t| t == c.topic)
        && (b.from_ms - 3_600_000..b.to_ms).contains(&onset)
}

fn local(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .expect("time")
        .to_offset(time::macros::offset!(-8));
    format!(
        "{:02}-{:02} {:02}:{:02}",
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

fn main() {
    let airlines = [
        "Southwest",
        "US Airways",
        "United",
        "Delta",
        "Virgin America",
        "American",
    ];
    let bursts = bursts();
    let opened: Vec<(&str, Vec<_>)> = airlines.iter().map(|&a| (a, opened(a))).collect();
    println!(
        "| burst | airline | reason | window (-08:00) | crisis opened (onset, topic, observed/expected) |"
    );
    println!("|---|---|---|---|---|");
    for b in &bursts {
        let found: Vec<String> = opened
            .iter()
            .flat_map(|(a, cs)| cs.iter().map(move |c| (*a, c)))
            .filter(|(a, c)| matches(b, a, c))
            .map(|(_, c)| {
                format!(
                    "{} {} {}/{:.1}",
                    local(ms(&c.onset)),
                    c.topic,
                    c.observed,
                    c.expected
                )
            })
            .collect();
        println!(
            "| {} | {} | {} | {} - {} | {} |",
            b.id,
            b.airline,
            b.reason,
            local(b.from_ms),
            local(b.to_ms),
            if found.is_empty() {
                format!("none ({})", b.note)
            } else {
                found.join("; ")
            }
        );
    }
    println!();
    println!("| crises matching no burst | airline | onset (-08:00) | topic | observed/expected |");
    println!("|---|---|---|---|---|");
    let mut unmatched = 0;
    for (a, cs) in &opened {
        for c in cs
            .iter()
            .filter(|c| !bursts.iter().any(|b| matches(b, a, c)))
        {
            unmatched += 1;
            println!(
                "| {unmatched} | {a} | {} | {} | {}/{:.1} |",
                local(ms(&c.onset)),
                c.topic,
                c.observed,
                c.expected
            );
        }
    }
}
