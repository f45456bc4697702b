//! Sources turn any input (sockets, sound devices, files) into [`CallEvent`]s. They know
//! nothing about analysis: they validate what arrives, decode it to `f32` samples and send
//! events into a bounded channel that the call router drains.
//!
//! * [`audiosocket`] — Asterisk AudioSocket TCP server (one connection = one leg).
//! * [`media_stream`] — WebSocket ingest: Twilio Media Streams and mod_audio_fork-style L16.
//! * [`ingest`] — the shared sending side: backpressure policy, pacing and per-source counters.
//! * [`legs`] — which connection owns which leg of which call.
//!
//! Backpressure (see [`ingest::IngestTx`]): `Start`/`End` always wait for room in the
//! channel (the router must see them); `Audio` waits at most a short timeout and is then
//! dropped and counted, so a slow router never stalls a socket read for long; when the router
//! is gone (channel closed) the leg is closed.

use crate::audio::Speaker;

pub mod audiosocket;
pub mod device;
pub mod ingest;
pub mod legs;
pub mod media_stream;
pub mod reorder;

/// What a source says about a call.
#[derive(Debug, Clone, PartialEq)]
pub enum CallEvent {
    /// A new call (or a new leg of a call already started: the router merges legs that share
    /// a `call_id`). `speakers` lists every speaker the call is expected to have.
    Start {
        call_id: String,
        /// `audiosocket`, `twilio`, `l16`, `device`, `file`.
        source: &'static str,
        speakers: Vec<Speaker>,
    },
    /// Audio of one speaker, mono, in [-1, 1], at `sample_rate`.
    Audio {
        call_id: String,
        speaker: Speaker,
        sample_rate: u32,
        samples: Vec<f32>,
    },
    /// The agent handling the call, from the ingest metadata (after `Start`, before audio).
    Agent { call_id: String, agent: String },
    /// One speaker's leg ended (hang-up, disconnect, error). The call ends when all its legs
    /// have ended.
    End {
        call_id: String,
        speaker: Speaker,
        /// `hangup`, `disconnected`, `error: …`, `shutdown`.
        reason: String,
    },
}

impl CallEvent {
    pub fn call_id(&self) -> &str {
        match self {
            CallEvent::Start { call_id, .. }
            | CallEvent::Audio { call_id, .. }
            | CallEvent::Agent { call_id, .. }
            | CallEvent::End { call_id, .. } => call_id,
        }
    }
}
