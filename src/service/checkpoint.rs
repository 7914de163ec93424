//! Checkpoint positions as Kafka offsets, and the exactly-once start-up: choosing the
//! checkpoint that the group's committed offsets agree with.
//!
//! Positions are keyed `"<topic>/<partition>"` (see [`crate::state::Positions`]); a topic
//! name may hold `/`, so the partition is what follows the last one.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::pipeline::Pipeline;
use crate::source::kafka::{ServiceContext, Tp};
use crate::state::{self, Positions, StateError};

/// The position key of a partition.
pub fn key(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

/// Parses a position key; `None` for a key that is not a Kafka partition (e.g. `"file"`).
pub fn parse_key(k: &str) -> Option<Tp> {
    let (t, p) = k.rsplit_once('/')?;
    if t.is_empty() {
        return None;
    }
    Some((Arc::from(t), p.parse().ok()?))
}

/// The Kafka partitions among `positions`.
pub fn to_tps(positions: &Positions) -> HashMap<Tp, i64> {
    positions
        .iter()
        .filter_map(|(k, &o)| Some((parse_key(k)?, o)))
        .collect()
}

/// Positions as a list of offsets to commit, each with the commit metadata `meta`.
pub fn to_tpl(positions: &Positions, meta: Option<&str>) -> anyhow::Result<TopicPartitionList> {
    let mut tpl = TopicPartitionList::new();
    for ((t, p), o) in to_tps(positions) {
        let mut e = tpl.add_partition(&t, p);
        e.set_offset(Offset::Offset(o))?;
        if let Some(m) = meta {
            e.set_metadata(m);
        }
    }
    Ok(tpl)
}

/// The commit metadata naming checkpoint `seq` (exactly-once mode).
pub fn metadata(seq: u64) -> String {
    format!("crisis-pulse-checkpoint:{seq}")
}

fn parse_metadata(m: &str) -> Option<u64> {
    m.strip_prefix("crisis-pulse-checkpoint:")?.parse().ok()
}

/// What an exactly-once start does with the checkpoints of its state directory.
#[derive(Debug, PartialEq, Eq)]
pub enum Choice {
    /// Resume from checkpoint `seq`; delete the (newer) checkpoints in `remove`.
    Resume { seq: u64, remove: Vec<u64> },
    /// Nothing was ever committed: delete every checkpoint and start fresh.
    Fresh,
    /// The broker and the directory disagree in a way no restart can mend alone.
    Refuse(String),
}

/// The exactly-once rule, pure: `seqs` are the checkpoints on disk, `committed` the group's
/// committed offset and metadata of every partition they cover. The checkpoint to resume is
/// the one the newest committed transaction names; every newer one was written for a
/// transaction that never committed.
pub fn choose(seqs: &[u64], committed: &[(Option<i64>, String)]) -> Choice {
    let named = committed
        .iter()
        .filter_map(|(_, m)| parse_metadata(m))
        .max();
    let any_offset = committed.iter().any(|(o, _)| o.is_some());
    match named {
        None if any_offset => Choice::Refuse(
            "the group has committed offsets but none names a checkpoint".to_string(),
        ),
        None => Choice::Fresh,
        Some(seq) if seqs.contains(&seq) => Choice::Resume {
            seq,
            remove: seqs.iter().copied().filter(|&s| s > seq).collect(),
        },
        Some(seq) => Choice::Refuse(format!(
            "the committed offsets name checkpoint {seq}, which is not on disk"
        )),
    }
}

/// The sequence number of a checkpoint file (`checkpoint-<seq>.cps`).
pub fn seq_of(path: &Path) -> Option<u64> {
    path.file_name()?
        .to_str()?
        .strip_prefix("checkpoint-")?
        .strip_suffix(".cps")?
        .parse()
        .ok()
}

/// Exactly-once start-up. A checkpoint is written *before* the transaction that commits
/// its positions as the group's offsets, so after a crash the newest checkpoint may be one
/// whose transaction never committed. Every transaction commits the offsets of all assigned
/// partitions with the metadata `crisis-pulse-checkpoint:<seq>`: the state to resume is the
/// checkpoint the committed metadata names (windows can close on an idle stream without any
/// offset moving, so equal positions would not be enough). Newer checkpoints belong to
/// aborted transactions and are deleted. No checkpoint and no committed offset: a fresh start.
pub fn resume_committed(
    p: &mut Pipeline,
    dir: &Path,
    reset: bool,
    consumer: &BaseConsumer<ServiceContext>,
) -> anyhow::Result<Positions> {
    if reset {
        return Ok(state::resume(p, dir, true)?);
    }
    let files = state::list(dir)?;
    if files.is_empty() {
        tracing::info!(dir = %dir.display(), "no checkpoint yet, starting fresh");
        return Ok(Positions::new());
    }
    // Every partition any checkpoint covers: the committed metadata of each.
    let mut ask = TopicPartitionList::new();
    let mut seen = std::collections::HashSet::new();
    let mut decoded = Vec::new();
    for (seq, path) in files.iter().rev() {
        let bytes = std::fs::read(path)?;
        match state::decode(path, &bytes) {
            Ok(cp) => {
                for (t, part) in to_tps(&cp.positions).into_keys() {
                    if seen.insert((t.clone(), part)) {
                        ask.add_partition(&t, part);
                    }
                }
                decoded.push((*seq, path.clone(), Some(cp)));
            }
            Err(e @ (StateError::Corrupt { .. } | StateError::NotACheckpoint { .. })) => {
                tracing::warn!(path = %path.display(), error = %e, "unusable checkpoint");
                decoded.push((*seq, path.clone(), None));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let committed = consumer.committed_offsets(ask, Duration::from_secs(30))?;
    let answers: Vec<(Option<i64>, String)> = committed
        .elements()
        .iter()
        .map(|e| {
            let o = match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            };
            (o, e.metadata().to_string())
        })
        .collect();
    let seqs: Vec<u64> = decoded.iter().map(|(s, _, _)| *s).collect();
    let choice = choose(&seqs, &answers);
    let (keep, remove) = match choice {
        Choice::Fresh => (None, seqs.clone()),
        Choice::Resume { seq, remove } => (Some(seq), remove),
        Choice::Refuse(why) => anyhow::bail!(
            "{why} (state directory {}); pass --reset-state to start fresh",
            dir.display()
        ),
    };
    let mut chosen = None;
    for (s, path, cp) in decoded {
        if remove.contains(&s) {
            tracing::warn!(path = %path.display(), "removing a checkpoint whose transaction did not commit");
            std::fs::remove_file(&path)?;
        } else if Some(s) == keep {
            chosen = Some((path, cp));
        }
    }
    let Some(seq) = keep else {
        tracing::info!(dir = %dir.display(), "no transaction ever committed; starting fresh");
        return Ok(Positions::new());
    };
    let Some((path, Some(cp))) = chosen else {
        anyhow::bail!(
            "the committed offsets name checkpoint {seq}, which {} does not hold intact; pass --reset-state to start fresh",
            dir.display()
        );
    };
    let positions = p.restore(cp)?;
    tracing::info!(path = %path.display(), "state restored from the checkpoint of the last committed transaction");
    Ok(positions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_even_with_slashes_in_topic_names() {
        assert_eq!(
            parse_key(&key("contacts.chat", 3)),
            Some((Arc::from("contacts.chat"), 3))
        );
        assert_eq!(parse_key("a/b/12"), Some((Arc::from("a/b"), 12)));
        assert_eq!(parse_key("file"), None);
        assert_eq!(parse_key("/3"), None);
        assert_eq!(parse_key("t/x"), None);
    }

    fn named(o: i64, seq: u64) -> (Option<i64>, String) {
        (Some(o), metadata(seq))
    }

    #[test]
    fn exactly_once_resumes_from_the_checkpoint_the_last_transaction_names() {
        // Crash after writing checkpoint 8, before its transaction committed: 7 it is.
        assert_eq!(
            choose(&[7, 8], &[named(100, 7), named(40, 7)]),
            Choice::Resume {
                seq: 7,
                remove: vec![8]
            }
        );
        // Crash after the commit: the newest.
        assert_eq!(
            choose(&[7, 8], &[named(120, 8), named(40, 8)]),
            Choice::Resume {
                seq: 8,
                remove: vec![]
            }
        );
        // Partitions last committed in different transactions: the newest names the state.
        assert_eq!(
            choose(&[7, 8], &[named(120, 8), named(40, 7)]),
            Choice::Resume {
                seq: 8,
                remove: vec![]
            }
        );
        // Never committed: every checkpoint belongs to aborted transactions.
        assert_eq!(choose(&[1, 2], &[(None, String::new())]), Choice::Fresh);
        assert_eq!(choose(&[1], &[]), Choice::Fresh);
    }

    #[test]
    fn exactly_once_refuses_what_it_cannot_mend() {
        // Offsets committed by something else (e.g. the at-least-once mode) over this state.
        assert!(matches!(
            choose(&[3], &[(Some(5), String::new())]),
            Choice::Refuse(_)
        ));
        // The named checkpoint was deleted or never written here (another instance's dir).
        assert!(matches!(choose(&[3, 4], &[named(5, 9)]), Choice::Refuse(_)));
    }

    #[test]
    fn metadata_and_file_names_name_the_checkpoint() {
        assert_eq!(parse_metadata(&metadata(42)), Some(42));
        assert_eq!(parse_metadata(""), None);
        assert_eq!(parse_metadata("crisis-pulse-checkpoint:x"), None);
        assert_eq!(seq_of(Path::new("/s/checkpoint-000000000007.cps")), Some(7));
        assert_eq!(
            seq_of(Path::new("/s/.checkpoint-000000000007.cps.tmp")),
            None
        );
    }
}
