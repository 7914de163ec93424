//! Every closed window (topic, channel, start, end, observed, observed_events, contacts,
//! expected, upper bound, p-value, score, state) to CSV
//! or Parquet, chosen by the file extension.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Builder, StringBuilder, TimestampMillisecondBuilder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;

use crate::pipeline::WindowReport;

const BATCH: usize = 65_536;

enum Out {
    Csv(BufWriter<File>),
    Parquet(Box<ArrowWriter<File>>, Vec<Row>),
}

struct Row {
    topic: String,
    channel: &'static str,
    r: WindowReport,
}

/// Writes window rows; call [`WindowWriter::finish`] to flush.
pub struct WindowWriter {
    out: Out,
    topics: Vec<String>,
    pub rows: u64,
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("topic", DataType::Utf8, false),
        Field::new("channel", DataType::Utf8, false),
        Field::new(
            "window_start",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new(
            "window_end",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("observed", DataType::UInt64, false),
        Field::new("observed_events", DataType::UInt64, false),
        Field::new("contacts", DataType::UInt64, false),
        Field::new("expected", DataType::Float64, false),
        Field::new("upper_bound", DataType::Float64, false),
        Field::new("p_value", DataType::Float64, false),
        Field::new("score", DataType::Float64, false),
        Field::new("state", DataType::Utf8, false),
    ]))
}

impl WindowWriter {
    pub fn create(path: &Path, topics: Vec<String>) -> anyhow::Result<Self> {
        let f = File::create(path)?;
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let out = match ext.as_str() {
            "csv" => {
                let mut w = BufWriter::new(f);
                writeln!(
                    w,
                    "topic,channel,window_start,window_end,observed,observed_events,contacts,expected,upper_bound,p_value,score,state"
                )?;
                Out::Csv(w)
            }
            "parquet" | "pq" => Out::Parquet(
                Box::new(ArrowWriter::try_new(f, schema(), None)?),
                Vec::new(),
            ),
            other => {
                anyhow::bail!("--windows: unsupported extension {other:?} (use .csv or .parquet)")
            }
        };
        Ok(WindowWriter {
            out,
            topics,
            rows: 0,
        })
    }

    pub fn write(&mut self, r: &WindowReport) -> anyhow::Result<()> {
        self.rows += 1;
        let topic = self
            .topics
            .get(r.topic as usize)
            .cloned()
            .unwrap_or_default();
        let channel = r.channel.map_or("all", |c| c.as_str());
        match &mut self.out {
            Out::Csv(w) => writeln!(
                w,
                "{topic},{channel},{},{},{},{},{},{:.4},{:.4},{:.6e},{:.4},{}",
                crate::event::format_rfc3339(r.start_ms),
                crate::event::format_rfc3339(r.end_ms),
                r.observed,
                r.observed_events,
                r.contacts,
                r.expected,
                r.upper,
                r.p_value,
                r.score,
                r.state.as_str()
            )?,
            Out::Parquet(w, buf) => {
                buf.push(Row {
                    topic,
                    channel,
                    r: r.clone(),
                });
                if buf.len() >= BATCH {
                    let batch = to_batch(buf)?;
                    buf.clear();
                    w.write(&batch)?;
                }
            }
        }
        Ok(())
    }

    pub fn finish(self) -> anyhow::Result<u64> {
        match self.out {
            Out::Csv(mut w) => w.flush()?,
            Out::Parquet(mut w, buf) => {
                if !buf.is_empty() {
                    w.write(&to_batch(&buf)?)?;
                }
                w.close()?;
            }
        }
        Ok(self.rows)
    }
}

fn to_batch(rows: &[Row]) -> anyhow::Result<RecordBatch> {
    let mut topic = StringBuilder::new();
    let mut channel = StringBuilder::new();
    let mut start = TimestampMillisecondBuilder::new().with_timezone("UTC");
    let mut end = TimestampMillisecondBuilder::new().with_timezone("UTC");
    let mut observed = UInt64Builder::new();
    let mut observed_events = UInt64Builder::new();
    let mut contacts = UInt64Builder::new();
    let mut expected = Float64Builder::new();
    let mut upper = Float64Builder::new();
    let mut p = Float64Builder::new();
    let mut score = Float64Builder::new();
    let mut state = StringBuilder::new();
    for row in rows {
        topic.append_value(&row.topic);
        channel.append_value(row.channel);
        start.append_value(row.r.start_ms);
        end.append_value(row.r.end_ms);
        observed.append_value(row.r.observed);
        observed_events.append_value(row.r.observed_events);
        contacts.append_value(row.r.contacts);
        expected.append_value(row.r.expected);
        upper.append_value(row.r.upper);
        p.append_value(row.r.p_value);
        score.append_value(row.r.score);
        state.append_value(row.r.state.as_str());
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(topic.finish()),
        Arc::new(channel.finish()),
        Arc::new(start.finish()),
        Arc::new(end.finish()),
        Arc::new(observed.finish()),
        Arc::new(observed_events.finish()),
        Arc::new(contacts.finish()),
        Arc::new(expected.finish()),
        Arc::new(upper.finish()),
        Arc::new(p.finish()),
        Arc::new(score.finish()),
        Arc::new(state.finish()),
    ];
    Ok(RecordBatch::try_new(schema(), cols)?)
}
