//! Durable pipeline state: versioned checkpoints in a local directory, written atomically.
//!
//! A checkpoint file is one JSON header line (magic, `state_version`, crate version,
//! taxonomy fingerprint, detector version, body length and SHA-256) followed by a CBOR body
//! (open windows, both detectors, stats, watermark, source positions). See `docs/state.md`
//! for why, and for the version policy.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::detect::Detector;
use crate::pipeline::{Pipeline, Stats};
use crate::window::{Aggregator, WindowSpec};

/// First field of every header; anything else is not a checkpoint.
pub const MAGIC: &str = "crisis-pulse-state";
/// Body layout version written by this build. Bump it (and add a migration in
/// [`decode_body`]) whenever the body's shape changes.
///
/// 2: open window bins hold, per topic, the keyed hashes of complaining customers and how many
/// complaints carried one (counting distinct customers, `[window] count`). A version-1 body
/// reads as version 2 with none: its complaints were counted as events, and each still counts.
///
/// 3: `forwarded`, the source positions the group mode's detector has counted through (see
/// `service::group`). A version-1 or 2 body reads with none: it was written by an instance
/// that consumed its sources itself.
pub const STATE_VERSION: u32 = 3;
/// Snapshots kept in a state directory: the newest, and one to fall back on if it is corrupt.
pub const KEEP: usize = 2;
/// Longest header line read before giving up (a checkpoint's header is ~400 bytes).
const MAX_HEADER: usize = 4096;
const PREFIX: &str = "checkpoint-";
const SUFFIX: &str = ".cps";

/// Source positions a checkpoint covers: the next record to read per input, e.g.
/// `"contacts/3" -> 1042` (Kafka topic/partition -> next offset) or `"file" -> 5000`
/// (records of a replayed file already ingested).
pub type Positions = BTreeMap<String, i64>;

/// Why a checkpoint cannot be used. Never a reason to start fresh silently.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a crisis-pulse checkpoint")]
    NotACheckpoint { path: PathBuf },
    #[error("{path} has state_version {found}; this build reads up to {supported}")]
    FutureVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error(
        "checkpoint was taken with another taxonomy or window geometry \
         (fingerprint {found}, this configuration {expected})"
    )]
    TaxonomyChanged { found: String, expected: String },
    #[error("checkpoint was taken by detector {found}; this build runs {expected}")]
    DetectorChanged { found: String, expected: String },
    #[error("{path} is corrupt: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("checkpoint does not fit this pipeline: {0}")]
    Inconsistent(String),
    #[error("encoding the checkpoint: {0}")]
    Encode(String),
}

impl StateError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        StateError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    fn corrupt(path: &Path, detail: impl Into<String>) -> Self {
        StateError::Corrupt {
            path: path.to_path_buf(),
            detail: detail.into(),
        }
    }
}

/// Everything the pipeline learns and holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PipelineState {
    /// Open windows (bins not yet closed by the watermark).
    pub aggregator: Aggregator,
    /// Baselines, levels and crisis lifecycles per topic series.
    pub topic_detector: Detector,
    /// The same per topic x channel series.
    pub channel_detector: Detector,
    pub stats: Stats,
    pub max_event_ms: Option<i64>,
    pub watermark_ms: Option<i64>,
}

/// A checkpoint: the pipeline's state and the source positions it covers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    pub fingerprint: String,
    pub detector_version: String,
    pub positions: Positions,
    /// Group mode (`kafka.mode = "group"`): per source partition, the next offset whose
    /// classified event the detector has not counted yet; a classified event from before it
    /// is a repeat and is skipped. Empty otherwise.
    pub forwarded: Positions,
    pub state: PipelineState,
}

/// The file header, one JSON line: readable with `head -1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub magic: String,
    pub state_version: u32,
    pub crate_version: String,
    pub fingerprint: String,
    pub detector_version: String,
    pub body_len: u64,
    pub body_sha256: String,
}

/// The body as stored in state_version 3, and read from 1 and 2: the fields version 2 added to
/// the window bins default to "no customer known", and version 3's `forwarded` to none (see
/// [`STATE_VERSION`]), so no conversion is needed beyond serde's defaults.
#[derive(Serialize, Deserialize)]
struct Body {
    positions: Positions,
    #[serde(default)]
    forwarded: Positions,
    state: PipelineState,
}

/// Hash of the topic names (in order) and the window geometry.
pub fn fingerprint(topics: &[String], spec: &WindowSpec, samples_per_window: usize) -> String {
    let mut h = Sha256::new();
    for t in topics {
        h.update(t.as_bytes());
        h.update([0]);
    }
    h.update(spec.size_ms.to_be_bytes());
    h.update(spec.hop_ms.to_be_bytes());
    h.update(spec.max_gap_windows.to_be_bytes());
    h.update((samples_per_window as u64).to_be_bytes());
    hex::encode(&h.finalize()[..12])
}

/// Serializes a checkpoint into the file format (header line + body).
pub fn encode(cp: &Checkpoint) -> Result<Vec<u8>, StateError> {
    let body = Body {
        positions: cp.positions.clone(),
        forwarded: cp.forwarded.clone(),
        state: cp.state.clone(),
    };
    let mut buf = Vec::new();
    ciborium::into_writer(&body, &mut buf).map_err(|e| StateError::Encode(e.to_string()))?;
    let header = Header {
        magic: MAGIC.to_string(),
        state_version: STATE_VERSION,
        crate_version: env!("CARGO_PKG_VERSION").to_string(),
        fingerprint: cp.fingerprint.clone(),
        detector_version: cp.detector_version.clone(),
        body_len: buf.len() as u64,
        body_sha256: hex::encode(&Sha256::digest(&buf)[..]),
    };
    let mut out = serde_json::to_vec(&header).map_err(|e| StateError::Encode(e.to_string()))?;
    out.push(b'\n');
    out.extend_from_slice(&buf);
    Ok(out)
}

/// Reads the header of a checkpoint file's bytes; `path` only names the file in errors.
pub fn decode_header(path: &Path, bytes: &[u8]) -> Result<(Header, usize), StateError> {
    let head = &bytes[..bytes.len().min(MAX_HEADER)];
    let nl = head
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| StateError::NotACheckpoint {
            path: path.to_path_buf(),
        })?;
    // Check the magic loosely first, so that a foreign file is "not a checkpoint", not
    // "corrupt".
    let v: serde_json::Value =
        serde_json::from_slice(&head[..nl]).map_err(|_| StateError::NotACheckpoint {
            path: path.to_path_buf(),
        })?;
    if v.get("magic").and_then(|m| m.as_str()) != Some(MAGIC) {
        return Err(StateError::NotACheckpoint {
            path: path.to_path_buf(),
        });
    }
    if let Some(found) = v.get("state_version").and_then(|x| x.as_u64())
        && found > u64::from(STATE_VERSION)
    {
        return Err(StateError::FutureVersion {
            path: path.to_path_buf(),
            found: u32::try_from(found).unwrap_or(u32::MAX),
            supported: STATE_VERSION,
        });
    }
    let header: Header =
        serde_json::from_value(v).map_err(|e| StateError::corrupt(path, e.to_string()))?;
    Ok((header, nl + 1))
}

/// Decodes a checkpoint file's bytes, checking integrity and migrating older versions.
/// Does not check the fingerprint (see [`load`] and `Pipeline::restore`).
pub fn decode(path: &Path, bytes: &[u8]) -> Result<Checkpoint, StateError> {
    let (header, start) = decode_header(path, bytes)?;
    let body = &bytes[start..];
    if body.len() as u64 != header.body_len {
        return Err(StateError::corrupt(
            path,
            format!(
                "body is {} bytes, header says {}",
                body.len(),
                header.body_len
            ),
        ));
    }
    if hex::encode(&Sha256::digest(body)[..]) != header.body_sha256 {
        return Err(StateError::corrupt(path, "body checksum mismatch"));
    }
    decode_body(path, &header, body)
}

/// One arm per state_version this build can read; older bodies are migrated here.
fn decode_body(path: &Path, header: &Header, body: &[u8]) -> Result<Checkpoint, StateError> {
    match header.state_version {
        1..=3 => {
            let b: Body = ciborium::from_reader(body)
                .map_err(|e| StateError::corrupt(path, e.to_string()))?;
            Ok(Checkpoint {
                fingerprint: header.fingerprint.clone(),
                detector_version: header.detector_version.clone(),
                positions: b.positions,
                forwarded: b.forwarded,
                state: b.state,
            })
        }
        v => Err(StateError::corrupt(
            path,
            format!("unknown state_version {v}"),
        )),
    }
}

/// Checkpoint files in `dir`, oldest first, with their sequence numbers.
pub fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StateError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StateError::io(dir, e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| StateError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(seq) = name
            .strip_prefix(PREFIX)
            .and_then(|s| s.strip_suffix(SUFFIX))
            .and_then(|s| s.parse::<u64>().ok())
        {
            out.push((seq, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Loads the newest usable checkpoint of `dir` for a pipeline with `fingerprint`.
///
/// `Ok(None)`: no checkpoint at all (first start). A corrupt newest snapshot falls back to
/// the previous one (with a warning): its positions are older, but state and positions
/// still agree, so nothing is lost or repeated. Every other problem (other taxonomy, future
/// version, all snapshots corrupt) is an error: the caller starts fresh only if told to.
pub fn load(dir: &Path, fingerprint: &str) -> Result<Option<Checkpoint>, StateError> {
    let files = list(dir)?;
    let mut first_err = None;
    for (_, path) in files.iter().rev() {
        let bytes = fs::read(path).map_err(|e| StateError::io(path, e))?;
        match decode(path, &bytes) {
            Ok(cp) if cp.fingerprint != fingerprint => {
                return Err(StateError::TaxonomyChanged {
                    found: cp.fingerprint,
                    expected: fingerprint.to_string(),
                });
            }
            Ok(cp) => {
                if let Some(e) = &first_err {
                    tracing::warn!(path = %path.display(), error = %e, "newest checkpoint unusable; using the previous one");
                }
                return Ok(Some(cp));
            }
            Err(e @ (StateError::Corrupt { .. } | StateError::NotACheckpoint { .. })) => {
                first_err.get_or_insert(e);
            }
            Err(e) => return Err(e),
        }
    }
    first_err.map_or(Ok(None), Err)
}

/// What a driver does at start-up with `--state-dir DIR [--reset-state]`: restores the
/// newest checkpoint into `p` and returns the positions to resume from (empty: from the
/// start). With `reset`, an existing checkpoint is ignored (with a warning naming it) and
/// overwritten by the next save; without it, an unusable checkpoint is an error.
pub fn resume(p: &mut Pipeline, dir: &Path, reset: bool) -> Result<Positions, StateError> {
    if reset {
        if let Some((_, newest)) = list(dir)?.last() {
            tracing::warn!(path = %newest.display(), "--reset-state: ignoring the existing checkpoint, starting fresh");
        }
        return Ok(Positions::new());
    }
    match load(dir, p.fingerprint())? {
        None => {
            tracing::info!(dir = %dir.display(), "no checkpoint yet, starting fresh");
            Ok(Positions::new())
        }
        Some(cp) => {
            let positions = p.restore(cp)?;
            tracing::info!(dir = %dir.display(), ?positions, "state restored from checkpoint");
            Ok(positions)
        }
    }
}

/// Writes a checkpoint atomically (temp file, fsync, rename, fsync dir) as the next
/// snapshot of `dir`, then prunes all but the newest [`KEEP`]. Returns the new file's path.
pub fn save(dir: &Path, cp: &Checkpoint) -> Result<PathBuf, StateError> {
    fs::create_dir_all(dir).map_err(|e| StateError::io(dir, e))?;
    let existing = list(dir)?;
    let seq = existing.last().map_or(1, |(s, _)| s + 1);
    let bytes = encode(cp)?;
    let tmp = dir.join(format!(".{PREFIX}{seq:012}{SUFFIX}.tmp"));
    let path = dir.join(format!("{PREFIX}{seq:012}{SUFFIX}"));
    {
        let mut f = File::create(&tmp).map_err(|e| StateError::io(&tmp, e))?;
        f.write_all(&bytes).map_err(|e| StateError::io(&tmp, e))?;
        f.sync_all().map_err(|e| StateError::io(&tmp, e))?;
    }
    fs::rename(&tmp, &path).map_err(|e| StateError::io(&path, e))?;
    // The rename is durable only once the directory entry is.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StateError::io(dir, e))?;
    let all = list(dir)?;
    for (_, old) in all.iter().take(all.len().saturating_sub(KEEP)) {
        fs::remove_file(old).map_err(|e| StateError::io(old, e))?;
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_line(v: u32) -> Vec<u8> {
        let mut b = format!(
            r#"{{"magic":"{MAGIC}","state_version":{v},"crate_version":"9","fingerprint":"f","detector_version":"d","body_len":0,"body_sha256":""}}"#
        )
        .into_bytes();
        b.push(b'\n');
        b
    }

    #[test]
    fn future_and_foreign_files_are_named_as_such() {
        let p = Path::new("x");
        assert!(matches!(
            decode(p, &header_line(STATE_VERSION + 1)),
            Err(StateError::FutureVersion { found, .. }) if found == STATE_VERSION + 1
        ));
        assert!(matches!(
            decode(p, b"hello\nworld"),
            Err(StateError::NotACheckpoint { .. })
        ));
        assert!(matches!(
            decode(p, b""),
            Err(StateError::NotACheckpoint { .. })
        ));
        assert!(matches!(
            decode(p, &header_line(1)),
            Err(StateError::Corrupt { .. })
        ));
    }
}
