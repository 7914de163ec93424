//! Classification throughput on realistic contact texts (144 bytes on average, English and
//! Spanish, with and without a language tag; and the same joined in pairs, 288 bytes on
//! average, the size of the pipeline bench's events), on the demo and airline taxonomies.
//!
//! `cargo bench --bench classify`; criterion reports elements (events) per second.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

use crisis_pulse::classify::{Classification, Classifier, ClassifyInput, Scratch};
use crisis_pulse::config::Config;

/// Written for this bench (not taken from any evaluation set).
const TEXTS: &[(&str, &str)] = &[
    (
        "en",
        "@airline my flight from Denver was cancelled last night and nobody told us. I've been on hold for 2 hours, this is ridiculous. Can someone please rebook me?",
    ),
    (
        "en",
        "Thanks to the crew on flight 2301 today, smooth boarding and a really friendly attendant. Great job, will fly with you again!",
    ),
    (
        "en",
        "Why was I charged twice for the same booking? The refund still hasn't arrived and the app keeps showing an error when I try to log in. NOT happy.",
    ),
    (
        "en",
        "Bag didn't make it to Boston again. Second time this month. The baggage claim desk had a 45 minute line and they hung up on me when I called.",
    ),
    (
        "es",
        "Llevo una hora en espera y nadie contesta. Me cancelaron el vuelo sin avisar y ahora no puedo cambiar la reserva desde la aplicación. Pésimo servicio.",
    ),
    (
        "es",
        "Hola, ¿cómo puedo cambiar la dirección de entrega de mi pedido? Gracias por la ayuda, el último envío llegó perfecto y muy rápido.",
    ),
    (
        "es",
        "Mi maleta llegó rota y con la ropa mojada. He puesto una reclamación hace dos semanas y todavía no tengo respuesta. Muy decepcionado con la compañía.",
    ),
    (
        "",
        "The gate agent was rude and the flight was delayed three hours with no explanation. No es la primera vez que pasa, estoy harto de esperar.",
    ),
];

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
    // The pipeline's events carry ~290-byte texts: the same texts joined in pairs.
    let long: Vec<(&str, String)> = (0..TEXTS.len())
        .map(|i| {
            let ((lang, a), (_, b)) = (TEXTS[i], TEXTS[(i + 1) % TEXTS.len()]);
            (lang, format!("{a} {b}"))
        })
        .collect();
    let short: Vec<(&str, String)> = TEXTS.iter().map(|&(l, t)| (l, t.to_string())).collect();
    for (name, toml) in taxonomies {
        let cls = classifier(toml, name);
        let mut scratch = Scratch::default();
        let mut out = Classification::default();
        for (suffix, texts) in [("", &short), ("_290B", &long)] {
            group.bench_function(format!("{name}{suffix}"), |b| {
                b.iter(|| {
                    for (lang, text) in texts {
                        let input = ClassifyInput {
                            text: Some(text),
                            language: (!lang.is_empty()).then_some(*lang),
                            ..ClassifyInput::default()
                        };
                        cls.classify(black_box(&input), &mut scratch, &mut out);
                        black_box(&out);
                    }
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
