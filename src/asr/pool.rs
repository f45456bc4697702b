//! The ASR pool: one Whisper model shared by N worker threads, each with its own long-lived
//! decoding state, fed from one bounded queue.
//!
//! [`AsrPool::submit`] never blocks. When the queue is full the *oldest* waiting utterance is
//! shed: its reply is called at once with [`NotTranscribed::Overload`], so the call still gets
//! its utterance event (marked not transcribed) and intake and prosody never wait for ASR.
//! Oldest-first because a live supervisor cares most about what the customer just said.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::transcribe::{AsrError, TranscribeOptions, WhisperModel};
use crate::pipeline::{AsrJob, NotTranscribed, TranscriptResult};

/// Called exactly once with the job's outcome, from a worker thread (or from `submit` when
/// the job is shed or the pool is shut down).
pub type Reply = Box<dyn FnOnce(AsrJob, TranscriptResult, JobTiming) + Send>;

/// How long a job waited and ran.
#[derive(Debug, Clone, Copy, Default)]
pub struct JobTiming {
    pub queued: Duration,
    pub run: Duration,
}

/// Counters the pool keeps (exported on `/metrics` by the service).
#[derive(Debug, Default)]
pub struct PoolStats {
    pub submitted: AtomicU64,
    pub transcribed: AtomicU64,
    pub shed: AtomicU64,
    pub failed: AtomicU64,
    /// Seconds of audio transcribed, in milliseconds.
    pub audio_ms: AtomicU64,
    /// Wall time spent in Whisper, in milliseconds.
    pub busy_ms: AtomicU64,
}

struct Queued {
    job: AsrJob,
    reply: Reply,
    at: Instant,
}

struct Queue {
    jobs: VecDeque<Queued>,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    capacity: usize,
    stats: PoolStats,
}

pub struct AsrPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl AsrPool {
    /// Starts `workers` threads, each creating its own Whisper state up front (so a bad model
    /// fails here, not on the first call).
    pub fn start(
        model: &WhisperModel,
        workers: usize,
        opts: TranscribeOptions,
        capacity: usize,
    ) -> Result<Self, AsrError> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::with_capacity(capacity + 1),
                closed: false,
            }),
            ready: Condvar::new(),
            capacity: capacity.max(1),
            stats: PoolStats::default(),
        });
        let mut handles = Vec::with_capacity(workers);
        for i in 0..workers.max(1) {
            let mut transcriber = model.transcriber(opts.clone())?;
            let shared = Arc::clone(&shared);
            let handle = std::thread::Builder::new()
                .name(format!("asr-{i}"))
                .spawn(move || {
                    while let Some(q) = next_job(&shared) {
                        let queued = q.at.elapsed();
                        let t0 = Instant::now();
                        let result = transcriber.transcribe(&q.job.samples);
                        let run = t0.elapsed();
                        let st = &shared.stats;
                        st.busy_ms.fetch_add(run.as_millis() as u64, Ordering::Relaxed);
                        let result = match result {
                            Ok(t) => {
                                st.transcribed.fetch_add(1, Ordering::Relaxed);
                                st.audio_ms.fetch_add(
                                    (q.job.samples.len() as u64 * 1000)
                                        / crate::audio::ANALYSIS_RATE as u64,
                                    Ordering::Relaxed,
                                );
                                Ok(t)
                            }
                            Err(e) => {
                                st.failed.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(call_id = %q.job.call_id, job = q.job.job_id, error = %e, "transcription failed");
                                Err(NotTranscribed::Error(e.to_string()))
                            }
                        };
                        (q.reply)(q.job, result, JobTiming { queued, run });
                    }
                })
                .map_err(|e| AsrError::Inference(format!("spawning ASR worker: {e}")))?;
            handles.push(handle);
        }
        Ok(Self {
            shared,
            workers: handles,
        })
    }

    /// Queues a job; never blocks. Sheds the oldest waiting job when the queue is full.
    pub fn submit(&self, job: AsrJob, reply: Reply) {
        self.shared.stats.submitted.fetch_add(1, Ordering::Relaxed);
        let mut shed = None;
        {
            let mut q = lock(&self.shared.queue);
            if q.closed {
                drop(q);
                reply(job, Err(NotTranscribed::Overload), JobTiming::default());
                return;
            }
            q.jobs.push_back(Queued {
                job,
                reply,
                at: Instant::now(),
            });
            if q.jobs.len() > self.shared.capacity {
                shed = q.jobs.pop_front();
            }
        }
        self.shared.ready.notify_one();
        if let Some(old) = shed {
            self.shared.stats.shed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(call_id = %old.job.call_id, job = old.job.job_id, "ASR overloaded; utterance shed");
            let queued = old.at.elapsed();
            (old.reply)(
                old.job,
                Err(NotTranscribed::Overload),
                JobTiming {
                    queued,
                    run: Duration::ZERO,
                },
            );
        }
    }

    /// Utterances waiting (not counting those being transcribed).
    pub fn depth(&self) -> usize {
        lock(&self.shared.queue).jobs.len()
    }

    /// How long the oldest waiting utterance has waited.
    pub fn lag(&self) -> Duration {
        lock(&self.shared.queue)
            .jobs
            .front()
            .map_or(Duration::ZERO, |q| q.at.elapsed())
    }

    pub fn stats(&self) -> &PoolStats {
        &self.shared.stats
    }

    /// Finishes the queued jobs, then stops the workers.
    pub fn shutdown(mut self) {
        self.close();
    }

    fn close(&mut self) {
        lock(&self.shared.queue).closed = true;
        self.shared.ready.notify_all();
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for AsrPool {
    fn drop(&mut self) {
        self.close();
    }
}

fn lock(m: &Mutex<Queue>) -> std::sync::MutexGuard<'_, Queue> {
    // A worker panicking inside whisper.cpp must not wedge the pool: the queue itself stays
    // consistent (every mutation is a single push/pop), so recover the guard.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Blocks until a job is available; `None` once the pool is closed and drained.
fn next_job(shared: &Shared) -> Option<Queued> {
    let mut q = lock(&shared.queue);
    loop {
        if let Some(job) = q.jobs.pop_front() {
            return Some(job);
        }
        if q.closed {
            return None;
        }
        q = shared.ready.wait(q).unwrap_or_else(|p| p.into_inner());
    }
}
