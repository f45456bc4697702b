//! Short-time spectral descriptors: perceptual loudness and spectral balance.
//!
//! * Loudness follows eGeMAPS' idea (an auditory spectrum summed over bands): the power
//!   spectrum of a 25 ms Hamming window is pooled into 26 triangular Bark-spaced bands
//!   (20 Hz–8 kHz), weighted by the PLP equal-loudness curve, compressed with exponent 0.33
//!   and summed. The absolute scale is ours (not openSMILE's); compare values relatively.
//! * Alpha ratio, Hammarberg index and spectral slope are measured *inside the telephone
//!   band* so that wideband and phone calls give comparable numbers: alpha ratio =
//!   10·log10(E[1000–3400 Hz] / E[300–1000 Hz]) (eGeMAPS' sign: more vocal effort → less
//!   negative); Hammarberg = 10·log10(max P[300–2000 Hz] / max P[2000–3400 Hz]); spectral
//!   slope = least-squares slope of the dB power spectrum over 300–3400 Hz, in dB/kHz.
//!
//! Invariant: no allocation after construction.

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};
use std::sync::Arc;

/// Window length in seconds (as eGeMAPS' 25 ms energy/spectral frames).
pub const WINDOW_S: f32 = 0.025;
/// Loudness is the sum over bands of band power to this power: a gain of g dB scales it
/// by 10^(exponent·g/10) (the arousal training's gain jitter relies on it).
pub const LOUDNESS_EXPONENT: f32 = 0.33;
const N_BANDS: usize = 26;
const BAND_LO_HZ: f32 = 300.0;
const BAND_MID_HZ: f32 = 1000.0;
const HAMMARBERG_SPLIT_HZ: f32 = 2000.0;
const BAND_HI_HZ: f32 = 3400.0;

/// Spectral descriptors of one frame.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SpectralFeatures {
    pub loudness: f32,
    pub alpha_ratio_db: f32,
    pub hammarberg_db: f32,
    /// dB per kHz.
    pub spectral_slope: f32,
}

struct Band {
    first: usize,
    weights: Vec<f32>,
}

pub struct SpectralAnalyzer {
    win: Vec<f32>,
    r2c: Arc<dyn RealToComplex<f32>>,
    time: Vec<f32>,
    spec: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    power: Vec<f32>,
    bands: Vec<Band>,
    norm: f32,
    lo: usize,
    mid: usize,
    split: usize,
    hi: usize,
    slope_x: Vec<f32>,
    slope_den: f32,
}

fn bark(f: f32) -> f32 {
    6.0 * (f / 600.0).asinh()
}

fn bark_inv(b: f32) -> f32 {
    600.0 * (b / 6.0).sinh()
}

/// Hermansky's PLP equal-loudness pre-emphasis (approximates the 40-phon curve).
fn equal_loudness(f: f32) -> f32 {
    let w2 = (2.0 * std::f64::consts::PI * f as f64).powi(2);
    let num = (w2 + 56.8e6) * w2 * w2;
    let den = (w2 + 6.3e6).powi(2) * (w2 + 0.38e9);
    (num / den) as f32
}

impl SpectralAnalyzer {
    pub fn new(sample_rate: u32) -> Self {
        let sr = sample_rate as f32;
        let n = (WINDOW_S * sr).round() as usize;
        let nfft = super::pitch::fft_size(n);
        let win: Vec<f32> = (0..n)
            .map(|i| 0.54 - 0.46 * (2.0 * std::f32::consts::PI * i as f32 / (n - 1) as f32).cos())
            .collect();
        let wsum: f32 = win.iter().map(|w| w * w).sum();
        let mut planner = RealFftPlanner::<f32>::new();
        let r2c = planner.plan_fft_forward(nfft);
        let nbins = nfft / 2 + 1;
        let hz_per_bin = sr / nfft as f32;
        let bin = |f: f32| ((f / hz_per_bin).round() as usize).min(nbins - 1);
        let nyq = (sr / 2.0).min(8000.0);
        let (b0, b1) = (bark(20.0), bark(nyq));
        let step = (b1 - b0) / (N_BANDS + 1) as f32;
        let bands = (0..N_BANDS)
            .map(|k| {
                let (l, c, h) = (
                    bark_inv(b0 + step * k as f32),
                    bark_inv(b0 + step * (k + 1) as f32),
                    bark_inv(b0 + step * (k + 2) as f32),
                );
                let first = bin(l);
                let last = bin(h).max(first);
                let eq = equal_loudness(c);
                let weights = (first..=last)
                    .map(|i| {
                        let f = i as f32 * hz_per_bin;
                        let tri = if f <= c {
                            (f - l) / (c - l)
                        } else {
                            (h - f) / (h - c)
                        };
                        tri.clamp(0.0, 1.0) * eq
                    })
                    .collect();
                Band { first, weights }
            })
            .collect();
        let (lo, mid, split, hi) = (
            bin(BAND_LO_HZ),
            bin(BAND_MID_HZ),
            bin(HAMMARBERG_SPLIT_HZ),
            bin(BAND_HI_HZ.min(nyq)),
        );
        let xs: Vec<f32> = (lo..=hi).map(|i| i as f32 * hz_per_bin / 1000.0).collect();
        let xm = xs.iter().sum::<f32>() / xs.len() as f32;
        let slope_x: Vec<f32> = xs.iter().map(|x| x - xm).collect();
        let slope_den = slope_x.iter().map(|x| x * x).sum();
        Self {
            time: r2c.make_input_vec(),
            spec: r2c.make_output_vec(),
            scratch: r2c.make_scratch_vec(),
            power: vec![0.0; nbins],
            r2c,
            win,
            bands,
            norm: 1.0 / wsum,
            lo,
            mid,
            split,
            hi,
            slope_x,
            slope_den,
        }
    }

    pub fn window_len(&self) -> usize {
        self.win.len()
    }

    /// Analyse one window (`frame.len() == window_len()`).
    pub fn analyze(&mut self, frame: &[f32]) -> SpectralFeatures {
        let n = self.win.len();
        for (t, (&x, &w)) in self.time.iter_mut().zip(frame.iter().zip(&self.win)) {
            *t = x * w;
        }
        self.time[n..].iter_mut().for_each(|v| *v = 0.0);
        // Buffers come from the plan, so this cannot fail.
        if self
            .r2c
            .process_with_scratch(&mut self.time, &mut self.spec, &mut self.scratch)
            .is_err()
        {
            return SpectralFeatures::default();
        }
        for (p, c) in self.power.iter_mut().zip(&self.spec) {
            *p = c.norm_sqr() * self.norm;
        }
        let p = &self.power;
        let mut loudness = 0.0f32;
        for b in &self.bands {
            let e: f32 = p[b.first..b.first + b.weights.len()]
                .iter()
                .zip(&b.weights)
                .map(|(a, w)| a * w)
                .sum();
            loudness += e.max(0.0).powf(LOUDNESS_EXPONENT);
        }
        const EPS: f32 = 1e-12;
        let e_low: f32 = p[self.lo..self.mid].iter().sum();
        let e_high: f32 = p[self.mid..=self.hi].iter().sum();
        let m_low = p[self.lo..self.split].iter().cloned().fold(0.0, f32::max);
        let m_high = p[self.split..=self.hi].iter().cloned().fold(0.0, f32::max);
        let mut num = 0.0f32;
        for (x, &v) in self.slope_x.iter().zip(&p[self.lo..=self.hi]) {
            num += x * fast_db(v + EPS);
        }
        SpectralFeatures {
            loudness,
            alpha_ratio_db: 10.0 * ((e_high + EPS) / (e_low + EPS)).log10(),
            hammarberg_db: 10.0 * ((m_low + EPS) / (m_high + EPS)).log10(),
            spectral_slope: num / self.slope_den,
        }
    }
}

/// 10·log10(x) for x > 0 from the float's exponent and a short polynomial (±0.001 dB):
/// the slope regression takes a log of every bin, which otherwise dominates the cost.
#[inline]
fn fast_db(x: f32) -> f32 {
    let bits = x.to_bits();
    let e = ((bits >> 23) & 0xff) as i32 - 127;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000); // 1 ≤ m < 2
                                                                // log2(m) on [1, 2): least-squares quartic (max error 0.0006 dB).
    let t = m - 1.0;
    let l2 = t * (1.438_545_4 + t * (-0.678_071_5 + t * (0.323_610_5 - t * 0.084_273_16)));
    (e as f32 + l2) * 3.010_3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_db_is_close() {
        for &x in &[1e-9f32, 0.003, 0.5, 1.0, 1.7, 123.0, 9e7] {
            let err = (fast_db(x) - 10.0 * x.log10()).abs();
            assert!(err < 0.05, "{x}: {err}");
        }
    }

    #[test]
    fn louder_is_louder_and_tilt_sign() {
        let mut sa = SpectralAnalyzer::new(16000);
        let n = sa.window_len();
        let tone = |f: f32, a: f32| -> Vec<f32> {
            (0..n)
                .map(|i| a * (2.0 * std::f32::consts::PI * f * i as f32 / 16000.0).sin())
                .collect()
        };
        let q = sa.analyze(&tone(500.0, 0.01));
        let l = sa.analyze(&tone(500.0, 0.1));
        assert!(l.loudness > 2.0 * q.loudness, "{q:?} {l:?}");
        let low = sa.analyze(&tone(500.0, 0.1));
        let high = sa.analyze(&tone(2500.0, 0.1));
        assert!(low.alpha_ratio_db < -10.0 && high.alpha_ratio_db > 10.0);
        assert!(low.hammarberg_db > 10.0 && high.hammarberg_db < -10.0);
    }
}
