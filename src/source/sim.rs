//! The built-in simulator: multi-channel contact traffic with daily and weekly seasonality,
//! Spanish and English text, upstream fields on some channels, injected crises and a share
//! of malformed records. Deterministic for a given seed.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Poisson};

use crate::event::Channel;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// A topic the simulator talks about, with complaint and neutral phrasings.
#[derive(Debug, Clone)]
pub struct SimTopic {
    pub name: &'static str,
    /// Mean contacts per minute at the daily average.
    pub per_minute: f64,
    /// Share of this topic's normal contacts that are complaints.
    pub complaint_share: f64,
    pub complaints_en: &'static [&'static str],
    pub complaints_es: &'static [&'static str],
    pub neutral_en: &'static [&'static str],
    pub neutral_es: &'static [&'static str],
}

/// A crisis injected into the traffic.
#[derive(Debug, Clone)]
pub struct InjectedCrisis {
    pub topic: &'static str,
    /// Onset, ms after the simulation start.
    pub start_ms: i64,
    /// Time from onset to full strength (0 = sudden).
    pub ramp_ms: i64,
    /// Duration at full strength.
    pub duration_ms: i64,
    /// Extra complaints per minute at full strength.
    pub extra_per_minute: f64,
    /// Channels it shows up on (empty = all).
    pub channels: Vec<Channel>,
}

impl InjectedCrisis {
    fn strength(&self, offset_ms: i64) -> f64 {
        let t = offset_ms - self.start_ms;
        if t < 0 || t >= self.ramp_ms + self.duration_ms {
            0.0
        } else if t < self.ramp_ms {
            t as f64 / self.ramp_ms as f64
        } else {
            1.0
        }
    }
}

/// Simulation settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    pub start_ms: i64,
    pub duration_ms: i64,
    /// Multiplies every topic's rate.
    pub rate_scale: f64,
    pub topics: Vec<SimTopic>,
    pub crises: Vec<InjectedCrisis>,
    /// Share of records that are deliberately malformed (bad JSON, bad channel, bad time).
    pub malformed_share: f64,
    /// Share of events delivered out of order, up to `max_disorder_ms` late.
    pub disorder_share: f64,
    pub max_disorder_ms: i64,
    /// Share of phone/email events that carry upstream `topic` and `complaint` fields.
    pub upstream_share: f64,
}

/// Relative traffic per channel: phone, email, chat, social, review, other.
const CHANNEL_SHARE: [f64; Channel::COUNT] = [0.30, 0.20, 0.25, 0.15, 0.07, 0.03];

/// Daily shape: quiet nights, a morning peak and an evening shoulder; weekends at 70%.
pub fn seasonality(t_ms: i64) -> f64 {
    let hour = (t_ms.rem_euclid(DAY)) as f64 / HOUR as f64;
    let day = (t_ms.div_euclid(DAY) + 4).rem_euclid(7); // 1970-01-01 was a Thursday; 0 = Sunday
    let daily = 0.25
        + 1.25 * (-((hour - 11.0) / 3.0).powi(2)).exp()
        + 0.8 * (-((hour - 19.0) / 2.5).powi(2)).exp();
    let weekly = if day == 0 || day == 6 { 0.7 } else { 1.0 };
    daily * weekly
}

/// The demo's topics (their phrases are in `examples/demo.toml`).
pub fn demo_topics() -> Vec<SimTopic> {
    vec![
        SimTopic {
            name: "billing",
            per_minute: 4.0,
            complaint_share: 0.35,
            complaints_en: &[
                "I was charged twice for my subscription this month, unacceptable",
                "Why is there a double charge on my card? Refund me now",
                "Your billing is a mess, wrong amount on my invoice again",
            ],
            complaints_es: &[
                "Me habéis cobrado dos veces este mes, es inaceptable",
                "Cobro duplicado en mi tarjeta, quiero un reembolso ya",
            ],
            neutral_en: &[
                "How do I download my invoice?",
                "Can I change the card I pay with?",
            ],
            neutral_es: &[
                "¿Dónde descargo mi factura?",
                "Quiero cambiar la tarjeta de pago",
            ],
        },
        SimTopic {
            name: "outage",
            per_minute: 2.0,
            complaints_en: &[
                "The app is down again, I cannot log in at all",
                "Website not working, error 500 every time, terrible",
                "Service outage for hours and no update, awful",
            ],
            complaints_es: &[
                "La app no funciona, no puedo entrar en mi cuenta",
                "Otra vez caída la web, qué desastre de servicio",
            ],
            neutral_en: &[
                "Is there planned maintenance tonight?",
                "Which app version do I need?",
            ],
            neutral_es: &["¿Hay mantenimiento programado esta noche?"],
            complaint_share: 0.5,
        },
        SimTopic {
            name: "delivery",
            per_minute: 3.0,
            complaint_share: 0.4,
            complaints_en: &[
                "My parcel is late again and tracking shows nothing",
                "Package never arrived, worst delivery ever",
            ],
            complaints_es: &[
                "Mi pedido no ha llegado y nadie responde",
                "El paquete llegó roto, fatal",
            ],
            neutral_en: &[
                "Can I change my delivery address?",
                "When will my parcel arrive?",
            ],
            neutral_es: &["¿Puedo cambiar la dirección de entrega?"],
        },
        SimTopic {
            name: "cancellation",
            per_minute: 1.5,
            complaint_share: 0.4,
            complaints_en: &[
                "I want to cancel, you keep failing me",
                "Cancel my contract, I am fed up with this",
            ],
            complaints_es: &[
                "Quiero darme de baja, estoy harto",
                "Cancelad mi contrato, pésimo servicio",
            ],
            neutral_en: &["How do I cancel my plan at the end of the month?"],
            neutral_es: &["¿Cómo cancelo mi plan a final de mes?"],
        },
        SimTopic {
            name: "customer_service",
            per_minute: 2.5,
            complaint_share: 0.45,
            complaints_en: &[
                "On hold for two hours, nobody answers the phone",
                "Your agent was rude and hung up on me",
            ],
            complaints_es: &[
                "Llevo una hora en espera y nadie contesta",
                "El agente fue muy maleducado",
            ],
            neutral_en: &[
                "What are your opening hours?",
                "Thanks for the quick help today",
            ],
            neutral_es: &[
                "¿Cuál es vuestro horario de atención?",
                "Gracias por la ayuda",
            ],
        },
        SimTopic {
            name: "fraud",
            per_minute: 0.15,
            complaint_share: 0.8,
            complaints_en: &["There is a transaction I did not make, my account was hacked"],
            complaints_es: &["Hay un cargo que no reconozco, me han robado la cuenta"],
            neutral_en: &["How do I report a suspicious email?"],
            neutral_es: &["¿Cómo denuncio un correo sospechoso?"],
        },
    ]
}

impl SimConfig {
    /// The demo: 14 days from Monday 2026-03-02 with three crises in the second week.
    pub fn demo() -> Self {
        let start_ms = 1_772_409_600_000; // 2026-03-02T00:00:00Z, a Monday
        SimConfig {
            seed: 42,
            start_ms,
            duration_ms: 14 * DAY,
            rate_scale: 1.0,
            topics: demo_topics(),
            crises: vec![
                // A sudden outage on a Tuesday morning, loudest on social and chat.
                InjectedCrisis {
                    topic: "outage",
                    start_ms: 8 * DAY + 10 * HOUR + 20 * MINUTE,
                    ramp_ms: 10 * MINUTE,
                    duration_ms: 2 * HOUR,
                    extra_per_minute: 6.0,
                    channels: vec![Channel::Social, Channel::Chat, Channel::Review],
                },
                // A double-charge wave that ramps up over three hours.
                InjectedCrisis {
                    topic: "billing",
                    start_ms: 10 * DAY + 13 * HOUR,
                    ramp_ms: 3 * HOUR,
                    duration_ms: 3 * HOUR,
                    extra_per_minute: 4.0,
                    channels: vec![],
                },
                // A low-volume topic: fraud reports jump from ~1 to ~10 per window.
                InjectedCrisis {
                    topic: "fraud",
                    start_ms: 12 * DAY + 16 * HOUR,
                    ramp_ms: 0,
                    duration_ms: 90 * MINUTE,
                    extra_per_minute: 1.5,
                    channels: vec![Channel::Phone, Channel::Email],
                },
            ],
            malformed_share: 0.002,
            disorder_share: 0.05,
            max_disorder_ms: 60_000,
            upstream_share: 0.3,
        }
    }
}

/// One simulated record: a JSON payload (or a deliberately broken one) and its metadata.
#[derive(Debug, Clone)]
pub struct SimRecord {
    pub time_ms: i64,
    pub channel: Channel,
    pub malformed: bool,
    pub payload: Vec<u8>,
}

/// Generates records minute by minute, in (mostly) event-time order.
pub struct Simulator {
    cfg: SimConfig,
    rng: SmallRng,
    minute: i64,
    buf: std::collections::VecDeque<SimRecord>,
    next_id: u64,
    /// Decides repeat contacts during injected crises. Separate from `rng`, so the normal
    /// traffic of a seed is what it was before repeats were simulated.
    repeat_rng: SmallRng,
    /// Recent customers who complained during an injected crisis (the ones who call again).
    crisis_customers: std::collections::VecDeque<String>,
}

/// Share of an injected crisis' complaints that come from a customer who already complained
/// during it: angry customers call back, which is why windows count distinct customers.
const REPEAT_SHARE: f64 = 0.2;
const REPEAT_POOL: usize = 64;

impl Simulator {
    pub fn new(cfg: SimConfig) -> Self {
        Simulator {
            rng: SmallRng::seed_from_u64(cfg.seed),
            repeat_rng: SmallRng::seed_from_u64(cfg.seed ^ 0x7265_7065_6174),
            cfg,
            minute: 0,
            buf: std::collections::VecDeque::new(),
            next_id: 0,
            crisis_customers: std::collections::VecDeque::new(),
        }
    }

    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    fn fill_minute(&mut self) {
        let offset = self.minute * MINUTE;
        let t0 = self.cfg.start_ms + offset;
        let season = seasonality(t0);
        let mut batch: Vec<SimRecord> = Vec::new();
        for ti in 0..self.cfg.topics.len() {
            for (ci, &ch) in Channel::ALL.iter().enumerate() {
                let topic = &self.cfg.topics[ti];
                let complaint_share = topic.complaint_share;
                let base = topic.per_minute * self.cfg.rate_scale * season * CHANNEL_SHARE[ci];
                let extra: f64 = self
                    .cfg
                    .crises
                    .iter()
                    .filter(|c| c.topic == topic.name)
                    .filter(|c| c.channels.is_empty() || c.channels.contains(&ch))
                    .map(|c| {
                        let share = if c.channels.is_empty() {
                            CHANNEL_SHARE[ci]
                        } else {
                            1.0 / c.channels.len() as f64
                        };
                        c.strength(offset) * c.extra_per_minute * self.cfg.rate_scale * share
                    })
                    .sum();
                let normal = draw(&mut self.rng, base);
                let crisis = draw(&mut self.rng, extra);
                for k in 0..(normal + crisis) {
                    let complaint = k >= normal || self.rng.random_bool(complaint_share);
                    let t = t0 + self.rng.random_range(0..MINUTE);
                    let rec = self.record(ti, ch, t, complaint, k >= normal);
                    batch.push(rec);
                }
            }
        }
        batch.sort_by_key(|r| r.time_ms);
        // Disorder: some records are delivered later than their event time.
        if self.cfg.disorder_share > 0.0 && self.cfg.max_disorder_ms > 0 {
            let mut keyed: Vec<(i64, SimRecord)> = batch
                .into_iter()
                .map(|r| {
                    let d = if self.rng.random_bool(self.cfg.disorder_share) {
                        self.rng.random_range(0..self.cfg.max_disorder_ms)
                    } else {
                        0
                    };
                    (r.time_ms + d, r)
                })
                .collect();
            keyed.sort_by_key(|k| k.0);
            batch = keyed.into_iter().map(|k| k.1).collect();
        }
        self.buf.extend(batch);
        self.minute += 1;
    }

    fn record(
        &mut self,
        ti: usize,
        ch: Channel,
        t: i64,
        complaint: bool,
        crisis: bool,
    ) -> SimRecord {
        self.next_id += 1;
        let id = format!("sim-{}-{:08}", self.cfg.seed, self.next_id);
        if self.rng.random_bool(self.cfg.malformed_share) {
            return SimRecord {
                time_ms: t,
                channel: ch,
                malformed: true,
                payload: self.malformed(&id, t),
            };
        }
        let topic = &self.cfg.topics[ti];
        let spanish = self.rng.random_bool(0.3);
        let pool = match (complaint, spanish) {
            (true, false) => topic.complaints_en,
            (true, true) => topic.complaints_es,
            (false, false) => topic.neutral_en,
            (false, true) => topic.neutral_es,
        };
        let text = pool[self.rng.random_range(0..pool.len())];
        let lang = if spanish { "es" } else { "en" };
        let upstream = matches!(ch, Channel::Phone | Channel::Email)
            && self.rng.random_bool(self.cfg.upstream_share);
        let mut customer = format!("cust-{}", self.rng.random_range(0..50_000u32));
        if crisis {
            let n = self.crisis_customers.len();
            if n > 0 && self.repeat_rng.random_bool(REPEAT_SHARE) {
                customer = self.crisis_customers[self.repeat_rng.random_range(0..n)].clone();
            } else {
                if n == REPEAT_POOL {
                    self.crisis_customers.pop_front();
                }
                self.crisis_customers.push_back(customer.clone());
            }
        }
        let mut v = serde_json::json!({
            "schema_version": 1,
            "id": id,
            "event_time": crate::event::format_rfc3339(t),
            "channel": ch.as_str(),
            "text": text,
            "language": lang,
            "customer_id": customer,
        });
        if upstream {
            v["topic"] = serde_json::Value::from(topic.name);
            v["complaint"] = serde_json::Value::from(complaint);
        }
        SimRecord {
            time_ms: t,
            channel: ch,
            malformed: false,
            payload: serde_json::to_vec(&v).unwrap_or_default(),
        }
    }

    fn malformed(&mut self, id: &str, t: i64) -> Vec<u8> {
        match self.rng.random_range(0..5) {
            0 => format!(
                "{{\"id\":\"{id}\",\"event_time\":{t},\"channel\":\"chat\",\"text\":\"trunc"
            )
            .into_bytes(),
            1 => format!("{{\"id\":\"{id}\",\"event_time\":{t},\"channel\":\"carrier-pigeon\"}}")
                .into_bytes(),
            2 => format!(
                "{{\"id\":\"{id}\",\"event_time\":\"1970-01-01T00:00:00Z\",\"channel\":\"email\"}}"
            )
            .into_bytes(),
            3 => format!("{{\"id\":{t},\"event_time\":{t},\"channel\":\"chat\"}}").into_bytes(),
            _ => b"\xff\xfe not utf-8".to_vec(),
        }
    }
}

fn draw(rng: &mut SmallRng, mean: f64) -> u64 {
    if mean <= 0.0 {
        return 0;
    }
    match Poisson::new(mean) {
        Ok(p) => p.sample(rng) as u64,
        Err(_) => 0,
    }
}

impl Iterator for Simulator {
    type Item = SimRecord;
    fn next(&mut self) -> Option<SimRecord> {
        loop {
            if let Some(r) = self.buf.pop_front() {
                return Some(r);
            }
            if self.minute * MINUTE >= self.cfg.duration_ms {
                return None;
            }
            self.fill_minute();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_seasonal() {
        let mut cfg = SimConfig::demo();
        cfg.duration_ms = DAY;
        let a: Vec<_> = Simulator::new(cfg.clone()).map(|r| r.payload).collect();
        let b: Vec<_> = Simulator::new(cfg).map(|r| r.payload).collect();
        assert_eq!(a, b);
        assert!(seasonality(11 * HOUR) > 3.0 * seasonality(3 * HOUR));
    }
}
