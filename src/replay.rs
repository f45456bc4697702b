//! QA replay: recorded call files through the same pipeline as live calls.
//!
//! Each file becomes one call. Audio is pushed in 100 ms chunks per speaker, interleaved, as a
//! live source would deliver it; each utterance's transcript is applied as the utterance
//! closes, so the event stream is deterministic (same file → same events, except `ts`).
//!
//! Whisper is most of a replay's cost (≈ 90 % of the CPU on a word-dense call), and one
//! utterance at a time keeps one core busy. Where the language is fixed and the previous
//! utterance is not the prompt (each decode then depends on its audio alone), a scout runs a
//! second copy of the call's pipeline ahead of the one that publishes, hands the utterances
//! it closes to `asr.workers` transcribers in parallel, and the publishing pipeline takes
//! each result when it reaches that utterance:
//! the same events as one-at-a-time transcription, in less wall time. The scout keeps at most
//! a few utterances ahead, so memory does not grow with the file. An utterance the scout did
//! not see identically (it cannot happen with the same audio and config, but costs nothing
//! to guard), or whose worker could not start, is transcribed on the spot.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::asr::transcribe::{
    parse_language, AsrError, TranscribeOptions, Transcriber, WhisperModel,
};
use crate::audio::channels::{split_speakers, ChannelMap};
use crate::audio::decode::decode_file;
use crate::audio::error::AudioError;
use crate::audio::Speaker;
use crate::config::Config;
use crate::events::{now_rfc3339, Event};
use crate::pipeline::{Analyzers, AsrJob, CallPipeline, NotTranscribed, Output, TranscriptResult};

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
    /// Whether the error is the run's, not the file's (the Whisper model is missing or
    /// unreadable): every later file would fail the same way.
    pub fn is_fatal_for_run(&self) -> bool {
        matches!(
            self,
            ReplayError::Asr(AsrError::ModelMissing { .. })
                | ReplayError::Asr(AsrError::ModelLoad { .. })
                | ReplayError::Asr(AsrError::EnglishOnly { .. })
        )
    }

    /// Whether the events' reader went away (`| head`): the run ends quietly.
    pub fn is_closed_stdout(&self) -> bool {
        matches!(self, ReplayError::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// Whether the error is the user's input (exit 2) rather than an internal failure.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            ReplayError::Audio(_)
                | ReplayError::InFile { .. }
                | ReplayError::NoSuchChannel { .. }
                | ReplayError::Asr(AsrError::ModelMissing { .. })
                | ReplayError::Asr(AsrError::ModelLoad { .. })
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
    /// The call id; `None` = [`call_id_for`] the file.
    pub call_id: Option<String>,
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
#[non_exhaustive]
pub struct ReplayStats {
    pub audio_s: f64,
    pub wall_s: f64,
    pub events: usize,
    /// Utterances transcribed ahead by the parallel workers (the rest one at a time).
    pub prefetched: usize,
    /// Utterances transcribed one at a time.
    pub transcribed_inline: usize,
}

/// Lazily loaded Whisper transcriber, so that bad input files fail fast without a model.
pub struct LazyTranscriber {
    model_path: PathBuf,
    opts: TranscribeOptions,
    /// Transcribers working ahead in parallel (`asr.workers`); 1 = one at a time.
    workers: usize,
    /// Whether each decode depends on its audio alone (one configured language, no
    /// previous-utterance prompt), so it can run ahead of the pipeline.
    independent: bool,
    model: Option<WhisperModel>,
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
            workers: cfg.asr.workers.max(1),
            independent: matches!(parse_language(&cfg.asr.language), Ok(Some(_)))
                && !cfg.asr.prompt_previous,
            model: None,
            inner: None,
        }
    }

    fn get(&mut self) -> Result<&mut Transcriber, AsrError> {
        if self.inner.is_none() {
            let model = WhisperModel::load(&self.model_path)?;
            self.inner = Some(model.transcriber(self.opts.clone())?);
            self.model = Some(model);
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

/// `s` with every character but letters, digits (of any script: "客户", "Müller"), `-`, `_`
/// and `.` replaced by `_` (safe in MQTT topics and file names; a recording named in Chinese
/// keeps a recognisable id instead of `__`).
pub fn safe_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' || c == '.' {
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
    let call_id = opts.call_id.clone().unwrap_or_else(|| call_id_for(path));
    let call = CallSpec {
        call_id: &call_id,
        tracks: &tracks,
        speakers: &speakers,
        rate,
        agent: opts.agent.clone(),
        cfg,
        analyzers,
    };
    let mut out = Vec::new();
    let mut pipeline = call.pipeline(&mut out).map_err(|e| in_file(path, e))?;
    let chunk = call.chunk();
    let n = call.samples();
    let ahead = !opts.realtime && asr.workers > 1 && asr.independent;
    let mut events = 0usize;
    let (mut prefetched, mut inline) = (0usize, 0usize);
    std::thread::scope(|scope| {
        let mut prefetch = match (&asr.model, ahead) {
            (Some(model), true) => {
                Some(Prefetch::start(scope, &call, model, &asr.opts, asr.workers))
            }
            _ => None,
        };
        let mut pos = 0;
        loop {
            let last = pos >= n;
            if !last {
                call.feed(&mut pipeline, pos, &mut out);
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
            // Transcription can produce more outputs (the utterance event), so drain to a
            // fixpoint.
            while !out.is_empty() {
                for o in std::mem::take(&mut out) {
                    match o {
                        Output::Event(e) => {
                            events += 1;
                            sink(&e).map_err(io_err)?;
                        }
                        Output::Asr(job) => {
                            let result = match prefetch.as_mut().and_then(|p| p.take(&job)) {
                                Some(r) => {
                                    prefetched += 1;
                                    r
                                }
                                None => {
                                    inline += 1;
                                    asr.get()?
                                        .transcribe_in(
                                            &job.samples,
                                            job.language,
                                            job.previous.as_deref(),
                                        )
                                        .map_err(|e| NotTranscribed::Error(e.to_string()))
                                }
                            };
                            if let Err(e) = &result {
                                tracing::warn!(
                                    call_id = %job.call_id,
                                    job = job.job_id,
                                    error = ?e,
                                    "utterance not transcribed"
                                );
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
        Ok::<(), ReplayError>(())
    })?;
    Ok(ReplayStats {
        audio_s,
        wall_s: started.elapsed().as_secs_f64(),
        events,
        prefetched,
        transcribed_inline: inline,
    })
}

/// What a call's pipeline is built from; the publishing pipeline and the scout build theirs
/// the same way and feed it the same chunks.
struct CallSpec<'a> {
    call_id: &'a str,
    tracks: &'a [(Speaker, Vec<f32>)],
    speakers: &'a [Speaker],
    rate: u32,
    agent: Option<String>,
    cfg: &'a Config,
    analyzers: &'a Analyzers,
}

impl CallSpec<'_> {
    fn pipeline(&self, out: &mut Vec<Output>) -> Result<CallPipeline, AudioError> {
        CallPipeline::new(
            self.call_id,
            "file",
            self.speakers,
            self.rate,
            self.agent.clone(),
            self.cfg,
            self.analyzers,
            now_rfc3339,
            out,
        )
    }

    /// Samples per chunk: 100 ms.
    fn chunk(&self) -> usize {
        (self.rate as usize / 10).max(1)
    }

    /// Samples in the longest track.
    fn samples(&self) -> usize {
        self.tracks.iter().map(|(_, s)| s.len()).max().unwrap_or(0)
    }

    /// Pushes every speaker's chunk at `pos`.
    fn feed(&self, pipeline: &mut CallPipeline, pos: usize, out: &mut Vec<Output>) {
        for (speaker, samples) in self.tracks {
            let end = (pos + self.chunk()).min(samples.len());
            if pos < end {
                pipeline.push(*speaker, &samples[pos..end], out);
            }
        }
    }
}

/// What identifies an utterance to transcribe: the scout's and the publisher's must agree
/// on all of it, its audio included, for a result to be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
struct JobKey {
    job_id: u64,
    speaker: Speaker,
    start: u64,
    end: u64,
    len: usize,
    audio: u64,
    language: Option<&'static str>,
    previous: Option<String>,
}

impl JobKey {
    fn of(job: &AsrJob) -> Self {
        // FNV-1a over the samples' bits: cheap next to a decode, and any difference shows.
        let audio = job.samples.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, x| {
            (h ^ u64::from(x.to_bits())).wrapping_mul(0x0100_0000_01b3)
        });
        Self {
            job_id: job.job_id,
            speaker: job.speaker,
            start: job.start.to_bits(),
            end: job.end.to_bits(),
            len: job.samples.len(),
            audio,
            language: job.language,
            previous: job.previous.clone(),
        }
    }
}

/// An utterance the scout handed to the workers, and where its result will arrive.
struct Ahead {
    key: JobKey,
    result: Receiver<TranscriptResult>,
}

type Work = (AsrJob, mpsc::Sender<TranscriptResult>);

/// The scout and the workers transcribing ahead of the publishing pipeline.
struct Prefetch {
    /// The scout's utterances, in the order its pipeline closed them.
    order: Receiver<Ahead>,
    /// One taken from `order` that belongs to a later utterance of the publisher.
    held: Option<Ahead>,
    /// Set when the publisher is done (or failed): workers drop what is still queued.
    stop: Arc<AtomicBool>,
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Prefetch {
    /// Starts the scout and `workers` transcribers on `scope`; they stop when this is dropped
    /// (their channels close).
    fn start<'scope, 'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        call: &'scope CallSpec<'env>,
        model: &WhisperModel,
        opts: &TranscribeOptions,
        workers: usize,
    ) -> Self {
        // The scout runs at most this many utterances ahead of the publisher.
        let lookahead = 2 * workers;
        let (order_tx, order) = mpsc::sync_channel::<Ahead>(lookahead);
        let (work_tx, work_rx) = mpsc::sync_channel::<Work>(lookahead);
        let work_rx = Arc::new(Mutex::new(work_rx));
        let stop = Arc::new(AtomicBool::new(false));
        // `asr.threads` is the replay's budget, shared among the workers (ggml's threads
        // spin, so more threads than cores is slower, not faster).
        let mut opts = opts.clone();
        opts.threads = (opts.threads / workers).max(1);
        for _ in 0..workers {
            let (model, opts) = (model.clone(), opts.clone());
            let (work_rx, stop) = (Arc::clone(&work_rx), Arc::clone(&stop));
            scope.spawn(move || transcribe_ahead(model, opts, &work_rx, &stop));
        }
        scope.spawn(move || scout(call, &order_tx, &work_tx));
        Self {
            order,
            held: None,
            stop,
        }
    }

    /// The result for `job` if the scout transcribed exactly this utterance; `None` (the
    /// caller transcribes it) otherwise, or when a worker could not.
    fn take(&mut self, job: &AsrJob) -> Option<TranscriptResult> {
        let key = JobKey::of(job);
        loop {
            let next = match self.held.take() {
                Some(a) => a,
                None => self.order.recv().ok()?,
            };
            if next.key.job_id < key.job_id {
                continue; // the publisher never closed this one
            }
            if next.key.job_id > key.job_id {
                self.held = Some(next);
                return None;
            }
            return if next.key == key {
                next.result.recv().ok()
            } else {
                None
            };
        }
    }
}

/// The scout: the call's pipeline run ahead of the publisher, its events dropped, its
/// utterances sent to the workers (and their order to the publisher).
fn scout(call: &CallSpec<'_>, order: &SyncSender<Ahead>, work: &SyncSender<Work>) {
    let mut out = Vec::new();
    let Ok(mut pipeline) = call.pipeline(&mut out) else {
        return;
    };
    let n = call.samples();
    let mut pos = 0;
    loop {
        let last = pos >= n;
        if !last {
            call.feed(&mut pipeline, pos, &mut out);
            pos += call.chunk();
        } else {
            pipeline.finish("end_of_file", &mut out);
        }
        while !out.is_empty() {
            for o in std::mem::take(&mut out) {
                let Output::Asr(job) = o else { continue };
                let id = job.job_id;
                let (tx, rx) = mpsc::channel();
                let ahead = Ahead {
                    key: JobKey::of(&job),
                    result: rx,
                };
                if order.send(ahead).is_err() || work.send((job, tx)).is_err() {
                    return; // the publisher is done
                }
                // Segmentation does not depend on transcripts; release the utterance.
                pipeline.on_transcript(id, Err(NotTranscribed::Overload), &mut out);
            }
        }
        if last {
            return;
        }
    }
}

/// One worker: transcribes the scout's utterances until the scout or the publisher is done.
fn transcribe_ahead(
    model: WhisperModel,
    opts: TranscribeOptions,
    work: &Mutex<Receiver<Work>>,
    stop: &AtomicBool,
) {
    let mut transcriber = match model.transcriber(opts) {
        Ok(t) => t,
        Err(e) => {
            // Its share falls to the other workers, or to the publisher, one at a time.
            tracing::warn!(error = %e, "replay: an ASR worker could not start");
            return;
        }
    };
    loop {
        let next = work.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok((job, reply)) = next else { return };
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let result = transcriber
            .transcribe_in(&job.samples, job.language, job.previous.as_deref())
            .map_err(|e| NotTranscribed::Error(e.to_string()));
        let _ = reply.send(result);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_keep_the_file_name_in_any_script() {
        let id = |p: &str| call_id_for(Path::new(p));
        assert_eq!(id("calls/客户.wav"), "客户");
        assert_eq!(id("calls/投诉.wav"), "投诉");
        assert_eq!(id("Müller call 2.wav"), "Müller_call_2");
        assert_eq!(id("شكوى.wav"), "شكوى");
        // What is unsafe in a topic or a path still goes.
        assert_eq!(id("a+b#c.wav"), "a_b_c");
        assert_eq!(id("tab\there.wav"), "tab_here");
        assert_eq!(id("!!.wav"), "__");
    }
}
