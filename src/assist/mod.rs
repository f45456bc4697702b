//! Live agent assist: short, rate-limited nudges for the agent of a call, raised and withdrawn
//! from what the pipeline already knows (see [`AssistKind`]).
//!
//! A pure state machine in call time, like the alert engine: the pipeline calls
//! [`AssistEngine::on_tick`] every 10 ms frame with voice activity, the open empathy
//! opportunity and the agent's speaking rate, and [`AssistEngine::on_utterance`] with each
//! transcript. Each call returns `assist` bodies: a nudge raised (`active: true`) or withdrawn
//! (`active: false`, same `assist_id`).
//!
//! Rules (thresholds in [`AssistConfig`]):
//! * a kind is raised when its condition holds, it is not active, its cooldown since its last
//!   withdrawal has passed, and no nudge of any kind was raised in the last `min_gap_s`; when
//!   several are due the most urgent goes first (supervisor, acknowledge, let_finish,
//!   dead_air, speaking_fast) and the rest wait while their condition still holds;
//! * a nudge is withdrawn as soon as its condition no longer holds (withdrawals are never
//!   delayed), and every active nudge is withdrawn when the call ends.
//!
//! Nudges read the customer's state and the agent's observable behaviour (timing, rate,
//! words), never an inferred emotion of the agent.

pub mod config;

use std::collections::{BTreeMap, VecDeque};

use serde_json::json;

pub use config::AssistConfig;

use crate::audio::Speaker;
use crate::emotion::phrases::PhraseMatcher;
use crate::events::{AlertKind, Assist, AssistKind, Opportunity};

/// Most urgent first.
const PRIORITY: [AssistKind; 5] = [
    AssistKind::Supervisor,
    AssistKind::Acknowledge,
    AssistKind::LetFinish,
    AssistKind::DeadAir,
    AssistKind::SpeakingFast,
];

/// What the pipeline knows at one frame.
#[derive(Debug, Clone, Copy, Default)]
pub struct AssistTick<'a> {
    pub t: f64,
    pub customer_voiced: bool,
    pub agent_voiced: bool,
    /// The empathy opportunity waiting for the agent's answer, if any.
    pub open_opportunity: Option<&'a Opportunity>,
    /// Agent speech started after the opportunity's distress moment is still being spoken
    /// or transcribed (it may be the answer).
    pub reply_pending: bool,
    /// The agent's words per second of speech over the last 20 s, and the seconds of agent
    /// speech they come from; `None` without transcribed agent speech in that time.
    pub agent_rate: Option<(f32, f64)>,
}

/// One call's nudges. See the module docs.
#[derive(Debug)]
pub struct AssistEngine {
    cfg: AssistConfig,
    call_id: String,
    next_n: u64,
    active: BTreeMap<AssistKind, String>,
    cool_until: BTreeMap<AssistKind, f64>,
    last_raise: Option<f64>,
    t: f64,
    /// Last frame with anyone's / the customer's voice.
    last_voice: Option<f64>,
    customer_spoke: bool,
    /// Start of the current agent-over-customer overlap and whether it was counted.
    overlap: Option<(f64, bool)>,
    prev_customer: bool,
    prev_agent: bool,
    interruptions: VecDeque<f64>,
    /// A customer's request for a supervisor: when, and the words.
    supervisor_request: Option<(f64, String)>,
    phrases: PhraseMatcher,
    answered_by: PhraseMatcher,
    finished: bool,
}

impl AssistEngine {
    /// `cfg` should have passed [`AssistConfig::validate`].
    pub fn new(call_id: &str, cfg: &AssistConfig) -> Self {
        Self {
            phrases: PhraseMatcher::new(&cfg.supervisor.phrases),
            answered_by: PhraseMatcher::new(&cfg.supervisor.answered_by),
            cfg: cfg.clone(),
            call_id: call_id.to_string(),
            next_n: 0,
            active: BTreeMap::new(),
            cool_until: BTreeMap::new(),
            last_raise: None,
            t: 0.0,
            last_voice: None,
            customer_spoke: false,
            overlap: None,
            prev_customer: false,
            prev_agent: false,
            interruptions: VecDeque::new(),
            supervisor_request: None,
            finished: false,
        }
    }

    /// Nudges active now.
    pub fn active(&self) -> impl Iterator<Item = AssistKind> + '_ {
        self.active.keys().copied()
    }

    /// A transcribed utterance (redacted words).
    pub fn on_utterance<S: AsRef<str>>(&mut self, speaker: Speaker, words: &[S]) {
        if !self.cfg.enabled || !self.cfg.supervisor.enabled || self.finished {
            return;
        }
        match speaker {
            Speaker::Customer => {
                let hit = self
                    .phrases
                    .find_words(words)
                    .into_iter()
                    .find(|m| !m.negated);
                if let Some(m) = hit {
                    let said = m.matched_words.join(" ");
                    let said = said.trim_matches(|c: char| c.is_ascii_punctuation());
                    self.supervisor_request = Some((self.t, said.to_string()));
                }
            }
            Speaker::Agent => {
                if self.supervisor_request.is_some()
                    && !self.answered_by.find_words(words).is_empty()
                {
                    self.supervisor_request = None;
                }
            }
        }
    }

    /// One frame; returns the nudges raised and withdrawn at `x.t`.
    pub fn on_tick(&mut self, x: &AssistTick<'_>) -> Vec<Assist> {
        let mut out = Vec::new();
        if !self.cfg.enabled || self.finished || !x.t.is_finite() || x.t < self.t {
            return out;
        }
        self.t = x.t;
        self.track_voices(x);
        // Withdraw what no longer applies.
        let kinds: Vec<AssistKind> = self.active.keys().copied().collect();
        for kind in kinds {
            if let Some(reason) = self.no_longer(kind, x) {
                out.push(self.withdraw(kind, reason));
            }
        }
        // Raise the most urgent due nudge, if the call's gap allows one now.
        let gap_ok = self
            .last_raise
            .is_none_or(|l| x.t - l >= self.cfg.min_gap_s);
        if gap_ok {
            for kind in PRIORITY {
                if self.active.contains_key(&kind)
                    || self.cool_until.get(&kind).is_some_and(|&u| x.t < u)
                {
                    continue;
                }
                if let Some(evidence) = self.due(kind, x) {
                    out.push(self.raise(kind, evidence));
                    break;
                }
            }
        }
        out
    }

    /// The call ended: every active nudge is withdrawn.
    pub fn finish(&mut self) -> Vec<Assist> {
        if self.finished {
            return Vec::new();
        }
        self.finished = true;
        let kinds: Vec<AssistKind> = self.active.keys().copied().collect();
        kinds
            .into_iter()
            .map(|k| self.withdraw(k, "call_ended"))
            .collect()
    }

    fn track_voices(&mut self, x: &AssistTick<'_>) {
        if x.customer_voiced || x.agent_voiced {
            self.last_voice = Some(x.t);
        }
        if x.customer_voiced {
            self.customer_spoke = true;
        }
        // The agent starts while the customer is speaking: an overlap that counts as an
        // interruption once both have gone on for `min_overlap_s`.
        let agent_onset = x.agent_voiced && !self.prev_agent;
        if agent_onset && x.customer_voiced && self.prev_customer {
            self.overlap = Some((x.t, false));
        }
        if !(x.customer_voiced && x.agent_voiced) {
            self.overlap = None;
        }
        if let Some((start, counted)) = &mut self.overlap {
            if !*counted && x.t - *start >= self.cfg.let_finish.min_overlap_s {
                *counted = true;
                self.interruptions.push_back(x.t);
            }
        }
        let window = self.cfg.let_finish.window_s;
        while self
            .interruptions
            .front()
            .is_some_and(|&t| x.t - t > window)
        {
            self.interruptions.pop_front();
        }
        self.prev_customer = x.customer_voiced;
        self.prev_agent = x.agent_voiced;
        if let Some((at, _)) = &self.supervisor_request {
            if x.t - at > self.cfg.supervisor.hold_s {
                self.supervisor_request = None;
            }
        }
    }

    fn silence_s(&self, t: f64) -> Option<f64> {
        self.last_voice
            .filter(|_| self.customer_spoke)
            .map(|v| t - v)
    }

    /// Evidence when `kind`'s condition for raising holds.
    fn due(&self, kind: AssistKind, x: &AssistTick<'_>) -> Option<serde_json::Value> {
        match kind {
            AssistKind::Acknowledge => {
                let c = &self.cfg.acknowledge;
                let o = x.open_opportunity?;
                // Not while the customer is talking: that would tell the agent to cut in.
                // Words still in the ASR queue do not hold it (they can only add distress).
                (c.enabled && !x.reply_pending && !x.customer_voiced && x.t - o.end >= c.after_s)
                    .then(|| {
                        json!({
                            "opportunity": o.kind,
                            "distress_start": o.start,
                            "distress_end": o.end,
                            "waiting_s": round1(x.t - o.end),
                            "what": distress_words(o.kind),
                        })
                    })
            }
            AssistKind::Supervisor => {
                let (at, words) = self.supervisor_request.as_ref()?;
                Some(json!({"words": words, "asked_at": round1(*at)}))
            }
            AssistKind::LetFinish => {
                let c = &self.cfg.let_finish;
                let n = self.interruptions.len();
                (c.enabled && n >= c.count as usize)
                    .then(|| json!({"interruptions": n, "window_s": c.window_s}))
            }
            AssistKind::DeadAir => {
                let c = &self.cfg.dead_air;
                let s = self.silence_s(x.t)?;
                (c.enabled && s >= c.min_s).then(|| json!({"silence_s": round1(s)}))
            }
            AssistKind::SpeakingFast => {
                let c = &self.cfg.speaking_fast;
                let (wps, speech_s) = x.agent_rate?;
                (c.enabled && speech_s >= c.min_speech_s && wps >= c.threshold_wps).then(|| {
                    json!({"words_per_s": round1(f64::from(wps)), "threshold_wps": c.threshold_wps})
                })
            }
        }
    }

    /// Why an active `kind` no longer applies, if it does not.
    fn no_longer(&self, kind: AssistKind, x: &AssistTick<'_>) -> Option<&'static str> {
        match kind {
            AssistKind::Acknowledge => x.open_opportunity.is_none().then_some("answered_or_passed"),
            AssistKind::Supervisor => self
                .supervisor_request
                .is_none()
                .then_some("answered_or_expired"),
            AssistKind::LetFinish => {
                let last = self.interruptions.back();
                last.is_none_or(|&t| x.t - t >= self.cfg.let_finish.clear_s)
                    .then_some("no_recent_interruption")
            }
            AssistKind::DeadAir => (x.customer_voiced || x.agent_voiced).then_some("speech"),
            AssistKind::SpeakingFast => match x.agent_rate {
                None => Some("agent_quiet"),
                Some((wps, _)) if wps <= self.cfg.speaking_fast.release_wps => Some("rate_down"),
                Some(_) => None,
            },
        }
    }

    fn raise(&mut self, kind: AssistKind, evidence: serde_json::Value) -> Assist {
        let id = format!("{}:assist:{}", self.call_id, self.next_n);
        self.next_n += 1;
        self.active.insert(kind, id.clone());
        self.last_raise = Some(self.t);
        Assist {
            assist_id: id,
            kind,
            message: message(kind, &evidence).to_string(),
            active: true,
            evidence,
        }
    }

    fn withdraw(&mut self, kind: AssistKind, reason: &str) -> Assist {
        let id = self.active.remove(&kind).unwrap_or_default();
        self.cool_until.insert(kind, self.t + self.cooldown(kind));
        Assist {
            assist_id: id,
            kind,
            message: message(kind, &serde_json::Value::Null).to_string(),
            active: false,
            evidence: json!({"reason": reason}),
        }
    }

    fn cooldown(&self, kind: AssistKind) -> f64 {
        match kind {
            AssistKind::Acknowledge => self.cfg.acknowledge.cooldown_s,
            AssistKind::Supervisor => self.cfg.supervisor.cooldown_s,
            AssistKind::LetFinish => self.cfg.let_finish.cooldown_s,
            AssistKind::DeadAir => self.cfg.dead_air.cooldown_s,
            AssistKind::SpeakingFast => self.cfg.speaking_fast.cooldown_s,
        }
    }
}

fn distress_words(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::CustomerStress => "rising stress in the customer's voice",
        AlertKind::EscalationPhrase => "an escalation phrase",
        _ => "negative words",
    }
}

/// The sentence the agent reads.
fn message(kind: AssistKind, evidence: &serde_json::Value) -> &'static str {
    match kind {
        AssistKind::Acknowledge => {
            if evidence["opportunity"] == "customer_stress" {
                "Customer sounds frustrated: acknowledge how they feel before solving."
            } else {
                "Customer is upset: acknowledge how they feel before solving."
            }
        }
        AssistKind::Supervisor => {
            "Customer asked for a supervisor: follow the escalation steps or offer a transfer."
        }
        AssistKind::LetFinish => "Let the customer finish before you answer.",
        AssistKind::DeadAir => "Long silence: tell the customer what you are doing.",
        AssistKind::SpeakingFast => "You are speaking fast: slow down a little.",
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: f64 = 0.01;

    /// Runs frames `from..to` seconds with `f(t)` giving (customer, agent) voice activity.
    fn run(
        e: &mut AssistEngine,
        from: f64,
        to: f64,
        opp: Option<&Opportunity>,
        f: impl Fn(f64) -> (bool, bool),
    ) -> Vec<(f64, Assist)> {
        let mut out = Vec::new();
        let n = ((to - from) / FRAME).round() as usize;
        for i in 0..n {
            let t = from + i as f64 * FRAME;
            let (c, a) = f(t);
            let x = AssistTick {
                t,
                customer_voiced: c,
                agent_voiced: a,
                open_opportunity: opp,
                ..Default::default()
            };
            out.extend(e.on_tick(&x).into_iter().map(|a| (t, a)));
        }
        out
    }

    fn engine() -> AssistEngine {
        AssistEngine::new("c1", &AssistConfig::default())
    }

    fn opportunity(end: f64) -> Opportunity {
        Opportunity {
            kind: AlertKind::CustomerStress,
            start: end - 3.0,
            end,
            evidence: json!({}),
        }
    }

    /// Turn-taking without overlap and without long pauses: nothing to say.
    fn calm_turns(t: f64) -> (bool, bool) {
        let p = t % 8.0;
        (p < 3.5, (4.0..7.5).contains(&p))
    }

    #[test]
    fn a_calm_call_gets_no_nudge() {
        let mut e = engine();
        let out = run(&mut e, 0.0, 600.0, None, calm_turns);
        assert!(out.is_empty(), "{out:?}");
        assert!(e.finish().is_empty());
    }

    #[test]
    fn an_unanswered_distress_moment_raises_acknowledge_and_its_answer_withdraws_it() {
        let mut e = engine();
        let o = opportunity(10.0);
        let out = run(&mut e, 0.0, 20.0, Some(&o), calm_turns);
        assert_eq!(out.len(), 1, "{out:?}");
        let (t, a) = &out[0];
        assert!(
            (13.0..13.05).contains(t),
            "raised {after} s after the moment",
            after = t - 10.0
        );
        assert_eq!(a.kind, AssistKind::Acknowledge);
        assert!(a.active);
        assert!(a.message.contains("acknowledge"));
        assert!(
            !a.message.to_lowercase().contains("you sound"),
            "nothing about the agent's feelings"
        );
        // The agent answers: the opportunity resolves, the nudge goes at once.
        let out = run(&mut e, 20.0, 21.0, None, calm_turns);
        assert_eq!(out.len(), 1);
        assert!(!out[0].1.active);
        assert_eq!(out[0].1.assist_id, a.assist_id);
    }

    #[test]
    fn a_reply_on_its_way_to_the_transcriber_holds_the_acknowledge_nudge() {
        let mut e = engine();
        let o = opportunity(10.0);
        for i in 0..1000 {
            let x = AssistTick {
                t: 10.0 + i as f64 * FRAME,
                open_opportunity: Some(&o),
                reply_pending: true,
                ..Default::default()
            };
            assert!(e.on_tick(&x).is_empty());
        }
    }

    #[test]
    fn repeated_interruptions_raise_let_finish_once_and_it_clears() {
        let mut e = engine();
        // The customer speaks 0–4 s of every 10 s; the agent cuts in at 2 s for 1.5 s.
        let interrupting = |t: f64| {
            let p = t % 10.0;
            (p < 4.0, (2.0..3.5).contains(&p) || (5.0..8.0).contains(&p))
        };
        let out = run(&mut e, 0.0, 40.0, None, interrupting);
        let raised: Vec<_> = out.iter().filter(|(_, a)| a.active).collect();
        assert_eq!(raised.len(), 1, "{out:?}");
        assert_eq!(raised[0].1.kind, AssistKind::LetFinish);
        // The second interruption (12.6 s) raises it, not the first.
        assert!((12.5..12.7).contains(&raised[0].0), "{}", raised[0].0);
        let out = run(&mut e, 40.0, 80.0, None, calm_turns);
        assert!(out.iter().any(|(t, a)| !a.active && *t < 55.0), "{out:?}");
    }

    #[test]
    fn dead_air_is_raised_after_min_s_and_withdrawn_by_speech() {
        let mut e = engine();
        let talk_then_hold = |t: f64| (t < 5.0, (5.5..7.0).contains(&t) || t >= 20.0);
        let out = run(&mut e, 0.0, 21.0, None, talk_then_hold);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].1.kind, AssistKind::DeadAir);
        assert!((14.98..15.02).contains(&out[0].0), "{}", out[0].0);
        assert!(!out[1].1.active);
        assert!((20.0..20.02).contains(&out[1].0));
    }

    #[test]
    fn nudges_are_spaced_by_min_gap_and_the_most_urgent_goes_first() {
        let mut e = engine();
        e.on_tick(&AssistTick {
            t: 0.0,
            ..Default::default()
        });
        e.on_utterance(
            Speaker::Customer,
            &["I", "want", "your", "supervisor,", "now"],
        );
        let o = opportunity(0.0);
        let out = run(&mut e, 0.0, 30.0, Some(&o), |_| (false, false));
        let raised: Vec<_> = out.iter().filter(|(_, a)| a.active).collect();
        assert_eq!(raised[0].1.kind, AssistKind::Supervisor);
        assert_eq!(raised[0].1.evidence["words"], "supervisor");
        assert_eq!(raised[1].1.kind, AssistKind::Acknowledge);
        assert!(raised[1].0 - raised[0].0 >= 10.0 - 1e-9, "{raised:?}");
        // Dead air cannot be raised: the customer never spoke.
        assert!(raised.iter().all(|(_, a)| a.kind != AssistKind::DeadAir));
        // The agent offers the transfer: the supervisor nudge goes.
        e.on_utterance(Speaker::Agent, &["I'll", "transfer", "you", "now"]);
        let out = e.on_tick(&AssistTick {
            t: 30.0,
            open_opportunity: Some(&o),
            ..Default::default()
        });
        assert!(
            out.iter()
                .any(|a| a.kind == AssistKind::Supervisor && !a.active),
            "{out:?}"
        );
        // The end of the call withdraws the rest.
        let end = e.finish();
        assert!(end.iter().all(|a| !a.active) && !end.is_empty());
        assert!(e.finish().is_empty());
    }

    #[test]
    fn negated_supervisor_words_do_not_count() {
        let mut e = engine();
        e.on_utterance(
            Speaker::Customer,
            &["no", "need", "to", "escalate", "it's", "fine"],
        );
        let out = run(&mut e, 0.0, 5.0, None, |_| (false, false));
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn fast_agent_speech_raises_and_a_slower_pace_withdraws() {
        let mut e = engine();
        let mut out = Vec::new();
        for (t, rate) in [
            (1.0, Some((4.2, 3.0))),
            (2.0, Some((4.2, 8.5))),
            (3.0, Some((3.3, 9.0))),
            (4.0, Some((2.9, 9.5))),
        ] {
            out.extend(e.on_tick(&AssistTick {
                t,
                agent_rate: rate,
                ..Default::default()
            }));
        }
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out[0].active && out[0].kind == AssistKind::SpeakingFast);
        assert_eq!(out[0].evidence["words_per_s"], 4.2);
        assert!(!out[1].active);
    }

    #[test]
    fn disabled_kinds_and_bad_time_say_nothing() {
        let mut cfg = AssistConfig::default();
        cfg.dead_air.enabled = false;
        let mut e = AssistEngine::new("c", &cfg);
        let out = run(&mut e, 0.0, 60.0, None, |t| (t < 1.0, false));
        assert!(out.is_empty());
        assert!(e
            .on_tick(&AssistTick {
                t: f64::NAN,
                ..Default::default()
            })
            .is_empty());
        cfg.enabled = false;
        let mut e = AssistEngine::new("c", &cfg);
        e.on_utterance(Speaker::Customer, &["supervisor"]);
        assert!(run(&mut e, 0.0, 60.0, Some(&opportunity(1.0)), |t| (
            t < 1.0,
            false
        ))
        .is_empty());
        assert!(AssistConfig::default().validate().is_ok());
        cfg.min_gap_s = -1.0;
        assert!(cfg.validate().unwrap_err().contains("assist.min_gap_s"));
    }

    #[test]
    fn acknowledge_waits_while_the_customer_has_the_floor() {
        let mut e = engine();
        let o = opportunity(10.0);
        // The customer goes on talking (more of the complaint) until 20 s: no nudge to cut
        // in before then.
        let mut out = Vec::new();
        for i in 0..1500 {
            let t = 10.0 + f64::from(i) * FRAME;
            let x = AssistTick {
                t,
                customer_voiced: t < 20.0,
                open_opportunity: Some(&o),
                ..Default::default()
            };
            out.extend(e.on_tick(&x).into_iter().map(|a| (t, a)));
        }
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].1.kind, AssistKind::Acknowledge);
        assert!((20.0..20.02).contains(&out[0].0), "{}", out[0].0);
    }
}
