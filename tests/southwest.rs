//! A real crisis, found: Southwest Airlines' Saturday 2015-02-21 (winter-storm cancellations
//! and hours-long phone holds), replayed from the real tweets in
//! ../shared/data/twitter-us-airline-sentiment/Tweets.csv with the shipped
//! `examples/airline.toml`, classifying from text only (the sentiment and reason labels are
//! never given to crisis-pulse).

mod airline;

use airline::*;

/// Replays Southwest's tweets and returns the crises opened.
fn southwest_opened() -> Vec<crisis_pulse::event::CrisisEvent> {
    let (_, n) = airline_ndjson("Southwest");
    assert!(n > 2300, "expected ~2,400 unique Southwest tweets, got {n}");
    let opened = opened("Southwest");
    for c in &opened {
        eprintln!(
            "opened {} in window {}, onset {} (observed {} customers / {} complaints vs {:.1}, p {:.1e})",
            c.topic, c.window_start, c.onset, c.observed, c.observed_events, c.expected, c.p_value
        );
    }
    opened
}

/// The acceptance criterion of the core-engine issue: a crisis is *opened* on each topic during
/// 2015-02-21 06:00-14:00 -08:00 (the window whose close opened it starts in that span), and
/// its reported onset belongs to the storm day. With detector 1.3 and distinct customers
/// counted, cancellation's onset is 06:00; customer_service's is reported at 04:00, where the
/// run of unusual windows behind the opening starts (2 customers against 0.37 expected at
/// 04:00, 4 against 0.57 at 05:00; quiet nights have 0-1): the phone-hold complaints began
/// overnight, two hours before the hand-labelled burst. See docs/detection.md.
#[test]
fn southwest_crisis_of_2015_02_21_is_found() {
    let opened = southwest_opened();
    let (day, from, to) = (
        ms("2015-02-21T00:00:00-08:00"),
        ms("2015-02-21T06:00:00-08:00"),
        ms("2015-02-21T14:00:00-08:00"),
    );
    for topic in ["cancellation", "customer_service"] {
        assert!(
            opened.iter().any(|c| c.topic == topic
                && (from..to).contains(&ms(&c.window_start))
                && (day..to).contains(&ms(&c.onset))),
            "no {topic} crisis opened during 2015-02-21 06:00-14:00 -08:00"
        );
    }
}

#[test]
fn quiet_days_before_the_southwest_storm_stay_quiet() {
    let opened = southwest_opened();
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
