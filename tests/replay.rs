//! `calltone replay` end to end: the real binary, the real Whisper model, real files.

mod common;

use common::*;

#[test]
fn jfk_transcribes_with_low_wer() {
    let (Some(asr), Some(model)) = (shared_data("asr"), model()) else {
        return;
    };
    let jfk = asr.join("jfk.wav");
    let ev = replay(&jfk, &model, &[]);
    let text = joined_text(&ev);
    let w = wer(&reference(&asr, "jfk.wav"), &text);
    eprintln!("jfk WER {:.1}%: {text}", w * 100.0);
    assert!(w <= 0.05, "WER {w:.3} > 5%: {text}");

    // Event stream shape: started, utterances, ended, seq 0..n without gaps.
    assert_eq!(ev.first().unwrap()["type"], "call_started");
    assert_eq!(ev.last().unwrap()["type"], "call_ended");
    for (i, e) in ev.iter().enumerate() {
        assert_eq!(e["seq"], i as u64, "seq gap at {i}");
        assert_eq!(e["event_id"], format!("jfk:{i}"));
    }
    let utt = ev.iter().find(|e| e["type"] == "utterance").unwrap();
    assert_eq!(utt["speaker"], "customer");
    let words = utt["words"].as_array().unwrap();
    assert!(words.len() >= 15, "word timestamps: {words:?}");
    for w in words.windows(2) {
        assert!(w[0]["start"].as_f64() <= w[1]["start"].as_f64(), "{w:?}");
    }
    // jfk.wav is 11 s; the last word ends near the end of speech.
    let last_end = words.last().unwrap()["end"].as_f64().unwrap();
    assert!(
        (8.0..=11.5).contains(&last_end),
        "last word ends at {last_end}"
    );
    // Praat (To Pitch (ac), 60–500 Hz) measures a mean F0 of 236 Hz on this emphatic
    // speech; an octave error either way would land far outside this range.
    let f0 = utt["prosody"]["f0_mean_hz"]
        .as_f64()
        .expect("f0 of a voiced utterance");
    assert!((180.0..=290.0).contains(&f0), "f0_mean_hz {f0}");
}

/// μ-law at 8 kHz, as a telephone line delivers it, made here from jfk.wav.
#[test]
fn jfk_over_8khz_mulaw_still_transcribes() {
    let (Some(asr), Some(model)) = (shared_data("asr"), model()) else {
        return;
    };
    let (rate, samples) = read_wav_f32(&asr.join("jfk.wav"));
    let s8 = calltone::audio::resample::resample_all(&samples, rate, 8000).unwrap();
    let bytes: Vec<u8> = s8
        .iter()
        .map(|&x| {
            calltone::audio::g711::linear_to_ulaw(
                (x * 32767.0).round().clamp(-32768.0, 32767.0) as i16
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jfk-ulaw.wav");
    write_wav_raw(&path, 7, 1, 8000, 8, &bytes);
    let ev = replay(&path, &model, &[]);
    assert_eq!(ev[0]["sample_rate"], 8000);
    let text = joined_text(&ev);
    let w = wer(&reference(&asr, "jfk.wav"), &text);
    eprintln!("jfk μ-law 8 kHz WER {:.1}%: {text}", w * 100.0);
    assert!(w <= 0.15, "WER {w:.3} > 15%: {text}");
}

#[test]
fn demo_call_has_both_speakers_in_time_order() {
    let Some(model) = model() else { return };
    let demo = root().join("demo/demo-call.wav");
    let ev = replay(&demo, &model, &[]);
    let utts: Vec<_> = ev.iter().filter(|e| e["type"] == "utterance").collect();
    let text_of = |who: &str| {
        utts.iter()
            .filter(|u| u["speaker"] == who)
            .map(|u| u["text"].as_str().unwrap().to_lowercase())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let customer = text_of("customer");
    let agent = text_of("agent");
    eprintln!("customer: {customer}\nagent: {agent}");
    // The script has 5 customer turns and 6 agent turns.
    let n_c = utts.iter().filter(|u| u["speaker"] == "customer").count();
    let n_a = utts.iter().filter(|u| u["speaker"] == "agent").count();
    assert!((4..=8).contains(&n_c), "{n_c} customer utterances");
    assert!((5..=9).contains(&n_a), "{n_a} agent utterances");
    for word in ["charged", "cancel", "supervisor"] {
        assert!(
            customer.contains(word),
            "customer never says {word:?}: {customer}"
        );
    }
    for word in ["calling", "help", "transfer"] {
        assert!(agent.contains(word), "agent never says {word:?}: {agent}");
    }
    // The agent's words never show up as customer utterances (no bleed), and vice versa.
    assert!(!customer.contains("transfer you"), "{customer}");
    assert!(!agent.contains("supervisor right now"), "{agent}");
    // Utterances come out in time order (by end time; the live path emits them as they end).
    for w in utts.windows(2) {
        assert!(
            w[0]["end"].as_f64() <= w[1]["end"].as_f64(),
            "out of order: {} then {}",
            w[0],
            w[1]
        );
    }
    // Turns do not overlap in this scripted call; the first utterance is the agent's greeting.
    assert_eq!(utts[0]["speaker"], "agent");
    assert!(utts[0]["start"].as_f64().unwrap() >= 0.7);
}

#[test]
fn same_file_gives_same_events() {
    let Some(model) = model() else { return };
    let demo = root().join("demo/calm-call.wav");
    let strip = |ev: Vec<serde_json::Value>| {
        ev.into_iter()
            .map(|mut e| {
                e.as_object_mut().unwrap().remove("ts");
                e
            })
            .collect::<Vec<_>>()
    };
    let a = strip(replay(&demo, &model, &[]));
    let b = strip(replay(&demo, &model, &[]));
    assert!(a.len() > 5);
    assert_eq!(a, b);
}

#[test]
fn out_dir_gets_events_file() {
    let Some(model) = model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let demo = root().join("demo/calm-call.wav");
    let ev = replay(&demo, &model, &["--out", dir.path().to_str().unwrap()]);
    let file = std::fs::read(dir.path().join("calm-call.events.jsonl")).unwrap();
    assert_eq!(events(&file), ev);
}

/// `calltone replay PATH --model MODEL EXTRA…`, which must succeed; its events.
fn replay(
    path: &std::path::Path,
    model: &std::path::Path,
    extra: &[&str],
) -> Vec<serde_json::Value> {
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
    events(&out.stdout)
}

/// Events of a repository file replayed with the test model (`None`: no model).
fn replay_events(file: &str) -> Option<Vec<serde_json::Value>> {
    Some(replay(&root().join(file), &model()?, &[]))
}

/// The escalating demo call: stress and phrase alerts for the customer, none in the calm
/// opening, and no emotion inferred for the agent.
#[test]
fn demo_call_alerts_on_the_customer_only_when_it_escalates() {
    let Some(ev) = replay_events("demo/demo-call.wav") else {
        return;
    };
    let alerts: Vec<_> = ev.iter().filter(|e| e["type"] == "alert").collect();
    for a in &alerts {
        eprintln!(
            "{} {} {}..{} {}",
            a["kind"], a["speaker"], a["start"], a["end"], a["message"]
        );
    }
    let kinds = |k: &str| alerts.iter().filter(|a| a["kind"] == k).collect::<Vec<_>>();
    let stress = kinds("customer_stress");
    assert_eq!(stress.len(), 1, "one stress alert per episode");
    assert_eq!(stress[0]["speaker"], "customer");
    let phrase = kinds("escalation_phrase");
    assert!(!phrase.is_empty(), "no escalation_phrase alert");
    assert_eq!(phrase[0]["speaker"], "customer");
    let ev_words = phrase[0]["evidence"].to_string().to_lowercase();
    assert!(
        ["ridiculous", "cancel", "supervisor"]
            .iter()
            .any(|w| ev_words.contains(w)),
        "{ev_words}"
    );
    // The calm opening (the first three customer turns end by ~32 s) raises nothing.
    let first_escalation = ev
        .iter()
        .filter(|e| e["type"] == "utterance" && e["speaker"] == "customer")
        .nth(3)
        .map(|u| u["start"].as_f64().unwrap())
        .unwrap();
    for a in &alerts {
        assert!(
            a["start"].as_f64().unwrap() >= first_escalation - 0.5,
            "alert during the calm opening: {a}"
        );
    }
    // Nothing about the agent's emotions.
    for e in &ev {
        if e["type"] == "utterance" && e["speaker"] == "agent" {
            assert!(e["arousal"].is_null() && e["emotion"].is_null(), "{e}");
        }
        if e["type"] == "state" {
            let agent = &e["speakers"]["agent"];
            assert!(
                agent["stress"].is_null() && agent["emotion"].is_null(),
                "{e}"
            );
        }
        if e["type"] == "alert" {
            assert_ne!(e["speaker"], "agent", "alert about the agent: {e}");
        }
    }
    // The customer ends angrier than they started.
    let customer: Vec<_> = ev
        .iter()
        .filter(|e| e["type"] == "utterance" && e["speaker"] == "customer")
        .collect();
    let (first, last) = (customer.first().unwrap(), customer.last().unwrap());
    assert!(last["arousal"].as_f64() > first["arousal"].as_f64());
    assert!(last["sentiment"].as_f64().unwrap() < 0.0, "{last}");
    let end = ev.last().unwrap();
    assert_eq!(end["summary"]["alerts"]["customer_stress"], 1);
}

/// Calm routine calls in synthetic voices unlike the demo's (espeak-ng female variants at calm
/// rates and pitches, made by tools/calm-calls): before the stress level followed the
/// speaker's own opening, every customer utterance of these read arousal 0.9–1.0 and
/// `customer_stress` fired on two of the three, wideband, within the first 30 s.
#[test]
fn calm_calls_in_unfamiliar_voices_raise_no_stress_alert() {
    let Some(model) = model() else {
        return;
    };
    let have = |tool: &str| {
        std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !(have("espeak-ng") && have("sox") && have("python3")) {
        eprintln!("skipped: espeak-ng, sox and python3 are needed to script the calls");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let made = std::process::Command::new("python3")
        .arg(root().join("tools/calm-calls/calm_calls.py"))
        .args(["--make-only", "--only", "0,2,7", "--keep"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let calls: Vec<String> = String::from_utf8_lossy(&made.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(calls.len(), 3, "{calls:?}");
    for call in &calls {
        let ev = replay(std::path::Path::new(call), &model, &[]);
        let stress: Vec<_> = ev
            .iter()
            .filter(|e| e["type"] == "alert" && e["kind"] == "customer_stress")
            .collect();
        assert!(stress.is_empty(), "{call}: {stress:?}");
        let utterances = ev
            .iter()
            .filter(|e| e["type"] == "utterance" && e["speaker"] == "customer")
            .count();
        assert!(utterances >= 3, "{call}: {utterances} customer utterances");
    }
}

#[test]
fn calm_call_raises_no_alert() {
    let Some(ev) = replay_events("demo/calm-call.wav") else {
        return;
    };
    let alerts: Vec<_> = ev.iter().filter(|e| e["type"] == "alert").collect();
    assert!(alerts.is_empty(), "{alerts:?}");
    let customer_positive = ev
        .iter()
        .filter(|e| e["type"] == "utterance" && e["speaker"] == "customer")
        .filter(|e| e["sentiment"].as_f64().unwrap() > 0.3)
        .count();
    assert!(customer_positive >= 2);
}

/// Transcribing ahead on parallel workers (the default, `asr.workers = 2`) publishes exactly
/// the events of one-at-a-time transcription, and every utterance was transcribed ahead.
#[test]
fn transcripts_ahead_on_workers_are_those_of_one_at_a_time() {
    let Some(model) = model() else { return };
    let demo = root().join("demo/demo-call.wav");
    let dir = tempfile::tempdir().unwrap();
    let replay_with = |workers: usize| {
        let cfg = dir.path().join(format!("w{workers}.toml"));
        std::fs::write(&cfg, format!("[asr]\nworkers = {workers}\n")).unwrap();
        replay_logged(&demo, &model, &cfg)
    };
    let (one, one_log) = replay_with(1);
    let utterances = one.iter().filter(|e| e["type"] == "utterance").count();
    assert!(utterances >= 10, "{utterances} utterances");
    assert!(
        one_log.contains("transcribed_ahead=0 ")
            && one_log.contains(&format!("transcribed_inline={utterances}\n")),
        "{one_log}"
    );
    for workers in [2, 3] {
        let (ev, log) = replay_with(workers);
        assert!(
            log.contains(&format!("transcribed_ahead={utterances} "))
                && log.contains("transcribed_inline=0\n"),
            "workers = {workers}: {log}"
        );
        assert_eq!(ev, one, "workers = {workers}");
    }
}

/// A site vocabulary longer than Whisper's 224-token prompt still works: its end (the most
/// recent "speech") is used. Before, whisper-rs took whisper.cpp's "too many tokens" answer
/// for a length and the whole prompt was silently ignored ("calling at me tell the com").
#[test]
fn a_long_initial_prompt_keeps_its_end() {
    let Some(model) = model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let filler = "Our broadband routers, invoices, direct debits and roaming bundles. ".repeat(40);
    let cfg = dir.path().join("prompt.toml");
    std::fs::write(
        &cfg,
        format!("[asr]\ninitial_prompt = \"{filler}Thank you for calling Acme Telecom.\"\n"),
    )
    .unwrap();
    let demo = root().join("demo/demo-call.wav");
    let ev = replay(&demo, &model, &["--config", cfg.to_str().unwrap()]);
    let first = ev
        .iter()
        .find(|e| e["type"] == "utterance" && e["speaker"] == "agent")
        .unwrap();
    let text = first["text"].as_str().unwrap();
    assert!(text.contains("Acme Telecom"), "{text}");
}

/// With the previous utterance as the prompt each decode waits for the one before, so
/// replay transcribes one at a time (never ahead), and stays deterministic.
#[test]
fn previous_utterance_prompt_replays_one_at_a_time_and_deterministically() {
    let Some(model) = model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("prev.toml");
    std::fs::write(&cfg, "[asr]\nprompt_previous = true\nworkers = 2\n").unwrap();
    let demo = root().join("demo/demo-call.wav");
    let run_once = || replay_logged(&demo, &model, &cfg);
    let (a, log) = run_once();
    let utterances = a.iter().filter(|e| e["type"] == "utterance").count();
    assert!(utterances >= 10);
    assert!(
        log.contains("transcribed_ahead=0 ")
            && log.contains(&format!("transcribed_inline={utterances}\n")),
        "{log}"
    );
    let (b, _) = run_once();
    assert_eq!(a, b);
}

/// With the previous utterance as the prompt, a decode that loops on that context is decoded
/// again without it: the first 8 sentences of RAVDESS actor 01 (two statements, 1.5 s
/// apart), three of which looped into the token budget before, are all heard.
#[test]
fn previous_utterance_prompt_falls_back_when_the_context_loops() {
    let (Some(ravdess), Some(model)) = (shared_data("ravdess-train"), model()) else {
        return;
    };
    let labels = std::fs::read_to_string(ravdess.join("labels.tsv")).unwrap();
    let statement = |file: &str| {
        labels
            .lines()
            .find(|l| l.starts_with(file))
            .and_then(|l| l.split('\t').nth(6))
            .unwrap()
            .to_string()
    };
    let mut files: Vec<String> = std::fs::read_dir(&ravdess)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("03-01-") && n.ends_with("-01.flac"))
        .collect();
    files.sort();
    files.truncate(8);
    let mut call = Vec::new();
    let mut reference = Vec::new();
    for f in &files {
        let d = calltone::audio::decode::decode_file(&ravdess.join(f)).unwrap();
        assert_eq!(d.sample_rate, 16_000);
        call.extend_from_slice(&d.channels[0]);
        call.extend(std::iter::repeat_n(0.0, 24_000));
        reference.push(statement(f));
    }
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("dense.wav");
    write_wav_f32(&wav, 16_000, &call);
    let cfg = dir.path().join("prev.toml");
    std::fs::write(&cfg, "[asr]\nprompt_previous = true\n").unwrap();
    let ev = replay(&wav, &model, &["--config", cfg.to_str().unwrap()]);
    let utts: Vec<_> = ev.iter().filter(|e| e["type"] == "utterance").collect();
    assert_eq!(utts.len(), 8, "{utts:?}");
    for u in &utts {
        assert!(u["not_transcribed"].is_null(), "{u}");
    }
    let w = wer(&reference.join(" "), &joined_text(&ev));
    assert!(w <= 0.05, "WER {w:.3}: {}", joined_text(&ev));
}

/// `calltone replay PATH --model MODEL --config CFG` with info logs, which must succeed:
/// its events without `ts`, and its log.
fn replay_logged(
    path: &std::path::Path,
    model: &std::path::Path,
    cfg: &std::path::Path,
) -> (Vec<serde_json::Value>, String) {
    let out = calltone()
        .env("CALLTONE_LOG", "info,whisper_rs=error")
        .arg("replay")
        .arg(path)
        .arg("--model")
        .arg(model)
        .arg("--config")
        .arg(cfg)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    let ev = events(&out.stdout)
        .into_iter()
        .map(|mut e| {
            e.as_object_mut().unwrap().remove("ts");
            e
        })
        .collect();
    (ev, log)
}
