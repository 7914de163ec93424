//! Equivalence check for speed work on the classifier: prints every classification (topic,
//! complaint flag, terms, score bits) of a large corpus under three taxonomies and three
//! language settings. Run it before and after a change and compare the outputs:
//!
//! ```sh
//! cargo run --release --example classify_dump -- ../shared/data > before.txt
//! # change, rebuild
//! cargo run --release --example classify_dump -- ../shared/data | cmp - before.txt
//! ```
//!
//! Corpus: every airline tweet, both MInDS-14 transcripts, 5,000 Bitext instructions and
//! 2,000 Bitext responses, and 20,000 random strings built from pieces that exercise the fold
//! (accents, capitals, hashtags, handles, URLs, emoji, punctuation, negators, phrases).
use crisis_pulse::classify::{Classification, Classifier, ClassifyInput, Scratch};
use crisis_pulse::config::Config;
use std::io::Write;

fn texts(dir: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut add = |path: &str, col: &str, limit: usize| {
        let mut rd = csv::Reader::from_path(format!("{dir}/{path}")).unwrap();
        let h = rd.headers().unwrap().clone();
        let i = h.iter().position(|c| c == col).unwrap();
        for rec in rd.records().take(limit) {
            out.push(rec.unwrap().get(i).unwrap_or("").to_string());
        }
    };
    add(
        "twitter-us-airline-sentiment/Tweets.csv",
        "text",
        usize::MAX,
    );
    add("minds14-ebanking-intents/es-ES.csv", "text_asr", usize::MAX);
    add("minds14-ebanking-intents/en-US.csv", "text_asr", usize::MAX);
    add(
        "bitext-customer-support/Bitext_Sample_Customer_Support_Training_Dataset.csv",
        "instruction",
        5000,
    );
    add(
        "bitext-customer-support/Bitext_Sample_Customer_Support_Training_Dataset.csv",
        "response",
        2000,
    );
    let pieces = [
        "a",
        "B",
        "not ",
        "NOT",
        "bad",
        "BAD",
        "good",
        " ",
        "  ",
        "!",
        "?",
        ".",
        ",",
        "'",
        "’",
        "é",
        "É",
        "ñ",
        "Ñ",
        "ü",
        "ç",
        "ß",
        "İ",
        "ﬁ",
        "😡",
        "@",
        "#",
        "http://x.co/",
        "https:",
        "www.",
        "_",
        "cancel",
        "cancelled",
        "on hold",
        "hold",
        "very",
        "muy",
        "malo",
        "pésimo",
        "no",
        "but",
        "pero",
        "Ünïcödé",
        "e\u{301}",
        "\u{301}",
        "ΑΒΓ",
        "кот",
        "日本",
        "\n",
        "\t",
        "x2",
        "123",
        "abcdefghijklmnop",
        "ABCDEFGHIJKLMNOPQ",
        "#NotHappy",
        "#iPad",
        "¿",
        "¡",
        "…",
        "kind of",
        "damaged bag",
        "charged twice",
        "lost",
        "luggage",
        "refund",
        "delay",
        "rude",
        "agent",
        "Hasn't",
    ];
    let mut x: u64 = 0x1234_5678_9abc_def1;
    for _ in 0..20_000 {
        let mut s = String::new();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let n = (x % 40) as usize;
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            s.push_str(pieces[(x % pieces.len() as u64) as usize]);
            if x & 0x300 == 0 {
                s.push(' ');
            }
        }
        out.push(s);
    }
    out
}

fn main() {
    let dir = std::env::args().nth(1).unwrap_or("../shared/data".into());
    let texts = texts(&dir);
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    let tax = [
        ("demo", crisis_pulse::app::DEMO_CONFIG.to_string()),
        (
            "airline",
            std::fs::read_to_string("examples/airline.toml").unwrap(),
        ),
        (
            "banking",
            std::fs::read_to_string("examples/banking.toml").unwrap(),
        ),
    ];
    for (name, toml) in &tax {
        let cfg = Config::parse(toml, name).unwrap();
        let c = Classifier::new(&cfg.topics, &cfg.complaint).unwrap();
        let (mut s, mut out) = (Scratch::default(), Classification::default());
        for (i, t) in texts.iter().enumerate() {
            for lang in [Some("en"), Some("es"), None] {
                let input = ClassifyInput {
                    text: Some(t),
                    language: lang,
                    ..Default::default()
                };
                c.classify(&input, &mut s, &mut out);
                let sc = c.score(t, lang, &mut s);
                writeln!(
                    w,
                    "{name} {i} {lang:?} {} {} {:?} {:x}",
                    out.topic.0,
                    out.complaint,
                    out.terms,
                    sc.to_bits()
                )
                .unwrap();
            }
        }
    }
}
