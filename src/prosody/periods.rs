//! Period-by-period analysis: glottal pulse marks, jitter (local) and shimmer (local, dB).
//!
//! [`PulseTracker`] follows Praat's "To PointProcess (periodic, cc)"
//! (`Sound_Pitch_to_PointProcess_cc`) on the analyzer's own pitch decisions. For each voiced
//! stretch:
//!
//! * the first mark goes on the largest absolute extremum within one period around the
//!   stretch's middle (parabolically interpolated), so marks sit on the main excitation
//!   peak of each period;
//! * from there the tracker walks backwards, then forwards: the next mark is where a
//!   one-period window around the current mark correlates best (the highest local maximum
//!   of the normalised cross-correlation within 0.8–1.25 periods, parabolically refined);
//! * a mark is kept only when that correlation exceeds 0.3 and the window is not near
//!   silence (peak > 1 % of the loudest peak seen); one more mark past either end of the
//!   stretch is added when the correlation exceeds 0.7.
//!
//! Marks are emitted as [`Cycle`]s in time order, each with Praat's per-pulse amplitude
//! (Hann-windowed RMS over ±0.2 of the adjacent periods, `Sound_getHannWindowedRms`), so
//! [`jitter_local`] and [`shimmer_local_db`] are Praat's `PointProcess_getJitter_local` and
//! `AmplitudeTier_getShimmer_local_dB` over the marks of any time range.
//!
//! Streaming: a stretch is analysed when it ends (or after [`MAX_STRETCH_S`], when it is
//! split as Praat would split two adjacent voiced intervals), so marks arrive up to that
//! long after the audio; the last mark of a stretch waits until the next mark (or a long
//! enough pause) gives it its following period.

use super::pitch::{dot, sinc_peak, SINC_DEPTH};
use super::Cycle;

/// Praat's default shortest valid period (s).
pub const PERIOD_FLOOR_S: f64 = 0.0001;
/// Praat's default longest valid period (s).
pub const PERIOD_CEILING_S: f64 = 0.02;
/// Praat's default maximum ratio of consecutive periods.
pub const MAX_PERIOD_FACTOR: f64 = 1.3;
/// Praat's default maximum ratio of consecutive amplitudes.
pub const MAX_AMPLITUDE_FACTOR: f64 = 1.6;
/// Longest voiced stretch analysed in one go (s); longer ones are split.
pub const MAX_STRETCH_S: f64 = 1.0;
/// A mark is kept only above this correlation with the previous period (Praat: 0.3).
const MIN_CORRELATION: f64 = 0.3;
/// The extra mark past a stretch's end needs this correlation (Praat: 0.7).
const EDGE_CORRELATION: f64 = 0.7;
/// A kept mark's window must peak above this fraction of the loudest peak (Praat: 0.01).
const MIN_PEAK_FRACTION: f32 = 0.01;
/// The extra mark past a stretch's end must peak above this fraction (Praat: 0.023333).
const EDGE_PEAK_FRACTION: f32 = 0.023333;

#[derive(Clone, Copy, Debug)]
struct Mark {
    /// Absolute sample position (fractional).
    pos: f64,
    /// Position of the mark before it, if any (for its left period).
    prev: Option<f64>,
}

/// One correlation search: `None` when the window leaves the buffer (Praat's -1).
struct Found {
    corr: f64,
    pos: f64,
    peak: f32,
}

/// Streaming pulse marker. Works on a caller-owned sample buffer that holds absolute
/// samples `[buf_start, buf_start + buf.len())`.
pub struct PulseTracker {
    sample_rate: f64,
    hop: u64,
    max_period: f64,
    /// F0 (Hz) of each frame of the open voiced stretch.
    stretch: Vec<f32>,
    /// First sample of the open stretch's first frame.
    stretch_s0: u64,
    /// Marks of the stretch being analysed (scratch, time order after sorting).
    marks: Vec<f64>,
    /// Correlation per candidate lag (scratch).
    cc: Vec<f32>,
    /// The last mark emitted so far is held back until its following period is known.
    held: Option<Mark>,
    /// Position of the last mark added by a forward walk (Praat's `addedRight`).
    added_right: f64,
}

impl PulseTracker {
    /// `hop`: samples per analysis frame (the frames [`Self::frame`] is called with).
    pub fn new(sample_rate: u32, hop: u64, f0_min_hz: f32, f0_max_hz: f32) -> Self {
        let sr = sample_rate as f64;
        let max_frames = (MAX_STRETCH_S * sr / hop as f64).ceil() as usize;
        // Marks are at least 0.8 of the shortest period apart.
        let max_marks = ((MAX_STRETCH_S + 0.1) * f0_max_hz as f64 / 0.8) as usize + 8;
        Self {
            sample_rate: sr,
            hop,
            max_period: sr / f0_min_hz as f64,
            stretch: Vec::with_capacity(max_frames),
            stretch_s0: 0,
            marks: Vec::with_capacity(max_marks),
            cc: Vec::with_capacity((0.5 * sr / f0_min_hz as f64) as usize + 2 * SINC_DEPTH + 8),
            held: None,
            added_right: f64::NEG_INFINITY,
        }
    }

    /// Forget everything (start of a new stream).
    pub fn reset(&mut self) {
        self.stretch.clear();
        self.marks.clear();
        self.held = None;
        self.added_right = f64::NEG_INFINITY;
    }

    /// Samples of history the tracker may read before a stretch's first frame.
    pub fn history_needed(&self) -> usize {
        (3.5 * self.max_period) as usize + 4
    }

    /// Samples of future the tracker may read beyond the end of the frame being processed.
    pub fn lookahead_needed(&self) -> usize {
        (2.5 * self.max_period) as usize + 4
    }

    /// Most samples the tracker may need kept at once (an open stretch of the longest
    /// length plus its margins).
    pub fn max_retained(&self) -> usize {
        (MAX_STRETCH_S * self.sample_rate) as usize + self.history_needed() + self.hop as usize
    }

    /// Earliest absolute sample the tracker may still read, if it needs any.
    pub fn keep_from(&self) -> Option<u64> {
        let stretch = (!self.stretch.is_empty())
            .then(|| self.stretch_s0 as f64 - self.history_needed() as f64);
        let held = self
            .held
            .map(|h| h.pos - 0.25 * PERIOD_CEILING_S * self.sample_rate - 2.0);
        let k = match (stretch, held) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(k.max(0.0) as u64)
    }

    /// Process one decided frame starting at absolute sample `s0`; `f0_hz` 0 = unvoiced.
    /// `global_peak` is the loudest absolute sample value seen recently.
    pub fn frame(
        &mut self,
        buf: &[f32],
        buf_start: u64,
        s0: u64,
        f0_hz: f32,
        global_peak: f32,
        out: &mut Vec<Cycle>,
    ) {
        if f0_hz > 0.0 {
            if self.stretch.is_empty() {
                self.stretch_s0 = s0;
            }
            self.stretch.push(f0_hz);
            if self.stretch.len() == self.stretch.capacity() {
                self.analyse_stretch(buf, buf_start, global_peak, out);
            }
            return;
        }
        if !self.stretch.is_empty() {
            self.analyse_stretch(buf, buf_start, global_peak, out);
        }
        // The next stretch starts after this frame and its first mark can lie at most
        // 1.25 periods before it: once that is beyond the longest period, the held mark
        // has no following period.
        if let Some(h) = self.held {
            let ceiling = PERIOD_CEILING_S * self.sample_rate;
            if s0 as f64 - 1.25 * self.max_period > h.pos + ceiling {
                self.release(out);
            }
        }
    }

    /// End of stream: analyse the open stretch and emit the held mark.
    pub fn flush(&mut self, buf: &[f32], buf_start: u64, global_peak: f32, out: &mut Vec<Cycle>) {
        if !self.stretch.is_empty() {
            self.analyse_stretch(buf, buf_start, global_peak, out);
        }
        self.release(out);
    }

    fn release(&mut self, out: &mut Vec<Cycle>) {
        if let Some(h) = self.held.take() {
            out.push(Cycle {
                t: h.pos / self.sample_rate,
                period_s: 0.0,
                peak: 0.0,
            });
        }
    }

    /// Praat's pitch at time `pos` (linear interpolation between the nearest voiced frame
    /// and its neighbour; `None` when the nearest frame is outside the stretch).
    fn f0_at(&self, pos: f64) -> Option<f64> {
        let c0 = self.stretch_s0 as f64 + (self.hop / 2) as f64;
        let x = (pos - c0) / self.hop as f64;
        let left = x.floor();
        let mut phase = x - left;
        let left = left as i64;
        let (near, far) = if phase < 0.5 {
            (left, left + 1)
        } else {
            phase = 1.0 - phase;
            (left + 1, left)
        };
        let n = self.stretch.len() as i64;
        if near < 0 || near >= n {
            return None;
        }
        let f_near = self.stretch[near as usize] as f64;
        if far < 0 || far >= n {
            return Some(f_near);
        }
        Some(f_near + phase * (self.stretch[far as usize] as f64 - f_near))
    }

    fn analyse_stretch(
        &mut self,
        buf: &[f32],
        buf_start: u64,
        global_peak: f32,
        out: &mut Vec<Cycle>,
    ) {
        let sr = self.sample_rate;
        let tl = self.stretch_s0 as f64;
        let tr = tl + (self.stretch.len() as u64 * self.hop) as f64;
        let mid = 0.5 * (tl + tr);
        let f0_mid = self
            .f0_at(mid)
            .unwrap_or(self.stretch[self.stretch.len() / 2] as f64);
        self.marks.clear();
        let keep = |corr: f64, peak: f32| {
            corr > MIN_CORRELATION && (peak == 0.0 || peak > MIN_PEAK_FRACTION * global_peak)
        };
        let edge = |corr: f64, peak: f32| {
            corr > EDGE_CORRELATION && peak > EDGE_PEAK_FRACTION * global_peak
        };
        let half = 0.5 * sr / f0_mid;
        if let Some(first) = find_extremum(buf, buf_start, mid - half, mid + half) {
            // Backwards from the middle...
            let mut t = first;
            while let Some(f0) = self.f0_at(t) {
                let p = sr / f0;
                let f = step(buf, buf_start, &mut self.cc, t, p, -1.0);
                t = f.pos;
                let fresh = t - self.added_right > 0.8 * p;
                if t < tl {
                    if edge(f.corr, f.peak) && fresh {
                        self.marks.push(t);
                    }
                    break;
                }
                if keep(f.corr, f.peak) && fresh {
                    self.marks.push(t);
                }
            }
            self.marks.reverse();
            self.marks.push(first);
            // ...then forwards.
            let mut t = first;
            while let Some(f0) = self.f0_at(t) {
                let p = sr / f0;
                let f = step(buf, buf_start, &mut self.cc, t, p, 1.0);
                t = f.pos;
                if t > tr {
                    if edge(f.corr, f.peak) {
                        self.marks.push(t);
                        self.added_right = t;
                    }
                    break;
                }
                if keep(f.corr, f.peak) {
                    self.marks.push(t);
                    self.added_right = t;
                }
            }
        }
        self.stretch.clear();
        // Praat's point process keeps its points sorted and unique.
        self.marks.sort_unstable_by(f64::total_cmp);
        self.marks.dedup();
        for i in 0..self.marks.len() {
            let pos = self.marks[i];
            let prev = match self.held {
                Some(h) if pos <= h.pos => continue,
                Some(h) => {
                    out.push(self.cycle(buf, buf_start, h, pos));
                    Some(h.pos)
                }
                None => None,
            };
            self.held = Some(Mark { pos, prev });
        }
    }

    /// The period starting at mark `m` (next mark at `next`), with Praat's amplitude when
    /// both adjacent periods are valid and similar (`PointProcess_Sound_to_AmplitudeTier_period`).
    fn cycle(&self, buf: &[f32], buf_start: u64, m: Mark, next: f64) -> Cycle {
        let sr = self.sample_rate;
        let p2 = next - m.pos;
        let peak = match m.prev {
            Some(prev) => {
                let p1 = m.pos - prev;
                if valid(p1 / sr) && valid(p2 / sr) && ratio(p1, p2) <= MAX_PERIOD_FACTOR {
                    hann_rms(buf, buf_start, m.pos, 0.2 * p1, 0.2 * p2)
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        Cycle {
            t: m.pos / sr,
            period_s: (p2 / sr) as f32,
            peak,
        }
    }
}

/// One step of the walk from the mark at `t` (period `p` samples) in direction `dir` (±1):
/// the best correlation 0.8–1.25 periods away, or, when there is none, exactly one period
/// on with correlation −1 (Praat: that period drops out).
fn step(buf: &[f32], buf_start: u64, cc: &mut Vec<f32>, t: f64, p: f64, dir: f64) -> Found {
    let (a, b) = (t + dir * 0.8 * p, t + dir * 1.25 * p);
    max_correlation(buf, buf_start, cc, t, p, a.min(b), a.max(b)).unwrap_or(Found {
        corr: -1.0,
        pos: t + dir * p,
        peak: 0.0,
    })
}

/// Praat's `Sound_findExtremum` (maxima and minima): position of the largest absolute
/// sample in `[lo, hi]`, parabolically interpolated unless it lies on the edge.
fn find_extremum(buf: &[f32], buf_start: u64, lo: f64, hi: f64) -> Option<f64> {
    let b0 = buf_start as i64;
    let i0 = (lo.floor() as i64).max(b0);
    let i1 = (hi.ceil() as i64).min(b0 + buf.len() as i64 - 1);
    if i1 - i0 < 2 {
        return None;
    }
    let seg = &buf[(i0 - b0) as usize..=(i1 - b0) as usize];
    let (mut imin, mut imax) = (0, 0);
    for (i, &v) in seg.iter().enumerate() {
        if v < seg[imin] {
            imin = i;
        }
        if v > seg[imax] {
            imax = i;
        }
    }
    if seg[imin] == seg[imax] {
        return Some(0.5 * (lo + hi));
    }
    let i = if seg[imin].abs() > seg[imax].abs() {
        imin
    } else {
        imax
    };
    if i == 0 || i == seg.len() - 1 {
        return Some((i0 + i as i64) as f64);
    }
    let (l, m, r) = (seg[i - 1] as f64, seg[i] as f64, seg[i + 1] as f64);
    let d = 2.0 * m - l - r;
    let off = if d != 0.0 { 0.5 * (r - l) / d } else { 0.0 };
    Some((i0 + i as i64) as f64 + off)
}

/// Praat's `Sound_findMaximumCorrelation`: the one-period window around `t1` (samples,
/// `period` long) against windows starting so that their centre lies in `[lo, hi]`; the
/// highest local maximum of the normalised correlation. Praat refines it with a parabola;
/// here it is refined by sinc interpolation of the correlation function ([`sinc_peak`]),
/// which keeps sub-sample period differences (jitter) at high F0 where a parabola
/// flattens them. `cc` is scratch. `None` when there is no local maximum or the windows
/// leave the buffer.
fn max_correlation(
    buf: &[f32],
    buf_start: u64,
    cc: &mut Vec<f32>,
    t1: f64,
    period: f64,
    lo: f64,
    hi: f64,
) -> Option<Found> {
    let half = 0.5 * period;
    let b0 = buf_start as i64;
    let left1 = (t1 - half).round() as i64;
    let right1 = (t1 + half).round() as i64;
    let first = (lo - half).floor() as i64;
    let last = (hi - half).ceil() as i64;
    let depth = SINC_DEPTH as i64;
    // Correlations are computed `depth` lags beyond the search range for interpolation.
    let (from, to) = (first - depth, last + depth);
    let len = (right1 - left1 + 1) as usize;
    let end = b0 + buf.len() as i64;
    if left1 < b0 || from < b0 || right1 >= end || to + len as i64 > end || last <= first {
        return None;
    }
    let tmpl = &buf[(left1 - b0) as usize..][..len];
    let e1: f64 = tmpl.iter().map(|&v| (v as f64) * (v as f64)).sum();
    if e1 <= 0.0 {
        return None;
    }
    let at = |i: i64| (i - b0) as usize;
    let mut e2: f64 = buf[at(from)..at(from) + len]
        .iter()
        .map(|&v| (v as f64) * (v as f64))
        .sum();
    cc.clear();
    for left2 in from..=to {
        if left2 > from {
            let (gone, new) = (buf[at(left2 - 1)] as f64, buf[at(left2) + len - 1] as f64);
            e2 += new * new - gone * gone;
        }
        let product = dot(tmpl, &buf[at(left2)..at(left2) + len]) as f64;
        cc.push(if product != 0.0 && e2 > 0.0 {
            (product / (e1 * e2).sqrt()) as f32
        } else {
            0.0
        });
    }
    // Highest local maximum strictly inside the search range (as Praat's r1/r2/r3 scan).
    let k = |lag: i64| (lag - from) as usize;
    let best = (first + 1..last)
        .map(k)
        .filter(|&i| cc[i] >= cc[i - 1] && cc[i] >= cc[i + 1])
        .max_by(|&a, &b| cc[a].total_cmp(&cc[b]))?;
    // Praat reports the peak of the window after the best one.
    let next = from + best as i64 + 1;
    let peak = buf[at(next)..at(next) + len]
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()));
    let (off, corr) = sinc_peak(cc, best);
    let lag = (from + best as i64) as f64 + off as f64;
    Some(Found {
        corr: corr as f64,
        pos: t1 + (lag - left1 as f64),
        peak,
    })
}

/// Praat's `Sound_getHannWindowedRms` around `pos` with asymmetric half-widths (samples);
/// 0 when fewer than three samples fall inside.
fn hann_rms(buf: &[f32], buf_start: u64, pos: f64, wl: f64, wr: f64) -> f32 {
    let p = pos - buf_start as f64;
    let i0 = (p - wl).ceil().max(0.0) as usize;
    let i1 = ((p + wr).floor().max(0.0) as usize).min(buf.len().saturating_sub(1));
    if i1 < i0 + 2 {
        return 0.0;
    }
    let (mut sx, mut sw) = (0.0f64, 0.0f64);
    for (i, &x) in buf.iter().enumerate().take(i1 + 1).skip(i0) {
        let d = i as f64 - p;
        let width = if d < 0.0 { wl } else { wr };
        let w = 0.5 + 0.5 * (std::f64::consts::PI * d / width).cos();
        let v = x as f64 * w;
        sx += v * v;
        sw += w * w;
    }
    if sw <= 0.0 {
        0.0
    } else {
        (sx / sw).sqrt() as f32
    }
}

fn valid(p_s: f64) -> bool {
    (PERIOD_FLOOR_S..=PERIOD_CEILING_S).contains(&p_s)
}

fn ratio(a: f64, b: f64) -> f64 {
    if a > b {
        a / b
    } else {
        b / a
    }
}

/// Praat's `PointProcess_isPeriod`: is the interval from mark `i` to `i + 1` a period?
/// (Valid length, and not too different from *both* of its neighbours.)
fn is_period(c: &[Cycle], i: usize) -> bool {
    let iv = c[i + 1].t - c[i].t;
    if iv <= 0.0 || !valid(iv) {
        return false;
    }
    let prev = (i >= 1).then(|| c[i].t - c[i - 1].t).filter(|&p| p > 0.0);
    let next = (i + 2 < c.len())
        .then(|| c[i + 2].t - c[i + 1].t)
        .filter(|&p| p > 0.0);
    let mpf = MAX_PERIOD_FACTOR;
    !matches!((prev, next), (Some(a), Some(b)) if ratio(iv, a) > mpf && ratio(iv, b) > mpf)
}

/// Jitter (local), as Praat's `PointProcess_getJitter_local` over the marks of `cycles`:
/// mean absolute difference of consecutive valid periods / mean period. `None` with
/// fewer than two usable pairs.
pub fn jitter_local(cycles: &[Cycle]) -> Option<f32> {
    let n = cycles.len();
    if n < 3 {
        return None;
    }
    let t = |i: usize| cycles[i].t;
    let mut periods = n as i64 - 1;
    let mut sum = 0.0f64;
    for i in 1..n - 1 {
        let (p1, p2) = (t(i) - t(i - 1), t(i + 1) - t(i));
        if valid(p1) && valid(p2) && ratio(p1, p2) <= MAX_PERIOD_FACTOR {
            sum += (p1 - p2).abs();
        } else {
            periods -= 1;
        }
    }
    if periods < 2 {
        return None;
    }
    // Mean period over the intervals Praat counts as periods.
    let (mut psum, mut pn) = (0.0f64, 0usize);
    for i in (0..n - 1).filter(|&i| is_period(cycles, i)) {
        psum += t(i + 1) - t(i);
        pn += 1;
    }
    if pn == 0 || psum <= 0.0 {
        return None;
    }
    Some((sum / (periods - 1) as f64 / (psum / pn as f64)) as f32)
}

/// Shimmer (local, dB), as Praat's `AmplitudeTier_getShimmer_local_dB` over the pulses of
/// `cycles` that carry an amplitude: mean |20·log10(A_i / A_{i−1})| over consecutive
/// amplitude points at most the longest period apart and within the maximum amplitude
/// factor. `None` when no pair qualifies.
pub fn shimmer_local_db(cycles: &[Cycle]) -> Option<f32> {
    let (mut sum, mut n) = (0.0f64, 0usize);
    let mut prev: Option<&Cycle> = None;
    for c in cycles.iter().filter(|c| c.peak > 0.0) {
        if let Some(a) = prev {
            let f = ratio(a.peak as f64, c.peak as f64);
            if valid(c.t - a.t) && f <= MAX_AMPLITUDE_FACTOR {
                sum += (a.peak as f64 / c.peak as f64).log10().abs();
                n += 1;
            }
        }
        prev = Some(c);
    }
    (n >= 1).then(|| (20.0 * sum / n as f64) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Marks `periods` apart starting at 0, each with the given amplitude.
    fn cyc(periods: &[f64], amps: &[f32]) -> Vec<Cycle> {
        let mut t = 0.0f64;
        let mut v: Vec<Cycle> = periods
            .iter()
            .zip(amps)
            .map(|(&p, &a)| {
                let c = Cycle {
                    t,
                    period_s: p as f32,
                    peak: a,
                };
                t += p;
                c
            })
            .collect();
        v.push(Cycle {
            t,
            period_s: 0.0,
            peak: 0.0,
        });
        v
    }

    #[test]
    fn jitter_of_alternating_periods() {
        // Periods 10, 11, 10, 11 ms: every consecutive pair differs by 1 ms.
        let c = cyc(&[0.010, 0.011, 0.010, 0.011], &[1.0; 4]);
        let j = jitter_local(&c).unwrap();
        assert!((j - 0.001 / 0.0105).abs() < 1e-4, "{j}");
    }

    #[test]
    fn shimmer_of_alternating_amplitudes() {
        let c = cyc(&[0.01; 4], &[1.0, 2.0f32.sqrt(), 1.0, 2.0f32.sqrt()]);
        let s = shimmer_local_db(&c).unwrap();
        assert!((s - 3.0103).abs() < 1e-3, "{s}");
    }

    #[test]
    fn gaps_longer_than_the_longest_period_are_not_periods() {
        // Two stretches of 10 ms periods, 0.5 s apart: the gap counts for neither
        // jitter nor shimmer.
        let mut c = cyc(&[0.010; 3], &[1.0; 3]);
        let mut d = cyc(&[0.012; 3], &[2.0; 3]);
        for x in &mut d {
            x.t += 0.53;
        }
        c.append(&mut d);
        assert!(jitter_local(&c).unwrap() < 1e-6);
        assert!(shimmer_local_db(&c).unwrap() < 1e-6);
    }

    #[test]
    fn pulses_without_amplitude_are_skipped() {
        // Amplitudes only on every other pulse, 20 ms apart: still consecutive points.
        let c = cyc(&[0.01; 4], &[1.0, 0.0, 2.0f32.sqrt(), 0.0]);
        let s = shimmer_local_db(&c).unwrap();
        assert!((s - 3.0103).abs() < 1e-3, "{s}");
    }
}
