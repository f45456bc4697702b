//! Tests of `decode`: real files written to a temporary directory, one per supported
//! encoding, and one per kind of bad input.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;
use crate::audio::g711;

/// A 440 Hz tone at 0.5 amplitude.
fn tone(rate: u32, frames: usize) -> Vec<f32> {
    (0..frames)
        .map(|i| 0.5 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / rate as f32).sin())
        .collect()
}

fn write_hound(path: &Path, spec: hound::WavSpec, channels: &[Vec<f32>]) {
    let mut w = hound::WavWriter::create(path, spec).expect("create wav");
    let frames = channels[0].len();
    for i in 0..frames {
        for ch in channels {
            let s = ch[i];
            match (spec.sample_format, spec.bits_per_sample) {
                (hound::SampleFormat::Float, _) => w.write_sample(s).expect("write"),
                (_, 8) => w.write_sample((s * 127.0) as i8).expect("write"),
                (_, 16) => w.write_sample((s * 32767.0) as i16).expect("write"),
                (_, 24) => w.write_sample((s * 8_388_607.0) as i32).expect("write"),
                (_, 32) => w
                    .write_sample((f64::from(s) * 2_147_483_647.0) as i32)
                    .expect("write"),
                _ => unreachable!("test only writes 8/16/24/32-bit"),
            }
        }
    }
    w.finalize().expect("finalize");
}

/// A WAV file built by hand, for encodings hound cannot write. `fmt_len` 16 or 18.
fn wav_bytes(tag: u16, channels: u16, rate: u32, bits: u16, fmt_len: u32, data: &[u8]) -> Vec<u8> {
    let block_align = channels * bits / 8;
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(4 + 8 + fmt_len + 8 + data.len() as u32).to_le_bytes());
    b.extend_from_slice(b"WAVE");
    b.extend_from_slice(b"fmt ");
    b.extend_from_slice(&fmt_len.to_le_bytes());
    b.extend_from_slice(&tag.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
    b.extend_from_slice(&block_align.to_le_bytes());
    b.extend_from_slice(&bits.to_le_bytes());
    if fmt_len >= 18 {
        b.extend_from_slice(&((fmt_len - 18) as u16).to_le_bytes());
        b.resize(b.len() + (fmt_len as usize - 18), 0);
    }
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(data);
    b
}

fn int16_wav(channels: u16, rate: u32, frames: usize) -> Vec<u8> {
    let data: Vec<u8> = tone(rate, frames)
        .iter()
        .flat_map(|&s| {
            let v = ((s * 32767.0) as i16).to_le_bytes();
            (0..channels).flat_map(move |_| v)
        })
        .collect();
    wav_bytes(1, channels, rate, 16, 16, &data)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write test file");
    path
}

fn assert_close(got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "length");
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= tol, "max error {worst} > {tol}");
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

#[test]
fn int_and_float_wav_via_hound() {
    let dir = tmp();
    let cases = [
        (hound::SampleFormat::Int, 8, 1.0 / 64.0),
        (hound::SampleFormat::Int, 16, 1e-4),
        (hound::SampleFormat::Int, 24, 1e-6),
        (hound::SampleFormat::Int, 32, 1e-6),
        (hound::SampleFormat::Float, 32, 0.0),
    ];
    for (format, bits, tol) in cases {
        for channels in [1u16, 2] {
            let rate = 22_050;
            let left = tone(rate, 2205);
            let right: Vec<f32> = left.iter().map(|s| -s).collect();
            let planes: Vec<Vec<f32>> = [left, right][..usize::from(channels)].to_vec();
            let spec = hound::WavSpec {
                channels,
                sample_rate: rate,
                bits_per_sample: bits,
                sample_format: format,
            };
            let path = dir.path().join(format!("{format:?}{bits}_{channels}.wav"));
            write_hound(&path, spec, &planes);
            let d = decode_file(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(d.sample_rate, rate);
            assert_eq!(d.channels.len(), usize::from(channels));
            for (got, want) in d.channels.iter().zip(&planes) {
                assert_close(got, want, tol);
            }
            assert!((d.duration_s() - 0.1).abs() < 1e-9);
        }
    }
}

#[test]
fn float32_and_float64_plain_format_tag() {
    let x = tone(16_000, 800);
    let f32_data: Vec<u8> = x.iter().flat_map(|s| s.to_le_bytes()).collect();
    let f64_data: Vec<u8> = x.iter().flat_map(|&s| f64::from(s).to_le_bytes()).collect();
    let d = decode_bytes(
        &wav_bytes(3, 1, 16_000, 32, 18, &f32_data),
        Path::new("f32.wav"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_close(&d.channels[0], &x, 0.0);
    let d = decode_bytes(
        &wav_bytes(3, 1, 16_000, 64, 18, &f64_data),
        Path::new("f64.wav"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_close(&d.channels[0], &x, 1e-7);
}

#[test]
fn float_overs_and_nan_are_sanitised() {
    let x = [2.0f32, -3.0, f32::NAN, f32::INFINITY, 0.25];
    let data: Vec<u8> = x.iter().flat_map(|s| s.to_le_bytes()).collect();
    let d = decode_bytes(
        &wav_bytes(3, 1, 8000, 32, 16, &data),
        Path::new("overs.wav"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.channels[0], [1.0, -1.0, 0.0, 0.0, 0.25]);
}

#[test]
fn mulaw_and_alaw_wav_with_16_and_18_byte_fmt() {
    let x = tone(8000, 800);
    let (mut ulaw, mut alaw) = (Vec::new(), Vec::new());
    g711::f32_to_ulaw(&x, &mut ulaw);
    g711::f32_to_alaw(&x, &mut alaw);
    for fmt_len in [16, 18] {
        for (tag, codes) in [(7u16, &ulaw), (6, &alaw)] {
            let name = format!("g711_{tag}_{fmt_len}.wav");
            let d = decode_bytes(
                &wav_bytes(tag, 1, 8000, 8, fmt_len, codes),
                Path::new(&name),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(d.sample_rate, 8000);
            // 8-bit log PCM: at most ~3% of 0.5 off.
            assert_close(&d.channels[0], &x, 0.02);
        }
    }
    // Stereo μ-law: interleaved codes split into two planes.
    let inter: Vec<u8> = ulaw
        .iter()
        .flat_map(|&c| [c, g711::linear_to_ulaw(0)])
        .collect();
    let d = decode_bytes(&wav_bytes(7, 2, 8000, 8, 18, &inter), Path::new("st.wav"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_close(&d.channels[0], &x, 0.02);
    assert!(d.channels[1].iter().all(|&s| s == 0.0));
}

#[test]
fn accepts_every_rate_in_range() {
    for rate in [8000, 11_025, 16_000, 32_000, 44_100, 48_000] {
        let d = decode_bytes(&int16_wav(1, rate, 100), Path::new("r.wav"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.sample_rate, rate);
    }
}

/// Encode with sox when it is installed; None (and a message) otherwise.
fn sox_encode(dir: &Path, src: &Path, ext: &str) -> Option<PathBuf> {
    sox_encode_with(dir, src, ext, &[], "tone")
}

/// `sox SRC OUT_OPTIONS DIR/STEM.EXT`, or None (and a message) when sox is missing or fails.
fn sox_encode_with(
    dir: &Path,
    src: &Path,
    ext: &str,
    out_options: &[&str],
    stem: &str,
) -> Option<PathBuf> {
    let out = dir.join(format!("{stem}.{ext}"));
    match Command::new("sox")
        .arg(src)
        .args(out_options)
        .arg(&out)
        .output()
    {
        Ok(o) if o.status.success() => Some(out),
        Ok(o) => {
            eprintln!(
                "skipping {ext}: sox failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            None
        }
        Err(_) => {
            eprintln!("skipping {ext}: sox not installed");
            None
        }
    }
}

#[test]
fn wav_encodings_written_by_sox() {
    // Real-world headers (fact chunks, 18/20-byte fmt chunks) rather than our own.
    let dir = tmp();
    let rate = 8000;
    let x = tone(rate, 8000);
    let src = dir.path().join("src.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    write_hound(&src, spec, std::slice::from_ref(&x));
    for (encoding, tol) in [
        ("u-law", 0.02),
        ("a-law", 0.02),
        ("ima-adpcm", 0.05),
        ("ms-adpcm", 0.05),
        ("floating-point", 1e-4),
    ] {
        let Some(path) = sox_encode_with(dir.path(), &src, "wav", &["-e", encoding], encoding)
        else {
            continue;
        };
        let d = decode_file(&path).unwrap_or_else(|e| panic!("{encoding}: {e}"));
        assert_eq!(d.sample_rate, rate, "{encoding}");
        // ADPCM pads the last block; compare the frames that exist in both.
        let n = x.len().min(d.frames());
        assert!(
            d.frames() >= x.len() - 1024,
            "{encoding}: {} frames",
            d.frames()
        );
        assert_close(&d.channels[0][..n], &x[..n], tol);
    }
}

#[test]
fn compressed_formats_via_sox() {
    let dir = tmp();
    let rate = 16_000;
    let x = tone(rate, 16_000);
    let right: Vec<f32> = x.iter().map(|s| s * 0.5).collect();
    let src = dir.path().join("src.wav");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    write_hound(&src, spec, &[x.clone(), right]);
    for ext in ["flac", "mp3", "ogg"] {
        let Some(path) = sox_encode(dir.path(), &src, ext) else {
            continue;
        };
        let d = decode_file(&path).unwrap_or_else(|e| panic!("{ext}: {e}"));
        assert_eq!(d.sample_rate, rate, "{ext}");
        assert_eq!(d.channels.len(), 2, "{ext}");
        // FLAC and Vorbis are sample exact. sox writes MP3 without a Xing/LAME info frame, so
        // the encoder delay and padding (under two 1152-sample frames) cannot be trimmed.
        let frames = d.frames();
        let slack = if ext == "mp3" { 2 * 1152 } else { 0 };
        assert!(
            (16_000..=16_000 + slack).contains(&frames),
            "{ext}: {frames} frames"
        );
        if ext == "flac" {
            assert_close(&d.channels[0], &x, 1e-4);
        } else {
            // Lossy: the tone's level survives in each channel.
            let level = |c: &[f32]| (c.iter().map(|s| s * s).sum::<f32>() / c.len() as f32).sqrt();
            assert!((level(&d.channels[0]) - 0.354).abs() < 0.05, "{ext} left");
            assert!((level(&d.channels[1]) - 0.177).abs() < 0.05, "{ext} right");
        }
    }
}

fn assert_names_file(err: &AudioError, name: &str) {
    let msg = err.to_string();
    assert!(msg.contains(name), "{msg:?} does not name {name}");
    assert!(!msg.contains('\n'), "{msg:?} is not one line");
}

#[test]
fn missing_file() {
    let dir = tmp();
    let e = decode_file(&dir.path().join("gone.wav")).unwrap_err();
    assert!(matches!(e, AudioError::NotFound { .. }), "{e:?}");
    assert_names_file(&e, "gone.wav");
    assert!(e.to_string().ends_with("gone.wav: no such file"));
}

#[test]
fn directory_is_an_io_error() {
    let dir = tmp();
    let e = decode_file(dir.path()).unwrap_err();
    assert!(matches!(e, AudioError::Io { .. }), "{e:?}");
}

#[test]
fn empty_file() {
    let dir = tmp();
    let e = decode_file(&write(dir.path(), "empty.wav", b"")).unwrap_err();
    assert!(matches!(e, AudioError::Empty { .. }), "{e:?}");
    assert_names_file(&e, "empty.wav");
}

#[test]
fn truncated_header() {
    let dir = tmp();
    let full = int16_wav(1, 8000, 100);
    for n in [4, 11, 20, 30, 43] {
        let e = decode_file(&write(dir.path(), "cut.wav", &full[..n])).unwrap_err();
        assert!(
            matches!(e, AudioError::TruncatedHeader { .. }),
            "{n}: {e:?}"
        );
        assert_names_file(&e, "cut.wav");
        assert!(e.to_string().contains("truncated or corrupt WAV header"));
    }
}

#[test]
fn truncated_data_keeps_what_is_there() {
    let full = int16_wav(1, 8000, 100);
    let d =
        decode_bytes(&full[..44 + 101], Path::new("short.wav")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.frames(), 50);
}

#[test]
fn no_samples() {
    let dir = tmp();
    for (name, bytes) in [
        ("zero.wav", int16_wav(1, 8000, 0)),
        ("zero_ulaw.wav", wav_bytes(7, 1, 8000, 8, 18, &[])),
    ] {
        let e = decode_file(&write(dir.path(), name, &bytes)).unwrap_err();
        assert!(matches!(e, AudioError::NoSamples { .. }), "{name}: {e:?}");
        assert_names_file(&e, name);
    }
}

#[test]
fn three_channels() {
    let dir = tmp();
    let e = decode_file(&write(dir.path(), "call.wav", &int16_wav(3, 8000, 10))).unwrap_err();
    assert!(
        matches!(e, AudioError::Channels { channels: 3, .. }),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .ends_with("call.wav: 3 channels; expected 1 or 2"),
        "{e}"
    );
    // WAVE_FORMAT_EXTENSIBLE as written by hound for > 2 channels.
    let path = dir.path().join("ext3.wav");
    let spec = hound::WavSpec {
        channels: 3,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    write_hound(&path, spec, &[vec![0.1; 10], vec![0.2; 10], vec![0.3; 10]]);
    let e = decode_file(&path).unwrap_err();
    assert!(
        matches!(e, AudioError::Channels { channels: 3, .. }),
        "{e:?}"
    );
    let e = decode_bytes(&int16_wav(0, 8000, 10), Path::new("none.wav")).unwrap_err();
    assert!(
        matches!(e, AudioError::Channels { channels: 0, .. }),
        "{e:?}"
    );
}

#[test]
fn three_channel_flac_via_sox() {
    let dir = tmp();
    let src = dir.path().join("three.wav");
    let spec = hound::WavSpec {
        channels: 3,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    write_hound(
        &src,
        spec,
        &[tone(8000, 800), tone(8000, 800), tone(8000, 800)],
    );
    let Some(path) = sox_encode(dir.path(), &src, "flac") else {
        return;
    };
    let e = decode_file(&path).unwrap_err();
    assert!(
        matches!(e, AudioError::Channels { channels: 3, .. }),
        "{e:?}"
    );
    assert_names_file(&e, "tone.flac");
}

#[test]
fn sample_rate_out_of_range() {
    let dir = tmp();
    for rate in [4000, 96_000] {
        let e = decode_file(&write(dir.path(), "x.wav", &int16_wav(1, rate, 10))).unwrap_err();
        assert!(
            matches!(e, AudioError::SampleRate { rate: r, .. } if r == rate),
            "{e:?}"
        );
        assert_names_file(&e, "x.wav");
    }
    let e = decode_bytes(&int16_wav(1, 4000, 10), Path::new("x.wav")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "x.wav: sample rate 4000 Hz out of range; expected 8000..=48000 Hz"
    );
}

#[test]
fn text_named_wav() {
    let dir = tmp();
    let path = write(
        dir.path(),
        "notes.wav",
        b"call notes: customer was upset\n\xc3\xa9\n",
    );
    let e = decode_file(&path).unwrap_err();
    assert!(matches!(e, AudioError::NotAudio { .. }), "{e:?}");
    assert_names_file(&e, "notes.wav");
    assert!(
        e.to_string()
            .contains("not an audio file (looks like text)"),
        "{e}"
    );
}

#[test]
fn binary_junk_is_not_audio() {
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 & 0x7F)
        .collect();
    let e = decode_bytes(&junk, Path::new("junk.bin")).unwrap_err();
    assert_names_file(&e, "junk.bin");
}

#[test]
fn riff_but_not_wave() {
    let mut b = int16_wav(1, 8000, 10);
    b[8..12].copy_from_slice(b"AVI ");
    let e = decode_bytes(&b, Path::new("movie.wav")).unwrap_err();
    assert!(matches!(e, AudioError::NotAudio { .. }), "{e:?}");
}

#[test]
fn unsupported_codec() {
    let dir = tmp();
    // MP3-in-WAV (format tag 0x55) and GSM 6.10 (0x31): real telephony formats we do not decode.
    for (tag, what) in [(0x55u16, "MPEG Layer 3"), (0x31, "GSM 6.10")] {
        let path = write(
            dir.path(),
            "mp3in.wav",
            &wav_bytes(tag, 1, 8000, 0, 18, &[0; 64]),
        );
        let e = decode_file(&path).unwrap_err();
        assert!(matches!(e, AudioError::UnsupportedCodec { .. }), "{e:?}");
        assert_names_file(&e, "mp3in.wav");
        assert!(e.to_string().contains(what), "{e}");
    }
    let e = decode_bytes(
        &wav_bytes(1, 1, 8000, 12, 16, &[0; 64]),
        Path::new("odd.wav"),
    )
    .unwrap_err();
    assert!(matches!(e, AudioError::UnsupportedCodec { .. }), "{e:?}");
}

fn assert_no_panic(result: Result<DecodedAudio, AudioError>) {
    if let Err(e) = result {
        assert!(!e.to_string().contains("decoder failed"), "{e}");
    }
}

#[test]
fn never_panics_on_mutilated_files() {
    // Prefixes and byte flips of valid files of each kind. Any error is fine; what must not
    // happen is a panic, even one that catch_unwind would turn into `Corrupt`.
    let dir = tmp();
    let mut samples = vec![
        int16_wav(2, 8000, 400),
        wav_bytes(7, 1, 8000, 8, 16, &[0x55; 300]),
    ];
    let src = dir.path().join("src.wav");
    std::fs::write(&src, &samples[0]).expect("write");
    for ext in ["flac", "mp3", "ogg"] {
        if let Some(p) = sox_encode(dir.path(), &src, ext) {
            samples.push(std::fs::read(p).expect("read"));
        }
    }
    let mut state = 0x1234_5678u32;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    for bytes in &samples {
        for n in (0..bytes.len()).step_by((bytes.len() / 40).max(1)) {
            assert_no_panic(decode_bytes(&bytes[..n], Path::new("cut")));
        }
        for _ in 0..40 {
            let mut b = bytes.clone();
            for _ in 0..8 {
                let i = next() as usize % b.len();
                b[i] = next() as u8;
            }
            assert_no_panic(decode_bytes(&b, Path::new("flipped")));
        }
    }
}

#[test]
fn decoded_size_limit_counts_every_channel() {
    let e = ErrorContext(Path::new("x.flac"));
    let limit_frames = MAX_DECODED_BYTES / 4;
    assert!(e.check_size(limit_frames, 1).is_ok());
    assert!(e.check_size(limit_frames / 2, 2).is_ok());
    let err = e.check_size(limit_frames / 2 + 1, 2).unwrap_err();
    assert!(matches!(err, AudioError::TooLarge { .. }), "{err}");
    assert!(err.to_string().starts_with("x.flac: too large"), "{err}");
    assert!(e.check_size(u64::MAX, 2).is_err(), "no overflow");
}

/// A valid file of each WAV flavour the front end reads, for mutation.
fn seeds() -> Vec<Vec<u8>> {
    let ulaw: Vec<u8> = (0..800u32).map(|i| (i * 7 % 256) as u8).collect();
    vec![
        int16_wav(1, 8000, 400),
        int16_wav(2, 16000, 300),
        wav_bytes(wav::FORMAT_MULAW, 1, 8000, 8, 18, &ulaw),
        wav_bytes(wav::FORMAT_IEEE_FLOAT, 1, 8000, 32, 16, &[0x7f; 1600]),
    ]
}

// Property: any damage to a WAV file (a changed, dropped or inserted byte anywhere, the
// header included), or any bytes at all behind a RIFF, fLaC, OggS or ID3 signature, is
// decoded to audio that keeps the invariants, or refused with an error naming the file;
// the decoded size never exceeds what the input could hold (a few samples per byte).
proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]
    #[test]
    fn damaged_audio_files_decode_or_are_refused(
        seed in 0usize..4,
        edits in proptest::collection::vec((0usize..4000, proptest::prelude::any::<u8>(), 0u8..3), 1..8),
    ) {
        let mut b = seeds()[seed].clone();
        for (at, byte, op) in edits {
            let at = at % (b.len() + 1);
            match op {
                0 if at < b.len() => b[at] = byte,
                1 if at < b.len() => {
                    b.remove(at);
                }
                _ => b.insert(at, byte),
            }
        }
        check_decode(&b)?;
    }

    #[test]
    fn any_bytes_behind_a_signature_decode_or_are_refused(
        sig in 0usize..4,
        rest in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000),
    ) {
        let prefix: &[u8] = [&b"RIFF\xff\x00\x00\x00WAVEfmt "[..], b"fLaC", b"OggS\x00\x02", b"ID3\x04\x00"][sig];
        let mut b = prefix.to_vec();
        b.extend_from_slice(&rest);
        check_decode(&b)?;
    }
}

fn check_decode(b: &[u8]) -> Result<(), proptest::test_runner::TestCaseError> {
    match decode_bytes(b, Path::new("fuzz.wav")) {
        Ok(d) => {
            proptest::prop_assert!((1..=2).contains(&d.channels.len()));
            let n = d.frames();
            proptest::prop_assert!(n > 0 && d.channels.iter().all(|c| c.len() == n));
            proptest::prop_assert!(SUPPORTED_RATES.contains(&d.sample_rate));
            proptest::prop_assert!(d
                .channels
                .iter()
                .flatten()
                .all(|s| s.is_finite() && (-1.0..=1.0).contains(s)));
            // ADPCM, the densest format read, gives 4 samples per byte; allow a margin.
            proptest::prop_assert!(
                n * d.channels.len() <= 8 * b.len() + 65_536,
                "{n} frames from {} bytes",
                b.len()
            );
        }
        Err(e) => {
            let msg = e.to_string();
            proptest::prop_assert!(msg.starts_with("fuzz.wav: "), "{msg}");
            proptest::prop_assert!(!msg.contains('\n'), "{msg}");
        }
    }
    Ok(())
}
