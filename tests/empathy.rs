//! Empathy analytics end to end: the real binary, the real Whisper model, the demo calls of
//! `tools/make-demo-call.sh` (the same customer lines; one agent acknowledges, one dismisses).

mod common;

use common::*;
use serde_json::Value;

fn replay(file: &str, extra: &[&str]) -> Option<Vec<Value>> {
    let model = model()?;
    let path = root().join(file);
    let mut args = vec![
        "replay",
        path.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = run(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(events(&out.stdout))
}

fn summary(ev: &[Value]) -> &Value {
    &ev.last().unwrap()["summary"]
}

fn agent_behaviours(ev: &[Value]) -> Vec<String> {
    of_type(ev, "utterance")
        .into_iter()
        .filter(|u| u["speaker"] == "agent")
        .flat_map(|u| u["behaviours"].as_array().cloned().unwrap_or_default())
        .map(|b| b["kind"].as_str().unwrap().to_string())
        .collect()
}

fn show(name: &str, ev: &[Value]) {
    for e in of_type(ev, "empathy") {
        eprintln!("{name}: empathy {e}");
    }
    eprintln!("{name}: scorecard {}", summary(ev)["scorecard"]);
}

#[test]
fn acknowledging_agent_meets_the_opportunity_and_dismissing_agent_harms_it() {
    let (Some(ack), Some(dis)) = (
        replay("demo/empathy-ack.wav", &[]),
        replay("demo/empathy-dismiss.wav", &[]),
    ) else {
        return;
    };
    show("ack", &ack);
    show("dismiss", &dis);

    // Behaviours are on agent utterances, never on the customer's.
    for u in of_type(&ack, "utterance") {
        match u["speaker"].as_str() {
            Some("agent") => assert!(u["behaviours"].is_array(), "{u}"),
            _ => assert!(u.get("behaviours").is_none(), "{u}"),
        }
    }
    let ab = agent_behaviours(&ack);
    assert!(ab.iter().any(|k| k == "apologise"), "{ab:?}");
    assert!(ab.iter().any(|k| k == "acknowledge"), "{ab:?}");
    assert!(!ab.iter().any(|k| k == "dismiss"), "{ab:?}");
    let db = agent_behaviours(&dis);
    assert!(db.iter().any(|k| k == "dismiss"), "{db:?}");
    assert!(
        !db.iter().any(|k| k == "acknowledge" || k == "apologise"),
        "{db:?}"
    );

    // The same customer distress opens the first opportunity in each call. With the
    // dismissing agent it stays one harmed episode; with the acknowledging agent the
    // customer's stress settles (recovered), so a later complaint is an episode of its own,
    // and every one is met.
    let (ea_sum, ed_sum) = (&summary(&ack)["empathy"], &summary(&dis)["empathy"]);
    assert_eq!(ed_sum["opportunities"], 1, "{}", summary(&dis));
    assert_eq!(ed_sum["harmed"], 1, "{}", summary(&dis));
    let n_ack = ea_sum["opportunities"].as_u64().unwrap();
    assert!((1..=2).contains(&n_ack), "{}", summary(&ack));
    assert_eq!(ea_sum["met"].as_u64(), Some(n_ack), "{}", summary(&ack));
    assert_eq!(ea_sum["harmed"], 0, "{}", summary(&ack));
    let first = |ev: &[Value]| of_type(ev, "empathy")[0].clone();
    let (ea, ed) = (first(&ack), first(&dis));
    assert_eq!(ea["outcome"], "met", "{ea}");
    assert_eq!(ea["response"]["kind"], "apologise", "{ea}");
    let lat = ea["response"]["latency_s"].as_f64().unwrap();
    assert!((0.0..=15.0).contains(&lat), "latency {lat}");
    assert_eq!(ed["outcome"], "harmed", "{ed}");
    assert_eq!(ed["response"]["kind"], "dismiss", "{ed}");
    // The opportunity is the same moment of the same customer line.
    assert_eq!(ea["opportunity"]["kind"], ed["opportunity"]["kind"]);
    let (sa, sd) = (
        ea["opportunity"]["start"].as_f64().unwrap(),
        ed["opportunity"]["start"].as_f64().unwrap(),
    );
    assert!((sa - sd).abs() < 1.0, "{sa} vs {sd}");

    // Only the harmed one alerts the supervisor.
    let missed = |ev: &[Value]| {
        of_type(ev, "alert")
            .into_iter()
            .filter(|a| a["kind"] == "empathy_missed")
            .count()
    };
    assert_eq!(missed(&ack), 0);
    assert_eq!(missed(&dis), 1);
    assert_eq!(summary(&dis)["alerts"]["empathy_missed"], 1);

    // Scorecards: the reasons are in the criteria.
    let score = |ev: &[Value]| summary(ev)["scorecard"]["score"].as_f64().unwrap();
    assert!(score(&ack) >= 90.0, "ack {}", score(&ack));
    assert!(score(&dis) <= score(&ack) - 40.0, "dismiss {}", score(&dis));
    assert_eq!(criterion(&ack, "empathy_met")["points"], 30.0);
    assert_eq!(criterion(&dis, "empathy_met")["points"], 0.0);
    assert_eq!(criterion(&ack, "no_dismissive")["points"], 20.0);
    let nd = criterion(&dis, "no_dismissive");
    assert_eq!(nd["points"], 0.0);
    assert!(!nd["evidence"]["dismissals"].as_array().unwrap().is_empty());
    assert_eq!(criterion(&ack, "escalation_handled")["points"], 15.0);
    assert_eq!(criterion(&dis, "escalation_handled")["points"], 0.0);
    // The customer said the same things: the journey does not tell the calls apart.
    assert_eq!(
        summary(&ack)["journey"]["label"],
        summary(&dis)["journey"]["label"]
    );
}

#[test]
fn calm_call_has_no_opportunity_and_nothing_penalised() {
    let Some(ev) = replay("demo/calm-call.wav", &[]) else {
        return;
    };
    show("calm", &ev);
    assert!(of_type(&ev, "empathy").is_empty());
    assert_eq!(summary(&ev)["empathy"]["opportunities"], 0);
    let e = criterion(&ev, "empathy_met");
    assert_eq!(e["applicable"], false);
    for c in summary(&ev)["scorecard"]["criteria"].as_array().unwrap() {
        if c["applicable"] == true {
            assert_eq!(c["points"], c["max"], "penalised: {c}");
        }
    }
    assert_eq!(summary(&ev)["scorecard"]["score"], 100.0);
    let label = &summary(&ev)["journey"]["label"];
    assert!(label == "steady" || label == "improving", "{label}");
    // The journey is live in state too.
    assert!(of_type(&ev, "state")
        .iter()
        .any(|s| s["speakers"]["customer"]["journey"].is_string()));
}

#[test]
fn agent_scoring_off_leaves_out_behaviours_empathy_and_scorecard() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[empathy]\nagent_scoring = false\n").unwrap();
    let Some(ev) = replay(
        "demo/empathy-dismiss.wav",
        &["--config", cfg.to_str().unwrap()],
    ) else {
        return;
    };
    assert!(of_type(&ev, "utterance")
        .iter()
        .all(|u| u.get("behaviours").is_none()));
    assert!(of_type(&ev, "empathy").is_empty());
    assert!(of_type(&ev, "alert")
        .iter()
        .all(|a| a["kind"] != "empathy_missed"));
    let s = summary(&ev);
    assert!(
        s.get("scorecard").is_none() && s.get("empathy").is_none(),
        "{s}"
    );
    assert!(s["journey"]["label"].is_string(), "journey stays: {s}");
}
