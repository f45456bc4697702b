//! Empathy opportunities: a customer's distress moment, the agent's answer, the recovery.
//!
//! A pure state machine fed in call time by the pipeline:
//! * [`OpportunityTracker::on_distress`] — a `customer_stress` alert, a strongly negative
//!   customer utterance (`empathy.negative_sentiment`), a `negative_sentiment` alert or an
//!   escalation phrase. One opportunity per distress *episode*: moments less than
//!   `episode_gap_s` after the previous one (and before the customer recovered) join it.
//! * [`OpportunityTracker::on_agent`] — a transcribed agent utterance and its behaviours.
//! * [`OpportunityTracker::on_agent_audio`] — the agent's track has audio from this call time.
//! * [`OpportunityTracker::on_tick`] ([`EmpathyTick`]) — call time, the customer's live
//!   stress, and the start of agent and of customer speech not transcribed yet (so a reply
//!   still in the ASR queue is not "missed", and a customer utterance still in it is read
//!   before anything is concluded).
//!
//! Outcome of an opportunity opened by a moment `[start, end]`: the first agent utterance
//! starting in `[start, deadline]` with a relevant behaviour decides it —
//! `dismiss` → **harmed**; `acknowledge`/`apologise` → **met**; `commit` → **met** when the
//! agent has acknowledged or apologised earlier in the call ("commit after one of them").
//! The deadline is `end + window_s`; each later moment of the episode that joins the open
//! opportunity moves it to `max(deadline, moment end + window_s)` and the opportunity's `end`
//! to the moment's end: an agent who lets the customer finish a long complaint is not late.
//! The response's `latency_s` is the time from the end of the customer's turn to the start of
//! the answer: the end of the latest customer speech ([`OpportunityTracker::on_customer_speech`])
//! that began before the answer, or the opportunity's `end` if later; 0 for an agent who
//! talks over the customer. Waiting politely for the customer to finish costs nothing. No such utterance by the deadline → **missed**, but
//! only decided while the customer is neither speaking nor waiting for a transcript (their
//! words may be another moment of the episode). An opportunity whose window the end of the
//! call cuts short is not scored (the agent had no chance to answer) unless a full window
//! had passed after its first moment, nor is one whose
//! deadline passed before the agent's track had any audio (a mono file of the customer, an
//! agent leg that never connected, a transcript without agent lines): there was no agent to
//! score.
//!
//! Recovery: from the response (missed: the end of the window), the customer's live stress
//! readings must stay under the release level (`alerts.customer_stress.release`) for
//! `recovery_hold_s` (pauses do not count against it; a higher reading or a new distress
//! moment restarts it), within `recovery_s`. It is concluded only once no customer speech is
//! waiting for its transcript (that speech may be a new distress moment, which breaks the
//! calm stretch). `recovery_s` in the event is the time from the response to the start of
//! that calm stretch. At the end of the call, a recovery still open is `true` if the calm
//! stretch was long enough, `false` if the customer spoke again, else unknown (null); so is
//! one where the customer said nothing within `recovery_s`.

use std::collections::VecDeque;

use serde_json::json;

use crate::events::{
    AlertKind, Behaviour, BehaviourKind, Empathy, EmpathyOutcome, EmpathyResponse, EmpathySummary,
    Opportunity,
};

use super::config::EmpathyConfig;

/// Agent utterances kept for distress moments transcribed after the agent's answer.
const RECENT_AGENT: usize = 16;
/// Customer utterance spans kept to find the end of the customer's turn.
const RECENT_CUSTOMER: usize = 32;

/// One distress moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Distress {
    pub kind: AlertKind,
    pub start: f64,
    pub end: f64,
    pub evidence: serde_json::Value,
}

/// What the caller knows at one tick of call time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EmpathyTick {
    pub t: f64,
    /// The customer's live stress (None while they are silent).
    pub stress: Option<f32>,
    /// Start of the earliest agent speech not yet passed to [`OpportunityTracker::on_agent`]
    /// (open utterance or waiting for ASR).
    pub agent_unheard_from: Option<f64>,
    /// Start of the earliest customer speech not yet transcribed (open utterance or waiting
    /// for ASR).
    pub customer_unheard_from: Option<f64>,
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
    /// The deadline of the first moment alone (a full window the agent had).
    first_deadline: f64,
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
    /// Start of the current calm stretch.
    calm_from: Option<f64>,
    heard_since: bool,
    /// Recovery decided (or given up as unknown: the customer never spoke again in time).
    done: bool,
}

impl Record {
    /// The customer has been calm for the hold (the latest reading was calm).
    fn calm_enough(&self, hold_needed: f64) -> bool {
        self.heard_since && self.calm_from.is_some() && self.hold_s >= hold_needed
    }

    fn conclude_recovered(&mut self) {
        let calm_from = self.calm_from.unwrap_or(self.reference);
        self.event.recovered = Some(true);
        self.event.recovery_s = Some(round3(calm_from - self.reference));
        self.done = true;
    }
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
    /// `(start, end)` of the customer's recent utterances, in the order heard.
    recent_customer: VecDeque<(f64, f64)>,
    prev_t: Option<f64>,
    /// Call time from which the agent's track has audio (None: no agent heard yet).
    agent_audio_from: Option<f64>,
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
            recent_customer: VecDeque::new(),
            prev_t: None,
            agent_audio_from: None,
        }
    }

    /// The agent's track has audio from call time `from` (the earliest call counts).
    pub fn on_agent_audio(&mut self, from: f64) {
        if from.is_finite() {
            self.agent_audio_from = Some(self.agent_audio_from.map_or(from, |a| a.min(from)));
        }
    }

    /// Whether the agent's track has had any audio.
    pub fn agent_present(&self) -> bool {
        self.agent_audio_from.is_some()
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

    /// The customer spoke over `[start, end]` (a transcribed utterance; call it before the
    /// utterance's distress moments).
    pub fn on_customer_speech(&mut self, start: f64, end: f64) {
        if !(start.is_finite() && end.is_finite()) {
            return;
        }
        if self.recent_customer.len() == RECENT_CUSTOMER {
            self.recent_customer.pop_front();
        }
        self.recent_customer.push_back((start, end));
    }

    /// End of the customer's turn before an answer starting at `answer`: the latest end of
    /// customer speech that began before it, and never before the opportunity's `end`.
    fn turn_end(&self, opportunity_end: f64, answer: f64) -> f64 {
        self.recent_customer
            .iter()
            .filter(|(s, _)| *s < answer)
            .map(|(_, e)| *e)
            .fold(opportunity_end, f64::max)
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
                r.calm_from = None;
            }
        }
        if same_episode {
            let window = self.window_s;
            let kinds = match (&mut self.open, self.records.last_mut()) {
                (Some(o), _) => {
                    // The answer may wait until this moment is over.
                    o.deadline = o.deadline.max(d.end + window);
                    o.opportunity.end = o.opportunity.end.max(round3(d.end));
                    Some(&mut o.kinds)
                }
                (None, Some(r)) => Some(&mut r.kinds),
                (None, None) => None,
            };
            if let Some(k) = kinds.filter(|k| !k.contains(&d.kind)) {
                k.push(d.kind);
            }
            // An answer heard after the old deadline may be in the new window.
            return self.answer_recent();
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
            first_deadline: deadline,
            kinds: vec![d.kind],
        });
        self.answer_recent()
    }

    /// Resolves the open opportunity with the first recent agent turn that answers it.
    fn answer_recent(&mut self) -> Vec<Empathy> {
        if self.open.is_none() {
            return Vec::new();
        }
        let turns: Vec<AgentTurn> = self.recent_agent.iter().cloned().collect();
        for turn in turns {
            if let Some(e) = self.answer(&turn) {
                return vec![e];
            }
        }
        Vec::new()
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
            latency_s: round3(
                (turn.start - self.turn_end(open.opportunity.end, turn.start)).max(0.0),
            ),
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
            calm_from: None,
            heard_since: false,
            done: false,
        });
        event
    }

    /// Call time advanced to `x.t` (see [`EmpathyTick`]).
    pub fn on_tick(&mut self, x: &EmpathyTick) -> Vec<Empathy> {
        let (t, stress) = (x.t, x.stress);
        let mut out = Vec::new();
        let dt = self.prev_t.map_or(0.0, |p| (t - p).max(0.0));
        self.prev_t = Some(t);
        if let Some(open) = &self.open {
            let deadline = open.deadline;
            let reply_pending = x.agent_unheard_from.is_some_and(|s| s <= deadline);
            // The customer's words still on their way may be another moment of the episode
            // (a later deadline); the agent is not "late" while the customer holds the floor.
            let customer_pending = x.customer_unheard_from.is_some();
            if t > deadline && !reply_pending && !customer_pending {
                if self.agent_present_by(deadline) {
                    out.push(self.resolve(EmpathyOutcome::Missed, None, deadline));
                } else {
                    // No agent was there to answer: not scored.
                    self.open = None;
                }
            }
        }
        let (release, hold_needed, limit) = (self.release, self.recovery_hold_s, self.recovery_s);
        let customer_pending = x.customer_unheard_from.is_some_and(|s| s <= t);
        let mut recovered_any = false;
        for r in self.records.iter_mut().filter(|r| !r.done) {
            if t < r.reference {
                continue;
            }
            if let Some(s) = stress {
                r.heard_since = true;
                if s < release {
                    if r.calm_from.is_none() {
                        r.calm_from = Some((t - dt).max(r.reference));
                    }
                    r.hold_s += dt;
                } else {
                    r.hold_s = 0.0;
                    r.calm_from = None;
                }
            }
            if r.calm_enough(hold_needed) {
                // Speech still in the ASR queue may turn out to be distress (which breaks
                // the calm stretch): wait for its words.
                if customer_pending {
                    continue;
                }
                r.conclude_recovered();
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

    /// Whether the agent's track had audio by call time `t`.
    fn agent_present_by(&self, t: f64) -> bool {
        self.agent_audio_from.is_some_and(|a| a <= t)
    }

    /// The call ended at `t`: an open opportunity whose window has passed is missed (one cut
    /// short, or without an agent, is dropped); open recoveries are decided (see the module
    /// docs).
    pub fn finish(&mut self, t: f64) -> Vec<Empathy> {
        let mut out = Vec::new();
        if let Some(open) = &self.open {
            // The agent had a full window after the first moment: the end of the call cutting
            // short the time later moments added does not excuse it.
            let deadline = open.first_deadline;
            if t > deadline && self.agent_present_by(deadline) {
                out.push(self.resolve(EmpathyOutcome::Missed, None, deadline));
            } else {
                self.open = None;
            }
        }
        let hold_needed = self.recovery_hold_s;
        for r in self.records.iter_mut().filter(|r| !r.done) {
            if r.calm_enough(hold_needed) {
                // Its conclusion was waiting for the last transcripts, which were calm.
                r.conclude_recovered();
                out.push(r.event.clone());
            } else {
                r.done = true;
                if r.heard_since {
                    r.event.recovered = Some(false);
                    out.push(r.event.clone());
                }
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

    /// A tracker of a call whose agent's track has audio from the start.
    fn tracker() -> OpportunityTracker {
        let mut tr = OpportunityTracker::new(&EmpathyConfig::default(), 0.5);
        tr.on_agent_audio(0.0);
        tr
    }

    fn tick(t: f64, stress: Option<f32>) -> EmpathyTick {
        EmpathyTick {
            t,
            stress,
            ..Default::default()
        }
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
            out.extend(tr.on_tick(&tick(t, stress)));
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
    fn latency_runs_from_the_end_of_the_customers_turn() {
        // The distress moment ends at 5 s; the customer keeps talking until 14 s; the agent
        // apologises 0.8 s after they stop.
        let mut tr = tracker();
        tr.on_customer_speech(2.0, 5.0);
        tr.on_distress(moment(AlertKind::NegativeSentiment, 2.0, 5.0));
        tr.on_customer_speech(5.5, 14.0);
        let e = tr.on_agent(14.8, &said(BehaviourKind::Apologise, "I'm so sorry"));
        assert_eq!(e[0].response.as_ref().unwrap().latency_s, 0.8);
        assert_eq!(tr.summary().median_response_s, Some(0.8));
        // Speech after the answer began is not part of the turn it answered.
        let mut tr = tracker();
        tr.on_customer_speech(2.0, 5.0);
        tr.on_distress(moment(AlertKind::NegativeSentiment, 2.0, 5.0));
        tr.on_customer_speech(9.0, 12.0);
        let e = tr.on_agent(7.0, &said(BehaviourKind::Acknowledge, "I understand"));
        assert_eq!(e[0].response.as_ref().unwrap().latency_s, 2.0);
        // An agent who talks over the customer: 0, not negative.
        let mut tr = tracker();
        tr.on_customer_speech(2.0, 9.0);
        tr.on_distress(moment(AlertKind::NegativeSentiment, 2.0, 9.0));
        let e = tr.on_agent(7.5, &said(BehaviourKind::Apologise, "sorry"));
        assert_eq!(e[0].response.as_ref().unwrap().latency_s, 0.0);
    }

    #[test]
    fn silence_past_the_window_is_missed_but_not_while_a_reply_is_transcribing() {
        let mut tr = tracker();
        tr.on_distress(moment(AlertKind::CustomerStress, 1.0, 4.0));
        // The agent started speaking at 18 s (inside the window ending at 19 s); its
        // transcript is still in the ASR queue at 20 s.
        let pending = EmpathyTick {
            agent_unheard_from: Some(18.0),
            ..tick(20.0, None)
        };
        assert!(tr.on_tick(&pending).is_empty());
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
            let out = tr.on_tick(&tick(t, Some(s)));
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
        // A later moment moved the deadline past the end of the call, but the agent had a
        // full window after the first one (and said nothing empathic): missed.
        let mut tr = tracker();
        tr.on_distress(moment(AlertKind::EscalationPhrase, 1.0, 3.0));
        tr.on_distress(moment(AlertKind::NegativeSentiment, 8.0, 12.0));
        tr.on_agent(13.0, &[]);
        let e = tr.finish(20.0);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].outcome, EmpathyOutcome::Missed);
    }

    #[test]
    fn without_agent_audio_by_the_deadline_nothing_is_scored() {
        // No agent track at all (a mono file of the customer, a transcript without agent
        // lines, an agent leg that never connected).
        let mut tr = OpportunityTracker::new(&EmpathyConfig::default(), 0.5);
        tr.on_distress(moment(AlertKind::EscalationPhrase, 1.0, 4.0));
        assert!(ticks(&mut tr, 0.0, 40.0, Some(0.8)).is_empty());
        assert!(tr.open().is_none(), "dropped once its window closed");
        assert!(tr.finish(40.0).is_empty());
        assert_eq!(tr.summary().opportunities, 0);
        // Cut short by the end of the call, no agent either: nothing.
        let mut tr = OpportunityTracker::new(&EmpathyConfig::default(), 0.5);
        tr.on_distress(moment(AlertKind::EscalationPhrase, 1.0, 4.0));
        assert!(tr.finish(30.0).is_empty());
        // The agent's leg starts after the window closed: still nothing to score.
        let mut tr = OpportunityTracker::new(&EmpathyConfig::default(), 0.5);
        tr.on_agent_audio(25.0);
        tr.on_distress(moment(AlertKind::EscalationPhrase, 1.0, 4.0));
        assert!(ticks(&mut tr, 0.0, 30.0, None).is_empty());
        assert_eq!(tr.summary().opportunities, 0);
        // The agent joined inside the window and said nothing: missed.
        let mut tr = OpportunityTracker::new(&EmpathyConfig::default(), 0.5);
        tr.on_agent_audio(10.0);
        tr.on_distress(moment(AlertKind::EscalationPhrase, 1.0, 4.0));
        let e = ticks(&mut tr, 0.0, 30.0, None);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].outcome, EmpathyOutcome::Missed);
    }

    #[test]
    fn later_moments_of_the_episode_move_the_deadline_and_missed_waits_for_the_customer() {
        // A complaint of four moments, 2–27 s; the agent lets the customer finish and
        // apologises at 27.5 s, 25.5 s after the first moment ended.
        let mut tr = tracker();
        tr.on_distress(moment(AlertKind::NegativeSentiment, 2.0, 10.0));
        assert!(ticks(&mut tr, 0.0, 18.0, None).is_empty());
        tr.on_distress(moment(AlertKind::NegativeSentiment, 10.5, 18.0));
        assert!(ticks(&mut tr, 18.0, 27.0, None).is_empty());
        tr.on_distress(moment(AlertKind::CustomerStress, 18.5, 27.0));
        assert_eq!(tr.open().unwrap().end, 27.0, "the episode's latest moment");
        let e = tr.on_agent(27.5, &said(BehaviourKind::Apologise, "I'm so sorry"));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].outcome, EmpathyOutcome::Met);
        assert_eq!(e[0].response.as_ref().unwrap().latency_s, 0.5);

        // Past the deadline while the customer is still talking, or their words are still in
        // the ASR queue: not decided. Those words turn out to be more of the complaint and
        // the agent answers after them: met.
        let mut tr = tracker();
        tr.on_distress(moment(AlertKind::NegativeSentiment, 2.0, 4.0));
        for i in 0..60 {
            let x = EmpathyTick {
                customer_unheard_from: Some(17.0),
                ..tick(17.0 + f64::from(i) * 0.1, Some(0.8))
            };
            assert!(tr.on_tick(&x).is_empty(), "decided at {}", x.t);
        }
        assert!(tr
            .on_distress(moment(AlertKind::NegativeSentiment, 17.0, 22.0))
            .is_empty());
        assert!(ticks(&mut tr, 23.0, 24.0, None).is_empty());
        let e = tr.on_agent(24.0, &said(BehaviourKind::Acknowledge, "I understand"));
        assert_eq!(e[0].outcome, EmpathyOutcome::Met);
        assert_eq!(e[0].response.as_ref().unwrap().latency_s, 2.0);

        // An answer heard after the old deadline counts once a late transcript moves it.
        let mut tr = tracker();
        tr.on_distress(moment(AlertKind::NegativeSentiment, 2.0, 4.0));
        let x = EmpathyTick {
            customer_unheard_from: Some(15.0),
            ..tick(19.5, None)
        };
        assert!(tr.on_tick(&x).is_empty());
        assert!(tr
            .on_agent(19.2, &said(BehaviourKind::Apologise, "I'm sorry"))
            .is_empty());
        let e = tr.on_distress(moment(AlertKind::NegativeSentiment, 15.0, 19.0));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].outcome, EmpathyOutcome::Met);
    }

    #[test]
    fn recovery_waits_for_the_customers_words_still_in_asr() {
        // Met at 5 s; the customer then speaks at their own (high) level, which reads calm
        // relative to it, from 8 s; the words, still in the ASR queue, are more distress.
        let mut tr = tracker();
        tr.on_distress(moment(AlertKind::CustomerStress, 1.0, 4.0));
        tr.on_agent(5.0, &said(BehaviourKind::Acknowledge, "I understand"));
        let mut t = 5.0;
        while t < 14.0 {
            let x = EmpathyTick {
                customer_unheard_from: (t >= 8.0).then_some(8.0),
                ..tick(t, (t >= 8.0).then_some(0.3))
            };
            assert!(tr.on_tick(&x).is_empty(), "concluded at {t}");
            t += 0.1;
        }
        // The transcript: a distress moment of the same episode, no new opportunity.
        assert!(tr
            .on_distress(moment(AlertKind::NegativeSentiment, 8.0, 14.0))
            .is_empty());
        assert!(ticks(&mut tr, 14.0, 20.0, None).is_empty());
        assert_eq!(tr.summary().opportunities, 1);
        // Calm words later: recovered, measured from the calm stretch after the distress.
        let rec = ticks(&mut tr, 20.0, 23.0, Some(0.2));
        assert_eq!(rec.len(), 1, "{rec:?}");
        assert_eq!(rec[0].recovered, Some(true));
        let rs = rec[0].recovery_s.unwrap();
        assert!((14.8..=15.1).contains(&rs), "{rs}");
        assert!(tr.open().is_none());

        // Calm words still in the queue at the last tick: concluded when the call ends.
        let mut tr = tracker();
        tr.on_distress(moment(AlertKind::CustomerStress, 1.0, 4.0));
        tr.on_agent(5.0, &said(BehaviourKind::Acknowledge, "I understand"));
        let mut t = 5.0;
        while t < 10.0 {
            let x = EmpathyTick {
                customer_unheard_from: (t >= 6.0).then_some(6.0),
                ..tick(t, (t >= 6.0).then_some(0.2))
            };
            assert!(tr.on_tick(&x).is_empty());
            t += 0.1;
        }
        let e = tr.finish(10.0);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].recovered, Some(true));
    }
}
