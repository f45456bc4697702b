//! Running per-speaker baseline: stress is relative to the speaker's own voice.
//!
//! Each feature of [`Functionals::feature_vector`] has a population prior (mean, variance)
//! worth `prior_weight` pseudo-observations. Every `update` adds one observation; the
//! posterior mean and variance are the pooled statistics of prior pseudo-observations and
//! the speaker's own, so the speaker's statistics progressively replace the prior: mean =
//! (w·m₀ + Σx)/(w + n), variance = (w·v₀ + Σ(x − x̄)²)/(w + n). (Unlike the full conjugate
//! update, a speaker whose mean differs from the population's does not keep an inflated
//! variance, which would mute their z-scores for the whole call.) Features
//! that were not measurable in an update (e.g. no pitch) do not count for that feature.

use super::functionals::{Functionals, FEATURES};

/// Default prior weight in utterances.
pub const DEFAULT_PRIOR_WEIGHT: f32 = 5.0;

#[derive(Clone, Debug)]
pub struct SpeakerBaseline {
    prior_mean: Vec<f64>,
    prior_var: Vec<f64>,
    prior_weight: f64,
    count: Vec<f64>,
    sum: Vec<f64>,
    sum_sq: Vec<f64>,
    updates: usize,
}

impl Default for SpeakerBaseline {
    fn default() -> Self {
        Self::new()
    }
}

impl SpeakerBaseline {
    /// Population prior with [`DEFAULT_PRIOR_WEIGHT`].
    pub fn new() -> Self {
        Self::with_prior_weight(DEFAULT_PRIOR_WEIGHT)
    }

    /// Population prior worth `w` utterances (w > 0).
    pub fn with_prior_weight(w: f32) -> Self {
        let means = FEATURES.iter().map(|f| f.1).collect::<Vec<_>>();
        let sds = FEATURES.iter().map(|f| f.2).collect::<Vec<_>>();
        Self::with_prior(&means, &sds, w)
    }

    /// Custom prior: per-feature means and standard deviations aligned with
    /// [`Functionals::feature_names`], worth `w` utterances.
    pub fn with_prior(means: &[f32], sds: &[f32], w: f32) -> Self {
        let n = FEATURES.len();
        assert_eq!(
            means.len(),
            n,
            "prior means must align with feature_names()"
        );
        assert_eq!(sds.len(), n, "prior sds must align with feature_names()");
        Self {
            prior_mean: means.iter().map(|&m| m as f64).collect(),
            prior_var: sds.iter().map(|&s| (s as f64).powi(2).max(1e-12)).collect(),
            prior_weight: (w as f64).max(1e-3),
            count: vec![0.0; n],
            sum: vec![0.0; n],
            sum_sq: vec![0.0; n],
            updates: 0,
        }
    }

    /// Number of updates so far.
    pub fn n(&self) -> usize {
        self.updates
    }

    pub fn update(&mut self, f: &Functionals) {
        for (j, (v, measured)) in f.feature_values().into_iter().enumerate() {
            if measured && v.is_finite() {
                self.count[j] += 1.0;
                self.sum[j] += v as f64;
                self.sum_sq[j] += (v as f64).powi(2);
            }
        }
        self.updates += 1;
    }

    /// Current (mean, standard deviation) of feature `j`.
    pub fn mean_sd(&self, j: usize) -> (f32, f32) {
        let (w, m0, v0) = (self.prior_weight, self.prior_mean[j], self.prior_var[j]);
        let n = self.count[j];
        if n == 0.0 {
            return (m0 as f32, v0.sqrt() as f32);
        }
        let xbar = self.sum[j] / n;
        let ss = (self.sum_sq[j] - n * xbar * xbar).max(0.0);
        let mean = (w * m0 + n * xbar) / (w + n);
        let var = (w * v0 + ss) / (w + n);
        (mean as f32, var.max(1e-12).sqrt() as f32)
    }

    /// z-scores of `f` against the current baseline, aligned with `feature_vector()`;
    /// 0 for features not measured in `f`.
    pub fn zscores(&self, f: &Functionals) -> Vec<f32> {
        f.feature_values()
            .into_iter()
            .enumerate()
            .map(|(j, (v, measured))| {
                if !measured {
                    return 0.0;
                }
                let (m, s) = self.mean_sd(j);
                (v - m) / s
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_f0(st: f32) -> Functionals {
        Functionals {
            f0_mean_st: Some(st),
            ..Default::default()
        }
    }

    #[test]
    fn own_statistics_replace_the_prior() {
        let mut b = SpeakerBaseline::new();
        assert_eq!(b.n(), 0);
        let z0 = b.zscores(&with_f0(40.0))[0];
        assert!((z0 - 2.0).abs() < 1e-4, "prior: (40-30)/5 = 2, got {z0}");
        // A high-pitched speaker: after many utterances near 40 st, 40 st is normal.
        for i in 0..200 {
            b.update(&with_f0(40.0 + if i % 2 == 0 { 1.0 } else { -1.0 }));
        }
        assert_eq!(b.n(), 200);
        let (m, s) = b.mean_sd(0);
        assert!((m - 40.0).abs() < 0.3, "{m}");
        assert!(s < 1.5, "{s}");
        assert!(b.zscores(&with_f0(40.0))[0].abs() < 0.3);
        assert!(b.zscores(&with_f0(44.0))[0] > 2.0);
    }

    #[test]
    fn unmeasured_features_give_zero_and_do_not_update() {
        let mut b = SpeakerBaseline::new();
        b.update(&Functionals::default());
        let z = b.zscores(&Functionals::default());
        assert_eq!(z.len(), Functionals::feature_names().len());
        assert_eq!(z[0], 0.0);
        assert_eq!(b.mean_sd(0), (30.0, 5.0));
    }
}
