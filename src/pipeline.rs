//! The synchronous core every driver shares (demo, replay, Kafka, benches): decode ->
//! classify -> window -> baseline/detect -> crisis events. No I/O, no async, no clock reads:
//! watermarks and processing time come in as arguments.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::classify::{Classification, Classifier, ClassifyError, ClassifyInput, Scratch};
use crate::config::Config;
use crate::detect::{Assessment, DETECTOR_VERSION, Detector, SeriesState, Transition};
use crate::event::{
    self, Channel, ChannelCounts, ContactEvent, CrisisEvent, CrisisState, DecodeContext,
    DecodeError, DecodeLimits, SCHEMA_VERSION, TermCount,
};
use crate::state::{Checkpoint, PipelineState, Positions, StateError};
use crate::window::{Admit, Aggregator, ClosedWindow, CountMode, CustomerKey, WindowSpec};

/// One closed window of one series, scored: a row of `--windows` output and the pulse gauges.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowReport {
    pub topic: u16,
    /// `None` for the all-channels series of the topic.
    pub channel: Option<Channel>,
    pub start_ms: i64,
    pub end_ms: i64,
    /// Complaints as counted for detection (customers or events, `[window] count`).
    pub observed: u64,
    /// Complaint events, repeat contacts included.
    pub observed_events: u64,
    pub contacts: u64,
    pub expected: f64,
    pub upper: f64,
    pub p_value: f64,
    pub score: f64,
    pub state: SeriesState,
    /// When the series' last 24 hours set a record (detector 1.9, `detect/day.rs`): how far
    /// their mean lies above the busiest earlier day (0.05: 5 %) or below the quietest
    /// (-0.05); else 0.
    pub day_record: f64,
}

impl WindowReport {
    /// Which record the series' last 24 hours set, if any: `busiest` or `quietest` (the
    /// `direction` label of `crisis_pulse_day_records_total`).
    pub fn record_day(&self) -> Option<&'static str> {
        if self.day_record > 0.0 {
            Some("busiest")
        } else if self.day_record < 0.0 {
            Some("quietest")
        } else {
            None
        }
    }
}

/// What the pipeline produces as windows close.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Window(WindowReport),
    Crisis(Box<CrisisEvent>),
}

/// Counters the drivers publish as metrics (plain integers: the hot path stays cheap).
/// Checkpointed, so counters continue across a restart instead of starting over.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub events_by_channel: [u64; Channel::COUNT],
    pub complaints_by_topic: Vec<u64>,
    pub late_events: u64,
    pub windows_closed: u64,
    pub crises_opened: u64,
    pub crises_escalated: u64,
    pub crises_resolved: u64,
}

/// What happened to one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    Counted { topic: u16, complaint: bool },
    Late { topic: u16 },
}

pub struct Pipeline {
    classifier: Classifier,
    aggregator: Aggregator,
    count: CountMode,
    customer_key: CustomerKey,
    topic_detector: Detector,
    channel_detector: Detector,
    limits: DecodeLimits,
    scratch: Scratch,
    cls: Classification,
    closed: Vec<ClosedWindow>,
    assessed: Vec<Assessment>,
    series_buf: Vec<f64>,
    stats: Stats,
    /// Largest event time accepted so far (drives replay's watermark).
    max_event_ms: Option<i64>,
    /// Largest watermark applied so far.
    watermark_ms: Option<i64>,
    /// Taxonomy + window geometry hash: a checkpoint is only valid for the same one.
    fingerprint: String,
    /// Score channel-level series too (per topic x channel windows); costs detector time.
    pub per_channel: bool,
}

impl Pipeline {
    pub fn new(cfg: &Config) -> Result<Self, ClassifyError> {
        let classifier = Classifier::new(&cfg.topics, &cfg.complaint)?;
        let n_topics = classifier.topics().len();
        let size = cfg.window.size.as_millis();
        let hop = cfg.window.hop.map_or(size, |h| h.as_millis());
        let spec = WindowSpec {
            size_ms: size,
            hop_ms: hop,
            ..WindowSpec::tumbling(size)
        };
        let fingerprint =
            crate::state::fingerprint(classifier.topics(), &spec, cfg.window.samples_per_window);
        Ok(Pipeline {
            max_event_ms: None,
            watermark_ms: None,
            fingerprint,
            aggregator: Aggregator::new(spec, n_topics, cfg.window.samples_per_window)
                .with_count_mode(cfg.window.count),
            count: cfg.window.count,
            customer_key: CustomerKey::default(),
            topic_detector: Detector::new(&cfg.detect, hop),
            channel_detector: Detector::new(&cfg.detect, hop),
            limits: cfg.input.limits(),
            scratch: Scratch::default(),
            cls: Classification::default(),
            closed: Vec::new(),
            assessed: Vec::new(),
            series_buf: Vec::new(),
            stats: Stats {
                complaints_by_topic: vec![0; n_topics],
                ..Stats::default()
            },
            classifier,
            per_channel: true,
        })
    }

    pub fn topics(&self) -> &[String] {
        self.classifier.topics()
    }

    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn limits(&self) -> &DecodeLimits {
        &self.limits
    }

    pub fn aggregator(&self) -> &Aggregator {
        &self.aggregator
    }

    /// Largest event time ingested so far (`None` before the first event).
    pub fn max_event_ms(&self) -> Option<i64> {
        self.max_event_ms
    }

    /// Largest watermark applied so far.
    pub fn watermark_ms(&self) -> Option<i64> {
        self.watermark_ms
    }

    /// Hash of the taxonomy (topic names, in order) and the window geometry. A checkpoint
    /// restores only into a pipeline with the same fingerprint.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Everything the pipeline has learned and holds, tagged with the source positions it
    /// covers: the caller passes the positions of the next record it has *not* ingested, so
    /// that state and offsets agree by construction.
    pub fn checkpoint(&self, positions: Positions) -> Checkpoint {
        Checkpoint {
            fingerprint: self.fingerprint.clone(),
            detector_version: DETECTOR_VERSION.to_string(),
            positions,
            forwarded: Positions::new(),
            state: PipelineState {
                aggregator: self.aggregator.clone(),
                topic_detector: self.topic_detector.clone(),
                channel_detector: self.channel_detector.clone(),
                stats: self.stats.clone(),
                max_event_ms: self.max_event_ms,
                watermark_ms: self.watermark_ms,
            },
        }
    }

    /// Replaces the learned state with a checkpoint's and returns the positions to resume
    /// from. Refuses (and changes nothing) if the checkpoint belongs to another taxonomy,
    /// window geometry or detector.
    pub fn restore(&mut self, cp: Checkpoint) -> Result<Positions, StateError> {
        if cp.fingerprint != self.fingerprint {
            return Err(StateError::TaxonomyChanged {
                found: cp.fingerprint,
                expected: self.fingerprint.clone(),
            });
        }
        if cp.detector_version != DETECTOR_VERSION {
            if !crate::detect::RESTORES_FROM.contains(&cp.detector_version.as_str()) {
                return Err(StateError::DetectorChanged {
                    found: cp.detector_version,
                    expected: DETECTOR_VERSION.to_string(),
                });
            }
            tracing::info!(
                from = %cp.detector_version,
                to = DETECTOR_VERSION,
                "checkpoint of an older detector: baselines and open crises carried over"
            );
        }
        let n = self.topics().len();
        let s = &cp.state;
        if s.stats.complaints_by_topic.len() != n
            || s.aggregator.late_per_topic().len() != n
            || s.aggregator.spec() != self.aggregator.spec()
        {
            return Err(StateError::Inconsistent(format!(
                "checkpoint holds {} topics / {:?}, this pipeline {} topics / {:?}",
                s.stats.complaints_by_topic.len(),
                s.aggregator.spec(),
                n,
                self.aggregator.spec()
            )));
        }
        let st = cp.state;
        self.aggregator = st.aggregator;
        // The configuration decides what is counted from now on (see `set_count_mode`).
        self.aggregator.set_count_mode(self.count);
        self.topic_detector = st.topic_detector;
        self.channel_detector = st.channel_detector;
        self.stats = st.stats;
        self.max_event_ms = st.max_event_ms;
        self.watermark_ms = st.watermark_ms;
        Ok(cp.positions)
    }

    /// Decodes, validates and ingests one JSON payload.
    pub fn ingest_json(
        &mut self,
        bytes: &[u8],
        ctx: &DecodeContext,
    ) -> Result<Ingested, DecodeError> {
        let ev = event::decode(bytes, &self.limits, ctx)?;
        Ok(self.ingest(&ev))
    }

    /// Classifies and windows one valid event.
    pub fn ingest(&mut self, ev: &ContactEvent<'_>) -> Ingested {
        let customer = self.classify(ev);
        let cls = std::mem::take(&mut self.cls);
        let r = self.count(
            ev.event_time,
            ev.channel,
            cls.topic,
            cls.complaint,
            &cls.terms,
            &ev.id,
            customer,
        );
        self.cls = cls;
        r
    }

    /// Classifies one valid event without counting it (the group mode's forwarders, see
    /// `service::group`): the classification is then [`Pipeline::classification`]; returns the
    /// keyed hash of the customer of a complaint, when counting customers.
    pub fn classify(&mut self, ev: &ContactEvent<'_>) -> Option<u64> {
        let input = ClassifyInput {
            text: ev.text.as_deref(),
            language: ev.language.as_deref(),
            topic: ev.topic.as_deref(),
            complaint: ev.complaint,
            sentiment: ev.sentiment,
        };
        self.classifier
            .classify(&input, &mut self.scratch, &mut self.cls);
        match self.count {
            CountMode::Customers if self.cls.complaint => {
                self.customer_key.of(ev.customer_id.as_deref())
            }
            _ => None,
        }
    }

    /// The classification of the last event given to [`Pipeline::classify`].
    pub fn classification(&self) -> &Classification {
        &self.cls
    }

    /// Windows one event classified elsewhere (the group mode's detector): the same counting
    /// as [`Pipeline::ingest`] after its classification. `topic` must come from a classifier
    /// with this pipeline's fingerprint.
    #[allow(clippy::too_many_arguments)]
    pub fn count(
        &mut self,
        time: event::EventTime,
        channel: Channel,
        topic: crate::event::TopicId,
        complaint: bool,
        terms: &[u32],
        id: &str,
        customer: Option<u64>,
    ) -> Ingested {
        self.stats.events_by_channel[channel.index()] += 1;
        let t = time.0;
        self.max_event_ms = Some(self.max_event_ms.map_or(t, |m| m.max(t)));
        let customer = match self.count {
            CountMode::Customers if complaint => customer,
            _ => None,
        };
        match self
            .aggregator
            .add(time, topic, channel, complaint, terms, id, customer)
        {
            Admit::Counted => {
                if complaint {
                    let n = self.stats.complaints_by_topic.len();
                    self.stats.complaints_by_topic[topic.index().min(n - 1)] += 1;
                }
                Ingested::Counted {
                    topic: topic.0,
                    complaint,
                }
            }
            Admit::Late => {
                self.stats.late_events += 1;
                Ingested::Late { topic: topic.0 }
            }
        }
    }

    /// Closes the windows the watermark has passed and runs detection on them.
    pub fn advance(&mut self, watermark_ms: i64, out: &mut Vec<Output>) {
        self.closed.clear();
        self.watermark_ms = Some(
            self.watermark_ms
                .map_or(watermark_ms, |w| w.max(watermark_ms)),
        );
        let mut closed = std::mem::take(&mut self.closed);
        self.aggregator.advance(watermark_ms, &mut closed);
        for w in &closed {
            self.detect_window(w, out);
        }
        self.closed = closed;
    }

    /// Closes every window that holds data (end of a finite input).
    pub fn flush(&mut self, out: &mut Vec<Output>) {
        let mut closed = std::mem::take(&mut self.closed);
        closed.clear();
        self.aggregator.flush(&mut closed);
        for w in &closed {
            self.detect_window(w, out);
        }
        self.closed = closed;
    }

    fn detect_window(&mut self, w: &ClosedWindow, out: &mut Vec<Output>) {
        self.stats.windows_closed += 1;
        self.series_buf.clear();
        self.series_buf
            .extend(w.topics.iter().map(|t| t.complaints as f64));
        self.topic_detector
            .assess(w.start_ms, &self.series_buf, &mut self.assessed);
        for (i, (t, a)) in w.topics.iter().zip(&self.assessed).enumerate() {
            out.push(Output::Window(WindowReport {
                topic: i as u16,
                channel: None,
                start_ms: w.start_ms,
                end_ms: w.end_ms,
                observed: t.complaints,
                observed_events: t.complaint_events,
                contacts: t.contacts,
                expected: a.expected,
                upper: a.upper,
                p_value: a.p_value,
                score: a.score,
                state: a.state,
                day_record: a.day_record,
            }));
            if let Some(tr) = a.transition {
                let ev = self.crisis_event(i, w, a, tr);
                match ev.state {
                    CrisisState::Opened => self.stats.crises_opened += 1,
                    CrisisState::Escalated => self.stats.crises_escalated += 1,
                    CrisisState::Resolved => self.stats.crises_resolved += 1,
                }
                out.push(Output::Crisis(Box::new(ev)));
            }
        }
        if self.per_channel {
            self.series_buf.clear();
            for t in &w.topics {
                self.series_buf
                    .extend(t.by_channel.iter().map(|&c| c as f64));
            }
            self.channel_detector
                .assess(w.start_ms, &self.series_buf, &mut self.assessed);
            for (j, a) in self.assessed.iter().enumerate() {
                let (i, c) = (j / Channel::COUNT, j % Channel::COUNT);
                out.push(Output::Window(WindowReport {
                    topic: i as u16,
                    channel: Some(Channel::ALL[c]),
                    start_ms: w.start_ms,
                    end_ms: w.end_ms,
                    observed: w.topics[i].by_channel[c],
                    observed_events: w.topics[i].by_channel_events[c],
                    contacts: 0,
                    expected: a.expected,
                    upper: a.upper,
                    p_value: a.p_value,
                    score: a.score,
                    state: a.state,
                    day_record: a.day_record,
                }));
            }
        }
    }

    fn crisis_event(
        &self,
        topic: usize,
        w: &ClosedWindow,
        a: &Assessment,
        tr: Transition,
    ) -> CrisisEvent {
        let (state, onset) = match tr {
            Transition::Opened { onset_ms } => (CrisisState::Opened, onset_ms),
            Transition::Escalated { onset_ms } => (CrisisState::Escalated, onset_ms),
            Transition::Resolved { onset_ms } => (CrisisState::Resolved, onset_ms),
        };
        let name = &self.classifier.topics()[topic];
        let crisis_id = crisis_id(name, onset);
        let t = &w.topics[topic];
        CrisisEvent {
            schema_version: SCHEMA_VERSION,
            event_id: format!("{crisis_id}-{}-{}", state.as_str(), w.start_ms),
            crisis_id,
            topic: name.clone(),
            state,
            severity: a.severity,
            window_start: event::format_rfc3339(w.start_ms),
            window_end: event::format_rfc3339(w.end_ms),
            onset: event::format_rfc3339(onset),
            observed: t.complaints,
            observed_events: t.complaint_events,
            expected: round3(a.expected),
            upper_bound: round3(a.upper),
            p_value: a.p_window,
            score: round3(a.score),
            ratio: round3(a.ratio),
            evidence: a.evidence.map(|e| crate::detect::Evidence {
                observed: round3(e.observed),
                expected: round3(e.expected),
                ..e
            }),
            channels: ChannelCounts::from_array(&t.by_channel),
            top_terms: t
                .terms
                .iter()
                .take(5)
                .map(|&(id, count)| TermCount {
                    term: self.classifier.term(id).to_string(),
                    count,
                })
                .collect(),
            sample_event_ids: t.samples.clone(),
            peak_observed: a.peak.max(0.0) as u64,
            windows_in_crisis: a.windows_in_crisis,
            detector_version: DETECTOR_VERSION.to_string(),
        }
    }
}

/// Rounded to 3 decimals; never NaN, infinite or `-0` (which JSON readers print as "-0.0").
fn round3(x: f64) -> f64 {
    let r = (x * 1000.0).round() / 1000.0;
    if r.is_finite() && r != 0.0 { r } else { 0.0 }
}

/// Deterministic crisis id: the same topic and onset window always give the same id, so
/// downstream consumers can drop duplicates after a restart.
pub fn crisis_id(topic: &str, onset_ms: i64) -> String {
    let mut h = Sha256::new();
    h.update(topic.as_bytes());
    h.update([0]);
    h.update(onset_ms.to_be_bytes());
    let d = h.finalize();
    format!("cr-{}", hex::encode(&d[..8]))
}
