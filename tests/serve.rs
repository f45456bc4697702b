//! `calltone serve` end to end: the real binary, the real Whisper model, real sockets and a
//! real broker. The demo call is streamed at real-time pace over AudioSocket (two legs) and
//! over the Twilio media-stream format; a subscriber checks the whole event sequence and
//! measures latency. Another test stops a private broker mid-call and SIGKILLs calltone
//! during the outage, then checks that nothing was lost after both restart.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine;
use common::broker::*;
use common::service::*;
use common::*;

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
    let tw_t0 = stream_twilio(serve.media, "CAtwiliodemo", &c, &a);
    let as_t0 = as_thread.join().unwrap();
    let as_call = "6a1b2c3d-4e5f-4071-8293-a4b5c6d7e8f9";
    rec.wait_for("both calls ended", Duration::from_secs(120), |ev| {
        [as_call, "CAtwiliodemo"].iter().all(|id| {
            ev.iter()
                .any(|(_, v, _)| v["call_id"] == *id && v["type"] == "call_ended")
        })
    });
    let ev = rec.events();
    check_demo_call(&ev, as_call, &site, as_t0, "hangup");
    check_demo_call(&ev, "CAtwiliodemo", &site, tw_t0, "hangup");
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

/// `--mqtt embedded`: serve starts its own broker (rumqttd) on the configured address; a
/// subscriber on that broker sees the whole demo call on the contract's topics.
#[test]
fn demo_call_through_the_embedded_broker() {
    let Some(model) = model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let site = unique("emb");
    let broker_port = free_port();
    let listen = format!("embedded_listen = \"127.0.0.1:{broker_port}\"\n");
    let mut setup = ServeSetup::new(&model, "mqtt://127.0.0.1:1", &site);
    // The flag overrides the file's broker URL, as an operator would start it.
    setup.mqtt = &listen;
    setup.args = &["--mqtt", "embedded"];
    let serve = Serve::launch(dir.path(), &setup, free_port(), free_port());
    assert!(port_open(broker_port), "embedded broker not listening");
    let rec = subscribe(broker_port, &site);
    rec.wait_for("retained online status", Duration::from_secs(20), |ev| {
        ev.iter()
            .any(|(t, v, _)| *t == format!("calltone/{site}/box1/status") && v["state"] == "online")
    });
    let (c, a) = demo_8k("demo/demo-call.wav");
    let uuid: [u8; 16] = *b"\x0e\x3b\x2c\x3d\x4e\x5f\x40\x71\x82\x93\xa4\xb5\xc6\xd7\xe8\x01";
    let call = uuid_call_id(&uuid);
    let t0 = stream_audiosocket(serve.audiosocket, uuid, (&c, &a), 1.0, None);
    rec.wait_for("call_ended", Duration::from_secs(120), |ev| {
        ev.iter()
            .any(|(_, v, _)| v["call_id"] == call && v["type"] == "call_ended")
    });
    let ev = rec.events();
    check_demo_call(&ev, &call, &site, t0, "hangup");
    // Nothing but this call's topics and the status arrived under the site.
    for (topic, v, _) in &ev {
        if !topic.ends_with("/status") {
            assert!(
                topic.starts_with(&format!("calltone/{site}/box1/calls/{call}/")),
                "{topic}: {v}"
            );
        }
    }
    serve.terminate();
}

/// Streams the call in Twilio's media-stream format over a WebSocket; returns the instant
/// the first media frame was sent.
fn stream_twilio(media: u16, call_sid: &str, customer: &[f32], agent: &[f32]) -> Instant {
    use tungstenite::Message;
    let (mut ws, _) =
        tungstenite::connect(format!("ws://127.0.0.1:{media}/media/twilio")).expect("ws connect");
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
    let Some(mut broker) = Mosquitto::start(dir.path()) else {
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
    // An utterance's `t` is the end of its speech, not when it was published (after its
    // transcript, seconds later), so the gap's end is the next received `state` tick or
    // `call_ended`, whose `t` is when they were published.
    let mut prev: Option<(u64, f64)> = None;
    for (&s, v) in &by_seq {
        let t = v["t"].as_f64().unwrap();
        let published_by = by_seq
            .range(s..)
            .find(|(_, e)| e["type"] == "state" || e["type"] == "call_ended")
            .map_or(t, |(_, e)| e["t"].as_f64().unwrap());
        if let Some((ps, pt)) = prev {
            let gap = s - ps - 1;
            let ticks = (published_by - pt).ceil() as u64 + 1;
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

/// SIGHUP: a changed threshold applies to calls that start afterwards; a broken file or a
/// change to a fixed section is reported and the service keeps running as it was.
#[test]
fn sighup_reloads_rules_for_new_calls_and_keeps_running_on_a_bad_file() {
    let Some(model) = model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let broker = free_port();
    let embedded = format!("embedded_listen = \"127.0.0.1:{broker}\"\n");
    let mut setup = ServeSetup::new(&model, "embedded", "hup");
    setup.mqtt = &embedded;
    let long_silence = |min_s: f64| format!("[alerts.long_silence]\nmin_s = {min_s}\n");
    let quiet = long_silence(30.0);
    setup.tables = &quiet;
    let serve = Serve::launch(dir.path(), &setup, free_port(), free_port());
    let cfg_path = dir.path().join("calltone.toml");
    let original = std::fs::read_to_string(&cfg_path).unwrap();
    let hup = || {
        let ok = std::process::Command::new("kill")
            .args(["-HUP", &serve.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -HUP");
    };
    // 8 s of silence on both legs (nothing for Whisper): a long_silence alert needs
    // min_s of it.
    let silent = vec![0.0f32; 8 * 8000];
    let call = |n: u8| {
        let uuid = [0x5e, 0xed, 0, 0, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, n];
        stream_audiosocket(serve.audiosocket, uuid, (&silent, &silent), 3.0, None);
        uuid_call_id(&uuid)
    };
    let alerts_of = |id: &str| -> Vec<String> {
        serve
            .get_json("/api/alerts")
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["call_id"] == id)
            .map(|a| a["kind"].as_str().unwrap().to_string())
            .collect()
    };
    let ended = |s: &Serve| {
        s.get_json("/api/calls")
            .as_array()
            .is_some_and(|c| c.is_empty())
    };
    let first = call(1);
    serve.wait_for("call 1 to end", Duration::from_secs(30), ended);
    assert!(alerts_of(&first).is_empty(), "{:?}", alerts_of(&first));

    // A broken file: logged, nothing changes, the service still answers.
    std::fs::write(
        &cfg_path,
        format!("{original}\n[alerts.long_silence]\nmin_s = -1\n"),
    )
    .unwrap();
    hup();
    serve.wait_for(
        "the reload error in the log",
        Duration::from_secs(10),
        |s| s.log_tail(20).contains("configuration not reloaded"),
    );
    assert!(serve.body("/healthz").contains("\"ok\":true"));

    // A lower threshold and a change to a fixed section (the box id).
    let lowered = original
        .replace(&quiet, &long_silence(3.0))
        .replace("box = \"box1\"", "box = \"box2\"");
    assert_ne!(lowered, original);
    std::fs::write(&cfg_path, lowered).unwrap();
    hup();
    serve.wait_for("the reload in the log", Duration::from_secs(10), |s| {
        s.log_tail(20).contains("configuration reloaded")
    });
    let log = serve.log_tail(20);
    assert!(log.contains("alerts"), "{log}");
    assert!(
        log.contains("not reloadable") && log.contains("mqtt"),
        "{log}"
    );
    let second = call(2);
    serve.wait_for("call 2 to end", Duration::from_secs(30), ended);
    assert_eq!(
        alerts_of(&second),
        ["long_silence"],
        "the reloaded threshold applies"
    );
    assert!(serve.terminate().is_some_and(|s| s.success()));
}
