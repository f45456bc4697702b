//! WebSocket media ingest, as axum routes merged into the HTTP server:
//!
//! * `GET /media/twilio` — Twilio Media Streams: JSON text frames `connected`, `start`
//!   (`start.callSid`, `start.streamSid`, `start.tracks`, `start.mediaFormat` =
//!   `{encoding:"audio/x-mulaw", sampleRate:8000, channels:1}`), `media` (`media.track`
//!   inbound|outbound, `media.chunk`, `media.timestamp`, `media.payload` = base64 μ-law),
//!   `mark`, `dtmf`, `stop`. `inbound` = customer, `outbound` = agent;
//!   `call_id` = `callSid` (else `streamSid`). Chunks are ordered per track through a
//!   [`ReorderBuffer`] (window `reorder_window` chunks, 20 ms each): duplicates and late
//!   chunks are dropped and counted; chunks lost for good are filled with silence of the
//!   μ-law's 160 samples per missing 20 ms chunk (at most `max_gap_fill_chunks` per hole) so
//!   both tracks stay aligned; a chunk number more than `max_chunk_jump` past the highest
//!   seen closes the socket (`chunk_jump`).
//! * `GET /media/l16` — mod_audio_fork style: first a JSON text frame
//!   `{call_id, sample_rate, channels}` (rate 8000..=48000, channels 1|2), then binary frames
//!   of interleaved s16le; channel 0 = customer, 1 = agent. Later text frames are ignored.
//!
//! Bad data (bad JSON, bad base64, unsupported format, media before `start`, a binary frame
//! whose length is not whole sample frames) closes only that socket with a logged reason;
//! speakers already started get `End{reason:"error: …"}`. A socket that sends no
//! audio for `read_timeout_s` (pings, marks and DTMF do not count) ends with `timeout`; one that closes without `stop` with `disconnected`.
//!
//! Security: a stream's legs belong to its socket ([`super::legs`]): a second socket naming
//! a call whose speakers are live is refused (`leg_taken`) before it sends anything, and so is
//! one naming a call opened over another source (`other_source`: a Twilio stream cannot take
//! a leg of an AudioSocket or L16 call, nor an L16 stream one of a Twilio call). Each
//! track runs under a real-time pacing guard ([`super::ingest::LegPacer`]); WebSocket frame
//! and message sizes are limited by `max_message_bytes` before the payload is buffered.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::ingest::{reason_class, s16le_to_f32, validate_call_id, IngestTx, LegGuard, LegPacer};
use super::legs::LegClaim;
use super::reorder::{Pushed, Released, ReorderBuffer};
use super::CallEvent;
use crate::audio::Speaker;
use crate::metrics::Metrics;

/// WebSocket ingest settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MediaStreamConfig {
    /// A socket that sends no audio for this many seconds ends with `timeout` (pings, marks
    /// and DTMF do not count). Default 10.
    pub read_timeout_s: f64,
    /// Twilio: chunks that may wait for a missing one, per track. Default 5 (100 ms).
    pub reorder_window: usize,
    /// Twilio: most chunks of silence (160 samples each) inserted for one hole. Default 50
    /// (1 s).
    pub max_gap_fill_chunks: u64,
    /// Twilio: a chunk number more than this past the highest seen on its track closes the
    /// socket (`chunk_jump`). Default 500 (10 s).
    pub max_chunk_jump: u64,
    /// Largest WebSocket message accepted, bytes. Default 1 MiB.
    pub max_message_bytes: usize,
    /// How long an audio frame may wait for room in the router channel, seconds. Default 1.
    pub audio_send_timeout_s: f64,
    /// A file holding the Twilio account's auth token; when set, `/media/twilio` requires a
    /// valid `X-Twilio-Signature` (base64 HMAC-SHA1 of the stream URL with the token) and
    /// refuses others with 403. Default none (no check).
    pub twilio_auth_token_file: Option<std::path::PathBuf>,
    /// The URL Twilio connects to, as in the `<Stream url=…>` (e.g.
    /// `wss://box.example.com/media/twilio`), which is what Twilio signs; the query string of
    /// the request is appended. Default empty: `wss://{Host}{path}` of the request.
    pub twilio_url: String,
    /// A file of SHA-256 digests (as `security.http_tokens_file`) of tokens for `/media/l16`;
    /// when set, a stream must present one (`Authorization: Bearer TOKEN`, or `?token=TOKEN`
    /// for senders that cannot set headers, e.g. mod_audio_fork), else 403. Default none.
    pub l16_tokens_file: Option<std::path::PathBuf>,
    /// Origins (`scheme://host[:port]`) a browser may open a media stream from; a request
    /// with another `Origin` header gets 403 (telephony senders send none). Default empty:
    /// any request with an `Origin` header is refused, so no web page can open one.
    pub allowed_origins: Vec<String>,
}

impl Default for MediaStreamConfig {
    fn default() -> Self {
        Self {
            read_timeout_s: 10.0,
            reorder_window: 5,
            max_gap_fill_chunks: 50,
            max_chunk_jump: 500,
            max_message_bytes: 1 << 20,
            audio_send_timeout_s: 1.0,
            twilio_auth_token_file: None,
            twilio_url: String::new(),
            l16_tokens_file: None,
            allowed_origins: Vec::new(),
        }
    }
}

impl MediaStreamConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.read_timeout_s > 0.0 && self.read_timeout_s.is_finite()) {
            return Err("media_stream.read_timeout_s must be > 0".into());
        }
        if !(self.audio_send_timeout_s >= 0.0 && self.audio_send_timeout_s.is_finite()) {
            return Err("media_stream.audio_send_timeout_s must be >= 0".into());
        }
        if self.max_chunk_jump == 0 {
            return Err("media_stream.max_chunk_jump must be at least 1".into());
        }
        if !(1024..=16 << 20).contains(&self.max_message_bytes) {
            return Err("media_stream.max_message_bytes must be 1024..=16777216".into());
        }
        // Buffers are sized by these: a per-call allocation must stay small.
        if self.reorder_window > 1000 {
            return Err("media_stream.reorder_window must be at most 1000 chunks".into());
        }
        if self.max_gap_fill_chunks > 3000 {
            return Err("media_stream.max_gap_fill_chunks must be at most 3000 (60 s)".into());
        }
        Ok(())
    }
}

/// Who may open a media stream (see the `MediaStreamConfig` fields).
#[derive(Debug, Clone, Default)]
pub struct MediaAuth {
    twilio_token: Option<Arc<String>>,
    twilio_url: String,
    l16_digests: Arc<Vec<[u8; 32]>>,
    origins: Arc<Vec<String>>,
}

impl MediaAuth {
    /// Reads the secret files named in `c`; the error names the key and the file.
    pub fn from_config(c: &MediaStreamConfig) -> Result<Self, String> {
        let twilio_token = match &c.twilio_auth_token_file {
            Some(p) => {
                let t = std::fs::read_to_string(p).map_err(|e| {
                    format!("media_stream.twilio_auth_token_file {}: {e}", p.display())
                })?;
                let t = t.trim().to_string();
                if t.is_empty() {
                    return Err(format!(
                        "media_stream.twilio_auth_token_file {}: empty",
                        p.display()
                    ));
                }
                Some(Arc::new(t))
            }
            None => None,
        };
        let l16_digests = match &c.l16_tokens_file {
            Some(p) => crate::security::read_digest_file("media_stream.l16_tokens_file", p)?,
            None => Vec::new(),
        };
        Ok(Self {
            twilio_token,
            twilio_url: c.twilio_url.trim().to_string(),
            l16_digests: Arc::new(l16_digests),
            origins: Arc::new(
                c.allowed_origins
                    .iter()
                    .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
                    .collect(),
            ),
        })
    }

    /// Whether both streams need credentials (for the exposure warning).
    pub fn authenticated(&self) -> bool {
        self.twilio_token.is_some() && !self.l16_digests.is_empty()
    }

    fn origin_ok(&self, headers: &HeaderMap) -> bool {
        match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
            None => true,
            Some(o) => {
                let o = o.trim().trim_end_matches('/').to_ascii_lowercase();
                self.origins.contains(&o)
            }
        }
    }

    fn twilio_ok(&self, headers: &HeaderMap, uri: &axum::http::Uri) -> bool {
        let Some(token) = &self.twilio_token else {
            return true;
        };
        let Some(sig) = headers
            .get("x-twilio-signature")
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(sig.trim()) else {
            return false;
        };
        let path_q = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
        let url = if self.twilio_url.is_empty() {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            format!("wss://{host}{path_q}")
        } else {
            match uri.query() {
                Some(q) => format!("{}?{q}", self.twilio_url),
                None => self.twilio_url.clone(),
            }
        };
        twilio_signature_ok(token, &url, &sig)
    }

    fn l16_ok(&self, headers: &HeaderMap, uri: &axum::http::Uri) -> bool {
        if self.l16_digests.is_empty() {
            return true;
        }
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let query = uri
            .query()
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|kv| kv.strip_prefix("token="));
        bearer
            .or(query)
            .is_some_and(|t| crate::security::digest_listed(&self.l16_digests, t))
    }
}

/// Twilio's request signature for a WebSocket: HMAC-SHA1 over the URL (no POST parameters),
/// keyed with the auth token; compared in constant time.
pub fn twilio_signature_ok(token: &str, url: &str, signature: &[u8]) -> bool {
    use hmac::Mac;
    let Ok(mut mac) = hmac::Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()) else {
        return false;
    };
    mac.update(url.as_bytes());
    mac.verify_slice(signature).is_ok()
}

/// `X-Twilio-Signature` for `url` (what Twilio sends; for tests and tools).
pub fn twilio_signature(token: &str, url: &str) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(url.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[derive(Clone)]
struct MediaState {
    auth: MediaAuth,
    config: Arc<MediaStreamConfig>,
    twilio: IngestTx,
    l16: IngestTx,
    shutdown: CancellationToken,
}

/// The `/media/twilio` and `/media/l16` routes, ready to merge into the HTTP router.
/// Live sockets end their legs with `shutdown` when `shutdown` is cancelled.
pub fn router(
    config: MediaStreamConfig,
    tx: mpsc::Sender<CallEvent>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Router {
    router_with(config, tx, metrics, LegGuard::default(), shutdown)
}

/// [`router`] sharing leg ownership and pacing (`guard`) with the service's other sources.
pub fn router_with(
    config: MediaStreamConfig,
    tx: mpsc::Sender<CallEvent>,
    metrics: Arc<Metrics>,
    guard: LegGuard,
    shutdown: CancellationToken,
) -> Router {
    router_with_auth(config, MediaAuth::default(), tx, metrics, guard, shutdown)
}

/// [`router_with`] checking who connects (`auth`, from [`MediaAuth::from_config`]).
pub fn router_with_auth(
    config: MediaStreamConfig,
    auth: MediaAuth,
    tx: mpsc::Sender<CallEvent>,
    metrics: Arc<Metrics>,
    guard: LegGuard,
    shutdown: CancellationToken,
) -> Router {
    let timeout = Duration::from_secs_f64(config.audio_send_timeout_s.max(0.0));
    let state = MediaState {
        auth,
        twilio: IngestTx::new(tx.clone(), "twilio", metrics.clone(), timeout)
            .with_guard(guard.clone()),
        l16: IngestTx::new(tx, "l16", metrics, timeout).with_guard(guard),
        config: Arc::new(config),
        shutdown,
    };
    Router::new()
        .route("/media/twilio", get(twilio_upgrade))
        .route("/media/l16", get(l16_upgrade))
        .with_state(state)
}

/// 403 with a logged, counted reason (`calltone_bad_frames_total{reason}`).
fn refuse(ingest: &IngestTx, source: &str, reason: &'static str) -> Response {
    tracing::warn!(source, reason, "media stream refused before upgrade");
    ingest.bad_frame(reason);
    (axum::http::StatusCode::FORBIDDEN, format!("{reason}\n")).into_response()
}

async fn twilio_upgrade(
    State(st): State<MediaState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    ws: WebSocketUpgrade,
) -> Response {
    if !st.auth.origin_ok(&headers) {
        return refuse(&st.twilio, "twilio", "bad_origin");
    }
    if !st.auth.twilio_ok(&headers, &uri) {
        return refuse(&st.twilio, "twilio", "bad_signature");
    }
    limit(ws, &st.config).on_upgrade(move |socket| async move {
        let mut session = TwilioSession::new(&st);
        session.run(socket).await;
    })
}

async fn l16_upgrade(
    State(st): State<MediaState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    ws: WebSocketUpgrade,
) -> Response {
    if !st.auth.origin_ok(&headers) {
        return refuse(&st.l16, "l16", "bad_origin");
    }
    if !st.auth.l16_ok(&headers, &uri) {
        return refuse(&st.l16, "l16", "unauthorized");
    }
    limit(ws, &st.config).on_upgrade(move |socket| l16_session(socket, st))
}

/// Frame and message limits: tungstenite checks a frame's announced length against
/// `max_frame_size` from its header, before reading the payload, and the sum of a fragmented
/// message's frames against `max_message_size` as they arrive.
fn limit(ws: WebSocketUpgrade, config: &MediaStreamConfig) -> WebSocketUpgrade {
    ws.max_message_size(config.max_message_bytes)
        .max_frame_size(config.max_message_bytes)
        .write_buffer_size(0)
        .max_write_buffer_size(64 * 1024)
}

/// Samples of one 20 ms μ-law chunk at 8 kHz: what one missing Twilio chunk is filled with.
const TWILIO_CHUNK_SAMPLES: usize = 160;

/// G.711 μ-law to linear, scaled to [-1, 1).
fn ulaw_to_f32(u: u8) -> f32 {
    crate::audio::g711::ulaw_to_linear(u) as f32 / 32768.0
}

/// What the next step of a session is.
enum Step {
    Continue,
    /// End every started speaker with this reason and close.
    End(String),
    /// Close without sending anything more (router gone).
    Abort,
    /// The leg table refused the call's legs (`leg_taken`, `other_source`): close with a
    /// policy-violation frame with this reason, send nothing to the router.
    Refused(&'static str),
}

/// Receives the next message before `deadline`, honouring shutdown. Callers move the
/// deadline only when audio arrives: pings, marks and DTMF do not keep a leg open.
async fn next_message(
    socket: &mut WebSocket,
    deadline: tokio::time::Instant,
    shutdown: &CancellationToken,
) -> Result<Message, String> {
    tokio::select! {
        _ = shutdown.cancelled() => Err("shutdown".into()),
        r = tokio::time::timeout_at(deadline, socket.recv()) => match r {
            Err(_) => Err("timeout".into()),
            Ok(None) => Err("disconnected".into()),
            Ok(Some(Err(e))) => {
                tracing::debug!(error = %e, "websocket receive failed");
                Err("disconnected".into())
            }
            Ok(Some(Ok(Message::Close(_)))) => Err("disconnected".into()),
            Ok(Some(Ok(m))) => Ok(m),
        }
    }
}

/// Sends End for each speaker, counts the close and closes the socket.
async fn finish(
    socket: &mut WebSocket,
    ingest: &IngestTx,
    call_id: Option<&str>,
    speakers: &[Speaker],
    reason: String,
) {
    ingest.closed(reason_class(&reason));
    if let Some(call_id) = call_id {
        for &speaker in speakers {
            let _ = ingest
                .send_control(CallEvent::End {
                    call_id: call_id.to_string(),
                    speaker,
                    reason: reason.clone(),
                })
                .await;
        }
    }
    let close = if reason.starts_with("error") {
        Some(CloseFrame {
            code: 1003, // unsupported data
            reason: reason.chars().take(120).collect::<String>().into(),
        })
    } else {
        None
    };
    let _ = socket.send(Message::Close(close)).await;
}

// ---------------------------------------------------------------- Twilio

#[derive(Debug, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
enum TwilioMsg {
    Connected {},
    Start {
        start: TwilioStart,
        #[serde(rename = "streamSid")]
        stream_sid: Option<String>,
    },
    Media {
        media: TwilioMedia,
    },
    Mark {},
    Dtmf {},
    Stop {},
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct TwilioStart {
    #[serde(rename = "callSid")]
    call_sid: Option<String>,
    #[serde(rename = "streamSid")]
    stream_sid: Option<String>,
    tracks: Option<Vec<String>>,
    #[serde(rename = "mediaFormat")]
    media_format: Option<TwilioFormat>,
    /// `<Parameter>`s of the `<Stream>`; `agent` names the agent.
    #[serde(rename = "customParameters", default)]
    custom_parameters: Option<std::collections::BTreeMap<String, serde_json::Value>>,
}

#[derive(Debug, Deserialize)]
struct TwilioFormat {
    encoding: String,
    #[serde(rename = "sampleRate")]
    sample_rate: u32,
    channels: u32,
}

#[derive(Debug, Deserialize)]
struct TwilioMedia {
    track: Option<String>,
    chunk: serde_json::Value,
    payload: String,
}

fn twilio_track(name: &str) -> Option<Speaker> {
    match name {
        "inbound" | "inbound_track" => Some(Speaker::Customer),
        "outbound" | "outbound_track" => Some(Speaker::Agent),
        _ => None,
    }
}

struct TwilioTrack {
    speaker: Speaker,
    reorder: ReorderBuffer,
    /// Highest chunk number seen, for the jump cap.
    highest: Option<u64>,
    pacer: LegPacer,
}

struct TwilioSession<'a> {
    st: &'a MediaState,
    call_id: Option<String>,
    tracks: Vec<TwilioTrack>,
    released: Vec<Released>,
    /// This socket's ownership of its call's legs; dropped after the legs' `End`s are sent.
    claim: Option<LegClaim>,
    /// `media` messages received; only they move the read deadline.
    media_messages: u64,
}

impl<'a> TwilioSession<'a> {
    fn new(st: &'a MediaState) -> Self {
        Self {
            st,
            call_id: None,
            tracks: Vec::new(),
            released: Vec::new(),
            claim: None,
            media_messages: 0,
        }
    }

    fn speakers(&self) -> Vec<Speaker> {
        self.tracks.iter().map(|t| t.speaker).collect()
    }

    async fn run(&mut self, mut socket: WebSocket) {
        let timeout = Duration::from_secs_f64(self.st.config.read_timeout_s);
        let mut deadline = tokio::time::Instant::now() + timeout;
        let reason = loop {
            let msg = match next_message(&mut socket, deadline, &self.st.shutdown).await {
                Ok(m) => m,
                Err(reason) => break reason,
            };
            let step = match msg {
                Message::Text(text) => {
                    let before = self.media_messages;
                    let step = self.on_text(text.as_str()).await;
                    if self.media_messages != before {
                        deadline = tokio::time::Instant::now() + timeout;
                    }
                    step
                }
                Message::Binary(_) => self.bad("binary_frame", "unexpected binary frame".into()),
                _ => Step::Continue,
            };
            match step {
                Step::Continue => {}
                Step::End(reason) => break reason,
                Step::Abort => {
                    self.st.twilio.closed("router_gone");
                    return;
                }
                Step::Refused(reason) => {
                    let _ = socket
                        .send(Message::Close(Some(CloseFrame {
                            code: 1008, // policy violation
                            reason: reason.into(),
                        })))
                        .await;
                    return;
                }
            }
        };
        if reason == "timeout" {
            tracing::warn!(call_id = ?self.call_id, "twilio stream silent; closing");
        }
        if reason != "hangup" && self.flush_all().await.is_err() {
            self.st.twilio.closed("router_gone");
            return;
        }
        let speakers = self.speakers();
        finish(
            &mut socket,
            &self.st.twilio,
            self.call_id.as_deref(),
            &speakers,
            reason,
        )
        .await;
        self.claim = None;
    }

    fn bad(&self, class: &str, reason: String) -> Step {
        tracing::warn!(call_id = ?self.call_id, %reason, "twilio stream: bad data; closing socket");
        self.st.twilio.bad_frame(class);
        Step::End(format!("error: {reason}"))
    }

    async fn on_text(&mut self, text: &str) -> Step {
        let msg: TwilioMsg = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(e) => return self.bad("bad_json", format!("bad JSON: {e}")),
        };
        match msg {
            TwilioMsg::Connected {}
            | TwilioMsg::Mark {}
            | TwilioMsg::Dtmf {}
            | TwilioMsg::Other => Step::Continue,
            TwilioMsg::Start { start, stream_sid } => self.on_start(start, stream_sid).await,
            TwilioMsg::Media { media } => {
                self.media_messages += 1;
                self.on_media(media).await
            }
            TwilioMsg::Stop {} => {
                if self.flush_all().await.is_err() {
                    return Step::Abort;
                }
                Step::End("hangup".into())
            }
        }
    }

    async fn on_start(&mut self, start: TwilioStart, stream_sid: Option<String>) -> Step {
        if self.call_id.is_some() {
            return self.bad("duplicate_start", "second start message".into());
        }
        if let Some(f) = &start.media_format {
            if f.encoding != "audio/x-mulaw" || f.sample_rate != 8000 || f.channels != 1 {
                return self.bad(
                    "bad_format",
                    format!(
                        "unsupported media format {} {} Hz {} ch; expected audio/x-mulaw 8000 Hz 1 ch",
                        f.encoding, f.sample_rate, f.channels
                    ),
                );
            }
        }
        let agent = start
            .custom_parameters
            .as_ref()
            .and_then(|p| p.get("agent"))
            .and_then(|v| v.as_str())
            .and_then(|a| crate::sources::ingest::agent_id(Some(a)));
        let Some(call_id) = start.call_sid.or(start.stream_sid).or(stream_sid) else {
            return self.bad(
                "no_call_id",
                "start has neither callSid nor streamSid".into(),
            );
        };
        if let Err(e) = validate_call_id(&call_id) {
            return self.bad("bad_call_id", e);
        }
        let names = start.tracks.unwrap_or_else(|| vec!["inbound".into()]);
        let mut speakers = Vec::new();
        for name in &names {
            match twilio_track(name) {
                Some(s) if !speakers.contains(&s) => speakers.push(s),
                Some(_) => {}
                None => return self.bad("bad_track", format!("unknown track {name:?}")),
            }
        }
        if speakers.is_empty() {
            return self.bad("bad_track", "start lists no tracks".into());
        }
        speakers.sort();
        let claim = match self
            .st
            .twilio
            .legs()
            .claim(&call_id, self.st.twilio.source(), &speakers)
        {
            Ok(c) => c,
            Err(refusal) => {
                self.st.twilio.leg_refused(&call_id, &"websocket", refusal);
                return Step::Refused(refusal.reason());
            }
        };
        self.claim = Some(claim);
        self.tracks = speakers
            .iter()
            .map(|&speaker| TwilioTrack {
                speaker,
                reorder: ReorderBuffer::new(self.st.config.reorder_window),
                highest: None,
                pacer: self.st.twilio.pacer(),
            })
            .collect();
        tracing::info!(call_id = %call_id, speakers = ?speakers, "twilio stream started");
        self.call_id = Some(call_id.clone());
        let ev = CallEvent::Start {
            call_id: call_id.clone(),
            source: "twilio",
            speakers,
        };
        if self.st.twilio.send_control(ev).await.is_err() {
            return Step::Abort;
        }
        if let Some(agent) = agent {
            let ev = CallEvent::Agent { call_id, agent };
            if self.st.twilio.send_control(ev).await.is_err() {
                return Step::Abort;
            }
        }
        Step::Continue
    }

    async fn on_media(&mut self, media: TwilioMedia) -> Step {
        if self.call_id.is_none() {
            return self.bad("media_before_start", "media before start".into());
        }
        let track = media.track.as_deref().unwrap_or("inbound");
        let Some(speaker) = twilio_track(track) else {
            return self.bad("bad_track", format!("unknown track {track:?}"));
        };
        let Some(ti) = self.tracks.iter().position(|t| t.speaker == speaker) else {
            return self.bad(
                "bad_track",
                format!("media for track {track:?} not announced in start"),
            );
        };
        let chunk = match &media.chunk {
            serde_json::Value::String(s) => s.parse::<u64>().ok(),
            serde_json::Value::Number(n) => n.as_u64(),
            _ => None,
        };
        let Some(chunk) = chunk else {
            return self.bad(
                "bad_chunk",
                format!("chunk {} is not a non-negative integer", media.chunk),
            );
        };
        let track = &mut self.tracks[ti];
        if let Some(h) = track.highest {
            if chunk > h.saturating_add(self.st.config.max_chunk_jump) {
                return self.bad(
                    "chunk_jump",
                    format!(
                        "chunk {chunk} jumps more than {} past {h}",
                        self.st.config.max_chunk_jump
                    ),
                );
            }
        }
        track.highest = Some(track.highest.map_or(chunk, |h| h.max(chunk)));
        let bytes = match base64::engine::general_purpose::STANDARD.decode(media.payload.as_bytes())
        {
            Ok(b) => b,
            Err(e) => return self.bad("bad_base64", format!("bad base64 payload: {e}")),
        };
        let mut released = std::mem::take(&mut self.released);
        released.clear();
        let pushed = self.tracks[ti].reorder.push(chunk, bytes, &mut released);
        match pushed {
            Pushed::Accepted => {}
            Pushed::Duplicate => self.reorder_drop("duplicate"),
            Pushed::Late => self.reorder_drop("late"),
        }
        let r = self.emit(ti, &mut released).await;
        self.released = released;
        match r {
            Ok(()) => Step::Continue,
            Err(()) => Step::Abort,
        }
    }

    fn reorder_drop(&self, reason: &str) {
        self.st
            .twilio
            .metrics()
            .reorder_dropped
            .with(&["twilio", reason])
            .inc();
    }

    /// Sends released chunks of track `ti` as audio; Err when the router is gone.
    async fn emit(&mut self, ti: usize, released: &mut Vec<Released>) -> Result<(), ()> {
        let call_id = self.call_id.clone().unwrap_or_default();
        for r in released.drain(..) {
            let samples: Vec<f32> = match r {
                Released::Data(bytes) => {
                    if bytes.is_empty() || !self.tracks[ti].pacer.admit(bytes.len(), 8000) {
                        continue;
                    }
                    bytes.into_iter().map(ulaw_to_f32).collect()
                }
                Released::Gap(n) => {
                    let fill =
                        n.min(self.st.config.max_gap_fill_chunks) as usize * TWILIO_CHUNK_SAMPLES;
                    self.reorder_drop("gap_filled");
                    tracing::debug!(call_id = %call_id, missing = n, "twilio: chunks lost; filling with silence");
                    if !self.tracks[ti].pacer.admit(fill, 8000) {
                        continue;
                    }
                    vec![0.0; fill]
                }
            };
            if samples.is_empty() {
                continue;
            }
            let ev = CallEvent::Audio {
                call_id: call_id.clone(),
                speaker: self.tracks[ti].speaker,
                sample_rate: 8000,
                samples,
            };
            self.st.twilio.send_audio(ev).await.map_err(|_| ())?;
        }
        Ok(())
    }

    async fn flush_all(&mut self) -> Result<(), ()> {
        let mut released = std::mem::take(&mut self.released);
        for ti in 0..self.tracks.len() {
            released.clear();
            self.tracks[ti].reorder.flush(&mut released);
            self.emit(ti, &mut released).await?;
        }
        self.released = released;
        Ok(())
    }
}

// ---------------------------------------------------------------- L16

#[derive(Debug, Deserialize)]
struct L16Meta {
    call_id: String,
    sample_rate: u32,
    channels: u32,
    /// The agent handling the call (optional).
    #[serde(default)]
    agent: Option<String>,
}

async fn l16_session(mut socket: WebSocket, st: MediaState) {
    let ingest = &st.l16;
    let timeout = Duration::from_secs_f64(st.config.read_timeout_s);
    let bad = |class: &str, call_id: Option<&str>, reason: String| {
        tracing::warn!(call_id = ?call_id, %reason, "l16 stream: bad data; closing socket");
        ingest.bad_frame(class);
        format!("error: {reason}")
    };

    // Metadata first.
    let mut deadline = tokio::time::Instant::now() + timeout;
    let first = match next_message(&mut socket, deadline, &st.shutdown).await {
        Ok(m) => m,
        Err(reason) => return finish(&mut socket, ingest, None, &[], reason).await,
    };
    let meta = match first {
        Message::Text(t) => match serde_json::from_str::<L16Meta>(t.as_str()) {
            Ok(m) => m,
            Err(e) => {
                let r = bad("bad_json", None, format!("bad metadata JSON: {e}"));
                return finish(&mut socket, ingest, None, &[], r).await;
            }
        },
        _ => {
            let r = bad(
                "no_metadata",
                None,
                "first message must be JSON metadata".into(),
            );
            return finish(&mut socket, ingest, None, &[], r).await;
        }
    };
    let problem = validate_call_id(&meta.call_id).err().or_else(|| {
        if !(8000..=48000).contains(&meta.sample_rate) {
            Some(format!(
                "sample_rate {} outside 8000..=48000",
                meta.sample_rate
            ))
        } else if !(1..=2).contains(&meta.channels) {
            Some(format!("channels {}; expected 1 or 2", meta.channels))
        } else {
            None
        }
    });
    if let Some(p) = problem {
        let r = bad("bad_metadata", Some(&meta.call_id), p);
        return finish(&mut socket, ingest, None, &[], r).await;
    }
    let call_id = meta.call_id;
    let channels = meta.channels as usize;
    let speakers: Vec<Speaker> = [Speaker::Customer, Speaker::Agent][..channels].to_vec();
    let claim = match ingest.legs().claim(&call_id, ingest.source(), &speakers) {
        Ok(c) => c,
        Err(refusal) => {
            ingest.leg_refused(&call_id, &"websocket", refusal);
            let _ = socket
                .send(Message::Close(Some(CloseFrame {
                    code: 1008,
                    reason: refusal.reason().into(),
                })))
                .await;
            return;
        }
    };
    tracing::info!(call_id = %call_id, rate = meta.sample_rate, channels, "l16 stream started");
    let start = CallEvent::Start {
        call_id: call_id.clone(),
        source: "l16",
        speakers: speakers.clone(),
    };
    if ingest.send_control(start).await.is_err() {
        ingest.closed("router_gone");
        return;
    }
    if let Some(agent) = crate::sources::ingest::agent_id(meta.agent.as_deref()) {
        let ev = CallEvent::Agent {
            call_id: call_id.clone(),
            agent,
        };
        if ingest.send_control(ev).await.is_err() {
            ingest.closed("router_gone");
            return;
        }
    }

    let frame_bytes = 2 * channels;
    let mut pacer = ingest.pacer();
    let reason = loop {
        let msg = match next_message(&mut socket, deadline, &st.shutdown).await {
            Ok(m) => m,
            Err(reason) => break reason,
        };
        let data = match msg {
            Message::Binary(b) if !b.is_empty() => b,
            _ => continue,
        };
        deadline = tokio::time::Instant::now() + timeout;
        if data.len() % frame_bytes != 0 {
            break bad(
                "odd_length",
                Some(&call_id),
                format!(
                    "binary frame of {} bytes is not whole {channels}-channel s16le frames",
                    data.len()
                ),
            );
        }
        if data.is_empty() || !pacer.admit(data.len() / frame_bytes, meta.sample_rate) {
            continue;
        }
        let samples = s16le_to_f32(&data);
        let mut gone = false;
        for (ch, &speaker) in speakers.iter().enumerate() {
            let mono: Vec<f32> = samples.iter().skip(ch).step_by(channels).copied().collect();
            let ev = CallEvent::Audio {
                call_id: call_id.clone(),
                speaker,
                sample_rate: meta.sample_rate,
                samples: mono,
            };
            if ingest.send_audio(ev).await.is_err() {
                gone = true;
                break;
            }
        }
        if gone {
            ingest.closed("router_gone");
            return;
        }
    };
    if reason == "timeout" {
        tracing::warn!(call_id = %call_id, "l16 stream silent; closing");
    }
    finish(&mut socket, ingest, Some(&call_id), &speakers, reason).await;
    drop(claim);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twilio_signature_matches_twilios_documented_example() {
        // Twilio's "Validating requests" example: auth token 12345, the URL with the POST
        // parameters appended in key order (a WebSocket upgrade has none: the URL alone).
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2CallSidCA1234567890ABCDECaller+12349013030Digits1234From+12349013030To+18005551212";
        assert_eq!(
            twilio_signature("12345", url),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
        let sig = base64::engine::general_purpose::STANDARD
            .decode("0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
            .unwrap();
        assert!(twilio_signature_ok("12345", url, &sig));
        assert!(!twilio_signature_ok("12346", url, &sig));
        assert!(!twilio_signature_ok(
            "12345",
            &url.replace("foo=1", "foo=2"),
            &sig
        ));
    }

    #[test]
    fn ulaw_reference_points() {
        assert_eq!(ulaw_to_f32(0xff), 0.0);
        assert_eq!(ulaw_to_f32(0x7f), 0.0);
        assert_eq!(ulaw_to_f32(0x00), -32124.0 / 32768.0);
        assert_eq!(ulaw_to_f32(0x80), 32124.0 / 32768.0);
        // Monotonic over the positive half.
        let pos: Vec<f32> = (0x80..=0xffu8).rev().map(ulaw_to_f32).collect();
        assert!(pos.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn twilio_messages_parse() {
        let start = r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC1","streamSid":"MZ1","callSid":"CA1","tracks":["inbound","outbound"],"customParameters":{},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},"streamSid":"MZ1"}"#;
        match serde_json::from_str::<TwilioMsg>(start).unwrap() {
            TwilioMsg::Start { start, .. } => {
                assert_eq!(start.call_sid.as_deref(), Some("CA1"));
                assert_eq!(start.tracks.unwrap().len(), 2);
            }
            other => panic!("{other:?}"),
        }
        let media = r#"{"event":"media","sequenceNumber":"3","media":{"track":"outbound","chunk":"2","timestamp":"20","payload":"/w=="},"streamSid":"MZ1"}"#;
        assert!(matches!(
            serde_json::from_str::<TwilioMsg>(media).unwrap(),
            TwilioMsg::Media { .. }
        ));
        let stop = r#"{"event":"stop","sequenceNumber":"5","stop":{"accountSid":"AC1","callSid":"CA1"},"streamSid":"MZ1"}"#;
        assert!(matches!(
            serde_json::from_str::<TwilioMsg>(stop).unwrap(),
            TwilioMsg::Stop {}
        ));
        let connected = r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#;
        assert!(matches!(
            serde_json::from_str::<TwilioMsg>(connected).unwrap(),
            TwilioMsg::Connected {}
        ));
        let other = r#"{"event":"somethingnew","x":1}"#;
        assert!(matches!(
            serde_json::from_str::<TwilioMsg>(other).unwrap(),
            TwilioMsg::Other
        ));
    }

    // Property: Twilio messages damaged anywhere (a flipped, dropped or inserted byte) parse
    // or fail cleanly; a parsed media message's payload decodes or is refused, and a chunk
    // number parses or is refused, never panicking.
    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]
        #[test]
        fn damaged_twilio_messages_never_panic(
            which in 0usize..4,
            edits in proptest::collection::vec((0usize..400, proptest::prelude::any::<u8>(), 0u8..3), 1..6),
        ) {
            let valid = [
                r#"{"event":"start","sequenceNumber":"1","start":{"streamSid":"MZ1","callSid":"CA1","tracks":["inbound","outbound"],"customParameters":{"agent":"ann"},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},"streamSid":"MZ1"}"#,
                r#"{"event":"media","sequenceNumber":"3","media":{"track":"inbound","chunk":"2","timestamp":"20","payload":"//////////8="},"streamSid":"MZ1"}"#,
                r#"{"event":"stop","sequenceNumber":"9","stop":{"callSid":"CA1"},"streamSid":"MZ1"}"#,
                r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#,
            ];
            let mut b = valid[which].as_bytes().to_vec();
            for (at, byte, op) in edits {
                let at = at % (b.len() + 1);
                match op {
                    0 if at < b.len() => b[at] = byte,
                    1 if at < b.len() => { b.remove(at); }
                    _ => b.insert(at, byte),
                }
            }
            let Ok(text) = std::str::from_utf8(&b) else { return Ok(()); };
            if let Ok(TwilioMsg::Media { media }) = serde_json::from_str::<TwilioMsg>(text) {
                let _ = base64::engine::general_purpose::STANDARD.decode(media.payload.as_bytes());
                let _ = media.chunk.as_str().map(str::parse::<u64>);
                let _ = media.chunk.as_u64();
            }
        }
    }
}
