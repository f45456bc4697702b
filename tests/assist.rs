//! Agent assist and hand-off context end to end: a real `calltone serve`, a real Mosquitto,
//! a call streamed over the L16 WebSocket with an agent id, the agent page open in headless
//! Chromium, and the context over HTTP and MQTT.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::broker::{of_call, port_open, subscribe};
use common::browser::{artifacts_dir, Chromium};
use common::service::{demo_8k, Serve};
use common::*;

/// The call is streamed at this multiple of real time (the pacing guard allows 3×).
const SPEED: f64 = 2.5;

/// Streams `legs` (customer, agent) as one stereo L16 call with metadata, paced, then closes.
fn stream_l16(port: u16, call_id: &str, agent: &str, legs: (&[f32], &[f32]), speed: f64) {
    use tungstenite::Message;
    let (mut ws, _) =
        tungstenite::connect(format!("ws://127.0.0.1:{port}/media/l16")).expect("connect l16");
    let meta =
        serde_json::json!({"call_id": call_id, "sample_rate": 8000, "channels": 2, "agent": agent});
    ws.send(Message::text(meta.to_string())).unwrap();
    let frame = 160;
    let n = legs.0.len().max(legs.1.len());
    let t0 = Instant::now();
    for (k, start) in (0..n).step_by(frame).enumerate() {
        let mut pcm = Vec::with_capacity(frame * 4);
        for i in start..start + frame {
            for leg in [legs.0, legs.1] {
                let x = leg.get(i).copied().unwrap_or(0.0);
                pcm.extend_from_slice(&((x * 32767.0).round() as i16).to_le_bytes());
            }
        }
        ws.send(Message::binary(pcm)).unwrap();
        let due = Duration::from_secs_f64((k + 1) as f64 * 0.02 / speed);
        if let Some(w) = due.checked_sub(t0.elapsed()) {
            std::thread::sleep(w);
        }
    }
    let _ = ws.close(None);
    let _ = ws.flush();
}

/// Milliseconds since the epoch of an `Instant` in the past.
fn wall_ms(at: Instant) -> f64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    (now - at.elapsed()).as_secs_f64() * 1000.0
}

/// Records, in the page, the wall-clock time each nudge (by `assist_id`) appears and goes.
const WATCH: &str = r#"(function () {
  window.__seen = {};
  var list = document.getElementById('nudges');
  function look() {
    var now = Date.now(), ids = {};
    list.querySelectorAll('li').forEach(function (li) {
      ids[li.dataset.assistId] = true;
      if (!window.__seen[li.dataset.assistId]) window.__seen[li.dataset.assistId] = {shown: now, kind: li.dataset.kind, text: li.textContent};
    });
    Object.keys(window.__seen).forEach(function (k) {
      if (!ids[k] && !window.__seen[k].gone) window.__seen[k].gone = now;
    });
  }
  new MutationObserver(look).observe(list, {childList: true, subtree: true});
  look();
  return true;
})()"#;

#[test]
fn agent_page_shows_nudges_live_and_the_context_follows_the_call() {
    let Some(model) = model() else { return };
    let Some(chromium) = Chromium::find() else {
        return;
    };
    if !port_open(1883) {
        eprintln!("SKIP: no MQTT broker on 127.0.0.1:1883");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let site = format!("assist{}", std::process::id());
    let serve = Serve::start(dir.path(), "mqtt://127.0.0.1:1883", &site, &model);
    let mqtt = subscribe(1883, &site);
    let call_id = format!("fs-assist-{}", std::process::id());

    // The agent's page is open before the call: it waits, then follows the agent's call.
    let mut page = chromium.open(&serve.url("/agent?agent=alice"));
    page.wait_until(
        "the agent feed to connect",
        Duration::from_secs(15),
        "document.getElementById('conn').classList.contains('live')",
    );
    assert_eq!(page.eval(WATCH), serde_json::Value::Bool(true));
    let waiting = page.eval("document.getElementById('call').textContent");
    assert!(waiting.as_str().unwrap().contains("waiting"), "{waiting}");

    // demo/empathy-dismiss.wav: the customer threatens to cancel, the agent answers without
    // acknowledging and then dismisses ("calm down"): an acknowledge nudge is raised while
    // the opportunity is open and withdrawn when it resolves.
    let (c, a) = demo_8k("demo/empathy-dismiss.wav");
    let sender = {
        let (port, id) = (serve.media, call_id.clone());
        std::thread::spawn(move || stream_l16(port, &id, "alice", (&c, &a), SPEED))
    };
    page.wait_until(
        "the acknowledge nudge on the agent page",
        Duration::from_secs(40),
        "Object.values(window.__seen).some(function (s) { return s.kind === 'acknowledge'; })",
    );
    let shots = artifacts_dir();
    page.capture(&shots.join("agent-desktop.png"), 1280, 800);
    page.capture(&shots.join("agent-side-panel.png"), 360, 640);
    page.capture(&shots.join("agent-desktop.png"), 1280, 800);

    // While the call is live: the hand-off context over HTTP, JSON and form.
    let ctx = serve.get_json(&format!("/api/calls/{call_id}/context"));
    assert_eq!(ctx["call_id"], call_id.as_str(), "{ctx}");
    assert_eq!(ctx["agent"], "alice", "{ctx}");
    assert!(ctx["escalation_count"].as_u64().unwrap() >= 1, "{ctx}");
    assert!(
        ctx["escalation"][0]["text"]
            .as_str()
            .unwrap()
            .contains("cancel"),
        "{ctx}"
    );
    assert!(
        !ctx["last_utterances"].as_array().unwrap().is_empty(),
        "{ctx}"
    );
    assert!(
        ["rising", "falling", "steady", "unknown"].contains(&ctx["trend"].as_str().unwrap()),
        "{ctx}"
    );
    let form = serve.get(&format!("/api/calls/{call_id}/context?format=form"));
    assert!(form.contains("application/x-www-form-urlencoded"), "{form}");
    let body = form.split("\r\n\r\n").nth(1).unwrap();
    assert!(body.starts_with("stress="), "{body}");
    assert!(body.contains("&escalations="), "{body}");
    assert!(serve
        .get("/api/calls/no-such-call/context")
        .starts_with("HTTP/1.0 404"));
    assert!(serve
        .get(&format!("/api/calls/{call_id}/context?format=xml"))
        .starts_with("HTTP/1.0 400"));

    sender.join().unwrap();
    serve.wait_for("the call to end", Duration::from_secs(60), |s| {
        s.get_json("/api/calls")
            .as_array()
            .is_some_and(|c| c.is_empty())
    });
    mqtt.wait_for("call_ended on MQTT", Duration::from_secs(20), |ev| {
        of_call(ev, &call_id)
            .iter()
            .any(|(_, v, _)| v["type"] == "call_ended")
    });
    page.wait_until(
        "the page to clear the nudge",
        Duration::from_secs(10),
        "Object.values(window.__seen).every(function (s) { return !!s.gone; })",
    );

    // Every nudge on MQTT, on the assist topic, was shown on the page within a second of
    // its publication and cleared within a second of its withdrawal.
    let ev = mqtt.events();
    let base = format!("calltone/{site}/box1/calls/{call_id}");
    let assists: Vec<_> = of_call(&ev, &call_id)
        .into_iter()
        .filter(|(_, v, _)| v["type"] == "assist")
        .collect();
    assert!(
        assists
            .iter()
            .any(|(_, v, _)| v["kind"] == "acknowledge" && v["active"] == true),
        "{assists:?}"
    );
    let seen = page.eval("window.__seen");
    let mut latencies = Vec::new();
    for (topic, v, at) in &assists {
        assert_eq!(topic, &format!("{base}/assist"));
        let id = v["assist_id"].as_str().unwrap();
        let s = &seen[id];
        assert!(s.is_object(), "nudge {id} never shown: {seen}");
        let key = if v["active"] == true { "shown" } else { "gone" };
        let page_ms = s[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{id} {key}: {seen}"));
        let lag = page_ms - wall_ms(*at);
        eprintln!(
            "nudge {id} {} {key}: page {lag:.0} ms after MQTT",
            v["kind"]
        );
        latencies.push(lag);
        assert!(
            lag < 1000.0,
            "{id} {key} {lag:.0} ms after its MQTT publication"
        );
        // Withdrawals repeat the nudge's id; no nudge speaks of the agent's feelings.
        let msg = v["message"].as_str().unwrap().to_lowercase();
        assert!(
            !msg.contains("you sound") && !msg.contains("you seem"),
            "{msg}"
        );
    }
    let text = seen
        .as_object()
        .unwrap()
        .values()
        .find(|s| s["kind"] == "acknowledge")
        .unwrap()["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.contains("acknowledge"), "{text}");

    // The context was published retained on MQTT while the call ran, and cleared at its end.
    let contexts: Vec<_> = ev
        .iter()
        .filter(|(t, _, _)| t == &format!("{base}/context"))
        .collect();
    assert!(!contexts.is_empty(), "no context on MQTT");
    let last = &contexts.last().unwrap().1;
    assert!(last["escalation_count"].as_u64().unwrap() >= 1, "{last}");
    let gaps: Vec<f64> = contexts
        .windows(2)
        .map(|w| w[1].2.duration_since(w[0].2).as_secs_f64())
        .collect();
    assert!(
        gaps.iter().all(|g| *g >= 2.0),
        "context republished faster than every 3 s: {gaps:?}"
    );
    assert!(serve
        .get(&format!("/api/calls/{call_id}/context"))
        .starts_with("HTTP/1.0 404"));
    let late = subscribe(1883, &site);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !late.events().iter().any(|(t, _, _)| t.contains(&call_id)),
        "retained state or context left after the call ended"
    );
    eprintln!(
        "agent page latency after MQTT: max {:.0} ms over {} nudge changes; {} context updates",
        latencies.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        latencies.len(),
        contexts.len()
    );
}
