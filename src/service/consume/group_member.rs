//! The group mode inside a member (see `service::group`): every member classifies and
//! forwards; the member assigned the classified partition counts the forwarded records,
//! detects, and keeps the group's state in the state topic.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::event::{self, Channel, EventTime, TopicId};
use crate::source::batch::Record;
use crate::source::kafka::{Restored, ServiceContext, Tp};
use crate::state::{self, Positions};
use crate::window::watermark::Watermarks;

use super::Worker;
use crate::service::checkpoint;
use crate::service::group::{Classified, Forwarded};

/// Times the detector seeks back to the same gap in the classified offsets before it counts
/// the records as missing.
const GAP_SEEKS: u32 = 5;

/// The group mode's side of a member (see `service::group`): every member forwards; the
/// member assigned the classified partition is the group's detector.
pub(super) struct GroupState {
    pub(super) classified: Arc<str>,
    pub(super) state_topic: String,
    /// This pipeline's fingerprint: forwarded records carry it.
    pub(super) fp: String,
    /// Assigned the classified partition: counts and detects.
    pub(super) owner: bool,
    /// The classified partition was revoked: the next checkpoint is this member's last as the
    /// detector, and then it goes back to the fresh state.
    pub(super) losing: bool,
    /// Per source partition, the next offset not yet counted (repeats before it are skipped).
    pub(super) forwarded: HashMap<Tp, i64>,
    /// Next offset of the classified partition to count.
    pub(super) next: Option<i64>,
    /// Sequence number and slot of the newest checkpoint in the state topic.
    pub(super) seq: u64,
    pub(super) slot: u8,
    /// The state before anything was counted: what a member that stops being the detector
    /// goes back to.
    pub(super) fresh: Box<state::Checkpoint>,
    /// Source topic names seen in classified records, shared with their partitions' keys.
    pub(super) names: HashMap<String, Arc<str>>,
    /// Classified records skipped: repeats, and records of another taxonomy.
    pub(super) repeats: u64,
    pub(super) foreign: u64,
    /// A gap in the classified offsets being read again: the first offset missing and how
    /// many times it was sought.
    pub(super) gap: Option<(i64, u32)>,
    /// The loop seeks the classified partition back to the gap after the current batch.
    pub(super) seek_pending: bool,
}

impl GroupState {
    pub(super) fn classified_tp(&self) -> Tp {
        (self.classified.clone(), 0)
    }

    pub(super) fn source(&mut self, topic: String, partition: i32) -> Tp {
        let name = match self.names.get(&topic) {
            Some(n) => n.clone(),
            None => {
                let n: Arc<str> = Arc::from(topic.as_str());
                self.names.insert(topic, n.clone());
                n
            }
        };
        (name, partition)
    }

    /// Sends a record about source partition `topic`/`partition` to the group's detector:
    /// a classified event (`offset` and `event`), a refused record's position (`offset`
    /// only) or a hold marker (neither). Keyed by the source partition.
    pub(super) fn send(
        &self,
        ctx: &ServiceContext,
        (topic, partition): (&str, i32),
        offset: Option<i64>,
        event: Option<Classified>,
    ) -> Result<(), crate::sink::kafka::SinkError> {
        let rec = Forwarded {
            fp: self.fp.clone(),
            topic: topic.to_string(),
            partition,
            offset,
            event,
        };
        let key = checkpoint::key(topic, partition);
        ctx.sink
            .internal(&self.classified, key.as_bytes(), &rec.encode(), false)
    }

    /// Takes the source positions a checkpoint counted through (`Checkpoint::forwarded`);
    /// each of those partitions holds the watermark back until it delivers again.
    pub(super) fn restore_forwarded(
        &mut self,
        forwarded: &Positions,
        wm: &mut Watermarks<Tp>,
        now: i64,
    ) {
        self.forwarded.clear();
        for (k, o) in forwarded {
            if let Some((t, p)) = checkpoint::parse_key(k) {
                let tp = self.source(t.to_string(), p);
                wm.observe(&tp, 0, now);
                self.forwarded.insert(tp, *o);
            }
        }
    }
}

impl Worker {
    /// The group mode's checkpoint (the outputs and forwarded records are delivered): the
    /// detector writes its state to the state topic and waits for it; then the offsets are
    /// committed, the classified partition's only once the state covering them is stored.
    pub(super) fn checkpoint_group(
        &mut self,
        consumer: &BaseConsumer<ServiceContext>,
        started: Instant,
    ) -> anyhow::Result<()> {
        let ctx = consumer.context();
        let mut mine = self.assigned_positions(ctx);
        let Some(g) = self.group.as_mut() else {
            return Ok(());
        };
        if g.owner {
            let key = checkpoint::key(&g.classified, 0);
            let mut positions = Positions::new();
            if let Some(n) = g.next {
                positions.insert(key.clone(), n);
            }
            let mut cp = self.p.checkpoint(positions);
            cp.forwarded = g
                .forwarded
                .iter()
                .map(|((t, p), o)| (checkpoint::key(t, *p), *o))
                .collect();
            let bytes = state::encode(&cp)?;
            let (seq, slot) = (g.seq + 1, g.slot ^ 1);
            for (k, v) in crate::service::group::frames(&bytes, slot, seq) {
                ctx.sink.internal(&g.state_topic, k.as_bytes(), &v, true)?;
            }
            if ctx.sink.flush(ctx.drain_timeout).is_err() || ctx.sink.in_flight() > 0 {
                tracing::warn!(
                    "the detector's checkpoint is not acknowledged yet; offsets not committed, retrying with the next one"
                );
                return Ok(());
            }
            (g.seq, g.slot) = (seq, slot);
            if let (false, Some(n)) = (g.losing, g.next)
                && self.assigned.contains(&g.classified_tp())
            {
                mine.insert(key, n);
            }
            self.metrics.checkpoint_bytes.set(bytes.len() as i64);
            self.last = Some(Box::new(cp));
        }
        let tpl = checkpoint::to_tpl(&mine, None)?;
        if tpl.count() > 0
            && let Err(e) = consumer.commit(&tpl, rdkafka::consumer::CommitMode::Sync)
        {
            tracing::warn!(error = %e, "offset commit failed; retrying with the next checkpoint");
        }
        if g.losing {
            self.lose_detector();
        }
        self.metrics
            .checkpoint_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.checkpoints.inc();
        Ok(())
    }

    /// Group mode: this member was assigned the classified partition. Its state comes from
    /// the state topic, read by the rebalance callback (see `ServiceContext::group`).
    pub(super) fn become_detector(&mut self, ctx: &ServiceContext) -> anyhow::Result<()> {
        let restored = ctx
            .group
            .as_ref()
            .and_then(|g| g.restored.lock().ok().and_then(|mut r| r.take()));
        let Some(g) = self.group.as_mut() else {
            return Ok(());
        };
        let cp = match restored {
            Some(Restored::Found(cp, slot, seq)) => {
                (g.slot, g.seq) = (slot, seq);
                cp
            }
            Some(Restored::Failed(e)) => anyhow::bail!(
                "cannot restore the group's detector state from {}: {e}; pass --reset-state to start fresh",
                g.state_topic
            ),
            Some(Restored::Fresh) | None => g.fresh.clone(),
        };
        let positions = self.p.restore((*cp).clone()).map_err(|e| {
            anyhow::anyhow!(
                "cannot resume from the state topic {} ({e}); pass --reset-state to start fresh",
                g.state_topic
            )
        })?;
        g.next = positions.get(&checkpoint::key(&g.classified, 0)).copied();
        g.owner = true;
        g.losing = false;
        // Every source partition counted before holds time back until it delivers again.
        self.wm.reset();
        g.restore_forwarded(&cp.forwarded, &mut self.wm, self.clock.now_ms());
        self.last = Some(cp);
        self.metrics.group_detector.set(1);
        tracing::info!(
            sources = g.forwarded.len(),
            position = ?g.next,
            "counting and detecting for the group"
        );
        Ok(())
    }

    /// Group mode: the classified partition went to another member, after this member's last
    /// checkpoint as the detector.
    pub(super) fn lose_detector(&mut self) {
        let Some(g) = self.group.as_mut() else {
            return;
        };
        if let Err(e) = self.p.restore((*g.fresh).clone()) {
            tracing::error!(error = %e, "resetting the pipeline after handing detection over");
        }
        g.owner = false;
        g.losing = false;
        g.forwarded.clear();
        g.next = None;
        g.gap = None;
        g.seek_pending = false;
        self.wm.reset();
        self.last = Some(g.fresh.clone());
        self.metrics.group_detector.set(0);
        tracing::info!("detection handed over to another member");
    }

    /// Group mode: counts one classified record (the detector), skipping repeats.
    pub(super) fn count_forwarded(&mut self, m: Record<'_>, now: i64) {
        let Some(g) = self.group.as_mut() else {
            return;
        };
        if !g.owner {
            return;
        }
        // The classified topic's offsets are contiguous (one partition, no transactions, no
        // compaction): a record before the next expected one was counted already (read again
        // after a seek), and one after it means the fetch skipped records. tansu 0.6.0 does
        // that: it cuts a stored batch at the response's size limit and answers the next
        // fetch, which starts inside that batch, from the next batch (measured: 3-25 of 58,000
        // events lost per rebalance, with two members producing): read them again.
        let off = m.offset();
        if let Some(n) = g.next {
            if off < n {
                return;
            }
            if off > n {
                if g.gap.is_none_or(|(at, _)| at != n) {
                    g.gap = Some((n, 0));
                }
                if let Some((at, tries)) = g.gap.as_mut()
                    && *tries < GAP_SEEKS
                {
                    if !g.seek_pending {
                        *tries += 1;
                        g.seek_pending = true;
                        tracing::warn!(
                            from = *at,
                            to = off,
                            "classified records skipped by the fetch; reading them again"
                        );
                    }
                    return;
                }
                // Still missing after several reads (deleted by retention?): counted as lost.
                tracing::error!(
                    from = n,
                    to = off,
                    "classified records missing from the topic; their events are not counted"
                );
                self.metrics
                    .group_skipped
                    .with_label_values(&["missing"])
                    .inc_by((off - n) as u64);
                g.gap = None;
            }
        }
        g.next = Some(off + 1);
        let f = match Forwarded::decode(m.payload()) {
            Ok(f) if f.fp == g.fp => f,
            Ok(f) => {
                g.foreign += 1;
                if g.foreign <= 5 || g.foreign.is_multiple_of(10_000) {
                    tracing::warn!(fingerprint = %f.fp, expected = %g.fp, skipped = g.foreign, "classified record from a member with another taxonomy or window geometry; skipped (run one configuration per group)");
                }
                self.metrics
                    .group_skipped
                    .with_label_values(&["foreign"])
                    .inc();
                return;
            }
            Err(e) => {
                g.foreign += 1;
                tracing::warn!(offset = m.offset(), error = %e, "undecodable classified record; skipped");
                self.metrics
                    .group_skipped
                    .with_label_values(&["foreign"])
                    .inc();
                return;
            }
        };
        let tp = g.source(f.topic, f.partition);
        let Some(offset) = f.offset else {
            // A hold marker: the partition has input on its way.
            if let std::collections::hash_map::Entry::Vacant(e) = g.forwarded.entry(tp.clone()) {
                self.wm.observe(&tp, 0, now);
                e.insert(0);
            } else {
                self.wm.touch(&tp, now);
            }
            return;
        };
        if g.forwarded.get(&tp).is_some_and(|&n| offset < n) {
            g.repeats += 1;
            self.metrics
                .group_skipped
                .with_label_values(&["repeat"])
                .inc();
            return;
        }
        g.forwarded.insert(tp.clone(), offset + 1);
        let Some(c) = f.event else {
            // A refused record (dead-lettered by the forwarder): its position only.
            if !self.wm.contains(&tp) {
                self.wm.observe(&tp, 0, now);
            } else {
                self.wm.touch(&tp, now);
            }
            return;
        };
        self.wm.observe(&tp, c.time, now);
        let Classified {
            time,
            channel,
            topic,
            complaint,
            terms,
            id,
            customer,
            ..
        } = c;
        let channel = Channel::ALL
            .get(usize::from(channel))
            .copied()
            .unwrap_or(Channel::Other);
        self.p.count(
            EventTime(time),
            channel,
            TopicId(topic),
            complaint,
            &terms,
            &id,
            customer,
        );
    }

    /// Group mode: classifies a valid event and forwards it to the group's detector.
    pub(super) fn forward(
        &mut self,
        ctx: &ServiceContext,
        m: Record<'_>,
        ev: &event::ContactEvent<'_>,
    ) -> anyhow::Result<()> {
        let Some(g) = &self.group else {
            return Ok(());
        };
        let customer = self.p.classify(ev);
        let c = self.p.classification();
        let event = Classified {
            time: ev.event_time.0,
            channel: ev.channel.index() as u8,
            topic: c.topic.0,
            complaint: c.complaint,
            terms: c.terms.clone(),
            id: ev.id.to_string(),
            customer,
        };
        g.send(
            ctx,
            (m.topic(), m.partition()),
            Some(m.offset()),
            Some(event),
        )?;
        Ok(())
    }
}
