//! Event-time windows: complaints and contacts per topic (and per topic x channel) in tumbling
//! or hopping windows, closed by a watermark. Pure: time comes in as arguments.
//!
//! Invariants (property-tested in `tests.rs`):
//! - an event is counted in exactly the closed windows that contain it, or counted as late;
//! - any arrival order in which no event is later than the allowed lateness gives the same
//!   closed windows;
//! - every closed window lists every topic, zero counts included (silence is data);
//! - counting customers, a customer is counted at most once per window and topic (and per
//!   window, topic and channel), whatever the arrival order; events without a customer each
//!   count.

mod customers;
pub mod watermark;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::event::{Channel, EventTime, TopicId};
pub use customers::{CountMode, CustomerKey};

/// Window geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSpec {
    /// Window length (ms).
    pub size_ms: i64,
    /// Distance between window starts (ms); equal to `size_ms` for tumbling windows. Must
    /// divide `size_ms`.
    pub hop_ms: i64,
    /// Most zero windows emitted for one gap in the stream; longer gaps are skipped over (and
    /// reported) so that a clock jump cannot allocate without bound.
    pub max_gap_windows: u64,
}

impl WindowSpec {
    pub fn tumbling(size_ms: i64) -> Self {
        WindowSpec {
            size_ms,
            hop_ms: size_ms,
            max_gap_windows: 4 * 7 * 24 * 12,
        }
    }
}

/// Counts for one topic in one window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicCounts {
    /// Complaints as counted for detection (the detected signal): with
    /// [`CountMode::Customers`], complaining customers (a repeat contact of a customer already
    /// counted in this window and topic adds nothing; a complaint without a customer id
    /// counts); with [`CountMode::Events`], complaint events.
    pub complaints: u64,
    /// Complaint events, repeats included (equal to `complaints` when counting events).
    pub complaint_events: u64,
    /// All contacts classified to the topic, complaint or not.
    pub contacts: u64,
    /// Complaints per channel as counted for detection, indexed by `Channel::index()`.
    pub by_channel: [u64; Channel::COUNT],
    /// Complaint events per channel, repeats included.
    pub by_channel_events: [u64; Channel::COUNT],
    /// Complaint term ids and how many complaints held them, most frequent first.
    pub terms: Vec<(u32, u64)>,
    /// Ids of the first complaints in the window (at most `samples_per_window`).
    pub samples: Vec<String>,
}

/// A window closed by the watermark, with every topic present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedWindow {
    pub start_ms: i64,
    pub end_ms: i64,
    /// Indexed by `TopicId::index()`.
    pub topics: Vec<TopicCounts>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct BinTopic {
    /// Complaint events.
    complaints: u64,
    contacts: u64,
    /// Complaint events per channel.
    by_channel: [u64; Channel::COUNT],
    /// Term id -> complaint events: ids come from the taxonomy, so the cheap hasher will do
    /// (SipHash here was ~3 % of the pipeline's instructions).
    terms: HashMap<u32, u64, crate::fasthash::Build>,
    samples: Vec<String>,
    /// Complaint events that carried a customer (counting customers only), in total and per
    /// channel: the rest each count once. Absent from state_version 1 checkpoints, whose
    /// complaints therefore all count (they were counted as events).
    #[serde(default)]
    keyed: u64,
    #[serde(default)]
    keyed_by_channel: [u64; Channel::COUNT],
    /// Keyed hashes of the complaining customers (never the ids), each with the bit set of the
    /// channels they complained through: bounded by `keyed`.
    #[serde(default)]
    customers: HashMap<u64, u8>,
}

/// What happened to an event offered to the aggregator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Counted,
    /// Older than the last closed window end: counted in `late_events`, not in windows.
    Late,
}

/// Event-time window aggregator for a fixed set of topics. Serializable: it is part of the
/// checkpointed state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Aggregator {
    spec: WindowSpec,
    n_topics: usize,
    samples_per_window: usize,
    /// Bins of `hop_ms`, keyed by bin start.
    bins: BTreeMap<i64, Vec<BinTopic>>,
    /// Start of the next window to close; `None` until the first event.
    next_start: Option<i64>,
    /// End of the last closed window: events before it are late.
    closed_until: i64,
    any_closed: bool,
    late_events: u64,
    late_per_topic: Vec<u64>,
    skipped_windows: u64,
    /// What a window counts. Not part of the checkpoint's meaning: the restoring pipeline sets
    /// its own (see [`Aggregator::set_count_mode`]).
    #[serde(default)]
    count: CountMode,
}

impl Aggregator {
    pub fn new(spec: WindowSpec, n_topics: usize, samples_per_window: usize) -> Self {
        assert!(spec.size_ms > 0 && spec.hop_ms > 0 && spec.size_ms % spec.hop_ms == 0);
        Aggregator {
            spec,
            n_topics,
            samples_per_window,
            bins: BTreeMap::new(),
            next_start: None,
            closed_until: i64::MIN,
            any_closed: false,
            late_events: 0,
            late_per_topic: vec![0; n_topics],
            skipped_windows: 0,
            count: CountMode::default(),
        }
    }

    /// Counts customers or events from now on. Switching on open windows is safe both ways:
    /// complaints counted before without a customer key each count once.
    pub fn with_count_mode(mut self, count: CountMode) -> Self {
        self.count = count;
        self
    }

    pub fn set_count_mode(&mut self, count: CountMode) {
        self.count = count;
    }

    pub fn count_mode(&self) -> CountMode {
        self.count
    }

    pub fn spec(&self) -> WindowSpec {
        self.spec
    }

    /// Events refused as late so far.
    pub fn late_events(&self) -> u64 {
        self.late_events
    }

    pub fn late_per_topic(&self) -> &[u64] {
        &self.late_per_topic
    }

    /// Windows skipped because a gap exceeded `max_gap_windows`.
    pub fn skipped_windows(&self) -> u64 {
        self.skipped_windows
    }

    /// End of the last closed window (event time before which input is late).
    pub fn closed_until(&self) -> Option<i64> {
        self.any_closed.then_some(self.closed_until)
    }

    /// Offers one classified event. `customer` is the keyed hash of its customer id
    /// ([`CustomerKey::of`]), if it has one; it is kept (counting customers) only for
    /// complaints.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        time: EventTime,
        topic: TopicId,
        channel: Channel,
        complaint: bool,
        terms: &[u32],
        event_id: &str,
        customer: Option<u64>,
    ) -> Admit {
        let t = time.0;
        let ti = topic.index().min(self.n_topics - 1);
        if self.any_closed && t < self.closed_until {
            self.late_events += 1;
            self.late_per_topic[ti] += 1;
            return Admit::Late;
        }
        let bin_start = t.div_euclid(self.spec.hop_ms) * self.spec.hop_ms;
        if !self.any_closed {
            // Before the first close, the first window starts at the earliest bin seen.
            let first = t.div_euclid(self.spec.size_ms) * self.spec.size_ms;
            let first = if self.spec.hop_ms == self.spec.size_ms {
                first
            } else {
                bin_start
            };
            self.next_start = Some(self.next_start.map_or(first, |s| s.min(first)));
        }
        let n = self.n_topics;
        let bin = self
            .bins
            .entry(bin_start)
            .or_insert_with(|| vec![BinTopic::default(); n]);
        let b = &mut bin[ti];
        b.contacts += 1;
        if complaint {
            b.complaints += 1;
            b.by_channel[channel.index()] += 1;
            if let (CountMode::Customers, Some(h)) = (self.count, customer) {
                b.keyed += 1;
                b.keyed_by_channel[channel.index()] += 1;
                *b.customers.entry(h).or_insert(0) |= 1 << channel.index();
            }
            for &term in terms {
                *b.terms.entry(term).or_insert(0) += 1;
            }
            if b.samples.len() < self.samples_per_window {
                b.samples.push(event_id.to_string());
            }
        }
        Admit::Counted
    }

    /// Closes every window whose end is at or before `watermark_ms`, oldest first.
    pub fn advance(&mut self, watermark_ms: i64, out: &mut Vec<ClosedWindow>) {
        let Some(mut start) = self.next_start else {
            return;
        };
        let size = self.spec.size_ms;
        let hop = self.spec.hop_ms;
        // A long gap with no bins: skip ahead instead of emitting unbounded zero windows.
        let pending = (watermark_ms - size - start).div_euclid(hop) + 1;
        if pending > self.spec.max_gap_windows as i64 {
            let first_bin = self.bins.keys().next().copied();
            let limit = watermark_ms - size - (self.spec.max_gap_windows as i64 - 1) * hop;
            let target = match first_bin {
                Some(b) if b - (size - hop) < limit => (b - (size - hop)).max(start),
                _ => limit.div_euclid(hop) * hop,
            };
            if target > start {
                self.skipped_windows += ((target - start) / hop) as u64;
                start = target;
            }
        }
        while start + size <= watermark_ms {
            out.push(self.build(start));
            self.closed_until = start + size;
            self.any_closed = true;
            start += hop;
            // Bins before the next window's start are no longer needed.
            while let Some((&k, _)) = self.bins.first_key_value() {
                if k < start {
                    self.bins.pop_first();
                } else {
                    break;
                }
            }
        }
        self.next_start = Some(start);
    }

    fn build(&self, start: i64) -> ClosedWindow {
        let end = start + self.spec.size_ms;
        let mut topics: Vec<TopicCounts> = vec![TopicCounts::default(); self.n_topics];
        let mut term_acc: Vec<HashMap<u32, u64, crate::fasthash::Build>> =
            vec![HashMap::default(); self.n_topics];
        // Customers per topic across the window's bins (hopping windows span several).
        let mut cust_acc: Vec<HashMap<u64, u8>> = vec![HashMap::new(); self.n_topics];
        for (_, bin) in self.bins.range(start..end) {
            for (i, b) in bin.iter().enumerate() {
                let t = &mut topics[i];
                t.complaint_events += b.complaints;
                t.complaints += b.complaints - b.keyed;
                t.contacts += b.contacts;
                for c in 0..Channel::COUNT {
                    t.by_channel_events[c] += b.by_channel[c];
                    t.by_channel[c] += b.by_channel[c] - b.keyed_by_channel[c];
                }
                for (&h, &m) in &b.customers {
                    *cust_acc[i].entry(h).or_insert(0) |= m;
                }
                for (&k, &v) in &b.terms {
                    *term_acc[i].entry(k).or_insert(0) += v;
                }
                for s in &b.samples {
                    if t.samples.len() < self.samples_per_window {
                        t.samples.push(s.clone());
                    }
                }
            }
        }
        for (t, acc) in topics.iter_mut().zip(cust_acc) {
            t.complaints += acc.len() as u64;
            for m in acc.into_values() {
                for (c, n) in t.by_channel.iter_mut().enumerate() {
                    *n += u64::from(m >> c & 1);
                }
            }
        }
        for (t, acc) in topics.iter_mut().zip(term_acc) {
            let mut v: Vec<(u32, u64)> = acc.into_iter().collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            v.truncate(10);
            t.terms = v;
        }
        ClosedWindow {
            start_ms: start,
            end_ms: end,
            topics,
        }
    }

    /// Closes every window that holds data, whatever the watermark (end of a finite input).
    pub fn flush(&mut self, out: &mut Vec<ClosedWindow>) {
        if let Some((&last, _)) = self.bins.last_key_value() {
            let end = last.div_euclid(self.spec.hop_ms) * self.spec.hop_ms + self.spec.size_ms;
            self.advance(end, out);
        }
    }
}
