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

/// Positions as a list of offsets to commit.
pub fn to_tpl(positions: &Positions) -> anyhow::Result<TopicPartitionList> {
    let mut tpl = TopicPartitionList::new();
    for ((t, p), o) in to_tps(positions) {
        tpl.add_partition_offset(&t, p, Offset::Offset(o))?;
    }
    Ok(tpl)
}

/// Exactly-once start-up. A checkpoint is written *before* the transaction that commits
/// its positions as the group's offsets, so after a crash the newest checkpoint may be one
/// whose transaction never committed. The state to resume is the newest checkpoint whose
/// positions equal the committed offsets; newer ones are deleted (their outputs were
/// aborted, and they would otherwise shadow the right one). No checkpoint and no
/// committed offset: a fresh start.
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
    let timeout = Duration::from_secs(30);
    let mut stale = Vec::new();
    let mut any_committed = false;
    for (_, path) in files.iter().rev() {
        let bytes = std::fs::read(path)?;
        let cp = match state::decode(path, &bytes) {
            Ok(cp) => cp,
            Err(e @ (StateError::Corrupt { .. } | StateError::NotACheckpoint { .. })) => {
                tracing::warn!(path = %path.display(), error = %e, "skipping an unusable checkpoint");
                stale.push(path.clone());
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let tps = to_tps(&cp.positions);
        let mut ask = TopicPartitionList::new();
        for (t, part) in tps.keys() {
            ask.add_partition(t, *part);
        }
        let committed: HashMap<Tp, i64> = consumer
            .committed_offsets(ask, timeout)?
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some(((Arc::from(e.topic()), e.partition()), o)),
                _ => None,
            })
            .collect();
        any_committed |= !committed.is_empty();
        if tps.iter().all(|(tp, o)| committed.get(tp) == Some(o)) {
            for s in &stale {
                tracing::warn!(path = %s.display(), "removing a checkpoint whose transaction did not commit");
                std::fs::remove_file(s)?;
            }
            let positions = p.restore(cp)?;
            tracing::info!(path = %path.display(), "state restored from the checkpoint the committed offsets agree with");
            return Ok(positions);
        }
        stale.push(path.clone());
    }
    anyhow::ensure!(
        !any_committed,
        "no checkpoint in {} agrees with the group's committed offsets; pass --reset-state to start fresh",
        dir.display()
    );
    // Nothing was ever committed: every checkpoint belongs to aborted transactions.
    for s in &stale {
        std::fs::remove_file(s)?;
    }
    tracing::info!(dir = %dir.display(), "no transaction ever committed; starting fresh");
    Ok(Positions::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_even_with_slashes_in_topic_names() {
        assert_eq!(parse_key(&key("contacts.chat", 3)), Some((Arc::from("contacts.chat"), 3)));
        assert_eq!(parse_key("a/b/12"), Some((Arc::from("a/b"), 12)));
        assert_eq!(parse_key("file"), None);
        assert_eq!(parse_key("/3"), None);
        assert_eq!(parse_key("t/x"), None);
    }
}
