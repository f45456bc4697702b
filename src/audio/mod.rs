//! Audio primitives: speaker roles, file decoding, G.711 and resampling.
//!
//! Everything downstream works on 16 kHz mono `f32` samples in [-1, 1] per speaker.

use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

pub mod channels;
pub mod decode;
pub mod error;
pub mod g711;
pub mod resample;
pub mod telephone;
mod wav;

pub use channels::{split_speakers, ChannelMap};
pub use decode::{decode_bytes, decode_file, DecodedAudio};
pub use error::AudioError;
pub use resample::{resample_all, StreamResampler};

/// The rate every analysis stage works at.
pub const ANALYSIS_RATE: u32 = 16_000;

/// Input sample rates the pipeline accepts, in Hz: narrowband telephony up to studio rates.
/// Anything else is almost certainly a mislabelled file or a broken stream header.
pub const SUPPORTED_RATES: RangeInclusive<u32> = 8_000..=48_000;

/// Input sample rates at or below this are narrowband: a telephone line, whose band ends
/// near 3.4 kHz. Pause detection and the arousal model's head follow it.
pub const NARROWBAND_MAX_RATE: u32 = 8_000;

/// Whether audio arriving at `input_rate` Hz is narrowband (see [`NARROWBAND_MAX_RATE`]).
pub fn is_narrowband(input_rate: u32) -> bool {
    input_rate <= NARROWBAND_MAX_RATE
}

/// Who is speaking on a channel or leg.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Speaker {
    Customer,
    Agent,
}

impl Speaker {
    pub fn as_str(self) -> &'static str {
        match self {
            Speaker::Customer => "customer",
            Speaker::Agent => "agent",
        }
    }
}

impl std::fmt::Display for Speaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Speaker {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "customer" | "caller" => Ok(Speaker::Customer),
            "agent" => Ok(Speaker::Agent),
            other => Err(format!(
                "unknown speaker {other:?}; expected customer or agent"
            )),
        }
    }
}
