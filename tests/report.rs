//! QA reports end to end: `calltone replay --out DIR` on the demo calls with the real model,
//! the files it writes, and the report opened in headless Chromium (screenshots in
//! `target/test-artifacts/`).

mod common;

use common::browser::{artifacts_dir, Chromium};
use common::*;

#[test]
fn replay_out_writes_events_reports_and_an_index() {
    let Some(model) = model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("qa");
    let out = run(&[
        "replay",
        "--model",
        model.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "demo/demo-call.wav",
        "demo/calm-call.wav",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // stderr is a pipe here, not a terminal: no progress bars.
    assert!(
        !stderr.contains("real time"),
        "progress on a pipe: {stderr}"
    );
    let printed = events(&out.stdout);

    let mut total_alerts = 0;
    for name in ["demo-call", "calm-call"] {
        // The JSONL file holds exactly the events printed for that call.
        let jsonl = std::fs::read(out_dir.join(format!("{name}.events.jsonl"))).unwrap();
        let ev = events(&jsonl);
        let mine: Vec<_> = printed
            .iter()
            .filter(|e| e["call_id"] == name)
            .cloned()
            .collect();
        assert!(!ev.is_empty());
        assert_eq!(ev, mine, "{name}.events.jsonl differs from stdout");

        let html = std::fs::read_to_string(out_dir.join(format!("{name}.report.html"))).unwrap();
        let count = |kind: &str| ev.iter().filter(|e| e["type"] == kind).count();
        assert!(
            html.contains(r#"<svg class="timeline""#),
            "{name}: no timeline"
        );
        assert!(
            html.contains(r#"class="stress-curve" data-speaker="customer" d="M"#),
            "{name}: no customer stress curve"
        );
        assert_eq!(
            html.matches(r#"class="alert-marker""#).count(),
            count("alert"),
            "{name}: one marker per alert"
        );
        assert_eq!(
            html.matches(r#"<rect class="utterance""#).count(),
            count("utterance"),
            "{name}: one span per utterance"
        );
        assert_eq!(
            html.matches(r#"<tr class="utterance">"#).count(),
            count("utterance"),
            "{name}: one transcript row per utterance"
        );
        assert_eq!(
            html.matches(r#"<tr class="alert">"#).count(),
            count("alert")
        );
        assert!(
            html.contains(r#"<table id="summary">"#),
            "{name}: no summary"
        );
        total_alerts += count("alert");
    }
    // The demo call is built to alert; without one the marker check above proves little.
    assert!(total_alerts > 0, "no alert in the demo calls");

    let index = std::fs::read_to_string(out_dir.join("index.html")).unwrap();
    assert_eq!(index.matches(r#"<tr class="call">"#).count(), 2, "{index}");
    for name in ["demo-call", "calm-call"] {
        assert!(index.contains(&format!(r#"<a href="{name}.report.html">{name}</a>"#)));
    }

    // In a browser, offline: the report renders its SVG with every marker.
    let Some(chromium) = Chromium::find() else {
        return;
    };
    let url = |f: &str| format!("file://{}", out_dir.join(f).display());
    let demo_alerts = events(&std::fs::read(out_dir.join("demo-call.events.jsonl")).unwrap())
        .iter()
        .filter(|e| e["type"] == "alert")
        .count();
    let dom = chromium.dump_dom(&url("demo-call.report.html"));
    assert!(dom.contains(r#"<svg class="timeline""#), "{dom}");
    assert_eq!(dom.matches(r#"class="alert-marker""#).count(), demo_alerts);
    let dom = chromium.dump_dom(&url("index.html"));
    assert_eq!(dom.matches(r#"<tr class="call">"#).count(), 2);
    let shots = artifacts_dir();
    chromium.screenshot(
        &url("demo-call.report.html"),
        &shots.join("report-demo-call.png"),
        1280,
        1600,
    );
    chromium.screenshot(
        &url("demo-call.report.html"),
        &shots.join("report-demo-call-phone.png"),
        390,
        1600,
    );
    chromium.screenshot(
        &url("index.html"),
        &shots.join("report-index.png"),
        1280,
        400,
    );
}
