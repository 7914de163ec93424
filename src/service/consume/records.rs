//! One record at a time: decode, count or forward, refuse to the dead-letter topic; and the
//! per-partition run that applies offsets, watermarks and counters once per batch.

use std::sync::Arc;

use prometheus::IntCounter;

use crate::event::{self, Channel, DecodeContext, DecodeError};
use crate::pipeline::Ingested;
use crate::sink::kafka::Origin;
use crate::source::batch::Record;
use crate::source::kafka::{Durability, OffsetTracker, ServiceContext, Tp};

use super::Worker;

pub(super) struct TopicInfo {
    pub(super) name: Arc<str>,
    pub(super) channel: Option<Channel>,
    pub(super) messages: IntCounter,
}

/// The partition of the previous message with what `handle` needs of it: consecutive
/// messages mostly come from the same fetched batch, so most messages skip the topic lookup
/// and the `Arc` clone.
pub(super) struct Current {
    pub(super) tp: Tp,
    pub(super) channel: Option<Channel>,
    pub(super) messages: IntCounter,
    pub(super) run: Run,
}

/// What the records of the current partition handled since the last `flush` did to the
/// offset tracker, the watermarks and the message counter, applied once per run of
/// records rather than once per record (hashing the partition key was ~5 % of the CPU).
/// Flushed when the partition changes and at the end of every batch, so nothing reads
/// those before they hold the whole batch.
#[derive(Default)]
pub(super) struct Run {
    pub(super) records: u64,
    pub(super) first_offset: Option<i64>,
    pub(super) max_offset: i64,
    /// Newest event time of the records that decoded, with the processing time then.
    pub(super) max_event: Option<(i64, i64)>,
    /// (bin, offset) where the run's window bin changed: each bin's first offset is there.
    pub(super) bins: Vec<(i64, i64)>,
}

impl Run {
    pub(super) fn add(&mut self, offset: i64, bin: Option<i64>) {
        self.records += 1;
        self.first_offset.get_or_insert(offset);
        self.max_offset = if self.records == 1 {
            offset
        } else {
            self.max_offset.max(offset)
        };
        if let Some(b) = bin
            && self.bins.last().is_none_or(|&(last, _)| last != b)
        {
            self.bins.push((b, offset));
        }
    }
}

impl Worker {
    pub(super) fn topic(&mut self, name: &str) -> &TopicInfo {
        if !self.topics.contains_key(name) {
            let info = TopicInfo {
                name: Arc::from(name),
                channel: self.kafka.channel_for_topic(name),
                messages: self
                    .metrics
                    .events_by_kafka_topic
                    .with_label_values(&[name]),
            };
            self.topics.insert(name.to_string(), info);
        }
        &self.topics[name]
    }

    /// The partition of `m` (from the previous message's when they are the same).
    pub(super) fn current(
        &mut self,
        m: Record<'_>,
        offsets: Option<&mut OffsetTracker>,
    ) -> Current {
        match self.current.take() {
            Some(c) if c.tp.1 == m.partition() && c.tp.0.as_bytes() == m.topic_bytes() => c,
            previous => {
                let mut run = Run::default();
                if let Some(mut c) = previous {
                    self.flush(&mut c, offsets);
                    // Keeps the bins' allocation.
                    run.bins = std::mem::take(&mut c.run.bins);
                }
                let info = self.topic(m.topic());
                Current {
                    tp: (info.name.clone(), m.partition()),
                    channel: info.channel,
                    messages: info.messages.clone(),
                    run,
                }
            }
        }
    }

    /// Applies the current partition's run to the offset tracker (`None`: poisoned), the
    /// watermarks and the counter; the same updates, in effect, as one per record.
    pub(super) fn flush_current(&mut self, offsets: Option<&mut OffsetTracker>) {
        if let Some(mut c) = self.current.take() {
            self.flush(&mut c, offsets);
            self.current = Some(c);
        }
    }

    pub(super) fn flush(&mut self, c: &mut Current, offsets: Option<&mut OffsetTracker>) {
        let run = &mut c.run;
        if run.records == 0 {
            return;
        }
        c.messages.inc_by(run.records);
        if let Some((t, now)) = run.max_event {
            self.wm.observe(&c.tp, t, now);
        }
        if let Some(o) = offsets {
            // The first offset first (the partition's `first`), then each bin at its first
            // offset, then the furthest offset (the partition's `next`).
            if let Some(f) = run.first_offset {
                o.consumed(&c.tp, f, None);
            }
            for &(b, off) in &run.bins {
                o.consumed(&c.tp, off, Some(b));
            }
            o.consumed(&c.tp, run.max_offset, None);
        }
        run.records = 0;
        run.first_offset = None;
        run.max_event = None;
        run.bins.clear();
    }

    /// Decodes and ingests one record and notes its offset in the current run (see `Run`;
    /// `offsets` is the context's tracker, locked by the caller, `None` if poisoned, for a
    /// change of partition). `now` is the coarse processing
    /// time, read once per batch: a few ms of staleness is harmless here, as the future-time
    /// check allows a day and the last-seen time is compared with the idle timeout (seconds).
    pub(super) fn handle(
        &mut self,
        ctx: &ServiceContext,
        m: Record<'_>,
        now: i64,
        offsets: Option<&mut OffsetTracker>,
    ) -> anyhow::Result<()> {
        if let Some(g) = &self.group
            && m.topic_bytes() == g.classified.as_bytes()
        {
            // Messages consumed per Kafka topic include the detector's internal topic (hold
            // markers too): in the group mode it shows how far behind the forwarders it is.
            let name = Arc::clone(&g.classified);
            self.topic(&name).messages.inc();
            self.count_forwarded(m, now);
            return Ok(());
        }
        let mut cur = self.current(m, offsets);
        let channel_hint = cur.channel;
        let dctx = DecodeContext {
            now_ms: now,
            fallback_time_ms: m.timestamp_ms(),
            channel_hint,
        };
        let payload = m.payload();
        self.summary.messages += 1;
        let bin = match event::decode(payload, &self.limits, &dctx) {
            Ok(ev) if self.group.is_some() => {
                self.forward(ctx, m, &ev)?;
                None
            }
            Ok(ev) => {
                let t = ev.event_time.0;
                cur.run.max_event = Some(match cur.run.max_event {
                    Some((m, _)) => (m.max(t), now),
                    None => (t, now),
                });
                match self.p.ingest(&ev) {
                    // With durable state the open windows are checkpointed: an offset
                    // need not wait for its window to close.
                    Ingested::Counted { .. } if self.durability == Durability::Stateless => {
                        Some(t.div_euclid(self.hop_ms) * self.hop_ms)
                    }
                    Ingested::Counted { .. } | Ingested::Late { .. } => None,
                }
            }
            Err(e) => {
                self.refuse(ctx, m, payload, &e);
                None
            }
        };
        cur.run.add(m.offset(), bin);
        self.current = Some(cur);
        Ok(())
    }

    pub(super) fn refuse(
        &mut self,
        ctx: &ServiceContext,
        m: Record<'_>,
        payload: &[u8],
        e: &DecodeError,
    ) {
        self.summary.refused += 1;
        self.metrics.refused(e.reason);
        self.refusals_logged += 1;
        if self.refusals_logged <= 20 || self.refusals_logged.is_multiple_of(1000) {
            tracing::warn!(
                kafka_topic = m.topic(),
                partition = m.partition(),
                offset = m.offset(),
                reason = e.reason.as_str(),
                refused_so_far = self.refusals_logged,
                "record refused; sent to the dead-letter topic"
            );
        }
        let from = Origin {
            topic: m.topic(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key(),
        };
        if let Some(g) = &self.group {
            // The detector moves the partition's position past it, as the standalone mode does.
            if let Err(err) = g.send(ctx, (m.topic(), m.partition()), Some(m.offset()), None) {
                tracing::error!(error = %err, "refused record's position not forwarded");
            }
        }
        // A dead letter that cannot even be queued (e.g. larger than the producer's
        // message.max.bytes) is lost: say so loudly, but keep consuming.
        if let Err(err) = ctx.sink.dead_letter(payload, e, &from) {
            self.metrics
                .delivery_errors
                .with_label_values(&["dlq"])
                .inc();
            tracing::error!(
                kafka_topic = m.topic(),
                partition = m.partition(),
                offset = m.offset(),
                error = %err,
                "dead letter not published; record lost"
            );
        }
    }
}
