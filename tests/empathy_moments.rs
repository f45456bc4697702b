//! Distress inside an alert's cooldown, through the real binary (`calltone rescore` on a
//! transcript): the cooldown spares supervisors repeated alerts, but the phrase is still an
//! empathy opportunity, or still part of the running one (review of 2026-12-08, item 1).

mod common;

use common::*;
use serde_json::Value;

fn alerts_of<'a>(ev: &'a [Value], kind: &str) -> Vec<&'a Value> {
    of_type(ev, "alert")
        .into_iter()
        .filter(|a| a["kind"] == kind)
        .collect()
}

/// The customer asks to cancel, the agent apologises; 34 s later (a new episode, but inside
/// the phrase alert's 60 s cooldown) the customer asks for a supervisor and the agent says
/// nothing empathic. Before: the second phrase was not seen at all (one opportunity, met).
#[test]
fn a_phrase_inside_the_alert_cooldown_is_a_missed_opportunity_without_a_second_alert() {
    let dir = tempfile::tempdir().unwrap();
    let ev = rescore_transcript(
        dir.path(),
        "cooldown",
        &[
            ("agent", 0.0, 2.0, "Thank you for calling, how can I help?"),
            ("customer", 2.5, 6.0, "I want to cancel my account."),
            (
                "agent",
                6.5,
                9.0,
                "I'm so sorry, I understand how frustrating that is.",
            ),
            ("customer", 9.5, 12.0, "It has happened before."),
            ("agent", 12.5, 15.0, "Let me check the account for you."),
            ("customer", 40.0, 43.0, "Just get me a supervisor."),
            (
                "agent",
                62.0,
                64.0,
                "The system shows two charges on the bill.",
            ),
            ("customer", 65.0, 66.0, "Okay."),
        ],
    );
    // Supervisors: one escalation alert, as before.
    assert_eq!(alerts_of(&ev, "escalation_phrase").len(), 1, "{ev:?}");
    assert_eq!(summary(&ev)["alerts"]["escalation_phrase"], 1);
    let empathy = of_type(&ev, "empathy");
    let outcomes: Vec<(f64, &str)> = empathy
        .iter()
        .map(|e| {
            (
                e["opportunity"]["start"].as_f64().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![(2.5, "met"), (40.0, "missed")],
        "{empathy:?}"
    );
    let second = empathy[1];
    assert_eq!(second["opportunity"]["kind"], "escalation_phrase");
    assert_eq!(
        second["opportunity"]["evidence"]["phrases"][0], "supervisor",
        "{second}"
    );
    let s = summary(&ev);
    assert_eq!(s["empathy"]["opportunities"], 2, "{s}");
    assert_eq!(s["empathy"]["missed"], 1, "{s}");
    assert_eq!(alerts_of(&ev, "empathy_missed").len(), 1);
}

/// The customer asks to cancel at 2.5 s and keeps going; at 14 s (inside the cooldown) they
/// ask for a supervisor; the agent apologises once they stop, at 21.5 s. The phrase extends
/// the running opportunity's window (it closed at 21 s on the first phrase alone). Before:
/// missed at 21 s and an `empathy_missed` alert, although the agent answered the customer
/// 0.5 s after they finished.
#[test]
fn a_phrase_inside_the_alert_cooldown_extends_the_running_opportunity() {
    let dir = tempfile::tempdir().unwrap();
    let ev = rescore_transcript(
        dir.path(),
        "extends",
        &[
            ("agent", 0.0, 2.0, "Thank you for calling, how can I help?"),
            ("customer", 2.5, 6.0, "I want to cancel my account."),
            (
                "customer",
                6.5,
                13.5,
                "I called last week about the same bill.",
            ),
            (
                "customer",
                14.0,
                21.0,
                "I want to speak to a supervisor about it today.",
            ),
            ("agent", 21.5, 24.0, "I'm so sorry about that."),
            ("customer", 40.0, 42.0, "Okay."),
            ("agent", 42.5, 44.0, "Is there anything else?"),
        ],
    );
    assert_eq!(alerts_of(&ev, "escalation_phrase").len(), 1, "{ev:?}");
    let empathy = of_type(&ev, "empathy");
    assert_eq!(empathy.len(), 1, "{empathy:?}");
    let e = empathy[0];
    assert_eq!(e["outcome"], "met", "{e}");
    assert_eq!(e["opportunity"]["end"], 21.0, "{e}");
    assert_eq!(e["response"]["latency_s"], 0.5, "{e}");
    assert!(alerts_of(&ev, "empathy_missed").is_empty(), "{ev:?}");
}

/// Latency runs from the end of the customer's turn: the distress is in the customer's first
/// sentence (ends 6 s), they keep explaining until 20 s, the agent apologises at 20.8 s.
/// Before: `latency_s` 14.8 (from the distress moment), the agent's politeness counted as delay.
#[test]
fn latency_is_measured_from_the_end_of_the_customers_turn() {
    let dir = tempfile::tempdir().unwrap();
    let ev = rescore_transcript(
        dir.path(),
        "turn",
        &[
            ("agent", 0.0, 2.0, "Thank you for calling, how can I help?"),
            ("customer", 2.5, 6.0, "I want to cancel my account."),
            (
                "customer",
                6.5,
                13.0,
                "I was charged twice for the same service.",
            ),
            (
                "customer",
                13.5,
                20.0,
                "The letter came on Monday with both charges.",
            ),
            ("agent", 20.8, 24.0, "I'm so sorry, let me fix that."),
            ("customer", 30.0, 32.0, "Thank you."),
            // Talking over the customer: 0, not negative.
            (
                "customer",
                60.0,
                70.0,
                "Honestly this is the worst service I have ever had, it is awful.",
            ),
            ("agent", 68.0, 71.0, "I understand, I'm sorry."),
            ("customer", 80.0, 82.0, "Okay."),
        ],
    );
    let empathy = of_type(&ev, "empathy");
    let got: Vec<(f64, &str, f64)> = empathy
        .iter()
        .map(|e| {
            (
                e["opportunity"]["start"].as_f64().unwrap(),
                e["outcome"].as_str().unwrap(),
                e["response"]["latency_s"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![(2.5, "met", 0.8), (60.0, "met", 0.0)],
        "{empathy:?}"
    );
    assert_eq!(summary(&ev)["empathy"]["median_response_s"], 0.4);
}
