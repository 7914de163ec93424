//! Classification throughput on realistic contact texts (144 bytes on average, English and
//! Spanish, with and without a language tag; and the same joined in pairs, 288 bytes on
//! average, the size of the pipeline bench's events), on the demo and airline taxonomies.
//!
//! `cargo bench --bench classify`; criterion reports elements (events) per second.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

use crisis_pulse::classify::{Classification, Classifier, Scratch};
use crisis_pulse::config::Config;

include!("common/texts.rs");

fn classifier(toml: &str, name: &str) -> Classifier {
    let cfg = Config::parse(toml, name).expect("config");
    Classifier::new(&cfg.topics, &cfg.complaint).expect("taxonomy")
}

fn bench(c: &mut Criterion) {
    let taxonomies = [
        ("demo", crisis_pulse::app::DEMO_CONFIG),
        ("airline", include_str!("../examples/airline.toml")),
    ];
    let mut group = c.benchmark_group("classify");
    group.throughput(Throughput::Elements(TEXTS.len() as u64));
    // Calibration on a shared machine: the cheapest per-event text work there is (an ASCII
    // lowercase copy into a reused buffer), to read the numbers below against.
    let mut buf = String::new();
    group.bench_function("baseline_lowercase_copy", |b| {
        b.iter(|| {
            for (_, text) in TEXTS {
                buf.clear();
                buf.push_str(black_box(text));
                buf.make_ascii_lowercase();
                black_box(&buf);
            }
        })
    });
    let (short, long) = (short_texts(), long_texts());
    for (name, toml) in taxonomies {
        let cls = classifier(toml, name);
        let mut scratch = Scratch::default();
        let mut out = Classification::default();
        for (suffix, texts) in [("", &short), ("_290B", &long)] {
            group.bench_function(format!("{name}{suffix}"), |b| {
                b.iter(|| classify_each(&cls, texts, &mut scratch, &mut out))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
