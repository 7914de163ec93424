//! crisis-pulse: detects complaint waves in contact-centre streams and publishes crisis events.
//!
//! - [`event`]: contact and crisis events, their newtypes, and the validating decoder
//! - [`clock`]: the only place that reads wall-clock time
//! - [`fasthash`]: a fast hasher for per-message lookups of trusted keys (partitions)
//! - [`config`]: the configuration file, its defaults and its validation
//! - [`classify`]: text -> topic, complaint flag and matched terms (pure)
//! - [`window`]: event-time windows and watermarks (pure)
//! - [`baseline`]: expected counts per series and time of week (pure)
//! - [`detect`]: significance, scores and the crisis lifecycle (pure)
//! - [`backtest`]: scores NAB-format series files with the service's detector
//! - [`pipeline`]: the synchronous core every driver shares
//! - [`state`]: versioned checkpoints of the pipeline's state and source positions
//! - [`source`]: inputs: simulator, files, Kafka
//! - [`sink`]: outputs: NDJSON, window tables, Kafka
//! - [`metrics`]: Prometheus registry and the metrics every driver publishes
//! - [`http`]: /metrics, /healthz, /readyz
//! - [`logging`]: tracing setup: human or JSON lines, level from `RUST_LOG`
//! - [`app`]: the drivers behind each CLI command
//! - [`service`]: `run`, the live Kafka driver (consumer thread, offsets, shutdown)
//! - [`simulate`]: `simulate`, simulator traffic into Kafka topics
//! - [`admin`]: topic creation and broker checks

pub mod admin;
pub mod app;
pub mod backtest;
pub mod baseline;
pub mod classify;
pub mod clock;
pub mod config;
pub mod detect;
pub mod event;
pub mod fasthash;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod pipeline;
pub mod service;
pub mod simulate;
pub mod sink;
pub mod source;
pub mod state;
pub mod window;
