//! The shipped JSON Schema of the events (`docs/events.schema.json`) is what the code
//! generates, and real events validate against it: the demo replays and the MQTT payloads
//! of a call served over AudioSocket.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::broker::*;
use common::service::*;
use common::*;

fn shipped() -> String {
    std::fs::read_to_string(root().join("docs/events.schema.json"))
        .expect("docs/events.schema.json")
}

fn validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(&shipped()).unwrap();
    jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema")
}

/// Validates every event; panics naming the first invalid ones. Returns counts by type.
fn check_all(
    v: &jsonschema::Validator,
    events: &[serde_json::Value],
    what: &str,
) -> BTreeMap<String, usize> {
    let mut bad = Vec::new();
    let mut kinds = BTreeMap::new();
    for e in events {
        *kinds
            .entry(e["type"].as_str().unwrap_or("?").to_string())
            .or_insert(0) += 1;
        let errors: Vec<String> = v
            .iter_errors(e)
            .map(|err| format!("{} at {}", err, err.instance_path()))
            .collect();
        if !errors.is_empty() {
            bad.push(format!("{}: {}", e["event_id"], errors.join("; ")));
        }
    }
    assert!(
        bad.is_empty(),
        "{what}: {} of {} events invalid:\n{}",
        bad.len(),
        events.len(),
        bad.iter().take(5).cloned().collect::<Vec<_>>().join("\n")
    );
    eprintln!("{what}: {} events valid {kinds:?}", events.len());
    kinds
}

#[test]
fn shipped_schema_is_what_the_code_generates() {
    let generated = calltone::schema::events_schema_json();
    assert!(
        shipped() == generated,
        "docs/events.schema.json is stale: run `cargo run --release -- schema > docs/events.schema.json`"
    );
    // And the command says the same.
    let out = run(&["schema"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), generated);
}

#[test]
fn schema_covers_every_event_type_and_rejects_wrong_events() {
    let v = validator();
    let schema: serde_json::Value = serde_json::from_str(&shipped()).unwrap();
    let text = schema.to_string();
    for kind in [
        "call_started",
        "utterance",
        "state",
        "alert",
        "empathy",
        "call_ended",
    ] {
        assert!(text.contains(&format!("\"{kind}\"")), "schema lacks {kind}");
    }
    let ok = serde_json::json!({"call_id":"c","seq":0,"event_id":"c:0","t":0.0,"ts":"2026-01-01T00:00:00Z",
        "type":"call_started","source":"file","speakers":["customer","agent"],"sample_rate":8000});
    assert!(
        v.is_valid(&ok),
        "{:?}",
        v.iter_errors(&ok)
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    );
    // Each of these breaks the contract once.
    let mut cases = Vec::new();
    let mut no_seq = ok.clone();
    no_seq.as_object_mut().unwrap().remove("seq");
    cases.push(("missing seq", no_seq));
    let mut bad_type = ok.clone();
    bad_type["type"] = "call_paused".into();
    cases.push(("unknown type", bad_type));
    let mut bad_speaker = ok.clone();
    bad_speaker["speakers"] = serde_json::json!(["supervisor"]);
    cases.push(("unknown speaker", bad_speaker));
    let mut neg_seq = ok.clone();
    neg_seq["seq"] = (-1).into();
    cases.push(("negative seq", neg_seq));
    let mut no_rate = ok.clone();
    no_rate.as_object_mut().unwrap().remove("sample_rate");
    cases.push(("missing sample_rate", no_rate));
    let alert = serde_json::json!({"call_id":"c","seq":3,"event_id":"c:3","t":4.0,"ts":"x","type":"alert",
        "alert_id":"c:alert:0","kind":"customer_stress","severity":"loud","speaker":"customer",
        "start":1.0,"end":4.0,"message":"m","evidence":{}});
    cases.push(("unknown severity", alert));
    for (what, e) in cases {
        assert!(!v.is_valid(&e), "{what} passed validation: {e}");
    }
}

#[test]
fn demo_replays_validate() {
    let Some(model) = model() else { return };
    let v = validator();
    for file in ["demo/demo-call.wav", "demo/empathy-ack.wav"] {
        let out = run(&["replay", file, "--model", model.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let events = events(&out.stdout);
        let kinds = check_all(&v, &events, file);
        for k in ["call_started", "utterance", "state", "alert", "call_ended"] {
            assert!(kinds.contains_key(k), "{file}: no {k} event");
        }
        if file.contains("empathy") {
            assert!(kinds.contains_key("empathy"), "{file}: no empathy event");
        }
    }
}

#[test]
fn mqtt_payloads_of_a_served_call_validate() {
    let Some(model) = model() else { return };
    if !Mosquitto::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker_dir = dir.path().join("broker");
    std::fs::create_dir_all(&broker_dir).unwrap();
    let broker = Mosquitto::start(&broker_dir).unwrap();
    let site = unique("schema");
    let rec = subscribe(broker.port, &site);
    let serve = Serve::start(
        dir.path(),
        &format!("mqtt://127.0.0.1:{}", broker.port),
        &site,
        &model,
    );
    rec.wait_for("online status", Duration::from_secs(20), |ev| {
        ev.iter()
            .any(|(t, v, _)| t.ends_with("/status") && v["state"] == "online")
    });
    // The first 30 s of the demo call (its stress and phrase alerts), then a hangup.
    let (c, a) = demo_8k("demo/demo-call.wav");
    let uuid = *b"schema-call-0001";
    AudioSocketCall::stream(serve.audiosocket, uuid, (&c, &a), 1.0, 30.0).hang_up();
    let call = uuid_call_id(&uuid);
    rec.wait_for("call ended", Duration::from_secs(60), |ev| {
        ev.iter()
            .any(|(_, v, _)| v["call_id"] == call && v["type"] == "call_ended")
    });
    let payloads: Vec<serde_json::Value> = rec
        .events()
        .into_iter()
        // The retained hand-off context (`…/context`) is a snapshot, not an event.
        .filter(|(t, _, _)| t.contains("/calls/") && !t.ends_with("/context"))
        .map(|(_, v, _)| v)
        .collect();
    let kinds = check_all(&validator(), &payloads, "MQTT payloads");
    for k in ["call_started", "utterance", "state", "call_ended"] {
        assert!(kinds.contains_key(k), "no {k} payload");
    }
    serve.terminate();
}
