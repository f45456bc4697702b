//! `calltone rescore`: the transcript-level analysis run again on stored calls, with the
//! current config, without audio or Whisper.
//!
//! Input is either a call's events as JSON lines (what `replay --out` writes, or a dump of the
//! MQTT topics: duplicates are dropped by `event_id`, order restored by `seq`), or a plain
//! transcript from another system: JSON lines of `speaker` (`agent`|`customer`), `start`,
//! `end` (seconds) and `text`.
//!
//! What is computed again: utterance sentiment and agent behaviours, the transcript alerts
//! (`escalation_phrase`, `negative_sentiment`, `agent_speaking_rate`, `empathy_missed`),
//! empathy opportunities, the journey and the scorecard, and `call_ended.summary`'s alert
//! counts. The customer's stress comes from the stored `state` ticks (a reading counts while
//! a customer utterance spans it, as the live stress only reads open speech); the audio
//! alerts (`customer_stress`, `overtalk`, `long_silence`) are kept as recorded, renumbered.
//! Everything else (prosody, arousal, words, assist nudges) is kept as it was.
//!
//! A transcript has no audio: no stress, no arousal; `overtalk` and `long_silence` alerts and
//! the speakers' talk, overtalk and silence times come from the utterance spans.
//!
//! The analysis is clocked every [`TICK_S`] of call time; the live pipeline clocks it every
//! 10 ms, so a recovery time can differ from the live one by up to a tick or a state interval.
//! Pure apart from [`read_calls`]; `main.rs` writes the files.

use std::collections::{BTreeMap, HashSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::alerts::{AlertEngine, Tick, UtteranceInfo};
use crate::audio::Speaker;
use crate::config::Config;
use crate::empathy::CallEmpathy;
use crate::events::{
    AlertKind, CallEnded, CallStarted, CallSummary, Event, EventBody, EventStamper, ProsodySummary,
    SpeakerSummary, Utterance,
};
use crate::pipeline::Analyzers;

/// Call time between two analysis ticks, seconds.
pub const TICK_S: f64 = 0.1;

/// Lines longer than this are refused (a transcript line or an event is a few kB).
const MAX_LINE_BYTES: usize = 1 << 20;

/// What went wrong with an input; the message names the file (and the line).
#[derive(Debug, thiserror::Error)]
pub enum RescoreError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{path}: line {line}: {message}")]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// One stored call to re-score.
#[derive(Debug, Clone)]
pub struct CallInput {
    /// The key the call was grouped by (`call_id`, or `call_id:run` for serve's events).
    pub name: String,
    pub events: Vec<Event>,
    /// From a plain transcript (no audio behind it).
    pub transcript: bool,
}

impl CallInput {
    /// Names the agent on `call_started` when the input did not.
    pub fn set_agent_if_unnamed(&mut self, agent: &str) {
        if let Some(EventBody::CallStarted(s)) = self.events.first_mut().map(|e| &mut e.body) {
            s.agent.get_or_insert_with(|| agent.to_string());
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TranscriptLine {
    speaker: Speaker,
    start: f64,
    end: f64,
    text: String,
}

/// Reads one input file: the calls in it, in order of first appearance.
pub fn read_calls(path: &Path, clock: fn() -> String) -> Result<Vec<CallInput>, RescoreError> {
    let file_err = |message: String| RescoreError::File {
        path: path.to_path_buf(),
        message,
    };
    let line_err = |line: usize, message: String| RescoreError::Line {
        path: path.to_path_buf(),
        line,
        message,
    };
    let f = std::fs::File::open(path).map_err(|e| file_err(e.to_string()))?;
    let mut reader = std::io::BufReader::new(f);
    let mut events: Vec<Event> = Vec::new();
    let mut lines: Vec<TranscriptLine> = Vec::new();
    let mut buf = Vec::new();
    let mut n = 0;
    let mut skipped = 0usize;
    let mut first_skipped: Option<(usize, String)> = None;
    let mut torn: Option<(usize, String)> = None;
    loop {
        buf.clear();
        let read = std::io::Read::take(&mut reader, MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| file_err(e.to_string()))?;
        if read == 0 {
            break;
        }
        n += 1;
        if buf.len() > MAX_LINE_BYTES {
            return Err(line_err(n, format!("longer than {MAX_LINE_BYTES} bytes")));
        }
        let text = std::str::from_utf8(&buf).map_err(|_| line_err(n, "not UTF-8".into()))?;
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        // Once the file is an event stream (a dump of the MQTT topics, say), a line that is
        // not an event is set aside, not a reason to refuse every call of the file: a torn
        // last line of a capture that was killed, a retained hand-off `context` payload. A
        // call it leaves without its `call_ended` is still refused, naming it.
        let in_events = !events.is_empty();
        // A line cut off is only a torn *last* line: one followed by more is damage.
        if let Some((line, why)) = torn.take() {
            return Err(line_err(line, why));
        }
        let mut skip = |line: usize, why: String| {
            skipped += 1;
            first_skipped.get_or_insert((line, why));
        };
        let value: serde_json::Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) if in_events => {
                torn = Some((n, format!("not JSON: {e}")));
                continue;
            }
            Err(e) => return Err(line_err(n, format!("not JSON: {e}"))),
        };
        if value.get("type").is_some() {
            if !lines.is_empty() {
                return Err(line_err(n, "an event in a transcript".into()));
            }
            // An event that does not parse is refused, not skipped: a call rescored without
            // one of its utterances would be scored wrong without a word.
            let e: Event = serde_json::from_value(value)
                .map_err(|e| line_err(n, format!("not a calltone event: {e}")))?;
            events.push(e);
        } else {
            if in_events {
                skip(n, "not an event (no `type`: a hand-off context?)".into());
                continue;
            }
            let l: TranscriptLine = serde_json::from_value(value).map_err(|e| {
                line_err(
                    n,
                    format!("not a transcript line (speaker, start, end, text): {e}"),
                )
            })?;
            if !(l.start.is_finite() && l.end.is_finite() && l.start >= 0.0 && l.end >= l.start) {
                return Err(line_err(n, "start and end must be 0 ≤ start ≤ end".into()));
            }
            lines.push(l);
        }
    }
    if !lines.is_empty() {
        let id = crate::replay::call_id_for(path);
        return Ok(vec![transcript_call(&id, lines, clock)]);
    }
    if events.is_empty() {
        return Err(file_err("no events and no transcript lines".into()));
    }
    if let Some((line, why)) = torn {
        skipped += 1;
        first_skipped.get_or_insert((line, format!("{why}; the last line, cut off")));
    }
    if let Some((line, why)) = first_skipped {
        tracing::warn!(
            file = %path.display(),
            skipped,
            first = line,
            "{skipped} line(s) that are not calltone events skipped (line {line}: {why})"
        );
    }
    Ok(group_events(events))
}

/// Groups events by call (and serve run), drops repeats of an `event_id`, orders by `seq`.
fn group_events(events: Vec<Event>) -> Vec<CallInput> {
    let mut order: Vec<String> = Vec::new();
    let mut calls: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    let mut seen = HashSet::new();
    for e in events {
        if !seen.insert(e.event_id.clone()) {
            continue;
        }
        let key = run_key(&e);
        if !calls.contains_key(&key) {
            order.push(key.clone());
        }
        calls.entry(key).or_default().push(e);
    }
    order
        .into_iter()
        .map(|name| {
            let mut events = calls.remove(&name).unwrap_or_default();
            events.sort_by_key(|e| e.seq);
            CallInput {
                name,
                events,
                transcript: false,
            }
        })
        .collect()
}

/// `event_id` without its `:{seq}` suffix: `call_id` (replay) or `call_id:run` (serve).
fn run_key(e: &Event) -> String {
    let suffix = format!(":{}", e.seq);
    match e.event_id.strip_suffix(&suffix) {
        Some(k) if k.starts_with(&e.call_id) => k.to_string(),
        _ => e.call_id.clone(),
    }
}

/// A plain transcript as the events of a call without audio.
fn transcript_call(id: &str, mut lines: Vec<TranscriptLine>, clock: fn() -> String) -> CallInput {
    lines.sort_by(|a, b| a.start.total_cmp(&b.start));
    let mut speakers: Vec<Speaker> = Vec::new();
    for l in &lines {
        if !speakers.contains(&l.speaker) {
            speakers.push(l.speaker);
        }
    }
    let duration = lines.iter().map(|l| l.end).fold(0.0, f64::max);
    let mut stamper = EventStamper::new(id);
    let mut events = vec![stamper.stamp(
        0.0,
        clock(),
        EventBody::CallStarted(CallStarted {
            source: "transcript".into(),
            speakers: speakers.clone(),
            sample_rate: 0,
            agent: None,
        }),
    )];
    // Utterances are published when they end.
    let mut by_end: Vec<&TranscriptLine> = lines.iter().collect();
    by_end.sort_by(|a, b| a.end.total_cmp(&b.end));
    for l in by_end {
        let words = l.text.split_whitespace().count();
        let span = l.end - l.start;
        let u = Utterance {
            speaker: l.speaker,
            start: l.start,
            end: l.end,
            text: l.text.clone(),
            redacted: false,
            words: Vec::new(),
            not_transcribed: None,
            language: None,
            sentiment: 0.0,
            arousal: None,
            emotion: None,
            prosody: ProsodySummary {
                speaking_rate_wps: (words > 0 && span > 0.0)
                    .then(|| round2((words as f64 / span) as f32)),
                ..Default::default()
            },
            behaviours: None,
        };
        events.push(stamper.stamp(l.end, clock(), EventBody::Utterance(u)));
    }
    let spans = |s: Speaker| -> Vec<(f64, f64)> {
        lines
            .iter()
            .filter(|l| l.speaker == s)
            .map(|l| (l.start, l.end))
            .collect()
    };
    let overtalk = overlap_s(&spans(Speaker::Agent), &spans(Speaker::Customer));
    let all: Vec<(f64, f64)> = lines.iter().map(|l| (l.start, l.end)).collect();
    let silence = (duration - union_s(&all)).max(0.0);
    let summary_speakers = speakers
        .iter()
        .map(|&s| {
            let talk = union_s(&spans(s));
            let summary = SpeakerSummary {
                mean_stress: None,
                max_stress: None,
                // Rounded as the pipeline rounds them (`replay`, `serve`).
                talk_ratio: if duration > 0.0 {
                    round2((talk / duration) as f32)
                } else {
                    0.0
                },
                talk_s: round3(talk),
                overtalk_s: round3(overtalk),
                silence_s: round3(silence),
                utterances: lines.iter().filter(|l| l.speaker == s).count() as u32,
            };
            (s, summary)
        })
        .collect();
    events.push(stamper.stamp(
        duration,
        clock(),
        EventBody::CallEnded(CallEnded {
            reason: "hangup".into(),
            duration,
            summary: CallSummary {
                speakers: summary_speakers,
                ..Default::default()
            },
        }),
    ));
    CallInput {
        name: id.to_string(),
        events,
        transcript: true,
    }
}

/// The customer's stress at `t` from the stored `state` readings (once a second): linear
/// between the readings around `t`, the nearest one at either end. Holding the last reading
/// instead lags a second behind, always in the same direction (high while stress falls),
/// which moved a rescored journey's closing stress by up to 0.09.
fn stress_at(states: &[(f64, f32)], t: f64) -> Option<f32> {
    let i = states.partition_point(|&(ts, _)| ts <= t);
    match (i.checked_sub(1).map(|j| states[j]), states.get(i)) {
        (Some((t0, s0)), Some(&(t1, s1))) if t1 > t0 => {
            let w = ((t - t0) / (t1 - t0)) as f32;
            Some(s0 + w * (s1 - s0))
        }
        (Some((_, s0)), _) => Some(s0),
        (None, Some(&(_, s1))) => Some(s1),
        (None, None) => None,
    }
}

/// Total length of the union of intervals.
fn union_s(spans: &[(f64, f64)]) -> f64 {
    let mut v = spans.to_vec();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut total = 0.0;
    let mut cur: Option<(f64, f64)> = None;
    for (a, b) in v {
        cur = match cur {
            Some((ca, cb)) if a <= cb => Some((ca, cb.max(b))),
            Some((ca, cb)) => {
                total += cb - ca;
                Some((a, b))
            }
            None => Some((a, b)),
        };
    }
    total + cur.map_or(0.0, |(a, b)| b - a)
}

/// Time during which both speakers' intervals overlap.
fn overlap_s(a: &[(f64, f64)], b: &[(f64, f64)]) -> f64 {
    let mut both = 0.0;
    for x in a {
        let parts: Vec<(f64, f64)> = b
            .iter()
            .map(|y| (x.0.max(y.0), x.1.min(y.1)))
            .filter(|(s, e)| e > s)
            .collect();
        both += union_s(&parts);
    }
    both
}

/// A file name for a call of the `--out` directory (`call_id`, or `call_id_run`), distinct
/// from those already in `taken`.
pub fn unique_file_name(name: &str, taken: &mut HashSet<String>) -> String {
    let base = crate::replay::safe_name(name);
    let base = if base.is_empty() || base.starts_with('.') {
        format!("call{base}")
    } else {
        base
    };
    let mut n = 1;
    let mut candidate = base.clone();
    while !taken.insert(candidate.clone()) {
        n += 1;
        candidate = format!("{base}-{n}");
    }
    candidate
}

/// Alerts decided by the transcript; recomputed, never copied.
fn transcript_alert(kind: AlertKind) -> bool {
    matches!(
        kind,
        AlertKind::EscalationPhrase
            | AlertKind::NegativeSentiment
            | AlertKind::AgentSpeakingRate
            | AlertKind::EmpathyMissed
    )
}

/// Why a call could not be re-scored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    #[error("call {0} has no call_started event")]
    NoStart(String),
    #[error("call {0} has no call_ended event (still running, or cut short); not rescored")]
    NoEnd(String),
}

/// Re-scores one call with `cfg`; the result is a whole call's events, numbered afresh.
pub fn rescore_call(
    call: &CallInput,
    cfg: &Config,
    analyzers: &Analyzers,
) -> Result<Vec<Event>, CallError> {
    let Some(first) = call.events.first() else {
        return Err(CallError::NoStart(call.name.clone()));
    };
    let call_id = first.call_id.clone();
    if !matches!(first.body, EventBody::CallStarted(_)) {
        return Err(CallError::NoStart(call_id));
    }
    if !call
        .events
        .iter()
        .any(|e| matches!(e.body, EventBody::CallEnded(_)))
    {
        return Err(CallError::NoEnd(call_id));
    }
    let mut r = Rescorer::new(call, &call_id, cfg, analyzers);
    for (i, e) in call.events.iter().enumerate() {
        r.position = i;
        r.ts = e.ts.clone();
        let t = match &e.body {
            EventBody::CallEnded(c) => c.duration,
            _ => e.t,
        };
        r.advance_to(t);
        if r.on_event(e) {
            break;
        }
    }
    // A serve run's events carry the run (`{call_id}:{run}:{seq}`) so that a call id used
    // again is never the same events; its rescored events and alerts keep it, or two runs of
    // one call would share ids and the second be dropped as a repeat wherever they meet.
    if let Some(run) = call.name.strip_prefix(&format!("{call_id}:")) {
        let prefix = format!("{call_id}:");
        for e in &mut r.out {
            e.event_id = format!("{}:{}", call.name, e.seq);
            if let EventBody::Alert(a) = &mut e.body {
                if let Some(rest) = a.alert_id.strip_prefix(&prefix) {
                    a.alert_id = format!("{call_id}:{run}:{rest}");
                }
            }
        }
    }
    Ok(r.out)
}

/// One call being re-scored.
struct Rescorer<'a> {
    analyzers: &'a Analyzers,
    transcript: bool,
    /// A plain transcript is redacted here (stored events were redacted when published).
    redaction: Option<crate::redact::ConversationRedactor>,
    stamper: EventStamper,
    alerts: AlertEngine,
    empathy: CallEmpathy,
    out: Vec<Event>,
    /// Index of the input event being handled.
    position: usize,
    /// `ts` of the input event being handled (derived events take it).
    ts: String,
    next_tick: f64,
    /// The customer's stress on each stored `state` event: (t, stress).
    customer_states: Vec<(f64, f32)>,
    /// The VAD's hangover: how long after an utterance's end its speaker still speaks.
    hangover_s: f64,
    /// The agent named on `call_started`.
    agent: Option<String>,
    /// Customer and agent utterance spans, and each speaker's utterances' (input index, start).
    customer_spans: Vec<(f64, f64)>,
    agent_spans: Vec<(f64, f64)>,
    agent_starts: Vec<(usize, f64)>,
    customer_starts: Vec<(usize, f64)>,
}

impl<'a> Rescorer<'a> {
    fn new(call: &CallInput, call_id: &str, cfg: &Config, analyzers: &'a Analyzers) -> Self {
        let mut customer_spans = Vec::new();
        let mut agent_spans = Vec::new();
        let mut agent_starts = Vec::new();
        let mut customer_starts = Vec::new();
        let mut customer_states = Vec::new();
        for (i, e) in call.events.iter().enumerate() {
            if let EventBody::State(st) = &e.body {
                if let Some(x) = st.speakers.get(&Speaker::Customer).and_then(|c| c.stress) {
                    customer_states.push((e.t, x));
                }
            }
            if let EventBody::Utterance(u) = &e.body {
                match u.speaker {
                    Speaker::Customer => {
                        customer_spans.push((u.start, u.end));
                        customer_starts.push((i, u.start));
                    }
                    Speaker::Agent => {
                        agent_spans.push((u.start, u.end));
                        agent_starts.push((i, u.start));
                    }
                }
            }
        }
        let mut empathy = CallEmpathy::new(cfg, std::sync::Arc::clone(&analyzers.behaviours));
        // No audio here: the agent counts as recorded (from the start) when the call has any
        // agent utterance; a call without one has no agent to score.
        if !agent_starts.is_empty() {
            empathy.on_agent_audio(0.0);
        }
        Self {
            analyzers,
            transcript: call.transcript,
            redaction: call
                .transcript
                .then(|| crate::redact::ConversationRedactor::new(analyzers.redactor.clone())),
            stamper: EventStamper::new(call_id),
            alerts: AlertEngine::new(call_id, cfg.alerts.clone()),
            empathy,
            out: Vec::new(),
            position: 0,
            ts: String::new(),
            next_tick: TICK_S,
            customer_states,
            hangover_s: cfg.vad.hangover_s,
            agent: None,
            customer_spans,
            agent_spans,
            agent_starts,
            customer_starts,
        }
    }

    fn emit(&mut self, t: f64, body: EventBody) {
        let e = self.stamper.stamp(t, self.ts.clone(), body);
        self.out.push(e);
    }

    /// Runs the analysis clock up to call time `t`.
    fn advance_to(&mut self, t: f64) {
        while self.next_tick <= t + 1e-9 {
            let now = self.next_tick;
            self.next_tick = ((now + TICK_S) * 1e6).round() / 1e6;
            self.tick(now);
        }
    }

    fn tick(&mut self, t: f64) {
        let within = |spans: &[(f64, f64)]| spans.iter().any(|&(a, b)| a <= t && t < b);
        let customer_voiced = within(&self.customer_spans);
        // Live, the customer's stress is read while they speak, which goes on for the VAD's
        // hangover after an utterance's last word.
        let hangover = self.hangover_s;
        let speaking = self
            .customer_spans
            .iter()
            .any(|&(a, b)| a <= t && t < b + hangover);
        let stress = if speaking {
            stress_at(&self.customer_states, t)
        } else {
            None
        };
        if self.transcript {
            let tick = Tick {
                customer_voiced,
                agent_voiced: within(&self.agent_spans),
                customer_stress: None,
            };
            for a in self.alerts.on_tick(t, &tick) {
                self.emit(t, EventBody::Alert(a));
            }
        }
        // Speech that had begun but was not yet published at this point of the call (the
        // event being handled is not published yet either).
        let unheard = |starts: &[(usize, f64)]| {
            starts
                .iter()
                .filter(|&&(i, s)| i >= self.position && s <= t)
                .map(|&(_, s)| s)
                .reduce(f64::min)
        };
        let x = crate::empathy::EmpathyTick {
            t,
            stress,
            agent_unheard_from: unheard(&self.agent_starts),
            customer_unheard_from: unheard(&self.customer_starts),
        };
        let events = self.empathy.on_tick(&x);
        self.emit_empathy(t, events);
    }

    fn emit_empathy(&mut self, t: f64, events: Vec<crate::events::Empathy>) {
        for e in events {
            let alert = self.empathy.alert_for(&e);
            self.emit(t, EventBody::Empathy(e));
            if let Some(r) = alert {
                let a = self
                    .alerts
                    .raise(r.kind, r.severity, None, r.span, r.message, r.evidence);
                self.emit(t, EventBody::Alert(a));
            }
        }
    }

    /// Handles one input event; true at `call_ended`.
    fn on_event(&mut self, e: &Event) -> bool {
        match &e.body {
            EventBody::CallStarted(s) => {
                self.agent = s.agent.clone();
                self.emit(e.t, e.body.clone());
            }
            EventBody::Assist(_) => self.emit(e.t, e.body.clone()),
            // Recomputed from the utterances and ticks.
            EventBody::Empathy(_) => {}
            EventBody::State(s) => {
                let mut s = s.clone();
                let label = self.empathy.journey_label();
                if let Some(c) = s.speakers.get_mut(&Speaker::Customer) {
                    c.journey = label;
                }
                self.emit(e.t, EventBody::State(s));
            }
            EventBody::Alert(a) => {
                if self.transcript || transcript_alert(a.kind) {
                    return false;
                }
                let kept = self.alerts.raise(
                    a.kind,
                    a.severity,
                    a.speaker,
                    (a.start, a.end),
                    a.message.clone(),
                    a.evidence.clone(),
                );
                let opened = self.empathy.on_alert(&kept);
                self.emit(e.t, EventBody::Alert(kept));
                self.emit_empathy(e.t, opened);
            }
            EventBody::Utterance(u) => self.on_utterance(e.t, u),
            EventBody::CallEnded(c) => {
                self.on_end(c);
                return true;
            }
        }
        false
    }

    fn on_utterance(&mut self, t: f64, u: &Utterance) {
        let mut u = u.clone();
        let transcribed = u.not_transcribed.is_none() && !u.text.trim().is_empty();
        if transcribed {
            // Sentiment reads the words as said; only redacted text leaves.
            u.sentiment = round2(self.analyzers.sentiment.compound(&u.text));
        }
        if let Some(r) = self.redaction.as_mut() {
            let (text, words, words_redacted) =
                r.redact_utterance(u.speaker, u.start, u.end, &u.text, &u.words);
            u.text = text.text;
            u.redacted = text.redacted || words_redacted;
            u.words = words;
        }
        u.behaviours = if u.words.is_empty() {
            let w: Vec<&str> = u.text.split_whitespace().collect();
            self.empathy.behaviours(u.speaker, &w)
        } else {
            let w: Vec<&str> = u.words.iter().map(|w| w.w.as_str()).collect();
            self.empathy.behaviours(u.speaker, &w)
        };
        let alerts = self.alerts.on_utterance(&UtteranceInfo::from(&u));
        let empathy = self.empathy.on_utterance(&u, &alerts);
        self.emit(t, EventBody::Utterance(u));
        for a in alerts {
            let at = a.end;
            self.emit(at, EventBody::Alert(a));
        }
        self.emit_empathy(t, empathy);
    }

    fn on_end(&mut self, c: &CallEnded) {
        let mut c = c.clone();
        let late = self.empathy.finish(c.duration);
        self.emit_empathy(c.duration, late);
        let overtalk_s = c
            .summary
            .speakers
            .values()
            .map(|s| s.overtalk_s)
            .fold(0.0, f64::max);
        let long_silences = self
            .alerts
            .counts()
            .get(&AlertKind::LongSilence)
            .copied()
            .unwrap_or(0);
        let extra = self.empathy.summary(overtalk_s, long_silences);
        c.summary.agent = self.agent.clone();
        c.summary.alerts = self.alerts.counts().clone();
        c.summary.journey = extra.journey.map(Box::new);
        c.summary.empathy = extra.empathy.map(Box::new);
        c.summary.scorecard = extra.scorecard.map(Box::new);
        self.emit(c.duration, EventBody::CallEnded(c));
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn round2(x: f32) -> f32 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts() -> String {
        "2026-12-02T00:00:00Z".into()
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn of<'a>(ev: &'a [Event], kind: &str) -> Vec<&'a Event> {
        ev.iter().filter(|e| e.body.kind() == kind).collect()
    }

    fn ended(ev: &[Event]) -> &CallEnded {
        match &ev.last().unwrap().body {
            EventBody::CallEnded(c) => c,
            other => panic!("last event is {}", other.kind()),
        }
    }

    const ACK: &str = r#"{"speaker":"agent","start":0.0,"end":2.0,"text":"Thank you for calling, how can I help?"}
{"speaker":"customer","start":2.5,"end":7.0,"text":"This is ridiculous, I have been charged twice and I am furious about it."}
{"speaker":"agent","start":8.0,"end":11.0,"text":"I'm so sorry, I understand how frustrating that is."}
{"speaker":"customer","start":11.5,"end":14.0,"text":"Okay, thank you, that is good."}
{"speaker":"agent","start":25.0,"end":27.0,"text":"Is there anything else today?"}
"#;

    fn rescore_text(text: &str, cfg: &Config) -> Vec<Event> {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "t.jsonl", text);
        let calls = read_calls(&p, ts).unwrap();
        assert_eq!(calls.len(), 1);
        let a = Analyzers::from_config(cfg).unwrap();
        rescore_call(&calls[0], cfg, &a).unwrap()
    }

    #[test]
    fn a_transcript_is_scored_like_a_call() {
        let ev = rescore_text(ACK, &Config::default());
        assert!(matches!(ev[0].body, EventBody::CallStarted(_)));
        let seqs: Vec<u64> = ev.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (0..ev.len() as u64).collect::<Vec<_>>());
        let e = of(&ev, "empathy");
        assert!(!e.is_empty(), "an opportunity: {ev:#?}");
        let EventBody::Empathy(first) = &e[0].body else {
            unreachable!()
        };
        assert_eq!(
            first.outcome,
            crate::events::EmpathyOutcome::Met,
            "{first:?}"
        );
        let c = ended(&ev);
        assert_eq!(c.duration, 27.0);
        let emp = c.summary.empathy.as_ref().unwrap();
        assert_eq!((emp.opportunities, emp.met), (1, 1));
        assert!(c.summary.scorecard.is_some());
        let cust = &c.summary.speakers[&Speaker::Customer];
        assert_eq!(cust.utterances, 2);
        assert!((cust.talk_s - 7.0).abs() < 1e-9, "{cust:?}");
        // Nobody spoke 0.5 + 1.0 + 0.5 + 11 s: one long silence, from the spans.
        assert!((cust.silence_s - 13.0).abs() < 1e-9, "{cust:?}");
        assert_eq!(c.summary.alerts.get(&AlertKind::LongSilence), Some(&1));
    }

    #[test]
    fn transcript_figures_are_rounded_as_the_pipeline_rounds_them() {
        // 2 words in 3 s, 3 s of 7 s, times with float noise: 0.67 words/s, a talk ratio of
        // 0.43, and times to the millisecond, as `replay` publishes them.
        let text = r#"{"speaker":"agent","start":0.1,"end":3.1,"text":"hello there"}
{"speaker":"customer","start":3.3000001,"end":7.0,"text":"hi"}
"#;
        let ev = rescore_text(text, &Config::default());
        let rates: Vec<Option<f32>> = ev
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::Utterance(u) => Some(u.prosody.speaking_rate_wps),
                _ => None,
            })
            .collect();
        assert_eq!(rates, vec![Some(0.67), Some(0.27)]);
        let c = ended(&ev);
        let agent = &c.summary.speakers[&Speaker::Agent];
        assert_eq!(agent.talk_ratio, 0.43, "{agent:?}");
        assert_eq!(agent.talk_s, 3.0, "{agent:?}");
        assert_eq!(agent.silence_s, 0.3, "{agent:?}");
        let json = serde_json::to_string(c).unwrap();
        assert!(!json.contains("0000000"), "unrounded: {json}");
    }

    #[test]
    fn a_changed_phrase_set_changes_the_outcome() {
        let dismissive = ACK.replace(
            "I'm so sorry, I understand how frustrating that is.",
            "Calm down, that is our policy.",
        );
        let ev = rescore_text(&dismissive, &Config::default());
        let c = ended(&ev);
        assert_eq!(c.summary.empathy.as_ref().unwrap().harmed, 1, "{c:?}");
        assert_eq!(c.summary.alerts.get(&AlertKind::EmpathyMissed), Some(&1));
        // A site that does not count "calm down" or "our policy" as dismissive: missed, not
        // harmed.
        let mut cfg = Config::default();
        cfg.empathy.dismiss.clear();
        let ev = rescore_text(&dismissive, &cfg);
        let emp = ended(&ev).summary.empathy.clone().unwrap();
        assert_eq!((emp.harmed, emp.missed), (0, 1), "{emp:?}");
    }

    #[test]
    fn rescoring_its_own_output_changes_nothing_but_nothing_is_copied() {
        let cfg = Config::default();
        let first = rescore_text(ACK, &cfg);
        let a = Analyzers::from_config(&cfg).unwrap();
        let call = CallInput {
            name: "t".into(),
            events: first.clone(),
            transcript: false,
        };
        let again = rescore_call(&call, &cfg, &a).unwrap();
        assert_eq!(ended(&again).summary, ended(&first).summary);
        assert_eq!(of(&again, "empathy").len(), of(&first, "empathy").len());
        // Stored transcript alerts are replaced, not kept next to the new ones.
        assert_eq!(of(&again, "alert").len(), of(&first, "alert").len());
    }

    #[test]
    fn mqtt_dumps_are_deduplicated_and_put_in_order() {
        let ev = rescore_text(ACK, &Config::default());
        let mut dump: Vec<Event> = ev.iter().rev().cloned().collect();
        dump.push(ev[1].clone());
        let calls = group_events(dump);
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].events, ev);
        // Two serve runs of one call id are two calls.
        let mut other = ev.clone();
        for e in &mut other {
            e.event_id = format!("{}:1700000000000:{}", e.call_id, e.seq);
        }
        let calls = group_events(ev.into_iter().chain(other).collect());
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[1].name, "t:1700000000000");
        // Rescored, the two runs keep distinct ids: merged again (a database keyed by
        // event_id, a rescore of the rescore), neither is dropped as a repeat of the other.
        let cfg = Config::default();
        let a = Analyzers::from_config(&cfg).unwrap();
        let runs: Vec<Vec<Event>> = calls
            .iter()
            .map(|c| rescore_call(c, &cfg, &a).unwrap())
            .collect();
        assert_eq!(runs[1][0].event_id, "t:1700000000000:0");
        assert_eq!(runs[0][0].event_id, "t:0");
        let alert_ids = |ev: &[Event]| -> Vec<String> {
            ev.iter()
                .filter_map(|e| match &e.body {
                    EventBody::Alert(a) => Some(a.alert_id.clone()),
                    _ => None,
                })
                .collect()
        };
        assert!(!alert_ids(&runs[1]).is_empty());
        assert!(alert_ids(&runs[1])
            .iter()
            .all(|id| id.starts_with("t:1700000000000:alert:")));
        let merged = group_events(runs.concat());
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].events, runs[0]);
        assert_eq!(merged[1].events, runs[1]);
    }

    #[test]
    fn bad_input_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                "{\"speaker\":\"agent\",\"start\":0,\"end\":1,\"text\":\"hi\"}\nnope\n",
                "line 2: not JSON",
            ),
            (
                "{\"speaker\":\"boss\",\"start\":0,\"end\":1,\"text\":\"hi\"}\n",
                "line 1: not a transcript line",
            ),
            (
                "{\"speaker\":\"agent\",\"start\":2,\"end\":1,\"text\":\"hi\"}\n",
                "line 1: start and end",
            ),
            ("{\"type\":\"state\"}\n", "line 1: not a calltone event"),
            ("\n\n", "no events and no transcript lines"),
        ];
        for (text, want) in cases {
            let p = write(dir.path(), "bad.jsonl", text);
            let e = read_calls(&p, ts).unwrap_err().to_string();
            assert!(
                e.contains("bad.jsonl") && e.contains(want),
                "{e} (want {want})"
            );
        }
        // A call cut short is refused, naming it.
        let ev = rescore_text(ACK, &Config::default());
        let call = CallInput {
            name: "t".into(),
            events: ev[..ev.len() - 1].to_vec(),
            transcript: false,
        };
        let cfg = Config::default();
        let a = Analyzers::from_config(&cfg).unwrap();
        assert_eq!(
            rescore_call(&call, &cfg, &a).unwrap_err(),
            CallError::NoEnd("t".into())
        );
    }

    #[test]
    fn a_dump_keeps_its_calls_past_lines_that_are_not_events() {
        // An MQTT capture: a call's events, a retained hand-off context among them, and the
        // torn last line of a capture killed mid-write.
        let ev = rescore_text(ACK, &Config::default());
        let mut text = String::new();
        for (i, e) in ev.iter().enumerate() {
            text.push_str(&serde_json::to_string(e).unwrap());
            text.push('\n');
            if i == 2 {
                text.push_str("{\"call_id\":\"t\",\"t\":4.0,\"stress\":0.25,\"peaks\":[]}\n");
            }
        }
        text.push_str(&serde_json::to_string(&ev[1]).unwrap()[..40]);
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "dump.jsonl", &text);
        let calls = read_calls(&p, ts).unwrap();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].events.len(), ev.len());
        let cfg = Config::default();
        let a = Analyzers::from_config(&cfg).unwrap();
        let again = rescore_call(&calls[0], &cfg, &a).unwrap();
        assert_eq!(ended(&again).summary, ended(&ev).summary);
        // Before the first event the file's kind is unknown: still refused, naming the line.
        let p = write(dir.path(), "torn.jsonl", &format!("{{\"type\n{text}"));
        let e = read_calls(&p, ts).unwrap_err().to_string();
        assert!(e.contains("line 1: not JSON"), "{e}");
        // A cut line with more after it is damage, not a torn end: refused.
        let mut lines: Vec<&str> = text.lines().collect();
        lines.insert(3, "{\"type\":\"utter");
        let p = write(dir.path(), "mid.jsonl", &lines.join("\n"));
        let e = read_calls(&p, ts).unwrap_err().to_string();
        assert!(e.contains("line 4: not JSON"), "{e}");
        // An event that does not parse is refused, not skipped (the call would be scored
        // without it).
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        // (line 4 is the context; line 5 an event)
        assert!(lines[4].contains("\"seq\":"), "{}", lines[4]);
        lines[4] = lines[4].replace("\"seq\":", "\"seq\":\"x\",\"was\":");
        let p = write(dir.path(), "bad-event.jsonl", &lines.join("\n"));
        let e = read_calls(&p, ts).unwrap_err().to_string();
        assert!(e.contains("line 5: not a calltone event"), "{e}");
    }

    #[test]
    fn stress_between_stored_readings_is_interpolated() {
        let states = [(10.0, 0.8), (11.0, 0.4), (12.0, 0.4)];
        let at = |t: f64| stress_at(&states, t).map(|x| (x * 100.0).round() / 100.0);
        assert_eq!(at(10.25), Some(0.7), "not the last reading held (0.8)");
        assert_eq!(at(10.0), Some(0.8));
        assert_eq!(at(11.5), Some(0.4));
        assert_eq!(at(9.0), Some(0.8), "before the first: the first");
        assert_eq!(at(13.0), Some(0.4), "after the last: the last");
        assert_eq!(stress_at(&[], 1.0), None);
    }

    #[test]
    fn interval_arithmetic() {
        assert_eq!(union_s(&[(0.0, 2.0), (1.0, 3.0), (5.0, 6.0)]), 4.0);
        assert_eq!(overlap_s(&[(0.0, 2.0), (4.0, 6.0)], &[(1.0, 5.0)]), 2.0);
        assert_eq!(overlap_s(&[(0.0, 1.0)], &[(1.0, 2.0)]), 0.0);
    }
}
