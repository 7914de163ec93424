//! End to end against the real broker: a known two-day stream with malformed records over
//! three channel topics; the service must publish exactly the crises the offline pipeline
//! finds (CloudEvents headers included) and dead-letter exactly the refused records.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use crisis_pulse::event::{CrisisEvent, DecodeReason};
use rdkafka::Message;

/// One record per refusal reason, plus a good record relying on topic channel and
/// Kafka timestamp fallbacks.
fn crafted(t: i64) -> Vec<(Vec<u8>, &'static str)> {
    let ts = crisis_pulse::event::format_rfc3339(t);
    vec![
        (Vec::new(), "empty"),
        (
            format!("{{\"id\":\"big\",\"text\":\"{}\"}}", "a".repeat(70_000)).into_bytes(),
            "oversize",
        ),
        (b"\xff\xfe\xfd".to_vec(), "invalid_utf8"),
        (b"{\"id\": \"x\", ".to_vec(), "malformed_json"),
        (
            format!("{{\"id\":{{}},\"event_time\":\"{ts}\",\"channel\":\"chat\"}}").into_bytes(),
            "schema_violation",
        ),
        (
            format!("{{\"id\":\"c1\",\"event_time\":\"{ts}\",\"channel\":\"pigeon\"}}")
                .into_bytes(),
            "unknown_channel",
        ),
        (
            b"{\"id\":\"c2\",\"event_time\":\"1970-01-01T00:00:00Z\",\"channel\":\"chat\"}"
                .to_vec(),
            "bad_timestamp",
        ),
        (
            b"{\"id\":\"c3\",\"text\":\"I was charged twice, refund please\"}".to_vec(),
            "ok",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_exact_crises_and_dead_letters() {
    let brokers = require_broker();
    let prefix = unique("e2e");
    let topics: Vec<String> = ["phone", "chat", "email"]
        .iter()
        .map(|c| format!("{prefix}.{c}"))
        .collect();
    let (crisis_topic, dlq_topic) = (format!("{prefix}-crisis"), format!("{prefix}-dlq"));
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    create_topics(&brokers, &names, 2).await;
    create_topics(&brokers, &[&crisis_topic, &dlq_topic], 1).await;
    let cfg = config(&brokers, &unique("g"), &topics, &crisis_topic, &dlq_topic);

    let sim = sim(2, 1.0, 7, true);
    let mut planned = Vec::new();
    for (i, r) in sim.iter().enumerate() {
        planned.push(Planned {
            topic: topics[r.channel.index() % 3].clone(),
            partition: (i % 2) as i32,
            payload: r.payload.clone(),
            timestamp_ms: r.time_ms,
        });
        if i % 2500 == 1000 {
            for (payload, _) in crafted(r.time_ms) {
                planned.push(Planned {
                    topic: topics[0].clone(),
                    partition: (i % 2) as i32,
                    payload,
                    timestamp_ms: r.time_ms,
                });
            }
        }
    }
    let data_end = sim.iter().map(|r| r.time_ms).max().expect("records");
    let oracle = oracle(&cfg, &planned);
    let reasons: std::collections::BTreeSet<_> =
        oracle.refused.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        reasons.len(),
        DecodeReason::ALL.len(),
        "the stream covers every refusal reason"
    );
    assert!(
        oracle.crises.iter().any(|c| c.topic == "billing"),
        "the injected wave is a crisis"
    );

    produce(&brokers, &planned);

    let (running, windows) =
        start_collecting(&cfg, data_end - 15 * MINUTE, Duration::from_secs(240)).await;
    let addr = running.http_addr;
    let metrics = running.metrics.clone();
    let ready = reqwest_like_get(addr, "/readyz").await;
    assert!(
        ready.starts_with("HTTP/1.1 200"),
        "ready once assigned: {ready}"
    );
    let summary = running
        .until(std::future::ready(()))
        .await
        .expect("clean shutdown");
    assert!(summary.messages >= planned.len() as u64);

    // Windows: every one the service closed equals the offline pipeline's.
    let mine = by_key(&windows);
    let theirs = by_key(&oracle.windows);
    let last_start = windows
        .iter()
        .map(|w| w.start_ms)
        .max()
        .expect("windows closed");
    assert!(
        last_start >= data_end - 15 * MINUTE,
        "windows up to the end of the data closed"
    );
    let mut compared = 0;
    for (k, w) in &theirs {
        if k.0 < last_start.min(data_end - 10 * MINUTE) {
            assert_eq!(mine.get(k), Some(w), "window {k:?}");
            compared += 1;
        }
    }
    assert!(compared > 500);

    // Crises: exactly the oracle's (deduplicated by event id), with CloudEvents headers.
    let msgs = read_topic(
        &brokers,
        &crisis_topic,
        1,
        Duration::from_secs(3),
        Duration::from_secs(30),
    );
    let mut got: BTreeMap<String, CrisisEvent> = BTreeMap::new();
    for m in &msgs {
        let ev: CrisisEvent =
            serde_json::from_slice(m.payload().expect("body")).expect("crisis JSON");
        assert_eq!(header(m, "ce_specversion").as_deref(), Some("1.0"));
        assert_eq!(header(m, "ce_id").as_deref(), Some(ev.event_id.as_str()));
        assert_eq!(
            header(m, "ce_type"),
            Some(format!("io.crisis-pulse.crisis.{}", ev.state.as_str()))
        );
        assert_eq!(
            header(m, "content-type").as_deref(),
            Some("application/json")
        );
        assert!(header(m, "ce_source").is_some() && header(m, "ce_time").is_some());
        assert_eq!(m.key(), Some(ev.topic.as_bytes()));
        got.insert(ev.event_id.clone(), ev);
    }
    // Windows before the last one received are complete (its channel rows may still be in flight).
    let cutoff = last_start.min(data_end - 10 * MINUTE) - 1;
    let start_ms =
        |c: &CrisisEvent| crisis_pulse::event::parse_timestamp(&c.window_start).expect("time");
    let want: BTreeMap<String, CrisisEvent> = oracle
        .crises
        .iter()
        .filter(|c| start_ms(c) <= cutoff)
        .map(|c| (c.event_id.clone(), c.clone()))
        .collect();
    let got: BTreeMap<String, CrisisEvent> = got
        .into_iter()
        .filter(|(_, c)| start_ms(c) <= cutoff)
        .collect();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    // Sample ids are the first complaints in arrival order, which interleaving partitions
    // changes; everything else is a function of the windows.
    let strip = |m: BTreeMap<String, CrisisEvent>| -> Vec<(usize, CrisisEvent)> {
        m.into_values()
            .map(|mut c| (std::mem::take(&mut c.sample_event_ids).len(), c))
            .collect()
    };
    assert_eq!(strip(got), strip(want));

    // Dead letters: exactly the refused records, payload unchanged, headers naming why and where.
    let dl = read_topic(
        &brokers,
        &dlq_topic,
        oracle.refused.len(),
        Duration::from_secs(3),
        Duration::from_secs(30),
    );
    let mut got_dl: Vec<(String, Vec<u8>)> = dl
        .iter()
        .map(|m| {
            assert!(header(m, "dlq_detail").is_some());
            assert!(topics.contains(&header(m, "dlq_source_topic").expect("topic")));
            assert!(
                header(m, "dlq_source_partition").is_some()
                    && header(m, "dlq_source_offset").is_some()
            );
            (
                header(m, "dlq_reason").expect("reason"),
                m.payload().unwrap_or(&[]).to_vec(),
            )
        })
        .collect();
    let mut want_dl: Vec<(String, Vec<u8>)> = oracle
        .refused
        .iter()
        .map(|(r, p)| (r.as_str().to_string(), p.clone()))
        .collect();
    got_dl.sort();
    want_dl.sort();
    assert_eq!(got_dl.len(), want_dl.len());
    assert!(
        got_dl == want_dl,
        "dead letters differ from the refused records"
    );
    let dead: u64 = DecodeReason::ALL
        .iter()
        .map(|r| metrics.dead_letters.with_label_values(&[r.as_str()]).get())
        .sum();
    assert_eq!(dead, oracle.refused.len() as u64);
}

/// A minimal HTTP GET (no client dependency): the status line and body.
async fn reqwest_like_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.expect("read");
    buf
}
