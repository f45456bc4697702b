//! The real `calltone serve` as a child process, and a telephony-side AudioSocket sender.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::broker::{free_port, of_call, percentile, port_open, unique};

/// What a test's `calltone.toml` says beyond the fixed parts.
pub struct ServeSetup<'a> {
    pub model: &'a Path,
    /// `[mqtt] url`.
    pub mqtt_url: &'a str,
    pub site: &'a str,
    /// Extra lines of the `[asr]` table (e.g. `workers = 1`).
    pub asr: &'a str,
    /// Extra lines of the `[mqtt]` table (e.g. `embedded_listen = ...`).
    pub mqtt: &'a str,
    /// Extra lines of the `[serve]` table (e.g. `tls_cert_file = ...`).
    pub serve: &'a str,
    /// Extra tables appended to the file (e.g. a `[device]` table).
    pub tables: &'a str,
    /// Extra command-line arguments after `serve --config F`.
    pub args: &'a [&'a str],
    /// Extra environment for the process.
    pub env: &'a [(&'a str, &'a Path)],
}

impl<'a> ServeSetup<'a> {
    pub fn new(model: &'a Path, mqtt_url: &'a str, site: &'a str) -> Self {
        Self {
            model,
            mqtt_url,
            site,
            asr: "queue = 64\n",
            mqtt: "",
            serve: "",
            tables: "",
            args: &[],
            env: &[],
        }
    }
}

/// A running `calltone serve`; killed when dropped.
pub struct Serve {
    pub child: Child,
    pub http: u16,
    /// The media-ingest listener (`/media/*`).
    pub media: u16,
    pub audiosocket: u16,
    pub log: std::path::PathBuf,
}

impl Serve {
    pub fn start(dir: &Path, mqtt_url: &str, site: &str, model: &Path) -> Serve {
        Self::start_on(dir, mqtt_url, site, model, free_port(), free_port())
    }

    pub fn start_on(
        dir: &Path,
        mqtt_url: &str,
        site: &str,
        model: &Path,
        http: u16,
        audiosocket: u16,
    ) -> Serve {
        Self::launch(
            dir,
            &ServeSetup::new(model, mqtt_url, site),
            http,
            audiosocket,
        )
    }

    /// Writes `dir/calltone.toml` from `s`, starts serve with it and waits for its listeners.
    pub fn launch(dir: &Path, s: &ServeSetup, http: u16, audiosocket: u16) -> Serve {
        let cfg = dir.join("calltone.toml");
        let media = free_port();
        std::fs::write(
            &cfg,
            format!(
                "[asr]\nmodel = {model:?}\n{asr}[serve]\nhttp = \"127.0.0.1:{http}\"\nmedia = \"127.0.0.1:{media}\"\naudiosocket = \"127.0.0.1:{audiosocket}\"\ndata_dir = {data:?}\nshutdown_grace_s = 20.0\n{serve}[mqtt]\nurl = {url:?}\nsite = {site:?}\nbox = \"box1\"\nreconnect_max_ms = 1000\n{mqtt}{tables}",
                model = s.model.display().to_string(),
                asr = s.asr,
                data = dir.join("data").display().to_string(),
                url = s.mqtt_url,
                site = s.site,
                mqtt = s.mqtt,
                serve = s.serve,
                tables = s.tables,
            ),
        )
        .unwrap();
        let log_path = dir.join(format!("serve-{http}-{}.log", unique("")));
        let log = std::fs::File::create(&log_path).unwrap();
        let mut cmd = super::calltone();
        cmd.args(["serve", "--config", cfg.to_str().unwrap()])
            .args(s.args)
            .env("CALLTONE_LOG", "info,whisper_rs=warn")
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in s.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start calltone serve");
        let t0 = Instant::now();
        while !(port_open(http) && port_open(media) && port_open(audiosocket)) {
            let exited = child.try_wait().ok().flatten();
            if exited.is_some() || t0.elapsed() > Duration::from_secs(60) {
                panic!(
                    "serve did not start ({exited:?}):\n{}",
                    log_tail(&log_path, 15)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Serve {
            child,
            http,
            media,
            audiosocket,
            log: log_path,
        }
    }

    /// An HTTP GET on the service's listener; the whole response, headers included.
    pub fn get(&self, path: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.http)).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body
    }

    /// `http://127.0.0.1:{http}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    /// The body of an HTTP GET (headers dropped).
    pub fn body(&self, path: &str) -> String {
        let resp = self.get(path);
        match resp.split_once("\r\n\r\n") {
            Some((_, body)) => body.to_string(),
            None => resp,
        }
    }

    /// An HTTP GET's body as JSON.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let body = self.body(path);
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    }

    /// Polls `f` every 200 ms until it is true or `timeout` passes (then panics with `what`).
    pub fn wait_for(&self, what: &str, timeout: Duration, mut f: impl FnMut(&Serve) -> bool) {
        let t0 = Instant::now();
        while !f(self) {
            assert!(
                t0.elapsed() < timeout,
                "timed out waiting for {what}:\n{}",
                self.log_tail(15)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A sample of `/metrics` (first sample of the family `name`, no labels).
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.get("/metrics")
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} "))?.trim().parse().ok())
    }

    /// The last lines of the service's log.
    pub fn log_tail(&self, n: usize) -> String {
        log_tail(&self.log, n)
    }

    /// SIGTERM, then waits for the process to exit (killing it after 30 s).
    pub fn terminate(mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        None
    }

    pub fn sigkill(mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn log_tail(path: &Path, n: usize) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(n).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// A file's two channels at 8 kHz, as a telephone system would send them.
pub fn demo_8k(file: &str) -> (Vec<f32>, Vec<f32>) {
    let d = calltone::audio::decode_file(&super::root().join(file)).unwrap();
    let to8 = |x: &Vec<f32>| calltone::audio::resample_all(x, d.sample_rate, 8000).unwrap();
    (to8(&d.channels[0]), to8(&d.channels[1]))
}

pub fn slin_frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![kind];
    f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// The call id calltone gives an AudioSocket UUID (canonical lower-case hyphenated form).
pub fn uuid_call_id(uuid: &[u8; 16]) -> String {
    let h: String = uuid.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Open AudioSocket legs of one call (first connection = customer, second = agent).
pub struct AudioSocketCall {
    socks: Vec<TcpStream>,
    /// When the first audio frame was sent.
    pub t0: Instant,
}

impl AudioSocketCall {
    /// Connects both legs, then streams up to `seconds` of `legs` at `speed`× real time
    /// (1.0 = real time) and returns with the legs still open: the call stays active until
    /// [`AudioSocketCall::hang_up`], or until it is dropped (a vanished sender).
    pub fn stream(
        port: u16,
        uuid: [u8; 16],
        legs: (&[f32], &[f32]),
        speed: f64,
        seconds: f64,
    ) -> AudioSocketCall {
        // Legs are told apart by arrival order (first = customer), as Asterisk starts them
        // one after the other; give the first leg's UUID time to register.
        let mut socks: Vec<TcpStream> = Vec::new();
        for _ in 0..2 {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_nodelay(true).unwrap();
            s.write_all(&slin_frame(0x01, &uuid)).unwrap();
            socks.push(s);
            std::thread::sleep(Duration::from_millis(200));
        }
        let frame = 160; // 20 ms at 8 kHz
        let n = legs
            .0
            .len()
            .max(legs.1.len())
            .min((seconds * 8000.0).ceil() as usize);
        let t0 = Instant::now();
        for (k, start) in (0..n).step_by(frame).enumerate() {
            for (s, leg) in socks.iter_mut().zip([legs.0, legs.1]) {
                let pcm: Vec<u8> = (start..start + frame)
                    .map(|i| leg.get(i).copied().unwrap_or(0.0))
                    .flat_map(|x| ((x * 32767.0).round() as i16).to_le_bytes())
                    .collect();
                s.write_all(&slin_frame(0x10, &pcm)).unwrap();
            }
            let due = Duration::from_secs_f64((k + 1) as f64 * 0.02 / speed);
            if let Some(w) = due.checked_sub(t0.elapsed()) {
                std::thread::sleep(w);
            }
        }
        AudioSocketCall { socks, t0 }
    }

    /// Sends the AudioSocket hangup on both legs.
    pub fn hang_up(mut self) {
        for s in &mut self.socks {
            let _ = s.write_all(&slin_frame(0x00, &[]));
        }
    }
}

/// Streams a whole two-leg call over AudioSocket at `speed`× real time (1.0 = real time) and
/// hangs up; returns the instant the first audio frame was sent. With `stop_after` the legs
/// stay connected after that many seconds of audio, without a hangup, until the process
/// exits (a call still in progress when calltone is killed).
pub fn stream_audiosocket(
    port: u16,
    uuid: [u8; 16],
    legs: (&[f32], &[f32]),
    speed: f64,
    stop_after: Option<f64>,
) -> Instant {
    let call = AudioSocketCall::stream(port, uuid, legs, speed, stop_after.unwrap_or(f64::MAX));
    let t0 = call.t0;
    if stop_after.is_some() {
        std::mem::forget(call);
    } else {
        call.hang_up();
    }
    t0
}

/// Checks the sequence of one streamed `demo/demo-call.wav` (started → transcribed
/// utterances of both speakers → stress and phrase alerts → ended with `reason`, on the
/// contract's topics, QoS 1 in order) and prints its latencies; `t0` is when its first
/// audio left the sender.
pub fn check_demo_call(
    ev: &[(String, serde_json::Value, Instant)],
    call_id: &str,
    site: &str,
    t0: Instant,
    reason: &str,
) {
    let mine = of_call(ev, call_id);
    let qos1: Vec<_> = mine
        .iter()
        .filter(|(t, _, _)| !t.ends_with("/state") && !t.ends_with("/context"))
        .collect();
    let base = format!("calltone/{site}/box1/calls/{call_id}");
    assert_eq!(
        qos1.first().unwrap().1["type"],
        "call_started",
        "{:?}",
        qos1.first()
    );
    assert_eq!(qos1.first().unwrap().0, format!("{base}/lifecycle"));
    let last = qos1.last().unwrap();
    assert_eq!(last.1["type"], "call_ended");
    assert_eq!(last.0, format!("{base}/lifecycle"));
    assert_eq!(last.1["reason"], reason);
    // QoS 1 events arrive in order; seq never repeats or goes back.
    for w in qos1.windows(2) {
        assert!(
            w[0].1["seq"].as_u64() < w[1].1["seq"].as_u64(),
            "order: {} then {}",
            w[0].1,
            w[1].1
        );
    }
    for (topic, v, _) in &qos1 {
        let kind = v["type"].as_str().unwrap();
        let want = match kind {
            "utterance" => "utterance",
            "alert" => "alert",
            "empathy" => "empathy",
            "assist" => "assist",
            _ => "lifecycle",
        };
        assert_eq!(*topic, format!("{base}/{want}"));
    }
    let utts: Vec<_> = qos1
        .iter()
        .filter(|(_, v, _)| v["type"] == "utterance")
        .collect();
    for who in ["customer", "agent"] {
        let n = utts
            .iter()
            .filter(|(_, v, _)| v["speaker"] == who && !v["text"].as_str().unwrap().is_empty())
            .count();
        assert!(n >= 4, "{n} transcribed {who} utterances");
    }
    let customer: String = utts
        .iter()
        .filter(|(_, v, _)| v["speaker"] == "customer")
        .map(|(_, v, _)| v["text"].as_str().unwrap().to_lowercase())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        customer.contains("cancel") && customer.contains("supervisor"),
        "{customer}"
    );
    let alerts: Vec<_> = qos1
        .iter()
        .filter(|(_, v, _)| v["type"] == "alert")
        .collect();
    assert!(
        alerts
            .iter()
            .any(|(_, v, _)| v["kind"] == "customer_stress"),
        "no stress alert"
    );
    assert!(
        alerts
            .iter()
            .any(|(_, v, _)| v["kind"] == "escalation_phrase"),
        "no phrase alert"
    );
    // State was live while the call ran.
    assert!(
        mine.iter()
            .filter(|(t, _, _)| t.ends_with("/state"))
            .count()
            >= 10
    );

    // Latency: the audio at call time `x` left the sender at t0 + x.
    let since = |x: f64, at: &Instant| at.duration_since(t0).as_secs_f64() - x;
    for (_, a, at) in &alerts {
        eprintln!(
            "{call_id}: alert {} at call t={:.2}, audio→subscriber latency {:.3} s",
            a["kind"],
            a["end"].as_f64().unwrap(),
            since(a["end"].as_f64().unwrap(), at)
        );
    }
    let stress: Vec<f64> = alerts
        .iter()
        .filter(|(_, v, _)| v["kind"] == "customer_stress")
        .map(|(_, v, at)| since(v["end"].as_f64().unwrap(), at))
        .collect();
    let asr: Vec<f64> = utts
        .iter()
        .map(|(_, v, at)| since(v["end"].as_f64().unwrap(), at))
        .collect();
    eprintln!(
        "{call_id}: prosody alert latency {:.3} s; utterance-end→transcript latency p50 {:.3} s p95 {:.3} s (n={})",
        stress[0],
        percentile(asr.clone(), 0.5),
        percentile(asr.clone(), 0.95),
        asr.len()
    );
    // Sanity: the alert is not from the future, and transcripts do come while the call runs.
    assert!(
        stress[0] > -0.2,
        "alert before its audio was sent? {}",
        stress[0]
    );
}
