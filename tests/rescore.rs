//! `calltone rescore` through the real binary: stored events of the empathy demo calls
//! (replayed with the real Whisper model) re-scored with the same and with a changed config,
//! and plain transcripts from another system.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

fn read_events(p: &Path) -> Vec<Value> {
    events(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
}

fn behaviour_kinds(ev: &[Value]) -> Vec<String> {
    of_type(ev, "utterance")
        .into_iter()
        .flat_map(|u| u["behaviours"].as_array().cloned().unwrap_or_default())
        .map(|b| b["kind"].as_str().unwrap().to_string())
        .collect()
}

fn ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn stored_calls_rescore_as_replayed_and_follow_a_changed_config() {
    let Some(model) = model() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let recorded = dir.path().join("recorded");
    for (file, agent) in [("empathy-ack", "ann"), ("empathy-dismiss", "bob")] {
        let wav = root().join(format!("demo/{file}.wav"));
        let out = run(&[
            "replay",
            wav.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--agent",
            agent,
            "--out",
            recorded.to_str().unwrap(),
        ]);
        ok(&out);
    }
    let stored = |name: &str| recorded.join(format!("{name}.events.jsonl"));
    let (ack_file, dis_file) = (stored("empathy-ack"), stored("empathy-dismiss"));
    // The contract: the agent on `call_started` and in the summary.
    let replayed = events(&std::fs::read(&ack_file).unwrap());
    assert_eq!(summary(&replayed)["agent"], "ann");

    // Same config: the same analysis as the live pipeline made, from the events alone.
    let again = dir.path().join("again");
    let out = run(&[
        "rescore",
        ack_file.to_str().unwrap(),
        dis_file.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    ok(&out);
    let stdout = events(&out.stdout);
    assert_eq!(
        of_type(&stdout, "call_ended").len(),
        2,
        "both calls on stdout"
    );
    for name in ["empathy-ack", "empathy-dismiss"] {
        let before = read_events(&stored(name));
        let after = read_events(&again.join(format!("{name}.events.jsonl")));
        let (b, a) = (summary(&before), summary(&after));
        eprintln!("{name}: replay {b}\n{name}: rescore {a}");
        assert_eq!(a["empathy"], b["empathy"], "{name}");
        assert_eq!(a["journey"]["label"], b["journey"]["label"], "{name}");
        assert_eq!(a["alerts"], b["alerts"], "{name}");
        let score = |s: &Value| s["scorecard"]["score"].as_f64().unwrap();
        assert!((score(a) - score(b)).abs() < 0.01, "{name}: {a} vs {b}");
        assert_eq!(behaviour_kinds(&after), behaviour_kinds(&before), "{name}");
        let outcomes = |ev: &[Value]| -> Vec<Value> {
            of_type(ev, "empathy")
                .iter()
                .map(|e| e["outcome"].clone())
                .collect()
        };
        assert_eq!(outcomes(&after), outcomes(&before), "{name}");
        // Numbered afresh, whole: seq 0.. with no gaps.
        for (i, e) in after.iter().enumerate() {
            assert_eq!(e["seq"], i as u64, "{e}");
        }
        assert!(again.join(format!("{name}.report.html")).is_file());
    }
    // The index groups by agent.
    let index = std::fs::read_to_string(again.join("index.html")).unwrap();
    assert!(index.contains(r#"<table id="agents">"#), "{index}");
    assert!(index.contains(r#"<tr class="agent"><td>ann</td>"#));
    assert!(index.contains(r#"<tr class="agent"><td>bob</td>"#));

    // A site that does not count the dismissing agent's words as dismissive: the same call's
    // opportunity is missed (no acknowledgement), not harmed, and nothing is penalised as
    // dismissive.
    let cfg = dir.path().join("no-dismiss.toml");
    std::fs::write(&cfg, "[empathy]\ndismiss = []\n").unwrap();
    let out = run(&[
        "rescore",
        dis_file.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ]);
    ok(&out);
    let ev = events(&out.stdout);
    let s = summary(&ev);
    eprintln!("no dismiss set: {s}");
    assert_eq!(s["empathy"]["harmed"], 0, "{s}");
    assert!(s["empathy"]["missed"].as_u64().unwrap() >= 1, "{s}");
    assert!(!behaviour_kinds(&ev).iter().any(|k| k == "dismiss"));
    let nd = s["scorecard"]["criteria"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "no_dismissive")
        .unwrap()
        .clone();
    assert_eq!(nd["points"], nd["max"], "{nd}");
}

const TRANSCRIPT: &str = r#"{"speaker":"agent","start":0.0,"end":2.5,"text":"Thank you for calling Acme, how can I help?"}
{"speaker":"customer","start":3.0,"end":8.0,"text":"This is ridiculous, I was charged twice and I am furious about it."}
{"speaker":"agent","start":9.0,"end":12.0,"text":"I'm so sorry, I understand how frustrating that is."}
{"speaker":"customer","start":12.5,"end":17.0,"text":"My card is 4111 1111 1111 1111."}
{"speaker":"agent","start":17.5,"end":21.0,"text":"Thank you, I will make sure the refund goes through today."}
{"speaker":"customer","start":21.5,"end":24.0,"text":"Great, thank you so much, that is good."}
"#;

#[test]
fn a_plain_transcript_from_another_system_is_scored_and_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("crm-call-7.jsonl");
    std::fs::write(&t, TRANSCRIPT).unwrap();
    let out_dir = dir.path().join("out");
    let out = run(&[
        "rescore",
        t.to_str().unwrap(),
        "--agent",
        "carol",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    ok(&out);
    let ev = events(&out.stdout);
    assert_eq!(ev[0]["type"], "call_started");
    assert_eq!(ev[0]["source"], "transcript");
    assert_eq!(ev[0]["agent"], "carol");
    assert_eq!(ev[0]["call_id"], "crm-call-7");
    let s = summary(&ev);
    assert_eq!(s["agent"], "carol", "the summary names the agent too: {s}");
    assert_eq!(s["empathy"]["opportunities"], 1, "{s}");
    assert_eq!(s["empathy"]["met"], 1, "{s}");
    assert_eq!(s["journey"]["label"], "improving", "{s}");
    assert!(s["scorecard"]["score"].as_f64().unwrap() >= 90.0, "{s}");
    // The card number never leaves the process (in any form: `ts` may hold such digits).
    let all = String::from_utf8_lossy(&out.stdout);
    assert!(
        !all.contains("4111 1111") && !all.contains("1111 1111"),
        "{all}"
    );
    let card = of_type(&ev, "utterance")
        .into_iter()
        .find(|u| u["text"].as_str().unwrap().starts_with("My card"))
        .unwrap()
        .clone();
    assert_eq!(card["redacted"], true, "{card}");
    for f in [
        "crm-call-7.events.jsonl",
        "crm-call-7.report.html",
        "index.html",
    ] {
        assert!(out_dir.join(f).is_file(), "{f}");
    }
}

#[test]
fn bad_inputs_are_named_and_the_good_ones_still_rescored() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.jsonl");
    std::fs::write(&good, TRANSCRIPT).unwrap();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, format!("{TRANSCRIPT}{{\"speaker\": \"agent\"")).unwrap();
    let missing = dir.path().join("missing.jsonl");
    let out = run(&[
        "rescore",
        bad.to_str().unwrap(),
        missing.to_str().unwrap(),
        good.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("calltone:")).collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].contains("bad.jsonl: line 7: not JSON"),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains("missing.jsonl"), "{}", lines[1]);
    assert!(!err.contains("panicked"), "{err}");
    let ev = events(&out.stdout);
    assert_eq!(of_type(&ev, "call_ended").len(), 1, "the good file");
    assert_eq!(ev[0]["call_id"], "good");
}
