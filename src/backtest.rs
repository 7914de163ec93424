//! Backtest: scores a NAB-format series (`timestamp,value`) with the service's own baseline and
//! detector, writing `timestamp,value,anomaly_score` and, for diagnosis, the detector's
//! expected value, tail probabilities, robust residual, raw score and state. One series is one
//! topic, one row one window; the window length is the median spacing of the first rows.
//!
//! The score is the detector's `onset_score`: high at the window a crisis opens, scaled down
//! while it stays open or cools down, because NAB rewards marking the onset and counts every
//! flagged row outside a label window as a false positive.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use time::PrimitiveDateTime;
use time::macros::format_description;

use crate::detect::{DetectConfig, Detector};

/// Rows used to infer the window length (the only look-ahead: spacing, never values).
const SPACING_ROWS: usize = 17;

#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", path.display())]
    Csv { path: PathBuf, source: csv::Error },
    #[error("{} line {line}: {what}", path.display())]
    Row {
        path: PathBuf,
        line: usize,
        what: String,
    },
}

/// One input row: its original text (echoed to the output) and parsed values.
struct Row {
    timestamp: String,
    value: String,
    t_ms: i64,
    x: f64,
}

fn parse_time(s: &str) -> Option<i64> {
    let fmt = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let t = PrimitiveDateTime::parse(s.trim(), &fmt).ok()?.assume_utc();
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

fn read_rows(path: &Path) -> Result<Vec<Row>, BacktestError> {
    let csv_err = |source| BacktestError::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut rdr = csv::Reader::from_path(path).map_err(csv_err)?;
    let mut rows = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(csv_err)?;
        let line = i + 2;
        let bad = |what: String| BacktestError::Row {
            path: path.to_path_buf(),
            line,
            what,
        };
        let (ts, val) = match (rec.get(0), rec.get(1)) {
            (Some(t), Some(v)) => (t, v),
            _ => return Err(bad("expected timestamp,value".into())),
        };
        let t_ms = parse_time(ts).ok_or_else(|| bad(format!("bad timestamp {ts:?}")))?;
        // An unreadable value is scored as a missing one (NaN -> the detector treats it as 0
        // and the score stays finite), not a reason to drop the file.
        let x = val.trim().parse::<f64>().unwrap_or(f64::NAN);
        rows.push(Row {
            timestamp: ts.to_string(),
            value: val.to_string(),
            t_ms,
            x,
        });
    }
    Ok(rows)
}

/// Median spacing of the first rows; 5 minutes when there are too few.
fn infer_window_ms(rows: &[Row]) -> i64 {
    let mut d: Vec<i64> = rows
        .windows(2)
        .take(SPACING_ROWS - 1)
        .map(|w| w[1].t_ms - w[0].t_ms)
        .filter(|&d| d > 0)
        .collect();
    d.sort_unstable();
    d.get(d.len() / 2).copied().unwrap_or(300_000)
}

/// Scores one series file into `output`.
pub fn run_file(input: &Path, output: &Path, cfg: &DetectConfig) -> Result<(), BacktestError> {
    let rows = read_rows(input)?;
    let io = |source| BacktestError::Io {
        path: output.to_path_buf(),
        source,
    };
    if let Some(dir) = output.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut w = BufWriter::new(File::create(output).map_err(io)?);
    writeln!(
        w,
        "timestamp,value,anomaly_score,expected,p_up,p_down,robust_z,score,state"
    )
    .map_err(io)?;
    let mut det = Detector::new(cfg, infer_window_ms(&rows));
    let mut out = Vec::with_capacity(1);
    for r in &rows {
        det.assess(r.t_ms, &[r.x], &mut out);
        let Some(a) = out.first() else {
            // Unreachable (one series in, one assessment out), but a row is owed either way.
            writeln!(w, "{},{},0,,,,,,", r.timestamp, r.value).map_err(io)?;
            continue;
        };
        let score = if a.onset_score.is_finite() {
            a.onset_score.clamp(0.0, 1.0)
        } else {
            0.0
        };
        writeln!(
            w,
            "{},{},{score:.6},{:.4},{:.3e},{:.3e},{:.3},{:.6},{}",
            r.timestamp,
            r.value,
            a.expected,
            a.p_up,
            a.p_down,
            a.robust_z,
            a.score,
            a.state.as_str()
        )
        .map_err(io)?;
    }
    w.flush().map_err(io)
}

fn csv_files(dir: &Path, acc: &mut Vec<PathBuf>) -> Result<(), BacktestError> {
    let io = |source| BacktestError::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            csv_files(&path, acc)?;
        } else if path.extension().is_some_and(|e| e == "csv") {
            acc.push(path);
        }
    }
    Ok(())
}

/// Scores every `.csv` under `input_dir` into the same relative path under `output_dir`.
/// Returns the number of files scored.
pub fn run_dir(
    input_dir: &Path,
    output_dir: &Path,
    cfg: &DetectConfig,
) -> Result<usize, BacktestError> {
    let mut files = Vec::new();
    csv_files(input_dir, &mut files)?;
    files.sort();
    for f in &files {
        let rel = f.strip_prefix(input_dir).unwrap_or(f);
        run_file(f, &output_dir.join(rel), cfg)?;
    }
    Ok(files.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nab_timestamps() {
        assert_eq!(parse_time("1970-01-01 00:05:00"), Some(300_000));
        assert_eq!(parse_time("garbage"), None);
    }

    #[test]
    fn scores_a_file_row_for_row() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let input = dir.path().join("in.csv");
        let mut s = String::from("timestamp,value\n");
        for i in 0..600 {
            let v = if i == 500 { 80 } else { 10 + (i % 3) };
            s.push_str(&format!(
                "2015-01-01 {:02}:{:02}:00,{v}\n",
                (i / 12) % 24,
                (i % 12) * 5
            ));
        }
        // Timestamps wrap after a day; spacing stays 5 minutes for the first rows.
        std::fs::write(&input, s)?;
        let output = dir.path().join("sub/out.csv");
        run_file(&input, &output, &DetectConfig::default())?;
        let text = std::fs::read_to_string(&output)?;
        assert_eq!(text.lines().count(), 601);
        for line in text.lines().skip(1) {
            let score: f64 = line.split(',').nth(2).unwrap_or("x").parse()?;
            assert!((0.0..=1.0).contains(&score));
        }
        Ok(())
    }
}
