//! The JSON schemas in `schemas/` and the code can never drift: fixtures, the simulator's
//! payloads and the program's real crisis events are all validated against the schema files.

use crisis_pulse::app::{self, Outputs};
use crisis_pulse::config::Config;
use crisis_pulse::event::{self, DecodeContext, DecodeLimits};
use crisis_pulse::source::sim::{SimConfig, Simulator};
use serde_json::Value;

fn schema(name: &str) -> jsonschema::Validator {
    let path = format!("{}/schemas/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let v: Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::validator_for(&v)
        .unwrap_or_else(|e| panic!("{name} is not a valid JSON Schema: {e}"))
}

fn errors(v: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance).map(|e| e.to_string()).collect()
}

fn fixture(name: &str) -> Vec<String> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path)
        .expect("fixture")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

fn ctx() -> DecodeContext {
    DecodeContext {
        now_ms: 1_800_000_000_000,
        ..Default::default()
    }
}

#[test]
fn valid_fixtures_pass_schema_and_decoder() {
    let v = schema("contact-event.schema.json");
    let lines = fixture("contact-events-valid.ndjson");
    assert!(lines.len() >= 6);
    for line in lines {
        let instance: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(errors(&v, &instance), Vec::<String>::new(), "{line}");
        event::decode(line.as_bytes(), &DecodeLimits::default(), &ctx())
            .unwrap_or_else(|e| panic!("decoder refused a schema-valid event {line}: {e}"));
    }
}

#[test]
fn invalid_fixtures_fail_schema_and_decoder() {
    let v = schema("contact-event.schema.json");
    let lines = fixture("contact-events-invalid.ndjson");
    assert!(lines.len() >= 10);
    for line in lines {
        let instance: Value = serde_json::from_str(&line).unwrap();
        assert!(!v.is_valid(&instance), "schema accepted {line}");
        assert!(
            event::decode(line.as_bytes(), &DecodeLimits::default(), &ctx()).is_err(),
            "decoder accepted {line}"
        );
    }
}

#[test]
fn simulator_payloads_match_the_contact_schema() {
    let v = schema("contact-event.schema.json");
    let mut sim = SimConfig::demo();
    sim.duration_ms = 2 * 3_600_000;
    sim.malformed_share = 0.0;
    let mut n = 0;
    for rec in Simulator::new(sim) {
        let instance: Value = serde_json::from_slice(&rec.payload).unwrap();
        assert_eq!(errors(&v, &instance), Vec::<String>::new());
        n += 1;
    }
    assert!(n > 100);
}

#[test]
fn real_crisis_events_match_the_crisis_schema() {
    let v = schema("crisis-event.schema.json");
    let cfg = Config::parse(app::DEMO_CONFIG, "demo.toml").unwrap();
    let mut buf: Vec<u8> = Vec::new();
    let mut outputs = Outputs {
        crises: &mut buf,
        windows: None,
    };
    let (summary, _) = app::demo(SimConfig::demo(), &cfg, &mut outputs).unwrap();
    assert!(!summary.crises.is_empty(), "the demo must open crises");
    let text = String::from_utf8(buf).unwrap();
    let mut states = std::collections::BTreeSet::new();
    for line in text.lines() {
        let instance: Value = serde_json::from_str(line).unwrap();
        assert_eq!(errors(&v, &instance), Vec::<String>::new(), "{line}");
        states.insert(instance["state"].as_str().unwrap().to_string());
    }
    assert!(
        states.contains("opened") && states.contains("resolved"),
        "{states:?}"
    );
}

#[test]
fn real_windows_match_the_window_schema() {
    use crisis_pulse::pipeline::{Output, Pipeline};
    use crisis_pulse::sink::kafka::WindowRecord;
    let v = schema("window-event.schema.json");
    let cfg = Config::parse(app::DEMO_CONFIG, "demo.toml").unwrap();
    let mut p = Pipeline::new(&cfg).unwrap();
    let mut sim = SimConfig::demo();
    // Past the one-day warm-up, so windows carry real expectations and scores.
    sim.duration_ms = 3 * 86_400_000;
    let now = sim.start_ms + sim.duration_ms + 3_600_000;
    let mut outs = Vec::new();
    for r in Simulator::new(sim) {
        let ctx = DecodeContext {
            now_ms: now,
            channel_hint: Some(r.channel),
            ..Default::default()
        };
        let _ = p.ingest_json(&r.payload, &ctx);
        p.advance(r.time_ms - 120_000, &mut outs);
    }
    p.flush(&mut outs);
    let mut states = std::collections::BTreeSet::new();
    let mut channels = std::collections::BTreeSet::new();
    let mut n = 0;
    for o in &outs {
        let Output::Window(w) = o else { continue };
        let rec = WindowRecord::new(&p.topics()[usize::from(w.topic)], w);
        let instance = serde_json::to_value(&rec).unwrap();
        assert_eq!(errors(&v, &instance), Vec::<String>::new(), "{instance}");
        states.insert(rec.state.clone());
        channels.insert(rec.channel.clone());
        n += 1;
    }
    assert!(n > 10_000, "{n} windows");
    for s in ["warmup", "normal"] {
        assert!(states.contains(s), "{states:?}");
    }
    assert!(
        channels.contains("all") && channels.contains("phone"),
        "{channels:?}"
    );
}
