//! A condition that must hold for a while before it counts, with hysteresis: the building
//! block of the tick-driven rules (stress, over-talk, silence).
//!
//! Each tick at `t` describes the interval `(t_prev, t]` and classifies it as
//! [`Level::High`] (the condition holds), [`Level::Low`] (it clearly does not: ends the run
//! and the episode), [`Level::Hold`] (undecided: a middling value) or [`Level::Pause`] (no
//! reading at all). A *run* starts at the first high interval and survives, since its latest
//! high interval, up to `gap_tolerance_s` of `Hold` and up to `pause_tolerance_s` of `Pause`
//! (a pause between sentences is no evidence of calm); once the run has lasted `min_s` it
//! is *due*. After the caller fires, the *episode* continues until a
//! `Low`, or until `release_after_s` passes without a high interval; only then can a new run
//! become due. Cooldowns are the caller's business.

/// How one tick relates to the condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    High,
    Hold,
    Pause,
    Low,
}

/// A run that has lasted long enough.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Due {
    /// Start of the run, seconds.
    pub start: f64,
    /// Seconds from the start of the run to the end of its latest high interval.
    pub duration: f64,
    /// Mean and maximum of the values given with high ticks.
    pub mean: f32,
    pub max: f32,
}

#[derive(Debug, Clone)]
pub(crate) struct Sustained {
    min_s: f64,
    /// `duration > min_s` instead of `duration ≥ min_s`.
    strict: bool,
    gap_tolerance_s: f64,
    pause_tolerance_s: f64,
    release_after_s: f64,
    run_start: Option<f64>,
    last_high: f64,
    /// `Hold` and `Pause` time since the latest high interval.
    held_s: f64,
    paused_s: f64,
    sum: f64,
    count: u32,
    max: f32,
    fired: bool,
}

/// Absorbs float error in tick times (0.1 + 0.2 ≠ 0.3).
const EPS: f64 = 1e-6;

impl Sustained {
    pub fn new(min_s: f64, strict: bool, gap_tolerance_s: f64, release_after_s: f64) -> Self {
        Self {
            min_s,
            strict,
            gap_tolerance_s,
            pause_tolerance_s: gap_tolerance_s,
            release_after_s,
            run_start: None,
            last_high: 0.0,
            held_s: 0.0,
            paused_s: 0.0,
            sum: 0.0,
            count: 0,
            max: f32::MIN,
            fired: false,
        }
    }

    /// Lets `Pause` intervals last up to `s` (default: the gap tolerance).
    pub fn with_pause_tolerance(mut self, s: f64) -> Self {
        self.pause_tolerance_s = s;
        self
    }

    /// Feeds the interval `(t_prev, t]`; returns the run when it is due and not yet fired.
    pub fn update(&mut self, t_prev: f64, t: f64, level: Level, value: f32) -> Option<Due> {
        match level {
            Level::High => {
                if self.run_start.is_none() {
                    self.run_start = Some(t_prev);
                    self.sum = 0.0;
                    self.count = 0;
                    self.max = f32::MIN;
                }
                self.last_high = t;
                self.held_s = 0.0;
                self.paused_s = 0.0;
                self.sum += f64::from(value);
                self.count += 1;
                self.max = self.max.max(value);
            }
            Level::Hold | Level::Pause => {
                if level == Level::Hold {
                    self.held_s += t - t_prev;
                } else {
                    self.paused_s += t - t_prev;
                }
                let over = if self.fired {
                    t - self.last_high > self.release_after_s + EPS
                } else {
                    self.held_s > self.gap_tolerance_s + EPS
                        || self.paused_s > self.pause_tolerance_s + EPS
                };
                if self.run_start.is_some() && over {
                    self.end_episode();
                }
            }
            Level::Low => self.end_episode(),
        }
        let start = self.run_start?;
        let duration = self.last_high - start;
        let long_enough = if self.strict {
            duration > self.min_s + EPS
        } else {
            duration >= self.min_s - EPS
        };
        (level == Level::High && long_enough && !self.fired).then(|| Due {
            start,
            duration,
            mean: (self.sum / f64::from(self.count.max(1))) as f32,
            max: self.max,
        })
    }

    /// The caller fired for the current run; stay quiet until the episode ends.
    pub fn mark_fired(&mut self) {
        self.fired = true;
    }

    fn end_episode(&mut self) {
        self.run_start = None;
        self.fired = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(s: &mut Sustained, levels: &[Level]) -> Vec<(usize, Due)> {
        let mut out = Vec::new();
        for (i, &l) in levels.iter().enumerate() {
            let t = (i + 1) as f64 * 0.1;
            if let Some(d) = s.update(t - 0.1, t, l, 1.0) {
                s.mark_fired();
                out.push((i, d));
            }
        }
        out
    }

    use Level::{High as H, Hold as M, Low as L, Pause as P};

    #[test]
    fn fires_once_after_min_duration() {
        let mut s = Sustained::new(0.5, false, 0.1, 0.3);
        let due = feed(&mut s, &[H, H, H, H, H, H, H, H]);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].0, 4);
        assert!((due[0].1.duration - 0.5).abs() < 1e-9);
    }

    #[test]
    fn strict_needs_more_than_min() {
        let mut s = Sustained::new(0.5, true, 0.0, 0.0);
        let due = feed(&mut s, &[H, H, H, H, H, H]);
        assert_eq!(due[0].0, 5);
    }

    #[test]
    fn short_gaps_are_bridged_long_gaps_break_the_run() {
        let mut s = Sustained::new(0.5, false, 0.1, 0.3);
        assert_eq!(feed(&mut s, &[H, H, M, H, H]).len(), 1);
        let mut s = Sustained::new(0.5, false, 0.1, 0.3);
        assert!(feed(&mut s, &[H, H, M, M, H, H, H]).is_empty());
        let mut s = Sustained::new(0.5, false, 0.1, 0.3);
        assert!(feed(&mut s, &[H, H, H, L, H, H]).is_empty());
    }

    #[test]
    fn re_arms_only_after_release() {
        let mut s = Sustained::new(0.2, false, 0.0, 0.3);
        // Fires, holds (≤ 0.3 s) and resumes: same episode. Then Low: a new episode fires.
        let due = feed(&mut s, &[H, H, M, M, H, H, L, H, H]);
        assert_eq!(due.iter().map(|d| d.0).collect::<Vec<_>>(), vec![1, 8]);
        // A hold longer than release_after also ends the episode.
        let mut s = Sustained::new(0.2, false, 0.0, 0.2);
        let due = feed(&mut s, &[H, H, M, M, M, H, H]);
        assert_eq!(due.iter().map(|d| d.0).collect::<Vec<_>>(), vec![1, 6]);
    }

    #[test]
    fn pauses_are_bridged_longer_than_middling_readings() {
        // Gap tolerance 0.1 s, pause tolerance 0.3 s.
        let mk = || Sustained::new(0.5, false, 0.1, 1.0).with_pause_tolerance(0.3);
        // Three pause intervals (0.3 s) between high stretches: one run.
        assert_eq!(feed(&mut mk(), &[H, H, P, P, P, H, H, H]).len(), 1);
        // Four (0.4 s): broken, and the rest is too short on its own.
        assert!(feed(&mut mk(), &[H, H, P, P, P, P, H, H, H]).is_empty());
        // Middling readings still get only the gap tolerance.
        assert!(feed(&mut mk(), &[H, H, M, M, H, H, H]).is_empty());
        // Pause and middling time are counted separately since the last high reading.
        assert_eq!(feed(&mut mk(), &[H, H, P, P, M, H, H]).len(), 1);
        // Without `with_pause_tolerance` a pause is held to the gap tolerance.
        let mut s = Sustained::new(0.5, false, 0.1, 1.0);
        assert!(feed(&mut s, &[H, H, P, P, H, H, H]).is_empty());
    }
}
