//! Streaming prosody engine: pitch, voice quality, loudness and spectral balance every 10 ms.
//!
//! Push 16 kHz mono `f32` samples into a [`ProsodyAnalyzer`] in any chunk sizes; it appends
//! one [`Frame`] per 10 ms (in order, `t` continuous across pushes) and one [`Cycle`] per
//! glottal pulse to a caller-owned [`ProsodyOutput`]. Frames come out
//! [`ProsodyAnalyzer::latency_s`] (≈ 0.1 s) after their centre: the pitch path is decided by
//! fixed-lag Viterbi decoding ([`pitch`]), which is what keeps octave jumps out without
//! waiting for the end of the utterance. Cycles come out when their voiced stretch ends
//! (at most [`periods::MAX_STRETCH_S`] later), because pulse marking starts, as Praat's
//! does, from the loudest peak in the middle of the stretch. [`functionals`] summarises frames and cycles of an
//! utterance or window. The per-speaker running baseline that turns descriptors into
//! z-scores against the speaker's own voice is `emotion::arousal::ArousalBaseline`, next to
//! the model whose inputs it normalises.
//!
//! Methods follow Praat (To Pitch (ac), PointProcess (periodic, cc), jitter local, shimmer
//! local dB, Harmonicity ac) and openSMILE eGeMAPS v02 (loudness, alpha ratio, Hammarberg
//! index, slope); spectral-balance descriptors are measured inside 300–3400 Hz so that
//! telephone and wideband audio give comparable values.
//!
//! Invariants: pure computation (no I/O, clocks or threads); after construction, `push`
//! allocates nothing except when the caller's `ProsodyOutput` vectors grow.

pub mod functionals;
pub mod periods;
pub mod pitch;
pub mod spectral;
pub mod synth;

#[cfg(test)]
mod accuracy_tests;

pub use functionals::{functionals, Functionals};

use pitch::{AcAnalyzer, PathCosts, PathTracker, PitchDecision, PitchFrame};
use spectral::{SpectralAnalyzer, SpectralFeatures};
use std::collections::VecDeque;
use std::io::{self, Write};

/// Frame step in seconds (fixed: the whole pipeline counts in 10 ms frames).
pub const FRAME_STEP_S: f64 = 0.01;
/// HNR reported when a frame has no periodicity at all (dB).
pub const HNR_FLOOR_DB: f32 = -20.0;
/// Largest HNR reported (dB); r is clipped at the corresponding value.
pub const HNR_CEIL_DB: f32 = 40.0;
/// `rms_db` of digital silence (dBFS).
pub const RMS_FLOOR_DB: f32 = -120.0;

/// Analysis settings. Defaults follow Praat's "To Pitch (ac)" except the 60–500 Hz range.
#[derive(Clone, Debug, PartialEq)]
pub struct ProsodyConfig {
    /// Lowest F0 searched, Hz (default 60). Also sets the pitch window: `periods_per_window`
    /// periods of this frequency (50 ms at 60 Hz).
    pub f0_min_hz: f32,
    /// Highest F0 searched, Hz (default 500).
    pub f0_max_hz: f32,
    /// Pitch analysis window length in periods of `f0_min_hz` (default 3, as Praat).
    pub periods_per_window: f32,
    /// Normalised autocorrelation a frame needs to count as voiced (default 0.45, Praat).
    pub voicing_threshold: f32,
    /// Frames whose peak is below this fraction of the signal's running peak lean
    /// unvoiced (default 0.03, Praat).
    pub silence_threshold: f32,
    /// Preference for higher-frequency candidates per octave (default 0.01, Praat).
    pub octave_cost: f32,
    /// Path cost per octave of F0 change between frames (default 0.35, Praat).
    pub octave_jump_cost: f32,
    /// Path cost of a voiced/unvoiced switch (default 0.14, Praat).
    pub voiced_unvoiced_cost: f32,
    /// Frames of Viterbi look-ahead before a frame is decided (default 8 = 80 ms; latency
    /// is this plus half the pitch window).
    pub lookahead_frames: usize,
    /// Half-life of the running signal peak used by `silence_threshold`, s (default 10).
    pub peak_half_life_s: f32,
}

impl Default for ProsodyConfig {
    fn default() -> Self {
        Self {
            f0_min_hz: 60.0,
            f0_max_hz: 500.0,
            periods_per_window: 3.0,
            voicing_threshold: 0.45,
            silence_threshold: 0.03,
            octave_cost: 0.01,
            octave_jump_cost: 0.35,
            voiced_unvoiced_cost: 0.14,
            lookahead_frames: 8,
            peak_half_life_s: 10.0,
        }
    }
}

/// Features of one 10 ms frame.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Frame {
    /// Frame centre, seconds since the start of the stream (0.005, 0.015, …).
    pub t: f64,
    /// F0 in Hz; 0 when unvoiced.
    pub f0_hz: f32,
    pub voiced: bool,
    /// Periodicity strength 0..1 (normalised autocorrelation of the chosen candidate, or
    /// the best one in range when unvoiced).
    pub voicing: f32,
    /// Perceptual loudness (auditory-band sum, see [`spectral`]).
    pub loudness: f32,
    /// RMS level of the 25 ms window, dBFS (floor −120).
    pub rms_db: f32,
    /// Harmonics-to-noise ratio 10·log10(r/(1−r)), dB, clipped to [−20, 40].
    pub hnr_db: f32,
    /// 10·log10(E[1–3.4 kHz]/E[0.3–1 kHz]).
    pub alpha_ratio_db: f32,
    /// 10·log10(max P[0.3–2 kHz]/max P[2–3.4 kHz]).
    pub hammarberg_db: f32,
    /// Slope of the dB spectrum over 300–3400 Hz, dB/kHz.
    pub spectral_slope: f32,
}

/// One glottal pulse mark (a point of Praat's PointProcess) and the period it starts.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cycle {
    /// Time of the pulse, s.
    pub t: f64,
    /// Time to the next pulse, s (0 when no pulse follows within the longest period).
    pub period_s: f32,
    /// Praat's amplitude at this pulse (Hann-windowed RMS over ±0.2 of the adjacent
    /// periods); 0 when either adjacent period is invalid, as Praat then has no point.
    pub peak: f32,
}

/// Where the analyzer appends its results; the caller clears it between pushes.
#[derive(Clone, Debug, Default)]
pub struct ProsodyOutput {
    pub frames: Vec<Frame>,
    pub cycles: Vec<Cycle>,
}

impl ProsodyOutput {
    pub fn clear(&mut self) {
        self.frames.clear();
        self.cycles.clear();
    }
}

#[derive(Clone, Copy)]
struct Pending {
    k: u64,
    spectral: SpectralFeatures,
    rms_db: f32,
    best_r: f32,
}

/// Streaming analyzer for one speaker's 16 kHz mono signal.
pub struct ProsodyAnalyzer {
    sample_rate: u32,
    hop: u64,
    pitch_win: usize,
    spec_win: usize,
    ac: AcAnalyzer,
    spectral: SpectralAnalyzer,
    tracker: PathTracker,
    pulses: periods::PulseTracker,
    pending: VecDeque<Pending>,
    buf: Vec<f32>,
    buf_start: u64,
    total_in: u64,
    next_k: u64,
    frame_limit: u64,
    global_peak: f32,
    peak_decay: f32,
    scratch: Vec<f32>,
}

impl ProsodyAnalyzer {
    /// `sample_rate` should be 16000 (the pipeline's rate); other rates work but the
    /// defaults and tests are tuned for it.
    pub fn new(sample_rate: u32, cfg: &ProsodyConfig) -> Self {
        let sr = sample_rate as f32;
        let hop = (sample_rate as f64 * FRAME_STEP_S).round() as u64;
        let pitch_win = ((cfg.periods_per_window / cfg.f0_min_hz * sr).round() as usize + 1) & !1;
        let spectral = SpectralAnalyzer::new(sample_rate);
        let spec_win = spectral.window_len();
        let costs = PathCosts {
            voicing_threshold: cfg.voicing_threshold,
            silence_threshold: cfg.silence_threshold,
            octave_cost: cfg.octave_cost,
            octave_jump_cost: cfg.octave_jump_cost,
            voiced_unvoiced_cost: cfg.voiced_unvoiced_cost,
            f0_max_hz: cfg.f0_max_hz,
        };
        let pulses = periods::PulseTracker::new(sample_rate, hop, cfg.f0_min_hz, cfg.f0_max_hz);
        let lookahead = cfg.lookahead_frames.max(1);
        // Everything that may still be read: pulse history, the pending frames, one
        // window, plus slack so that compaction is amortised.
        let cap = pulses.max_retained()
            + pulses.lookahead_needed()
            + (lookahead as u64 + 4) as usize * hop as usize
            + pitch_win.max(spec_win) * 2
            + 4096;
        let frames_per_half_life = cfg.peak_half_life_s as f64 / FRAME_STEP_S;
        Self {
            sample_rate,
            hop,
            pitch_win,
            spec_win,
            ac: AcAnalyzer::new(
                sample_rate,
                pitch_win,
                cfg.f0_min_hz,
                cfg.f0_max_hz,
                cfg.voicing_threshold,
            ),
            spectral,
            tracker: PathTracker::new(costs, lookahead),
            pulses,
            pending: VecDeque::with_capacity(lookahead + 2),
            buf: Vec::with_capacity(cap),
            buf_start: 0,
            total_in: 0,
            next_k: 0,
            frame_limit: u64::MAX,
            global_peak: 0.0,
            peak_decay: 0.5f64.powf(1.0 / frames_per_half_life.max(1.0)) as f32,
            scratch: vec![0.0; pitch_win.max(spec_win)],
        }
    }

    /// Delay from a frame's centre until the input that completes it has been pushed, s.
    pub fn latency_s(&self) -> f64 {
        (self.tracker.lookahead() as f64 * self.hop as f64 + (self.pitch_win / 2) as f64)
            / self.sample_rate as f64
    }

    /// Feed samples; complete frames and cycles are appended to `out`.
    pub fn push(&mut self, mut samples: &[f32], out: &mut ProsodyOutput) {
        while !samples.is_empty() {
            let space = self.buf.capacity() - self.buf.len();
            let n = space.min(samples.len());
            self.buf.extend_from_slice(&samples[..n]);
            self.total_in += n as u64;
            samples = &samples[n..];
            self.process(out);
            self.compact();
        }
    }

    /// Flush the tail: frames whose centre lies inside the stream are completed with
    /// zero padding and all pending decisions are emitted. The analyzer then starts a new
    /// stream at t = 0.
    pub fn finish(&mut self, out: &mut ProsodyOutput) {
        let half = self.hop / 2;
        self.frame_limit = if self.total_in > half {
            (self.total_in - half).div_ceil(self.hop)
        } else {
            0
        };
        let pad = self.pitch_win.max(self.spec_win) + self.pulses.lookahead_needed();
        let mut left = pad + (self.tracker.lookahead() + 2) * self.hop as usize;
        while left > 0 {
            let space = self.buf.capacity() - self.buf.len();
            let n = space.min(left);
            self.buf.resize(self.buf.len() + n, 0.0);
            self.total_in += n as u64;
            left -= n;
            self.process(out);
            self.compact();
        }
        while self.tracker.pending() > 0 {
            let d = self.tracker.pop_oldest();
            self.emit(d, out);
        }
        self.pulses
            .flush(&self.buf, self.buf_start, self.global_peak, &mut out.cycles);
        self.pending.clear();
        self.buf.clear();
        self.buf_start = 0;
        self.total_in = 0;
        self.next_k = 0;
        self.frame_limit = u64::MAX;
        self.global_peak = 0.0;
        self.tracker.reset();
        self.pulses.reset();
    }

    fn centre(&self, k: u64) -> u64 {
        k * self.hop + self.hop / 2
    }

    /// Copy `len` samples centred on absolute sample `c` into `scratch`, zero outside.
    fn fill_window(&mut self, c: u64, len: usize) {
        let start = c as i64 - (len / 2) as i64 - self.buf_start as i64;
        let dst = &mut self.scratch[..len];
        // Part of the window inside the buffer: [lo, hi) in window coordinates.
        let lo = (-start).clamp(0, len as i64) as usize;
        let hi = (self.buf.len() as i64 - start).clamp(lo as i64, len as i64) as usize;
        dst[..lo].fill(0.0);
        if hi > lo {
            let s0 = (start + lo as i64) as usize;
            dst[lo..hi].copy_from_slice(&self.buf[s0..s0 + (hi - lo)]);
        }
        dst[hi..].fill(0.0);
    }

    fn process(&mut self, out: &mut ProsodyOutput) {
        let reach = (self.pitch_win.max(self.spec_win) / 2) as u64;
        while self.next_k < self.frame_limit && self.centre(self.next_k) + reach <= self.total_in {
            let k = self.next_k;
            let c = self.centre(k);
            self.fill_window(c, self.pitch_win);
            let pf: PitchFrame = self.ac.analyze(&self.scratch[..self.pitch_win]);
            self.fill_window(c, self.spec_win);
            let sw = &self.scratch[..self.spec_win];
            let energy = sw.iter().map(|v| v * v).sum::<f32>() / sw.len() as f32;
            let rms_db = if energy > 0.0 {
                (10.0 * energy.log10()).max(RMS_FLOOR_DB)
            } else {
                RMS_FLOOR_DB
            };
            let spectral = self.spectral.analyze(sw);
            self.global_peak = (self.global_peak * self.peak_decay).max(pf.local_peak);
            let intensity = if self.global_peak > 0.0 {
                pf.local_peak / self.global_peak
            } else {
                0.0
            };
            self.pending.push_back(Pending {
                k,
                spectral,
                rms_db,
                best_r: pf.best_r,
            });
            self.next_k += 1;
            if let Some(d) = self.tracker.push(&pf, intensity) {
                self.emit(d, out);
            }
        }
    }

    fn emit(&mut self, d: PitchDecision, out: &mut ProsodyOutput) {
        let Some(p) = self.pending.pop_front() else {
            return;
        };
        let c = self.centre(p.k);
        let voiced = d.f0_hz > 0.0;
        let r = if voiced { d.r } else { p.best_r };
        let hnr_db = hnr_from_r(if voiced { d.r_raw } else { p.best_r });
        self.pulses.frame(
            &self.buf,
            self.buf_start,
            c - self.hop / 2,
            d.f0_hz,
            self.global_peak,
            &mut out.cycles,
        );
        out.frames.push(Frame {
            t: c as f64 / self.sample_rate as f64,
            f0_hz: d.f0_hz,
            voiced,
            voicing: r.clamp(0.0, 1.0),
            loudness: p.spectral.loudness,
            rms_db: p.rms_db,
            hnr_db,
            alpha_ratio_db: p.spectral.alpha_ratio_db,
            hammarberg_db: p.spectral.hammarberg_db,
            spectral_slope: p.spectral.spectral_slope,
        });
    }

    /// Drop samples nobody will read again (no allocation: shifts within capacity).
    fn compact(&mut self) {
        let oldest_frame = self.next_k - self.pending.len() as u64;
        let keep_from = (self.centre(oldest_frame) as i64
            - (self.pitch_win.max(self.spec_win) / 2) as i64
            - self.pulses.history_needed() as i64
            - self.hop as i64)
            .max(0) as u64;
        let keep_from = self
            .pulses
            .keep_from()
            .map_or(keep_from, |k| k.min(keep_from));
        if keep_from > self.buf_start + 1024 {
            let n = ((keep_from - self.buf_start) as usize).min(self.buf.len());
            self.buf.drain(..n);
            self.buf_start += n as u64;
        }
    }
}

/// Praat's harmonicity from a normalised autocorrelation peak.
pub fn hnr_from_r(r: f32) -> f32 {
    if r <= 0.0 {
        return HNR_FLOOR_DB;
    }
    let r_max = 1.0 / (1.0 + 10f32.powf(-HNR_CEIL_DB / 10.0));
    let r = r.min(r_max);
    (10.0 * (r / (1.0 - r)).log10()).clamp(HNR_FLOOR_DB, HNR_CEIL_DB)
}

/// CSV column names, in the order [`write_frames_csv`] writes them.
pub const CSV_HEADER: &str =
    "t,f0_hz,voiced,loudness,rms_db,hnr_db,voicing,alpha_ratio_db,hammarberg_db,spectral_slope";

/// Write frames as CSV (header [`CSV_HEADER`]; `f0_hz` is 0 when unvoiced, `voiced` 0/1).
pub fn write_frames_csv<W: Write>(frames: &[Frame], w: W) -> io::Result<()> {
    let mut w = io::BufWriter::new(w);
    writeln!(w, "{CSV_HEADER}")?;
    for f in frames {
        writeln!(
            w,
            "{:.3},{:.2},{},{:.4},{:.2},{:.2},{:.3},{:.2},{:.2},{:.3}",
            f.t,
            f.f0_hz,
            u8::from(f.voiced),
            f.loudness,
            f.rms_db,
            f.hnr_db,
            f.voicing,
            f.alpha_ratio_db,
            f.hammarberg_db,
            f.spectral_slope
        )?;
    }
    w.flush()
}

/// Run a whole signal through a fresh analyzer (the batch path is the streaming path).
pub fn analyze_signal(samples: &[f32], sample_rate: u32, cfg: &ProsodyConfig) -> ProsodyOutput {
    let mut a = ProsodyAnalyzer::new(sample_rate, cfg);
    let mut out = ProsodyOutput::default();
    a.push(samples, &mut out);
    a.finish(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hnr_mapping() {
        assert!((hnr_from_r(0.5)).abs() < 1e-4);
        assert!((hnr_from_r(10.0 / 11.0) - 10.0).abs() < 1e-3);
        assert_eq!(hnr_from_r(0.0), HNR_FLOOR_DB);
        assert!(hnr_from_r(1.0) <= HNR_CEIL_DB + 1e-3);
    }

    #[test]
    fn silence_gives_unvoiced_frames_with_continuous_times() {
        let out = analyze_signal(&vec![0.0; 16000], 16000, &ProsodyConfig::default());
        assert_eq!(out.frames.len(), 100);
        for (i, f) in out.frames.iter().enumerate() {
            assert!(!f.voiced);
            assert!((f.t - (0.005 + 0.01 * i as f64)).abs() < 1e-9);
            assert_eq!(f.rms_db, RMS_FLOOR_DB);
        }
        assert!(out.cycles.is_empty());
    }

    #[test]
    fn latency_is_bounded() {
        let a = ProsodyAnalyzer::new(16000, &ProsodyConfig::default());
        assert!(a.latency_s() <= 0.15, "{}", a.latency_s());
    }

    #[test]
    fn csv_header_and_rows() {
        let frames = [Frame {
            t: 0.005,
            ..Default::default()
        }];
        let mut v = Vec::new();
        write_frames_csv(&frames, &mut v).unwrap();
        let s = String::from_utf8(v).unwrap();
        assert!(s.starts_with("t,f0_hz,voiced,loudness,rms_db,hnr_db,"));
        assert_eq!(s.lines().count(), 2);
    }
}
