//! Hand-off context: the caller's state so far, compact enough for a dialplan variable or a
//! CRM screen-pop, for whoever picks the call up (a supervisor, a person after a voice bot).
//!
//! [`ContextBuilder`] follows one call's events (pure, bounded memory) and gives a
//! [`HandoffContext`] at any time; `serve` keeps one per call for
//! `GET /api/calls/{call_id}/context` and publishes it retained on
//! `…/calls/{call_id}/context` (at most every `pipeline.context_interval_s`, cleared when the
//! call ends). [`HandoffContext::to_form`] is the same content as `key=value&…` for
//! Asterisk's `CURL()` with `CURLOPT(hashcompat)` and FreeSWITCH's `curl` API.
//!
//! Readings: `state` events repeat the customer's last stress while they are silent (it is a
//! state), so a `state` value counts as a reading of the customer's stress only when it
//! moved since the previous `state` (live stress is smoothed window by window and moves
//! while the customer speaks) or when it falls within a customer utterance heard so far.
//! Stress now: the latest reading, null once it is older than [`STALE_S`] seconds.
//! Trend: the mean of the readings over the last [`TREND_S`] seconds of the call against the
//! [`TREND_S`] seconds before; a difference of at least [`TREND_DELTA`] is
//! `rising`/`falling`, else `steady` (`unknown` without readings in both).
//! Peaks: the [`PEAKS`] highest readings at least [`PEAK_GAP_S`] apart (and at or above
//! [`PEAK_MIN`]), each with the customer's words around that time.
//! Escalation phrases: every one the customer said, found in their utterances by the
//! `escalation_phrase` rule, including those said inside the alert's cooldown (which spares
//! supervisors repeated alerts, not the person taking the call).
//! Empathy: present (zero counts) from the start while per-agent scoring is on.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::alerts::{AlertConfig, AlertEngine, UtteranceInfo};
use crate::audio::Speaker;
use crate::events::{AlertKind, EmpathyOutcome, Event, EventBody, JourneyLabel, Severity};

/// Seconds of stress readings each side of the trend comparison.
pub const TREND_S: f64 = 30.0;
/// Mean stress difference that counts as a trend.
pub const TREND_DELTA: f32 = 0.1;
/// A reading older than this is no stress "now", seconds.
pub const STALE_S: f64 = 10.0;
/// A `state` this long after the end of a customer utterance still reads it, seconds.
const SPAN_SLACK_S: f64 = 1.0;
/// Peak moments kept.
pub const PEAKS: usize = 3;
/// Peaks at least this far apart, seconds.
pub const PEAK_GAP_S: f64 = 10.0;
/// A stress reading under this is not a peak moment.
pub const PEAK_MIN: f32 = 0.5;
/// Last customer utterances in the context.
pub const LAST_UTTERANCES: usize = 3;
/// Customer utterances kept to find the words of a peak (older peaks keep their words).
const KEPT_UTTERANCES: usize = 64;
/// Alerts and escalation phrases listed (counts cover all).
const LISTED: usize = 5;
/// Longest text quoted for one utterance, characters.
const MAX_TEXT: usize = 200;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Peak {
    pub t: f64,
    pub stress: f32,
    /// The customer's (redacted) words around that moment, when transcribed.
    pub words: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Said {
    pub t: f64,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextAlert {
    pub t: f64,
    pub kind: AlertKind,
    pub severity: Severity,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContextEmpathy {
    pub met: u32,
    pub missed: u32,
    pub harmed: u32,
}

/// The hand-off context of one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandoffContext {
    pub call_id: String,
    /// Call time of the latest event, seconds.
    pub t: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The customer's stress now (0..1, relative to their own baseline); null while unknown.
    pub stress: Option<f32>,
    /// `rising`, `falling`, `steady` or `unknown` (see the module docs).
    pub trend: String,
    /// Highest stress so far.
    pub max_stress: Option<f32>,
    pub journey: Option<JourneyLabel>,
    pub peaks: Vec<Peak>,
    /// Escalation phrases the customer said (the last few), with the call time.
    pub escalation: Vec<Said>,
    pub escalation_count: u32,
    /// Alerts so far by kind, and the last few.
    pub alert_counts: BTreeMap<AlertKind, u32>,
    pub alerts: Vec<ContextAlert>,
    /// Empathy opportunities resolved so far, zero counts before the first (absent with
    /// per-agent scoring off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empathy: Option<ContextEmpathy>,
    /// The last few customer utterances, redacted, oldest first.
    pub last_utterances: Vec<Said>,
}

impl HandoffContext {
    /// The headline figures as `key=value&…` (URL-encoded), for dialplans: `stress`, `trend`,
    /// `max_stress`, `journey`, `escalations`, `alerts`, `peak_t`, `peak_words`, `last`.
    pub fn to_form(&self) -> String {
        let num = |x: Option<f32>| x.map_or(String::new(), |v| format!("{v:.2}"));
        let top = self
            .peaks
            .iter()
            .max_by(|a, b| a.stress.total_cmp(&b.stress));
        let alerts: u32 = self.alert_counts.values().sum();
        let pairs: [(&str, String); 9] = [
            ("stress", num(self.stress)),
            ("trend", self.trend.clone()),
            ("max_stress", num(self.max_stress)),
            (
                "journey",
                self.journey
                    .map_or(String::new(), |j| j.as_str().to_string()),
            ),
            ("escalations", self.escalation_count.to_string()),
            ("alerts", alerts.to_string()),
            (
                "peak_t",
                top.map_or(String::new(), |p| format!("{:.1}", p.t)),
            ),
            (
                "peak_words",
                top.and_then(|p| p.words.clone()).unwrap_or_default(),
            ),
            (
                "last",
                self.last_utterances
                    .last()
                    .map_or(String::new(), |s| s.text.clone()),
            ),
        ];
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// `application/x-www-form-urlencoded` value encoding.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Builds one call's [`HandoffContext`] from its events. See the module docs.
#[derive(Debug, Clone)]
pub struct ContextBuilder {
    call_id: String,
    agent: Option<String>,
    t: f64,
    /// The latest reading `(t, stress)` (see the module docs).
    latest: Option<(f64, f32)>,
    /// The previous `state`'s customer stress, read or repeated.
    last_state: Option<f32>,
    /// `(start, end)` of the customer's recent utterances, transcribed or not.
    spans: VecDeque<(f64, f64)>,
    /// The `escalation_phrase` rule, run on the customer's utterances.
    phrases: AlertEngine,
    max_stress: Option<f32>,
    /// `(t, stress)` of the last 2 × [`TREND_S`] seconds.
    readings: VecDeque<(f64, f32)>,
    peaks: Vec<Peak>,
    journey: Option<JourneyLabel>,
    utterances: VecDeque<(f64, f64, String)>,
    escalation: VecDeque<Said>,
    escalation_count: u32,
    alert_counts: BTreeMap<AlertKind, u32>,
    alerts: VecDeque<ContextAlert>,
    empathy: Option<ContextEmpathy>,
    changed: bool,
}

impl ContextBuilder {
    /// A call's context with the default alert rules and per-agent scoring on.
    pub fn new(call_id: &str) -> Self {
        Self::with_rules(call_id, &AlertConfig::default(), true)
    }

    /// A call's context with the configured escalation phrases (`alerts`) and
    /// `empathy.agent_scoring`.
    pub fn with_rules(call_id: &str, alerts: &AlertConfig, agent_scoring: bool) -> Self {
        let mut rules = AlertConfig {
            escalation_phrase: alerts.escalation_phrase.clone(),
            ..Default::default()
        };
        rules.escalation_phrase.include_agent = false;
        rules.customer_stress.enabled = false;
        rules.negative_sentiment.enabled = false;
        rules.overtalk.enabled = false;
        rules.long_silence.enabled = false;
        rules.agent_speaking_rate.enabled = false;
        Self {
            call_id: call_id.to_string(),
            agent: None,
            t: 0.0,
            latest: None,
            last_state: None,
            spans: VecDeque::new(),
            phrases: AlertEngine::new(call_id, rules).record_suppressed(),
            max_stress: None,
            readings: VecDeque::new(),
            peaks: Vec::new(),
            journey: None,
            utterances: VecDeque::new(),
            escalation: VecDeque::new(),
            escalation_count: 0,
            alert_counts: BTreeMap::new(),
            alerts: VecDeque::new(),
            empathy: agent_scoring.then(ContextEmpathy::default),
            changed: false,
        }
    }

    /// Applies one event of the call.
    pub fn observe(&mut self, ev: &Event) {
        if ev.call_id != self.call_id {
            return;
        }
        let now_before = self.stress_now();
        self.t = self.t.max(ev.t);
        self.observe_body(ev);
        if self.stress_now() != now_before {
            self.changed = true;
        }
    }

    /// The customer's stress now: the latest reading unless it is stale.
    fn stress_now(&self) -> Option<f32> {
        self.latest
            .filter(|(t, _)| self.t - t <= STALE_S)
            .map(|(_, s)| s)
    }

    fn observe_body(&mut self, ev: &Event) {
        match &ev.body {
            EventBody::CallStarted(s) => {
                self.agent = s.agent.clone();
                self.changed = true;
            }
            EventBody::State(s) => {
                let Some(c) = s.speakers.get(&Speaker::Customer) else {
                    return;
                };
                if c.journey != self.journey {
                    self.journey = c.journey;
                    self.changed = true;
                }
                let Some(st) = c.stress.filter(|s| s.is_finite()) else {
                    return;
                };
                let moved = self.last_state != Some(st);
                self.last_state = Some(st);
                let spoken = self
                    .spans
                    .iter()
                    .any(|&(s, e)| s <= ev.t && ev.t <= e + SPAN_SLACK_S);
                if moved || spoken {
                    self.latest = Some((ev.t, st));
                    self.reading(ev.t, st);
                }
            }
            EventBody::Utterance(u) if u.speaker == Speaker::Customer => {
                self.spans.push_back((u.start, u.end));
                if self.spans.len() > KEPT_UTTERANCES {
                    self.spans.pop_front();
                }
                if u.not_transcribed.is_some() || u.text.trim().is_empty() {
                    return;
                }
                let alerted = self.phrases.on_utterance(&UtteranceInfo::from(u));
                let held = self.phrases.take_suppressed();
                let said = alerted
                    .into_iter()
                    .map(|a| (a.start, a.evidence))
                    .chain(held.into_iter().map(|m| (m.start, m.evidence)));
                for (start, evidence) in said {
                    self.escalation_count += 1;
                    let words = evidence["phrases"]
                        .as_array()
                        .map(|p| {
                            p.iter()
                                .filter_map(|v| v.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_default();
                    push_bounded(
                        &mut self.escalation,
                        Said {
                            t: start,
                            text: clip(&words),
                        },
                    );
                }
                let text = clip(&u.text);
                for p in self.peaks.iter_mut().filter(|p| p.words.is_none()) {
                    if u.start - 1.0 <= p.t && p.t <= u.end + 1.0 {
                        p.words = Some(text.clone());
                    }
                }
                self.utterances.push_back((u.start, u.end, text));
                if self.utterances.len() > KEPT_UTTERANCES {
                    self.utterances.pop_front();
                }
                self.changed = true;
            }
            EventBody::Alert(a) => {
                *self.alert_counts.entry(a.kind).or_default() += 1;
                push_bounded(
                    &mut self.alerts,
                    ContextAlert {
                        t: ev.t,
                        kind: a.kind,
                        severity: a.severity,
                        message: a.message.clone(),
                    },
                );
                // Escalation phrases are read from the utterances (cooldown or not).
                self.changed = true;
            }
            EventBody::Empathy(e) if e.recovered.is_none() => {
                let c = self.empathy.get_or_insert_with(Default::default);
                match e.outcome {
                    EmpathyOutcome::Met => c.met += 1,
                    EmpathyOutcome::Missed => c.missed += 1,
                    EmpathyOutcome::Harmed => c.harmed += 1,
                }
                self.changed = true;
            }
            _ => {}
        }
    }

    fn reading(&mut self, t: f64, stress: f32) {
        self.max_stress = Some(self.max_stress.map_or(stress, |m| m.max(stress)));
        self.readings.push_back((t, stress));
        while self
            .readings
            .front()
            .is_some_and(|r| r.0 < t - 2.0 * TREND_S)
        {
            self.readings.pop_front();
        }
        if stress < PEAK_MIN {
            return;
        }
        // A reading near an existing peak replaces it when higher; else it joins the list
        // when it beats the lowest.
        if let Some(p) = self.peaks.iter_mut().find(|p| (p.t - t).abs() < PEAK_GAP_S) {
            if stress > p.stress {
                *p = Peak {
                    t,
                    stress,
                    words: None,
                };
                let words = self.words_at(t);
                if let Some(p) = self.peaks.iter_mut().find(|p| p.t == t) {
                    p.words = words;
                }
                self.changed = true;
            }
            return;
        }
        let words = self.words_at(t);
        self.peaks.push(Peak { t, stress, words });
        self.peaks.sort_by(|a, b| b.stress.total_cmp(&a.stress));
        self.peaks.truncate(PEAKS);
        self.peaks.sort_by(|a, b| a.t.total_cmp(&b.t));
        self.changed = true;
    }

    fn words_at(&self, t: f64) -> Option<String> {
        self.utterances
            .iter()
            .rev()
            .find(|(s, e, _)| s - 1.0 <= t && t <= e + 1.0)
            .map(|(_, _, w)| w.clone())
    }

    /// Whether anything a reader would see changed since the last [`Self::take_changed`].
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    pub fn snapshot(&self) -> HandoffContext {
        let mean = |from: f64, to: f64| {
            let v: Vec<f32> = self
                .readings
                .iter()
                .filter(|r| r.0 > from && r.0 <= to)
                .map(|r| r.1)
                .collect();
            (!v.is_empty()).then(|| v.iter().sum::<f32>() / v.len() as f32)
        };
        let now = self.t;
        let trend = match (
            mean(now - TREND_S, now),
            mean(now - 2.0 * TREND_S, now - TREND_S),
        ) {
            (Some(a), Some(b)) if a - b >= TREND_DELTA => "rising",
            (Some(a), Some(b)) if b - a >= TREND_DELTA => "falling",
            (Some(_), Some(_)) => "steady",
            _ => "unknown",
        };
        let r2 = |x: f32| (x * 100.0).round() / 100.0;
        HandoffContext {
            call_id: self.call_id.clone(),
            t: (self.t * 10.0).round() / 10.0,
            agent: self.agent.clone(),
            stress: self.stress_now().map(r2),
            trend: trend.into(),
            max_stress: self.max_stress.map(r2),
            journey: self.journey,
            peaks: self
                .peaks
                .iter()
                .map(|p| Peak {
                    t: (p.t * 10.0).round() / 10.0,
                    stress: r2(p.stress),
                    words: p.words.clone(),
                })
                .collect(),
            escalation: self.escalation.iter().cloned().collect(),
            escalation_count: self.escalation_count,
            alert_counts: self.alert_counts.clone(),
            alerts: self.alerts.iter().cloned().collect(),
            empathy: self.empathy.clone(),
            last_utterances: self
                .utterances
                .iter()
                .skip(self.utterances.len().saturating_sub(LAST_UTTERANCES))
                .map(|(s, _, text)| Said {
                    t: *s,
                    text: text.clone(),
                })
                .collect(),
        }
    }
}

fn push_bounded<T>(q: &mut VecDeque<T>, x: T) {
    q.push_back(x);
    if q.len() > LISTED {
        q.pop_front();
    }
}

fn clip(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(MAX_TEXT) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Alert, EventStamper, ProsodySummary, SpeakerState, State, Utterance};

    fn state(st: &mut EventStamper, t: f64, stress: f32) -> Event {
        let mut speakers = BTreeMap::new();
        speakers.insert(
            Speaker::Customer,
            SpeakerState {
                stress: Some(stress),
                journey: Some(JourneyLabel::Worsening),
                ..Default::default()
            },
        );
        st.stamp(t, String::new(), EventBody::State(State { speakers }))
    }

    fn said(st: &mut EventStamper, start: f64, end: f64, text: &str) -> Event {
        st.stamp(
            end,
            String::new(),
            EventBody::Utterance(Utterance {
                speaker: Speaker::Customer,
                start,
                end,
                text: text.into(),
                redacted: false,
                words: vec![],
                not_transcribed: None,
                language: None,
                sentiment: 0.0,
                arousal: None,
                emotion: None,
                prosody: ProsodySummary::default(),
                behaviours: None,
            }),
        )
    }

    #[test]
    fn a_call_that_heats_up_reads_rising_with_its_peak_words() {
        let mut st = EventStamper::new("c");
        let mut b = ContextBuilder::new("c");
        // Live stress moves from one `state` to the next while the customer speaks.
        for i in 0..60 {
            let s = if i % 2 == 0 { 0.2 } else { 0.21 };
            b.observe(&state(&mut st, f64::from(i), s));
        }
        b.observe(&said(
            &mut st,
            60.0,
            64.0,
            "This is the third time I call about it",
        ));
        for i in 60..90 {
            let s = match i {
                62 => 0.95,
                _ if i % 2 == 0 => 0.72,
                _ => 0.7,
            };
            b.observe(&state(&mut st, f64::from(i), s));
        }
        b.observe(&said(&mut st, 66.0, 68.0, "I want to cancel"));
        for i in 0..12 {
            b.observe(&said(
                &mut st,
                70.0 + f64::from(i),
                70.5 + f64::from(i),
                &format!("line {i}"),
            ));
        }
        b.observe(&st.stamp(
            80.0,
            String::new(),
            EventBody::Alert(Alert {
                alert_id: "c:alert:0".into(),
                kind: AlertKind::EscalationPhrase,
                severity: Severity::Warning,
                speaker: Some(Speaker::Customer),
                start: 79.0,
                end: 80.0,
                message: "Customer said \"cancel\".".into(),
                evidence: serde_json::json!({"phrases": ["cancel"]}),
            }),
        ));
        let c = b.snapshot();
        assert_eq!(c.trend, "rising");
        assert_eq!(c.stress, Some(0.7));
        assert_eq!(c.max_stress, Some(0.95));
        assert_eq!(c.journey, Some(JourneyLabel::Worsening));
        let top = c.peaks.iter().find(|p| p.stress == 0.95).expect("the peak");
        assert_eq!(top.t, 62.0);
        assert_eq!(
            top.words.as_deref(),
            Some("This is the third time I call about it")
        );
        assert!(c.peaks.len() <= PEAKS);
        assert!(c.peaks.windows(2).all(|w| w[1].t - w[0].t >= PEAK_GAP_S));
        assert_eq!(c.escalation_count, 1);
        assert_eq!(c.escalation[0].text, "cancel");
        assert_eq!(c.escalation[0].t, 66.0);
        assert_eq!(c.alert_counts[&AlertKind::EscalationPhrase], 1);
        assert_eq!(c.last_utterances.len(), LAST_UTTERANCES);
        assert_eq!(c.last_utterances[2].text, "line 11");
        let form = c.to_form();
        assert!(form.starts_with("stress=0.70&trend=rising&max_stress=0.95&journey=worsening&escalations=1&alerts=1&peak_t=62.0&peak_words=This+is+the+third+time"), "{form}");
        assert!(form.ends_with("&last=line+11"), "{form}");
    }

    #[test]
    fn calm_and_falling_and_unknown() {
        let mut st = EventStamper::new("c");
        let mut b = ContextBuilder::new("c");
        assert_eq!(b.snapshot().trend, "unknown");
        for i in 0..60 {
            b.observe(&state(
                &mut st,
                f64::from(i),
                if i < 30 { 0.8 } else { 0.3 },
            ));
        }
        let c = b.snapshot();
        assert_eq!(c.trend, "falling");
        // Another call's events are ignored; memory stays bounded.
        let mut other = EventStamper::new("d");
        b.observe(&state(&mut other, 100.0, 0.99));
        assert_eq!(b.snapshot().max_stress, Some(0.8));
        for i in 0..100_000 {
            b.observe(&said(&mut st, f64::from(i), f64::from(i) + 0.5, "x"));
        }
        assert!(b.utterances.len() <= KEPT_UTTERANCES);
        assert!(b.take_changed());
        assert!(!b.take_changed());
    }

    #[test]
    fn a_stress_repeated_while_the_customer_is_silent_is_no_reading() {
        let mut st = EventStamper::new("c");
        let mut b = ContextBuilder::new("c");
        // The customer speaks for 20 s, their stress rising to 0.9; then the agent talks for
        // a minute and every `state` repeats the customer's last value.
        for i in 0..20 {
            b.observe(&state(&mut st, f64::from(i), 0.45 + 0.45 * i as f32 / 19.0));
        }
        b.observe(&said(&mut st, 0.0, 19.5, "I have been charged twice"));
        for i in 20..25 {
            b.observe(&state(&mut st, f64::from(i), 0.9));
        }
        assert_eq!(b.snapshot().stress, Some(0.9), "a moment ago");
        for i in 25..90 {
            b.observe(&state(&mut st, f64::from(i), 0.9));
        }
        let c = b.snapshot();
        assert_eq!(c.stress, None, "no reading for 70 s: {c:?}");
        assert_eq!(c.trend, "unknown", "no readings in the last minute: {c:?}");
        assert_eq!(c.max_stress, Some(0.9));
        // One peak where the customer spoke, not one every 10 s of silence.
        assert_eq!(c.peaks.len(), 1, "{:?}", c.peaks);
        assert_eq!(c.peaks[0].t, 19.0);
        assert_eq!(
            c.peaks[0].words.as_deref(),
            Some("I have been charged twice")
        );
        // The customer speaks again: a value equal to the last counts inside their utterance.
        b.observe(&said(&mut st, 89.0, 95.0, "Hello?"));
        b.observe(&state(&mut st, 95.0, 0.9));
        assert_eq!(b.snapshot().stress, Some(0.9));
        assert!(b.take_changed());
    }

    #[test]
    fn escalation_phrases_inside_the_alert_cooldown_are_listed() {
        let mut st = EventStamper::new("c");
        let mut b = ContextBuilder::new("c");
        b.observe(&said(&mut st, 10.0, 12.0, "Get me a supervisor."));
        // 20 s later: inside the phrase alert's 60 s cooldown, no alert; still said.
        b.observe(&said(&mut st, 32.0, 35.0, "I want to cancel my account."));
        b.observe(&said(
            &mut st,
            40.0,
            42.0,
            "I don't want to cancel, I want it fixed.",
        ));
        let c = b.snapshot();
        assert_eq!(c.escalation_count, 2, "{c:?}");
        let listed: Vec<(f64, &str)> = c
            .escalation
            .iter()
            .map(|s| (s.t, s.text.as_str()))
            .collect();
        assert_eq!(
            listed,
            vec![(10.0, "supervisor"), (32.0, "cancel my account")]
        );
        // Configured phrases only.
        let mut rules = AlertConfig::default();
        rules.escalation_phrase.phrases = vec!["fix it now".into()];
        let mut b = ContextBuilder::with_rules("c", &rules, true);
        let mut st = EventStamper::new("c");
        b.observe(&said(&mut st, 10.0, 12.0, "Get me a supervisor."));
        b.observe(&said(&mut st, 13.0, 15.0, "Fix it now."));
        let c = b.snapshot();
        assert_eq!(c.escalation_count, 1, "{c:?}");
        assert_eq!(c.escalation[0].text, "fix it now");
    }

    #[test]
    fn the_empathy_section_is_there_from_the_first_context() {
        let mut st = EventStamper::new("c");
        let mut b = ContextBuilder::new("c");
        b.observe(&st.stamp(
            0.0,
            String::new(),
            EventBody::CallStarted(crate::events::CallStarted {
                source: "test".into(),
                speakers: vec![Speaker::Customer, Speaker::Agent],
                sample_rate: 8000,
                agent: None,
            }),
        ));
        let json = serde_json::to_value(b.snapshot()).unwrap();
        assert_eq!(
            json["empathy"],
            serde_json::json!({"met": 0, "missed": 0, "harmed": 0}),
            "{json}"
        );
        // With per-agent scoring off there is no agent to score: no section.
        let b = ContextBuilder::with_rules("c", &AlertConfig::default(), false);
        let json = serde_json::to_value(b.snapshot()).unwrap();
        assert!(json.get("empathy").is_none(), "{json}");
    }

    #[test]
    fn form_values_are_encoded() {
        assert_eq!(form_encode("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
    }
}
