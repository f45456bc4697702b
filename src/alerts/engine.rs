//! The alert engine of one call: fed ticks and utterances, emits [`Alert`]s.
//!
//! Inputs:
//! * [`AlertEngine::on_tick`] about every 100 ms (any regular period works: durations come
//!   from the tick times, so resolution equals the period). A tick at `t` describes the audio
//!   in `(t_prev, t]`; the first describes `(0, t]`.
//! * [`AlertEngine::on_utterance`] once per transcribed (already redacted) utterance.
//!
//! Rules (thresholds in [`AlertConfig`]):
//! * `customer_stress` — stress ≥ threshold for `sustain_s` (short dips and pauses between
//!   sentences bridged);
//!   re-armed when stress falls below `release` or no reading ≥ `release` for `idle_release_s`.
//! * `negative_sentiment` — ≥ `min_negative` of the customer's last `window` transcribed
//!   utterances score ≤ threshold, the latest one included; re-armed when fewer are negative.
//! * `escalation_phrase` — a configured phrase in a customer utterance (agent too if enabled);
//!   legal phrases are critical and break through a warning's cooldown.
//! * `overtalk` — both speakers voiced for longer than `min_s`; call-level (speaker null);
//!   `warning` when the agent started talking over the customer, else `info`.
//! * `long_silence` — nobody voiced for longer than `min_s`, from the call start too (dead air
//!   while a customer waits for a greeting is as bad as mid-call); call-level.
//! * `agent_speaking_rate` — agent words per second of agent speech over the last `window_s`
//!   above the threshold, once the agent has spoken `min_speech_s` in the window.
//!
//! Every rule has a per-kind cooldown on top of its hysteresis, so one episode gives one alert.
//! The cooldown spares supervisors repeated alerts; it does not make the customer's distress
//! disappear: with [`AlertEngine::record_suppressed`] on, each distress moment
//! (`customer_stress`, `negative_sentiment`, `escalation_phrase`) that a cooldown kept from
//! being an alert is kept as a [`Suppressed`] moment for [`AlertEngine::take_suppressed`]
//! (empathy opportunities and the hand-off context read them). A `customer_stress` run held
//! back by the cooldown counts once, when it first became due.
//! Only the customer's stress and sentiment are read: the agent's behaviour (rate, over-talk)
//! is reported, never their emotion.

use std::collections::{BTreeMap, VecDeque};

use serde_json::json;

use super::config::AlertConfig;
use super::episode::{Due, Level, Sustained};
use crate::audio::Speaker;
use crate::emotion::phrases::{PhraseMatch, PhraseMatcher};
use crate::events::{Alert, AlertKind, Severity, Word};

/// What the pipeline knows about the last tick interval.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tick {
    /// The customer's voice activity detector says speech.
    pub customer_voiced: bool,
    /// The agent's voice activity detector says speech.
    pub agent_voiced: bool,
    /// The customer's current stress, 0..1 relative to their baseline; `None` while unknown
    /// (not speaking, baseline not settled).
    pub customer_stress: Option<f32>,
}

/// One transcribed utterance, as the alert engine needs it.
#[derive(Debug, Clone, Copy)]
pub struct UtteranceInfo<'a> {
    pub speaker: Speaker,
    /// Seconds since call start.
    pub start: f64,
    pub end: f64,
    /// The redacted transcript; empty when not transcribed.
    pub text: &'a str,
    /// The redacted timed words; may be empty (then `text` is used).
    pub words: &'a [Word],
    /// VADER compound score, −1..1.
    pub sentiment: f32,
}

impl<'a> From<&'a crate::events::Utterance> for UtteranceInfo<'a> {
    fn from(u: &'a crate::events::Utterance) -> Self {
        Self {
            speaker: u.speaker,
            start: u.start,
            end: u.end,
            text: &u.text,
            words: &u.words,
            sentiment: u.sentiment,
        }
    }
}

/// A recent customer utterance's sentiment.
#[derive(Debug, Clone, Copy)]
struct Scored {
    start: f64,
    end: f64,
    sentiment: f32,
}

/// A recent agent utterance: its span and word start times.
#[derive(Debug, Clone)]
struct Spoken {
    start: f64,
    end: f64,
    word_starts: Vec<f64>,
}

/// A distress moment that would have been an alert but for its kind's cooldown.
#[derive(Debug, Clone, PartialEq)]
pub struct Suppressed {
    pub kind: AlertKind,
    pub severity: Severity,
    pub speaker: Option<Speaker>,
    pub start: f64,
    pub end: f64,
    /// As the alert's `evidence` would have been.
    pub evidence: serde_json::Value,
}

/// Alert kinds that are a customer distress moment (an empathy opportunity).
pub fn is_distress(kind: AlertKind) -> bool {
    matches!(
        kind,
        AlertKind::CustomerStress | AlertKind::NegativeSentiment | AlertKind::EscalationPhrase
    )
}

/// Alert rules for one call; pure and deterministic.
#[derive(Debug, Clone)]
pub struct AlertEngine {
    call_id: String,
    config: AlertConfig,
    next_n: u64,
    counts: BTreeMap<AlertKind, u32>,
    /// Time and severity of each kind's last alert, for cooldowns.
    last: BTreeMap<AlertKind, (f64, Severity)>,
    prev_t: f64,
    ticked: bool,
    stress: Sustained,
    overtalk: Sustained,
    silence: Sustained,
    /// When each speaker's current voiced stretch began (to tell who interrupted).
    customer_onset: Option<f64>,
    agent_onset: Option<f64>,
    sentiments: VecDeque<Scored>,
    sentiment_fired: bool,
    phrases: PhraseMatcher,
    critical_phrases: PhraseMatcher,
    agent_speech: VecDeque<Spoken>,
    rate_fired: bool,
    /// Whether suppressed distress moments are kept (see the module docs).
    record_suppressed: bool,
    suppressed: Vec<Suppressed>,
    /// Start of the `customer_stress` run last kept as suppressed (one moment per run).
    stress_suppressed_run: Option<f64>,
}

impl AlertEngine {
    /// `config` should have passed [`AlertConfig::validate`].
    pub fn new(call_id: impl Into<String>, config: AlertConfig) -> Self {
        let s = &config.customer_stress;
        let o = &config.overtalk;
        Self {
            call_id: call_id.into(),
            stress: Sustained::new(s.sustain_s, false, s.gap_tolerance_s, s.idle_release_s)
                .with_pause_tolerance(s.pause_tolerance_s),
            overtalk: Sustained::new(o.min_s, true, o.gap_tolerance_s, o.gap_tolerance_s),
            silence: Sustained::new(config.long_silence.min_s, true, 0.0, 0.0),
            phrases: PhraseMatcher::new(&config.escalation_phrase.phrases),
            critical_phrases: PhraseMatcher::new(&config.escalation_phrase.critical_phrases),
            config,
            next_n: 0,
            counts: BTreeMap::new(),
            last: BTreeMap::new(),
            prev_t: 0.0,
            ticked: false,
            customer_onset: None,
            agent_onset: None,
            sentiments: VecDeque::new(),
            sentiment_fired: false,
            agent_speech: VecDeque::new(),
            rate_fired: false,
            record_suppressed: false,
            suppressed: Vec::new(),
            stress_suppressed_run: None,
        }
    }

    /// Keeps the distress moments a cooldown holds back, for [`Self::take_suppressed`].
    /// Off by default; whoever turns it on must take them (they are kept until then).
    pub fn record_suppressed(mut self) -> Self {
        self.record_suppressed = true;
        self
    }

    /// The distress moments held back by a cooldown since the last call, oldest first.
    pub fn take_suppressed(&mut self) -> Vec<Suppressed> {
        std::mem::take(&mut self.suppressed)
    }

    /// Alerts emitted so far, by kind (for the `call_ended` summary).
    pub fn counts(&self) -> &BTreeMap<AlertKind, u32> {
        &self.counts
    }

    /// Raises an alert decided outside the engine's rules (e.g. `empathy_missed`), numbered
    /// and counted with the others; no cooldown (the caller decides once per episode).
    pub fn raise(
        &mut self,
        kind: AlertKind,
        severity: Severity,
        speaker: Option<Speaker>,
        span: (f64, f64),
        message: String,
        evidence: serde_json::Value,
    ) -> Alert {
        self.last.insert(kind, (span.1, severity));
        *self.counts.entry(kind).or_default() += 1;
        let n = self.next_n;
        self.next_n += 1;
        Alert {
            alert_id: format!("{}:alert:{n}", self.call_id),
            kind,
            severity,
            speaker,
            start: round3(span.0),
            end: round3(span.1),
            message,
            evidence,
        }
    }

    /// Feeds one tick; ticks with a time not after the previous one are ignored.
    pub fn on_tick(&mut self, t: f64, tick: &Tick) -> Vec<Alert> {
        let mut out = Vec::new();
        if !t.is_finite() || (self.ticked && t <= self.prev_t) {
            return out;
        }
        let t_prev = self.prev_t.min(t);
        self.prev_t = t;
        self.ticked = true;
        let onset = |was: Option<f64>, now: bool| if now { was.or(Some(t_prev)) } else { None };
        self.customer_onset = onset(self.customer_onset, tick.customer_voiced);
        self.agent_onset = onset(self.agent_onset, tick.agent_voiced);

        if self.config.customer_stress.enabled {
            let rule = &self.config.customer_stress;
            let stress = tick.customer_stress.filter(|s| s.is_finite());
            let level = match stress {
                Some(s) if s >= rule.threshold => Level::High,
                Some(s) if s < rule.release => Level::Low,
                Some(_) => Level::Hold,
                None => Level::Pause,
            };
            let due = self.stress.update(t_prev, t, level, stress.unwrap_or(0.0));
            if let Some(due) = due {
                if let Some(a) = self.stress_alert(t, due) {
                    self.stress.mark_fired();
                    out.push(a);
                }
            }
        }
        if self.config.overtalk.enabled {
            let both = tick.customer_voiced && tick.agent_voiced;
            let level = if both { Level::High } else { Level::Hold };
            if let Some(due) = self.overtalk.update(t_prev, t, level, 0.0) {
                if let Some(a) = self.overtalk_alert(t, due) {
                    self.overtalk.mark_fired();
                    out.push(a);
                }
            }
        }
        if self.config.long_silence.enabled {
            let quiet = !tick.customer_voiced && !tick.agent_voiced;
            let level = if quiet { Level::High } else { Level::Low };
            if let Some(due) = self.silence.update(t_prev, t, level, 0.0) {
                let rule = &self.config.long_silence;
                let alert = self.emit_if_cooled(
                    AlertKind::LongSilence,
                    Severity::Warning,
                    None,
                    (due.start, t),
                    rule.cooldown_s,
                    format!("Nobody has spoken for {} s.", secs(due.duration)),
                    json!({ "silence_s": round2(due.duration), "min_s": rule.min_s }),
                );
                if let Some(a) = alert {
                    self.silence.mark_fired();
                    out.push(a);
                }
            }
        }
        out
    }

    /// Feeds one transcribed utterance.
    pub fn on_utterance(&mut self, u: &UtteranceInfo<'_>) -> Vec<Alert> {
        let mut out = Vec::new();
        let transcribed = !u.text.trim().is_empty() || !u.words.is_empty();
        if !transcribed {
            return out;
        }
        let phrase_speaker =
            u.speaker == Speaker::Customer || self.config.escalation_phrase.include_agent;
        if self.config.escalation_phrase.enabled && phrase_speaker {
            out.extend(self.escalation(u));
        }
        if self.config.negative_sentiment.enabled && u.speaker == Speaker::Customer {
            out.extend(self.negative_sentiment(u));
        }
        if self.config.agent_speaking_rate.enabled && u.speaker == Speaker::Agent {
            out.extend(self.speaking_rate(u));
        }
        out
    }

    fn stress_alert(&mut self, t: f64, due: Due) -> Option<Alert> {
        let rule = &self.config.customer_stress;
        let severity = if due.mean >= rule.critical {
            Severity::Critical
        } else {
            Severity::Warning
        };
        let evidence = json!({
            "mean_stress": round2(due.mean.into()),
            "max_stress": round2(due.max.into()),
            "duration_s": round2(due.duration),
            "threshold": f32_json(rule.threshold),
            "sustain_s": rule.sustain_s,
        });
        let message = format!(
            "Customer stress has stayed high ({:.2}) for {} s.",
            due.mean,
            secs(due.duration)
        );
        let cooldown = rule.cooldown_s;
        if self.stress_suppressed_run == Some(due.start)
            && !self.cooled(AlertKind::CustomerStress, severity, t, cooldown)
        {
            // Still the run already kept as a suppressed moment: nothing new.
            return None;
        }
        self.stress_suppressed_run = Some(due.start);
        self.emit_if_cooled(
            AlertKind::CustomerStress,
            severity,
            Some(Speaker::Customer),
            (due.start, t),
            cooldown,
            message,
            evidence,
        )
    }

    fn overtalk_alert(&mut self, t: f64, due: Due) -> Option<Alert> {
        // The later onset is the one who started talking over the other.
        let interrupter = match (self.customer_onset, self.agent_onset) {
            (Some(c), Some(a)) if a > c => Speaker::Agent,
            _ => Speaker::Customer,
        };
        let (severity, who) = match interrupter {
            Speaker::Agent => (Severity::Warning, "the agent talked over the customer"),
            Speaker::Customer => (Severity::Info, "the customer talked over the agent"),
        };
        let rule = &self.config.overtalk;
        let message = format!(
            "Customer and agent have talked at the same time for {} s ({who}).",
            secs(due.duration)
        );
        let evidence = json!({
            "overlap_s": round2(due.duration),
            "min_s": rule.min_s,
            "interrupted_by": interrupter,
        });
        let cooldown = rule.cooldown_s;
        self.emit_if_cooled(
            AlertKind::Overtalk,
            severity,
            None,
            (due.start, t),
            cooldown,
            message,
            evidence,
        )
    }

    fn escalation(&mut self, u: &UtteranceInfo<'_>) -> Option<Alert> {
        let rule = &self.config.escalation_phrase;
        let find = |m: &PhraseMatcher| -> Vec<PhraseMatch> {
            if u.words.is_empty() {
                m.find(u.text)
            } else {
                let words: Vec<&str> = u.words.iter().map(|w| w.w.as_str()).collect();
                m.find_words(&words)
            }
        };
        let keep = |m: &PhraseMatch| !(rule.ignore_negated && m.negated);
        let critical: Vec<PhraseMatch> = find(&self.critical_phrases)
            .into_iter()
            .filter(keep)
            .collect();
        let warning: Vec<PhraseMatch> = find(&self.phrases).into_iter().filter(keep).collect();
        let severity = if critical.is_empty() {
            Severity::Warning
        } else {
            Severity::Critical
        };
        let mut matches: Vec<PhraseMatch> = critical.into_iter().chain(warning).collect();
        if matches.is_empty() {
            return None;
        }
        matches.sort_by_key(|m| m.word_index_range.start);
        let span = if u.words.is_empty() {
            (u.start, u.end)
        } else {
            let first = &matches[0].word_index_range;
            let last = &matches[matches.len() - 1].word_index_range;
            (u.words[first.start].start, u.words[last.end - 1].end)
        };
        let phrases: Vec<&str> = matches.iter().map(|m| m.phrase.as_str()).collect();
        let who = match u.speaker {
            Speaker::Customer => "Customer",
            Speaker::Agent => "Agent",
        };
        // Quote the words as spoken, without the punctuation Whisper attaches to them.
        let quoted = matches[0].matched_words.join(" ");
        let quoted = quoted.trim_matches(|c: char| c.is_ascii_punctuation());
        let message = format!("{who} said \"{quoted}\".");
        let evidence = json!({
            "phrases": phrases,
            "matched_words": matches.iter().map(|m| &m.matched_words).collect::<Vec<_>>(),
            "text": u.text,
        });
        let cooldown = rule.cooldown_s;
        self.emit_if_cooled(
            AlertKind::EscalationPhrase,
            severity,
            Some(u.speaker),
            span,
            cooldown,
            message,
            evidence,
        )
    }

    fn negative_sentiment(&mut self, u: &UtteranceInfo<'_>) -> Option<Alert> {
        let rule = self.config.negative_sentiment.clone();
        // The ASR pool may finish utterances out of order: keep the window in time order.
        let pos = self
            .sentiments
            .iter()
            .rposition(|s| s.start <= u.start)
            .map_or(0, |p| p + 1);
        self.sentiments.insert(
            pos,
            Scored {
                start: u.start,
                end: u.end,
                sentiment: u.sentiment,
            },
        );
        while self.sentiments.len() > rule.window {
            self.sentiments.pop_front();
        }
        // A late utterance older than the whole window cannot fire.
        let in_window = self
            .sentiments
            .iter()
            .any(|s| s.start == u.start && s.end == u.end);
        let negative = |s: &Scored| s.sentiment <= rule.threshold;
        let count = self.sentiments.iter().filter(|s| negative(s)).count();
        if count < rule.min_negative {
            self.sentiment_fired = false;
            return None;
        }
        if self.sentiment_fired || u.sentiment > rule.threshold || !in_window {
            return None;
        }
        let first = self
            .sentiments
            .iter()
            .find(|s| negative(s))
            .map_or(u.start, |s| s.start);
        let message = format!(
            "Customer sounded negative in {count} of their last {} utterances (latest {:.2}).",
            self.sentiments.len(),
            u.sentiment
        );
        let evidence = json!({
            "threshold": f32_json(rule.threshold),
            "utterances": self.sentiments.iter().map(|s| json!({
                "start": s.start, "end": s.end, "sentiment": round2(s.sentiment.into()),
            })).collect::<Vec<_>>(),
            "text": u.text,
        });
        let alert = self.emit_if_cooled(
            AlertKind::NegativeSentiment,
            Severity::Warning,
            Some(Speaker::Customer),
            (first, u.end),
            rule.cooldown_s,
            message,
            evidence,
        );
        self.sentiment_fired |= alert.is_some();
        alert
    }

    fn speaking_rate(&mut self, u: &UtteranceInfo<'_>) -> Option<Alert> {
        let rule = self.config.agent_speaking_rate.clone();
        let word_starts = if u.words.is_empty() {
            // No word times: spread the transcript's words evenly over the utterance.
            let n = u.text.split_whitespace().count();
            let step = (u.end - u.start) / n.max(1) as f64;
            (0..n).map(|i| u.start + i as f64 * step).collect()
        } else {
            u.words.iter().map(|w| w.start).collect()
        };
        self.agent_speech.push_back(Spoken {
            start: u.start,
            end: u.end,
            word_starts,
        });
        let now = self
            .agent_speech
            .iter()
            .map(|s| s.end)
            .fold(u.end, f64::max);
        let from = now - rule.window_s;
        while self.agent_speech.front().is_some_and(|s| s.end <= from) {
            self.agent_speech.pop_front();
        }
        let speech_s: f64 = self
            .agent_speech
            .iter()
            .map(|s| (s.end.min(now) - s.start.max(from)).max(0.0))
            .sum();
        if speech_s < rule.min_speech_s {
            return None;
        }
        let words = self
            .agent_speech
            .iter()
            .flat_map(|s| &s.word_starts)
            .filter(|&&w| w >= from && w <= now)
            .count();
        let rate = words as f64 / speech_s;
        if rate < f64::from(rule.release_wps) {
            self.rate_fired = false;
        }
        if self.rate_fired || rate <= f64::from(rule.threshold_wps) {
            return None;
        }
        let start = self
            .agent_speech
            .front()
            .map_or(from, |s| s.start.max(from));
        let message = format!(
            "Agent is speaking fast: {rate:.1} words/s over the last {} s.",
            secs(rule.window_s)
        );
        let evidence = json!({
            "rate_wps": round2(rate),
            "words": words,
            "speech_s": round2(speech_s),
            "window_s": rule.window_s,
            "threshold_wps": rule.threshold_wps,
        });
        let alert = self.emit_if_cooled(
            AlertKind::AgentSpeakingRate,
            Severity::Info,
            Some(Speaker::Agent),
            (start, now),
            rule.cooldown_s,
            message,
            evidence,
        );
        self.rate_fired |= alert.is_some();
        alert
    }

    /// Whether an alert of `kind` ending at `end` is past the kind's cooldown (a `critical`
    /// escalation phrase breaks through a `warning`'s).
    fn cooled(&self, kind: AlertKind, severity: Severity, end: f64, cooldown_s: f64) -> bool {
        match self.last.get(&kind) {
            Some(&(t0, sev0)) => {
                end - t0 >= cooldown_s || (kind == AlertKind::EscalationPhrase && severity > sev0)
            }
            None => true,
        }
    }

    /// Emits unless the kind is cooling down; a more severe escalation phrase breaks through.
    /// A distress moment held back is kept where [`Self::record_suppressed`] is on.
    #[allow(clippy::too_many_arguments)]
    fn emit_if_cooled(
        &mut self,
        kind: AlertKind,
        severity: Severity,
        speaker: Option<Speaker>,
        (start, end): (f64, f64),
        cooldown_s: f64,
        message: String,
        evidence: serde_json::Value,
    ) -> Option<Alert> {
        if !self.cooled(kind, severity, end, cooldown_s) {
            if self.record_suppressed && is_distress(kind) {
                self.suppressed.push(Suppressed {
                    kind,
                    severity,
                    speaker,
                    start: round3(start),
                    end: round3(end),
                    evidence,
                });
            }
            return None;
        }
        self.last.insert(kind, (end, severity));
        *self.counts.entry(kind).or_default() += 1;
        let n = self.next_n;
        self.next_n += 1;
        Some(Alert {
            alert_id: format!("{}:alert:{n}", self.call_id),
            kind,
            severity,
            speaker,
            // Tick times add up in binary (10.010000000000002): published to the ms, as
            // utterance times are.
            start: round3(start),
            end: round3(end),
            message,
            evidence,
        })
    }
}

/// Seconds for a human: "3 s", "1.6 s", "12 s".
fn secs(x: f64) -> String {
    if x >= 10.0 || (x - x.round()).abs() < 0.05 {
        format!("{:.0}", x)
    } else {
        format!("{:.1}", x)
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A configured `f32` for evidence as it was written (0.7, not the widened 0.699999988…).
fn f32_json(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DT: f64 = 0.1;

    /// Feeds ticks for `k` in `from..to` (t = k·0.1 s); returns the alerts with their tick time.
    fn run(
        e: &mut AlertEngine,
        from: usize,
        to: usize,
        tick: impl Fn(f64) -> Tick,
    ) -> Vec<(f64, Alert)> {
        let mut out = Vec::new();
        for k in from..to {
            let t = k as f64 * DT;
            out.extend(e.on_tick(t, &tick(t)).into_iter().map(|a| (t, a)));
        }
        out
    }

    fn only(kind: AlertKind) -> AlertConfig {
        let mut c = AlertConfig::default();
        c.customer_stress.enabled = kind == AlertKind::CustomerStress;
        c.negative_sentiment.enabled = kind == AlertKind::NegativeSentiment;
        c.escalation_phrase.enabled = kind == AlertKind::EscalationPhrase;
        c.overtalk.enabled = kind == AlertKind::Overtalk;
        c.long_silence.enabled = kind == AlertKind::LongSilence;
        c.agent_speaking_rate.enabled = kind == AlertKind::AgentSpeakingRate;
        c
    }

    fn stressed(s: f32) -> Tick {
        Tick {
            customer_voiced: true,
            agent_voiced: false,
            customer_stress: Some(s),
        }
    }

    fn stress_engine() -> AlertEngine {
        AlertEngine::new("c1", only(AlertKind::CustomerStress))
    }

    #[test]
    fn stress_fires_after_sustain_once_per_episode() {
        let mut e = stress_engine();
        let calm = run(&mut e, 1, 21, |_| stressed(0.3));
        assert!(calm.is_empty());
        let high = run(&mut e, 21, 200, |_| stressed(0.8));
        assert_eq!(high.len(), 1, "{high:?}");
        let (t, a) = &high[0];
        assert!((t - 5.0).abs() < 1e-9, "fired at {t}");
        assert_eq!(a.alert_id, "c1:alert:0");
        assert_eq!(a.kind, AlertKind::CustomerStress);
        assert_eq!(a.severity, Severity::Warning);
        assert_eq!(a.speaker, Some(Speaker::Customer));
        assert!((a.start - 2.0).abs() < 1e-9 && (a.end - 5.0).abs() < 1e-9);
        assert_eq!(a.message, "Customer stress has stayed high (0.80) for 3 s.");
        assert_eq!(a.evidence["mean_stress"], 0.8);
        assert_eq!(e.counts()[&AlertKind::CustomerStress], 1);
    }

    #[test]
    fn stress_between_release_and_threshold_or_in_short_bursts_is_calm() {
        let mut e = stress_engine();
        assert!(run(&mut e, 1, 600, |_| stressed(0.65)).is_empty());
        // 2 s bursts at 0.9 separated by 2 s at 0.3 never sustain 3 s.
        let bursts = run(&mut e, 600, 1200, |t| {
            stressed(if (t as u64 / 2) % 2 == 0 { 0.9 } else { 0.3 })
        });
        assert!(bursts.is_empty(), "{bursts:?}");
        assert!(run(&mut e, 1200, 1300, |_| Tick::default()).is_empty());
    }

    #[test]
    fn stress_threshold_and_sustain_are_inclusive() {
        let mut e = stress_engine();
        let a = run(&mut e, 1, 31, |_| stressed(0.7));
        assert_eq!(a.len(), 1);
        assert!((a[0].0 - 3.0).abs() < 1e-9);
        let mut e = stress_engine();
        assert!(run(&mut e, 1, 30, |_| stressed(0.7)).is_empty());
    }

    #[test]
    fn stress_bridges_pauses_between_sentences() {
        // Angry sentences of 2 s with 1.5 s pauses (no reading): one run, fires as the
        // second sentence begins (3.5 s after the first began).
        let sentence = |t: f64| (t - 1.0).rem_euclid(3.5) < 2.0;
        let mut e = stress_engine();
        let a = run(&mut e, 1, 100, |t| {
            if t <= 1.0 || !sentence(t) {
                Tick::default()
            } else {
                stressed(0.85)
            }
        });
        assert_eq!(a.len(), 1, "{a:?}");
        assert!((a[0].0 - 4.5).abs() < 0.11, "fired at {}", a[0].0);
        // The same 1.5 s between sentences filled with middling readings: no alert.
        let mut e = stress_engine();
        let a = run(&mut e, 1, 100, |t| {
            if t <= 1.0 {
                Tick::default()
            } else {
                stressed(if sentence(t) { 0.85 } else { 0.6 })
            }
        });
        assert!(a.is_empty(), "{a:?}");
        // Pauses longer than pause_tolerance_s (3 s) break the run.
        let mut e = stress_engine();
        let a = run(&mut e, 1, 150, |t| {
            let on = t > 1.0 && (t - 1.0).rem_euclid(5.5) < 2.0;
            if on {
                stressed(0.85)
            } else {
                Tick::default()
            }
        });
        assert!(a.is_empty(), "{a:?}");
    }

    #[test]
    fn stress_bridges_short_dips_and_pauses_but_not_a_release() {
        let mut e = stress_engine();
        // Every 8th tick is unknown, every 10th middling: still one high run.
        let a = run(&mut e, 1, 40, |t| {
            let k = (t / DT).round() as u64;
            if k % 8 == 0 {
                Tick::default()
            } else if k % 10 == 0 {
                stressed(0.6)
            } else {
                stressed(0.85)
            }
        });
        assert_eq!(a.len(), 1);
        let mut e = stress_engine();
        // A single reading below release restarts the run.
        let a = run(&mut e, 1, 60, |t| {
            stressed(if (t - 2.0).abs() < 1e-9 { 0.4 } else { 0.85 })
        });
        assert_eq!(a.len(), 1);
        assert!((a[0].0 - 5.0).abs() < 1e-9, "{}", a[0].0);
    }

    #[test]
    fn stress_refires_only_after_release_and_cooldown() {
        let mut e = stress_engine();
        let mut alerts = run(&mut e, 1, 100, |_| stressed(0.8)); // fires at 3.0
        alerts.extend(run(&mut e, 100, 120, |_| stressed(0.3))); // release
        alerts.extend(run(&mut e, 120, 200, |_| stressed(0.8))); // due at 15, cooling down
        alerts.extend(run(&mut e, 200, 700, |_| stressed(0.3)));
        // The tick at 70.0 covers (69.9, 70.0]: fires 3 s later.
        alerts.extend(run(&mut e, 700, 800, |_| stressed(0.8)));
        let times: Vec<f64> = alerts
            .iter()
            .map(|(t, _)| (t * 10.0).round() / 10.0)
            .collect();
        assert_eq!(times, vec![3.0, 72.9]);
        assert_eq!(alerts[1].1.alert_id, "c1:alert:1");
    }

    #[test]
    fn stress_still_high_when_cooldown_ends_fires_then() {
        let mut e = stress_engine();
        let mut alerts = run(&mut e, 1, 50, |_| stressed(0.8)); // 3.0
        alerts.extend(run(&mut e, 50, 60, |_| stressed(0.2)));
        alerts.extend(run(&mut e, 60, 1000, |_| stressed(0.8)));
        let times: Vec<f64> = alerts
            .iter()
            .map(|(t, _)| (t * 10.0).round() / 10.0)
            .collect();
        assert_eq!(times, vec![3.0, 63.0]);
        // Continuously high without release: one alert however long.
        let mut e = stress_engine();
        assert_eq!(run(&mut e, 1, 3000, |_| stressed(0.8)).len(), 1);
    }

    #[test]
    fn very_high_stress_is_critical() {
        let mut e = stress_engine();
        let a = run(&mut e, 1, 40, |_| stressed(0.95));
        assert_eq!(a[0].1.severity, Severity::Critical);
    }

    fn voices(c: bool, a: bool) -> Tick {
        Tick {
            customer_voiced: c,
            agent_voiced: a,
            customer_stress: None,
        }
    }

    #[test]
    fn overtalk_needs_more_than_min_and_names_the_interrupter() {
        let mut e = AlertEngine::new("c", only(AlertKind::Overtalk));
        // Customer speaks from 0; agent joins at 1.0 for 1.4 s: no alert.
        assert!(run(&mut e, 1, 40, |t| voices(
            true,
            t > 1.0 + 1e-9 && t < 2.4 + 1e-9
        ))
        .is_empty());
        // Agent joins at 5.0 and stays: alert once overlap exceeds 1.5 s.
        let a = run(&mut e, 40, 100, |t| voices(true, t > 5.0 + 1e-9));
        assert_eq!(a.len(), 1);
        let (t, alert) = &a[0];
        assert!((t - 6.6).abs() < 1e-9, "{t}");
        assert_eq!(alert.speaker, None);
        assert_eq!(alert.severity, Severity::Warning);
        assert_eq!(alert.evidence["interrupted_by"], "agent");
        assert!((alert.start - 5.0).abs() < 1e-9);
        assert_eq!(
            alert.message,
            "Customer and agent have talked at the same time for 1.6 s (the agent talked over the customer)."
        );
    }

    #[test]
    fn overtalk_bridges_vad_flicker_and_respects_cooldown() {
        let mut e = AlertEngine::new("c", only(AlertKind::Overtalk));
        // Agent speaks; customer barges in at 1.0 with one-tick flickers every 0.5 s.
        let a = run(&mut e, 1, 40, |t| {
            let k = (t / DT).round() as u64;
            voices(t > 1.0 + 1e-9 && k % 5 != 0, true)
        });
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].1.severity, Severity::Info);
        assert_eq!(a[0].1.evidence["interrupted_by"], "customer");
        // Repeated 2 s overlaps every 4 s: one alert per 60 s cooldown.
        let more = run(&mut e, 40, 1300, |t| voices(true, (t as u64 / 2) % 2 == 0));
        let times: Vec<f64> = more.iter().map(|(t, _)| t.round()).collect();
        assert_eq!(times.len(), 2, "{times:?}");
        assert!(times[0] >= 63.0 && times[1] >= times[0] + 60.0, "{times:?}");
    }

    #[test]
    fn long_silence_from_call_start_once_per_episode() {
        let mut e = AlertEngine::new("c", only(AlertKind::LongSilence));
        let a = run(&mut e, 1, 300, |_| voices(false, false));
        assert_eq!(a.len(), 1);
        assert!((a[0].0 - 10.1).abs() < 1e-9, "{}", a[0].0);
        assert_eq!(a[0].1.start, 0.0);
        assert_eq!(a[0].1.speaker, None);
        assert_eq!(a[0].1.message, "Nobody has spoken for 10 s.");
        // Speech, then 11 s of silence inside the cooldown: nothing.
        assert!(run(&mut e, 300, 310, |_| voices(false, true)).is_empty());
        assert!(run(&mut e, 310, 420, |_| voices(false, false)).is_empty());
        // After the cooldown a new silence fires again.
        assert!(run(&mut e, 420, 700, |_| voices(true, false)).is_empty());
        let b = run(&mut e, 700, 820, |_| voices(false, false));
        assert_eq!(b.len(), 1);
        // Silence since 69.9 (the tick at 70.0 covers (69.9, 70.0]) exceeds 10 s at 80.0.
        assert!((b[0].0 - 80.0).abs() < 1e-9, "{}", b[0].0);
    }

    #[test]
    fn silence_shorter_than_min_or_with_speech_is_fine() {
        let mut e = AlertEngine::new("c", only(AlertKind::LongSilence));
        assert!(run(&mut e, 1, 101, |_| voices(false, false)).is_empty()); // exactly 10 s
                                                                           // Someone speaks for 1 s every 9 s.
        assert!(run(&mut e, 101, 2000, |t| voices((t as u64) % 9 == 1, false)).is_empty());
    }

    fn utt(
        speaker: Speaker,
        start: f64,
        text: &str,
        sentiment: f32,
    ) -> (Speaker, f64, String, f32) {
        (speaker, start, text.to_string(), sentiment)
    }

    fn say(e: &mut AlertEngine, u: &(Speaker, f64, String, f32)) -> Vec<Alert> {
        e.on_utterance(&UtteranceInfo {
            speaker: u.0,
            start: u.1,
            end: u.1 + 2.0,
            text: &u.2,
            words: &[],
            sentiment: u.3,
        })
    }

    #[test]
    fn negative_sentiment_two_of_three() {
        let mut e = AlertEngine::new("c", only(AlertKind::NegativeSentiment));
        let c = Speaker::Customer;
        assert!(say(&mut e, &utt(c, 0.0, "this is awful", -0.6)).is_empty());
        assert!(say(&mut e, &utt(c, 3.0, "ok", 0.2)).is_empty());
        let a = say(&mut e, &utt(c, 6.0, "terrible", -0.7));
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].speaker, Some(Speaker::Customer));
        assert_eq!((a[0].start, a[0].end), (0.0, 8.0));
        assert_eq!(a[0].evidence["utterances"].as_array().unwrap().len(), 3);
        assert_eq!(
            a[0].message,
            "Customer sounded negative in 2 of their last 3 utterances (latest -0.70)."
        );
        // Still negative: same episode.
        assert!(say(&mut e, &utt(c, 9.0, "awful", -0.8)).is_empty());
    }

    #[test]
    fn negative_sentiment_ignores_agent_untranscribed_and_single_negatives() {
        let mut e = AlertEngine::new("c", only(AlertKind::NegativeSentiment));
        let (c, ag) = (Speaker::Customer, Speaker::Agent);
        for k in 0..5 {
            assert!(say(&mut e, &utt(ag, k as f64, "that is terrible", -0.9)).is_empty());
        }
        assert!(say(&mut e, &utt(c, 10.0, "awful", -0.9)).is_empty());
        assert!(say(&mut e, &utt(c, 12.0, "", -0.9)).is_empty());
        assert!(say(&mut e, &utt(c, 14.0, "fine", 0.1)).is_empty());
        assert!(say(&mut e, &utt(c, 16.0, "fine", 0.1)).is_empty());
        assert!(say(&mut e, &utt(c, 18.0, "bad", -0.5)).is_empty());
    }

    #[test]
    fn negative_sentiment_refires_after_release_and_cooldown() {
        let mut e = AlertEngine::new("c", only(AlertKind::NegativeSentiment));
        let c = Speaker::Customer;
        let mut n = 0;
        for (start, s) in [
            (0.0, -0.6),
            (3.0, -0.6),
            (6.0, 0.5),
            (9.0, 0.5),
            (12.0, -0.6),
            (15.0, -0.6),
        ] {
            n += say(&mut e, &utt(c, start, "x", s)).len();
        }
        assert_eq!(n, 1, "second episode is inside the cooldown");
        for (start, s) in [(70.0, 0.5), (73.0, 0.5), (76.0, -0.6), (79.0, -0.6)] {
            n += say(&mut e, &utt(c, start, "x", s)).len();
        }
        assert_eq!(n, 2);
    }

    #[test]
    fn negative_sentiment_orders_late_utterances_by_time() {
        let mut e = AlertEngine::new("c", only(AlertKind::NegativeSentiment));
        let c = Speaker::Customer;
        for (start, s) in [(10.0, 0.5), (13.0, 0.5), (16.0, 0.5)] {
            assert!(say(&mut e, &utt(c, start, "fine", s)).is_empty());
        }
        // Arrives late and is older than the whole window: ignored.
        assert!(say(&mut e, &utt(c, 1.0, "awful", -0.9)).is_empty());
        assert!(say(&mut e, &utt(c, 4.0, "awful", -0.9)).is_empty());
        // Two new negatives in time order do fire.
        assert!(say(&mut e, &utt(c, 20.0, "awful", -0.9)).is_empty());
        let a = say(&mut e, &utt(c, 18.0, "awful", -0.9));
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].start, 18.0);
    }

    #[test]
    fn utterance_info_from_event() {
        let u = crate::events::Utterance {
            speaker: Speaker::Customer,
            start: 1.0,
            end: 2.0,
            text: "I want a supervisor".into(),
            redacted: false,
            words: vec![],
            not_transcribed: None,
            language: None,
            sentiment: -0.1,
            arousal: None,
            emotion: None,
            prosody: Default::default(),
            behaviours: None,
        };
        let mut e = AlertEngine::new("c", only(AlertKind::EscalationPhrase));
        let a = e.on_utterance(&UtteranceInfo::from(&u));
        assert_eq!((a[0].start, a[0].end), (1.0, 2.0));
    }

    fn words(start: f64, text: &str) -> Vec<Word> {
        text.split_whitespace()
            .enumerate()
            .map(|(i, w)| Word {
                w: w.to_string(),
                start: start + i as f64 * 0.3,
                end: start + i as f64 * 0.3 + 0.25,
                p: 0.9,
            })
            .collect()
    }

    fn say_words(e: &mut AlertEngine, speaker: Speaker, start: f64, text: &str) -> Vec<Alert> {
        let w = words(start, text);
        e.on_utterance(&UtteranceInfo {
            speaker,
            start,
            end: w.last().map_or(start, |w| w.end),
            text,
            words: &w,
            sentiment: 0.0,
        })
    }

    #[test]
    fn escalation_phrase_with_word_times_and_evidence() {
        let mut e = AlertEngine::new("c", only(AlertKind::EscalationPhrase));
        let a = say_words(
            &mut e,
            Speaker::Customer,
            10.0,
            "I want to cancel my account today",
        );
        assert_eq!(a.len(), 1);
        let a = &a[0];
        assert_eq!(a.severity, Severity::Warning);
        assert_eq!(a.speaker, Some(Speaker::Customer));
        assert!(
            (a.start - 10.9).abs() < 1e-9 && (a.end - 11.75).abs() < 1e-9,
            "{a:?}"
        );
        assert_eq!(a.evidence["phrases"][0], "cancel my account");
        assert_eq!(a.evidence["matched_words"][0][0], "cancel");
        assert_eq!(a.message, "Customer said \"cancel my account\".");
    }

    #[test]
    fn escalation_cooldown_with_critical_breakthrough() {
        let mut e = AlertEngine::new("c", only(AlertKind::EscalationPhrase));
        let cu = Speaker::Customer;
        assert_eq!(say_words(&mut e, cu, 0.0, "get me a supervisor").len(), 1);
        assert!(say_words(&mut e, cu, 10.0, "I want a refund").is_empty());
        let legal = say_words(&mut e, cu, 20.0, "I will call my lawyer");
        assert_eq!(legal.len(), 1);
        assert_eq!(legal[0].severity, Severity::Critical);
        assert!(say_words(&mut e, cu, 30.0, "my attorney will hear about this").is_empty());
        assert_eq!(say_words(&mut e, cu, 90.0, "refund please").len(), 1);
    }

    #[test]
    fn distress_held_back_by_a_cooldown_is_kept_as_suppressed_not_alerted() {
        let cu = Speaker::Customer;
        // Off by default: nothing kept.
        let mut e = AlertEngine::new("c", only(AlertKind::EscalationPhrase));
        assert_eq!(say_words(&mut e, cu, 0.0, "get me a supervisor").len(), 1);
        assert!(say_words(&mut e, cu, 20.0, "I want to cancel my account").is_empty());
        assert!(e.take_suppressed().is_empty());

        let mut e = AlertEngine::new("c", only(AlertKind::EscalationPhrase)).record_suppressed();
        assert_eq!(say_words(&mut e, cu, 0.0, "get me a supervisor").len(), 1);
        assert!(
            e.take_suppressed().is_empty(),
            "an alert is not a suppressed moment"
        );
        // 20 s later, inside the 60 s cooldown: no alert, but the moment is kept.
        assert!(say_words(&mut e, cu, 20.0, "I want to cancel my account").is_empty());
        let s = e.take_suppressed();
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s[0].kind, AlertKind::EscalationPhrase);
        assert_eq!(s[0].speaker, Some(cu));
        assert_eq!(s[0].evidence["phrases"][0], "cancel my account");
        assert!((s[0].start - 20.9).abs() < 1e-9, "{:?}", s[0]);
        assert!(e.take_suppressed().is_empty(), "taken once");
        // Alerts are rate-limited exactly as without recording.
        assert_eq!(e.counts()[&AlertKind::EscalationPhrase], 1);
        assert_eq!(say_words(&mut e, cu, 90.0, "refund please").len(), 1);

        // A stress run inside the cooldown is one moment, not one per tick; the alert after
        // the cooldown comes as it did without recording.
        let mut plain = AlertEngine::new("c", only(AlertKind::CustomerStress));
        let mut e = AlertEngine::new("c", only(AlertKind::CustomerStress)).record_suppressed();
        let pattern = |t: f64| {
            // High 0–10 s, calm 10–20 s, high again 20–90 s.
            if (10.0..20.0).contains(&t) {
                stressed(0.2)
            } else {
                stressed(0.9)
            }
        };
        let a = run(&mut plain, 1, 900, pattern);
        let b = run(&mut e, 1, 900, pattern);
        assert_eq!(a.len(), 2, "{a:?}");
        assert_eq!(
            a.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
            b.iter().map(|(t, _)| *t).collect::<Vec<_>>()
        );
        let s = e.take_suppressed();
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s[0].kind, AlertKind::CustomerStress);
        assert!(s[0].start >= 19.9 && s[0].start < 20.1, "{:?}", s[0]);
    }

    #[test]
    fn escalation_ignores_agent_negated_and_calm_speech() {
        let mut e = AlertEngine::new("c", only(AlertKind::EscalationPhrase));
        assert!(say_words(&mut e, Speaker::Agent, 0.0, "let me get my supervisor").is_empty());
        assert!(say_words(&mut e, Speaker::Customer, 5.0, "I don't want to cancel").is_empty());
        assert!(say_words(&mut e, Speaker::Customer, 9.0, "I can manage that thanks").is_empty());
        let mut cfg = only(AlertKind::EscalationPhrase);
        cfg.escalation_phrase.include_agent = true;
        let mut e = AlertEngine::new("c", cfg);
        let a = say_words(&mut e, Speaker::Agent, 0.0, "let me get my supervisor");
        assert_eq!(a[0].speaker, Some(Speaker::Agent));
    }

    fn agent_talks(e: &mut AlertEngine, start: f64, dur: f64, wps: f64) -> Vec<Alert> {
        let n = (dur * wps).round() as usize;
        let w: Vec<Word> = (0..n)
            .map(|i| Word {
                w: "word".into(),
                start: start + i as f64 / wps,
                end: start + (i as f64 + 0.8) / wps,
                p: 0.9,
            })
            .collect();
        let text = vec!["word"; n].join(" ");
        e.on_utterance(&UtteranceInfo {
            speaker: Speaker::Agent,
            start,
            end: start + dur,
            text: &text,
            words: &w,
            sentiment: 0.0,
        })
    }

    #[test]
    fn agent_speaking_rate_fires_once_enough_fast_speech() {
        let mut e = AlertEngine::new("c", only(AlertKind::AgentSpeakingRate));
        // A quick 2 s greeting at 5 words/s is not enough speech to judge.
        assert!(agent_talks(&mut e, 0.0, 2.0, 5.0).is_empty());
        assert!(agent_talks(&mut e, 30.0, 4.0, 4.0).is_empty());
        let a = agent_talks(&mut e, 35.0, 5.0, 4.0);
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a[0].speaker, Some(Speaker::Agent));
        assert_eq!(a[0].severity, Severity::Info);
        assert_eq!(a[0].evidence["words"], 36);
        assert_eq!(
            a[0].message,
            "Agent is speaking fast: 4.0 words/s over the last 20 s."
        );
        // Still fast: same episode.
        assert!(agent_talks(&mut e, 41.0, 5.0, 4.0).is_empty());
    }

    #[test]
    fn agent_speaking_rate_normal_pace_and_customer_are_ignored() {
        let mut e = AlertEngine::new("c", only(AlertKind::AgentSpeakingRate));
        for k in 0..10 {
            assert!(agent_talks(&mut e, k as f64 * 6.0, 5.0, 2.8).is_empty());
        }
        let text = vec!["w"; 100].join(" ");
        let u = UtteranceInfo {
            speaker: Speaker::Customer,
            start: 100.0,
            end: 110.0,
            text: &text,
            words: &[],
            sentiment: 0.0,
        };
        assert!(e.on_utterance(&u).is_empty());
    }

    #[test]
    fn agent_speaking_rate_without_word_times_uses_text() {
        let mut e = AlertEngine::new("c", only(AlertKind::AgentSpeakingRate));
        let text = vec!["w"; 40].join(" ");
        let u = UtteranceInfo {
            speaker: Speaker::Agent,
            start: 0.0,
            end: 10.0,
            text: &text,
            words: &[],
            sentiment: 0.0,
        };
        assert_eq!(e.on_utterance(&u).len(), 1);
    }

    #[test]
    fn calm_call_gives_no_alerts_and_ids_count_up() {
        let mut e = AlertEngine::new("call-7", AlertConfig::default());
        let calm = run(&mut e, 1, 600, |t| Tick {
            customer_voiced: (t as u64) % 6 < 3,
            agent_voiced: (t as u64) % 6 >= 3,
            customer_stress: Some(0.4),
        });
        assert!(calm.is_empty(), "{calm:?}");
        assert!(say_words(&mut e, Speaker::Customer, 60.0, "thanks that is great").is_empty());
        let a = say_words(&mut e, Speaker::Customer, 62.0, "I want a supervisor");
        let b = run(&mut e, 600, 720, |_| voices(false, false));
        assert_eq!(a[0].alert_id, "call-7:alert:0");
        assert_eq!(b[0].1.alert_id, "call-7:alert:1");
        assert_eq!(e.counts().values().sum::<u32>(), 2);
    }

    #[test]
    fn spans_and_configured_thresholds_are_published_as_written() {
        // Tick times summed in binary, as a replay clock makes them: 10.010000000000002.
        let mut e = AlertEngine::new("c", AlertConfig::default());
        let (mut t, mut out) = (0.0f64, Vec::new());
        for _ in 0..2000 {
            t += 0.01;
            out.extend(e.on_tick(t, &voices(false, false)));
        }
        let a = out
            .iter()
            .find(|a| a.kind == AlertKind::LongSilence)
            .expect("long_silence");
        let json = serde_json::to_string(a).unwrap();
        assert!(json.contains(r#""end":10.01,"#), "{json}");
        let mut e = AlertEngine::new("c", only(AlertKind::CustomerStress));
        let a = run(&mut e, 1, 100, |_| stressed(0.9));
        let json = serde_json::to_string(&a[0].1).unwrap();
        assert!(json.contains(r#""threshold":0.7"#), "{json}");
        assert!(!json.contains("0.6999"), "{json}");
    }

    #[test]
    fn disabled_rules_and_odd_ticks_are_quiet() {
        let mut cfg = AlertConfig::default();
        cfg.long_silence.enabled = false;
        cfg.customer_stress.enabled = false;
        let mut e = AlertEngine::new("c", cfg);
        assert!(run(&mut e, 1, 400, |_| stressed(0.99)).is_empty());
        assert!(run(&mut e, 400, 800, |_| voices(false, false)).is_empty());
        assert!(e.on_tick(f64::NAN, &Tick::default()).is_empty());
        assert!(e.on_tick(1.0, &Tick::default()).is_empty()); // time going backwards
    }
}
