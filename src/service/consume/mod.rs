//! The consumer thread: poll, decode, window, detect, publish; store offsets once durable.
//!
//! This module holds the loop, rebalance changes, window closing and housekeeping;
//! `records` the per-record path, `durable` checkpoints and rollbacks, `group_member` the
//! group mode's forwarding and detecting.

mod durable;
mod group_member;
mod records;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::clock::{self, Clock};
use crate::config::Config;
use crate::event::DecodeLimits;
use crate::metrics::Metrics;
use crate::metrics::events::WindowScored;
use crate::pipeline::{Output, Pipeline, WindowReport};
use crate::sink::kafka::KafkaSink;
use crate::source::batch::{Batch, Record, RecordQueue};
use crate::source::kafka::{self, Change, Durability, GroupContext, ServiceContext, Tp};
use crate::source::kafka_config::{Delivery, GroupMode, KafkaConfig};
use crate::state::{self, Positions};
use crate::window::watermark::Watermarks;

use super::checkpoint;

/// How long a partition whose offsets are not known yet holds the watermark back.
const UNKNOWN_HOLD_MS: i64 = 60_000;

/// How far before a gap in the classified offsets the detector starts reading again, per
/// attempt (records: more than a producer batch holds).
const GAP_BACK: i64 = 10_000;

/// Records taken per batch: also how often windows advance under load (every 256 records).
const BATCH: usize = 256;

/// The longest wait for records (or events) in one round of the loop.
const WAIT: Duration = Duration::from_millis(100);

use group_member::GroupState;
use records::{Current, TopicInfo};

/// What a service run did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub messages: u64,
    pub refused: u64,
    pub crises: u64,
    pub windows: u64,
}

/// Owns the consumer and the pipeline; runs on its own thread.
pub struct Worker {
    kafka: KafkaConfig,
    consumer: Option<BaseConsumer<ServiceContext>>,
    p: Pipeline,
    wm: Watermarks<Tp>,
    limits: DecodeLimits,
    hop_ms: i64,
    size_ms: i64,
    topics: HashMap<String, TopicInfo>,
    current: Option<Current>,
    assigned: HashSet<Tp>,
    assigned_at: HashMap<Tp, i64>,
    metrics: Metrics,
    ready: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    windows_tx: Option<std::sync::mpsc::SyncSender<WindowReport>>,
    clock: Clock,
    outs: Vec<Output>,
    summary: Summary,
    refusals_logged: u64,
    durability: Durability,
    state_dir: Option<std::path::PathBuf>,
    checkpoint_every: Duration,
    /// Positions of the newest checkpoint (kept for partitions no longer assigned).
    positions: Positions,
    /// Checkpoints postponed in a row (broker unreachable).
    postponed: u64,
    /// `sink.failed()` as of the last checkpoint or rewind.
    failed_seen: u64,
    /// The state as of the newest checkpoint this process wrote or started from (the fresh
    /// state if none): what a rewind goes back to.
    last: Option<Box<state::Checkpoint>>,
    /// Group mode (`kafka.mode = "group"`).
    group: Option<GroupState>,
}

impl Worker {
    pub fn new(
        cfg: &Config,
        metrics: Metrics,
        ready: Arc<AtomicBool>,
        stop: Arc<AtomicBool>,
        windows_tx: Option<std::sync::mpsc::SyncSender<WindowReport>>,
        state_dir: Option<std::path::PathBuf>,
        reset_state: bool,
    ) -> anyhow::Result<Self> {
        let mut p = Pipeline::new(cfg)?;
        metrics.init_topics(p.topics());
        let group_mode = cfg.kafka.mode == GroupMode::Group;
        anyhow::ensure!(
            !group_mode || cfg.kafka.delivery == Delivery::AtLeastOnce,
            "kafka.mode = \"group\" runs at least once for now; use kafka.mode = \"standalone\" for exactly-once"
        );
        if group_mode && let Some(dir) = &state_dir {
            tracing::warn!(dir = %dir.display(), "kafka.mode = \"group\" keeps the detector's state in Kafka; the state directory is not used");
        }
        let state_dir = if group_mode { None } else { state_dir };
        let durability = match (&state_dir, cfg.kafka.delivery) {
            _ if group_mode => Durability::Checkpointed,
            (None, Delivery::AtLeastOnce) => Durability::Stateless,
            (Some(_), Delivery::AtLeastOnce) => Durability::Checkpointed,
            (Some(_), Delivery::ExactlyOnce) => Durability::Transactional,
            (None, Delivery::ExactlyOnce) => anyhow::bail!(
                "kafka.delivery = \"exactly-once\" needs a state directory ([state] dir or --state-dir)"
            ),
        };
        let sink = Arc::new(KafkaSink::new(&cfg.kafka, metrics.clone())?);
        let mut ctx = ServiceContext::new(
            metrics.clone(),
            sink,
            Duration::from_millis(cfg.kafka.drain_timeout.as_millis().max(0) as u64),
            durability,
        );
        let group = group_mode.then(|| GroupState {
            classified: Arc::from(cfg.kafka.classified_topic().as_str()),
            state_topic: cfg.kafka.state_topic(),
            fp: p.fingerprint().to_string(),
            owner: false,
            losing: false,
            forwarded: HashMap::new(),
            next: None,
            seq: 0,
            slot: 0,
            fresh: Box::new(p.checkpoint(Positions::new())),
            names: HashMap::new(),
            repeats: 0,
            foreign: 0,
            gap: None,
            seek_pending: false,
        });
        if group_mode {
            ctx.group = Some(GroupContext {
                classified: cfg.kafka.classified_topic(),
                state_topic: cfg.kafka.state_topic(),
                kafka: cfg.kafka.clone(),
                reset: reset_state,
                restored: std::sync::Mutex::new(None),
            });
        }
        let consumer = kafka::consumer(&cfg.kafka, ctx)?;
        let mut positions = Positions::new();
        if let Some(dir) = &state_dir {
            positions = match durability {
                Durability::Transactional => {
                    checkpoint::resume_committed(&mut p, dir, reset_state, &consumer)?
                }
                _ => state::resume(&mut p, dir, reset_state).map_err(|e| {
                    anyhow::anyhow!(
                        "cannot resume from the state directory {} ({e}); pass --reset-state to start fresh",
                        dir.display()
                    )
                })?,
            };
            let resume = checkpoint::to_tps(&positions);
            if let Ok(mut r) = consumer.context().resume.lock() {
                *r = resume;
            }
            if durability == Durability::Transactional {
                consumer.context().sink.begin()?;
            }
            tracing::info!(dir = %dir.display(), delivery = cfg.kafka.delivery.as_str(), partitions = positions.len(), "durable state enabled");
        }
        let size_ms = cfg.window.size.as_millis();
        let last =
            (state_dir.is_some() || group_mode).then(|| Box::new(p.checkpoint(positions.clone())));
        Ok(Worker {
            kafka: cfg.kafka.clone(),
            consumer: Some(consumer),
            limits: *p.limits(),
            p,
            wm: Watermarks::new(
                cfg.window.allowed_lateness.as_millis(),
                cfg.window.idle_timeout.as_millis(),
                true,
            ),
            hop_ms: cfg.window.hop.map_or(size_ms, |h| h.as_millis()),
            size_ms,
            topics: HashMap::new(),
            current: None,
            assigned: HashSet::new(),
            assigned_at: HashMap::new(),
            metrics,
            ready,
            stop,
            windows_tx,
            clock: Clock::System,
            outs: Vec::new(),
            summary: Summary::default(),
            refusals_logged: 0,
            durability,
            state_dir,
            checkpoint_every: Duration::from_millis(
                cfg.state.checkpoint_interval.as_millis().max(1) as u64,
            ),
            positions,
            postponed: 0,
            failed_seen: 0,
            last,
            group,
        })
    }

    /// Consumes until the stop flag is set, then drains, commits and leaves the group.
    pub fn run(mut self) -> anyhow::Result<Summary> {
        let consumer = self
            .consumer
            .take()
            .ok_or_else(|| anyhow::anyhow!("worker already ran"))?;
        let consumer = &consumer;
        // Interval timers read the coarse monotonic clock: once per message, a precise read
        // (and librdkafka's own four per poll) showed up at ~10 % of the service's CPU.
        let commit_every = self.kafka.commit_interval.as_millis().max(1);
        let checkpoint_every = self.checkpoint_every.as_millis() as i64;
        let mut last_commit = clock::monotonic_coarse_ms();
        let mut last_checkpoint = last_commit;
        let mut last_advance = last_commit;
        let mut since_advance = 0u32;
        // Start of the batch being processed: first message since the last advance.
        let mut batch_started: Option<Instant> = None;
        let (mut errors, mut last_error_log) = (0u64, None);
        // Records come in batches from a queue of ours (see `source::batch`); the consumer
        // queue keeps the events. Declared after the consumer, so the routing is cleared and
        // the queue destroyed before the client is.
        let records = RecordQueue::new(consumer).map(Arc::new);
        let _routing = records
            .as_ref()
            .map(|q| consumer.context().routing.install(q.clone()));
        let mut batch = Batch::with_capacity(BATCH);
        while !self.stop.load(Ordering::Relaxed) {
            // Events first: rebalance callbacks run here. Records reach this queue only from
            // partitions assigned without the batch queue.
            let wait = if records.is_some() {
                Duration::ZERO
            } else {
                WAIT
            };
            let mut polled = consumer.poll(wait);
            self.apply_changes(consumer.context())?;
            let revoked = &consumer.context().after_revoke;
            if revoked.load(Ordering::Relaxed)
                && revoked.swap(false, Ordering::SeqCst)
                && self.durability != Durability::Stateless
            {
                // Before the next record: what the revoked partitions fed must be in a
                // checkpoint (or, with transactions, undone).
                self.after_revoke(consumer)?;
                last_checkpoint = clock::monotonic_coarse_ms();
                if self.durability == Durability::Transactional {
                    // Rolled back and sought to the checkpoint: this record comes again.
                    polled = None;
                }
            }
            let mut got = 0u32;
            match polled {
                None => {}
                Some(Err(e)) => self.consumer_error(&e, &mut errors, &mut last_error_log),
                Some(Ok(m)) => {
                    batch_started.get_or_insert_with(Instant::now);
                    let ctx = consumer.context();
                    let mut offsets = ctx.offsets.lock().ok();
                    let now = self.clock.now_ms_coarse();
                    self.handle(ctx, Record::of(&m), now, offsets.as_deref_mut())?;
                    self.flush_current(offsets.as_deref_mut());
                    got += 1;
                }
            }
            if let Some(q) = &records {
                // Wait only when nothing else is to be done; an event for `poll` ends the
                // wait. The whole batch is counted in the offset tracker before the next
                // `poll`, where a revoke commits what it holds.
                q.take(&mut batch, if got == 0 { WAIT } else { Duration::ZERO });
                let ctx = consumer.context();
                // Locked once per batch; only `poll`'s callbacks and housekeeping, on this
                // thread, take it otherwise.
                let mut offsets = if batch.is_empty() {
                    None
                } else {
                    ctx.offsets.lock().ok()
                };
                // One clock read per batch: see `handle`.
                let now = self.clock.now_ms_coarse();
                for i in 0..batch.len() {
                    let Some(r) = batch.get(i) else { break };
                    if let Some(code) = r.error() {
                        let e = rdkafka::error::KafkaError::MessageConsumption(code);
                        self.consumer_error(&e, &mut errors, &mut last_error_log);
                        continue;
                    }
                    batch_started.get_or_insert_with(Instant::now);
                    self.handle(ctx, r, now, offsets.as_deref_mut())?;
                    got += 1;
                }
                self.flush_current(offsets.as_deref_mut());
                drop(offsets);
                batch.clear();
            }
            if let Some(g) = self.group.as_mut()
                && g.seek_pending
            {
                g.seek_pending = false;
                if let Some((at, tries)) = g.gap {
                    // From well before the gap: a fetch that starts inside a stored batch is
                    // answered from the next batch (tansu), so start batches earlier; what is
                    // read again before the gap is skipped by offset.
                    let from = (at - GAP_BACK * i64::from(tries)).max(0);
                    let ctx = consumer.context();
                    if let Err(e) = consumer.seek(
                        &g.classified,
                        0,
                        rdkafka::Offset::Offset(from),
                        ctx.drain_timeout,
                    ) {
                        tracing::warn!(error = %e, "seeking back to the classified records skipped");
                    }
                }
            }
            since_advance += got;
            let got = got > 0;
            let now = clock::monotonic_coarse_ms();
            if !got || since_advance >= 256 || now - last_advance >= 100 {
                self.advance(consumer.context())?;
                if let Some(t) = batch_started.take() {
                    self.metrics
                        .batch_latency
                        .observe(t.elapsed().as_secs_f64());
                }
                since_advance = 0;
                last_advance = now;
            }
            if now - last_commit >= commit_every {
                self.housekeeping(consumer);
                last_commit = clock::monotonic_coarse_ms();
            }
            if self.durability != Durability::Stateless && now - last_checkpoint >= checkpoint_every
            {
                self.checkpoint(consumer, false)?;
                last_checkpoint = clock::monotonic_coarse_ms();
            }
        }
        self.shutdown(consumer)
    }

    /// A consumer error: librdkafka retries by itself; say so at most every 10 s.
    fn consumer_error(
        &self,
        e: &rdkafka::error::KafkaError,
        errors: &mut u64,
        last_log: &mut Option<Instant>,
    ) {
        *errors += 1;
        if last_log.is_none_or(|t: Instant| t.elapsed() >= Duration::from_secs(10)) {
            tracing::warn!(error = %e, errors = *errors, "consumer error; librdkafka retries");
            *last_log = Some(Instant::now());
        }
    }

    fn shutdown(mut self, consumer: &BaseConsumer<ServiceContext>) -> anyhow::Result<Summary> {
        tracing::info!("stop requested: storing durable offsets and leaving the group");
        let ctx = consumer.context();
        if self.durability == Durability::Stateless {
            self.advance(ctx)?;
            kafka::drain(consumer, ctx, None, true)?;
        } else {
            self.checkpoint(consumer, true)?;
        }
        kafka::close(consumer, ctx.drain_timeout);
        self.metrics.sync_stats(self.p.topics(), self.p.stats());
        self.ready.store(false, Ordering::Relaxed);
        tracing::info!(
            messages = self.summary.messages,
            crises = self.summary.crises,
            "consumer stopped"
        );
        Ok(self.summary.clone())
    }

    fn apply_changes(&mut self, ctx: &ServiceContext) -> anyhow::Result<()> {
        if !ctx.changed.load(Ordering::Acquire) || !ctx.changed.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let changes = match ctx.changes.lock() {
            Ok(mut c) if !c.is_empty() => std::mem::take(&mut *c),
            _ => return Ok(()),
        };
        let now = self.clock.now_ms();
        for ch in changes {
            match ch {
                Change::Assigned(tps) if self.group.is_some() => {
                    for tp in tps {
                        self.assigned_at.insert(tp.clone(), now);
                        self.assigned.insert(tp.clone());
                        let Some(g) = self.group.as_ref() else {
                            continue;
                        };
                        if tp == g.classified_tp() {
                            self.become_detector(ctx)?;
                        } else {
                            // The detector holds time back for this partition until its
                            // classified events arrive.
                            g.send(ctx, (&tp.0, tp.1), None, None)?;
                        }
                    }
                }
                Change::Assigned(tps) => {
                    for tp in tps {
                        // Holds the watermark until the partition delivers (or is idle at its end).
                        self.wm.observe(&tp, 0, now);
                        self.assigned_at.insert(tp.clone(), now);
                        self.assigned.insert(tp);
                    }
                }
                Change::Revoked {
                    partitions,
                    counted_until,
                } => {
                    // The state holds what was counted from the revoked partitions: the
                    // next checkpoint says so (with transactions, the rollback that follows
                    // replaces these positions with the last checkpoint's).
                    for ((t, p), next) in counted_until {
                        self.positions.insert(checkpoint::key(&t, p), next);
                    }
                    self.current = None;
                    for tp in partitions {
                        match self.group.as_mut() {
                            // The watermark is the detector's, over source partitions: a
                            // partition this member no longer forwards still counts there.
                            Some(g) => {
                                if tp == g.classified_tp() && g.owner {
                                    g.losing = true;
                                }
                            }
                            None => self.wm.remove(&tp),
                        }
                        self.assigned.remove(&tp);
                        self.assigned_at.remove(&tp);
                        let part = tp.1.to_string();
                        let _ = self
                            .metrics
                            .consumer_lag
                            .remove_label_values(&[&*tp.0, &part]);
                    }
                }
            }
        }
        self.metrics
            .assigned_partitions
            .set(self.assigned.len() as i64);
        self.ready
            .store(!self.assigned.is_empty(), Ordering::Relaxed);
        Ok(())
    }

    /// Moves the watermark and publishes what the closed windows produced.
    fn advance(&mut self, ctx: &ServiceContext) -> anyhow::Result<()> {
        let now = self.clock.now_ms();
        let Some(w) = self.wm.current(now) else {
            return Ok(());
        };
        self.p.advance(w, &mut self.outs);
        if self.outs.is_empty() {
            return Ok(());
        }
        let closed_at = Instant::now();
        let sink = ctx.sink.clone();
        for o in self.outs.drain(..) {
            match o {
                Output::Window(r) => {
                    let name = self.p.topics().get(usize::from(r.topic));
                    if r.channel.is_none() {
                        self.summary.windows += 1;
                        if let Some(name) = name {
                            WindowScored {
                                topic: name,
                                report: &r,
                            }
                            .emit(&self.metrics);
                        }
                    }
                    if let Some(name) = name
                        && sink.publishes_windows()
                    {
                        sink.window(name, &r)?;
                    }
                    if let Some(tx) = &self.windows_tx {
                        let _ = tx.send(r);
                    }
                }
                Output::Crisis(c) => {
                    self.summary.crises += 1;
                    self.metrics.crisis(&c.topic, c.state);
                    tracing::info!(crisis_id = %c.crisis_id, topic = %c.topic, state = c.state.as_str(), severity = c.severity.as_str(), "crisis event");
                    sink.crisis(&c, closed_at)?;
                }
            }
        }
        if let Some(until) = self.p.aggregator().closed_until() {
            let open_from = until - self.size_ms + self.hop_ms;
            if let Ok(mut o) = ctx.offsets.lock() {
                o.settle(open_from);
            }
        }
        Ok(())
    }
    /// Periodic: store durable offsets, keep behind-partitions active, publish gauges.
    fn housekeeping(&mut self, consumer: &BaseConsumer<ServiceContext>) {
        let ctx = consumer.context();
        // With durable state, offsets move only with checkpoints.
        if self.durability == Durability::Stateless
            && let Err(e) = kafka::drain(consumer, ctx, None, false)
        {
            tracing::warn!(error = %e, "offsets not stored this round");
        }
        let now = self.clock.now_ms();
        let positions = kafka::positions(consumer);
        let highs = ctx.highs.lock().map(|h| h.clone()).unwrap_or_default();
        let mut holds = Vec::new();
        for tp in &self.assigned {
            // Before the first record of a partition, its position is where it was started:
            // the checkpoint's (which may be ahead of the committed offset after a crash).
            let pos = positions
                .get(tp)
                .copied()
                .or_else(|| self.positions.get(&checkpoint::key(&tp.0, tp.1)).copied());
            match kafka::partition_lag(highs.get(tp).copied(), pos) {
                Some(l) => {
                    let part = tp.1.to_string();
                    self.metrics
                        .consumer_lag
                        .with_label_values(&[&*tp.0, &part])
                        .set(l);
                    // Behind its end: silence is the broker's, not the source's.
                    if l > 0 {
                        holds.push(tp.clone());
                    }
                }
                // Offsets not known yet: hold time back for a while after the assignment.
                None => {
                    let since = self.assigned_at.get(tp).copied().unwrap_or(now);
                    if now - since < UNKNOWN_HOLD_MS {
                        holds.push(tp.clone());
                    }
                }
            }
        }
        match &self.group {
            None => {
                for tp in &holds {
                    self.wm.touch(tp, now);
                }
            }
            Some(g) => {
                for tp in &holds {
                    if *tp == g.classified_tp() {
                        // The detector is behind on the classified topic: every source
                        // partition may have events on their way.
                        if g.owner {
                            self.wm.touch_all(now);
                        }
                    } else {
                        if let Err(e) = g.send(ctx, (&tp.0, tp.1), None, None) {
                            tracing::warn!(error = %e, "hold marker not sent");
                        }
                    }
                }
            }
        }
        self.metrics
            .producer_queue
            .set(i64::from(ctx.sink.in_flight()));
        if let Some(w) = self.wm.current(now) {
            self.metrics.watermark_delay.set((now - w) as f64 / 1000.0);
        }
        self.metrics.sync_stats(self.p.topics(), self.p.stats());
    }
}
