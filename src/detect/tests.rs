//! Detector-level properties: checkpoints restore exactly, scores never leak NaN.

use super::*;

fn drive(det: &mut Detector, from: i64, to: i64, out: &mut Vec<Assessment>) -> Vec<f64> {
    let mut scores = Vec::new();
    for w in from..to {
        let x = [10.0 + (w % 7) as f64, if w == 700 { 90.0 } else { 3.0 }];
        det.assess(w * 300_000, &x, out);
        scores.extend(out.iter().map(|a| a.score));
    }
    scores
}

#[test]
fn checkpoint_round_trip_continues_identically() -> Result<(), serde_json::Error> {
    let mut a = Detector::new(&DetectConfig::default(), 300_000);
    let mut out = Vec::new();
    drive(&mut a, 0, 600, &mut out);
    let mut b: Detector = serde_json::from_str(&serde_json::to_string(&a)?)?;
    let sa = drive(&mut a, 600, 900, &mut out);
    let sb = drive(&mut b, 600, 900, &mut out);
    assert_eq!(sa, sb);
    Ok(())
}

#[test]
fn hostile_values_give_finite_scores() {
    let mut d = Detector::new(&DetectConfig::default(), 300_000);
    let mut out = Vec::new();
    let vals = [f64::NAN, f64::INFINITY, -1e300, 0.0, 1e300, -0.5, 3.0];
    for w in 0..2000 {
        let x = [vals[w % vals.len()], 5.0, f64::NAN];
        d.assess(w as i64 * 300_000, &x, &mut out);
        for a in &out {
            assert!(
                a.score.is_finite() && (0.0..=1.0).contains(&a.score),
                "{a:?}"
            );
            assert!(a.onset_score.is_finite() && a.p_value.is_finite(), "{a:?}");
            assert!(a.expected.is_finite() && a.upper.is_finite(), "{a:?}");
        }
    }
}

#[test]
fn spike_opens_then_resolves_with_one_lifecycle() {
    let mut d = Detector::new(&DetectConfig::default(), 300_000);
    let mut out = Vec::new();
    let mut events = Vec::new();
    for w in 0..1500i64 {
        let x = if (1000..1012).contains(&w) {
            60.0
        } else {
            10.0 + (w % 5) as f64
        };
        d.assess(w * 300_000, &[x], &mut out);
        if let Some(t) = out[0].transition {
            events.push((w, t));
        }
    }
    assert!(
        matches!(events.first(), Some((1000, Transition::Opened { .. }))),
        "{events:?}"
    );
    assert!(
        matches!(events.last(), Some((_, Transition::Resolved { .. }))),
        "{events:?}"
    );
    let opened = events
        .iter()
        .filter(|(_, t)| matches!(t, Transition::Opened { .. }))
        .count();
    assert_eq!(opened, 1, "{events:?}");
}

/// One series over `n` windows of a background that scatters like Poisson counts (a steadier
/// one is scored as continuous: below), replaced by `burst(w)` where that gives a value; every
/// window whose `onset_score` reaches 0.5, with its score.
fn marks_over_noise(n: i64, burst: impl Fn(i64) -> Option<f64>) -> Vec<(i64, f64)> {
    const NOISE: [f64; 7] = [6.0, 14.0, 9.0, 12.0, 10.0, 15.0, 7.0];
    let mut d = Detector::new(&DetectConfig::default(), 300_000);
    let mut out = Vec::new();
    let mut marked = Vec::new();
    for w in 0..n {
        let x = burst(w).unwrap_or(NOISE[w as usize % NOISE.len()]);
        d.assess(w * 300_000, &[x], &mut out);
        if out[0].onset_score >= 0.5 {
            marked.push((w, out[0].onset_score));
        }
    }
    marked
}

/// Windows whose `onset_score` reaches 0.5, for spikes of the given heights at windows
/// 1000-1005, 1192-1197 and 1800-1805 over the noise of [`marks_over_noise`].
fn onsets_marked(heights: [f64; 3]) -> Vec<i64> {
    let spikes = [(1000..1006), (1192..1198), (1800..1806)];
    marks_over_noise(2200, |w| {
        spikes
            .iter()
            .position(|r| r.contains(&w))
            .map(|i| heights[i])
    })
    .into_iter()
    .map(|(w, _)| w)
    .collect()
}

#[test]
fn onset_is_marked_at_most_once_a_day() {
    // The second spike, 16 h after the first and as high, reopens a crisis after the first
    // resolved and cooled down; it is the same story and marks no onset. The third, two days
    // later, does.
    assert_eq!(onsets_marked([400.0, 400.0, 2000.0]), vec![1000, 1800]);
}

#[test]
fn a_window_beyond_every_earlier_value_marks_an_onset_even_within_the_day() {
    // 1.6: a second spike five times higher than anything the series has shown is news,
    // quiet period or not (`range.rs`); one window marks it, not all six.
    assert_eq!(onsets_marked([80.0, 400.0, 2000.0]), vec![1000, 1192, 1800]);
}

#[test]
fn the_first_hour_does_not_set_the_range() {
    // 1.7: a burst of 100 in a series' fourth window (start-up) does not hide, two days
    // later, a window of 20 above everything shown since (6-15): the count model calls 20
    // unremarkable, the range record marks it. Without the start-up hour it would not.
    let marked = marks_over_noise(1100, |w| match w {
        3 => Some(100.0),
        1000 => Some(20.0),
        _ => None,
    });
    assert_eq!(marked.len(), 1, "{marked:?}");
    let (w, score) = marked[0];
    assert_eq!(w, 1000);
    // 20 lies 5 above a range 9 wide: 0.5 + 0.5 x 5/9.
    assert!((score - (0.5 + 0.5 * 5.0 / 9.0)).abs() < 1e-9, "{score}");
}

/// A crisis event explains itself: the opening names the test that carried it and its own
/// window's p-value; the resolution reports the whole crisis (its peak and length) and a
/// p-value of its own quiet window, not the evidence of windows already past.
#[test]
fn openings_carry_their_evidence_and_resolutions_the_whole_crisis() {
    let mut d = Detector::new(&DetectConfig::default(), 300_000);
    let mut out = Vec::new();
    let (mut opened, mut resolved) = (None, None);
    // Counts: a background that scatters like Poisson counts (see above).
    let noise = [6.0, 14.0, 9.0, 12.0, 10.0, 15.0, 7.0];
    for w in 0..1500i64 {
        let x = match w {
            1000..1012 => 60.0 + (w - 1000) as f64,
            _ => noise[w as usize % noise.len()],
        };
        d.assess(w * 300_000, &[x], &mut out);
        match out[0].transition {
            Some(Transition::Opened { .. }) => opened = Some((w, out[0])),
            Some(Transition::Resolved { .. }) => resolved = Some((w, out[0])),
            _ => {}
        }
    }
    let (ow, o) = opened.expect("the spike opens a crisis");
    assert!((1000..1012).contains(&ow), "opened at {ow}");
    let x = 60.0 + (ow - 1000) as f64;
    let e = o.evidence.expect("an opening carries its evidence");
    match e.test {
        EvidenceTest::Window => {
            assert_eq!((e.windows, e.observed), (1, x), "{o:?}");
            assert_eq!(e.p_value, o.p_window);
        }
        EvidenceTest::Scan => {
            assert!(e.windows > 1 && e.observed >= x, "{o:?}");
            assert!(e.p_value <= o.p_window, "{o:?}");
        }
        EvidenceTest::Ramp => assert!(e.windows >= 1 && e.observed == x, "{o:?}"),
    }
    assert!(e.observed > 3.0 * e.expected, "{o:?}");
    assert!(
        o.p_window < 1e-3,
        "the spike window alone is already unusual: {o:?}"
    );
    let (rw, r) = resolved.expect("the crisis resolves");
    assert!(r.evidence.is_none(), "{r:?}");
    assert_eq!(r.peak, 71.0, "the resolution reports the crisis's peak");
    assert_eq!(
        r.windows_in_crisis as i64,
        rw - ow + 1,
        "and its whole length"
    );
    assert!(r.p_window > 0.01, "a calm window's own p-value: {r:?}");
}

/// 1.4: a steady whole-number series (a speed) is scored as continuous, so a drop is scored at
/// all (the count model flags only near-silence downward) and opens at the shipped threshold.
#[test]
fn a_drop_in_a_steady_whole_number_series_is_scored() {
    let mut d = Detector::new(&DetectConfig::default(), 300_000);
    let mut out = Vec::new();
    let mut best = 0.0f64;
    for w in 0..1000i64 {
        let x = if (900..903).contains(&w) {
            30.0
        } else {
            64.0 + (w % 3) as f64
        };
        d.assess(w * 300_000, &[x], &mut out);
        if w >= 900 {
            best = best.max(out[0].score);
        }
    }
    assert!(best >= 0.5, "{best}");
}

/// 1.7: every series is quiet for a day after a marked onset (continuous values were quiet
/// for six hours from 1.4 to 1.6). A second event eight hours later marks another onset only
/// if it goes beyond everything the series has shown (the range record), for steady whole
/// numbers, continuous values and sparse counts alike.
#[test]
fn a_second_event_within_the_day_marks_only_beyond_the_range() {
    let onsets = |steady: f64, first: f64, second: f64| {
        let mut d = Detector::new(&DetectConfig::default(), 300_000);
        let mut out = Vec::new();
        let mut marked = 0;
        for w in 0..1200i64 {
            // Events at windows 900 and 996 (eight hours later), each three windows long.
            let x = if (900..903).contains(&w) {
                first
            } else if (996..999).contains(&w) {
                second
            } else {
                steady + (w % 3) as f64
            };
            d.assess(w * 300_000, &[x], &mut out);
            if w >= 900 && out[0].onset_score >= 0.5 {
                marked += 1;
            }
        }
        marked
    };
    assert_eq!(
        onsets(64.0, 30.0, 30.0),
        1,
        "steady whole numbers (continuous)"
    );
    assert_eq!(onsets(64.0, 30.0, 20.0), 2, "steady whole numbers, deeper");
    assert_eq!(onsets(64.5, 20.0, 20.0), 1, "continuous values");
    assert_eq!(onsets(64.5, 20.0, 5.0), 2, "continuous values, deeper");
    assert_eq!(onsets(0.0, 30.0, 30.0), 1, "sparse counts");
    assert_eq!(onsets(0.0, 30.0, 60.0), 2, "sparse counts, higher");
}

/// 1.5: a series that bursts every other day has shown that its bursts are not rare. The same
/// burst that marks an onset on a series that never burst does not mark one there, while the
/// crisis lifecycle (`score`) still sees it.
#[test]
fn a_burst_is_an_onset_on_a_calm_series_but_not_on_one_that_bursts_every_other_day() {
    // Four weeks of about 4 a window; the bursty series has a burst of 17 every other day
    // (576 windows), the calm one only the last.
    let last = (8064 / 576 - 1) * 576 + 300;
    let run = |bursty: bool| {
        let mut d = Detector::new(&DetectConfig::default(), 300_000);
        let mut out = Vec::new();
        for w in 0..=last {
            let burst = w == last || (bursty && w % 576 == 300);
            let x = if burst { 17.0 } else { (3 + w % 3) as f64 };
            d.assess(w * 300_000, &[x], &mut out);
        }
        out[0]
    };
    let (calm, bursty) = (run(false), run(true));
    assert!(calm.onset_score >= 0.5, "calm: {calm:?}");
    assert!(bursty.onset_score < 0.5, "bursty: {bursty:?}");
    assert!(
        bursty.score >= 0.5,
        "the lifecycle still sees it: {bursty:?}"
    );
}

/// 1.8: the tail counts bursts, not the windows of one. A storm of two hours marks its
/// onset; the same height two weeks later, alone, is an onset again: the storm taught the tail
/// one burst (forgiven at half weight after a half-life), not 24 that would make the series
/// look like one that bursts every day.
#[test]
fn a_long_storm_counts_once_in_the_tail() {
    let storm = 2000..2024;
    let again = 2000 + 4032;
    let marked: Vec<i64> = marks_over_noise(again + 10, |w| {
        (storm.contains(&w) || w == again).then_some(120.0)
    })
    .into_iter()
    .map(|(w, _)| w)
    .collect();
    assert!(marked.contains(&again), "{marked:?}");
    assert!(
        marked.iter().all(|w| storm.contains(w) || *w == again),
        "{marked:?}"
    );
}
