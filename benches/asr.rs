//! The ASR path per utterance: calltone's Whisper transcription (tiny.en, one thread, the
//! encoder window trimmed to the audio, the token budget) of 1, 3 and 8 s of real speech —
//! the start of `jfk.wav` from ../shared/data/asr, else of the demo call's first channel.
//! Criterion reports elements/s = samples/s; divide by 16000 for × real time. Skips with a
//! message when the model is not provisioned (`models/fetch-offline.sh`).

use std::path::Path;

use calltone::asr::transcribe::{TranscribeOptions, WhisperModel};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

fn speech() -> Vec<f32> {
    let jfk = Path::new("../shared/data/asr/jfk.wav");
    let (file, skip_s) = if jfk.is_file() {
        (jfk, 0.3)
    } else {
        (Path::new("demo/demo-call.wav"), 0.5)
    };
    let d = calltone::audio::decode_file(file).expect("bench audio decodes");
    let x = calltone::audio::resample_all(&d.channels[0], d.sample_rate, 16000)
        .expect("bench audio resamples");
    x[(skip_s * 16000.0) as usize..].to_vec()
}

fn bench(c: &mut Criterion) {
    let model = Path::new("models/ggml-tiny.en.bin");
    if !model.is_file() {
        eprintln!(
            "asr bench: {} missing; run models/fetch-offline.sh",
            model.display()
        );
        return;
    }
    let m = WhisperModel::load(model).expect("model loads");
    let mut t = m
        .transcriber(TranscribeOptions::default())
        .expect("state allocates");
    let x = speech();
    let mut g = c.benchmark_group("asr");
    g.sample_size(10);
    for secs in [1usize, 3, 8] {
        let n = (secs * 16000).min(x.len());
        let clip = &x[..n];
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("tiny_en_{secs}s"), |b| {
            b.iter(|| black_box(t.transcribe(black_box(clip)).expect("transcribes")))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
