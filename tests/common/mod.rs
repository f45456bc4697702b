//! Helpers shared by the integration tests: paths, the real binary, WER, WAV writing.
#![allow(dead_code)]

pub mod broker;
pub mod browser;
pub mod service;
pub mod synthetic_whisper;
pub mod twilio;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/data/NAME`, or `None` (with a printed reason) when the data is absent.
pub fn shared_data(name: &str) -> Option<PathBuf> {
    let p = root().join("../shared/data").join(name);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("SKIP: {} not found (../shared is absent)", p.display());
        None
    }
}

/// The Whisper test model, or `None` (with a printed reason) when it is not provisioned.
pub fn model() -> Option<PathBuf> {
    let p = root().join("models/ggml-tiny.en.bin");
    if p.is_file() {
        Some(p)
    } else {
        eprintln!(
            "SKIP: {} not found; run models/fetch-offline.sh",
            p.display()
        );
        None
    }
}

pub fn calltone() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_calltone"));
    c.current_dir(root());
    c
}

pub fn run(args: &[&str]) -> Output {
    calltone().args(args).output().expect("run calltone")
}

/// Parses JSON lines.
pub fn events(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// The events of one type.
pub fn of_type<'a>(ev: &'a [serde_json::Value], t: &str) -> Vec<&'a serde_json::Value> {
    ev.iter().filter(|e| e["type"] == t).collect()
}

/// The `summary` of the last event, which must be `call_ended`.
pub fn summary(ev: &[serde_json::Value]) -> &serde_json::Value {
    let last = ev.last().expect("events");
    assert_eq!(last["type"], "call_ended", "{last}");
    &last["summary"]
}

/// The scorecard criterion `name` of the call's summary.
pub fn criterion<'a>(ev: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    summary(ev)["scorecard"]["criteria"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no criterion {name}"))
}

/// Writes a plain transcript (JSON lines of speaker, start, end, text) to `path`, as
/// `calltone rescore` reads it.
pub fn write_transcript(path: &Path, lines: &[(&str, f64, f64, &str)]) {
    let body: String = lines
        .iter()
        .map(|(speaker, start, end, text)| {
            serde_json::json!({"speaker": speaker, "start": start, "end": end, "text": text})
                .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(path, body).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// `calltone rescore` of a plain transcript written to `dir/{name}.jsonl`; its events
/// (the run must succeed).
pub fn rescore_transcript(
    dir: &Path,
    name: &str,
    lines: &[(&str, f64, f64, &str)],
) -> Vec<serde_json::Value> {
    let path = dir.join(format!("{name}.jsonl"));
    write_transcript(&path, lines);
    let out = run(&["rescore", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    events(&out.stdout)
}

/// Lower-case words with punctuation stripped (apostrophes kept inside words).
pub fn normalise(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| c.is_whitespace() || c == '-')
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Word error rate: word-level edit distance over the reference length.
pub fn wer(reference: &str, hypothesis: &str) -> f64 {
    let r = normalise(reference);
    let h = normalise(hypothesis);
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            let sub = prev[j] + usize::from(rw != hw);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[h.len()] as f64 / r.len().max(1) as f64
}

/// The reference transcript of an `asr/` file.
pub fn reference(asr_dir: &Path, file: &str) -> String {
    let tsv = std::fs::read_to_string(asr_dir.join("transcripts.tsv")).expect("transcripts.tsv");
    tsv.lines()
        .filter_map(|l| l.split_once('\t'))
        .find(|(f, _)| *f == file)
        .map(|(_, t)| t.to_string())
        .unwrap_or_else(|| panic!("{file} not in transcripts.tsv"))
}

/// All utterance texts of an event stream, joined in order.
pub fn joined_text(events: &[serde_json::Value]) -> String {
    events
        .iter()
        .filter(|e| e["type"] == "utterance")
        .map(|e| e["text"].as_str().unwrap_or(""))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes a WAV with an arbitrary format tag and raw sample bytes (for μ-law/A-law files).
pub fn write_wav_raw(
    path: &Path,
    format_tag: u16,
    channels: u16,
    rate: u32,
    bits: u16,
    data: &[u8],
) {
    let block = channels * bits / 8;
    let mut b = Vec::with_capacity(data.len() + 64);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data.len() as u32 + 2).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&18u32.to_le_bytes());
    b.extend_from_slice(&format_tag.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * block as u32).to_le_bytes());
    b.extend_from_slice(&block.to_le_bytes());
    b.extend_from_slice(&bits.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(data);
    std::fs::write(path, b).expect("write wav");
}

/// Writes mono f32 samples (−1..1) as a 16-bit PCM WAV.
pub fn write_wav_f32(path: &Path, rate: u32, samples: &[f32]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create wav");
    for s in samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0) as i16)
            .expect("write sample");
    }
    w.finalize().expect("finalize wav");
}

/// Reads a mono 16-bit WAV as f32.
pub fn read_wav_f32(path: &Path) -> (u32, Vec<f32>) {
    let mut r = hound::WavReader::open(path).expect("open wav");
    let rate = r.spec().sample_rate;
    let s = r
        .samples::<i16>()
        .map(|s| s.expect("sample") as f32 / 32768.0)
        .collect();
    (rate, s)
}

/// Runs `samples` (mono, `rate` Hz) through a customer-only call pipeline with `cfg`, in
/// 100 ms chunks as replay does, answering each ASR job with `answer` (as a worker would)
/// and handing every event to `on_event`.
pub fn drive_customer_call(
    cfg: &calltone::config::Config,
    rate: u32,
    samples: &[f32],
    mut answer: impl FnMut(&calltone::pipeline::AsrJob) -> calltone::asr::transcribe::Transcript,
    mut on_event: impl FnMut(calltone::events::Event),
) {
    use calltone::pipeline::{Analyzers, CallPipeline, Output};
    let analyzers = Analyzers::from_config(cfg).unwrap();
    let mut out = Vec::new();
    let mut p = CallPipeline::new(
        "driven",
        "file",
        &[calltone::audio::Speaker::Customer],
        rate,
        None,
        cfg,
        &analyzers,
        String::new,
        &mut out,
    )
    .unwrap();
    let mut feed = |out: &mut Vec<Output>, p: &mut CallPipeline| {
        while !out.is_empty() {
            for o in std::mem::take(out) {
                match o {
                    Output::Asr(job) => {
                        let t = answer(&job);
                        p.on_transcript(job.job_id, Ok(t), out);
                    }
                    Output::Event(e) => on_event(e),
                }
            }
        }
    };
    for chunk in samples.chunks(rate as usize / 10) {
        p.push(calltone::audio::Speaker::Customer, chunk, &mut out);
        feed(&mut out, &mut p);
    }
    p.finish("end_of_file", &mut out);
    feed(&mut out, &mut p);
}
