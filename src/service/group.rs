//! The group mode (`kafka.mode = "group"`): several instances share one detector.
//!
//! Each member decodes and classifies the source partitions it is assigned and forwards every
//! classified event (a few dozen bytes) to one internal topic with a single partition,
//! `<group>.classified`, which the members also subscribe to. The member that owns that
//! partition counts and detects for the whole group; its state (open windows, baselines,
//! crisis lifecycles, and how far each source partition has been counted) is checkpointed to
//! a compacted topic, `<group>.state`, so whichever member owns the partition next restores
//! it: the state moves with the partition. See `docs/state.md`.
//!
//! Exactness: a forwarder commits a source offset only once the classified events before it
//! are acknowledged, and forwards each partition in offset order; the detector skips a
//! classified event whose source offset it has already counted (a forwarder that died, or
//! lost the partition, before its commit forwards again from the committed offset). The
//! detector's checkpoint is written before the classified partition's offset is committed,
//! and a new owner starts reading at the position of the checkpoint it restored.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::sink::kafka::{Role, client_config};
use crate::source::kafka_config::KafkaConfig;
use crate::state::{self, Checkpoint};

/// How far before its checkpoint's position a new detector starts reading the classified
/// topic. What it re-reads is skipped by source offset (every record before the position was
/// counted), so this costs a fraction of a second; it makes the resume immune to brokers that
/// answer a fetch starting inside a stored batch from the next batch (tansu 0.6.0, measured:
/// a resume lost the rest of that batch, 326 events in one run of the kill -9 test).
pub const RESUME_MARGIN: i64 = 100_000;

/// Where a detector whose checkpoint covers the classified records before `at` starts
/// reading them (see [`RESUME_MARGIN`]).
pub fn resume_from(at: i64) -> rdkafka::Offset {
    rdkafka::Offset::Offset((at - RESUME_MARGIN).max(0))
}

/// Largest checkpoint chunk: well under the 1 MB `max.message.bytes` brokers default to.
pub const CHUNK: usize = 256 * 1024;

/// One record of `<group>.classified`, about one source partition:
/// - a classified event (`offset` and `event`);
/// - a refused record (`offset` only): dead-lettered by the forwarder, it counts for nothing
///   but moves the partition's position on, as it does in the standalone mode;
/// - a hold marker (neither): the partition is assigned and has input the detector has not
///   seen yet, so it holds the watermark back, as an assigned partition does in the
///   standalone mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forwarded {
    /// The forwarder's fingerprint (taxonomy and window geometry): topic and term ids mean
    /// something only under the same one.
    pub fp: String,
    /// Source topic and partition.
    pub topic: String,
    pub partition: i32,
    /// Offset of the record in the source partition (`None`: a hold marker).
    pub offset: Option<i64>,
    pub event: Option<Classified>,
}

/// What the detector needs of one classified event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classified {
    /// Event time (ms since the epoch), as decoded (Kafka timestamp fallback applied).
    pub time: i64,
    /// `Channel::index()`.
    pub channel: u8,
    /// `TopicId`.
    pub topic: u16,
    pub complaint: bool,
    pub terms: Vec<u32>,
    pub id: String,
    /// Keyed hash of the customer of a complaint (counting customers).
    pub customer: Option<u64>,
}

impl Forwarded {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(96);
        // Writing into a Vec cannot fail, and every field is serializable.
        let _ = ciborium::into_writer(self, &mut out);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        ciborium::from_reader(bytes).map_err(|e| e.to_string())
    }
}

/// The key of a checkpoint chunk in the state topic: two slots, so that a torn write (a crash
/// between chunks) leaves the other slot's complete checkpoint to restore.
fn chunk_key(slot: u8, index: u32) -> String {
    format!("checkpoint/{slot}/{index}")
}

/// The JSON line before a chunk's bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ChunkHeader {
    seq: u64,
    slot: u8,
    index: u32,
    count: u32,
}

/// A checkpoint (`state::encode` bytes) as the records of the state topic: (key, value).
pub fn frames(bytes: &[u8], slot: u8, seq: u64) -> Vec<(String, Vec<u8>)> {
    let pieces: Vec<&[u8]> = if bytes.is_empty() {
        vec![bytes]
    } else {
        bytes.chunks(CHUNK).collect()
    };
    let count = pieces.len() as u32;
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, piece)| {
            let h = ChunkHeader {
                seq,
                slot,
                index: i as u32,
                count,
            };
            let mut v = serde_json::to_vec(&h).unwrap_or_default();
            v.push(b'\n');
            v.extend_from_slice(piece);
            (chunk_key(slot, i as u32), v)
        })
        .collect()
}

/// A complete checkpoint found in the state topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub slot: u8,
    pub seq: u64,
    pub bytes: Vec<u8>,
}

/// The complete checkpoints among the newest value of every key (a compacted topic read to
/// its end), newest sequence number first. A slot whose chunks disagree (torn write) or are
/// missing is left out.
pub fn assemble(latest: &BTreeMap<String, Vec<u8>>) -> Vec<Stored> {
    let mut slots: BTreeMap<u8, Vec<(ChunkHeader, &[u8])>> = BTreeMap::new();
    for v in latest.values() {
        let Some(nl) = v.iter().position(|&b| b == b'\n') else {
            continue;
        };
        let Ok(h) = serde_json::from_slice::<ChunkHeader>(&v[..nl]) else {
            continue;
        };
        slots.entry(h.slot).or_default().push((h, &v[nl + 1..]));
    }
    let mut out = Vec::new();
    for (slot, mut chunks) in slots {
        // The chunk 0 names the checkpoint the slot holds: the newest one written there.
        let Some(first) = chunks
            .iter()
            .find(|(h, _)| h.index == 0)
            .map(|(h, _)| h.clone())
        else {
            continue;
        };
        chunks.retain(|(h, _)| h.seq == first.seq && h.count == first.count);
        chunks.sort_by_key(|(h, _)| h.index);
        let complete = chunks.len() == first.count as usize
            && chunks
                .iter()
                .enumerate()
                .all(|(i, (h, _))| h.index == i as u32);
        if complete {
            out.push(Stored {
                slot,
                seq: first.seq,
                bytes: chunks.iter().flat_map(|(_, b)| b.iter().copied()).collect(),
            });
        }
    }
    out.sort_by_key(|s| std::cmp::Reverse(s.seq));
    out
}

/// Reads the state topic to its end and returns its complete checkpoints, newest first.
pub fn read_state_topic(
    k: &KafkaConfig,
    topic: &str,
    timeout: Duration,
) -> anyhow::Result<Vec<Stored>> {
    let mut c = client_config(k, Role::Admin);
    c.set("group.id", format!("{}.state-reader", k.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest");
    let consumer: BaseConsumer = c.create()?;
    let (low, high) = consumer.fetch_watermarks(topic, 0, timeout)?;
    let mut latest: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    if high > low {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Offset(low))?;
        consumer.assign(&tpl)?;
        let deadline = std::time::Instant::now() + timeout;
        let mut next = low;
        while next < high {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "reading the state topic {topic}: at offset {next} of {high} after {timeout:?}"
            );
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    next = m.offset() + 1;
                    let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                        continue;
                    };
                    match m.payload() {
                        Some(v) => latest.insert(key.to_string(), v.to_vec()),
                        // A tombstone.
                        None => latest.remove(key),
                    };
                }
                Some(Err(e)) => tracing::warn!(error = %e, "reading the state topic; retrying"),
                None => {}
            }
        }
    }
    Ok(assemble(&latest))
}

/// The newest decodable checkpoint of the state topic, with its slot and sequence number. A
/// checkpoint that does not decode (corrupt, or from a newer build) is an error unless an
/// older one decodes, as with a state directory.
pub fn newest(
    stored: Vec<Stored>,
    topic: &str,
) -> Result<Option<(Checkpoint, u8, u64)>, state::StateError> {
    let path = std::path::PathBuf::from(format!("kafka:{topic}"));
    let mut first_err = None;
    for s in stored {
        match state::decode(&path, &s.bytes) {
            Ok(cp) => return Ok(Some((cp, s.slot, s.seq))),
            Err(e) => {
                tracing::warn!(topic, slot = s.slot, seq = s.seq, error = %e, "checkpoint in the state topic unusable; trying the other slot");
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latest(records: &[(String, Vec<u8>)]) -> BTreeMap<String, Vec<u8>> {
        records.iter().cloned().collect()
    }

    #[test]
    fn forwarded_records_round_trip() {
        let f = Forwarded {
            fp: "abc".into(),
            topic: "contacts.chat".into(),
            partition: 3,
            offset: Some(42),
            event: Some(Classified {
                time: 1_700_000_000_000,
                channel: 2,
                topic: 5,
                complaint: true,
                terms: vec![1, 9],
                id: "ev-1".into(),
                customer: Some(u64::MAX),
            }),
        };
        assert_eq!(Forwarded::decode(&f.encode()), Ok(f));
        assert!(Forwarded::decode(b"{not cbor").is_err());
    }

    #[test]
    fn checkpoints_are_chunked_and_reassembled() {
        let big: Vec<u8> = (0..(CHUNK * 2 + 17)).map(|i| (i % 251) as u8).collect();
        let fr = frames(&big, 1, 7);
        assert_eq!(fr.len(), 3);
        let got = assemble(&latest(&fr));
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].slot, got[0].seq), (1, 7));
        assert_eq!(got[0].bytes, big);
        let empty = assemble(&latest(&frames(b"", 0, 1)));
        assert_eq!(empty[0].bytes, Vec::<u8>::new());
    }

    #[test]
    fn a_torn_slot_is_skipped_and_the_other_slot_restores() {
        let old: Vec<u8> = vec![1; CHUNK + 5];
        let new: Vec<u8> = vec![2; CHUNK * 2 + 5];
        let mut records = frames(&old, 0, 1);
        records.extend(frames(&vec![3; CHUNK + 1], 1, 2));
        // Slot 1 rewritten with seq 3, but the process died after its first chunk: chunk 1
        // still holds seq 2's bytes.
        let torn = frames(&new, 1, 3);
        let mut map = latest(&records);
        map.insert(torn[0].0.clone(), torn[0].1.clone());
        let got = assemble(&map);
        assert_eq!(got.len(), 1, "only slot 0 is whole");
        assert_eq!((got[0].slot, got[0].seq), (0, 1));
        assert_eq!(got[0].bytes, old);
        // Once every chunk landed, slot 1's newer checkpoint comes first.
        for (k, v) in &torn {
            map.insert(k.clone(), v.clone());
        }
        let got = assemble(&map);
        assert_eq!(got.iter().map(|s| s.seq).collect::<Vec<_>>(), vec![3, 1]);
        assert_eq!(got[0].bytes, new);
        // A shorter checkpoint in a slot that held a longer one: the leftover chunk of the
        // old one is ignored.
        let mut map2 = latest(&frames(&vec![4; CHUNK * 3], 0, 4));
        for (k, v) in frames(&[5; 10], 0, 5) {
            map2.insert(k, v);
        }
        let got = assemble(&map2);
        assert_eq!((got[0].seq, got[0].bytes.len()), (5, 10));
    }
}
