//! The customer's emotional journey: how the call opened vs how it closed.
//!
//! Definition (after AWS's post-call sample, which compares the last quarter of a call with
//! the rest, and Genesys's trend `(end − start) / 2` with ±20 bands on a −100..100 scale):
//! * **opening / closing** = the customer's transcribed utterances covering the first /
//!   the last `journey_part` (default a quarter) of the customer's *speech time*, at least
//!   one utterance each. Speech time, not call time: hold music and agent monologues do not
//!   shift the parts, and a quarter of a short demo call is still one or two utterances.
//!   Each utterance counts with its seconds inside the part (the boundary utterance is
//!   clipped), and with two or more utterances none is in both parts, so one long early
//!   utterance cannot make up the closing part too.
//! * `opening_sentiment` / `closing_sentiment`: mean VADER compound of those utterances,
//!   weighted by their seconds inside the part; `opening_stress` / `closing_stress`: mean of
//!   the customer's live stress readings within the part's (clipped) time span.
//! * `trend` = 100 × the mean of the terms that are known: `(closing − opening sentiment) / 2`
//!   (Genesys's formula) and `opening − closing stress` (stress falling is improvement).
//! * `label`: `improving` when trend ≥ `journey_threshold` (default 20, Genesys's inner band),
//!   `worsening` when ≤ −threshold, else `steady`; none with fewer than two customer
//!   utterances (there is no opening *and* closing to compare).
//! * `swings`: how often consecutive polar utterances (|sentiment| ≥ 0.3, neutral ones
//!   skipped) flip between negative and positive.
//!
//! Memory is bounded: at most [`MAX_UTTERANCES`] utterances and one stress reading per
//! [`STRESS_STEP_S`] are kept (hours of call).

use crate::emotion::{NEGATIVE_VALENCE, POSITIVE_VALENCE};
use crate::events::{Journey, JourneyLabel};

/// Customer utterances kept (the oldest beyond this are merged away by dropping them).
pub const MAX_UTTERANCES: usize = 20_000;
/// One stress reading kept per this many seconds.
pub const STRESS_STEP_S: f64 = 0.5;
const MAX_STRESS: usize = 40_000;

#[derive(Debug, Clone, Copy)]
struct Said {
    start: f64,
    end: f64,
    sentiment: f32,
}

/// The journey of one call's customer.
#[derive(Debug, Clone)]
pub struct JourneyTracker {
    part: f64,
    threshold: f64,
    said: Vec<Said>,
    stress: Vec<(f64, f32)>,
}

impl JourneyTracker {
    pub fn new(part: f64, threshold: f64) -> Self {
        Self {
            part,
            threshold,
            said: Vec::new(),
            stress: Vec::new(),
        }
    }

    /// A transcribed customer utterance.
    pub fn on_utterance(&mut self, start: f64, end: f64, sentiment: f32) {
        if self.said.len() < MAX_UTTERANCES && end > start {
            self.said.push(Said {
                start,
                end,
                sentiment,
            });
        }
    }

    /// A live stress reading of the customer at call time `t`.
    pub fn on_stress(&mut self, t: f64, stress: f32) {
        let due = self
            .stress
            .last()
            .is_none_or(|&(last, _)| t - last >= STRESS_STEP_S);
        if due && self.stress.len() < MAX_STRESS && stress.is_finite() {
            self.stress.push((t, stress));
        }
    }

    /// The label so far (for `state`).
    pub fn label(&self) -> Option<JourneyLabel> {
        self.journey().and_then(|j| j.label)
    }

    /// The journey so far; None without customer speech.
    pub fn journey(&self) -> Option<Journey> {
        if self.said.is_empty() {
            return None;
        }
        // Utterances arrive in transcript order; sort a copy by time to be safe.
        let mut said = self.said.clone();
        said.sort_by(|a, b| a.start.total_cmp(&b.start));
        let (opening, closing) = parts(&said, self.part);
        let (n_open, n_close) = (opening.len(), closing.len());
        let comparable = said.len() >= 2;
        let opening_sentiment = weighted_sentiment(&opening);
        let closing_sentiment = weighted_sentiment(&closing);
        let opening_stress = self.mean_stress(&opening);
        let closing_stress = self.mean_stress(&closing);
        let mut terms = vec![f64::from(closing_sentiment - opening_sentiment) / 2.0];
        if let (Some(o), Some(c)) = (opening_stress, closing_stress) {
            terms.push(f64::from(o - c));
        }
        let trend = 100.0 * terms.iter().sum::<f64>() / terms.len() as f64;
        let label = comparable.then(|| {
            if trend >= self.threshold {
                JourneyLabel::Improving
            } else if trend <= -self.threshold {
                JourneyLabel::Worsening
            } else {
                JourneyLabel::Steady
            }
        });
        Some(Journey {
            opening_sentiment: Some(round2(opening_sentiment)),
            closing_sentiment: Some(round2(closing_sentiment)),
            opening_stress: opening_stress.map(round2),
            closing_stress: closing_stress.map(round2),
            trend: comparable.then(|| (trend * 10.0).round() as f32 / 10.0),
            label,
            swings: swings(&said),
            opening_utterances: n_open as u32,
            closing_utterances: n_close as u32,
        })
    }

    fn mean_stress(&self, part: &[Said]) -> Option<f32> {
        let a = part.iter().map(|s| s.start).reduce(f64::min)?;
        let b = part.iter().map(|s| s.end).reduce(f64::max)?;
        let (sum, n) = self
            .stress
            .iter()
            .filter(|(t, _)| (a..=b).contains(t))
            .fold((0.0f64, 0usize), |(s, n), (_, x)| {
                (s + f64::from(*x), n + 1)
            });
        (n > 0).then(|| (sum / n as f64) as f32)
    }
}

/// The opening and the closing part of time-sorted utterances: the first and the last `part`
/// of the customer's speech time. Each utterance is clipped to the stretch of speech it
/// shares with the part (the boundary utterance counts only with the seconds inside it, so a
/// long early rant cannot swallow the closing quarter), in call time: an opening keeps the
/// beginning of its last utterance, a closing the end of its first one. With two or more
/// utterances no utterance is in both parts: one that straddles both goes to the part that
/// holds more of it, unless that would leave the other part empty.
fn parts(said: &[Said], part: f64) -> (Vec<Said>, Vec<Said>) {
    const EPS: f64 = 1e-9;
    let total: f64 = said.iter().map(|s| s.end - s.start).sum();
    let budget = part * total;
    // (index, seconds of the utterance inside the part) on the speech-time axis.
    let mut open: Vec<(usize, f64)> = Vec::new();
    let mut close: Vec<(usize, f64)> = Vec::new();
    let mut c = 0.0;
    for (i, s) in said.iter().enumerate() {
        let d = s.end - s.start;
        let in_open = (c + d).min(budget) - c;
        let in_close = c + d - c.max(total - budget);
        if in_open > EPS {
            open.push((i, in_open));
        }
        if in_close > EPS {
            close.push((i, in_close));
        }
        c += d;
    }
    if said.len() >= 2 {
        let shared = open
            .last()
            .zip(close.first())
            .filter(|(o, c)| o.0 == c.0)
            .map(|(o, c)| (o.1, c.1));
        if let Some((in_open, in_close)) = shared {
            let to_open = if open.len() == 1 {
                true
            } else if close.len() == 1 {
                false
            } else {
                in_open >= in_close
            };
            if to_open {
                close.remove(0);
            } else {
                open.pop();
            }
        }
    }
    let clip_open = |&(i, w): &(usize, f64)| {
        let s = said[i];
        Said {
            end: (s.start + w).min(s.end),
            ..s
        }
    };
    let clip_close = |&(i, w): &(usize, f64)| {
        let s = said[i];
        Said {
            start: (s.end - w).max(s.start),
            ..s
        }
    };
    (
        open.iter().map(clip_open).collect(),
        close.iter().map(clip_close).collect(),
    )
}

fn weighted_sentiment(part: &[Said]) -> f32 {
    let (sum, w) = part.iter().fold((0.0f64, 0.0f64), |(s, w), u| {
        let d = u.end - u.start;
        (s + d * f64::from(u.sentiment), w + d)
    });
    if w > 0.0 {
        (sum / w) as f32
    } else {
        0.0
    }
}

fn swings(said: &[Said]) -> u32 {
    let mut last: Option<bool> = None;
    let mut n = 0;
    for s in said {
        let polar = if s.sentiment <= NEGATIVE_VALENCE {
            Some(false)
        } else if s.sentiment >= POSITIVE_VALENCE {
            Some(true)
        } else {
            None
        };
        if let Some(p) = polar {
            if last.is_some_and(|l| l != p) {
                n += 1;
            }
            last = Some(p);
        }
    }
    n
}

fn round2(x: f32) -> f32 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(sentiments: &[f32]) -> JourneyTracker {
        let mut j = JourneyTracker::new(0.25, 20.0);
        for (i, &s) in sentiments.iter().enumerate() {
            let t = i as f64 * 10.0;
            j.on_utterance(t, t + 4.0, s);
        }
        j
    }

    #[test]
    fn labels_follow_the_documented_bands() {
        // Angry opening, thankful close. Five utterances of 4 s: a quarter is 5 s, all of the
        // first and 1 s of the second (and of the fourth for the closing):
        // opening (4 × −0.7 + 1 × −0.5) / 5 = −0.66, closing (4 × 0.6 + 1 × 0.2) / 5 = 0.52,
        // (0.52 − (−0.66)) / 2 = 0.59 → 59 → improving.
        let j = call(&[-0.7, -0.5, 0.0, 0.2, 0.6]).journey().unwrap();
        assert_eq!(j.label, Some(JourneyLabel::Improving));
        assert_eq!(j.trend, Some(59.0));
        assert_eq!(j.opening_sentiment, Some(-0.66));
        assert_eq!(j.closing_sentiment, Some(0.52));
        assert_eq!((j.opening_utterances, j.closing_utterances), (2, 2));
        assert_eq!(
            call(&[0.4, 0.0, -0.6]).label(),
            Some(JourneyLabel::Worsening)
        );
        // (0.1 − 0.0) / 2 = 5 → steady.
        assert_eq!(call(&[0.0, 0.3, 0.1]).label(), Some(JourneyLabel::Steady));
        // Exactly on the band edge: 0.4/2 = 20 → improving.
        assert_eq!(call(&[0.0, 0.4]).label(), Some(JourneyLabel::Improving));
    }

    fn timed(said: &[(f64, f64, f32)]) -> Journey {
        let mut j = JourneyTracker::new(0.25, 20.0);
        for &(a, b, s) in said {
            j.on_utterance(a, b, s);
        }
        j.journey().unwrap()
    }

    #[test]
    fn one_long_early_utterance_does_not_make_up_the_closing_part() {
        // 20 s of venting, then "Okay." and a thankful close (the reviewer's call): a quarter
        // of the 23.5 s is 5.9 s, inside the rant for the opening; the rant is the opening's
        // only utterance, so the closing is the two short ones.
        let j = timed(&[(2.5, 22.5, -0.98), (26.5, 28.0, 0.23), (33.5, 35.5, 0.88)]);
        assert_eq!(
            (j.opening_utterances, j.closing_utterances),
            (1, 2),
            "{j:?}"
        );
        assert_eq!(j.opening_sentiment, Some(-0.98));
        // (1.5 × 0.23 + 2 × 0.88) / 3.5 = 0.60.
        assert_eq!(j.closing_sentiment, Some(0.6));
        assert_eq!(j.label, Some(JourneyLabel::Improving), "{j:?}");
        // The mirror image: a long closing rant after two friendly lines.
        let j = timed(&[(0.0, 1.5, 0.23), (3.0, 5.0, 0.88), (6.0, 26.0, -0.98)]);
        assert_eq!(
            (j.opening_utterances, j.closing_utterances),
            (2, 1),
            "{j:?}"
        );
        assert_eq!(j.label, Some(JourneyLabel::Worsening), "{j:?}");
    }

    #[test]
    fn the_boundary_utterance_counts_with_its_seconds_inside_the_part() {
        // 24 s of speech, a quarter = 6 s: the 2 s opener and the first 4 s of the second
        // utterance: (2 × −0.8 + 4 × 0.8) / 6 = 0.27 (its whole 10 s would give 0.53).
        let j = timed(&[
            (0.0, 2.0, -0.8),
            (5.0, 15.0, 0.8),
            (20.0, 30.0, 0.0),
            (35.0, 37.0, 0.0),
        ]);
        assert_eq!(j.opening_sentiment, Some(0.27), "{j:?}");
        assert_eq!(j.closing_sentiment, Some(0.0), "{j:?}");
        assert_eq!((j.opening_utterances, j.closing_utterances), (2, 2));
    }

    #[test]
    fn stress_is_read_over_the_clipped_part() {
        let mut j = JourneyTracker::new(0.25, 20.0);
        j.on_utterance(0.0, 20.0, 0.0);
        j.on_utterance(21.0, 23.0, 0.0);
        j.on_utterance(24.0, 26.0, 0.0);
        for k in 0..60 {
            let t = k as f64 * 0.5;
            // Calm for the first 6 s of the long utterance, stressed for its rest.
            j.on_stress(t, if t <= 6.0 { 0.2 } else { 0.9 });
        }
        let got = j.journey().unwrap();
        // Opening: the first 6 s (a quarter of 24 s) of the long utterance only.
        assert_eq!(got.opening_stress, Some(0.2), "{got:?}");
        assert_eq!(got.closing_stress, Some(0.9), "{got:?}");
    }

    #[test]
    fn one_utterance_has_no_label_and_no_speech_no_journey() {
        assert_eq!(call(&[-0.9]).label(), None);
        assert!(call(&[-0.9]).journey().unwrap().trend.is_none());
        assert!(call(&[]).journey().is_none());
    }

    #[test]
    fn stress_falling_counts_as_improvement() {
        let mut j = call(&[0.0, 0.0, 0.0, 0.0]);
        for k in 0..80 {
            let t = k as f64 * 0.5;
            // High stress during the first utterance (0–4 s), calm in the last (30–34 s).
            j.on_stress(t, if t < 5.0 { 0.9 } else { 0.2 });
        }
        let got = j.journey().unwrap();
        assert_eq!(got.opening_stress, Some(0.9));
        assert_eq!(got.closing_stress, Some(0.2));
        // Mean of 0 (sentiment) and 70 (stress) = 35.
        assert_eq!(got.trend, Some(35.0));
        assert_eq!(got.label, Some(JourneyLabel::Improving));
    }

    #[test]
    fn swings_count_polarity_flips_skipping_neutral() {
        assert_eq!(
            call(&[-0.5, 0.0, 0.5, -0.4, -0.6, 0.1])
                .journey()
                .unwrap()
                .swings,
            2
        );
    }

    #[test]
    fn stress_readings_are_thinned() {
        let mut j = call(&[0.0]);
        for k in 0..100 {
            j.on_stress(k as f64 * 0.1, 0.5);
        }
        assert!((18..=20).contains(&j.stress.len()), "{}", j.stress.len());
    }
}
