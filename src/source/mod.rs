//! Inputs: the built-in simulator, file replay (NDJSON, CSV, Parquet) and Kafka.

pub mod batch;
pub mod file;
pub mod kafka;
pub mod kafka_config;
pub mod sim;
