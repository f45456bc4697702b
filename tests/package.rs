//! The Debian package and the systemd service: `cargo deb --no-build` packages the release
//! binary already built, the package is unpacked into a throwaway root and checked (files,
//! conffile, maintainer script, the binary runs from there), the unit passes `systemd-analyze
//! verify` and `systemd-analyze security --offline=yes` there; and `serve` speaks the
//! sd_notify protocol (READY=1, WATCHDOG=1, STOPPING=1) to a real notify socket and survives
//! SIGHUP (a config reload).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use calltone::config::Config;
use common::broker::free_port;
use common::service::{Serve, ServeSetup};
use common::*;

/// Where the package puts the model (asr.model of /etc/calltone/calltone.toml).
const MODEL: &str = "/var/lib/calltone/models/ggml-tiny.en.bin";

fn runs(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn output(cmd: &mut Command) -> (bool, String, String) {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn production_config_is_the_reference_with_the_packaged_model() {
    let prod = Config::load(&root().join("firmware-config/calltone.production.toml"))
        .expect("production config loads");
    let mut expected = Config::default();
    expected.asr.model = MODEL.into();
    assert_eq!(
        prod, expected,
        "only asr.model may differ from the defaults"
    );
    assert_eq!(prod.serve.data_dir, Path::new("/var/lib/calltone"));
    // It stays the complete reference: every table and key line of it, bar asr.model.
    let reference = std::fs::read_to_string(root().join("firmware-config/calltone.toml")).unwrap();
    let production =
        std::fs::read_to_string(root().join("firmware-config/calltone.production.toml")).unwrap();
    for line in reference
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        if line.starts_with("model = ") {
            continue;
        }
        assert!(
            production.lines().any(|p| p == line),
            "the production config lacks {line:?}: regenerate it from firmware-config/calltone.toml"
        );
    }
}

/// Builds the .deb from the release binary of this test run; `None` (SKIP) without cargo-deb.
fn build_deb(out: &Path) -> Option<PathBuf> {
    if !runs("cargo", &["deb", "--version"]) {
        eprintln!("SKIP: cargo-deb is not installed (cargo install cargo-deb --locked)");
        return None;
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_calltone"));
    assert!(
        bin.ends_with("release/calltone"),
        "cargo deb --no-build packages target/release/calltone; run with --release ({})",
        bin.display()
    );
    let deb = out.join("calltone.deb");
    let (ok, stdout, stderr) = output(
        Command::new("cargo")
            .current_dir(root())
            .args(["deb", "--no-build", "--strip", "--output"])
            .arg(&deb),
    );
    assert!(ok, "cargo deb failed:\n{stdout}\n{stderr}");
    assert!(!stderr.contains("warning"), "cargo deb warned:\n{stderr}");
    Some(deb)
}

#[test]
fn package_installs_into_a_throwaway_root_and_its_unit_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(deb) = build_deb(tmp.path()) else {
        return;
    };
    let t0 = Instant::now();
    let root_dir = tmp.path().join("root");
    let control = tmp.path().join("control");
    for (args, dir) in [(["-x"], &root_dir), (["-e"], &control)] {
        let (ok, _, stderr) = output(Command::new("dpkg-deb").args(args).arg(&deb).arg(dir));
        assert!(ok, "dpkg-deb {args:?}: {stderr}");
    }

    // Files and modes.
    let bin = root_dir.join("usr/bin/calltone");
    let mode = std::fs::metadata(&bin)
        .expect("usr/bin/calltone")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755, "binary mode {mode:o}");
    for f in [
        "etc/calltone/calltone.toml",
        "usr/lib/systemd/system/calltone.service",
        "usr/lib/sysusers.d/calltone.conf",
        "usr/share/doc/calltone/README.md",
        "usr/share/doc/calltone/calltone.reference.toml",
        "usr/share/doc/calltone/copyright",
    ] {
        assert!(root_dir.join(f).is_file(), "{f} not in the package");
    }
    assert_eq!(
        std::fs::read(root_dir.join("etc/calltone/calltone.toml")).unwrap(),
        std::fs::read(root().join("firmware-config/calltone.production.toml")).unwrap()
    );
    let sysusers =
        std::fs::read_to_string(root_dir.join("usr/lib/sysusers.d/calltone.conf")).unwrap();
    assert!(
        sysusers.lines().any(|l| l.starts_with("u calltone ")),
        "{sysusers}"
    );

    // Control: the conffile, dependencies, the maintainer script.
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap();
    assert_eq!(conffiles.trim(), "/etc/calltone/calltone.toml");
    let ctl = std::fs::read_to_string(control.join("control")).unwrap();
    let depends = ctl
        .lines()
        .find(|l| l.starts_with("Depends:"))
        .unwrap_or("");
    assert!(
        depends.contains("libasound2") && depends.contains("systemd") && depends.contains("procps"),
        "{depends}"
    );
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    assert!(
        postinst.contains("systemd-sysusers") && postinst.contains("calltone.conf"),
        "{postinst}"
    );
    assert!(
        postinst.contains("install -d -m 0750 -o calltone -g calltone /var/lib/calltone/models")
    );
    assert!(postinst.contains("calltone model fetch tiny.en --dir /var/lib/calltone/models"));
    assert!(!postinst.contains("#DEBHELPER#"), "token left in postinst");
    let (ok, _, stderr) = output(Command::new("sh").arg("-n").arg(control.join("postinst")));
    assert!(ok, "postinst is not valid sh: {stderr}");

    // The packaged binary runs and accepts the packaged config.
    let (ok, stdout, stderr) = output(Command::new(&bin).arg("--version"));
    assert!(ok && stdout.starts_with("calltone "), "{stdout}{stderr}");
    let (ok, stdout, stderr) = output(
        Command::new(&bin)
            .args(["config", "check", "--config"])
            .arg(root_dir.join("etc/calltone/calltone.toml")),
    );
    assert!(ok, "config check of the packaged config: {stderr}");
    assert!(stdout.contains(&format!("model = \"{MODEL}\"")), "{stdout}");
    eprintln!(
        "package: {} bytes, binary {} bytes, unpacked and checked in {:.1} s",
        std::fs::metadata(&deb).unwrap().len(),
        std::fs::metadata(&bin).unwrap().len(),
        t0.elapsed().as_secs_f64()
    );

    if !runs("systemd-analyze", &["--version"]) {
        eprintln!("SKIP: systemd-analyze not found (apt package systemd); unit not verified");
        return;
    }
    // verify resolves the unit's dependencies (sysinit.target, network-online.target, …) in
    // the root: give the throwaway root the host's stock units beside the package's.
    let units = root_dir.join("usr/lib/systemd/system");
    for entry in std::fs::read_dir("/usr/lib/systemd/system")
        .into_iter()
        .flatten()
        .flatten()
    {
        let dest = units.join(entry.file_name());
        if !dest.exists() {
            let _ = Command::new("cp")
                .arg("-a")
                .arg(entry.path())
                .arg(&dest)
                .status();
        }
    }
    // ExecReload's /bin/kill comes from procps, a dependency: the host's stands in for it.
    let kill = root_dir.join("bin/kill");
    std::fs::create_dir_all(kill.parent().unwrap()).unwrap();
    std::fs::copy("/bin/kill", &kill).expect("/bin/kill (procps) on the host");
    let root_arg = format!("--root={}", root_dir.display());
    let (ok, stdout, stderr) =
        output(Command::new("systemd-analyze").args(["verify", &root_arg, "calltone.service"]));
    assert!(ok, "systemd-analyze verify failed:\n{stdout}{stderr}");
    // Unknown or unparsable directives are only warnings there: the unit must have none.
    assert!(
        !stderr.contains("calltone.service"),
        "systemd-analyze verify complained:\n{stderr}"
    );

    let (ok, stdout, stderr) = output(Command::new("systemd-analyze").args([
        "security",
        "--offline=yes",
        &root_arg,
        "calltone.service",
    ]));
    assert!(ok, "systemd-analyze security failed:\n{stdout}{stderr}");
    let overall = stdout
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for calltone.service: ")
                .nth(1)
        })
        .unwrap_or_else(|| panic!("no overall exposure line:\n{stdout}"));
    let level: f64 = overall.split_whitespace().next().unwrap().parse().unwrap();
    let open: Vec<&str> = stdout.lines().filter(|l| l.starts_with('✗')).collect();
    eprintln!(
        "systemd-analyze security: exposure {overall}; open:\n{}",
        open.join("\n")
    );
    assert!(level <= 2.0, "exposure {level} > 2.0:\n{stdout}");
    for must in [
        "PrivateDevices=",
        "ProtectHome=",
        "NoNewPrivileges=",
        "PrivateTmp=",
        "RestrictSUIDSGID=",
    ] {
        assert!(
            !open.iter().any(|l| l.contains(must)),
            "{must} is not hardened:\n{stdout}"
        );
    }
}

/// One datagram from the notify socket, as its `KEY=VALUE` lines.
fn recv(sock: &UnixDatagram) -> Vec<String> {
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("no sd_notify message in time");
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn serve_notifies_ready_watchdog_and_stopping() {
    let Some(model) = model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mqtt = format!("embedded_listen = \"127.0.0.1:{}\"\n", free_port());
    let mut setup = ServeSetup::new(&model, "embedded", "notify");
    setup.mqtt = &mqtt;
    // WatchdogSec=0.4s: pings every 0.2 s. No WATCHDOG_PID, so any pid matches.
    let env = [
        ("NOTIFY_SOCKET", sock_path.as_path()),
        ("WATCHDOG_USEC", Path::new("400000")),
    ];
    setup.env = &env;
    let serve = Serve::launch(dir.path(), &setup, free_port(), free_port());

    let first = recv(&sock);
    assert!(first.contains(&"READY=1".to_string()), "{first:?}");
    assert!(first.iter().any(|l| l.starts_with("STATUS=")), "{first:?}");
    // Drop what queued up while the test waited for the listeners, then time from a fresh ping.
    sock.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    while sock.recv(&mut buf).is_ok() {}
    sock.set_nonblocking(false).unwrap();
    assert_eq!(recv(&sock), ["WATCHDOG=1"], "unexpected message");
    let t0 = Instant::now();
    let mut pings = 0;
    while pings < 5 {
        let msg = recv(&sock);
        assert_eq!(msg, ["WATCHDOG=1"], "unexpected message");
        pings += 1;
    }
    let per_ping = t0.elapsed().as_secs_f64() / 5.0;
    assert!(
        (0.1..0.6).contains(&per_ping),
        "a ping every {per_ping:.3} s; expected ~0.2 s (half of WATCHDOG_USEC)"
    );
    // A healthy service answers while it pings.
    assert!(serve.get("/healthz").contains("200"), "healthz");

    // SIGHUP (the unit's ExecReload) re-reads the config; the service and its pings go on.
    let _ = Command::new("kill")
        .args(["-HUP", &serve.child.id().to_string()])
        .status();
    serve.wait_for("the SIGHUP reload", Duration::from_secs(10), |s| {
        s.log_tail(20).contains("SIGHUP: configuration reloaded")
    });
    assert!(
        serve.get("/healthz").contains("200"),
        "healthz after SIGHUP"
    );
    assert_eq!(recv(&sock), ["WATCHDOG=1"], "pings go on after SIGHUP");

    let log = serve.log.clone();
    let status = serve.terminate();
    let mut stopping = false;
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    while let Ok(n) = sock.recv(&mut buf) {
        if String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l == "STOPPING=1")
        {
            stopping = true;
            break;
        }
    }
    assert!(
        stopping,
        "no STOPPING=1 after SIGTERM:\n{}",
        common::service::log_tail(&log, 10)
    );
    assert_eq!(status.and_then(|s| s.code()), Some(0), "serve exit");
    eprintln!("sd_notify: READY=1, watchdog ping every {per_ping:.3} s, STOPPING=1 on SIGTERM");
}
