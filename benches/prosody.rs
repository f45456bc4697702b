//! Throughput of the full per-frame feature set (pitch path, pulses, HNR, loudness,
//! spectral balance) on 10 s of a synthetic voice with jitter, shimmer and noise
//! (`synth::speech_like`: 70 % voiced, the rest a noise floor), in 20 ms pushes as the live
//! pipeline does. Criterion reports elements/s = samples/s; divide by
//! 16000 for × real time.
//!
//! `arousal_window`: the live stress reading's cost, once per 0.5 s hop — functionals and
//! descriptors of a 2 s window of frames and the arousal model's prediction against a
//! speaker baseline (the pipeline's `update_windows`). Divide by 50 for the cost per 10 ms
//! frame.

use calltone::emotion::arousal::{descriptors, ArousalModel};
use calltone::prosody::functionals;
use calltone::prosody::synth::{speech_like, telephone};
use calltone::prosody::{ProsodyAnalyzer, ProsodyConfig, ProsodyOutput};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

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
    let wide = speech_like(10.0);
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

    let model = ArousalModel::builtin();
    let mut g = c.benchmark_group("arousal_window");
    g.sample_size(50);
    for (name, x, rate) in [("wideband_2s", &wide, 16000), ("telephone_2s", &tel, 8000)] {
        let mut a = ProsodyAnalyzer::new(16000, &cfg);
        let mut out = ProsodyOutput::default();
        for chunk in x[..2 * 16000].chunks(320) {
            a.push(chunk, &mut out);
        }
        a.finish(&mut out);
        let baseline = model.new_baseline(rate);
        g.bench_function(name, |b| {
            b.iter(|| {
                let f = functionals(black_box(&out.frames), black_box(&out.cycles));
                let d = descriptors(&f, &out.frames, &out.cycles);
                black_box(model.predict(&baseline, &d))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
