//! A measurement, not a test (ignored by default; it asserts nothing about time): how long
//! `MqttHandle::publish` takes from several pipeline threads while the sink fsyncs the
//! outbox, with the real sink, the system Mosquitto on 127.0.0.1:1883 and an outbox on the
//! real disk. Run it by hand:
//!
//! ```text
//! OUTBOX_LATENCY_DIR=/path/on/the/disk cargo test --release --test outbox_latency -- --ignored --nocapture
//! ```

use std::time::{Duration, Instant};

use calltone::audio::Speaker;
use calltone::events::{EventBody, EventStamper, ProsodySummary, Utterance};
use calltone::metrics::Metrics;
use calltone::publish::{MqttConfig, MqttSink};

mod common;
use common::broker::{percentile, port_open, unique};

const THREADS: usize = 4;
const PER_THREAD: usize = 1500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run by hand with --ignored --nocapture"]
async fn publish_latency_while_the_outbox_syncs() {
    if !port_open(1883) {
        eprintln!("SKIP: no broker on 127.0.0.1:1883");
        return;
    }
    let base = std::env::var_os("OUTBOX_LATENCY_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(&base).unwrap();
    let site = unique("lat");
    let config = MqttConfig {
        url: "mqtt://127.0.0.1:1883".into(),
        site: site.clone(),
        box_id: "box1".into(),
        client_id: Some(unique("lat")),
        ..Default::default()
    };
    let metrics = Metrics::new();
    let sink = MqttSink::start(&config, dir.path(), metrics.clone()).unwrap();
    let handle = sink.handle();
    let t0 = Instant::now();
    while !handle.is_connected() {
        assert!(t0.elapsed() < Duration::from_secs(10), "no connection");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let h = handle.clone();
            std::thread::spawn(move || {
                let mut st = EventStamper::new(format!("lat-call-{t}"));
                let mut took = Vec::with_capacity(PER_THREAD);
                for i in 0..PER_THREAD {
                    let ev = st.stamp(
                        i as f64,
                        calltone::events::now_rfc3339(),
                        EventBody::Utterance(Utterance {
                            speaker: Speaker::Customer,
                            start: i as f64,
                            end: i as f64 + 0.8,
                            text: format!("utterance number {i} of a call that goes on"),
                            redacted: false,
                            words: vec![],
                            not_transcribed: None,
                            language: None,
                            sentiment: 0.1,
                            arousal: Some(0.4),
                            emotion: None,
                            prosody: ProsodySummary::default(),
                            behaviours: None,
                        }),
                    );
                    let s = Instant::now();
                    h.publish(&ev).unwrap();
                    took.push(s.elapsed().as_secs_f64() * 1e3);
                    std::thread::sleep(Duration::from_micros(500));
                }
                took
            })
        })
        .collect();
    let took: Vec<f64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let published = metrics.mqtt_published.get();
    sink.shutdown(Duration::from_secs(5)).await;
    let after_shutdown = metrics.mqtt_published.get();
    let n = took.len();
    let max = took.iter().cloned().fold(0.0, f64::max);
    println!(
        "publish() from {THREADS} threads, {n} calls, outbox in {}: p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms ({published} handed to the broker when the last returned, {after_shutdown} after shutdown)",
        base.display(),
        percentile(took.clone(), 0.5),
        percentile(took.clone(), 0.99),
        percentile(took, 0.999),
        max
    );
}
