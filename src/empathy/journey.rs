//! The customer's emotional journey: how the call opened vs how it closed.
//!
//! Definition (after AWS's post-call sample, which compares the last quarter of a call with
//! the rest, and Genesys's trend `(end − start) / 2` with ±20 bands on a −100..100 scale):
//! * **opening / closing** = the customer's transcribed utterances covering the first /
//!   the last `journey_part` (default a quarter) of the customer's *speech time*, at least
//!   one utterance each. Speech time, not call time: hold music and agent monologues do not
//!   shift the parts, and a quarter of a short demo call is still one or two utterances.
//! * `opening_sentiment` / `closing_sentiment`: duration-weighted mean VADER compound of
//!   those utterances; `opening_stress` / `closing_stress`: mean of the customer's live
//!   stress readings within their time spans.
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
        let total: f64 = said.iter().map(|s| s.end - s.start).sum();
        let budget = self.part * total;
        let mut n_open = 0;
        let mut cum = 0.0;
        for s in &said {
            if n_open > 0 && cum >= budget {
                break;
            }
            cum += s.end - s.start;
            n_open += 1;
        }
        let mut n_close = 0;
        cum = 0.0;
        for s in said.iter().rev() {
            if n_close > 0 && cum >= budget {
                break;
            }
            cum += s.end - s.start;
            n_close += 1;
        }
        let opening = &said[..n_open];
        let closing = &said[said.len() - n_close..];
        let comparable = said.len() >= 2;
        let opening_sentiment = weighted_sentiment(opening);
        let closing_sentiment = weighted_sentiment(closing);
        let opening_stress = self.mean_stress(opening);
        let closing_stress = self.mean_stress(closing);
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
        let (a, b) = (part.first()?.start, part.last()?.end);
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
        // Angry opening (first two of five equal utterances cover a quarter), thankful close:
        // (0.4 − (−0.6)) / 2 = 0.5 → 50 → improving.
        let j = call(&[-0.7, -0.5, 0.0, 0.2, 0.6]).journey().unwrap();
        assert_eq!(j.label, Some(JourneyLabel::Improving));
        assert_eq!(j.trend, Some(50.0));
        assert_eq!(j.opening_sentiment, Some(-0.6));
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
