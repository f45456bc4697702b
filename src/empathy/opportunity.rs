//! Empathy opportunities: a customer's distress moment, the agent's answer, the recovery.
//!
//! A pure state machine fed in call time by the pipeline:
//! * [`OpportunityTracker::on_distress`] — a `customer_stress` alert, a strongly negative
//!   customer utterance (`empathy.negative_sentiment`), a `negative_sentiment` alert or an
//!   escalation phrase. One opportunity per distress *episode*: moments less than
//!   `episode_gap_s` after the previous one (and before the customer recovered) join it.
//! * [`OpportunityTracker::on_agent`] — a transcribed agent utterance and its behaviours.
//! * [`OpportunityTracker::on_tick`] — call time, the customer's live stress, and the start
//!   of agent speech not transcribed yet (so a reply still in the ASR queue is not "missed").
//!
//! Outcome of an opportunity opened by a moment `[start, end]`: the first agent utterance
//! starting in `[start, end + window_s]` with a relevant behaviour decides it —
//! `dismiss` → **harmed**; `acknowledge`/`apologise` → **met**; `commit` → **met** when the
//! agent has acknowledged or apologised earlier in the call ("commit after one of them").
//! No such utterance by the end of the window → **missed**. An opportunity whose window the
//! end of the call cuts short is not scored (the agent had no chance to answer).
//!
//! Recovery: from the response (missed: the end of the window), the customer's live stress
//! readings must stay under the release level (`alerts.customer_stress.release`) for
//! `recovery_hold_s` (pauses do not count against it; a higher reading or a new distress
//! moment restarts it), within `recovery_s`. `recovery_s` in the event is the time from the
//! response to the start of that calm stretch. At the end of the call, a recovery still open
//! is `false` if the customer spoke again, else unknown (null); so is one where the customer
//! said nothing within `recovery_s`.

use std::collections::VecDeque;

use serde_json::json;

use crate::events::{
    AlertKind, Behaviour, BehaviourKind, Empathy, EmpathyOutcome, EmpathyResponse, EmpathySummary,
    Opportunity,
};

use super::config::EmpathyConfig;

/// Agent utterances kept for distress moments transcribed after the agent's answer.
const RECENT_AGENT: usize = 16;

/// One distress moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Distress {
    pub kind: AlertKind,
    pub start: f64,
    pub end: f64,
    pub evidence: serde_json::Value,
}

#[derive(Debug, Clone)]
struct AgentTurn {
    start: f64,
    behaviours: Vec<Behaviour>,
    /// The agent had acknowledged or apologised before this turn.
    prior_empathy: bool,
}

#[derive(Debug, Clone)]
struct Open {
    opportunity: Opportunity,
    deadline: f64,
    kinds: Vec<AlertKind>,
}

/// A resolved opportunity, its recovery decided or still open.
#[derive(Debug, Clone)]
pub struct Record {
    pub event: Empathy,
    /// Every kind of distress moment of the episode (the first is the opportunity's kind).
    pub kinds: Vec<AlertKind>,
    /// When recovery is measured from: the response start, or the end of the window.
    reference: f64,
    hold_s: f64,
    heard_since: bool,
    /// Recovery decided (or given up as unknown: the customer never spoke again in time).
    done: bool,
}

/// Empathy opportunities of one call. See the module docs.
#[derive(Debug, Clone)]
pub struct OpportunityTracker {
    window_s: f64,
    episode_gap_s: f64,
    recovery_s: f64,
    recovery_hold_s: f64,
    release: f32,
    open: Option<Open>,
    records: Vec<Record>,
    /// End of the last distress moment, whether the customer has recovered since.
    last_distress: Option<f64>,
    recovered_since: bool,
    prior_empathy: bool,
    recent_agent: VecDeque<AgentTurn>,
    prev_t: Option<f64>,
}

impl OpportunityTracker {
    /// `release`: the stress level under which the customer counts as calm again.
    pub fn new(cfg: &EmpathyConfig, release: f32) -> Self {
        Self {
            window_s: cfg.window_s,
            episode_gap_s: cfg.episode_gap_s,
            recovery_s: cfg.recovery_s,
            recovery_hold_s: cfg.recovery_hold_s,
            release,
            open: None,
            records: Vec::new(),
            last_distress: None,
            recovered_since: false,
            prior_empathy: false,
            recent_agent: VecDeque::new(),
            prev_t: None,
        }
    }

    /// Resolved opportunities so far, in the order they resolved.
    pub fn records(&self) -> impl Iterator<Item = &Empathy> {
        self.records.iter().map(|r| &r.event)
    }

    /// The opportunity waiting for the agent's answer, if any.
    pub fn open(&self) -> Option<&Opportunity> {
        self.open.as_ref().map(|o| &o.opportunity)
    }

    /// Whether each resolved opportunity's episode included an escalation phrase.
    pub fn escalated(&self) -> Vec<bool> {
        self.records
            .iter()
            .map(|r| r.kinds.contains(&AlertKind::EscalationPhrase))
            .collect()
    }

    /// A customer distress moment; returns events of opportunities it resolves at once
    /// (an agent answer already heard).
    pub fn on_distress(&mut self, d: Distress) -> Vec<Empathy> {
        let same_episode = self.open.is_some()
            || self
                .last_distress
                .is_some_and(|t| d.start - t < self.episode_gap_s && !self.recovered_since);
        self.last_distress = Some(self.last_distress.map_or(d.end, |t| t.max(d.end)));
        self.recovered_since = false;
        // A new distress moment breaks any calm stretch being measured.
        for r in self.records.iter_mut().filter(|r| !r.done) {
            if d.end >= r.reference {
                r.hold_s = 0.0;
            }
        }
        if same_episode {
            let kinds = match (&mut self.open, self.records.last_mut()) {
                (Some(o), _) => Some(&mut o.kinds),
                (None, Some(r)) => Some(&mut r.kinds),
                (None, None) => None,
            };
            if let Some(k) = kinds.filter(|k| !k.contains(&d.kind)) {
                k.push(d.kind);
            }
            return Vec::new();
        }
        let deadline = d.end + self.window_s;
        self.open = Some(Open {
            opportunity: Opportunity {
                kind: d.kind,
                start: round3(d.start),
                end: round3(d.end),
                evidence: d.evidence,
            },
            deadline,
            kinds: vec![d.kind],
        });
        let turns: Vec<AgentTurn> = self.recent_agent.iter().cloned().collect();
        let mut out = Vec::new();
        for turn in turns {
            if let Some(e) = self.answer(&turn) {
                out.push(e);
                break;
            }
        }
        out
    }

    /// A transcribed agent utterance with its behaviours.
    pub fn on_agent(&mut self, start: f64, behaviours: &[Behaviour]) -> Vec<Empathy> {
        let turn = AgentTurn {
            start,
            behaviours: behaviours.to_vec(),
            prior_empathy: self.prior_empathy,
        };
        if behaviours.iter().any(|b| {
            matches!(
                b.kind,
                BehaviourKind::Acknowledge | BehaviourKind::Apologise
            )
        }) {
            self.prior_empathy = true;
        }
        if self.recent_agent.len() == RECENT_AGENT {
            self.recent_agent.pop_front();
        }
        self.recent_agent.push_back(turn.clone());
        self.answer(&turn).into_iter().collect()
    }

    /// Resolves the open opportunity if `turn` answers it.
    fn answer(&mut self, turn: &AgentTurn) -> Option<Empathy> {
        let open = self.open.as_ref()?;
        if turn.start < open.opportunity.start || turn.start > open.deadline {
            return None;
        }
        let pick = |k: BehaviourKind| turn.behaviours.iter().find(|b| b.kind == k);
        let (outcome, b) = if let Some(b) = pick(BehaviourKind::Dismiss) {
            (EmpathyOutcome::Harmed, b)
        } else if let Some(b) = turn.behaviours.iter().find(|b| {
            matches!(
                b.kind,
                BehaviourKind::Acknowledge | BehaviourKind::Apologise
            )
        }) {
            (EmpathyOutcome::Met, b)
        } else if let Some(b) = pick(BehaviourKind::Commit).filter(|_| turn.prior_empathy) {
            (EmpathyOutcome::Met, b)
        } else {
            return None;
        };
        let response = EmpathyResponse {
            start: round3(turn.start),
            kind: b.kind,
            words: b.words.clone(),
            latency_s: round3((turn.start - open.opportunity.end).max(0.0)),
        };
        let reference = turn.start;
        Some(self.resolve(outcome, Some(response), reference))
    }

    fn resolve(
        &mut self,
        outcome: EmpathyOutcome,
        response: Option<EmpathyResponse>,
        reference: f64,
    ) -> Empathy {
        let (opportunity, kinds) = match self.open.take() {
            Some(o) => (o.opportunity, o.kinds),
            None => (
                Opportunity {
                    kind: AlertKind::CustomerStress,
                    start: reference,
                    end: reference,
                    evidence: json!({}),
                },
                vec![AlertKind::CustomerStress],
            ),
        };
        let event = Empathy {
            opportunity,
            outcome,
            response,
            recovered: None,
            recovery_s: None,
        };
        self.records.push(Record {
            event: event.clone(),
            kinds,
            reference,
            hold_s: 0.0,
            heard_since: false,
            done: false,
        });
        event
    }

    /// Call time advanced to `t`. `stress`: the customer's live stress (None while they are
    /// silent). `agent_unheard_from`: start of the earliest agent speech not yet passed to
    /// [`OpportunityTracker::on_agent`] (open utterance or waiting for ASR).
    pub fn on_tick(
        &mut self,
        t: f64,
        stress: Option<f32>,
        agent_unheard_from: Option<f64>,
    ) -> Vec<Empathy> {
        let mut out = Vec::new();
        let dt = self.prev_t.map_or(0.0, |p| (t - p).max(0.0));
        self.prev_t = Some(t);
        if let Some(open) = &self.open {
            let deadline = open.deadline;
            let reply_pending = agent_unheard_from.is_some_and(|s| s <= deadline);
            if t > deadline && !reply_pending {
                out.push(self.resolve(EmpathyOutcome::Missed, None, deadline));
            }
        }
        let (release, hold_needed, limit) = (self.release, self.recovery_hold_s, self.recovery_s);
        let mut recovered_any = false;
        for r in self.records.iter_mut().filter(|r| !r.done) {
            if t < r.reference {
                continue;
            }
            if let Some(s) = stress {
                r.heard_since = true;
                if s < release {
                    r.hold_s += dt;
                } else {
                    r.hold_s = 0.0;
                }
            }
            if r.heard_since && r.hold_s >= hold_needed && stress.is_some_and(|s| s < release) {
                let calm_from = (t - r.hold_s).max(r.reference);
                r.event.recovered = Some(true);
                r.event.recovery_s = Some(round3(calm_from - r.reference));
                r.done = true;
                recovered_any = true;
                out.push(r.event.clone());
            } else if t - r.reference > limit {
                r.done = true;
                if r.heard_since {
                    r.event.recovered = Some(false);
                    out.push(r.event.clone());
                }
            }
        }
        if recovered_any {
            self.recovered_since = true;
        }
        out
    }

    /// The call ended at `t`: an open opportunity whose window has passed is missed (one cut
    /// short is dropped); open recoveries are decided (see the module docs).
    pub fn finish(&mut self, t: f64) -> Vec<Empathy> {
        let mut out = Vec::new();
        if let Some(open) = &self.open {
            if t > open.deadline {
                let deadline = open.deadline;
                out.push(self.resolve(EmpathyOutcome::Missed, None, deadline));
            } else {
                self.open = None;
            }
        }
        for r in self.records.iter_mut().filter(|r| !r.done) {
            r.done = true;
            if r.heard_since {
                r.event.recovered = Some(false);
                out.push(r.event.clone());
            }
        }
        out
    }

    /// `call_ended.summary.empathy`.
    pub fn summary(&self) -> EmpathySummary {
        let mut s = EmpathySummary::default();
        let mut latencies = Vec::new();
        for r in &self.records {
            s.opportunities += 1;
            match r.event.outcome {
                EmpathyOutcome::Met => {
                    s.met += 1;
                    if let Some(resp) = &r.event.response {
                        latencies.push(resp.latency_s);
                    }
                }
                EmpathyOutcome::Missed => s.missed += 1,
                EmpathyOutcome::Harmed => s.harmed += 1,
            }
            if r.event.recovered == Some(true) {
                s.recovered += 1;
            }
        }
        latencies.sort_by(f64::total_cmp);
        s.median_response_s = match latencies.len() {
            0 => None,
            n if n % 2 == 1 => Some(latencies[n / 2]),
            n => Some(round3((latencies[n / 2 - 1] + latencies[n / 2]) / 2.0)),
        };
        s
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker() -> OpportunityTracker {
        OpportunityTracker::new(&EmpathyConfig::default(), 0.5)
    }

    fn moment(kind: AlertKind, start: f64, end: f64) -> Distress {
        Distress {
            kind,
            start,
            end,
            evidence: json!({"words": "this is ridiculous"}),
        }
    }

    fn said(kind: BehaviourKind, words: &str) -> Vec<Behaviour> {
        vec![Behaviour {
            kind,
            words: words.into(),
        }]
    }

    /// Ticks every 0.1 s over `[from, to)` with a constant stress.
    fn ticks(tr: &mut OpportunityTracker, from: f64, to: f64, stress: Option<f32>) -> Vec<Empathy> {
        let mut out = Vec::new();
        let mut t = from;
        while t < to {
            out.extend(tr.on_tick(t, stress, None));
            t += 0.1;
        }
        out
    }

    #[test]
    fn acknowledgement_in_the_window_meets_it_with_latency() {
        let mut tr = tracker();
        assert!(tr
            .on_distress(moment(AlertKind::NegativeSentiment, 2.0, 5.0))
            .is_empty());
        assert!(ticks(&mut tr, 0.0, 6.0, None).is_empty());
        let e = tr.on_agent(6.5, &said(BehaviourKind::Acknowledge, "I understand"));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].outcome, EmpathyOutcome::Met);
        let r = e[0].response.as_ref().unwrap();
        assert_eq!((r.kind, r.latency_s), (BehaviourKind::Acknowledge, 1.5));
        assert_eq!(e[0].recovered, None);
        // Calm speech after the answer: recovered, measured from the answer.
        assert!(ticks(&mut tr, 6.5, 8.0, None).is_empty());
        let rec = ticks(&mut tr, 8.0, 12.0, Some(0.3));
        assert_eq!(rec.len(), 1, "{rec:?}");
        assert_eq!(rec[0].recovered, Some(true));
        let rs = rec[0].recovery_s.unwrap();
        assert!((1.4..=1.6).contains(&rs), "{rs}");
        let s = tr.summary();
        assert_eq!((s.opportunities, s.met, s.recovered), (1, 1, 1));
        assert_eq!(s.median_response_s, Some(1.5));
    }

    #[test]
    fn silence_past_the_window_is_missed_but_not_while_a_reply_is_transcribing() {
        let mut tr = tracker();
        tr.on_distress(moment(AlertKind::CustomerStress, 1.0, 4.0));
        // The agent started speaking at 18 s (inside the window ending at 19 s); its
        // transcript is still in the ASR queue at 20 s.
        assert!(tr.on_tick(20.0, None, Some(18.0)).is_empty());
        let e = tr.on_agent(18.0, &said(BehaviourKind::Apologise, "I'm sorry"));
        assert_eq!(e[0].outcome, EmpathyOutcome::Met);

        let mut tr = tracker();
        tr.on_distress(moment(AlertKind::CustomerStress, 1.0, 4.0));
        tr.on_agent(6.0, &[]); // an answer without empathy does not resolve it
        assert!(ticks(&mut tr, 4.0, 19.0, None).is_empty());
        let e = ticks(&mut tr, 19.0, 19.3, None);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].outcome, EmpathyOutcome::Missed);
        assert!(e[0].response.is_none());
        // Too late now.
        assert!(tr
            .on_agent(25.0, &said(BehaviourKind::Apologise, "sorry about that"))
            .is_empty());
        assert_eq!(tr.summary().missed, 1);
    }

    #[test]
    fn dismissal_harms_even_with_an_acknowledgement_in_the_same_breath() {
        let mut tr = tracker();
        tr.on_distress(moment(AlertKind::EscalationPhrase, 1.0, 3.0));
        let b = vec![
            Behaviour {
                kind: BehaviourKind::Acknowledge,
                words: "I understand".into(),
            },
            Behaviour {
                kind: BehaviourKind::Dismiss,
                words: "that's our policy".into(),
            },
        ];
        let e = tr.on_agent(4.0, &b);
        assert_eq!(e[0].outcome, EmpathyOutcome::Harmed);
        assert_eq!(e[0].response.as_ref().unwrap().words, "that's our policy");
    }

    #[test]
    fn commit_meets_only_after_an_earlier_acknowledgement() {
        let mut tr = tracker();
        tr.on_distress(moment(AlertKind::NegativeSentiment, 1.0, 3.0));
        assert!(tr
            .on_agent(4.0, &said(BehaviourKind::Commit, "I'll make sure"))
            .is_empty());
        let mut tr = tracker();
        tr.on_agent(0.5, &said(BehaviourKind::Apologise, "I'm sorry"));
        tr.on_distress(moment(AlertKind::NegativeSentiment, 1.0, 3.0));
        let e = tr.on_agent(4.0, &said(BehaviourKind::Commit, "I'll make sure"));
        assert_eq!(e[0].outcome, EmpathyOutcome::Met);
        assert_eq!(e[0].response.as_ref().unwrap().kind, BehaviourKind::Commit);
    }

    #[test]
    fn one_opportunity_per_episode() {
        let mut tr = tracker();
        tr.on_distress(moment(AlertKind::NegativeSentiment, 1.0, 3.0));
        tr.on_distress(moment(AlertKind::EscalationPhrase, 4.0, 6.0));
        tr.on_agent(7.0, &said(BehaviourKind::Acknowledge, "I understand"));
        // The stress alert of the same episode, 10 s later: no new opportunity.
        tr.on_distress(moment(AlertKind::CustomerStress, 5.0, 12.0));
        assert!(ticks(&mut tr, 7.0, 40.0, None).is_empty());
        assert_eq!(tr.summary().opportunities, 1);
        assert_eq!(tr.escalated(), vec![true], "the phrase joined the episode");
        // A new episode after a long calm gap opens a second one.
        tr.on_distress(moment(AlertKind::NegativeSentiment, 60.0, 62.0));
        let e = ticks(&mut tr, 40.0, 78.0, None);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].outcome, EmpathyOutcome::Missed);
        assert_eq!(e[0].opportunity.start, 60.0);
        assert_eq!(tr.summary().opportunities, 2);
    }

    #[test]
    fn an_answer_heard_before_the_distress_transcript_still_counts() {
        let mut tr = tracker();
        tr.on_agent(5.5, &said(BehaviourKind::Apologise, "I'm so sorry"));
        let e = tr.on_distress(moment(AlertKind::NegativeSentiment, 2.0, 5.0));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].outcome, EmpathyOutcome::Met);
        assert_eq!(e[0].response.as_ref().unwrap().latency_s, 0.5);
    }

    #[test]
    fn recovery_fails_on_high_stress_or_new_distress_and_is_unknown_without_speech() {
        let mut tr = tracker();
        tr.on_distress(moment(AlertKind::CustomerStress, 1.0, 4.0));
        tr.on_agent(5.0, &said(BehaviourKind::Acknowledge, "I understand"));
        // Short calm bits broken by high readings never add up to the hold.
        let mut t = 5.0;
        while t < 66.0 {
            let s = if (t * 10.0) as i64 % 20 < 10 {
                0.3
            } else {
                0.8
            };
            let out = tr.on_tick(t, Some(s), None);
            if let Some(e) = out.first() {
                assert_eq!(e.recovered, Some(false));
                assert!(t > 65.0, "decided at {t}");
            }
            t += 0.1;
        }
        assert_eq!(tr.summary().recovered, 0);

        let mut tr = tracker();
        tr.on_distress(moment(AlertKind::CustomerStress, 1.0, 4.0));
        tr.on_agent(5.0, &said(BehaviourKind::Acknowledge, "I understand"));
        let e = tr.finish(8.0);
        assert!(e.is_empty(), "the customer never spoke again: unknown");
        assert_eq!(tr.records().next().unwrap().recovered, None);
    }

    #[test]
    fn a_window_cut_short_by_the_end_of_the_call_is_not_scored() {
        let mut tr = tracker();
        tr.on_distress(moment(AlertKind::NegativeSentiment, 1.0, 3.0));
        assert!(tr.finish(10.0).is_empty());
        assert_eq!(tr.summary().opportunities, 0);
        let mut tr = tracker();
        tr.on_distress(moment(AlertKind::NegativeSentiment, 1.0, 3.0));
        let e = tr.finish(30.0);
        assert_eq!(e[0].outcome, EmpathyOutcome::Missed);
    }
}
