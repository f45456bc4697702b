//! Bounded, honest decoding with the real tiny.en model: non-speech gives no words (and a
//! reason), jfk.wav still word for word, the same audio always the same result, and a
//! replayed call with non-speech keeps its utterance events and `seq` whole.

mod common;

use calltone::asr::transcribe::{Rejected, TranscribeOptions, Transcript, WhisperModel};
use common::*;

const SR: f32 = 16000.0;

/// A deterministic uniform noise source (no `rand` needed for a test signal).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

fn tone(freqs: &[f32], secs: f32, amp: f32) -> Vec<f32> {
    (0..(secs * SR) as usize)
        .map(|i| {
            let t = i as f32 / SR;
            freqs
                .iter()
                .map(|f| (2.0 * std::f32::consts::PI * f * t).sin())
                .sum::<f32>()
                * amp
                / freqs.len() as f32
        })
        .collect()
}

fn white_noise(secs: f32, amp: f32) -> Vec<f32> {
    let mut r = Lcg(7);
    (0..(secs * SR) as usize).map(|_| r.next() * amp).collect()
}

/// Brown (1/f²) noise: the rumble of a line or an air conditioner.
fn brown_noise(secs: f32, amp: f32) -> Vec<f32> {
    let mut r = Lcg(11);
    let mut y = 0.0f32;
    (0..(secs * SR) as usize)
        .map(|_| {
            y = 0.995 * y + 0.05 * r.next();
            y * amp
        })
        .collect()
}

/// Touch-tone digits 1, 5, 9, 0, #: 120 ms tone, 80 ms gap each, three times over.
fn dtmf() -> Vec<f32> {
    let digits = [
        (697.0, 1209.0),
        (770.0, 1336.0),
        (852.0, 1477.0),
        (941.0, 1336.0),
        (941.0, 1477.0),
    ];
    let mut v = Vec::new();
    for _ in 0..3 {
        for (lo, hi) in digits {
            v.extend(tone(&[lo, hi], 0.12, 0.5));
            v.extend(std::iter::repeat_n(0.0, (0.08 * SR) as usize));
        }
    }
    v
}

/// Hold music: a bass and an arpeggiated triad with harmonics, 8 s.
fn hold_music() -> Vec<f32> {
    let notes = [261.6, 329.6, 392.0, 523.3, 392.0, 329.6, 293.7, 349.2];
    let mut v = Vec::new();
    for (k, &f) in notes.iter().cycle().take(32).enumerate() {
        let bass = if (k / 8) % 2 == 0 { 130.8 } else { 146.8 };
        let note = tone(&[f, 2.0 * f, 3.0 * f, bass], 0.25, 0.4);
        // A soft attack and decay per note, as a synthesiser plays it.
        let n = note.len() as f32;
        v.extend(
            note.iter()
                .enumerate()
                .map(|(i, x)| x * (i as f32 / 400.0).min(1.0) * (1.0 - 0.6 * i as f32 / n)),
        );
    }
    v
}

fn transcriber() -> Option<calltone::asr::transcribe::Transcriber> {
    let model = model()?;
    let m = WhisperModel::load(&model).expect("model loads");
    Some(
        m.transcriber(TranscribeOptions::default())
            .expect("state allocates"),
    )
}

fn assert_no_words(name: &str, t: &Transcript) {
    eprintln!("{name}: {:?} {:?} {:?}", t.rejected, t.stats, t.text);
    assert!(t.text.is_empty(), "{name}: words from non-speech: {t:?}");
    assert!(t.words.is_empty(), "{name}: {t:?}");
    assert!(t.rejected.is_some(), "{name}: no reason given: {t:?}");
    assert!(
        t.stats.tokens <= t.stats.budget + 1,
        "{name}: decoded past the budget: {:?}",
        t.stats
    );
}

#[test]
fn non_speech_gives_no_words_and_a_reason() {
    let Some(mut t) = transcriber() else { return };
    let cases: Vec<(&str, Vec<f32>)> = vec![
        ("silence", vec![0.0; 3 * 16000]),
        ("short silence", vec![0.0; 4000]),
        ("white noise", white_noise(3.0, 0.05)),
        ("loud white noise", white_noise(2.0, 0.5)),
        ("brown noise", brown_noise(4.0, 0.3)),
        ("dtmf", dtmf()),
        ("hold music", hold_music()),
        ("dial tone", tone(&[350.0, 440.0], 3.0, 0.3)),
    ];
    for (name, x) in &cases {
        let r = t.transcribe(x).expect("transcribes");
        assert_no_words(name, &r);
    }
    assert_eq!(
        t.transcribe(&[]).unwrap().rejected,
        Some(Rejected::NoSpeech)
    );
}

#[test]
fn jfk_word_for_word_and_deterministic() {
    let (Some(asr), Some(mut t)) = (shared_data("asr"), transcriber()) else {
        return;
    };
    let (rate, x) = read_wav_f32(&asr.join("jfk.wav"));
    assert_eq!(rate, 16000);
    let first = t.transcribe(&x).unwrap();
    eprintln!("jfk: {:?} {}", first.stats, first.text);
    assert_eq!(first.rejected, None);
    assert_eq!(
        normalise(&first.text),
        normalise(&reference(&asr, "jfk.wav")),
        "{}",
        first.text
    );
    assert!(!first.text.contains('\u{FFFD}'));
    assert!(first.stats.tokens < first.stats.budget, "{:?}", first.stats);
    // The same audio gives the same result whatever the state decoded before.
    t.transcribe(&hold_music()).unwrap();
    t.transcribe(&x[..3 * 16000]).unwrap();
    let again = t.transcribe(&x).unwrap();
    assert_eq!(first, again);
    // And so does a fresh state.
    let mut fresh = transcriber().unwrap();
    assert_eq!(first, fresh.transcribe(&x).unwrap());
}

/// whisper.cpp shares the time after its last confident timestamp out to the end of its
/// 30 s window, so with one window per utterance the last words used to land past the
/// audio and all start and end at its last instant (LJ001-0015: the last 12 words at
/// 9.23 s; LJ001-0005 the same). They must stay in order and take the time such words
/// take.
#[test]
fn an_utterances_last_words_are_not_stacked_at_its_end() {
    let (Some(asr), Some(mut t)) = (shared_data("asr"), transcriber()) else {
        return;
    };
    for name in ["LJ001-0015.wav", "LJ001-0005.wav"] {
        let (_, x) = read_wav_f32(&asr.join(name));
        let r = t.transcribe(&x).unwrap();
        assert!(r.words.len() >= 20, "{name}: {:?}", r.text);
        for pair in r.words.windows(2) {
            assert!(
                pair[0].start <= pair[1].start,
                "{name}: out of order: {pair:?}"
            );
        }
        // Not squeezed into an instant: speech runs below 10 words a second, and at most a
        // quarter of the words lack a duration of their own.
        let tail = &r.words[r.words.len() - 8..];
        let span = tail[7].end - tail[0].start;
        let instant = tail.iter().filter(|w| w.end <= w.start).count();
        assert!(
            span >= 0.8 && instant <= 2,
            "{name}: last 8 words within {span:.2} s, {instant} of no duration: {tail:?}"
        );
    }
}

/// A replayed call of speech, DTMF, hold music and noise: every utterance the segmenter cut
/// is an event, non-speech ones with a reason from the fixed vocabulary and no text.
#[test]
fn replayed_non_speech_keeps_events_and_seq() {
    let (Some(asr), Some(model)) = (shared_data("asr"), model()) else {
        return;
    };
    let (_, jfk) = read_wav_f32(&asr.join("jfk.wav"));
    let gap = vec![0.0f32; 16000];
    let mut call = Vec::new();
    for part in [
        &jfk[..],
        &gap,
        &dtmf(),
        &gap,
        &hold_music(),
        &gap,
        &brown_noise(3.0, 0.3),
        &gap,
    ] {
        call.extend_from_slice(part);
    }
    let bytes: Vec<u8> = call
        .iter()
        .flat_map(|x| (((x * 32767.0).round().clamp(-32768.0, 32767.0)) as i16).to_le_bytes())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nonspeech.wav");
    write_wav_raw(&path, 1, 1, 16000, 16, &bytes);
    let out = run(&[
        "replay",
        "--model",
        model.to_str().unwrap(),
        path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ev = events(&out.stdout);
    for (i, e) in ev.iter().enumerate() {
        assert_eq!(e["seq"], i as u64, "seq gap at {i}");
    }
    let utts: Vec<_> = ev.iter().filter(|e| e["type"] == "utterance").collect();
    let mut spoken = String::new();
    for u in &utts {
        eprintln!(
            "{} {} {:?} {}",
            u["start"], u["end"], u["not_transcribed"], u["text"]
        );
        match u["not_transcribed"].as_str() {
            None => {
                // Speech only where jfk speaks (it ends at 11 s).
                assert!(u["start"].as_f64().unwrap() < 11.0, "words after jfk: {u}");
                spoken.push_str(u["text"].as_str().unwrap());
                spoken.push(' ');
            }
            Some(
                "no_speech" | "low_confidence" | "repetitive" | "token_budget" | "implausible_rate",
            ) => {
                assert_eq!(u["text"], "", "{u}");
                assert!(u["words"].as_array().unwrap().is_empty(), "{u}");
            }
            Some(other) => panic!("unexpected reason {other}: {u}"),
        }
    }
    let w = wer(&reference(&asr, "jfk.wav"), &spoken);
    assert!(w <= 0.05, "jfk WER {w:.3} in the mixed call: {spoken}");
    let end = ev.last().unwrap();
    assert_eq!(end["type"], "call_ended");
    eprintln!("{} utterances; summary: {}", utts.len(), end);
}

/// An 8 kHz μ-law copy of `wav` in `dir` (sox, no dither), as a phone line delivers it;
/// `None`, saying why, where sox cannot make it.
fn phone_copy(wav: &std::path::Path, dir: &std::path::Path) -> Option<std::path::PathBuf> {
    let phone = dir.join(wav.file_name()?);
    let made = std::process::Command::new("sox")
        .arg("-D")
        .arg(wav)
        .args(["-r", "8000", "-e", "u-law"])
        .arg(&phone)
        .status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("SKIP: sox could not make a phone-band copy (apt-get install sox)");
        return None;
    }
    Some(phone)
}

/// Two read sentences as 8 kHz μ-law (sox, no dither), where tiny.en on a window trimmed
/// close to the audio looped on the last phrase ("… whatever they were, whatever they were,
/// whatever they were."; "by a similar process, by a similar process."): replayed, no
/// utterance ends in a phrase said twice and each is within 0.1 WER of its reference.
#[test]
fn phone_band_sentences_do_not_loop_on_their_last_phrase() {
    let (Some(asr), Some(model)) = (shared_data("asr"), model()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for name in ["LJ001-0003.wav", "LJ001-0014.wav"] {
        let Some(phone) = phone_copy(&asr.join(name), dir.path()) else {
            return;
        };
        let out = run(&[
            "replay",
            "--model",
            model.to_str().unwrap(),
            phone.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ev = events(&out.stdout);
        for u in ev.iter().filter(|e| e["type"] == "utterance") {
            let words = normalise(u["text"].as_str().unwrap_or(""));
            let n = words.len();
            for k in 2..=8 {
                assert!(
                    !(n >= 2 * k && words[n - k..] == words[n - 2 * k..n - k]),
                    "{name}: utterance ends in a phrase said twice: {}",
                    u["text"]
                );
            }
        }
        let text = joined_text(&ev);
        let w = wer(&reference(&asr, name), &text);
        eprintln!("{name} (8 kHz μ-law): WER {w:.3}: {text}");
        assert!(w <= 0.1, "{name}: WER {w:.3}: {text}");
    }
}

/// A read sentence with pauses ("Printing, then, for our purpose, may be considered as the
/// art of making books by means of movable types."), as 8 kHz μ-law: a phone leg closes an
/// utterance only after `vad.narrowband_hangover_s` (0.7 s), so the sentence stays one
/// utterance, as on the wideband original, and is heard within one word of its reference. With the wideband
/// hangover (0.5 s) on the phone leg it is cut at its pauses, and the cut costs words.
#[test]
fn a_phone_leg_keeps_a_sentence_whole_across_its_pauses() {
    let (Some(asr), Some(model)) = (shared_data("asr"), model()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let name = "LJ001-0009.wav";
    let Some(phone) = phone_copy(&asr.join(name), dir.path()) else {
        return;
    };
    let short = dir.path().join("short.toml");
    std::fs::write(&short, "[vad]\nnarrowband_hangover_s = 0.5\n").unwrap();
    let replay = |audio: &std::path::Path, config: Option<&std::path::Path>| {
        let mut args = vec!["replay", "--model", model.to_str().unwrap()];
        if let Some(c) = config {
            args.extend(["--config", c.to_str().unwrap()]);
        }
        args.push(audio.to_str().unwrap());
        let out = run(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ev = events(&out.stdout);
        let n = ev.iter().filter(|e| e["type"] == "utterance").count();
        let text = joined_text(&ev);
        (n, wer(&reference(&asr, name), &text), text)
    };
    let wide = replay(&asr.join(name), None);
    let phone_default = replay(&phone, None);
    let phone_short = replay(&phone, Some(&short));
    eprintln!("wideband {wide:?}\nphone {phone_default:?}\nphone, 0.5 s {phone_short:?}");
    assert_eq!(wide.0, 1, "wideband: {wide:?}");
    assert_eq!(phone_default.0, 1, "phone leg: {phone_default:?}");
    assert!(phone_default.1 <= 0.1, "phone leg: {phone_default:?}");
    assert!(phone_short.0 >= 2, "phone leg at 0.5 s: {phone_short:?}");
    assert!(
        phone_short.1 > phone_default.1,
        "phone leg at 0.5 s: {phone_short:?}"
    );
}

/// `asr.prompt_previous`: each of a speaker's utterances is handed to Whisper with the text
/// of their latest transcribed one (a rejected decode leaves it as it was); off, with none.
/// Driven through the real pipeline on real speech, transcripts fed back as a worker would.
#[test]
fn the_previous_utterance_is_the_next_ones_prompt_only_when_configured() {
    let Some(asr) = shared_data("asr") else {
        return;
    };
    let (rate, one) = read_wav_f32(&asr.join("LJ001-0004.wav"));
    let (_, two) = read_wav_f32(&asr.join("LJ001-0005.wav"));
    let pause = vec![0.0; 2 * rate as usize];
    let mut samples = Vec::new();
    for part in [&one, &pause, &two, &pause, &one, &pause, &two, &pause] {
        samples.extend_from_slice(part);
    }
    let previous_seen = |on: bool| {
        let mut cfg = calltone::config::Config::default();
        cfg.asr.prompt_previous = on;
        let mut seen: Vec<Option<String>> = Vec::new();
        drive_customer_call(
            &cfg,
            rate,
            &samples,
            |job| {
                let n = seen.len();
                seen.push(job.previous.clone());
                // The third decode is rejected (no words): the prompt stays.
                Transcript {
                    text: if n == 2 {
                        String::new()
                    } else {
                        format!("text {n}")
                    },
                    rejected: (n == 2).then_some(Rejected::NoSpeech),
                    ..Default::default()
                }
            },
            |_| {},
        );
        seen
    };
    let on = previous_seen(true);
    assert_eq!(on.len(), 4, "four sentences: {on:?}");
    assert_eq!(
        on,
        [
            None,
            Some("text 0".into()),
            Some("text 1".into()),
            Some("text 1".into())
        ]
    );
    let off = previous_seen(false);
    assert_eq!(off.len(), 4);
    assert!(off.iter().all(Option::is_none), "{off:?}");
}

/// A previous utterance longer than Whisper's prompt limit is cut to its end, and the
/// utterance is still heard word for word.
#[test]
fn a_long_previous_utterance_is_cut_to_the_prompt_limit() {
    let (Some(asr), Some(model)) = (shared_data("asr"), model()) else {
        return;
    };
    let m = WhisperModel::load(&model).unwrap();
    let mut t = m.transcriber(TranscribeOptions::default()).unwrap();
    let (_, jfk) = read_wav_f32(&asr.join("jfk.wav"));
    // ~300 words of varied read text (the LJSpeech references).
    let long: String = std::fs::read_to_string(asr.join("transcripts.tsv"))
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("LJ"))
        .filter_map(|l| l.split('\t').nth(1))
        .collect::<Vec<_>>()
        .join(" ");
    assert!(long.split_whitespace().count() > 250);
    let r = t.transcribe_in(&jfk, None, Some(&long)).unwrap();
    let w = wer(&reference(&asr, "jfk.wav"), &r.text);
    assert!(w <= 0.1, "WER {w:.3}: {}", r.text);
}
