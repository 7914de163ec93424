//! crisis-pulse: detects complaint waves in contact-centre streams and publishes crisis events.
//!
//! - [`event`]: contact and crisis events, their newtypes, and the validating decoder
//! - [`clock`]: the only place that reads wall-clock time
//! - [`config`]: the configuration file, its defaults and its validation
//! - [`classify`]: text -> topic, complaint flag and matched terms (pure)
//! - [`window`]: event-time windows and watermarks (pure)
//! - [`baseline`]: expected counts per series and time of week (pure)
//! - [`detect`]: significance, scores and the crisis lifecycle (pure)
//! - [`pipeline`]: the synchronous core every driver shares
//! - [`state`]: versioned checkpoints of the pipeline's state and source positions
//! - [`source`]: inputs: simulator, files, Kafka
//! - [`sink`]: outputs: NDJSON, window tables, Kafka
//! - [`metrics`]: Prometheus registry and the metrics every driver publishes
//! - [`http`]: /metrics, /healthz, /readyz
//! - [`logging`]: tracing setup: human or JSON lines, level from `RUST_LOG`
//! - [`app`]: the drivers behind each CLI command

pub mod app;
pub mod baseline;
pub mod classify;
pub mod clock;
pub mod config;
pub mod detect;
pub mod event;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod pipeline;
pub mod sink;
pub mod source;
pub mod state;
pub mod window;
