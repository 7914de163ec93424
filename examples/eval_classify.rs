//! Measures the classifier on public labelled data and prints markdown tables.
//!
//! `cargo run --release --example eval_classify -- /work/shared/data` (default `../shared/data`).
//!
//! - Twitter US Airline Sentiment: complaint precision/recall/F1 against
//!   `airline_sentiment == negative`, and topic accuracy against `negativereason` on negative
//!   tweets, with `examples/airline.toml`. Deduplicated by `tweet_id` (first row kept), with the
//!   dataset's label leakage undone (its SOURCE.md, quirk 4) and HTML entities unescaped.
//! - MInDS-14 (es-ES and en-US ASR transcripts): topic accuracy against the intent, with
//!   `examples/banking.toml`.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use crisis_pulse::classify::{Classification, Classifier, ClassifyInput, OTHER_TOPIC, Scratch};
use crisis_pulse::config::Config;

const AIRLINE: &str = include_str!("airline.toml");
const BANKING: &str = include_str!("banking.toml");

/// The dataset's complaint reasons and the airline taxonomy's topics.
const REASONS: &[(&str, &str)] = &[
    ("Cancelled Flight", "cancellation"),
    ("Late Flight", "delay"),
    ("Customer Service Issue", "customer_service"),
    ("Lost Luggage", "lost_luggage"),
    ("Damaged Luggage", "damaged_luggage"),
    ("Flight Booking Problems", "booking"),
    ("Flight Attendant Complaints", "flight_attendant"),
    ("Bad Flight", "bad_flight"),
    ("longlines", "long_lines"),
    ("Can't Tell", OTHER_TOPIC),
];

fn classifier(toml: &str, name: &str) -> Result<Classifier> {
    let cfg = Config::parse(toml, name).map_err(|e| anyhow::anyhow!("{name}: {e:?}"))?;
    Ok(Classifier::new(&cfg.topics, &cfg.complaint)?)
}

/// Reverses the upstream substitution of label names into the text (SOURCE.md, quirk 4).
fn clean_tweet(text: &str) -> String {
    text.replace("Cancelled Flight", "cancel")
        .replace("Late Flight", "late")
        .replace("Flight Booking Problems", "booking")
        .replace("&amp;", "&")
        .replace("&gt;", ">")
        .replace("&lt;", "<")
}

struct Tweet {
    text: String,
    negative: bool,
    reason: String,
}

fn load_tweets(path: &Path) -> Result<Vec<Tweet>> {
    let mut rd = csv::Reader::from_path(path).with_context(|| format!("{}", path.display()))?;
    let h = rd.headers()?.clone();
    let col = |name: &str| {
        h.iter()
            .position(|c| c == name)
            .with_context(|| format!("no column {name}"))
    };
    let (id, sent, reason, text) = (
        col("tweet_id")?,
        col("airline_sentiment")?,
        col("negativereason")?,
        col("text")?,
    );
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for rec in rd.records() {
        let rec = rec?;
        let field = |i: usize| rec.get(i).unwrap_or("");
        if !seen.insert(field(id).to_string()) {
            continue;
        }
        out.push(Tweet {
            text: clean_tweet(field(text)),
            negative: field(sent) == "negative",
            reason: field(reason).to_string(),
        });
    }
    Ok(out)
}

#[derive(Default, Clone, Copy)]
struct Binary {
    tp: u32,
    fp: u32,
    fn_: u32,
    tn: u32,
}

impl Binary {
    fn add(&mut self, pred: bool, gold: bool) {
        match (pred, gold) {
            (true, true) => self.tp += 1,
            (true, false) => self.fp += 1,
            (false, true) => self.fn_ += 1,
            (false, false) => self.tn += 1,
        }
    }
    fn row(&self, label: &str) -> String {
        let p = f64::from(self.tp) / f64::from((self.tp + self.fp).max(1));
        let r = f64::from(self.tp) / f64::from((self.tp + self.fn_).max(1));
        let f1 = if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        };
        let n = self.tp + self.fp + self.fn_ + self.tn;
        let acc = f64::from(self.tp + self.tn) / f64::from(n.max(1));
        format!("| {label} | {p:.3} | {r:.3} | {f1:.3} | {acc:.3} | {n} |")
    }
}

/// Gold and predicted topic names, for accuracy and a confusion matrix.
#[derive(Default)]
struct Confusion {
    cells: BTreeMap<(String, String), u32>,
}

impl Confusion {
    fn add(&mut self, gold: &str, pred: &str) {
        *self
            .cells
            .entry((gold.to_string(), pred.to_string()))
            .or_default() += 1;
    }
    fn accuracy(&self, skip_gold: Option<&str>) -> (f64, u32) {
        let (mut ok, mut n) = (0, 0);
        for ((g, p), c) in &self.cells {
            if Some(g.as_str()) == skip_gold {
                continue;
            }
            n += c;
            if g == p {
                ok += c;
            }
        }
        (f64::from(ok) / f64::from(n.max(1)), n)
    }
    /// Per gold class: count, recall, and the most frequent wrong predictions.
    fn summary(&self, golds: &[&str]) {
        println!("| gold | n | correct | top confusions |\n|---|---:|---:|---|");
        for g in golds {
            let mut row: Vec<(&str, u32)> = self
                .cells
                .iter()
                .filter(|((gg, _), _)| gg == g)
                .map(|((_, p), c)| (p.as_str(), *c))
                .collect();
            let n: u32 = row.iter().map(|r| r.1).sum();
            let ok = row.iter().find(|r| r.0 == *g).map_or(0, |r| r.1);
            row.retain(|r| r.0 != *g);
            row.sort_by_key(|r| std::cmp::Reverse(r.1));
            let top: Vec<String> = row
                .iter()
                .take(3)
                .map(|(p, c)| format!("{p} {c}"))
                .collect();
            let pct = 100.0 * f64::from(ok) / f64::from(n.max(1));
            println!("| {g} | {n} | {ok} ({pct:.0}%) | {} |", top.join(", "));
        }
    }
}

fn classify<'a>(
    c: &'a Classifier,
    text: &str,
    lang: Option<&str>,
    s: &mut Scratch,
    out: &mut Classification,
) -> &'a str {
    let input = ClassifyInput {
        text: Some(text),
        language: lang,
        ..ClassifyInput::default()
    };
    c.classify(&input, s, out);
    &c.topics()[out.topic.index()]
}

fn airline(dir: &Path) -> Result<()> {
    let tweets = load_tweets(&dir.join("twitter-us-airline-sentiment/Tweets.csv"))?;
    let c = classifier(AIRLINE, "examples/airline.toml")?;
    let (mut s, mut out) = (Scratch::default(), Classification::default());
    let negatives = tweets.iter().filter(|t| t.negative).count();
    // Error analysis: `EVAL_DUMP=1` lists misclassified tweets on stderr.
    let dump = std::env::var_os("EVAL_DUMP").is_some();
    println!(
        "## Twitter US Airline Sentiment\n\n{} unique tweets, {negatives} negative.\n",
        tweets.len()
    );

    println!("### Complaint detection (gold: airline_sentiment == negative)\n");
    println!(
        "| setting | precision | recall | F1 | accuracy | n |\n|---|---:|---:|---:|---:|---:|"
    );
    let thresholds = [-0.3, -0.15, -0.05, -0.01];
    let mut by_threshold = [Binary::default(); 4];
    for (label, lang) in [("language = en", Some("en")), ("no language", None)] {
        let mut b = Binary::default();
        for t in &tweets {
            classify(&c, &t.text, lang, &mut s, &mut out);
            b.add(out.complaint, t.negative);
            if dump && lang.is_some() && out.complaint != t.negative {
                let kind = if t.negative { "FN" } else { "FP" };
                eprintln!("{kind}\t{}", t.text.replace('\n', " "));
            }
            if lang.is_some() {
                let score = c.score(&t.text, lang, &mut s);
                for (i, th) in thresholds.iter().enumerate() {
                    by_threshold[i].add(score <= *th, t.negative);
                }
            }
        }
        println!("{}", b.row(&format!("default config, {label}")));
    }
    for (th, b) in thresholds.iter().zip(&by_threshold) {
        println!("{}", b.row(&format!("threshold {th:+.2}, en")));
    }

    let mut conf = Confusion::default();
    let mut topic_hit = 0;
    for t in tweets.iter().filter(|t| t.negative) {
        let gold = REASONS
            .iter()
            .find(|r| r.0 == t.reason)
            .map_or(OTHER_TOPIC, |r| r.1);
        let pred = classify(&c, &t.text, Some("en"), &mut s, &mut out);
        if dump && pred != gold {
            eprintln!("TOPIC\t{gold}\t{pred}\t{}", t.text.replace('\n', " "));
        }
        topic_hit += u32::from(pred != OTHER_TOPIC);
        conf.add(gold, pred);
    }
    let (all, n_all) = conf.accuracy(None);
    let (known, n_known) = conf.accuracy(Some(OTHER_TOPIC));
    println!("\n### Topic (gold: negativereason, negative tweets)\n");
    println!("| subset | accuracy | n |\n|---|---:|---:|");
    println!("| all negative tweets (Can't Tell = other) | {all:.3} | {n_all} |");
    println!("| without Can't Tell | {known:.3} | {n_known} |");
    let share = f64::from(topic_hit) / negatives.max(1) as f64;
    println!("\nA taxonomy topic (not `other`) was assigned to {share:.3} of negative tweets.\n");
    let golds: Vec<&str> = REASONS.iter().map(|r| r.1).collect();
    conf.summary(&golds);
    Ok(())
}

fn minds(dir: &Path, file: &str, lang: &str) -> Result<()> {
    let path = dir.join("minds14-ebanking-intents").join(file);
    let c = classifier(BANKING, "examples/banking.toml")?;
    let mut rd = csv::Reader::from_path(&path).with_context(|| format!("{}", path.display()))?;
    let h = rd.headers()?.clone();
    let col = |name: &str| h.iter().position(|c| c == name).context("missing column");
    let (text, intent) = (col("text_asr")?, col("intent")?);
    let (mut s, mut out) = (Scratch::default(), Classification::default());
    let mut conf = Confusion::default();
    let mut complaints = 0;
    let mut n = 0;
    for rec in rd.records() {
        let rec = rec?;
        let gold = rec.get(intent).unwrap_or("").to_ascii_lowercase();
        let pred = classify(
            &c,
            rec.get(text).unwrap_or(""),
            Some(lang),
            &mut s,
            &mut out,
        );
        complaints += u32::from(out.complaint);
        n += 1;
        conf.add(&gold, pred);
    }
    let (acc, total) = conf.accuracy(None);
    let golds: Vec<String> = c
        .topics()
        .iter()
        .filter(|t| *t != OTHER_TOPIC)
        .cloned()
        .collect();
    let unassigned: u32 = conf
        .cells
        .iter()
        .filter(|((_, p), _)| p == OTHER_TOPIC)
        .map(|(_, c)| *c)
        .sum();
    println!("\n## MInDS-14 {file} (text_asr, language = {lang})\n");
    println!("| metric | value |\n|---|---:|");
    println!("| topic accuracy (14 intents) | {acc:.3} |");
    println!("| left as `other` | {unassigned} of {total} |");
    println!("| flagged as complaints | {complaints} of {n} |\n");
    let refs: Vec<&str> = golds.iter().map(String::as_str).collect();
    conf.summary(&refs);
    Ok(())
}

fn main() -> Result<()> {
    let dir = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from("../shared/data"), PathBuf::from);
    airline(&dir)?;
    minds(&dir, "es-ES.csv", "es")?;
    minds(&dir, "en-US.csv", "en")?;
    Ok(())
}
