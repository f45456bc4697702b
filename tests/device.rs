//! The sound-device source for real, through ALSA, with no sound card: the test writes a
//! user ALSA config (`$HOME/.asoundrc`, read by alsa-lib's stock `alsa.conf`) whose capture
//! PCM is the `file` plugin over the `null` plugin. `null` hands out silence as fast as it is
//! asked and `file` replaces it with bytes read from `infile`; a regular file would therefore
//! be captured far faster than real time. The infile is a FIFO that this test writes at
//! real-time pace, so the "sound card" delivers the demo call the way a line tap would: the
//! capture thread blocks until the next 20 ms arrive. (alsa-lib's `file` plugin returns the
//! frames its one `read()` got, so short reads shorten the period instead of padding it.)

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::broker::*;
use common::service::*;
use common::*;

const RATE: u32 = 16_000;
const PCM: &str = "calltone_tap";

/// `$HOME/.asoundrc` with a stereo capture PCM reading `fifo`.
fn write_asoundrc(home: &Path, fifo: &Path) {
    std::fs::write(
        home.join(".asoundrc"),
        format!(
            "pcm.{PCM} {{\n  type file\n  slave.pcm \"null\"\n  file \"/dev/null\"\n  infile \"{}\"\n  format \"raw\"\n  hint {{\n    show on\n    description \"calltone test line tap\"\n  }}\n}}\n",
            fifo.display()
        ),
    )
    .unwrap();
}

/// The demo call as interleaved s16le stereo (customer, agent) at 16 kHz.
fn demo_s16_stereo() -> Vec<u8> {
    let d = calltone::audio::decode_file(&root().join("demo/demo-call.wav")).unwrap();
    assert_eq!(d.sample_rate, RATE, "demo call rate");
    let n = d.channels[0].len();
    let mut out = Vec::with_capacity(n * 4);
    for i in 0..n {
        for ch in &d.channels[..2] {
            let s = (ch[i] * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
            out.extend_from_slice(&s.to_le_bytes());
        }
    }
    out
}

#[test]
fn demo_call_from_an_alsa_capture_device_reaches_mqtt() {
    let Some(model) = model() else { return };
    if !port_open(1883) {
        eprintln!("SKIP: no MQTT broker on 127.0.0.1:1883");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let fifo = home.path().join("tap.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("SKIP: mkfifo not available");
        return;
    }
    write_asoundrc(home.path(), &fifo);
    // Read-write, so opening does not wait for a reader and the pipe outlives the PCM
    // opening and closing it (listing, probing, streaming); this test never reads it.
    let pipe = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();

    // `calltone devices` lists the tap with the format it will be captured in.
    let out = calltone()
        .arg("devices")
        .env("HOME", home.path())
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    eprintln!("calltone devices:\n{listing}");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = listing
        .lines()
        .find(|l| l.starts_with(&format!("alsa:{PCM} ")))
        .unwrap_or_else(|| panic!("{PCM} not listed:\n{listing}"));
    assert!(line.contains("calltone test line tap"), "{line}");
    assert!(line.contains("2 ch") && line.contains("i16"), "{line}");

    let site = unique("dev");
    let rec = subscribe(1883, &site);
    let prefix = unique("tap");
    let device = format!(
        "[device]\nenabled = true\ndevice = \"alsa:{PCM}\"\nsample_rate = {RATE}\nchannels = [\"customer\", \"agent\"]\ncall_prefix = \"{prefix}\"\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut setup = ServeSetup::new(&model, "mqtt://127.0.0.1:1883", &site);
    setup.tables = &device;
    let env = [("HOME", home.path())];
    setup.env = &env;
    let serve = Serve::launch(dir.path(), &setup, free_port(), free_port());
    let t_wait = Instant::now();
    while !std::fs::read_to_string(&serve.log)
        .unwrap_or_default()
        .contains("capture started")
    {
        assert!(
            t_wait.elapsed() < Duration::from_secs(20),
            "capture did not start:\n{}",
            serve.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The line tap: the demo call at real-time pace in 20 ms writes, then silence (a sound
    // card never stops delivering) until calltone has exited.
    let audio = demo_s16_stereo();
    let chunk = (RATE as usize / 50) * 4;
    let call_s = audio.len() as f64 / (RATE as f64 * 4.0);
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(std::sync::Mutex::new(0usize));
    let t0 = Instant::now();
    let writer = {
        let (stop, written) = (stop.clone(), written.clone());
        let mut pipe = pipe.try_clone().unwrap();
        std::thread::spawn(move || {
            let silence = vec![0u8; chunk];
            for k in 0.. {
                if stop.load(Ordering::Acquire) {
                    return;
                }
                let start = k * chunk;
                let data = if start < audio.len() {
                    &audio[start..(start + chunk).min(audio.len())]
                } else {
                    &silence[..]
                };
                if pipe.write_all(data).is_err() {
                    return;
                }
                *written.lock().unwrap() += data.len();
                let due = Duration::from_secs_f64((k + 1) as f64 * 0.02);
                if let Some(w) = due.checked_sub(t0.elapsed()) {
                    std::thread::sleep(w);
                }
            }
        })
    };
    let call = {
        let rec = rec.clone();
        let mut id = None;
        rec.wait_for(
            "call_started from the device",
            Duration::from_secs(20),
            |ev| {
                ev.iter().any(|(_, v, _)| {
                    v["type"] == "call_started"
                        && v["call_id"]
                            .as_str()
                            .is_some_and(|c| c.starts_with(&prefix))
                })
            },
        );
        for (_, v, _) in rec.events() {
            if v["type"] == "call_started" {
                assert_eq!(v["source"], "device", "{v}");
                assert_eq!(v["sample_rate"], RATE, "{v}");
                id = v["call_id"].as_str().map(String::from);
            }
        }
        id.unwrap()
    };
    // The capture owns its call's legs: a media stream naming its (predictable) id is
    // refused, and none of its audio reaches the call.
    {
        use tungstenite::Message;
        let (mut ws, _) =
            tungstenite::connect(format!("ws://127.0.0.1:{}/media/twilio", serve.media))
                .expect("ws connect");
        ws.send(Message::text(
            serde_json::json!({"event": "start", "sequenceNumber": "1", "streamSid": "MZdev",
                "start": {"streamSid": "MZdev", "callSid": call, "accountSid": "AC1",
                "tracks": ["inbound"], "mediaFormat":
                {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})
            .to_string(),
        ))
        .unwrap();
        let reason = loop {
            match ws.read() {
                Ok(Message::Close(f)) => break f.map(|f| f.reason.to_string()),
                Ok(_) => {}
                Err(e) => panic!("no close frame for a stream naming the device call: {e}"),
            }
        };
        // `leg_taken`: the capture holds the customer leg the stream asked for.
        assert!(
            matches!(reason.as_deref(), Some("leg_taken" | "other_source")),
            "{reason:?}"
        );
    }
    // The whole call plus time for its last utterance to close and be transcribed.
    if let Some(w) = Duration::from_secs_f64(call_s + 4.0).checked_sub(t0.elapsed()) {
        std::thread::sleep(w);
    }
    let sent_s = *written.lock().unwrap() as f64 / (RATE as f64 * 4.0);
    let status = serve.terminate();
    stop.store(true, Ordering::Release);
    writer.join().unwrap();
    assert!(status.is_some_and(|s| s.success()), "serve exit {status:?}");
    rec.wait_for("call_ended", Duration::from_secs(30), |ev| {
        ev.iter()
            .any(|(_, v, _)| v["call_id"] == call && v["type"] == "call_ended")
    });
    let ev = rec.events();
    check_demo_call(&ev, &call, &site, t0, "shutdown");
    // Captured audio is the audio sent: not faster than real time (the `null` slave would
    // be) and nothing dropped. Up to one period plus the reader's 20 ms tick may still be in
    // flight at the stop.
    let end = ev
        .iter()
        .find(|(_, v, _)| v["call_id"] == call && v["type"] == "call_ended")
        .unwrap();
    let duration = end.1["duration"].as_f64().unwrap();
    eprintln!("device call: {duration:.2} s captured, {sent_s:.2} s written");
    assert!(
        (duration - sent_s).abs() < 0.5,
        "captured {duration:.2} s of audio, wrote {sent_s:.2} s"
    );
}
