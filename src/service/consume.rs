//! The consumer thread: poll, decode, window, detect, publish; store offsets once durable.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use prometheus::IntCounter;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::clock::{self, Clock};
use crate::config::Config;
use crate::event::{self, Channel, DecodeContext, DecodeError, DecodeLimits, EventTime, TopicId};
use crate::metrics::Metrics;
use crate::pipeline::{Ingested, Output, Pipeline, WindowReport};
use crate::sink::kafka::{KafkaSink, Origin};
use crate::source::batch::{Batch, Record, RecordQueue};
use crate::source::kafka::{
    self, Change, Durability, GroupContext, OffsetTracker, Restored, ServiceContext, Tp,
};
use crate::source::kafka_config::{Delivery, GroupMode, KafkaConfig};
use crate::state::{self, Positions};
use crate::window::watermark::Watermarks;

use super::checkpoint;
use super::group::{Classified, Forwarded};

/// How long a partition whose offsets are not known yet holds the watermark back.
const UNKNOWN_HOLD_MS: i64 = 60_000;

/// Times the detector seeks back to the same gap in the classified offsets before it counts
/// the records as missing.
const GAP_SEEKS: u32 = 5;

/// How far before a gap in the classified offsets the detector starts reading again, per
/// attempt (records: more than a producer batch holds).
const GAP_BACK: i64 = 10_000;

/// Records taken per batch: also how often windows advance under load (every 256 records).
const BATCH: usize = 256;

/// The longest wait for records (or events) in one round of the loop.
const WAIT: Duration = Duration::from_millis(100);

/// What a service run did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub messages: u64,
    pub refused: u64,
    pub crises: u64,
    pub windows: u64,
}

struct TopicInfo {
    name: Arc<str>,
    channel: Option<Channel>,
    messages: IntCounter,
}

/// The partition of the previous message with what `handle` needs of it: consecutive
/// messages mostly come from the same fetched batch, so most messages skip the topic lookup
/// and the `Arc` clone.
struct Current {
    tp: Tp,
    channel: Option<Channel>,
    messages: IntCounter,
    run: Run,
}

/// What the records of the current partition handled since the last `flush` did to the
/// offset tracker, the watermarks and the message counter, applied once per run of
/// records rather than once per record (hashing the partition key was ~5 % of the CPU).
/// Flushed when the partition changes and at the end of every batch, so nothing reads
/// those before they hold the whole batch.
#[derive(Default)]
struct Run {
    records: u64,
    first_offset: Option<i64>,
    max_offset: i64,
    /// Newest event time of the records that decoded, with the processing time then.
    max_event: Option<(i64, i64)>,
    /// (bin, offset) where the run's window bin changed: each bin's first offset is there.
    bins: Vec<(i64, i64)>,
}

impl Run {
    fn add(&mut self, offset: i64, bin: Option<i64>) {
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

/// The group mode's side of a member (see `service::group`): every member forwards; the
/// member assigned the classified partition is the group's detector.
struct GroupState {
    classified: Arc<str>,
    state_topic: String,
    /// This pipeline's fingerprint: forwarded records carry it.
    fp: String,
    /// Assigned the classified partition: counts and detects.
    owner: bool,
    /// The classified partition was revoked: the next checkpoint is this member's last as the
    /// detector, and then it goes back to the fresh state.
    losing: bool,
    /// Per source partition, the next offset not yet counted (repeats before it are skipped).
    forwarded: HashMap<Tp, i64>,
    /// Next offset of the classified partition to count.
    next: Option<i64>,
    /// Sequence number and slot of the newest checkpoint in the state topic.
    seq: u64,
    slot: u8,
    /// The state before anything was counted: what a member that stops being the detector
    /// goes back to.
    fresh: Box<state::Checkpoint>,
    /// Source topic names seen in classified records, shared with their partitions' keys.
    names: HashMap<String, Arc<str>>,
    /// Classified records skipped: repeats, and records of another taxonomy.
    repeats: u64,
    foreign: u64,
    /// A gap in the classified offsets being read again: the first offset missing and how
    /// many times it was sought.
    gap: Option<(i64, u32)>,
    /// The loop seeks the classified partition back to the gap after the current batch.
    seek_pending: bool,
}

impl GroupState {
    fn classified_tp(&self) -> Tp {
        (self.classified.clone(), 0)
    }

    fn source(&mut self, topic: String, partition: i32) -> Tp {
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
    fn send(
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
    fn restore_forwarded(&mut self, forwarded: &Positions, wm: &mut Watermarks<Tp>, now: i64) {
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

    /// Where the next record of each partition this state has seen starts: the newest
    /// checkpoint's positions, moved on by what was consumed since.
    fn current_positions(&self, ctx: &ServiceContext) -> Positions {
        let mut pos = self.positions.clone();
        if let Ok(o) = ctx.offsets.lock() {
            for ((t, p), next) in o.all_storable(None) {
                pos.insert(checkpoint::key(&t, p), next);
            }
        }
        pos
    }

    /// Makes everything so far durable: closes what the watermark allows, publishes it,
    /// writes a checkpoint, then commits exactly the offsets the checkpoint covers (inside
    /// the transaction, in the exactly-once mode). A crash at any point leaves a
    /// checkpoint and committed offsets that agree (see `docs/state.md`).
    fn checkpoint(
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
        let mut mine = Positions::new();
        if let Ok(o) = ctx.offsets.lock() {
            for ((t, p), next) in o.all_storable(None) {
                if self.assigned.contains(&(t.clone(), p)) {
                    mine.insert(checkpoint::key(&t, p), next);
                }
            }
        }
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

    /// The group mode's checkpoint (the outputs and forwarded records are delivered): the
    /// detector writes its state to the state topic and waits for it; then the offsets are
    /// committed, the classified partition's only once the state covering them is stored.
    fn checkpoint_group(
        &mut self,
        consumer: &BaseConsumer<ServiceContext>,
        started: Instant,
    ) -> anyhow::Result<()> {
        let ctx = consumer.context();
        let Some(g) = self.group.as_mut() else {
            return Ok(());
        };
        let mut mine = Positions::new();
        if let Ok(o) = ctx.offsets.lock() {
            for ((t, p), next) in o.all_storable(None) {
                if self.assigned.contains(&(t.clone(), p)) {
                    mine.insert(checkpoint::key(&t, p), next);
                }
            }
        }
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
            for (k, v) in super::group::frames(&bytes, slot, seq) {
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
    fn become_detector(&mut self, ctx: &ServiceContext) -> anyhow::Result<()> {
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
    fn lose_detector(&mut self) {
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
    fn count_forwarded(&mut self, m: Record<'_>, now: i64) {
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

    /// After a revoke: at least once, checkpoint now (the revoked partitions' offsets were
    /// committed as far as this state counted them); exactly once, the transaction was
    /// aborted, so go back to the last checkpoint and re-read from its positions.
    fn after_revoke(&mut self, consumer: &BaseConsumer<ServiceContext>) -> anyhow::Result<()> {
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
    fn rewind(&mut self, consumer: &BaseConsumer<ServiceContext>) -> anyhow::Result<()> {
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
                    seeks.push((tp.clone(), super::group::resume_from(at)));
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

    fn topic(&mut self, name: &str) -> &TopicInfo {
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
    fn current(&mut self, m: Record<'_>, offsets: Option<&mut OffsetTracker>) -> Current {
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
    fn flush_current(&mut self, offsets: Option<&mut OffsetTracker>) {
        if let Some(mut c) = self.current.take() {
            self.flush(&mut c, offsets);
            self.current = Some(c);
        }
    }

    fn flush(&mut self, c: &mut Current, offsets: Option<&mut OffsetTracker>) {
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
    fn handle(
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

    /// Group mode: classifies a valid event and forwards it to the group's detector.
    fn forward(
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

    fn refuse(&mut self, ctx: &ServiceContext, m: Record<'_>, payload: &[u8], e: &DecodeError) {
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
                            self.metrics.window(name, &r);
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
