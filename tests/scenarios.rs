//! Contact-centre scenarios driving the detector directly with simulated per-window counts.
//! Each series learns for two weeks; week three carries the scenario. Assertions are on
//! detection delay (windows from onset to `Opened`) and false crises per simulated week.

mod support;

use crisis_pulse::detect::{DetectConfig, Detector, SeriesState, Transition};
use support::{DAY, HOUR, Sim, T0, WEEK, WINDOW_MS, daily_shape, run, weekly_shape};

/// Week three starts here; the scenario's events happen on its Wednesday.
const W3: i64 = 2 * WEEK;
const EVENT: i64 = W3 + 2 * DAY + 10 * HOUR;
const END: i64 = 3 * WEEK;

fn cfg() -> DetectConfig {
    DetectConfig::default()
}

fn topic(level: f64, w: i64) -> f64 {
    level * daily_shape(w) * weekly_shape(w)
}

#[test]
fn sudden_spike_opens_within_two_windows() {
    let mut sim = Sim::new(1, 0.02);
    let r = run(&cfg(), END, |w| {
        let m = if (EVENT..EVENT + 2 * HOUR).contains(&w) {
            3.0
        } else {
            1.0
        };
        sim.draw(m * topic(40.0, w))
    });
    let delay = r.delay(EVENT).expect("spike detected");
    println!("sudden spike: delay {delay} windows");
    assert!(delay <= 1, "delay {delay}");
    assert_eq!(r.false_opens(W3, END, EVENT, EVENT + 4 * HOUR), 0);
    assert!(
        r.resolved
            .iter()
            .any(|&w| w > EVENT && w < EVENT + 4 * HOUR)
    );
    assert!(r.escalated.len() <= 3, "escalations {:?}", r.escalated);
}

#[test]
fn slow_ramp_over_hours_is_caught_before_it_peaks() {
    let mut sim = Sim::new(2, 0.02);
    let r = run(&cfg(), END, |w| {
        let m = if (EVENT..EVENT + 6 * HOUR).contains(&w) {
            1.0 + 2.0 * ((w - EVENT) as f64 / (4 * HOUR) as f64).min(1.0)
        } else {
            1.0
        };
        sim.draw(m * topic(40.0, w))
    });
    let delay = r.delay(EVENT).expect("ramp detected");
    println!("slow ramp (x3 over 4 h): delay {delay} windows");
    assert!(delay <= 3 * HOUR, "delay {delay}");
    assert_eq!(r.false_opens(W3, END, EVENT, EVENT + 8 * HOUR), 0);
}

#[test]
fn low_volume_topic_two_to_twelve_is_a_crisis() {
    let mut sim = Sim::new(3, 0.0);
    let r = run(&cfg(), END, |w| {
        let m = if (EVENT..EVENT + HOUR).contains(&w) {
            12.0
        } else {
            2.0
        };
        sim.draw(m)
    });
    let delay = r.delay(EVENT).expect("low-volume wave detected");
    println!("low volume 2 -> 12: delay {delay} windows");
    assert!(delay <= 2, "delay {delay}");
    assert_eq!(r.false_opens(W3, END, EVENT, EVENT + 2 * HOUR), 0);
}

#[test]
fn high_volume_wobble_stays_quiet() {
    let mut sim = Sim::new(4, 0.0005);
    let mut wobble = Sim::new(40, 0.0);
    let mut m = 1.0;
    let r = run(&cfg(), END, |w| {
        if w % HOUR == 0 {
            // A sustained +0..5% drift, re-drawn every hour.
            m = 1.0 + 0.05 * (wobble.draw(10.0) / 20.0).min(1.0);
        }
        sim.draw(m * topic(2000.0, w))
    });
    println!(
        "high volume +5% wobble: {} false crises in week 3",
        r.false_opens(W3, END, 0, 0)
    );
    assert_eq!(r.false_opens(W3, END, 0, 0), 0);
}

#[test]
fn daily_peak_hour_stays_quiet() {
    let mut sim = Sim::new(5, 0.02);
    let r = run(&cfg(), END, |w| {
        let lunch = (w % DAY) / HOUR == 12;
        sim.draw(topic(30.0, w) * if lunch { 4.0 } else { 1.0 })
    });
    println!(
        "daily peak hour: {} false crises in week 3",
        r.false_opens(W3, END, 0, 0)
    );
    assert_eq!(r.false_opens(W3, END, 0, 0), 0);
}

#[test]
fn holiday_lull_and_recovery_stay_quiet() {
    let mut sim = Sim::new(6, 0.02);
    let holiday = W3 + 2 * DAY;
    let r = run(&cfg(), END, |w| {
        let m = if (holiday..holiday + DAY).contains(&w) {
            0.3
        } else {
            1.0
        };
        sim.draw(m * topic(40.0, w))
    });
    println!(
        "holiday lull: {} false crises in week 3",
        r.false_opens(W3, END, 0, 0)
    );
    assert_eq!(r.false_opens(W3, END, 0, 0), 0);
}

#[test]
fn channel_going_silent_opens_a_crisis_and_recovery_does_not() {
    let mut sim = Sim::new(7, 0.02);
    let r = run(&cfg(), END, |w| {
        if (EVENT..EVENT + 3 * HOUR).contains(&w) {
            0.0
        } else {
            sim.draw(topic(40.0, w))
        }
    });
    let delay = r.delay(EVENT).expect("silence detected");
    println!("channel silent: delay {delay} windows");
    assert!(delay <= 3, "delay {delay}");
    assert_eq!(
        r.opened.iter().filter(|&&w| w >= W3).count(),
        1,
        "{:?}",
        r.opened
    );
}

/// 500 quiet topics of assorted volumes for three weeks (the first is warm-up): false crises in
/// the last two, with and without cross-topic FDR control, and the record days marked (the
/// day records need eight days of history: the second week has about one week of days behind
/// it, the third two).
fn quiet_topics(fdr: bool) -> (usize, usize) {
    let cfg = DetectConfig {
        fdr: Some(fdr),
        ..DetectConfig::default()
    };
    let n = 500;
    let mut det = Detector::new(&cfg, WINDOW_MS);
    let mut sim = Sim::new(8, 0.03);
    let levels: Vec<f64> = (0..n)
        .map(|i| 1.0 + (i as f64 * 0.37) % 1.0 * 200.0)
        .collect();
    let mut counts = vec![0.0; n];
    let mut out = Vec::new();
    let mut opened = 0;
    let mut record_days = 0;
    for w in 0..3 * WEEK {
        for (c, &l) in counts.iter_mut().zip(&levels) {
            *c = sim.draw(topic(l, w));
        }
        det.assess(T0 + w * WINDOW_MS, &counts, &mut out);
        if w >= WEEK {
            opened += out
                .iter()
                .filter(|a| matches!(a.transition, Some(Transition::Opened { .. })))
                .count();
            record_days += out.iter().filter(|a| a.day_record != 0.0).count();
        }
        debug_assert!(out.iter().all(|a| a.score.is_finite()));
    }
    assert!(out.iter().all(|a| a.state != SeriesState::Warmup));
    (opened, record_days)
}

#[test]
fn fdr_keeps_500_quiet_topics_quiet() {
    let (with, days) = quiet_topics(true);
    let (without, _) = quiet_topics(false);
    println!(
        "500 quiet topics, two weeks: {with} false crises with FDR, {without} without; \
         {days} record days"
    );
    assert!(with <= 4, "{with}");
    assert!(with <= without);
    // Record days are not crises (they open nothing), but a quiet topic should rarely have one:
    // 22 in these two weeks (with the records one and two weeks old; they grow rarer as the
    // records age), all on weekends, all quietest days of 3.0-3.4 % below the record.
    assert!(
        days <= 40,
        "{days} record days among 500 quiet topics in two weeks"
    );
}
