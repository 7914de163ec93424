//! Helpers shared by the observability tests: an in-process demo run feeding a registry, a
//! minimal HTTP GET, and locating Debian's Prometheus tools (missing tools fail, never skip).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use crisis_pulse::app::{self, DEMO_CONFIG, Outputs, RunSummary};
use crisis_pulse::config::Config;
use crisis_pulse::metrics::{LiveMetrics, Metrics};
use crisis_pulse::source::sim::SimConfig;

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// Runs the built-in demo for `duration_ms` of simulated time, publishing to a fresh registry.
pub fn demo_metrics(duration_ms: i64) -> (Metrics, RunSummary) {
    let cfg = Config::parse(DEMO_CONFIG, "examples/demo.toml").expect("demo config");
    let mut sim = SimConfig::demo();
    sim.duration_ms = duration_ms;
    let metrics = Metrics::new();
    let topics = crisis_pulse::pipeline::Pipeline::new(&cfg)
        .expect("pipeline")
        .topics()
        .to_vec();
    metrics.init_topics(&topics);
    let mut sink = std::io::sink();
    let mut outputs = Outputs {
        crises: &mut sink,
        windows: None,
    };
    let mut live = LiveMetrics::new(metrics.clone());
    let (summary, _) = app::demo_observed(sim, &cfg, &mut outputs, &mut live).expect("demo run");
    (metrics, summary)
}

/// A Prometheus tool: `$NAME_BIN` (e.g. `PROMTOOL_BIN`), else on `PATH`, else `/usr/bin`.
/// Panics when absent: CI installs Debian's `prometheus` package, so absence is a failure.
pub fn tool(name: &str) -> PathBuf {
    let var = format!("{}_BIN", name.to_ascii_uppercase());
    if let Ok(p) = std::env::var(&var) {
        return PathBuf::from(p);
    }
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "`{name}` not found (set {var} or `apt-get install prometheus`, which ships \
             prometheus and promtool)"
        )
    })
}

/// `GET path` over HTTP/1.0; returns (status, body). Errors when nothing answers.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

/// Percent-encodes a query-string value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Every `crisis_pulse_*` name in `text`.
pub fn metric_names_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("crisis_pulse_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out.sort();
    out.dedup();
    out
}

/// The repository root (tests run with the package root as working directory).
pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}
