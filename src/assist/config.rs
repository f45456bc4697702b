//! `[assist]`: live nudges to the agent of a call.

use serde::{Deserialize, Serialize};

/// Phrases of a customer asking for someone else.
pub const DEFAULT_SUPERVISOR_PHRASES: &[&str] = &[
    "supervisor",
    "manager",
    "someone in charge",
    "speak to someone else",
    "talk to someone else",
    "your boss",
    "escalate",
];

/// Agent phrases that answer a request for a supervisor (the nudge is then withdrawn).
pub const DEFAULT_SUPERVISOR_ANSWERED: &[&str] = &[
    "supervisor",
    "manager",
    "transfer",
    "escalate",
    "put you through",
];

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// `[assist]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AssistConfig {
    /// Nudges at all (`assist` events, `/agent` page). Default `true`.
    pub enabled: bool,
    /// At most one nudge is raised per this many seconds per call (withdrawals are never
    /// held back). Default `10.0`.
    pub min_gap_s: f64,
    pub acknowledge: AcknowledgeNudge,
    pub supervisor: SupervisorNudge,
    pub let_finish: LetFinishNudge,
    pub dead_air: DeadAirNudge,
    pub speaking_fast: SpeakingFastNudge,
}

impl Default for AssistConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            min_gap_s: 10.0,
            acknowledge: AcknowledgeNudge::default(),
            supervisor: SupervisorNudge::default(),
            let_finish: LetFinishNudge::default(),
            dead_air: DeadAirNudge::default(),
            speaking_fast: SpeakingFastNudge::default(),
        }
    }
}

/// "Customer sounds frustrated: acknowledge before solving": an empathy opportunity (see
/// `[empathy]`) still open this long after the distress moment, with no agent reply on its
/// way to the transcriber. Needs `empathy.agent_scoring` (the opportunities).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AcknowledgeNudge {
    pub enabled: bool,
    /// Seconds after the distress moment. Default `3.0`.
    pub after_s: f64,
    /// After a withdrawal, the same kind waits this long before it can be raised again,
    /// seconds. Default `30.0`.
    pub cooldown_s: f64,
}

impl Default for AcknowledgeNudge {
    fn default() -> Self {
        Self {
            enabled: true,
            after_s: 3.0,
            cooldown_s: 30.0,
        }
    }
}

/// "Customer asked for a supervisor": a customer utterance with one of `phrases`;
/// withdrawn when an agent utterance carries one of `answered_by`, or after `hold_s`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupervisorNudge {
    pub enabled: bool,
    /// Matched like escalation phrases (inflections, one-letter slips, negation skipped).
    pub phrases: Vec<String>,
    pub answered_by: Vec<String>,
    /// Seconds. Default `60.0`.
    pub hold_s: f64,
    /// Seconds. Default `60.0`.
    pub cooldown_s: f64,
}

impl Default for SupervisorNudge {
    fn default() -> Self {
        Self {
            enabled: true,
            phrases: strings(DEFAULT_SUPERVISOR_PHRASES),
            answered_by: strings(DEFAULT_SUPERVISOR_ANSWERED),
            hold_s: 60.0,
            cooldown_s: 60.0,
        }
    }
}

/// "Let the customer finish": the agent started talking while the customer was speaking
/// and both went on for at least `min_overlap_s`, `count` times within `window_s`;
/// withdrawn after `clear_s` without another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LetFinishNudge {
    pub enabled: bool,
    /// Seconds. Default `0.6`.
    pub min_overlap_s: f64,
    /// Default `2`.
    pub count: u32,
    /// Seconds. Default `60.0`.
    pub window_s: f64,
    /// Seconds. Default `15.0`.
    pub clear_s: f64,
    /// Seconds. Default `45.0`.
    pub cooldown_s: f64,
}

impl Default for LetFinishNudge {
    fn default() -> Self {
        Self {
            enabled: true,
            min_overlap_s: 0.6,
            count: 2,
            window_s: 60.0,
            clear_s: 15.0,
            cooldown_s: 45.0,
        }
    }
}

/// "Long silence: tell the customer what you are doing": nobody has spoken for `min_s`
/// since the customer last spoke (the customer is waiting); withdrawn when anyone speaks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeadAirNudge {
    pub enabled: bool,
    /// Seconds. Default `8.0`.
    pub min_s: f64,
    /// Seconds. Default `30.0`.
    pub cooldown_s: f64,
}

impl Default for DeadAirNudge {
    fn default() -> Self {
        Self {
            enabled: true,
            min_s: 8.0,
            cooldown_s: 30.0,
        }
    }
}

/// "You are speaking fast": the agent's transcribed words per second of speech over the last
/// 20 s at or above `threshold_wps` (with at least `min_speech_s` of agent speech in it);
/// withdrawn at or below `release_wps`, or when the agent has not spoken for 20 s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpeakingFastNudge {
    pub enabled: bool,
    /// Words/s. Default `3.5` (as `alerts.agent_speaking_rate`).
    pub threshold_wps: f32,
    /// Words/s. Default `3.0`.
    pub release_wps: f32,
    /// Seconds. Default `8.0` (as `alerts.agent_speaking_rate`: a rate from a few short
    /// turns, digits read out, is noise).
    pub min_speech_s: f64,
    /// Seconds. Default `60.0`.
    pub cooldown_s: f64,
}

impl Default for SpeakingFastNudge {
    fn default() -> Self {
        Self {
            enabled: true,
            threshold_wps: 3.5,
            release_wps: 3.0,
            min_speech_s: 8.0,
            cooldown_s: 60.0,
        }
    }
}

fn range(key: &str, v: f64, lo: f64, hi: f64) -> Result<(), String> {
    if v.is_finite() && (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(format!("{key} = {v}: expected {lo}..={hi}"))
    }
}

impl AssistConfig {
    /// Checks ranges once at load; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        range("assist.min_gap_s", self.min_gap_s, 0.0, 600.0)?;
        let a = &self.acknowledge;
        range("assist.acknowledge.after_s", a.after_s, 0.0, 60.0)?;
        range("assist.acknowledge.cooldown_s", a.cooldown_s, 0.0, 3600.0)?;
        let s = &self.supervisor;
        range("assist.supervisor.hold_s", s.hold_s, 1.0, 3600.0)?;
        range("assist.supervisor.cooldown_s", s.cooldown_s, 0.0, 3600.0)?;
        for (key, list) in [
            ("assist.supervisor.phrases", &s.phrases),
            ("assist.supervisor.answered_by", &s.answered_by),
        ] {
            if list.len() > 200 || list.iter().any(|p| p.trim().is_empty() || p.len() > 100) {
                return Err(format!(
                    "{key}: at most 200 phrases, each 1..=100 characters"
                ));
            }
        }
        let l = &self.let_finish;
        range(
            "assist.let_finish.min_overlap_s",
            l.min_overlap_s,
            0.1,
            10.0,
        )?;
        range("assist.let_finish.count", f64::from(l.count), 1.0, 20.0)?;
        range("assist.let_finish.window_s", l.window_s, 1.0, 3600.0)?;
        range("assist.let_finish.clear_s", l.clear_s, 1.0, 3600.0)?;
        range("assist.let_finish.cooldown_s", l.cooldown_s, 0.0, 3600.0)?;
        let d = &self.dead_air;
        range("assist.dead_air.min_s", d.min_s, 1.0, 600.0)?;
        range("assist.dead_air.cooldown_s", d.cooldown_s, 0.0, 3600.0)?;
        let f = &self.speaking_fast;
        range(
            "assist.speaking_fast.threshold_wps",
            f64::from(f.threshold_wps),
            0.5,
            20.0,
        )?;
        range(
            "assist.speaking_fast.release_wps",
            f64::from(f.release_wps),
            0.0,
            f64::from(f.threshold_wps),
        )?;
        range(
            "assist.speaking_fast.min_speech_s",
            f.min_speech_s,
            0.0,
            20.0,
        )?;
        range("assist.speaking_fast.cooldown_s", f.cooldown_s, 0.0, 3600.0)
    }
}
