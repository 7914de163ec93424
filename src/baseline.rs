//! Expected counts per series and time of week, learned online. Pure.
//!
//! PLACEHOLDER implementation: the public API below is the contract the detector relies on.

use serde::{Deserialize, Serialize};

const SLOTS: usize = 24;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Baseline {
    window_ms: i64,
    level: Vec<f64>,
    seen: Vec<u32>,
    total_seen: u64,
}

impl Baseline {
    pub fn new(window_ms: i64) -> Self {
        Baseline {
            window_ms,
            level: vec![0.0; SLOTS],
            seen: vec![0; SLOTS],
            total_seen: 0,
        }
    }

    fn slot(&self, t_ms: i64) -> usize {
        (t_ms.rem_euclid(86_400_000) / 3_600_000) as usize
    }

    pub fn expected(&self, t_ms: i64) -> f64 {
        let s = self.slot(t_ms);
        if self.seen[s] == 0 {
            let n: u32 = self.seen.iter().sum();
            if n == 0 {
                return 0.0;
            }
            return self
                .level
                .iter()
                .zip(&self.seen)
                .filter(|(_, c)| **c > 0)
                .map(|(l, _)| l)
                .sum::<f64>()
                / self.seen.iter().filter(|c| **c > 0).count() as f64;
        }
        self.level[s]
    }

    pub fn learn(&mut self, t_ms: i64, x: f64) {
        let s = self.slot(t_ms);
        let alpha = if self.seen[s] < 10 {
            1.0 / (self.seen[s] as f64 + 1.0)
        } else {
            0.1
        };
        self.level[s] += alpha * (x - self.level[s]);
        self.seen[s] += 1;
        self.total_seen += 1;
    }

    pub fn is_warm(&self) -> bool {
        self.total_seen as i64 * self.window_ms >= 86_400_000
    }
}
