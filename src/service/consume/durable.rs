//! Durable state: checkpoints with the offsets they cover, and the rollback to the last one
//! (after a revoke under transactions, or outputs the broker refused).

use std::time::Instant;

use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::source::kafka::{Durability, OffsetTracker, ServiceContext};
use crate::state::{self, Positions};

use super::Worker;
use super::group_member::GroupState;
use crate::service::checkpoint;

impl Worker {
    /// Where the next record of each partition this state has seen starts: the newest
    /// checkpoint's positions, moved on by what was consumed since.
    pub(super) fn current_positions(&self, ctx: &ServiceContext) -> Positions {
        let mut pos = self.positions.clone();
        if let Ok(o) = ctx.offsets.lock() {
            for ((t, p), next) in o.all_storable(None) {
                pos.insert(checkpoint::key(&t, p), next);
            }
        }
        pos
    }

    /// Where the next record of each partition this process still owns starts, as far as
    /// the offset tracker can store: what a checkpoint commits.
    pub(super) fn assigned_positions(&self, ctx: &ServiceContext) -> Positions {
        let mut mine = Positions::new();
        if let Ok(o) = ctx.offsets.lock() {
            for ((t, p), next) in o.all_storable(None) {
                if self.assigned.contains(&(t.clone(), p)) {
                    mine.insert(checkpoint::key(&t, p), next);
                }
            }
        }
        mine
    }

    /// Makes everything so far durable: closes what the watermark allows, publishes it,
    /// writes a checkpoint, then commits exactly the offsets the checkpoint covers (inside
    /// the transaction, in the exactly-once mode). A crash at any point leaves a
    /// checkpoint and committed offsets that agree (see `docs/state.md`).
    pub(super) fn checkpoint(
        &mut self,
        consumer: &BaseConsumer<ServiceContext>,
        final_one: bool,
    ) -> anyhow::Result<()> {
        let ctx = consumer.context();
        let dir = self.state_dir.clone();
        if dir.is_none() && self.group.is_none() {
            return Ok(());
        }
        self.advance(ctx)?;
        let started = Instant::now();
        let positions = self.current_positions(ctx);
        if self.durability == Durability::Checkpointed {
            // Crisis events of windows the checkpoint calls closed must be delivered first.
            // A broker that is away postpones the checkpoint; the producer keeps retrying.
            let flushed = ctx.sink.flush(self.checkpoint_every.min(ctx.drain_timeout));
            if flushed.is_err() || ctx.sink.in_flight() > 0 {
                self.postponed += 1;
                if self.postponed == 1 || self.postponed.is_multiple_of(20) {
                    tracing::warn!(
                        undelivered = ctx.sink.in_flight(),
                        postponed = self.postponed,
                        "checkpoint postponed: outputs not yet acknowledged by the broker"
                    );
                }
                anyhow::ensure!(
                    !final_one,
                    "outputs still undelivered at shutdown ({} messages): the next start re-reads from the last checkpoint",
                    ctx.sink.in_flight()
                );
                return Ok(());
            }
            self.postponed = 0;
            let failed = ctx.sink.failed();
            if failed > self.failed_seen {
                // Some output of what was read since the last checkpoint is lost: checkpoint
                // nothing, read it all again (the outputs come again, with the same ids).
                anyhow::ensure!(
                    !final_one,
                    "outputs lost at shutdown: the next start re-reads from the last checkpoint"
                );
                match self.rewind(consumer) {
                    Ok(()) => {
                        self.failed_seen = failed;
                        self.metrics.rewinds.inc();
                        tracing::warn!(
                            "outputs refused by the broker: state rolled back to the last checkpoint, reading again from its positions"
                        );
                    }
                    // No checkpoint until a rewind succeeds: the next one tries again.
                    Err(e) => {
                        tracing::warn!(error = %e, "outputs refused by the broker, and the rewind to the last checkpoint failed; retrying")
                    }
                }
                return Ok(());
            }
        }
        let Some(dir) = dir else {
            return self.checkpoint_group(consumer, started);
        };
        let cp = self.p.checkpoint(positions.clone());
        let path = state::save(&dir, &cp)?;
        // Commit what this process consumed from partitions it still owns: a partition it
        // has not read from yet already has a committed offset at least as far on. With
        // transactions, every assigned partition is in each commit, tagged with the
        // checkpoint's sequence number (see `checkpoint::resume_committed`).
        let mut mine = self.assigned_positions(ctx);
        let meta = if self.durability == Durability::Transactional {
            for (t, p) in &self.assigned {
                let k = checkpoint::key(t, *p);
                if let (false, Some(&at)) = (mine.contains_key(&k), positions.get(&k)) {
                    mine.insert(k, at);
                }
            }
            checkpoint::seq_of(&path).map(checkpoint::metadata)
        } else {
            None
        };
        let tpl = checkpoint::to_tpl(&mine, meta.as_deref())?;
        match self.durability {
            Durability::Transactional => {
                if tpl.count() == 0 {
                    ctx.sink.commit(None)?;
                } else {
                    let group = consumer
                        .group_metadata()
                        .ok_or_else(|| anyhow::anyhow!("no consumer group metadata"))?;
                    ctx.sink.commit(Some((&tpl, &group)))?;
                }
                ctx.sink.begin()?;
            }
            _ => {
                // The checkpoint is saved: a failed commit only means a restart resumes from
                // the checkpoint's positions (the further of the two), so warn and go on.
                if tpl.count() > 0
                    && let Err(e) = consumer.commit(&tpl, rdkafka::consumer::CommitMode::Sync)
                {
                    tracing::warn!(error = %e, "offset commit failed; the checkpoint holds the positions, retrying with the next one");
                }
            }
        }
        self.positions = positions;
        self.last = Some(Box::new(cp));
        self.metrics
            .checkpoint_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.checkpoints.inc();
        tracing::debug!(path = %path.display(), "checkpoint written and offsets committed");
        Ok(())
    }

    /// After a revoke: at least once, checkpoint now (the revoked partitions' offsets were
    /// committed as far as this state counted them); exactly once, the transaction was
    /// aborted, so go back to the last checkpoint and re-read from its positions.
    pub(super) fn after_revoke(
        &mut self,
        consumer: &BaseConsumer<ServiceContext>,
    ) -> anyhow::Result<()> {
        match self.durability {
            Durability::Stateless => Ok(()),
            Durability::Checkpointed => self.checkpoint(consumer, false),
            Durability::Transactional => {
                tracing::warn!(
                    "transaction aborted by a rebalance; state rolled back to the last checkpoint"
                );
                self.metrics.rewinds.inc();
                self.rewind(consumer)?;
                consumer.context().sink.begin()?;
                Ok(())
            }
        }
    }

    /// Rolls the state back to the newest checkpoint this process wrote or started from (the
    /// fresh state if none) and seeks every assigned partition to where that state left off:
    /// the checkpoint's position, else the first offset read from it since its assignment (a
    /// partition read nothing from stays where it is). Asks the broker nothing, so it works
    /// while the broker is away.
    pub(super) fn rewind(&mut self, consumer: &BaseConsumer<ServiceContext>) -> anyhow::Result<()> {
        let Some(last) = self.last.as_deref() else {
            return Ok(());
        };
        let ctx = consumer.context();
        let last = last.clone();
        let positions = self.p.restore(last.clone())?;
        self.outs.clear();
        let tps = checkpoint::to_tps(&positions);
        let mut seeks = Vec::new();
        let classified = self.group.as_ref().map(GroupState::classified_tp);
        if let Ok(mut o) = ctx.offsets.lock() {
            for tp in &self.assigned {
                if classified.as_ref() == Some(tp)
                    && let Some(&at) = tps.get(tp)
                {
                    seeks.push((tp.clone(), crate::service::group::resume_from(at)));
                } else if let Some(at) = tps.get(tp).copied().or_else(|| o.first(tp)) {
                    seeks.push((tp.clone(), rdkafka::Offset::Offset(at)));
                } else if classified.as_ref() == Some(tp) {
                    // The detector's fresh state: count the classified topic from its start.
                    seeks.push((tp.clone(), rdkafka::Offset::Beginning));
                }
            }
            *o = OffsetTracker::default();
        }
        // The watermark goes back with the state: every assigned partition (in the group
        // mode, every source partition counted) holds it until it delivers again.
        self.wm.reset();
        let now = self.clock.now_ms();
        match self.group.as_mut() {
            Some(g) => {
                g.next = classified.as_ref().and_then(|tp| tps.get(tp).copied());
                g.restore_forwarded(&last.forwarded, &mut self.wm, now);
            }
            None => {
                for tp in self.assigned.clone() {
                    self.wm.observe(&tp, 0, now);
                }
            }
        }
        for (tp, at) in seeks {
            consumer.seek(&tp.0, tp.1, at, ctx.drain_timeout)?;
        }
        self.positions = positions;
        Ok(())
    }
}
