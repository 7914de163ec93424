//! Per-burst report on real complaint data: replays every airline's tweets of
//! ../shared/data/twitter-us-airline-sentiment/Tweets.csv with the shipped
//! `examples/airline.toml` (classifying from text only), then prints, for each hand-found
//! burst of `derived_spike_events.csv`, whether and when crisis-pulse opened a crisis, and every
//! crisis it opened that matches no burst. The tables in the README come from
//!
//!     cargo run --example airline_bursts
//!
//! (set CRISIS_PULSE_SHARED when ../shared is elsewhere).

#[path = "../tests/airline/mod.rs"]
mod airline;

use airline::*;

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
