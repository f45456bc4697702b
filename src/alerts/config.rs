//! Alert thresholds, sustain windows and cooldowns (`[alerts]` in the config file).
//!
//! Every rule has `enabled` and `cooldown_s`: after a rule fires, it stays silent for
//! `cooldown_s` seconds of call time, and (for level rules) until its condition has released.

use serde::{Deserialize, Serialize};

use crate::emotion::phrases::{DEFAULT_LEGAL_PHRASES, DEFAULT_PHRASES};

/// A config value outside its allowed range, named by its key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AlertConfigError {
    #[error("alerts.{key} = {value}: {expected}")]
    OutOfRange {
        key: &'static str,
        value: f64,
        expected: &'static str,
    },
}

/// All alert rules.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertConfig {
    pub customer_stress: StressRule,
    pub negative_sentiment: SentimentRule,
    pub escalation_phrase: PhraseRule,
    pub overtalk: OvertalkRule,
    pub long_silence: SilenceRule,
    pub agent_speaking_rate: SpeakingRateRule,
}

/// `customer_stress`: the customer's stress (0..1, relative to their own baseline) stays high.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StressRule {
    /// Default: `true`.
    pub enabled: bool,
    /// Stress at or above this is high (0..1). Default: `0.7`.
    pub threshold: f32,
    /// Stress below this ends an episode, re-arming the rule (hysteresis; 0..1, ≤ `threshold`).
    /// Default: `0.5`.
    pub release: f32,
    /// How long stress must stay high before the alert fires, seconds. Default: `3.0`.
    pub sustain_s: f64,
    /// Longest stretch of middling readings (between `release` and `threshold`) since the
    /// last high one that does not break a high run, seconds. Default: `1.0`.
    pub gap_tolerance_s: f64,
    /// Longest pause (no reading: the customer is silent between sentences) since the last
    /// high reading that does not break a high run, seconds. Default: `3.0`.
    pub pause_tolerance_s: f64,
    /// An episode also ends after this long without any reading ≥ `release` (the customer
    /// went quiet), seconds. Default: `15.0`.
    pub idle_release_s: f64,
    /// Mean stress over the run at or above this makes the alert `critical`, else `warning`.
    /// Default: `0.9`.
    pub critical: f32,
    /// Seconds after an alert before the next one of this kind. Default: `60.0`.
    pub cooldown_s: f64,
}

impl Default for StressRule {
    fn default() -> Self {
        Self {
            enabled: true,
            threshold: 0.7,
            release: 0.5,
            sustain_s: 3.0,
            gap_tolerance_s: 1.0,
            pause_tolerance_s: 3.0,
            idle_release_s: 15.0,
            critical: 0.9,
            cooldown_s: 60.0,
        }
    }
}

/// `negative_sentiment`: the customer's recent utterances read negative.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SentimentRule {
    /// Default: `true`.
    pub enabled: bool,
    /// An utterance is negative when its VADER compound score is at or below this (−1..1).
    /// Default: `-0.5`.
    pub threshold: f32,
    /// How many of the customer's latest transcribed utterances are considered. Default: `3`.
    pub window: usize,
    /// How many of them must be negative, the latest included. Default: `2`.
    pub min_negative: usize,
    /// Seconds after an alert before the next one of this kind. Default: `60.0`.
    pub cooldown_s: f64,
}

impl Default for SentimentRule {
    fn default() -> Self {
        Self {
            enabled: true,
            threshold: -0.5,
            window: 3,
            min_negative: 2,
            cooldown_s: 60.0,
        }
    }
}

/// `escalation_phrase`: the customer says a configured phrase ("cancel", "supervisor", …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PhraseRule {
    /// Default: `true`.
    pub enabled: bool,
    /// Phrases that raise a `warning`. Default: cancel, cancel my account, close my account,
    /// supervisor, manager, complaint, speak to someone, real person, refund, ridiculous,
    /// unacceptable, … (see `emotion::phrases::DEFAULT_PHRASES`).
    pub phrases: Vec<String>,
    /// Phrases that raise a `critical` alert. Default: lawyer, attorney, legal action,
    /// "going to sue", … (see `emotion::phrases::DEFAULT_LEGAL_PHRASES`).
    pub critical_phrases: Vec<String>,
    /// Also spot phrases in the agent's speech. Default: `false`.
    pub include_agent: bool,
    /// Skip matches in "I don't want to cancel"-style negations. Default: `true`.
    pub ignore_negated: bool,
    /// Seconds after an alert before the next one of this kind; a `critical` phrase still
    /// fires during the cooldown of a `warning`. Default: `60.0`.
    pub cooldown_s: f64,
}

impl Default for PhraseRule {
    fn default() -> Self {
        Self {
            enabled: true,
            phrases: DEFAULT_PHRASES.iter().map(|s| s.to_string()).collect(),
            critical_phrases: DEFAULT_LEGAL_PHRASES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            include_agent: false,
            ignore_negated: true,
            cooldown_s: 60.0,
        }
    }
}

/// `overtalk`: customer and agent speak at the same time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OvertalkRule {
    /// Default: `true`.
    pub enabled: bool,
    /// Continuous overlap longer than this fires, seconds. Default: `1.5`.
    pub min_s: f64,
    /// A break in the overlap up to this long does not end it (VAD flicker), seconds.
    /// Default: `0.2`.
    pub gap_tolerance_s: f64,
    /// Seconds after an alert before the next one of this kind. Default: `60.0`.
    pub cooldown_s: f64,
}

impl Default for OvertalkRule {
    fn default() -> Self {
        Self {
            enabled: true,
            min_s: 1.5,
            gap_tolerance_s: 0.2,
            cooldown_s: 60.0,
        }
    }
}

/// `long_silence`: nobody speaks (dead air), counted from the call start too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SilenceRule {
    /// Default: `true`.
    pub enabled: bool,
    /// Silence longer than this fires, seconds. Default: `10.0`.
    pub min_s: f64,
    /// Seconds after an alert before the next one of this kind. Default: `60.0`.
    pub cooldown_s: f64,
}

impl Default for SilenceRule {
    fn default() -> Self {
        Self {
            enabled: true,
            min_s: 10.0,
            cooldown_s: 60.0,
        }
    }
}

/// `agent_speaking_rate`: the agent talks too fast (words per second of the agent's speech).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpeakingRateRule {
    /// Default: `true`.
    pub enabled: bool,
    /// Rate above this fires, words per second of speech. Default: `3.5`.
    pub threshold_wps: f32,
    /// Rate below this ends an episode (hysteresis), words/s. Default: `3.0`.
    pub release_wps: f32,
    /// The rate is measured over the agent's speech in the last `window_s` seconds. Default: `20.0`.
    pub window_s: f64,
    /// No verdict until the agent has spoken this long within the window, seconds (one quick
    /// "thank you for calling" is not a habit). Default: `8.0`.
    pub min_speech_s: f64,
    /// Seconds after an alert before the next one of this kind. Default: `60.0`.
    pub cooldown_s: f64,
}

impl Default for SpeakingRateRule {
    fn default() -> Self {
        Self {
            enabled: true,
            threshold_wps: 3.5,
            release_wps: 3.0,
            window_s: 20.0,
            min_speech_s: 8.0,
            cooldown_s: 60.0,
        }
    }
}

impl AlertConfig {
    /// Checks ranges and orderings; the error names the offending key.
    pub fn validate(&self) -> Result<(), AlertConfigError> {
        fn check(
            key: &'static str,
            value: f64,
            ok: bool,
            expected: &'static str,
        ) -> Result<(), AlertConfigError> {
            if ok && value.is_finite() {
                Ok(())
            } else {
                Err(AlertConfigError::OutOfRange {
                    key,
                    value,
                    expected,
                })
            }
        }
        let nonneg = "expected a number ≥ 0";
        let s = &self.customer_stress;
        let unit = |v: f32| (0.0..=1.0).contains(&v);
        check(
            "customer_stress.threshold",
            s.threshold.into(),
            unit(s.threshold),
            "expected 0..1",
        )?;
        check(
            "customer_stress.release",
            s.release.into(),
            unit(s.release) && s.release <= s.threshold,
            "expected 0..1 and ≤ customer_stress.threshold",
        )?;
        check(
            "customer_stress.critical",
            s.critical.into(),
            unit(s.critical),
            "expected 0..1",
        )?;
        check(
            "customer_stress.sustain_s",
            s.sustain_s,
            s.sustain_s >= 0.0,
            nonneg,
        )?;
        check(
            "customer_stress.gap_tolerance_s",
            s.gap_tolerance_s,
            s.gap_tolerance_s >= 0.0,
            nonneg,
        )?;
        check(
            "customer_stress.pause_tolerance_s",
            s.pause_tolerance_s,
            s.pause_tolerance_s >= 0.0,
            nonneg,
        )?;
        check(
            "customer_stress.idle_release_s",
            s.idle_release_s,
            s.idle_release_s >= s.gap_tolerance_s.max(s.pause_tolerance_s),
            "expected ≥ customer_stress.gap_tolerance_s and pause_tolerance_s",
        )?;
        check(
            "customer_stress.cooldown_s",
            s.cooldown_s,
            s.cooldown_s >= 0.0,
            nonneg,
        )?;

        let n = &self.negative_sentiment;
        check(
            "negative_sentiment.threshold",
            n.threshold.into(),
            (-1.0..=1.0).contains(&n.threshold),
            "expected −1..1",
        )?;
        check(
            "negative_sentiment.window",
            n.window as f64,
            (1..=100).contains(&n.window),
            "expected 1..100",
        )?;
        check(
            "negative_sentiment.min_negative",
            n.min_negative as f64,
            n.min_negative >= 1 && n.min_negative <= n.window,
            "expected 1..=negative_sentiment.window",
        )?;
        check(
            "negative_sentiment.cooldown_s",
            n.cooldown_s,
            n.cooldown_s >= 0.0,
            nonneg,
        )?;

        let p = &self.escalation_phrase;
        check(
            "escalation_phrase.cooldown_s",
            p.cooldown_s,
            p.cooldown_s >= 0.0,
            nonneg,
        )?;

        let o = &self.overtalk;
        check("overtalk.min_s", o.min_s, o.min_s >= 0.0, nonneg)?;
        check(
            "overtalk.gap_tolerance_s",
            o.gap_tolerance_s,
            o.gap_tolerance_s >= 0.0,
            nonneg,
        )?;
        check(
            "overtalk.cooldown_s",
            o.cooldown_s,
            o.cooldown_s >= 0.0,
            nonneg,
        )?;

        let l = &self.long_silence;
        check(
            "long_silence.min_s",
            l.min_s,
            l.min_s > 0.0,
            "expected a number > 0",
        )?;
        check(
            "long_silence.cooldown_s",
            l.cooldown_s,
            l.cooldown_s >= 0.0,
            nonneg,
        )?;

        let r = &self.agent_speaking_rate;
        check(
            "agent_speaking_rate.threshold_wps",
            r.threshold_wps.into(),
            r.threshold_wps > 0.0,
            "expected a number > 0",
        )?;
        check(
            "agent_speaking_rate.release_wps",
            r.release_wps.into(),
            r.release_wps >= 0.0 && r.release_wps <= r.threshold_wps,
            "expected 0..=agent_speaking_rate.threshold_wps",
        )?;
        check(
            "agent_speaking_rate.window_s",
            r.window_s,
            r.window_s > 0.0,
            "expected a number > 0",
        )?;
        check(
            "agent_speaking_rate.min_speech_s",
            r.min_speech_s,
            r.min_speech_s > 0.0 && r.min_speech_s <= r.window_s,
            "expected 0 < min_speech_s ≤ agent_speaking_rate.window_s",
        )?;
        check(
            "agent_speaking_rate.cooldown_s",
            r.cooldown_s,
            r.cooldown_s >= 0.0,
            nonneg,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_load_from_partial_toml() {
        AlertConfig::default().validate().unwrap();
        let cfg: AlertConfig =
            toml::from_str("[customer_stress]\nthreshold = 0.8\n[long_silence]\nenabled = false\n")
                .unwrap();
        assert_eq!(cfg.customer_stress.threshold, 0.8);
        assert_eq!(cfg.customer_stress.release, 0.5);
        assert!(!cfg.long_silence.enabled);
        assert!(cfg.overtalk.enabled);
        cfg.validate().unwrap();
    }

    #[test]
    fn validation_names_the_key() {
        let mut cfg = AlertConfig::default();
        cfg.customer_stress.release = 0.8;
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("alerts.customer_stress.release"), "{e}");
        let mut cfg = AlertConfig::default();
        cfg.negative_sentiment.min_negative = 4;
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("min_negative"));
        assert!(toml::from_str::<AlertConfig>("[overtalk]\nmin = 1").is_err());
    }
}
