//! A real Prometheus scrapes a real endpoint: the demo runs in process until the simulated
//! outage is in crisis, the endpoint serves the registry on port 0, Debian's `prometheus`
//! scrapes it every second, and a PromQL query over its HTTP API must return the crisis.
//! Fails (does not skip) when `prometheus` is missing: CI installs it.

mod metrics_support;

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crisis_pulse::http::{Background, HttpState};
use metrics_support::{DAY_MS, HOUR_MS, demo_metrics, http_get, tool, urlencode};

/// Kills the child when the test ends, however it ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The `result` array of an instant query, or `None` while Prometheus is not answering.
fn query(prom: SocketAddr, promql: &str) -> Option<Vec<serde_json::Value>> {
    let (status, body) =
        http_get(prom, &format!("/api/v1/query?query={}", urlencode(promql))).ok()?;
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"].as_array().cloned()
}

/// Polls until `check` accepts the query's result. The deadline only bounds a broken run;
/// nothing here asserts on timing.
fn wait_for(
    prom: SocketAddr,
    promql: &str,
    child: &mut KillOnDrop,
    log: &std::path::Path,
    check: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!(
                "prometheus exited ({status}):\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if let Some(r) = query(prom, promql)
            && check(&r)
        {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "no satisfying answer to {promql}; last: {:?}\nprometheus log:\n{}",
            query(prom, promql),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn value_of(series: &serde_json::Value) -> f64 {
    series["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN)
}

#[test]
fn prometheus_scrapes_the_crisis_from_the_endpoint() {
    let prometheus = tool("prometheus");
    // The demo's outage starts on day 8 at 10:20; stop at 11:00, while it is in crisis.
    let (metrics, summary) = demo_metrics(8 * DAY_MS + 11 * HOUR_MS);
    let outage = metrics.crisis_state.with_label_values(&["outage"]).get();
    assert_eq!(
        outage,
        2,
        "the simulated outage should be in crisis at the end of the run; crises: {:?}",
        summary
            .crises
            .iter()
            .map(|c| (&c.topic, c.state, &c.window_start))
            .collect::<Vec<_>>()
    );

    // Every crisis event the run produced was counted, by topic and state.
    for c in &summary.crises {
        let counted = metrics
            .crises
            .with_label_values(&[&c.topic, c.state.as_str()])
            .get();
        let produced = summary
            .crises
            .iter()
            .filter(|o| o.topic == c.topic && o.state == c.state)
            .count() as u64;
        assert_eq!(counted, produced, "{} {}", c.topic, c.state.as_str());
    }

    let state = HttpState::new(metrics.clone());
    state.set_ready(true);
    let server = Background::start("127.0.0.1:0", state).expect("endpoint binds port 0");
    let target = server.addr();
    let (status, body) = http_get(target, "/metrics").expect("scrape");
    assert_eq!(status, 200);
    assert!(body.contains("crisis_pulse_crisis_state{topic=\"outage\"} 2"));

    let dir = tempfile::tempdir().expect("temp dir");
    // The compose stack's alert rules, evaluated against what the endpoint really exports.
    std::fs::copy(
        metrics_support::repo_path("docker/prometheus/alerts.yml"),
        dir.path().join("alerts.yml"),
    )
    .expect("copying alerts.yml");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files: [alerts.yml]\n\
             scrape_configs:\n  - job_name: crisis-pulse\n    static_configs:\n      \
             - targets: [\"{target}\"]\n"
        ),
    )
    .expect("writing prometheus.yml");
    let prom: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let log = dir.path().join("prometheus.log");
    let log_file = std::fs::File::create(&log).expect("log file");
    let mut child = KillOnDrop(
        Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={prom}"))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .spawn()
            .expect("starting prometheus"),
    );

    let up = wait_for(prom, "up{job=\"crisis-pulse\"}", &mut child, &log, |r| {
        r.len() == 1 && value_of(&r[0]) == 1.0
    });
    assert_eq!(up[0]["metric"]["instance"], target.to_string());

    let crisis = wait_for(
        prom,
        "crisis_pulse_crisis_state{topic=\"outage\"}",
        &mut child,
        &log,
        |r| !r.is_empty(),
    );
    assert_eq!(crisis.len(), 1, "{crisis:?}");
    assert_eq!(value_of(&crisis[0]), 2.0, "{crisis:?}");

    // The alert rule's expression, evaluated by Prometheus over the scraped data.
    let open = wait_for(
        prom,
        "max by (topic) (crisis_pulse_crisis_state) == 2",
        &mut child,
        &log,
        |r| !r.is_empty(),
    );
    let topics: Vec<&str> = open
        .iter()
        .filter_map(|s| s["metric"]["topic"].as_str())
        .collect();
    assert!(topics.contains(&"outage"), "{topics:?}");

    let opened = wait_for(
        prom,
        "crisis_pulse_crises_total{topic=\"outage\",state=\"opened\"}",
        &mut child,
        &log,
        |r| !r.is_empty(),
    );
    assert!(value_of(&opened[0]) >= 1.0, "{opened:?}");

    // Every dashboard query is valid PromQL for this Prometheus (Grafana's variables filled in).
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(metrics_support::repo_path(
            "docker/grafana/dashboards/crisis-pulse.json",
        ))
        .expect("dashboard"),
    )
    .expect("dashboard JSON");
    let mut exprs = Vec::new();
    collect_exprs(&dash, &mut exprs);
    assert!(!exprs.is_empty());
    for e in &exprs {
        let promql = e
            .replace("$__rate_interval", "1m")
            .replace("$__range", "5m")
            .replace("$topic", "outage");
        let (status, body) =
            http_get(prom, &format!("/api/v1/query?query={}", urlencode(&promql))).expect("query");
        assert_eq!(status, 200, "dashboard query {promql} refused: {body}");
    }

    // The CrisisOpen rule fires for the outage (it has no `for:`).
    let alert = wait_for(
        prom,
        "ALERTS{alertname=\"CrisisOpen\",alertstate=\"firing\"}",
        &mut child,
        &log,
        |r| r.iter().any(|s| s["metric"]["topic"] == "outage"),
    );
    assert!(
        alert.iter().all(|s| s["metric"]["severity"] == "page"),
        "{alert:?}"
    );

    drop(child);
    server.stop();
}

/// Every PromQL string in a Grafana dashboard: panel targets and annotations (`expr`).
fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}
