//! QA report: what an analyst looks at after `calltone replay --out DIR`.
//!
//! Everything here is a pure function of a call's events (the same objects replay prints and
//! MQTT carries): [`CallReport::from_events`] gathers them, [`svg::timeline`] draws the stress
//! timeline, [`html::report_page`] renders one self-contained page per call, and
//! [`index::index_page`] lists several calls. No I/O, no clocks; `main.rs` writes the files.
//!
//! Invariants: every piece of text that came from a call (transcripts, messages, evidence,
//! call ids) goes through [`escape_html`] before it reaches markup, and pages reference no
//! external resource (edge boxes are offline; a report is mailed around as one file).

pub mod empathy_html;
pub mod html;
pub mod index;
pub mod svg;

use std::collections::BTreeMap;

use crate::audio::Speaker;
use crate::events::{Alert, AlertKind, CallEnded, Event, EventBody, SpeakerState, Utterance};

/// Stress levels that colour gauges and plots: below `amber` is calm (green), from `amber` to
/// `red` is raised (amber), `red` and above is high (red). They come from the
/// `customer_stress` alert rule (`release`, `threshold`) so the picture matches the alerts.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct StressLevels {
    pub amber: f32,
    pub red: f32,
}

impl Default for StressLevels {
    fn default() -> Self {
        let rule = crate::alerts::AlertConfig::default().customer_stress;
        Self::from_rule(&rule)
    }
}

impl StressLevels {
    pub fn from_rule(rule: &crate::alerts::config::StressRule) -> Self {
        Self {
            amber: rule.release,
            red: rule.threshold,
        }
    }

    /// `calm`, `raised` or `high`: the CSS class of a stress value.
    pub fn class(&self, stress: f32) -> &'static str {
        if stress >= self.red {
            "high"
        } else if stress >= self.amber {
            "raised"
        } else {
            "calm"
        }
    }
}

/// One speaker's `state` reading at call time `t`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub t: f64,
    pub state: SpeakerState,
}

/// One alert with the call time it was emitted at.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertAt {
    pub t: f64,
    pub alert: Alert,
}

/// An `empathy` event and when it was emitted.
#[derive(Debug, Clone, PartialEq)]
pub struct EmpathyAt {
    pub t: f64,
    pub empathy: crate::events::Empathy,
}

/// An `assist` event and when it was emitted.
#[derive(Debug, Clone, PartialEq)]
pub struct AssistAt {
    pub t: f64,
    pub assist: crate::events::Assist,
}

/// The events of one call, sorted by kind, as the report needs them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CallReport {
    pub call_id: String,
    pub source: String,
    /// The agent id from `call_started`, when the ingest named one.
    pub agent: Option<String>,
    /// From `call_started`; speakers only seen in later events are added in order of appearance.
    pub speakers: Vec<Speaker>,
    /// `call_ended.duration`, else the time of the last event.
    pub duration: f64,
    /// `state` readings per speaker, in call order.
    pub readings: BTreeMap<Speaker, Vec<Reading>>,
    pub utterances: Vec<Utterance>,
    pub alerts: Vec<AlertAt>,
    /// `empathy` events in order (an opportunity may appear twice: resolved, then recovered).
    pub empathy: Vec<EmpathyAt>,
    /// `assist` events (nudges raised and withdrawn) in order.
    pub assists: Vec<AssistAt>,
    pub ended: Option<CallEnded>,
}

impl CallReport {
    /// Gathers the events of one call (events of other calls are ignored: the first event's
    /// `call_id` decides). An empty slice gives an empty report.
    pub fn from_events(events: &[Event]) -> Self {
        let mut r = CallReport::default();
        let Some(first) = events.first() else {
            return r;
        };
        r.call_id = first.call_id.clone();
        let mut last_t: f64 = 0.0;
        for ev in events.iter().filter(|e| e.call_id == first.call_id) {
            last_t = last_t.max(ev.t);
            match &ev.body {
                EventBody::CallStarted(s) => {
                    r.source = s.source.clone();
                    r.agent = s.agent.clone();
                    for sp in &s.speakers {
                        r.add_speaker(*sp);
                    }
                }
                EventBody::State(s) => {
                    for (sp, st) in &s.speakers {
                        r.add_speaker(*sp);
                        r.readings.entry(*sp).or_default().push(Reading {
                            t: ev.t,
                            state: st.clone(),
                        });
                    }
                }
                EventBody::Utterance(u) => {
                    r.add_speaker(u.speaker);
                    last_t = last_t.max(u.end);
                    r.utterances.push(u.clone());
                }
                EventBody::Alert(a) => r.alerts.push(AlertAt {
                    t: ev.t,
                    alert: a.clone(),
                }),
                EventBody::Empathy(e) => r.empathy.push(EmpathyAt {
                    t: ev.t,
                    empathy: e.clone(),
                }),
                EventBody::Assist(a) => r.assists.push(AssistAt {
                    t: ev.t,
                    assist: a.clone(),
                }),
                EventBody::CallEnded(e) => r.ended = Some(e.clone()),
            }
        }
        r.duration = match &r.ended {
            Some(e) if e.duration > 0.0 => e.duration,
            _ => last_t,
        };
        r
    }

    fn add_speaker(&mut self, sp: Speaker) {
        if !self.speakers.contains(&sp) {
            self.speakers.push(sp);
        }
    }

    /// Highest stress of a speaker: the call summary's, else the highest `state` reading.
    pub fn peak_stress(&self, speaker: Speaker) -> Option<f32> {
        let summary = self
            .ended
            .as_ref()
            .and_then(|e| e.summary.speakers.get(&speaker))
            .and_then(|s| s.max_stress);
        summary.or_else(|| {
            self.readings
                .get(&speaker)?
                .iter()
                .filter_map(|r| r.state.stress)
                .reduce(f32::max)
        })
    }

    /// Mean stress of a speaker over the call, from the call summary.
    pub fn mean_stress(&self, speaker: Speaker) -> Option<f32> {
        self.ended
            .as_ref()
            .and_then(|e| e.summary.speakers.get(&speaker))
            .and_then(|s| s.mean_stress)
    }

    /// Alerts by kind, counted from the alert events (not the summary, so a report of a call
    /// cut short still counts what fired).
    pub fn alerts_by_kind(&self) -> BTreeMap<AlertKind, u32> {
        let mut m = BTreeMap::new();
        for a in &self.alerts {
            *m.entry(a.alert.kind).or_insert(0) += 1;
        }
        m
    }
}

/// Escapes text for HTML element content and double- or single-quoted attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Alert evidence for people: `key: value` pairs joined by ` · `, numbers to two decimals,
/// lists joined (`mean stress: 0.98 · phrases: ridiculous, cancel my account`).
pub fn evidence_text(v: &serde_json::Value) -> String {
    use serde_json::Value;
    fn value(v: &Value) -> String {
        match v {
            Value::Null => "–".into(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => i.to_string(),
                (None, Some(f)) => {
                    let s = format!("{f:.2}");
                    s.trim_end_matches('0').trim_end_matches('.').to_string()
                }
                _ => n.to_string(),
            },
            Value::String(s) => s.clone(),
            // Lists of word lists (matched words) read as phrases.
            Value::Array(a) if !a.is_empty() && a.iter().all(Value::is_array) => a
                .iter()
                .map(|x| match x {
                    Value::Array(words) => words.iter().map(value).collect::<Vec<_>>().join(" "),
                    other => value(other),
                })
                .collect::<Vec<_>>()
                .join("; "),
            Value::Array(a) => a.iter().map(value).collect::<Vec<_>>().join(", "),
            Value::Object(_) => v.to_string(),
        }
    }
    match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, x)| format!("{}: {}", k.replace('_', " "), value(x)))
            .collect::<Vec<_>>()
            .join(" · "),
        other => value(other),
    }
}

/// `m:ss` (or `h:mm:ss`) of a call time in seconds.
pub fn clock(t: f64) -> String {
    let s = t.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// Human name of an alert kind ("customer stress").
pub fn kind_label(kind: AlertKind) -> String {
    kind.as_str().replace('_', " ")
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! A small synthetic call shared by the report tests.
    use super::*;
    use crate::events::{
        CallStarted, CallSummary, EventStamper, ProsodySummary, Severity, SpeakerSummary, State,
    };

    pub fn utterance(speaker: Speaker, start: f64, end: f64, text: &str) -> Utterance {
        Utterance {
            speaker,
            start,
            end,
            text: text.into(),
            redacted: false,
            words: vec![],
            not_transcribed: None,
            language: None,
            sentiment: -0.4,
            arousal: (speaker == Speaker::Customer).then_some(0.8),
            emotion: (speaker == Speaker::Customer).then(|| "angry".into()),
            prosody: ProsodySummary::default(),
            behaviours: None,
        }
    }

    pub fn state(customer: f32, agent: f32) -> EventBody {
        let mut speakers = BTreeMap::new();
        speakers.insert(
            Speaker::Customer,
            SpeakerState {
                arousal: Some(customer),
                stress: Some(customer),
                emotion: Some("neutral".into()),
                talk_ratio: 0.6,
                speaking_rate_wps: Some(2.5),
                journey: None,
            },
        );
        speakers.insert(
            Speaker::Agent,
            SpeakerState {
                arousal: None,
                stress: Some(agent),
                emotion: None,
                talk_ratio: 0.4,
                speaking_rate_wps: Some(2.0),
                journey: None,
            },
        );
        EventBody::State(State { speakers })
    }

    pub fn alert(n: u32, kind: AlertKind, severity: Severity, at: f64) -> EventBody {
        EventBody::Alert(Alert {
            alert_id: format!("c1:alert:{n}"),
            kind,
            severity,
            speaker: Some(Speaker::Customer),
            start: at - 3.0,
            end: at,
            message: "Customer stress high for 3 s.".into(),
            evidence: serde_json::json!({"mean_stress": 0.82, "phrase": "<b>cancel</b>"}),
        })
    }

    /// 20 s call: stress rises to 0.9 around 10 s, two alerts, one hostile transcript.
    pub fn call() -> Vec<Event> {
        let mut st = EventStamper::new("c1");
        let mut ev = vec![st.stamp(
            0.0,
            "ts".into(),
            EventBody::CallStarted(CallStarted {
                source: "file".into(),
                speakers: vec![Speaker::Customer, Speaker::Agent],
                sample_rate: 8000,
                agent: None,
            }),
        )];
        for i in 1..=20 {
            let t = i as f64;
            let c = if (8..=14).contains(&i) { 0.9 } else { 0.2 };
            ev.push(st.stamp(t, "ts".into(), state(c, 0.1)));
            if i == 5 {
                ev.push(st.stamp(
                    t,
                    "ts".into(),
                    EventBody::Utterance(utterance(
                        Speaker::Customer,
                        1.0,
                        4.5,
                        "I want <script>alert('x')</script> & cancel",
                    )),
                ));
            }
            if i == 7 {
                ev.push(st.stamp(
                    t,
                    "ts".into(),
                    EventBody::Utterance(utterance(Speaker::Agent, 5.0, 6.8, "I understand.")),
                ));
            }
            if i == 11 {
                ev.push(st.stamp(
                    t,
                    "ts".into(),
                    alert(0, AlertKind::CustomerStress, Severity::Warning, t),
                ));
            }
            if i == 13 {
                ev.push(st.stamp(
                    t,
                    "ts".into(),
                    alert(1, AlertKind::EscalationPhrase, Severity::Critical, t),
                ));
            }
        }
        let mut summary = CallSummary::default();
        summary.speakers.insert(
            Speaker::Customer,
            SpeakerSummary {
                mean_stress: Some(0.4),
                max_stress: Some(0.9),
                talk_ratio: 0.6,
                talk_s: 8.0,
                overtalk_s: 0.5,
                silence_s: 3.0,
                utterances: 1,
            },
        );
        summary.alerts.insert(AlertKind::CustomerStress, 1);
        summary.alerts.insert(AlertKind::EscalationPhrase, 1);
        ev.push(st.stamp(
            20.0,
            "ts".into(),
            EventBody::CallEnded(CallEnded {
                reason: "end_of_file".into(),
                duration: 20.0,
                summary,
            }),
        ));
        ev
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gathers_one_call() {
        let r = CallReport::from_events(&fixtures::call());
        assert_eq!(r.call_id, "c1");
        assert_eq!(r.source, "file");
        assert_eq!(r.speakers, vec![Speaker::Customer, Speaker::Agent]);
        assert_eq!(r.duration, 20.0);
        assert_eq!(r.readings[&Speaker::Customer].len(), 20);
        assert_eq!(r.utterances.len(), 2);
        assert_eq!(r.alerts.len(), 2);
        assert_eq!(r.peak_stress(Speaker::Customer), Some(0.9));
        // The agent has no summary entry: the peak comes from the readings.
        assert_eq!(r.peak_stress(Speaker::Agent), Some(0.1));
        assert_eq!(r.alerts_by_kind()[&AlertKind::EscalationPhrase], 1);
    }

    #[test]
    fn empty_events_give_an_empty_report() {
        let r = CallReport::from_events(&[]);
        assert!(r.call_id.is_empty() && r.alerts.is_empty());
        assert_eq!(r.duration, 0.0);
    }

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape_html(r#"<script>alert("x") & 'y'</script>"#),
            "&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn evidence_reads_as_text() {
        let v = serde_json::json!({
            "mean_stress": 0.98, "threshold": 0.699999988079071, "duration_s": 3.0,
            "matched_words": [["ridiculous."], ["cancel", "my", "account."]],
            "phrases": ["ridiculous", "cancel my account"], "n": 4
        });
        assert_eq!(
            evidence_text(&v),
            "duration s: 3 · matched words: ridiculous.; cancel my account. · mean stress: 0.98 · n: 4 · phrases: ridiculous, cancel my account · threshold: 0.7"
        );
        assert_eq!(evidence_text(&serde_json::json!("x")), "x");
    }

    #[test]
    fn clock_and_levels() {
        assert_eq!(clock(0.4), "0:00");
        assert_eq!(clock(65.0), "1:05");
        assert_eq!(clock(3725.0), "1:02:05");
        let l = StressLevels {
            amber: 0.5,
            red: 0.7,
        };
        assert_eq!(l.class(0.2), "calm");
        assert_eq!(l.class(0.5), "raised");
        assert_eq!(l.class(0.7), "high");
    }
}
