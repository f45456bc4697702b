//! The supervisor dashboard in a real browser: the real `calltone serve`, the real Whisper
//! model and broker, the demo call over AudioSocket, and headless Chromium looking at `/`.
//! Screenshots land in `target/test-artifacts/`.

mod common;

use std::time::Duration;

use common::broker::port_open;
use common::browser::{artifacts_dir, Chromium};
use common::service::{demo_8k, AudioSocketCall, Serve};
use common::*;

/// How much of the demo call to stream: its first alert (the customer's stress) fires at
/// ~42 s of call time (`calltone replay demo/demo-call.wav`), the escalation phrase just after.
const DEMO_SECONDS: f64 = 46.0;
/// Streaming pace: the stress alert is prosody-only and never waits for ASR, so 2× is safe.
const SPEED: f64 = 2.0;

/// Text as it appears in a serialised DOM (element content escapes `&`, `<`, `>`).
fn dom_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[test]
fn dashboard_shows_the_live_call_and_its_alert() {
    let Some(model) = model() else { return };
    let Some(chromium) = Chromium::find() else {
        return;
    };
    if !port_open(1883) {
        eprintln!("SKIP: no MQTT broker on 127.0.0.1:1883");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let site = format!("dash{}", std::process::id());
    let serve = Serve::start(dir.path(), "mqtt://127.0.0.1:1883", &site, &model);

    // Before any call: the page loads from the binary alone and says there are no calls.
    let dom = chromium.dump_dom(&serve.url("/"));
    assert!(
        dom.contains(r#"<p id="no-calls" class="empty">No active calls.</p>"#),
        "{dom}"
    );
    assert!(
        dom.contains(r#"<ol id="alerts" class="feed"></ol>"#),
        "{dom}"
    );
    for asset in ["/app.js", "/style.css"] {
        assert!(serve.get(asset).len() > 500, "{asset} not served");
    }
    // A page opened now and never reloaded must follow the call live.
    let mut live = chromium.open(&serve.url("/"));
    live.wait_until(
        "the live feed to connect",
        Duration::from_secs(15),
        "document.getElementById('conn').classList.contains('live')",
    );

    // The demo call until its first alert, legs kept open: the call is still live.
    let uuid: [u8; 16] = *b"\xda\x5b\x0a\x4d\x00\x01\x40\x00\x80\x00\x00\x00\x00\x00\x00\x06";
    let call_id = "da5b0a4d-0001-4000-8000-000000000006";
    let (c, a) = demo_8k("demo/demo-call.wav");
    let call = AudioSocketCall::stream(serve.audiosocket, uuid, (&c, &a), SPEED, DEMO_SECONDS);
    serve.wait_for("an alert", Duration::from_secs(30), |s| {
        s.get_json("/api/alerts")
            .as_array()
            .is_some_and(|a| !a.is_empty())
    });
    let alerts = serve.get_json("/api/alerts");
    let calls = serve.get_json("/api/calls");
    assert_eq!(calls[0]["call_id"], call_id, "{calls}");
    assert!(
        calls[0]["history"]["customer"]
            .as_array()
            .is_some_and(|h| h.len() >= 10),
        "stress history for the sparkline: {calls}"
    );

    let n_alerts = alerts.as_array().unwrap().len();
    live.wait_until(
        "the call's card (live, no reload)",
        Duration::from_secs(10),
        &format!("!!document.querySelector('[data-call-id=\"{call_id}\"] .gauge')"),
    );
    live.wait_until(
        "the alerts in the feed (live, no reload)",
        Duration::from_secs(10),
        &format!("document.querySelectorAll('#alerts li').length === {n_alerts}"),
    );

    let dom = chromium.dump_dom(&serve.url("/"));
    std::fs::write(artifacts_dir().join("dashboard.dom.html"), &dom).unwrap();
    // The call's card, with a gauge for the customer's stress.
    assert!(
        dom.contains(&format!(r#"data-call-id="{call_id}""#)),
        "no card for the call"
    );
    assert!(
        dom.contains(r#"aria-label="customer stress""#),
        "no stress gauge"
    );
    assert!(dom.contains(r#"class="spark""#), "no sparkline");
    assert!(dom.contains(r#"<span class="source">audiosocket</span>"#));
    // Every alert in the feed, with its message, its call and its severity colour.
    for al in alerts.as_array().unwrap() {
        let event_id = al["event_id"].as_str().unwrap();
        let item = dom
            .split(&format!(r#"data-event-id="{event_id}""#))
            .nth(1)
            .unwrap_or_else(|| panic!("alert {event_id} not in the feed"));
        let item = item.split("</li>").next().unwrap();
        assert!(
            item.contains(&dom_text(al["message"].as_str().unwrap())),
            "{item}"
        );
        assert!(item.contains(call_id), "{item}");
        let sev = al["severity"].as_str().unwrap();
        assert!(dom.contains(&format!(r#"class="alert sev-{sev}"#)), "{sev}");
    }
    assert!(
        !dom.contains(r#"<p id="no-alerts" class="empty">"#),
        "the feed says it is empty"
    );

    let shots = artifacts_dir();
    chromium.screenshot(
        &serve.url("/"),
        &shots.join("dashboard-desktop.png"),
        1280,
        800,
    );
    chromium.screenshot(
        &serve.url("/"),
        &shots.join("dashboard-phone.png"),
        390,
        844,
    );

    // Hang up: the call leaves /api/calls and is shown as ended; its alerts stay in the feed.
    call.hang_up();
    serve.wait_for("the call to end", Duration::from_secs(60), |s| {
        s.get_json("/api/calls")
            .as_array()
            .is_some_and(|c| c.is_empty())
    });
    assert!(!serve.get_json("/api/alerts").as_array().unwrap().is_empty());
    live.wait_until(
        "the card to show the call ended",
        Duration::from_secs(10),
        &format!(
            "document.querySelector('[data-call-id=\"{call_id}\"]').classList.contains('ended')"
        ),
    );

    // Restart calltone on the same address: the open page notices, reconnects by itself and
    // shows the new process's state (no calls).
    let (http, audiosocket) = (serve.http, serve.audiosocket);
    serve.terminate();
    live.wait_until(
        "the page to notice the restart",
        Duration::from_secs(15),
        "document.getElementById('conn').textContent.startsWith('reconnecting')",
    );
    let serve = Serve::start_on(
        dir.path(),
        "mqtt://127.0.0.1:1883",
        &site,
        &model,
        http,
        audiosocket,
    );
    live.wait_until(
        "the page to reconnect",
        Duration::from_secs(20),
        "document.getElementById('conn').classList.contains('live') && !document.querySelector('[data-call-id]')",
    );
    serve.terminate();
}

/// The live feed itself: a snapshot first, then bus events as JSON.
#[test]
fn api_events_starts_with_a_snapshot() {
    use std::io::{BufRead, BufReader, Write};
    let Some(model) = model() else { return };
    if !port_open(1883) {
        eprintln!("SKIP: no MQTT broker on 127.0.0.1:1883");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        dir.path(),
        "mqtt://127.0.0.1:1883",
        &format!("sse{}", std::process::id()),
        &model,
    );
    let mut s = std::net::TcpStream::connect(("127.0.0.1", serve.http)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /api/events HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut lines = BufReader::new(s).lines();
    let mut head = Vec::new();
    for l in lines.by_ref() {
        let l = l.unwrap();
        if l.is_empty() {
            break;
        }
        head.push(l.to_lowercase());
    }
    assert!(head[0].contains("200"), "{head:?}");
    assert!(
        head.iter()
            .any(|h| h.starts_with("content-type: text/event-stream")),
        "{head:?}"
    );
    // Chunked body: find the snapshot event and its data line.
    let mut saw_event = false;
    for l in lines.by_ref().take(20) {
        let l = l.unwrap();
        if l == "event: snapshot" {
            saw_event = true;
        } else if saw_event && l.starts_with("data: ") {
            let v: serde_json::Value = serde_json::from_str(&l["data: ".len()..]).unwrap();
            assert_eq!(v["calls"], serde_json::json!([]));
            assert_eq!(
                v["levels"]["red"].as_f64().map(|x| (x * 100.0).round()),
                Some(70.0)
            );
            serve.terminate();
            return;
        }
    }
    panic!("no snapshot event");
}
