//! Headless Chromium for tests that look at pages: DOM dumps and screenshots.
//!
//! Include with `#[path = "common/browser.rs"] mod browser;`. Every run gets a fresh profile
//! directory and the flags of a sandboxed CI box; screenshots go to
//! `target/test-artifacts/` (test output, not part of the repository).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Chromium {
    bin: PathBuf,
}

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
        let mut args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--hide-scrollbars",
        ]
        .iter()
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
