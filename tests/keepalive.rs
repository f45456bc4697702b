//! Kept-alive connections cannot hold a listener's slots: against the real `calltone serve`
//! (127.0.0.1, every wait bounded), connections that make one request and then idle — or
//! drip the next request's headers — are closed after `security.http_header_timeout_s`, so
//! a Twilio media stream gets in again; a media stream sending audio and a live feed (SSE)
//! stay open well past that timeout; an HTTP/2 client is closed at its preface.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tungstenite::Message;

/// `security.http_header_timeout_s` of the service under test.
const TIMEOUT: Duration = Duration::from_secs(1);
/// `security.max_connections` (per listener).
const SLOTS: usize = 4;

type Ws = tungstenite::WebSocket<TcpStream>;

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// A keep-alive connection that has made one request (`GET /nope`, 404) and holds on.
fn one_request_then_idle(port: u16) -> TcpStream {
    let mut s = connect(port);
    s.write_all(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).expect("a response");
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    s
}

/// Reads until EOF or error; panics when the server keeps it open past `within`.
fn closed_within(s: &mut TcpStream, within: Duration) {
    let t0 = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        let left = within.saturating_sub(t0.elapsed());
        assert!(
            !left.is_zero(),
            "the server kept the connection open for {within:?}"
        );
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

/// True when the peer has not closed: a short read times out (or brings data).
fn still_open(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 4096];
    match s.read(&mut buf) {
        Ok(n) => n > 0,
        Err(e) => matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

/// A WebSocket upgrade of `/media/twilio`.
fn twilio_ws(port: u16) -> Result<Ws, String> {
    let s = connect(port);
    tungstenite::client(format!("ws://127.0.0.1:{port}/media/twilio"), s)
        .map(|(ws, _)| ws)
        .map_err(|e| e.to_string())
}

fn twilio_start(call_sid: &str) -> Message {
    Message::text(common::twilio::start(call_sid))
}

/// 20 ms of μ-law silence, chunk `chunk`.
fn twilio_media(chunk: u64) -> Message {
    Message::text(common::twilio::media("inbound", chunk, &[0xffu8; 160]))
}

/// `calltone_connections_closed_total{source=SOURCE,reason=REASON}` (0 when absent).
fn closed_total(metrics: &str, source: &str, reason: &str) -> f64 {
    let key =
        format!("calltone_connections_closed_total{{source=\"{source}\",reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&key)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn idle_keep_alive_connections_are_closed_and_streams_are_not() {
    let Some(model) = common::model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let tables = format!(
        "[security]\nmax_connections = {SLOTS}\nhttp_header_timeout_s = {}\n[media_stream]\nread_timeout_s = 30.0\n",
        TIMEOUT.as_secs_f64()
    );
    let mut setup = common::service::ServeSetup::new(&model, "mqtt://127.0.0.1:1", "keepalive");
    setup.tables = &tables;
    let serve = common::service::Serve::launch(
        dir.path(),
        &setup,
        common::broker::free_port(),
        common::broker::free_port(),
    );

    // A live feed on the supervisor listener; it writes its snapshot, then nothing for 15 s.
    let mut feed = connect(serve.http);
    feed.write_all(b"GET /api/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = feed.read(&mut buf).unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(
        head.starts_with("HTTP/1.1 200") && head.contains("text/event-stream"),
        "{head}"
    );

    // One media stream sending audio at real time takes a slot for the whole test.
    let mut call = twilio_ws(serve.media).expect("the first media stream");
    call.send(twilio_start("CAkeepalive")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sender = std::thread::spawn({
        let stop = stop.clone();
        move || {
            let t0 = Instant::now();
            let mut chunk = 1u64;
            while !stop.load(Ordering::Relaxed) {
                if let Err(e) = call.send(twilio_media(chunk)) {
                    return Err(format!("media stream cut after {:?}: {e}", t0.elapsed()));
                }
                chunk += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok((call, t0.elapsed()))
        }
    });

    // The other slots: keep-alive connections that made one request each, then idle — one
    // of them dripping the next request's headers.
    let mut idle: Vec<TcpStream> = (0..SLOTS - 2)
        .map(|_| one_request_then_idle(serve.media))
        .collect();
    let mut drip = one_request_then_idle(serve.media);
    let dripping = std::thread::spawn({
        let mut d = drip.try_clone().unwrap();
        move || {
            let _ = d.write_all(b"GET /media/twilio HTTP/1.1\r\n");
            for _ in 0..50 {
                std::thread::sleep(Duration::from_millis(100));
                if d.write_all(b"X").is_err() {
                    break;
                }
            }
        }
    });
    let filled = Instant::now();

    // The listener is full: a media stream is refused.
    assert!(
        twilio_ws(serve.media).is_err(),
        "a media stream got in while all {SLOTS} slots were held"
    );

    // After the timeout the held connections are closed...
    let within = TIMEOUT + Duration::from_secs(3);
    for s in idle.iter_mut().chain(std::iter::once(&mut drip)) {
        closed_within(s, within.saturating_sub(filled.elapsed()));
    }
    let held = filled.elapsed();
    eprintln!(
        "{} kept-alive connections closed {held:?} after they idled",
        SLOTS - 1
    );
    dripping.join().unwrap();

    // ...and a media stream gets in again.
    let mut second = twilio_ws(serve.media).expect("a media stream after the idle ones closed");
    second.send(twilio_start("CAkeepalive2")).unwrap();

    // The stream that kept sending audio and the live feed are open well past the timeout.
    std::thread::sleep((TIMEOUT * 3).saturating_sub(filled.elapsed()));
    stop.store(true, Ordering::Relaxed);
    let (mut call, streamed) = sender.join().unwrap().unwrap();
    assert!(streamed > TIMEOUT * 3, "{streamed:?}");
    call.get_mut()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    match call.read() {
        Err(tungstenite::Error::Io(e))
            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("the media stream sending audio was closed: {other:?}"),
    }
    call.send(twilio_media(100_000))
        .expect("the media stream is still open");
    assert!(still_open(&mut feed), "the live feed was closed");

    // HTTP/2 (cleartext prior knowledge) is not served: closed at its preface, not kept.
    let mut h2 = connect(serve.media);
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .unwrap();
    closed_within(&mut h2, TIMEOUT / 2);

    let metrics = serve.get("/metrics");
    assert_eq!(
        closed_total(&metrics, "media", "idle_timeout"),
        (SLOTS - 2) as f64,
        "{}",
        serve.log_tail(20)
    );
    assert_eq!(closed_total(&metrics, "media", "header_timeout"), 1.0);
    assert!(closed_total(&metrics, "media", "too_many_connections") >= 1.0);
    let _ = call.close(None);
    let _ = second.close(None);
    serve.terminate();
}
