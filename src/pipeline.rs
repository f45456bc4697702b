//! Per-call orchestration, shared by replay and the live service.
//!
//! A [`CallPipeline`] owns one call. Per speaker it resamples to 16 kHz, runs the streaming
//! prosody engine, segments utterances and asks for their transcription; it fuses what it
//! learns (arousal, stress, sentiment, phrases) into events and alerts. It is pure: it
//! performs no I/O and reads no clock. Instead it returns [`Output`]s — events to publish
//! and [`AsrJob`]s to transcribe — and the caller feeds transcripts back with
//! [`CallPipeline::on_transcript`]. Replay runs each job at once (so the event stream is
//! deterministic); the live service hands jobs to the ASR pool and never blocks intake on it.
//! Prosody-based state and alerts are emitted as audio arrives, without waiting for ASR.
//!
//! Invariants: `seq` runs 0..n without gaps; every job handed out gets exactly one
//! utterance event once its transcript (or its failure) comes back; `call_ended` is last.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::alerts::{AlertEngine, Tick, UtteranceInfo};
use crate::audio::resample::StreamResampler;
use crate::audio::{Speaker, ANALYSIS_RATE};
use crate::config::Config;
use crate::emotion::arousal::{descriptors, input_vector, ArousalBaseline, ArousalModel, Band};
use crate::emotion::emotion_label;
use crate::emotion::sentiment::SentimentAnalyzer;
use crate::empathy::{BehaviourDetector, CallEmpathy};
use crate::events::{
    CallEnded, CallStarted, CallSummary, Event, EventBody, EventStamper, ProsodySummary,
    SpeakerState, SpeakerSummary, State, Utterance, Word,
};
use crate::prosody::{self, Cycle, Frame, ProsodyAnalyzer, ProsodyOutput};
use crate::redact::Redactor;
use crate::segment::{Segment, UtteranceSegmenter, VadFrame, FRAME_S};

/// Something the caller must act on.
// Events dominate the stream and are moved once into their sink; boxing them would add an
// allocation per event to save stack space in a short-lived Vec.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Output {
    /// Publish this event.
    Event(Event),
    /// Transcribe this utterance and call [`CallPipeline::on_transcript`] with the result.
    Asr(AsrJob),
}

/// One utterance to transcribe: 16 kHz mono samples.
#[derive(Debug, Clone)]
pub struct AsrJob {
    pub call_id: String,
    pub job_id: u64,
    pub speaker: Speaker,
    pub start: f64,
    pub end: f64,
    pub samples: Vec<f32>,
    /// The speaker's language as detected earlier in the call (see [`LANGUAGE_SETTLE_S`]);
    /// `None` until then. Used only where `asr.language` is "auto".
    pub language: Option<&'static str>,
    /// The text of the speaker's previous transcribed utterance, as Whisper's prompt
    /// (`asr.prompt_previous`); `None` when off or for a speaker's first utterance.
    pub previous: Option<String>,
}

/// A speaker's language is the one Whisper detected in their first transcribed utterance
/// at least this long; later utterances are decoded in it instead of being detected one
/// by one (a lone "okay" or a name is easily heard as another language).
pub const LANGUAGE_SETTLE_S: f64 = 2.0;

/// A transcript as the pipeline wants it back; word times relative to the utterance start.
pub type TranscriptResult = Result<crate::asr::transcribe::Transcript, NotTranscribed>;

/// Why an utterance has no transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotTranscribed {
    /// The ASR pool shed it because it fell behind.
    Overload,
    /// Whisper failed on it.
    Error(String),
}

impl NotTranscribed {
    fn reason(&self) -> String {
        match self {
            NotTranscribed::Overload => "overload".into(),
            NotTranscribed::Error(_) => "asr_error".into(),
        }
    }
}

/// The read-only analysis models a call uses, loaded once and shared by all calls.
#[derive(Debug, Clone)]
pub struct Analyzers {
    pub arousal: Arc<ArousalModel>,
    pub sentiment: Arc<SentimentAnalyzer>,
    pub redactor: Arc<Redactor>,
    /// Agent behaviour phrase sets (`[empathy]`).
    pub behaviours: Arc<BehaviourDetector>,
}

impl Analyzers {
    /// The built-in models with the configured redaction.
    pub fn from_config(cfg: &Config) -> Result<Self, crate::emotion::arousal::ModelError> {
        let arousal = match &cfg.emotion.arousal_model {
            Some(p) => ArousalModel::load(p)?,
            None => ArousalModel::builtin(),
        };
        Ok(Self {
            arousal: Arc::new(arousal),
            sentiment: Arc::new(SentimentAnalyzer::new()),
            redactor: Arc::new(Redactor::new(cfg.redact.clone())),
            behaviours: Arc::new(BehaviourDetector::new(&cfg.empathy)),
        })
    }
}

/// Per-utterance model inputs, recorded when [`CallPipeline::record_features`] is on (for
/// training and evaluating the arousal model on exactly what the pipeline computes).
#[derive(Debug, Clone)]
pub struct UtteranceFeatures {
    pub speaker: Speaker,
    pub start: f64,
    pub end: f64,
    pub input: Vec<f32>,
    pub arousal: Option<f32>,
    /// The utterance's frames and cycles (what `input` was computed from).
    pub frames: Vec<Frame>,
    pub cycles: Vec<Cycle>,
}

/// How long frames and audio are kept while no utterance is open, seconds: the sliding
/// arousal window plus the segmenter's pre-roll and onset window.
const KEEP_WHEN_IDLE_S: f64 = 2.5;

/// If one speaker's frames run this far ahead of another's, the lagging speaker is treated as
/// silent so that a leg that never sends audio cannot stall the call.
const MAX_LEG_SKEW_S: f64 = 2.0;

/// A live leg whose audio starts at least this far behind the call ([`CallPipeline::join_at`])
/// is moved onto the call's clock. Shorter lags are the jitter of legs that start together
/// (a media stream's two tracks arrive 20 ms apart).
pub const LATE_JOIN_MIN_S: f64 = 0.5;

/// Silence is added to a late leg in pieces of this many seconds, segmenting as it goes, so
/// a leg joining an hour into a call costs no more memory than one joining at its start.
const PAD_CHUNK_S: f64 = 1.0;

/// Sliding arousal window for live stress (never reaching back before the open utterance),
/// and its hop.
const WINDOW_S: f64 = 2.0;
const HOP_S: f64 = 0.5;
/// Voiced speech a window needs before its arousal counts, seconds. Shorter windows read
/// the onset of every utterance as aroused (measured with tools/escalation-eval: with 0.4 s
/// and the window reaching into the preceding pause, 10–27 % of calm speakers' readings
/// were ≥ 0.7; with 0.7 s inside the utterance, 0.5–1.7 %).
const MIN_WINDOW_VOICED_S: f64 = 0.7;
/// Smoothing of window stress (per hop).
const STRESS_SMOOTHING: f32 = 0.5;
/// Stress is the window's arousal relative to the speaker's own running level, on the logit
/// scale: `sigmoid(GAIN · (ramp · (logit(a) − level) − OFFSET))`, where the level is the
/// median arousal logit of the windows of the speaker's earlier utterances in this call (a
/// median, so that an episode of stress does not become the speaker's usual level until it is
/// most of what they have said; earlier utterances, so that a rise within an utterance is
/// measured against how the speaker sounded before it) and `ramp` grows from 0 to 1 over
/// their first `LEVEL_WARMUP_WINDOWS` windows. A window one logit above the speaker's
/// level reads 0.5, two logits above 0.75, the level itself 0.25.
///
/// The level starts from the speaker's own first window, not from a population prior: a
/// voice the model has never heard (another language, a synthetic voice, a phone line) can
/// read high in absolute terms while the speaker is perfectly calm, and with a population
/// prior such a call read as stressed from its first second (calm espeak-ng calls raised
/// `customer_stress` within 30 s). The cost, deliberately accepted: a caller who is
/// distressed from the first word and stays so does not rise above their own opening and
/// raises no `customer_stress` (the transcript alerts — sentiment, escalation phrases — still
/// see them). The ramp keeps the first seconds, when the level rests on a few windows, from
/// reading small wobbles as stress.
const STRESS_GAIN: f32 = 1.1;
const STRESS_OFFSET: f32 = 1.0;
const LEVEL_WARMUP_WINDOWS: f32 = 6.0;
/// Window logits are bounded (P 0.007–0.993) so that one extreme window stands above the
/// level by a bounded amount.
const LOGIT_BOUND: f32 = 5.0;
/// The level's histogram: bins of 0.1 logit over ±LOGIT_BOUND (fixed size, no allocation).
const LEVEL_BINS: usize = 101;
/// Sentiment memory: the valence used for emotion labels is an exponential average over
/// the speaker's utterances with this weight on the newest.
const VALENCE_SMOOTHING: f32 = 0.6;

/// Emotion inference state of one speaker (customer by default).
struct Affect {
    baseline: ArousalBaseline,
    /// Arousal of the last utterance.
    utterance_arousal: Option<f32>,
    /// Histogram and count of the window arousal logits of the speaker's closed utterances
    /// (their usual level), and of the open utterance's windows (added when it closes).
    level_hist: [u32; LEVEL_BINS],
    level_n: f32,
    open_hist: [u32; LEVEL_BINS],
    /// Smoothed window arousal; `None` until the speaker has spoken.
    stress: Option<f32>,
    /// Whether the last window had speech (stress is current).
    stress_live: bool,
    stress_sum: f64,
    stress_n: u64,
    stress_max: Option<f32>,
    valence: Option<f32>,
}

impl Affect {
    /// A speaker who has not spoken yet.
    fn new(baseline: ArousalBaseline) -> Self {
        Affect {
            baseline,
            utterance_arousal: None,
            level_hist: [0; LEVEL_BINS],
            level_n: 0.0,
            open_hist: [0; LEVEL_BINS],
            stress: None,
            stress_live: false,
            stress_sum: 0.0,
            stress_n: 0,
            stress_max: None,
            valence: None,
        }
    }

    /// Stress of an arousal value relative to the speaker's usual level (see STRESS_GAIN).
    fn relative(&self, arousal: f32) -> f32 {
        let excess = match self.level() {
            Some(level) => {
                let ramp = (self.level_n / LEVEL_WARMUP_WINDOWS).min(1.0);
                ramp * (logit(arousal) - level)
            }
            None => 0.0,
        };
        crate::emotion::arousal::sigmoid(STRESS_GAIN * (excess - STRESS_OFFSET))
    }

    /// Median logit of the windows learnt so far.
    fn level(&self) -> Option<f32> {
        let half = (self.level_n / 2.0).ceil().max(1.0) as u32;
        let mut seen = 0;
        for (i, &c) in self.level_hist.iter().enumerate() {
            seen += c;
            if seen >= half && self.level_n > 0.0 {
                let step = 2.0 * LOGIT_BOUND / (LEVEL_BINS - 1) as f32;
                return Some(-LOGIT_BOUND + i as f32 * step);
            }
        }
        None
    }

    /// Notes a window's arousal for the speaker's level (counted once its utterance closes).
    fn learn_level(&mut self, arousal: f32) {
        let x = (logit(arousal) + LOGIT_BOUND) / (2.0 * LOGIT_BOUND);
        let bin = (x * (LEVEL_BINS - 1) as f32).round() as usize;
        self.open_hist[bin.min(LEVEL_BINS - 1)] += 1;
    }

    /// The speaker's leg changed band: the baseline and level start afresh from the new
    /// band's head (they were the other head's reading of the other band's audio); the
    /// call's stress figures so far and the sentiment memory stay.
    fn change_band(&mut self, baseline: ArousalBaseline) {
        *self = Affect {
            stress_sum: self.stress_sum,
            stress_n: self.stress_n,
            stress_max: self.stress_max,
            valence: self.valence,
            ..Affect::new(baseline)
        };
    }

    /// The open utterance closed: its windows join the speaker's level.
    fn commit_level(&mut self) {
        for (l, o) in self.level_hist.iter_mut().zip(self.open_hist.iter_mut()) {
            *l += *o;
            self.level_n += *o as f32;
            *o = 0;
        }
    }
}

fn logit(p: f32) -> f32 {
    let p = p.clamp(1e-4, 1.0 - 1e-4);
    (p / (1.0 - p)).ln().clamp(-LOGIT_BOUND, LOGIT_BOUND)
}

struct Track {
    speaker: Speaker,
    resampler: StreamResampler,
    analyzer: ProsodyAnalyzer,
    segmenter: UtteranceSegmenter,
    /// Frames produced but not yet segmented (waiting for the other speaker's frames).
    unsegmented: VecDeque<Frame>,
    /// Frames and cycles kept for functionals of the open utterance and the window.
    frames: VecDeque<Frame>,
    cycles: VecDeque<Cycle>,
    /// 16 kHz audio kept for the open utterance, starting at `audio_t0` seconds.
    audio: VecDeque<f32>,
    audio_t0: f64,
    /// Scratch for the resampler and the analyzer, reused across pushes.
    scratch16: Vec<f32>,
    out: ProsodyOutput,
    talk_s: f64,
    utterances: u32,
    speaking: bool,
    affect: Option<Affect>,
    /// Recent (end time, words) for the speaking rate.
    recent_words: VecDeque<(f64, usize, f64)>,
    /// Whether this speaker is sending audio; a leg that never connects, or has hung up,
    /// does not hold back the others.
    active: bool,
    /// Seconds of this speaker's audio pushed (silence added by `join_at` included).
    heard_t: f64,
    /// Call time of this speaker's first pushed sample (silence added by `join_at` is not
    /// audio); None until the leg sends any.
    audio_from: Option<f64>,
    /// The language this speaker's utterances are decoded in, once detected.
    language: Option<&'static str>,
    /// The job id and text of this speaker's latest transcribed utterance (raw, before
    /// redaction; it never leaves the process), the next one's Whisper prompt where
    /// `asr.prompt_previous` is on. Kept by job id: `serve`'s workers can finish a
    /// speaker's utterances out of order.
    last_text: Option<(u64, String)>,
}

struct PendingUtterance {
    speaker: Speaker,
    start: f64,
    end: f64,
    functionals: prosody::Functionals,
    arousal: Option<f32>,
    /// The arousal relative to the speaker's level as it stood when the utterance closed
    /// (the emotion label's input): later utterances, closed while this one is still being
    /// transcribed, must not move it, so live reads as replay does.
    relative: Option<f32>,
    /// The transcript once it is back, held while an earlier job of the call is still out.
    result: Option<TranscriptResult>,
}

/// One call's analysis. See the module docs.
pub struct CallPipeline {
    stamper: EventStamper,
    /// Redaction across this call's utterances (card numbers in halves, answers to questions).
    redaction: crate::redact::ConversationRedactor,
    clock: fn() -> String,
    tracks: Vec<Track>,
    pending: BTreeMap<u64, PendingUtterance>,
    next_job: u64,
    /// Whether Whisper detects the language (`asr.language` "auto"): only then does a job
    /// carry the speaker's settled language.
    detecting_language: bool,
    /// Call time up to which every track has been segmented.
    t_segmented: f64,
    next_state_t: f64,
    next_window_t: f64,
    overtalk_s: f64,
    silence_s: f64,
    cfg: Config,
    analyzers: Analyzers,
    alerts: AlertEngine,
    /// Agent behaviours, empathy opportunities, journey, scorecard (`crate::empathy`).
    empathy: CallEmpathy,
    /// Live nudges for the agent (`crate::assist`).
    assist: crate::assist::AssistEngine,
    ended: bool,
    /// Set by `finish`, taken when `call_ended` is emitted.
    end_reason: Option<String>,
    feature_log: Option<Vec<UtteranceFeatures>>,
    /// The agent named on `call_started`, repeated in the summary.
    agent: Option<String>,
}

impl CallPipeline {
    /// Starts a call; the first output is its `call_started` event.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        call_id: &str,
        source: &str,
        speakers: &[Speaker],
        input_rate: u32,
        agent: Option<String>,
        cfg: &Config,
        analyzers: &Analyzers,
        clock: fn() -> String,
        out: &mut Vec<Output>,
    ) -> Result<Self, crate::audio::error::AudioError> {
        let mut tracks = Vec::with_capacity(speakers.len());
        for &speaker in speakers {
            let emotion = speaker == Speaker::Customer || cfg.pipeline.agent_emotion;
            tracks.push(Track {
                speaker,
                resampler: StreamResampler::new(input_rate, ANALYSIS_RATE)?,
                analyzer: ProsodyAnalyzer::new(ANALYSIS_RATE, &cfg.prosody.analyzer_config()),
                segmenter: UtteranceSegmenter::for_input_rate(cfg.vad.clone(), input_rate),
                unsegmented: VecDeque::new(),
                frames: VecDeque::new(),
                cycles: VecDeque::new(),
                audio: VecDeque::new(),
                audio_t0: 0.0,
                scratch16: Vec::new(),
                out: ProsodyOutput::default(),
                talk_s: 0.0,
                utterances: 0,
                speaking: false,
                affect: emotion.then(|| Affect::new(analyzers.arousal.new_baseline(input_rate))),
                recent_words: VecDeque::new(),
                active: false,
                heard_t: 0.0,
                audio_from: None,
                language: None,
                last_text: None,
            });
        }
        let mut p = Self {
            stamper: EventStamper::new(call_id),
            redaction: crate::redact::ConversationRedactor::new(analyzers.redactor.clone()),
            clock,
            tracks,
            pending: BTreeMap::new(),
            next_job: 0,
            detecting_language: matches!(
                crate::asr::transcribe::parse_language(&cfg.asr.language),
                Ok(None)
            ),
            t_segmented: 0.0,
            next_state_t: cfg.pipeline.state_interval_s,
            next_window_t: WINDOW_S,
            overtalk_s: 0.0,
            silence_s: 0.0,
            cfg: cfg.clone(),
            analyzers: analyzers.clone(),
            // Stress moments a cooldown holds back still reach empathy (`advance`).
            alerts: AlertEngine::new(call_id, cfg.alerts.clone()).record_suppressed(),
            empathy: CallEmpathy::new(cfg, Arc::clone(&analyzers.behaviours)),
            assist: crate::assist::AssistEngine::new(call_id, &cfg.assist),
            ended: false,
            end_reason: None,
            feature_log: None,
            agent: agent.clone(),
        };
        let body = EventBody::CallStarted(CallStarted {
            source: source.into(),
            speakers: speakers.to_vec(),
            sample_rate: input_rate,
            agent,
        });
        p.emit(0.0, body, out);
        Ok(p)
    }

    pub fn call_id(&self) -> &str {
        self.stamper.call_id()
    }

    /// Speakers of this call, in track order.
    pub fn speakers(&self) -> Vec<Speaker> {
        self.tracks.iter().map(|t| t.speaker).collect()
    }

    /// Utterances handed out for transcription whose events are not out yet: their results
    /// have not come back, or are held for an earlier job of the call.
    pub fn pending_jobs(&self) -> usize {
        self.pending.len()
    }

    /// Call time analysed so far (every speaker), seconds.
    pub fn t(&self) -> f64 {
        self.t_segmented
    }

    /// Starts recording per-utterance model inputs (see [`UtteranceFeatures`]).
    pub fn record_features(&mut self) {
        self.feature_log.get_or_insert_with(Vec::new);
    }

    /// Takes the recorded model inputs.
    pub fn take_features(&mut self) -> Vec<UtteranceFeatures> {
        self.feature_log
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    fn emit(&mut self, t: f64, body: EventBody, out: &mut Vec<Output>) {
        let ts = (self.clock)();
        out.push(Output::Event(self.stamper.stamp(round3(t), ts, body)));
    }

    /// Switches one speaker's input rate (a leg that joins at another rate: the call starts
    /// at the rate of whichever leg is heard first, often the agent greeting on a wideband
    /// softphone while the customer's leg is a telephone line).
    ///
    /// The leg's pause rule and its arousal head follow the new band. A change of band
    /// starts the speaker's arousal baseline and stress level afresh (what was learned is
    /// the other head's reading of the other band's audio); the call's stress figures so far
    /// stay in its summary.
    pub fn set_input_rate(
        &mut self,
        speaker: Speaker,
        rate: u32,
    ) -> Result<(), crate::audio::error::AudioError> {
        let model = &self.analyzers.arousal;
        if let Some(track) = self.tracks.iter_mut().find(|t| t.speaker == speaker) {
            if track.resampler.in_rate() != rate {
                track.resampler = StreamResampler::new(rate, ANALYSIS_RATE)?;
                track.segmenter.set_input_rate(rate);
                if let Some(affect) = track.affect.as_mut() {
                    if affect.baseline.band() != Band::of_rate(rate) {
                        affect.change_band(model.new_baseline(rate));
                    }
                }
            }
        }
        Ok(())
    }

    /// Puts a live leg that starts (or restarts) sending audio `at` seconds into the call
    /// on the call's clock: a speaker's times count from its own first sample, so an agent
    /// leg that connects 10 s after the customer's would otherwise say everything 10 s
    /// early: before the distress it answers, and over the customer's speech. The leg is
    /// padded with silence up to `at`, never past the audio the other legs have sent (a
    /// sender that runs ahead of real time sets no clock). Lags under [`LATE_JOIN_MIN_S`]
    /// are left alone. Returns the seconds of silence added.
    ///
    /// Call it before the leg's first [`CallPipeline::push`]; `at` comes from the source
    /// (wall time since the call's first audio), as the pipeline keeps no clock.
    pub fn join_at(&mut self, speaker: Speaker, at: f64, out: &mut Vec<Output>) -> f64 {
        if self.ended {
            return 0.0;
        }
        let Some(i) = self.tracks.iter().position(|t| t.speaker == speaker) else {
            return 0.0;
        };
        let own = self.tracks[i].heard_t;
        let others = self
            .tracks
            .iter()
            .filter(|t| t.speaker != speaker && t.active)
            .map(|t| t.heard_t)
            .fold(0.0, f64::max);
        let pad = at.min(others) - own;
        if pad < LATE_JOIN_MIN_S {
            return 0.0;
        }
        self.tracks[i].active = true;
        self.tracks[i].heard_t += pad;
        let mut left = (pad * ANALYSIS_RATE as f64).round() as usize;
        let chunk = (PAD_CHUNK_S * ANALYSIS_RATE as f64) as usize;
        while left > 0 {
            let n = left.min(chunk);
            let track = &mut self.tracks[i];
            track.scratch16.clear();
            track.scratch16.resize(n, 0.0);
            track.analyze_scratch(false);
            self.advance(false, out);
            left -= n;
        }
        pad
    }

    /// A leg has hung up: the others no longer wait for its audio (until it sends again).
    pub fn end_leg(&mut self, speaker: Speaker) {
        if let Some(t) = self.tracks.iter_mut().find(|t| t.speaker == speaker) {
            t.active = false;
        }
    }

    /// Pushes audio of one speaker at its input rate, in [-1, 1].
    pub fn push(&mut self, speaker: Speaker, samples: &[f32], out: &mut Vec<Output>) {
        if self.ended {
            return;
        }
        let Some(i) = self.tracks.iter().position(|t| t.speaker == speaker) else {
            return;
        };
        let track = &mut self.tracks[i];
        track.active = true;
        if track.audio_from.is_none() && !samples.is_empty() {
            track.audio_from = Some(track.heard_t);
            if speaker == Speaker::Agent {
                // From now on the agent can be scored (see `empathy::opportunity`).
                self.empathy.on_agent_audio(track.heard_t);
            }
        }
        track.heard_t += samples.len() as f64 / track.resampler.in_rate() as f64;
        track.scratch16.clear();
        track.resampler.push(samples, &mut track.scratch16);
        track.analyze_scratch(false);
        self.advance(false, out);
    }

    /// Ends the call: flushes every stage and closes open utterances; `call_ended` follows
    /// once all transcripts are back (see [`CallPipeline::is_finished`]).
    pub fn finish(&mut self, reason: &str, out: &mut Vec<Output>) {
        if self.ended {
            return;
        }
        for track in &mut self.tracks {
            track.scratch16.clear();
            track.resampler.flush(&mut track.scratch16);
            track.analyze_scratch(true);
        }
        self.advance(true, out);
        for i in 0..self.tracks.len() {
            if let Some(seg) = self.tracks[i].segmenter.finish() {
                self.segment_closed(i, seg, out);
            }
        }
        self.ended = true;
        self.end_reason = Some(reason.to_string());
        self.maybe_emit_end(out);
    }

    /// Empathy bookkeeping for one tick: the customer's live stress and whether agent or
    /// customer speech is still being spoken or transcribed.
    fn empathy_tick(&mut self, customer_stress: Option<f32>, out: &mut Vec<Output>) {
        let t = self.t_segmented;
        let x = crate::empathy::EmpathyTick {
            t,
            stress: customer_stress,
            agent_unheard_from: self.unheard_from(Speaker::Agent),
            customer_unheard_from: self.unheard_from(Speaker::Customer),
        };
        let events = self.empathy.on_tick(&x);
        self.emit_empathy(t, events, out);
    }

    /// Start of `speaker`'s speech still being spoken or transcribed, if any.
    fn unheard_from(&self, speaker: Speaker) -> Option<f64> {
        let open = self.track(speaker).and_then(|t| t.segmenter.open_start());
        let queued = self
            .pending
            .values()
            .filter(|p| p.speaker == speaker)
            .map(|p| p.start)
            .reduce(f64::min);
        match (open, queued) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Nudges for the agent at this frame.
    fn assist_tick(&mut self, tick: &Tick, out: &mut Vec<Output>) {
        let agent_rate = self
            .track(Speaker::Agent)
            .and_then(|t| t.speaking_rate_and_speech(self.t_segmented));
        let reply_pending = self.unheard_from(Speaker::Agent).is_some();
        let x = crate::assist::AssistTick {
            t: self.t_segmented,
            customer_voiced: tick.customer_voiced,
            agent_voiced: tick.agent_voiced,
            open_opportunity: self.empathy.open_opportunity(),
            reply_pending,
            agent_rate,
        };
        let nudges = self.assist.on_tick(&x);
        for a in nudges {
            self.emit(self.t_segmented, EventBody::Assist(a), out);
        }
    }

    /// Publishes `empathy` events and the `empathy_missed` alerts they call for.
    fn emit_empathy(&mut self, t: f64, events: Vec<crate::events::Empathy>, out: &mut Vec<Output>) {
        for e in events {
            let alert = self.empathy.alert_for(&e);
            self.emit(t, EventBody::Empathy(e), out);
            if let Some(r) = alert {
                let a = self
                    .alerts
                    .raise(r.kind, r.severity, None, r.span, r.message, r.evidence);
                self.emit(t, EventBody::Alert(a), out);
            }
        }
    }

    /// True once `call_ended` has been emitted.
    pub fn is_finished(&self) -> bool {
        self.ended && self.end_reason.is_none()
    }

    /// Segments frames that every speaker has reached (or that a lagging leg can no longer
    /// claim), feeds the alert engine, and emits state ticks.
    fn advance(&mut self, flushing: bool, out: &mut Vec<Output>) {
        let mut levels: Vec<Option<f32>> = vec![None; self.tracks.len()];
        loop {
            let mut t = f64::INFINITY;
            let mut newest = f64::NEG_INFINITY;
            let mut all_have = true;
            for tr in &self.tracks {
                match tr.unsegmented.front() {
                    Some(f) => t = t.min(f.t),
                    None if tr.active => all_have = false,
                    None => {}
                }
                if let Some(b) = tr.unsegmented.back() {
                    newest = newest.max(b.t);
                }
            }
            if !t.is_finite() {
                break;
            }
            // Frame `t` can be segmented when every track has a frame at (or after) `t`, or
            // when the laggards are far behind the newest audio, or at the end of the call.
            if !(all_have || flushing || newest - t > MAX_LEG_SKEW_S) {
                break;
            }
            for (l, tr) in levels.iter_mut().zip(&self.tracks) {
                *l = tr
                    .unsegmented
                    .front()
                    .filter(|f| (f.t - t).abs() < FRAME_S / 2.0)
                    .map(|f| f.rms_db);
            }
            for i in 0..self.tracks.len() {
                let Some(frame) = levels[i].and_then(|_| self.tracks[i].unsegmented.pop_front())
                else {
                    self.tracks[i].speaking = false;
                    continue;
                };
                let other = levels
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .filter_map(|(_, l)| *l)
                    .reduce(f32::max);
                let vf = VadFrame {
                    t: frame.t,
                    rms_db: frame.rms_db,
                    voiced: frame.voiced,
                    other_rms_db: other,
                };
                let closed = self.tracks[i].segmenter.push(&vf);
                let speaking = self.tracks[i].segmenter.speaking();
                self.tracks[i].speaking = speaking;
                if speaking {
                    self.tracks[i].talk_s += FRAME_S;
                }
                if let Some(seg) = closed {
                    self.segment_closed(i, seg, out);
                }
            }
            let n_speaking = self.tracks.iter().filter(|t| t.speaking).count();
            if n_speaking >= 2 {
                self.overtalk_s += FRAME_S;
            } else if n_speaking == 0 {
                self.silence_s += FRAME_S;
            }
            self.t_segmented = t + FRAME_S / 2.0;
            if self.t_segmented >= self.next_window_t {
                self.next_window_t += HOP_S;
                self.update_windows();
            }
            let tick = Tick {
                customer_voiced: self.speaking(Speaker::Customer),
                agent_voiced: self.speaking(Speaker::Agent),
                customer_stress: self
                    .track(Speaker::Customer)
                    .and_then(|t| t.affect.as_ref())
                    .filter(|a| a.stress_live)
                    .and_then(|a| a.stress),
            };
            let alerts = self.alerts.on_tick(self.t_segmented, &tick);
            for a in alerts {
                let opened = self.empathy.on_alert(&a);
                self.emit(self.t_segmented, EventBody::Alert(a), out);
                self.emit_empathy(self.t_segmented, opened, out);
            }
            // Distress the cooldown kept from the supervisors is still distress.
            for m in self.alerts.take_suppressed() {
                let opened = self.empathy.on_suppressed(&m);
                self.emit_empathy(self.t_segmented, opened, out);
            }
            self.empathy_tick(tick.customer_stress, out);
            self.assist_tick(&tick, out);
            for tr in &mut self.tracks {
                tr.trim(self.t_segmented);
            }
            if self.t_segmented >= self.next_state_t {
                self.next_state_t += self.cfg.pipeline.state_interval_s;
                self.emit_state(out);
            }
        }
    }

    fn track(&self, s: Speaker) -> Option<&Track> {
        self.tracks.iter().find(|t| t.speaker == s)
    }

    fn speaking(&self, s: Speaker) -> bool {
        self.track(s).is_some_and(|t| t.speaking)
    }

    /// Sliding-window arousal → stress for every speaker with emotion inference.
    fn update_windows(&mut self) {
        let t = self.t_segmented;
        let model = Arc::clone(&self.analyzers.arousal);
        for tr in &mut self.tracks {
            let Some(affect) = tr.affect.as_mut() else {
                continue;
            };
            // Only the current run of speech: a window reaching back over the pause before it
            // reads the pause's silence and the onset's rise as arousal.
            let from = tr
                .segmenter
                .speech_run_start()
                .map_or(t - WINDOW_S, |s| s.max(t - WINDOW_S));
            let frames: Vec<Frame> = tr
                .frames
                .iter()
                .filter(|f| f.t >= from && f.t < t)
                .copied()
                .collect();
            let voiced_s = frames.iter().filter(|f| f.voiced).count() as f64 * FRAME_S;
            // Only speech the segmenter accepted counts (not bleed from the other line).
            let in_speech = tr.segmenter.speaking();
            if voiced_s < MIN_WINDOW_VOICED_S || !in_speech {
                affect.stress_live = false;
                continue;
            }
            let cycles: Vec<Cycle> = tr
                .cycles
                .iter()
                .filter(|c| c.t >= from && c.t < t)
                .copied()
                .collect();
            let f = prosody::functionals(&frames, &cycles);
            let arousal = model.predict(&affect.baseline, &descriptors(&f, &frames, &cycles));
            let a = affect.relative(arousal);
            affect.learn_level(arousal);
            let s = match affect.stress {
                // Smoothing carries across pauses: the speaker's stress is a state, not a
                // per-utterance reading.
                Some(prev) => prev + STRESS_SMOOTHING * (a - prev),
                None => a,
            };
            affect.stress = Some(s);
            affect.stress_live = true;
            affect.stress_sum += s as f64;
            affect.stress_n += 1;
            affect.stress_max = Some(affect.stress_max.map_or(s, |m| m.max(s)));
        }
    }

    fn emit_state(&mut self, out: &mut Vec<Output>) {
        let t = self.t_segmented.max(FRAME_S);
        let speakers = self
            .tracks
            .iter()
            .map(|tr| {
                let affect = tr.affect.as_ref();
                let stress = affect.and_then(|a| a.stress).map(round2);
                let arousal = affect.and_then(|a| a.utterance_arousal).map(round2);
                let valence = affect.and_then(|a| a.valence);
                (
                    tr.speaker,
                    SpeakerState {
                        arousal,
                        stress,
                        emotion: affect
                            .and_then(|_| emotion_label(stress, None, valence))
                            .map(str::to_string),
                        talk_ratio: round2((tr.talk_s / t) as f32),
                        speaking_rate_wps: tr.speaking_rate(self.t_segmented).map(round2),
                        journey: (tr.speaker == Speaker::Customer)
                            .then(|| self.empathy.journey_label())
                            .flatten(),
                    },
                )
            })
            .collect();
        self.emit(self.t_segmented, EventBody::State(State { speakers }), out);
    }

    fn segment_closed(&mut self, i: usize, seg: Segment, out: &mut Vec<Output>) {
        let model = Arc::clone(&self.analyzers.arousal);
        let track = &mut self.tracks[i];
        track.utterances += 1;
        let frames: Vec<Frame> = track
            .frames
            .iter()
            .filter(|f| f.t >= seg.start && f.t < seg.end)
            .copied()
            .collect();
        let cycles: Vec<Cycle> = track
            .cycles
            .iter()
            .filter(|c| c.t >= seg.start && c.t < seg.end)
            .copied()
            .collect();
        let functionals = prosody::functionals(&frames, &cycles);
        let mut arousal = None;
        let mut relative = None;
        if let Some(affect) = track.affect.as_mut() {
            // Score against the baseline as it was before this utterance, then learn from it.
            let d = descriptors(&functionals, &frames, &cycles);
            let input = input_vector(&affect.baseline, &d);
            let a = model.predict_input(affect.baseline.band(), &input);
            affect.baseline.update(&d);
            affect.utterance_arousal = Some(a);
            affect.commit_level();
            arousal = Some(a);
            relative = Some(affect.relative(a));
            if let Some(log) = self.feature_log.as_mut() {
                log.push(UtteranceFeatures {
                    speaker: track.speaker,
                    start: seg.start,
                    end: seg.end,
                    input,
                    arousal,
                    frames: frames.clone(),
                    cycles: cycles.clone(),
                });
            }
        }
        let a = ((seg.start - track.audio_t0) * ANALYSIS_RATE as f64)
            .round()
            .max(0.0) as usize;
        let b = (((seg.end - track.audio_t0) * ANALYSIS_RATE as f64).round() as usize)
            .min(track.audio.len());
        let samples: Vec<f32> = track.audio.range(a.min(b)..b).copied().collect();
        let speaker = track.speaker;
        // The language Whisper settled on for this speaker matters only where it detects
        // ("auto"); with a fixed language the job carries none (so it depends on its audio
        // alone and replay can transcribe it ahead).
        let language = if self.detecting_language {
            track.language
        } else {
            None
        };
        let previous = if self.cfg.asr.prompt_previous {
            track.last_text.as_ref().map(|(_, t)| t.clone())
        } else {
            None
        };
        let job_id = self.next_job;
        self.next_job += 1;
        self.pending.insert(
            job_id,
            PendingUtterance {
                speaker,
                start: seg.start,
                end: seg.end,
                functionals,
                arousal,
                relative,
                result: None,
            },
        );
        out.push(Output::Asr(AsrJob {
            call_id: self.call_id().to_string(),
            job_id,
            speaker,
            start: seg.start,
            end: seg.end,
            samples,
            language,
            previous,
        }));
    }

    /// Feeds back the transcript of a job handed out earlier. Transcripts are taken in the
    /// order their jobs were handed out: one that comes back while an earlier job of the call
    /// is still out (`serve`'s workers finish out of order) is held until that one is back,
    /// so the utterance events, sentiment, alerts and empathy follow the call's order, as in
    /// replay.
    pub fn on_transcript(&mut self, job_id: u64, result: TranscriptResult, out: &mut Vec<Output>) {
        let Some(p) = self.pending.get_mut(&job_id).filter(|p| p.result.is_none()) else {
            return;
        };
        p.result = Some(result);
        while let Some(entry) = self.pending.first_entry() {
            if entry.get().result.is_none() {
                break;
            }
            let (id, mut p) = entry.remove_entry();
            let result = p.result.take().expect("checked above");
            self.take_transcript(id, p, result, out);
        }
    }

    fn take_transcript(
        &mut self,
        job_id: u64,
        p: PendingUtterance,
        result: TranscriptResult,
        out: &mut Vec<Output>,
    ) {
        let language = result.as_ref().ok().and_then(|t| t.language);
        let settles = matches!(&result, Ok(t) if t.rejected.is_none())
            && p.end - p.start >= LANGUAGE_SETTLE_S;
        let (transcript, not_transcribed) = match result {
            // A decode the ASR rejected (no speech, a loop, ...) carries no words, only why.
            Ok(t) => match t.rejected {
                Some(r) => (Default::default(), Some(r.as_str().to_string())),
                None => (t, None),
            },
            Err(e) => (Default::default(), Some(e.reason())),
        };
        let words: Vec<Word> = transcript
            .words
            .iter()
            .map(|w| Word {
                w: w.w.clone(),
                start: round3(p.start + w.start),
                end: round3(p.start + w.end),
                p: (w.p * 1000.0).round() / 1000.0,
            })
            .collect();
        // Sentiment and phrases read the raw words; only redacted text leaves this function.
        let sentiment = if transcript.text.is_empty() {
            0.0
        } else {
            round2(self.analyzers.sentiment.compound(&transcript.text))
        };
        let (red_text, words, words_redacted) =
            self.redaction
                .redact_utterance(p.speaker, p.start, p.end, &transcript.text, &words);
        // Speaking time: the utterance span without the segmenter's padding (voiced frames
        // alone would leave out consonants and inflate the rate).
        let pad = self.cfg.vad.pre_roll_s + self.cfg.vad.post_roll_s;
        let speech_s = (p.end - p.start - pad).max(0.2);
        let wps = (!words.is_empty()).then(|| (words.len() as f64 / speech_s) as f32);
        let track_i = self.tracks.iter().position(|t| t.speaker == p.speaker);
        let mut emotion = None;
        if let Some(tr) = track_i.map(|i| &mut self.tracks[i]) {
            if settles && tr.language.is_none() {
                tr.language = language;
            }
            let newer = tr.last_text.as_ref().is_none_or(|(id, _)| *id < job_id);
            if self.cfg.asr.prompt_previous && newer && !transcript.text.is_empty() {
                tr.last_text = Some((job_id, transcript.text.clone()));
            }
            tr.recent_words.push_back((p.end, words.len(), speech_s));
            if let Some(affect) = tr.affect.as_mut() {
                if !transcript.text.is_empty() {
                    affect.valence = Some(match affect.valence {
                        Some(v) => v + VALENCE_SMOOTHING * (sentiment - v),
                        None => sentiment,
                    });
                }
                // The label reads activation relative to the speaker's own level, so a
                // naturally animated voice is not "anxious" from its first word.
                emotion = emotion_label(p.relative, None, Some(sentiment)).map(str::to_string);
            }
        }
        let behaviours = if words.is_empty() {
            let w: Vec<&str> = red_text.text.split_whitespace().collect();
            self.empathy.behaviours(p.speaker, &w)
        } else {
            let w: Vec<&str> = words.iter().map(|w| w.w.as_str()).collect();
            self.empathy.behaviours(p.speaker, &w)
        };
        let f = &p.functionals;
        let utterance = Utterance {
            speaker: p.speaker,
            start: round3(p.start),
            end: round3(p.end),
            text: red_text.text,
            redacted: red_text.redacted || words_redacted,
            words,
            not_transcribed,
            language: language.map(str::to_string),
            sentiment,
            arousal: p.arousal.map(round2),
            emotion,
            prosody: ProsodySummary {
                f0_mean_hz: f.f0_mean_hz.map(round2),
                f0_range_st: f.f0_range_st.map(round2),
                loudness: Some(round2(f.loudness_mean)),
                jitter: f.jitter_local.map(|j| (j * 1e4).round() / 1e4),
                shimmer_db: f.shimmer_local_db.map(round2),
                hnr_db: f.hnr_db_mean.map(round2),
                speaking_rate_wps: wps.map(round2),
            },
            behaviours,
        };
        if utterance.not_transcribed.is_none() {
            if utterance.words.is_empty() {
                let w: Vec<&str> = utterance.text.split_whitespace().collect();
                self.assist.on_utterance(utterance.speaker, &w);
            } else {
                let w: Vec<&str> = utterance.words.iter().map(|w| w.w.as_str()).collect();
                self.assist.on_utterance(utterance.speaker, &w);
            }
        }
        let alerts = self.alerts.on_utterance(&UtteranceInfo::from(&utterance));
        // `CallEmpathy` reads the transcript rules' moments, held back or not, itself.
        self.alerts.take_suppressed();
        let empathy = self.empathy.on_utterance(&utterance, &alerts);
        self.emit(p.end, EventBody::Utterance(utterance), out);
        for a in alerts {
            let t = a.end;
            self.emit(t, EventBody::Alert(a), out);
        }
        self.emit_empathy(p.end, empathy, out);
        self.maybe_emit_end(out);
    }

    fn maybe_emit_end(&mut self, out: &mut Vec<Output>) {
        if !self.ended || !self.pending.is_empty() {
            return;
        }
        let Some(reason) = self.end_reason.take() else {
            return;
        };
        let duration = self
            .tracks
            .iter()
            .map(|t| t.audio_t0 + t.audio.len() as f64 / ANALYSIS_RATE as f64)
            .fold(self.t_segmented, f64::max);
        let speakers = self
            .tracks
            .iter()
            .map(|tr| {
                let affect = tr.affect.as_ref();
                (
                    tr.speaker,
                    SpeakerSummary {
                        mean_stress: affect
                            .filter(|a| a.stress_n > 0)
                            .map(|a| round2((a.stress_sum / a.stress_n as f64) as f32)),
                        max_stress: affect.and_then(|a| a.stress_max).map(round2),
                        talk_ratio: if duration > 0.0 {
                            round2((tr.talk_s / duration) as f32)
                        } else {
                            0.0
                        },
                        talk_s: round3(tr.talk_s),
                        overtalk_s: round3(self.overtalk_s),
                        silence_s: round3(self.silence_s),
                        utterances: tr.utterances,
                    },
                )
            })
            .collect();
        let late = self.empathy.finish(duration);
        self.emit_empathy(duration, late, out);
        for a in self.assist.finish() {
            self.emit(duration, EventBody::Assist(a), out);
        }
        let long_silences = self
            .alerts
            .counts()
            .get(&crate::events::AlertKind::LongSilence)
            .copied()
            .unwrap_or(0);
        let extra = self.empathy.summary(self.overtalk_s, long_silences);
        let body = EventBody::CallEnded(CallEnded {
            reason,
            duration: round3(duration),
            summary: CallSummary {
                agent: self.agent.clone(),
                speakers,
                alerts: self.alerts.counts().clone(),
                journey: extra.journey.map(Box::new),
                empathy: extra.empathy.map(Box::new),
                scorecard: extra.scorecard.map(Box::new),
            },
        });
        self.emit(duration, body, out);
    }
}

impl Track {
    /// Runs the prosody engine over `scratch16` (the newly resampled audio).
    fn analyze_scratch(&mut self, finish: bool) {
        self.audio.extend(self.scratch16.iter().copied());
        self.out.clear();
        self.analyzer.push(&self.scratch16, &mut self.out);
        if finish {
            self.analyzer.finish(&mut self.out);
        }
        self.unsegmented.extend(self.out.frames.iter().copied());
        self.frames.extend(self.out.frames.iter().copied());
        self.cycles.extend(self.out.cycles.iter().copied());
    }

    /// Words per second of speech over the last 20 s of utterances.
    fn speaking_rate(&self, now: f64) -> Option<f32> {
        self.speaking_rate_and_speech(now).map(|(r, _)| r)
    }

    /// Words per second of speech over the last 20 s and the seconds of speech behind it.
    fn speaking_rate_and_speech(&self, now: f64) -> Option<(f32, f64)> {
        let (w, s) = self
            .recent_words
            .iter()
            .filter(|(end, _, _)| now - end <= 20.0)
            .fold((0usize, 0.0f64), |(w, s), (_, n, sp)| (w + n, s + sp));
        (w > 0 && s > 0.0).then(|| ((w as f64 / s) as f32, s))
    }

    /// Drops audio, frames and cycles no open or future utterance or window can need.
    fn trim(&mut self, t_segmented: f64) {
        // An open utterance keeps everything from its start; an idle track keeps enough for
        // the sliding window and the segmenter's pre-roll.
        let idle_keep = t_segmented - KEEP_WHEN_IDLE_S;
        let keep_from = match self.segmenter.open_start() {
            Some(start) => (start - FRAME_S).min(idle_keep),
            None => idle_keep,
        };
        while self.frames.front().is_some_and(|f| f.t < keep_from) {
            self.frames.pop_front();
        }
        while self.cycles.front().is_some_and(|c| c.t < keep_from) {
            self.cycles.pop_front();
        }
        let drop = ((keep_from - self.audio_t0) * ANALYSIS_RATE as f64).floor();
        if drop > 0.0 {
            let drop = (drop as usize).min(self.audio.len());
            self.audio.drain(..drop);
            self.audio_t0 += drop as f64 / ANALYSIS_RATE as f64;
        }
        while self
            .recent_words
            .front()
            .is_some_and(|(end, _, _)| t_segmented - end > 20.0)
        {
            self.recent_words.pop_front();
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn round2(x: f32) -> f32 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod stress_tests {
    use super::*;

    fn affect() -> Affect {
        Affect::new(ArousalModel::builtin().new_baseline(16_000))
    }

    #[test]
    fn a_voice_that_reads_high_throughout_is_calm_from_the_first_window() {
        // An unfamiliar voice the model reads at 0.97 all call long is that speaker's level.
        let mut a = affect();
        for i in 0..40 {
            let s = a.relative(0.97);
            assert!(s < 0.3, "window {i}: {s}");
            a.learn_level(0.97);
            if i % 5 == 4 {
                a.commit_level();
            }
        }
    }

    #[test]
    fn a_rise_above_the_opening_is_stress_until_it_is_most_of_the_call() {
        let mut a = affect();
        for _ in 0..20 {
            a.learn_level(0.5);
        }
        a.commit_level();
        assert!(a.relative(0.95) > 0.7, "{}", a.relative(0.95));
        // A long stressed utterance is measured against the speaker before it.
        for _ in 0..30 {
            a.learn_level(0.95);
        }
        assert!(a.relative(0.95) > 0.7, "{}", a.relative(0.95));
        a.commit_level();
        // Once stress is most of what the speaker said, it is their level.
        assert!(a.relative(0.95) < 0.3, "{}", a.relative(0.95));
    }

    #[test]
    fn the_first_windows_say_little() {
        let mut a = affect();
        assert!((a.relative(0.99) - 0.25).abs() < 0.01);
        a.learn_level(0.4);
        a.commit_level();
        assert!(a.relative(0.99) < 0.5, "{}", a.relative(0.99));
    }
}
