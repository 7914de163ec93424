//! The exported metrics: clean under `promtool check metrics` after a demo run, bounded label
//! sets whatever the input, and every name used by the dashboard, the alert rules and the docs
//! really exported.

mod metrics_support;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

use crisis_pulse::app::DEMO_CONFIG;
use crisis_pulse::config::Config;
use crisis_pulse::event::DecodeContext;
use crisis_pulse::metrics::Metrics;
use crisis_pulse::pipeline::{Output, Pipeline};
use metrics_support::{DAY_MS, demo_metrics, metric_names_in, repo_path, tool};

/// Families that only a Kafka consumer fills (per-partition or per-Kafka-topic labels).
const KAFKA_ONLY: [&str; 2] = [
    "crisis_pulse_consumer_lag_messages",
    "crisis_pulse_kafka_messages_total",
];

fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new(tool("promtool"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running promtool");
    let mut pipe = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        pipe.write_all(text.as_bytes())
            .expect("writing to promtool");
    }
    drop(pipe);
    let out = child.wait_with_output().expect("promtool output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn promtool_accepts_the_registry_after_a_demo_run() {
    let (m, summary) = demo_metrics(2 * DAY_MS);
    assert!(summary.windows > 0);
    // What only the Kafka service fills, so promtool sees every family.
    m.consumer_lag
        .with_label_values(&["contacts.chat", "0"])
        .set(42);
    m.events_by_kafka_topic
        .with_label_values(&["contacts.chat"])
        .inc_by(7);
    let text = m.render();
    let (ok, complaints) = promtool(&["check", "metrics"], Some(&text));
    assert!(
        ok && complaints.trim().is_empty(),
        "promtool check metrics complained:\n{complaints}"
    );
    // The demo fed the pulse, intake and latency families.
    for info in m.catalog() {
        assert!(
            text.contains(&format!("# TYPE {} ", info.name)),
            "{} not rendered",
            info.name
        );
    }
    for name in [
        "crisis_pulse_window_observed_complaints{topic=\"outage\"}",
        "crisis_pulse_events_total{channel=\"social\"}",
        "crisis_pulse_batch_processing_seconds_count",
        "crisis_pulse_watermark_delay_seconds",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
}

#[test]
fn rendered_families_match_the_catalog() {
    let (m, _) = demo_metrics(DAY_MS / 4);
    let rendered: BTreeSet<String> = metric_names_in(&m.render()).into_iter().collect();
    // Sample names plus family names (a histogram's `# HELP` line names the family).
    let mut known: BTreeSet<String> = m.sample_names().into_iter().collect();
    known.extend(m.catalog().iter().map(|i| i.name.clone()));
    for name in &rendered {
        assert!(
            known.contains(name),
            "{name} rendered but not in the catalog"
        );
    }
    for info in m.catalog() {
        let kafka_only = KAFKA_ONLY.contains(&info.name.as_str());
        assert_eq!(
            rendered.contains(&info.name),
            !kafka_only,
            "{}: rendered after a demo run = {}",
            info.name,
            rendered.contains(&info.name)
        );
    }
}

/// A million distinct upstream topic strings must not become a million label values: the
/// classifier maps unknown topics to `other`, and the metrics only ever see taxonomy names.
#[test]
fn a_million_upstream_topics_keep_the_topic_label_bounded() {
    let cfg = Config::parse(DEMO_CONFIG, "examples/demo.toml").expect("demo config");
    let mut p = Pipeline::new(&cfg).expect("pipeline");
    let topics = p.topics().to_vec();
    let m = Metrics::new();
    m.init_topics(&topics);
    let start = 1_772_409_600_000i64;
    let ctx = DecodeContext {
        now_ms: start + 2 * DAY_MS,
        fallback_time_ms: None,
        channel_hint: None,
    };
    let mut outs = Vec::new();
    let mut payload = String::new();
    for i in 0..1_000_000i64 {
        let t = start + i * 100;
        payload.clear();
        payload.push_str(&format!(
            r#"{{"id":"e{i}","event_time":{t},"channel":"chat","topic":"upstream-{i}","complaint":true}}"#
        ));
        p.ingest_json(payload.as_bytes(), &ctx)
            .expect("valid event");
        if i % 10_000 == 0 {
            p.advance(t - 120_000, &mut outs);
            for o in outs.drain(..) {
                if let Output::Window(w) = o {
                    m.window(&topics[usize::from(w.topic)], &w);
                }
            }
            m.sync_stats(&topics, p.stats());
        }
    }
    m.sync_stats(&topics, p.stats());
    let allowed: BTreeSet<&str> = topics.iter().map(String::as_str).collect();
    let mut seen = BTreeSet::new();
    for family in m.registry.gather() {
        for metric in family.get_metric() {
            for l in metric.get_label() {
                if l.name() == "topic" {
                    seen.insert(l.value().to_string());
                }
            }
        }
    }
    assert!(seen.len() <= allowed.len(), "topic labels: {seen:?}");
    for t in &seen {
        assert!(allowed.contains(t.as_str()), "unexpected topic label {t:?}");
    }
    let other = m.complaints_by_topic.with_label_values(&["other"]).get();
    assert_eq!(
        other, 1_000_000,
        "every unknown upstream topic counts as `other`"
    );
}

#[test]
fn dashboard_and_alert_rules_use_only_exported_names() {
    let known: BTreeSet<String> = Metrics::new().sample_names().into_iter().collect();
    let dash_text =
        std::fs::read_to_string(repo_path("docker/grafana/dashboards/crisis-pulse.json"))
            .expect("dashboard JSON");
    let dash: serde_json::Value = serde_json::from_str(&dash_text).expect("dashboard parses");
    let mut exprs = Vec::new();
    collect_exprs(&dash, &mut exprs);
    assert!(exprs.len() >= 8, "dashboard queries: {exprs:?}");
    let mut used = BTreeSet::new();
    for e in &exprs {
        let names = metric_names_in(e);
        assert!(
            !names.is_empty() || e.contains("up{"),
            "query without a metric: {e}"
        );
        used.extend(names);
    }
    for f in [
        "docker/prometheus/alerts.yml",
        "docker/prometheus/alerts_test.yml",
    ] {
        let text = std::fs::read_to_string(repo_path(f)).expect(f);
        let names = metric_names_in(&text);
        assert!(!names.is_empty(), "{f} uses no crisis_pulse metric");
        used.extend(names);
    }
    let missing: Vec<&String> = used.iter().filter(|n| !known.contains(*n)).collect();
    assert!(missing.is_empty(), "not exported: {missing:?}");
}

/// Every `expr` string anywhere in a Grafana dashboard (panels, rows, templating).
fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr" | "query", serde_json::Value::String(s)) => out.push(s.clone()),
                    ("query", serde_json::Value::Object(q)) => {
                        if let Some(serde_json::Value::String(s)) = q.get("query") {
                            out.push(s.clone());
                        }
                    }
                    _ => collect_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

#[test]
fn prometheus_config_and_alert_rules_pass_promtool() {
    let config = repo_path("docker/prometheus/prometheus.yml");
    let (ok, out) = promtool(&["check", "config", config.to_str().unwrap()], None);
    assert!(ok, "promtool check config:\n{out}");
    let rules = repo_path("docker/prometheus/alerts.yml");
    let (ok, out) = promtool(&["check", "rules", rules.to_str().unwrap()], None);
    assert!(ok, "promtool check rules:\n{out}");
    let tests = repo_path("docker/prometheus/alerts_test.yml");
    let (ok, out) = promtool(&["test", "rules", tests.to_str().unwrap()], None);
    assert!(ok, "promtool test rules:\n{out}");
}

#[test]
fn docs_reference_table_matches_the_registry() {
    let doc = std::fs::read_to_string(repo_path("docs/observability.md")).expect("docs");
    let table = Metrics::new().markdown_table();
    assert!(
        doc.contains(&table),
        "docs/observability.md is out of date; its metrics table must read:\n\n{table}"
    );
}
