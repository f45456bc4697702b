//! Trains calltone's arousal model on four corpora (EmoDB, RAVDESS, TurEV-DB, BAVED) and
//! evaluates it leave-one-corpus-out (LOCO: the generalisation figure, issue #11) and
//! leave-one-speaker-out (LOSO: the in-corpus figure) with the project's protocol:
//!
//! * per speaker, the clips in a random order with 1.5 s of silence between them, as one mono
//!   call, run through the call pipeline exactly as `calltone replay FILE --channels
//!   customer` runs it (same segmentation, functionals, descriptors, running baseline);
//! * each clip's arousal = the overlap-weighted mean of the arousal of the utterances that
//!   overlap it; threshold 0.5; score = UAR (mean of the recalls of high and low);
//! * repeated through a telephone channel (300–3400 Hz, 8 kHz, μ-law), which the pipeline
//!   receives at 8 kHz and so scores with the model's narrowband head.
//!
//! Feature extraction (the pipeline run, minutes) happens once: each utterance's frames and
//! cycles are cached (`--cache FILE`, keyed by the clip list and the sources that shape the
//! frames), and everything after it — descriptors, baselines, fits, evaluation — is
//! recomputed from the cache in seconds with the library's own code, so the numbers are
//! the pipeline's. Transcripts do not enter the arousal model, so ASR jobs are answered with
//! empty transcripts (`--check-binary` confirms on one speaker that the real binary, with
//! Whisper, gives the same utterance arousal).
//!
//! Model selection is by leave-one-corpus-out: in every LOCO fold the hyperparameters
//! (baseline prior weight, L2, separate or pooled wideband/narrowband heads, corpus balance)
//! are chosen by leave-one-corpus-out among that fold's three training corpora only; the
//! held-out corpus never influences its own model. The shipped model's hyperparameters are
//! chosen the same way over all four corpora; the LOSO table uses them (it is the in-corpus
//! reference, not a selection). Training is augmented with simulated clip orders (the cached
//! utterances re-sequenced, the running baseline recomputed, every clip at its own random
//! gain within ±`--gain-jitter` dB and each utterance cut to a random span of at least
//! `--crop-jitter` seconds), weighted so that every speaker's utterances count once
//! in total.
//!
//! Usage:
//!   cargo run --release --example train_arousal -- DATA_DIR [--cache FILE]
//!       [--out models/arousal.json] [--report models/arousal-report.md] [--orders 4]
//!       [--eval-orders 10] [--sensitivity] [--check-binary]
//!       [--w-grid 0.5,2,5] [--l2-grid 16,64,256] [--cb-grid 0.5] [--hidden-grid 0]
//!       [--bound-grid 0] [--predictive-grid 0] [--fixed w,l2,split|pooled,cb,all|invariant|none[,decay]
//!       [--hidden N] [--bound B] [--predictive]] [--drop NAME,...] [--site-adapt]
//!       [--score-model FILE] [--dump-descriptors FILE] [--gain-jitter 10]
//!       [--crop-jitter 0.5] [--eval-gain-jitter DB] [--select mean|worst]
//!
//! The `--*-grid` options replace one axis of the selection's grid (experiments,
//! `models/arousal-experiments.md`; `--bound-grid` 0 means unbounded); `--fixed` skips the
//! selection, so it cannot be combined with them.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use calltone::asr::transcribe::Transcript;
use calltone::audio::decode::decode_file;
use calltone::audio::resample::resample_all;
use calltone::audio::telephone::telephone_channel;
use calltone::audio::Speaker;
use calltone::config::Config;
use calltone::emotion::arousal::{
    descriptor_names, descriptors, fit_logistic_weighted, fit_mlp_weighted, input_vector,
    ArousalModel, Band, Descriptors, Head,
};
use calltone::pipeline::{Analyzers, CallPipeline, Output, UtteranceFeatures};
use calltone::prosody::spectral::LOUDNESS_EXPONENT;
use calltone::prosody::{functionals, Cycle, Frame};

const GAP_S: f64 = 1.5;
/// Simulated orders play every clip at a random gain within ± this many dB (`--gain-jitter`;
/// see `jittered`). Set a priori, not selected: the training corpora keep their
/// recording gain, so a selection among them could not see what the jitter protects against.
const GAIN_JITTER_DB: f32 = 10.0;
/// `--crop-jitter S` (an experiment, off by default): simulated orders also hear each
/// utterance cut to a random span of at least S seconds (see `jittered`), so that the
/// model meets one-word answers and whole sentences on every corpus. Measured on 2026-12-07
/// (`models/arousal-experiments.md`): +0.006 held-out UAR, but more false alarms on calm
/// speech, so the shipped model is trained without it.
const CROP_JITTER_S: f64 = 0.0;
/// The training corpora (`DATA_DIR/{name}-train`), in report order.
const CORPORA: [&str; 4] = ["emodb", "ravdess", "turev", "baved"];
const RATE: u32 = 16_000;

/// The hyperparameter grid searched by the selection (fixed a priori; `--w-grid`, `--l2-grid`,
/// `--cb-grid`, `--hidden-grid`, `--bound-grid` and `--predictive-grid` replace an axis for
/// experiments, `models/arousal-experiments.md`).
const GRID_PRIOR_WEIGHT: [f32; 3] = [0.5, 2.0, 5.0];
const GRID_L2: [f64; 3] = [16.0, 64.0, 256.0];
const GRID_SPLIT: [bool; 1] = [true];
const GRID_CORPUS_BALANCE: [f32; 1] = [0.5];
const GRID_RAW: [(RawSet, Option<f32>); 5] = [
    (RawSet::None, None),
    (RawSet::Invariant, Some(2.0)),
    (RawSet::Invariant, None),
    (RawSet::All, Some(2.0)),
    (RawSet::All, None),
];

/// Which descriptors enter the model's raw (absolute) block besides their z-scores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RawSet {
    /// Every descriptor.
    All,
    /// Only those that do not move with the speaker's pitch register or the line's gain.
    Invariant,
    /// None: the model sees the voice only relative to the speaker's running baseline.
    None,
}

/// Descriptors that carry the speaker's pitch register (sex, age) or the recording gain
/// rather than how aroused the speaker is; left out of the raw block by `RawSet::Invariant`.
const REGISTER_OR_GAIN: [&str; 16] = [
    "f0_mean_st",
    "f0_p10_st",
    "f0_p50_st",
    "f0_p90_st",
    "loudness_mean",
    "loudness_std",
    "loudness_p20",
    "loudness_p50",
    "loudness_p80",
    "loudness_voiced_mean",
    "loudness_log_mean",
    "loudness_rise_per_s",
    "loudness_trend_per_s",
    "rms_db_mean",
    "rms_db_p90",
    "has_f0",
];

impl RawSet {
    /// Whether the raw value of descriptor `name` is a model input.
    fn keeps(self, name: &str) -> bool {
        match self {
            RawSet::All => true,
            RawSet::Invariant => !REGISTER_OR_GAIN.contains(&name),
            RawSet::None => false,
        }
    }
    fn label(self) -> &'static str {
        match self {
            RawSet::All => "raw=all",
            RawSet::Invariant => "raw=invariant",
            RawSet::None => "raw=none",
        }
    }
}

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

const BANDS: [Band; 2] = [Band::Wideband, Band::Narrowband];

fn channel_name(b: Band) -> &'static str {
    match b {
        Band::Wideband => "wideband",
        Band::Narrowband => "telephone",
    }
}

/// A call built from a speaker's clips, and the clip spans in it.
struct Sequence {
    signal: Vec<f32>,
    rate: u32,
    /// (start, end, high) per clip, seconds, in call order.
    spans: Vec<(f64, f64, bool)>,
}

/// One utterance the pipeline segmented, as cached.
#[derive(Clone)]
struct Utt {
    start: f64,
    end: f64,
    frames: Vec<Frame>,
    cycles: Vec<Cycle>,
}

/// A processed evaluation call (the protocol's order) of one speaker through one channel.
struct Processed {
    spans: Vec<(f64, f64, bool)>,
    utterances: Vec<Utt>,
}

/// What the models see of one speaker on one band: utterance descriptors in call order,
/// the clip (index into `spans`) each belongs to, and the clip labels.
#[derive(Clone)]
struct Seq {
    spans: Vec<(f64, f64, bool)>,
    /// (start, end) per utterance.
    times: Vec<(f64, f64)>,
    desc: Vec<Descriptors>,
    /// Clip index of each utterance (largest overlap); `None` when it overlaps no clip.
    clip: Vec<Option<usize>>,
    /// Training only: per simulated order `o` (index `o - 1`), the descriptors of the same
    /// utterances with every clip played at its own random gain (`--gain-jitter`); empty
    /// when the jitter is off.
    jittered: Vec<Vec<Descriptors>>,
    /// `--eval-gain-jitter`: the descriptors scored in evaluation (the same utterances with
    /// every clip at its own gain), in place of `desc`; training never sees them.
    eval_desc: Option<Vec<Descriptors>>,
}

/// Hyperparameters.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Hyper {
    prior_weight: f32,
    l2: f64,
    split: bool,
    corpus_balance: f32,
    raw: RawSet,
    /// The heads' `raw_decay` (utterances), `None` for raw inputs that never fade.
    raw_decay: Option<f32>,
    /// Hidden tanh units of a one-hidden-layer perceptron; 0: logistic regression.
    hidden: usize,
    /// The heads' `raw_bound` (logit units), `None`: unbounded.
    raw_bound: Option<f32>,
    /// z-scores against the predictive spread (the heads carry `prior_between_sd`).
    predictive: bool,
}

impl Hyper {
    fn label(&self) -> String {
        format!(
            "w={} l2={} {} cb={} {}{}{}{}{}",
            self.prior_weight,
            self.l2,
            if self.split { "split" } else { "pooled" },
            self.corpus_balance,
            self.raw.label(),
            self.raw_decay
                .map_or(String::new(), |d| format!(" fading over {d}")),
            if self.hidden > 0 {
                format!(" mlp{}", self.hidden)
            } else {
                String::new()
            },
            self.raw_bound
                .filter(|_| self.raw != RawSet::None)
                .map_or(String::new(), |b| format!(" raw bound {b}")),
            if self.predictive { " predictive" } else { "" }
        )
    }
}

/// The grid's axes: the defaults above, or lists given on the command line for experiments.
struct GridSpec {
    hidden: Vec<usize>,
    prior_weight: Vec<f32>,
    l2: Vec<f64>,
    corpus_balance: Vec<f32>,
    /// Raw bounds; 0: unbounded.
    raw_bound: Vec<f32>,
    /// Predictive z-scores: 0 off, 1 on.
    predictive: Vec<u8>,
}

fn grid(spec: &GridSpec) -> Vec<Hyper> {
    let mut g = Vec::new();
    for &hidden in &spec.hidden {
        for &(raw, raw_decay) in &GRID_RAW {
            for &split in &GRID_SPLIT {
                for &corpus_balance in &spec.corpus_balance {
                    for &prior_weight in &spec.prior_weight {
                        for &l2 in &spec.l2 {
                            // A bound applies to a linear head's raw inputs; other points
                            // are searched once, unbounded.
                            let bounds = if raw == RawSet::None || hidden > 0 {
                                &[0.0][..]
                            } else {
                                &spec.raw_bound[..]
                            };
                            for &bound in bounds {
                                for &predictive in &spec.predictive {
                                    g.push(Hyper {
                                        prior_weight,
                                        l2,
                                        split,
                                        corpus_balance,
                                        raw,
                                        raw_decay,
                                        hidden,
                                        raw_bound: (bound > 0.0).then_some(bound),
                                        predictive: predictive > 0,
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    g
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
    let cache = opt("--cache").map(PathBuf::from);
    let orders: u64 = opt("--orders").map_or(Ok(4), |s| s.parse())?;
    let eval_orders: u64 = opt("--eval-orders").map_or(Ok(10), |s| s.parse())?;
    let gain_jitter_db: f32 = opt("--gain-jitter").map_or(Ok(GAIN_JITTER_DB), |s| s.parse())?;
    if !(gain_jitter_db.is_finite() && (0.0..=40.0).contains(&gain_jitter_db)) {
        bail!("--gain-jitter {gain_jitter_db}: a range in dB, 0 to 40 (0: off)");
    }
    let crop_min_s: f64 = opt("--crop-jitter").map_or(Ok(CROP_JITTER_S), |s| s.parse())?;
    if !(crop_min_s.is_finite() && crop_min_s >= 0.0) {
        bail!("--crop-jitter {crop_min_s}: a shortest span in seconds (0: off)");
    }
    let fixed: Option<Hyper> = match opt("--fixed") {
        // "w,l2,split|pooled,cb,all|invariant|none[,decay]": skip the selection (quick
        // experiments).
        Some(s) => {
            let p: Vec<&str> = s.split(',').collect();
            if !(5..=6).contains(&p.len()) {
                bail!("--fixed w,l2,split|pooled,corpus_balance,all|invariant|none[,raw_decay]");
            }
            let raw_bound = match opt("--bound").map(|s| s.parse::<f32>()).transpose()? {
                None => None,
                Some(0.0) => None,
                Some(b) if b.is_finite() && b > 0.0 => Some(b),
                Some(b) => bail!("--bound {b}: a bound is positive (0: none)"),
            };
            let h = Hyper {
                prior_weight: p[0].parse()?,
                l2: p[1].parse()?,
                split: p[2] == "split",
                corpus_balance: p[3].parse()?,
                raw: match p[4] {
                    "all" => RawSet::All,
                    "invariant" => RawSet::Invariant,
                    "none" => RawSet::None,
                    other => bail!("--fixed: raw set {other:?}"),
                },
                raw_decay: p.get(5).map(|d| d.parse()).transpose()?,
                hidden: opt("--hidden").map_or(Ok(0), |s| s.parse())?,
                raw_bound,
                predictive: args.iter().any(|a| a == "--predictive"),
            };
            if h.raw_bound.is_some() && (h.raw == RawSet::None || h.hidden > 0) {
                bail!(
                    "--bound applies to a linear head with raw inputs (not raw=none or --hidden)"
                );
            }
            Some(h)
        }
        None => None,
    };
    let given = |name: &str| args.iter().any(|a| a == name);
    if fixed.is_none()
        && ["--hidden", "--bound", "--predictive"]
            .into_iter()
            .any(given)
    {
        bail!("--hidden, --bound and --predictive go with --fixed (the grid has --*-grid)");
    }
    // Experiments: `--hidden-grid 0,8` (hidden-layer sizes, 0: logistic), `--l2-grid`,
    // `--w-grid`, `--cb-grid`, `--bound-grid` (0: unbounded), `--predictive-grid 0,1`: the
    // selection searches these lists instead of the defaults.
    fn list<T>(v: Option<String>, default: &[T]) -> Result<Vec<T>>
    where
        T: std::str::FromStr + Copy,
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        match v {
            None => Ok(default.to_vec()),
            Some(s) => Ok(s.split(',').map(|x| x.parse()).collect::<Result<_, _>>()?),
        }
    }
    let spec = GridSpec {
        hidden: list(opt("--hidden-grid"), &[0])?,
        prior_weight: list(opt("--w-grid"), &GRID_PRIOR_WEIGHT)?,
        l2: list(opt("--l2-grid"), &GRID_L2)?,
        corpus_balance: list(opt("--cb-grid"), &GRID_CORPUS_BALANCE)?,
        raw_bound: list(opt("--bound-grid"), &[0.0])?,
        predictive: list(opt("--predictive-grid"), &[0])?,
    };
    const GRID_OPTIONS: [&str; 6] = [
        "--hidden-grid",
        "--w-grid",
        "--l2-grid",
        "--cb-grid",
        "--bound-grid",
        "--predictive-grid",
    ];
    if spec.raw_bound.iter().any(|b| !(b.is_finite() && *b >= 0.0)) {
        bail!("--bound-grid: bounds are positive, or 0 for none");
    }
    if fixed.is_some() && GRID_OPTIONS.into_iter().any(given) {
        bail!("--fixed skips the selection; the --*-grid options cannot be combined with it");
    }
    let sensitivity = args.iter().any(|a| a == "--sensitivity");
    let check_binary = args.iter().any(|a| a == "--check-binary");
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());

    let t0 = std::time::Instant::now();
    let mut speakers = Vec::new();
    for corpus in CORPORA {
        speakers.extend(load_corpus(&data.join(format!("{corpus}-train")), corpus)?);
    }
    eprintln!(
        "loaded {} speakers, {} clips in {:.0} s",
        speakers.len(),
        speakers.iter().map(|s| s.clips.len()).sum::<usize>(),
        t0.elapsed().as_secs_f64()
    );

    // The pipeline's utterances of every speaker's evaluation call (order seed 0), both
    // channels: from the cache when it matches, else extracted (and cached).
    let key = cache_key(&speakers);
    let processed = match cache.as_deref().map(|c| read_cache(c, key)) {
        Some(Ok(Some(p))) => {
            eprintln!("features from cache {}", cache.as_ref().unwrap().display());
            p
        }
        other => {
            if let Some(Err(e)) = other {
                eprintln!("cache unreadable ({e:#}); extracting");
            }
            let p = process_all(&speakers, threads)?;
            if let Some(c) = &cache {
                write_cache(c, key, &p)?;
            }
            eprintln!("features extracted in {:.0} s", t0.elapsed().as_secs_f64());
            p
        }
    };
    let mut seqs: Vec<[Seq; 2]> = (0..speakers.len())
        .map(|si| BANDS.map(|b| make_seq(&processed[&(si, b)])))
        .collect();
    // Simulated orders hear every clip at its own gain, each utterance cut to a random span
    // (see `jittered`).
    if gain_jitter_db > 0.0 || crop_min_s > 0.0 {
        for (si, bands) in seqs.iter_mut().enumerate() {
            for (bi, s) in bands.iter_mut().enumerate() {
                let p = &processed[&(si, BANDS[bi])];
                s.jittered = (1..orders)
                    .map(|o| jittered(p, s, o, gain_jitter_db, crop_min_s))
                    .collect();
            }
        }
    }
    // `--eval-gain-jitter DB`: evaluation hears every clip at its own gain (robustness to
    // automatic gain control and normalised recordings; a seed no training order uses).
    if let Some(db) = opt("--eval-gain-jitter") {
        let db: f32 = db.parse()?;
        if fixed.is_none() && opt("--score-model").is_none() {
            bail!("--eval-gain-jitter goes with --fixed or --score-model (the selection scores calls too)");
        }
        for (si, bands) in seqs.iter_mut().enumerate() {
            for (bi, s) in bands.iter_mut().enumerate() {
                s.eval_desc = Some(jittered(&processed[&(si, BANDS[bi])], s, 1 << 40, db, 0.0));
            }
        }
    }
    // `--drop a,b`: those descriptors are treated as never measured (experiments: does the
    // model travel better without them?).
    if let Some(list) = opt("--drop") {
        let names = descriptor_names();
        let drop: Vec<usize> = list
            .split(',')
            .map(|n| {
                names
                    .iter()
                    .position(|x| x == n)
                    .with_context(|| format!("--drop: no descriptor {n:?}"))
            })
            .collect::<Result<_>>()?;
        let all_desc = seqs.iter_mut().flatten().flat_map(|s| {
            s.desc
                .iter_mut()
                .chain(s.jittered.iter_mut().flatten())
                .chain(s.eval_desc.iter_mut().flatten())
        });
        for d in all_desc {
            for &j in &drop {
                d.0[j] = None;
            }
        }
    }
    // `--dump-descriptors FILE`: every utterance's descriptors as TSV (corpus, speaker,
    // channel, utterance, clip, label), for analysis outside this program.
    if let Some(path) = opt("--dump-descriptors") {
        dump_descriptors(Path::new(&path), &speakers, &seqs)?;
    }
    let corpus_of: Vec<&str> = speakers.iter().map(|s| s.corpus).collect();
    let ctx = Ctx {
        seqs: &seqs,
        corpus: &corpus_of,
        orders,
        grid: grid(&spec),
        site_adapt: args.iter().any(|a| a == "--site-adapt"),
        select: match opt("--select").as_deref() {
            None | Some("mean") => SelectRule::Mean,
            Some("worst") => SelectRule::Worst,
            Some(other) => bail!("--select {other:?}: mean or worst"),
        },
    };

    let all: Vec<usize> = (0..speakers.len()).collect();

    // `--score-model FILE`: score an existing model on every speaker and stop (the "before"
    // figures of a change; for corpora the model was not trained on they are held-out).
    if let Some(path) = opt("--score-model") {
        let model = ArousalModel::load(Path::new(&path))?;
        let h = fixed.unwrap_or(Hyper {
            prior_weight: model.wideband.prior_weight,
            l2: f64::NAN,
            split: true,
            corpus_balance: f32::NAN,
            raw: RawSet::All,
            raw_decay: model.wideband.raw_decay,
            hidden: model.wideband.hidden.as_ref().map_or(0, |h| h.bias.len()),
            raw_bound: model.wideband.raw_bound,
            predictive: model.wideband.prior_between_sd.is_some(),
        });
        let table = parallel_map(&all, threads, |&si| {
            score_speaker(&ctx, &speakers, si, &model, h, eval_orders)
        });
        let mut r = format!("Scores of {path} (protocol calls, all speakers)\n\n");
        summary_table(&mut r, &summarise(&table));
        r.push_str(
            "\n| corpus | speaker | clips | wideband | telephone |\n|---|---|---|---|---|\n",
        );
        for f in &table {
            r.push_str(&format!(
                "| {} | {} | {} | {:.3} | {:.3} |\n",
                f.corpus,
                f.speaker,
                f.scores[&Band::Wideband].clips.len(),
                f.scores[&Band::Wideband].uar(),
                f.scores[&Band::Narrowband].uar()
            ));
        }
        println!("{r}");
        return Ok(());
    }

    // Leave one corpus out: each corpus scored by a model trained on the others, with
    // hyperparameters chosen by leave-one-corpus-out on those others only.
    let mut loco: Vec<FoldResult> = Vec::new();
    for held in CORPORA {
        let (train, test): (Vec<usize>, Vec<usize>) =
            all.iter().partition(|&&s| corpus_of[s] != held);
        if test.is_empty() || train.is_empty() {
            continue;
        }
        let h = fixed.unwrap_or_else(|| select_loco(&ctx, &train, threads).0);
        let model = train_model(&ctx, &train, h);
        let folds = parallel_map(&test, threads, |&si| {
            score_speaker(&ctx, &speakers, si, &model, h, eval_orders)
        });
        for f in &folds {
            eprintln!(
                "LOCO {}:{} [{}]  wideband UAR {:.3}  telephone UAR {:.3}",
                f.corpus,
                f.speaker,
                h.label(),
                f.scores[&Band::Wideband].uar(),
                f.scores[&Band::Narrowband].uar()
            );
        }
        loco.extend(folds);
    }
    let loco_summary = summarise(&loco);

    // The shipped hyperparameters: leave-one-corpus-out over all corpora.
    let (h, inner) = match fixed {
        Some(h) => (h, Vec::new()),
        None => select_loco(&ctx, &all, threads),
    };

    // Leave one speaker out with those hyperparameters (in-corpus figures).
    let table: Vec<FoldResult> = parallel_map(&all, threads, |&si| {
        let train: Vec<usize> = all.iter().copied().filter(|&s| s != si).collect();
        let model = train_model(&ctx, &train, h);
        score_speaker(&ctx, &speakers, si, &model, h, eval_orders)
    });
    for f in &table {
        eprintln!(
            "LOSO {}:{}  wideband UAR {:.3}  telephone UAR {:.3}",
            f.corpus,
            f.speaker,
            f.scores[&Band::Wideband].uar(),
            f.scores[&Band::Narrowband].uar()
        );
    }
    let summary = summarise(&table);

    // Sensitivity (reporting only, never used for selection): leave-one-corpus-out per grid
    // point with the training corpora's own selection skipped.
    let mut sens = Vec::new();
    if sensitivity {
        for h in ctx.grid.clone() {
            let mut cells = Vec::new();
            for held in CORPORA {
                let (train, test): (Vec<usize>, Vec<usize>) =
                    all.iter().partition(|&&s| corpus_of[s] != held);
                let m = train_model(&ctx, &train, h);
                for (bi, &band) in BANDS.iter().enumerate() {
                    let pooled: Vec<_> = test
                        .iter()
                        .flat_map(|&s| evaluate(&m, &ctx.seqs[s][bi], band, None).clips)
                        .collect();
                    cells.push(ClipScores::uar_of(&pooled));
                }
            }
            eprintln!("sensitivity {}: {:?}", h.label(), cells);
            sens.push((h, cells));
        }
    }

    let command = format!(
        "cargo run --release --example train_arousal -- {}",
        args.join(" ")
    );
    let mut training = serde_json::json!({
        "command": command,
        "corpora": CORPORA.map(|c| format!("{c}-train")),
        "speakers": speakers.len(),
        "hyperparameters": {
            "prior_weight": h.prior_weight,
            "l2": h.l2,
            "heads": if h.split { "separate wideband/narrowband" } else { "pooled" },
            "corpus_balance": h.corpus_balance,
            "raw_inputs": h.raw.label(),
            "raw_decay_utterances": h.raw_decay,
            "hidden_units": h.hidden,
            "raw_bound": h.raw_bound,
            "predictive_z": h.predictive,
            "chosen_by": if fixed.is_some() {
                "fixed on the command line (--fixed)".to_string()
            } else {
                format!("leave-one-corpus-out over the training corpora, {}; grid prior_weight {:?} × l2 {:?} × corpus_balance {:?} × raw inputs (set, fading) {GRID_RAW:?} × hidden units {:?} (0: logistic){}, separate wideband/narrowband heads", ctx.select.describe(), spec.prior_weight, spec.l2, spec.corpus_balance, spec.hidden, if spec.raw_bound == [0.0] { String::new() } else { format!(" × raw bound {:?} (0: none)", spec.raw_bound) } + &if spec.predictive == [0] { String::new() } else { format!(" × predictive z {:?}", spec.predictive) })
            },
        },
        "training_orders_per_speaker": orders,
        "training_gain_jitter_db": gain_jitter_db,
        "loso_uar": summary,
        "loco_uar": loco_summary,
    });
    if crop_min_s > 0.0 {
        // Only when on, so that the shipped model's file stays as it was.
        training["training_crop_jitter_s"] = serde_json::json!(crop_min_s);
    }
    let mut model = train_model(&ctx, &all, h);
    model.training = training;
    std::fs::write(&out, serde_json::to_string_pretty(&model)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    let binary_check = if check_binary {
        Some(check_against_binary(&speakers[0], &out)?)
    } else {
        None
    };
    let mut report = render_report(
        &table,
        &summary,
        &loco,
        &loco_summary,
        &model,
        &command,
        h,
        (&inner, ctx.select),
        &sens,
        t0,
    );
    if let Some(line) = binary_check {
        report.push_str(&format!("\nBinary check: {line}\n"));
    }
    std::fs::write(&report_path, &report)
        .with_context(|| format!("writing {}", report_path.display()))?;
    println!("{report}");
    eprintln!(
        "wrote {} and {} in {:.0} s",
        out.display(),
        report_path.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Runs `f` over `items` on `threads` threads, keeping the order.
fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(item) = items.get(i) else {
                    break;
                };
                let r = f(item);
                results.lock().unwrap().push((i, r));
            });
        }
    });
    let mut r = results.into_inner().unwrap();
    r.sort_by_key(|(i, _)| *i);
    r.into_iter().map(|(_, r)| r).collect()
}

/// Everything training and evaluation need.
struct Ctx<'a> {
    seqs: &'a [[Seq; 2]],
    corpus: &'a [&'a str],
    orders: u64,
    /// The hyperparameter grid searched by the selection.
    grid: Vec<Hyper>,
    /// `--site-adapt`: a scored speaker's descriptors are re-centred so that the mean voice
    /// of the other speakers of the same corpus (the site's earlier callers, unlabelled)
    /// maps onto the model's population prior.
    site_adapt: bool,
    /// How the selection scores a grid point from its held-out corpus × channel UARs.
    select: SelectRule,
}

/// `--select`: what the leave-one-corpus-out selection maximises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SelectRule {
    /// The mean of the held-out corpus × channel UARs (shipped).
    Mean,
    /// The worst held-out corpus (its two channels averaged): the targets are a
    /// floor for every corpus, and a mean lets one corpus's loss buy another's gain.
    Worst,
}

impl SelectRule {
    fn describe(self) -> &'static str {
        match self {
            SelectRule::Mean => "mean of the held-out corpus×channel clip UARs",
            SelectRule::Worst => "worst held-out corpus (mean of its two channels' clip UARs)",
        }
    }
}

/// Chooses hyperparameters by leave-one-corpus-out on `speakers` only: for every grid point,
/// each corpus among them is scored (protocol call plus two simulated orders per speaker) by
/// a model trained on the others; the score is the mean of the held-out corpus × channel
/// UARs (or the worst corpus's, `SelectRule`). Returns the choice and each grid point's score.
fn select_loco(ctx: &Ctx, speakers: &[usize], threads: usize) -> (Hyper, Vec<(Hyper, f64)>) {
    let corpora = corpora_of(ctx, speakers);
    let g = ctx.grid.clone();
    let scored: Vec<(Hyper, f64)> = parallel_map(&g, threads, |&h| {
        let mut cells = Vec::new();
        for held in &corpora {
            let train: Vec<usize> = speakers
                .iter()
                .copied()
                .filter(|&s| ctx.corpus[s] != *held)
                .collect();
            let m = train_model(ctx, &train, h);
            let test: Vec<usize> = speakers
                .iter()
                .copied()
                .filter(|&s| ctx.corpus[s] == *held)
                .collect();
            for (bi, &band) in BANDS.iter().enumerate() {
                let mut pooled = Vec::new();
                for &s in &test {
                    pooled.extend(evaluate(&m, &ctx.seqs[s][bi], band, None).clips);
                    for o in 1..=2 {
                        pooled.extend(evaluate(&m, &ctx.seqs[s][bi], band, Some(o)).clips);
                    }
                }
                cells.push(ClipScores::uar_of(&pooled));
            }
        }
        let score = match ctx.select {
            SelectRule::Mean => cells.iter().sum::<f64>() / cells.len().max(1) as f64,
            SelectRule::Worst => cells
                .chunks(BANDS.len())
                .map(|c| c.iter().sum::<f64>() / c.len() as f64)
                .fold(f64::INFINITY, f64::min),
        };
        (h, score)
    });
    let best = scored
        .iter()
        .copied()
        .fold(None::<(Hyper, f64)>, |acc, (h, s)| match acc {
            Some((_, bs)) if bs >= s - 1e-12 => acc,
            _ => Some((h, s)),
        })
        .expect("grid is not empty")
        .0;
    (best, scored)
}

/// One held-out speaker's scores under `model`: the protocol call and `eval_orders`
/// simulated orders, both channels.
fn score_speaker(
    ctx: &Ctx,
    speakers: &[SpeakerClips],
    si: usize,
    model: &ArousalModel,
    h: Hyper,
    eval_orders: u64,
) -> FoldResult {
    let spk = &speakers[si];
    let mut fold = FoldResult {
        corpus: spk.corpus,
        speaker: spk.speaker.clone(),
        hyper: h,
        scores: BTreeMap::new(),
        simulated: BTreeMap::new(),
    };
    for (bi, &b) in BANDS.iter().enumerate() {
        let adapted;
        let seq = if ctx.site_adapt {
            adapted = site_adapted(ctx, si, bi, model.head(b));
            &adapted
        } else {
            &ctx.seqs[si][bi]
        };
        fold.scores.insert(b, evaluate(model, seq, b, None));
        let mut sim = Vec::new();
        for o in 1..=eval_orders {
            sim.extend(evaluate(model, seq, b, Some(1000 + o)).clips);
        }
        fold.simulated.insert(b, sim);
    }
    fold
}

/// Speaker `si`'s sequence on band `bi`, re-centred by the site's mean voice: per
/// descriptor, the mean of the other same-corpus speakers' call means (no labels) is moved
/// onto `head`'s prior mean.
fn site_adapted(ctx: &Ctx, si: usize, bi: usize, head: &Head) -> Seq {
    let site: Vec<usize> = (0..ctx.seqs.len())
        .filter(|&s| s != si && ctx.corpus[s] == ctx.corpus[si])
        .collect();
    let (means, _) = speaker_stats(ctx, &site, &[bi]);
    // A descriptor no other caller of the site measured is left as it is.
    let shift: Vec<f32> = means
        .iter()
        .zip(&head.prior_mean)
        .map(|(m, &p)| match m.len() {
            0 => 0.0,
            k => p - (m.iter().sum::<f64>() / k as f64) as f32,
        })
        .collect();
    let mut seq = ctx.seqs[si][bi].clone();
    for d in &mut seq.desc {
        for (v, s) in d.0.iter_mut().zip(&shift) {
            if let Some(v) = v {
                *v += s;
            }
        }
    }
    seq
}

/// Writes every utterance's descriptors as TSV (`--dump-descriptors`); unmeasured values are
/// empty cells.
fn dump_descriptors(path: &Path, speakers: &[SpeakerClips], seqs: &[[Seq; 2]]) -> Result<()> {
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("{}", path.display()))?,
    );
    writeln!(
        w,
        "corpus\tspeaker\tchannel\tutt\tstart\tend\tclip\thigh\t{}",
        descriptor_names().join("\t")
    )?;
    for (sp, bands) in speakers.iter().zip(seqs) {
        for (bi, s) in bands.iter().enumerate() {
            for (u, d) in s.desc.iter().enumerate() {
                let clip = s.clip[u];
                let high = clip.map_or(String::new(), |k| (s.spans[k].2 as u8).to_string());
                let cells: Vec<String> =
                    d.0.iter()
                        .map(|v| v.map_or(String::new(), |x| x.to_string()))
                        .collect();
                writeln!(
                    w,
                    "{}\t{}\t{}\t{u}\t{:.3}\t{:.3}\t{}\t{high}\t{}",
                    sp.corpus,
                    sp.speaker,
                    channel_name(BANDS[bi]),
                    s.times[u].0,
                    s.times[u].1,
                    clip.map_or(String::new(), |k| k.to_string()),
                    cells.join("\t")
                )?;
            }
        }
    }
    Ok(())
}

/// Turns a processed call into what the models see.
fn make_seq(p: &Processed) -> Seq {
    let mut s = Seq {
        spans: p.spans.clone(),
        times: Vec::new(),
        desc: Vec::new(),
        clip: Vec::new(),
        jittered: Vec::new(),
        eval_desc: None,
    };
    for u in &p.utterances {
        let f = functionals(&u.frames, &u.cycles);
        s.desc.push(descriptors(&f, &u.frames, &u.cycles));
        s.times.push((u.start, u.end));
        s.clip.push(clip_of((u.start, u.end), &p.spans));
    }
    s
}

/// The clip an utterance overlaps most; `None` when it overlaps none.
fn clip_of(u: (f64, f64), spans: &[(f64, f64, bool)]) -> Option<usize> {
    spans
        .iter()
        .enumerate()
        .map(|(k, &(s, e, _))| (overlap(u, (s, e)), k))
        .filter(|(o, _)| *o > 0.0)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// The order in which a speaker's utterances reach the model, and each clip's position in
/// the call. `None`: the real call (the protocol's order, as the pipeline saw it); `Some(seed)`:
/// the clips re-sequenced at random, each keeping its own utterances in time order
/// (utterances that overlap no clip are left out).
fn utterance_order(s: &Seq, order: Option<u64>) -> (Vec<usize>, Vec<usize>) {
    let n_clips = s.spans.len();
    match order {
        None => ((0..s.desc.len()).collect(), (0..n_clips).collect()),
        Some(seed) => {
            let mut clips: Vec<usize> = (0..n_clips).collect();
            shuffle(
                &mut clips,
                seed.wrapping_mul(0x51_7CC1) ^ n_clips as u64 ^ (s.desc.len() as u64) << 20,
            );
            let mut pos = vec![0; n_clips];
            let mut utts = Vec::new();
            for (p, &c) in clips.iter().enumerate() {
                pos[c] = p;
                utts.extend((0..s.desc.len()).filter(|&u| s.clip[u] == Some(c)));
            }
            (utts, pos)
        }
    }
}

/// Population prior of one band from `speakers`: per descriptor the mean of the speakers'
/// means, the root mean of their within-speaker variances, and the standard deviation of
/// the speakers' means (between speakers).
fn prior(ctx: &Ctx, speakers: &[usize], bands: &[usize]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (means, vars) = speaker_stats(ctx, speakers, bands);
    prior_from_stats(&means, &vars)
}

/// Per descriptor, the call mean and variance of each of `speakers` × `bands` that measured
/// it at least twice.
#[allow(clippy::type_complexity)]
fn speaker_stats(ctx: &Ctx, speakers: &[usize], bands: &[usize]) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let n = descriptor_names().len();
    let mut means = vec![Vec::new(); n];
    let mut vars = vec![Vec::new(); n];
    for &s in speakers {
        for &bi in bands {
            let seq = &ctx.seqs[s][bi];
            for j in 0..n {
                let v: Vec<f64> = seq
                    .desc
                    .iter()
                    .filter_map(|d| d.0[j])
                    .map(f64::from)
                    .collect();
                if v.len() >= 2 {
                    let m = v.iter().sum::<f64>() / v.len() as f64;
                    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
                    means[j].push(m);
                    vars[j].push(var);
                }
            }
        }
    }
    (means, vars)
}

/// The prior of [`prior`] from [`speaker_stats`]. The between-speaker spread is that of the
/// speakers' call means, so it also holds their sampling noise (σ²/nᵢ) and, for a pooled
/// head, the offset between the bands: it somewhat overstates τ.
fn prior_from_stats(means: &[Vec<f64>], vars: &[Vec<f64>]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let avg = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let pm: Vec<f32> = means.iter().map(|v| avg(v) as f32).collect();
    let ps: Vec<f32> = vars
        .iter()
        .zip(&pm)
        .map(|(v, m)| (avg(v).sqrt() as f32).max(1e-3 * m.abs()).max(1e-6))
        .collect();
    let between: Vec<f32> = means
        .iter()
        .zip(&pm)
        .map(|(v, &m)| {
            let var =
                v.iter().map(|x| (x - m as f64).powi(2)).sum::<f64>() / (v.len().max(2) - 1) as f64;
            var.sqrt() as f32
        })
        .collect();
    (pm, ps, between)
}

/// Runs a speaker's utterances through a fresh baseline in `order`; per utterance (index
/// into the sequence) its model input.
fn inputs(
    head: &Head,
    band: Band,
    desc: &[Descriptors],
    order: &[usize],
) -> Vec<(usize, Vec<f32>)> {
    let mut b = head.new_baseline(band);
    let mut out = Vec::with_capacity(order.len());
    for &u in order {
        out.push((u, input_vector(&b, &desc[u])));
        b.update(&desc[u]);
    }
    out
}

/// Example weight of speaker `s`'s utterances: with `balance` 1 each corpus weighs as much
/// as every other in training (as the evaluation weighs them), with 0 every speaker weighs
/// the same (the larger corpora dominate); in between, geometrically.
fn corpus_weight(ctx: &Ctx, speakers: &[usize], s: usize, balance: f32) -> f32 {
    let n = speakers
        .iter()
        .filter(|&&t| ctx.corpus[t] == ctx.corpus[s])
        .count();
    let corpora = corpora_of(ctx, speakers).len();
    (speakers.len() as f32 / (corpora as f32 * n as f32)).powf(balance)
}

/// The corpora `speakers` come from, in report order.
fn corpora_of(ctx: &Ctx, speakers: &[usize]) -> Vec<&'static str> {
    CORPORA
        .into_iter()
        .filter(|c| speakers.iter().any(|&s| ctx.corpus[s] == *c))
        .collect()
}

/// Trains a model on `speakers` with hyperparameters `h`.
fn train_model(ctx: &Ctx, speakers: &[usize], h: Hyper) -> ArousalModel {
    let band_sets: Vec<Vec<usize>> = if h.split {
        vec![vec![0], vec![1]]
    } else {
        vec![vec![0, 1]]
    };
    let mut heads = Vec::new();
    for bands in &band_sets {
        let (pm, ps, between) = prior(ctx, speakers, bands);
        let n = pm.len();
        let mut head = Head {
            prior_mean: pm,
            prior_sd: ps,
            prior_weight: h.prior_weight,
            prior_between_sd: h.predictive.then_some(between),
            raw_decay: h.raw_decay.filter(|_| h.raw != RawSet::None),
            input_mean: vec![0.0; 2 * n],
            input_sd: vec![1.0; 2 * n],
            weights: vec![0.0; 2 * n],
            bias: 0.0,
            hidden: None,
            raw_bound: None,
        };
        // Raw inputs left out are held constant, so the fit gives them no weight.
        let names = descriptor_names();
        let dropped: Vec<usize> = (0..n)
            .filter(|&j| !h.raw.keeps(&names[j]))
            .map(|j| n + j)
            .collect();
        let (mut x, mut y, mut sw) = (Vec::new(), Vec::new(), Vec::new());
        for &s in speakers {
            let cw = corpus_weight(ctx, speakers, s, h.corpus_balance);
            for &bi in bands {
                let seq = &ctx.seqs[s][bi];
                for o in 0..ctx.orders {
                    // Order 0 is the real call; the others are simulated re-orderings.
                    let (order, _) = utterance_order(seq, (o > 0).then_some(o));
                    let desc = match o {
                        0 => &seq.desc,
                        o => seq.jittered.get(o as usize - 1).unwrap_or(&seq.desc),
                    };
                    for (u, mut input) in inputs(&head, BANDS[bi], desc, &order) {
                        if let Some(c) = seq.clip[u] {
                            for &j in &dropped {
                                input[j] = 0.0;
                            }
                            x.push(input);
                            y.push(if seq.spans[c].2 { 1.0 } else { 0.0 });
                            sw.push(cw);
                        }
                    }
                }
            }
        }
        // Each speaker counts once however many orders it appears in.
        let l2 = h.l2 * ctx.orders as f64;
        let fit = if h.hidden > 0 {
            let (fit, hidden) = fit_mlp_weighted(&x, &y, &sw, l2, h.hidden, 1);
            head.hidden = Some(hidden);
            fit
        } else {
            fit_logistic_weighted(&x, &y, &sw, l2)
        };
        head.input_mean = fit.input_mean;
        head.input_sd = fit.input_sd;
        head.weights = fit.weights;
        head.bias = fit.bias;
        head.raw_bound = h
            .raw_bound
            .filter(|_| h.raw != RawSet::None && h.hidden == 0);
        heads.push(head);
    }
    let narrowband = heads.pop().expect("one head at least");
    let wideband = heads.pop().unwrap_or_else(|| narrowband.clone());
    ArousalModel {
        format: ArousalModel::format_for(&wideband, &narrowband).into(),
        features: descriptor_names(),
        wideband,
        narrowband,
        training: serde_json::Value::Null,
    }
}

/// The protocol's clip scores of one speaker's call under `model`, in the real order
/// (`None`) or a simulated one.
fn evaluate(model: &ArousalModel, s: &Seq, band: Band, order: Option<u64>) -> ClipScores {
    let (order, pos) = utterance_order(s, order);
    let head = model.head(band);
    let mut p = vec![f64::NAN; s.desc.len()];
    for (u, x) in inputs(head, band, s.eval_desc.as_ref().unwrap_or(&s.desc), &order) {
        p[u] = head.predict_input(&x) as f64;
    }
    let mut out = ClipScores::default();
    for (k, &(cs, ce, high)) in s.spans.iter().enumerate() {
        let (mut num, mut den) = (0.0, 0.0);
        for (u, &t) in s.times.iter().enumerate() {
            let o = overlap(t, (cs, ce));
            if o > 0.0 && p[u].is_finite() {
                num += o * p[u];
                den += o;
            }
        }
        if den == 0.0 {
            out.unscored += 1;
        }
        // A clip no utterance covers counts as predicted low.
        out.clips
            .push((high, den > 0.0 && num / den >= 0.5, pos[k]));
    }
    out
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

/// The descriptors of a speaker's utterances with every clip played at its own gain, drawn
/// uniformly from ±`range_db` (seeded by the simulated order `o` and the clip): the level a
/// caller reaches the box at moves with the handset, the distance to it and the line's or
/// the softphone's automatic gain control, and a recording may be normalised clip by clip
/// (EmoDB's clips are peak-normalised). Trained on such calls, the model cannot lean on
/// the level of one utterance against the speaker's others more than it holds up under
/// those changes. The gain is applied to the cached frames as it would act on the audio:
/// RMS level in dB shifts by the gain, loudness (band power to [`LOUDNESS_EXPONENT`])
/// scales by 10^(exponent·gain/10); pitch, voicing, HNR and spectral balance do not change.
/// Segmentation is kept as it was (the voice-activity threshold is not level-free, so this
/// is close, not exact). With `crop_min_s` > 0 (`--crop-jitter`) each utterance is also cut
/// to a random span of at least that many seconds (its frames and cycles inside the span).
fn jittered(p: &Processed, s: &Seq, o: u64, range_db: f32, crop_min_s: f64) -> Vec<Descriptors> {
    p.utterances
        .iter()
        .enumerate()
        .map(|(u, utt)| {
            let key = s.clip[u].map_or(0x8000_0000 | u as u64, |c| c as u64);
            let draw = |salt: u64| {
                (splitmix(o.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ key ^ salt) >> 11) as f64
                    / (1u64 << 53) as f64
            };
            let unit = draw(0);
            let gain = range_db * (2.0 * unit as f32 - 1.0);
            let scale = 10f32.powf(LOUDNESS_EXPONENT * gain / 10.0);
            // `--crop-jitter`: a random span of the utterance, at least `crop_min_s` long.
            let dur = utt.end - utt.start;
            let (from, to) = if crop_min_s > 0.0 && dur > crop_min_s {
                let len = crop_min_s + draw(0xC0DE) * (dur - crop_min_s);
                let from = utt.start + draw(0xF00D) * (dur - len);
                (from, from + len)
            } else {
                (f64::NEG_INFINITY, f64::INFINITY)
            };
            let cycles: Vec<Cycle> = utt
                .cycles
                .iter()
                .filter(|c| c.t >= from && c.t < to)
                .copied()
                .collect();
            let frames: Vec<Frame> = utt
                .frames
                .iter()
                .filter(|fr| fr.t >= from && fr.t < to)
                .map(|fr| Frame {
                    // Digital silence stays silent.
                    rms_db: if fr.rms_db <= -120.0 {
                        fr.rms_db
                    } else {
                        (fr.rms_db + gain).clamp(-119.0, 0.0)
                    },
                    loudness: fr.loudness * scale,
                    ..*fr
                })
                .collect();
            let f = functionals(&frames, &cycles);
            descriptors(&f, &frames, &cycles)
        })
        .collect()
}

/// One step of SplitMix64 from `seed` (the state advanced once, then mixed).
fn splitmix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A small deterministic PRNG (SplitMix64) for the clip orders.
fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut next = || {
        let z = splitmix(s);
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z
    };
    for i in (1..v.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

/// The protocol's call for one speaker: clips in a seeded random order, 1.5 s apart.
fn build_sequence(spk: &SpeakerClips, seed: u64, band: Band) -> Result<Sequence> {
    let mut clips = spk.clips.clone();
    shuffle(
        &mut clips,
        seed * 7919 + spk.speaker.len() as u64 + hash(spk.speaker.as_bytes()),
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
    Ok(match band {
        Band::Wideband => Sequence {
            signal,
            rate: RATE,
            spans,
        },
        Band::Narrowband => Sequence {
            signal: telephone_channel(&signal, RATE)?,
            rate: 8000,
            spans,
        },
    })
}

fn hash(s: &[u8]) -> u64 {
    s.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Runs a sequence through the call pipeline as replay does, without transcripts.
fn run_pipeline(seq: &Sequence, model: Option<&ArousalModel>) -> Result<Vec<UtteranceFeatures>> {
    let cfg = Config::default();
    let mut analyzers = Analyzers::from_config(&cfg)?;
    if let Some(m) = model {
        analyzers.arousal = Arc::new(m.clone());
    }
    let mut out = Vec::new();
    let mut p = CallPipeline::new(
        "train",
        "file",
        &[Speaker::Customer],
        seq.rate,
        None,
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

type Key = (usize, Band);

fn process_all(speakers: &[SpeakerClips], threads: usize) -> Result<BTreeMap<Key, Processed>> {
    let jobs: Vec<Key> = (0..speakers.len())
        .flat_map(|si| BANDS.map(|b| (si, b)))
        .collect();
    let results = parallel_map(&jobs, threads, |&(si, b)| {
        let seq = build_sequence(&speakers[si], 0, b)?;
        let utterances = run_pipeline(&seq, None)?
            .into_iter()
            .map(|u| Utt {
                start: u.start,
                end: u.end,
                frames: u.frames,
                cycles: u.cycles,
            })
            .collect();
        Ok::<_, anyhow::Error>(Processed {
            spans: seq.spans,
            utterances,
        })
    });
    let mut map = BTreeMap::new();
    for (k, r) in jobs.into_iter().zip(results) {
        map.insert(k, r?);
    }
    Ok(map)
}

/// Identifies what the cached frames depend on: the clips, their order seed and labels, and
/// the sources of everything between audio and frames.
fn cache_key(speakers: &[SpeakerClips]) -> u64 {
    let mut h = hash(b"calltone-arousal-cache-v1");
    for s in speakers {
        for c in &s.clips {
            h ^= hash(
                format!(
                    "{}/{}/{}/{}/{}",
                    s.corpus,
                    s.speaker,
                    c.file,
                    c.high,
                    c.samples.len()
                )
                .as_bytes(),
            );
            h = h.wrapping_mul(0x100_0000_01b3);
        }
    }
    let mut sources: Vec<PathBuf> = std::fs::read_dir("src/prosody")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    for f in [
        "src/segment.rs",
        "src/pipeline.rs",
        "src/config.rs",
        "src/audio/resample.rs",
        "src/audio/telephone.rs",
        "src/audio/g711.rs",
    ] {
        sources.push(PathBuf::from(f));
    }
    sources.sort();
    for p in sources {
        if let Ok(b) = std::fs::read(&p) {
            h ^= hash(&b);
            h = h.wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

fn write_cache(path: &Path, key: u64, p: &BTreeMap<Key, Processed>) -> Result<()> {
    let mut w = Vec::new();
    w.extend(b"CTAROUS1");
    w.extend(key.to_le_bytes());
    w.extend((p.len() as u32).to_le_bytes());
    let f32s = |w: &mut Vec<u8>, v: &[f32]| v.iter().for_each(|x| w.extend(x.to_le_bytes()));
    for (&(si, b), pr) in p {
        w.extend((si as u32).to_le_bytes());
        w.push(u8::from(b == Band::Narrowband));
        w.extend((pr.spans.len() as u32).to_le_bytes());
        for &(s, e, h) in &pr.spans {
            w.extend(s.to_le_bytes());
            w.extend(e.to_le_bytes());
            w.push(u8::from(h));
        }
        w.extend((pr.utterances.len() as u32).to_le_bytes());
        for u in &pr.utterances {
            w.extend(u.start.to_le_bytes());
            w.extend(u.end.to_le_bytes());
            w.extend((u.frames.len() as u32).to_le_bytes());
            for f in &u.frames {
                w.extend(f.t.to_le_bytes());
                f32s(
                    &mut w,
                    &[
                        f.f0_hz,
                        f.voicing,
                        f.loudness,
                        f.rms_db,
                        f.hnr_db,
                        f.alpha_ratio_db,
                        f.hammarberg_db,
                        f.spectral_slope,
                    ],
                );
                w.push(u8::from(f.voiced));
            }
            w.extend((u.cycles.len() as u32).to_le_bytes());
            for c in &u.cycles {
                w.extend(c.t.to_le_bytes());
                f32s(&mut w, &[c.period_s, c.peak]);
            }
        }
    }
    let mut f =
        std::fs::File::create(path).with_context(|| format!("writing {}", path.display()))?;
    f.write_all(&w)?;
    Ok(())
}

/// The cache's content, or `None` when it is missing or for other clips or sources.
fn read_cache(path: &Path, key: u64) -> Result<Option<BTreeMap<Key, Processed>>> {
    let mut b = Vec::new();
    match std::fs::File::open(path) {
        Ok(mut f) => f.read_to_end(&mut b)?,
        Err(_) => return Ok(None),
    };
    let mut r = Reader { b: &b, i: 0 };
    if r.take(8)? != b"CTAROUS1" || r.u64()? != key {
        eprintln!("cache {} is stale; extracting again", path.display());
        return Ok(None);
    }
    let mut map = BTreeMap::new();
    for _ in 0..r.u32()? {
        let si = r.u32()? as usize;
        let band = if r.u8()? == 1 {
            Band::Narrowband
        } else {
            Band::Wideband
        };
        let mut spans = Vec::new();
        for _ in 0..r.u32()? {
            spans.push((r.f64()?, r.f64()?, r.u8()? == 1));
        }
        let mut utterances = Vec::new();
        for _ in 0..r.u32()? {
            let (start, end) = (r.f64()?, r.f64()?);
            let mut frames = Vec::new();
            for _ in 0..r.u32()? {
                frames.push(Frame {
                    t: r.f64()?,
                    f0_hz: r.f32()?,
                    voicing: r.f32()?,
                    loudness: r.f32()?,
                    rms_db: r.f32()?,
                    hnr_db: r.f32()?,
                    alpha_ratio_db: r.f32()?,
                    hammarberg_db: r.f32()?,
                    spectral_slope: r.f32()?,
                    voiced: r.u8()? == 1,
                });
            }
            let mut cycles = Vec::new();
            for _ in 0..r.u32()? {
                cycles.push(Cycle {
                    t: r.f64()?,
                    period_s: r.f32()?,
                    peak: r.f32()?,
                });
            }
            utterances.push(Utt {
                start,
                end,
                frames,
                cycles,
            });
        }
        map.insert((si, band), Processed { spans, utterances });
    }
    Ok(Some(map))
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let s = self
            .b
            .get(self.i..self.i + n)
            .context("cache file truncated")?;
        self.i += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into()?))
    }
    fn f32(&mut self) -> Result<f32> {
        Ok(f32::from_le_bytes(self.take(4)?.try_into()?))
    }
    fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(self.take(8)?.try_into()?))
    }
}

fn overlap(a: (f64, f64), b: (f64, f64)) -> f64 {
    (a.1.min(b.1) - a.0.max(b.0)).max(0.0)
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

struct FoldResult {
    corpus: &'static str,
    speaker: String,
    hyper: Hyper,
    /// The protocol's call (the real pipeline run).
    scores: BTreeMap<Band, ClipScores>,
    /// Clips of the simulated re-orderings, pooled.
    simulated: BTreeMap<Band, Vec<(bool, bool, usize)>>,
}

/// Accuracy of the high and low clips among `items` (recall of each class).
fn recalls(items: &[(bool, bool, usize)]) -> (f64, f64) {
    let r = |want: bool| {
        let n = items.iter().filter(|c| c.0 == want).count();
        items.iter().filter(|c| c.0 == want && c.1 == want).count() as f64 / n.max(1) as f64
    };
    (r(true), r(false))
}

fn summarise(table: &[FoldResult]) -> serde_json::Value {
    let mut v = serde_json::Map::new();
    for corpus in CORPORA {
        for b in BANDS {
            let folds: Vec<&FoldResult> = table.iter().filter(|f| f.corpus == corpus).collect();
            let pooled: Vec<(bool, bool, usize)> = folds
                .iter()
                .flat_map(|f| f.scores[&b].clips.iter().copied())
                .collect();
            let first: Vec<_> = pooled.iter().copied().filter(|c| c.2 < 3).collect();
            let rest: Vec<_> = pooled.iter().copied().filter(|c| c.2 >= 3).collect();
            let sim: Vec<_> = folds
                .iter()
                .flat_map(|f| f.simulated[&b].iter().copied())
                .collect();
            let sim_first: Vec<_> = sim.iter().copied().filter(|c| c.2 < 3).collect();
            let sim_rest: Vec<_> = sim.iter().copied().filter(|c| c.2 >= 3).collect();
            let (fh, fl) = recalls(&sim_first);
            let (rh, rl) = recalls(&sim_rest);
            let mean_speaker =
                folds.iter().map(|f| f.scores[&b].uar()).sum::<f64>() / folds.len().max(1) as f64;
            v.insert(
                format!("{corpus}_{}", channel_name(b)),
                serde_json::json!({
                    "uar_pooled": round3(ClipScores::uar_of(&pooled)),
                    "uar_mean_per_speaker": round3(mean_speaker),
                    "uar_first3_clips": round3(ClipScores::uar_of(&first)),
                    "uar_later_clips": round3(ClipScores::uar_of(&rest)),
                    "clips": pooled.len(),
                    "unscored_clips": folds.iter().map(|f| f.scores[&b].unscored).sum::<usize>(),
                    "simulated_orders": {
                        "uar": round3(ClipScores::uar_of(&sim)),
                        "uar_first3_clips": round3(ClipScores::uar_of(&sim_first)),
                        "uar_later_clips": round3(ClipScores::uar_of(&sim_rest)),
                        "first3_recall_high_low": [round3(fh), round3(fl)],
                        "later_recall_high_low": [round3(rh), round3(rl)],
                        "clips": sim.len(),
                    },
                }),
            );
        }
    }
    serde_json::Value::Object(v)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Pooled-clip UAR of `summary`'s cell, or NaN.
fn cell(summary: &serde_json::Value, corpus: &str, b: Band, key: &str) -> f64 {
    summary[format!("{corpus}_{}", channel_name(b))][key]
        .as_f64()
        .unwrap_or(f64::NAN)
}

/// The corpus × channel table of one evaluation.
fn summary_table(r: &mut String, summary: &serde_json::Value) {
    r.push_str("| corpus | channel | UAR (pooled clips) | mean per-speaker UAR | first 3 clips | later clips | 10 simulated orders: UAR | first 3 | later | first 3: recall high / low | later: recall high / low |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for corpus in CORPORA {
        for b in BANDS {
            let s = &summary[format!("{corpus}_{}", channel_name(b))];
            if s.is_null() {
                continue;
            }
            let sim = &s["simulated_orders"];
            r.push_str(&format!(
                "| {corpus} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} / {} |\n",
                channel_name(b),
                s["uar_pooled"],
                s["uar_mean_per_speaker"],
                s["uar_first3_clips"],
                s["uar_later_clips"],
                sim["uar"],
                sim["uar_first3_clips"],
                sim["uar_later_clips"],
                sim["first3_recall_high_low"][0],
                sim["first3_recall_high_low"][1],
                sim["later_recall_high_low"][0],
                sim["later_recall_high_low"][1],
            ));
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn render_report(
    table: &[FoldResult],
    summary: &serde_json::Value,
    loco: &[FoldResult],
    loco_summary: &serde_json::Value,
    model: &ArousalModel,
    command: &str,
    chosen: Hyper,
    (inner, select): (&[(Hyper, f64)], SelectRule),
    sens: &[(Hyper, Vec<f64>)],
    t0: std::time::Instant,
) -> String {
    let mut r = String::new();
    r.push_str("# Arousal model: leave-one-corpus-out and leave-one-speaker-out evaluation\n\n");
    r.push_str(&format!("Reproduce: `{command}`\n\n"));
    r.push_str(&format!(
        "(this run: {:.0} s of wall time from start to report, feature extraction included when the cache was cold)\n\n",
        t0.elapsed().as_secs_f64()
    ));
    r.push_str(&format!("Corpora: {}. ", CORPORA.join(", ")));
    r.push_str("Protocol: per held-out speaker, all their clips in a random order with 1.5 s of silence between them as one mono call through the replay pipeline (customer channel); clip arousal = overlap-weighted mean of utterance arousal; threshold 0.5; UAR = mean of the recalls of high and low. Telephone = 300–3400 Hz band-pass, 8 kHz, μ-law (scored by the narrowband head, as the pipeline does for 8 kHz input). First 3 clips vs later: the clips' positions in the call (the young baseline against the settled one); the simulated orders re-sequence each speaker's clips 10 times.\n\n");
    match model.training["training_gain_jitter_db"].as_f64() {
        Some(g) if g > 0.0 => r.push_str(&format!(
            "Training (not evaluation): every simulated training order plays each clip at its own random gain, uniform within ±{g} dB (`--gain-jitter`), so the model cannot lean on one utterance's level against the speaker's others more than that survives a handset, a distance to the microphone, automatic gain control or per-clip normalisation (EmoDB's clips are peak-normalised; the other corpora keep their recording gain).\n\n"
        )),
        _ => r.push_str("Training: clips at their recorded gain (`--gain-jitter 0`).\n\n"),
    }
    if let Some(c) = model.training["training_crop_jitter_s"]
        .as_f64()
        .filter(|c| *c > 0.0)
    {
        r.push_str(&format!(
            "Training (not evaluation): every simulated training order also hears each utterance cut to a random span of at least {c} s (`--crop-jitter`), so that the model meets one-word answers and whole sentences on every corpus.\n\n"
        ));
    }
    r.push_str("## Leave one corpus out\n\nEach corpus is scored by a model trained on the other three; that model's hyperparameters are chosen by leave-one-corpus-out among those three only, so the held-out corpus never influences its own model.\n\n");
    summary_table(&mut r, loco_summary);
    r.push_str("\nHeld-out corpus against the same corpus in-corpus (leave one speaker out, below): the generalisation gap.\n\n| corpus | channel | LOCO | LOSO | gap |\n|---|---|---|---|---|\n");
    for corpus in CORPORA {
        for b in BANDS {
            let (lc, ls) = (
                cell(loco_summary, corpus, b, "uar_pooled"),
                cell(summary, corpus, b, "uar_pooled"),
            );
            if lc.is_finite() && ls.is_finite() {
                r.push_str(&format!(
                    "| {corpus} | {} | {lc:.3} | {ls:.3} | {:+.3} |\n",
                    channel_name(b),
                    lc - ls
                ));
            }
        }
    }
    r.push_str(&format!(
        "\n## Leave one speaker out\n\nEvery speaker scored by a model trained on all other speakers of all corpora, with the shipped hyperparameters ({}).\n\n",
        chosen.label()
    ));
    summary_table(&mut r, summary);
    r.push_str("\n## Per speaker\n\n| corpus | speaker | clips | LOCO wideband | LOCO telephone | LOSO wideband | LOSO telephone | LOCO hyperparameters |\n|---|---|---|---|---|---|---|---|\n");
    for f in table {
        let lo = loco
            .iter()
            .find(|l| l.corpus == f.corpus && l.speaker == f.speaker);
        let u = |x: Option<&FoldResult>, b: Band| {
            x.map_or("–".to_string(), |x| format!("{:.3}", x.scores[&b].uar()))
        };
        r.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            f.corpus,
            f.speaker,
            f.scores[&Band::Wideband].clips.len(),
            u(lo, Band::Wideband),
            u(lo, Band::Narrowband),
            u(Some(f), Band::Wideband),
            u(Some(f), Band::Narrowband),
            lo.map_or("–".to_string(), |l| l.hyper.label())
        ));
    }
    r.push_str(&format!(
        "\nShipped model: trained on all {} speakers with hyperparameters {}",
        table.len(),
        chosen.label()
    ));
    if inner.is_empty() {
        r.push_str(" (here: fixed on the command line).\n");
    } else {
        r.push_str(&format!(" chosen by leave-one-corpus-out over all corpora; score ({}) per grid point:\n\n| hyperparameters | LOCO UAR |\n|---|---|\n", select.describe()));
        for (h, s) in inner {
            r.push_str(&format!("| {} | {s:.3} |\n", h.label()));
        }
    }
    if !sens.is_empty() {
        r.push_str("\nSensitivity (leave one corpus out per grid point, no inner selection; reported only, never used to choose): held-out corpus × channel UARs in corpus order, wideband then telephone\n\n| hyperparameters | cells |\n|---|---|\n");
        for (h, c) in sens {
            let cells: Vec<String> = c.iter().map(|x| format!("{x:.3}")).collect();
            r.push_str(&format!("| {} | {} |\n", h.label(), cells.join(" · ")));
        }
    }
    let names = descriptor_names();
    for b in BANDS {
        r.push_str(&format!(
            "\nLargest weights of the shipped {} head (standardised inputs; z = relative to the speaker's running baseline):\n\n",
            channel_name(b)
        ));
        let head = model.head(b);
        // A perceptron's per-input weight: the norm of its column of the hidden layer.
        let per_input: Vec<f32> = match &head.hidden {
            None => head.weights.clone(),
            Some(hl) => (0..head.input_mean.len())
                .map(|j| {
                    hl.weights
                        .chunks_exact(head.input_mean.len())
                        .map(|row| row[j] * row[j])
                        .sum::<f32>()
                        .sqrt()
                })
                .collect(),
        };
        let mut w: Vec<(String, f32)> = per_input
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let n = &names[i % names.len()];
                let tag = if i < names.len() { "z" } else { "raw" };
                (format!("{tag}:{n}"), w)
            })
            .collect();
        w.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
        if head.hidden.is_some() {
            r.push_str("(hidden layer: the norm of each input's weights into the units, which has no sign)\n\n");
        }
        for (n, v) in w.iter().take(10) {
            match head.hidden {
                None => r.push_str(&format!("- `{n}`: {v:+.3}\n")),
                Some(_) => r.push_str(&format!("- `{n}`: {v:.3}\n")),
            }
        }
        if let Some(b) = head.raw_bound {
            r.push_str(&format!(
                "\nThe raw block's sum enters the logit bounded to ±{b}.\n"
            ));
        }
    }
    r
}

/// Replays one speaker's evaluation sequence with the real binary and compares its
/// utterance arousal with the library path.
fn check_against_binary(spk: &SpeakerClips, model_path: &Path) -> Result<String> {
    let seq = build_sequence(spk, 0, Band::Wideband)?;
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
    let lib: Vec<f64> = run_pipeline(&seq, Some(&model))?
        .iter()
        .filter_map(|u| u.arousal)
        .map(|a| ((a * 100.0).round() / 100.0) as f64)
        .collect();
    let same =
        binary.len() == lib.len() && binary.iter().zip(&lib).all(|(a, b)| (a - b).abs() <= 0.011);
    let line = format!(
        "`target/release/calltone replay` (with Whisper) on {}:{}'s protocol call: {} utterances via replay, {} via the library path, arousal identical to 0.01: {same}",
        spk.corpus,
        spk.speaker,
        binary.len(),
        lib.len()
    );
    eprintln!("{line}");
    if !same {
        bail!("replay binary and library disagree:\n{binary:?}\n{lib:?}");
    }
    Ok(line)
}
