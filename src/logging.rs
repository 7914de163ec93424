//! Logs with `tracing`: human-readable lines by default, one JSON object per line with
//! `--log-format json` (or `CRISIS_PULSE_LOG_FORMAT=json`), level from `RUST_LOG` (default
//! `info`), always on stderr so stdout stays free for crisis events.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// `2026-03-10T10:30:00Z  WARN CRISIS OPENED topic=outage severity=high ...`
    #[default]
    Text,
    /// One JSON object per line, fields flattened, for log shippers.
    Json,
}

/// The filter from `RUST_LOG`, or `info` when it is unset or invalid.
pub fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the global subscriber. Errors if one is already installed (tests, embedding).
pub fn try_init(format: LogFormat) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr);
    match format {
        // The module path adds nothing an operator needs on a terminal.
        // Colours only on a terminal: piped or collected logs stay plain text.
        LogFormat::Text => b
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => b.json().flatten_event(true).try_init(),
    }
}

/// Installs the global subscriber once; a second call keeps the first.
pub fn init(format: LogFormat) {
    let _ = try_init(format);
}
