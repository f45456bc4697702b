//! A real `calltone serve` for integration tests: private config and data dir, free ports,
//! the system broker, and a two-leg AudioSocket sender for the demo call.
//!
//! Include with `#[path = "common/serve_harness.rs"] mod serve_harness;` next to `mod common;`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{calltone, root};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local addr")
        .port()
}

pub fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// A running `calltone serve`; killed when dropped.
pub struct Serve {
    pub child: Child,
    pub http: u16,
    pub audiosocket: u16,
    pub log: std::path::PathBuf,
}

impl Serve {
    /// Starts serve with its config and data under `dir`, publishing to `mqtt_url` under
    /// `site`; waits until both listeners accept.
    pub fn start(dir: &Path, mqtt_url: &str, site: &str, model: &Path) -> Serve {
        Self::start_on(dir, mqtt_url, site, model, free_port(), free_port())
    }

    /// As [`Serve::start`], on given ports (a restart on the same addresses).
    pub fn start_on(
        dir: &Path,
        mqtt_url: &str,
        site: &str,
        model: &Path,
        http: u16,
        audiosocket: u16,
    ) -> Serve {
        let cfg = dir.join("calltone.toml");
        std::fs::write(
            &cfg,
            format!(
                "[asr]\nmodel = {model:?}\nqueue = 64\n[serve]\nhttp = \"127.0.0.1:{http}\"\naudiosocket = \"127.0.0.1:{audiosocket}\"\ndata_dir = {data:?}\nshutdown_grace_s = 5.0\n[mqtt]\nurl = {mqtt_url:?}\nsite = {site:?}\nbox = \"box1\"\nreconnect_max_ms = 1000\n",
                model = model.display().to_string(),
                data = dir.join("data").display().to_string(),
            ),
        )
        .expect("write config");
        let n = std::fs::read_dir(dir).map_or(0, |d| d.count());
        let log = dir.join(format!("serve-{http}-{n}.log"));
        let mut child = calltone()
            .args(["serve", "--config", cfg.to_str().expect("utf-8 path")])
            .env("CALLTONE_LOG", "info,whisper_rs=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start calltone serve");
        let t0 = Instant::now();
        while !(port_open(http) && port_open(audiosocket)) {
            let exited = child.try_wait().ok().flatten();
            if exited.is_some() || t0.elapsed() > Duration::from_secs(60) {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                panic!(
                    "serve did not start ({exited:?}):\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Serve {
            child,
            http,
            audiosocket,
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    /// GET `path`; the response body (HTTP/1.0, so the server closes after it).
    pub fn get(&self, path: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.http)).expect("connect http");
        write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").expect("send request");
        let mut resp = String::new();
        s.read_to_string(&mut resp).expect("read response");
        match resp.split_once("\r\n\r\n") {
            Some((_, body)) => body.to_string(),
            None => resp,
        }
    }

    /// GET `path` as JSON.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let body = self.get(path);
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    }

    /// Polls `f` every 200 ms until it is true or `timeout` passes (then panics with `what`).
    pub fn wait_for(&self, what: &str, timeout: Duration, mut f: impl FnMut(&Serve) -> bool) {
        let t0 = Instant::now();
        while !f(self) {
            assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM, then wait (SIGKILL after 30 s).
    pub fn terminate(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The two channels of a stereo call file at 8 kHz, as a telephone system sends them.
pub fn call_8k(file: &str) -> (Vec<f32>, Vec<f32>) {
    let d = calltone::audio::decode_file(&root().join(file)).expect("decode call file");
    let to8 = |x: &Vec<f32>| {
        calltone::audio::resample_all(x, d.sample_rate, 8000).expect("resample to 8 kHz")
    };
    (to8(&d.channels[0]), to8(&d.channels[1]))
}

fn slin_frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![kind];
    f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Open AudioSocket legs of one call; the call stays active while this lives, and hangs up
/// (as Asterisk does) on [`AudioSocketCall::hang_up`].
pub struct AudioSocketCall {
    socks: Vec<TcpStream>,
}

impl AudioSocketCall {
    /// Streams the first `seconds` of a two-leg call at `speed`× real time over AudioSocket
    /// (first connection = customer, second = agent) and returns with the legs still open.
    pub fn stream(
        port: u16,
        uuid: [u8; 16],
        legs: (&[f32], &[f32]),
        speed: f64,
        seconds: f64,
    ) -> AudioSocketCall {
        let mut socks: Vec<TcpStream> = Vec::new();
        for _ in 0..2 {
            let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect audiosocket");
            s.set_nodelay(true).expect("nodelay");
            s.write_all(&slin_frame(0x01, &uuid)).expect("send uuid");
            socks.push(s);
            // Legs are told apart by arrival order: let the first register.
            std::thread::sleep(Duration::from_millis(200));
        }
        let frame = 160; // 20 ms at 8 kHz
        let n = legs
            .0
            .len()
            .max(legs.1.len())
            .min((seconds * 8000.0) as usize);
        let t0 = Instant::now();
        for (k, start) in (0..n).step_by(frame).enumerate() {
            for (s, leg) in socks.iter_mut().zip([legs.0, legs.1]) {
                let pcm: Vec<u8> = (start..start + frame)
                    .map(|i| leg.get(i).copied().unwrap_or(0.0))
                    .flat_map(|x| ((x * 32767.0).round() as i16).to_le_bytes())
                    .collect();
                s.write_all(&slin_frame(0x10, &pcm)).expect("send audio");
            }
            let due = Duration::from_secs_f64((k + 1) as f64 * 0.02 / speed);
            if let Some(w) = due.checked_sub(t0.elapsed()) {
                std::thread::sleep(w);
            }
        }
        AudioSocketCall { socks }
    }

    pub fn hang_up(mut self) {
        for s in &mut self.socks {
            let _ = s.write_all(&slin_frame(0x00, &[]));
        }
    }
}
