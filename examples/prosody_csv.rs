//! Per-frame prosody CSV for WAV files (the engine's own harness; `calltone prosody` is the
//! user-facing command).
//!
//! ```text
//! prosody_csv [--channel N] [--summary] [--cycles] [--out-dir DIR] FILE.wav...
//! ```
//! One file without `--out-dir`: CSV on stdout (and with `--summary`, one JSON line on
//! stderr). With `--out-dir`: `DIR/NAME.csv` per file and, with `--summary`, one JSON line
//! per file on stdout: jitter, shimmer, HNR, all functionals and the analysis time; with
//! `--cycles`, also `DIR/NAME.cycles.csv`: one row per glottal period (pulse time, period,
//! amplitude).
//! Input: 16 kHz WAV, 16-bit integer or 32-bit float; stereo takes `--channel N` (default 0).

use anyhow::{bail, Context, Result};
use calltone::prosody::{
    functionals, write_frames_csv, Functionals, ProsodyAnalyzer, ProsodyConfig, ProsodyOutput,
};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn read_wav(path: &Path, channel: usize) -> Result<(Vec<f32>, u32)> {
    let mut r = hound::WavReader::open(path).with_context(|| format!("{}", path.display()))?;
    let spec = r.spec();
    let ch = spec.channels as usize;
    if channel >= ch {
        bail!(
            "{}: has {ch} channel(s); --channel {channel} does not exist",
            path.display()
        );
    }
    let all: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, 16) => r
            .samples::<i16>()
            .map(|s| s.map(|v| v as f32 / 32768.0))
            .collect::<Result<_, _>>()?,
        (hound::SampleFormat::Int, 24 | 32) => {
            let scale = (1u64 << (spec.bits_per_sample - 1)) as f32;
            r.samples::<i32>()
                .map(|s| s.map(|v| v as f32 / scale))
                .collect::<Result<_, _>>()?
        }
        (hound::SampleFormat::Float, 32) => r.samples::<f32>().collect::<Result<_, _>>()?,
        (f, b) => bail!(
            "{}: unsupported sample format {f:?} {b}-bit",
            path.display()
        ),
    };
    let x = all.iter().skip(channel).step_by(ch).copied().collect();
    Ok((x, spec.sample_rate))
}

/// One row per glottal period: pulse time, period and the pulse's amplitude.
fn write_cycles_csv(cycles: &[calltone::prosody::Cycle], path: &Path) -> Result<()> {
    use std::io::Write;
    let file = std::fs::File::create(path).with_context(|| format!("{}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    writeln!(w, "t,period_s,amplitude")?;
    for c in cycles {
        writeln!(w, "{:.6},{:.7},{:.7}", c.t, c.period_s, c.peak)?;
    }
    w.flush()?;
    Ok(())
}

fn opt(v: Option<f32>) -> serde_json::Value {
    v.map_or(serde_json::Value::Null, |x| serde_json::json!(x))
}

fn summary_json(name: &str, dur: f64, elapsed: f64, f: &Functionals) -> serde_json::Value {
    let names = Functionals::feature_names();
    let vec = f.feature_vector();
    let features: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .zip(vec)
        .map(|(n, v)| (n.to_string(), serde_json::json!(v)))
        .collect();
    serde_json::json!({
        "file": name,
        "duration_s": dur,
        "analysis_s": elapsed,
        "jitter_local": opt(f.jitter_local),
        "shimmer_local_db": opt(f.shimmer_local_db),
        "hnr_db_mean": opt(f.hnr_db_mean),
        "f0_mean_hz": opt(f.f0_mean_hz),
        "f0_range_st": opt(f.f0_range_st),
        "voiced_ratio": f.voiced_ratio,
        "syllable_rate": f.syllable_rate,
        "features": features,
    })
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut channel = 0usize;
    let mut summary = false;
    let mut cycles = false;
    let mut out_dir: Option<PathBuf> = None;
    let mut files = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--channel" => channel = args.next().context("--channel N")?.parse()?,
            "--summary" => summary = true,
            "--cycles" => cycles = true,
            "--out-dir" => out_dir = Some(args.next().context("--out-dir DIR")?.into()),
            "-h" | "--help" => {
                eprintln!(
                    "usage: prosody_csv [--channel N] [--summary] [--cycles] [--out-dir DIR] FILE.wav..."
                );
                return Ok(());
            }
            _ => files.push(PathBuf::from(a)),
        }
    }
    if files.is_empty() || (files.len() > 1 && out_dir.is_none()) {
        bail!("usage: prosody_csv [--channel N] [--summary] [--cycles] [--out-dir DIR] FILE.wav... (several files need --out-dir)");
    }
    let cfg = ProsodyConfig::default();
    let mut out = ProsodyOutput::default();
    // One analyzer for all files (finish() resets it), as one would per live speaker.
    let mut a = ProsodyAnalyzer::new(16000, &cfg);
    for path in &files {
        let (x, sr) = read_wav(path, channel)?;
        if sr != 16000 {
            bail!(
                "{}: {sr} Hz; expected 16000 Hz (resample first)",
                path.display()
            );
        }
        out.clear();
        let t0 = Instant::now();
        // Feed 20 ms chunks, as the live pipeline does.
        for chunk in x.chunks(320) {
            a.push(chunk, &mut out);
        }
        a.finish(&mut out);
        let f = functionals(&out.frames, &out.cycles);
        let elapsed = t0.elapsed().as_secs_f64();
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into());
        let dur = x.len() as f64 / sr as f64;
        match &out_dir {
            Some(dir) => {
                let csv = dir.join(Path::new(&name).with_extension("csv"));
                let file =
                    std::fs::File::create(&csv).with_context(|| format!("{}", csv.display()))?;
                write_frames_csv(&out.frames, file)?;
                if cycles {
                    let path = dir.join(Path::new(&name).with_extension("cycles.csv"));
                    write_cycles_csv(&out.cycles, &path)?;
                }
                if summary {
                    println!("{}", summary_json(&name, dur, elapsed, &f));
                }
            }
            None => {
                write_frames_csv(&out.frames, std::io::stdout().lock())?;
                if summary {
                    eprintln!("{}", summary_json(&name, dur, elapsed, &f));
                }
            }
        }
    }
    Ok(())
}
