//! MQTT helpers shared by the integration tests: free ports, unique names, a private
//! Mosquitto on a free port, and a blocking subscriber that records what arrives.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{Client, Event as MEvent, MqttOptions, Packet, QoS};

/// A port nothing listens on right now, below Linux's ephemeral range (32768–60999).
///
/// A port the OS hands out for `bind(0)` is an ephemeral one: between this check and the
/// server binding it, any outgoing connection of a parallel test (to Mosquitto, say) may
/// take it as its local port, and the server then fails with `AddrInUse`. Ports below the
/// range are never picked for outgoing connections; the start is spread over the range so
/// that parallel tests and test binaries do not probe the same ports.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LO: u32 = 20000;
    const SPAN: u32 = 12000;
    // One seed per test process: with a fixed seed and a stride coprime to SPAN, one process
    // never hands out the same port twice (a fresh seed per call did, now and then: the
    // embedded broker and the media listener of one test got the same port).
    static SEED: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        std::process::id().wrapping_mul(2_654_435_761)
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
    });
    loop {
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LO + seed.wrapping_add(k.wrapping_mul(7919)) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(300),
    )
    .is_ok()
}

/// A name no other test run uses (client ids, MQTT sites).
pub fn unique(tag: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{tag}{}x{}", std::process::id(), n % 1_000_000_000)
}

/// A private Mosquitto on a free port, with persistence in its own directory so a graceful
/// restart keeps the test subscriber's session and queued messages. `user root` keeps a
/// root-started broker from dropping to the `mosquitto` user, which could not write the
/// private temp directory (the option is ignored when the tests do not run as root).
pub struct Mosquitto {
    pub port: u16,
    conf: PathBuf,
    child: Option<Child>,
}

impl Mosquitto {
    /// Whether a `mosquitto` binary is there; prints a SKIP line when it is not.
    pub fn available() -> bool {
        let found = Command::new("mosquitto")
            .arg("-h")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            eprintln!("SKIP: mosquitto binary not found");
        }
        found
    }

    /// Starts the broker, or returns `None` (with a printed reason) without a `mosquitto`.
    pub fn start(dir: &Path) -> Option<Self> {
        if !Self::available() {
            return None;
        }
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "user root\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nautosave_interval 1\nmax_queued_messages 100000\n",
                dir.display()
            ),
        )
        .unwrap();
        Some(Self::with_config(port, conf))
    }

    /// Starts a broker from a config file written by the caller; waits for `port`.
    pub fn with_config(port: u16, conf: PathBuf) -> Self {
        let mut m = Mosquitto {
            port,
            conf,
            child: None,
        };
        m.restart();
        m
    }

    pub fn restart(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let t0 = Instant::now();
        while !port_open(self.port) {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "mosquitto did not start on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Graceful stop (SIGTERM): connections drop, the broker saves its sessions.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One received message: topic, JSON payload, arrival time.
pub type Msg = (String, serde_json::Value, Instant);

/// Messages received by [`subscribe`], with their arrival time.
#[derive(Clone, Default)]
pub struct Received(Arc<Mutex<Vec<Msg>>>);

impl Received {
    pub fn events(&self) -> Vec<Msg> {
        self.0.lock().unwrap().clone()
    }

    /// Waits until `f` holds for what has arrived; panics naming `what` after `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, f: impl Fn(&[Msg]) -> bool) {
        let t0 = Instant::now();
        while !f(&self.events()) {
            assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Subscribes to `calltone/{site}/#` on 127.0.0.1:`port` (persistent session, re-subscribing
/// after reconnects) in a thread; JSON payloads are recorded, others (cleared retained
/// messages) skipped.
pub fn subscribe(port: u16, site: &str) -> Received {
    let rec = Received::default();
    let mut opts = MqttOptions::new(unique("sub"), "127.0.0.1", port);
    opts.set_clean_session(false);
    opts.set_keep_alive(Duration::from_secs(5));
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut conn) = Client::new(opts, 1000);
    let topic = format!("calltone/{site}/#");
    let r = rec.clone();
    std::thread::spawn(move || {
        for ev in conn.iter() {
            match ev {
                Ok(MEvent::Incoming(Packet::ConnAck(_))) => {
                    let _ = client.subscribe(topic.clone(), QoS::AtLeastOnce);
                }
                Ok(MEvent::Incoming(Packet::Publish(p))) => {
                    if let Ok(v) = serde_json::from_slice(&p.payload) {
                        r.0.lock()
                            .unwrap()
                            .push((p.topic.clone(), v, Instant::now()));
                    }
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    });
    rec
}

/// The events of one call, in arrival order (the retained hand-off `…/context` snapshot,
/// which also names the call, is not an event and is left out).
pub fn of_call<'a>(ev: &'a [Msg], call_id: &str) -> Vec<&'a Msg> {
    ev.iter()
        .filter(|(t, v, _)| v["call_id"] == call_id && !t.ends_with("/context"))
        .collect()
}

/// The `p` quantile (0..=1) of `v`, nearest rank; NaN when empty.
pub fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}
