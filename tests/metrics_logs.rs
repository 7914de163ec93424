//! Log lines an operator reads: the crisis lifecycle line in the default human format, and the
//! same event as JSON. One test in its own binary: it installs the global subscriber.

use std::sync::{Arc, Mutex};

use crisis_pulse::event::{CrisisEvent, CrisisState};
use crisis_pulse::metrics::Metrics;
use crisis_pulse::metrics::events::CrisisChanged;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn outage(state: &str) -> CrisisEvent {
    serde_json::from_str(&format!(
        r#"{{"schema_version":1,"crisis_id":"cr-1","event_id":"e","topic":"outage",
        "state":"{state}","severity":"high","window_start":"2026-03-10T10:25:00.000Z",
        "window_end":"2026-03-10T10:30:00.000Z","onset":"2026-03-10T10:25:00.000Z",
        "observed":37,"expected":14.2345,"upper_bound":25.56,"p_value":1e-7,"score":1.0,
        "ratio":2.6,"channels":{{"phone":1,"email":0,"chat":0,"social":0,"review":0,"other":0}},
        "top_terms":[],"sample_event_ids":[],"peak_observed":37,"windows_in_crisis":1,
        "detector_version":"x"}}"#
    ))
    .expect("crisis event")
}

#[test]
fn crisis_lifecycle_lines_read_as_text_and_parse_as_json() {
    let text = Capture::default();
    let json = Capture::default();
    let (t, j) = (text.clone(), json.clone());
    use tracing_subscriber::layer::SubscriberExt;
    let sub = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || t.clone())
                .with_ansi(false)
                .with_target(false),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_writer(move || j.clone()),
        );
    tracing::subscriber::set_global_default(sub).expect("only subscriber in this binary");

    let m = Metrics::new();
    CrisisChanged {
        event: &outage("opened"),
    }
    .emit(&m);
    CrisisChanged {
        event: &outage("resolved"),
    }
    .emit(&m);

    let text = String::from_utf8(text.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains(
            "WARN CRISIS OPENED topic=outage severity=high observed=37 expected=14.2 \
             upper_bound=25.6"
        ),
        "{text}"
    );
    assert!(text.contains("INFO CRISIS RESOLVED topic=outage"), "{text}");

    let json = String::from_utf8(json.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2, "{json}");
    assert_eq!(lines[0]["message"], "CRISIS OPENED");
    assert_eq!(lines[0]["topic"], "outage");
    assert_eq!(lines[0]["observed"], 37);
    assert_eq!(lines[0]["expected"], 14.2);
    assert_eq!(
        m.crises
            .with_label_values(&["outage", CrisisState::Opened.as_str()])
            .get(),
        1
    );
}
