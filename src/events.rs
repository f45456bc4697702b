//! The event schema: what the pipeline says, as every sink (stdout JSONL, MQTT, dashboard,
//! report) sees it. This is the interface contract of ARCHITECTURE.md "Events"; change it
//! only deliberately and update the README in the same commit.
//!
//! Invariants: within one call `seq` runs 0, 1, 2, … without gaps, and `event_id` is
//! `{call_id}:{seq}` so consumers can de-duplicate retried deliveries.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::audio::Speaker;

/// One event as published: common envelope plus a typed body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Event {
    pub call_id: String,
    pub seq: u64,
    pub event_id: String,
    /// Seconds of call audio since the call started.
    pub t: f64,
    /// RFC 3339 wall clock when emitted.
    pub ts: String,
    #[serde(flatten)]
    pub body: EventBody,
}

/// The typed part of an event; serialised with a `type` tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventBody {
    CallStarted(CallStarted),
    Utterance(Utterance),
    State(State),
    Alert(Alert),
    Empathy(Empathy),
    Assist(Assist),
    CallEnded(CallEnded),
}

impl EventBody {
    /// The `type` tag as it appears on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            EventBody::CallStarted(_) => "call_started",
            EventBody::Utterance(_) => "utterance",
            EventBody::State(_) => "state",
            EventBody::Alert(_) => "alert",
            EventBody::Empathy(_) => "empathy",
            EventBody::Assist(_) => "assist",
            EventBody::CallEnded(_) => "call_ended",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CallStarted {
    /// Where the audio comes from: `file`, `audiosocket`, `twilio`, `l16`, `device`.
    pub source: String,
    pub speakers: Vec<Speaker>,
    /// Input sample rate in Hz (before resampling to 16 kHz).
    pub sample_rate: u32,
    /// The agent handling the call, from the ingest metadata (Twilio `customParameters.agent`,
    /// the L16 start frame's `agent`); absent when the source does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Word {
    pub w: String,
    pub start: f64,
    pub end: f64,
    /// Whisper's token probability for the word, 0..1.
    pub p: f32,
}

/// Per-utterance prosody summary (the contract's subset of the full functionals).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProsodySummary {
    pub f0_mean_hz: Option<f32>,
    pub f0_range_st: Option<f32>,
    pub loudness: Option<f32>,
    pub jitter: Option<f32>,
    pub shimmer_db: Option<f32>,
    pub hnr_db: Option<f32>,
    pub speaking_rate_wps: Option<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Utterance {
    pub speaker: Speaker,
    pub start: f64,
    pub end: f64,
    /// Transcript after PII redaction.
    pub text: String,
    pub redacted: bool,
    pub words: Vec<Word>,
    /// Why there is no transcript, when there is none (`overload`, `asr_error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_transcribed: Option<String>,
    /// The language Whisper decoded the utterance in (ISO 639-1 code as Whisper spells it:
    /// "en", "de", "tr", "ar", ...): `asr.language`, or the speaker's language detected
    /// when it is "auto"; "en" with English-only models. Absent when nothing was decoded
    /// (`overload`, `asr_error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Text sentiment, −1..1.
    pub sentiment: f32,
    /// P(high arousal), 0..1; null for speakers without emotion inference.
    pub arousal: Option<f32>,
    pub emotion: Option<String>,
    pub prosody: ProsodySummary,
    /// Agent behaviours in the words (empty when none); absent on customer utterances and
    /// when per-agent scoring is off (`empathy.agent_scoring = false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behaviours: Option<Vec<Behaviour>>,
}

/// What an agent's words do for a customer in distress.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum BehaviourKind {
    /// Validating the customer's feelings: "I understand how frustrating", "I can see why".
    Acknowledge,
    /// "I'm sorry", "I apologise".
    Apologise,
    /// Ownership: "I'll make sure", "let me fix", "I will take care of".
    Commit,
    /// Unhelpful: "calm down", "there's nothing I can do", "that's our policy".
    Dismiss,
}

impl BehaviourKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BehaviourKind::Acknowledge => "acknowledge",
            BehaviourKind::Apologise => "apologise",
            BehaviourKind::Commit => "commit",
            BehaviourKind::Dismiss => "dismiss",
        }
    }
}

/// One behaviour found in an utterance: its kind and the words that matched (redacted text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Behaviour {
    pub kind: BehaviourKind,
    pub words: String,
}

/// One speaker's live state, sent about once a second.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SpeakerState {
    pub arousal: Option<f32>,
    pub stress: Option<f32>,
    pub emotion: Option<String>,
    pub talk_ratio: f32,
    pub speaking_rate_wps: Option<f32>,
    /// The customer's journey so far (customer only; absent until it has a label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journey: Option<JourneyLabel>,
}

/// Opening vs closing of the customer's sentiment and stress (see `empathy::journey`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JourneyLabel {
    Improving,
    Steady,
    Worsening,
}

impl JourneyLabel {
    pub fn as_str(self) -> &'static str {
        match self {
            JourneyLabel::Improving => "improving",
            JourneyLabel::Steady => "steady",
            JourneyLabel::Worsening => "worsening",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct State {
    pub speakers: BTreeMap<Speaker, SpeakerState>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    CustomerStress,
    NegativeSentiment,
    EscalationPhrase,
    Overtalk,
    LongSilence,
    AgentSpeakingRate,
    /// An empathy opportunity missed or harmed (info, for the supervisor).
    EmpathyMissed,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::CustomerStress => "customer_stress",
            AlertKind::NegativeSentiment => "negative_sentiment",
            AlertKind::EscalationPhrase => "escalation_phrase",
            AlertKind::Overtalk => "overtalk",
            AlertKind::LongSilence => "long_silence",
            AlertKind::AgentSpeakingRate => "agent_speaking_rate",
            AlertKind::EmpathyMissed => "empathy_missed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Alert {
    /// Unique within the call: `{call_id}:alert:{n}`.
    pub alert_id: String,
    pub kind: AlertKind,
    pub severity: Severity,
    /// The speaker the alert is about; null for call-level alerts (silence, over-talk).
    pub speaker: Option<Speaker>,
    pub start: f64,
    pub end: f64,
    /// One human sentence.
    pub message: String,
    /// The numbers or words that fired it.
    pub evidence: serde_json::Value,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SpeakerSummary {
    pub mean_stress: Option<f32>,
    pub max_stress: Option<f32>,
    pub talk_ratio: f32,
    pub talk_s: f64,
    pub overtalk_s: f64,
    pub silence_s: f64,
    pub utterances: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CallSummary {
    /// The agent's id, as on `call_started`; absent when ingest named none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    pub speakers: BTreeMap<Speaker, SpeakerSummary>,
    pub alerts: BTreeMap<AlertKind, u32>,
    /// The customer's emotional journey; absent without customer speech.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journey: Option<Box<Journey>>,
    /// Empathy opportunity counts; absent when per-agent scoring is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empathy: Option<Box<EmpathySummary>>,
    /// The QA scorecard; absent when per-agent scoring or the scorecard is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scorecard: Option<Box<Scorecard>>,
}

/// A customer distress moment that called for an empathic answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Opportunity {
    /// `customer_stress`, `negative_sentiment` or `escalation_phrase`.
    pub kind: AlertKind,
    /// Call time of the distress moment (its utterance or stress run), seconds.
    pub start: f64,
    pub end: f64,
    /// What opened it: the words, sentiment or stress figures.
    pub evidence: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EmpathyOutcome {
    /// An agent utterance in the window acknowledged or apologised (or committed after one).
    Met,
    /// The window passed without one.
    Missed,
    /// The agent answered with a dismissive phrase.
    Harmed,
}

impl EmpathyOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            EmpathyOutcome::Met => "met",
            EmpathyOutcome::Missed => "missed",
            EmpathyOutcome::Harmed => "harmed",
        }
    }
}

/// The agent utterance that resolved an opportunity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EmpathyResponse {
    /// Start of the agent utterance, seconds.
    pub start: f64,
    pub kind: BehaviourKind,
    pub words: String,
    /// From the end of the distress moment to the start of the response (0 when the agent
    /// answered before the customer finished), seconds.
    pub latency_s: f64,
}

/// `empathy` event: an opportunity resolved (`recovered` null), and again once its recovery
/// is known (`recovered` true/false).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Empathy {
    pub opportunity: Opportunity,
    pub outcome: EmpathyOutcome,
    pub response: Option<EmpathyResponse>,
    /// The customer's stress came back under the release level within `empathy.recovery_s`;
    /// null while unknown.
    pub recovered: Option<bool>,
    /// From the response (or the end of the window) to the recovery, seconds.
    pub recovery_s: Option<f64>,
}

/// What a nudge to the agent is about (`assist` events).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AssistKind {
    /// A customer distress moment still unanswered: acknowledge before solving.
    Acknowledge,
    /// The customer asked for a supervisor (or a manager).
    Supervisor,
    /// The agent talks over the customer.
    LetFinish,
    /// Dead air while the customer waits.
    DeadAir,
    /// The agent's speaking rate is over the limit.
    SpeakingFast,
}

impl AssistKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AssistKind::Acknowledge => "acknowledge",
            AssistKind::Supervisor => "supervisor",
            AssistKind::LetFinish => "let_finish",
            AssistKind::DeadAir => "dead_air",
            AssistKind::SpeakingFast => "speaking_fast",
        }
    }
}

/// `assist` event: a nudge to the agent raised (`active` true) or withdrawn (`active` false,
/// same `assist_id`). Built from the customer's state and the agent's observable behaviour
/// (timing, rate, words); never an inferred emotion about the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Assist {
    /// Unique within the call: `{call_id}:assist:{n}`; a withdrawal repeats its nudge's id.
    pub assist_id: String,
    pub kind: AssistKind,
    /// One short sentence for the agent.
    pub message: String,
    pub active: bool,
    /// What raised it (or, on withdrawal, why it no longer applies).
    pub evidence: serde_json::Value,
}

/// `call_ended.summary.journey`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Journey {
    /// Mean sentiment (−1..1) of the customer's opening / closing speech.
    pub opening_sentiment: Option<f32>,
    pub closing_sentiment: Option<f32>,
    /// Mean stress (0..1) over the opening / closing speech.
    pub opening_stress: Option<f32>,
    pub closing_stress: Option<f32>,
    /// −100..100: positive = better at the close (see `empathy::journey`).
    pub trend: Option<f32>,
    pub label: Option<JourneyLabel>,
    /// Times the customer's utterance sentiment swung between negative and positive.
    pub swings: u32,
    /// Customer utterances in the opening / closing part.
    pub opening_utterances: u32,
    pub closing_utterances: u32,
}

/// `call_ended.summary.empathy`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EmpathySummary {
    pub opportunities: u32,
    pub met: u32,
    pub missed: u32,
    pub harmed: u32,
    /// Median response latency of met opportunities, seconds.
    pub median_response_s: Option<f64>,
    /// Opportunities after which the customer recovered.
    pub recovered: u32,
}

/// `call_ended.summary.scorecard`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Scorecard {
    /// 0–100 over the applicable criteria (100 when none applies: nothing to penalise).
    pub score: f64,
    pub criteria: Vec<Criterion>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Criterion {
    pub name: String,
    pub weight: f64,
    pub points: f64,
    pub max: f64,
    /// False when the call gave no occasion for it; then it neither adds nor subtracts.
    pub applicable: bool,
    pub evidence: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CallEnded {
    /// `end_of_file`, `hangup`, `disconnected`, `shutdown`, `restart_recovery`, `error`.
    pub reason: String,
    pub duration: f64,
    pub summary: CallSummary,
}

/// Stamps events of one call with `seq`, `event_id` and `ts`.
#[derive(Debug)]
pub struct EventStamper {
    call_id: String,
    next_seq: u64,
}

impl EventStamper {
    pub fn new(call_id: impl Into<String>) -> Self {
        Self {
            call_id: call_id.into(),
            next_seq: 0,
        }
    }

    /// Continues a call's numbering at `next_seq` (after a restart).
    pub fn resume(call_id: impl Into<String>, next_seq: u64) -> Self {
        Self {
            call_id: call_id.into(),
            next_seq,
        }
    }

    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// Wraps `body` with the next sequence number; `ts` comes from the caller so that pure
    /// code stays clock-free.
    pub fn stamp(&mut self, t: f64, ts: String, body: EventBody) -> Event {
        let seq = self.next_seq;
        self.next_seq += 1;
        Event {
            call_id: self.call_id.clone(),
            seq,
            event_id: format!("{}:{}", self.call_id, seq),
            t,
            ts,
            body,
        }
    }
}

/// RFC 3339 UTC timestamp of now, for `ts`.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_serialises_flat_with_type_tag() {
        let mut st = EventStamper::new("c1");
        let e = st.stamp(
            0.0,
            "2026-01-01T00:00:00Z".into(),
            EventBody::CallStarted(CallStarted {
                source: "file".into(),
                speakers: vec![Speaker::Customer, Speaker::Agent],
                sample_rate: 8000,
                agent: None,
            }),
        );
        let v: serde_json::Value = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "call_started");
        assert_eq!(v["event_id"], "c1:0");
        assert_eq!(v["speakers"][1], "agent");
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
        let e2 = st.stamp(1.0, String::new(), e.body.clone());
        assert_eq!(e2.seq, 1);
    }
}
