//! Ingest over real sockets: AudioSocket (TCP), Twilio Media Streams and L16 (WebSocket
//! through the real HTTP server). Every wait is bounded.

use std::sync::Arc;
use std::time::Duration;

use calltone::audio::Speaker;
use calltone::http::{serve_http, AppState, CallRegistry};
use calltone::metrics::Metrics;
use calltone::sources::audiosocket::{serve_audiosocket, AudioSocketConfig};
use calltone::sources::media_stream::{self, MediaStreamConfig};
use calltone::sources::CallEvent;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

struct Harness {
    rx: mpsc::Receiver<CallEvent>,
    addr: std::net::SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
}

async fn audiosocket(config: AudioSocketConfig) -> Harness {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel(1024);
    let metrics = Metrics::new();
    let shutdown = CancellationToken::new();
    tokio::spawn(serve_audiosocket(
        listener,
        config,
        tx,
        metrics.clone(),
        shutdown.clone(),
    ));
    Harness {
        rx,
        addr,
        metrics,
        shutdown,
    }
}

async fn http_server() -> Harness {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel(1024);
    let metrics = Metrics::new();
    let shutdown = CancellationToken::new();
    let media = media_stream::router(
        MediaStreamConfig::default(),
        tx,
        metrics.clone(),
        shutdown.clone(),
    );
    let state = AppState::new(metrics.clone(), CallRegistry::new(metrics.clone()), None);
    tokio::spawn(serve_http(listener, state, media, shutdown.clone()));
    Harness {
        rx,
        addr,
        metrics,
        shutdown,
    }
}

impl Harness {
    async fn next(&mut self) -> CallEvent {
        tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("timed out waiting for a CallEvent")
            .expect("channel closed")
    }

    /// Collects events until `ends` End events for `call_id` arrived (other calls' events
    /// are collected too).
    async fn until_ends(&mut self, call_id: &str, ends: usize) -> Vec<CallEvent> {
        let mut out = vec![];
        let mut seen = 0;
        while seen < ends {
            let ev = self.next().await;
            if matches!(&ev, CallEvent::End { call_id: c, .. } if c == call_id) {
                seen += 1;
            }
            out.push(ev);
        }
        out
    }
}

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![kind];
    f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn pcm(values: &[i16]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn samples_of(events: &[CallEvent], call: &str, who: Speaker) -> Vec<f32> {
    events
        .iter()
        .filter_map(|e| match e {
            CallEvent::Audio {
                call_id,
                speaker,
                samples,
                ..
            } if call_id == call && *speaker == who => Some(samples.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn end_reason(events: &[CallEvent], call: &str, who: Speaker) -> Option<String> {
    events.iter().find_map(|e| match e {
        CallEvent::End {
            call_id,
            speaker,
            reason,
        } if call_id == call && *speaker == who => Some(reason.clone()),
        _ => None,
    })
}

const UUID_A: [u8; 16] = [
    0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3, 0xa4, 0x56, 0x42, 0x66, 0x14, 0x17, 0x40, 0x00,
];
const UUID_A_STR: &str = "123e4567-e89b-12d3-a456-426614174000";

fn uuid(n: u8) -> ([u8; 16], String) {
    let mut b = UUID_A;
    b[15] = n;
    let s = format!("{}{:02x}", &UUID_A_STR[..34], n);
    (b, s)
}

/// Reads until EOF (the server closed), bounded.
async fn expect_closed(s: &mut TcpStream) {
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(WAIT, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => continue,
            Err(_) => panic!("server did not close the connection"),
        }
    }
}

#[tokio::test]
async fn audiosocket_two_legs_make_one_call() {
    let mut h = audiosocket(AudioSocketConfig::default()).await;
    let mut customer = TcpStream::connect(h.addr).await.unwrap();
    customer.write_all(&frame(0x01, &UUID_A)).await.unwrap();
    match h.next().await {
        CallEvent::Start {
            call_id,
            source,
            speakers,
        } => {
            assert_eq!(call_id, UUID_A_STR);
            assert_eq!(source, "audiosocket");
            assert_eq!(speakers, vec![Speaker::Customer]);
        }
        other => panic!("expected Start, got {other:?}"),
    }
    let mut agent = TcpStream::connect(h.addr).await.unwrap();
    agent.write_all(&frame(0x01, &UUID_A)).await.unwrap();
    match h.next().await {
        CallEvent::Start { speakers, .. } => assert_eq!(speakers, vec![Speaker::Agent]),
        other => panic!("expected agent Start, got {other:?}"),
    }
    // 20 ms of 8 kHz audio per leg, DTMF in between (ignored), then hang-up.
    let cust: Vec<i16> = (0..160).map(|i| (i * 100) as i16).collect();
    let agt: Vec<i16> = (0..160).map(|i| -(i * 50) as i16).collect();
    customer.write_all(&frame(0x10, &pcm(&cust))).await.unwrap();
    customer.write_all(&frame(0x03, b"5")).await.unwrap();
    agent.write_all(&frame(0x10, &pcm(&agt))).await.unwrap();
    customer.write_all(&frame(0x10, &pcm(&cust))).await.unwrap();
    customer.write_all(&frame(0x00, &[])).await.unwrap();
    agent.write_all(&frame(0x00, &[])).await.unwrap();
    let evs = h.until_ends(UUID_A_STR, 2).await;

    let got_c = samples_of(&evs, UUID_A_STR, Speaker::Customer);
    assert_eq!(got_c.len(), 320);
    assert_eq!(got_c[1], 100.0 / 32768.0);
    let got_a = samples_of(&evs, UUID_A_STR, Speaker::Agent);
    assert_eq!(got_a.len(), 160);
    assert_eq!(got_a[2], -100.0 / 32768.0);
    assert!(evs
        .iter()
        .all(|e| !matches!(e, CallEvent::Audio { sample_rate, .. } if *sample_rate != 8000)));
    assert_eq!(
        end_reason(&evs, UUID_A_STR, Speaker::Customer).as_deref(),
        Some("hangup")
    );
    assert_eq!(
        end_reason(&evs, UUID_A_STR, Speaker::Agent).as_deref(),
        Some("hangup")
    );
    expect_closed(&mut customer).await;
    assert_eq!(h.metrics.audio_frames.with(&["audiosocket"]).get(), 3);
    h.shutdown.cancel();
}

#[tokio::test]
async fn audiosocket_bad_frames_close_only_their_connection() {
    let mut h = audiosocket(AudioSocketConfig::default()).await;
    let (good_b, good) = uuid(0x01);
    let mut g = TcpStream::connect(h.addr).await.unwrap();
    g.write_all(&frame(0x01, &good_b)).await.unwrap();
    g.write_all(&frame(0x10, &pcm(&[1; 160]))).await.unwrap();

    // Each bad connection: UUID, then one bad frame.
    let bad_frames: Vec<(u8, Vec<u8>, &str)> = vec![
        (0x02, frame(0x42, &[0; 4]), "unknown frame kind 0x42"),
        (0x03, frame(0x10, &[0; 3]), "not whole 16-bit samples"),
        (
            0x04,
            {
                // Header announcing 60000 bytes: refused before reading the payload.
                let mut f = vec![0x10];
                f.extend_from_slice(&60000u16.to_be_bytes());
                f
            },
            "exceeds",
        ),
        (0x05, frame(0x01, &[1, 2, 3]), "second UUID"),
    ];
    let mut bad_conns = vec![];
    for (n, bad, _) in &bad_frames {
        let (b, _) = uuid(*n);
        let mut s = TcpStream::connect(h.addr).await.unwrap();
        s.write_all(&frame(0x01, &b)).await.unwrap();
        s.write_all(bad).await.unwrap();
        bad_conns.push(s);
    }
    // No UUID first: closed without any event.
    let mut no_uuid = TcpStream::connect(h.addr).await.unwrap();
    no_uuid
        .write_all(&frame(0x10, &pcm(&[0; 160])))
        .await
        .unwrap();
    // Short UUID: closed without any event.
    let mut short_uuid = TcpStream::connect(h.addr).await.unwrap();
    short_uuid.write_all(&frame(0x01, &[1; 15])).await.unwrap();

    for s in bad_conns.iter_mut().chain([&mut no_uuid, &mut short_uuid]) {
        expect_closed(s).await;
    }
    // The good call is unaffected: more audio, then hang-up.
    g.write_all(&frame(0x10, &pcm(&[2; 160]))).await.unwrap();
    g.write_all(&frame(0x00, &[])).await.unwrap();

    let mut evs = vec![];
    let mut ended_good = false;
    while !ended_good
        || evs
            .iter()
            .filter(|e| matches!(e, CallEvent::End { .. }))
            .count()
            < 5
    {
        let ev = h.next().await;
        if matches!(&ev, CallEvent::End { call_id, .. } if *call_id == good) {
            ended_good = true;
        }
        evs.push(ev);
    }
    for (n, _, why) in &bad_frames {
        let (_, id) = uuid(*n);
        let r =
            end_reason(&evs, &id, Speaker::Customer).unwrap_or_else(|| panic!("no End for {id}"));
        assert!(r.starts_with("error: ") && r.contains(why), "{id}: {r}");
    }
    let g_samples = samples_of(&evs, &good, Speaker::Customer);
    assert_eq!(g_samples.len(), 320);
    assert_eq!(
        end_reason(&evs, &good, Speaker::Customer).as_deref(),
        Some("hangup")
    );
    // Nothing at all from the connections that never named a call.
    let starts = evs
        .iter()
        .filter(|e| matches!(e, CallEvent::Start { .. }))
        .count();
    assert_eq!(starts, 5);
    let m = &h.metrics;
    for reason in [
        "unknown_kind",
        "odd_length",
        "oversize",
        "uuid_changed",
        "no_uuid",
        "bad_uuid",
    ] {
        assert_eq!(
            m.bad_frames.with(&["audiosocket", reason]).get(),
            1,
            "{reason}"
        );
    }
    assert_eq!(
        m.connections_closed.with(&["audiosocket", "error"]).get(),
        6
    );
    h.shutdown.cancel();
}

#[tokio::test]
async fn audiosocket_leg_endings_timeout_eof_error_third_leg_and_rates() {
    let config = AudioSocketConfig {
        read_timeout_s: 0.4,
        first_leg: Speaker::Agent,
        ..Default::default()
    };
    let mut h = audiosocket(config).await;

    // Configurable order: first leg is the agent here. 16 kHz audio (kind 0x12).
    let (b, id) = uuid(0x10);
    let mut a = TcpStream::connect(h.addr).await.unwrap();
    a.write_all(&frame(0x01, &b)).await.unwrap();
    assert!(
        matches!(h.next().await, CallEvent::Start { speakers, .. } if speakers == vec![Speaker::Agent])
    );
    let mut c = TcpStream::connect(h.addr).await.unwrap();
    c.write_all(&frame(0x01, &b)).await.unwrap();
    assert!(
        matches!(h.next().await, CallEvent::Start { speakers, .. } if speakers == vec![Speaker::Customer])
    );
    // A third connection for the same call is rejected.
    let mut third = TcpStream::connect(h.addr).await.unwrap();
    third.write_all(&frame(0x01, &b)).await.unwrap();
    expect_closed(&mut third).await;

    a.write_all(&frame(0x12, &pcm(&[7; 320]))).await.unwrap();
    match h.next().await {
        CallEvent::Audio {
            sample_rate,
            samples,
            speaker,
            ..
        } => {
            assert_eq!(
                (sample_rate, samples.len(), speaker),
                (16000, 320, Speaker::Agent)
            );
        }
        other => panic!("{other:?}"),
    }
    // Agent: Asterisk error frame. Customer: just goes silent → timeout.
    a.write_all(&frame(0xff, &[0x02])).await.unwrap();
    let evs = h.until_ends(&id, 2).await;
    assert_eq!(
        end_reason(&evs, &id, Speaker::Agent).as_deref(),
        Some("error: asterisk error code 0x02")
    );
    assert_eq!(
        end_reason(&evs, &id, Speaker::Customer).as_deref(),
        Some("timeout")
    );
    expect_closed(&mut c).await;

    // EOF without hang-up.
    let (b2, id2) = uuid(0x11);
    let mut d = TcpStream::connect(h.addr).await.unwrap();
    d.write_all(&frame(0x01, &b2)).await.unwrap();
    d.write_all(&frame(0x10, &pcm(&[1; 160]))).await.unwrap();
    drop(d);
    let evs = h.until_ends(&id2, 1).await;
    assert_eq!(
        end_reason(&evs, &id2, Speaker::Agent).as_deref(),
        Some("disconnected")
    );
    assert_eq!(
        h.metrics
            .connections_closed
            .with(&["audiosocket", "rejected"])
            .get(),
        1
    );

    // Shutdown ends live legs with "shutdown".
    let (b3, id3) = uuid(0x12);
    let mut e = TcpStream::connect(h.addr).await.unwrap();
    e.write_all(&frame(0x01, &b3)).await.unwrap();
    assert!(matches!(h.next().await, CallEvent::Start { .. }));
    h.shutdown.cancel();
    let evs = h.until_ends(&id3, 1).await;
    assert_eq!(
        end_reason(&evs, &id3, Speaker::Agent).as_deref(),
        Some("shutdown")
    );
}

// ---------------------------------------------------------------- WebSocket

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn ws(addr: std::net::SocketAddr, path: &str) -> Ws {
    let (s, _) = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::connect_async(format!("ws://{addr}{path}")),
    )
    .await
    .unwrap()
    .unwrap();
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

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn twilio_start(call: &str, tracks: &str) -> String {
    format!(
        r#"{{"event":"start","sequenceNumber":"1","start":{{"accountSid":"AC0","streamSid":"MZ{call}","callSid":"{call}","tracks":{tracks},"customParameters":{{}},"mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}},"streamSid":"MZ{call}"}}"#
    )
}

fn twilio_media(seq: u32, track: &str, chunk: u32, payload: &[u8]) -> String {
    format!(
        r#"{{"event":"media","sequenceNumber":"{seq}","media":{{"track":"{track}","chunk":"{chunk}","timestamp":"{}","payload":"{}"}},"streamSid":"MZ"}}"#,
        chunk * 20,
        b64(payload)
    )
}

// μ-law code → linear value (ITU-T G.711 table).
const MU: [(u8, f32); 5] = [
    (0x8f, 16764.0),
    (0x9f, 8316.0),
    (0xaf, 4092.0),
    (0xbf, 1980.0),
    (0x0f, -16764.0),
];

#[tokio::test]
async fn twilio_stream_reorders_decodes_and_ends() {
    let mut h = http_server().await;
    let mut s = ws(h.addr, "/media/twilio").await;
    let call = "CAtwilio0001";
    s.send(WsMessage::text(
        r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#,
    ))
    .await
    .unwrap();
    s.send(WsMessage::text(twilio_start(
        call,
        r#"["inbound","outbound"]"#,
    )))
    .await
    .unwrap();
    match h.next().await {
        CallEvent::Start {
            call_id,
            source,
            speakers,
        } => {
            assert_eq!((call_id.as_str(), source), (call, "twilio"));
            assert_eq!(speakers, vec![Speaker::Customer, Speaker::Agent]);
        }
        other => panic!("{other:?}"),
    }
    // Inbound chunks arrive 1, 3, 2, 2 (duplicate), 4; outbound 1, 2.
    let chunk = |i: usize| vec![MU[i].0; 160];
    let script = [
        twilio_media(2, "inbound", 1, &chunk(0)),
        twilio_media(3, "inbound", 3, &chunk(2)),
        twilio_media(4, "outbound", 1, &chunk(4)),
        twilio_media(5, "inbound", 2, &chunk(1)),
        twilio_media(6, "inbound", 2, &chunk(1)),
        twilio_media(7, "outbound", 2, &chunk(4)),
        r#"{"event":"mark","sequenceNumber":"8","streamSid":"MZ","mark":{"name":"m1"}}"#.to_string(),
        twilio_media(9, "inbound", 4, &chunk(3)),
        r#"{"event":"stop","sequenceNumber":"10","stop":{"accountSid":"AC0","callSid":"CAtwilio0001"},"streamSid":"MZ"}"#.to_string(),
    ];
    for m in script {
        s.send(WsMessage::text(m)).await.unwrap();
    }
    let evs = h.until_ends(call, 2).await;
    let cust = samples_of(&evs, call, Speaker::Customer);
    assert_eq!(cust.len(), 4 * 160);
    for (k, want) in [MU[0].1, MU[1].1, MU[2].1, MU[3].1].iter().enumerate() {
        assert!(
            cust[k * 160..(k + 1) * 160]
                .iter()
                .all(|v| *v == want / 32768.0),
            "chunk {k}"
        );
    }
    let agent = samples_of(&evs, call, Speaker::Agent);
    assert_eq!(agent.len(), 320);
    assert!(agent.iter().all(|v| *v == MU[4].1 / 32768.0));
    assert!(evs
        .iter()
        .all(|e| !matches!(e, CallEvent::Audio { sample_rate, .. } if *sample_rate != 8000)));
    assert_eq!(
        end_reason(&evs, call, Speaker::Customer).as_deref(),
        Some("hangup")
    );
    assert_eq!(
        end_reason(&evs, call, Speaker::Agent).as_deref(),
        Some("hangup")
    );
    assert_eq!(
        h.metrics
            .reorder_dropped
            .with(&["twilio", "duplicate"])
            .get(),
        1
    );
    ws_closed(&mut s).await;
    h.shutdown.cancel();
}

#[tokio::test]
async fn twilio_bad_data_closes_only_that_socket() {
    let mut h = http_server().await;
    let good_call = "CAgood";
    let mut good = ws(h.addr, "/media/twilio").await;
    good.send(WsMessage::text(twilio_start(good_call, r#"["inbound"]"#)))
        .await
        .unwrap();
    assert!(matches!(h.next().await, CallEvent::Start { .. }));

    // Bad base64 after start → End error, socket closed with a reason.
    let mut bad = ws(h.addr, "/media/twilio").await;
    bad.send(WsMessage::text(twilio_start("CAbad64", r#"["inbound"]"#)))
        .await
        .unwrap();
    bad.send(WsMessage::text(
        r#"{"event":"media","sequenceNumber":"2","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":"!!not base64!!"},"streamSid":"MZ"}"#,
    ))
    .await
    .unwrap();
    let reason = ws_closed(&mut bad).await;
    assert!(reason.contains("base64"), "{reason}");

    // Bad JSON before start → closed, no events.
    let mut junk = ws(h.addr, "/media/twilio").await;
    junk.send(WsMessage::text("{not json")).await.unwrap();
    assert!(ws_closed(&mut junk).await.contains("JSON"));

    // Wrong encoding → refused.
    let mut alaw = ws(h.addr, "/media/twilio").await;
    alaw.send(WsMessage::text(
        twilio_start("CAalaw", r#"["inbound"]"#).replace("x-mulaw", "x-alaw"),
    ))
    .await
    .unwrap();
    assert!(ws_closed(&mut alaw)
        .await
        .contains("unsupported media format"));

    // The good stream continues.
    good.send(WsMessage::text(twilio_media(2, "inbound", 1, &[0xff; 160])))
        .await
        .unwrap();
    good.send(WsMessage::text(twilio_media(3, "inbound", 2, &[0xff; 160])))
        .await
        .unwrap();
    drop(good); // no stop: disconnected
    let evs = h.until_ends(good_call, 1).await;
    assert_eq!(samples_of(&evs, good_call, Speaker::Customer).len(), 320);
    assert_eq!(
        end_reason(&evs, good_call, Speaker::Customer).as_deref(),
        Some("disconnected")
    );
    let r = end_reason(&evs, "CAbad64", Speaker::Customer).expect("End for the bad stream");
    assert!(r.starts_with("error: bad base64"), "{r}");
    assert!(evs
        .iter()
        .all(|e| !matches!(e, CallEvent::Start { call_id, .. } if call_id == "CAalaw")));
    let m = &h.metrics;
    assert_eq!(m.bad_frames.with(&["twilio", "bad_base64"]).get(), 1);
    assert_eq!(m.bad_frames.with(&["twilio", "bad_json"]).get(), 1);
    assert_eq!(m.bad_frames.with(&["twilio", "bad_format"]).get(), 1);
    h.shutdown.cancel();
}

#[tokio::test]
async fn l16_stereo_gives_both_speakers() {
    let mut h = http_server().await;
    let mut s = ws(h.addr, "/media/l16").await;
    s.send(WsMessage::text(
        r#"{"call_id":"fs-0001","sample_rate":16000,"channels":2}"#,
    ))
    .await
    .unwrap();
    match h.next().await {
        CallEvent::Start {
            call_id,
            source,
            speakers,
        } => {
            assert_eq!((call_id.as_str(), source), ("fs-0001", "l16"));
            assert_eq!(speakers, vec![Speaker::Customer, Speaker::Agent]);
        }
        other => panic!("{other:?}"),
    }
    // 10 ms of interleaved stereo: customer +1000, agent −1000.
    let frames: Vec<i16> = (0..160).flat_map(|_| [1000i16, -1000]).collect();
    for _ in 0..3 {
        s.send(WsMessage::binary(pcm(&frames))).await.unwrap();
    }
    s.send(WsMessage::text(r#"{"event":"ignored"}"#))
        .await
        .unwrap();
    s.close(None).await.unwrap();
    let evs = h.until_ends("fs-0001", 2).await;
    let c = samples_of(&evs, "fs-0001", Speaker::Customer);
    let a = samples_of(&evs, "fs-0001", Speaker::Agent);
    assert_eq!((c.len(), a.len()), (480, 480));
    assert!(c.iter().all(|v| *v == 1000.0 / 32768.0));
    assert!(a.iter().all(|v| *v == -1000.0 / 32768.0));
    assert!(evs
        .iter()
        .all(|e| !matches!(e, CallEvent::Audio { sample_rate, .. } if *sample_rate != 16000)));
    assert_eq!(
        end_reason(&evs, "fs-0001", Speaker::Agent).as_deref(),
        Some("disconnected")
    );
    h.shutdown.cancel();
}

#[tokio::test]
async fn l16_validates_metadata_and_frame_sizes() {
    let mut h = http_server().await;
    for meta in [
        r#"{"call_id":"x","sample_rate":96000,"channels":1}"#,
        r#"{"call_id":"x","sample_rate":8000,"channels":3}"#,
        r#"{"call_id":"a/b","sample_rate":8000,"channels":1}"#,
        r#"{"sample_rate":8000}"#,
    ] {
        let mut s = ws(h.addr, "/media/l16").await;
        s.send(WsMessage::text(meta)).await.unwrap();
        let reason = ws_closed(&mut s).await;
        assert!(reason.starts_with("error: "), "{meta}: {reason}");
    }
    let mut s = ws(h.addr, "/media/l16").await;
    s.send(WsMessage::text(
        r#"{"call_id":"mono1","sample_rate":8000,"channels":2}"#,
    ))
    .await
    .unwrap();
    assert!(matches!(h.next().await, CallEvent::Start { .. }));
    s.send(WsMessage::binary(vec![0u8; 6])).await.unwrap(); // 1.5 stereo frames
    let reason = ws_closed(&mut s).await;
    assert!(reason.contains("not whole"), "{reason}");
    let evs = h.until_ends("mono1", 2).await;
    assert!(end_reason(&evs, "mono1", Speaker::Customer)
        .unwrap()
        .starts_with("error: "));
    assert_eq!(h.metrics.bad_frames.with(&["l16", "bad_metadata"]).get(), 3);

    // /healthz and /metrics on the same server.
    let body = http_get(h.addr, "/metrics").await;
    assert!(
        body.contains("calltone_bad_frames_total{source=\"l16\",reason=\"odd_length\"} 1"),
        "{body}"
    );
    let health = http_get(h.addr, "/healthz").await;
    assert!(
        health.contains("\"ok\":true") && health.contains("\"broker_connected\":null"),
        "{health}"
    );
    let calls = http_get(h.addr, "/api/calls").await;
    assert!(calls.ends_with("[]"), "{calls}");
    h.shutdown.cancel();
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}
