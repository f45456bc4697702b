//! Asterisk AudioSocket TCP server: each connection is one leg of a call.
//!
//! Wire format (docs.asterisk.org, Channel-Drivers/AudioSocket): a 3-byte header — kind
//! (u8) and payload length (u16 big-endian) — then the payload. Kinds:
//! `0x00` hangup, `0x01` UUID (16 bytes; must come first and names the call), `0x03` DTMF
//! (ignored), `0x10` signed linear 16-bit mono little-endian at 8 kHz, `0x11`–`0x18` the same
//! at 12, 16, 24, 32, 44.1, 48, 96 and 192 kHz, `0xff` error (optional code). calltone takes
//! `0x10`–`0x16` (8–48 kHz, the pipeline's [`SUPPORTED_RATES`]); `0x17`/`0x18` (96/192 kHz)
//! are refused as bad data (`unsupported_rate`): nothing in speech analysis uses audio above
//! 8 kHz, and such a leg would carry 2–4× the samples of a 48 kHz one to read and resample.
//!
//! Invariants:
//! * `call_id` is the UUID in hyphenated lowercase form. Connections with the same UUID are
//!   legs of one call: the first is `first_leg` (customer by default), the second the other
//!   speaker, a third is rejected. Each leg sends its own `Start` (with its one speaker) and
//!   `End`; the router merges them.
//! * Bad data (unknown kind, an audio kind above 48 kHz, odd audio length, oversize frame,
//!   bad UUID, a sample-rate change mid-leg) closes only that connection: one
//!   `tracing::warn!` with the call id and reason, a `bad_frames` count, a
//!   `connections_closed{reason="error"}` count, and `End{reason:"error: …"}` for the leg if
//!   it had started. The call's other leg goes on.
//! * A connection naming a call opened over a media stream (Twilio, L16) is refused before
//!   it sends anything (`other_source`), even when that call's other speaker is free: the
//!   second leg of a call is only ever another AudioSocket connection (see [`super::legs`]).
//! * A leg that sends no audio for `read_timeout_s` (DTMF and repeated UUIDs do not count)
//!   ends with `timeout`; EOF without hangup ends with
//!   `disconnected`; service shutdown ends live legs with `shutdown`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::ingest::{reason_class, s16le_to_f32, IngestTx, LegGuard};
use super::CallEvent;
use crate::audio::{Speaker, SUPPORTED_RATES};
use crate::metrics::Metrics;

pub const KIND_HANGUP: u8 = 0x00;
pub const KIND_UUID: u8 = 0x01;
pub const KIND_DTMF: u8 = 0x03;
pub const KIND_AUDIO_8K: u8 = 0x10;
pub const KIND_ERROR: u8 = 0xff;

const SOURCE: &str = "audiosocket";

/// Sample rate of an audio kind per the protocol, `None` for non-audio kinds. Kinds whose
/// rate is outside [`SUPPORTED_RATES`] (`0x17`, `0x18`) are refused by the server.
pub fn audio_kind_rate(kind: u8) -> Option<u32> {
    Some(match kind {
        0x10 => 8_000,
        0x11 => 12_000,
        0x12 => 16_000,
        0x13 => 24_000,
        0x14 => 32_000,
        0x15 => 44_100,
        0x16 => 48_000,
        0x17 => 96_000,
        0x18 => 192_000,
        _ => return None,
    })
}

/// AudioSocket server settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AudioSocketConfig {
    /// A leg that sends no audio for this many seconds ends with reason `timeout` (DTMF and
    /// UUID frames do not count). Default 10.
    pub read_timeout_s: f64,
    /// Speaker of the first connection of a call; the second gets the other role.
    /// Default `customer`.
    pub first_leg: Speaker,
    /// Largest accepted payload in bytes; bigger frames close the connection. Default 16384
    /// (≈ 40 ms at 192 kHz; Asterisk sends 20 ms frames).
    pub max_payload_bytes: usize,
    /// How long an audio frame may wait for room in the router channel before it is dropped
    /// and counted, in seconds. Default 1.
    pub audio_send_timeout_s: f64,
    /// Source networks allowed to connect (CIDR, e.g. `["10.20.0.0/16"]`); connections from
    /// elsewhere are closed at accept and counted. AudioSocket has no authentication of its
    /// own, so set this whenever the listener is not on loopback. Default empty: anyone
    /// who can reach the (loopback by default) listener.
    pub allow_networks: Vec<String>,
}

impl Default for AudioSocketConfig {
    fn default() -> Self {
        Self {
            read_timeout_s: 10.0,
            first_leg: Speaker::Customer,
            max_payload_bytes: 16_384,
            audio_send_timeout_s: 1.0,
            allow_networks: Vec::new(),
        }
    }
}

impl AudioSocketConfig {
    /// Checks values; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.read_timeout_s > 0.0 && self.read_timeout_s.is_finite()) {
            return Err("audiosocket.read_timeout_s must be > 0".into());
        }
        if !(self.audio_send_timeout_s >= 0.0 && self.audio_send_timeout_s.is_finite()) {
            return Err("audiosocket.audio_send_timeout_s must be >= 0".into());
        }
        if !(2..=65_535).contains(&self.max_payload_bytes) {
            return Err("audiosocket.max_payload_bytes must be in 2..=65535".into());
        }
        for n in &self.allow_networks {
            crate::security::Network::parse(n)
                .map_err(|e| format!("audiosocket.allow_networks: {e}"))?;
        }
        Ok(())
    }

    /// Whether a connection from `ip` may proceed (`allow_networks`).
    pub fn allows(&self, ip: std::net::IpAddr) -> bool {
        crate::security::allowed(&self.allow_networks, ip)
    }
}

fn other(s: Speaker) -> Speaker {
    match s {
        Speaker::Customer => Speaker::Agent,
        Speaker::Agent => Speaker::Customer,
    }
}

/// Accepts AudioSocket connections on `listener` until `shutdown` is cancelled, then waits
/// for live legs to send their `End{shutdown}` and returns.
pub async fn serve_audiosocket(
    listener: TcpListener,
    config: AudioSocketConfig,
    tx: mpsc::Sender<CallEvent>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let limits = Limits {
        max_connections: crate::security::SecurityConfig::default().max_connections,
    };
    serve_audiosocket_with(
        listener,
        config,
        tx,
        metrics,
        LegGuard::default(),
        limits,
        shutdown,
    )
    .await
}

/// Listener-wide limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections at once (`security.max_connections`); more are closed at accept.
    pub max_connections: usize,
}

/// [`serve_audiosocket`] sharing leg ownership and pacing (`guard`) with the other sources
/// of the service, under `limits`.
pub async fn serve_audiosocket_with(
    listener: TcpListener,
    config: AudioSocketConfig,
    tx: mpsc::Sender<CallEvent>,
    metrics: Arc<Metrics>,
    guard: LegGuard,
    limits: Limits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let ingest = IngestTx::new(
        tx,
        SOURCE,
        metrics,
        Duration::from_secs_f64(config.audio_send_timeout_s.max(0.0)),
    )
    .with_guard(guard);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let config = Arc::new(config);
    let tracker = TaskTracker::new();
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "audiosocket listening");
    }
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if !config.allows(peer.ip()) {
                        tracing::warn!(%peer, reason = "source_not_allowed", "audiosocket: connection from outside audiosocket.allow_networks; closing");
                        ingest.closed("not_allowed");
                        continue;
                    }
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, reason = "too_many_connections", max = limits.max_connections, "audiosocket: connection limit reached; closing");
                        ingest.closed("too_many_connections");
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let (config, ingest, shutdown) = (config.clone(), ingest.clone(), shutdown.clone());
                    tracker.spawn(async move {
                        handle_connection(stream, peer, config, ingest, shutdown).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "audiosocket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// One decoded frame header plus payload.
#[derive(Debug)]
struct Frame {
    kind: u8,
    payload: Vec<u8>,
}

#[derive(Debug)]
enum ReadError {
    /// Clean EOF at a frame boundary.
    Eof,
    /// The peer went away mid-frame or the socket failed.
    Io(std::io::Error),
    /// The header announces a payload larger than allowed.
    Oversize(usize),
}

async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max_payload: usize,
) -> Result<Frame, ReadError> {
    let mut header = [0u8; 3];
    // Distinguish EOF before a frame (clean) from EOF inside one (torn).
    let n = r.read(&mut header[..1]).await.map_err(ReadError::Io)?;
    if n == 0 {
        return Err(ReadError::Eof);
    }
    r.read_exact(&mut header[1..])
        .await
        .map_err(ReadError::Io)?;
    let kind = header[0];
    let len = u16::from_be_bytes([header[1], header[2]]) as usize;
    if len > max_payload {
        return Err(ReadError::Oversize(len));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await.map_err(ReadError::Io)?;
    Ok(Frame { kind, payload })
}

/// Formats 16 bytes as a hyphenated lowercase UUID.
fn uuid_string(b: &[u8; 16]) -> String {
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// How a leg ended.
enum LegEnd {
    /// Send `End` with this reason.
    End(String),
    /// The router is gone; nothing more to send.
    RouterGone,
}

async fn handle_connection(
    stream: TcpStream,
    peer: SocketAddr,
    config: Arc<AudioSocketConfig>,
    ingest: IngestTx,
    shutdown: CancellationToken,
) {
    let mut reader = BufReader::with_capacity(8192, stream);
    let read_timeout = Duration::from_secs_f64(config.read_timeout_s);

    // The first frame must name the call.
    let first = tokio::select! {
        _ = shutdown.cancelled() => { ingest.closed("shutdown"); return; }
        r = tokio::time::timeout(read_timeout, read_frame(&mut reader, config.max_payload_bytes)) => r,
    };
    let uuid = match first {
        Ok(Ok(Frame {
            kind: KIND_UUID,
            payload,
        })) => match <[u8; 16]>::try_from(payload.as_slice()) {
            Ok(b) => uuid_string(&b),
            Err(_) => {
                return reject(
                    &ingest,
                    peer,
                    "bad_uuid",
                    &format!("UUID payload is {} bytes; expected 16", payload.len()),
                );
            }
        },
        Ok(Ok(Frame { kind, .. })) => {
            return reject(
                &ingest,
                peer,
                "no_uuid",
                &format!("first frame has kind 0x{kind:02x}; expected UUID (0x01)"),
            );
        }
        Ok(Err(ReadError::Eof)) | Ok(Err(ReadError::Io(_))) => {
            tracing::debug!(%peer, "audiosocket connection closed before UUID");
            ingest.closed("disconnected");
            return;
        }
        Ok(Err(ReadError::Oversize(n))) => {
            return reject(
                &ingest,
                peer,
                "oversize",
                &format!(
                    "frame payload {n} bytes exceeds {}",
                    config.max_payload_bytes
                ),
            );
        }
        Err(_) => {
            tracing::warn!(%peer, "audiosocket: no UUID within read timeout; closing");
            ingest.closed("timeout");
            return;
        }
    };

    let claim = match ingest.legs().claim_first_free(
        &uuid,
        SOURCE,
        &[config.first_leg, other(config.first_leg)],
    ) {
        Ok(c) => c,
        Err(refusal) => {
            // Both legs are owned by other connections (a third leg, or a hijack attempt), or
            // the call was opened over a media stream: its free leg is not AudioSocket's.
            ingest.leg_refused(&uuid, &peer, refusal);
            return;
        }
    };
    let speaker = claim.speakers()[0];
    tracing::info!(call_id = %uuid, %speaker, %peer, "audiosocket leg connected");

    let end = run_leg(
        &mut reader,
        &uuid,
        speaker,
        &config,
        &ingest,
        read_timeout,
        &shutdown,
    )
    .await;
    match end {
        LegEnd::End(reason) => {
            ingest.closed(reason_class(&reason));
            tracing::info!(call_id = %uuid, %speaker, %reason, "audiosocket leg ended");
            let _ = ingest
                .send_control(CallEvent::End {
                    call_id: uuid,
                    speaker,
                    reason,
                })
                .await;
        }
        LegEnd::RouterGone => {
            ingest.closed("router_gone");
            tracing::warn!(call_id = %uuid, %speaker, "audiosocket: call router gone; closing leg");
        }
    }
    // The leg is released only now, after its End is in the router channel, so a new leg
    // for the same call id is routed after it.
    drop(claim);
    // Dropping the reader closes the socket.
}

fn reject(ingest: &IngestTx, peer: SocketAddr, class: &str, reason: &str) {
    tracing::warn!(%peer, %reason, "audiosocket: bad data before call start; closing connection");
    ingest.bad_frame(class);
    ingest.closed("error");
}

async fn run_leg<R: AsyncRead + Unpin>(
    reader: &mut R,
    call_id: &str,
    speaker: Speaker,
    config: &AudioSocketConfig,
    ingest: &IngestTx,
    read_timeout: Duration,
    shutdown: &CancellationToken,
) -> LegEnd {
    let start = CallEvent::Start {
        call_id: call_id.to_string(),
        source: SOURCE,
        speakers: vec![speaker],
    };
    if ingest.send_control(start).await.is_err() {
        return LegEnd::RouterGone;
    }
    let mut rate: Option<u32> = None;
    let mut pacer = ingest.pacer();
    let bad = |class: &str, reason: String| {
        tracing::warn!(call_id, %speaker, %reason, "audiosocket: bad frame; closing leg");
        ingest.bad_frame(class);
        LegEnd::End(format!("error: {reason}"))
    };
    // Only audio moves the deadline: a leg that sends DTMF or repeats its UUID but no audio
    // is as idle as a silent one and must not hold its call and connection open.
    let mut deadline = tokio::time::Instant::now() + read_timeout;
    loop {
        let frame = tokio::select! {
            _ = shutdown.cancelled() => return LegEnd::End("shutdown".into()),
            r = tokio::time::timeout_at(deadline, read_frame(reader, config.max_payload_bytes)) => r,
        };
        let frame = match frame {
            Err(_) => {
                tracing::warn!(call_id, %speaker, timeout_s = config.read_timeout_s, "audiosocket: no audio from the leg; closing");
                return LegEnd::End("timeout".into());
            }
            Ok(Err(ReadError::Eof)) => return LegEnd::End("disconnected".into()),
            Ok(Err(ReadError::Io(e))) => {
                tracing::info!(call_id, %speaker, error = %e, "audiosocket: connection lost");
                return LegEnd::End("disconnected".into());
            }
            Ok(Err(ReadError::Oversize(n))) => {
                return bad(
                    "oversize",
                    format!(
                        "frame payload {n} bytes exceeds {}",
                        config.max_payload_bytes
                    ),
                );
            }
            Ok(Ok(f)) => f,
        };
        match frame.kind {
            KIND_HANGUP => return LegEnd::End("hangup".into()),
            KIND_UUID => {
                let same = <[u8; 16]>::try_from(frame.payload.as_slice())
                    .map(|b| uuid_string(&b) == call_id)
                    .unwrap_or(false);
                if !same {
                    return bad(
                        "uuid_changed",
                        "second UUID frame names another call".into(),
                    );
                }
            }
            KIND_DTMF => {}
            KIND_ERROR => {
                let code = frame
                    .payload
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>();
                let reason = if code.is_empty() {
                    "error: asterisk reported an error".to_string()
                } else {
                    format!("error: asterisk error code 0x{code}")
                };
                tracing::warn!(call_id, %speaker, %reason, "audiosocket: peer reported an error");
                return LegEnd::End(reason);
            }
            kind => {
                let Some(frame_rate) = audio_kind_rate(kind) else {
                    return bad("unknown_kind", format!("unknown frame kind 0x{kind:02x}"));
                };
                if !SUPPORTED_RATES.contains(&frame_rate) {
                    return bad(
                        "unsupported_rate",
                        format!(
                            "audio kind 0x{kind:02x} ({frame_rate} Hz) is not supported; use 0x10-0x16 (8-48 kHz)"
                        ),
                    );
                }
                if frame.payload.len() % 2 != 0 {
                    return bad(
                        "odd_length",
                        format!(
                            "audio payload of {} bytes is not whole 16-bit samples",
                            frame.payload.len()
                        ),
                    );
                }
                match rate {
                    None => rate = Some(frame_rate),
                    Some(r) if r != frame_rate => {
                        return bad(
                            "rate_change",
                            format!("sample rate changed from {r} to {frame_rate} Hz"),
                        );
                    }
                    Some(_) => {}
                }
                if !frame.payload.is_empty() {
                    deadline = tokio::time::Instant::now() + read_timeout;
                }
                if frame.payload.is_empty() || !pacer.admit(frame.payload.len() / 2, frame_rate) {
                    continue;
                }
                let ev = CallEvent::Audio {
                    call_id: call_id.to_string(),
                    speaker,
                    sample_rate: frame_rate,
                    samples: s16le_to_f32(&frame.payload),
                };
                if ingest.send_audio(ev).await.is_err() {
                    return LegEnd::RouterGone;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_formats_hyphenated_lowercase() {
        let b = [
            0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3, 0xa4, 0x56, 0x42, 0x66, 0x14, 0x17,
            0x40, 0x00,
        ];
        assert_eq!(uuid_string(&b), "123e4567-e89b-12d3-a456-426614174000");
    }

    #[test]
    fn audio_kinds_follow_spec() {
        assert_eq!(audio_kind_rate(0x10), Some(8000));
        assert_eq!(audio_kind_rate(0x12), Some(16000));
        assert_eq!(audio_kind_rate(0x15), Some(44100));
        assert_eq!(audio_kind_rate(0x18), Some(192000));
        assert_eq!(audio_kind_rate(0x19), None);
        assert_eq!(audio_kind_rate(0x03), None);
    }

    #[tokio::test]
    async fn reads_frames_and_flags_oversize() {
        let data: &[u8] = &[0x10, 0x00, 0x02, 0x01, 0x00, 0x10, 0xff, 0xff];
        let mut r = data;
        let f = read_frame(&mut r, 100).await.unwrap();
        assert_eq!((f.kind, f.payload), (0x10, vec![1, 0]));
        assert!(matches!(
            read_frame(&mut r, 100).await,
            Err(ReadError::Oversize(65535))
        ));
        let mut empty: &[u8] = &[];
        assert!(matches!(
            read_frame(&mut empty, 100).await,
            Err(ReadError::Eof)
        ));
        let mut torn: &[u8] = &[0x10, 0x00];
        assert!(matches!(
            read_frame(&mut torn, 100).await,
            Err(ReadError::Io(_))
        ));
    }

    // Property: any byte stream a client sends is read as frames whose payloads stay within
    // the limit, without panicking, consuming no more than was sent; a stream of valid
    // frames comes back exactly.
    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]
        #[test]
        fn the_framer_survives_any_bytes(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048),
            max_payload in 0usize..1024,
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let mut r: &[u8] = &bytes;
            let mut consumed = 0usize;
            rt.block_on(async {
                loop {
                    match read_frame(&mut r, max_payload).await {
                        Ok(f) => {
                            assert!(f.payload.len() <= max_payload);
                            consumed += 3 + f.payload.len();
                        }
                        Err(ReadError::Oversize(n)) => {
                            assert!(n > max_payload);
                            break;
                        }
                        Err(ReadError::Eof) | Err(ReadError::Io(_)) => break,
                    }
                }
            });
            proptest::prop_assert!(consumed <= bytes.len());
        }

        #[test]
        fn valid_frames_come_back_exactly(
            frames in proptest::collection::vec(
                (proptest::prelude::any::<u8>(), proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)),
                0..20,
            ),
        ) {
            let mut wire = Vec::new();
            for (kind, payload) in &frames {
                wire.push(*kind);
                wire.extend_from_slice(&(payload.len() as u16).to_be_bytes());
                wire.extend_from_slice(payload);
            }
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let mut r: &[u8] = &wire;
            let got = rt.block_on(async {
                let mut got = Vec::new();
                while let Ok(f) = read_frame(&mut r, 400).await {
                    got.push((f.kind, f.payload));
                }
                got
            });
            proptest::prop_assert_eq!(got, frames);
        }
    }
}
