//! Which speaker is on which channel.
//!
//! Stereo call recordings put the customer (caller) on channel 0 and the agent on channel 1
//! unless configured otherwise; mono recordings are one speaker, the customer by default
//! (ARCHITECTURE.md, "Speakers and compliance").

use std::fmt;
use std::str::FromStr;

use super::{AudioError, DecodedAudio, Speaker};

/// The speaker of each channel, in channel order. Never empty, no speaker twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelMap(Vec<Speaker>);

impl ChannelMap {
    /// Build a map from speakers in channel order, rejecting an empty list or a repeated speaker
    /// (two channels with one role would merge two people's prosody into one baseline).
    pub fn new(speakers: Vec<Speaker>) -> Result<Self, AudioError> {
        let invalid = |reason: String| AudioError::InvalidChannelMap {
            value: speakers
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(","),
            reason,
        };
        if speakers.is_empty() {
            return Err(invalid("no speakers".into()));
        }
        for (i, s) in speakers.iter().enumerate() {
            if speakers[..i].contains(s) {
                return Err(invalid(format!("speaker {s} appears twice")));
            }
        }
        Ok(Self(speakers))
    }

    /// The default map for `channels` channels: mono is the customer, stereo is customer, agent.
    pub fn for_channels(channels: usize) -> Result<Self, AudioError> {
        match channels {
            1 => Ok(Self(vec![Speaker::Customer])),
            2 => Ok(Self(vec![Speaker::Customer, Speaker::Agent])),
            n => Err(AudioError::NoDefaultChannelMap { channels: n }),
        }
    }

    /// Speakers in channel order.
    pub fn speakers(&self) -> &[Speaker] {
        &self.0
    }

    /// Number of channels this map describes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a map names at least one speaker. Present for API symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for ChannelMap {
    type Err = AudioError;

    /// Parse `customer,agent`, `agent,customer`, `customer`, ... (case-insensitive, spaces allowed).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let speakers = s
            .split(',')
            .map(|part| {
                part.parse::<Speaker>()
                    .map_err(|reason| AudioError::InvalidChannelMap {
                        value: s.to_string(),
                        reason,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(speakers).map_err(|e| match e {
            // Report the string the user typed, not our normalised rendering of it.
            AudioError::InvalidChannelMap { reason, .. } => AudioError::InvalidChannelMap {
                value: s.to_string(),
                reason,
            },
            other => other,
        })
    }
}

impl fmt::Display for ChannelMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(s.as_str())?;
        }
        Ok(())
    }
}

/// Pair each channel of `decoded` with its speaker, in channel order.
///
/// Copies the samples so the caller can drop the decoded file and move each leg to its own
/// pipeline stage.
pub fn split_speakers(
    decoded: &DecodedAudio,
    map: &ChannelMap,
) -> Result<Vec<(Speaker, Vec<f32>)>, AudioError> {
    if map.len() != decoded.channels.len() {
        return Err(AudioError::ChannelMapMismatch {
            mapped: map.len(),
            channels: decoded.channels.len(),
        });
    }
    Ok(map
        .speakers()
        .iter()
        .zip(&decoded.channels)
        .map(|(&speaker, samples)| (speaker, samples.clone()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audio(channels: usize) -> DecodedAudio {
        DecodedAudio {
            sample_rate: 8000,
            channels: (0..channels).map(|c| vec![c as f32; 4]).collect(),
        }
    }

    #[test]
    fn parses_the_documented_forms() {
        let m: ChannelMap = "customer,agent".parse().expect("valid");
        assert_eq!(m.speakers(), [Speaker::Customer, Speaker::Agent]);
        let m: ChannelMap = "agent,customer".parse().expect("valid");
        assert_eq!(m.speakers(), [Speaker::Agent, Speaker::Customer]);
        let m: ChannelMap = "customer".parse().expect("valid");
        assert_eq!(m.speakers(), [Speaker::Customer]);
        let m: ChannelMap = " Agent , CALLER ".parse().expect("valid");
        assert_eq!(m.speakers(), [Speaker::Agent, Speaker::Customer]);
        assert_eq!(m.to_string(), "agent,customer");
    }

    #[test]
    fn parse_errors_name_the_bad_value() {
        let e = "customer,robot".parse::<ChannelMap>().unwrap_err();
        assert!(matches!(e, AudioError::InvalidChannelMap { .. }));
        assert!(e.to_string().contains("robot"), "{e}");
        let e = "agent,agent".parse::<ChannelMap>().unwrap_err();
        assert!(e.to_string().contains("agent,agent"), "{e}");
        assert!(e.to_string().contains("twice"), "{e}");
        let e = "".parse::<ChannelMap>().unwrap_err();
        assert!(matches!(e, AudioError::InvalidChannelMap { .. }));
    }

    #[test]
    fn default_maps() {
        assert_eq!(
            ChannelMap::for_channels(1).expect("mono").speakers(),
            [Speaker::Customer]
        );
        assert_eq!(
            ChannelMap::for_channels(2).expect("stereo").speakers(),
            [Speaker::Customer, Speaker::Agent]
        );
        assert!(ChannelMap::for_channels(0).is_err());
        assert!(ChannelMap::for_channels(3).is_err());
    }

    #[test]
    fn splits_in_channel_order() {
        let map: ChannelMap = "agent,customer".parse().expect("valid");
        let legs = split_speakers(&audio(2), &map).expect("matching");
        assert_eq!(legs[0], (Speaker::Agent, vec![0.0; 4]));
        assert_eq!(legs[1], (Speaker::Customer, vec![1.0; 4]));
    }

    #[test]
    fn split_rejects_mismatched_map() {
        let map: ChannelMap = "customer,agent".parse().expect("valid");
        let e = split_speakers(&audio(1), &map).unwrap_err();
        assert!(matches!(
            e,
            AudioError::ChannelMapMismatch {
                mapped: 2,
                channels: 1
            }
        ));
        assert!(ChannelMap::new(vec![Speaker::Agent, Speaker::Agent]).is_err());
    }
}
