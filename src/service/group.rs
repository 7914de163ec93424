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

/// First byte of a [`Forwarded`] record in the binary layout. Members before it wrote CBOR,
/// whose records start with 0xA5 (a map of five entries), so a detector still reads records
/// forwarded before an upgrade; a detector before it cannot read this layout (see
/// `docs/state.md`, "Upgrading a group").
const BINARY_V1: u8 = 0xF1;

/// Bits of the binary layout's flags byte: what the record holds.
const HAS_OFFSET: u8 = 1;
const HAS_EVENT: u8 = 2;
const COMPLAINT: u8 = 4;
const HAS_CUSTOMER: u8 = 8;
const ALL_FLAGS: u8 = HAS_OFFSET | HAS_EVENT | COMPLAINT | HAS_CUSTOMER;

impl Forwarded {
    /// Little-endian, length-prefixed: the magic byte, `fp`, `topic`, `partition`, a flags
    /// byte (offset, event, complaint, customer present), then the offset and the event's
    /// fields. CBOR cost a quarter of the group mode's CPU (perf on `benches/e2e.sh` in the
    /// group mode: ciborium's decoder alone took 20 % of the samples); this layout took the
    /// CPU per event from 7.45 to 5.37 µs (`docs/state.md`).
    pub fn encode(&self) -> Vec<u8> {
        let e = self.event.as_ref();
        let mut out = Vec::with_capacity(
            40 + self.fp.len() + self.topic.len() + e.map_or(0, |c| c.id.len() + 4 * c.terms.len()),
        );
        out.push(BINARY_V1);
        put_str(&mut out, &self.fp);
        put_str(&mut out, &self.topic);
        out.extend_from_slice(&self.partition.to_le_bytes());
        let bit = |on: bool, flag: u8| if on { flag } else { 0 };
        let flags = bit(self.offset.is_some(), HAS_OFFSET)
            | bit(e.is_some(), HAS_EVENT)
            | bit(e.is_some_and(|c| c.complaint), COMPLAINT)
            | bit(e.is_some_and(|c| c.customer.is_some()), HAS_CUSTOMER);
        out.push(flags);
        if let Some(o) = self.offset {
            out.extend_from_slice(&o.to_le_bytes());
        }
        if let Some(c) = e {
            out.extend_from_slice(&c.time.to_le_bytes());
            out.push(c.channel);
            out.extend_from_slice(&c.topic.to_le_bytes());
            out.extend_from_slice(&(c.terms.len() as u32).to_le_bytes());
            for t in &c.terms {
                out.extend_from_slice(&t.to_le_bytes());
            }
            put_str(&mut out, &c.id);
            if let Some(h) = c.customer {
                out.extend_from_slice(&h.to_le_bytes());
            }
        }
        out
    }

    /// Reads a record in the binary layout or, from members before it, in CBOR.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        match bytes.split_first() {
            Some((&BINARY_V1, rest)) => {
                let mut r = Reader(rest);
                let f = Self::read(&mut r)?;
                if r.0.is_empty() {
                    Ok(f)
                } else {
                    Err(format!("{} bytes after the record", r.0.len()))
                }
            }
            _ => ciborium::from_reader(bytes).map_err(|e| e.to_string()),
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, String> {
        let fp = r.string()?;
        let topic = r.string()?;
        let partition = i32::from_le_bytes(r.array()?);
        let [flags] = r.array()?;
        if flags & !ALL_FLAGS != 0 {
            return Err(format!("unknown flags {flags:#x}"));
        }
        let offset = if flags & HAS_OFFSET != 0 {
            Some(i64::from_le_bytes(r.array()?))
        } else {
            None
        };
        let event = if flags & HAS_EVENT != 0 {
            let time = i64::from_le_bytes(r.array()?);
            let [channel] = r.array()?;
            let topic = u16::from_le_bytes(r.array()?);
            let n = u32::from_le_bytes(r.array()?) as usize;
            if n > r.0.len() / 4 {
                return Err(format!("{n} terms in {} bytes", r.0.len()));
            }
            let mut terms = Vec::with_capacity(n);
            for _ in 0..n {
                terms.push(u32::from_le_bytes(r.array()?));
            }
            let id = r.string()?;
            let customer = if flags & HAS_CUSTOMER != 0 {
                Some(u64::from_le_bytes(r.array()?))
            } else {
                None
            };
            Some(Classified {
                time,
                channel,
                topic,
                complaint: flags & COMPLAINT != 0,
                terms,
                id,
                customer,
            })
        } else {
            None
        };
        Ok(Forwarded {
            fp,
            topic,
            partition,
            offset,
            event,
        })
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// The unread rest of a binary [`Forwarded`] record.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let Some((head, rest)) = self.0.split_first_chunk::<N>() else {
            return Err(format!(
                "truncated: {N} bytes wanted, {} left",
                self.0.len()
            ));
        };
        self.0 = rest;
        Ok(*head)
    }

    fn string(&mut self) -> Result<String, String> {
        let n = u32::from_le_bytes(self.array()?) as usize;
        if n > self.0.len() {
            return Err(format!(
                "truncated: a {n}-byte string, {} bytes left",
                self.0.len()
            ));
        }
        let (s, rest) = self.0.split_at(n);
        self.0 = rest;
        std::str::from_utf8(s)
            .map(str::to_string)
            .map_err(|e| e.to_string())
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
        let bytes = f.encode();
        assert_eq!(bytes[0], BINARY_V1);
        assert_eq!(Forwarded::decode(&bytes), Ok(f.clone()));
        assert!(Forwarded::decode(b"{not cbor").is_err());
        // Every other shape: no event, no offset (a hold marker), no customer, no terms.
        let mut plain = f.clone();
        if let Some(c) = plain.event.as_mut() {
            c.customer = None;
            c.complaint = false;
            c.terms.clear();
        }
        for g in [
            plain,
            Forwarded {
                event: None,
                ..f.clone()
            },
            Forwarded {
                event: None,
                offset: None,
                ..f.clone()
            },
        ] {
            assert_eq!(Forwarded::decode(&g.encode()), Ok(g));
        }
        // A record forwarded by a member before the binary layout (CBOR) still reads.
        let mut cbor = Vec::new();
        ciborium::into_writer(&f, &mut cbor).unwrap();
        assert_eq!(cbor[0], 0xA5);
        assert_eq!(Forwarded::decode(&cbor), Ok(f));
    }

    #[test]
    fn damaged_binary_records_are_refused_not_misread() {
        let f = Forwarded {
            fp: "abc".into(),
            topic: "contacts.chat".into(),
            partition: 0,
            offset: Some(7),
            event: Some(Classified {
                time: 1,
                channel: 0,
                topic: 1,
                complaint: true,
                terms: vec![3, 4, 5],
                id: "ev".into(),
                customer: Some(9),
            }),
        };
        let bytes = f.encode();
        // Every truncation, one trailing byte too many, unknown flags, a term count beyond
        // the record, and a string that is not UTF-8.
        for n in 1..bytes.len() {
            assert!(Forwarded::decode(&bytes[..n]).is_err(), "truncated to {n}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(Forwarded::decode(&long).is_err());
        let flags_at = 1 + 4 + 3 + 4 + 13 + 4;
        let mut bad = bytes.clone();
        bad[flags_at] = 0x10;
        assert!(Forwarded::decode(&bad).is_err());
        let terms_at = flags_at + 1 + 8 + 8 + 1 + 2;
        let mut bad = bytes.clone();
        bad[terms_at..terms_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Forwarded::decode(&bad).is_err());
        let mut bad = bytes.clone();
        bad[5] = 0xFF;
        assert!(Forwarded::decode(&bad).unwrap_err().contains("utf-8"));
        // Any byte of a record set to any value: decoding never panics, and what it accepts
        // is exactly what it would write (one encoding per record).
        for i in 1..bytes.len() {
            for v in 0..=255u8 {
                let mut m = bytes.clone();
                m[i] = v;
                if let Ok(g) = Forwarded::decode(&m) {
                    assert_eq!(g.encode(), m, "byte {i} set to {v}");
                }
            }
        }
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
