//! Outputs: crisis events as NDJSON, closed windows as CSV or Parquet.

pub mod windows;
