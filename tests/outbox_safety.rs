//! The outbox and its data directory under misuse, with the real binary, real files and a
//! real Mosquitto: a second `serve` on the same data_dir, an existing shared data_dir, an
//! ended call's retained topics while the outbox is full, bad `mqtt.url` values, and an
//! unreachable broker in the default log. Tests that need the model or `mosquitto` skip with
//! a message when it is missing.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use calltone::publish::Outbox;
use rumqttc::{Client, Event as MEvent, MqttOptions, Packet, QoS};

mod common;
use common::broker::{free_port, unique, Mosquitto};
use common::service::{demo_8k, log_tail, uuid_call_id, AudioSocketCall, Serve, ServeSetup};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Waits for `child` to exit within `limit`; kills it and panics otherwise.
fn wait_exit(mut child: Child, limit: Duration, what: &str) -> Output {
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what}: still running after {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

/// Every file under `dir` with its contents, sorted.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_second_serve_on_the_same_data_dir_is_refused_and_changes_nothing() {
    let Some(model) = common::model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let Some(mosq) = Mosquitto::start(dir.path()) else {
        return;
    };
    // A shared, sticky data_dir: calltone uses it but must not change it.
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let url = format!("mqtt://127.0.0.1:{}", mosq.port);
    let site = unique("lock");
    let a = Serve::launch(
        dir.path(),
        &ServeSetup::new(&model, &url, &site),
        free_port(),
        free_port(),
    );

    // A call open in A (as A records it), and A's outbox as it stands.
    let record = data.join("calls/LIVECALL");
    std::fs::write(&record, "LIVECALL\n7\n12.5\n3\n").unwrap();
    let outbox_before = snapshot(&data.join("outbox"));

    // The operator starts a second serve by hand: other listeners, same data_dir.
    let b = common::calltone()
        .args(["serve", "--config"])
        .arg(dir.path().join("calltone.toml"))
        .args(["--http", &format!("127.0.0.1:{}", free_port())])
        .args(["--media", "off", "--audiosocket", "off"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_exit(b, Duration::from_secs(30), "second serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(
        lines[0].contains(&data.display().to_string())
            && lines[0].contains("in use")
            && lines[0].contains(&format!("pid {}", a.child.id())),
        "{stderr}"
    );
    assert!(record.exists(), "the live call's record was not touched");
    assert_eq!(snapshot(&data.join("outbox")), outbox_before);
    // What A made of the shared data_dir: its own subdirectories private, the rest as it was.
    assert_eq!(mode(&data), 0o1777, "an existing data_dir keeps its mode");
    assert_eq!(mode(&data.join("outbox")), 0o700);
    assert_eq!(mode(&data.join("calls")), 0o700);

    // A is still the one serving, and stops cleanly; then the data_dir is free again.
    assert!(a.get("/healthz").contains("200 OK"));
    assert_eq!(a.terminate().and_then(|s| s.code()), Some(0));
    let again = Serve::launch(
        dir.path(),
        &ServeSetup::new(&model, &url, &site),
        free_port(),
        free_port(),
    );
    again.wait_for("the left-open call ended", Duration::from_secs(20), |_| {
        !record.exists()
    });
}

#[test]
fn a_failed_start_leaves_an_existing_data_dir_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let out = common::calltone()
        .args(["serve", "--model", "/nonexistent/model.bin", "--data-dir"])
        .arg(&shared)
        .args(["--http", &format!("127.0.0.1:{}", free_port())])
        .args(["--media", "off", "--audiosocket", "off"])
        .args(["--mqtt", "mqtt://127.0.0.1:1883"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("asr.model"), "{stderr}");
    assert_eq!(mode(&shared), 0o1777, "mode changed by a failed start");
}

#[test]
fn a_start_that_cannot_listen_leaves_open_calls_alone() {
    let Some(model) = common::model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("calls")).unwrap();
    let record = data.join("calls/LEFTOVER");
    std::fs::write(&record, "LEFTOVER\n4\n9.5\n2\n").unwrap();
    // The supervisor port is taken (say, by the running service's listener).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = common::calltone()
        .arg("serve")
        .arg("--model")
        .arg(&model)
        .arg("--data-dir")
        .arg(&data)
        .args(["--http", &taken.local_addr().unwrap().to_string()])
        .args(["--media", "off", "--audiosocket", "off"])
        .args(["--mqtt", &format!("mqtt://127.0.0.1:{}", free_port())])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot listen"), "{stderr}");
    assert!(
        record.exists(),
        "a failed start ended the open call:\n{stderr}"
    );
    let queued: Vec<_> = std::fs::read_dir(data.join("outbox"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        !queued.iter().any(|n| n.to_string_lossy().ends_with(".seg")),
        "a failed start queued events: {queued:?}"
    );
}

/// Retained messages under `filter` on the broker at `port`: (topic, payload).
fn retained(port: u16, filter: &str) -> Vec<(String, Vec<u8>)> {
    let mut opts = MqttOptions::new(unique("ret"), "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut conn) = Client::new(opts, 100);
    client.subscribe(filter, QoS::AtLeastOnce).unwrap();
    let mut got = Vec::new();
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        match conn.recv_timeout(Duration::from_millis(200)) {
            Ok(Ok(MEvent::Incoming(Packet::Publish(p)))) if p.retain => {
                got.push((p.topic.clone(), p.payload.to_vec()))
            }
            Ok(Err(e)) => panic!("subscriber: {e}"),
            _ => {}
        }
    }
    let _ = client.disconnect();
    got
}

fn publish_retained(port: u16, topic: &str, payload: &[u8]) {
    let mut opts = MqttOptions::new(unique("pub"), "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut conn) = Client::new(opts, 100);
    client
        .publish(topic, QoS::AtLeastOnce, true, payload.to_vec())
        .unwrap();
    for ev in conn.iter() {
        if let Ok(MEvent::Incoming(Packet::PubAck(_))) = ev {
            break;
        }
        ev.unwrap();
    }
    let _ = client.disconnect();
}

#[test]
fn an_ended_call_leaves_no_retained_state_when_the_outbox_is_full() {
    let Some(model) = common::model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let Some(mut mosq) = Mosquitto::start(dir.path()) else {
        return;
    };
    let site = unique("full");
    let uuid = *b"fulloutboxcall01";
    let call_id = uuid_call_id(&uuid);
    let base = format!("calltone/{site}/box1/calls/{call_id}");
    // What an earlier session left on the broker for this call.
    for kind in ["state", "context"] {
        publish_retained(mosq.port, &format!("{base}/{kind}"), br#"{"stale":true}"#);
    }
    assert_eq!(retained(mosq.port, &format!("{base}/#")).len(), 2);
    mosq.stop();

    // An outbox filled to within a few bytes of its 64 KiB bound by an earlier run.
    let max = 65_536u64;
    {
        let mut ob = Outbox::open(dir.path().join("data/outbox"), 1 << 20).unwrap();
        let topic = format!("calltone/{site}-seed/box1/x");
        let mut n = 0;
        loop {
            let id = format!("seed:{n:06}");
            let overhead = 8 + 14 + topic.len() + id.len();
            let room = max - 30 - ob.bytes();
            if room < overhead as u64 + 1 {
                break;
            }
            // 1000-byte records, then one that ends exactly 30 bytes short (never a remainder
            // too small for a record, whatever the topic's length).
            let len = if room as usize > 1000 + 2 * overhead + 1 {
                1000
            } else {
                room as usize - overhead
            };
            ob.append(&topic, &id, &vec![b'x'; len], 1, false).unwrap();
            n += 1;
        }
        ob.sync().unwrap();
        assert!(ob.bytes() > max - 60 && ob.bytes() <= max - 30);
    }

    let url = format!("mqtt://127.0.0.1:{}", mosq.port);
    let mut setup = ServeSetup::new(&model, &url, &site);
    setup.mqtt = "outbox_max_bytes = 65536\n";
    setup.serve = "context_interval_s = 0.5\n";
    let serve = Serve::launch(dir.path(), &setup, free_port(), free_port());
    let (cust, agent) = demo_8k("demo/demo-call.wav");
    let call = AudioSocketCall::stream(serve.audiosocket, uuid, (&cust, &agent), 1.0, 3.0);
    call.hang_up();
    serve.wait_for("the call to end", Duration::from_secs(30), |s| {
        s.metric("calltone_active_calls") == Some(0.0)
    });

    mosq.restart();
    serve.wait_for("the outbox to drain", Duration::from_secs(30), |s| {
        s.metric("calltone_mqtt_connected") == Some(1.0)
            && s.metric("calltone_outbox_depth") == Some(0.0)
    });
    std::thread::sleep(Duration::from_millis(500));
    let left: Vec<_> = retained(mosq.port, &format!("{base}/#"))
        .into_iter()
        .filter(|(_, p)| !p.is_empty())
        .map(|(t, p)| format!("{t} {}", String::from_utf8_lossy(&p)))
        .collect();
    assert!(
        left.is_empty(),
        "retained after the call ended: {left:#?}\n{}",
        serve.log_tail(20)
    );
}

#[test]
fn mqtt_url_values_that_cannot_work_are_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        "embedded ",
        "mqtt://user:s3cret@127.0.0.1:1883",
        "mqtt://127.0.0.1?x=1",
        "mqtt://127.0.0.1:1883#f",
        "mqtt://127.0.0.1:0",
        "mqtt://127.0.0.1 :1883",
    ] {
        let cfg = dir.path().join("c.toml");
        std::fs::write(&cfg, format!("[mqtt]\nurl = {url:?}\n")).unwrap();
        let out = common::calltone()
            .args(["config", "check", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{url:?}: {stderr}");
        assert!(stderr.contains("mqtt.url"), "{url:?}: {stderr}");
        assert!(!stderr.contains("s3cret"), "{url:?}: {stderr}");
    }
    // The command line's --mqtt goes through the same check, before the model is loaded.
    let out = common::calltone()
        .args([
            "serve",
            "--mqtt",
            "embedded ",
            "--model",
            "/nonexistent.bin",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("mqtt.url"), "{stderr}");
}

#[test]
fn an_unreachable_broker_shows_in_the_default_log() {
    let Some(model) = common::model() else { return };
    if !Mosquitto::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("mqtt://127.0.0.1:{port}");
    let serve = Serve::launch(
        dir.path(),
        &ServeSetup::new(&model, &url, &unique("down")),
        free_port(),
        free_port(),
    );
    // reconnect_max_ms = 1000: several failed attempts in 5 s, one line about them.
    std::thread::sleep(Duration::from_secs(5));
    let log = std::fs::read_to_string(&serve.log).unwrap();
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("cannot connect to the broker"))
        .collect();
    assert_eq!(warned.len(), 1, "{log}");
    assert!(warned[0].contains("WARN"), "{}", warned[0]);
    assert!(
        warned[0].contains(&format!("127.0.0.1:{port}")),
        "{}",
        warned[0]
    );

    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("user root\nlistener {port} 127.0.0.1\nallow_anonymous true\n"),
    )
    .unwrap();
    let _mosq = Mosquitto::with_config(port, conf);
    serve.wait_for("connected again", Duration::from_secs(20), |s| {
        log_tail(&s.log, 50).contains("mqtt: connected again")
    });
    let log = std::fs::read_to_string(&serve.log).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("mqtt: connected again"))
        .unwrap();
    assert!(
        line.contains("INFO") && line.contains("failed_attempts"),
        "{line}"
    );
}
