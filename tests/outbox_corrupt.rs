//! A record damaged on disk between two runs of the sink: the real `MqttSink`, real segment
//! files and a real Mosquitto. The damaged record cannot be published, but its raw bytes are
//! kept in `outbox/corrupt/` for the operator, it is counted, the records around it are
//! published, and the sink does not go back to it. Skips with a message without `mosquitto`.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use calltone::events::{CallStarted, EventBody, EventStamper};
use calltone::metrics::Metrics;
use calltone::publish::{MqttConfig, MqttSink};

mod common;
use common::broker::{free_port, subscribe, unique, Mosquitto};

fn config(url: String, site: &str) -> MqttConfig {
    MqttConfig {
        url,
        site: site.to_string(),
        box_id: "box1".into(),
        client_id: Some(unique("corrupt")),
        reconnect_min_ms: 50,
        reconnect_max_ms: 400,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_corrupted_between_runs_is_kept_aside_and_the_rest_published() {
    let dir = tempfile::tempdir().unwrap();
    let Some(broker) = Mosquitto::start(dir.path()) else {
        return;
    };
    let site = unique("corrupt");
    let data = dir.path().join("data");

    // Run 1: no broker reachable; five events wait in the outbox.
    let ids: Vec<String> = {
        let sink = MqttSink::start(
            &config(format!("mqtt://127.0.0.1:{}", free_port()), &site),
            &data,
            Metrics::new(),
        )
        .unwrap();
        let h = sink.handle();
        let mut ids = vec![];
        for n in 0..5 {
            let mut st = EventStamper::new(format!("call-{n}"));
            let ev = st.stamp(
                0.0,
                calltone::events::now_rfc3339(),
                EventBody::CallStarted(CallStarted {
                    source: "audiosocket".into(),
                    speakers: vec![],
                    sample_rate: 8000,
                    agent: None,
                }),
            );
            h.publish(&ev).unwrap();
            ids.push(ev.event_id.clone());
        }
        assert_eq!(h.outbox_depth(), 5);
        sink.shutdown(Duration::ZERO).await;
        ids
    };

    // Between the runs, one bit of the third record's payload flips on disk.
    let outbox = data.join("outbox");
    let seg = outbox.join(format!("{:020}.seg", 0));
    let mut bytes = std::fs::read(&seg).unwrap();
    // Records are `[len u32 LE][crc32 u32 LE][body of len bytes]`.
    let mut starts = vec![0usize];
    while *starts.last().unwrap() < bytes.len() {
        let at = *starts.last().unwrap();
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        starts.push(at + 8 + len);
    }
    assert_eq!(starts.len(), 6, "five records");
    assert_eq!(*starts.last().unwrap(), bytes.len());
    let (from, to) = (starts[2], starts[3]);
    let intact = bytes[from..to].to_vec();
    bytes[to - 2] ^= 0x04;
    let damaged_now = bytes[from..to].to_vec();
    assert_ne!(intact, damaged_now);
    std::fs::write(&seg, &bytes).unwrap();

    // Run 2: the broker is there.
    let rec_sub = subscribe(broker.port, &site);
    // The subscription is in place before the sink connects: a probe comes back.
    let (probe, mut conn) = rumqttc::Client::new(
        rumqttc::MqttOptions::new(unique("probe"), "127.0.0.1", broker.port),
        10,
    );
    std::thread::spawn(move || for _ in conn.iter() {});
    let t0 = Instant::now();
    while rec_sub.events().is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "subscriber not ready"
        );
        let _ = probe.publish(
            format!("calltone/{site}/probe"),
            rumqttc::QoS::AtMostOnce,
            false,
            b"{}".to_vec(),
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let metrics = Metrics::new();
    let sink = MqttSink::start(
        &config(format!("mqtt://127.0.0.1:{}", broker.port), &site),
        &data,
        metrics.clone(),
    )
    .unwrap();
    let expect: BTreeSet<String> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, id)| id.clone())
        .collect();
    let got = |ev: &[common::broker::Msg]| -> BTreeSet<String> {
        ev.iter()
            .filter_map(|(_, v, _)| v["event_id"].as_str().map(str::to_string))
            .collect()
    };
    rec_sub.wait_for("the four intact records", Duration::from_secs(20), |ev| {
        expect.is_subset(&got(ev))
    });
    let h = sink.handle();
    let t0 = Instant::now();
    while h.outbox_depth() > 0 {
        assert!(t0.elapsed() < Duration::from_secs(10), "outbox not drained");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Nothing loops: a second later no more publishes than when the outbox drained (at
    // least the four; a resend after a reconnect may add one, a loop would add many).
    let drained = metrics.mqtt_published.get();
    assert!(drained >= 4, "{drained}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(metrics.mqtt_published.get(), drained);
    assert!(!got(&rec_sub.events()).contains(&ids[2]));
    assert_eq!(metrics.mqtt_refused.with(&["corrupt"]).get(), 1);
    assert_eq!(metrics.mqtt_refused.with(&["corrupt_not_kept"]).get(), 0);

    // The damaged record's bytes, as they are on disk, are kept for the operator.
    let kept: Vec<_> = std::fs::read_dir(outbox.join("corrupt"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(std::fs::read(&kept[0]).unwrap(), damaged_now);
    assert_eq!(
        std::fs::metadata(&kept[0]).unwrap().permissions().mode() & 0o777,
        0o600
    );
    sink.shutdown(Duration::from_secs(1)).await;
}
