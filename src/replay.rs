//! QA replay: recorded call files through the same pipeline as live calls.
//!
//! Each file becomes one call. Audio is pushed in 100 ms chunks per speaker, interleaved, as a
//! live source would deliver it; transcription runs synchronously on each utterance as it
//! closes, so the event stream is deterministic (same file → same events, except `ts`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::asr::transcribe::{AsrError, TranscribeOptions, Transcriber, WhisperModel};
use crate::audio::channels::{split_speakers, ChannelMap};
use crate::audio::decode::decode_file;
use crate::audio::error::AudioError;
use crate::audio::Speaker;
use crate::config::Config;
use crate::events::{now_rfc3339, Event};
use crate::pipeline::{Analyzers, CallPipeline, NotTranscribed, Output};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    #[error(transparent)]
    Audio(#[from] AudioError),
    #[error(transparent)]
    Asr(#[from] AsrError),
    /// A problem of the audio that is not about reading it (channel mapping, resampling).
    #[error("{}: {source}", path.display())]
    InFile { path: PathBuf, source: AudioError },
    #[error("{}: channel {channel} requested but the file has {channels}", path.display())]
    NoSuchChannel {
        path: PathBuf,
        channel: usize,
        channels: usize,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ReplayError {
    /// Whether the error is the user's input (exit 2) rather than an internal failure.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            ReplayError::Audio(_)
                | ReplayError::InFile { .. }
                | ReplayError::NoSuchChannel { .. }
                | ReplayError::Asr(AsrError::ModelMissing { .. })
                | ReplayError::Asr(AsrError::EnglishOnly { .. })
        )
    }
}

/// Options of one replay run.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Channel → speaker mapping; `None` = mono customer, stereo customer then agent.
    pub channels: Option<ChannelMap>,
    /// Pace the audio at real time, as a live call would arrive.
    pub realtime: bool,
    /// The agent id for `call_started.agent` (`--agent`), checked by the caller.
    pub agent: Option<String>,
}

/// How far the replay of one file has come (for progress bars).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplayProgress {
    /// Seconds of audio pushed through the pipeline so far.
    pub audio_s: f64,
    /// Seconds of audio in the file.
    pub total_s: f64,
}

/// Statistics of one replayed file.
#[derive(Debug, Clone)]
pub struct ReplayStats {
    pub audio_s: f64,
    pub wall_s: f64,
    pub events: usize,
}

/// Lazily loaded Whisper transcriber, so that bad input files fail fast without a model.
pub struct LazyTranscriber {
    model_path: PathBuf,
    opts: TranscribeOptions,
    inner: Option<Transcriber>,
}

impl LazyTranscriber {
    pub fn new(cfg: &Config) -> Self {
        let mut opts = TranscribeOptions::default();
        if cfg.asr.threads > 0 {
            opts.threads = cfg.asr.threads;
        }
        // Parsed by the transcriber: "" and "auto" detect.
        opts.language = Some(cfg.asr.language.clone());
        opts.initial_prompt = cfg.asr.initial_prompt.clone();
        Self {
            model_path: cfg.asr.model.clone(),
            opts,
            inner: None,
        }
    }

    fn get(&mut self) -> Result<&mut Transcriber, AsrError> {
        if self.inner.is_none() {
            let model = WhisperModel::load(&self.model_path)?;
            self.inner = Some(model.transcriber(self.opts.clone())?);
        }
        // Just set above when it was None.
        Ok(self.inner.as_mut().expect("transcriber initialised"))
    }
}

/// A deterministic call id for a file: its stem, restricted to topic-safe characters.
pub fn call_id_for(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let id = safe_name(&stem);
    if id.is_empty() {
        "call".into()
    } else {
        id
    }
}

/// `s` with every character but ASCII letters, digits, `-`, `_` and `.` replaced by `_`
/// (safe in MQTT topics and file names).
pub fn safe_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Replays one file, handing each event to `sink` in order and telling `progress` how far it
/// got after every chunk of audio.
pub fn replay_file(
    path: &Path,
    cfg: &Config,
    opts: &ReplayOptions,
    analyzers: &Analyzers,
    asr: &mut LazyTranscriber,
    sink: &mut dyn FnMut(&Event) -> std::io::Result<()>,
    progress: &mut dyn FnMut(ReplayProgress),
) -> Result<ReplayStats, ReplayError> {
    let started = Instant::now();
    let decoded = decode_file(path)?;
    let map = match &opts.channels {
        Some(m) => m.clone(),
        None => ChannelMap::for_channels(decoded.channels.len()).map_err(|e| in_file(path, e))?,
    };
    let tracks = split_speakers(&decoded, &map).map_err(|e| in_file(path, e))?;
    let speakers: Vec<Speaker> = tracks.iter().map(|(s, _)| *s).collect();
    let rate = decoded.sample_rate;
    let audio_s = decoded.duration_s();
    // Load the model before emitting anything, so a missing model is an error, not a
    // half-written event stream.
    asr.get()?;

    let io_err = |source| ReplayError::Io {
        path: PathBuf::from("<stdout>"),
        source,
    };
    let mut out = Vec::new();
    let mut events = 0usize;
    let call_id = call_id_for(path);
    let mut pipeline = CallPipeline::new(
        &call_id,
        "file",
        &speakers,
        rate,
        opts.agent.clone(),
        cfg,
        analyzers,
        now_rfc3339,
        &mut out,
    )
    .map_err(|e| in_file(path, e))?;
    let chunk = (rate as usize / 10).max(1);
    let n = tracks.iter().map(|(_, s)| s.len()).max().unwrap_or(0);
    let mut pos = 0;
    loop {
        let last = pos >= n;
        if !last {
            for (speaker, samples) in &tracks {
                let end = (pos + chunk).min(samples.len());
                if pos < end {
                    pipeline.push(*speaker, &samples[pos..end], &mut out);
                }
            }
            pos += chunk;
            if opts.realtime {
                let due = Duration::from_secs_f64(pos as f64 / rate as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        } else {
            pipeline.finish("end_of_file", &mut out);
        }
        // Transcription can produce more outputs (the utterance event), so drain to a fixpoint.
        while !out.is_empty() {
            for o in std::mem::take(&mut out) {
                match o {
                    Output::Event(e) => {
                        events += 1;
                        sink(&e).map_err(io_err)?;
                    }
                    Output::Asr(job) => {
                        let result = asr
                            .get()?
                            .transcribe_in(&job.samples, job.language)
                            .map_err(|e| NotTranscribed::Error(e.to_string()));
                        if let Err(e) = &result {
                            tracing::warn!(call_id = %job.call_id, job = job.job_id, error = ?e, "utterance not transcribed");
                        }
                        pipeline.on_transcript(job.job_id, result, &mut out);
                    }
                }
            }
        }
        progress(ReplayProgress {
            audio_s: (pos.min(n) as f64 / rate as f64).min(audio_s),
            total_s: audio_s,
        });
        if last {
            break;
        }
    }
    Ok(ReplayStats {
        audio_s,
        wall_s: started.elapsed().as_secs_f64(),
        events,
    })
}

/// Writes an event as one JSON line.
pub fn write_jsonl(w: &mut dyn Write, e: &Event) -> std::io::Result<()> {
    serde_json::to_writer(&mut *w, e)?;
    w.write_all(b"\n")
}

/// Per-frame prosody of one channel of a file, resampled to 16 kHz (`calltone prosody`).
pub fn prosody_frames(
    path: &Path,
    channel: usize,
) -> Result<Vec<crate::prosody::Frame>, ReplayError> {
    use crate::audio::ANALYSIS_RATE;
    use crate::prosody::{ProsodyAnalyzer, ProsodyConfig, ProsodyOutput};
    let decoded = decode_file(path)?;
    let n = decoded.channels.len();
    let samples = decoded
        .channels
        .get(channel)
        .ok_or_else(|| ReplayError::NoSuchChannel {
            path: path.into(),
            channel,
            channels: n,
        })?;
    let audio16 = crate::audio::resample::resample_all(samples, decoded.sample_rate, ANALYSIS_RATE)
        .map_err(|e| in_file(path, e))?;
    let mut analyzer = ProsodyAnalyzer::new(ANALYSIS_RATE, &ProsodyConfig::default());
    let mut out = ProsodyOutput::default();
    analyzer.push(&audio16, &mut out);
    analyzer.finish(&mut out);
    Ok(out.frames)
}

fn in_file(path: &Path, source: AudioError) -> ReplayError {
    ReplayError::InFile {
        path: path.into(),
        source,
    }
}
