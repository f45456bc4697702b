//! The arousal model: P(high arousal) from speaker-normalised prosodic descriptors.
//!
//! Per utterance (or live window) the model describes the voice with [`descriptors`]: the
//! 22 [`Functionals::feature_vector`] entries plus distribution statistics computed here from
//! the frames (F0 and loudness percentiles, level range, voiced-only loudness, spread of
//! HNR and spectral balance, contour dynamics). Its input is that vector twice over: as
//! z-scores against the speaker's running [`ArousalBaseline`] (how this utterance differs from
//! the speaker's own voice so far) and as raw values (where the voice is in absolute terms,
//! which carries the call's first utterances while the baseline is still mostly prior).
//! Both are standardised with training statistics and fed to an L2-regularised logistic
//! regression. With a head's `raw_decay`, the raw values fade towards the prior as the
//! speaker's baseline fills, so absolute values carry only a call's first utterances; the
//! z-scores are bounded (±3) so that no descriptor of an unfamiliar voice votes without limit.
//!
//! The baseline starts as a population prior (mean and within-speaker spread of each
//! descriptor, estimated on the training speakers and stored in the model) worth
//! `prior_weight` pseudo-utterances, and shrinks towards the speaker's own statistics as
//! utterances arrive: mean = (w·m₀ + Σx)/(w + n), variance = (w·v₀ + Σ(x − x̄)²)/(w + n).
//!
//! Narrowband input (a telephone leg, ≤ 8 kHz) and wideband input get separate heads
//! (prior + classifier), chosen once per call leg from the input sample rate, because the
//! band limit shifts the spectral-balance and pitch descriptors. Weights live in
//! `models/arousal.json` (trained by `examples/train_arousal.rs`; the exact command is in
//! the file's `training` block and in `models/arousal-report.md`). Training plays each clip
//! at its own random gain (±10 dB), so how loud an utterance is against the speaker's others
//! weighs only as far as it survives an AGC, a moved handset or a normalised recording.

use std::path::Path;

use ndarray::{Array1, Array2, Axis};
use serde::{Deserialize, Serialize};

use crate::prosody::functionals::{mean_std, percentile, semitones};
use crate::prosody::{Cycle, Frame, Functionals};

/// The file format tag of a model whose heads are plain logistic regressions; bump when the
/// input layout changes.
pub const FORMAT: &str = "calltone-arousal-v2";

/// The format tag of a model with a head that needs this version's extensions (a hidden
/// layer, a bounded raw term or a between-speaker prior): a binary that predates them would
/// ignore the fields and score with the wrong function, so such a file must say so and
/// older binaries refuse it. A change of the input layout bumps both tags.
pub const FORMAT_EXTENDED: &str = "calltone-arousal-v3";

/// Extra descriptors computed here from frames, appended to the functionals' 22.
const EXTRA_NAMES: [&str; 25] = [
    "f0_p10_st",
    "f0_p50_st",
    "f0_p90_st",
    "f0_delta_abs_st_per_s",
    "loudness_p20",
    "loudness_p50",
    "loudness_p80",
    "loudness_voiced_mean",
    "loudness_rise_per_s",
    "rms_db_p90",
    "rms_db_range",
    "hnr_db_std",
    "alpha_ratio_std",
    "hammarberg_std",
    "spectral_slope_std",
    "voicing_mean",
    "loudness_log_mean",
    "alpha_ratio_unvoiced_mean",
    "hammarberg_unvoiced_mean",
    "spectral_slope_unvoiced_mean",
    "unvoiced_segment_mean_s",
    "voiced_segment_std_s",
    "f0_trend_st_per_s",
    "loudness_trend_per_s",
    "hnr_db_p90",
];

/// Names of the entries of [`descriptors`]: the functionals' feature names, then the extras.
pub fn descriptor_names() -> Vec<String> {
    Functionals::feature_names()
        .iter()
        .chain(EXTRA_NAMES.iter())
        .map(|s| s.to_string())
        .collect()
}

/// Which head of the model scores a call leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Band {
    /// Input sampled above 8 kHz.
    Wideband,
    /// Input at 8 kHz or less (a telephone leg).
    Narrowband,
}

impl Band {
    pub fn of_rate(input_rate: u32) -> Self {
        if crate::audio::is_narrowband(input_rate) {
            Band::Narrowband
        } else {
            Band::Wideband
        }
    }
}

/// One utterance's descriptors: `None` where a value was not measurable (no pitch, ...).
#[derive(Clone, Debug, PartialEq)]
pub struct Descriptors(pub Vec<Option<f32>>);

/// Describes one utterance or window from its functionals and the frames/cycles they were
/// computed from (cycles are only used through the functionals today).
pub fn descriptors(f: &Functionals, frames: &[Frame], _cycles: &[Cycle]) -> Descriptors {
    let mut d: Vec<Option<f32>> = f
        .feature_values()
        .into_iter()
        .map(|(v, measured)| (measured && v.is_finite()).then_some(v))
        .collect();
    let voiced: Vec<&Frame> = frames
        .iter()
        .filter(|fr| fr.voiced && fr.f0_hz > 0.0)
        .collect();
    let mut st: Vec<f32> = voiced.iter().map(|fr| semitones(fr.f0_hz)).collect();
    st.sort_by(f32::total_cmp);
    let pct = |v: &[f32], p: f32| (!v.is_empty()).then(|| percentile(v, p));
    d.push(pct(&st, 0.1));
    d.push(pct(&st, 0.5));
    d.push(pct(&st, 0.9));
    // Mean absolute F0 change between consecutive voiced frames.
    let (mut dsum, mut dn) = (0.0f32, 0usize);
    for w in frames.windows(2) {
        if w[0].voiced && w[1].voiced && w[0].f0_hz > 0.0 && w[1].f0_hz > 0.0 {
            dsum += (semitones(w[1].f0_hz) - semitones(w[0].f0_hz)).abs();
            dn += 1;
        }
    }
    d.push((dn > 0).then(|| dsum / dn as f32 / FRAME_S));
    let mut loud: Vec<f32> = frames.iter().map(|fr| fr.loudness).collect();
    loud.sort_by(f32::total_cmp);
    d.push(pct(&loud, 0.2));
    d.push(pct(&loud, 0.5));
    d.push(pct(&loud, 0.8));
    d.push(mean_std(voiced.iter().map(|fr| fr.loudness)).map(|x| x.0));
    // Mean rising slope of the loudness contour (positive frame-to-frame changes).
    let rises: Vec<f32> = frames
        .windows(2)
        .map(|w| w[1].loudness - w[0].loudness)
        .filter(|&x| x > 0.0)
        .collect();
    d.push(if frames.len() > 1 {
        Some(rises.iter().sum::<f32>() / (frames.len() - 1) as f32 / FRAME_S)
    } else {
        None
    });
    let mut db: Vec<f32> = frames.iter().map(|fr| fr.rms_db).collect();
    db.sort_by(f32::total_cmp);
    d.push(pct(&db, 0.9));
    d.push(
        (!db.is_empty()).then(|| (percentile(&db, 0.9) - percentile(&db, 0.1)).clamp(0.0, 80.0)),
    );
    let sd_of = |g: fn(&Frame) -> f32| {
        (voiced.len() >= 2)
            .then(|| mean_std(voiced.iter().map(|fr| g(fr))).map(|x| x.1))
            .flatten()
    };
    d.push(sd_of(|fr| fr.hnr_db));
    d.push(sd_of(|fr| fr.alpha_ratio_db));
    d.push(sd_of(|fr| fr.hammarberg_db));
    d.push(sd_of(|fr| fr.spectral_slope));
    d.push(mean_std(voiced.iter().map(|fr| fr.voicing)).map(|x| x.0));
    d.push(mean_std(frames.iter().map(|fr| (fr.loudness.max(0.0) + 0.01).ln())).map(|x| x.0));
    // Spectral balance of unvoiced but audible frames (fricatives, breath, noisy onsets).
    let audible_db = db.last().map_or(f32::MIN, |&max| max - 30.0);
    let unvoiced: Vec<&Frame> = frames
        .iter()
        .filter(|fr| !fr.voiced && fr.rms_db > audible_db)
        .collect();
    let uv_mean = |g: fn(&Frame) -> f32| {
        (unvoiced.len() >= 3)
            .then(|| mean_std(unvoiced.iter().map(|fr| g(fr))).map(|x| x.0))
            .flatten()
    };
    d.push(uv_mean(|fr| fr.alpha_ratio_db));
    d.push(uv_mean(|fr| fr.hammarberg_db));
    d.push(uv_mean(|fr| fr.spectral_slope));
    // Lengths of voiced runs and of the unvoiced gaps between them.
    let (mut voiced_runs, mut gaps) = (Vec::new(), Vec::new());
    let (mut run, mut gap, mut seen_voiced) = (0usize, 0usize, false);
    for fr in frames.iter().chain(std::iter::once(&Frame::default())) {
        if fr.voiced {
            if seen_voiced && gap > 0 && run == 0 {
                gaps.push(gap as f32 * FRAME_S);
            }
            gap = 0;
            run += 1;
        } else {
            if run >= 2 {
                voiced_runs.push(run as f32 * FRAME_S);
                seen_voiced = true;
            }
            run = 0;
            gap += 1;
        }
    }
    d.push(mean_std(gaps.iter().copied()).map(|x| x.0));
    d.push(
        (voiced_runs.len() >= 2)
            .then(|| mean_std(voiced_runs.iter().copied()).map_or(0.0, |x| x.1)),
    );
    // Linear trends over the utterance (declination, fading or building effort).
    d.push(trend(voiced.iter().map(|fr| (fr.t, semitones(fr.f0_hz)))));
    d.push(trend(frames.iter().map(|fr| (fr.t, fr.loudness))));
    let mut hnr: Vec<f32> = voiced.iter().map(|fr| fr.hnr_db).collect();
    hnr.sort_by(f32::total_cmp);
    d.push(pct(&hnr, 0.9));
    debug_assert_eq!(
        d.len(),
        Functionals::feature_names().len() + EXTRA_NAMES.len()
    );
    // A non-finite statistic is as good as unmeasured.
    Descriptors(d.into_iter().map(|v| v.filter(|x| x.is_finite())).collect())
}

/// Least-squares slope of (t, v) points, per second; `None` with fewer than 5 points or no
/// time spread.
fn trend(points: impl Iterator<Item = (f64, f32)>) -> Option<f32> {
    let p: Vec<(f64, f64)> = points.map(|(t, v)| (t, v as f64)).collect();
    if p.len() < 5 {
        return None;
    }
    let n = p.len() as f64;
    let (mt, mv) = (
        p.iter().map(|x| x.0).sum::<f64>() / n,
        p.iter().map(|x| x.1).sum::<f64>() / n,
    );
    let stt: f64 = p.iter().map(|x| (x.0 - mt).powi(2)).sum();
    let stv: f64 = p.iter().map(|x| (x.0 - mt) * (x.1 - mv)).sum();
    (stt > 1e-9).then(|| (stv / stt) as f32)
}

const FRAME_S: f32 = crate::prosody::FRAME_STEP_S as f32;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    #[error("{}: cannot read arousal model: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{}: corrupt arousal model: {message}", path.display())]
    Corrupt {
        path: std::path::PathBuf,
        message: String,
    },
}

/// One band's baseline prior and classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Head {
    /// Population prior of each descriptor: mean, and within-speaker standard deviation.
    pub prior_mean: Vec<f32>,
    pub prior_sd: Vec<f32>,
    /// Prior weight (in utterances) of the speaker baseline.
    pub prior_weight: f32,
    /// Between-speaker standard deviation of each descriptor's speaker mean. With it the
    /// z-scores are taken against the predictive spread of the speaker's next utterance —
    /// the within-speaker spread plus the uncertainty of the speaker's mean, which is the
    /// whole population's at the call's start and shrinks as the speaker's own utterances
    /// arrive — so a voice unlike the population's reads as unusual only as far as the
    /// population's own range of voices allows. `None`: within-speaker spread only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior_between_sd: Option<Vec<f32>>,
    /// How fast the raw (absolute) inputs hand over to the z-scores, in utterances: the raw
    /// value of a descriptor enters as `prior + g·(raw − prior)` with `g = d / (d + n)` after
    /// `n` measured utterances of the speaker, so absolute values carry the first utterances
    /// of a call and the speaker's own baseline the rest. `None`: raw values always count in
    /// full (models trained before this field existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_decay: Option<f32>,
    /// Standardisation of the input vector `[z-scores…, raw…]`.
    pub input_mean: Vec<f32>,
    pub input_sd: Vec<f32>,
    /// Output weights: one per standardised input for a linear head, one per hidden unit
    /// when `hidden` is present.
    pub weights: Vec<f32>,
    pub bias: f32,
    /// An optional tanh hidden layer between the standardised input and the output (a
    /// one-hidden-layer perceptron); `None`: logistic regression on the inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<Hidden>,
    /// A bound on what the raw (absolute) inputs can add to a linear head's logit: the raw
    /// block's sum enters clamped to `±raw_bound`, so a voice unlike any in training moves
    /// the reading by at most that much until the speaker's own baseline speaks. `None`:
    /// unbounded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_bound: Option<f32>,
}

/// A tanh hidden layer: unit `k` reads `tanh(bias[k] + Σ_j weights[k·d + j]·x̃_j)` of the
/// `d` standardised inputs `x̃`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hidden {
    /// `units × d`, row-major.
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
}

impl Head {
    fn validate(&self, n: usize) -> Result<(), String> {
        for (what, v, len) in [
            ("prior_mean", &self.prior_mean, n),
            ("prior_sd", &self.prior_sd, n),
            ("input_mean", &self.input_mean, 2 * n),
            ("input_sd", &self.input_sd, 2 * n),
            (
                "weights",
                &self.weights,
                self.hidden.as_ref().map_or(2 * n, |h| h.bias.len()),
            ),
        ] {
            if v.len() != len {
                return Err(format!("{what} has {} values, expected {len}", v.len()));
            }
            if v.iter().any(|x| !x.is_finite()) {
                return Err(format!("{what} has non-finite values"));
            }
        }
        if self
            .input_sd
            .iter()
            .chain(&self.prior_sd)
            .any(|&s| s <= 0.0)
        {
            return Err("input_sd and prior_sd must be positive".into());
        }
        if !(self.bias.is_finite() && self.prior_weight > 0.0 && self.prior_weight.is_finite()) {
            return Err("bias or prior_weight invalid".into());
        }
        if self.raw_decay.is_some_and(|d| !(d.is_finite() && d > 0.0)) {
            return Err("raw_decay must be positive".into());
        }
        if let Some(v) = &self.prior_between_sd {
            if v.len() != n {
                return Err(format!(
                    "prior_between_sd has {} values, expected {n}",
                    v.len()
                ));
            }
            if v.iter().any(|x| !(x.is_finite() && *x >= 0.0)) {
                return Err("prior_between_sd must be finite and ≥ 0".into());
            }
        }
        if self.raw_bound.is_some_and(|b| !(b.is_finite() && b > 0.0)) {
            return Err("raw_bound must be positive".into());
        }
        if self.raw_bound.is_some() && self.hidden.is_some() {
            return Err("raw_bound applies to a linear head, not one with a hidden layer".into());
        }
        if let Some(h) = &self.hidden {
            if h.bias.is_empty() || h.weights.len() != h.bias.len() * 2 * n {
                return Err(format!(
                    "hidden layer has {} weights for {} units, expected units × {}",
                    h.weights.len(),
                    h.bias.len(),
                    2 * n
                ));
            }
            if h.weights.iter().chain(&h.bias).any(|x| !x.is_finite()) {
                return Err("hidden layer has non-finite values".into());
            }
        }
        Ok(())
    }

    /// A fresh baseline for a new speaker.
    pub fn new_baseline(&self, band: Band) -> ArousalBaseline {
        ArousalBaseline {
            band,
            prior_mean: self.prior_mean.iter().map(|&m| m as f64).collect(),
            prior_var: self
                .prior_sd
                .iter()
                .map(|&s| (s as f64).powi(2).max(1e-12))
                .collect(),
            prior_weight: self.prior_weight as f64,
            between_var: self
                .prior_between_sd
                .as_ref()
                .map(|v| v.iter().map(|&s| (s as f64).powi(2)).collect()),
            raw_decay: self.raw_decay.map(f64::from),
            count: vec![0.0; self.prior_mean.len()],
            sum: vec![0.0; self.prior_mean.len()],
            sum_sq: vec![0.0; self.prior_mean.len()],
        }
    }

    /// Whether the head needs [`FORMAT_EXTENDED`].
    fn is_extended(&self) -> bool {
        self.hidden.is_some() || self.raw_bound.is_some() || self.prior_between_sd.is_some()
    }

    /// P(high arousal) of an input vector as built by [`input_vector`].
    pub fn predict_input(&self, x: &[f32]) -> f32 {
        let standard = || {
            x.iter()
                .zip(self.input_mean.iter().zip(&self.input_sd))
                .map(|(x, (m, sd))| (x - m) / sd)
        };
        let linear = |range: std::ops::Range<usize>| {
            x[range.clone()]
                .iter()
                .zip(&self.weights[range.clone()])
                .zip(
                    self.input_mean[range.clone()]
                        .iter()
                        .zip(&self.input_sd[range]),
                )
                .map(|((x, w), (m, sd))| w * (x - m) / sd)
                .sum::<f32>()
        };
        let n = self.prior_mean.len();
        let s = match &self.hidden {
            // One sum over every input, in order, as models without a bound were always
            // scored (so their readings stay bit for bit).
            None if self.raw_bound.is_none() => self.bias + linear(0..2 * n),
            None => {
                let b = self.raw_bound.unwrap_or(f32::INFINITY);
                // max/min rather than clamp: no panic on an unvalidated bound.
                self.bias + linear(0..n) + linear(n..2 * n).max(-b).min(b)
            }
            Some(h) => {
                let d = self.input_mean.len();
                self.bias
                    + h.weights
                        .chunks_exact(d)
                        .zip(&h.bias)
                        .zip(&self.weights)
                        .map(|((row, b), w)| {
                            w * (b + standard().zip(row).map(|(x, v)| v * x).sum::<f32>()).tanh()
                        })
                        .sum::<f32>()
            }
        };
        sigmoid(s)
    }
}

/// A trained arousal model (the JSON file's content).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArousalModel {
    pub format: String,
    /// Descriptor names, must equal [`descriptor_names`].
    pub features: Vec<String>,
    /// Head for input sampled above 8 kHz.
    pub wideband: Head,
    /// Head for input at 8 kHz or less.
    pub narrowband: Head,
    /// Free-form training provenance and evaluation figures.
    #[serde(default)]
    pub training: serde_json::Value,
}

impl ArousalModel {
    /// Loads and validates a model file.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Read {
            path: path.into(),
            source,
        })?;
        let corrupt = |message: String| ModelError::Corrupt {
            path: path.into(),
            message,
        };
        let m: ArousalModel = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        m.validate().map_err(corrupt)?;
        Ok(m)
    }

    /// The model shipped in `models/arousal.json`, compiled into the binary so a deployed
    /// box needs no extra file; a config key can point at a retrained one instead.
    pub fn builtin() -> Self {
        let m: ArousalModel = serde_json::from_str(include_str!("../../models/arousal.json"))
            .expect("models/arousal.json is valid (checked by a unit test)");
        m
    }

    /// The format tag a model with these heads is written with.
    pub fn format_for(wideband: &Head, narrowband: &Head) -> &'static str {
        if wideband.is_extended() || narrowband.is_extended() {
            FORMAT_EXTENDED
        } else {
            FORMAT
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        let expected = Self::format_for(&self.wideband, &self.narrowband);
        if self.format != expected {
            let why = if expected == FORMAT_EXTENDED {
                " (a head has a hidden layer, raw_bound or prior_between_sd)"
            } else {
                ""
            };
            return Err(format!(
                "format {:?}, expected {expected:?}{why}",
                self.format
            ));
        }
        let names = descriptor_names();
        if self.features != names {
            return Err("feature list does not match this calltone version".into());
        }
        self.wideband
            .validate(names.len())
            .map_err(|e| format!("wideband: {e}"))?;
        self.narrowband
            .validate(names.len())
            .map_err(|e| format!("narrowband: {e}"))
    }

    pub fn head(&self, band: Band) -> &Head {
        match band {
            Band::Wideband => &self.wideband,
            Band::Narrowband => &self.narrowband,
        }
    }

    /// A fresh baseline for a new speaker whose audio arrives at `input_rate` Hz; the rate
    /// picks the head that scores the speaker for the rest of the call.
    pub fn new_baseline(&self, input_rate: u32) -> ArousalBaseline {
        let band = Band::of_rate(input_rate);
        self.head(band).new_baseline(band)
    }

    /// P(high arousal) of `d` for a speaker whose baseline (before this utterance) is `b`.
    pub fn predict(&self, b: &ArousalBaseline, d: &Descriptors) -> f32 {
        self.predict_input(b.band, &input_vector(b, d))
    }

    /// P(high arousal) of an input vector as built by [`input_vector`].
    pub fn predict_input(&self, band: Band, x: &[f32]) -> f32 {
        self.head(band).predict_input(x)
    }
}

/// Running per-speaker statistics of the descriptors, started from a head's prior.
#[derive(Clone, Debug)]
pub struct ArousalBaseline {
    band: Band,
    prior_mean: Vec<f64>,
    prior_var: Vec<f64>,
    prior_weight: f64,
    /// Between-speaker variance of the speaker mean (the head's `prior_between_sd`²).
    between_var: Option<Vec<f64>>,
    raw_decay: Option<f64>,
    count: Vec<f64>,
    sum: Vec<f64>,
    sum_sq: Vec<f64>,
}

impl ArousalBaseline {
    pub fn band(&self) -> Band {
        self.band
    }

    /// Learns from one utterance; unmeasured descriptors do not count.
    pub fn update(&mut self, d: &Descriptors) {
        for (j, v) in d.0.iter().enumerate().take(self.count.len()) {
            if let Some(v) = v {
                self.count[j] += 1.0;
                self.sum[j] += *v as f64;
                self.sum_sq[j] += (*v as f64).powi(2);
            }
        }
    }

    /// Current (mean, standard deviation) of descriptor `j`: the speaker's mean shrunk
    /// towards the prior, and the within-speaker spread — or, with a between-speaker prior,
    /// the predictive spread of the next utterance (within-speaker variance plus the
    /// variance of the mean's estimate: `(w²·τ² + n·σ²) / (w + n)²`).
    pub fn mean_std(&self, j: usize) -> (f32, f32) {
        let (w, m0, v0) = (self.prior_weight, self.prior_mean[j], self.prior_var[j]);
        let n = self.count[j];
        let (mean, var) = if n == 0.0 {
            (m0, v0)
        } else {
            let xbar = self.sum[j] / n;
            let ss = (self.sum_sq[j] - n * xbar * xbar).max(0.0);
            ((w * m0 + n * xbar) / (w + n), (w * v0 + ss) / (w + n))
        };
        let var = match &self.between_var {
            Some(tau2) => var + (w * w * tau2[j] + n * var) / ((w + n) * (w + n)),
            None => var,
        };
        (mean as f32, var.max(1e-12).sqrt() as f32)
    }
}

/// Bound on the z-scores fed to the model. A voice far outside what the speaker (or, early
/// in a call, the population prior) has shown — an unfamiliar synthetic voice, a young
/// baseline with a near-zero variance — must not push one descriptor's vote without limit
/// (leave-one-corpus-out UAR was the same or better at 3 than at 6 on every corpus but
/// BAVED wideband, −0.006).
const Z_CLIP: f32 = 3.0;

/// The model's input: `[z-scores against the baseline…, raw descriptor values…]`; an
/// unmeasured descriptor has z-score 0 and its prior mean as raw value. With a head's
/// `raw_decay`, raw values fade towards the prior mean as the speaker's baseline fills.
pub fn input_vector(b: &ArousalBaseline, d: &Descriptors) -> Vec<f32> {
    let n = b.count.len();
    let mut x = Vec::with_capacity(2 * n);
    for j in 0..n {
        x.push(match d.0.get(j).copied().flatten() {
            Some(v) => {
                let (m, s) = b.mean_std(j);
                ((v - m) / s).clamp(-Z_CLIP, Z_CLIP)
            }
            None => 0.0,
        });
    }
    for j in 0..n {
        let prior = b.prior_mean[j] as f32;
        x.push(match d.0.get(j).copied().flatten() {
            Some(v) => match b.raw_decay {
                Some(dk) => prior + (dk / (dk + b.count[j])) as f32 * (v - prior),
                None => v,
            },
            None => prior,
        });
    }
    x
}

pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// A fitted logistic regression on standardised inputs.
pub struct Fit {
    pub input_mean: Vec<f32>,
    pub input_sd: Vec<f32>,
    pub weights: Vec<f32>,
    pub bias: f32,
}

/// Fits an L2-regularised, class-balanced logistic regression by Newton's method (IRLS).
/// `x`: one row per example (already built with [`input_vector`]); `y`: 0/1 labels.
pub fn fit_logistic(x: &[Vec<f32>], y: &[f32], l2: f64) -> Fit {
    fit_logistic_weighted(x, y, &vec![1.0; x.len()], l2)
}

/// [`fit_logistic`] with a weight per example (on top of the class balancing, which is
/// computed from the weighted class totals).
pub fn fit_logistic_weighted(x: &[Vec<f32>], y: &[f32], sw: &[f32], l2: f64) -> Fit {
    let d = x.first().map_or(0, |r| r.len());
    let (m, mean, sd) = standardised(x, true);
    let (yv, cw, _) = balanced_weights(y, sw);
    let mut w = Array1::<f64>::zeros(d + 1);
    for _ in 0..50 {
        let z = m.dot(&w);
        let p = z.mapv(|v| 1.0 / (1.0 + (-v).exp()));
        let r = (&p - &yv) * &cw;
        let mut grad = m.t().dot(&r);
        let s = (&p * &p.mapv(|v| 1.0 - v)) * &cw;
        let ms = &m * &s.view().insert_axis(Axis(1));
        let mut h = m.t().dot(&ms);
        for j in 0..d {
            grad[j] += l2 * w[j];
            h[[j, j]] += l2;
        }
        h[[d, d]] += 1e-9;
        let step = solve(h, grad);
        let norm = step.iter().map(|v| v * v).sum::<f64>().sqrt();
        w = &w - &step;
        if norm < 1e-8 {
            break;
        }
    }
    Fit {
        input_mean: mean.iter().map(|&v| v as f32).collect(),
        input_sd: sd.iter().map(|&v| v as f32).collect(),
        weights: w.iter().take(d).map(|&v| v as f32).collect(),
        bias: w[d] as f32,
    }
}

/// `x` as a matrix with every column standardised (mean 0, sd 1; a constant column is only
/// centred), plus a column of ones when `bias_column`; and the columns' means and sds.
fn standardised(x: &[Vec<f32>], bias_column: bool) -> (Array2<f64>, Array1<f64>, Array1<f64>) {
    let n = x.len();
    let d = x.first().map_or(0, |r| r.len());
    let mut m = Array2::<f64>::zeros((n, d + usize::from(bias_column)));
    for (i, row) in x.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            m[[i, j]] = v as f64;
        }
        if bias_column {
            m[[i, d]] = 1.0;
        }
    }
    let mean = m
        .slice(ndarray::s![.., ..d])
        .mean_axis(Axis(0))
        .unwrap_or_else(|| Array1::zeros(d));
    let sd: Array1<f64> = m
        .slice(ndarray::s![.., ..d])
        .std_axis(Axis(0), 0.0)
        .mapv(|s| if s > 1e-9 { s } else { 1.0 });
    for mut row in m.rows_mut() {
        for j in 0..d {
            row[j] = (row[j] - mean[j]) / sd[j];
        }
    }
    (m, mean, sd)
}

/// Labels as f64, and per example its weight `sw` times a class weight that balances the
/// classes so neither dominates the loss (and 0.5 stays the threshold); the weights sum to
/// the total of `sw`, which is returned too.
fn balanced_weights(y: &[f32], sw: &[f32]) -> (Array1<f64>, Array1<f64>, f64) {
    let yv = Array1::from_iter(y.iter().map(|&v| v as f64));
    let swv = Array1::from_iter(sw.iter().map(|&v| v as f64));
    let total = swv.sum().max(1e-9);
    let pos = (&yv * &swv).sum().max(1e-9);
    let neg = (total - pos).max(1e-9);
    let cw: Array1<f64> = yv
        .iter()
        .zip(&swv)
        .map(|(&t, &w)| {
            w * if t > 0.5 {
                total / (2.0 * pos)
            } else {
                total / (2.0 * neg)
            }
        })
        .collect();
    (yv, cw, total)
}

/// Fits a one-hidden-layer perceptron (`units` tanh units) with the same standardisation,
/// class balancing, example weights and L2 penalty (on all weights but the biases) as
/// [`fit_logistic_weighted`], by full-batch Adam from a seeded start, so the same data
/// give the same model.
pub fn fit_mlp_weighted(
    x: &[Vec<f32>],
    y: &[f32],
    sw: &[f32],
    l2: f64,
    units: usize,
    seed: u64,
) -> (Fit, Hidden) {
    const STEPS: usize = 600;
    const RATE: f64 = 0.01;
    let d = x.first().map_or(0, |r| r.len());
    let (m, mean, sd) = standardised(x, false);
    let (yv, cw, total) = balanced_weights(y, sw);
    // The loss and the penalty divided by the total weight (the same minimum as the
    // logistic fit's, on a scale Adam's fixed step suits).
    let cw = cw / total;
    let lam = l2 / total;
    let mut rng = fastrand::Rng::with_seed(seed);
    let scale = 1.0 / (d.max(1) as f64).sqrt();
    let mut w1 = Array2::from_shape_fn((units, d), |_| (rng.f64() * 2.0 - 1.0) * scale);
    let mut b1 = Array1::<f64>::zeros(units);
    let mut w2 = Array1::from_shape_fn(units, |_| (rng.f64() * 2.0 - 1.0) * 0.1);
    let mut b2 = 0.0f64;
    let n_par = units * d + 2 * units + 1;
    let (mut mom, mut vel) = (vec![0.0f64; n_par], vec![0.0f64; n_par]);
    for step in 1..=STEPS {
        let hid = (m.dot(&w1.t()) + &b1).mapv(f64::tanh);
        let p = (hid.dot(&w2) + b2).mapv(|v| 1.0 / (1.0 + (-v).exp()));
        let r = (&p - &yv) * &cw;
        let g_w2 = hid.t().dot(&r) + &w2 * lam;
        let g_b2 = r.sum();
        let dh = (r.insert_axis(Axis(1)) * &w2) * hid.mapv(|h| 1.0 - h * h);
        let g_w1 = dh.t().dot(&m) + &w1 * lam;
        let g_b1 = dh.sum_axis(Axis(0));
        let grads = g_w1.iter().chain(&g_b1).chain(&g_w2).chain([&g_b2]);
        let params = w1
            .iter_mut()
            .chain(b1.iter_mut())
            .chain(w2.iter_mut())
            .chain([&mut b2]);
        let (c1, c2) = (
            1.0 - 0.9f64.powi(step as i32),
            1.0 - 0.999f64.powi(step as i32),
        );
        for (((p, g), mo), ve) in params.zip(grads).zip(&mut mom).zip(&mut vel) {
            *mo = 0.9 * *mo + 0.1 * g;
            *ve = 0.999 * *ve + 0.001 * g * g;
            *p -= RATE * (*mo / c1) / ((*ve / c2).sqrt() + 1e-8);
        }
    }
    (
        Fit {
            input_mean: mean.iter().map(|&v| v as f32).collect(),
            input_sd: sd.iter().map(|&v| v as f32).collect(),
            weights: w2.iter().map(|&v| v as f32).collect(),
            bias: b2 as f32,
        },
        Hidden {
            weights: w1.iter().map(|&v| v as f32).collect(),
            bias: b1.iter().map(|&v| v as f32).collect(),
        },
    )
}

/// Solves `a·x = b` by Gaussian elimination with partial pivoting (a is small and SPD).
fn solve(mut a: Array2<f64>, mut b: Array1<f64>) -> Array1<f64> {
    let n = b.len();
    for c in 0..n {
        let p = (c..n)
            .max_by(|&i, &j| a[[i, c]].abs().total_cmp(&a[[j, c]].abs()))
            .unwrap_or(c);
        if a[[p, c]].abs() < 1e-12 {
            continue;
        }
        if p != c {
            for k in 0..n {
                a.swap([c, k], [p, k]);
            }
            b.swap(c, p);
        }
        for r in c + 1..n {
            let f = a[[r, c]] / a[[c, c]];
            if f == 0.0 {
                continue;
            }
            for k in c..n {
                a[[r, k]] -= f * a[[c, k]];
            }
            b[r] -= f * b[c];
        }
    }
    let mut x = Array1::<f64>::zeros(n);
    for r in (0..n).rev() {
        let mut s = b[r];
        for k in r + 1..n {
            s -= a[[r, k]] * x[k];
        }
        x[r] = if a[[r, r]].abs() < 1e-12 {
            0.0
        } else {
            s / a[[r, r]]
        };
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_model_is_valid() {
        let m = ArousalModel::builtin();
        m.validate().unwrap();
    }

    #[test]
    fn bands_follow_the_input_rate() {
        assert_eq!(Band::of_rate(8_000), Band::Narrowband);
        assert_eq!(Band::of_rate(16_000), Band::Wideband);
        let m = ArousalModel::builtin();
        assert_eq!(m.new_baseline(8_000).band(), Band::Narrowband);
        assert_eq!(m.new_baseline(44_100).band(), Band::Wideband);
    }

    fn frames(f0: f32, loudness: f32) -> Vec<Frame> {
        (0..100)
            .map(|k| Frame {
                t: 0.005 + 0.01 * k as f64,
                f0_hz: if k % 10 < 7 { f0 } else { 0.0 },
                voiced: k % 10 < 7,
                voicing: 0.8,
                loudness: loudness * (1.0 + 0.1 * (k % 5) as f32),
                rms_db: -30.0 + (k % 5) as f32,
                hnr_db: 10.0 + (k % 3) as f32,
                ..Default::default()
            })
            .collect()
    }

    fn describe(fr: &[Frame]) -> Descriptors {
        descriptors(&crate::prosody::functionals(fr, &[]), fr, &[])
    }

    #[test]
    fn descriptors_are_named_and_measured() {
        let d = describe(&frames(200.0, 1.0));
        assert_eq!(d.0.len(), descriptor_names().len());
        let names = descriptor_names();
        let get = |n: &str| d.0[names.iter().position(|x| x == n).unwrap()];
        let p50 = get("f0_p50_st").unwrap();
        assert!((p50 - semitones(200.0)).abs() < 1e-3, "{p50}");
        assert!(get("loudness_p80").unwrap() > get("loudness_p20").unwrap());
        assert!(get("hnr_db_std").unwrap() > 0.0);
        // Silence: no pitch statistics, but no NaN either.
        let silent: Vec<Frame> = (0..50).map(|_| Frame::default()).collect();
        let d = describe(&silent);
        assert!(get_none(&d, "f0_p50_st"));
        assert!(d.0.iter().flatten().all(|v| v.is_finite()));
    }

    fn get_none(d: &Descriptors, n: &str) -> bool {
        d.0[descriptor_names().iter().position(|x| x == n).unwrap()].is_none()
    }

    #[test]
    fn a_between_speaker_prior_widens_the_young_baseline_only() {
        let mut m = ArousalModel::builtin();
        let n = descriptor_names().len();
        let j = descriptor_names()
            .iter()
            .position(|x| x == "f0_p50_st")
            .unwrap();
        let sd = m.wideband.prior_sd[j];
        let tau = 3.0 * sd;
        m.wideband.prior_between_sd = Some(vec![tau; n]);
        let plain = ArousalModel::builtin().new_baseline(16_000);
        let mut b = m.new_baseline(16_000);
        // At the call's start: the within-speaker and the between-speaker spread together.
        let (_, s0) = b.mean_std(j);
        assert!(
            (s0 - (sd * sd + tau * tau).sqrt()).abs() < 1e-3 * s0,
            "{s0}"
        );
        assert!((plain.mean_std(j).1 - sd).abs() < 1e-4);
        // A voice 6 within-speaker spreads off the population mean reads z = 3 (clipped) on
        // the plain baseline, under 2 with the population's range of voices allowed for.
        let mut far = Descriptors(vec![None; n]);
        far.0[j] = Some(m.wideband.prior_mean[j] + 6.0 * sd);
        assert_eq!(input_vector(&plain, &far)[j], Z_CLIP);
        let z = input_vector(&b, &far)[j];
        assert!(z > 1.0 && z < 2.0, "{z}");
        // The speaker's own utterances take the mean's uncertainty away: after many, the
        // spread is the speaker's own again (to the σ²/n term).
        let d = describe(&frames(300.0, 1.0));
        let mut plain = plain;
        for _ in 0..400 {
            b.update(&d);
            plain.update(&d);
        }
        let (s_pred, s_plain) = (b.mean_std(j).1, plain.mean_std(j).1);
        assert!(
            s_pred >= s_plain && s_pred < 1.01 * s_plain + 1e-3,
            "{s_pred} {s_plain}"
        );
        // Such a model says it needs this version; a wrong length is a clear error.
        m.format = FORMAT_EXTENDED.into();
        assert!(m.validate().is_ok());
        m.wideband.prior_between_sd = Some(vec![tau; n - 1]);
        let e = m.validate().unwrap_err();
        assert!(
            e.contains("wideband") && e.contains("prior_between_sd"),
            "{e}"
        );
    }

    #[test]
    fn baseline_shrinks_from_the_prior_to_the_speaker() {
        let m = ArousalModel::builtin();
        let j = descriptor_names()
            .iter()
            .position(|x| x == "f0_p50_st")
            .unwrap();
        let mut b = m.new_baseline(16_000);
        let (m0, _) = b.mean_std(j);
        assert!((m0 - m.wideband.prior_mean[j]).abs() < 1e-4);
        let d = describe(&frames(300.0, 1.0));
        let own = d.0[j].unwrap();
        for _ in 0..200 {
            b.update(&d);
        }
        let (m1, s1) = b.mean_std(j);
        let w = m.wideband.prior_weight;
        let expected = own + w / (w + 200.0) * (m0 - own);
        assert!((m1 - expected).abs() < 1e-3, "{m1} {expected}");
        assert!((m1 - own).abs() < (m0 - own).abs());
        assert!(s1 < m.wideband.prior_sd[j]);
        // The utterance now reads as typical of the speaker.
        let x = input_vector(&b, &d);
        assert!(x[j].abs() < 0.5, "{}", x[j]);
        assert_eq!(x.len(), 2 * descriptor_names().len());
        let p = m.predict(&b, &d);
        assert!((0.0..=1.0).contains(&p));
    }

    #[test]
    fn logistic_regression_separates_a_separable_set() {
        // y = 1 when x0 + 0.5·x1 > 1; noise-free.
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..200 {
            let a = (i % 20) as f32 / 10.0;
            let b = (i / 20) as f32 / 5.0;
            x.push(vec![a, b, 0.3]);
            y.push(f32::from(u8::from(a + 0.5 * b > 1.0)));
        }
        let fit = fit_logistic(&x, &y, 1e-3);
        let predict = |r: &[f32]| {
            let s: f32 = fit.bias
                + r.iter()
                    .zip(&fit.weights)
                    .zip(fit.input_mean.iter().zip(&fit.input_sd))
                    .map(|((v, w), (m, s))| w * (v - m) / s)
                    .sum::<f32>();
            sigmoid(s)
        };
        let correct = x
            .iter()
            .zip(&y)
            .filter(|(r, &t)| (predict(r) > 0.5) == (t > 0.5))
            .count();
        assert!(correct >= 196, "{correct}/200");
        // The constant feature gets no weight.
        assert!(fit.weights[2].abs() < 1e-6);
    }

    /// An XOR-like set (high when x0 and x1 have the same sign), which no linear head can
    /// separate, plus a constant input.
    fn xor_set() -> (Vec<Vec<f32>>, Vec<f32>) {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..400 {
            let a = ((i % 20) as f32 - 9.5) / 5.0;
            let b = ((i / 20) as f32 - 9.5) / 5.0;
            x.push(vec![a, b, 0.3]);
            y.push(f32::from(u8::from(a * b > 0.0)));
        }
        (x, y)
    }

    fn head_of(fit: Fit, hidden: Option<Hidden>) -> Head {
        Head {
            prior_mean: vec![0.0],
            prior_sd: vec![1.0],
            prior_weight: 1.0,
            raw_decay: None,
            input_mean: fit.input_mean,
            input_sd: fit.input_sd,
            weights: fit.weights,
            bias: fit.bias,
            hidden,
            raw_bound: None,
            prior_between_sd: None,
        }
    }

    #[test]
    fn a_hidden_layer_learns_what_a_linear_head_cannot() {
        let (x, y) = xor_set();
        let w = vec![1.0; x.len()];
        let accuracy = |h: &Head| {
            x.iter()
                .zip(&y)
                .filter(|(r, &t)| (h.predict_input(r) > 0.5) == (t > 0.5))
                .count()
        };
        let linear = head_of(fit_logistic_weighted(&x, &y, &w, 1e-3), None);
        let (fit, hidden) = fit_mlp_weighted(&x, &y, &w, 1e-3, 8, 1);
        let mlp = head_of(fit, Some(hidden.clone()));
        assert!(accuracy(&linear) < 280, "linear {}", accuracy(&linear));
        assert!(accuracy(&mlp) >= 380, "mlp {}", accuracy(&mlp));
        // Deterministic: the same data and seed give the same weights.
        let (again, hidden_again) = fit_mlp_weighted(&x, &y, &w, 1e-3, 8, 1);
        assert_eq!((again.weights, hidden_again), (mlp.weights.clone(), hidden));
        // A strong penalty shrinks the weights towards zero (and the score towards 0.5).
        let (strong, hs) = fit_mlp_weighted(&x, &y, &w, 1e4, 8, 1);
        let norm = |v: &[f32]| v.iter().map(|a| a * a).sum::<f32>();
        assert!(norm(&strong.weights) + norm(&hs.weights) < 0.01 * (norm(&mlp.weights)));
    }

    #[test]
    fn a_hidden_layer_of_the_wrong_shape_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("arousal.json");
        let n = descriptor_names().len();
        let mut m = ArousalModel::builtin();
        m.wideband.hidden = Some(Hidden {
            weights: vec![0.1; 4 * 2 * n],
            bias: vec![0.0; 4],
        });
        m.wideband.weights = vec![0.5; 4];
        // Under the plain format tag a binary without hidden layers would misread the
        // file, so the tag must say it needs them.
        std::fs::write(&p, serde_json::to_string(&m).unwrap()).unwrap();
        let e = ArousalModel::load(&p).unwrap_err().to_string();
        assert!(e.contains(FORMAT_EXTENDED), "{e}");
        m.format = FORMAT_EXTENDED.into();
        std::fs::write(&p, serde_json::to_string(&m).unwrap()).unwrap();
        let loaded = ArousalModel::load(&p).expect("a well-formed perceptron head loads");
        let b = loaded.new_baseline(16_000);
        let d = describe(&frames(200.0, 1.0));
        assert!((0.0..=1.0).contains(&loaded.predict(&b, &d)));
        m.wideband.hidden.as_mut().unwrap().weights.pop();
        std::fs::write(&p, serde_json::to_string(&m).unwrap()).unwrap();
        let e = ArousalModel::load(&p).unwrap_err().to_string();
        assert!(e.contains("wideband") && e.contains("hidden layer"), "{e}");
        m.wideband.hidden = None;
        m.format = FORMAT.into();
        std::fs::write(&p, serde_json::to_string(&m).unwrap()).unwrap();
        let e = ArousalModel::load(&p).unwrap_err().to_string();
        assert!(e.contains("weights has 4 values"), "{e}");
    }

    #[test]
    fn a_raw_bound_caps_what_absolute_values_add() {
        let n = descriptor_names().len();
        let mut m = ArousalModel::builtin();
        let head = &mut m.wideband;
        // Only the raw block counts: weight 1 on the first two raw inputs, nothing else.
        head.weights = vec![0.0; 2 * n];
        head.weights[n] = 1.0;
        head.weights[n + 1] = 1.0;
        head.bias = 0.0;
        let mut x: Vec<f32> = head.input_mean.clone();
        x[n] += 10.0 * head.input_sd[n];
        let unbounded = head.predict_input(&x);
        assert!(unbounded > 0.9999, "{unbounded}");
        head.raw_bound = Some(1.0);
        let bounded = head.predict_input(&x);
        assert!((bounded - sigmoid(1.0)).abs() < 1e-6, "{bounded}");
        // The bound is on the block's sum, not on each input: 0.8 + 0.8 reads as 1.
        x[n] = head.input_mean[n] + 0.8 * head.input_sd[n];
        x[n + 1] = head.input_mean[n + 1] + 0.8 * head.input_sd[n + 1];
        assert!((head.predict_input(&x) - sigmoid(1.0)).abs() < 1e-5);
        x[n + 1] = head.input_mean[n + 1];
        x[n] = head.input_mean[n] - 10.0 * head.input_sd[n];
        assert!((head.predict_input(&x) - sigmoid(-1.0)).abs() < 1e-6);
        // The z-score block is not bounded.
        head.weights[0] = 1.0;
        x[0] = head.input_mean[0] + 3.0 * head.input_sd[0];
        assert!((head.predict_input(&x) - sigmoid(3.0 - 1.0)).abs() < 1e-5);
        // Such a file says it needs this version, and the bound must be positive and on a
        // linear head.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("arousal.json");
        std::fs::write(&p, serde_json::to_string(&m).unwrap()).unwrap();
        let e = ArousalModel::load(&p).unwrap_err().to_string();
        assert!(e.contains(FORMAT_EXTENDED), "{e}");
        m.format = FORMAT_EXTENDED.into();
        std::fs::write(&p, serde_json::to_string(&m).unwrap()).unwrap();
        ArousalModel::load(&p).expect("a bounded head loads");
        m.wideband.raw_bound = Some(-1.0);
        std::fs::write(&p, serde_json::to_string(&m).unwrap()).unwrap();
        let e = ArousalModel::load(&p).unwrap_err().to_string();
        assert!(e.contains("wideband") && e.contains("raw_bound"), "{e}");
        // A bound has no meaning on a head with a hidden layer.
        m.wideband.raw_bound = Some(1.0);
        m.wideband.hidden = Some(Hidden {
            weights: vec![0.1; 2 * 2 * n],
            bias: vec![0.0; 2],
        });
        m.wideband.weights = vec![0.5; 2];
        let e = m.validate().unwrap_err();
        assert!(e.contains("raw_bound") && e.contains("hidden layer"), "{e}");
    }

    #[test]
    fn an_unbounded_head_scores_as_one_sum_over_its_inputs() {
        // The shipped model's readings stay bit for bit those of a single pass over the
        // standardised inputs in order, as before bounds existed.
        let m = ArousalModel::builtin();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut draw = move || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 6.0
        };
        for k in 0..400 {
            let head = if k % 2 == 0 {
                &m.wideband
            } else {
                &m.narrowband
            };
            let x: Vec<f32> = (0..head.input_mean.len())
                .map(|i| head.input_mean[i] + draw() * head.input_sd[i])
                .collect();
            let one_pass = head.bias
                + x.iter()
                    .zip(&head.weights)
                    .zip(head.input_mean.iter().zip(&head.input_sd))
                    .map(|((x, w), (m, sd))| w * (x - m) / sd)
                    .sum::<f32>();
            assert_eq!(
                head.predict_input(&x).to_bits(),
                sigmoid(one_pass).to_bits(),
                "input {k}"
            );
        }
    }

    #[test]
    fn corrupt_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("arousal.json");
        std::fs::write(&p, "{not json").unwrap();
        let e = ArousalModel::load(&p).unwrap_err().to_string();
        assert!(e.contains("arousal.json") && e.contains("corrupt"), "{e}");
        let mut m = ArousalModel::builtin();
        m.narrowband.weights.pop();
        std::fs::write(&p, serde_json::to_string(&m).unwrap()).unwrap();
        let e = ArousalModel::load(&p).unwrap_err().to_string();
        assert!(e.contains("narrowband") && e.contains("weights"), "{e}");
        let mut m = ArousalModel::builtin();
        m.wideband.prior_sd[3] = 0.0;
        std::fs::write(&p, serde_json::to_string(&m).unwrap()).unwrap();
        let e = ArousalModel::load(&p).unwrap_err().to_string();
        assert!(e.contains("prior_sd"), "{e}");
        let mut m = ArousalModel::builtin();
        m.format = "calltone-arousal-v1".into();
        std::fs::write(&p, serde_json::to_string(&m).unwrap()).unwrap();
        let e = ArousalModel::load(&p).unwrap_err().to_string();
        assert!(e.contains("format"), "{e}");
        let e = ArousalModel::load(&dir.path().join("missing.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.json"), "{e}");
    }
}
