//! Empathy timing through the real binary: calls without an agent are not scored, an agent who
//! lets the customer finish a long complaint is not "late", and a recovery is not concluded
//! over customer speech whose words are not in yet (review of 2026-12-07, items 1–3).

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

fn ok(out: &std::process::Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    events(&out.stdout)
}

fn replay(path: &Path, model: &Path) -> Vec<Value> {
    ok(&run(&[
        "replay",
        path.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
    ]))
}

/// Nothing in the call scores the agent: no outcome, no `empathy_missed`, no `acknowledge`,
/// and the empathy criterion is not applicable.
fn assert_agent_not_scored(name: &str, ev: &[Value]) {
    let empathy = of_type(ev, "empathy");
    assert!(empathy.is_empty(), "{name}: {empathy:?}");
    let missed: Vec<_> = of_type(ev, "alert")
        .into_iter()
        .filter(|a| a["kind"] == "empathy_missed")
        .collect();
    assert!(missed.is_empty(), "{name}: {missed:?}");
    let nudges: Vec<_> = of_type(ev, "assist")
        .into_iter()
        .filter(|a| a["kind"] == "acknowledge")
        .collect();
    assert!(nudges.is_empty(), "{name}: {nudges:?}");
    let s = summary(ev);
    assert_eq!(s["empathy"]["opportunities"], 0, "{name}: {s}");
    assert_eq!(s["empathy"]["missed"], 0, "{name}: {s}");
    let c = criterion(ev, "empathy_met");
    assert_eq!(c["applicable"], false, "{name}: {c}");
}

/// The reviewer's `custonly.jsonl`: before, missed, `empathy_missed`, score 23.1.
#[test]
fn a_transcript_without_agent_lines_does_not_score_an_agent() {
    let dir = tempfile::tempdir().unwrap();
    let ev = rescore_transcript(
        dir.path(),
        "custonly",
        &[
            (
                "customer",
                0.5,
                5.0,
                "This is ridiculous, I have been charged twice and I am furious about it.",
            ),
            (
                "customer",
                15.0,
                18.0,
                "Yes, my account number is on the letter.",
            ),
            ("customer", 35.0, 38.0, "Okay, thank you, goodbye."),
        ],
    );
    // The distress is still seen (the alert and the journey are the customer's).
    assert_eq!(summary(&ev)["alerts"]["escalation_phrase"], 1);
    assert_agent_not_scored("custonly", &ev);
}

/// The reviewer's `rant.jsonl`: the customer complains for 24.5 s (the last distress moment
/// ends at 18 s), the agent apologises 0.5 s after the customer stops. Before: missed at
/// 25.1 s (15 s after the first moment), `empathy_missed`; then `latency_s` 9.5 (from the
/// last distress moment) for an answer 0.5 s after the customer's turn.
#[test]
fn an_agent_who_lets_the_customer_finish_a_long_complaint_meets_it() {
    let dir = tempfile::tempdir().unwrap();
    let ev = rescore_transcript(dir.path(),
        "rant",
        &[
            ("agent", 0.0, 2.0, "Thank you for calling, how can I help?"),
            (
                "customer",
                2.5,
                10.0,
                "This is ridiculous, I have been charged twice and I am furious about it.",
            ),
            (
                "customer",
                10.5,
                18.0,
                "And the last time I called nobody helped me, it was awful and a total waste of my time.",
            ),
            (
                "customer",
                18.5,
                27.0,
                "I have been a customer for ten years and this is how you treat me, it is terrible.",
            ),
            (
                "agent",
                27.5,
                31.0,
                "I'm so sorry, I completely understand how frustrating that is.",
            ),
            ("customer", 31.5, 34.0, "Okay, thank you."),
            ("agent", 35.0, 37.0, "Is there anything else I can help with?"),
            ("customer", 37.5, 39.0, "No, that is all."),
        ],
    );
    let empathy = of_type(&ev, "empathy");
    assert!(!empathy.is_empty());
    for e in &empathy {
        assert_eq!(e["outcome"], "met", "{e}");
        assert_eq!(e["response"]["start"], 27.5, "{e}");
        // The episode's latest distress moment ends at 18 s; the latency runs from the end
        // of the customer's turn (27 s), not from a moment the customer talked on after.
        assert_eq!(e["opportunity"]["end"], 18.0, "{e}");
        assert_eq!(e["response"]["latency_s"], 0.5, "{e}");
    }
    assert_eq!(summary(&ev)["empathy"]["opportunities"], 1);
    assert!(
        !of_type(&ev, "alert")
            .iter()
            .any(|a| a["kind"] == "empathy_missed"),
        "{ev:?}"
    );
}

/// The reviewer's `mono-cust.wav`: the customer channel of the dismissing demo call alone.
/// Before: `acknowledge` at 24.6 s, missed at 36.6 s, `empathy_missed`, score 30.8.
#[test]
fn a_mono_recording_of_the_customer_does_not_score_an_agent() {
    let Some(model) = model() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut reader = hound::WavReader::open(root().join("demo/empathy-dismiss.wav")).unwrap();
    let spec = reader.spec();
    assert_eq!((spec.channels, spec.bits_per_sample), (2, 16));
    let mono = dir.path().join("mono-cust.wav");
    let mut writer = hound::WavWriter::create(
        &mono,
        hound::WavSpec {
            channels: 1,
            ..spec
        },
    )
    .unwrap();
    for (i, s) in reader.samples::<i16>().enumerate() {
        if i % 2 == 0 {
            writer.write_sample(s.unwrap()).unwrap();
        }
    }
    writer.finalize().unwrap();
    let ev = replay(&mono, &model);
    assert_eq!(ev[0]["speakers"], serde_json::json!(["customer"]));
    // The customer's distress is there: the phrase alert, the "cancel my account".
    assert!(summary(&ev)["alerts"]["escalation_phrase"].as_u64() >= Some(1));
    assert_agent_not_scored("mono-cust", &ev);
}

/// `demo/demo-call.wav`: before, the stress episode answered at 43.6 s was `recovered: true`
/// at 52.0 s, while the customer was saying "I want to speak to your supervisor right now!
/// This is completely unacceptable!" (sentiment −0.64), whose transcript came at 52.8 s.
#[test]
fn recovery_is_not_concluded_over_customer_speech_still_being_transcribed() {
    let Some(model) = model() else {
        return;
    };
    let ev = replay(&root().join("demo/demo-call.wav"), &model);
    // (start, published at) of each customer utterance.
    let customer: Vec<(f64, f64)> = of_type(&ev, "utterance")
        .into_iter()
        .filter(|u| u["speaker"] == "customer")
        .map(|u| (u["start"].as_f64().unwrap(), u["t"].as_f64().unwrap()))
        .collect();
    let empathy = of_type(&ev, "empathy");
    assert!(!empathy.is_empty());
    for e in &empathy {
        if e["recovered"] != true {
            continue;
        }
        let t = e["t"].as_f64().unwrap();
        let over = customer.iter().find(|(s, p)| *s <= t && t < *p);
        assert!(over.is_none(), "recovered at {t} over {over:?}: {e}");
    }
    // One episode: the supervisor request joins it rather than opening a second one.
    let s = summary(&ev);
    assert_eq!(s["empathy"]["opportunities"], 1, "{s}");
    assert_eq!(s["empathy"]["met"], 1, "{s}");
    assert_eq!(s["empathy"]["recovered"], 0, "{s}");
}
