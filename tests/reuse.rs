//! A call id used again while the previous call of that id is still finishing (its legs have
//! hung up, its last transcripts are still out): against the real `calltone serve` over real
//! WebSockets and the real broker. The new call waits for the old one, so the two runs never
//! share the id's registry entry, open-call record or retained topics: before, the old run's
//! `call_ended` removed the new run from `/api/calls` and cleared its retained state.

mod common;

use std::time::{Duration, Instant};

use common::broker::*;
use common::service::Serve;

/// Streams `seconds` of `pcm` (16 kHz mono) as an L16 call at `speed`× real time, then closes.
fn stream_l16(port: u16, call_id: &str, pcm: &[f32], seconds: f64, speed: f64) {
    use tungstenite::Message;
    let (mut ws, _) =
        tungstenite::connect(format!("ws://127.0.0.1:{port}/media/l16")).expect("connect l16");
    let meta = serde_json::json!({"call_id": call_id, "sample_rate": 16000, "channels": 1});
    ws.send(Message::text(meta.to_string())).unwrap();
    let frame = 640; // 40 ms
    let n = ((seconds * 16000.0) as usize).min(pcm.len());
    let t0 = Instant::now();
    for (k, start) in (0..n).step_by(frame).enumerate() {
        let bytes: Vec<u8> = pcm[start..(start + frame).min(n)]
            .iter()
            .flat_map(|x| ((x * 32767.0).round() as i16).to_le_bytes())
            .collect();
        ws.send(Message::binary(bytes)).unwrap();
        let due = Duration::from_secs_f64((k + 1) as f64 * 0.04 / speed);
        if let Some(w) = due.checked_sub(t0.elapsed()) {
            std::thread::sleep(w);
        }
    }
    let _ = ws.close(None);
    let _ = ws.flush();
}

/// The run of an event id `CALL:RUN:SEQ`.
fn run_of(v: &serde_json::Value) -> String {
    let id = v["event_id"].as_str().unwrap();
    id.rsplit(':').nth(1).unwrap().to_string()
}

#[test]
fn a_call_id_used_again_while_the_last_call_finishes_waits_for_it() {
    let Some(model) = common::model() else { return };
    let Some(asr) = common::shared_data("asr") else {
        return;
    };
    if !port_open(1883) {
        eprintln!("SKIP: no MQTT broker on 127.0.0.1:1883");
        return;
    }
    let (_, jfk) = common::read_wav_f32(&asr.join("jfk.wav"));
    let dir = tempfile::tempdir().unwrap();
    let site = unique("reuse");
    let rec = subscribe(1883, &site);
    let serve = Serve::start(dir.path(), "mqtt://127.0.0.1:1883", &site, &model);
    rec.wait_for("online", Duration::from_secs(20), |ev| {
        ev.iter()
            .any(|(t, v, _)| t.ends_with("/status") && v["state"] == "online")
    });
    let id = "REUSED-WHILE-FINISHING";
    // The first call ends mid-speech, so its last utterance is still being transcribed
    // when the second call of the same id starts, straight away.
    stream_l16(serve.media, id, &jfk, 10.5, 2.5);
    let second = {
        let (port, jfk) = (serve.media, jfk.clone());
        std::thread::spawn(move || stream_l16(port, id, &jfk, 8.0, 1.0))
    };
    // While the second call streams, it is listed as active.
    rec.wait_for("the second call_started", Duration::from_secs(30), |ev| {
        ev.iter()
            .filter(|(_, v, _)| v["call_id"] == id && v["type"] == "call_started")
            .count()
            == 2
    });
    std::thread::sleep(Duration::from_millis(1500));
    let calls = serve.get_json("/api/calls");
    assert!(
        calls
            .as_array()
            .is_some_and(|a| a.iter().any(|c| c["call_id"] == id)),
        "the live second call is missing from /api/calls: {calls}"
    );
    second.join().unwrap();
    rec.wait_for("two call_ended", Duration::from_secs(60), |ev| {
        ev.iter()
            .filter(|(_, v, _)| v["call_id"] == id && v["type"] == "call_ended")
            .count()
            == 2
    });
    // Every event of the first run comes before the second run's first.
    let ev = rec.events();
    let runs: Vec<String> = ev
        .iter()
        .filter(|(t, v, _)| {
            v["call_id"] == id && !t.ends_with("/state") && !t.ends_with("/context")
        })
        .filter(|(_, v, _)| v["event_id"].is_string())
        .map(|(_, v, _)| run_of(v))
        .collect();
    let first = runs[0].clone();
    let switch = runs.iter().position(|r| *r != first).unwrap();
    assert!(
        runs[switch..].iter().all(|r| *r != first),
        "the runs interleave: {runs:?}"
    );
    // The first run had an utterance still out when it hung up.
    assert!(
        ev.iter()
            .any(|(_, v, _)| v["call_id"] == id && v["type"] == "utterance" && run_of(v) == first),
        "{runs:?}"
    );
    serve.terminate();
}
