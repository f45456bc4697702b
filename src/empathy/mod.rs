//! Empathy analytics: what the agent did about the customer's distress, and whether it
//! worked (ARCHITECTURE.md "Empathy, journey and scorecards").
//!
//! * [`behaviour`] — agent behaviours (`acknowledge`, `apologise`, `commit`, `dismiss`) in the
//!   words of agent utterances; a reading of words, not emotion inference on the agent.
//! * [`opportunity`] — empathy opportunities: distress moment → response → recovery.
//! * [`journey`] — the customer's opening vs closing sentiment and stress.
//! * [`scorecard`] — the configurable QA scorecard.
//! * [`config`] — `[empathy]` and `[scorecard]`.
//!
//! [`CallEmpathy`] bundles them for one call; the pipeline feeds it utterances, alerts and
//! ticks and publishes what it returns. All of it is pure (no I/O, no clock).
//!
//! Distress moments are what the alert rules see, *without* their cooldowns (which only spare
//! supervisors repeated alerts): the transcript rules (`escalation_phrase`,
//! `negative_sentiment`) run here on every utterance in an alert engine of their own, so a
//! phrase said inside the phrase alert's cooldown still opens or extends an opportunity; the
//! audio rule (`customer_stress`) comes from the caller, as alerts ([`CallEmpathy::on_alert`])
//! and as moments its cooldown held back ([`CallEmpathy::on_suppressed`]).

pub mod behaviour;
pub mod config;
pub mod journey;
pub mod opportunity;
pub mod scorecard;

use std::sync::Arc;

use serde_json::json;

use crate::alerts::{AlertEngine, Suppressed, UtteranceInfo};
use crate::audio::Speaker;
use crate::config::Config;
use crate::events::{
    Alert, AlertKind, Behaviour, BehaviourKind, Empathy, EmpathyOutcome, EmpathySummary, Journey,
    JourneyLabel, Scorecard, Severity, Utterance,
};

pub use behaviour::BehaviourDetector;
pub use config::{EmpathyConfig, ScorecardConfig};
pub use journey::JourneyTracker;
pub use opportunity::{Distress, EmpathyTick, OpportunityTracker};

/// Dismissive phrases kept as scorecard evidence per call.
const MAX_DISMISSALS: usize = 100;

/// An alert the caller should raise through the alert engine (so it is numbered and counted).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRequest {
    pub kind: AlertKind,
    pub severity: Severity,
    pub span: (f64, f64),
    pub message: String,
    pub evidence: serde_json::Value,
}

/// What the call's end adds to `call_ended.summary`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndSummary {
    pub journey: Option<Journey>,
    pub empathy: Option<EmpathySummary>,
    pub scorecard: Option<Scorecard>,
}

/// Alert kinds decided on the transcript, which [`CallEmpathy`] reads itself.
fn is_transcript_rule(kind: AlertKind) -> bool {
    matches!(
        kind,
        AlertKind::EscalationPhrase | AlertKind::NegativeSentiment
    )
}

/// The alert config with only the transcript distress rules on (the rest need audio, or are
/// no distress).
fn transcript_rules(alerts: &crate::alerts::AlertConfig) -> crate::alerts::AlertConfig {
    let mut c = alerts.clone();
    c.customer_stress.enabled = false;
    c.overtalk.enabled = false;
    c.long_silence.enabled = false;
    c.agent_speaking_rate.enabled = false;
    c
}

/// Empathy analytics of one call.
#[derive(Debug, Clone)]
pub struct CallEmpathy {
    scoring: bool,
    scorecard: Option<ScorecardConfig>,
    missed_alert: bool,
    negative: f32,
    detector: Arc<BehaviourDetector>,
    /// The transcript alert rules, to read their distress moments with or without a cooldown.
    transcript_rules: AlertEngine,
    tracker: OpportunityTracker,
    journey: JourneyTracker,
    dismissals: Vec<(f64, String)>,
    agent_words: usize,
    agent_speech_s: f64,
    agent_utterances: u32,
    /// Agent speech needed before their speaking rate is judged (the
    /// `agent_speaking_rate` alert's `min_speech_s`).
    rate_min_speech_s: f64,
}

impl CallEmpathy {
    /// `detector` is shared by all calls (built once from `cfg.empathy`).
    pub fn new(cfg: &Config, detector: Arc<BehaviourDetector>) -> Self {
        let e = &cfg.empathy;
        Self {
            scoring: e.agent_scoring,
            scorecard: (e.agent_scoring && cfg.scorecard.enabled).then(|| cfg.scorecard.clone()),
            missed_alert: e.agent_scoring && e.missed_alert,
            negative: e.negative_sentiment,
            detector,
            transcript_rules: AlertEngine::new("", transcript_rules(&cfg.alerts))
                .record_suppressed(),
            tracker: OpportunityTracker::new(e, cfg.alerts.customer_stress.release),
            journey: JourneyTracker::new(e.journey_part, e.journey_threshold),
            dismissals: Vec::new(),
            agent_words: 0,
            agent_speech_s: 0.0,
            agent_utterances: 0,
            rate_min_speech_s: cfg.alerts.agent_speaking_rate.min_speech_s,
        }
    }

    /// Behaviours for an utterance's (redacted) words: `Some` for the agent while per-agent
    /// scoring is on, `None` otherwise (the field is then left out of the event).
    pub fn behaviours<S: AsRef<str>>(
        &self,
        speaker: Speaker,
        words: &[S],
    ) -> Option<Vec<Behaviour>> {
        (self.scoring && speaker == Speaker::Agent).then(|| self.detector.detect_words(words))
    }

    /// A published utterance and the alerts it raised. Its distress moments (a strongly
    /// negative utterance, and the transcript alert rules' moments, cooldown or not) are
    /// read from the utterance itself; of `alerts`, only stress alerts would count.
    pub fn on_utterance(&mut self, u: &Utterance, alerts: &[Alert]) -> Vec<Empathy> {
        let mut out = Vec::new();
        let transcribed = u.not_transcribed.is_none() && !u.text.trim().is_empty();
        if !transcribed {
            return out;
        }
        match u.speaker {
            Speaker::Customer => {
                self.journey.on_utterance(u.start, u.end, u.sentiment);
                if !self.scoring {
                    return out;
                }
                self.tracker.on_customer_speech(u.start, u.end);
                if u.sentiment <= self.negative {
                    out.extend(self.tracker.on_distress(Distress {
                        kind: AlertKind::NegativeSentiment,
                        start: u.start,
                        end: u.end,
                        evidence: json!({
                            "sentiment": (f64::from(u.sentiment) * 100.0).round() / 100.0,
                            "text": u.text
                        }),
                    }));
                }
                // The transcript rules' moments, alerted or held back by a cooldown; the
                // caller's alerts of these kinds are the same moments.
                let alerted = self.transcript_rules.on_utterance(&UtteranceInfo::from(u));
                let held = self.transcript_rules.take_suppressed();
                let moments = alerted
                    .into_iter()
                    .map(|a| (a.kind, a.speaker, a.start, a.end, a.evidence))
                    .chain(
                        held.into_iter()
                            .map(|m| (m.kind, m.speaker, m.start, m.end, m.evidence)),
                    );
                for (kind, speaker, start, end, evidence) in moments {
                    if speaker == Some(Speaker::Customer) {
                        out.extend(self.tracker.on_distress(Distress {
                            kind,
                            start,
                            end,
                            evidence,
                        }));
                    }
                }
                for a in alerts {
                    out.extend(self.on_alert(a));
                }
            }
            Speaker::Agent => {
                if !self.scoring {
                    return out;
                }
                // The agent's words can be phrases too (`include_agent`): the rules' state
                // follows the alert engine's, though the agent's are no customer distress.
                self.transcript_rules.on_utterance(&UtteranceInfo::from(u));
                self.transcript_rules.take_suppressed();
                self.agent_utterances += 1;
                if let Some(wps) = u.prosody.speaking_rate_wps {
                    // Back to speech seconds from the event's rate (words / speech_s).
                    // Without timed words (a plain transcript), the text's words.
                    let n = if u.words.is_empty() {
                        u.text.split_whitespace().count()
                    } else {
                        u.words.len()
                    };
                    if wps > 0.0 {
                        self.agent_words += n;
                        self.agent_speech_s += n as f64 / f64::from(wps);
                    }
                }
                let behaviours = u.behaviours.as_deref().unwrap_or_default();
                for b in behaviours
                    .iter()
                    .filter(|b| b.kind == BehaviourKind::Dismiss)
                {
                    if self.dismissals.len() < MAX_DISMISSALS {
                        self.dismissals.push((u.start, b.words.clone()));
                    }
                }
                out.extend(self.tracker.on_agent(u.start, behaviours));
            }
        }
        out
    }

    /// An alert about the customer's stress that opens an opportunity. The transcript kinds
    /// (`escalation_phrase`, `negative_sentiment`) are read in [`Self::on_utterance`] and
    /// ignored here (they would count twice).
    pub fn on_alert(&mut self, a: &Alert) -> Vec<Empathy> {
        let distress = crate::alerts::is_distress(a.kind) && !is_transcript_rule(a.kind);
        if !self.scoring || !distress || a.speaker != Some(Speaker::Customer) {
            return Vec::new();
        }
        self.tracker.on_distress(Distress {
            kind: a.kind,
            start: a.start,
            end: a.end,
            evidence: a.evidence.clone(),
        })
    }

    /// A customer distress moment that an alert's cooldown held back (from the caller's
    /// alert engine with [`AlertEngine::record_suppressed`]): the same as the alert would
    /// have been. The transcript kinds are read in [`Self::on_utterance`] and ignored here.
    pub fn on_suppressed(&mut self, m: &Suppressed) -> Vec<Empathy> {
        if !self.scoring
            || is_transcript_rule(m.kind)
            || !crate::alerts::is_distress(m.kind)
            || m.speaker != Some(Speaker::Customer)
        {
            return Vec::new();
        }
        self.tracker.on_distress(Distress {
            kind: m.kind,
            start: m.start,
            end: m.end,
            evidence: m.evidence.clone(),
        })
    }

    /// One tick of call time (see [`OpportunityTracker::on_tick`]).
    pub fn on_tick(&mut self, x: &EmpathyTick) -> Vec<Empathy> {
        if let Some(s) = x.stress {
            self.journey.on_stress(x.t, s);
        }
        if !self.scoring {
            return Vec::new();
        }
        self.tracker.on_tick(x)
    }

    /// The agent's track has audio from call time `from`. Until it is called, distress
    /// moments are not scored against the agent and no opportunity waits for an answer.
    pub fn on_agent_audio(&mut self, from: f64) {
        self.tracker.on_agent_audio(from);
    }

    /// The `empathy_missed` alert for an event, when it is due (first report of a missed or
    /// harmed opportunity, and the alert is enabled).
    pub fn alert_for(&self, e: &Empathy) -> Option<AlertRequest> {
        if !self.missed_alert || e.recovered.is_some() || e.outcome == EmpathyOutcome::Met {
            return None;
        }
        let o = &e.opportunity;
        let what = match o.kind {
            AlertKind::CustomerStress => "rising stress",
            AlertKind::EscalationPhrase => "escalation",
            _ => "negative words",
        };
        let message = match (&e.outcome, &e.response) {
            (EmpathyOutcome::Harmed, Some(r)) => format!(
                "The customer's {what} at {:.0} s was answered with \"{}\".",
                o.start, r.words
            ),
            _ => format!(
                "The customer's {what} at {:.0} s got no acknowledgement or apology.",
                o.start
            ),
        };
        let end = e.response.as_ref().map_or(o.end, |r| r.start.max(o.end));
        Some(AlertRequest {
            kind: AlertKind::EmpathyMissed,
            severity: Severity::Info,
            span: (o.start, end),
            message,
            evidence: json!({
                "outcome": e.outcome,
                "opportunity": o.kind,
                "response": e.response.as_ref().map(|r| &r.words),
            }),
        })
    }

    /// The opportunity waiting for the agent's answer (none while per-agent scoring is off,
    /// or while the agent's track has had no audio: there is no one to wait for).
    pub fn open_opportunity(&self) -> Option<&crate::events::Opportunity> {
        self.tracker.open().filter(|_| self.tracker.agent_present())
    }

    /// The customer's journey label so far.
    pub fn journey_label(&self) -> Option<JourneyLabel> {
        self.journey.label()
    }

    /// The call ended at `t`: events for what the end decides.
    pub fn finish(&mut self, t: f64) -> Vec<Empathy> {
        if !self.scoring {
            return Vec::new();
        }
        self.tracker.finish(t)
    }

    /// The summary parts; `overtalk_s` and `long_silences` from the rest of the pipeline.
    pub fn summary(&self, overtalk_s: f64, long_silences: u32) -> EndSummary {
        let journey = self.journey.journey();
        if !self.scoring {
            return EndSummary {
                journey,
                ..Default::default()
            };
        }
        let empathy = self.tracker.summary();
        let opportunities: Vec<Empathy> = self.tracker.records().cloned().collect();
        let escalated = self.tracker.escalated();
        let scorecard = self.scorecard.as_ref().map(|cfg| {
            scorecard::score(
                cfg,
                &scorecard::ScoreInputs {
                    empathy: &empathy,
                    opportunities: &opportunities,
                    escalated: &escalated,
                    dismissals: &self.dismissals,
                    journey: journey.as_ref(),
                    overtalk_s,
                    long_silences,
                    agent_rate_wps: (self.agent_speech_s > 0.0
                        && self.agent_speech_s >= self.rate_min_speech_s)
                        .then(|| self.agent_words as f64 / self.agent_speech_s),
                    agent_utterances: self.agent_utterances,
                },
            )
        });
        EndSummary {
            journey,
            empathy: Some(empathy),
            scorecard,
        }
    }
}
