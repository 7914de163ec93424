//! The detector with many series: one window's assessment of 500 topic x channel series, and
//! the checkpoint of their learned state (CBOR, as `src/state.rs` writes it), encoded and
//! decoded. `cargo bench --bench detect`; the checkpoint's size is printed first.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

use crisis_pulse::detect::{DetectConfig, Detector};

const SERIES: usize = 500;
const WINDOW_MS: i64 = 300_000;
/// Ten days of 5-minute windows: every series warm, its tail and range learned.
const WARM_WINDOWS: i64 = 2_880;

/// Poisson-like counts of about 1-40 a window, each series on its own daily shape, with a
/// burst every few days at a different phase per series.
fn counts(w: i64, out: &mut Vec<f64>) {
    const NOISE: [f64; 7] = [0.6, 1.4, 0.9, 1.2, 1.0, 1.5, 0.7];
    out.clear();
    for s in 0..SERIES as i64 {
        let base = 1.0 + (s % 40) as f64;
        let hour = ((w + s * 7) % 288) as f64 / 288.0;
        let daily = 1.0 + 0.5 * (hour * std::f64::consts::TAU).sin();
        let burst = if (w + s * 131) % 997 < 3 { 6.0 } else { 1.0 };
        out.push((base * daily * burst * NOISE[((w + s) % 7) as usize]).round());
    }
}

fn warm_detector() -> Detector {
    let mut d = Detector::new(&DetectConfig::default(), WINDOW_MS);
    let (mut x, mut out) = (Vec::new(), Vec::new());
    for w in 0..WARM_WINDOWS {
        counts(w, &mut x);
        d.assess(w * WINDOW_MS, &x, &mut out);
    }
    d
}

fn encode(d: &Detector) -> Vec<u8> {
    let mut buf = Vec::new();
    ciborium::into_writer(d, &mut buf).expect("encode");
    buf
}

fn benches(c: &mut Criterion) {
    let warm = warm_detector();
    let bytes = encode(&warm);
    eprintln!(
        "{SERIES} series after {WARM_WINDOWS} windows: checkpoint {} bytes, {} per series",
        bytes.len(),
        bytes.len() / SERIES
    );

    let mut g = c.benchmark_group("detect");
    g.sample_size(10);
    g.throughput(Throughput::Elements(SERIES as u64));

    // One window close: every series observed, FDR across them, lifecycles decided.
    g.bench_function("assess_500_series", |b| {
        let mut d = warm.clone();
        let (mut x, mut out) = (Vec::new(), Vec::new());
        let mut w = WARM_WINDOWS;
        b.iter(|| {
            counts(w, &mut x);
            d.assess(w * WINDOW_MS, &x, &mut out);
            w += 1;
            black_box(out.len())
        })
    });

    g.bench_function("checkpoint_encode_500_series", |b| {
        b.iter(|| black_box(encode(&warm).len()))
    });

    g.bench_function("checkpoint_decode_500_series", |b| {
        b.iter_batched(
            || bytes.clone(),
            |buf| {
                let d: Detector = ciborium::from_reader(buf.as_slice()).expect("decode");
                d
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(detect, benches);
criterion_main!(detect);
