//! Many boxes through a broker bridge: two `calltone serve` boxes, each on its own Mosquitto,
//! bridged with the shipped `firmware-config/mosquitto-bridge.conf` into a third, central
//! Mosquitto. A central subscriber must receive both boxes' QoS 1 events exactly as each box's
//! own broker saw them (nothing lost; duplicates allowed, removed by `event_id`), also when
//! the central broker is stopped while calls run and started again.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::broker::*;
use common::service::*;
use common::*;

/// A box broker: its own listener and persistence, plus the shipped bridge file with the
/// central address and this box's names substituted.
fn box_broker(dir: &Path, central: u16, site: &str, name: &str) -> Mosquitto {
    let shipped = std::fs::read_to_string(root().join("firmware-config/mosquitto-bridge.conf"))
        .expect("firmware-config/mosquitto-bridge.conf");
    for needle in [
        "address central-broker.example:8883",
        "topic # out 1 calltone/site1/box1/ calltone/site1/box1/",
        "cleansession false",
    ] {
        assert!(shipped.contains(needle), "bridge file lacks {needle:?}");
    }
    // Every box's calltone says `box = "box1"` (tests/common/service.rs); the bridge's remap
    // is what makes them distinct at the central broker.
    let bridge = shipped
        .replace(
            "address central-broker.example:8883",
            &format!("address 127.0.0.1:{central}"),
        )
        .replace(
            "topic # out 1 calltone/site1/box1/ calltone/site1/box1/",
            &format!("topic # out 1 calltone/{site}/box1/ calltone/{site}/{name}/"),
        )
        .replace(
            "calltone-bridge-site1-box1",
            &format!("calltone-bridge-{name}"),
        )
        .replace(
            "notification_topic calltone/site1/box1/bridge",
            &format!("notification_topic calltone/{site}/{name}/bridge"),
        );
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "user root\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nautosave_interval 1\n{bridge}",
            dir.display()
        ),
    )
    .unwrap();
    Mosquitto::with_config(port, conf)
}

fn mkdir(p: std::path::PathBuf) -> std::path::PathBuf {
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// QoS 1 call events (not the QoS 0 state) under `calltone/{site}/{name}/`, by event_id,
/// with how many copies arrived and the first arrival.
fn qos1_of(
    ev: &[Msg],
    site: &str,
    name: &str,
) -> (BTreeMap<String, (serde_json::Value, Instant)>, usize) {
    let prefix = format!("calltone/{site}/{name}/calls/");
    let mut by_id = BTreeMap::new();
    let mut copies = 0;
    for (t, v, at) in ev {
        // `state` and the hand-off `context` are retained snapshots, not events.
        if t.starts_with(&prefix) && !t.ends_with("/state") && !t.ends_with("/context") {
            copies += 1;
            by_id
                .entry(v["event_id"].as_str().unwrap().to_string())
                .or_insert_with(|| (v.clone(), *at));
        }
    }
    (by_id, copies)
}

struct BoxUnderTest {
    name: &'static str,
    _broker: Mosquitto,
    serve: Serve,
    local: Received,
}

#[test]
fn two_boxes_bridge_into_a_central_broker_across_an_outage() {
    let Some(model) = model() else { return };
    if !Mosquitto::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let site = unique("fleet");
    let mut central = Mosquitto::start(&mkdir(dir.path().join("central"))).unwrap();
    let fleet = subscribe(central.port, &site);
    // The fleet view reads the central broker too.
    let fleet_http = free_port();
    let mut fleet_view = FleetView(
        calltone()
            .args([
                "fleet",
                "--mqtt",
                &format!("mqtt://127.0.0.1:{}", central.port),
            ])
            .args(["--http", &format!("127.0.0.1:{fleet_http}")])
            .stderr(std::fs::File::create(dir.path().join("fleet.log")).unwrap())
            .spawn()
            .expect("start calltone fleet"),
    );
    let (c, a) = demo_8k("demo/demo-call.wav");

    let boxes: Vec<BoxUnderTest> = ["boxA", "boxB"]
        .into_iter()
        .map(|name| {
            let d = mkdir(dir.path().join(name));
            let broker = box_broker(&mkdir(d.join("broker")), central.port, &site, name);
            let local = subscribe(broker.port, &site);
            let url = format!("mqtt://127.0.0.1:{}", broker.port);
            let mut setup = ServeSetup::new(&model, &url, &site);
            setup.asr = "queue = 64\nworkers = 1\n";
            let serve = Serve::launch(&mkdir(d.join("serve")), &setup, free_port(), free_port());
            BoxUnderTest {
                name,
                _broker: broker,
                serve,
                local,
            }
        })
        .collect();
    fleet.wait_for(
        "both boxes online at the central broker",
        Duration::from_secs(30),
        |ev| {
            boxes.iter().all(|b| {
                ev.iter().any(|(t, v, _)| {
                    *t == format!("calltone/{site}/{}/status", b.name) && v["state"] == "online"
                })
            })
        },
    );

    // One call per box at real-time pace, both at once; `outage` stops the central broker
    // `outage.0` s into the calls for `outage.1` s.
    let mut run_calls = |round: u8,
                         seconds: f64,
                         outage: Option<(f64, f64)>|
     -> (Vec<String>, Option<(Instant, Instant)>) {
        let mut threads = Vec::new();
        let mut ids = Vec::new();
        for (i, b) in boxes.iter().enumerate() {
            let mut uuid = *b"bridge-call-0000";
            uuid[14] = b'0' + round;
            uuid[15] = b'0' + i as u8;
            ids.push(uuid_call_id(&uuid));
            let (port, c, a) = (b.serve.audiosocket, c.clone(), a.clone());
            threads.push(std::thread::spawn(move || {
                AudioSocketCall::stream(port, uuid, (&c, &a), 1.0, seconds).hang_up()
            }));
        }
        let mut restarted = None;
        if let Some((at, len)) = outage {
            std::thread::sleep(Duration::from_secs_f64(at));
            let stopped = Instant::now();
            central.stop();
            eprintln!("central broker stopped {at} s into round {round}");
            std::thread::sleep(Duration::from_secs_f64(len));
            central.restart();
            restarted = Some((stopped, Instant::now()));
            eprintln!("central broker restarted after {len} s");
        }
        for t in threads {
            t.join().unwrap();
        }
        (ids, restarted)
    };

    let check = |ids: &[String], restarted: Option<(Instant, Instant)>, what: &str| {
        let t_end = Instant::now();
        for b in &boxes {
            let id = &ids[boxes.iter().position(|x| x.name == b.name).unwrap()];
            b.local.wait_for(
                &format!("{}: {id} ended locally", b.name),
                Duration::from_secs(90),
                |ev| {
                    ev.iter()
                        .any(|(_, v, _)| v["call_id"] == *id && v["type"] == "call_ended")
                },
            );
            // Wait until the central broker has every event the box broker has, or time out.
            let t0 = Instant::now();
            loop {
                let (mine, _) = qos1_of(&b.local.events(), &site, "box1");
                let (theirs, _) = qos1_of(&fleet.events(), &site, b.name);
                let want: BTreeSet<_> = mine.keys().collect();
                let have: BTreeSet<_> = theirs.keys().collect();
                if want.is_subset(&have) || t0.elapsed() > Duration::from_secs(90) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            let (mine, _) = qos1_of(&b.local.events(), &site, "box1");
            let (theirs, copies) = qos1_of(&fleet.events(), &site, b.name);
            let call_local = mine.values().filter(|(v, _)| v["call_id"] == *id).count();
            let call_central = theirs.values().filter(|(v, _)| v["call_id"] == *id).count();
            let lost: Vec<_> = mine.keys().filter(|k| !theirs.contains_key(*k)).collect();
            let extra: Vec<_> = theirs.keys().filter(|k| !mine.contains_key(*k)).collect();
            let mut catch_up = String::new();
            if let Some((stopped, r)) = restarted {
                // The outage must have held events back, or this round proves nothing.
                let during = mine
                    .values()
                    .filter(|(_, at)| *at >= stopped && *at < r)
                    .count();
                assert!(during > 0, "{}: no events during the outage", b.name);
                catch_up = format!("; {during} published during the outage");
                // Events the box had before the central broker came back: when the last of
                // them reached the central subscriber.
                let last = mine
                    .iter()
                    .filter(|(_, (_, at))| *at < r)
                    .filter_map(|(k, _)| theirs.get(k).map(|(_, at)| *at))
                    .max();
                let max_delay = mine
                    .iter()
                    .filter_map(|(k, (_, at))| theirs.get(k).map(|(_, c)| c.duration_since(*at)))
                    .max()
                    .unwrap_or_default();
                catch_up += &format!(
                    "; caught up {:.1} s after the restart (max box→central delay {:.1} s)",
                    last.map_or(0.0, |l| l.saturating_duration_since(r).as_secs_f64()),
                    max_delay.as_secs_f64()
                );
            }
            eprintln!(
                "{what} {}: call {id}: {call_local} QoS 1 events on the box, {call_central} at the central broker; all rounds: {} on the box, {} distinct at central ({} copies, {} duplicates), {} lost{catch_up}; checked {:.1} s after the calls",
                b.name,
                mine.len(),
                theirs.len(),
                copies,
                copies - theirs.len(),
                lost.len(),
                t_end.elapsed().as_secs_f64()
            );
            assert!(lost.is_empty(), "{}: lost at central: {lost:?}", b.name);
            assert!(
                extra.is_empty(),
                "{}: central has events the box never had: {extra:?}",
                b.name
            );
            for (k, (v, _)) in &mine {
                assert_eq!(&theirs[k].0, v, "{}: {k} differs at central", b.name);
            }
            let kinds: BTreeSet<&str> = theirs
                .values()
                .filter(|(v, _)| v["call_id"] == *id)
                .filter_map(|(v, _)| v["type"].as_str())
                .collect();
            for k in ["call_started", "utterance", "call_ended"] {
                assert!(
                    kinds.contains(k),
                    "{}: no {k} for {id} at central: {kinds:?}",
                    b.name
                );
            }
        }
    };

    // Round 1: the bridge as usual.
    let (ids, _) = run_calls(1, 25.0, None);
    check(&ids, None, "round 1");
    // Round 2: the whole demo call (its stress and phrase alerts come late); the central
    // broker goes away 8 s into the calls, for 15 s.
    let (ids, restarted) = run_calls(2, 60.0, Some((8.0, 15.0)));
    check(&ids, restarted, "round 2 (central outage)");

    // The fleet view saw both boxes online with both rounds' calls ended, and their alerts
    // once each.
    let t0 = Instant::now();
    let view = loop {
        let v = http_json(fleet_http, "/api/fleet");
        let done = ["boxA", "boxB"].iter().all(|n| {
            let b = &v["boxes"][format!("{site}/{n}")];
            b["calls"]
                .as_object()
                .is_some_and(|c| c.len() == 2 && c.values().all(|c| c["ended"] == "hangup"))
        });
        if done || t0.elapsed() > Duration::from_secs(20) {
            break v;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let ev = fleet.events();
    assert!(
        view["alerts"].as_array().is_some_and(|a| a.len() >= 2),
        "no alerts in the fleet view: {view}"
    );
    for b in &boxes {
        let fb = &view["boxes"][format!("{site}/{}", b.name)];
        assert_eq!(fb["status"], "online", "{}: {fb}", b.name);
        let calls = fb["calls"].as_object().unwrap();
        assert_eq!(calls.len(), 2, "{}: {fb}", b.name);
        let (central_events, _) = qos1_of(&ev, &site, b.name);
        for (id, c) in calls {
            assert_eq!(c["ended"], "hangup", "{id}: {c}");
            let alerts = central_events
                .values()
                .filter(|(v, _)| v["call_id"] == *id && v["type"] == "alert")
                .count();
            assert_eq!(c["alerts"].as_u64(), Some(alerts as u64), "{id}: {c}");
        }
    }
    eprintln!(
        "fleet view: {} boxes, {} alerts",
        view["boxes"].as_object().map_or(0, |b| b.len()),
        view["alerts"].as_array().map_or(0, |a| a.len())
    );
    if let Some(chromium) = common::browser::Chromium::find() {
        let png = common::browser::artifacts_dir().join("fleet.png");
        chromium.screenshot(&format!("http://127.0.0.1:{fleet_http}/"), &png, 1100, 900);
    }
    let _ = fleet_view.0.kill();

    for b in boxes {
        b.serve.terminate();
    }
}

/// The `calltone fleet` child; killed when dropped.
struct FleetView(std::process::Child);

impl Drop for FleetView {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// GET `path` on 127.0.0.1:`port` as JSON (null when it is not up yet).
fn http_json(port: u16, path: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return serde_json::Value::Null;
    };
    let _ = write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    resp.split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(serde_json::Value::Null)
}
