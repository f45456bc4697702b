//! Transcripts that come back out of order (serve's ASR workers finish a short utterance
//! before an earlier long one) are taken in the call's order: the events are those of
//! in-order transcription, as in replay. Real audio (the demo call), no Whisper needed: each
//! job is answered with a text naming it.

use calltone::asr::transcribe::Transcript;
use calltone::audio::Speaker;
use calltone::config::Config;
use calltone::events::{Event, EventBody};
use calltone::pipeline::{Analyzers, CallPipeline, Output};

const TEXTS: [&str; 4] = [
    "this is the third time I am calling and nobody has fixed it",
    "I am so sorry to hear that, I understand how frustrating this is",
    "the internet keeps dropping every evening",
    "let me check your line right now",
];

fn answer(job: u64) -> Transcript {
    Transcript {
        language: Some("en"),
        text: format!("{} (job {job})", TEXTS[job as usize % TEXTS.len()]),
        ..Default::default()
    }
}

/// The demo call's sample rate and interleaved stereo samples (customer, agent).
fn demo_call() -> (u32, Vec<f32>) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/demo/demo-call.wav");
    let mut r = hound::WavReader::open(path).expect("demo call");
    let spec = r.spec();
    assert_eq!(spec.channels, 2);
    let samples = r
        .samples::<i16>()
        .map(|s| s.unwrap() as f32 / 32768.0)
        .collect();
    (spec.sample_rate, samples)
}

/// A two-speaker (customer, agent) call pipeline with the default configuration.
fn stereo_pipeline(call_id: &str, rate: u32, out: &mut Vec<Output>) -> CallPipeline {
    let cfg = Config::default();
    let analyzers = Analyzers::from_config(&cfg).unwrap();
    CallPipeline::new(
        call_id,
        "file",
        &[Speaker::Customer, Speaker::Agent],
        rate,
        None,
        &cfg,
        &analyzers,
        String::new,
        out,
    )
    .unwrap()
}

/// The utterance events carry the answers of jobs 0, 1, 2, … in that order.
fn assert_utterances_in_job_order(events: &[serde_json::Value]) {
    let texts: Vec<&str> = events
        .iter()
        .filter(|v| v["type"] == "utterance")
        .map(|v| v["text"].as_str().unwrap())
        .collect();
    assert!(!texts.is_empty());
    for (k, t) in texts.iter().enumerate() {
        assert!(t.ends_with(&format!("(job {k})")), "{k}: {t}");
    }
}

/// Events as JSON, their wall-clock `ts` left out.
fn without_ts(events: Vec<Event>) -> Vec<serde_json::Value> {
    events
        .into_iter()
        .map(|e| {
            let mut v = serde_json::to_value(&e).unwrap();
            v.as_object_mut().unwrap().remove("ts");
            v
        })
        .collect()
}

/// Runs the demo call through a pipeline, collecting ASR jobs unanswered, then answers them
/// in `order` (a permutation of the job ids) and returns every event (ts left out).
fn run(order: impl Fn(Vec<u64>) -> Vec<u64>) -> (Vec<serde_json::Value>, Vec<usize>) {
    let (rate, samples) = demo_call();
    let mut out = Vec::new();
    let mut p = stereo_pipeline("order", rate, &mut out);
    let chunk = rate as usize / 10;
    for frames in samples.chunks(2 * chunk) {
        let c: Vec<f32> = frames.iter().step_by(2).copied().collect();
        let a: Vec<f32> = frames.iter().skip(1).step_by(2).copied().collect();
        p.push(Speaker::Customer, &c, &mut out);
        p.push(Speaker::Agent, &a, &mut out);
    }
    p.finish("end_of_file", &mut out);
    let mut events: Vec<Event> = Vec::new();
    let mut jobs = Vec::new();
    for o in out.drain(..) {
        match o {
            Output::Asr(j) => jobs.push(j.job_id),
            Output::Event(e) => events.push(e),
        }
    }
    assert!(jobs.len() >= 6, "the demo call has utterances: {jobs:?}");
    // Utterance events published after each answer.
    let mut published = Vec::new();
    for id in order(jobs) {
        p.on_transcript(id, Ok(answer(id)), &mut out);
        let mut n = 0;
        for o in out.drain(..) {
            match o {
                Output::Event(e) => {
                    n += usize::from(matches!(e.body, EventBody::Utterance(_)));
                    events.push(e);
                }
                Output::Asr(j) => panic!("a job after the call ended: {}", j.job_id),
            }
        }
        published.push(n);
    }
    assert!(p.is_finished());
    let events = without_ts(events);
    (events, published)
}

#[test]
fn transcripts_back_out_of_order_are_taken_in_the_calls_order() {
    let (in_order, published) = run(|jobs| jobs);
    assert!(published.iter().all(|&n| n == 1), "{published:?}");
    // The last job first, then the rest from the second on, the first last: nothing can
    // be published until the first is back, then everything at once.
    let (shuffled, published) = run(|mut jobs| {
        let first = jobs.remove(0);
        let last = jobs.pop().unwrap();
        let mut order = vec![last];
        order.extend(jobs);
        order.push(first);
        order
    });
    let n = published.len();
    assert!(published[..n - 1].iter().all(|&k| k == 0), "{published:?}");
    assert_eq!(published[n - 1], n, "{published:?}");
    assert_eq!(shuffled.len(), in_order.len());
    for (a, b) in shuffled.iter().zip(&in_order) {
        assert_eq!(a, b);
    }
    // Two swapped neighbours: the later one waits for the earlier one only.
    let (swapped, published) = run(|mut jobs| {
        jobs.swap(2, 3);
        jobs
    });
    assert_eq!(published[2], 0, "{published:?}");
    assert_eq!(published[3], 2, "{published:?}");
    assert_eq!(swapped, in_order);
    assert_utterances_in_job_order(&in_order);
}

/// Runs the demo call live: every ASR job is answered while the call still runs, in pairs
/// (when a second job is pending, both are answered at once: in order, or the later one
/// first). Returns every event (ts left out) and how many utterance events came out of
/// each single answer.
fn run_live(later_first: bool) -> (Vec<serde_json::Value>, Vec<usize>, usize) {
    let (rate, samples) = demo_call();
    let mut out = Vec::new();
    let mut p = stereo_pipeline("order-live", rate, &mut out);
    let mut events: Vec<Event> = Vec::new();
    let mut pending: Vec<u64> = Vec::new();
    let mut published = Vec::new();
    let drain = |out: &mut Vec<Output>, events: &mut Vec<Event>, pending: &mut Vec<u64>| {
        let mut n = 0;
        for o in out.drain(..) {
            match o {
                Output::Asr(j) => pending.push(j.job_id),
                Output::Event(e) => {
                    n += usize::from(matches!(e.body, EventBody::Utterance(_)));
                    events.push(e);
                }
            }
        }
        n
    };
    let chunk = rate as usize / 10;
    let mut mid_call_answers = 0;
    for frames in samples.chunks(2 * chunk) {
        let c: Vec<f32> = frames.iter().step_by(2).copied().collect();
        let a: Vec<f32> = frames.iter().skip(1).step_by(2).copied().collect();
        p.push(Speaker::Customer, &c, &mut out);
        p.push(Speaker::Agent, &a, &mut out);
        drain(&mut out, &mut events, &mut pending);
        if pending.len() >= 2 {
            let mut pair: Vec<u64> = pending.drain(..2).collect();
            if later_first {
                pair.reverse();
            }
            for id in pair {
                p.on_transcript(id, Ok(answer(id)), &mut out);
                published.push(drain(&mut out, &mut events, &mut pending));
                mid_call_answers += 1;
            }
        }
    }
    assert!(
        mid_call_answers >= 4,
        "answers during the call: {mid_call_answers}"
    );
    p.finish("end_of_file", &mut out);
    drain(&mut out, &mut events, &mut pending);
    for id in std::mem::take(&mut pending) {
        p.on_transcript(id, Ok(answer(id)), &mut out);
        published.push(drain(&mut out, &mut events, &mut pending));
    }
    assert!(p.is_finished());
    let events = without_ts(events);
    (events, published, mid_call_answers)
}

#[test]
fn transcripts_back_out_of_order_during_the_call_are_taken_in_order() {
    let (in_order, published, _) = run_live(false);
    assert!(published.iter().all(|&n| n == 1), "{published:?}");
    let (later_first, published, mid) = run_live(true);
    // Of each mid-call pair, the later answer publishes nothing and the earlier both.
    assert!(
        published[..mid].chunks(2).all(|c| c == [0, 2]),
        "{published:?}"
    );
    assert_eq!(later_first, in_order);
    assert_utterances_in_job_order(&in_order);
}
