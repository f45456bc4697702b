//! Times Whisper on one file with calltone's transcription settings:
//! `cargo run --release --example asr_bench -- FILE.wav [MODEL]`.
use std::time::Instant;

use calltone::asr::transcribe::{TranscribeOptions, WhisperModel};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let file = std::path::PathBuf::from(&args[0]);
    let model = args
        .get(1)
        .map_or("models/ggml-tiny.en.bin", |s| s.as_str());
    let d = calltone::audio::decode_file(&file)?;
    let x = calltone::audio::resample_all(&d.channels[0], d.sample_rate, 16000)?;
    let m = WhisperModel::load(std::path::Path::new(model))?;
    for threads in [1, 2] {
        let mut t = m.transcriber(TranscribeOptions {
            threads,
            ..Default::default()
        })?;
        for _ in 0..2 {
            let t0 = Instant::now();
            let r = t.transcribe(&x)?;
            let s = t0.elapsed().as_secs_f64();
            println!(
                "threads {threads}: {:.2} s for {:.1} s audio ({:.1}x real time): {}",
                s,
                x.len() as f64 / 16000.0,
                x.len() as f64 / 16000.0 / s,
                r.text
            );
        }
    }
    Ok(())
}
