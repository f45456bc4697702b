//! `calltone config check` over the real binary: a good config prints the effective config
//! (every key, defaults filled in) as TOML and exits 0; a bad one is one line on stderr naming
//! the file and the problem, exit 2, the same line `serve` gives for it.

mod common;

use std::path::Path;
use std::process::Output;

use calltone::config::Config;
use common::*;

fn check(path: &Path) -> Output {
    calltone()
        .args(["config", "check", "--config", path.to_str().unwrap()])
        .env("CALLTONE_LOG", "off")
        .output()
        .unwrap()
}

/// Exit 2, one line on stderr that names the file and contains `what`; returns the line.
fn assert_rejected(out: &Output, file: &Path, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: expected one line, got {stderr:?}");
    assert!(
        lines[0].contains(file.to_str().unwrap()),
        "does not name the file: {stderr}"
    );
    assert!(lines[0].contains(what), "does not say {what:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.stdout.is_empty(), "printed a config for a bad file");
    lines[0].to_string()
}

#[test]
fn good_config_prints_the_effective_config() {
    let dir = tempfile::tempdir().unwrap();
    // A partial file: two keys set, everything else must come out at its default.
    let partial = dir.path().join("partial.toml");
    std::fs::write(
        &partial,
        "[asr]\nworkers = 3\n\n[mqtt]\nsite = \"lisbon\"\n",
    )
    .unwrap();
    let out = check(&partial);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("# effective calltone config of "),
        "{text}"
    );
    for table in [
        "[asr]",
        "[vad]",
        "[alerts.customer_stress]",
        "[serve]",
        "[mqtt]",
        "[security]",
    ] {
        assert!(text.contains(table), "{table} missing:\n{text}");
    }
    let printed =
        Config::from_toml(&text, Path::new("printed.toml")).expect("output is a valid config");
    let mut expected = Config::default();
    expected.asr.workers = 3;
    expected.mqtt.site = "lisbon".into();
    assert_eq!(
        printed, expected,
        "effective config differs from file + defaults"
    );

    // The printed config checks again to the same text (bar the header naming the file).
    let effective = dir.path().join("effective.toml");
    std::fs::write(&effective, &text).unwrap();
    let again = check(&effective);
    assert_eq!(again.status.code(), Some(0));
    let body = |t: &str| t.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(body(&String::from_utf8(again.stdout).unwrap()), body(&text));

    // The shipped reference and the package's production config are valid.
    for shipped in [
        "firmware-config/calltone.toml",
        "firmware-config/calltone.production.toml",
    ] {
        let out = check(&root().join(shipped));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{shipped}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // No --config: the built-in defaults, as `serve` without --config uses them.
    let out = calltone().args(["config", "check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        Config::from_toml(&text, Path::new("d.toml")).unwrap(),
        Config::default()
    );
}

#[test]
fn bad_configs_are_one_line_naming_file_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let unknown = d.join("unknown-key.toml");
    std::fs::write(&unknown, "[asr]\nworkers = 2\nmodle = \"x.bin\"\n").unwrap();
    let line = assert_rejected(&check(&unknown), &unknown, "modle");
    assert!(line.contains("line 3"), "{line}");

    let bad_value = d.join("bad-value.toml");
    std::fs::write(&bad_value, "[asr]\nworkers = 0\n").unwrap();
    assert_rejected(&check(&bad_value), &bad_value, "asr.workers");

    let bad_range = d.join("bad-range.toml");
    std::fs::write(&bad_range, "[prosody]\nf0_min_hz = 400.0\n").unwrap();
    assert_rejected(&check(&bad_range), &bad_range, "prosody.f0_min_hz");

    let bad_type = d.join("bad-type.toml");
    std::fs::write(&bad_type, "[asr]\nworkers = \"two\"\n").unwrap();
    assert_rejected(&check(&bad_type), &bad_type, "line 2");

    let not_toml = d.join("not-toml.toml");
    std::fs::write(&not_toml, "[asr\nworkers = 2\n").unwrap();
    assert_rejected(&check(&not_toml), &not_toml, "line 1");

    let missing = d.join("missing.toml");
    let line = assert_rejected(&check(&missing), &missing, "cannot read config");
    assert!(line.to_lowercase().contains("no such file"), "{line}");

    // `serve` rejects the same file with the same line, before loading any model.
    let serve = calltone()
        .args(["serve", "--config", bad_value.to_str().unwrap()])
        .env("CALLTONE_LOG", "off")
        .output()
        .unwrap();
    assert_eq!(serve.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&serve.stderr),
        String::from_utf8_lossy(&check(&bad_value).stderr)
    );
}
