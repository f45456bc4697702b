//! `serve` with a data_dir (the outbox's home) that cannot be one: an existing regular file,
//! a path through a file, a missing parent. Each is refused before anything is written, with
//! exit code 2 and one line naming the path and the problem, whether the path came from
//! `--data-dir` or from `serve.data_dir` in the config file. The real binary; skips with a
//! message when the model is missing.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::broker::free_port;

/// Runs `cmd` (a `serve` that must refuse to start); fails if it is still running after 30 s.
fn refused(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "serve started instead of refusing its data_dir; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn serve(model: &Path) -> Command {
    let mut c = common::calltone();
    c.arg("serve")
        .arg("--model")
        .arg(model)
        .args(["--http", &format!("127.0.0.1:{}", free_port())])
        .args(["--media", "off", "--audiosocket", "off"])
        .args(["--mqtt", "mqtt://127.0.0.1:1"]);
    c
}

/// One line on stderr, exit 2, naming `path` and containing every one of `words`.
fn assert_one_line(out: &Output, path: &Path, words: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(
        lines[0].contains(&path.display().to_string()),
        "names {}: {stderr}",
        path.display()
    );
    for w in words {
        assert!(lines[0].contains(w), "says {w:?}: {stderr}");
    }
    assert!(!stderr.contains("os error"), "a raw OS error: {stderr}");
}

#[test]
fn a_data_dir_that_is_a_file_is_refused_with_one_clear_line() {
    let Some(model) = common::model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("calltone-data");
    std::fs::write(&file, "not a directory\n").unwrap();

    // The flag.
    let out = refused({
        let mut c = serve(&model);
        c.arg("--data-dir").arg(&file);
        c
    });
    assert_one_line(&out, &file, &["serve.data_dir", "is not a directory"]);

    // The config key.
    let cfg = dir.path().join("calltone.toml");
    std::fs::write(&cfg, format!("[serve]\ndata_dir = {:?}\n", file.display())).unwrap();
    let out = refused({
        let mut c = serve(&model);
        c.arg("--config").arg(&cfg);
        c
    });
    assert_one_line(&out, &file, &["serve.data_dir", "is not a directory"]);

    // A path through the file names the file as what is wrong.
    let below = file.join("sub");
    let out = refused({
        let mut c = serve(&model);
        c.arg("--data-dir").arg(&below);
        c
    });
    assert_one_line(&out, &below, &["is not a directory"]);
    assert_eq!(
        std::fs::read(&file).unwrap(),
        b"not a directory\n",
        "the file is left as it was"
    );
}

#[test]
fn a_data_dir_whose_parent_is_missing_is_refused_and_not_created() {
    let Some(model) = common::model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let parent = dir.path().join("not-mounted");
    let data = parent.join("calltone");
    for by_config in [false, true] {
        let out = refused({
            let mut c = serve(&model);
            if by_config {
                let cfg = dir.path().join("calltone.toml");
                std::fs::write(&cfg, format!("[serve]\ndata_dir = {:?}\n", data.display()))
                    .unwrap();
                c.arg("--config").arg(cfg);
            } else {
                c.arg("--data-dir").arg(&data);
            }
            c
        });
        assert_one_line(&out, &data, &["serve.data_dir", "does not exist"]);
        assert!(
            !parent.exists(),
            "the missing parent was created (by_config {by_config})"
        );
    }
}
