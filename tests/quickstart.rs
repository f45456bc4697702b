//! `tools/quickstart.sh` on a machine that lacks a package and is not root: one line on stderr
//! naming what to install, exit 2, and nothing built. (The whole script — install, model,
//! build, demo replay — is timed on a fresh clone, README Quick start; too long for a test.)

mod common;

use std::process::Command;

#[test]
fn missing_packages_are_one_line_and_exit_2_without_root() {
    let script = common::root().join("tools/quickstart.sh");
    let missing = "calltone-no-such-package";
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let mut cmd = if is_root {
        // As root the script would install through apt: drop to nobody for the check.
        if Command::new("setpriv").arg("--version").output().is_err() {
            eprintln!("SKIP: running as root and setpriv (util-linux) is not available");
            return;
        }
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "bash"]);
        c
    } else {
        Command::new("bash")
    };
    let out = cmd
        .arg(&script)
        .env("QUICKSTART_EXTRA_PACKAGES", missing)
        .env("QUICKSTART_OUT", "/nonexistent/quickstart")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout {stdout}\nstderr {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line: {stderr:?}");
    assert!(
        lines[0].contains(missing) && lines[0].contains("apt-get install"),
        "{stderr}"
    );
    assert!(
        !stdout.contains("release build"),
        "went on past the check: {stdout}"
    );
}
