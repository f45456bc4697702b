//! A call whose legs arrive at different rates: the customer on a telephone line (8 kHz),
//! the agent on a wideband softphone (16 kHz). The call starts at the rate of whichever leg
//! is heard first, so each leg must take its own band (pause rule and arousal head) from its
//! own rate, whichever spoke first. Real audio (the demo call), no Whisper needed.

use calltone::audio::{resample_all, Speaker};
use calltone::config::Config;
use calltone::pipeline::{Analyzers, CallPipeline, Output};

/// The demo call's customer channel at 8 kHz and agent channel at 16 kHz.
fn legs() -> (Vec<f32>, Vec<f32>) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/demo/demo-call.wav");
    let d = calltone::audio::decode_file(std::path::Path::new(path)).unwrap();
    assert_eq!(d.sample_rate, 16_000);
    let customer = resample_all(&d.channels[0], 16_000, 8_000).unwrap();
    (customer, d.channels[1].clone())
}

/// (speaker, start, end, arousal) of every utterance, with the call started at
/// `first_rate` (the rate of the leg heard first) and each leg then set to its own rate
/// before its audio, as `serve` does for every audio message.
fn utterances(first_rate: u32, customer_first: bool) -> Vec<(Speaker, f64, f64, f32)> {
    let (customer, agent) = legs();
    let mut cfg = Config::default();
    cfg.pipeline.agent_emotion = true;
    let analyzers = Analyzers::from_config(&cfg).unwrap();
    let mut out: Vec<Output> = Vec::new();
    let mut p = CallPipeline::new(
        "mixed",
        "audiosocket",
        &[Speaker::Customer, Speaker::Agent],
        first_rate,
        None,
        &cfg,
        &analyzers,
        String::new,
        &mut out,
    )
    .unwrap();
    p.record_features();
    // 20 ms frames of each leg, the first leg's frame first.
    let frames = customer.len().div_ceil(160).max(agent.len().div_ceil(320));
    for k in 0..frames {
        let c = &customer[(k * 160).min(customer.len())..((k + 1) * 160).min(customer.len())];
        let a = &agent[(k * 320).min(agent.len())..((k + 1) * 320).min(agent.len())];
        let mut legs = [(Speaker::Customer, 8_000, c), (Speaker::Agent, 16_000, a)];
        if !customer_first {
            legs.reverse();
        }
        for (speaker, rate, samples) in legs {
            p.set_input_rate(speaker, rate).unwrap();
            p.push(speaker, samples, &mut out);
        }
    }
    p.finish("hangup", &mut out);
    p.take_features()
        .into_iter()
        .map(|u| (u.speaker, u.start, u.end, u.arousal.unwrap()))
        .collect()
}

#[test]
fn each_leg_is_scored_at_its_own_band_whichever_leg_is_heard_first() {
    // The agent greets first on a 16 kHz softphone; the customer's 8 kHz leg joins.
    let agent_first = utterances(16_000, false);
    // The customer is heard first.
    let customer_first = utterances(8_000, true);
    for speaker in [Speaker::Customer, Speaker::Agent] {
        let of = |v: &[(Speaker, f64, f64, f32)]| -> Vec<(f64, f64, f32)> {
            v.iter()
                .filter(|u| u.0 == speaker)
                .map(|u| (u.1, u.2, u.3))
                .collect()
        };
        let (a, c) = (of(&agent_first), of(&customer_first));
        assert!(a.len() >= 4, "{speaker:?}: {a:?}");
        assert_eq!(a.len(), c.len(), "{speaker:?}: {a:?}\n{c:?}");
        for (x, y) in a.iter().zip(&c) {
            assert!(
                (x.0 - y.0).abs() < 1e-9 && (x.1 - y.1).abs() < 1e-9,
                "{speaker:?}: utterance {x:?} against {y:?}"
            );
            assert!(
                (x.2 - y.2).abs() < 1e-6,
                "{speaker:?} utterance at {:.2} s: arousal {} against {} when the leg is \
                 scored at its own band from the start",
                x.0,
                x.2,
                y.2
            );
        }
    }
}
