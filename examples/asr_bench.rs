//! Whisper on whole files, outside the pipeline:
//! * `asr_bench FILE.wav [MODEL]`: times calltone's transcription settings on one file.
//! * `asr_bench whole MODEL FILE...`: whisper.cpp's own defaults (greedy with temperature
//!   fallback, full 30 s window, segments with context) on each whole file, one
//!   `file<TAB>text` line each — the "whole-file whisper.cpp" column of tools/asr-eval.
//! * `asr_bench diag MODEL FILE...`: calltone's transcription of each whole file with its
//!   decode figures (no-speech probability, log-probability, entropy, tokens, budget) and
//!   the rejection, one tab-separated line each.
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use calltone::asr::transcribe::{TranscribeOptions, WhisperModel};
use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

fn load16k(file: &Path) -> anyhow::Result<Vec<f32>> {
    let d = calltone::audio::decode_file(file).with_context(|| file.display().to_string())?;
    let ch = d
        .channels
        .first()
        .with_context(|| format!("{}: no audio channel", file.display()))?;
    Ok(calltone::audio::resample_all(ch, d.sample_rate, 16000)?)
}

fn whole(model: &str, files: &[String]) -> anyhow::Result<()> {
    whisper_rs::install_logging_hooks();
    let ctx = WhisperContext::new_with_params(model, WhisperContextParameters::default())
        .with_context(|| model.to_string())?;
    let mut state = ctx.create_state()?;
    for f in files {
        let x = load16k(Path::new(f))?;
        let mut p = FullParams::new(SamplingStrategy::Greedy { best_of: 5 });
        p.set_n_threads(1);
        p.set_language(Some("en"));
        p.set_print_progress(false);
        p.set_print_realtime(false);
        p.set_print_special(false);
        p.set_print_timestamps(false);
        let t0 = Instant::now();
        state.full(p, &x)?;
        let s = t0.elapsed().as_secs_f64();
        let mut text = String::new();
        for seg in state.as_iter() {
            text.push_str(&seg.to_str_lossy()?);
        }
        eprintln!(
            "{f}: {:.2} s for {:.1} s audio",
            s,
            x.len() as f64 / 16000.0
        );
        println!("{f}\t{}", text.trim());
    }
    Ok(())
}

fn diag(model: &str, files: &[String]) -> anyhow::Result<()> {
    let m = WhisperModel::load(Path::new(model))?;
    let mut t = m.transcriber(TranscribeOptions::default())?;
    println!("file\tno_speech\tavg_logprob\tentropy\ttokens\tbudget\trejected\ttext");
    for f in files {
        let x = load16k(Path::new(f))?;
        let r = t.transcribe(&x)?;
        let s = r.stats;
        println!(
            "{f}\t{:.3}\t{:.3}\t{:.2}\t{}\t{}\t{}\t{}",
            s.no_speech_prob,
            s.avg_logprob,
            s.entropy,
            s.tokens,
            s.budget,
            r.rejected.map_or("-", |r| r.as_str()),
            r.text
        );
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("whole") if args.len() >= 3 => return whole(&args[1], &args[2..]),
        Some("diag") if args.len() >= 3 => return diag(&args[1], &args[2..]),
        Some(_) => {}
        None => anyhow::bail!(
            "usage: asr_bench FILE.wav [MODEL] | whole MODEL FILE... | diag MODEL FILE..."
        ),
    }
    let file = std::path::PathBuf::from(&args[0]);
    let model = args
        .get(1)
        .map_or("models/ggml-tiny.en.bin", |s| s.as_str());
    let x = load16k(&file)?;
    let m = WhisperModel::load(Path::new(model))?;
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
