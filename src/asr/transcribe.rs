//! Whisper transcription of one utterance: 16 kHz mono samples in, text and timed words out.
//!
//! One [`WhisperModel`] (the weights, shared) serves many [`Transcriber`]s, each owning a
//! long-lived `WhisperState` (the KV cache and buffers), so workers never allocate a state
//! per utterance.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::timing::{token_times, TokenIn};
use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState,
    WhisperTokenData,
};

use crate::audio::ANALYSIS_RATE;
use crate::events::Word;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AsrError {
    #[error("{path}: Whisper model not found; run `models/fetch-offline.sh` or `calltone model fetch tiny.en`")]
    ModelMissing { path: PathBuf },
    #[error("{path}: not a loadable Whisper ggml model ({reason})")]
    ModelLoad { path: PathBuf, reason: String },
    #[error("{path}: asr.language = \"{language}\" needs a multilingual Whisper model, and this one is English-only; use a model without `.en` (`calltone model fetch tiny`) or asr.language = \"en\"")]
    EnglishOnly { path: PathBuf, language: String },
    #[error("whisper inference failed: {0}")]
    Inference(String),
}

/// The Whisper code of an `asr.language` value: `Ok(None)` for automatic detection ("" or
/// "auto"), `Ok(Some(code))` for a language Whisper knows, by code or English name
/// ("de", "german"); an error naming the value otherwise.
pub fn parse_language(value: &str) -> Result<Option<&'static str>, String> {
    let v = value.trim().to_ascii_lowercase();
    if v.is_empty() || v == "auto" {
        return Ok(None);
    }
    // Looked up in Whisper's table here: whisper_lang_id logs an error for unknown names.
    (0..=whisper_rs::get_lang_max_id())
        .find(|&id| {
            whisper_rs::get_lang_str(id) == Some(v.as_str())
                || whisper_rs::get_lang_str_full(id) == Some(v.as_str())
        })
        .and_then(whisper_rs::get_lang_str)
        .map(Some)
        .ok_or_else(|| {
            format!("\"{value}\" is not a language Whisper knows; use a code such as \"en\", \"de\", \"tr\", \"ar\", or \"auto\"")
        })
}

/// Decoding options for utterance transcription.
#[derive(Debug, Clone)]
pub struct TranscribeOptions {
    /// CPU threads whisper.cpp uses for one utterance. Default 1: ggml starts and joins its
    /// worker threads for every graph (each decoded token), and they spin at the barriers
    /// between operations, so a second thread buys little alone and collapses when two
    /// processes share the cores (README, ASR cost).
    pub threads: usize,
    /// Whisper language code (see [`parse_language`]), or `None` to detect the language of
    /// each utterance not already known (multilingual models only).
    pub language: Option<String>,
    /// No-speech probability above which an utterance whose average token log-probability
    /// is also below `logprob_threshold` is rejected as `no_speech` (whisper.cpp's rule).
    pub no_speech_threshold: f32,
    /// Average token log-probability below which a decode counts as unsure (see above, and
    /// `reject_low_logprob`).
    pub logprob_threshold: f32,
    /// Reject decodes whose average log-probability is below `logprob_threshold` even when
    /// the no-speech probability is low (`low_confidence`).
    pub reject_low_logprob: bool,
    /// Token entropy (nats over the last 32 text tokens, scaled for shorter texts) below
    /// which the text is a repetition loop (`repetitive`); whisper.cpp's default 2.4.
    pub entropy_threshold: f32,
    /// Token budget: at most `budget_base + budget_per_s × duration` tokens (text and
    /// timestamps) are decoded per utterance; a decode that reaches it is rejected
    /// (`token_budget`). Speech needs at most ~5 tokens/s (measured: 2.5–4.7 on read and
    /// conversational English).
    pub budget_base: u32,
    pub budget_per_s: f32,
    /// More words than this per second of audio nobody says (fast speech is 3–4; measured
    /// at most 3.5 on read and conversational English): such a decode is rejected as
    /// `implausible_rate` (a short unclear word decoded into a sentence).
    pub max_words_per_s: f32,
    /// Shrink the encoder window to the utterance (much faster on short utterances).
    pub trim_audio_ctx: bool,
    /// Text decoded as if it had been said before every utterance (product names, site
    /// phrases); empty for none.
    pub initial_prompt: String,
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        Self {
            threads: 1,
            language: Some("en".into()),
            no_speech_threshold: 0.6,
            logprob_threshold: -1.0,
            reject_low_logprob: false,
            entropy_threshold: 2.4,
            budget_base: 8,
            budget_per_s: 7.0,
            max_words_per_s: 6.0,
            trim_audio_ctx: std::env::var_os("CALLTONE_FULL_AUDIO_CTX").is_none(),
            initial_prompt: String::new(),
        }
    }
}

/// Why a decoded utterance is published without words. The strings are a fixed vocabulary
/// (the utterance event's `not_transcribed`, next to `overload` and `asr_error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Whisper heard no speech: nothing decoded, or a high no-speech probability with an
    /// unsure decode.
    NoSpeech,
    /// The decode is unsure throughout (average log-probability below the threshold).
    LowConfidence,
    /// The text repeats itself (a decoding loop).
    Repetitive,
    /// The decoder was still producing tokens when the utterance's budget ran out.
    TokenBudget,
    /// More words than anyone says in the utterance's duration.
    ImplausibleRate,
}

impl Rejected {
    pub fn as_str(self) -> &'static str {
        match self {
            Rejected::NoSpeech => "no_speech",
            Rejected::LowConfidence => "low_confidence",
            Rejected::Repetitive => "repetitive",
            Rejected::TokenBudget => "token_budget",
            Rejected::ImplausibleRate => "implausible_rate",
        }
    }
}

/// Figures of one decode, for the rejection rules and for evaluation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DecodeStats {
    /// Whisper's no-speech probability for the window.
    pub no_speech_prob: f32,
    /// Mean log-probability of the decoded tokens.
    pub avg_logprob: f32,
    /// Token entropy of the text tokens (nats).
    pub entropy: f32,
    /// Tokens decoded (text and timestamps).
    pub tokens: u32,
    /// The utterance's token budget.
    pub budget: u32,
}

/// What Whisper heard in one utterance. Word times are relative to the utterance start.
/// When `rejected` is set, `text` and `words` are empty.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transcript {
    /// The language Whisper decoded in: the fixed `asr.language`, the call's language
    /// detected earlier, or the one detected in this utterance; always "en" with an
    /// English-only model. `None` only for empty input.
    pub language: Option<&'static str>,
    pub text: String,
    pub words: Vec<Word>,
    pub rejected: Option<Rejected>,
    pub stats: DecodeStats,
}

/// whisper.cpp's build and CPU features ("… AVX512 = 1 | … LLAMAFILE = 1 | …"), read once:
/// whisper.cpp rebuilds the text in one static string on every call, so two threads
/// calling it at once would race.
pub fn system_info() -> &'static str {
    static INFO: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    INFO.get_or_init(|| whisper_rs::print_system_info().to_string())
}

/// The loaded Whisper weights, shared by all transcribers.
#[derive(Clone)]
pub struct WhisperModel {
    ctx: Arc<WhisperContext>,
    path: PathBuf,
}

impl std::fmt::Debug for WhisperModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperModel")
            .field("path", &self.path)
            .finish()
    }
}

impl WhisperModel {
    pub fn load(path: &Path) -> Result<Self, AsrError> {
        if !path.is_file() {
            return Err(AsrError::ModelMissing { path: path.into() });
        }
        // Route whisper.cpp's own logging into `tracing` instead of raw stderr.
        whisper_rs::install_logging_hooks();
        tracing::debug!(system = system_info(), "whisper.cpp build");
        let ctx = WhisperContext::new_with_params(path, WhisperContextParameters::default())
            .map_err(|e| AsrError::ModelLoad {
                path: path.into(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            ctx: Arc::new(ctx),
            path: path.into(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the model decodes languages other than English (no `.en`).
    pub fn is_multilingual(&self) -> bool {
        self.ctx.is_multilingual()
    }

    /// `text` as Whisper tokens, however long. (whisper.cpp returns minus the count when
    /// the buffer is too small, which whisper-rs 0.16 takes for a length; no token is
    /// shorter than a byte, so a buffer of the text's length always suffices.)
    fn tokens(&self, text: &str) -> Result<Vec<i32>, whisper_rs::WhisperError> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        self.ctx.tokenize(text, text.len() + 1)
    }

    pub fn transcriber(&self, opts: TranscribeOptions) -> Result<Transcriber, AsrError> {
        let language = opts
            .language
            .as_deref()
            .map(parse_language)
            .transpose()
            .map_err(AsrError::Inference)?
            .flatten();
        let multilingual = self.ctx.is_multilingual();
        let fixed = if multilingual {
            language
        } else if language == Some("en") {
            Some("en")
        } else {
            return Err(AsrError::EnglishOnly {
                path: self.path.clone(),
                language: language.unwrap_or("auto").to_string(),
            });
        };
        let state = self
            .ctx
            .create_state()
            .map_err(|e| AsrError::Inference(format!("creating state: {e}")))?;
        let mut prompt = self
            .tokens(opts.initial_prompt.trim())
            .map_err(|e| AsrError::Inference(format!("tokenizing asr.initial_prompt: {e}")))?;
        if prompt.len() > MAX_PROMPT_TOKENS {
            // As Whisper itself does with a long prompt: the end is what was "just said".
            // (Before, whisper-rs took the over-long result for a length and the prompt was
            // silently dropped.) Said once per process, not per worker.
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                tracing::warn!(
                tokens = prompt.len(),
                kept = MAX_PROMPT_TOKENS,
                "asr.initial_prompt is longer than Whisper's prompt limit; only its end is used"
            )
            });
            prompt.drain(..prompt.len() - MAX_PROMPT_TOKENS);
        }
        Ok(Transcriber {
            model: self.clone(),
            state,
            opts,
            prompt: prompt.into(),
            multilingual,
            fixed,
            params: Vec::new(),
        })
    }
}

/// One Whisper decoding state; not shared between threads.
pub struct Transcriber {
    model: WhisperModel,
    state: WhisperState,
    opts: TranscribeOptions,
    /// `initial_prompt`, tokenized once.
    prompt: Arc<[i32]>,
    multilingual: bool,
    /// The language every utterance is decoded in (always "en" for English-only models);
    /// `None`: detected per utterance unless the caller knows it.
    fixed: Option<&'static str>,
    /// Decoding parameters per language (`None`: detect), built on first use and cloned
    /// per decode. whisper-rs copies the language into a C string it never frees, so
    /// setting it on fresh parameters for every decode leaked one allocation per utterance.
    params: Vec<(Option<&'static str>, BaseParams)>,
}

/// [`FullParams`] without callbacks, grammar or prompt tokens: its only pointer is to the
/// language string whisper-rs allocated for it and never frees or changes.
#[derive(Clone)]
struct BaseParams(FullParams<'static, 'static>);

// SAFETY: the parameters hold no callbacks and no borrowed data; the one pointer they own
// (the language C string, leaked by whisper-rs) is immutable and lives for the whole
// process, so moving them to another thread is sound.
unsafe impl Send for BaseParams {}

/// Prompt tokens whisper.cpp keeps: half its 448-token text context, less the
/// `<|startofprev|>` marker it counts among them.
const MAX_PROMPT_TOKENS: usize = 223;

/// Whisper needs at least this much audio; shorter utterances are padded with silence
/// (whisper.cpp fails or hallucinates on very short or empty input).
const MIN_SAMPLES: usize = ANALYSIS_RATE as usize; // 1 s

impl Transcriber {
    /// Transcribes one utterance of 16 kHz mono audio.
    ///
    /// Decoding is greedy at temperature 0 without fallback, so the same audio always gives
    /// the same result, and bounded by the utterance's token budget. Decodes that fail the
    /// no-speech, log-probability, repetition or budget checks come back with `rejected`
    /// set and no words: a hallucination is never published as speech.
    pub fn transcribe(&mut self, samples: &[f32]) -> Result<Transcript, AsrError> {
        self.transcribe_in(samples, None, None)
    }

    /// As [`Self::transcribe`], in `known` (a Whisper language code: the language detected
    /// earlier in the call) when no language is fixed; without either, Whisper detects the
    /// utterance's language first. A code Whisper does not know counts as none.
    /// `previous`: the text said before this utterance (the speaker's previous utterance),
    /// decoded as context after `initial_prompt`, its last words kept within Whisper's
    /// prompt limit.
    pub fn transcribe_in(
        &mut self,
        samples: &[f32],
        known: Option<&str>,
        previous: Option<&str>,
    ) -> Result<Transcript, AsrError> {
        if samples.is_empty() {
            return Ok(Transcript {
                rejected: Some(Rejected::NoSpeech),
                ..Default::default()
            });
        }
        let padded;
        let audio: &[f32] = if samples.len() < MIN_SAMPLES {
            let mut v = Vec::with_capacity(MIN_SAMPLES + ANALYSIS_RATE as usize / 4);
            v.extend_from_slice(samples);
            v.resize(MIN_SAMPLES + ANALYSIS_RATE as usize / 4, 0.0);
            padded = v;
            &padded
        } else {
            samples
        };
        let duration = samples.len() as f64 / ANALYSIS_RATE as f64;
        let budget = token_budget(&self.opts, duration);

        // Whisper's encoder always runs over a 30 s window (1500 frames) unless told the
        // audio is shorter; for short utterances that dominates the cost. Trim the window
        // (whisper.cpp's `audio_ctx`) to the audio plus 1.28 s, at least 5.12 s. So tight a
        // window makes tiny.en loop on the last phrase of some long utterances ("whatever
        // they were, whatever they were, whatever they were"); a decode that ends in a
        // phrase said twice in a row is decoded again over the full window (WER on
        // ../shared/data/asr 0.050 → 0.030 clean, 0.086 → 0.053 phone-band; always decoding
        // over a 1.5× window gave 0.037 / 0.053 for 36 % more CPU), at the cost of one
        // more decode only where it loops.
        let frames = (audio.len() as f64 / ANALYSIS_RATE as f64 * 50.0).ceil() as i32;
        let tight = self
            .opts
            .trim_audio_ctx
            .then(|| (frames + 64).clamp(256, 1500))
            .filter(|&c| c < 1500);
        let language = self
            .fixed
            .or_else(|| known.and_then(|k| parse_language(k).ok().flatten()));
        let prompt = self.prompt_with(previous)?;
        let mut decoded = self.decode(audio, duration, budget, tight, language, &prompt)?;
        if tight.is_some() && ends_in_repeated_phrase(&decoded.words) {
            tracing::debug!(
                duration_s = duration,
                "decode ends in a repeated phrase; decoding again over the full window"
            );
            let detected = decoded.language;
            decoded = self.decode(audio, duration, budget, None, detected, &prompt)?;
        }
        let mut stats = decoded.stats(budget);
        let mut rejected = judge(&self.opts, &decoded, &stats, duration);
        if matches!(rejected, Some(Rejected::TokenBudget | Rejected::Repetitive))
            && prompt.len() > self.prompt.len()
        {
            // The previous utterance as context can make a short decode loop; decode it
            // again without that context rather than lose it.
            tracing::debug!(
                duration_s = duration,
                "decode with the previous utterance as context looped; decoding without it"
            );
            let base = Arc::clone(&self.prompt);
            decoded = self.decode(audio, duration, budget, tight, decoded.language, &base)?;
            if tight.is_some() && ends_in_repeated_phrase(&decoded.words) {
                let detected = decoded.language;
                decoded = self.decode(audio, duration, budget, None, detected, &base)?;
            }
            stats = decoded.stats(budget);
            rejected = judge(&self.opts, &decoded, &stats, duration);
        }
        tracing::trace!(
            duration_s = duration,
            no_speech_prob = stats.no_speech_prob,
            avg_logprob = stats.avg_logprob,
            entropy = stats.entropy,
            tokens = stats.tokens,
            text_tokens = decoded.text_ids.len(),
            words = decoded.words.len(),
            budget = stats.budget,
            budget_hit = decoded.budget_hit,
            repeats_dropped = decoded.repeats,
            rejected = rejected.map(Rejected::as_str),
            "utterance decoded"
        );
        if let Some(r) = rejected {
            tracing::debug!(
                reason = r.as_str(),
                no_speech_prob = stats.no_speech_prob,
                avg_logprob = stats.avg_logprob,
                entropy = stats.entropy,
                tokens = stats.tokens,
                budget = stats.budget,
                "utterance decode rejected"
            );
            return Ok(Transcript {
                language: decoded.language,
                rejected: Some(r),
                stats,
                ..Default::default()
            });
        }
        Ok(Transcript {
            language: decoded.language,
            text: utf8_valid(&decoded.text).trim().to_string(),
            words: decoded.into_words(),
            rejected: None,
            stats,
        })
    }
    /// One greedy decode of `audio` (`duration` seconds of speech in it), bounded by
    /// `budget` tokens, over an encoder window of `audio_ctx` frames (None: the full 30 s).
    /// In `language`, or detecting it first when `None` (multilingual models only), after
    /// the `prompt` tokens.
    fn decode(
        &mut self,
        audio: &[f32],
        duration: f64,
        budget: u32,
        audio_ctx: Option<i32>,
        language: Option<&'static str>,
        prompt: &[i32],
    ) -> Result<Decoded, AsrError> {
        if language.is_none() && self.multilingual {
            // whisper.cpp detects the language over the encoder window of the state's
            // previous decode (it sets the window after detecting), so the same audio
            // would be detected differently after a long or a short utterance. A call that
            // stops before the encoder (100 ms of audio) sets the window first.
            let mut primer = self.params_for(Some("en")).0;
            primer.set_audio_ctx(audio_ctx.unwrap_or(0));
            primer.set_duration_ms(100);
            self.state
                .full(primer, &audio[..audio.len().min(ANALYSIS_RATE as usize)])
                .map_err(|e| AsrError::Inference(e.to_string()))?;
        }
        let mut params: FullParams<'static, '_> = self.params_for(language).0;
        if !prompt.is_empty() {
            params.set_tokens(prompt);
        }
        params.set_max_tokens(budget as i32);
        if let Some(ctx) = audio_ctx {
            params.set_audio_ctx(ctx);
        }

        self.state
            .full(params, audio)
            .map_err(|e| AsrError::Inference(e.to_string()))?;

        let eot = self.model.ctx.token_eot();
        let beg = self.model.ctx.token_beg();
        let mut decoded = Decoded {
            language: if self.multilingual {
                whisper_rs::get_lang_str(self.state.full_lang_id_from_state())
            } else {
                Some("en")
            },
            ..Default::default()
        };
        // Token times from whisper.cpp's own rule, told where the audio ends (`timing`).
        let end_cs = (duration * 100.0).round() as i64;
        for (seg, toks) in self.segment_tokens() {
            decoded.no_speech_prob = decoded.no_speech_prob.max(seg.no_speech_prob);
            // A segment ends where its window does (whisper.cpp's t1) or where the audio does.
            let times = segment_times(&toks, beg, eot, audio, (seg.t0, seg.t1.min(end_cs)));
            for ((id, data, bytes), (t0, t1)) in toks.iter().zip(times) {
                let id = *id;
                decoded.logprob_sum += f64::from(data.plog);
                decoded.tokens += 1;
                if id == eot {
                    decoded.saw_eot = true;
                }
                if id >= beg {
                    // A timestamp: Whisper closes a sentence-like segment here.
                    decoded.close_segment();
                    continue;
                }
                if id >= eot {
                    continue; // special tokens
                }
                let Some(bytes) = bytes else {
                    continue;
                };
                if bytes.starts_with(b"[_") || bytes.starts_with(b"<|") {
                    continue;
                }
                let t0 = (t0 as f64 / 100.0).clamp(0.0, duration);
                let t1 = (t1 as f64 / 100.0).clamp(0.0, duration);
                decoded.push_text_token(id, bytes, t0, t1, data.p);
            }
        }
        decoded.settle(decoded.tokens > budget && !decoded.saw_eot);
        Ok(decoded)
    }

    /// The last decode's segments: each one's no-speech probability and span, and its tokens
    /// (id, whisper.cpp's data, text as whisper.cpp spells it where it can be read).
    #[allow(clippy::type_complexity)]
    fn segment_tokens(&self) -> Vec<(Segment, Vec<(i32, WhisperTokenData, Option<Vec<u8>>)>)> {
        self.state
            .as_iter()
            .map(|seg| {
                let toks = (0..seg.n_tokens())
                    .filter_map(|i| seg.get_token(i))
                    .map(|tok| {
                        let bytes = tok.to_bytes().ok().map(<[u8]>::to_vec);
                        (tok.token_id(), tok.token_data(), bytes)
                    })
                    .collect();
                let info = Segment {
                    no_speech_prob: seg.no_speech_probability(),
                    t0: seg.start_timestamp(),
                    t1: seg.end_timestamp(),
                };
                (info, toks)
            })
            .collect()
    }

    /// The prompt tokens: `initial_prompt`, then the last tokens of `previous` that fit
    /// within [`MAX_PROMPT_TOKENS`] (Whisper reads the prompt's end as what was just said).
    fn prompt_with(&self, previous: Option<&str>) -> Result<Arc<[i32]>, AsrError> {
        let room = MAX_PROMPT_TOKENS.saturating_sub(self.prompt.len());
        let Some(text) = previous
            .map(str::trim)
            .filter(|t| !t.is_empty() && room > 0)
        else {
            return Ok(Arc::clone(&self.prompt));
        };
        let mut tokens = self.prompt.to_vec();
        // A leading space, as the text would follow the prompt in running speech.
        let previous = self
            .model
            .tokens(&format!(" {text}"))
            .map_err(|e| AsrError::Inference(format!("tokenizing the previous utterance: {e}")))?;
        tokens.extend_from_slice(&previous[previous.len().saturating_sub(room)..]);
        Ok(tokens.into())
    }

    /// The decoding parameters for `language`, built once (see `params`).
    fn params_for(&mut self, language: Option<&'static str>) -> BaseParams {
        if let Some((_, p)) = self.params.iter().find(|(l, _)| *l == language) {
            return p.clone();
        }
        let opts = &self.opts;
        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        params.set_n_threads(opts.threads.max(1) as i32);
        params.set_language(language);
        params.set_translate(false);
        params.set_no_context(true);
        // Token times come from `timing::token_times` (whisper.cpp's rule, given the end of
        // the audio); whisper.cpp's own pass over the same audio would be thrown away.
        params.set_token_timestamps(false);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_special(false);
        params.set_print_timestamps(false);
        params.set_suppress_blank(true);
        params.set_suppress_nst(true);
        // Temperature fallback re-decodes a failed window up to five more times at rising
        // temperatures: up to 6 × 220 tokens for one unclear word, and sampled from an RNG
        // that whisper.cpp seeds once per state (so the result would depend on which worker
        // ran which utterances before). One greedy pass, then our own checks (`judge`).
        params.set_temperature(0.0);
        params.set_temperature_inc(0.0);
        // One segment per 30 s window, so `max_tokens` bounds a window's whole decode, not
        // each of a chain of segments (an utterance is one window unless
        // vad.max_utterance_s, 15 s by default, is set above 30 s).
        params.set_single_segment(true);
        // whisper.cpp would silently drop a no-speech window before we see its figures;
        // the same rule is applied in `judge`, where it can be reported.
        params.set_no_speech_thold(1.0);
        params.set_logprob_thold(opts.logprob_threshold);
        let p = BaseParams(params);
        self.params.push((language, p.clone()));
        p
    }
}

/// What a decode's segment says besides its tokens.
struct Segment {
    no_speech_prob: f32,
    /// Its span in centiseconds from the start of the audio (whisper.cpp's t0, t1).
    t0: i64,
    t1: i64,
}

/// A segment's tokens' (t0, t1) in centiseconds by whisper.cpp's rule, for a segment from
/// `span.0` to `span.1` centiseconds of `audio` (`timing::token_times`).
fn segment_times(
    toks: &[(i32, WhisperTokenData, Option<Vec<u8>>)],
    beg: i32,
    eot: i32,
    audio: &[f32],
    span: (i64, i64),
) -> Vec<(i64, i64)> {
    let ins: Vec<TokenIn> = toks
        .iter()
        .map(|(id, data, bytes)| TokenIn {
            id: *id,
            tid: data.tid,
            pt: data.pt,
            ptsum: data.ptsum,
            text: bytes.as_deref().unwrap_or_default(),
        })
        .collect();
    token_times(&ins, beg, eot, audio, span)
}

/// The words end in a phrase of 2 to 8 words said twice in a row ("whatever they were,
/// whatever they were"), compared as lower-case letters and digits.
fn ends_in_repeated_phrase(words: &[RawWord]) -> bool {
    let norm: Vec<String> = words
        .iter()
        .map(|w| {
            String::from_utf8_lossy(&w.bytes)
                .chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect()
        })
        .collect();
    let n = norm.len();
    (2..=8).any(|k| {
        n >= 2 * k
            && norm[n - k..] == norm[n - 2 * k..n - k]
            && norm[n - k..].iter().any(|w| !w.is_empty())
    })
}

/// The token budget of an utterance of `duration_s`.
pub fn token_budget(opts: &TranscribeOptions, duration_s: f64) -> u32 {
    let per_s = f64::from(opts.budget_per_s.max(0.0));
    (f64::from(opts.budget_base) + per_s * duration_s).ceil() as u32
}

/// The applies-in-order rejection rules.
fn judge(
    opts: &TranscribeOptions,
    d: &Decoded,
    s: &DecodeStats,
    duration_s: f64,
) -> Option<Rejected> {
    let n_text = d.text_ids.len();
    // A phrase decoded over and over until the budget ran out is kept once only when the
    // decoder was sure of it and of hearing speech (tones loop on "I'll..." too).
    if d.budget_hit
        && (n_text == 0
            || s.avg_logprob < opts.logprob_threshold
            || s.no_speech_prob > opts.no_speech_threshold)
    {
        return Some(Rejected::TokenBudget);
    }
    // Counted over at least a second: the padding and onsets make very short spans noisy.
    if d.words.len() as f64 > f64::from(opts.max_words_per_s) * duration_s.max(1.0) {
        return Some(Rejected::ImplausibleRate);
    }
    if n_text >= MIN_TOKENS_FOR_ENTROPY {
        // whisper.cpp compares the entropy of the last 32 tokens with 2.4 nats (of at most
        // ln 32); for shorter texts the same fraction of the attainable maximum.
        let n = n_text.min(32) as f32;
        let limit = opts.entropy_threshold * n.ln() / 32f32.ln();
        if s.entropy < limit {
            return Some(Rejected::Repetitive);
        }
    }
    let unsure = s.avg_logprob < opts.logprob_threshold;
    if s.no_speech_prob > opts.no_speech_threshold && (unsure || n_text <= 2) {
        return Some(Rejected::NoSpeech);
    }
    if unsure && opts.reject_low_logprob {
        return Some(Rejected::LowConfidence);
    }
    if d.words.iter().all(|w| word_text(&w.bytes).is_none()) {
        return Some(Rejected::NoSpeech);
    }
    None
}

/// Texts shorter than this (in tokens) are not checked for repetition.
const MIN_TOKENS_FOR_ENTROPY: usize = 8;

/// A word as raw token bytes, so that a character split across tokens is joined before it
/// is decoded.
#[derive(Debug, Default, Clone)]
struct RawWord {
    bytes: Vec<u8>,
    start: f64,
    end: f64,
    p: f32,
}

/// The tokens of one decode, accumulated as bytes.
#[derive(Debug, Default)]
struct Decoded {
    /// The language decoded in (given or detected).
    language: Option<&'static str>,
    text: Vec<u8>,
    text_ids: Vec<i32>,
    words: Vec<RawWord>,
    /// Where each timestamp-closed segment ends: (text bytes, text tokens, words).
    marks: Vec<(usize, usize, usize)>,
    /// After each text token: (text bytes, words).
    tok_ends: Vec<(usize, usize)>,
    /// The next text token starts a word (a segment just closed).
    new_word: bool,
    no_speech_prob: f32,
    logprob_sum: f64,
    tokens: u32,
    saw_eot: bool,
    /// The budget ran out: the open segment at the end was dropped.
    budget_hit: bool,
    /// Segments dropped because they repeated the one before.
    repeats: u32,
}

impl Decoded {
    fn close_segment(&mut self) {
        let m = (self.text.len(), self.text_ids.len(), self.words.len());
        if m.1 > self.marks.last().map_or(0, |x| x.1) {
            self.marks.push(m);
        }
        self.new_word = true;
    }

    /// Keeps what Whisper finished: when the budget ran out, the open segment at the end
    /// (a loop, or a sentence cut off) is dropped; a segment that only repeats the end of
    /// what came before (Whisper decoding a short utterance, or its last phrase, again into
    /// the rest of its window) is dropped too.
    fn settle(&mut self, budget_hit: bool) {
        self.budget_hit = budget_hit;
        let end = (self.text.len(), self.text_ids.len(), self.words.len());
        let mut bounds = vec![(0, 0, 0)];
        bounds.extend(self.marks.iter().copied());
        let open_from = bounds.last().map_or(0, |b| b.1);
        if end.1 > open_from {
            // The open segment at the end counts when the decoder finished it, or when it is
            // one phrase over and over (collapsed below); a budget cut-off otherwise goes.
            if !budget_hit || period(&self.text_ids[open_from..]).is_some() {
                bounds.push(end);
            }
        }
        let (mut text, mut ids, mut words) = (Vec::new(), Vec::new(), Vec::new());
        // The kept text so far as lower-case letters and digits only.
        let mut kept = String::new();
        for w in bounds.windows(2) {
            let (a, mut b) = (w[0], w[1]);
            // Whisper on a short window often decodes the utterance again and again without
            // a timestamp between: keep one.
            if let Some(p) = period(&self.text_ids[a.1..b.1]) {
                let (bytes, words) = self.tok_ends[a.1 + p - 1];
                b = (bytes, a.1 + p, words);
                self.repeats += 1;
            }
            let key: String = utf8_valid(&self.text[a.0..b.0])
                .chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect();
            if !key.is_empty() && kept.ends_with(&key) {
                self.repeats += 1;
                continue;
            }
            text.extend_from_slice(&self.text[a.0..b.0]);
            ids.extend_from_slice(&self.text_ids[a.1..b.1]);
            words.extend(self.words[a.2..b.2].iter().cloned());
            kept.push_str(&key);
        }
        self.text = text;
        self.text_ids = ids;
        self.words = words;
    }

    fn push_text_token(&mut self, id: i32, bytes: &[u8], t0: f64, t1: f64, p: f32) {
        self.text.extend_from_slice(bytes);
        self.text_ids.push(id);
        self.push_word(bytes, t0, t1, p);
        self.tok_ends.push((self.text.len(), self.words.len()));
    }

    fn push_word(&mut self, bytes: &[u8], t0: f64, t1: f64, p: f32) {
        let forced = std::mem::take(&mut self.new_word);
        let starts_word = forced || bytes.first() == Some(&b' ') || self.words.is_empty();
        let core = bytes.trim_ascii();
        let is_punct = !core.is_empty() && core.iter().all(u8::is_ascii_punctuation);
        if starts_word && !is_punct {
            self.words.push(RawWord {
                bytes: core.to_vec(),
                start: t0,
                end: t1.max(t0),
                p,
            });
        } else if let Some(last) = self.words.last_mut() {
            // Continuation of a word (sub-word token, the rest of a split character, or
            // trailing punctuation).
            last.bytes.extend_from_slice(bytes.trim_ascii_end());
            last.end = last.end.max(t1);
            if !is_punct {
                last.p = last.p.min(p);
            }
        }
    }

    fn stats(&self, budget: u32) -> DecodeStats {
        let avg_logprob = if self.tokens == 0 {
            0.0
        } else {
            (self.logprob_sum / f64::from(self.tokens)) as f32
        };
        DecodeStats {
            no_speech_prob: self.no_speech_prob,
            avg_logprob,
            entropy: token_entropy(&self.text_ids),
            tokens: self.tokens,
            budget,
        }
    }

    fn into_words(self) -> Vec<Word> {
        self.words
            .into_iter()
            .filter_map(|w| {
                word_text(&w.bytes).map(|text| Word {
                    w: text,
                    start: w.start,
                    end: w.end,
                    p: w.p,
                })
            })
            .collect()
    }
}

/// The shortest phrase (at least two tokens) that `ids` is, said at least twice in full
/// and then perhaps begun again.
fn period(ids: &[i32]) -> Option<usize> {
    (2..=ids.len() / 2).find(|&p| (p..ids.len()).all(|i| ids[i] == ids[i - p]))
}

/// Entropy (nats) of the token distribution of the last 32 tokens, as whisper.cpp computes it.
fn token_entropy(ids: &[i32]) -> f32 {
    let tail = &ids[ids.len().saturating_sub(32)..];
    if tail.is_empty() {
        return 0.0;
    }
    let mut sorted = tail.to_vec();
    sorted.sort_unstable();
    let n = tail.len() as f64;
    let mut h = 0.0;
    for run in sorted.chunk_by(|a, b| a == b) {
        let p = run.len() as f64 / n;
        h -= p * p.ln();
    }
    h as f32
}

/// A word's text, or `None` when nothing of it is a letter or digit (stray punctuation, or
/// bytes that never completed a character).
fn word_text(bytes: &[u8]) -> Option<String> {
    let text = utf8_valid(bytes);
    let text = text.trim();
    text.chars()
        .any(char::is_alphanumeric)
        .then(|| text.to_string())
}

/// The valid UTF-8 in `bytes`, with invalid or incomplete sequences left out (never U+FFFD).
fn utf8_valid(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        s.push_str(chunk.valid());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `.cargo/config.toml` builds ggml with llamafile's tinyBLAS matrix kernels, which
    /// take 20–40 % off each utterance's CPU (README, Capacity and latency). A target/ built
    /// before that setting keeps the slower kernels until whisper-rs-sys is rebuilt.
    #[test]
    fn whisper_cpp_multiplies_with_tinyblas() {
        let info = system_info();
        assert!(
            info.contains("LLAMAFILE = 1"),
            "whisper.cpp built without GGML_LLAMAFILE (run `cargo clean -p whisper-rs-sys`): {info}"
        );
    }

    /// `timing::token_times` is whisper.cpp's token-time rule: given the end whisper.cpp
    /// gives a single segment (its 30 s window), it must reproduce whisper.cpp's times token
    /// for token, on real speech through the real model (the demo call's utterances, tight
    /// and full windows). Skips without the model.
    #[test]
    fn token_times_port_matches_whisper_cpp_given_its_window_end() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/ggml-tiny.en.bin");
        let Ok(model) = WhisperModel::load(&path) else {
            eprintln!("skipped: no {}", path.display());
            return;
        };
        let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/demo-call.wav");
        let audio = crate::audio::decode::decode_file(&demo).expect("demo call decodes");
        let x = crate::audio::resample::resample_all(
            &audio.channels[0],
            audio.sample_rate,
            ANALYSIS_RATE,
        )
        .expect("resamples");
        let mut t = model.transcriber(TranscribeOptions::default()).unwrap();
        let (beg, eot) = (t.model.ctx.token_beg(), t.model.ctx.token_eot());
        let mut compared = 0;
        for (from, to, ctx) in [
            (0.5, 6.0, Some(384)),
            (6.0, 14.0, None),
            (30.0, 44.0, Some(768)),
        ] {
            let clip = &x[(from * 16000.0) as usize..(to * 16000.0) as usize];
            // The shipped decode leaves whisper.cpp's token times off; this one asks for them.
            let mut p = t.params_for(Some("en")).0;
            p.set_token_timestamps(true);
            p.set_max_tokens(200);
            if let Some(c) = ctx {
                p.set_audio_ctx(c);
            }
            t.state.full(p, clip).unwrap();
            for (seg, toks) in t.segment_tokens() {
                let ours = segment_times(&toks, beg, eot, clip, (seg.t0, seg.t1));
                let theirs: Vec<(i64, i64)> = toks.iter().map(|(_, d, _)| (d.t0, d.t1)).collect();
                assert_eq!(ours, theirs, "{from}–{to} s");
                compared += ours.len();
            }
        }
        assert!(compared > 40, "{compared} tokens compared");
        // An utterance over 30 s (vad.max_utterance_s allows 60) is decoded in two windows:
        // the second window's words are timed from the start of the audio, in order.
        let long = t.transcribe(&x[..40 * 16000]).unwrap();
        let w = &long.words;
        assert!(w.windows(2).all(|p| p[0].start <= p[1].start), "{w:?}");
        assert!(w.last().is_some_and(|l| l.start > 30.0), "{w:?}");
    }

    #[test]
    fn split_characters_are_joined_and_stray_bytes_dropped() {
        let mut d = Decoded::default();
        // "é" is C3 A9; Whisper's byte-level BPE can put the two bytes in two tokens.
        d.push_text_token(1, b" caf\xc3", 0.0, 0.2, 0.9);
        d.push_text_token(2, b"\xa9", 0.2, 0.3, 0.8);
        d.push_text_token(3, b" \xe2\x99", 0.3, 0.4, 0.5); // an incomplete character
        d.push_text_token(4, b".", 0.4, 0.4, 0.9);
        assert_eq!(utf8_valid(&d.text).trim(), "café .");
        let words = d.into_words();
        assert_eq!(words.len(), 1, "{words:?}");
        assert_eq!(words[0].w, "café");
        assert!((words[0].p - 0.8).abs() < 1e-6);
        assert!(!utf8_valid(b"\xef\xbf").contains('\u{FFFD}'));
    }

    #[test]
    fn entropy_matches_whisper_cpp_on_loops_and_text() {
        assert_eq!(token_entropy(&[5; 20]), 0.0);
        let distinct: Vec<i32> = (0..32).collect();
        assert!((token_entropy(&distinct) - 32f32.ln()).abs() < 1e-5);
        // Only the last 32 tokens count.
        let mut v: Vec<i32> = (0..40).collect();
        v.extend([7; 32]);
        assert_eq!(token_entropy(&v), 0.0);
    }

    #[test]
    fn rules_reject_loops_budget_and_no_speech() {
        let opts = TranscribeOptions::default();
        let mut d = Decoded::default();
        for i in 0..12 {
            d.push_text_token(if i % 2 == 0 { 10 } else { 11 }, b" you", 0.0, 0.1, 0.9);
        }
        d.tokens = 14;
        let s = d.stats(100);
        assert_eq!(judge(&opts, &d, &s, 5.0), Some(Rejected::Repetitive));
        // The budget ran out inside an open segment that is no repeated phrase: it goes.
        let mut d = Decoded::default();
        for i in 0..20 {
            d.push_text_token(i, b" la", 0.0, 0.1, 0.9);
        }
        d.settle(true);
        assert_eq!(judge(&opts, &d, &s, 5.0), Some(Rejected::TokenBudget));

        let mut d = Decoded::default();
        d.push_text_token(1, b" Hello", 0.0, 0.1, 0.9);
        d.push_text_token(2, b".", 0.0, 0.1, 0.9);
        d.tokens = 4;
        let ok = DecodeStats {
            no_speech_prob: 0.1,
            avg_logprob: -0.3,
            ..d.stats(20)
        };
        assert_eq!(judge(&opts, &d, &ok, 1.0), None);
        let quiet = DecodeStats {
            no_speech_prob: 0.9,
            ..ok
        };
        assert_eq!(judge(&opts, &d, &quiet, 1.0), Some(Rejected::NoSpeech));
        let unsure = DecodeStats {
            avg_logprob: -1.5,
            ..ok
        };
        assert_eq!(judge(&opts, &d, &unsure, 1.0), None);
        let strict = TranscribeOptions {
            reject_low_logprob: true,
            ..TranscribeOptions::default()
        };
        assert_eq!(
            judge(&strict, &d, &unsure, 1.0),
            Some(Rejected::LowConfidence)
        );
        assert_eq!(
            judge(&opts, &Decoded::default(), &DecodeStats::default(), 1.0),
            Some(Rejected::NoSpeech)
        );
        // Nine words in a one-second utterance: a sentence made up from one unclear word.
        let mut d = Decoded::default();
        for (i, w) in [
            "I", "think", "I'm", "going", "to", "be", "the", "first", "one.",
        ]
        .iter()
        .enumerate()
        {
            d.push_text_token(i as i32 + 20, format!(" {w}").as_bytes(), 0.0, 0.1, 0.6);
        }
        d.tokens = 12;
        d.saw_eot = true;
        let s = DecodeStats {
            no_speech_prob: 0.15,
            avg_logprob: -0.8,
            ..d.stats(15)
        };
        assert_eq!(judge(&opts, &d, &s, 0.96), Some(Rejected::ImplausibleRate));
        assert_eq!(judge(&opts, &d, &s, 3.0), None);
    }

    #[test]
    fn settle_keeps_finished_segments_and_drops_repeats() {
        let sentence = |d: &mut Decoded, base: i32| {
            for (i, w) in [" Kids", " are", " talking", " by", " the", " door", "."]
                .iter()
                .enumerate()
            {
                d.push_text_token(base + i as i32, w.as_bytes(), 0.0, 0.1, 0.9);
            }
        };
        // <|0.00|> sentence <|1.20|><|1.20|> the same sentence <|1.40|> and a cut-off loop.
        let mut d = Decoded::default();
        d.close_segment();
        sentence(&mut d, 100);
        d.close_segment();
        d.close_segment();
        sentence(&mut d, 100);
        d.close_segment();
        d.push_text_token(200, b" door", 0.0, 0.1, 0.5);
        d.push_text_token(200, b" door", 0.0, 0.1, 0.5);
        d.settle(true);
        assert_eq!(utf8_valid(&d.text).trim(), "Kids are talking by the door.");
        assert_eq!(d.repeats, 1);
        assert_eq!(d.text_ids.len(), 7);
        let words: Vec<String> = d.into_words().into_iter().map(|w| w.w).collect();
        assert_eq!(words, ["Kids", "are", "talking", "by", "the", "door."]);

        // A segment repeating only the last phrase goes too.
        let mut d = Decoded::default();
        sentence(&mut d, 100);
        d.close_segment();
        d.push_text_token(300, b" by", 0.0, 0.1, 0.9);
        d.push_text_token(301, b" the", 0.0, 0.1, 0.9);
        d.push_text_token(302, b" door,", 0.0, 0.1, 0.9);
        d.close_segment();
        d.settle(false);
        assert_eq!(utf8_valid(&d.text).trim(), "Kids are talking by the door.");

        // Without the budget running out, the last segment needs no closing timestamp.
        let mut d = Decoded::default();
        sentence(&mut d, 100);
        d.settle(false);
        assert_eq!(d.text_ids.len(), 7);
    }

    #[test]
    fn a_phrase_decoded_over_and_over_is_kept_once() {
        assert_eq!(period(&[1, 2, 3, 1, 2, 3, 1, 2]), Some(3));
        assert_eq!(period(&[1, 2, 3, 1, 2]), None, "not twice in full");
        assert_eq!(period(&[7, 7, 7, 7]), Some(2));
        assert_eq!(period(&[1, 2, 3, 4]), None);
        let mut d = Decoded::default();
        d.close_segment();
        for _ in 0..3 {
            for (i, w) in [" Dogs", " are", " sitting", " by", " the", " door", "."]
                .iter()
                .enumerate()
            {
                d.push_text_token(i as i32, w.as_bytes(), 0.0, 0.1, 0.9);
            }
        }
        d.push_text_token(0, b" Dogs", 0.0, 0.1, 0.9);
        d.settle(true);
        assert_eq!(utf8_valid(&d.text).trim(), "Dogs are sitting by the door.");
        assert_eq!(d.into_words().len(), 6);
    }

    #[test]
    fn repeated_last_phrase_is_seen() {
        let w = |text: &str| -> Vec<RawWord> {
            text.split(' ')
                .map(|b| RawWord {
                    bytes: b.as_bytes().to_vec(),
                    start: 0.0,
                    end: 0.0,
                    p: 1.0,
                })
                .collect()
        };
        assert!(ends_in_repeated_phrase(&w(
            "part of their productions, whatever they were, whatever they were."
        )));
        assert!(ends_in_repeated_phrase(&w(
            "by a similar process, By a similar process."
        )));
        // One word said twice is speech ("no, no"); a phrase said once is not a loop.
        assert!(!ends_in_repeated_phrase(&w("no, no.")));
        assert!(!ends_in_repeated_phrase(&w(
            "ask not what your country can do for you"
        )));
        assert!(!ends_in_repeated_phrase(&w("a b a c")));
        assert!(!ends_in_repeated_phrase(&[]));
    }

    #[test]
    fn budget_grows_with_duration() {
        let o = TranscribeOptions::default();
        assert_eq!(token_budget(&o, 1.0), 15);
        assert_eq!(token_budget(&o, 8.0), 64);
        assert!(
            token_budget(&o, 15.0) < 220,
            "below whisper.cpp's own n_max"
        );
    }
}
