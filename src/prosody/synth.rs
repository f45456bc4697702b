//! Synthetic test signals with known truth, and a telephone-channel simulator.
//!
//! Used by the unit tests and the benchmark; handy for anyone checking the engine.
//! [`PulseTrain`] places band-limited impulses at exactly known (fractional) times with known
//! amplitudes, shapes them into a glottal-flow-derivative-like pulse, and adds white noise at
//! a known harmonics-to-noise ratio. [`telephone`] band-limits to 300–3400 Hz, decimates to
//! 8 kHz (optionally through G.711 μ-law) and upsamples back to 16 kHz, as the pipeline does.

/// Small deterministic PRNG (xorshift64*), so tests need no dependency.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in (0, 1).
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    /// Standard normal (Box–Muller).
    pub fn gauss(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// What to synthesise.
#[derive(Clone, Debug)]
pub struct PulseTrainSpec {
    pub sample_rate: u32,
    pub duration_s: f64,
    pub f0_hz: f64,
    /// Target jitter (local) as a fraction; periods get independent Gaussian perturbations
    /// with σ = jitter/(2/√π) so that the expected jitter (local) equals it.
    pub jitter: f64,
    /// Target shimmer (local, dB), the same way for log-amplitudes.
    pub shimmer_db: f64,
    /// Harmonics-to-noise ratio of the added white noise, dB (`None` = no noise).
    pub hnr_db: Option<f64>,
    /// Peak level of the pulse train before noise.
    pub level: f32,
    pub seed: u64,
}

impl Default for PulseTrainSpec {
    fn default() -> Self {
        Self {
            sample_rate: 16000,
            duration_s: 1.0,
            f0_hz: 150.0,
            jitter: 0.0,
            shimmer_db: 0.0,
            hnr_db: None,
            level: 0.3,
            seed: 1,
        }
    }
}

/// A synthesised signal and its truth.
#[derive(Clone, Debug)]
pub struct PulseTrain {
    /// Harmonic part plus noise.
    pub signal: Vec<f32>,
    pub harmonic: Vec<f32>,
    pub noise: Vec<f32>,
    /// Pulse times in seconds.
    pub pulse_times: Vec<f64>,
    /// Pulse amplitudes (linear).
    pub amplitudes: Vec<f64>,
}

/// E|X − Y| for independent standard normals, = 2/√π.
const MEAN_ABS_DIFF: f64 = std::f64::consts::FRAC_2_SQRT_PI;

impl PulseTrain {
    pub fn new(spec: &PulseTrainSpec) -> Self {
        let sr = spec.sample_rate as f64;
        let n = (spec.duration_s * sr).round() as usize;
        let mut rng = Rng::new(spec.seed);
        let t0 = 1.0 / spec.f0_hz;
        let jsd = spec.jitter / MEAN_ABS_DIFF;
        let ssd = spec.shimmer_db / MEAN_ABS_DIFF;
        let mut times = Vec::new();
        let mut amps = Vec::new();
        let mut t = 0.3 * t0 + rng.uniform() * t0;
        while t < spec.duration_s {
            times.push(t);
            amps.push(10f64.powf(ssd * rng.gauss() / 20.0));
            t += t0 * (1.0 + jsd * rng.gauss());
        }
        // Excitation: band-limited (Blackman-windowed sinc, cut-off 0.45 fs) impulses.
        const HALF: i64 = 24;
        let mut exc = vec![0.0f64; n];
        for (&t, &a) in times.iter().zip(&amps) {
            let pos = t * sr;
            let c = pos.floor() as i64;
            for i in (c - HALF)..=(c + HALF + 1) {
                if i < 0 || i as usize >= n {
                    continue;
                }
                let x = i as f64 - pos;
                exc[i as usize] += a * sinc_lp(x, 0.45) * blackman(x, HALF as f64 + 1.0);
            }
        }
        // Glottal-flow-derivative-like shape: double pole at 0.85 (≈ −12 dB/oct above
        // ~400 Hz) times a differentiator; the pulse decays within ~3 ms so consecutive
        // pulses barely overlap even at 400 Hz.
        let a = 0.85;
        let (mut y1, mut y2, mut xprev) = (0.0f64, 0.0f64, 0.0f64);
        let mut harmonic: Vec<f32> = exc
            .iter()
            .map(|&x| {
                let d = x - xprev;
                xprev = x;
                let y = d + 2.0 * a * y1 - a * a * y2;
                y2 = y1;
                y1 = y;
                y as f32
            })
            .collect();
        let peak = harmonic.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        if peak > 0.0 {
            harmonic.iter_mut().for_each(|v| *v *= spec.level / peak);
        }
        let p_h = harmonic.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / n.max(1) as f64;
        let noise: Vec<f32> = match spec.hnr_db {
            Some(h) => {
                let sd = (p_h / 10f64.powf(h / 10.0)).sqrt();
                (0..n).map(|_| (sd * rng.gauss()) as f32).collect()
            }
            None => vec![0.0; n],
        };
        let signal = harmonic.iter().zip(&noise).map(|(a, b)| a + b).collect();
        Self {
            signal,
            harmonic,
            noise,
            pulse_times: times,
            amplitudes: amps,
        }
    }

    /// Praat jitter (local) of the true pulse times.
    pub fn true_jitter(&self) -> f64 {
        let p: Vec<f64> = self.pulse_times.windows(2).map(|w| w[1] - w[0]).collect();
        let d: f64 = p.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f64>() / (p.len() - 1) as f64;
        d / (p.iter().sum::<f64>() / p.len() as f64)
    }

    /// Shimmer (local, dB) of the true amplitudes.
    pub fn true_shimmer_db(&self) -> f64 {
        let a = &self.amplitudes;
        20.0 * a
            .windows(2)
            .map(|w| (w[1] / w[0]).log10().abs())
            .sum::<f64>()
            / (a.len() - 1) as f64
    }
}

fn sinc_lp(x: f64, fc: f64) -> f64 {
    // Low-pass impulse response with cut-off fc (fraction of the sample rate), unit DC gain.
    if x.abs() < 1e-12 {
        2.0 * fc
    } else {
        (2.0 * std::f64::consts::PI * fc * x).sin() / (std::f64::consts::PI * x)
    }
}

fn blackman(x: f64, half: f64) -> f64 {
    if x.abs() >= half {
        return 0.0;
    }
    let p = std::f64::consts::PI * (x / half);
    0.42 + 0.5 * p.cos() + 0.08 * (2.0 * p).cos()
}

/// Linear-phase FIR low-pass taps (Blackman-windowed sinc), cut-off `fc` as a fraction of
/// the sample rate, `taps` odd.
pub fn lowpass_taps(fc: f64, taps: usize) -> Vec<f64> {
    let half = (taps / 2) as f64;
    (0..taps)
        .map(|i| {
            let x = i as f64 - half;
            sinc_lp(x, fc) * blackman(x, half + 1.0)
        })
        .collect()
}

/// Zero-phase FIR filtering (output aligned with input).
pub fn filter(x: &[f32], taps: &[f64]) -> Vec<f32> {
    let half = taps.len() / 2;
    let n = x.len();
    (0..n)
        .map(|i| {
            let mut s = 0.0f64;
            for (k, &h) in taps.iter().enumerate() {
                let j = i as i64 + half as i64 - k as i64;
                if j >= 0 && (j as usize) < n {
                    s += h * x[j as usize] as f64;
                }
            }
            s as f32
        })
        .collect()
}

/// 300–3400 Hz band-pass at 16 kHz (the telephone channel), zero phase.
pub fn telephone_band(x: &[f32]) -> Vec<f32> {
    const TAPS: usize = 511;
    let hi = lowpass_taps(3400.0 / 16000.0, TAPS);
    let lo = lowpass_taps(300.0 / 16000.0, TAPS);
    let bp: Vec<f64> = hi.iter().zip(&lo).map(|(a, b)| a - b).collect();
    filter(x, &bp)
}

/// G.711 μ-law encode/decode round trip of one sample in [−1, 1].
pub fn mulaw_roundtrip(x: f32) -> f32 {
    const MU: f32 = 255.0;
    let y = x.signum() * (1.0 + MU * x.abs().min(1.0)).ln() / (1.0 + MU).ln();
    let q = (y * 127.0).round() / 127.0; // 8-bit code
    q.signum() * ((1.0 + MU).powf(q.abs()) - 1.0) / MU
}

/// 16 kHz → telephone channel (300–3400 Hz, 8 kHz, optional μ-law) → back to 16 kHz.
pub fn telephone(x: &[f32], mulaw: bool) -> Vec<f32> {
    let band = telephone_band(x);
    let mut narrow: Vec<f32> = band.iter().step_by(2).copied().collect();
    if mulaw {
        narrow.iter_mut().for_each(|v| *v = mulaw_roundtrip(*v));
    }
    // Upsample ×2: zero-stuff, then low-pass at 3.8 kHz with gain 2.
    let mut up = vec![0.0f32; x.len()];
    for (i, &v) in narrow.iter().enumerate() {
        if 2 * i < up.len() {
            up[2 * i] = 2.0 * v;
        }
    }
    filter(&up, &lowpass_taps(3800.0 / 16000.0, 255))
}

/// A conversational-looking test signal of about `seconds` s at 16 kHz: 350 ms voiced
/// stretches (F0 stepping through 90–330 Hz, 1 % jitter, 0.6 dB shimmer, 12 dB HNR)
/// separated by 150 ms of a −80 dBFS noise floor (a line is never digitally silent).
pub fn speech_like(seconds: f64) -> Vec<f32> {
    let mut x = Vec::new();
    let mut k = 0u64;
    let mut noise = Rng::new(0x5eed);
    while (x.len() as f64) < seconds * 16000.0 {
        let p = PulseTrain::new(&PulseTrainSpec {
            f0_hz: 90.0 + 60.0 * (k % 5) as f64,
            jitter: 0.01,
            shimmer_db: 0.6,
            hnr_db: Some(12.0),
            duration_s: 0.35,
            seed: k,
            ..Default::default()
        });
        x.extend_from_slice(&p.signal);
        x.extend((0..2400).map(|_| 1e-4 * noise.gauss() as f32));
        k += 1;
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truth_matches_targets_roughly() {
        let p = PulseTrain::new(&PulseTrainSpec {
            jitter: 0.01,
            shimmer_db: 0.8,
            duration_s: 4.0,
            ..Default::default()
        });
        let j = p.true_jitter();
        let s = p.true_shimmer_db();
        assert!((j - 0.01).abs() < 0.002, "{j}");
        assert!((s - 0.8).abs() < 0.15, "{s}");
    }

    #[test]
    fn noise_is_at_requested_hnr() {
        let p = PulseTrain::new(&PulseTrainSpec {
            hnr_db: Some(10.0),
            ..Default::default()
        });
        let e = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>();
        let hnr = 10.0 * (e(&p.harmonic) / e(&p.noise)).log10();
        assert!((hnr - 10.0).abs() < 0.3, "{hnr}");
    }

    #[test]
    fn telephone_removes_low_band() {
        let sr = 16000.0;
        let tone = |f: f32| -> Vec<f32> {
            (0..8000)
                .map(|i| (2.0 * std::f32::consts::PI * f * i as f32 / sr).sin())
                .collect()
        };
        let rms = |v: &[f32]| (v[2000..6000].iter().map(|x| x * x).sum::<f32>() / 4000.0).sqrt();
        assert!(rms(&telephone(&tone(100.0), false)) < 0.02);
        assert!((rms(&telephone(&tone(1000.0), false)) - 0.707).abs() < 0.03);
        assert!(rms(&telephone(&tone(5000.0), false)) < 0.02);
    }
}
