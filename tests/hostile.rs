//! Hostile clients over real sockets (127.0.0.1 only, every wait bounded): call hijack,
//! a sender faster than real time, the Twilio gap amplifier, oversized WebSocket frames,
//! connection exhaustion and slowloris, AudioSocket source networks — against the real
//! server code in process — and, against the real `calltone serve` binary, the separation
//! of the supervisor and media listeners and a reused call id.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use calltone::audio::Speaker;
use calltone::http::{router as api_router, serve_router, AppState, CallRegistry};
use calltone::listener::GuardedListener;
use calltone::metrics::Metrics;
use calltone::sources::audiosocket::{serve_audiosocket_with, AudioSocketConfig, Limits};
use calltone::sources::ingest::{LegGuard, Pacing};
use calltone::sources::media_stream::{self, MediaStreamConfig};
use calltone::sources::CallEvent;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// Media ingest and AudioSocket sharing one leg table and one router channel, as in serve.
struct Ingest {
    rx: mpsc::Receiver<CallEvent>,
    media: std::net::SocketAddr,
    audiosocket: std::net::SocketAddr,
    metrics: Arc<Metrics>,
    _stop: CancellationToken,
}

async fn ingest(media_cfg: MediaStreamConfig, as_cfg: AudioSocketConfig, pacing: Pacing) -> Ingest {
    let (tx, rx) = mpsc::channel(100_000);
    let metrics = Metrics::new();
    let stop = CancellationToken::new();
    let guard = LegGuard {
        legs: Default::default(),
        pacing,
    };
    let ml = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let media = ml.local_addr().unwrap();
    let app = media_stream::router_with(
        media_cfg,
        tx.clone(),
        metrics.clone(),
        guard.clone(),
        stop.clone(),
    );
    let gl = GuardedListener::new(ml, "media", 64, Duration::from_secs(5), &metrics);
    tokio::spawn(serve_router(gl, app, stop.clone()));
    let al = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let audiosocket = al.local_addr().unwrap();
    tokio::spawn(serve_audiosocket_with(
        al,
        as_cfg,
        tx,
        metrics.clone(),
        guard,
        Limits { max_connections: 2 },
        stop.clone(),
    ));
    Ingest {
        rx,
        media,
        audiosocket,
        metrics,
        _stop: stop,
    }
}

impl Ingest {
    /// Everything that arrives until nothing has for `quiet`.
    async fn drain(&mut self, quiet: Duration) -> Vec<CallEvent> {
        let mut out = vec![];
        while let Ok(Some(ev)) = tokio::time::timeout(quiet, self.rx.recv()).await {
            out.push(ev);
        }
        out
    }
}

async fn ws(addr: std::net::SocketAddr, path: &str) -> Ws {
    let (s, _) = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::connect_async(format!("ws://{addr}{path}")),
    )
    .await
    .expect("ws connect timed out")
    .expect("ws connect");
    s
}

/// Waits for the server's Close (or the end of the stream), bounded; returns its reason.
async fn ws_closed(s: &mut Ws) -> String {
    loop {
        match tokio::time::timeout(WAIT, s.next())
            .await
            .expect("server did not close")
        {
            Some(Ok(WsMessage::Close(f))) => {
                return f.map(|f| f.reason.as_str().to_string()).unwrap_or_default()
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return String::new(),
        }
    }
}

/// Reads until EOF or error, bounded by `within`; panics when the peer keeps it open.
async fn expect_eof(s: &mut TcpStream, within: Duration) {
    let mut buf = [0u8; 4096];
    let t0 = Instant::now();
    loop {
        let left = within.saturating_sub(t0.elapsed());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => continue,
            Err(_) => panic!("server kept the connection open for {within:?}"),
        }
    }
}

fn twilio_start(call_sid: &str) -> WsMessage {
    WsMessage::text(common::twilio::start(call_sid))
}

fn twilio_media(track: &str, chunk: u64, ulaw: &[u8]) -> WsMessage {
    WsMessage::text(common::twilio::media(track, chunk, ulaw))
}

fn twilio_stop() -> WsMessage {
    WsMessage::text(r#"{"event":"stop","streamSid":"MZ1","stop":{}}"#)
}

fn samples_of(events: &[CallEvent], call: &str, who: Speaker) -> usize {
    events
        .iter()
        .map(|e| match e {
            CallEvent::Audio {
                call_id,
                speaker,
                samples,
                ..
            } if call_id == call && *speaker == who => samples.len(),
            _ => 0,
        })
        .sum()
}

/// A second socket (Twilio or L16) naming a live call's id is refused before it sends
/// anything: the victim's call sees no audio and no `End` but its own.
#[tokio::test]
async fn call_hijack_over_twilio_and_l16_is_refused() {
    let mut h = ingest(
        MediaStreamConfig::default(),
        AudioSocketConfig::default(),
        Pacing::default(),
    )
    .await;
    let mut victim = ws(h.media, "/media/twilio").await;
    victim.send(twilio_start("CAvictim")).await.unwrap();
    victim
        .send(twilio_media("inbound", 1, &[0xff; 160]))
        .await
        .unwrap();
    let first = h.drain(Duration::from_millis(300)).await;
    assert!(
        matches!(&first[0], CallEvent::Start { call_id, .. } if call_id == "CAvictim"),
        "{first:?}"
    );

    // Same callSid on a second Twilio socket: injected audio and an early stop.
    let mut attacker = ws(h.media, "/media/twilio").await;
    attacker.send(twilio_start("CAvictim")).await.unwrap();
    let _ = attacker
        .send(twilio_media("inbound", 2, &[0x00; 160]))
        .await;
    let _ = attacker.send(twilio_stop()).await;
    assert_eq!(ws_closed(&mut attacker).await, "leg_taken");
    // Same id over L16, mono (the customer leg) and stereo.
    for channels in [1, 2] {
        let mut l16 = ws(h.media, "/media/l16").await;
        l16.send(WsMessage::text(
            serde_json::json!({"call_id": "CAvictim", "sample_rate": 8000, "channels": channels})
                .to_string(),
        ))
        .await
        .unwrap();
        let _ = l16.send(WsMessage::binary(vec![0x55u8; 640])).await;
        assert_eq!(ws_closed(&mut l16).await, "leg_taken");
    }
    let during = h.drain(Duration::from_millis(300)).await;
    assert!(
        during.is_empty(),
        "the refused sockets reached the router: {during:?}"
    );
    assert_eq!(h.metrics.bad_frames.with(&["twilio", "leg_taken"]).get(), 1);
    assert_eq!(h.metrics.bad_frames.with(&["l16", "leg_taken"]).get(), 2);

    // The victim's call goes on and ends as its own socket says.
    victim
        .send(twilio_media("inbound", 2, &[0xff; 160]))
        .await
        .unwrap();
    victim.send(twilio_stop()).await.unwrap();
    let rest = h.drain(Duration::from_millis(500)).await;
    let ends: Vec<_> = rest
        .iter()
        .filter_map(|e| match e {
            CallEvent::End { reason, .. } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(ends, vec!["hangup", "hangup"], "{rest:?}");
    assert_eq!(
        samples_of(&first, "CAvictim", Speaker::Customer)
            + samples_of(&rest, "CAvictim", Speaker::Customer),
        320,
        "only the victim's two chunks"
    );

    // Once the call has ended its id is free again: a new socket may use it.
    let mut again = ws(h.media, "/media/twilio").await;
    again.send(twilio_start("CAvictim")).await.unwrap();
    let ev = h.drain(Duration::from_millis(300)).await;
    assert!(
        matches!(ev.first(), Some(CallEvent::Start { call_id, .. }) if call_id == "CAvictim"),
        "{ev:?}"
    );
}

/// An AudioSocket connection naming a call that a media stream owns is refused too: the
/// leg table is shared by every source.
#[tokio::test]
async fn audiosocket_cannot_join_a_media_stream_call() {
    let mut h = ingest(
        MediaStreamConfig::default(),
        AudioSocketConfig::default(),
        Pacing::default(),
    )
    .await;
    let uuid = [0x42u8; 16];
    let id = "42424242-4242-4242-4242-424242424242";
    let mut l16 = ws(h.media, "/media/l16").await;
    l16.send(WsMessage::text(
        serde_json::json!({"call_id": id, "sample_rate": 8000, "channels": 2}).to_string(),
    ))
    .await
    .unwrap();
    assert!(matches!(
        h.drain(Duration::from_millis(300)).await.first(),
        Some(CallEvent::Start { .. })
    ));
    let mut s = TcpStream::connect(h.audiosocket).await.unwrap();
    let mut f = vec![0x01, 0x00, 0x10];
    f.extend_from_slice(&uuid);
    f.extend_from_slice(&[0x10, 0x01, 0x40]);
    f.extend_from_slice(&[0x11; 320]);
    f.extend_from_slice(&[0x00, 0x00, 0x00]); // hangup
    s.write_all(&f).await.unwrap();
    expect_eof(&mut s, WAIT).await;
    let ev = h.drain(Duration::from_millis(300)).await;
    assert!(ev.is_empty(), "{ev:?}");
    assert_eq!(
        h.metrics
            .bad_frames
            .with(&["audiosocket", "leg_taken"])
            .get(),
        1
    );
}

/// A leg sending audio as fast as the socket allows gets at most
/// `burst + factor × elapsed` seconds through; the rest is dropped and counted. A leg at
/// real time loses nothing.
#[tokio::test]
async fn fast_sender_is_held_to_the_pacing_budget() {
    let pacing = Pacing {
        max_realtime_factor: 3.0,
        burst_s: 1.0,
    };
    let mut h = ingest(
        MediaStreamConfig::default(),
        AudioSocketConfig::default(),
        pacing,
    )
    .await;
    let mut s = ws(h.media, "/media/l16").await;
    s.send(WsMessage::text(
        r#"{"call_id":"CAfast","sample_rate":8000,"channels":1}"#,
    ))
    .await
    .unwrap();
    // 120 s of audio in 20 ms frames, as fast as possible.
    let t0 = Instant::now();
    for _ in 0..6000 {
        s.send(WsMessage::binary(vec![0x10u8; 320])).await.unwrap();
    }
    s.close(None).await.unwrap();
    let ev = h.drain(Duration::from_millis(500)).await;
    let wall = t0.elapsed().as_secs_f64();
    let got_s = samples_of(&ev, "CAfast", Speaker::Customer) as f64 / 8000.0;
    let dropped = h.metrics.audio_dropped.with(&["l16", "too_fast"]).get();
    eprintln!("fast sender: 120 s of audio sent in {wall:.2} s wall; {got_s:.2} s admitted, {dropped} frames dropped");
    assert!(
        got_s <= pacing.burst_s + pacing.max_realtime_factor * wall + 0.02,
        "{got_s} s admitted in {wall} s"
    );
    assert!(dropped > 0);

    // Real time (2 s at 20 ms frames, a little behind the clock): nothing dropped.
    let mut s = ws(h.media, "/media/l16").await;
    s.send(WsMessage::text(
        r#"{"call_id":"CAreal","sample_rate":8000,"channels":1}"#,
    ))
    .await
    .unwrap();
    let t0 = Instant::now();
    for k in 0..100u32 {
        let due = t0 + Duration::from_millis(20 * k as u64);
        tokio::time::sleep_until(due.into()).await;
        s.send(WsMessage::binary(vec![0x10u8; 320])).await.unwrap();
    }
    s.close(None).await.unwrap();
    let ev = h.drain(Duration::from_millis(500)).await;
    assert_eq!(samples_of(&ev, "CAreal", Speaker::Customer), 100 * 160);
    assert_eq!(
        h.metrics.audio_dropped.with(&["l16", "too_fast"]).get(),
        dropped
    );
}

/// One Twilio message with a huge payload followed by a chunk-number jump used to turn
/// into `max_gap_fill_chunks × payload` samples of silence; now a hole is filled with 160
/// samples per missing chunk and a jump beyond `max_chunk_jump` closes the socket.
#[tokio::test]
async fn twilio_gap_amplifier_is_bounded() {
    let mut h = ingest(
        MediaStreamConfig::default(),
        AudioSocketConfig::default(),
        Pacing::default(),
    )
    .await;
    let mut s = ws(h.media, "/media/twilio").await;
    s.send(twilio_start("CAgap")).await.unwrap();
    // 1 s of audio in one chunk, then a 198-chunk hole.
    s.send(twilio_media("inbound", 1, &[0xff; 8000]))
        .await
        .unwrap();
    s.send(twilio_media("inbound", 200, &[0xff; 160]))
        .await
        .unwrap();
    // A jump of 10^12 chunks closes the socket.
    s.send(twilio_media("inbound", 1_000_000_000_200, &[0xff; 160]))
        .await
        .unwrap();
    let reason = ws_closed(&mut s).await;
    assert!(reason.contains("jumps"), "{reason}");
    let ev = h.drain(Duration::from_millis(500)).await;
    let n = samples_of(&ev, "CAgap", Speaker::Customer);
    // 8000 + 50 × 160 (the hole, capped) + 160.
    assert_eq!(n, 8000 + 50 * 160 + 160, "{n} samples");
    assert_eq!(
        h.metrics.bad_frames.with(&["twilio", "chunk_jump"]).get(),
        1
    );
}

/// A WebSocket frame header announcing 1 GiB closes the connection at once: the limit is
/// checked against the header, before any payload is buffered.
#[tokio::test]
async fn oversized_websocket_frame_is_refused_before_buffering() {
    let h = ingest(
        MediaStreamConfig::default(),
        AudioSocketConfig::default(),
        Pacing::default(),
    )
    .await;
    let mut s = TcpStream::connect(h.media).await.unwrap();
    s.write_all(
        b"GET /media/l16 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut resp = Vec::new();
    let mut b = [0u8; 1];
    while !resp.ends_with(b"\r\n\r\n") {
        tokio::time::timeout(WAIT, s.read_exact(&mut b))
            .await
            .expect("no upgrade response")
            .unwrap();
        resp.push(b[0]);
    }
    assert!(
        resp.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&resp)
    );
    // FIN + binary, masked, 64-bit length 2^30, mask key, then a few payload bytes.
    let mut f = vec![0x82, 0xff];
    f.extend_from_slice(&(1u64 << 30).to_be_bytes());
    f.extend_from_slice(&[1, 2, 3, 4]);
    f.extend_from_slice(&[0u8; 4096]);
    s.write_all(&f).await.unwrap();
    let t0 = Instant::now();
    expect_eof(&mut s, Duration::from_secs(3)).await;
    eprintln!("1 GiB frame header: closed after {:?}", t0.elapsed());
}

/// Connection exhaustion and slowloris on an HTTP listener: connections beyond the cap are
/// closed at accept, connections that never finish their headers are closed after the
/// header timeout, and the listener then serves a normal request.
#[tokio::test]
async fn connection_cap_and_slowloris_on_http() {
    let metrics = Metrics::new();
    let stop = CancellationToken::new();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let gl = GuardedListener::new(l, "http", 3, Duration::from_millis(500), &metrics);
    let state = AppState::new(metrics.clone(), CallRegistry::new(metrics.clone()), None);
    tokio::spawn(serve_router(gl, api_router(state), stop.clone()));

    let mut slow = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHo").await.unwrap();
        slow.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = TcpStream::connect(addr).await.unwrap();
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    expect_eof(&mut extra, Duration::from_secs(2)).await;
    assert_eq!(
        metrics
            .connections_closed
            .with(&["http", "too_many_connections"])
            .get(),
        1
    );
    // One byte every 100 ms does not keep a connection past the header deadline.
    let t0 = Instant::now();
    for s in &mut slow {
        let _ = s.write_all(b"s").await;
    }
    for s in &mut slow {
        expect_eof(s, Duration::from_secs(3)).await;
    }
    let held = t0.elapsed();
    assert_eq!(
        metrics
            .connections_closed
            .with(&["http", "header_timeout"])
            .get(),
        3
    );
    eprintln!("slowloris: 3 connections closed {held:?} after their last byte");
    // The slots are free again.
    let mut ok = TcpStream::connect(addr).await.unwrap();
    ok.write_all(b"GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    tokio::time::timeout(WAIT, ok.read_to_string(&mut body))
        .await
        .unwrap()
        .unwrap();
    assert!(body.contains(" 200 "), "{body}");
}

/// One source address cannot take every slot of the supervisor listener: a slowloris from
/// 127.0.0.2 holding its per-address share is refused beyond it, while a client from
/// 127.0.0.1 is still served; the share comes back when its connections close.
#[tokio::test]
async fn one_address_cannot_take_every_http_slot() {
    let metrics = Metrics::new();
    let stop = CancellationToken::new();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let gl =
        GuardedListener::new(l, "http", 8, Duration::from_secs(30), &metrics).with_per_peer_cap(3);
    let state = AppState::new(metrics.clone(), CallRegistry::new(metrics.clone()), None);
    tokio::spawn(serve_router(gl, api_router(state), stop.clone()));
    let from = |ip: &str| {
        let ip: std::net::IpAddr = ip.parse().unwrap();
        async move {
            let s = tokio::net::TcpSocket::new_v4().unwrap();
            s.bind((ip, 0).into()).unwrap();
            s.connect(addr).await.unwrap()
        }
    };
    let healthz = |mut s: TcpStream| async move {
        s.write_all(b"GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut body = String::new();
        let _ = tokio::time::timeout(WAIT, s.read_to_string(&mut body)).await;
        body
    };
    let mut slow = Vec::new();
    for _ in 0..3 {
        let mut s = from("127.0.0.2").await;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHo").await.unwrap();
        slow.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fourth = from("127.0.0.2").await;
    let _ = fourth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    expect_eof(&mut fourth, Duration::from_secs(2)).await;
    assert_eq!(
        metrics
            .connections_closed
            .with(&["http", "too_many_from_peer"])
            .get(),
        1
    );
    let body = healthz(from("127.0.0.1").await).await;
    assert!(body.contains(" 200 "), "another address is served: {body}");
    drop(slow);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let body = healthz(from("127.0.0.2").await).await;
    assert!(body.contains(" 200 "), "the share came back: {body}");
    assert_eq!(
        metrics
            .connections_closed
            .with(&["http", "too_many_from_peer"])
            .get(),
        1
    );
    stop.cancel();
}

/// AudioSocket from outside `allow_networks` is closed at accept; within the allowed
/// networks the listener's connection cap holds.
#[tokio::test]
async fn audiosocket_source_networks_and_connection_cap() {
    let mut h = ingest(
        MediaStreamConfig::default(),
        AudioSocketConfig {
            allow_networks: vec!["10.0.0.0/8".into()],
            ..Default::default()
        },
        Pacing::default(),
    )
    .await;
    let mut s = TcpStream::connect(h.audiosocket).await.unwrap();
    let mut f = vec![0x01, 0x00, 0x10];
    f.extend_from_slice(&[7u8; 16]);
    let _ = s.write_all(&f).await;
    expect_eof(&mut s, WAIT).await;
    assert!(h.drain(Duration::from_millis(200)).await.is_empty());
    assert_eq!(
        h.metrics
            .connections_closed
            .with(&["audiosocket", "not_allowed"])
            .get(),
        1
    );

    let mut h = ingest(
        MediaStreamConfig::default(),
        AudioSocketConfig {
            allow_networks: vec!["127.0.0.0/8".into()],
            ..Default::default()
        },
        Pacing::default(),
    )
    .await;
    // The cap is 2 (see `ingest`): two idle connections hold it, a third is closed.
    let a = TcpStream::connect(h.audiosocket).await.unwrap();
    let b = TcpStream::connect(h.audiosocket).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = TcpStream::connect(h.audiosocket).await.unwrap();
    expect_eof(&mut c, WAIT).await;
    assert_eq!(
        h.metrics
            .connections_closed
            .with(&["audiosocket", "too_many_connections"])
            .get(),
        1
    );
    drop((a, b));
    assert!(h.drain(Duration::from_millis(200)).await.is_empty());
}

/// A leg that keeps its socket busy with everything but audio (AudioSocket DTMF and repeated
/// UUID frames, L16 text and pings, Twilio marks) is idle: it ends with `timeout` after
/// `read_timeout_s`, however often it sends, and frees its call.
#[tokio::test]
async fn legs_that_send_no_audio_time_out() {
    let mut h = ingest(
        MediaStreamConfig {
            read_timeout_s: 1.0,
            ..Default::default()
        },
        AudioSocketConfig {
            read_timeout_s: 1.0,
            ..Default::default()
        },
        Pacing::default(),
    )
    .await;
    let uuid = [9u8; 16];
    let t0 = Instant::now();
    let mut a = TcpStream::connect(h.audiosocket).await.unwrap();
    let mut hello = vec![0x01, 0x00, 0x10];
    hello.extend_from_slice(&uuid);
    a.write_all(&hello).await.unwrap();
    let chatter = tokio::spawn(async move {
        // DTMF '5' and the same UUID again, every 200 ms: well inside the 1 s timeout.
        for _ in 0..40 {
            if a.write_all(&[0x03, 0x00, 0x01, b'5']).await.is_err()
                || a.write_all(&hello).await.is_err()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        expect_eof(&mut a, WAIT).await;
    });
    let mut l16 = ws(h.media, "/media/l16").await;
    l16.send(WsMessage::text(
        r#"{"call_id":"CAidle","sample_rate":8000,"channels":1}"#,
    ))
    .await
    .unwrap();
    let mut l16_reason = String::new();
    for _ in 0..40 {
        let busy = l16.send(WsMessage::Ping(vec![1].into())).await.is_ok()
            && l16.send(WsMessage::text(r#"{"hello":1}"#)).await.is_ok();
        if !busy {
            break;
        }
        if let Ok(Some(Ok(WsMessage::Close(f)))) =
            tokio::time::timeout(Duration::from_millis(200), l16.next()).await
        {
            l16_reason = f.map(|f| f.reason.to_string()).unwrap_or_default();
            break;
        }
    }
    chatter.await.unwrap();
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "idle legs were held {took:?}"
    );
    let evs = h.drain(Duration::from_millis(300)).await;
    let ends: Vec<String> = evs
        .iter()
        .filter_map(|e| match e {
            CallEvent::End { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        ends,
        vec!["timeout".to_string(); 2],
        "{evs:?} (l16 close: {l16_reason:?})"
    );
    assert!(
        !evs.iter().any(|e| matches!(e, CallEvent::Audio { .. })),
        "no audio was sent"
    );
}

// ------------------------------------------------------------ the real binary

/// A raw HTTP/1.0 GET; the status line's code.
fn http_status(port: u16, path: &str) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// `/media/*` is not on the supervisor listener and the supervisor side is not on the
/// media listener.
#[test]
fn supervisor_and_media_listeners_are_separate() {
    let Some(model) = common::model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let setup = common::service::ServeSetup::new(&model, "mqtt://127.0.0.1:1", "sep");
    let serve = common::service::Serve::launch(
        dir.path(),
        &setup,
        common::broker::free_port(),
        common::broker::free_port(),
    );
    assert_eq!(http_status(serve.http, "/healthz"), 200);
    assert_eq!(http_status(serve.http, "/metrics"), 200);
    for path in ["/media/twilio", "/media/l16"] {
        assert_eq!(
            http_status(serve.http, path),
            404,
            "{path} on the supervisor listener"
        );
    }
    for path in ["/healthz", "/metrics", "/api/calls", "/"] {
        assert_eq!(
            http_status(serve.media, path),
            404,
            "{path} on the media listener"
        );
    }
    // The media listener speaks WebSocket on /media/*: a plain GET is refused as such.
    let code = http_status(serve.media, "/media/twilio");
    assert!((400..500).contains(&code) && code != 404, "{code}");
    serve.terminate();
}

/// The names of the process's threads (`/proc/PID/task/*/comm`).
fn thread_names(pid: u32) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return vec![];
    };
    dir.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect()
}

/// A call's analysis runs on a thread of its own (`call-{run}`), not on the async runtime's
/// workers that serve HTTP, SSE and MQTT, and the thread ends with its call.
#[test]
fn each_call_is_analysed_on_its_own_thread() {
    use std::io::Write;
    let Some(model) = common::model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let setup = common::service::ServeSetup::new(&model, "mqtt://127.0.0.1:1", "threads");
    let serve = common::service::Serve::launch(
        dir.path(),
        &setup,
        common::broker::free_port(),
        common::broker::free_port(),
    );
    let pid = serve.child.id();
    let calls = |names: &[String]| names.iter().filter(|n| n.starts_with("call-")).count();
    assert_eq!(calls(&thread_names(pid)), 0);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", serve.audiosocket)).unwrap();
    let mut hello = vec![0x01, 0x00, 0x10];
    hello.extend_from_slice(&[0x42; 16]);
    s.write_all(&hello).unwrap();
    let mut frame = vec![0x10, 0x01, 0x40];
    frame.extend(std::iter::repeat_n(0u8, 320)); // 20 ms of 8 kHz silence
    let mut during = vec![];
    for i in 0..100 {
        s.write_all(&frame).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        if i % 10 == 9 {
            during = thread_names(pid);
            if calls(&during) == 1 {
                break;
            }
        }
    }
    assert_eq!(
        calls(&during),
        1,
        "threads while the call is live: {during:?}"
    );
    s.write_all(&[0x00, 0x00, 0x00]).unwrap();
    let t0 = Instant::now();
    while calls(&thread_names(pid)) > 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the call's thread outlived the call: {:?}",
            thread_names(pid)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    serve.terminate();
}

/// With `security.http_tokens_file`, the supervisor side answers only to a listed bearer
/// token (or basic auth with it), `/healthz` stays open, `/metrics` does not, and a Host
/// outside `allowed_hosts` is refused.
#[test]
fn supervisor_listener_refuses_missing_and_wrong_credentials() {
    use std::io::{Read, Write};
    let Some(model) = common::model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    let digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(b"wall-screen-7").into();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&tokens, format!("wall:{hex}\n")).unwrap();
    let tables = format!(
        "[security]\nhttp_tokens_file = {:?}\nallowed_hosts = [\"localhost\", \"127.0.0.1\"]\n",
        tokens.display().to_string()
    );
    let mut setup = common::service::ServeSetup::new(&model, "mqtt://127.0.0.1:1", "auth");
    setup.tables = &tables;
    let serve = common::service::Serve::launch(
        dir.path(),
        &setup,
        common::broker::free_port(),
        common::broker::free_port(),
    );
    let get = |path: &str, host: &str, auth: Option<&str>| -> u16 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", serve.http)).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let auth = auth
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n{auth}\r\n").unwrap();
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    };
    for path in ["/", "/api/calls", "/api/alerts", "/api/events", "/metrics"] {
        assert_eq!(get(path, "localhost", None), 401, "{path} without a token");
        assert_eq!(
            get(path, "localhost", Some("Bearer wall-screen-8")),
            401,
            "{path} with a wrong token"
        );
        assert_eq!(
            get(path, "localhost", Some("Basic d2FsbDp3cm9uZw==")),
            401,
            "{path} with wrong basic auth"
        );
    }
    assert_eq!(
        get("/api/calls", "localhost", Some("Bearer wall-screen-7")),
        200
    );
    assert_eq!(
        get("/metrics", "127.0.0.1", Some("Bearer wall-screen-7")),
        200
    );
    assert_eq!(get("/healthz", "localhost", None), 200);
    // DNS rebinding: a page on evil.example resolving to the box.
    assert_eq!(
        get("/api/calls", "evil.example", Some("Bearer wall-screen-7")),
        421
    );
    assert_eq!(get("/healthz", "evil.example:8080", None), 421);
    serve.terminate();
}

/// A call id used again after its call ended is a new call with its own `event_id`s, so a
/// consumer de-duplicating by `event_id` keeps both calls.
#[test]
fn reused_call_id_is_a_new_call_with_fresh_event_ids() {
    let Some(model) = common::model() else { return };
    if !common::broker::port_open(1883) {
        eprintln!("SKIP: no MQTT broker on 127.0.0.1:1883");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let site = common::broker::unique("reuse");
    let rec = common::broker::subscribe(1883, &site);
    let serve = common::service::Serve::start(dir.path(), "mqtt://127.0.0.1:1883", &site, &model);
    rec.wait_for("online", Duration::from_secs(20), |ev| {
        ev.iter()
            .any(|(t, v, _)| t.ends_with("/status") && v["state"] == "online")
    });
    for round in 1..=2 {
        stream_short_twilio_call(serve.media, "CAreused");
        rec.wait_for("call_ended", Duration::from_secs(60), |ev| {
            ev.iter()
                .filter(|(_, v, _)| v["call_id"] == "CAreused" && v["type"] == "call_ended")
                .count()
                >= round
        });
    }
    let ev = rec.events();
    let mine: Vec<_> = ev
        .iter()
        .filter(|(t, v, _)| v["call_id"] == "CAreused" && !t.ends_with("/context"))
        .map(|(_, v, _)| v.clone())
        .collect();
    let started: Vec<_> = mine
        .iter()
        .filter(|v| v["type"] == "call_started")
        .collect();
    assert_eq!(started.len(), 2, "{mine:?}");
    assert_ne!(started[0]["event_id"], started[1]["event_id"]);
    let mut ids: Vec<String> = mine
        .iter()
        .filter(|v| v["type"] != "state")
        .map(|v| v["event_id"].as_str().unwrap().to_string())
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "event_ids repeat across the two calls");
    serve.terminate();
}

/// Two seconds of a tone on both tracks at real-time pace, then `stop`.
fn stream_short_twilio_call(media: u16, call_sid: &str) {
    let (mut ws, _) =
        tungstenite::connect(format!("ws://127.0.0.1:{media}/media/twilio")).expect("ws connect");
    ws.send(twilio_start(call_sid)).unwrap();
    let tone: Vec<u8> = (0..160)
        .map(|i| if (i / 10) % 2 == 0 { 0x20 } else { 0xa0 })
        .collect();
    let t0 = Instant::now();
    for k in 1..=100u64 {
        let due = t0 + Duration::from_millis(20 * (k - 1));
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        for track in ["inbound", "outbound"] {
            ws.send(twilio_media(track, k, &tone)).unwrap();
        }
    }
    ws.send(twilio_stop()).unwrap();
    let _ = ws.close(None);
    while ws.read().is_ok() {}
}

// ------------------------------------------------------------ MQTT delivery

fn mqtt_config(port: u16, site: &str) -> calltone::publish::MqttConfig {
    calltone::publish::MqttConfig {
        url: format!("mqtt://127.0.0.1:{port}"),
        site: site.to_string(),
        box_id: "box1".into(),
        client_id: Some(common::broker::unique("sink")),
        reconnect_min_ms: 50,
        reconnect_max_ms: 300,
        ..Default::default()
    }
}

fn utterance(st: &mut calltone::events::EventStamper, text: String) -> calltone::events::Event {
    use calltone::events::{EventBody, ProsodySummary, Utterance};
    st.stamp(
        1.0,
        calltone::events::now_rfc3339(),
        EventBody::Utterance(Utterance {
            speaker: Speaker::Customer,
            start: 0.0,
            end: 1.0,
            text,
            redacted: false,
            words: vec![],
            not_transcribed: None,
            language: None,
            sentiment: 0.0,
            arousal: None,
            emotion: None,
            prosody: ProsodySummary::default(),
            behaviours: None,
        }),
    )
}

fn arrived(rec: &common::broker::Received, event_id: &str) -> bool {
    rec.events()
        .iter()
        .any(|(_, v, _)| v["event_id"] == event_id)
}

/// An event over `mqtt.max_packet_bytes` is refused at publish and counted; the next one
/// is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_event_is_refused_at_publish() {
    if !common::broker::port_open(1883) {
        eprintln!("SKIP: no MQTT broker on 127.0.0.1:1883");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let site = common::broker::unique("big");
    let rec = common::broker::subscribe(1883, &site);
    let metrics = Metrics::new();
    let mut cfg = mqtt_config(1883, &site);
    cfg.max_packet_bytes = 4096;
    let sink = calltone::publish::MqttSink::start(&cfg, dir.path(), metrics.clone()).unwrap();
    let h = sink.handle();
    let mut st = calltone::events::EventStamper::new("CAbig");
    let big = utterance(&mut st, "x".repeat(10_000));
    let e = h.publish(&big).unwrap_err();
    assert!(e.to_string().contains("max_packet_bytes"), "{e}");
    assert_eq!(metrics.mqtt_refused.with(&["oversize"]).get(), 1);
    let small = utterance(&mut st, "four two".into());
    h.publish(&small).unwrap();
    let t0 = Instant::now();
    while !arrived(&rec, &small.event_id) {
        assert!(t0.elapsed() < WAIT, "later event not delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!arrived(&rec, &big.event_id));
    sink.shutdown(Duration::from_secs(2)).await;
}

/// A broker that drops the connection for one entry (here: Mosquitto's own
/// `max_packet_size` smaller than ours) used to wedge the outbox for good; the entry is now
/// set aside after a few tries — kept on disk, counted — and a later call still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entry_the_broker_keeps_refusing_is_set_aside() {
    if !common::broker::Mosquitto::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = common::broker::free_port();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "user root\nlistener {port} 127.0.0.1\nallow_anonymous true\nmax_packet_size 4096\n"
        ),
    )
    .unwrap();
    let _broker = common::broker::Mosquitto::with_config(port, conf);
    let site = common::broker::unique("aside");
    let rec = common::broker::subscribe(port, &site);
    let metrics = Metrics::new();
    let data = dir.path().join("data");
    let sink =
        calltone::publish::MqttSink::start(&mqtt_config(port, &site), &data, metrics.clone())
            .unwrap();
    let h = sink.handle();
    let mut st = calltone::events::EventStamper::new("CAwedge");
    let refused = utterance(&mut st, "y".repeat(8_000));
    h.publish(&refused).unwrap();
    let mut later = calltone::events::EventStamper::new("CAlater");
    let next = utterance(&mut later, "the next call".into());
    h.publish(&next).unwrap();
    let t0 = Instant::now();
    while !arrived(&rec, &next.event_id) {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the outbox is wedged: the later call never arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("set aside and moved on after {:?}", t0.elapsed());
    assert_eq!(metrics.mqtt_refused.with(&["set_aside"]).get(), 1);
    assert_eq!(h.outbox_depth(), 0);
    let kept: Vec<_> = std::fs::read_dir(data.join("outbox-set-aside"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(kept.len(), 1);
    let body = std::fs::read_to_string(kept[0].path()).unwrap();
    assert!(body.contains(&refused.event_id), "{body}");
    sink.shutdown(Duration::from_secs(2)).await;
}

/// Media ingest with credentials: the Twilio signature, the L16 token, the Origin allow-list.
/// Refusals are 403 before the WebSocket upgrade, counted by reason; the right credentials
/// get a stream that starts a call.
#[tokio::test]
async fn media_streams_need_their_credentials_and_no_foreign_origin() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("twilio-token");
    std::fs::write(&token_file, "s3cr3t-twilio\n").unwrap();
    let digests = dir.path().join("l16-tokens");
    let digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(b"fs-box-token").into();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&digests, format!("# FreeSWITCH\nfs1:{hex}\n")).unwrap();
    let cfg = MediaStreamConfig {
        twilio_auth_token_file: Some(token_file),
        l16_tokens_file: Some(digests),
        allowed_origins: vec!["https://softphone.example.com".into()],
        ..Default::default()
    };
    let auth = media_stream::MediaAuth::from_config(&cfg).unwrap();
    assert!(auth.authenticated());
    let (tx, mut rx) = mpsc::channel(1000);
    let metrics = Metrics::new();
    let stop = CancellationToken::new();
    let ml = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = ml.local_addr().unwrap();
    let app = media_stream::router_with_auth(
        cfg,
        auth,
        tx,
        metrics.clone(),
        LegGuard::default(),
        stop.clone(),
    );
    let gl = GuardedListener::new(ml, "media", 64, Duration::from_secs(5), &metrics);
    tokio::spawn(serve_router(gl, app, stop.clone()));

    // Connects with extra headers; Ok(socket) or Err(HTTP status).
    let open = |path: &str, headers: Vec<(&'static str, String)>| {
        let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
        for (k, v) in headers {
            req.headers_mut().insert(k, v.parse().unwrap());
        }
        async move {
            match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
                .await
                .expect("connect timed out")
            {
                Ok((s, _)) => Ok(s),
                Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
                Err(e) => panic!("{e}"),
            }
        }
    };
    let twilio_url = format!("wss://{addr}/media/twilio");
    let good_sig = media_stream::twilio_signature("s3cr3t-twilio", &twilio_url);
    let wrong_sig = media_stream::twilio_signature("another-token", &twilio_url);
    assert_eq!(open("/media/twilio", vec![]).await.err(), Some(403));
    assert_eq!(
        open("/media/twilio", vec![("x-twilio-signature", wrong_sig)])
            .await
            .err(),
        Some(403)
    );
    assert_eq!(
        open(
            "/media/twilio",
            vec![
                ("x-twilio-signature", good_sig.clone()),
                ("origin", "http://evil.example".into())
            ]
        )
        .await
        .err(),
        Some(403),
        "a web page on another origin cannot open a stream, even with a signature"
    );
    let mut tw = open("/media/twilio", vec![("x-twilio-signature", good_sig)])
        .await
        .expect("a signed stream is accepted");
    tw.send(twilio_start("CA-signed")).await.unwrap();

    assert_eq!(open("/media/l16", vec![]).await.err(), Some(403));
    assert_eq!(
        open("/media/l16?token=guess", vec![]).await.err(),
        Some(403)
    );
    assert_eq!(
        open("/media/l16", vec![("authorization", "Bearer guess".into())])
            .await
            .err(),
        Some(403)
    );
    let meta = |id: &str| {
        WsMessage::text(
            serde_json::json!({"call_id": id, "sample_rate": 8000, "channels": 1}).to_string(),
        )
    };
    let mut q = open("/media/l16?token=fs-box-token", vec![])
        .await
        .expect("a query token is accepted");
    q.send(meta("l16-query")).await.unwrap();
    let mut h = open(
        "/media/l16",
        vec![
            ("authorization", "Bearer fs-box-token".into()),
            ("origin", "https://softphone.example.com".into()),
        ],
    )
    .await
    .expect("a bearer token from an allowed origin is accepted");
    h.send(meta("l16-bearer")).await.unwrap();

    let mut started = Vec::new();
    while started.len() < 3 {
        match tokio::time::timeout(WAIT, rx.recv()).await {
            Ok(Some(CallEvent::Start { call_id, .. })) => started.push(call_id),
            Ok(Some(_)) => {}
            other => panic!("calls started: {started:?}; then {other:?}"),
        }
    }
    started.sort();
    assert_eq!(started, ["CA-signed", "l16-bearer", "l16-query"]);
    let count = |s: &str, r: &str| metrics.bad_frames.with(&[s, r]).get();
    assert_eq!(count("twilio", "bad_signature"), 2);
    assert_eq!(count("twilio", "bad_origin"), 1);
    assert_eq!(count("l16", "unauthorized"), 3);
    stop.cancel();
}

/// Live feeds are capped: a client opening stream after stream gets 503 once the cap is
/// reached, the open ones keep flowing, and a closed stream frees its place.
#[tokio::test]
async fn live_feeds_are_capped_and_a_closed_one_frees_its_place() {
    use calltone::dashboard::{router as dashboard, LiveFeed};
    use calltone::events::{EventBody, EventStamper, State};
    let metrics = Metrics::new();
    let (bus, _) = tokio::sync::broadcast::channel(64);
    let stop = CancellationToken::new();
    let feed = LiveFeed::new(
        bus.clone(),
        CallRegistry::new(metrics.clone()),
        calltone::report::StressLevels::default(),
        metrics.clone(),
        stop.clone(),
    )
    .with_stream_limit(2);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let gl = GuardedListener::new(l, "http", 64, Duration::from_secs(5), &metrics);
    tokio::spawn(serve_router(gl, dashboard(feed), stop.clone()));

    // Opens a stream; returns the socket and the status line.
    async fn open(addr: std::net::SocketAddr, path: &str) -> (TcpStream, String) {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(WAIT, s.read(&mut buf))
            .await
            .expect("no response")
            .unwrap();
        let head = String::from_utf8_lossy(&buf[..n]).to_string();
        (s, head.lines().next().unwrap_or("").to_string())
    }
    let (a, sa) = open(addr, "/api/events").await;
    let (mut b, sb) = open(addr, "/api/agent/events?call_id=x").await;
    assert!(sa.contains("200") && sb.contains("200"), "{sa} / {sb}");
    let (_c, sc) = open(addr, "/api/events").await;
    assert!(sc.contains("503"), "third stream: {sc}");
    let (_d, sd) = open(addr, "/api/agent/events?agent=alice").await;
    assert!(sd.contains("503"), "agent pages share the cap: {sd}");
    assert_eq!(
        metrics
            .connections_closed
            .with(&["http", "too_many_streams"])
            .get(),
        2
    );
    // An open stream still gets events.
    let mut st = EventStamper::new("x");
    let tick = |st: &mut EventStamper| {
        st.stamp(
            1.0,
            String::new(),
            EventBody::State(State {
                speakers: Default::default(),
            }),
        )
    };
    bus.send(tick(&mut st)).unwrap();
    let mut got = String::new();
    while !got.contains("\"call_id\":\"x\"") {
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(WAIT, b.read(&mut buf))
            .await
            .expect("the open stream got no event")
            .unwrap();
        assert!(n > 0, "stream closed: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // The first client goes away; once the server notices (its next write), there is room.
    drop(a);
    let t0 = Instant::now();
    loop {
        let _ = bus.send(tick(&mut st));
        let (_e, se) = open(addr, "/api/events").await;
        if se.contains("200") {
            break;
        }
        assert!(
            t0.elapsed() < WAIT,
            "the closed stream's place was never freed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
}

/// With `serve.tls_cert_file`/`tls_key_file`, both HTTP listeners speak only TLS (rustls): a
/// client that trusts the certificate gets its answers, plain HTTP to the same port is cut
/// off and counted, and a client that opens a connection but never completes the handshake
/// is closed by the header deadline without holding up anyone else.
#[test]
fn http_listeners_speak_tls_with_a_certificate() {
    use std::io::{Read, Write};
    let Some(model) = common::model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    match made {
        Ok(o) if o.status.success() => {}
        other => {
            eprintln!("SKIP: openssl could not make a test certificate: {other:?}");
            return;
        }
    }
    let serve_lines = format!(
        "tls_cert_file = {:?}\ntls_key_file = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    let tables = "[security]\nhttp_header_timeout_s = 2.0\nmetrics_open = true\n";
    let mut setup = common::service::ServeSetup::new(&model, "mqtt://127.0.0.1:1", "tls");
    setup.serve = &serve_lines;
    setup.tables = tables;
    let serve = common::service::Serve::launch(
        dir.path(),
        &setup,
        common::broker::free_port(),
        common::broker::free_port(),
    );
    let curl = |port: u16, path: &str| -> (String, String) {
        let o = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"])
            .arg("--cacert")
            .arg(&cert)
            .arg(format!("https://localhost:{port}{path}"))
            .output()
            .expect("curl");
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        let code = out.lines().last().unwrap_or("").to_string();
        (code, String::from_utf8_lossy(&o.stderr).to_string())
    };
    let (code, err) = curl(serve.http, "/healthz");
    assert_eq!(code, "200", "https /healthz: {err}");
    assert_eq!(curl(serve.http, "/api/calls").0, "200");
    // The media listener is TLS too: a plain GET of the WebSocket path is refused as such.
    let (code, err) = curl(serve.media, "/media/l16");
    let code: u16 = code.parse().unwrap_or(0);
    assert!(
        (400..500).contains(&code) && code != 404,
        "wss listener: {code} {err}"
    );

    // Plain HTTP to the TLS port: no HTTP answer, the connection is closed.
    let started = Instant::now();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", serve.http)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(s, "GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(!String::from_utf8_lossy(&got).contains("200 OK"), "{got:?}");
    assert!(started.elapsed() < WAIT, "closed, not left hanging");

    // A client that connects and never starts the handshake: closed at the header deadline,
    // while others are served.
    let mut idle = std::net::TcpStream::connect(("127.0.0.1", serve.http)).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(
        curl(serve.http, "/healthz").0,
        "200",
        "served while one idles"
    );
    let t0 = Instant::now();
    let mut buf = [0u8; 16];
    let n = idle.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the idle connection is closed");
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());

    let o = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(&cert)
        .arg(format!("https://localhost:{}/metrics", serve.http))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.lines()
            .any(|l| l
                .starts_with("calltone_connections_closed_total{source=\"http\",reason=\"tls\"}")),
        "the failed handshake is counted:\n{}",
        text.lines()
            .filter(|l| l.contains("connections_closed"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(text.lines().any(|l| l.starts_with(
        "calltone_connections_closed_total{source=\"http\",reason=\"header_timeout\"}"
    )));
    serve.terminate();
}

/// With `mqtt.embedded_users_file`, the embedded broker lets in only listed users, and
/// nobody — not even a listed user — can take calltone's own client id (and with it its
/// session); calltone itself logs in with a secret of its own. A non-loopback
/// `embedded_listen` without users is a config error. Clients: the mosquitto CLI.
#[test]
fn embedded_broker_needs_a_login_and_keeps_calltones_client_id() {
    let Some(model) = common::model() else { return };
    if std::process::Command::new("mosquitto_sub")
        .arg("--help")
        .output()
        .is_err()
    {
        eprintln!("SKIP: mosquitto_sub not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("mqtt-users");
    let digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(b"wallboard-pw").into();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&users, format!("# supervisors' wallboard\nwall:{hex}\n")).unwrap();
    let port = common::broker::free_port();
    let mqtt = format!(
        "embedded_listen = \"127.0.0.1:{port}\"\nembedded_users_file = {:?}\n",
        users.display().to_string()
    );
    let mut setup = common::service::ServeSetup::new(&model, "embedded", "emb");
    setup.mqtt = &mqtt;
    let serve = common::service::Serve::launch(
        dir.path(),
        &setup,
        common::broker::free_port(),
        common::broker::free_port(),
    );
    // Subscribes for calltone's retained status; (exit ok, what arrived, stderr).
    let sub = |args: &[&str]| -> (bool, String, String) {
        let o = std::process::Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-t", "calltone/emb/box1/status", "-C", "1", "-W", "5"])
            .args(args)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).to_string(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    let (ok, got, err) = sub(&["-u", "wall", "-P", "wallboard-pw"]);
    assert!(ok && got.contains("online"), "listed user: {got} {err}");
    for (what, args) in [
        ("no login", vec![]),
        ("wrong password", vec!["-u", "wall", "-P", "wallboard-pw2"]),
        ("unknown user", vec!["-u", "eve", "-P", "wallboard-pw"]),
        (
            "calltone's client id",
            vec![
                "-i",
                "calltone-emb-box1",
                "-u",
                "wall",
                "-P",
                "wallboard-pw",
            ],
        ),
    ] {
        let (ok, got, err) = sub(&args);
        assert!(!ok && got.is_empty(), "{what}: let in ({got} {err})");
    }
    // calltone's own session survived the takeover attempt: still online, no last will.
    std::thread::sleep(Duration::from_millis(500));
    let (ok, got, err) = sub(&["-u", "wall", "-P", "wallboard-pw"]);
    assert!(
        ok && got.contains("online"),
        "after the attempt: {got} {err}"
    );
    assert!(
        !std::fs::read_to_string(&serve.log)
            .unwrap()
            .contains("mqtt: connection lost"),
        "calltone's client was not thrown off"
    );
    serve.terminate();

    // Exposed without users: refused at load, naming the key.
    let cfg = dir.path().join("exposed.toml");
    std::fs::write(
        &cfg,
        "[mqtt]\nurl = \"embedded\"\nembedded_listen = \"0.0.0.0:1883\"\n",
    )
    .unwrap();
    let out = common::calltone()
        .args(["config", "check", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mqtt.embedded_listen") && err.contains("embedded_users_file"),
        "{err}"
    );
}

/// A full disk under `data_dir`: the service keeps serving (health, API, calls), says so in
/// `/healthz` (`ok: false`, `outbox_state: "write_error"`), counts the events it could not
/// keep, and is back to `ok` once there is room again. Needs root to mount a small tmpfs
/// (skipped otherwise).
#[test]
fn a_full_disk_is_a_health_state_not_a_crash() {
    let Some(model) = common::model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&data)
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        eprintln!("SKIP: cannot mount a tmpfs (needs root)");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(data.clone());
    let mut setup = common::service::ServeSetup::new(&model, "mqtt://127.0.0.1:1", "full");
    setup.tables = "[security]\nmetrics_open = true\n";
    let serve = common::service::Serve::launch(
        dir.path(),
        &setup,
        common::broker::free_port(),
        common::broker::free_port(),
    );
    let health = || -> serde_json::Value { serve.get_json("/healthz") };
    assert_eq!(health()["outbox_state"], "ok");
    // Fill the disk to the last byte.
    let filler = data.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        while f.write_all(&[0]).is_ok() {}
    }
    let (customer, agent) = common::service::demo_8k("demo/calm-call.wav");
    let n = 8000 * 12;
    common::service::stream_audiosocket(
        serve.audiosocket,
        [7; 16],
        (&customer[..n], &agent[..n]),
        4.0,
        None,
    );
    serve.wait_for("the full disk in /healthz", WAIT, |s| {
        s.get_json("/healthz")["outbox_state"] == "write_error"
    });
    let h = health();
    assert_eq!(h["ok"], false, "{h}");
    let lost = serve
        .metric("calltone_mqtt_events_refused_total{reason=\"write_error\"}")
        .unwrap_or(0.0);
    assert!(lost >= 1.0, "events lost to the disk are counted: {lost}");
    // Still serving: the API answers and a new call is taken.
    let calls = serve.get("/api/calls");
    assert!(
        calls.lines().next().is_some_and(|l| l.contains(" 200 ")),
        "{calls}"
    );
    // Room again: the next events are kept and the state is back to ok.
    std::fs::remove_file(&filler).unwrap();
    common::service::stream_audiosocket(
        serve.audiosocket,
        [8; 16],
        (&customer[..n], &agent[..n]),
        4.0,
        None,
    );
    serve.wait_for("outbox_state ok again", WAIT, |s| {
        s.get_json("/healthz")["outbox_state"] == "ok"
    });
    assert_eq!(health()["ok"], true);
    serve.terminate();
}
