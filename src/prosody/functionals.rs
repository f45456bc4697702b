//! Per-utterance / per-window summaries of frames and cycles (eGeMAPS-style functionals).
//!
//! Pitch statistics use voiced frames only; semitones are relative to 27.5 Hz (as
//! eGeMAPS). Rising/falling slopes are the mean slope (semitones per second) of the
//! monotonic rising/falling parts of each voiced stretch. Syllable nuclei follow de Jong &
//! Wempe (2009): voiced peaks of the smoothed intensity contour that rise above
//! max(median, max − 25 dB) and are separated from the previous nucleus by a dip of ≥ 2 dB.
//! Pauses are silent stretches (≥ 150 ms below max(−60 dBFS, 90th percentile − 25 dB)).

use super::periods::{jitter_local, shimmer_local_db};
use super::{Cycle, Frame, FRAME_STEP_S};

/// Summary of one utterance or analysis window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Functionals {
    pub duration_s: f32,
    pub f0_mean_hz: Option<f32>,
    pub f0_std_hz: Option<f32>,
    /// Mean F0 in semitones re 27.5 Hz.
    pub f0_mean_st: Option<f32>,
    /// Standard deviation of F0 in semitones.
    pub f0_std_st: Option<f32>,
    /// 20th–80th percentile range, semitones.
    pub f0_range_st: Option<f32>,
    /// Mean slope of rising F0 parts, semitones/s (positive).
    pub f0_rising_slope: Option<f32>,
    /// Mean slope of falling F0 parts, semitones/s (positive magnitude).
    pub f0_falling_slope: Option<f32>,
    pub loudness_mean: f32,
    pub loudness_std: f32,
    pub loudness_peaks_per_s: f32,
    pub rms_db_mean: f32,
    /// Jitter (local) as a fraction (0.012 = 1.2 %).
    pub jitter_local: Option<f32>,
    /// Shimmer (local), dB.
    pub shimmer_local_db: Option<f32>,
    /// Mean HNR over voiced frames, dB.
    pub hnr_db_mean: Option<f32>,
    pub alpha_ratio_mean: Option<f32>,
    pub hammarberg_mean: Option<f32>,
    pub spectral_slope_mean: Option<f32>,
    pub voiced_ratio: f32,
    pub voiced_segments_per_s: f32,
    pub voiced_segment_mean_s: f32,
    pub pause_ratio: f32,
    /// Syllable nuclei per second (of total duration) from the intensity envelope.
    pub syllable_rate: f32,
}

/// Names of [`Functionals::feature_vector`] entries, with a population prior (mean,
/// standard deviation) whose mean stands in for missing values. These are hand-set rough
/// values for adult speech, both sexes pooled (the arousal model's baseline carries its own
/// priors, fitted to data).
pub(crate) const FEATURES: &[(&str, f32, f32)] = &[
    ("f0_mean_st", 30.0, 5.0),
    ("f0_std_st", 2.5, 1.2),
    ("f0_range_st", 3.5, 2.0),
    ("f0_rising_slope", 25.0, 15.0),
    ("f0_falling_slope", 25.0, 15.0),
    ("has_f0", 0.95, 0.2),
    ("loudness_mean", 1.0, 0.6),
    ("loudness_std", 0.6, 0.4),
    ("loudness_peaks_per_s", 3.5, 1.5),
    ("rms_db_mean", -35.0, 8.0),
    ("jitter_local", 0.02, 0.01),
    ("shimmer_local_db", 0.8, 0.3),
    ("has_cycles", 0.9, 0.3),
    ("hnr_db_mean", 10.0, 4.0),
    ("alpha_ratio_mean", -8.0, 5.0),
    ("hammarberg_mean", 15.0, 6.0),
    ("spectral_slope_mean", -6.0, 3.0),
    ("voiced_ratio", 0.45, 0.15),
    ("voiced_segments_per_s", 2.5, 1.0),
    ("voiced_segment_mean_s", 0.18, 0.08),
    ("pause_ratio", 0.2, 0.15),
    ("syllable_rate", 3.5, 1.5),
];

static FEATURE_NAMES: [&str; 22] = [
    "f0_mean_st",
    "f0_std_st",
    "f0_range_st",
    "f0_rising_slope",
    "f0_falling_slope",
    "has_f0",
    "loudness_mean",
    "loudness_std",
    "loudness_peaks_per_s",
    "rms_db_mean",
    "jitter_local",
    "shimmer_local_db",
    "has_cycles",
    "hnr_db_mean",
    "alpha_ratio_mean",
    "hammarberg_mean",
    "spectral_slope_mean",
    "voiced_ratio",
    "voiced_segments_per_s",
    "voiced_segment_mean_s",
    "pause_ratio",
    "syllable_rate",
];

impl Functionals {
    /// Fixed-order numeric vector for models, named by [`Self::feature_names`]. F0 is in
    /// semitones (mean, std); a missing value (`None`) becomes the population prior mean of
    /// that feature, and the `has_f0` / `has_cycles` flags (1/0) say whether pitch
    /// statistics / jitter-shimmer were measurable.
    pub fn feature_vector(&self) -> Vec<f32> {
        self.feature_values().iter().map(|(v, _)| *v).collect()
    }

    /// Names of [`Self::feature_vector`] entries.
    pub fn feature_names() -> &'static [&'static str] {
        &FEATURE_NAMES
    }

    /// (value, measured) per feature; unmeasured values carry the prior mean.
    pub(crate) fn feature_values(&self) -> Vec<(f32, bool)> {
        let prior = |i: usize| FEATURES[i].1;
        let opt = |i: usize, v: Option<f32>| match v {
            Some(x) if x.is_finite() => (x, true),
            _ => (prior(i), false),
        };
        let has_f0 = self.f0_mean_st.is_some();
        let has_cycles = self.jitter_local.is_some() || self.shimmer_local_db.is_some();
        vec![
            opt(0, self.f0_mean_st),
            opt(1, self.f0_std_st),
            opt(2, self.f0_range_st),
            opt(3, self.f0_rising_slope),
            opt(4, self.f0_falling_slope),
            (f32::from(u8::from(has_f0)), true),
            (self.loudness_mean, true),
            (self.loudness_std, true),
            (self.loudness_peaks_per_s, true),
            (self.rms_db_mean, true),
            opt(10, self.jitter_local),
            opt(11, self.shimmer_local_db),
            (f32::from(u8::from(has_cycles)), true),
            opt(13, self.hnr_db_mean),
            opt(14, self.alpha_ratio_mean),
            opt(15, self.hammarberg_mean),
            opt(16, self.spectral_slope_mean),
            (self.voiced_ratio, true),
            (self.voiced_segments_per_s, true),
            (self.voiced_segment_mean_s, true),
            (self.pause_ratio, true),
            (self.syllable_rate, true),
        ]
    }
}

/// (mean, population standard deviation); `None` for no values.
pub(crate) fn mean_std(v: impl Iterator<Item = f32>) -> Option<(f32, f32)> {
    let (mut n, mut s, mut s2) = (0usize, 0.0f64, 0.0f64);
    for x in v {
        n += 1;
        s += x as f64;
        s2 += (x as f64) * (x as f64);
    }
    if n == 0 {
        return None;
    }
    let m = s / n as f64;
    let var = (s2 / n as f64 - m * m).max(0.0);
    Some((m as f32, var.sqrt() as f32))
}

/// Linear-interpolated percentile `p` (0..1) of sorted values; 0 when empty.
pub(crate) fn percentile(sorted: &[f32], p: f32) -> f32 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = p * (sorted.len() - 1) as f32;
    let i = pos.floor() as usize;
    let j = (i + 1).min(sorted.len() - 1);
    let fr = pos - i as f32;
    sorted[i] * (1.0 - fr) + sorted[j] * fr
}

/// Semitones above 27.5 Hz (A0).
pub(crate) fn semitones(f0: f32) -> f32 {
    12.0 * (f0 / 27.5).log2()
}

/// Compute functionals of the frames and cycles of one utterance or window.
pub fn functionals(frames: &[Frame], cycles: &[Cycle]) -> Functionals {
    let n = frames.len();
    let duration = n as f32 * FRAME_STEP_S as f32;
    let mut f = Functionals {
        duration_s: duration,
        ..Default::default()
    };
    if n == 0 {
        return f;
    }
    let voiced = || frames.iter().filter(|fr| fr.voiced && fr.f0_hz > 0.0);
    if let Some((m, s)) = mean_std(voiced().map(|fr| fr.f0_hz)) {
        f.f0_mean_hz = Some(m);
        f.f0_std_hz = Some(s);
    }
    if let Some((m, s)) = mean_std(voiced().map(|fr| semitones(fr.f0_hz))) {
        f.f0_mean_st = Some(m);
        f.f0_std_st = Some(s);
        let mut st: Vec<f32> = voiced().map(|fr| semitones(fr.f0_hz)).collect();
        st.sort_by(f32::total_cmp);
        f.f0_range_st = Some(percentile(&st, 0.8) - percentile(&st, 0.2));
    }
    let (rise, fall) = slopes(frames);
    f.f0_rising_slope = rise;
    f.f0_falling_slope = fall;

    let (lm, ls) = mean_std(frames.iter().map(|fr| fr.loudness)).unwrap_or_default();
    f.loudness_mean = lm;
    f.loudness_std = ls;
    f.loudness_peaks_per_s = loudness_peaks(frames) as f32 / duration;
    f.rms_db_mean = mean_std(frames.iter().map(|fr| fr.rms_db))
        .unwrap_or_default()
        .0;
    f.jitter_local = jitter_local(cycles);
    f.shimmer_local_db = shimmer_local_db(cycles);
    f.hnr_db_mean = mean_std(voiced().map(|fr| fr.hnr_db)).map(|x| x.0);
    f.alpha_ratio_mean = mean_std(voiced().map(|fr| fr.alpha_ratio_db)).map(|x| x.0);
    f.hammarberg_mean = mean_std(voiced().map(|fr| fr.hammarberg_db)).map(|x| x.0);
    f.spectral_slope_mean = mean_std(voiced().map(|fr| fr.spectral_slope)).map(|x| x.0);

    let n_voiced = voiced().count();
    f.voiced_ratio = n_voiced as f32 / n as f32;
    let mut segs = 0usize;
    let mut run = 0usize;
    let mut seg_frames = 0usize;
    for fr in frames.iter().chain(std::iter::once(&Frame::default())) {
        if fr.voiced {
            run += 1;
        } else {
            if run >= 2 {
                segs += 1;
                seg_frames += run;
            }
            run = 0;
        }
    }
    f.voiced_segments_per_s = segs as f32 / duration;
    f.voiced_segment_mean_s = if segs > 0 {
        seg_frames as f32 * FRAME_STEP_S as f32 / segs as f32
    } else {
        0.0
    };
    let mut db: Vec<f32> = frames.iter().map(|fr| fr.rms_db).collect();
    db.sort_by(f32::total_cmp);
    let silence_db = (percentile(&db, 0.9) - 25.0).max(-60.0);
    let min_pause = (0.15 / FRAME_STEP_S).round() as usize;
    let mut paused = 0usize;
    let mut run = 0usize;
    for fr in frames.iter() {
        if fr.rms_db < silence_db && !fr.voiced {
            run += 1;
        } else {
            if run >= min_pause {
                paused += run;
            }
            run = 0;
        }
    }
    if run >= min_pause {
        paused += run;
    }
    f.pause_ratio = paused as f32 / n as f32;
    f.syllable_rate = syllable_nuclei(frames, &db) as f32 / duration;
    f
}

/// Mean slopes (st/s) of rising and falling monotonic parts within voiced stretches.
fn slopes(frames: &[Frame]) -> (Option<f32>, Option<f32>) {
    let dt = FRAME_STEP_S as f32;
    let (mut rise, mut nr, mut fall, mut nf) = (0.0f32, 0usize, 0.0f32, 0usize);
    // Current monotonic part: direction (+1/−1), start value, frames.
    let mut part: Option<(i8, f32, usize)> = None;
    let mut prev: Option<f32> = None;
    let mut close = |p: Option<(i8, f32, usize)>, end: f32| {
        if let Some((dir, start, len)) = p {
            if len >= 2 {
                let s = (end - start) / (len as f32 * dt);
                if dir > 0 {
                    rise += s;
                    nr += 1;
                } else {
                    fall += -s;
                    nf += 1;
                }
            }
        }
    };
    for fr in frames {
        if !(fr.voiced && fr.f0_hz > 0.0) {
            if let Some(p) = prev {
                close(part.take(), p);
            }
            prev = None;
            continue;
        }
        let st = semitones(fr.f0_hz);
        if let Some(p) = prev {
            let d = st - p;
            let dir: i8 = if d > 0.0 { 1 } else { -1 };
            match part {
                Some((pd, s0, len)) if pd == dir => part = Some((pd, s0, len + 1)),
                _ => {
                    close(part.take(), p);
                    part = Some((dir, p, 1));
                }
            }
        }
        prev = Some(st);
    }
    if let Some(p) = prev {
        close(part.take(), p);
    }
    (
        (nr > 0).then(|| rise / nr as f32),
        (nf > 0).then(|| fall / nf as f32),
    )
}

/// Peaks of the 3-frame-smoothed loudness contour that stand out by ≥ 10 % of its range.
fn loudness_peaks(frames: &[Frame]) -> usize {
    let l: Vec<f32> = smooth3(frames.iter().map(|f| f.loudness).collect());
    let (lo, hi) = l
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    count_peaks(&l, 0.1 * (hi - lo), lo + 0.1 * (hi - lo), |_| true)
}

fn syllable_nuclei(frames: &[Frame], sorted_db: &[f32]) -> usize {
    let i: Vec<f32> = smooth3(frames.iter().map(|f| f.rms_db).collect());
    let max = sorted_db.last().copied().unwrap_or(0.0);
    let thr = percentile(sorted_db, 0.5).max(max - 25.0);
    count_peaks(&i, 2.0, thr, |k| frames[k].voiced)
}

fn smooth3(v: Vec<f32>) -> Vec<f32> {
    let n = v.len();
    (0..n)
        .map(|i| {
            let a = v[i.saturating_sub(1)];
            let c = v[(i + 1).min(n - 1)];
            (a + v[i] + c) / 3.0
        })
        .collect()
}

/// Local maxima above `thr` that are separated from the previous counted peak by a dip of
/// at least `dip` below both, and satisfy `ok`.
fn count_peaks(x: &[f32], dip: f32, thr: f32, ok: impl Fn(usize) -> bool) -> usize {
    let mut count = 0;
    let mut last_peak: Option<f32> = None;
    let mut min_since = f32::MAX;
    for k in 0..x.len() {
        min_since = min_since.min(x[k]);
        let left = if k > 0 { x[k - 1] } else { f32::MIN };
        let right = if k + 1 < x.len() { x[k + 1] } else { f32::MIN };
        if !(x[k] > left && x[k] >= right && x[k] > thr && ok(k)) {
            continue;
        }
        let accept = match last_peak {
            None => true,
            Some(p) => min_since <= p.min(x[k]) - dip,
        };
        if accept {
            count += 1;
            last_peak = Some(x[k]);
            min_since = x[k];
        } else if let Some(p) = last_peak {
            if x[k] > p {
                last_peak = Some(x[k]);
                min_since = x[k];
            }
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(t: f64, f0: f32, db: f32) -> Frame {
        Frame {
            t,
            f0_hz: f0,
            voiced: f0 > 0.0,
            rms_db: db,
            loudness: (db + 60.0) / 30.0,
            hnr_db: 10.0,
            ..Default::default()
        }
    }

    #[test]
    fn names_match_vector() {
        let f = functionals(&[], &[]);
        assert_eq!(f.feature_vector().len(), Functionals::feature_names().len());
        assert_eq!(FEATURES.len(), FEATURE_NAMES.len());
        for (a, b) in FEATURES.iter().zip(FEATURE_NAMES.iter()) {
            assert_eq!(a.0, *b);
        }
    }

    #[test]
    fn pitch_stats_and_syllables() {
        // Three 200 ms voiced "syllables" with an intensity bump and a rising glide each,
        // separated by 200 ms pauses.
        let mut frames = Vec::new();
        for k in 0..100 {
            let t = 0.005 + 0.01 * k as f64;
            let pos = k % 40;
            let (f0, db) = if pos < 20 {
                let bump = 10.0 - (pos as f32 - 10.0).abs();
                (100.0 * 2f32.powf(pos as f32 / 120.0), -30.0 + bump)
            } else {
                (0.0, -80.0)
            };
            frames.push(frame(t, f0, db));
        }
        let f = functionals(&frames, &[]);
        assert!((f.duration_s - 1.0).abs() < 1e-6);
        let m = f.f0_mean_hz.unwrap();
        assert!(m > 100.0 && m < 112.0, "{m}");
        assert!(f.f0_rising_slope.unwrap() > 5.0);
        assert!(f.f0_falling_slope.is_none());
        assert_eq!(f.syllable_rate.round() as i32, 3, "{f:?}");
        assert!((f.voiced_ratio - 0.6).abs() < 1e-6);
        assert!((f.pause_ratio - 0.4).abs() < 1e-6, "{f:?}");
        assert!((f.voiced_segments_per_s - 3.0).abs() < 1e-6);
        assert!((f.voiced_segment_mean_s - 0.2).abs() < 1e-6);
    }
}
