//! Trains calltone's arousal model and evaluates it leave-one-speaker-out (LOSO) with the
//! evaluation protocol of the project (issue #4):
//!
//! * per speaker, the clips in a random order with 1.5 s of silence between them, as one mono
//!   call, run through the call pipeline exactly as `calltone replay FILE --channels
//!   customer` runs it (same segmentation, functionals, running speaker baseline);
//! * each clip's arousal = the overlap-weighted mean of the arousal of the utterances that
//!   overlap it; threshold 0.5; score = UAR (mean of the recalls of high and low);
//! * repeated through a telephone channel (300–3400 Hz, 8 kHz, μ-law).
//!
//! Transcripts do not enter the arousal model, so ASR jobs are answered with empty
//! transcripts here (the numbers are identical to a replay with Whisper; `--check-binary`
//! confirms it on one speaker with the real binary).
//!
//! Usage:
//!   cargo run --release --example train_arousal -- ../shared/data [--out models/arousal.json]
//!       [--report models/arousal-report.md] [--orders 2] [--l2 3.0] [--check-binary]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use calltone::asr::transcribe::Transcript;
use calltone::audio::decode::decode_file;
use calltone::audio::resample::resample_all;
use calltone::audio::telephone::telephone_channel;
use calltone::audio::Speaker;
use calltone::config::Config;
use calltone::emotion::arousal::{fit_logistic, ArousalModel, FORMAT};
use calltone::pipeline::{Analyzers, CallPipeline, Output, UtteranceFeatures};
use calltone::prosody::Functionals;

const GAP_S: f64 = 1.5;
const RATE: u32 = 16_000;
const PRIOR_WEIGHT: f32 = 5.0;

#[derive(Clone)]
struct Clip {
    file: String,
    high: bool,
    samples: Arc<Vec<f32>>,
}

/// One speaker of one corpus.
struct SpeakerClips {
    corpus: &'static str,
    speaker: String,
    clips: Vec<Clip>,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Channel {
    Wideband,
    Telephone,
}

impl Channel {
    fn name(self) -> &'static str {
        match self {
            Channel::Wideband => "wideband",
            Channel::Telephone => "telephone",
        }
    }
}

/// A call built from a speaker's clips, and the clip spans in it.
struct Sequence {
    signal: Vec<f32>,
    rate: u32,
    /// (start, end, high) per clip, seconds.
    spans: Vec<(f64, f64, bool)>,
}

/// A processed sequence: the pipeline's utterances with their model inputs.
struct Processed {
    spans: Vec<(f64, f64, bool)>,
    utterances: Vec<UtteranceFeatures>,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let data = PathBuf::from(
        args.first()
            .context("usage: train_arousal DATA_DIR [options]")?,
    );
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let out = PathBuf::from(opt("--out").unwrap_or_else(|| "models/arousal.json".into()));
    let report_path =
        PathBuf::from(opt("--report").unwrap_or_else(|| "models/arousal-report.md".into()));
    let orders: u64 = opt("--orders").map_or(Ok(2), |s| s.parse())?;
    let l2: f64 = opt("--l2").map_or(Ok(3.0), |s| s.parse())?;
    let check_binary = args.iter().any(|a| a == "--check-binary");

    let t0 = std::time::Instant::now();
    let mut speakers = load_corpus(&data.join("emodb-train"), "emodb")?;
    speakers.extend(load_corpus(&data.join("ravdess-train"), "ravdess")?);
    eprintln!(
        "loaded {} speakers, {} clips in {:.0} s",
        speakers.len(),
        speakers.iter().map(|s| s.clips.len()).sum::<usize>(),
        t0.elapsed().as_secs_f64()
    );

    // Features: training orders (seeds 1..=orders) and the evaluation order (seed 0), both
    // channels. Evaluation sequences are never trained on for their own speaker.
    let mut jobs = Vec::new();
    for (si, _) in speakers.iter().enumerate() {
        for seed in 0..=orders {
            for ch in [Channel::Wideband, Channel::Telephone] {
                jobs.push((si, seed, ch));
            }
        }
    }
    let placeholder = placeholder_model();
    let processed = process_all(&speakers, &jobs, &placeholder)?;
    eprintln!("features extracted in {:.0} s", t0.elapsed().as_secs_f64());

    let rows_of = |si: usize, training: bool| {
        let mut x = Vec::new();
        let mut y = Vec::new();
        for ((s, seed, _), p) in &processed {
            if *s != si || (training && *seed == 0) || (!training && *seed != 0) {
                continue;
            }
            for u in &p.utterances {
                if let Some(high) = label_of(u, &p.spans) {
                    x.push(u.input.clone());
                    y.push(if high { 1.0 } else { 0.0 });
                }
            }
        }
        (x, y)
    };

    // LOSO: hold out each speaker, train on every other speaker of both corpora.
    let mut table: Vec<FoldResult> = Vec::new();
    for (si, spk) in speakers.iter().enumerate() {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for sj in 0..speakers.len() {
            if sj != si {
                let (a, b) = rows_of(sj, true);
                x.extend(a);
                y.extend(b);
            }
        }
        let model = model_from_fit(fit_logistic(&x, &y, l2), serde_json::Value::Null);
        let mut fold = FoldResult {
            corpus: spk.corpus,
            speaker: spk.speaker.clone(),
            scores: BTreeMap::new(),
        };
        for ch in [Channel::Wideband, Channel::Telephone] {
            let p = &processed[&(si, 0, ch)];
            fold.scores.insert(ch, score_clips(&model, p));
        }
        eprintln!(
            "LOSO {}:{}  wideband UAR {:.3}  telephone UAR {:.3}",
            fold.corpus,
            fold.speaker,
            fold.scores[&Channel::Wideband].uar(),
            fold.scores[&Channel::Telephone].uar()
        );
        table.push(fold);
    }

    // The shipped model: every speaker, every order (evaluation orders included).
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for si in 0..speakers.len() {
        for training in [true, false] {
            let (a, b) = rows_of(si, training);
            x.extend(a);
            y.extend(b);
        }
    }
    let summary = summarise(&table);
    let training = serde_json::json!({
        "command": format!("cargo run --release --example train_arousal -- {} --orders {orders} --l2 {l2}", data.display()),
        "corpora": ["emodb-train", "ravdess-train"],
        "speakers": speakers.len(),
        "utterances": x.len(),
        "l2": l2,
        "orders": orders,
        "loso_uar": summary,
    });
    let model = model_from_fit(fit_logistic(&x, &y, l2), training);
    std::fs::write(&out, serde_json::to_string_pretty(&model)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    let report = render_report(&table, &summary, &model, &args);
    std::fs::write(&report_path, &report)
        .with_context(|| format!("writing {}", report_path.display()))?;
    println!("{report}");
    eprintln!(
        "wrote {} and {} in {:.0} s",
        out.display(),
        report_path.display(),
        t0.elapsed().as_secs_f64()
    );

    if check_binary {
        check_against_binary(&speakers[0], &out)?;
    }
    Ok(())
}

fn placeholder_model() -> ArousalModel {
    let n = 2 * Functionals::feature_names().len();
    ArousalModel {
        format: FORMAT.into(),
        features: Functionals::feature_names()
            .iter()
            .map(|s| s.to_string())
            .collect(),
        input_mean: vec![0.0; n],
        input_sd: vec![1.0; n],
        weights: vec![0.0; n],
        bias: 0.0,
        baseline_prior_weight: PRIOR_WEIGHT,
        training: serde_json::Value::Null,
    }
}

fn model_from_fit(
    (input_mean, input_sd, weights, bias): (Vec<f32>, Vec<f32>, Vec<f32>, f32),
    training: serde_json::Value,
) -> ArousalModel {
    ArousalModel {
        input_mean,
        input_sd,
        weights,
        bias,
        training,
        ..placeholder_model()
    }
}

fn load_corpus(dir: &Path, corpus: &'static str) -> Result<Vec<SpeakerClips>> {
    let tsv = std::fs::read_to_string(dir.join("labels.tsv"))
        .with_context(|| format!("{}: labels.tsv", dir.display()))?;
    let mut header: Vec<&str> = Vec::new();
    let mut by_speaker: BTreeMap<String, Vec<Clip>> = BTreeMap::new();
    for (i, line) in tsv.lines().enumerate() {
        let cols: Vec<&str> = line.split('\t').collect();
        if i == 0 {
            header = cols;
            continue;
        }
        let col = |name: &str| {
            header
                .iter()
                .position(|h| *h == name)
                .and_then(|j| cols.get(j).copied())
        };
        let (Some(file), Some(speaker), Some(arousal)) =
            (col("file"), col("speaker"), col("arousal"))
        else {
            bail!("{}: line {}: missing columns", dir.display(), i + 1);
        };
        let high = match arousal {
            "high" => true,
            "low" => false,
            _ => continue, // "excluded" (disgust)
        };
        let decoded = decode_file(&dir.join(file))?;
        let mono = &decoded.channels[0];
        let samples = if decoded.sample_rate == RATE {
            mono.clone()
        } else {
            resample_all(mono, decoded.sample_rate, RATE)?
        };
        by_speaker
            .entry(speaker.to_string())
            .or_default()
            .push(Clip {
                file: file.to_string(),
                high,
                samples: Arc::new(samples),
            });
    }
    Ok(by_speaker
        .into_iter()
        .map(|(speaker, clips)| SpeakerClips {
            corpus,
            speaker,
            clips,
        })
        .collect())
}

/// A small deterministic PRNG (SplitMix64) for the clip orders.
fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut next = || {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    for i in (1..v.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

fn build_sequence(spk: &SpeakerClips, seed: u64, ch: Channel) -> Result<Sequence> {
    let mut clips = spk.clips.clone();
    shuffle(
        &mut clips,
        seed * 7919 + spk.speaker.len() as u64 + hash(&spk.speaker),
    );
    let gap = vec![0.0f32; (GAP_S * RATE as f64) as usize];
    let mut signal = Vec::new();
    let mut spans = Vec::new();
    for (i, c) in clips.iter().enumerate() {
        if i > 0 {
            signal.extend_from_slice(&gap);
        }
        let start = signal.len() as f64 / RATE as f64;
        signal.extend_from_slice(&c.samples);
        spans.push((start, signal.len() as f64 / RATE as f64, c.high));
    }
    Ok(match ch {
        Channel::Wideband => Sequence {
            signal,
            rate: RATE,
            spans,
        },
        Channel::Telephone => Sequence {
            signal: telephone_channel(&signal, RATE)?,
            rate: 8000,
            spans,
        },
    })
}

fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Runs a sequence through the call pipeline as replay does, without transcripts.
fn run_pipeline(seq: &Sequence, model: &ArousalModel) -> Result<Vec<UtteranceFeatures>> {
    let cfg = Config::default();
    let mut analyzers = Analyzers::from_config(&cfg)?;
    analyzers.arousal = Arc::new(model.clone());
    let mut out = Vec::new();
    let mut p = CallPipeline::new(
        "train",
        "file",
        &[Speaker::Customer],
        seq.rate,
        &cfg,
        &analyzers,
        String::new,
        &mut out,
    )?;
    p.record_features();
    let chunk = seq.rate as usize / 10;
    let answer = |p: &mut CallPipeline, out: &mut Vec<Output>| {
        while !out.is_empty() {
            for o in std::mem::take(out) {
                if let Output::Asr(job) = o {
                    p.on_transcript(job.job_id, Ok(Transcript::default()), out);
                }
            }
        }
    };
    for c in seq.signal.chunks(chunk) {
        p.push(Speaker::Customer, c, &mut out);
        answer(&mut p, &mut out);
    }
    p.finish("end_of_file", &mut out);
    answer(&mut p, &mut out);
    Ok(p.take_features())
}

type Key = (usize, u64, Channel);

fn process_all(
    speakers: &[SpeakerClips],
    jobs: &[Key],
    model: &ArousalModel,
) -> Result<BTreeMap<Key, Processed>> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(BTreeMap::new());
    let errors = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&(si, seed, ch)) = jobs.get(i) else {
                    break;
                };
                let r = build_sequence(&speakers[si], seed, ch)
                    .and_then(|seq| Ok((run_pipeline(&seq, model)?, seq.spans)));
                match r {
                    Ok((utterances, spans)) => {
                        results
                            .lock()
                            .unwrap()
                            .insert((si, seed, ch), Processed { spans, utterances });
                    }
                    Err(e) => errors.lock().unwrap().push(e),
                }
            });
        }
    });
    if let Some(e) = errors.into_inner().unwrap().pop() {
        return Err(e);
    }
    Ok(results.into_inner().unwrap())
}

fn overlap(a: (f64, f64), b: (f64, f64)) -> f64 {
    (a.1.min(b.1) - a.0.max(b.0)).max(0.0)
}

/// The label of the clip an utterance overlaps most; `None` when it overlaps none.
fn label_of(u: &UtteranceFeatures, spans: &[(f64, f64, bool)]) -> Option<bool> {
    spans
        .iter()
        .map(|&(s, e, h)| (overlap((u.start, u.end), (s, e)), h))
        .filter(|(o, _)| *o > 0.0)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, h)| h)
}

#[derive(Debug, Clone, Default)]
struct ClipScores {
    /// (truth, predicted high, clip position in the call)
    clips: Vec<(bool, bool, usize)>,
    unscored: usize,
}

impl ClipScores {
    fn uar_of(items: &[(bool, bool, usize)]) -> f64 {
        let recall = |want: bool| {
            let n = items.iter().filter(|c| c.0 == want).count();
            let ok = items.iter().filter(|c| c.0 == want && c.1 == want).count();
            (n > 0).then(|| ok as f64 / n as f64)
        };
        match (recall(true), recall(false)) {
            (Some(a), Some(b)) => (a + b) / 2.0,
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => f64::NAN,
        }
    }
    fn uar(&self) -> f64 {
        Self::uar_of(&self.clips)
    }
}

/// The protocol's clip scores for one processed sequence under `model`.
fn score_clips(model: &ArousalModel, p: &Processed) -> ClipScores {
    let mut s = ClipScores::default();
    for (k, &(cs, ce, high)) in p.spans.iter().enumerate() {
        let (mut num, mut den) = (0.0, 0.0);
        for u in &p.utterances {
            let o = overlap((u.start, u.end), (cs, ce));
            if o > 0.0 {
                num += o * model.predict_input(&u.input) as f64;
                den += o;
            }
        }
        if den == 0.0 {
            s.unscored += 1;
        }
        // A clip no utterance covers counts as predicted low.
        let pred = den > 0.0 && num / den >= 0.5;
        s.clips.push((high, pred, k));
    }
    s
}

struct FoldResult {
    corpus: &'static str,
    speaker: String,
    scores: BTreeMap<Channel, ClipScores>,
}

fn summarise(table: &[FoldResult]) -> serde_json::Value {
    let mut v = serde_json::Map::new();
    for corpus in ["emodb", "ravdess"] {
        for ch in [Channel::Wideband, Channel::Telephone] {
            let folds: Vec<&FoldResult> = table.iter().filter(|f| f.corpus == corpus).collect();
            let pooled: Vec<(bool, bool, usize)> = folds
                .iter()
                .flat_map(|f| f.scores[&ch].clips.iter().copied())
                .collect();
            let first: Vec<_> = pooled.iter().copied().filter(|c| c.2 < 3).collect();
            let rest: Vec<_> = pooled.iter().copied().filter(|c| c.2 >= 3).collect();
            let mean_speaker =
                folds.iter().map(|f| f.scores[&ch].uar()).sum::<f64>() / folds.len().max(1) as f64;
            v.insert(
                format!("{corpus}_{}", ch.name()),
                serde_json::json!({
                    "uar_pooled": round3(ClipScores::uar_of(&pooled)),
                    "uar_mean_per_speaker": round3(mean_speaker),
                    "uar_first3_clips": round3(ClipScores::uar_of(&first)),
                    "uar_later_clips": round3(ClipScores::uar_of(&rest)),
                    "clips": pooled.len(),
                    "unscored_clips": folds.iter().map(|f| f.scores[&ch].unscored).sum::<usize>(),
                }),
            );
        }
    }
    serde_json::Value::Object(v)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn render_report(
    table: &[FoldResult],
    summary: &serde_json::Value,
    model: &ArousalModel,
    args: &[String],
) -> String {
    let mut r = String::new();
    r.push_str("# Arousal model: leave-one-speaker-out evaluation\n\n");
    r.push_str(&format!(
        "Reproduce: `cargo run --release --example train_arousal -- {}`\n\n",
        args.join(" ")
    ));
    r.push_str("Protocol: per held-out speaker, all their clips in a random order with 1.5 s of silence between them as one mono call through the replay pipeline (customer channel); clip arousal = overlap-weighted mean of utterance arousal; threshold 0.5; UAR = mean of the recalls of high and low. Telephone = 300–3400 Hz band-pass, 8 kHz, μ-law. The model of each fold is trained on every other speaker of both corpora.\n\n");
    r.push_str("| corpus | channel | UAR (pooled clips) | mean per-speaker UAR | first 3 clips | later clips |\n|---|---|---|---|---|---|\n");
    for corpus in ["emodb", "ravdess"] {
        for ch in [Channel::Wideband, Channel::Telephone] {
            let s = &summary[format!("{corpus}_{}", ch.name())];
            r.push_str(&format!(
                "| {corpus} | {} | {} | {} | {} | {} |\n",
                ch.name(),
                s["uar_pooled"],
                s["uar_mean_per_speaker"],
                s["uar_first3_clips"],
                s["uar_later_clips"]
            ));
        }
    }
    r.push_str("\nPer speaker:\n\n| corpus | speaker | clips | wideband UAR | telephone UAR |\n|---|---|---|---|---|\n");
    for f in table {
        r.push_str(&format!(
            "| {} | {} | {} | {:.3} | {:.3} |\n",
            f.corpus,
            f.speaker,
            f.scores[&Channel::Wideband].clips.len(),
            f.scores[&Channel::Wideband].uar(),
            f.scores[&Channel::Telephone].uar()
        ));
    }
    r.push_str("\nLargest weights of the shipped model (standardised inputs; z = relative to the speaker's running baseline):\n\n");
    let names = Functionals::feature_names();
    let mut w: Vec<(String, f32)> = model
        .weights
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            let n = names[i % names.len()];
            (
                if i < names.len() {
                    format!("z:{n}")
                } else {
                    format!("raw:{n}")
                },
                w,
            )
        })
        .collect();
    w.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
    for (n, v) in w.iter().take(10) {
        r.push_str(&format!("- `{n}`: {v:+.3}\n"));
    }
    r
}

/// Replays one speaker's evaluation sequence with the real binary and compares its
/// utterance arousal with the library path.
fn check_against_binary(spk: &SpeakerClips, model_path: &Path) -> Result<()> {
    let seq = build_sequence(spk, 0, Channel::Wideband)?;
    let dir = std::env::temp_dir().join("calltone-arousal-check");
    std::fs::create_dir_all(&dir)?;
    let wav = dir.join(format!("{}-{}.wav", spk.corpus, spk.speaker));
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: seq.rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&wav, spec)?;
    for &s in &seq.signal {
        w.write_sample((s * 32767.0).round().clamp(-32768.0, 32767.0) as i16)?;
    }
    w.finalize()?;
    let cfg = dir.join("calltone.toml");
    std::fs::write(
        &cfg,
        format!(
            "[emotion]\narousal_model = {:?}\n",
            std::fs::canonicalize(model_path)?.display().to_string()
        ),
    )?;
    let out = std::process::Command::new("target/release/calltone")
        .args([
            "replay",
            wav.to_str().unwrap(),
            "--channels",
            "customer",
            "--config",
        ])
        .arg(&cfg)
        .output()
        .context("running target/release/calltone (build it first)")?;
    if !out.status.success() {
        bail!("replay failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let binary: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["type"] == "utterance")
        .filter_map(|e| e["arousal"].as_f64())
        .collect();
    let model = ArousalModel::load(model_path)?;
    let lib: Vec<f64> = run_pipeline(&seq, &model)?
        .iter()
        .filter_map(|u| u.arousal)
        .map(|a| ((a * 100.0).round() / 100.0) as f64)
        .collect();
    let same =
        binary.len() == lib.len() && binary.iter().zip(&lib).all(|(a, b)| (a - b).abs() <= 0.011);
    eprintln!(
        "binary check on {}:{}: {} utterances via replay, {} via library, identical: {same}",
        spk.corpus,
        spk.speaker,
        binary.len(),
        lib.len()
    );
    if !same {
        bail!("replay binary and library disagree:\n{binary:?}\n{lib:?}");
    }
    Ok(())
}
