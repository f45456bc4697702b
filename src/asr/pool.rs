//! The ASR pool: one Whisper model shared by N worker threads, each with its own long-lived
//! decoding state, fed from one bounded queue.
//!
//! [`AsrPool::submit`] never blocks. When the queue is full an utterance is shed: its reply is
//! called at once with [`NotTranscribed::Overload`], so the call still gets its utterance
//! event (marked not transcribed) and intake and prosody never wait for ASR.
//!
//! Fairness between calls: the utterance shed is the *oldest of the call with the most
//! utterances waiting* (a live supervisor cares most about what a customer just said, and a
//! call that floods the queue sheds its own utterances, not everyone else's); a free worker
//! takes the oldest utterance of the call with the fewest waiting, so a flooding call gets
//! what the others leave. Within one call, utterances run in order.

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
                        // A panic in the decode must still answer the job: the call takes its
                        // transcripts in order and would otherwise wait for this one forever.
                        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            transcriber.transcribe_in(
                                &q.job.samples,
                                q.job.language,
                                q.job.previous.as_deref(),
                            )
                        }))
                        .unwrap_or_else(|_| {
                            Err(AsrError::Inference("the transcription panicked".into()))
                        });
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
                shed = pick(&q.jobs, |j| j.job.call_id.as_str(), Pick::Busiest)
                    .and_then(|i| q.jobs.remove(i));
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

/// Which call's oldest job [`pick`] chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pick {
    /// The call with the most jobs waiting (to shed).
    Busiest,
    /// The call with the fewest jobs waiting (to run next).
    Quietest,
}

/// Index of the oldest job of the call `how` chooses; ties go to the call whose oldest job is
/// oldest. O(n) in the queue length, which is small (`asr.queue`).
fn pick<T>(jobs: &VecDeque<T>, call: impl Fn(&T) -> &str, how: Pick) -> Option<usize> {
    let mut calls: Vec<(&str, usize, usize)> = Vec::new(); // (call, count, oldest index)
    for (i, j) in jobs.iter().enumerate() {
        let c = call(j);
        match calls.iter_mut().find(|(id, _, _)| *id == c) {
            Some(e) => e.1 += 1,
            None => calls.push((c, 1, i)),
        }
    }
    // `calls` is in order of each call's oldest job, so the first best is the tie-break
    // (`min_by_key` keeps the first minimum, `max_by_key` the last maximum).
    let best = match how {
        Pick::Busiest => calls.iter().rev().max_by_key(|e| e.1),
        Pick::Quietest => calls.iter().min_by_key(|e| e.1),
    };
    best.map(|e| e.2)
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
        if let Some(job) =
            pick(&q.jobs, |j| j.job.call_id.as_str(), Pick::Quietest).and_then(|i| q.jobs.remove(i))
        {
            return Some(job);
        }
        if q.closed {
            return None;
        }
        q = shared.ready.wait(q).unwrap_or_else(|p| p.into_inner());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(calls: &[&'static str]) -> VecDeque<&'static str> {
        calls.iter().copied().collect()
    }

    #[test]
    fn a_flooding_call_sheds_its_own_utterances() {
        // "f" floods; "a" and "b" have one utterance each, "a" the oldest of all.
        let jobs = q(&["a", "f", "f", "b", "f", "f"]);
        assert_eq!(pick(&jobs, |j| j, Pick::Busiest), Some(1), "f's oldest");
        assert_eq!(pick(&jobs, |j| j, Pick::Quietest), Some(0), "a, then b");
        let jobs = q(&["f", "f", "b", "f"]);
        assert_eq!(
            pick(&jobs, |j| j, Pick::Quietest),
            Some(2),
            "b before f's backlog"
        );
    }

    #[test]
    fn equal_calls_are_served_oldest_first() {
        let jobs = q(&["a", "b", "a", "b"]);
        assert_eq!(pick(&jobs, |j| j, Pick::Busiest), Some(0));
        assert_eq!(pick(&jobs, |j| j, Pick::Quietest), Some(0));
        assert_eq!(pick(&q(&[]), |j| j, Pick::Busiest), None);
        // One call alone: plain FIFO.
        assert_eq!(pick(&q(&["a", "a", "a"]), |j| j, Pick::Quietest), Some(0));
    }

    #[test]
    fn under_a_flood_every_other_call_keeps_its_utterances() {
        // Capacity 8; each round one call submits 10 utterances and three quiet calls one
        // each, and the workers finish four: room for the quiet calls, not for the flood.
        let run = |fair: bool| -> Vec<&'static str> {
            let mut jobs: VecDeque<&'static str> = VecDeque::new();
            let mut shed = Vec::new();
            let push = |jobs: &mut VecDeque<&'static str>, shed: &mut Vec<&'static str>, c| {
                jobs.push_back(c);
                if jobs.len() > 8 {
                    let i = if fair {
                        pick(jobs, |j| j, Pick::Busiest).unwrap()
                    } else {
                        0
                    };
                    shed.push(jobs.remove(i).unwrap());
                }
            };
            for _ in 0..20 {
                for _ in 0..10 {
                    push(&mut jobs, &mut shed, "flood");
                }
                for c in ["a", "b", "c"] {
                    push(&mut jobs, &mut shed, c);
                }
                for _ in 0..4 {
                    let i = if fair {
                        pick(&jobs, |j| j, Pick::Quietest)
                    } else {
                        Some(0)
                    };
                    if let Some(i) = i {
                        jobs.remove(i);
                    }
                }
            }
            shed
        };
        let fair = run(true);
        assert!(
            !fair.is_empty() && fair.iter().all(|c| *c == "flood"),
            "{fair:?}"
        );
        // The old policy (shed the oldest, run the oldest) loses the quiet calls' words too.
        let fifo = run(false);
        assert!(fifo.iter().any(|c| *c != "flood"), "{fifo:?}");
    }
}
