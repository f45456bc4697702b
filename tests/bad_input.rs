//! Bad input to `calltone replay`: exit code 2, one line on stderr naming the file and the
//! problem, no panic, and the other files of the same run still processed.

mod common;

use std::path::Path;

use common::*;

fn pcm16(n: usize, channels: u16) -> Vec<u8> {
    (0..n * channels as usize)
        .flat_map(|i| (((i as f32 * 0.05).sin() * 8000.0) as i16).to_le_bytes())
        .collect()
}

/// `calltone replay FILES… --model M --out DIR`, not yet run.
fn replay_out(files: &[&Path], model: &Path, out_dir: &Path) -> std::process::Command {
    let mut cmd = calltone();
    cmd.arg("replay")
        .args(files)
        .arg("--model")
        .arg(model)
        .arg("--out")
        .arg(out_dir);
    cmd
}

/// Runs replay on `path` and checks the failure contract; returns the stderr line.
fn assert_rejected(path: &Path, what: &str) -> String {
    let out = calltone()
        .args(["replay", path.to_str().unwrap()])
        .env("CALLTONE_LOG", "off")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{what}: exit {:?}, stderr {stderr}",
        out.status
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: expected one line, got {stderr:?}");
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(
        lines[0].contains(name),
        "{what}: message does not name the file: {stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "{what}: events written for a bad file"
    );
    lines[0].to_string()
}

#[test]
fn each_bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let msg = assert_rejected(&d.join("missing.wav"), "missing file");
    assert!(msg.to_lowercase().contains("no such file"), "{msg}");

    std::fs::write(d.join("empty.wav"), b"").unwrap();
    let msg = assert_rejected(&d.join("empty.wav"), "empty file");
    assert!(msg.contains("empty"), "{msg}");

    std::fs::write(
        d.join("truncated.wav"),
        b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00",
    )
    .unwrap();
    assert_rejected(&d.join("truncated.wav"), "truncated header");

    write_wav_raw(&d.join("zero.wav"), 1, 1, 16000, 16, &[]);
    let msg = assert_rejected(&d.join("zero.wav"), "zero samples");
    assert!(msg.contains("no audio"), "{msg}");

    write_wav_raw(&d.join("three.wav"), 1, 3, 16000, 16, &pcm16(1600, 3));
    let msg = assert_rejected(&d.join("three.wav"), "3 channels");
    assert!(msg.contains("3 channels"), "{msg}");

    // GSM 6.10 in WAV (format tag 0x31): a codec calltone does not decode.
    write_wav_raw(&d.join("gsm.wav"), 0x31, 1, 8000, 0, &[0u8; 650]);
    let msg = assert_rejected(&d.join("gsm.wav"), "unsupported codec");
    assert!(msg.to_lowercase().contains("unsupported"), "{msg}");

    write_wav_raw(&d.join("slow.wav"), 1, 1, 4000, 16, &pcm16(4000, 1));
    let msg = assert_rejected(&d.join("slow.wav"), "rate below 8 kHz");
    assert!(msg.contains("4000"), "{msg}");

    write_wav_raw(&d.join("fast.wav"), 1, 1, 96000, 16, &pcm16(9600, 1));
    let msg = assert_rejected(&d.join("fast.wav"), "rate above 48 kHz");
    assert!(msg.contains("96000"), "{msg}");

    std::fs::write(
        d.join("notes.wav"),
        "these are my meeting notes\nnot audio\n",
    )
    .unwrap();
    assert_rejected(&d.join("notes.wav"), "text file named .wav");
}

#[test]
fn channel_mapping_must_match_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("mono.wav");
    write_wav_raw(&p, 1, 1, 16000, 16, &pcm16(1600, 1));
    let out = calltone()
        .args([
            "replay",
            p.to_str().unwrap(),
            "--channels",
            "customer,agent",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("mono.wav"), "{stderr}");

    let out = calltone()
        .args(["replay", p.to_str().unwrap(), "--channels", "customer,boss"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("boss"), "{stderr}");
}

#[test]
fn missing_model_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ok.wav");
    write_wav_raw(&p, 1, 1, 16000, 16, &pcm16(16000, 1));
    let out = calltone()
        .args([
            "replay",
            p.to_str().unwrap(),
            "--model",
            "/nonexistent/ggml-x.bin",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("/nonexistent/ggml-x.bin"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    // Said once for the run, not once per file, and no event files are left behind.
    let out_dir = dir.path().join("qa");
    let out = calltone()
        .args([
            "replay",
            p.to_str().unwrap(),
            p.to_str().unwrap(),
            p.to_str().unwrap(),
        ])
        .args(["--model", "/nonexistent/ggml-x.bin", "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    // No events files; the index names the refusal.
    let mut left: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["index.csv", "index.html"]);
    let index = std::fs::read_to_string(out_dir.join("index.html")).unwrap();
    assert!(
        index.contains("Not analysed (1)") && index.contains("ggml-x.bin"),
        "{index}"
    );
}

/// With `--out`, a refused input leaves no events file (an empty one made the README's next
/// step, `rescore qa/*.events.jsonl`, fail) and does not truncate an earlier run's; the good
/// calls get their events, report, and a row in index.html and index.csv.
#[test]
fn out_holds_only_whole_calls() {
    let Some(model) = model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.wav");
    std::fs::write(&bad, "not audio").unwrap();
    let good = root().join("demo/calm-call.wav");
    let out_dir = dir.path().join("qa");
    std::fs::create_dir(&out_dir).unwrap();
    // An earlier run's events of a call named "bad".
    std::fs::write(out_dir.join("bad.events.jsonl"), "{\"earlier\":1}\n").unwrap();
    let out = replay_out(&[&bad, &good], &model, &out_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        std::fs::read_to_string(out_dir.join("bad.events.jsonl")).unwrap(),
        "{\"earlier\":1}\n"
    );
    let mut names: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "bad.events.jsonl",
            "calm-call.events.jsonl",
            "calm-call.report.html",
            "index.csv",
            "index.html"
        ]
    );
    let csv = std::fs::read_to_string(out_dir.join("index.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(
        csv.lines().nth(1).unwrap().starts_with("calm-call,"),
        "{csv}"
    );
    // The index says which input was not analysed, and why.
    let index = std::fs::read_to_string(out_dir.join("index.html")).unwrap();
    assert!(index.contains("Not analysed (1)"), "{index}");
    assert!(index.contains("bad.wav</b>: "), "{index}");
    // A run where every input is refused rewrites the index: the earlier run's calls are
    // not shown as this run's.
    let out = replay_out(&[&bad], &model, &out_dir).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let index = std::fs::read_to_string(out_dir.join("index.html")).unwrap();
    assert!(index.contains("QA replay: 0 calls"), "{index}");
    assert!(!index.contains("calm-call.report.html"), "{index}");
}

/// A reader that stops early (`calltone replay --out qa … | head -1`) ends stdout, not the
/// `--out` files: every call is still written whole.
#[test]
fn a_closed_stdout_does_not_stop_the_out_files() {
    let Some(model) = model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.wav");
    let b = dir.path().join("b.wav");
    std::fs::copy(root().join("demo/calm-call.wav"), &a).unwrap();
    std::fs::copy(root().join("demo/calm-call.wav"), &b).unwrap();
    let out_dir = dir.path().join("qa");
    let mut child = replay_out(&[&a, &b], &model, &out_dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
    for name in ["a", "b"] {
        let ev = events(&std::fs::read(out_dir.join(format!("{name}.events.jsonl"))).unwrap());
        assert_eq!(ev.last().unwrap()["type"], "call_ended", "{name}");
        assert!(out_dir.join(format!("{name}.report.html")).is_file());
    }
}

#[test]
fn a_bad_file_does_not_stop_the_good_ones() {
    let Some(model) = model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.wav");
    std::fs::write(&bad, "not audio").unwrap();
    let good = root().join("demo/calm-call.wav");
    let out = calltone()
        .args([
            "replay",
            bad.to_str().unwrap(),
            good.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let ev = events(&out.stdout);
    assert!(ev
        .iter()
        .any(|e| e["type"] == "call_ended" && e["call_id"] == "calm-call"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.wav"));
}

#[test]
fn files_that_would_decode_to_gigabytes_are_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A 3 GiB file (sparse: no disk used) is refused before it is read.
    let big = d.join("huge.wav");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(3 << 30)
        .unwrap();
    let started = std::time::Instant::now();
    let msg = assert_rejected(&big, "3 GiB file");
    assert!(msg.contains("too large") && msg.contains("bytes"), "{msg}");
    eprintln!("3 GiB file refused in {:?}", started.elapsed());

    // A FLAC whose STREAMINFO announces 2^35 samples (about 20 years at 48 kHz): refused from
    // the header, before a sample is decoded.
    if std::process::Command::new("sox")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipping the FLAC case: sox not installed");
        return;
    }
    let flac = d.join("liar.flac");
    let st = std::process::Command::new("sox")
        .args(["-n", "-r", "8000", "-c", "1", "-b", "16"])
        .arg(&flac)
        .args(["synth", "1", "sine", "440"])
        .status()
        .unwrap();
    assert!(st.success());
    let mut bytes = std::fs::read(&flac).unwrap();
    assert_eq!(&bytes[..4], b"fLaC");
    // STREAMINFO: after the 4-byte block header, 10 bytes of block and frame sizes, then
    // 20 bits rate, 3 bits channels, 5 bits bit depth and 36 bits of total samples.
    let mut field = u64::from_be_bytes(bytes[18..26].try_into().unwrap());
    field = (field & !((1u64 << 36) - 1)) | (1u64 << 35);
    bytes[18..26].copy_from_slice(&field.to_be_bytes());
    std::fs::write(&flac, &bytes).unwrap();
    let started = std::time::Instant::now();
    let msg = assert_rejected(&flac, "FLAC announcing 2^35 samples");
    assert!(msg.contains("too large") && msg.contains("MiB"), "{msg}");
    eprintln!("lying FLAC refused in {:?}", started.elapsed());
}

/// With the default log filter (no `CALLTONE_LOG`), the decoders' and Whisper's own log lines
/// stay out of stderr: one line per bad input, naming it.
#[test]
fn default_logs_keep_bad_input_to_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = d.join("notes.mp3");
    std::fs::write(&text, "these are my notes, not audio\n".repeat(20)).unwrap();
    let zeros = d.join("zeros.wav");
    std::fs::write(&zeros, vec![0u8; 4096]).unwrap();
    for p in [&text, &zeros] {
        let out = calltone()
            .args(["replay", p.to_str().unwrap()])
            .env_remove("CALLTONE_LOG")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
        let name = p.file_name().unwrap().to_str().unwrap();
        assert!(stderr.contains(name), "{stderr}");
    }
    // A file that is no Whisper model is the user's input too: exit 2, one line naming it.
    let ok = d.join("ok.wav");
    write_wav_raw(&ok, 1, 1, 16000, 16, &pcm16(16000, 1));
    let not_model = d.join("not-a-model.bin");
    std::fs::write(&not_model, "root:x:0:0:root:/root:/bin/bash\n").unwrap();
    let out = calltone()
        .args([
            "replay",
            ok.to_str().unwrap(),
            "--model",
            not_model.to_str().unwrap(),
        ])
        .env_remove("CALLTONE_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(stderr.contains("not-a-model.bin"), "{stderr}");
}

/// Two inputs with the same file stem are two calls with two ids and two sets of output
/// files; the second does not overwrite the first.
#[test]
fn files_with_one_stem_are_two_calls() {
    let Some(model) = model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("a")).unwrap();
    std::fs::create_dir_all(d.join("b")).unwrap();
    let (a, b) = (d.join("a/call.wav"), d.join("b/call.wav"));
    write_wav_raw(&a, 1, 1, 16000, 16, &pcm16(16000, 1));
    write_wav_raw(&b, 1, 1, 16000, 16, &pcm16(32000, 1));
    let out_dir = d.join("out");
    let out = calltone()
        .args([
            "replay",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ev = events(&out.stdout);
    let ended: Vec<(String, f64)> = ev
        .iter()
        .filter(|e| e["type"] == "call_ended")
        .map(|e| {
            (
                e["call_id"].as_str().unwrap().to_string(),
                e["duration"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ended,
        [("call".to_string(), 1.0), ("call-2".to_string(), 2.0)]
    );
    let ids: std::collections::HashSet<&str> =
        ev.iter().map(|e| e["event_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), ev.len(), "event ids repeat across the two calls");
    for (name, duration) in [("call", 1.0), ("call-2", 2.0)] {
        let stored = events(&std::fs::read(out_dir.join(format!("{name}.events.jsonl"))).unwrap());
        let end = stored.last().unwrap();
        assert_eq!(end["call_id"], name);
        assert_eq!(end["duration"].as_f64(), Some(duration));
    }
}

/// A recording cut short (its header announces more audio than the file holds) is replayed
/// as far as it goes, and the operator is told, naming the file: a QA report of 1 s from a
/// 4 s recording must not pass for the whole call.
#[test]
fn a_wav_cut_short_is_replayed_with_a_warning() {
    let Some(model) = model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut-short.wav");
    let tone: Vec<f32> = (0..4 * 16000)
        .map(|i| (i as f32 * 0.05).sin() * 0.2)
        .collect();
    write_wav_f32(&path, 16000, &tone);
    let bytes = std::fs::read(&path).unwrap();
    // The 44-byte header and the first second of the four.
    std::fs::write(&path, &bytes[..44 + 2 * 16000]).unwrap();
    let out = calltone()
        .args(["replay", path.to_str().unwrap(), "--model"])
        .arg(&model)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let warning: Vec<&str> = stderr.lines().filter(|l| l.contains("cut short")).collect();
    assert_eq!(warning.len(), 1, "{stderr}");
    assert!(
        warning[0].contains("cut-short.wav") && warning[0].contains("25 %"),
        "{stderr}"
    );
    let ev = events(&out.stdout);
    let end = ev.last().unwrap();
    assert_eq!(end["type"], "call_ended");
    assert_eq!(end["duration"].as_f64(), Some(1.0));
}
