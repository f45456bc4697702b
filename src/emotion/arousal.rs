//! The arousal model: P(high arousal) from speaker-normalised prosodic functionals.
//!
//! Inputs are the utterance's (or window's) [`Functionals::feature_vector`] twice over: as
//! z-scores against the speaker's running [`SpeakerBaseline`] (how this utterance differs from
//! the speaker's own voice so far) and as raw values (where the voice is in absolute terms,
//! which carries the call's first utterances while the baseline is still mostly prior). Both
//! are standardised with training statistics and fed to an L2-regularised logistic
//! regression. Weights live in `models/arousal.json` (trained by
//! `cargo run --release --example train_arousal -- ../shared/data`).

use std::path::Path;

use ndarray::{Array1, Array2, Axis};
use serde::{Deserialize, Serialize};

use crate::prosody::{Functionals, SpeakerBaseline};

/// The file format tag; bump when the input layout changes.
pub const FORMAT: &str = "calltone-arousal-v1";

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

/// A trained arousal model (the JSON file's content).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArousalModel {
    pub format: String,
    /// Feature names, must equal [`Functionals::feature_names`].
    pub features: Vec<String>,
    /// Standardisation of the input vector `[z-scores…, raw…]`.
    pub input_mean: Vec<f32>,
    pub input_sd: Vec<f32>,
    pub weights: Vec<f32>,
    pub bias: f32,
    /// Prior weight (in utterances) of the speaker baseline the model was trained with.
    pub baseline_prior_weight: f32,
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

    fn validate(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!("format {:?}, expected {FORMAT:?}", self.format));
        }
        let names = Functionals::feature_names();
        if self.features.len() != names.len()
            || self.features.iter().zip(names).any(|(a, b)| a != b)
        {
            return Err("feature list does not match this calltone version".into());
        }
        let n = 2 * names.len();
        for (what, v) in [
            ("input_mean", &self.input_mean),
            ("input_sd", &self.input_sd),
            ("weights", &self.weights),
        ] {
            if v.len() != n {
                return Err(format!("{what} has {} values, expected {n}", v.len()));
            }
            if v.iter().any(|x| !x.is_finite()) {
                return Err(format!("{what} has non-finite values"));
            }
        }
        if self.input_sd.iter().any(|&s| s <= 0.0) {
            return Err("input_sd must be positive".into());
        }
        if !self.bias.is_finite() || !(self.baseline_prior_weight > 0.0) {
            return Err("bias or baseline_prior_weight invalid".into());
        }
        Ok(())
    }

    /// A fresh baseline for a new speaker, as the model was trained with.
    pub fn new_baseline(&self) -> SpeakerBaseline {
        SpeakerBaseline::with_prior_weight(self.baseline_prior_weight)
    }

    /// P(high arousal) of `f` for a speaker whose baseline (before this utterance) is `b`.
    pub fn predict(&self, b: &SpeakerBaseline, f: &Functionals) -> f32 {
        let x = input_vector(b, f);
        self.predict_input(&x)
    }

    /// P(high arousal) of an input vector as built by [`input_vector`].
    pub fn predict_input(&self, x: &[f32]) -> f32 {
        let mut s = self.bias;
        for i in 0..x.len().min(self.weights.len()) {
            s += self.weights[i] * (x[i] - self.input_mean[i]) / self.input_sd[i];
        }
        sigmoid(s)
    }
}

/// The model's input: `[z-scores against the baseline…, raw feature values…]`.
pub fn input_vector(b: &SpeakerBaseline, f: &Functionals) -> Vec<f32> {
    let mut x = b.zscores(f);
    // Extreme z-scores (a near-zero variance early in a call) would dominate the sum.
    for z in &mut x {
        *z = z.clamp(-6.0, 6.0);
    }
    x.extend(f.feature_vector());
    x
}

pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Fits an L2-regularised logistic regression by Newton's method (IRLS).
/// `x`: one row per example (already built with [`input_vector`]); `y`: 0/1 labels.
/// Returns (input_mean, input_sd, weights, bias).
pub fn fit_logistic(x: &[Vec<f32>], y: &[f32], l2: f64) -> (Vec<f32>, Vec<f32>, Vec<f32>, f32) {
    let n = x.len();
    let d = x.first().map_or(0, |r| r.len());
    let mut m = Array2::<f64>::zeros((n, d + 1));
    for (i, row) in x.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            m[[i, j]] = v as f64;
        }
        m[[i, d]] = 1.0;
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
    let yv = Array1::from_iter(y.iter().map(|&v| v as f64));
    // Balance the classes so neither dominates the loss.
    let pos = yv.sum().max(1.0);
    let neg = (n as f64 - yv.sum()).max(1.0);
    let cw: Array1<f64> = yv.mapv(|t| {
        if t > 0.5 {
            n as f64 / (2.0 * pos)
        } else {
            n as f64 / (2.0 * neg)
        }
    });
    let mut w = Array1::<f64>::zeros(d + 1);
    for _ in 0..50 {
        let z = m.dot(&w);
        let p = z.mapv(|v| 1.0 / (1.0 + (-v).exp()));
        let r = (&p - &yv) * &cw;
        let mut grad = m.t().dot(&r);
        let s = (&p * &p.mapv(|v| 1.0 - v)) * &cw;
        let mut h = Array2::<f64>::zeros((d + 1, d + 1));
        for (i, row) in m.rows().into_iter().enumerate() {
            let si = s[i];
            for a in 0..=d {
                let ra = row[a] * si;
                if ra == 0.0 {
                    continue;
                }
                for b in a..=d {
                    h[[a, b]] += ra * row[b];
                }
            }
        }
        for a in 0..=d {
            for b in 0..a {
                h[[a, b]] = h[[b, a]];
            }
        }
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
    (
        mean.iter().map(|&v| v as f32).collect(),
        sd.iter().map(|&v| v as f32).collect(),
        w.iter().take(d).map(|&v| v as f32).collect(),
        w[d] as f32,
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
        let (mean, sd, w, bias) = fit_logistic(&x, &y, 1e-3);
        let predict = |r: &[f32]| {
            let s: f32 = bias
                + r.iter()
                    .zip(&w)
                    .zip(mean.iter().zip(&sd))
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
        assert!(w[2].abs() < 1e-6);
    }

    #[test]
    fn corrupt_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("arousal.json");
        std::fs::write(&p, "{not json").unwrap();
        let e = ArousalModel::load(&p).unwrap_err().to_string();
        assert!(e.contains("arousal.json") && e.contains("corrupt"), "{e}");
        let mut m = ArousalModel::builtin();
        m.weights.pop();
        std::fs::write(&p, serde_json::to_string(&m).unwrap()).unwrap();
        let e = ArousalModel::load(&p).unwrap_err().to_string();
        assert!(e.contains("weights"), "{e}");
        let e = ArousalModel::load(&dir.path().join("missing.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.json"), "{e}");
    }
}
