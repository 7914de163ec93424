//! The Kafka consumer: one group over a topic list or regex, cooperative-sticky assignment,
//! offsets stored by hand only once what they fed is durable (see [`OffsetTracker`]).
//!
//! Rebalance callbacks run inside `poll` on the consumer thread. On revoke the context drains:
//! it flushes the producer, stores the durable offsets of the revoked partitions and commits
//! them synchronously, then hands the list to the loop (which forgets their watermarks).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::{ClientContext, util::Timeout};

use crate::metrics::Metrics;
use crate::sink::kafka::{KafkaSink, Role, apply_properties, client_config};
use crate::source::batch::Routing;
use crate::source::kafka_config::KafkaConfig;

/// A partition of a subscribed topic.
pub type Tp = (Arc<str>, i32);

/// Per partition, the lowest offset still feeding an open window, and the next offset.
///
/// An event in window bin `b` is settled once every window containing it has closed (its
/// crisis events, if any, then sit in the producer, flushed before offsets are stored). Late
/// and refused records settle at once (refusals via the dead-letter flush). The storable
/// offset of a partition is `min(lowest pending offset, next offset)`.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    /// Updated once per message: a multiply-rotate hash, not SipHash (keys come from the
    /// assignment, not from input).
    parts: HashMap<Tp, Pending, crate::fasthash::Build>,
}

#[derive(Debug, Default)]
struct Pending {
    /// Bin start -> lowest offset with an event in that bin.
    bins: BTreeMap<i64, i64>,
    next: Option<i64>,
    stored: Option<i64>,
    /// The first offset consumed since the partition was assigned (or the tracker reset).
    first: Option<i64>,
}

impl OffsetTracker {
    /// Records a consumed offset; `bin` is the window bin it fed, if it was windowed.
    pub fn consumed(&mut self, tp: &Tp, offset: i64, bin: Option<i64>) {
        let p = match self.parts.get_mut(tp) {
            Some(p) => p,
            None => self.parts.entry(tp.clone()).or_default(),
        };
        // Events mostly arrive in event-time order: the newest bin is the common case.
        if let Some(b) = bin
            && p.bins.last_key_value().is_none_or(|(&last, _)| last != b)
        {
            p.bins.entry(b).or_insert(offset);
        }
        p.first.get_or_insert(offset);
        p.next = Some(p.next.map_or(offset + 1, |n| n.max(offset + 1)));
    }

    /// The first offset consumed from a partition since its assignment (or the tracker's
    /// reset): where its reading started, when no checkpoint says so.
    pub fn first(&self, tp: &Tp) -> Option<i64> {
        self.parts.get(tp)?.first
    }

    /// Forgets bins before `open_from`: every window holding them has closed.
    pub fn settle(&mut self, open_from: i64) {
        for p in self.parts.values_mut() {
            while let Some((&b, _)) = p.bins.first_key_value() {
                if b < open_from {
                    p.bins.pop_first();
                } else {
                    break;
                }
            }
        }
    }

    /// The offset to commit for a partition (next message to read after a restart).
    pub fn storable(&self, tp: &Tp) -> Option<i64> {
        let p = self.parts.get(tp)?;
        let next = p.next?;
        Some(p.bins.first_key_value().map_or(next, |(_, &o)| o.min(next)))
    }

    /// Partitions whose storable offset moved since the last call, marked as stored.
    pub fn take_changed(&mut self, only: Option<&[Tp]>) -> Vec<(Tp, i64)> {
        let mut out = Vec::new();
        let keys: Vec<Tp> = match only {
            Some(l) => l.to_vec(),
            None => self.parts.keys().cloned().collect(),
        };
        for tp in keys {
            let Some(s) = self.storable(&tp) else {
                continue;
            };
            if let Some(p) = self.parts.get_mut(&tp)
                && p.stored != Some(s)
            {
                p.stored = Some(s);
                out.push((tp, s));
            }
        }
        out
    }

    /// Every partition's storable offset (restricted to `only`).
    pub fn all_storable(&self, only: Option<&[Tp]>) -> Vec<(Tp, i64)> {
        self.parts
            .keys()
            .filter(|tp| only.is_none_or(|l| l.contains(tp)))
            .filter_map(|tp| Some((tp.clone(), self.storable(tp)?)))
            .collect()
    }

    pub fn remove(&mut self, tp: &Tp) {
        self.parts.remove(tp);
    }
}

/// A partition's offsets as last reported by librdkafka's statistics.
#[derive(Debug, Clone, Copy)]
pub struct Offsets {
    pub high: i64,
    pub low: i64,
    pub committed: i64,
}

impl Offsets {
    /// Where consumption starts when nothing was consumed yet in this assignment.
    pub fn start(&self) -> Option<i64> {
        if self.committed >= 0 {
            Some(self.committed)
        } else if self.low >= 0 {
            Some(self.low)
        } else {
            None
        }
    }
}

/// Consumer lag of a partition: high watermark minus the position (next offset the
/// application reads), or minus where it will start when it has not read yet.
pub fn partition_lag(offsets: Option<Offsets>, position: Option<i64>) -> Option<i64> {
    let o = offsets?;
    lag(Some(o.high), position.or_else(|| o.start()))
}

/// What the rebalance callbacks tell the consumer loop.
#[derive(Debug)]
pub enum Change {
    Assigned(Vec<Tp>),
    /// Revoked partitions, with where this instance's state stopped counting each one it
    /// consumed (the next offset): the checkpoint after the revoke records these positions.
    Revoked {
        partitions: Vec<Tp>,
        counted_until: Vec<(Tp, i64)>,
    },
}

/// How the service makes its effects durable (see `docs/state.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// No local state: offsets are committed once the windows they fed have closed; a
    /// restart re-reads the open windows' input (baselines are relearned).
    Stateless,
    /// Checkpoints in a state directory; offsets are committed only as far as the newest
    /// checkpoint covers (at least once, duplicates carry the same ids).
    Checkpointed,
    /// Checkpoints plus Kafka transactions: outputs and offsets commit atomically.
    Transactional,
}

/// Shared between the consumer thread's loop and the callbacks it triggers.
pub struct ServiceContext {
    pub metrics: Metrics,
    pub offsets: Arc<Mutex<OffsetTracker>>,
    pub sink: Arc<KafkaSink>,
    pub changes: Mutex<Vec<Change>>,
    /// Set after a push to `changes`, so the loop need not lock it for every message.
    pub changed: std::sync::atomic::AtomicBool,
    /// Broker-side offsets from the statistics callback.
    pub highs: Mutex<HashMap<Tp, Offsets>>,
    pub drain_timeout: Duration,
    pub durability: Durability,
    /// Positions a restored checkpoint covers: a partition assigned for the first time
    /// starts there (or at its committed offset, if that is further on).
    pub resume: Mutex<HashMap<Tp, i64>>,
    /// Set by a revoke: the loop checkpoints (or, with transactions, rolls back to the
    /// last checkpoint) before it handles another record.
    pub after_revoke: std::sync::atomic::AtomicBool,
    /// Where assigned partitions' records go (the consumer loop's batch queue).
    pub routing: Arc<Routing>,
    /// Group mode (`kafka.mode = "group"`): what the rebalance callback needs to restore the
    /// detector's state when this member is assigned the classified partition.
    pub group: Option<GroupContext>,
}

/// See [`ServiceContext::group`].
pub struct GroupContext {
    pub classified: String,
    pub state_topic: String,
    pub kafka: KafkaConfig,
    /// `--reset-state`: ignore the state topic's checkpoints (they are overwritten).
    pub reset: bool,
    /// Set by the callback that assigned the classified partition; taken by the loop.
    pub restored: Mutex<Option<Restored>>,
}

/// What the state topic held when this member became the group's detector.
#[derive(Debug)]
pub enum Restored {
    /// A checkpoint, with its slot and sequence number; reading resumes at its position.
    Found(Box<crate::state::Checkpoint>, u8, u64),
    /// None (or `--reset-state`): fresh state, reading from the partition's start.
    Fresh,
    /// The state topic could not be read or its checkpoint not used.
    Failed(String),
}

fn tps(tpl: &TopicPartitionList) -> Vec<Tp> {
    tpl.elements()
        .iter()
        .map(|e| (Arc::from(e.topic()), e.partition()))
        .collect()
}

impl ClientContext for ServiceContext {
    fn stats(&self, stats: Statistics) {
        let Ok(mut highs) = self.highs.lock() else {
            return;
        };
        for (name, t) in stats.topics {
            for (&p, s) in &t.partitions {
                if p >= 0 && s.hi_offset >= 0 {
                    let o = Offsets {
                        high: s.hi_offset,
                        low: s.lo_offset,
                        committed: s.committed_offset,
                    };
                    highs.insert((Arc::from(name.as_str()), p), o);
                }
            }
        }
    }
}

impl ServiceContext {
    pub fn new(
        metrics: Metrics,
        sink: Arc<KafkaSink>,
        drain_timeout: Duration,
        durability: Durability,
    ) -> Self {
        ServiceContext {
            metrics,
            offsets: Arc::new(Mutex::new(OffsetTracker::default())),
            sink,
            changes: Mutex::new(Vec::new()),
            changed: std::sync::atomic::AtomicBool::new(false),
            highs: Mutex::new(HashMap::new()),
            drain_timeout,
            durability,
            resume: Mutex::new(HashMap::new()),
            after_revoke: std::sync::atomic::AtomicBool::new(false),
            routing: Arc::new(Routing::default()),
            group: None,
        }
    }

    /// Group mode: when the classified partition is assigned, restores the detector's state
    /// from the state topic (before fetching starts) and starts the partition at the position
    /// that state covers. The loop takes the state from `group.restored`.
    fn restore_group_state(&self, tpl: &mut TopicPartitionList) {
        let Some(g) = &self.group else {
            return;
        };
        if !tpl
            .elements()
            .iter()
            .any(|e| e.topic() == g.classified && e.partition() == 0)
        {
            return;
        }
        let restored = if g.reset {
            tracing::warn!(topic = %g.state_topic, "--reset-state: the group's detector starts fresh; its checkpoints will be overwritten");
            Restored::Fresh
        } else {
            match crate::service::group::read_state_topic(
                &g.kafka,
                &g.state_topic,
                self.drain_timeout.max(Duration::from_secs(30)),
            )
            .map_err(|e| format!("{e:#}"))
            .and_then(|s| {
                crate::service::group::newest(s, &g.state_topic).map_err(|e| e.to_string())
            }) {
                Ok(Some((cp, slot, seq))) => Restored::Found(Box::new(cp), slot, seq),
                Ok(None) => Restored::Fresh,
                Err(e) => Restored::Failed(e),
            }
        };
        let from = match &restored {
            Restored::Found(cp, _, seq) => {
                let key = crate::service::checkpoint::key(&g.classified, 0);
                let at = cp.positions.get(&key).copied();
                tracing::info!(topic = %g.state_topic, seq, position = ?at, "this member is the group's detector: state restored");
                at.map_or(Offset::Beginning, crate::service::group::resume_from)
            }
            Restored::Fresh => {
                tracing::info!(topic = %g.state_topic, "this member is the group's detector: no checkpoint, counting the classified topic from its start");
                Offset::Beginning
            }
            Restored::Failed(_) => Offset::Beginning,
        };
        if let Err(e) = tpl.set_partition_offset(&g.classified, 0, from) {
            tracing::warn!(error = %e, "cannot set the classified partition's start");
        }
        if let Ok(mut r) = g.restored.lock() {
            *r = Some(restored);
        }
    }

    /// Starts newly assigned partitions where the restored checkpoint left off: at the
    /// checkpoint's position, or at the committed offset if the group got further (another
    /// instance consumed the partition since).
    fn resume_positions(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let Ok(mut resume) = self.resume.lock() else {
            return;
        };
        if resume.is_empty() {
            return;
        }
        let wanted: Vec<(Tp, i64)> = tps(tpl)
            .into_iter()
            .filter_map(|tp| resume.remove(&tp).map(|o| (tp, o)))
            .collect();
        if wanted.is_empty() {
            return;
        }
        let mut ask = TopicPartitionList::new();
        for ((t, p), _) in &wanted {
            ask.add_partition(t, *p);
        }
        let committed: HashMap<Tp, i64> = match consumer.committed_offsets(ask, self.drain_timeout)
        {
            Ok(c) => c
                .elements()
                .iter()
                .filter_map(|e| match e.offset() {
                    Offset::Offset(o) => Some(((Arc::from(e.topic()), e.partition()), o)),
                    _ => None,
                })
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "committed offsets unknown; resuming at the checkpoint's positions");
                HashMap::new()
            }
        };
        for ((t, p), at) in wanted {
            let from = match committed.get(&(t.clone(), p)) {
                Some(&c) if c > at => {
                    tracing::info!(topic = %t, partition = p, checkpoint = at, committed = c, "the group got further than this checkpoint; resuming at the committed offset");
                    c
                }
                _ => at,
            };
            if let Err(e) = tpl.set_partition_offset(&t, p, Offset::Offset(from)) {
                tracing::warn!(topic = %t, partition = p, error = %e, "cannot set the resume offset");
            }
        }
    }
}

impl ConsumerContext for ServiceContext {
    /// The default sequence (pre, assign, post), with the assignment's start offsets taken
    /// from the restored checkpoint first.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: rdkafka::types::RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        use rdkafka::consumer::RebalanceProtocol;
        use rdkafka::types::RDKafkaRespErr;
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.resume_positions(consumer, tpl);
                self.restore_group_state(tpl);
                // Before the assignment starts fetching (see `batch`).
                self.routing.route(tpl);
                let r = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                if let Err(e) = r {
                    tracing::error!(error = %e, "assigning partitions failed");
                }
                self.post_rebalance(consumer, &Rebalance::Assign(tpl));
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.pre_rebalance(consumer, &Rebalance::Revoke(tpl));
                let r = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = r {
                    tracing::error!(error = %e, "unassigning partitions failed");
                }
            }
            other => {
                let code: rdkafka::error::RDKafkaErrorCode = other.into();
                tracing::error!(error = %code, "rebalance error");
                // As librdkafka requires after an error: drop the assignment.
                let _ = consumer.unassign();
            }
        }
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        let revoked = tps(tpl);
        self.metrics.rebalances.with_label_values(&["revoke"]).inc();
        tracing::info!(partitions = ?revoked, "partitions revoked; draining");
        match self.durability {
            // Everything consumed from the revoked partitions is in this instance's
            // state: commit up to it so the new owner does not count it again, and
            // checkpoint at once (the loop sees `after_revoke`).
            Durability::Stateless | Durability::Checkpointed => {
                if let Err(e) = drain(consumer, self, Some(&revoked), true) {
                    tracing::warn!(error = %e, "drain on revoke incomplete; those records will be re-read");
                }
            }
            // The open transaction may not commit under the old generation: abort it; the
            // loop rolls the state back to the last checkpoint, which the committed
            // offsets match.
            Durability::Transactional => {
                if let Err(e) = self.sink.abort() {
                    tracing::warn!(error = %e, "aborting the transaction on revoke");
                }
            }
        }
        self.after_revoke
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let mut counted_until = Vec::new();
        if let Ok(mut o) = self.offsets.lock() {
            counted_until = o.all_storable(Some(&revoked));
            for tp in &revoked {
                o.remove(tp);
            }
        }
        if let Ok(mut c) = self.changes.lock() {
            c.push(Change::Revoked {
                partitions: revoked,
                counted_until,
            });
        }
        self.changed
            .store(true, std::sync::atomic::Ordering::Release);
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let assigned = tps(tpl);
            self.metrics.rebalances.with_label_values(&["assign"]).inc();
            tracing::info!(partitions = ?assigned, "partitions assigned");
            if let Ok(mut c) = self.changes.lock() {
                c.push(Change::Assigned(assigned));
            }
            self.changed
                .store(true, std::sync::atomic::Ordering::Release);
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            tracing::warn!(error = %e, "offset commit failed; will retry with the next commit");
        }
    }
}

/// Flushes the producer, then stores the durable offsets of `only` (or of every partition),
/// and with `commit` commits them synchronously. Nothing is stored if the flush failed.
pub fn drain(
    consumer: &BaseConsumer<ServiceContext>,
    ctx: &ServiceContext,
    only: Option<&[Tp]>,
    commit: bool,
) -> anyhow::Result<()> {
    ctx.sink.flush(ctx.drain_timeout)?;
    if ctx.sink.in_flight() > 0 {
        anyhow::bail!("{} messages still undelivered", ctx.sink.in_flight());
    }
    let (changed, all) = match ctx.offsets.lock() {
        Ok(mut o) => (o.take_changed(only), o.all_storable(only)),
        Err(_) => anyhow::bail!("offset tracker poisoned"),
    };
    if !changed.is_empty() {
        let mut tpl = TopicPartitionList::with_capacity(changed.len());
        for ((t, p), o) in &changed {
            tpl.add_partition_offset(t, *p, Offset::Offset(*o))?;
        }
        if let Err(e) = consumer.store_offsets(&tpl) {
            tracing::debug!(error = %e, "storing offsets (partition no longer assigned?)");
        }
    }
    if commit && !all.is_empty() {
        let mut tpl = TopicPartitionList::with_capacity(all.len());
        for ((t, p), o) in &all {
            tpl.add_partition_offset(t, *p, Offset::Offset(*o))?;
        }
        consumer.commit(&tpl, rdkafka::consumer::CommitMode::Sync)?;
        tracing::info!(partitions = all.len(), "offsets committed");
    }
    Ok(())
}

/// How long a partition whose fetched records fill the queue waits before it is fetched
/// again (librdkafka's `fetch.queue.backoff.ms`, 1000 by default). Every partition's records
/// go to one queue (see `batch`), and librdkafka counts a forwarded partition's queue as the
/// whole queue: once it holds `queued.min.messages` (100,000) records, every partition waits
/// the backoff. The service takes 100,000 records in 0.15-0.4 s, so with a backlog (a restart,
/// a burst) it sat idle most of each second: 16 mock partitions, 300,000 events, ~220,000
/// events/s at a third of a core with 1000 ms; 720,000-756,000 with 50 ms (10 ms: the same,
/// 200 ms: 647,000; docs/kafka.md). `kafka.properties` may set it.
pub const FETCH_QUEUE_BACKOFF_MS: u32 = 50;

/// The consumer's librdkafka configuration: defaults, then `kafka.properties`, then what the
/// offset handling needs (which no property may change).
pub fn consumer_config(k: &KafkaConfig, durability: Durability) -> rdkafka::ClientConfig {
    let mut c = client_config(k, Role::Consumer);
    c.set("partition.assignment.strategy", "cooperative-sticky")
        .set("auto.commit.interval.ms", "1000")
        .set("auto.offset.reset", "earliest")
        .set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS.to_string());
    // Defaults above may be overridden by `kafka.properties`; the offset handling may not.
    apply_properties(&mut c, k, Role::Consumer);
    // With transactions, offsets are committed only inside them.
    let auto_commit = if durability == Durability::Transactional {
        "false"
    } else {
        "true"
    };
    c.set("group.id", &k.group_id)
        .set("enable.auto.offset.store", "false")
        .set("enable.auto.commit", auto_commit)
        .set(
            "statistics.interval.ms",
            k.statistics_interval.as_millis().to_string(),
        );
    c
}

/// Creates the consumer and subscribes it.
pub fn consumer(
    k: &KafkaConfig,
    ctx: ServiceContext,
) -> anyhow::Result<BaseConsumer<ServiceContext>> {
    let c = consumer_config(k, ctx.durability);
    let mut consumer: BaseConsumer<ServiceContext> = c.create_with_context(ctx)?;
    // A wait for records (see `batch`) ends when an event arrives for `poll`.
    let routing = consumer.context().routing.clone();
    consumer.set_nonempty_callback(move || routing.wake());
    let classified = k.classified_topic();
    let mut topics: Vec<&str> = k.topics.iter().map(String::as_str).collect();
    if k.mode == crate::source::kafka_config::GroupMode::Group {
        topics.push(&classified);
    }
    consumer.subscribe(&topics)?;
    tracing::info!(
        brokers = %k.brokers,
        group = %k.group_id,
        topics = ?topics,
        mode = k.mode.as_str(),
        properties = ?k.redacted_properties(),
        "subscribed"
    );
    Ok(consumer)
}

/// Consumer lag: high watermark minus position, when both are known.
pub fn lag(high: Option<i64>, position: Option<i64>) -> Option<i64> {
    match (high, position) {
        (Some(h), Some(p)) if h >= 0 && p >= 0 => Some((h - p).max(0)),
        _ => None,
    }
}

/// Positions of the assigned partitions (next offset to fetch), from librdkafka.
pub fn positions(consumer: &BaseConsumer<ServiceContext>) -> HashMap<Tp, i64> {
    let mut out = HashMap::new();
    if let Ok(tpl) = consumer.position() {
        for e in tpl.elements() {
            if let Offset::Offset(o) = e.offset() {
                out.insert((Arc::from(e.topic()), e.partition()), o);
            }
        }
    }
    out
}

/// Closes the consumer: leave the group (triggers a final revoke and drain).
pub fn close(consumer: &BaseConsumer<ServiceContext>, timeout: Duration) {
    consumer.unsubscribe();
    // Serve the revoke callback the unsubscribe triggers.
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        let _ = consumer.poll(Timeout::After(Duration::from_millis(50)));
        if consumer
            .assignment()
            .map(|a| a.count() == 0)
            .unwrap_or(true)
        {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storable_is_lowest_open_offset() {
        let mut t = OffsetTracker::default();
        let tp: Tp = (Arc::from("t"), 0);
        t.consumed(&tp, 10, Some(0));
        t.consumed(&tp, 11, Some(300));
        t.consumed(&tp, 12, None);
        t.consumed(&tp, 13, Some(0));
        assert_eq!(t.storable(&tp), Some(10));
        t.settle(300);
        assert_eq!(t.storable(&tp), Some(11));
        t.settle(600);
        assert_eq!(t.storable(&tp), Some(14));
        assert_eq!(t.take_changed(None), vec![(tp.clone(), 14)]);
        assert!(t.take_changed(None).is_empty());
    }

    #[test]
    fn fetch_backoff_defaults_short_and_properties_override_it() {
        let mut k = KafkaConfig::default();
        let c = consumer_config(&k, Durability::Checkpointed);
        assert_eq!(c.get("fetch.queue.backoff.ms"), Some("50"));
        assert_eq!(c.get("enable.auto.commit"), Some("true"));
        k.properties
            .insert("fetch.queue.backoff.ms".into(), "200".into());
        k.properties
            .insert("enable.auto.offset.store".into(), "true".into());
        let c = consumer_config(&k, Durability::Transactional);
        assert_eq!(c.get("fetch.queue.backoff.ms"), Some("200"));
        // The offset handling is not a property's to change.
        assert_eq!(c.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
    }

    #[test]
    fn lag_arithmetic() {
        assert_eq!(lag(Some(100), Some(40)), Some(60));
        assert_eq!(lag(Some(100), Some(120)), Some(0));
        assert_eq!(lag(None, Some(1)), None);
        assert_eq!(lag(Some(-1), Some(1)), None);
    }
}
