//! The QA scorecard: configurable criteria scored per call, 0–100, with evidence.
//!
//! `score = 100 × Σ points / Σ max` over the *applicable* criteria (each criterion's max is
//! its weight). A criterion the call gave no occasion for is not applicable: it neither
//! adds nor subtracts — a call without a distress moment is never penalised for empathy.
//! With no applicable criterion the score is 100 (nothing to fault).
//!
//! | criterion | applicable when | points |
//! |---|---|---|
//! | `empathy_met` | ≥ 1 empathy opportunity | weight × met / opportunities |
//! | `no_dismissive` | the agent has transcribed speech | weight if dismissive phrases ≤ `max_dismissals`, else 0 |
//! | `journey_not_worsening` | the journey has a label | weight unless `worsening` |
//! | `overtalk` | the agent has transcribed speech | weight if over-talk ≤ `max_s` |
//! | `long_silences` | the agent has transcribed speech | weight if `long_silence` alerts ≤ `max_long_silences` |
//! | `speaking_rate` | the agent spoke ≥ `alerts.agent_speaking_rate.min_speech_s` | weight if `min_wps` ≤ rate ≤ `max_wps` |
//! | `escalation_handled` | ≥ 1 escalation opportunity | weight × met / escalation-phrase opportunities |

use serde_json::json;

use crate::events::{
    AlertKind, Criterion, Empathy, EmpathyOutcome, EmpathySummary, Journey, JourneyLabel, Scorecard,
};

use super::config::ScorecardConfig;

/// What a call gives the scorecard.
#[derive(Debug, Clone, Copy)]
pub struct ScoreInputs<'a> {
    pub empathy: &'a EmpathySummary,
    pub opportunities: &'a [Empathy],
    /// Per opportunity: its episode included an escalation phrase.
    pub escalated: &'a [bool],
    /// (call time, words) of each dismissive phrase the agent said.
    pub dismissals: &'a [(f64, String)],
    pub journey: Option<&'a Journey>,
    pub overtalk_s: f64,
    pub long_silences: u32,
    /// The agent's mean speaking rate, words per second of speech.
    pub agent_rate_wps: Option<f64>,
    pub agent_utterances: u32,
}

/// Scores one call.
pub fn score(cfg: &ScorecardConfig, x: &ScoreInputs<'_>) -> Scorecard {
    let mut criteria = Vec::new();
    let mut add = |name: &str, weight: f64, applicable: bool, ok: f64, evidence| {
        if weight > 0.0 {
            criteria.push(Criterion {
                name: name.into(),
                weight,
                points: if applicable {
                    round1(weight * ok.clamp(0.0, 1.0))
                } else {
                    0.0
                },
                max: weight,
                applicable,
                evidence,
            });
        }
    };

    let e = x.empathy;
    let moments: Vec<_> = x
        .opportunities
        .iter()
        .map(|o| {
            json!({
                "t": o.opportunity.start,
                "kind": o.opportunity.kind,
                "outcome": o.outcome,
                "response": o.response.as_ref().map(|r| &r.words),
            })
        })
        .collect();
    add(
        "empathy_met",
        cfg.empathy.weight,
        e.opportunities > 0,
        ratio(e.met, e.opportunities),
        json!({"opportunities": e.opportunities, "met": e.met, "missed": e.missed,
               "harmed": e.harmed, "moments": moments}),
    );

    let n_dismiss = x.dismissals.len() as u32;
    let said: Vec<_> = x
        .dismissals
        .iter()
        .map(|(t, w)| json!({"t": t, "words": w}))
        .collect();
    add(
        "no_dismissive",
        cfg.no_dismissive.weight,
        x.agent_utterances > 0,
        f64::from(u8::from(n_dismiss <= cfg.no_dismissive.max_dismissals)),
        json!({"dismissals": said, "max_dismissals": cfg.no_dismissive.max_dismissals}),
    );

    let label = x.journey.and_then(|j| j.label);
    add(
        "journey_not_worsening",
        cfg.journey.weight,
        label.is_some(),
        f64::from(u8::from(label != Some(JourneyLabel::Worsening))),
        json!({"label": label,
               "trend": x.journey.and_then(|j| j.trend).map(|v| round1(f64::from(v))),
               "opening_sentiment": x.journey.and_then(|j| j.opening_sentiment).map(round2f),
               "closing_sentiment": x.journey.and_then(|j| j.closing_sentiment).map(round2f)}),
    );

    add(
        "overtalk",
        cfg.overtalk.weight,
        x.agent_utterances > 0,
        f64::from(u8::from(x.overtalk_s <= cfg.overtalk.max_s)),
        json!({"overtalk_s": round1(x.overtalk_s), "max_s": cfg.overtalk.max_s}),
    );

    add(
        "long_silences",
        cfg.silence.weight,
        x.agent_utterances > 0,
        f64::from(u8::from(x.long_silences <= cfg.silence.max_long_silences)),
        json!({"long_silences": x.long_silences, "max": cfg.silence.max_long_silences}),
    );

    let r = &cfg.speaking_rate;
    add(
        "speaking_rate",
        r.weight,
        x.agent_rate_wps.is_some(),
        f64::from(u8::from(
            x.agent_rate_wps
                .is_some_and(|w| (r.min_wps..=r.max_wps).contains(&w)),
        )),
        json!({"agent_wps": x.agent_rate_wps.map(round1), "min_wps": r.min_wps, "max_wps": r.max_wps}),
    );

    let esc: Vec<&Empathy> = x
        .opportunities
        .iter()
        .enumerate()
        .filter(|(i, o)| {
            o.opportunity.kind == AlertKind::EscalationPhrase
                || x.escalated.get(*i).copied().unwrap_or(false)
        })
        .map(|(_, o)| o)
        .collect();
    let esc_met = esc
        .iter()
        .filter(|o| o.outcome == EmpathyOutcome::Met)
        .count() as u32;
    let esc_n = esc.len() as u32;
    add(
        "escalation_handled",
        cfg.escalation.weight,
        esc_n > 0,
        ratio(esc_met, esc_n),
        json!({"escalations": esc_n, "met": esc_met,
               "at": esc.iter().map(|o| o.opportunity.start).collect::<Vec<_>>()}),
    );

    let (pts, max) = criteria
        .iter()
        .filter(|c| c.applicable)
        .fold((0.0, 0.0), |(p, m), c| (p + c.points, m + c.max));
    let score = if max > 0.0 {
        round1(100.0 * pts / max)
    } else {
        100.0
    };
    Scorecard { score, criteria }
}

fn ratio(a: u32, b: u32) -> f64 {
    if b == 0 {
        0.0
    } else {
        f64::from(a) / f64::from(b)
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// An `f32` published through `json!` (which widens it to `f64`: −0.13 → −0.12999999523…),
/// rounded to two decimals as the utterance events print it.
fn round2f(x: f32) -> f64 {
    (f64::from(x) * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EmpathyResponse, Opportunity};

    fn opp(kind: AlertKind, outcome: EmpathyOutcome) -> Empathy {
        Empathy {
            opportunity: Opportunity {
                kind,
                start: 3.0,
                end: 5.0,
                evidence: json!({"phrases": ["cancel"]}),
            },
            outcome,
            response: (outcome != EmpathyOutcome::Missed).then(|| EmpathyResponse {
                start: 6.0,
                kind: crate::events::BehaviourKind::Acknowledge,
                words: "I understand".into(),
                latency_s: 1.0,
            }),
            recovered: None,
            recovery_s: None,
        }
    }

    fn inputs<'a>(
        summary: &'a EmpathySummary,
        opps: &'a [Empathy],
        dismissals: &'a [(f64, String)],
    ) -> ScoreInputs<'a> {
        ScoreInputs {
            empathy: summary,
            opportunities: opps,
            escalated: &[],
            dismissals,
            journey: None,
            overtalk_s: 0.0,
            long_silences: 0,
            agent_rate_wps: Some(2.5),
            agent_utterances: 4,
        }
    }

    fn criterion<'a>(s: &'a Scorecard, name: &str) -> &'a Criterion {
        s.criteria.iter().find(|c| c.name == name).unwrap()
    }

    #[test]
    fn no_opportunity_is_not_applicable_and_scores_full() {
        let s = score(
            &ScorecardConfig::default(),
            &inputs(&EmpathySummary::default(), &[], &[]),
        );
        let c = criterion(&s, "empathy_met");
        assert!(!c.applicable);
        assert_eq!(c.points, 0.0);
        assert_eq!(s.score, 100.0, "{s:?}");
        // No escalation: not applicable, not free points either.
        let c = criterion(&s, "escalation_handled");
        assert!(!c.applicable, "{c:?}");
        assert_eq!(c.points, 0.0);
    }

    #[test]
    fn nobody_spoke_no_criterion_applies() {
        // An empty call with a long_silence alert: no agent speech, no escalation.
        let none = EmpathySummary::default();
        let mut x = inputs(&none, &[], &[]);
        x.agent_utterances = 0;
        x.agent_rate_wps = None;
        x.long_silences = 1;
        let s = score(&ScorecardConfig::default(), &x);
        assert!(s.criteria.iter().all(|c| !c.applicable), "{s:?}");
        assert_eq!(s.score, 100.0);
        // Once the agent has spoken, dead air counts.
        x.agent_utterances = 3;
        let s = score(&ScorecardConfig::default(), &x);
        assert!(criterion(&s, "long_silences").applicable);
        assert_eq!(criterion(&s, "long_silences").points, 0.0);
    }

    #[test]
    fn journey_evidence_is_rounded() {
        let j = Journey {
            opening_sentiment: Some(0.2),
            closing_sentiment: Some(-0.13),
            opening_stress: None,
            closing_stress: None,
            trend: Some(-25.3),
            label: Some(JourneyLabel::Worsening),
            swings: 0,
            opening_utterances: 1,
            closing_utterances: 1,
        };
        let none = EmpathySummary::default();
        let mut x = inputs(&none, &[], &[]);
        x.journey = Some(&j);
        let s = score(&ScorecardConfig::default(), &x);
        let text = serde_json::to_string(&criterion(&s, "journey_not_worsening").evidence).unwrap();
        assert!(text.contains(r#""closing_sentiment":-0.13,"#), "{text}");
        assert!(text.contains(r#""trend":-25.3}"#), "{text}");
    }

    #[test]
    fn a_harmed_escalation_with_a_dismissal_loses_those_criteria() {
        let opps = [opp(AlertKind::EscalationPhrase, EmpathyOutcome::Harmed)];
        let summary = EmpathySummary {
            opportunities: 1,
            harmed: 1,
            ..Default::default()
        };
        let d = [(6.0, "calm down".to_string())];
        let s = score(&ScorecardConfig::default(), &inputs(&summary, &opps, &d));
        assert_eq!(criterion(&s, "empathy_met").points, 0.0);
        assert_eq!(criterion(&s, "no_dismissive").points, 0.0);
        assert_eq!(criterion(&s, "escalation_handled").points, 0.0);
        assert_eq!(
            criterion(&s, "no_dismissive").evidence["dismissals"][0]["words"],
            "calm down"
        );
        // Applicable max: 30 + 20 + 10 + 5 + 5 + 15 = 85 (journey has no label); points 20.
        assert_eq!(s.score, round1(100.0 * 20.0 / 85.0));
    }

    #[test]
    fn partial_empathy_and_worsening_journey() {
        let opps = [
            opp(AlertKind::NegativeSentiment, EmpathyOutcome::Met),
            opp(AlertKind::CustomerStress, EmpathyOutcome::Missed),
        ];
        let summary = EmpathySummary {
            opportunities: 2,
            met: 1,
            missed: 1,
            ..Default::default()
        };
        let j = Journey {
            opening_sentiment: Some(0.2),
            closing_sentiment: Some(-0.6),
            opening_stress: None,
            closing_stress: None,
            trend: Some(-40.0),
            label: Some(JourneyLabel::Worsening),
            swings: 1,
            opening_utterances: 1,
            closing_utterances: 1,
        };
        let mut x = inputs(&summary, &opps, &[]);
        x.journey = Some(&j);
        x.agent_rate_wps = Some(4.2);
        let s = score(&ScorecardConfig::default(), &x);
        assert_eq!(criterion(&s, "empathy_met").points, 15.0);
        assert_eq!(criterion(&s, "journey_not_worsening").points, 0.0);
        assert_eq!(criterion(&s, "speaking_rate").points, 0.0);
        // 15 + 20 + 0 + 10 + 5 + 0 = 50 of 85 (no escalation: not applicable).
        assert_eq!(s.score, round1(100.0 * 50.0 / 85.0));
    }

    #[test]
    fn zero_weight_drops_a_criterion() {
        let mut cfg = ScorecardConfig::default();
        cfg.speaking_rate.weight = 0.0;
        let s = score(&cfg, &inputs(&EmpathySummary::default(), &[], &[]));
        assert!(s.criteria.iter().all(|c| c.name != "speaking_rate"));
    }
}
