//! Whisper transcription of one utterance: 16 kHz mono samples in, text and timed words out.
//!
//! One [`WhisperModel`] (the weights, shared) serves many [`Transcriber`]s, each owning a
//! long-lived `WhisperState` (the KV cache and buffers), so workers never allocate a state
//! per utterance.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState,
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
    #[error("whisper inference failed: {0}")]
    Inference(String),
}

/// Decoding options for utterance transcription.
#[derive(Debug, Clone)]
pub struct TranscribeOptions {
    /// CPU threads whisper.cpp uses for one utterance.
    pub threads: usize,
    /// Language code, or `None` for English-only models / auto.
    pub language: Option<String>,
    /// Segments whose no-speech probability exceeds this are dropped (hallucination guard).
    pub no_speech_threshold: f32,
    /// Shrink the encoder window to the utterance (much faster on short utterances).
    pub trim_audio_ctx: bool,
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            language: Some("en".into()),
            no_speech_threshold: 0.6,
            trim_audio_ctx: std::env::var_os("CALLTONE_FULL_AUDIO_CTX").is_none(),
        }
    }
}

/// What Whisper heard in one utterance. Word times are relative to the utterance start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transcript {
    pub text: String,
    pub words: Vec<Word>,
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

    pub fn transcriber(&self, opts: TranscribeOptions) -> Result<Transcriber, AsrError> {
        let state = self
            .ctx
            .create_state()
            .map_err(|e| AsrError::Inference(format!("creating state: {e}")))?;
        Ok(Transcriber {
            model: self.clone(),
            state,
            opts,
        })
    }
}

/// One Whisper decoding state; not shared between threads.
pub struct Transcriber {
    model: WhisperModel,
    state: WhisperState,
    opts: TranscribeOptions,
}

/// Whisper needs at least this much audio; shorter utterances are padded with silence
/// (whisper.cpp fails or hallucinates on very short or empty input).
const MIN_SAMPLES: usize = ANALYSIS_RATE as usize; // 1 s

impl Transcriber {
    /// Transcribes one utterance of 16 kHz mono audio.
    pub fn transcribe(&mut self, samples: &[f32]) -> Result<Transcript, AsrError> {
        if samples.is_empty() {
            return Ok(Transcript::default());
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

        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        params.set_n_threads(self.opts.threads as i32);
        params.set_language(self.opts.language.as_deref());
        params.set_translate(false);
        params.set_no_context(true);
        params.set_token_timestamps(true);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_special(false);
        params.set_print_timestamps(false);
        params.set_suppress_blank(true);
        params.set_suppress_nst(true);
        params.set_no_speech_thold(self.opts.no_speech_threshold);
        // Whisper's encoder always runs over a 30 s window (1500 frames) unless told the
        // audio is shorter; for short utterances that dominates the cost. Trim the window to
        // the audio plus a margin (whisper.cpp's `audio_ctx`).
        if self.opts.trim_audio_ctx {
            let frames = (audio.len() as f64 / ANALYSIS_RATE as f64 * 50.0).ceil() as i32;
            let ctx = (frames + 64).clamp(256, 1500);
            params.set_audio_ctx(ctx);
        }

        self.state
            .full(params, audio)
            .map_err(|e| AsrError::Inference(e.to_string()))?;

        let eot = self.model.ctx.token_eot();
        let mut text = String::new();
        let mut words: Vec<Word> = Vec::new();
        for seg in self.state.as_iter() {
            if seg.no_speech_probability() > self.opts.no_speech_threshold && seg.n_tokens() <= 3 {
                continue;
            }
            for i in 0..seg.n_tokens() {
                let Some(tok) = seg.get_token(i) else {
                    continue;
                };
                if tok.token_id() >= eot {
                    continue; // special and timestamp tokens
                }
                let piece = match tok.to_str_lossy() {
                    Ok(p) => p.into_owned(),
                    Err(_) => continue,
                };
                if piece.starts_with("[_") || piece.starts_with("<|") {
                    continue;
                }
                let data = tok.token_data();
                let (t0, t1) = (
                    (data.t0 as f64 / 100.0).clamp(0.0, duration),
                    (data.t1 as f64 / 100.0).clamp(0.0, duration),
                );
                text.push_str(&piece);
                let starts_word = piece.starts_with(' ') || words.is_empty();
                let is_punct = piece.trim().chars().all(|c| c.is_ascii_punctuation());
                if starts_word && !is_punct {
                    words.push(Word {
                        w: piece.trim().to_string(),
                        start: t0,
                        end: t1.max(t0),
                        p: data.p,
                    });
                } else if let Some(last) = words.last_mut() {
                    // Continuation of a word (sub-word token or trailing punctuation).
                    last.w.push_str(piece.trim_end());
                    last.end = last.end.max(t1);
                    if !is_punct {
                        last.p = last.p.min(data.p);
                    }
                }
            }
        }
        Ok(Transcript {
            text: text.trim().to_string(),
            words,
        })
    }
}
