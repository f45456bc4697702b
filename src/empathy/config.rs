//! `[empathy]` and `[scorecard]` in the config file: the agent behaviour phrase sets, the
//! empathy-opportunity bookkeeping, the customer journey and the QA scorecard.
//!
//! Compliance: behaviours are a reading of the agent's *words*, not emotion inference on the
//! agent, so they stay on in the default mode (`pipeline.agent_emotion = false`). Sites whose
//! works council rules out per-agent scoring set `empathy.agent_scoring = false`: then agent
//! utterances carry no behaviours and calls have no empathy events, no `empathy_missed`
//! alerts and no scorecard; the customer's journey is still reported.

use serde::{Deserialize, Serialize};

/// A config value outside its allowed range, named by its key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EmpathyConfigError {
    #[error("{key} = {value}: {expected}")]
    OutOfRange {
        key: &'static str,
        value: f64,
        expected: &'static str,
    },
}

/// Validating the customer's feelings ("I understand how frustrating", "I can see why").
pub const DEFAULT_ACKNOWLEDGE: &[&str] = &[
    "I understand",
    "understand how",
    "understand why",
    "understand your",
    "completely understand",
    "totally understand",
    "I can see why",
    "I can see how",
    "I see why",
    "I can imagine",
    "can't imagine how",
    "I hear you",
    "I know how frustrating",
    "I know how annoying",
    "that must be frustrating",
    "that must be annoying",
    "that must be upsetting",
    "that must be stressful",
    "that must be difficult",
    "that must be hard",
    "that must be awful",
    "that must have been",
    "must be so frustrating",
    "must be really frustrating",
    "must be really annoying",
    "must be really hard",
    "must be really stressful",
    "sounds frustrating",
    "sounds really frustrating",
    "sounds so frustrating",
    "that sounds stressful",
    "that sounds difficult",
    "that sounds awful",
    "I'd be frustrated too",
    "I would be frustrated",
    "I'd feel the same",
    "I would feel the same",
    "you have every right",
    "that's understandable",
    "completely understandable",
    "totally understandable",
    "it's understandable",
    "thank you for your patience",
    "I appreciate your patience",
    "I appreciate how",
    "I get why",
    "I get how",
    "no wonder you",
    "of course you're upset",
    "of course you are upset",
];

/// Apologising ("I'm sorry", "I apologise", "my apologies"). A bare "sorry" is left out: as
/// "sorry, could you repeat that?" it is a repair request, not an apology.
pub const DEFAULT_APOLOGISE: &[&str] = &[
    "I'm sorry",
    "I am sorry",
    "I'm so sorry",
    "I'm really sorry",
    "I'm very sorry",
    "I am so sorry",
    "I am really sorry",
    "I am very sorry",
    "we're sorry",
    "we are sorry",
    "so sorry about",
    "so sorry for",
    "sorry about that",
    "sorry about this",
    "sorry for the",
    "sorry for that",
    "sorry for this",
    "sorry to hear",
    "I apologise",
    "we apologise",
    "I do apologise",
    "my apologies",
    "our apologies",
    "apologies for",
    "please accept our apologies",
    "can't apologise enough",
];

/// Taking ownership ("I'll make sure", "let me fix", "I will take care of").
pub const DEFAULT_COMMIT: &[&str] = &[
    "I'll make sure",
    "I will make sure",
    "I'm going to make sure",
    "let me make sure",
    "let me fix",
    "I'll fix",
    "I will fix",
    "I'm going to fix",
    "let me sort",
    "I'll sort",
    "I will sort",
    "I'll take care",
    "I will take care",
    "let me take care",
    "I'll personally",
    "I will personally",
    "I'll resolve",
    "I will resolve",
    "I'll get this fixed",
    "I'll get that fixed",
    "I'll get this sorted",
    "I'll follow up",
    "I will follow up",
    "I'll call you back",
    "I will call you back",
    "I'll refund",
    "I will refund",
    "I'll credit",
    "I will credit",
    "I'll reverse",
    "I will reverse",
    "let me look into",
    "I'll look into",
    "I will look into",
    "let me see what I can do",
    "I promise",
    "I'll stay with you",
];

/// Unhelpful answers ("calm down", "there's nothing I can do", "that's our policy") and
/// blaming the customer ("you should have read the terms", "as I already told you"). Only the
/// blaming forms of "you should have" and "I said" are listed: "you should have received the
/// refund, I apologise", "there's no way you should have been charged" and "like I said, I
/// understand" are empathic, and a dismissal outranks an apology in the same utterance.
pub const DEFAULT_DISMISS: &[&str] = &[
    "calm down",
    "just relax",
    "nothing I can do",
    "nothing we can do",
    "nothing else I can do",
    "can't do anything",
    "not my problem",
    "not my fault",
    "not our fault",
    "not our problem",
    "that's our policy",
    "that's the policy",
    "it's our policy",
    "it's the policy",
    "that is our policy",
    "that is the policy",
    "company policy",
    "you should have read",
    "you should have checked",
    "you should have called",
    "you should have contacted",
    "you should have told us",
    "you should have known",
    "you should have listened",
    "you should have paid",
    "you should have kept",
    "you should have done",
    "you should have asked",
    "you should have waited",
    "you should have followed",
    "you should have looked",
    "you should have noticed",
    "you should have saved",
    "you should have cancelled",
    "you should have returned",
    "you should have updated",
    "you should have thought",
    "you should've read",
    "you should've checked",
    "you should've called",
    "you should've told us",
    "you should've known",
    "you should've listened",
    "you should've paid",
    "you should've kept",
    "you should've done",
    "you should've asked",
    "you should've waited",
    "you should've followed",
    "you should've looked",
    "you should've noticed",
    "you should've saved",
    "you should've cancelled",
    "you should've returned",
    "you should've updated",
    "you should've thought",
    "there's no way I can",
    "there is no way I can",
    "you need to calm",
    "you're overreacting",
    "you are overreacting",
    "no need to shout",
    "stop shouting",
    "stop yelling",
    "as I already said",
    "as I said before",
    "like I already said",
    "I already told you",
    "I've already told you",
    "as I already told you",
    "I told you already",
    "deal with it",
    "read the terms",
    "it's in the contract",
    "take it or leave it",
    "that's just how it is",
    "that's how it works",
];

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// `[empathy]`: agent behaviours, empathy opportunities and the customer journey.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmpathyConfig {
    /// Per-agent scoring: behaviours on agent utterances, `empathy` events, the
    /// `empathy_missed` alert and the scorecard. Default `true` (it reads words, not the
    /// agent's emotion); `false` for sites whose works council rules it out.
    pub agent_scoring: bool,
    /// Phrases that acknowledge the customer's feelings. Default: [`DEFAULT_ACKNOWLEDGE`].
    pub acknowledge: Vec<String>,
    /// Apology phrases. Default: [`DEFAULT_APOLOGISE`].
    pub apologise: Vec<String>,
    /// Ownership phrases. Default: [`DEFAULT_COMMIT`].
    pub commit: Vec<String>,
    /// Dismissive phrases. Default: [`DEFAULT_DISMISS`].
    pub dismiss: Vec<String>,
    /// An agent utterance starting this long after the distress moment still answers it,
    /// seconds. Default `15.0`.
    pub window_s: f64,
    /// A customer utterance with sentiment (VADER compound) at or below this is a distress
    /// moment on its own (−1..0). Default `-0.6`.
    pub negative_sentiment: f32,
    /// Distress moments less than this apart belong to one episode (one opportunity),
    /// seconds. Default `30.0`.
    pub episode_gap_s: f64,
    /// How long after the response (or the end of the window) the customer's stress may take
    /// to come back under `alerts.customer_stress.release`, seconds. Default `60.0`.
    pub recovery_s: f64,
    /// Live stress readings must stay under the release level this long to count as
    /// recovered (pauses do not break it; a reading above does), seconds. Default `2.0`.
    pub recovery_hold_s: f64,
    /// Raise an `empathy_missed` alert (info) when an opportunity is missed or harmed.
    /// Default `true`.
    pub missed_alert: bool,
    /// Opening and closing share of the customer's transcribed speech time for the journey
    /// (0.05..0.5). Default `0.25` (the first and the last quarter).
    pub journey_part: f64,
    /// Journey trend (−100..100) at or above this is `improving`, at or below minus this
    /// `worsening`, else `steady`. Default `20.0`.
    pub journey_threshold: f64,
}

impl Default for EmpathyConfig {
    fn default() -> Self {
        Self {
            agent_scoring: true,
            acknowledge: strings(DEFAULT_ACKNOWLEDGE),
            apologise: strings(DEFAULT_APOLOGISE),
            commit: strings(DEFAULT_COMMIT),
            dismiss: strings(DEFAULT_DISMISS),
            window_s: 15.0,
            negative_sentiment: -0.6,
            episode_gap_s: 30.0,
            recovery_s: 60.0,
            recovery_hold_s: 2.0,
            missed_alert: true,
            journey_part: 0.25,
            journey_threshold: 20.0,
        }
    }
}

fn check(
    key: &'static str,
    value: f64,
    ok: bool,
    expected: &'static str,
) -> Result<(), EmpathyConfigError> {
    if ok && value.is_finite() {
        Ok(())
    } else {
        Err(EmpathyConfigError::OutOfRange {
            key,
            value,
            expected,
        })
    }
}

impl EmpathyConfig {
    /// Checks ranges once at load.
    pub fn validate(&self) -> Result<(), EmpathyConfigError> {
        check(
            "empathy.window_s",
            self.window_s,
            (1.0..=120.0).contains(&self.window_s),
            "expected 1..=120 s",
        )?;
        let ns = f64::from(self.negative_sentiment);
        check(
            "empathy.negative_sentiment",
            ns,
            (-1.0..=0.0).contains(&ns),
            "expected -1..=0",
        )?;
        check(
            "empathy.episode_gap_s",
            self.episode_gap_s,
            (0.0..=600.0).contains(&self.episode_gap_s),
            "expected 0..=600 s",
        )?;
        check(
            "empathy.recovery_s",
            self.recovery_s,
            (1.0..=600.0).contains(&self.recovery_s),
            "expected 1..=600 s",
        )?;
        check(
            "empathy.recovery_hold_s",
            self.recovery_hold_s,
            (0.0..=60.0).contains(&self.recovery_hold_s),
            "expected 0..=60 s",
        )?;
        check(
            "empathy.journey_part",
            self.journey_part,
            (0.05..=0.5).contains(&self.journey_part),
            "expected 0.05..=0.5",
        )?;
        check(
            "empathy.journey_threshold",
            self.journey_threshold,
            (0.0..=100.0).contains(&self.journey_threshold),
            "expected 0..=100",
        )
    }
}

/// `[scorecard]`: the QA scorecard, scored 0–100 per call over the applicable criteria.
/// A criterion with weight 0 is left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScorecardConfig {
    /// Default `true` (and only with `empathy.agent_scoring`).
    pub enabled: bool,
    pub empathy: EmpathyCriterion,
    pub no_dismissive: DismissCriterion,
    pub journey: JourneyCriterion,
    pub overtalk: OvertalkCriterion,
    pub silence: SilenceCriterion,
    pub speaking_rate: RateCriterion,
    pub escalation: EscalationCriterion,
}

impl Default for ScorecardConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            empathy: EmpathyCriterion { weight: 30.0 },
            no_dismissive: DismissCriterion {
                weight: 20.0,
                max_dismissals: 0,
            },
            journey: JourneyCriterion { weight: 15.0 },
            overtalk: OvertalkCriterion {
                weight: 10.0,
                max_s: 10.0,
            },
            silence: SilenceCriterion {
                weight: 5.0,
                max_long_silences: 0,
            },
            speaking_rate: RateCriterion {
                weight: 5.0,
                min_wps: 1.5,
                max_wps: 3.5,
            },
            escalation: EscalationCriterion { weight: 15.0 },
        }
    }
}

/// `empathy_met`: share of empathy opportunities met; not applicable without one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmpathyCriterion {
    /// Default `30`.
    pub weight: f64,
}
impl Default for EmpathyCriterion {
    fn default() -> Self {
        ScorecardConfig::default().empathy
    }
}

/// `no_dismissive`: the agent's dismissive phrases; applicable once the agent has spoken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DismissCriterion {
    /// Default `20`.
    pub weight: f64,
    /// Dismissive phrases allowed before the criterion scores 0. Default `0`.
    pub max_dismissals: u32,
}
impl Default for DismissCriterion {
    fn default() -> Self {
        ScorecardConfig::default().no_dismissive
    }
}

/// `journey_not_worsening`: the customer's journey label is not `worsening`; applicable
/// when the journey has a label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JourneyCriterion {
    /// Default `15`.
    pub weight: f64,
}
impl Default for JourneyCriterion {
    fn default() -> Self {
        ScorecardConfig::default().journey
    }
}

/// `overtalk`: total over-talk within the limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OvertalkCriterion {
    /// Default `10`.
    pub weight: f64,
    /// Most seconds of over-talk in a call for full points. Default `10.0`.
    pub max_s: f64,
}
impl Default for OvertalkCriterion {
    fn default() -> Self {
        ScorecardConfig::default().overtalk
    }
}

/// `long_silences`: `long_silence` alerts within the limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SilenceCriterion {
    /// Default `5`.
    pub weight: f64,
    /// Most `long_silence` alerts in a call for full points. Default `0`.
    pub max_long_silences: u32,
}
impl Default for SilenceCriterion {
    fn default() -> Self {
        ScorecardConfig::default().silence
    }
}

/// `speaking_rate`: the agent's mean speaking rate in range; applicable once the agent has
/// transcribed speech.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateCriterion {
    /// Default `5`.
    pub weight: f64,
    /// Words per second of speech. Default `1.5`.
    pub min_wps: f64,
    /// Words per second of speech. Default `3.5`.
    pub max_wps: f64,
}
impl Default for RateCriterion {
    fn default() -> Self {
        ScorecardConfig::default().speaking_rate
    }
}

/// `escalation_handled`: every escalation-phrase opportunity met (full points when the
/// customer never escalated: escalation avoided).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EscalationCriterion {
    /// Default `15`.
    pub weight: f64,
}
impl Default for EscalationCriterion {
    fn default() -> Self {
        ScorecardConfig::default().escalation
    }
}

impl ScorecardConfig {
    /// Checks ranges once at load.
    pub fn validate(&self) -> Result<(), EmpathyConfigError> {
        for (key, w) in [
            ("scorecard.empathy.weight", self.empathy.weight),
            ("scorecard.no_dismissive.weight", self.no_dismissive.weight),
            ("scorecard.journey.weight", self.journey.weight),
            ("scorecard.overtalk.weight", self.overtalk.weight),
            ("scorecard.silence.weight", self.silence.weight),
            ("scorecard.speaking_rate.weight", self.speaking_rate.weight),
            ("scorecard.escalation.weight", self.escalation.weight),
        ] {
            check(key, w, (0.0..=1000.0).contains(&w), "expected 0..=1000")?;
        }
        check(
            "scorecard.overtalk.max_s",
            self.overtalk.max_s,
            self.overtalk.max_s >= 0.0,
            "expected ≥ 0 s",
        )?;
        let r = &self.speaking_rate;
        check(
            "scorecard.speaking_rate.max_wps",
            r.max_wps,
            r.min_wps >= 0.0 && r.max_wps > r.min_wps,
            "expected max_wps > min_wps ≥ 0",
        )
    }
}
