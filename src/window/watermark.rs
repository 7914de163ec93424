//! Watermarks over several inputs (Kafka partitions): the watermark is the slowest active
//! input's maximum event time minus the allowed lateness. An input that has been idle for
//! longer than the idle timeout (processing time) stops holding time back; when every input
//! is idle, time may advance with the processing clock so that silence still closes windows.

use std::hash::Hash;

/// Looked up once per event: a multiply-rotate hash, not SipHash (keys are partitions).
type HashMap<K, V> = std::collections::HashMap<K, V, crate::fasthash::Build>;

#[derive(Debug, Clone, Copy)]
struct Input {
    max_event_ms: i64,
    last_seen_ms: i64,
}

/// Per-input watermark tracker. Monotonic: the value never goes back.
#[derive(Debug, Clone)]
pub struct Watermarks<K: Eq + Hash> {
    lateness_ms: i64,
    idle_ms: i64,
    advance_when_idle: bool,
    inputs: HashMap<K, Input>,
    current: Option<i64>,
}

impl<K: Eq + Hash + Clone> Watermarks<K> {
    /// `advance_when_idle`: when every input is idle, let the watermark follow processing
    /// time (`now - lateness - idle`), for live streams whose event time tracks the clock.
    pub fn new(lateness_ms: i64, idle_ms: i64, advance_when_idle: bool) -> Self {
        Watermarks {
            lateness_ms,
            idle_ms,
            advance_when_idle,
            inputs: HashMap::default(),
            current: None,
        }
    }

    /// Records an event time seen on `input` at processing time `now_ms`.
    pub fn observe(&mut self, input: &K, event_ms: i64, now_ms: i64) {
        match self.inputs.get_mut(input) {
            Some(i) => {
                i.max_event_ms = i.max_event_ms.max(event_ms);
                i.last_seen_ms = now_ms;
            }
            None => {
                self.inputs.insert(
                    input.clone(),
                    Input {
                        max_event_ms: event_ms,
                        last_seen_ms: now_ms,
                    },
                );
            }
        }
    }

    /// Marks an input as alive without an event (e.g. a poll that returned nothing new but
    /// the partition is not at its end).
    pub fn touch(&mut self, input: &K, now_ms: i64) {
        if let Some(i) = self.inputs.get_mut(input) {
            i.last_seen_ms = now_ms;
        }
    }

    /// Whether `input` is tracked.
    pub fn contains(&self, input: &K) -> bool {
        self.inputs.contains_key(input)
    }

    /// Marks every input as alive (e.g. the reader is behind on a log that carries them all).
    pub fn touch_all(&mut self, now_ms: i64) {
        for i in self.inputs.values_mut() {
            i.last_seen_ms = now_ms;
        }
    }

    /// Forgets an input (partition revoked).
    pub fn remove(&mut self, input: &K) {
        self.inputs.remove(input);
    }

    /// Forgets every input and the watermark itself (which otherwise never goes back): for a
    /// consumer that rewinds to an earlier checkpoint and reads its input again.
    pub fn reset(&mut self) {
        self.inputs.clear();
        self.current = None;
    }

    pub fn inputs(&self) -> usize {
        self.inputs.len()
    }

    /// The watermark at processing time `now_ms`, or `None` before any event.
    pub fn current(&mut self, now_ms: i64) -> Option<i64> {
        let mut active_min: Option<i64> = None;
        let mut overall_max: Option<i64> = None;
        for i in self.inputs.values() {
            overall_max = Some(overall_max.map_or(i.max_event_ms, |m| m.max(i.max_event_ms)));
            if now_ms - i.last_seen_ms <= self.idle_ms {
                active_min = Some(active_min.map_or(i.max_event_ms, |m| m.min(i.max_event_ms)));
            }
        }
        let candidate = match (active_min, overall_max) {
            (Some(m), _) => Some(m - self.lateness_ms),
            (None, Some(m)) => {
                let by_data = m - self.lateness_ms;
                if self.advance_when_idle {
                    Some(by_data.max(now_ms - self.lateness_ms - self.idle_ms))
                } else {
                    Some(by_data)
                }
            }
            (None, None) => None,
        };
        if let Some(c) = candidate {
            self.current = Some(self.current.map_or(c, |cur| cur.max(c)));
        }
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_forgets_the_watermark() {
        let mut w = Watermarks::new(1_000, 10_000, false);
        w.observe(&0, 100_000, 0);
        assert_eq!(w.current(0), Some(99_000));
        w.reset();
        assert_eq!(w.current(0), None);
        w.observe(&0, 50_000, 0);
        assert_eq!(
            w.current(0),
            Some(49_000),
            "after a reset, time may start earlier"
        );
    }

    #[test]
    fn slowest_active_input_holds_time() {
        let mut w = Watermarks::new(1_000, 10_000, false);
        w.observe(&0, 100_000, 0);
        w.observe(&1, 50_000, 0);
        assert_eq!(w.current(0), Some(49_000));
        w.observe(&1, 80_000, 5_000);
        assert_eq!(w.current(5_000), Some(79_000));
    }

    #[test]
    fn idle_input_stops_holding_time() {
        let mut w = Watermarks::new(1_000, 10_000, false);
        w.observe(&0, 50_000, 0);
        w.observe(&1, 100_000, 0);
        w.observe(&1, 120_000, 20_000);
        // input 0 silent for 20 s > idle timeout
        assert_eq!(w.current(20_000), Some(119_000));
    }

    #[test]
    fn never_goes_back_and_follows_clock_when_all_idle() {
        let mut w = Watermarks::new(1_000, 10_000, true);
        w.observe(&0, 100_000, 100_000);
        assert_eq!(w.current(100_000), Some(99_000));
        w.observe(&1, 10_000, 100_000); // a new, far-behind partition
        assert_eq!(w.current(100_000), Some(99_000));
        assert_eq!(w.current(200_000), Some(189_000));
    }
}
