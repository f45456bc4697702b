//! Pitch candidates and path tracking, after Praat's "To Pitch (ac)" (Boersma 1993).
//!
//! [`AcAnalyzer`] turns one analysis window into a short list of F0 candidates, with three
//! correlation functions from real FFTs of the same window:
//! * **candidates** come from the autocorrelation of the *magnitude* spectrum (spectral
//!   compression, i.e. the inverse FFT of |X| rather than |X|²) of the Hann-windowed frame,
//!   divided by the window's own autocorrelation (Praat). Compression evens out the
//!   harmonics, so on telephone audio — fundamental gone, one or two strong low harmonics
//!   near F1 — the period at 2–4 × F0 no longer correlates as well as the true one. This
//!   is what takes telephone GPE from ~15 % (Praat-style |X|², and Praat itself ~10 %) to
//!   ~4 % against Praat on the wideband original;
//! * **voicing strength** of the best candidate is Praat's own AC value (|X|², full band),
//!   so Praat's voicing threshold keeps its meaning; the other candidates keep their
//!   compressed differences to it;
//! * **period and HNR** come from the forward cross-correlation (Praat's FCC, rectangular
//!   window, each lag normalised by the energies of both overlapping parts), which is
//!   exactly 1 at the period of any periodic signal however few periods fit the window.
//!
//! Peaks are refined by windowed-sinc interpolation (parabolic fits are biased towards
//! whole samples on sharp peaks).
//!
//! [`PathTracker`] picks one candidate (or "unvoiced") per frame with Praat's path costs
//! (octave cost, octave-jump cost, voiced/unvoiced cost) by fixed-lag Viterbi decoding: a
//! frame is decided once `lookahead` newer frames have been seen, which bounds the latency
//! while still letting later evidence veto octave jumps.
//!
//! Invariant: no allocation after construction.

use realfft::num_complex::Complex;
use realfft::RealFftPlanner;
use rustfft::{Fft, FftPlanner};
use std::collections::VecDeque;
use std::sync::Arc;

/// Maximum number of voiced candidates kept per frame (Praat keeps up to 15; beyond ~6 the
/// extra ones are never chosen on speech).
pub const MAX_CANDIDATES: usize = 8;

/// One F0 hypothesis for a frame.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Candidate {
    /// F0 in Hz.
    pub f0_hz: f32,
    /// Normalised autocorrelation of the compressed spectrum at the candidate's period
    /// (≤ 1; see [`AcAnalyzer`]).
    pub r: f32,
    /// Normalised forward cross-correlation of the unfiltered signal near that period
    /// (for HNR).
    pub r_raw: f32,
    /// Strength used by the path finder: `r` shifted so that the best candidate's equals
    /// its `r_raw`.
    pub strength: f32,
}

/// Result of analysing one window.
#[derive(Clone, Copy, Debug, Default)]
pub struct PitchFrame {
    /// Voiced candidates, `n` of them valid, strongest first.
    pub cands: [Candidate; MAX_CANDIDATES],
    pub n: usize,
    /// Largest absolute (mean-removed) sample in the window, for the silence criterion.
    pub local_peak: f32,
    /// Highest normalised autocorrelation anywhere in the lag range (voicing strength).
    pub best_r: f32,
}

/// Gaussian taper of the compressed spectrum used for picking candidates, Hz (1/e point).
/// Gentle (only the top octave of wideband audio is touched); it measured slightly better
/// than none on EmoDB through the comparison harness.
const CANDIDATE_SMOOTH_HZ: f32 = 8000.0;

/// Local maxima of the compressed correlation below this fraction of the voicing threshold
/// are not candidates.
const CANDIDATE_MIN_FRACTION: f32 = 0.2;

/// Autocorrelation candidate extractor with preallocated FFT buffers.
pub struct AcAnalyzer {
    win: Vec<f32>,
    /// 1 / (window autocorrelation normalised to 1 at lag 0), per lag.
    inv_win_ac: Vec<f32>,
    min_lag: usize,
    max_lag: usize,
    sample_rate: f32,
    nfft: usize,
    /// Complex FFTs of length `nfft`: the windowed and the raw frame go through one forward
    /// transform (as real and imaginary parts), and the two real, even correlation spectra
    /// through one inverse. That is two transforms instead of four real ones, without
    /// realfft's scalar pre/post-processing, which cost more than the butterflies.
    fwd: Arc<dyn Fft<f32>>,
    inv: Arc<dyn Fft<f32>>,
    z: Vec<Complex<f32>>,
    z_scratch: Vec<Complex<f32>>,
    /// The Hann-windowed frame, kept for [`Self::hann_r_near`].
    xw: Vec<f32>,
    /// Praat's Hann AC near the best candidate's lag (scratch of [`Self::hann_r_near`]).
    r_h: Vec<f32>,
    smooth: Vec<f32>,
    r_w: Vec<f32>,
    cum: Vec<f64>,
    mag: Vec<f32>,
    r: Vec<f32>,
    voicing_threshold: f32,
}

impl AcAnalyzer {
    /// `window_len` samples (Praat: 3 periods of the floor), lag range from the F0 limits.
    pub fn new(
        sample_rate: u32,
        window_len: usize,
        f0_min_hz: f32,
        f0_max_hz: f32,
        voicing_threshold: f32,
    ) -> Self {
        let sr = sample_rate as f32;
        let min_lag = ((sr / f0_max_hz).floor() as usize).max(2);
        let max_lag = ((sr / f0_min_hz).ceil() as usize).min(window_len / 2);
        let nfft = fft_size(window_len + max_lag + 2);
        let win: Vec<f32> = (0..window_len)
            .map(|i| {
                let x = (i as f32 + 0.5) / window_len as f32;
                0.5 - 0.5 * (2.0 * std::f32::consts::PI * x).cos()
            })
            .collect();
        let mut planner = RealFftPlanner::<f32>::new();
        let r2c = planner.plan_fft_forward(nfft);
        let c2r = planner.plan_fft_inverse(nfft);
        // Window autocorrelation, normalised to 1 at lag 0 (through the same FFT).
        let win_ac = {
            let mut t = r2c.make_input_vec();
            t[..window_len].copy_from_slice(&win);
            let mut sp = r2c.make_output_vec();
            // Sizes come from the plans: cannot fail.
            let _ = r2c.process(&mut t, &mut sp);
            for c in sp.iter_mut() {
                *c = Complex::new(c.norm_sqr(), 0.0);
            }
            let _ = c2r.process(&mut sp, &mut t);
            let w0 = t[0];
            t[..=max_lag + 1]
                .iter()
                .map(|v| (v / w0).max(1e-6))
                .collect::<Vec<f32>>()
        };
        let hz_per_bin = sr / nfft as f32;
        let smooth = (0..nfft / 2 + 1)
            .map(|k| (-(k as f32 * hz_per_bin / CANDIDATE_SMOOTH_HZ).powi(2)).exp())
            .collect();
        let mut cplanner = FftPlanner::<f32>::new();
        let fwd = cplanner.plan_fft_forward(nfft);
        let inv = cplanner.plan_fft_inverse(nfft);
        let z_scratch_len = fwd
            .get_inplace_scratch_len()
            .max(inv.get_inplace_scratch_len());
        Self {
            z: vec![Complex::new(0.0, 0.0); nfft],
            z_scratch: vec![Complex::new(0.0, 0.0); z_scratch_len],
            fwd,
            inv,
            nfft,
            xw: vec![0.0; window_len],
            r_h: vec![0.0; 2 * (3 + SINC_DEPTH + 1) + 1],
            smooth,
            r_w: vec![0.0; max_lag + 2],
            cum: vec![0.0; window_len + 1],
            mag: vec![0.0; nfft / 2 + 1],
            r: vec![0.0; max_lag + 2],
            win,
            inv_win_ac: win_ac.iter().map(|v| 1.0 / v).collect(),
            min_lag,
            max_lag,
            sample_rate: sr,
            voicing_threshold,
        }
    }

    pub fn window_len(&self) -> usize {
        self.win.len()
    }

    /// Normalised forward cross-correlation of the last analysed frame, by lag in samples.
    pub fn normalized_ac(&self) -> &[f32] {
        &self.r
    }

    /// Analyse one window (`frame.len() == window_len()`).
    pub fn analyze(&mut self, frame: &[f32]) -> PitchFrame {
        let n = self.win.len();
        debug_assert_eq!(frame.len(), n);
        let mean = frame.iter().sum::<f32>() / n as f32;
        let mut local_peak = 0.0f32;
        // Real part: Hann-windowed frame (Praat's AC); imaginary part: the raw frame (FCC).
        self.cum[0] = 0.0;
        for (i, (&x, &w)) in frame.iter().zip(&self.win).enumerate() {
            let v = x - mean;
            local_peak = local_peak.max(v.abs());
            self.xw[i] = v * w;
            self.z[i] = Complex::new(v * w, v);
            self.cum[i + 1] = self.cum[i] + (v as f64) * (v as f64);
        }
        self.z[n..].fill(Complex::new(0.0, 0.0));
        let mut out = PitchFrame {
            local_peak,
            ..Default::default()
        };
        if self.cum[n] <= 1e-20 {
            return out;
        }
        self.fwd
            .process_with_scratch(&mut self.z, &mut self.z_scratch);
        // Split the two spectra (X_w = (Z_k + conj Z_{N-k}) / 2, X_raw = (Z_k − conj Z_{N-k}) / 2i)
        // and build, in place, the packed input of the inverse transform:
        // (1) real part: |X_raw|², whose inverse is the raw autocorrelation for Praat's
        //     forward cross-correlation (FCC / "Harmonicity (cc)"): rectangular window, each
        //     lag normalised by the energies of the two overlapping parts, which is exactly 1
        //     for a periodic signal however few periods fit the window. The Hann-window AC is
        //     biased there at low F0 (3–4 pulses per window), so HNR comes from this one.
        // (2) imaginary part: the compressed spectrum |X_w| (with a gentle taper), whose
        //     inverse, divided by the window's own AC, is the candidate-picking correlation.
        // Both spectra are real and even, so their inverses come back as the real and
        // imaginary parts of one complex inverse. |X_w| is kept for the voicing strength.
        let nfft = self.nfft;
        for k in 0..=nfft / 2 {
            let a = self.z[k];
            let k2 = if k == 0 { 0 } else { nfft - k };
            let b = self.z[k2].conj();
            let xw = (a + b) * 0.5;
            let xr = a - b;
            let p_raw = 0.25 * xr.norm_sqr();
            let m = xw.norm_sqr().sqrt();
            self.mag[k] = m;
            let y = Complex::new(p_raw, m * self.smooth[k]);
            self.z[k] = y;
            self.z[k2] = y;
        }
        self.inv
            .process_with_scratch(&mut self.z, &mut self.z_scratch);
        let acw0 = self.z[0].im;
        if acw0 <= 1e-20 {
            return out;
        }
        let invw = 1.0 / acw0;
        // Unnormalised inverse: scale by 1/nfft.
        let scale = 1.0 / nfft as f32;
        let total = self.cum[n] as f32;
        for lag in 0..self.r.len() {
            let y = self.z[lag];
            self.r_w[lag] = y.im * invw * self.inv_win_ac[lag];
            let e1 = self.cum[n - lag] as f32;
            let e2 = total - self.cum[lag] as f32;
            let den = e1 * e2;
            self.r[lag] = if den > 1e-30 {
                y.re * scale / den.sqrt()
            } else {
                0.0
            };
        }
        // Compressed-spectrum correlations run lower than Praat's; keep weak peaks as
        // candidates (the list is capped) and let the path decide.
        let thr = CANDIDATE_MIN_FRACTION * self.voicing_threshold;
        let mut best_r = f32::MIN;
        for lag in self.min_lag..=self.max_lag {
            best_r = best_r.max(self.r[lag]);
            let (a, b, c) = (self.r_w[lag - 1], self.r_w[lag], self.r_w[lag + 1]);
            if !(b > a && b >= c && b > thr) {
                continue;
            }
            // Cheap parabolic refinement for every peak; the strongest few get the
            // band-limited (sinc) refinement below.
            let (_, peak) = parabolic(a, b, c);
            let raw_lag = self.raw_peak_near(lag);
            let (d, r_raw) = parabolic(self.r[raw_lag - 1], self.r[raw_lag], self.r[raw_lag + 1]);
            let cand = Candidate {
                f0_hz: self.sample_rate / (raw_lag as f32 + d),
                r: peak.min(1.0),
                r_raw: r_raw.min(1.0),
                strength: 0.0,
            };
            insert_candidate(&mut out, cand);
        }
        for _ in 0..SINC_REFINED.min(out.n) {
            // Strongest candidate not yet refined (refined ones are marked by f0 < 0).
            let Some(i) = (0..out.n)
                .filter(|&i| out.cands[i].f0_hz > 0.0)
                .max_by(|&x, &y| out.cands[x].r.total_cmp(&out.cands[y].r))
            else {
                break;
            };
            let lag_f = self.sample_rate / out.cands[i].f0_hz;
            let mut lag = lag_f.round() as usize;
            lag = lag.clamp(self.min_lag, self.max_lag);
            if self.r_w[lag + 1] > self.r_w[lag] {
                lag += 1;
            } else if self.r_w[lag - 1] > self.r_w[lag] {
                lag -= 1;
            }
            let (_, peak) = sinc_peak(&self.r_w, lag);
            // Position from the raw FCC peak: exact for a periodic signal, whereas the
            // compressed spectrum's AC is slightly biased when only a few harmonics exist.
            let raw_lag = self.raw_peak_near(lag);
            let (d, r_raw) = sinc_peak(&self.r, raw_lag);
            out.cands[i] = Candidate {
                f0_hz: -self.sample_rate / (raw_lag as f32 + d),
                r: peak.min(1.0),
                r_raw: r_raw.min(1.0),
                strength: 0.0,
            };
        }
        // Path strength: the compressed correlation ranks the candidates (octave choice),
        // the raw correlation of the best one decides how voiced the frame is (Praat's
        // voicing threshold keeps its meaning).
        for c in out.cands[..out.n].iter_mut() {
            c.f0_hz = c.f0_hz.abs();
        }
        let best = (0..out.n).max_by(|&x, &y| out.cands[x].r.total_cmp(&out.cands[y].r));
        let offset = best.map_or(0.0, |b| {
            let lag_f = self.sample_rate / out.cands[b].f0_hz;
            self.hann_r_near(lag_f) - out.cands[b].r
        });
        for c in out.cands[..out.n].iter_mut() {
            c.strength = (c.r + offset).min(1.0);
        }
        out.best_r = best_r.clamp(0.0, 1.0);
        out
    }
}

impl AcAnalyzer {
    /// Praat's own AC strength (Hann window, full band, uncompressed) at the local maximum
    /// nearest to `lag_f`: computed only for the best candidate, directly in the time
    /// domain at just the lags that the hill climb and the sinc refinement can read (a
    /// few dozen dot products are cheaper than another inverse FFT).
    fn hann_r_near(&mut self, lag_f: f32) -> f32 {
        let xw = &self.xw[..self.win.len()];
        let ac0 = dot(xw, xw);
        if ac0 <= 1e-20 {
            return 0.0;
        }
        let start = (lag_f.round() as usize).clamp(self.min_lag, self.max_lag);
        // The climb moves ≤ 3 lags; sinc_peak then reads within SINC_DEPTH + 1 of x, and x
        // stays within 1.5 lags of where the climb ended.
        let reach = 3 + SINC_DEPTH + 1;
        let lo = start.saturating_sub(reach);
        let hi = (start + reach).min(self.max_lag + 1);
        let inv = 1.0 / ac0;
        for lag in lo..=hi {
            self.r_h[lag - lo] =
                dot(&xw[..xw.len() - lag], &xw[lag..]) * inv * self.inv_win_ac[lag];
        }
        let h = &self.r_h[..=hi - lo];
        let mut i = start - lo;
        for _ in 0..3 {
            if h[i + 1] > h[i] && i + lo < self.max_lag {
                i += 1;
            } else if h[i - 1] > h[i] && i + lo > self.min_lag {
                i -= 1;
            }
        }
        sinc_peak(h, i).1.min(1.0)
    }

    /// Highest raw (FCC) correlation within ±3 lags of `lag`.
    fn raw_peak_near(&self, lag: usize) -> usize {
        let lo = lag.saturating_sub(3).max(self.min_lag.max(1));
        let hi = (lag + 3).min(self.max_lag);
        (lo..=hi)
            .max_by(|&x, &y| self.r[x].total_cmp(&self.r[y]))
            .unwrap_or(lag)
    }
}

/// Candidates per frame that get the sinc refinement (the others keep a parabolic fit;
/// they are rarely chosen and then only need to be within a few percent).
const SINC_REFINED: usize = 3;

/// Smallest FFT length ≥ `n` whose factors are 2, 3 and 5 only (and even, as realfft
/// wants): rustfft is about as fast on these as on powers of two, and 1080 is half of 2048.
pub fn fft_size(n: usize) -> usize {
    let mut m = n.max(2);
    loop {
        let mut k = m;
        for p in [2, 3, 5] {
            while k % p == 0 {
                k /= p;
            }
        }
        if k == 1 && m % 2 == 0 {
            return m;
        }
        m += 1;
    }
}

/// Vertex of the parabola through three equally spaced points: (offset in −0.5..0.5, value).
#[inline]
pub fn parabolic(a: f32, b: f32, c: f32) -> (f32, f32) {
    let den = a - 2.0 * b + c;
    if den >= 0.0 {
        return (0.0, b);
    }
    let d = (0.5 * (a - c) / den).clamp(-0.5, 0.5);
    (d, b - 0.25 * (a - c) * d)
}

/// Interpolation depth (samples each side) of [`sinc_peak`].
pub const SINC_DEPTH: usize = 8;

/// Value at fractional index `x` of the band-limited interpolation of `y` (windowed sinc,
/// `SINC_DEPTH` samples each side; samples outside `y` count as absent).
#[inline]
fn sinc_interp(y: &[f32], x: f32) -> f32 {
    let i = x.floor() as i64;
    let frac = x - i as f32;
    if frac.abs() < 1e-6 {
        return y.get(i as usize).copied().unwrap_or(0.0);
    }
    let s = (std::f32::consts::PI * frac).sin() / std::f32::consts::PI;
    let d = SINC_DEPTH as i64;
    let inv_span = 1.0 / (d + 1) as f32;
    let j0 = (i - d + 1).max(0);
    let j1 = (i + d).min(y.len() as i64 - 1);
    // sin(π u) = ±sin(π frac) for u = x − j; the sign alternates with j.
    let mut sign = if (i - j0) % 2 == 0 { 1.0f32 } else { -1.0 };
    let mut acc = 0.0f32;
    for j in j0..=j1 {
        let u = x - j as f32; // in (−d, d)
        let q = u * inv_span;
        let w = (1.0 - q * q) * (1.0 - q * q);
        acc += y[j as usize] * sign * w / u;
        sign = -sign;
    }
    acc * s
}

/// Dot product of the common length of `a` and `b`. Uses AVX2 when the CPU has it (checked
/// once, cached by std), else SSE2; either way in independent lanes, so that it vectorises
/// without fast-math.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { dot_avx2(a, b) };
    }
    dot_lanes(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes(a, b)
}

#[inline(always)]
fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    const L: usize = 16;
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut lanes = [0.0f32; L];
    let mut ca = a.chunks_exact(L);
    let mut cb = b.chunks_exact(L);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for k in 0..L {
            lanes[k] += x[k] * y[k];
        }
    }
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    lanes.iter().sum::<f32>() + tail
}

/// Refine a local maximum of a sampled band-limited function at integer index `i`: returns
/// (fractional offset from `i` in −1..1, interpolated peak value). Parabolic interpolation
/// is biased towards whole samples on sharp peaks (it shrinks period differences, i.e.
/// jitter, and underestimates r, i.e. HNR); this evaluates the sinc interpolation on a
/// 1/16-sample grid around the parabolic estimate and finishes with a parabola there.
pub fn sinc_peak(y: &[f32], i: usize) -> (f32, f32) {
    let a = if i > 0 { y[i - 1] } else { y[i] };
    let c = y.get(i + 1).copied().unwrap_or(y[i]);
    let (d0, _) = parabolic(a, y[i], c);
    const STEP: f32 = 1.0 / 16.0;
    let x0 = i as f32 + d0;
    let mut best = (x0, sinc_interp(y, x0));
    let mut lo = sinc_interp(y, x0 - STEP);
    let mut hi = sinc_interp(y, x0 + STEP);
    // Walk uphill (at most one sample either way).
    for _ in 0..16 {
        if lo > best.1 && lo >= hi {
            hi = best.1;
            best = (best.0 - STEP, lo);
            lo = sinc_interp(y, best.0 - STEP);
        } else if hi > best.1 {
            lo = best.1;
            best = (best.0 + STEP, hi);
            hi = sinc_interp(y, best.0 + STEP);
        } else {
            break;
        }
    }
    let (d, v) = parabolic(lo, best.1, hi);
    ((best.0 + d * STEP - i as f32).clamp(-1.0, 1.0), v)
}

fn insert_candidate(f: &mut PitchFrame, c: Candidate) {
    if f.n < MAX_CANDIDATES {
        f.cands[f.n] = c;
        f.n += 1;
    } else {
        // Replace the weakest if the newcomer is stronger.
        let (imin, min) = f.cands[..f.n]
            .iter()
            .enumerate()
            .fold(
                (0, f32::MAX),
                |acc, (i, k)| if k.r < acc.1 { (i, k.r) } else { acc },
            );
        if c.r > min {
            f.cands[imin] = c;
        }
    }
}

/// Praat's path-finder parameters.
#[derive(Clone, Copy, Debug)]
pub struct PathCosts {
    pub voicing_threshold: f32,
    pub silence_threshold: f32,
    pub octave_cost: f32,
    pub octave_jump_cost: f32,
    pub voiced_unvoiced_cost: f32,
    pub f0_max_hz: f32,
}

/// States per frame: index 0 is "unvoiced", 1..=n are the candidates.
const NS: usize = MAX_CANDIDATES + 1;

#[derive(Clone, Copy, Default)]
struct Step {
    cands: [Candidate; MAX_CANDIDATES],
    n: usize,
    back: [u8; NS],
}

/// Decision for one frame.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PitchDecision {
    /// 0 when unvoiced.
    pub f0_hz: f32,
    /// Normalised autocorrelation of the chosen candidate (0 when unvoiced).
    pub r: f32,
    /// Its raw (unsmoothed) counterpart, for HNR.
    pub r_raw: f32,
}

/// Fixed-lag Viterbi over per-frame candidates.
pub struct PathTracker {
    costs: PathCosts,
    lookahead: usize,
    steps: VecDeque<Step>,
    score: [f32; NS],
    n_prev: usize,
    prev_cands: [Candidate; MAX_CANDIDATES],
    started: bool,
}

impl PathTracker {
    pub fn new(costs: PathCosts, lookahead: usize) -> Self {
        Self {
            costs,
            lookahead,
            steps: VecDeque::with_capacity(lookahead + 2),
            score: [0.0; NS],
            n_prev: 0,
            prev_cands: [Candidate::default(); MAX_CANDIDATES],
            started: false,
        }
    }

    pub fn lookahead(&self) -> usize {
        self.lookahead
    }

    /// Forget all history (start of a new stream).
    pub fn reset(&mut self) {
        self.steps.clear();
        self.score = [0.0; NS];
        self.n_prev = 0;
        self.started = false;
    }

    /// Frames pushed but not yet decided.
    pub fn pending(&self) -> usize {
        self.steps.len()
    }

    /// Add a frame; `intensity` is its local peak relative to the signal's peak.
    /// Returns the decision for the frame `lookahead` frames back, once there is one.
    pub fn push(&mut self, f: &PitchFrame, intensity: f32) -> Option<PitchDecision> {
        let c = self.costs;
        let mut local = [f32::MIN; NS];
        let unv = 2.0 - intensity / (c.silence_threshold / (1.0 + c.voicing_threshold));
        local[0] = c.voicing_threshold + unv.max(0.0);
        for i in 0..f.n {
            let k = f.cands[i];
            local[i + 1] = k.strength - c.octave_cost * (c.f0_max_hz / k.f0_hz).log2();
        }
        let mut step = Step {
            cands: f.cands,
            n: f.n,
            back: [0; NS],
        };
        let mut new_score = [f32::MIN; NS];
        if !self.started {
            new_score[..=f.n].copy_from_slice(&local[..=f.n]);
            self.started = true;
        } else {
            for j in 0..=f.n {
                let mut best = f32::MIN;
                let mut arg = 0u8;
                for i in 0..=self.n_prev {
                    let trans = match (i, j) {
                        (0, 0) => 0.0,
                        (0, _) | (_, 0) => c.voiced_unvoiced_cost,
                        _ => {
                            c.octave_jump_cost
                                * (self.prev_cands[i - 1].f0_hz / f.cands[j - 1].f0_hz)
                                    .log2()
                                    .abs()
                        }
                    };
                    let s = self.score[i] - trans;
                    if s > best {
                        best = s;
                        arg = i as u8;
                    }
                }
                new_score[j] = best + local[j];
                step.back[j] = arg;
            }
        }
        // Keep scores bounded.
        let top = new_score[..=f.n].iter().cloned().fold(f32::MIN, f32::max);
        for s in new_score[..=f.n].iter_mut() {
            *s -= top;
        }
        self.score = new_score;
        self.n_prev = f.n;
        self.prev_cands = f.cands;
        self.steps.push_back(step);
        if self.steps.len() > self.lookahead {
            Some(self.pop_oldest())
        } else {
            None
        }
    }

    /// Decide and remove the oldest pending frame (for flushing at the end).
    pub fn pop_oldest(&mut self) -> PitchDecision {
        let mut state = (0..=self.n_prev)
            .max_by(|&a, &b| self.score[a].total_cmp(&self.score[b]))
            .unwrap_or(0);
        for k in (1..self.steps.len()).rev() {
            state = self.steps[k].back[state] as usize;
        }
        // steps is non-empty whenever this is called (callers check pending()).
        let Some(oldest) = self.steps.pop_front() else {
            return PitchDecision::default();
        };
        if state == 0 || state > oldest.n {
            PitchDecision::default()
        } else {
            let k = oldest.cands[state - 1];
            PitchDecision {
                f0_hz: k.f0_hz,
                r: k.strength,
                r_raw: k.r_raw,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parabolic_vertex() {
        // y = -(x-0.3)^2 sampled at -1, 0, 1
        let f = |x: f32| -(x - 0.3) * (x - 0.3);
        let (d, v) = parabolic(f(-1.0), f(0.0), f(1.0));
        assert!((d - 0.3).abs() < 1e-5);
        assert!(v.abs() < 1e-5);
    }

    #[test]
    fn sinc_peak_of_sampled_sinc_squared() {
        // A band-limited peak at 10.37: sinc² with a broad main lobe.
        let f = |x: f32| {
            let u = (x - 10.37) * 0.4;
            if u.abs() < 1e-6 {
                1.0
            } else {
                let s = (std::f32::consts::PI * u).sin() / (std::f32::consts::PI * u);
                s * s
            }
        };
        let y: Vec<f32> = (0..21).map(|i| f(i as f32)).collect();
        let (d, v) = sinc_peak(&y, 10);
        assert!((10.0 + d - 10.37).abs() < 0.01, "{d}");
        assert!((v - 1.0).abs() < 0.01, "{v}");
    }

    #[test]
    fn sine_candidate_at_period() {
        let sr = 16000;
        let mut ac = AcAnalyzer::new(sr, 800, 60.0, 500.0, 0.45);
        let f0 = 123.0f32;
        let x: Vec<f32> = (0..800)
            .map(|i| (2.0 * std::f32::consts::PI * f0 * i as f32 / sr as f32).sin())
            .collect();
        let pf = ac.analyze(&x);
        let best = pf.cands[..pf.n]
            .iter()
            .max_by(|a, b| {
                let sa = a.r + 0.01 * a.f0_hz.log2();
                let sb = b.r + 0.01 * b.f0_hz.log2();
                sa.total_cmp(&sb)
            })
            .unwrap();
        assert!((best.f0_hz - f0).abs() / f0 < 0.005, "{best:?}");
        assert!(best.strength > 0.95, "{best:?}");
    }
}
