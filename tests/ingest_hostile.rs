//! Hostile or unusual ingest against the real `calltone serve` (real sockets, the MQTT broker
//! on 127.0.0.1:1883, every wait bounded):
//!
//! * AudioSocket audio kinds `0x17`/`0x18` (96/192 kHz) are above the pipeline's 8–48 kHz:
//!   the leg that sends one is closed with one logged, counted reason, and the call's other
//!   leg is analysed and ends as usual — whether the bad frame is the call's first audio or
//!   arrives mid-call.
//! * A call's free leg can only be joined over the source that opened the call: an
//!   AudioSocket client naming a mono L16 call, or a Twilio `outbound` stream naming an
//!   AudioSocket call, is refused before it sends anything (`other_source`) and can neither
//!   add audio to the call, keep it open nor set its end reason.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::broker::{of_call, subscribe, unique, Received};
use common::service::{slin_frame, uuid_call_id, Serve};
use tungstenite::Message;

/// A service on a unique MQTT site, online; `None` (test skipped, with a printed reason)
/// without the Whisper model or the broker on 127.0.0.1:1883.
fn service(tag: &str) -> Option<(tempfile::TempDir, Received, Serve)> {
    let model = common::model()?;
    if !common::broker::port_open(1883) {
        eprintln!("SKIP: no MQTT broker on 127.0.0.1:1883");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let site = unique(tag);
    let rec = subscribe(1883, &site);
    let serve = Serve::start(dir.path(), "mqtt://127.0.0.1:1883", &site, &model);
    rec.wait_for("online", Duration::from_secs(20), |ev| {
        ev.iter()
            .any(|(t, v, _)| t.ends_with("/status") && v["state"] == "online")
    });
    Some((dir, rec, serve))
}

/// A UUID no other test run uses.
fn fresh_uuid(tag: u8) -> [u8; 16] {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mut u = [0u8; 16];
    u[..12].copy_from_slice(&n.to_le_bytes()[..12]);
    u[12..15].copy_from_slice(&std::process::id().to_le_bytes()[..3]);
    u[15] = tag;
    u
}

/// `n` samples of a sine at `f` Hz sampled at `rate`, from sample `t0`, as s16le.
fn tone(rate: u32, n: usize, f: f64, t0: usize) -> Vec<u8> {
    (t0..t0 + n)
        .flat_map(|i| {
            let x = 8000.0 * (2.0 * std::f64::consts::PI * f * i as f64 / rate as f64).sin();
            (x as i16).to_le_bytes()
        })
        .collect()
}

/// An AudioSocket connection that has named its call.
fn audiosocket_leg(port: u16, uuid: &[u8; 16]) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    s.write_all(&slin_frame(0x01, uuid)).unwrap();
    s
}

/// Watches `s` for the service closing it: the time from now to EOF (or a reset), or `None`
/// if it is still open after `within`. Whatever the service sends is discarded.
fn watch_close(s: &TcpStream, within: Duration) -> JoinHandle<Option<Duration>> {
    let mut r = s.try_clone().unwrap();
    std::thread::spawn(move || {
        let t0 = Instant::now();
        let mut buf = [0u8; 1024];
        loop {
            let left = within.checked_sub(t0.elapsed())?;
            r.set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            match r.read(&mut buf) {
                Ok(0) => return Some(t0.elapsed()),
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if t0.elapsed() >= within {
                        return None;
                    }
                }
                Err(_) => return Some(t0.elapsed()),
            }
        }
    })
}

/// Sleeps until `k` × 20 ms after `t0` (real-time pacing).
fn pace(t0: Instant, k: usize) {
    let due = t0 + Duration::from_millis(20 * k as u64);
    if let Some(d) = due.checked_duration_since(Instant::now()) {
        std::thread::sleep(d);
    }
}

/// A labelled sample of `/metrics`, e.g.
/// `labelled(s, "calltone_bad_frames_total", r#"source="audiosocket",reason="oversize""#)`;
/// 0 when the series is absent.
fn labelled(serve: &Serve, name: &str, labels: &str) -> f64 {
    let prefix = format!("{name}{{{labels}}} ");
    serve
        .get("/metrics")
        .lines()
        .find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Warnings in the service log naming `call_id` and containing `needle`.
fn warnings(serve: &Serve, call_id: &str, needle: &str) -> Vec<String> {
    std::fs::read_to_string(&serve.log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(" WARN ") && l.contains(call_id) && l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// The one refusal a test provoked: counted once as a bad frame of `reason` from `source`,
/// with `closed` once as a connection closed for that reason, and with `needle` logged in
/// one warning naming the call.
fn refused_once(
    serve: &Serve,
    source: &str,
    reason: &str,
    closed: Option<&str>,
    call_id: &str,
    needle: Option<&str>,
) {
    let series = |name: &str, reason: &str| {
        labelled(
            serve,
            name,
            &format!(r#"source="{source}",reason="{reason}""#),
        )
    };
    assert_eq!(series("calltone_bad_frames_total", reason), 1.0, "{reason}");
    if let Some(c) = closed {
        assert_eq!(series("calltone_connections_closed_total", c), 1.0, "{c}");
    }
    if let Some(n) = needle {
        let why = warnings(serve, call_id, n);
        assert_eq!(why.len(), 1, "one logged reason: {why:#?}");
    }
}

/// The call's `call_ended`, waited for (bounded).
fn call_ended(rec: &Received, call_id: &str, within: Duration) -> serde_json::Value {
    rec.wait_for(&format!("call_ended of {call_id}"), within, |ev| {
        of_call(ev, call_id)
            .iter()
            .any(|(_, v, _)| v["type"] == "call_ended")
    });
    let ev = rec.events();
    let mine = of_call(&ev, call_id);
    assert_eq!(
        mine.first().map(|(_, v, _)| v["type"].clone()),
        Some("call_started".into()),
        "{mine:?}"
    );
    mine.iter()
        .find(|(_, v, _)| v["type"] == "call_ended")
        .map(|(_, v, _)| v.clone())
        .unwrap()
}

/// The first audio of a call is 96 kHz (`0x17`): that leg is closed as bad data, once,
/// and the other leg's 8 kHz audio is still analysed and published as a call.
#[test]
fn a_96k_first_leg_is_closed_and_the_other_leg_is_still_analysed() {
    let Some((_dir, rec, serve)) = service("as96first") else {
        return;
    };
    let uuid = fresh_uuid(1);
    let call_id = uuid_call_id(&uuid);
    let mut a = audiosocket_leg(serve.audiosocket, &uuid);
    std::thread::sleep(Duration::from_millis(200));
    let mut b = audiosocket_leg(serve.audiosocket, &uuid);
    std::thread::sleep(Duration::from_millis(200));

    // Leg A (customer) opens with 20 ms at 96 kHz and keeps sending it; leg B (agent)
    // streams 3 s at 8 kHz in real time, then hangs up.
    let a_closed = watch_close(&a, Duration::from_secs(5));
    let t0 = Instant::now();
    for k in 0..150 {
        let _ = a.write_all(&slin_frame(0x17, &tone(96_000, 1920, 220.0, k * 1920)));
        b.write_all(&slin_frame(0x10, &tone(8000, 160, 300.0, k * 160)))
            .unwrap();
        pace(t0, k + 1);
    }
    b.write_all(&slin_frame(0x00, &[])).unwrap();
    let a_closed = a_closed.join().unwrap();
    assert!(
        a_closed.is_some(),
        "the 96 kHz leg was kept open:\n{}",
        serve.log_tail(10)
    );

    let ended = call_ended(&rec, &call_id, Duration::from_secs(30));
    assert_eq!(ended["reason"], "hangup", "{ended}");
    let duration = ended["duration"].as_f64().unwrap();
    assert!(
        (2.5..4.0).contains(&duration),
        "the 8 kHz leg's 3 s: {ended}"
    );
    refused_once(
        &serve,
        "audiosocket",
        "unsupported_rate",
        Some("error"),
        &call_id,
        Some("96000"),
    );
    serve.terminate();
}

/// A leg that sends 96 kHz audio into a running call is closed after its first such frame,
/// with one log line (not one per frame); the call goes on and ends as its other leg says.
#[test]
fn a_96k_leg_joining_a_running_call_is_closed_with_one_logged_reason() {
    let Some((_dir, rec, serve)) = service("as96mid") else {
        return;
    };
    let uuid = fresh_uuid(2);
    let call_id = uuid_call_id(&uuid);
    let mut a = audiosocket_leg(serve.audiosocket, &uuid);
    let t0 = Instant::now();
    let mut b: Option<(TcpStream, JoinHandle<Option<Duration>>)> = None;
    for k in 0..150 {
        a.write_all(&slin_frame(0x10, &tone(8000, 160, 220.0, k * 160)))
            .unwrap();
        if k == 25 {
            let s = audiosocket_leg(serve.audiosocket, &uuid);
            let w = watch_close(&s, Duration::from_secs(5));
            b = Some((s, w));
        }
        if let Some((s, _)) = b.as_mut().filter(|_| (30..80).contains(&k)) {
            let _ = s.write_all(&slin_frame(0x18, &tone(192_000, 3840, 300.0, k * 3840)));
        }
        pace(t0, k + 1);
    }
    let (b, b_closed) = b.unwrap();
    assert!(
        b_closed.join().unwrap().is_some(),
        "the 192 kHz leg was kept open:\n{}",
        serve.log_tail(10)
    );
    a.write_all(&slin_frame(0x00, &[])).unwrap();

    let ended = call_ended(&rec, &call_id, Duration::from_secs(30));
    assert_eq!(ended["reason"], "hangup", "{ended}");
    assert!(ended["duration"].as_f64().unwrap() >= 2.5, "{ended}");
    refused_once(
        &serve,
        "audiosocket",
        "unsupported_rate",
        None,
        &call_id,
        Some("192000"),
    );
    drop(b);
    serve.terminate();
}

/// A mono L16 stream owns only the customer leg; an AudioSocket client naming the call is
/// refused at once instead of taking the free agent leg: it cannot keep the call open after
/// its owner leaves nor set its end reason.
#[test]
fn audiosocket_cannot_take_the_free_leg_of_a_mono_l16_call() {
    let Some((_dir, rec, serve)) = service("joinl16") else {
        return;
    };
    let uuid = fresh_uuid(3);
    let call_id = uuid_call_id(&uuid);
    let (mut owner, _) = tungstenite::connect(format!("ws://127.0.0.1:{}/media/l16", serve.media))
        .expect("ws connect");
    owner
        .send(Message::text(
            serde_json::json!({"call_id": call_id, "sample_rate": 8000, "channels": 1}).to_string(),
        ))
        .unwrap();
    let t0 = Instant::now();
    let mut attacker: Option<(TcpStream, JoinHandle<Option<Duration>>)> = None;
    for k in 0..100 {
        owner
            .send(Message::binary(tone(8000, 160, 220.0, k * 160)))
            .unwrap();
        if k == 25 {
            let s = audiosocket_leg(serve.audiosocket, &uuid);
            let w = watch_close(&s, Duration::from_secs(3));
            attacker = Some((s, w));
        }
        if let Some((s, _)) = attacker.as_mut().filter(|_| k > 25) {
            let _ = s.write_all(&slin_frame(0x10, &tone(8000, 160, 440.0, k * 160)));
        }
        pace(t0, k + 1);
    }
    let (mut attacker, closed) = attacker.unwrap();
    let closed = closed.join().unwrap();
    // The owner leaves; the attacker stays one more second and then hangs up.
    let _ = owner.close(None);
    for k in 100..150 {
        let _ = attacker.write_all(&slin_frame(0x10, &tone(8000, 160, 440.0, k * 160)));
        pace(t0, k + 1);
    }
    let _ = attacker.write_all(&slin_frame(0x00, &[]));
    assert!(
        closed.is_some_and(|d| d < Duration::from_secs(2)),
        "the AudioSocket connection joined the L16 call:\n{}",
        serve.log_tail(10)
    );

    let ended = call_ended(&rec, &call_id, Duration::from_secs(30));
    assert_eq!(
        ended["reason"], "disconnected",
        "the owner's reason: {ended}"
    );
    let ev = rec.events();
    assert!(
        of_call(&ev, &call_id)
            .iter()
            .all(|(_, v, _)| v["speaker"] != "agent"),
        "the attacker's leg reached the call"
    );
    refused_once(
        &serve,
        "audiosocket",
        "other_source",
        Some("rejected"),
        &call_id,
        Some("other_source"),
    );
    serve.terminate();
}

/// A Twilio stream with only the `outbound` track (the agent) naming an AudioSocket call
/// whose agent leg is free is refused with close 1008 `other_source`; the call is the
/// AudioSocket leg's alone.
#[test]
fn a_twilio_outbound_stream_cannot_take_a_leg_of_an_audiosocket_call() {
    let Some((_dir, rec, serve)) = service("jointwilio") else {
        return;
    };
    let uuid = fresh_uuid(4);
    let call_id = uuid_call_id(&uuid);
    let mut a = audiosocket_leg(serve.audiosocket, &uuid);
    let t0 = Instant::now();
    for k in 0..25 {
        a.write_all(&slin_frame(0x10, &tone(8000, 160, 220.0, k * 160)))
            .unwrap();
        pace(t0, k + 1);
    }
    let (mut ws, _) = tungstenite::connect(format!("ws://127.0.0.1:{}/media/twilio", serve.media))
        .expect("ws connect");
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    }
    ws.send(Message::text(
        serde_json::json!({"event": "start", "sequenceNumber": "1", "streamSid": "MZ1", "start": {
            "streamSid": "MZ1", "callSid": call_id, "accountSid": "AC1", "tracks": ["outbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})
        .to_string(),
    ))
    .unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode([0xffu8; 160]);
    let mut close_reason: Option<String> = None;
    for k in 25..125 {
        a.write_all(&slin_frame(0x10, &tone(8000, 160, 220.0, k * 160)))
            .unwrap();
        if close_reason.is_none() {
            let media = serde_json::json!({"event": "media", "streamSid": "MZ1",
                "media": {"track": "outbound", "chunk": (k - 24).to_string(),
                    "timestamp": ((k - 25) * 20).to_string(), "payload": &b64}});
            let _ = ws.send(Message::text(media.to_string()));
            match ws.read() {
                Ok(Message::Close(f)) => {
                    close_reason = Some(f.map(|f| f.reason.to_string()).unwrap_or_default())
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => close_reason = Some(String::new()),
            }
        }
        pace(t0, k + 1);
    }
    let _ = ws.send(Message::text(
        r#"{"event":"stop","streamSid":"MZ1","stop":{}}"#,
    ));
    assert_eq!(
        close_reason.as_deref(),
        Some("other_source"),
        "the Twilio stream joined the AudioSocket call:\n{}",
        serve.log_tail(10)
    );
    std::thread::sleep(Duration::from_millis(500));
    a.write_all(&slin_frame(0x00, &[])).unwrap();

    let ended = call_ended(&rec, &call_id, Duration::from_secs(30));
    assert_eq!(ended["reason"], "hangup", "{ended}");
    let ev = rec.events();
    assert!(
        of_call(&ev, &call_id)
            .iter()
            .all(|(_, v, _)| v["speaker"] != "agent"),
        "the Twilio stream's audio reached the call"
    );
    refused_once(&serve, "twilio", "other_source", None, &call_id, None);
    serve.terminate();
}
