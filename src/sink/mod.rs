//! Outputs: crisis events as NDJSON, closed windows as CSV or Parquet, Kafka topics.

pub mod kafka;
pub mod poller;
pub mod windows;
