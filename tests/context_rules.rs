//! The hand-off context of a served call reads escalation phrases with the site's configured
//! rules, on both copies of it: `GET /api/calls/{id}/context` and the retained MQTT one
//! (review of 2026-12-08: the HTTP copy used the default phrase list).

mod common;

use std::time::Duration;

use common::broker::*;
use common::service::*;
use common::*;

#[test]
fn the_context_lists_the_sites_own_escalation_phrases() {
    let Some(model) = model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let broker = free_port();
    let embedded = format!("embedded_listen = \"127.0.0.1:{broker}\"\n");
    let mut setup = ServeSetup::new(&model, "embedded", "ctxrules");
    setup.mqtt = &embedded;
    // Only this site's phrase; "cancel" (a default phrase, said later in the call) is not one.
    let rules =
        "[alerts.escalation_phrase]\nphrases = [\"charged twice\"]\ncritical_phrases = []\n";
    setup.tables = rules;
    let serve = Serve::launch(dir.path(), &setup, free_port(), free_port());
    let mqtt = subscribe(broker, "ctxrules");

    // demo/empathy-ack.wav: "I was charged twice …" at 16 s, "… cancel my account" at 29 s.
    let (c, a) = demo_8k("demo/empathy-ack.wav");
    let uuid = [0xc7, 0x11, 0, 0, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, 1];
    let call_id = uuid_call_id(&uuid);
    let port = serve.audiosocket;
    let sender = std::thread::spawn(move || {
        stream_audiosocket(port, uuid, (&c, &a), 2.0, None);
    });
    let mut seen = serde_json::Value::Null;
    serve.wait_for(
        "the phrase in the HTTP context",
        Duration::from_secs(60),
        |s| {
            let body = s.get(&format!("/api/calls/{call_id}/context"));
            if let Some(json) = body.split("\r\n\r\n").nth(1) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(json) {
                    seen = v;
                }
            }
            seen["escalation_count"].as_u64() >= Some(1)
        },
    );
    let phrases: Vec<&str> = seen["escalation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert!(
        phrases.iter().all(|p| p.contains("charged twice")),
        "{seen}"
    );
    sender.join().unwrap();
    serve.wait_for("the call to end", Duration::from_secs(60), |s| {
        s.get_json("/api/calls")
            .as_array()
            .is_some_and(|c| c.is_empty())
    });
    // The retained MQTT copy saw the same phrase and never "cancel".
    let contexts: Vec<serde_json::Value> = mqtt
        .events()
        .into_iter()
        .filter(|(t, v, _)| t.ends_with("/context") && v["call_id"] == call_id.as_str())
        .map(|(_, v, _)| v)
        .collect();
    assert!(!contexts.is_empty(), "no retained context published");
    let last = contexts.last().unwrap();
    assert!(last["escalation_count"].as_u64() >= Some(1), "{last}");
    for c in &contexts {
        for e in c["escalation"].as_array().unwrap() {
            assert!(e["text"].as_str().unwrap().contains("charged twice"), "{c}");
        }
    }
}
