//! `calltone serve` end to end: the real binary, the real Whisper model, real sockets and a
//! real broker. The demo call is streamed at real-time pace over AudioSocket (two legs) and
//! over the Twilio media-stream format; a subscriber checks the whole event sequence and
//! measures latency. Another test stops a private broker mid-call and SIGKILLs calltone
//! during the outage, then checks that nothing was lost after both restart.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use rumqttc::{Client, Event as MEvent, MqttOptions, Packet, QoS};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

fn unique(tag: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{tag}{}x{}", std::process::id(), n % 1_000_000_000)
}

/// A running `calltone serve`.
struct Serve {
    child: Child,
    http: u16,
    audiosocket: u16,
}

impl Serve {
    fn start(dir: &Path, mqtt_url: &str, site: &str, model: &Path) -> Serve {
        Self::start_on(dir, mqtt_url, site, model, free_port(), free_port())
    }

    fn start_on(
        dir: &Path,
        mqtt_url: &str,
        site: &str,
        model: &Path,
        http: u16,
        audiosocket: u16,
    ) -> Serve {
        let cfg = dir.join("calltone.toml");
        std::fs::write(
            &cfg,
            format!(
                "[asr]\nmodel = {model:?}\nqueue = 64\n[serve]\nhttp = \"127.0.0.1:{http}\"\naudiosocket = \"127.0.0.1:{audiosocket}\"\ndata_dir = {data:?}\nshutdown_grace_s = 20.0\n[mqtt]\nurl = {mqtt_url:?}\nsite = {site:?}\nbox = \"box1\"\nreconnect_max_ms = 1000\n",
                model = model.display().to_string(),
                data = dir.join("data").display().to_string(),
            ),
        )
        .unwrap();
        let log_path = dir.join(format!("serve-{http}-{}.log", unique("")));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = calltone()
            .args(["serve", "--config", cfg.to_str().unwrap()])
            .env("CALLTONE_LOG", "info,whisper_rs=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start calltone serve");
        let t0 = Instant::now();
        let mut child = child;
        while !(port_open(http) && port_open(audiosocket)) {
            let exited = child.try_wait().ok().flatten();
            if exited.is_some() || t0.elapsed() > Duration::from_secs(60) {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                panic!(
                    "serve did not start ({exited:?}):\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Serve {
            child,
            http,
            audiosocket,
        }
    }

    fn get(&self, path: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.http)).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body
    }

    fn terminate(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
    }

    fn sigkill(mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Messages received on `calltone/{site}/#`, with their arrival time.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, serde_json::Value, Instant)>>>);

impl Received {
    fn events(&self) -> Vec<(String, serde_json::Value, Instant)> {
        self.0.lock().unwrap().clone()
    }

    fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        f: impl Fn(&[(String, serde_json::Value, Instant)]) -> bool,
    ) {
        let t0 = Instant::now();
        while !f(&self.events()) {
            assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Subscribes (persistent session, re-subscribing after reconnects) in a thread.
fn subscribe(port: u16, site: &str) -> Received {
    let rec = Received::default();
    let mut opts = MqttOptions::new(unique("sub"), "127.0.0.1", port);
    opts.set_clean_session(false);
    opts.set_keep_alive(Duration::from_secs(5));
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut conn) = Client::new(opts, 1000);
    let topic = format!("calltone/{site}/#");
    let r = rec.clone();
    std::thread::spawn(move || {
        for ev in conn.iter() {
            match ev {
                Ok(MEvent::Incoming(Packet::ConnAck(_))) => {
                    let _ = client.subscribe(topic.clone(), QoS::AtLeastOnce);
                }
                Ok(MEvent::Incoming(Packet::Publish(p))) => {
                    if let Ok(v) = serde_json::from_slice(&p.payload) {
                        r.0.lock()
                            .unwrap()
                            .push((p.topic.clone(), v, Instant::now()));
                    }
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    });
    rec
}

/// The demo call's two channels at 8 kHz, as a telephone system would send them.
fn demo_8k(file: &str) -> (Vec<f32>, Vec<f32>) {
    let d = calltone::audio::decode_file(&root().join(file)).unwrap();
    let to8 = |x: &Vec<f32>| calltone::audio::resample_all(x, d.sample_rate, 8000).unwrap();
    (to8(&d.channels[0]), to8(&d.channels[1]))
}

fn slin_frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![kind];
    f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Streams a two-leg call over AudioSocket at `speed`× real time (1.0 = real time); returns
/// the instant the first audio frame was sent. With `stop_after` the legs just drop (as in a
/// crash of the sender) after that many seconds of audio.
fn stream_audiosocket(
    port: u16,
    uuid: [u8; 16],
    legs: (&[f32], &[f32]),
    speed: f64,
    stop_after: Option<f64>,
) -> Instant {
    // Legs are told apart by arrival order (first = customer), as Asterisk starts them one
    // after the other; give the first leg's UUID time to register before the second connects.
    let mut socks: Vec<TcpStream> = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_nodelay(true).unwrap();
        s.write_all(&slin_frame(0x01, &uuid)).unwrap();
        socks.push(s);
        std::thread::sleep(Duration::from_millis(200));
    }
    let frame = 160; // 20 ms at 8 kHz
    let n = legs.0.len().max(legs.1.len());
    let t0 = Instant::now();
    for (k, start) in (0..n).step_by(frame).enumerate() {
        if stop_after.is_some_and(|s| start as f64 / 8000.0 >= s) {
            // Keep the legs connected (a call still in progress) until the process exits.
            std::mem::forget(socks);
            return t0;
        }
        for (s, leg) in socks.iter_mut().zip([legs.0, legs.1]) {
            let pcm: Vec<u8> = (start..start + frame)
                .map(|i| leg.get(i).copied().unwrap_or(0.0))
                .flat_map(|x| ((x * 32767.0).round() as i16).to_le_bytes())
                .collect();
            s.write_all(&slin_frame(0x10, &pcm)).unwrap();
        }
        let due = Duration::from_secs_f64((k + 1) as f64 * 0.02 / speed);
        if let Some(w) = due.checked_sub(t0.elapsed()) {
            std::thread::sleep(w);
        }
    }
    for s in &mut socks {
        let _ = s.write_all(&slin_frame(0x00, &[]));
    }
    t0
}

fn of_call<'a>(
    ev: &'a [(String, serde_json::Value, Instant)],
    call_id: &str,
) -> Vec<&'a (String, serde_json::Value, Instant)> {
    ev.iter()
        .filter(|(_, v, _)| v["call_id"] == call_id)
        .collect()
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Checks the sequence of one streamed demo call and prints its latencies.
fn check_demo_call(
    ev: &[(String, serde_json::Value, Instant)],
    call_id: &str,
    site: &str,
    t0: Instant,
) {
    let mine = of_call(ev, call_id);
    let qos1: Vec<_> = mine
        .iter()
        .filter(|(t, _, _)| !t.ends_with("/state"))
        .collect();
    let base = format!("calltone/{site}/box1/calls/{call_id}");
    assert_eq!(
        qos1.first().unwrap().1["type"],
        "call_started",
        "{:?}",
        qos1.first()
    );
    assert_eq!(qos1.first().unwrap().0, format!("{base}/lifecycle"));
    let last = qos1.last().unwrap();
    assert_eq!(last.1["type"], "call_ended");
    assert_eq!(last.0, format!("{base}/lifecycle"));
    assert_eq!(last.1["reason"], "hangup");
    // QoS 1 events arrive in order; seq never repeats or goes back.
    for w in qos1.windows(2) {
        assert!(
            w[0].1["seq"].as_u64() < w[1].1["seq"].as_u64(),
            "order: {} then {}",
            w[0].1,
            w[1].1
        );
    }
    for (topic, v, _) in &qos1 {
        let kind = v["type"].as_str().unwrap();
        let want = match kind {
            "utterance" => "utterance",
            "alert" => "alert",
            _ => "lifecycle",
        };
        assert_eq!(*topic, format!("{base}/{want}"));
    }
    let utts: Vec<_> = qos1
        .iter()
        .filter(|(_, v, _)| v["type"] == "utterance")
        .collect();
    for who in ["customer", "agent"] {
        let n = utts
            .iter()
            .filter(|(_, v, _)| v["speaker"] == who && !v["text"].as_str().unwrap().is_empty())
            .count();
        assert!(n >= 4, "{n} transcribed {who} utterances");
    }
    let customer: String = utts
        .iter()
        .filter(|(_, v, _)| v["speaker"] == "customer")
        .map(|(_, v, _)| v["text"].as_str().unwrap().to_lowercase())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        customer.contains("cancel") && customer.contains("supervisor"),
        "{customer}"
    );
    let alerts: Vec<_> = qos1
        .iter()
        .filter(|(_, v, _)| v["type"] == "alert")
        .collect();
    assert!(
        alerts
            .iter()
            .any(|(_, v, _)| v["kind"] == "customer_stress"),
        "no stress alert"
    );
    assert!(
        alerts
            .iter()
            .any(|(_, v, _)| v["kind"] == "escalation_phrase"),
        "no phrase alert"
    );
    // State was live while the call ran.
    assert!(
        mine.iter()
            .filter(|(t, _, _)| t.ends_with("/state"))
            .count()
            >= 10
    );

    // Latency: the audio at call time `x` left the sender at t0 + x.
    let since = |x: f64, at: &Instant| at.duration_since(t0).as_secs_f64() - x;
    for (_, a, at) in &alerts {
        eprintln!(
            "{call_id}: alert {} at call t={:.2}, audio→subscriber latency {:.3} s",
            a["kind"],
            a["end"].as_f64().unwrap(),
            since(a["end"].as_f64().unwrap(), at)
        );
    }
    let stress: Vec<f64> = alerts
        .iter()
        .filter(|(_, v, _)| v["kind"] == "customer_stress")
        .map(|(_, v, at)| since(v["end"].as_f64().unwrap(), at))
        .collect();
    let asr: Vec<f64> = utts
        .iter()
        .map(|(_, v, at)| since(v["end"].as_f64().unwrap(), at))
        .collect();
    eprintln!(
        "{call_id}: prosody alert latency {:.3} s; utterance-end→transcript latency p50 {:.3} s p95 {:.3} s (n={})",
        stress[0],
        percentile(asr.clone(), 0.5),
        percentile(asr.clone(), 0.95),
        asr.len()
    );
    // Sanity: the alert is not from the future, and transcripts do come while the call runs.
    assert!(
        stress[0] > -0.2,
        "alert before its audio was sent? {}",
        stress[0]
    );
}

#[test]
fn demo_call_over_audiosocket_and_twilio_reaches_mqtt() {
    let Some(model) = model() else { return };
    if !port_open(1883) {
        eprintln!("SKIP: no MQTT broker on 127.0.0.1:1883");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let site = unique("e2e");
    let rec = subscribe(1883, &site);
    let serve = Serve::start(dir.path(), "mqtt://127.0.0.1:1883", &site, &model);
    rec.wait_for("retained online status", Duration::from_secs(20), |ev| {
        ev.iter()
            .any(|(t, v, _)| t.ends_with("/status") && v["state"] == "online")
    });
    let (c, a) = demo_8k("demo/demo-call.wav");

    // AudioSocket (two legs) and Twilio at the same time, both at real-time pace.
    let uuid: [u8; 16] = *b"\x6a\x1b\x2c\x3d\x4e\x5f\x40\x71\x82\x93\xa4\xb5\xc6\xd7\xe8\xf9";
    let as_port = serve.audiosocket;
    let (c1, a1) = (c.clone(), a.clone());
    let as_thread =
        std::thread::spawn(move || stream_audiosocket(as_port, uuid, (&c1, &a1), 1.0, None));
    let tw_t0 = stream_twilio(serve.http, "CAtwiliodemo", &c, &a);
    let as_t0 = as_thread.join().unwrap();
    let as_call = "6a1b2c3d-4e5f-4071-8293-a4b5c6d7e8f9";
    rec.wait_for("both calls ended", Duration::from_secs(120), |ev| {
        [as_call, "CAtwiliodemo"].iter().all(|id| {
            ev.iter()
                .any(|(_, v, _)| v["call_id"] == *id && v["type"] == "call_ended")
        })
    });
    let ev = rec.events();
    check_demo_call(&ev, as_call, &site, as_t0);
    check_demo_call(&ev, "CAtwiliodemo", &site, tw_t0);
    let metrics = serve.get("/metrics");
    assert!(
        metrics.contains("calltone_audio_to_alert_latency_seconds_count"),
        "{metrics}"
    );
    let health = serve.get("/healthz");
    assert!(health.contains("\"ok\":true"), "{health}");
    serve.terminate();
    rec.wait_for("offline status", Duration::from_secs(30), |ev| {
        ev.iter()
            .any(|(t, v, _)| t.ends_with("/status") && v["state"] == "offline")
    });
}

/// Streams the call in Twilio's media-stream format over a WebSocket; returns the instant
/// the first media frame was sent.
fn stream_twilio(http: u16, call_sid: &str, customer: &[f32], agent: &[f32]) -> Instant {
    use tungstenite::Message;
    let (mut ws, _) =
        tungstenite::connect(format!("ws://127.0.0.1:{http}/media/twilio")).expect("ws connect");
    let send = |ws: &mut tungstenite::WebSocket<_>, v: serde_json::Value| {
        ws.send(Message::text(v.to_string())).unwrap();
    };
    send(
        &mut ws,
        serde_json::json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}),
    );
    send(
        &mut ws,
        serde_json::json!({"event": "start", "sequenceNumber": "1", "streamSid": "MZ1", "start": {
        "streamSid": "MZ1", "callSid": call_sid, "accountSid": "AC1", "tracks": ["inbound", "outbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}),
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    let n = customer.len().max(agent.len());
    let t0 = Instant::now();
    let mut seq = 2u64;
    for (k, start) in (0..n).step_by(160).enumerate() {
        for (track, leg) in [("inbound", customer), ("outbound", agent)] {
            let bytes: Vec<u8> = (start..start + 160)
                .map(|i| {
                    let x = leg.get(i).copied().unwrap_or(0.0);
                    calltone::audio::g711::linear_to_ulaw((x * 32767.0).round() as i16)
                })
                .collect();
            send(
                &mut ws,
                serde_json::json!({"event": "media", "sequenceNumber": seq.to_string(), "streamSid": "MZ1",
                "media": {"track": track, "chunk": (k + 1).to_string(), "timestamp": (k * 20).to_string(), "payload": b64.encode(&bytes)}}),
            );
            seq += 1;
        }
        let due = Duration::from_secs_f64((k + 1) as f64 * 0.02);
        if let Some(w) = due.checked_sub(t0.elapsed()) {
            std::thread::sleep(w);
        }
    }
    send(
        &mut ws,
        serde_json::json!({"event": "stop", "sequenceNumber": seq.to_string(), "streamSid": "MZ1", "stop": {"accountSid": "AC1", "callSid": call_sid}}),
    );
    let _ = ws.close(None);
    t0
}

/// A private broker is stopped mid-call, calltone is SIGKILLed during the outage; after both
/// restart every QoS 1 event of the call arrives, and the call is ended by the restart.
#[test]
fn broker_outage_and_sigkill_lose_nothing() {
    let Some(model) = model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let Some(mut broker) = PrivateBroker::start(dir.path()) else {
        return;
    };
    let site = unique("kill");
    let rec = subscribe(broker.port, &site);
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    let (http, asp) = (free_port(), free_port());
    let serve = Serve::start_on(dir.path(), &url, &site, &model, http, asp);
    rec.wait_for("online", Duration::from_secs(20), |ev| {
        ev.iter().any(|(t, _, _)| t.ends_with("/status"))
    });
    let (c, a) = demo_8k("demo/demo-call.wav");
    let uuid = *b"\x11\x22\x33\x44\x55\x66\x47\x88\x99\xaa\xbb\xcc\xdd\xee\xff\x00";
    let call = "11223344-5566-4788-99aa-bbccddeeff00";
    // 20 s of call at 2x real time; the broker goes away at call time ~10 s.
    let (c1, a1) = (c.clone(), a.clone());
    let sender =
        std::thread::spawn(move || stream_audiosocket(asp, uuid, (&c1, &a1), 2.0, Some(24.0)));
    std::thread::sleep(Duration::from_secs(5));
    broker.stop();
    let _ = sender.join();
    std::thread::sleep(Duration::from_secs(6)); // utterances of the outage are transcribed into the outbox
    serve.sigkill();
    broker.restart();
    let serve = Serve::start_on(dir.path(), &url, &site, &model, http, asp);
    rec.wait_for(
        "restart_recovery call_ended",
        Duration::from_secs(60),
        |ev| {
            ev.iter()
                .any(|(_, v, _)| v["call_id"] == call && v["type"] == "call_ended")
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    let ev = rec.events();
    let mine = of_call(&ev, call);
    let mut by_seq: BTreeMap<u64, &serde_json::Value> = BTreeMap::new();
    for (_, v, _) in &mine {
        by_seq.insert(v["seq"].as_u64().unwrap(), v);
    }
    let end = mine
        .iter()
        .find(|(_, v, _)| v["type"] == "call_ended")
        .unwrap();
    assert_eq!(end.1["reason"], "restart_recovery");
    let last = end.1["seq"].as_u64().unwrap();
    let utterances = by_seq.values().filter(|v| v["type"] == "utterance").count();
    eprintln!(
        "received seqs {:?} of 0..={last}; {utterances} utterances",
        by_seq.keys().collect::<Vec<_>>()
    );
    for (s, v) in &by_seq {
        eprintln!("  {s} {} t={}", v["type"], v["t"]);
    }
    for f in std::fs::read_dir(dir.path()).unwrap().flatten() {
        if f.file_name().to_string_lossy().ends_with(".log") {
            let _ = std::fs::copy(
                f.path(),
                std::env::temp_dir().join(format!("calltone-{}", f.file_name().to_string_lossy())),
            );
        }
    }
    assert!(utterances >= 4, "utterances lost: {utterances}");
    // Every seq is there, except QoS 0 `state` ticks published while the broker was down
    // (best effort by contract): each gap must fit the state ticks of the time it spans.
    let mut prev: Option<(u64, f64)> = None;
    for (&s, v) in &by_seq {
        let t = v["t"].as_f64().unwrap();
        if let Some((ps, pt)) = prev {
            let gap = s - ps - 1;
            let ticks = (t - pt).ceil() as u64 + 1;
            assert!(
                gap <= ticks,
                "seq {ps}..{s} ({pt:.1}..{t:.1} s): {gap} missing events, more than state ticks"
            );
        } else {
            assert_eq!(s, 0, "call_started lost");
        }
        prev = Some((s, t));
    }
    assert_eq!(*by_seq.keys().last().unwrap(), last);
    serve.terminate();
}

/// A private Mosquitto on a free port with persistence (so the subscriber's session and
/// queued messages survive its restart).
struct PrivateBroker {
    port: u16,
    conf: PathBuf,
    child: Option<Child>,
}

impl PrivateBroker {
    fn start(dir: &Path) -> Option<Self> {
        if Command::new("mosquitto")
            .arg("-h")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            eprintln!("SKIP: mosquitto binary not found");
            return None;
        }
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("user root\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nmax_queued_messages 100000\n", dir.display()),
        )
        .unwrap();
        let mut b = Self {
            port,
            conf,
            child: None,
        };
        b.restart();
        Some(b)
    }

    fn restart(&mut self) {
        self.child = Some(
            Command::new("mosquitto")
                .arg("-c")
                .arg(&self.conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("mosquitto"),
        );
        let t0 = Instant::now();
        while !port_open(self.port) {
            assert!(t0.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
