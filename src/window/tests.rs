use super::*;
use proptest::prelude::*;

/// A closed window without its samples: start, and per topic (complaints, complaint events,
/// contacts, counted complaints per channel, terms).
type Stripped = (
    i64,
    Vec<(u64, u64, u64, [u64; Channel::COUNT], Vec<(u32, u64)>)>,
);

const MIN: i64 = 60_000;

fn ev(agg: &mut Aggregator, t: i64, topic: u16, complaint: bool) -> Admit {
    agg.add(
        EventTime(t),
        TopicId(topic),
        Channel::Chat,
        complaint,
        &[7],
        "id",
        None,
    )
}

/// A complaint by customer `c` (a made-up hash) on `channel`.
fn by(agg: &mut Aggregator, t: i64, topic: u16, channel: Channel, c: Option<u64>) {
    agg.add(EventTime(t), TopicId(topic), channel, true, &[7], "id", c);
}

#[test]
fn a_customer_counts_once_per_window_topic_and_channel() {
    let mut a = Aggregator::new(WindowSpec::tumbling(5 * MIN), 2, 2);
    // Customer 1 complains five times on topic 0 (phone, phone, chat, chat, chat), customer 2
    // once, two complaints carry no customer; customer 1 also complains once on topic 1.
    for (t, ch) in [
        (0, Channel::Phone),
        (1, Channel::Phone),
        (2, Channel::Chat),
        (3, Channel::Chat),
        (4, Channel::Chat),
    ] {
        by(&mut a, t, 0, ch, Some(1));
    }
    by(&mut a, 5, 0, Channel::Chat, Some(2));
    by(&mut a, 6, 0, Channel::Chat, None);
    by(&mut a, 7, 0, Channel::Chat, None);
    by(&mut a, 8, 1, Channel::Chat, Some(1));
    // The same customer in the next window counts again.
    by(&mut a, 5 * MIN, 0, Channel::Phone, Some(1));
    let mut out = Vec::new();
    a.flush(&mut out);
    let t = &out[0].topics[0];
    assert_eq!((t.complaints, t.complaint_events), (4, 8));
    assert_eq!(t.by_channel[Channel::Phone.index()], 1);
    assert_eq!(t.by_channel[Channel::Chat.index()], 4);
    assert_eq!(t.by_channel_events[Channel::Chat.index()], 6);
    assert_eq!(out[0].topics[1].complaints, 1);
    assert_eq!(out[1].topics[0].complaints, 1);
}

#[test]
fn counting_events_ignores_customers() {
    let mut a =
        Aggregator::new(WindowSpec::tumbling(5 * MIN), 1, 2).with_count_mode(CountMode::Events);
    for t in 0..4 {
        by(&mut a, t, 0, Channel::Chat, Some(1));
    }
    let mut out = Vec::new();
    a.flush(&mut out);
    assert_eq!(
        (
            out[0].topics[0].complaints,
            out[0].topics[0].complaint_events
        ),
        (4, 4)
    );
}

#[test]
fn hopping_windows_count_a_customer_once_across_their_bins() {
    let spec = WindowSpec {
        size_ms: 10 * MIN,
        hop_ms: 5 * MIN,
        max_gap_windows: 1000,
    };
    let mut a = Aggregator::new(spec, 1, 2);
    by(&mut a, 0, 0, Channel::Chat, Some(1));
    by(&mut a, 6 * MIN, 0, Channel::Chat, Some(1));
    by(&mut a, 7 * MIN, 0, Channel::Chat, Some(2));
    let mut out = Vec::new();
    a.flush(&mut out);
    let counts: Vec<(i64, u64, u64)> = out
        .iter()
        .map(|w| {
            let t = &w.topics[0];
            (w.start_ms / MIN, t.complaints, t.complaint_events)
        })
        .collect();
    assert_eq!(counts, vec![(0, 2, 3), (5, 2, 2)]);
}

#[test]
fn zero_windows_for_silent_topics_and_gaps() {
    let mut a = Aggregator::new(WindowSpec::tumbling(5 * MIN), 3, 2);
    ev(&mut a, 0, 0, true);
    ev(&mut a, 21 * MIN, 1, true);
    let mut out = Vec::new();
    a.advance(25 * MIN, &mut out);
    assert_eq!(out.len(), 5);
    assert!(out.iter().all(|w| w.topics.len() == 3));
    assert_eq!(out[0].topics[0].complaints, 1);
    assert_eq!(out[1].topics.iter().map(|t| t.complaints).sum::<u64>(), 0);
    assert_eq!(out[4].topics[1].complaints, 1);
}

#[test]
fn late_events_are_counted_not_dropped_silently() {
    let mut a = Aggregator::new(WindowSpec::tumbling(5 * MIN), 2, 2);
    ev(&mut a, 0, 0, true);
    let mut out = Vec::new();
    a.advance(5 * MIN, &mut out);
    assert_eq!(ev(&mut a, MIN, 1, true), Admit::Late);
    assert_eq!(a.late_events(), 1);
    assert_eq!(a.late_per_topic()[1], 1);
}

#[test]
fn hopping_windows_overlap() {
    let spec = WindowSpec {
        size_ms: 10 * MIN,
        hop_ms: 5 * MIN,
        max_gap_windows: 1000,
    };
    let mut a = Aggregator::new(spec, 1, 2);
    ev(&mut a, 6 * MIN, 0, true);
    ev(&mut a, 0, 0, true);
    let mut out = Vec::new();
    a.flush(&mut out);
    let counts: Vec<(i64, u64)> = out
        .iter()
        .map(|w| (w.start_ms / MIN, w.topics[0].complaints))
        .collect();
    assert_eq!(counts, vec![(0, 2), (5, 1)]);
}

#[test]
fn channels_terms_and_samples_are_kept() {
    let mut a = Aggregator::new(WindowSpec::tumbling(5 * MIN), 1, 2);
    a.add(
        EventTime(0),
        TopicId(0),
        Channel::Phone,
        true,
        &[1, 2],
        "a",
        None,
    );
    a.add(
        EventTime(1),
        TopicId(0),
        Channel::Email,
        true,
        &[2],
        "b",
        None,
    );
    a.add(
        EventTime(2),
        TopicId(0),
        Channel::Email,
        true,
        &[2],
        "c",
        None,
    );
    a.add(
        EventTime(3),
        TopicId(0),
        Channel::Email,
        false,
        &[9],
        "d",
        None,
    );
    let mut out = Vec::new();
    a.flush(&mut out);
    let t = &out[0].topics[0];
    assert_eq!(t.complaints, 3);
    assert_eq!(t.contacts, 4);
    assert_eq!(t.by_channel[Channel::Phone.index()], 1);
    assert_eq!(t.by_channel[Channel::Email.index()], 2);
    assert_eq!(t.terms, vec![(2, 3), (1, 1)]);
    assert_eq!(t.samples, vec!["a".to_string(), "b".to_string()]);
}

#[test]
fn huge_gap_is_bounded() {
    let spec = WindowSpec {
        size_ms: MIN,
        hop_ms: MIN,
        max_gap_windows: 10,
    };
    let mut a = Aggregator::new(spec, 1, 1);
    ev(&mut a, 0, 0, true);
    let mut out = Vec::new();
    a.advance(MIN, &mut out);
    out.clear();
    a.advance(1_000_000 * MIN, &mut out);
    assert!(out.len() <= 10);
    assert!(a.skipped_windows() > 0);
}

/// Runs a stream through the aggregator with watermark = max seen - lateness.
/// Events are (time, topic, complaint, customer: 0 = none); the customer also picks the
/// channel, so per-channel distinct counts are exercised too.
type Ev = (i64, u16, bool, u8);

fn run(spec: WindowSpec, lateness: i64, events: &[Ev]) -> (Vec<ClosedWindow>, u64) {
    let mut a = Aggregator::new(spec, 3, 100);
    let mut out = Vec::new();
    let mut max_seen = i64::MIN;
    for &(t, topic, c, cust) in events {
        a.add(
            EventTime(t),
            TopicId(topic),
            Channel::ALL[usize::from(cust) % 2],
            c,
            &[u32::from(topic)],
            "e",
            (cust > 0).then_some(u64::from(cust)),
        );
        max_seen = max_seen.max(t);
        a.advance(max_seen - lateness, &mut out);
    }
    a.flush(&mut out);
    (out, a.late_events())
}

/// A permutation of `sorted` in which every event arrives no later than `lateness` behind
/// the maximum seen so far: sort by `t + jitter` with jitter in [0, lateness].
fn bounded_shuffle(sorted: &[Ev], jitter: &[i64], lateness: i64) -> Vec<Ev> {
    let mut v: Vec<(i64, Ev)> = sorted
        .iter()
        .zip(jitter.iter().cycle())
        .map(|(e, j)| (e.0 + j.rem_euclid(lateness + 1), *e))
        .collect();
    v.sort_by_key(|x| x.0);
    v.into_iter().map(|x| x.1).collect()
}

proptest! {
    #[test]
    fn arrival_order_within_lateness_does_not_matter(
        mut events in prop::collection::vec((0i64..(6 * 3600 * 1000), 0u16..3, any::<bool>(), 0u8..6), 1..300),
        jitter in prop::collection::vec(0i64..i64::MAX / 4, 1..50),
        hopping in any::<bool>(),
    ) {
        let spec = if hopping {
            WindowSpec { size_ms: 10 * MIN, hop_ms: 5 * MIN, max_gap_windows: 100_000 }
        } else {
            WindowSpec::tumbling(5 * MIN)
        };
        let lateness = 7 * MIN;
        events.sort_by_key(|e| e.0);
        let (sorted_out, late_a) = run(spec, lateness, &events);
        let shuffled = bounded_shuffle(&events, &jitter, lateness);
        let (shuffled_out, late_b) = run(spec, lateness, &shuffled);
        prop_assert_eq!(late_a, 0);
        prop_assert_eq!(late_b, 0);
        // Samples depend on arrival order by design; compare everything else.
        let strip = |w: &[ClosedWindow]| -> Vec<Stripped> {
            w.iter().map(|w| (w.start_ms, w.topics.iter().map(|t| (t.complaints, t.complaint_events, t.contacts, t.by_channel, t.terms.clone())).collect())).collect()
        };
        prop_assert_eq!(strip(&sorted_out), strip(&shuffled_out));
        // Nothing lost, nothing double counted: each event in exactly size/hop windows.
        let per_event = (spec.size_ms / spec.hop_ms) as u64;
        let total: u64 = sorted_out.iter().flat_map(|w| w.topics.iter()).map(|t| t.contacts).sum();
        let first = sorted_out.first().map(|w| w.start_ms).unwrap_or(0);
        // Events in the first (size/hop - 1) hops belong to fewer emitted windows.
        let expected: u64 = events.iter().map(|e| {
            let k = ((e.0 - first).div_euclid(spec.hop_ms) + 1) as u64;
            k.min(per_event)
        }).sum();
        prop_assert_eq!(total, expected);
        // Against a naive model: per window and topic, complaints without a customer plus
        // distinct customers.
        for w in &sorted_out {
            for (ti, t) in w.topics.iter().enumerate() {
                let inside = events.iter().filter(|e| {
                    e.2 && e.1 as usize == ti && (w.start_ms..w.end_ms).contains(&e.0)
                });
                let mut anon = 0u64;
                let mut seen = std::collections::BTreeSet::new();
                for e in inside {
                    if e.3 == 0 { anon += 1 } else { seen.insert(e.3); }
                }
                prop_assert_eq!(t.complaints, anon + seen.len() as u64);
            }
        }
    }

    #[test]
    fn late_events_are_exactly_those_behind_closed_windows(
        events in prop::collection::vec((0i64..(3600 * 1000), 0u16..3, any::<bool>(), 0u8..4), 1..200),
    ) {
        // Arbitrary order, zero lateness: every event is either counted once or late.
        let (out, late) = run(WindowSpec::tumbling(5 * MIN), 0, &events);
        let counted: u64 = out.iter().flat_map(|w| w.topics.iter()).map(|t| t.contacts).sum();
        prop_assert_eq!(counted + late, events.len() as u64);
    }
}
