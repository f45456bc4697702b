//! Throughput of the full per-frame feature set (pitch path, pulses, HNR, loudness,
//! spectral balance) on 10 s of a synthetic voice with jitter, shimmer and noise, in 20 ms
//! pushes as the live pipeline does. Criterion reports elements/s = samples/s; divide by
//! 16000 for × real time.

use calltone::prosody::synth::{telephone, PulseTrain, PulseTrainSpec};
use calltone::prosody::{ProsodyAnalyzer, ProsodyConfig, ProsodyOutput};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

fn voice(seconds: f64) -> Vec<f32> {
    // Alternate 400 ms voiced / 200 ms silent, F0 110–260 Hz, like conversational speech.
    let mut x = Vec::new();
    let mut k = 0u64;
    while (x.len() as f64) < seconds * 16000.0 {
        let p = PulseTrain::new(&PulseTrainSpec {
            f0_hz: 110.0 + 50.0 * (k % 4) as f64,
            jitter: 0.01,
            shimmer_db: 0.5,
            hnr_db: Some(15.0),
            duration_s: 0.4,
            seed: k,
            ..Default::default()
        });
        x.extend_from_slice(&p.signal);
        x.extend(std::iter::repeat_n(0.0f32, 3200));
        k += 1;
    }
    x
}

fn run(x: &[f32], a: &mut ProsodyAnalyzer, out: &mut ProsodyOutput) -> usize {
    let mut n = 0;
    for chunk in x.chunks(320) {
        a.push(chunk, out);
        n += out.frames.len();
        out.clear();
    }
    a.finish(out);
    n += out.frames.len();
    out.clear();
    n
}

fn bench(c: &mut Criterion) {
    let wide = voice(10.0);
    let tel = telephone(&wide, true);
    let cfg = ProsodyConfig::default();
    let mut g = c.benchmark_group("prosody");
    g.throughput(Throughput::Elements(wide.len() as u64));
    g.sample_size(20);
    for (name, x) in [("wideband_10s", &wide), ("telephone_10s", &tel)] {
        let mut a = ProsodyAnalyzer::new(16000, &cfg);
        let mut out = ProsodyOutput::default();
        g.bench_function(name, |b| {
            b.iter(|| black_box(run(black_box(x), &mut a, &mut out)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
