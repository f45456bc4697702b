//! A leg that joins a live call late (an AudioSocket agent leg that connects when the agent
//! answers, 10 s after the customer's) or hangs up early. Each leg's times count from its own
//! first sample, so without `join_at` the late leg's utterances land 10 s early: before the
//! distress they answer and over the customer's speech. Real audio (the demo call), no
//! Whisper needed.

mod common;

use calltone::audio::Speaker;
use calltone::config::Config;
use calltone::pipeline::{Analyzers, CallPipeline, Output};

const RATE: u32 = 16_000;
/// 20 ms frames.
const FRAME: usize = 320;

fn legs() -> (Vec<f32>, Vec<f32>) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/demo/demo-call.wav");
    let d = calltone::audio::decode_file(std::path::Path::new(path)).unwrap();
    assert_eq!(d.sample_rate, RATE);
    (d.channels[0].clone(), d.channels[1].clone())
}

fn pipeline(cfg: &Config, analyzers: &Analyzers, out: &mut Vec<Output>) -> CallPipeline {
    let mut p = CallPipeline::new(
        "late",
        "audiosocket",
        &[Speaker::Customer, Speaker::Agent],
        RATE,
        None,
        cfg,
        analyzers,
        String::new,
        out,
    )
    .unwrap();
    p.record_features();
    p
}

/// (speaker, start, end) of every utterance: the customer's leg from the start, the agent's
/// from `agent_from` seconds (its audio before then is never sent), joined with `join_at`
/// when `join`.
fn utterances(agent_from: f64, join: bool) -> Vec<(Speaker, f64, f64)> {
    let (customer, agent) = legs();
    // Agent emotion on, so the agent's utterances are recorded too.
    let mut cfg = Config::default();
    cfg.pipeline.agent_emotion = true;
    let analyzers = Analyzers::from_config(&cfg).unwrap();
    let mut out = Vec::new();
    let mut p = pipeline(&cfg, &analyzers, &mut out);
    let first_agent_frame = (agent_from * RATE as f64) as usize / FRAME;
    for k in 0..customer.len().div_ceil(FRAME) {
        let c = &customer[k * FRAME..((k + 1) * FRAME).min(customer.len())];
        p.push(Speaker::Customer, c, &mut out);
        if k == first_agent_frame && join {
            let padded = p.join_at(Speaker::Agent, agent_from, &mut out);
            assert!((padded - agent_from).abs() < 0.03, "padded {padded}");
        }
        if k >= first_agent_frame {
            let a = &agent[(k * FRAME).min(agent.len())..((k + 1) * FRAME).min(agent.len())];
            p.push(Speaker::Agent, a, &mut out);
        }
    }
    p.finish("hangup", &mut out);
    p.take_features()
        .into_iter()
        .map(|u| (u.speaker, u.start, u.end))
        .collect()
}

fn of(u: &[(Speaker, f64, f64)], who: Speaker, from: f64) -> Vec<(f64, f64)> {
    u.iter()
        .filter(|(s, start, _)| *s == who && *start >= from)
        .map(|(_, s, e)| (*s, *e))
        .collect()
}

#[test]
fn a_leg_that_joins_late_is_on_the_call_clock() {
    let whole = utterances(0.0, false);
    let late = utterances(10.0, true);
    for who in [Speaker::Agent, Speaker::Customer] {
        // After the join (and a little settling), the same utterances at the same times.
        let (a, b) = (of(&whole, who, 12.0), of(&late, who, 12.0));
        assert!(a.len() >= 3, "{who}: {a:?}");
        assert_eq!(a.len(), b.len(), "{who}: whole {a:?} late {b:?}");
        for (x, y) in a.iter().zip(&b) {
            assert!(
                (x.0 - y.0).abs() < 0.05 && (x.1 - y.1).abs() < 0.05,
                "{who}: whole {x:?} late {y:?}"
            );
        }
    }
    // Without the join the agent's utterances come 10 s early.
    let unjoined = utterances(10.0, false);
    let early = of(&unjoined, Speaker::Agent, 0.0);
    let want = of(&whole, Speaker::Agent, 10.0);
    assert!(
        (early[0].0 - (want[0].0 - 10.0)).abs() < 0.1,
        "{early:?} vs {want:?}"
    );
}

#[test]
fn small_lags_and_a_leg_ahead_are_left_alone() {
    let cfg = Config::default();
    let analyzers = Analyzers::from_config(&cfg).unwrap();
    let mut out = Vec::new();
    let mut p = pipeline(&cfg, &analyzers, &mut out);
    let (customer, agent) = legs();
    p.push(Speaker::Customer, &customer[..RATE as usize / 5], &mut out);
    // 0.2 s behind: the jitter of legs that start together.
    assert_eq!(p.join_at(Speaker::Agent, 0.2, &mut out), 0.0);
    p.push(Speaker::Agent, &agent[..RATE as usize], &mut out);
    // A leg ahead of the others: nothing to pad.
    p.end_leg(Speaker::Agent);
    assert_eq!(p.join_at(Speaker::Agent, 5.0, &mut out), 0.0);
    // A wall clock behind the audio (a sender faster than real time) caps the pad: the agent
    // leg rejoins 3 s into its own audio, the customer has sent 10 s, but only 4 s passed.
    p.push(
        Speaker::Customer,
        &customer[RATE as usize / 5..10 * RATE as usize],
        &mut out,
    );
    p.end_leg(Speaker::Agent);
    let padded = p.join_at(Speaker::Agent, 4.0, &mut out);
    assert!((padded - 3.0).abs() < 0.03, "padded {padded}");
}

#[test]
fn after_a_leg_hangs_up_the_other_is_not_held_back() {
    let (customer, agent) = legs();
    let cfg = Config::default();
    let analyzers = Analyzers::from_config(&cfg).unwrap();
    let lag_after = |hang_up: bool| {
        let mut out = Vec::new();
        let mut p = pipeline(&cfg, &analyzers, &mut out);
        let half = 20 * RATE as usize;
        for k in 0..half / FRAME {
            p.push(
                Speaker::Customer,
                &customer[k * FRAME..(k + 1) * FRAME],
                &mut out,
            );
            p.push(Speaker::Agent, &agent[k * FRAME..(k + 1) * FRAME], &mut out);
        }
        if hang_up {
            p.end_leg(Speaker::Agent);
        }
        let more = 10 * RATE as usize;
        for k in half / FRAME..(half + more) / FRAME {
            p.push(
                Speaker::Customer,
                &customer[k * FRAME..(k + 1) * FRAME],
                &mut out,
            );
        }
        30.0 - p.t()
    };
    // A hung-up leg is no longer waited for; a silent but connected one is, for 2 s.
    assert!(lag_after(true) < 0.3, "lag {}", lag_after(true));
    assert!(lag_after(false) > 1.5, "lag {}", lag_after(false));
}

/// Over real sockets: `calltone serve`, two AudioSocket legs of the demo call at 16 kHz. The
/// customer's leg streams 3 s at real-time pace before the agent's leg connects and sends
/// the agent's side from 3 s on (what a leg that connects then hears); both then stream at
/// 2× real time. The agent's utterances must come at the times `calltone replay` gives them
/// in the whole file.
#[test]
fn a_late_audiosocket_leg_over_the_wire() {
    use common::broker::*;
    use common::service::*;
    use std::io::Write;
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    let Some(model) = common::model() else { return };
    if !port_open(1883) {
        eprintln!("SKIP: no MQTT broker on 127.0.0.1:1883");
        return;
    }
    let replayed = common::events(&common::run(&["replay", "demo/demo-call.wav"]).stdout);
    let agent_times = |ev: &mut dyn Iterator<Item = &serde_json::Value>| -> Vec<(f64, f64)> {
        ev.filter(|v| v["type"] == "utterance" && v["speaker"] == "agent")
            .map(|v| (v["start"].as_f64().unwrap(), v["end"].as_f64().unwrap()))
            .filter(|(s, _)| *s > 4.0)
            .collect()
    };
    let want = agent_times(&mut replayed.iter());
    assert!(want.len() >= 4, "{want:?}");

    let dir = tempfile::tempdir().unwrap();
    let site = unique("late");
    let rec = subscribe(1883, &site);
    let serve = Serve::start(dir.path(), "mqtt://127.0.0.1:1883", &site, &model);
    let (customer, agent) = legs();
    let uuid: [u8; 16] = *b"\x1a\x7e\x1e\x90\x00\x00\x40\x00\x80\x00\x00\x00\x00\x00\x00\x03";
    let connect = || {
        let mut s = TcpStream::connect(("127.0.0.1", serve.audiosocket)).unwrap();
        s.set_nodelay(true).unwrap();
        s.write_all(&slin_frame(0x01, &uuid)).unwrap();
        s
    };
    let frame = |leg: &[f32], k: usize| {
        let pcm: Vec<u8> = (k * FRAME..(k + 1) * FRAME)
            .map(|i| leg.get(i).copied().unwrap_or(0.0))
            .flat_map(|x| ((x * 32767.0).round() as i16).to_le_bytes())
            .collect();
        slin_frame(0x12, &pcm)
    };
    let mut c = connect();
    let join = 3 * RATE as usize / FRAME;
    let t0 = Instant::now();
    for k in 0..join {
        c.write_all(&frame(&customer, k)).unwrap();
        if let Some(w) = Duration::from_millis(20 * (k as u64 + 1)).checked_sub(t0.elapsed()) {
            std::thread::sleep(w);
        }
    }
    let mut a = connect();
    let t1 = Instant::now();
    for k in join..customer.len().max(agent.len()).div_ceil(FRAME) {
        c.write_all(&frame(&customer, k)).unwrap();
        a.write_all(&frame(&agent, k)).unwrap();
        let due = Duration::from_millis(10 * (k - join) as u64 + 10);
        if let Some(w) = due.checked_sub(t1.elapsed()) {
            std::thread::sleep(w);
        }
    }
    for s in [&mut c, &mut a] {
        s.write_all(&slin_frame(0x00, &[])).unwrap();
    }
    let call = uuid_call_id(&uuid);
    rec.wait_for("call ended", Duration::from_secs(120), |ev| {
        ev.iter()
            .any(|(_, v, _)| v["call_id"] == call.as_str() && v["type"] == "call_ended")
    });
    let ev = rec.events();
    let mine = of_call(&ev, &call);
    let got = agent_times(&mut mine.iter().map(|(_, v, _)| v));
    assert_eq!(got.len(), want.len(), "live {got:?}\nreplay {want:?}");
    for (g, w) in got.iter().zip(&want) {
        assert!(
            (g.0 - w.0).abs() < 0.25 && (g.1 - w.1).abs() < 0.25,
            "live {got:?}\nreplay {want:?}\n{}",
            serve.log_tail(20)
        );
    }
    assert!(
        !mine.iter().any(|(_, v, _)| v["kind"] == "empathy_missed"),
        "an agent on the call's clock answers the distress in time"
    );
    serve.terminate();
}
