//! Decoding audio files into planar `f32` samples.
//!
//! Supports WAV (8/16/24/32-bit integer PCM, 32/64-bit float, μ-law, A-law, MS/IMA ADPCM,
//! WAVE_FORMAT_EXTENSIBLE), FLAC, MP3 and Ogg/Vorbis, at 8–48 kHz, mono or stereo. Every other
//! input is an [`AudioError`] naming the file and the problem; no input makes this panic.
//!
//! MP3 encoder delay and padding are trimmed only when the file carries a Xing/LAME info
//! frame (symphonia's gapless mode); otherwise the audio starts up to ~1100 samples late.
//! A decoder panic is caught and reported as [`AudioError::Corrupt`], but the process's panic
//! hook still prints it, so binaries that want silence install their own hook.
//!
//! Invariants of a returned [`DecodedAudio`]: 1 or 2 channels of equal, non-zero length, a
//! sample rate in [`SUPPORTED_RATES`], and every sample finite and within [-1, 1].

use std::io::Cursor;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use symphonia::core::codecs::audio::well_known::{
    CODEC_ID_AAC, CODEC_ID_AC3, CODEC_ID_ADPCM_G722, CODEC_ID_ADPCM_G726, CODEC_ID_ALAC,
    CODEC_ID_OPUS, CODEC_ID_SPEEX, CODEC_ID_WAVPACK, CODEC_ID_WMA,
};
use symphonia::core::codecs::audio::{AudioCodecId, AudioDecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use super::wav::{self, HeaderError, WavHeader};
use super::{g711, AudioError, SUPPORTED_RATES};

/// Largest file replay reads: 2 GiB (about 3 h of 48 kHz stereo 16-bit WAV, 37 h of 8 kHz
/// stereo μ-law).
pub const MAX_FILE_BYTES: u64 = 2 << 30;

/// Largest decoded result: 2 GiB of `f32` samples (all channels), i.e. 93 min of 48 kHz
/// stereo, 4.6 h of 16 kHz stereo, 9.3 h of 8 kHz stereo. A crafted file (a FLAC or MP3 of
/// silence, a header that lies) that would decode to more is refused when its header says so,
/// else as soon as its decoded size passes the limit, before it fills memory.
pub const MAX_DECODED_BYTES: u64 = 2 << 30;

/// A whole decoded file.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedAudio {
    /// Sample rate in Hz, within [`SUPPORTED_RATES`].
    pub sample_rate: u32,
    /// Planar samples in [-1, 1], one `Vec` per channel (1 or 2), all the same length.
    pub channels: Vec<Vec<f32>>,
}

impl DecodedAudio {
    /// Number of sample frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.channels.first().map_or(0, Vec::len)
    }

    /// Length in seconds.
    pub fn duration_s(&self) -> f64 {
        if self.sample_rate == 0 {
            return 0.0;
        }
        self.frames() as f64 / f64::from(self.sample_rate)
    }
}

/// Decode the audio file at `path`.
///
/// The whole file is read into memory first: the decoded result is held in memory anyway
/// (and is larger than any of the supported encodings), and it lets the WAV header check and
/// the decoder share one read.
pub fn decode_file(path: &Path) -> Result<DecodedAudio, AudioError> {
    if let Ok(m) = std::fs::metadata(path) {
        if m.is_file() && m.len() > MAX_FILE_BYTES {
            return Err(AudioError::TooLarge {
                path: path.to_path_buf(),
                detail: format!("{} bytes; the limit is {MAX_FILE_BYTES} bytes", m.len()),
            });
        }
    }
    let io = |source: std::io::Error| match source.kind() {
        std::io::ErrorKind::NotFound => AudioError::NotFound {
            path: path.to_path_buf(),
        },
        _ => AudioError::Io {
            path: path.to_path_buf(),
            source,
        },
    };
    // Bounded also for what has no size: a FIFO, `<(…)`, /dev/zero.
    let size = std::fs::metadata(path).map_or(0, |m| m.len().min(MAX_FILE_BYTES));
    let mut bytes = Vec::with_capacity(size as usize + 1);
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::fs::File::open(path).map_err(io)?, MAX_FILE_BYTES + 1),
        &mut bytes,
    )
    .map_err(io)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(AudioError::TooLarge {
            path: path.to_path_buf(),
            detail: format!(
                "more than {MAX_FILE_BYTES} bytes; the limit is {MAX_FILE_BYTES} bytes"
            ),
        });
    }
    decode_owned(bytes, path)
}

/// Decode an in-memory file. `name` is used in error messages and its extension as a format
/// hint; it need not exist.
pub fn decode_bytes(bytes: &[u8], name: &Path) -> Result<DecodedAudio, AudioError> {
    decode_owned(bytes.to_vec(), name)
}

fn decode_owned(bytes: Vec<u8>, path: &Path) -> Result<DecodedAudio, AudioError> {
    if bytes.is_empty() {
        return Err(AudioError::Empty {
            path: path.to_path_buf(),
        });
    }
    // Symphonia is written to return errors on bad data, but a decoder bug on a crafted file
    // must not take down a service handling other calls: a panic becomes a Corrupt error.
    // Nothing escapes the closure but its result, so observing broken invariants is impossible.
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| decode_checked(bytes, path)));
    match outcome {
        Ok(result) => result,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(AudioError::Corrupt {
                path: path.to_path_buf(),
                detail: format!("decoder failed: {msg}"),
            })
        }
    }
}

fn decode_checked(bytes: Vec<u8>, path: &Path) -> Result<DecodedAudio, AudioError> {
    let mut decoded = if wav::is_riff(&bytes) {
        decode_wav(bytes, path)?
    } else {
        decode_with_symphonia(bytes, path)?
    };
    let errors = ErrorContext(path);
    errors.check_channels(decoded.channels.len())?;
    errors.check_rate(decoded.sample_rate)?;
    // Codecs can end channels on different packets in broken files; keep them aligned.
    let frames = decoded.channels.iter().map(Vec::len).min().unwrap_or(0);
    if frames == 0 {
        return Err(AudioError::NoSamples {
            path: path.to_path_buf(),
        });
    }
    for channel in &mut decoded.channels {
        channel.truncate(frames);
        // Float WAVs may hold overs, NaN or inf; downstream DSP assumes finite [-1, 1].
        for s in channel.iter_mut() {
            *s = if s.is_finite() {
                s.clamp(-1.0, 1.0)
            } else {
                0.0
            };
        }
    }
    Ok(decoded)
}

/// Builds errors that name the file.
#[derive(Clone, Copy)]
struct ErrorContext<'a>(&'a Path);

impl ErrorContext<'_> {
    /// `frames` of `channels` must stay within [`MAX_DECODED_BYTES`].
    fn check_size(self, frames: u64, channels: usize) -> Result<(), AudioError> {
        let bytes = frames.saturating_mul(channels as u64 * 4);
        if bytes > MAX_DECODED_BYTES {
            return Err(AudioError::TooLarge {
                path: self.path(),
                detail: format!(
                    "decodes to over {} MiB of samples, the replay limit; split the recording",
                    MAX_DECODED_BYTES >> 20
                ),
            });
        }
        Ok(())
    }

    fn path(&self) -> PathBuf {
        self.0.to_path_buf()
    }

    fn check_channels(&self, channels: usize) -> Result<(), AudioError> {
        if (1..=2).contains(&channels) {
            Ok(())
        } else {
            Err(AudioError::Channels {
                path: self.path(),
                channels,
            })
        }
    }

    fn check_rate(&self, rate: u32) -> Result<(), AudioError> {
        if SUPPORTED_RATES.contains(&rate) {
            Ok(())
        } else {
            Err(AudioError::SampleRate {
                path: self.path(),
                rate,
            })
        }
    }

    fn corrupt(&self, detail: impl Into<String>) -> AudioError {
        AudioError::Corrupt {
            path: self.path(),
            detail: detail.into(),
        }
    }

    fn unsupported(&self, codec: impl Into<String>) -> AudioError {
        AudioError::UnsupportedCodec {
            path: self.path(),
            codec: codec.into(),
        }
    }
}

/// Check a WAV header, then decode G.711 ourselves and everything else with symphonia.
fn decode_wav(bytes: Vec<u8>, path: &Path) -> Result<DecodedAudio, AudioError> {
    let errors = ErrorContext(path);
    let header = wav::parse(&bytes).map_err(|e| match e {
        HeaderError::NotWave(form) => AudioError::NotAudio {
            path: errors.path(),
            detail: format!(
                "RIFF container of type {:?}, not WAVE",
                String::from_utf8_lossy(&form)
            ),
        },
        HeaderError::Truncated(detail) => AudioError::TruncatedHeader {
            path: errors.path(),
            detail,
        },
    })?;
    errors.check_channels(usize::from(header.channels))?;
    errors.check_rate(header.sample_rate)?;
    if let Some(declared) = header.declared_data {
        // Kept (a recording still being written reads as far as it goes), but said: a QA
        // report of 2 s from a 50 s recording must not pass for the whole call.
        tracing::warn!(
            file = %path.display(),
            declared_bytes = declared,
            present_bytes = header.data.len(),
            "WAV file cut short: {:.0} % of the audio its header announces is there; using that",
            header.data.len() as f64 * 100.0 / declared as f64
        );
    }
    let bits = header.bits_per_sample;
    match header.format_tag {
        wav::FORMAT_PCM if matches!(bits, 8 | 16 | 24 | 32) => {}
        wav::FORMAT_PCM => return Err(errors.unsupported(format!("{bits}-bit integer PCM"))),
        wav::FORMAT_IEEE_FLOAT if matches!(bits, 32 | 64) => {}
        wav::FORMAT_IEEE_FLOAT => return Err(errors.unsupported(format!("{bits}-bit float"))),
        wav::FORMAT_MULAW | wav::FORMAT_ALAW if bits == 8 => {
            let channels = usize::from(header.channels.max(1));
            errors.check_size((header.data.len() / channels) as u64, channels)?;
            return Ok(decode_g711_wav(&bytes, &header));
        }
        wav::FORMAT_MULAW | wav::FORMAT_ALAW => {
            return Err(errors.unsupported(format!("{bits}-bit G.711")));
        }
        wav::FORMAT_ADPCM_MS | wav::FORMAT_ADPCM_IMA => {}
        other => return Err(errors.unsupported(wav::format_tag_name(other))),
    }
    // Symphonia trusts the declared data size and drops the whole last packet when the file
    // ends early; declare what is really there, in whole frames (or ADPCM blocks).
    let align = usize::from(header.block_align.max(1));
    let usable = header.data.len() / align * align;
    if usable == 0 {
        return Err(AudioError::NoSamples {
            path: errors.path(),
        });
    }
    let mut bytes = bytes;
    let size_at = header.data.start - 4;
    // `usable` <= the declared u32 size or the bytes present after it, and files over 4 GiB
    // cannot be RIFF; saturate rather than trust that.
    let usable = u32::try_from(usable).unwrap_or(u32::MAX);
    bytes[size_at..header.data.start].copy_from_slice(&usable.to_le_bytes());
    decode_with_symphonia(bytes, path)
}

fn decode_g711_wav(bytes: &[u8], header: &WavHeader) -> DecodedAudio {
    let channels = usize::from(header.channels);
    let data = &bytes[header.data.clone()];
    let frames = data.len() / channels;
    let to_linear = if header.format_tag == wav::FORMAT_MULAW {
        g711::ulaw_to_linear
    } else {
        g711::alaw_to_linear
    };
    let planes = (0..channels)
        .map(|c| {
            data.chunks_exact(channels)
                .map(|frame| f32::from(to_linear(frame[c])) / 32768.0)
                .collect::<Vec<f32>>()
        })
        .collect::<Vec<_>>();
    debug_assert!(planes.iter().all(|p| p.len() == frames));
    DecodedAudio {
        sample_rate: header.sample_rate,
        channels: planes,
    }
}

/// A readable name for codecs symphonia recognises in a container but we have no decoder for.
fn codec_name(codec: AudioCodecId) -> String {
    let known = [
        (CODEC_ID_OPUS, "Opus"),
        (CODEC_ID_AAC, "AAC"),
        (CODEC_ID_ALAC, "ALAC"),
        (CODEC_ID_SPEEX, "Speex"),
        (CODEC_ID_WAVPACK, "WavPack"),
        (CODEC_ID_WMA, "WMA"),
        (CODEC_ID_AC3, "AC-3"),
        (CODEC_ID_ADPCM_G722, "G.722"),
        (CODEC_ID_ADPCM_G726, "G.726"),
    ];
    known
        .iter()
        .find(|(id, _)| *id == codec)
        .map(|(_, name)| (*name).to_string())
        .unwrap_or_else(|| format!("codec id {codec}"))
}

/// True when the start of the file looks like text, for a better "not an audio file" message.
fn looks_like_text(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(1024)];
    let head = match std::str::from_utf8(head) {
        Ok(s) => s,
        // A multi-byte character cut off by the 1024-byte window is still text.
        Err(e) if e.error_len().is_none() => match std::str::from_utf8(&head[..e.valid_up_to()]) {
            Ok(s) => s,
            Err(_) => return false,
        },
        Err(_) => return false,
    };
    head.chars()
        .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
}

fn decode_with_symphonia(bytes: Vec<u8>, path: &Path) -> Result<DecodedAudio, AudioError> {
    let errors = ErrorContext(path);
    let is_text = looks_like_text(&bytes);
    let mss = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| AudioError::NotAudio {
            path: errors.path(),
            detail: if is_text {
                "looks like text".to_string()
            } else {
                format!("unrecognised format: {e}")
            },
        })?;

    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| AudioError::NotAudio {
            path: errors.path(),
            detail: "no audio track".into(),
        })?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .cloned()
        .ok_or_else(|| errors.unsupported("no codec parameters"))?;
    // Fail before decoding a long file when the header already says it is unusable.
    if let Some(channels) = &params.channels {
        errors.check_channels(channels.count())?;
    }
    if let Some(rate) = params.sample_rate {
        errors.check_rate(rate)?;
    }
    // A header that announces too much audio is refused before anything is decoded.
    if let (Some(frames), Some(channels)) = (track.num_frames, &params.channels) {
        errors.check_size(frames, channels.count())?;
    }
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|_| errors.unsupported(codec_name(params.codec)))?;

    let mut out: Option<DecodedAudio> = None;
    let mut scratch: Vec<Vec<f32>> = Vec::new();
    let mut bad_packets = 0usize;
    let mut good_packets = 0usize;
    loop {
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            // A chained Ogg stream starts a new logical stream: a call recording is one stream,
            // so stop at the first.
            Err(SymphoniaError::ResetRequired) => break,
            // A file cut off mid-packet: keep what decoded so far.
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                tracing::warn!(file = %path.display(), "audio ends mid-packet; file truncated?");
                break;
            }
            Err(e) => {
                if good_packets > 0 {
                    tracing::warn!(file = %path.display(), error = %e, "stopping at unreadable data");
                    break;
                }
                return Err(errors.corrupt(e.to_string()));
            }
        };
        if packet.track_id != track_id {
            continue;
        }
        let buf = match decoder.decode(&packet) {
            Ok(buf) => buf,
            // One damaged frame (e.g. a bad MP3 frame) should not lose the whole call.
            Err(SymphoniaError::DecodeError(_)) | Err(SymphoniaError::IoError(_)) => {
                bad_packets += 1;
                continue;
            }
            Err(e) => return Err(errors.corrupt(e.to_string())),
        };
        good_packets += 1;
        if buf.frames() == 0 {
            continue;
        }
        let rate = buf.spec().rate();
        let channels = buf.spec().channels().count();
        buf.copy_to_vecs_planar::<f32>(&mut scratch);
        let out = match &mut out {
            Some(out) => {
                if out.sample_rate != rate || out.channels.len() != channels {
                    return Err(errors.corrupt("sample rate or channel count changes mid-stream"));
                }
                out
            }
            None => {
                errors.check_channels(channels)?;
                errors.check_rate(rate)?;
                out.insert(DecodedAudio {
                    sample_rate: rate,
                    channels: vec![Vec::new(); channels],
                })
            }
        };
        for (dst, src) in out.channels.iter_mut().zip(&scratch) {
            dst.extend_from_slice(src);
        }
        errors.check_size(out.frames() as u64, out.channels.len())?;
    }
    if bad_packets > 0 {
        tracing::warn!(file = %path.display(), bad_packets, good_packets, "skipped undecodable packets");
    }
    match out {
        Some(out) => Ok(out),
        None if bad_packets > 0 => {
            Err(errors.corrupt(format!("none of {bad_packets} packets could be decoded")))
        }
        None => Err(AudioError::NoSamples {
            path: errors.path(),
        }),
    }
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
