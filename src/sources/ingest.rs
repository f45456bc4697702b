//! The sending side every network source shares: pushes [`CallEvent`]s into the router's
//! bounded channel with an explicit backpressure policy, and counts what happens per source.
//!
//! Policy:
//! * `Start` and `End` wait for room (they are rare and the router must see both), at most
//!   10 s; a router that stays full that long is treated as gone (logged).
//! * `Audio` waits at most `audio_send_timeout` (default 1 s). A router that is briefly busy
//!   therefore pushes back on the socket (TCP flow control) without losing audio; a router
//!   that stays full longer makes the source drop that frame and count it in
//!   `calltone_audio_dropped_total{source,reason="router_full"}` — the socket read never
//!   blocks for longer than the timeout.
//! * A closed channel means the router is gone (service shutting down): the send returns
//!   [`RouterGone`] and the source closes the leg.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::SendTimeoutError;

use super::legs::{LegRegistry, Refusal};
use super::CallEvent;
use crate::metrics::{Counter, Metrics};
use crate::security::SecurityConfig;

/// Default wait for room in the router channel before an audio frame is dropped.
pub const DEFAULT_AUDIO_SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest wait for room for a `Start`/`End`.
pub const CONTROL_SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The call router has stopped receiving (its channel is closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("call router is gone")]
pub struct RouterGone;

/// The real-time pacing budget of a leg (`security.max_realtime_factor`,
/// `security.pacing_burst_s`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacing {
    pub max_realtime_factor: f64,
    pub burst_s: f64,
}

impl Pacing {
    pub fn from_config(c: &SecurityConfig) -> Self {
        Self {
            max_realtime_factor: c.max_realtime_factor,
            burst_s: c.pacing_burst_s,
        }
    }
}

impl Default for Pacing {
    fn default() -> Self {
        Self::from_config(&SecurityConfig::default())
    }
}

/// What the sources of one service share beyond the router channel: who owns which leg,
/// and the pacing budget.
#[derive(Debug, Clone, Default)]
pub struct LegGuard {
    pub legs: LegRegistry,
    pub pacing: Pacing,
}

/// Per-leg real-time guard: audio is admitted while the leg's audio seconds stay within
/// `burst_s + elapsed_wall_s × max_realtime_factor`; the rest is dropped and counted
/// (`calltone_audio_dropped_total{reason="too_fast"}`), so a sender faster than real time
/// costs the box at most `max_realtime_factor` × a normal leg.
#[derive(Debug)]
pub struct LegPacer {
    pacing: Pacing,
    start: Option<Instant>,
    audio_s: f64,
    dropped: Arc<Counter>,
    warned: bool,
}

impl LegPacer {
    /// Whether `samples` at `rate` may pass now.
    pub fn admit(&mut self, samples: usize, rate: u32) -> bool {
        let now = Instant::now();
        let start = *self.start.get_or_insert(now);
        let d = samples as f64 / rate.max(1) as f64;
        let budget = self.pacing.burst_s
            + now.duration_since(start).as_secs_f64() * self.pacing.max_realtime_factor;
        if self.audio_s + d > budget {
            self.dropped.inc();
            if !self.warned {
                self.warned = true;
                tracing::warn!(
                    audio_s = self.audio_s,
                    wall_s = now.duration_since(start).as_secs_f64(),
                    max_realtime_factor = self.pacing.max_realtime_factor,
                    "leg sends audio faster than real time; dropping the excess"
                );
            }
            return false;
        }
        self.audio_s += d;
        true
    }
}

/// A source's handle on the router channel; cheap to clone (one per connection).
#[derive(Debug, Clone)]
pub struct IngestTx {
    tx: mpsc::Sender<CallEvent>,
    source: &'static str,
    audio_send_timeout: Duration,
    frames: Arc<Counter>,
    dropped_full: Arc<Counter>,
    metrics: Arc<Metrics>,
    guard: LegGuard,
}

impl IngestTx {
    pub fn new(
        tx: mpsc::Sender<CallEvent>,
        source: &'static str,
        metrics: Arc<Metrics>,
        audio_send_timeout: Duration,
    ) -> Self {
        Self {
            frames: metrics.audio_frames.with(&[source]),
            dropped_full: metrics.audio_dropped.with(&[source, "router_full"]),
            tx,
            source,
            audio_send_timeout,
            metrics,
            guard: LegGuard::default(),
        }
    }

    /// The same handle sharing `guard` (leg ownership and pacing) with other sources.
    pub fn with_guard(mut self, guard: LegGuard) -> Self {
        self.guard = guard;
        self
    }

    /// The shared leg-ownership table.
    pub fn legs(&self) -> &LegRegistry {
        &self.guard.legs
    }

    /// A fresh pacing guard for one leg.
    pub fn pacer(&self) -> LegPacer {
        LegPacer {
            pacing: self.guard.pacing,
            start: None,
            audio_s: 0.0,
            dropped: self.metrics.audio_dropped.with(&[self.source, "too_fast"]),
            warned: false,
        }
    }

    /// Logs and counts a leg refused because another connection owns it.
    pub fn leg_taken(&self, call_id: &str, peer: &dyn std::fmt::Display) {
        self.leg_refused(call_id, peer, Refusal::Taken);
    }

    /// Logs and counts a leg the leg table refused: one WARN with the reason,
    /// `calltone_bad_frames_total{reason="leg_taken"|"other_source"}` and
    /// `calltone_connections_closed_total{reason="rejected"}`.
    pub fn leg_refused(&self, call_id: &str, peer: &dyn std::fmt::Display, refusal: Refusal) {
        match refusal {
            Refusal::Taken => {
                tracing::warn!(call_id, source = self.source, %peer, reason = "leg_taken", "call leg already owned by another connection; refusing");
            }
            Refusal::OtherSource(owner) => {
                tracing::warn!(call_id, source = self.source, %peer, reason = "other_source", opened_by = owner, "call was opened over another source; only that source may join its legs; refusing");
            }
        }
        self.bad_frame(refusal.reason());
        self.closed("rejected");
    }

    pub fn source(&self) -> &'static str {
        self.source
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Sends a `Start` or `End`, waiting for room — at most [`CONTROL_SEND_TIMEOUT`], so a
    /// router that stopped draining cannot hang a source (and its shutdown) forever; such an
    /// event is logged as lost and reported as [`RouterGone`].
    pub async fn send_control(&self, ev: CallEvent) -> Result<(), RouterGone> {
        match self.tx.send_timeout(ev, CONTROL_SEND_TIMEOUT).await {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Timeout(ev)) => {
                tracing::error!(call_id = ev.call_id(), source = self.source, event = ?ev, "call router not draining; control event lost");
                Err(RouterGone)
            }
            Err(SendTimeoutError::Closed(_)) => Err(RouterGone),
        }
    }

    /// Sends an `Audio` event under the audio policy (see module docs). `Ok` also when the
    /// frame was dropped because the router stayed full.
    pub async fn send_audio(&self, ev: CallEvent) -> Result<(), RouterGone> {
        self.frames.inc();
        match self.tx.send_timeout(ev, self.audio_send_timeout).await {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Timeout(ev)) => {
                self.dropped_full.inc();
                tracing::debug!(
                    call_id = ev.call_id(),
                    source = self.source,
                    "router full; audio frame dropped"
                );
                Ok(())
            }
            Err(SendTimeoutError::Closed(_)) => Err(RouterGone),
        }
    }

    /// Counts a malformed frame.
    pub fn bad_frame(&self, reason: &str) {
        self.metrics.bad_frames.with(&[self.source, reason]).inc();
    }

    /// Counts a closed connection; `reason` is a short class (`hangup`, `disconnected`,
    /// `timeout`, `error`, `shutdown`, `rejected`, `router_gone`), not the full message.
    pub fn closed(&self, reason: &str) {
        self.metrics
            .connections_closed
            .with(&[self.source, reason])
            .inc();
    }
}

/// The short class of an `End` reason, for metrics labels.
pub fn reason_class(reason: &str) -> &str {
    match reason.split_once(':') {
        Some((head, _)) => head,
        None => reason,
    }
}

/// An agent id from ingest metadata, if it is one: 1–64 characters of letters, digits and
/// `. _ @ -` (it names an MQTT-free page query and appears in events, so nothing else).
pub fn agent_id(raw: Option<&str>) -> Option<String> {
    let a = raw?.trim();
    let ok = is_agent_id(a);
    if !ok {
        tracing::warn!(agent = %a.chars().take(80).collect::<String>().escape_debug(), "agent id in the stream metadata ignored: expected 1-64 of A-Z a-z 0-9 . _ @ -");
    }
    ok.then(|| a.to_string())
}

/// 1–64 characters of letters, digits and `. _ @ -`.
pub fn is_agent_id(a: &str) -> bool {
    !a.is_empty()
        && a.len() <= 64
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'))
}

/// Checks a caller-supplied call id before it becomes part of MQTT topics and file names:
/// 1..=128 characters, no MQTT wildcards or level separators, no control characters.
pub fn validate_call_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("empty call_id".into());
    }
    if id.chars().count() > 128 {
        return Err("call_id longer than 128 characters".into());
    }
    if let Some(c) = id
        .chars()
        .find(|c| matches!(c, '/' | '+' | '#') || c.is_control())
    {
        return Err(format!("call_id contains {c:?}"));
    }
    Ok(())
}

/// Decodes little-endian signed 16-bit PCM to `f32` in [-1, 1). `bytes.len()` must be even.
pub fn s16le_to_f32(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_id_rules() {
        assert!(validate_call_id("CA123-abc").is_ok());
        assert!(validate_call_id("").is_err());
        assert!(validate_call_id("a/b").is_err());
        assert!(validate_call_id("a+b").is_err());
        assert!(validate_call_id("a\nb").is_err());
        assert!(validate_call_id(&"x".repeat(129)).is_err());
    }

    #[test]
    fn pcm_decodes() {
        let v = s16le_to_f32(&[0x00, 0x80, 0xff, 0x7f, 0, 0]);
        assert_eq!(v, vec![-1.0, 32767.0 / 32768.0, 0.0]);
    }

    #[test]
    fn reason_classes() {
        assert_eq!(reason_class("error: bad frame"), "error");
        assert_eq!(reason_class("hangup"), "hangup");
    }

    #[tokio::test]
    async fn full_router_drops_audio_and_counts() {
        let (tx, mut rx) = mpsc::channel(1);
        let m = Metrics::new();
        let ing = IngestTx::new(tx, "test", m.clone(), Duration::from_millis(20));
        let audio = || CallEvent::Audio {
            call_id: "c".into(),
            speaker: crate::audio::Speaker::Customer,
            sample_rate: 8000,
            samples: vec![0.0; 4],
        };
        ing.send_audio(audio()).await.unwrap();
        ing.send_audio(audio()).await.unwrap(); // channel full: dropped after 20 ms
        assert_eq!(m.audio_dropped.with(&["test", "router_full"]).get(), 1);
        assert_eq!(m.audio_frames.with(&["test"]).get(), 2);
        rx.close();
        assert!(rx.recv().await.is_some());
        assert_eq!(ing.send_audio(audio()).await, Err(RouterGone));
    }
}
