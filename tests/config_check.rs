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

    let no_dir = d.join("no-data-dir.toml");
    std::fs::write(&no_dir, "[serve]\ndata_dir = \"\"\n").unwrap();
    assert_rejected(&check(&no_dir), &no_dir, "serve.data_dir");

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

/// Every number of the config, set in turn to values no setting expects (NaN, ±infinity,
/// negative, zero, huge): loading either refuses it (naming the key) or accepts it, and an
/// accepted config runs a short two-speaker call through the pipeline to its end without
/// panicking or hanging. Bounded: each case runs in a thread with a 20 s limit.
#[test]
fn config_fuzz_every_number_is_refused_or_harmless() {
    use calltone::audio::Speaker;
    use calltone::pipeline::{Analyzers, CallPipeline, Output};
    let base = toml::Value::try_from(Config::default()).unwrap();
    let mut leaves = Vec::new();
    fn walk(v: &toml::Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, bool)>) {
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    path.push(k.clone());
                    walk(v, path, out);
                    path.pop();
                }
            }
            toml::Value::Float(_) => out.push((path.clone(), true)),
            toml::Value::Integer(_) => out.push((path.clone(), false)),
            _ => {}
        }
    }
    walk(&base, &mut Vec::new(), &mut leaves);
    assert!(leaves.len() > 50, "{} numeric keys", leaves.len());
    let floats = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -1.0,
        0.0,
        1e12,
        1e20,
    ];
    let ints = [-1i64, 0, 1 << 40];
    let (mut refused, mut accepted, mut failures) = (0, 0, Vec::new());
    let tone: Vec<f32> = (0..8000 * 3)
        .map(|i| (i as f32 * 0.1).sin() * 0.3 * ((i / 4000) % 2) as f32)
        .collect();
    for (path, is_float) in &leaves {
        let values: Vec<toml::Value> = if *is_float {
            floats.iter().map(|&x| toml::Value::Float(x)).collect()
        } else {
            ints.iter().map(|&x| toml::Value::Integer(x)).collect()
        };
        for value in values {
            let key = path.join(".");
            let mut v = base.clone();
            let mut t = &mut v;
            for k in &path[..path.len() - 1] {
                t = t.get_mut(k).unwrap();
            }
            t.as_table_mut()
                .unwrap()
                .insert(path[path.len() - 1].clone(), value.clone());
            let text = toml::to_string(&v).unwrap();
            let cfg = match Config::from_toml(&text, Path::new("fuzz.toml")) {
                Ok(c) => c,
                Err(e) => {
                    let msg = e.to_string();
                    if !msg.starts_with("fuzz.toml: ") || msg.contains('\n') {
                        failures.push(format!("{key} = {value}: unclear error {msg:?}"));
                    }
                    refused += 1;
                    continue;
                }
            };
            if value.as_float().is_some_and(|x| !x.is_finite()) {
                failures.push(format!("{key} = {value}: accepted"));
            }
            // serve builds timers from every duration: one it cannot build panics there.
            let x = value.as_float().or(value.as_integer().map(|i| i as f64));
            let secs = match path.last().map(String::as_str) {
                Some(k) if k.ends_with("_ms") => x.map(|x| x / 1000.0),
                Some(k) if k.ends_with("_s") => x,
                _ => None,
            };
            if secs.is_some_and(|s| std::time::Duration::try_from_secs_f64(s).is_err()) {
                failures.push(format!(
                    "{key} = {value}: accepted, but no timer can be built"
                ));
            }
            accepted += 1;
            // Shown only when the test fails (an abort names the case it was in).
            eprintln!("case {key} = {value}");
            let tone = tone.clone();
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let run = std::panic::catch_unwind(move || {
                    let a = Analyzers::from_config(&cfg).map_err(|e| e.to_string())?;
                    let mut out = Vec::new();
                    let speakers = [Speaker::Customer, Speaker::Agent];
                    let mut p = CallPipeline::new(
                        "fuzz",
                        "file",
                        &speakers,
                        8000,
                        None,
                        &cfg,
                        &a,
                        String::new,
                        &mut out,
                    )
                    .map_err(|e| e.to_string())?;
                    for chunk in tone.chunks(160) {
                        p.push(Speaker::Customer, chunk, &mut out);
                        p.push(Speaker::Agent, chunk, &mut out);
                    }
                    p.finish("hangup", &mut out);
                    let jobs: Vec<u64> = out
                        .iter()
                        .filter_map(|o| match o {
                            Output::Asr(j) => Some(j.job_id),
                            _ => None,
                        })
                        .collect();
                    for id in jobs {
                        p.on_transcript(id, Ok(Default::default()), &mut out);
                    }
                    Ok::<bool, String>(p.is_finished())
                });
                let _ = tx.send(run);
            });
            match rx.recv_timeout(std::time::Duration::from_secs(20)) {
                Ok(Ok(Ok(true))) | Ok(Ok(Err(_))) => {}
                Ok(Ok(Ok(false))) => failures.push(format!("{key} = {value}: call never ended")),
                Ok(Err(_)) => failures.push(format!("{key} = {value}: panicked")),
                Err(_) => failures.push(format!("{key} = {value}: still running after 20 s")),
            }
        }
    }
    eprintln!(
        "config fuzz: {} keys, {refused} values refused, {accepted} accepted and run",
        leaves.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every key the shipped configs show commented out ("# key = value") parses when an operator
/// uncomments it as written.
#[test]
fn every_commented_key_uncomments_to_a_valid_line() {
    // "# key = value": a commented setting, not prose.
    let is_key_line = |line: &str| {
        let Some(rest) = line.strip_prefix('#') else {
            return false;
        };
        let rest = rest.strip_prefix(' ').unwrap_or(rest);
        let key_len = rest
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(rest.len());
        key_len > 0
            && rest[key_len..]
                .trim_start()
                .strip_prefix('=')
                .is_some_and(|v| {
                    v.trim_start()
                        .chars()
                        .next()
                        .is_some_and(|c| !c.is_whitespace())
                })
    };
    for name in ["calltone.toml", "calltone.production.toml"] {
        let path = root().join("firmware-config").join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut tried = 0;
        for (i, line) in lines.iter().enumerate() {
            if !is_key_line(line) {
                continue;
            }
            tried += 1;
            let mut edited = lines.clone();
            let uncommented = line.trim_start_matches('#').trim_start().to_string();
            edited[i] = &uncommented;
            if let Err(calltone::config::ConfigError::Parse { message, .. }) =
                Config::from_toml(&edited.join("\n"), &path)
            {
                panic!("{name} line {}: {line:?} uncommented: {message}", i + 1);
            }
        }
        assert!(tried > 10, "{name}: only {tried} commented keys");
    }
}
