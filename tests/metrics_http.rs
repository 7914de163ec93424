//! The binary's endpoint: `crisis-pulse demo --hold` serves /metrics, /healthz and /readyz
//! after the simulation ends, logs JSON on request, and exits cleanly on SIGTERM.

mod metrics_support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use metrics_support::http_get;

#[test]
fn demo_hold_serves_until_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crisis-pulse"))
        .args([
            "--log-format",
            "json",
            "demo",
            "--days",
            "1",
            "--output",
            "/dev/null",
            "--hold",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting crisis-pulse");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });

    // Wait (on output, not on time) for the bound address, then for the hold.
    let mut addr: Option<SocketAddr> = None;
    let mut seen = Vec::new();
    for line in rx.iter() {
        seen.push(line.clone());
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let msg = v["message"].as_str().unwrap_or_default();
        if msg.starts_with("serving /metrics") {
            addr = v["addr"].as_str().and_then(|a| a.parse().ok());
        }
        if msg.starts_with("holding") {
            break;
        }
    }
    let addr = addr.unwrap_or_else(|| panic!("no JSON 'serving' line in:\n{}", seen.join("\n")));
    assert!(
        seen.iter().any(|l| l.contains("\"latency percentiles\"")),
        "latency log line missing:\n{}",
        seen.join("\n")
    );

    assert_eq!(
        http_get(addr, "/healthz").expect("healthz"),
        (200, "ok\n".into())
    );
    assert_eq!(http_get(addr, "/readyz").expect("readyz").0, 200);
    let (status, body) = http_get(addr, "/metrics").expect("metrics");
    assert_eq!(status, 200);
    let windows = body
        .lines()
        .find_map(|l| l.strip_prefix("crisis_pulse_windows_closed_total "))
        .and_then(|v| v.parse::<f64>().ok())
        .expect("windows_closed_total exported");
    assert!(windows > 0.0, "{body}");
    assert!(
        body.contains("crisis_pulse_up 0"),
        "finished demo reports up 0"
    );

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let status = child.wait().expect("wait");
    assert!(status.success(), "exit after SIGTERM: {status}");
    drop(rx);
    let _ = reader.join();
}
