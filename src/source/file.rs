//! File replay: NDJSON, CSV and Parquet contact events, read as a stream of records with
//! their line (or row) numbers so that bad input can be reported precisely.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use thiserror::Error;

use crate::event::{ContactView, DecodeError, DecodeReason, RawTime};

#[derive(Debug, Error)]
pub enum FileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
}

/// Input formats, chosen by extension unless given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Csv,
    Parquet,
}

impl Format {
    pub fn from_path(p: &Path) -> Option<Format> {
        match p.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "ndjson" | "jsonl" | "json" => Some(Format::Ndjson),
            "csv" => Some(Format::Csv),
            "parquet" | "pq" => Some(Format::Parquet),
            _ => None,
        }
    }
}

/// Maps contact-event fields to column names, and filters rows (tabular inputs only).
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    /// field name (`id`, `event_time`, `channel`, `text`, `customer_id`, ...) -> column name.
    pub columns: BTreeMap<String, String>,
    /// Keep only rows whose column equals the value.
    pub filters: Vec<(String, String)>,
}

impl Mapping {
    fn column<'a>(&'a self, field: &'a str) -> &'a str {
        self.columns.get(field).map_or(field, String::as_str)
    }
}

/// Contact fields read from a tabular row, owned.
#[derive(Debug, Clone, Default)]
pub struct Fields {
    pub id: String,
    pub event_time: Option<String>,
    pub channel: Option<String>,
    pub text: Option<String>,
    pub language: Option<String>,
    pub topic: Option<String>,
    pub complaint: Option<String>,
    pub sentiment: Option<String>,
    pub customer_id: Option<String>,
}

impl Fields {
    /// A borrowed view for `event::validate`, or the reason the row is unusable.
    pub fn view(&self) -> Result<ContactView<'_>, DecodeError> {
        let complaint = match self.complaint.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => Some(match s.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => {
                    return Err(DecodeError::new(
                        DecodeReason::SchemaViolation,
                        format!("complaint {s:?} is not a boolean"),
                    ));
                }
            }),
        };
        let sentiment = match self.sentiment.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => Some(s.parse::<f64>().map_err(|_| {
                DecodeError::new(
                    DecodeReason::SchemaViolation,
                    format!("sentiment {s:?} is not a number"),
                )
            })?),
        };
        let event_time = self
            .event_time
            .as_deref()
            .map(|s| match s.trim().parse::<i64>() {
                Ok(ms) => RawTime::Millis(ms),
                Err(_) => RawTime::Text(s),
            });
        fn opt(s: &Option<String>) -> Option<std::borrow::Cow<'_, str>> {
            s.as_deref()
                .filter(|v| !v.is_empty())
                .map(std::borrow::Cow::Borrowed)
        }
        Ok(ContactView {
            schema_version: None,
            id: std::borrow::Cow::Borrowed(self.id.as_str()),
            event_time,
            channel: opt(&self.channel),
            text: opt(&self.text),
            language: opt(&self.language),
            topic: opt(&self.topic),
            complaint,
            sentiment,
            customer_id: opt(&self.customer_id),
            attributes: None,
        })
    }
}

/// One input record with its 1-based line (NDJSON, CSV) or row (Parquet) number.
#[derive(Debug)]
pub enum Record {
    Json {
        line: u64,
        bytes: Vec<u8>,
    },
    Row {
        line: u64,
        fields: Box<Fields>,
    },
    /// A record the reader itself could not parse (bad CSV quoting, I/O error mid-file).
    Broken {
        line: u64,
        error: DecodeError,
    },
}

/// Opens a file and returns its records in file order.
pub fn read(
    path: &Path,
    format: Format,
    mapping: &Mapping,
) -> Result<Box<dyn Iterator<Item = Record> + 'static>, FileError> {
    let file = File::open(path).map_err(|e| FileError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    Ok(match format {
        Format::Ndjson => Box::new(ndjson(BufReader::with_capacity(1 << 20, file))),
        Format::Csv => Box::new(csv_rows(file, mapping.clone(), path)?),
        Format::Parquet => Box::new(parquet_rows(file, mapping.clone(), path)?),
    })
}

fn ndjson<R: BufRead + 'static>(mut r: R) -> impl Iterator<Item = Record> {
    let mut line = 0u64;
    std::iter::from_fn(move || {
        loop {
            let mut buf = Vec::new();
            line += 1;
            match r.read_until(b'\n', &mut buf) {
                Ok(0) => return None,
                Ok(_) => {
                    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                        buf.pop();
                    }
                    if buf.is_empty() {
                        continue; // blank lines are not records
                    }
                    return Some(Record::Json { line, bytes: buf });
                }
                Err(e) => {
                    return Some(Record::Broken {
                        line,
                        error: DecodeError::new(DecodeReason::MalformedJson, e.to_string()),
                    });
                }
            }
        }
    })
}

const FIELDS: [&str; 9] = [
    "id",
    "event_time",
    "channel",
    "text",
    "language",
    "topic",
    "complaint",
    "sentiment",
    "customer_id",
];

fn set_field(f: &mut Fields, field: &str, v: String) {
    match field {
        "id" => f.id = v,
        "event_time" => f.event_time = Some(v),
        "channel" => f.channel = Some(v),
        "text" => f.text = Some(v),
        "language" => f.language = Some(v),
        "topic" => f.topic = Some(v),
        "complaint" => f.complaint = Some(v),
        "sentiment" => f.sentiment = Some(v),
        "customer_id" => f.customer_id = Some(v),
        _ => {}
    }
}

fn csv_rows(
    file: File,
    mapping: Mapping,
    path: &Path,
) -> Result<impl Iterator<Item = Record> + use<>, FileError> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(BufReader::with_capacity(1 << 20, file));
    let headers = rdr
        .headers()
        .map_err(|e| FileError::Format {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?
        .clone();
    let index = |name: &str| headers.iter().position(|h| h == name);
    let cols: Vec<(&'static str, usize)> = FIELDS
        .iter()
        .filter_map(|f| index(mapping.column(f)).map(|i| (*f, i)))
        .collect();
    if !cols.iter().any(|(f, _)| *f == "id") {
        return Err(FileError::Format {
            path: path.to_path_buf(),
            message: format!(
                "no `{}` column (map one with --column id=NAME)",
                mapping.column("id")
            ),
        });
    }
    let mut filters = Vec::new();
    for (c, v) in &mapping.filters {
        let i = index(c).ok_or_else(|| FileError::Format {
            path: path.to_path_buf(),
            message: format!("filter column `{c}` not found"),
        })?;
        filters.push((i, v.clone()));
    }
    let mut records = rdr.into_records();
    Ok(std::iter::from_fn(move || {
        loop {
            let rec = records.next()?;
            match rec {
                Ok(r) => {
                    let line = r.position().map_or(0, |p| p.line());
                    if filters.iter().any(|(i, v)| r.get(*i) != Some(v.as_str())) {
                        continue;
                    }
                    let mut f = Fields::default();
                    for (field, i) in &cols {
                        if let Some(v) = r.get(*i)
                            && !v.is_empty()
                        {
                            set_field(&mut f, field, v.to_string());
                        }
                    }
                    return Some(Record::Row {
                        line,
                        fields: Box::new(f),
                    });
                }
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    return Some(Record::Broken {
                        line,
                        error: DecodeError::new(
                            DecodeReason::MalformedJson,
                            format!("bad CSV record: {e}"),
                        ),
                    });
                }
            }
        }
    }))
}

fn parquet_rows(
    file: File,
    mapping: Mapping,
    path: &Path,
) -> Result<impl Iterator<Item = Record> + use<>, FileError> {
    let fmt_err = |e: &dyn std::fmt::Display| FileError::Format {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| fmt_err(&e))?;
    let reader = builder
        .with_batch_size(8192)
        .build()
        .map_err(|e| fmt_err(&e))?;
    let mut row = 0u64;
    let mut pending: std::vec::IntoIter<Record> = Vec::new().into_iter();
    let mut batches = reader;
    Ok(std::iter::from_fn(move || {
        loop {
            if let Some(r) = pending.next() {
                return Some(r);
            }
            match batches.next()? {
                Ok(b) => {
                    let recs = batch_records(&b, &mapping, &mut row);
                    pending = recs.into_iter();
                }
                Err(e) => {
                    return Some(Record::Broken {
                        line: row + 1,
                        error: DecodeError::new(
                            DecodeReason::MalformedJson,
                            format!("bad Parquet batch: {e}"),
                        ),
                    });
                }
            }
        }
    }))
}

fn cell(col: &dyn Array, i: usize) -> Option<String> {
    if col.is_null(i) {
        return None;
    }
    Some(match col.data_type() {
        DataType::Utf8 => col.as_string::<i32>().value(i).to_string(),
        DataType::LargeUtf8 => col.as_string::<i64>().value(i).to_string(),
        DataType::Utf8View => col.as_string_view().value(i).to_string(),
        DataType::Boolean => col.as_boolean().value(i).to_string(),
        DataType::Int64 => col
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(i)
            .to_string(),
        DataType::Int32 => col
            .as_primitive::<arrow::datatypes::Int32Type>()
            .value(i)
            .to_string(),
        DataType::Float64 => col
            .as_primitive::<arrow::datatypes::Float64Type>()
            .value(i)
            .to_string(),
        DataType::Timestamp(unit, _) => {
            let v = col.as_primitive::<arrow::datatypes::Int64Type>().value(i);
            let ms = match unit {
                arrow::datatypes::TimeUnit::Second => v.saturating_mul(1000),
                arrow::datatypes::TimeUnit::Millisecond => v,
                arrow::datatypes::TimeUnit::Microsecond => v / 1000,
                arrow::datatypes::TimeUnit::Nanosecond => v / 1_000_000,
            };
            ms.to_string()
        }
        _ => return None,
    })
}

fn batch_records(b: &RecordBatch, mapping: &Mapping, row: &mut u64) -> Vec<Record> {
    let schema = b.schema();
    let cols: Vec<(&str, usize)> = FIELDS
        .iter()
        .filter_map(|f| schema.index_of(mapping.column(f)).ok().map(|i| (*f, i)))
        .collect();
    let filters: Vec<(Option<usize>, &str)> = mapping
        .filters
        .iter()
        .map(|(c, v)| (schema.index_of(c).ok(), v.as_str()))
        .collect();
    let mut out = Vec::with_capacity(b.num_rows());
    for i in 0..b.num_rows() {
        *row += 1;
        if filters
            .iter()
            .any(|(c, v)| c.is_none_or(|c| cell(b.column(c).as_ref(), i).as_deref() != Some(*v)))
        {
            continue;
        }
        let mut f = Fields::default();
        for (field, c) in &cols {
            if let Some(v) = cell(b.column(*c).as_ref(), i) {
                set_field(&mut f, field, v);
            }
        }
        out.push(Record::Row {
            line: *row,
            fields: Box::new(f),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_column_maps_to_customer_id() {
        let mut f = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
        std::io::Write::write_all(
            &mut f,
            b"tweet_id,name,tweet_created,text\n1,jdoe,2015-02-21 06:00:00 -0800,on hold for 2 hours\n2,,2015-02-21 06:01:00 -0800,cancelled\n",
        )
        .unwrap();
        let mapping = Mapping {
            columns: [
                ("id", "tweet_id"),
                ("customer_id", "name"),
                ("event_time", "tweet_created"),
            ]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
            filters: Vec::new(),
        };
        let ids: Vec<Option<String>> = read(f.path(), Format::Csv, &mapping)
            .unwrap()
            .map(|r| match r {
                Record::Row { fields, .. } => {
                    fields.view().unwrap().customer_id.map(|c| c.into_owned())
                }
                other => panic!("{other:?}"),
            })
            .collect();
        // An empty cell is no customer: that complaint counts on its own.
        assert_eq!(ids, vec![Some("jdoe".to_string()), None]);
    }
}
