//! Headless Chromium for tests that look at pages: DOM dumps and screenshots.
//!
//! Every run gets a fresh profile directory and the flags of a sandboxed CI box; screenshots
//! go to `target/test-artifacts/` (test output, not part of the repository).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Chromium {
    bin: PathBuf,
}

/// Flags of every run: headless on a sandboxed CI box, nothing fetched from outside.
const FLAGS: [&str; 6] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
];

/// Where tests leave screenshots for people to look at.
pub fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("create target/test-artifacts");
    dir
}

impl Chromium {
    /// Debian's `chromium` (or another Chromium/Chrome on PATH), or `None` with a printed
    /// reason.
    pub fn find() -> Option<Chromium> {
        for name in ["chromium", "chromium-browser", "google-chrome", "chrome"] {
            let found = Command::new(name)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if found {
                return Some(Chromium { bin: name.into() });
            }
        }
        eprintln!("SKIP: no chromium on PATH (.ci/run installs Debian's chromium)");
        None
    }

    fn run(&self, extra: &[String], url: &str) -> String {
        let profile = tempfile::tempdir().expect("profile dir");
        let mut args: Vec<String> = FLAGS
            .iter()
            .chain(&["--hide-scrollbars"])
            .map(|s| s.to_string())
            .collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.extend(extra.iter().cloned());
        args.push(url.to_string());
        let out_path = profile.path().join("stdout");
        let mut child = Command::new(&self.bin)
            .args(&args)
            .stdout(std::fs::File::create(&out_path).expect("stdout file"))
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        let t0 = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    assert!(status.success(), "chromium {args:?} failed: {status}");
                    break;
                }
                _ if t0.elapsed() > Duration::from_secs(60) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("chromium {args:?} did not finish in 60 s");
                }
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        std::fs::read_to_string(&out_path).expect("read chromium output")
    }

    /// The DOM after the page has loaded and its scripts have run.
    pub fn dump_dom(&self, url: &str) -> String {
        self.run(&["--dump-dom".into()], url)
    }

    /// A PNG of the page at `width`×`height` CSS pixels.
    pub fn screenshot(&self, url: &str, path: &Path, width: u32, height: u32) {
        let _ = std::fs::remove_file(path);
        self.run(
            &[
                format!("--screenshot={}", path.display()),
                format!("--window-size={width},{height}"),
            ],
            url,
        );
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        assert!(
            size > 1000,
            "{}: no screenshot ({size} bytes)",
            path.display()
        );
        eprintln!("screenshot: {}", path.display());
    }
}

/// A page kept open in headless Chromium and driven over the DevTools protocol, for checks
/// that need time to pass without a reload (live updates).
pub struct LivePage {
    child: std::process::Child,
    ws: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>,
    session: String,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Chromium {
    /// Opens `url` in a fresh headless Chromium and keeps it open.
    pub fn open(&self, url: &str) -> LivePage {
        use std::io::BufRead;
        let profile = tempfile::tempdir().expect("profile dir");
        let mut child = Command::new(&self.bin)
            .args(FLAGS)
            .args(["--remote-debugging-port=0", "--window-size=1280,800"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(i) = line.find("ws://") {
                    let _ = tx.send(line[i..].trim().to_string());
                }
            }
        });
        let endpoint = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("chromium printed no DevTools endpoint");
        let (ws, _) = tungstenite::connect(endpoint.as_str()).expect("connect to DevTools");
        let mut page = LivePage {
            child,
            ws,
            session: String::new(),
            next_id: 1,
            _profile: profile,
        };
        let target = page.call(None, "Target.createTarget", serde_json::json!({"url": url}));
        let target_id = target["targetId"].as_str().expect("targetId").to_string();
        let attached = page.call(
            None,
            "Target.attachToTarget",
            serde_json::json!({"targetId": target_id, "flatten": true}),
        );
        page.session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_string();
        page
    }
}

impl LivePage {
    fn call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: serde_json::Value,
    ) -> serde_json::Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = serde_json::json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = s.into();
        }
        self.ws
            .send(tungstenite::Message::text(msg.to_string()))
            .expect("send to DevTools");
        loop {
            let m = self.ws.read().expect("read from DevTools");
            let Ok(text) = m.to_text() else { continue };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
                continue;
            };
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// The value of a JavaScript expression in the page.
    pub fn eval(&mut self, expr: &str) -> serde_json::Value {
        let session = self.session.clone();
        let r = self.call(
            Some(&session),
            "Runtime.evaluate",
            serde_json::json!({"expression": expr, "returnByValue": true}),
        );
        r["result"]["value"].clone()
    }

    /// A screenshot of the live page as it is now, at `width`×`height` CSS pixels.
    pub fn capture(&mut self, path: &Path, width: u32, height: u32) {
        use base64::Engine as _;
        let session = self.session.clone();
        self.call(
            Some(&session),
            "Emulation.setDeviceMetricsOverride",
            serde_json::json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        );
        let shot = self.call(
            Some(&session),
            "Page.captureScreenshot",
            serde_json::json!({"format": "png"}),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("base64 screenshot");
        std::fs::write(path, &png).unwrap();
        assert!(png.len() > 1000, "{}: empty screenshot", path.display());
        eprintln!("screenshot: {}", path.display());
    }

    /// Polls `expr` until it is `true`; panics with `what` after `timeout`.
    pub fn wait_until(&mut self, what: &str, timeout: Duration, expr: &str) {
        let t0 = Instant::now();
        while self.eval(expr) != serde_json::Value::Bool(true) {
            assert!(t0.elapsed() < timeout, "page: timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for LivePage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
