//! Emotion: text sentiment, escalation phrases, and the explainable fusion of stress,
//! arousal and valence into a label.
//!
//! Compliance (ARCHITECTURE.md "Speakers and compliance"): callers run [`emotion_label`] for
//! the customer only, unless agent emotion inference has been lawfully enabled.

pub mod arousal;
pub mod phrases;
pub mod sentiment;

pub use phrases::{PhraseMatch, PhraseMatcher};
pub use sentiment::{Scores, SentimentAnalyzer};

/// Activation (max of stress and arousal, 0..1) at or above this is high.
pub const HIGH_ACTIVATION: f32 = 0.7;
/// Activation at or above this (and below [`HIGH_ACTIVATION`]) is moderate; below it, low.
pub const MODERATE_ACTIVATION: f32 = 0.4;
/// Valence (VADER compound, −1..1) at or below this is negative.
pub const NEGATIVE_VALENCE: f32 = -0.3;
/// Valence at or above this is positive.
pub const POSITIVE_VALENCE: f32 = 0.3;

/// A coarse, explainable emotion label from activation and valence.
///
/// Activation is the larger of `stress` (0..1, relative to the speaker's baseline) and
/// `arousal` (P(high arousal), 0..1), whichever are known; valence is text sentiment (−1..1),
/// neutral when unknown.
///
/// | activation \ valence | negative       | neutral / unknown | positive    |
/// |----------------------|----------------|-------------------|-------------|
/// | high (≥ 0.7)         | `angry`        | `anxious`         | `excited`   |
/// | moderate (0.4..0.7)  | `frustrated`   | `neutral`         | `satisfied` |
/// | low (< 0.4)          | `dissatisfied` | `calm`            | `satisfied` |
/// | unknown              | `dissatisfied` | none              | `satisfied` |
///
/// Returns `None` when nothing is known, or only a neutral/unknown valence.
pub fn emotion_label(
    stress: Option<f32>,
    arousal: Option<f32>,
    valence: Option<f32>,
) -> Option<&'static str> {
    let finite = |x: Option<f32>| x.filter(|v| v.is_finite());
    let activation = match (finite(stress), finite(arousal)) {
        (Some(s), Some(a)) => Some(s.max(a)),
        (s, a) => s.or(a),
    };
    let valence = finite(valence);
    let negative = valence.is_some_and(|v| v <= NEGATIVE_VALENCE);
    let positive = valence.is_some_and(|v| v >= POSITIVE_VALENCE);
    Some(match activation {
        Some(a) if a >= HIGH_ACTIVATION => {
            if negative {
                "angry"
            } else if positive {
                "excited"
            } else {
                "anxious"
            }
        }
        Some(a) if a >= MODERATE_ACTIVATION => {
            if negative {
                "frustrated"
            } else if positive {
                "satisfied"
            } else {
                "neutral"
            }
        }
        Some(_) => {
            if negative {
                "dissatisfied"
            } else if positive {
                "satisfied"
            } else {
                "calm"
            }
        }
        None if negative => "dissatisfied",
        None if positive => "satisfied",
        None => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_the_table() {
        assert_eq!(emotion_label(Some(0.85), None, Some(-0.6)), Some("angry"));
        assert_eq!(
            emotion_label(Some(0.5), Some(0.3), Some(-0.4)),
            Some("frustrated")
        );
        assert_eq!(
            emotion_label(Some(0.8), Some(0.9), Some(0.0)),
            Some("anxious")
        );
        assert_eq!(emotion_label(None, Some(0.9), None), Some("anxious"));
        assert_eq!(emotion_label(Some(0.75), None, Some(0.8)), Some("excited"));
        assert_eq!(
            emotion_label(Some(0.2), Some(0.1), Some(0.7)),
            Some("satisfied")
        );
        assert_eq!(emotion_label(Some(0.2), None, None), Some("calm"));
        assert_eq!(emotion_label(Some(0.55), None, Some(0.1)), Some("neutral"));
        assert_eq!(
            emotion_label(Some(0.1), None, Some(-0.5)),
            Some("dissatisfied")
        );
    }

    #[test]
    fn activation_is_the_larger_of_stress_and_arousal() {
        // Low stress but high arousal still reads as high activation.
        assert_eq!(
            emotion_label(Some(0.1), Some(0.8), Some(-0.5)),
            Some("angry")
        );
    }

    #[test]
    fn thresholds_are_inclusive_and_unknowns_are_handled() {
        assert_eq!(emotion_label(Some(0.7), None, Some(-0.3)), Some("angry"));
        assert_eq!(emotion_label(Some(0.4), None, Some(0.3)), Some("satisfied"));
        assert_eq!(emotion_label(Some(0.39), None, Some(0.29)), Some("calm"));
        assert_eq!(emotion_label(None, None, None), None);
        assert_eq!(emotion_label(None, None, Some(0.0)), None);
        assert_eq!(emotion_label(None, None, Some(0.6)), Some("satisfied"));
        assert_eq!(emotion_label(Some(f32::NAN), None, None), None);
    }
}
