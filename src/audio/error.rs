//! Errors of the audio layer.
//!
//! Every variant that concerns a file carries its path, and its `Display` is one line that
//! names the file and the problem, so `main` can print it as is and exit with code 2
//! (see the CLI contract in ARCHITECTURE.md).

use std::path::PathBuf;

use super::SUPPORTED_RATES;

/// What can go wrong while decoding, resampling or mapping audio channels.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The file does not exist.
    #[error("{}: no such file", path.display())]
    NotFound { path: PathBuf },

    /// The file exists but could not be read (permissions, I/O error, a directory, ...).
    #[error("{}: cannot read file: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file has zero bytes.
    #[error("{}: empty file", path.display())]
    Empty { path: PathBuf },

    /// A RIFF/WAVE file whose header ends early or is inconsistent.
    #[error("{}: truncated or corrupt WAV header ({detail})", path.display())]
    TruncatedHeader { path: PathBuf, detail: String },

    /// Not a container format we recognise (text, images, ...).
    #[error("{}: not an audio file ({detail})", path.display())]
    NotAudio { path: PathBuf, detail: String },

    /// A recognised container whose codec we cannot decode.
    #[error("{}: unsupported codec ({codec})", path.display())]
    UnsupportedCodec { path: PathBuf, codec: String },

    /// Calls have one leg per channel; anything but mono or stereo is a mistake upstream.
    #[error("{}: {channels} channels; expected 1 or 2", path.display())]
    Channels { path: PathBuf, channels: usize },

    /// The file's sample rate is outside what the pipeline supports.
    #[error(
        "{}: sample rate {rate} Hz out of range; expected {}..={} Hz",
        path.display(),
        SUPPORTED_RATES.start(),
        SUPPORTED_RATES.end()
    )]
    SampleRate { path: PathBuf, rate: u32 },

    /// The file, or the audio it decodes to, is over the replay limits
    /// ([`super::decode::MAX_FILE_BYTES`], [`super::decode::MAX_DECODED_S`]).
    #[error("{}: too large ({detail})", path.display())]
    TooLarge { path: PathBuf, detail: String },

    /// The file is well formed but holds no audio frames.
    #[error("{}: no audio samples", path.display())]
    NoSamples { path: PathBuf },

    /// The audio data itself could not be decoded (or the decoder panicked on it).
    #[error("{}: corrupt audio data ({detail})", path.display())]
    Corrupt { path: PathBuf, detail: String },

    /// A stream (not a file) announced a rate outside what the pipeline supports.
    #[error(
        "sample rate {rate} Hz out of range; expected {}..={} Hz",
        SUPPORTED_RATES.start(),
        SUPPORTED_RATES.end()
    )]
    RateOutOfRange { rate: u32 },

    /// rubato refused the configuration; should not happen for supported rates.
    #[error("cannot resample {in_rate} Hz to {out_rate} Hz: {detail}")]
    Resampler {
        in_rate: u32,
        out_rate: u32,
        detail: String,
    },

    /// A channel map string (`--channels`, config) that does not parse or names a speaker twice.
    #[error("invalid channel map {value:?}: {reason}")]
    InvalidChannelMap { value: String, reason: String },

    /// Only mono and stereo have a default speaker assignment.
    #[error("no default speaker map for {channels} channels; expected 1 or 2")]
    NoDefaultChannelMap { channels: usize },

    /// The channel map and the audio disagree on the number of channels.
    #[error("channel map names {mapped} speaker(s) but the audio has {channels} channel(s)")]
    ChannelMapMismatch { mapped: usize, channels: usize },
}
