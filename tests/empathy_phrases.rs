//! Review fixes for empathy phrase detection, the journey's parts, the scorecard's applicable
//! criteria and rounding, through the real binary (`calltone rescore` on plain transcripts,
//! `calltone replay` on a silent call).

mod common;

use common::*;
use serde_json::Value;

/// `calltone rescore` of a plain transcript (JSON lines); the events and the raw stdout.
fn rescore(name: &str, lines: &[(&str, f64, f64, &str)]) -> (Vec<Value>, String) {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join(format!("{name}.jsonl"));
    write_transcript(&t, lines);
    let out = run(&["rescore", t.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    (events(&out.stdout), raw)
}

fn agent_behaviours(ev: &[Value]) -> Vec<(String, Vec<String>)> {
    of_type(ev, "utterance")
        .into_iter()
        .filter(|u| u["speaker"] == "agent")
        .map(|u| {
            let kinds = u["behaviours"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|b| b["kind"].as_str().unwrap().to_string())
                .collect();
            (u["text"].as_str().unwrap().to_string(), kinds)
        })
        .collect()
}

#[test]
fn apologies_after_oh_no_and_empathic_blame_words_meet_the_opportunity() {
    // Four distress episodes, 40 s apart (more than empathy.episode_gap_s), each answered at
    // once. Only the last answer blames the customer.
    let angry = "This is awful, I am furious and I hate this terrible service.";
    let answers = [
        "Oh no, I'm so sorry to hear that.",
        "You should have received the refund last week, I apologise.",
        "There's no way you should have been charged twice, I'm so sorry.",
        "Like I said, I understand how frustrating this is.",
        "You should have read the contract.",
    ];
    let mut lines = Vec::new();
    for (i, a) in answers.iter().enumerate() {
        let t = i as f64 * 40.0;
        lines.push(("customer", t, t + 4.0, angry));
        lines.push(("agent", t + 4.5, t + 7.5, *a));
    }
    let (ev, _) = rescore("phrases", &lines);
    let said = agent_behaviours(&ev);
    eprintln!("{said:?}");
    let kinds: Vec<Vec<String>> = said.into_iter().map(|(_, k)| k).collect();
    assert_eq!(
        kinds,
        [
            vec!["apologise"],
            vec!["apologise"],
            vec!["apologise"],
            vec!["acknowledge"],
            vec!["dismiss"],
        ]
    );
    let outcomes: Vec<String> = of_type(&ev, "empathy")
        .iter()
        .filter(|e| e["recovered"].is_null())
        .map(|e| e["outcome"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        outcomes,
        ["met", "met", "met", "met", "harmed"],
        "{outcomes:?}"
    );
    let s = summary(&ev);
    assert_eq!(s["empathy"]["harmed"], 1, "{s}");
    assert_eq!(s["alerts"]["empathy_missed"], 1, "{s}");
}

#[test]
fn a_long_early_rant_does_not_make_up_the_closing_part() {
    // The reviewer's call: 20 s of venting, then "Okay." and a thankful close.
    let (ev, raw) = rescore(
        "journey",
        &[
            ("agent", 0.0, 2.0, "Thank you for calling, how can I help?"),
            ("customer", 2.5, 22.5, "This is ridiculous and awful, I am furious, you people are terrible, I hate this service, it is the worst experience of my life and I am so angry and disgusted."),
            ("agent", 23.0, 26.0, "I'm so sorry, I completely understand how frustrating that is. I will fix it now."),
            ("customer", 26.5, 28.0, "Okay."),
            ("agent", 29.0, 33.0, "I have refunded the double charge, it is done."),
            ("customer", 33.5, 35.5, "Great, thank you so much, that is perfect."),
            ("agent", 36.0, 38.0, "You are welcome, have a good day."),
        ],
    );
    let j = &summary(&ev)["journey"];
    assert_eq!(j["opening_utterances"], 1, "{j}");
    assert_eq!(j["closing_utterances"], 2, "{j}");
    assert!(j["closing_sentiment"].as_f64().unwrap() > 0.3, "{j}");
    assert_eq!(j["label"], "improving", "{j}");
    // The scorecard's journey evidence prints as the journey does (no f32 widening noise).
    let sc = summary(&ev)["scorecard"].to_string();
    assert!(
        !sc.contains("99999") && !sc.contains("00000"),
        "unrounded evidence: {sc}"
    );
    assert!(raw.contains(r#""label":"improving""#));
}

#[test]
fn a_call_where_nobody_spoke_is_not_penalised_and_its_alert_span_is_rounded() {
    let Some(model) = model() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("empty.wav");
    // 20 s of stereo silence (customer and agent legs), 16 kHz, 16-bit.
    write_wav_raw(&wav, 1, 2, 16_000, 16, &vec![0u8; 20 * 16_000 * 4]);
    let out = run(&[
        "replay",
        wav.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ev = events(&out.stdout);
    let sc = &summary(&ev)["scorecard"];
    eprintln!("{sc}");
    for c in sc["criteria"].as_array().unwrap() {
        assert_eq!(c["applicable"], false, "{c}");
    }
    assert_eq!(sc["score"], 100.0, "{sc}");
    let silences = of_type(&ev, "alert");
    let silence = silences
        .iter()
        .find(|a| a["kind"] == "long_silence")
        .expect("a long_silence alert");
    for k in ["start", "end"] {
        let v = silence[k].as_f64().unwrap();
        assert_eq!(v, (v * 1000.0).round() / 1000.0, "{silence}");
    }
}

/// The scorecard judges the agent's speaking rate only on as much speech as the
/// `agent_speaking_rate` alert needs (`min_speech_s`, 8 s): one quick "Thank you." before a
/// hang-up is no measure of a rate, and cost a short call the criterion.
#[test]
fn the_speaking_rate_is_scored_only_on_enough_agent_speech() {
    let speaking_rate = |ev: &[Value]| -> Value {
        summary(ev)["scorecard"]["criteria"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "speaking_rate")
            .cloned()
            .expect("a speaking_rate criterion")
    };
    let (short, _) = rescore(
        "short",
        &[
            (
                "customer",
                0.0,
                2.0,
                "Hello, I just wanted to say it works now.",
            ),
            ("agent", 2.5, 2.9, "Thank you."),
        ],
    );
    let c = speaking_rate(&short);
    assert_eq!(c["applicable"], false, "{c}");
    // Fast and long enough: judged, and too fast.
    let fast = "I can certainly help you with that today let me just pull up the account and check what happened with the last two payments";
    let (long, _) = rescore(
        "long",
        &[
            ("customer", 0.0, 2.0, "Hello, can you check my payments?"),
            ("agent", 2.5, 7.0, fast),
            ("agent", 7.5, 12.0, fast),
        ],
    );
    let c = speaking_rate(&long);
    assert_eq!(c["applicable"], true, "{c}");
    assert_eq!(c["points"], 0.0, "{c}");
}
