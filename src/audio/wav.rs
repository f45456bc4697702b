//! Minimal RIFF/WAVE header reader.
//!
//! We read the `fmt ` chunk ourselves, before handing a WAV file to symphonia, for two reasons:
//! a user-facing error must say *what* is wrong (truncated header, 3 channels, 4 kHz, an
//! MP3-in-WAV format tag) rather than a generic "malformed stream", and G.711 WAV files are
//! decoded here with our own tables because symphonia only accepts their `fmt ` chunk when it is
//! exactly 18 bytes long, while many telephony recorders write 16.

use std::ops::Range;

/// What the `fmt ` and `data` chunks say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct WavHeader {
    /// The effective format tag (for WAVE_FORMAT_EXTENSIBLE, the sub-format's tag).
    pub format_tag: u16,
    pub channels: u16,
    pub sample_rate: u32,
    pub bits_per_sample: u16,
    /// Bytes per sample frame (or per ADPCM block).
    pub block_align: u16,
    /// Byte range of the audio data, clamped to the bytes actually present (a recording cut
    /// off mid-write still yields what it has).
    pub data: Range<usize>,
    /// The data chunk's declared size when fewer bytes are present (a file cut short; a
    /// streaming writer's 0xFFFFFFFF placeholder is not counted).
    pub declared_data: Option<usize>,
}

pub(super) const FORMAT_PCM: u16 = 0x0001;
pub(super) const FORMAT_ADPCM_MS: u16 = 0x0002;
pub(super) const FORMAT_IEEE_FLOAT: u16 = 0x0003;
pub(super) const FORMAT_ALAW: u16 = 0x0006;
pub(super) const FORMAT_MULAW: u16 = 0x0007;
pub(super) const FORMAT_ADPCM_IMA: u16 = 0x0011;
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;

/// Why a RIFF file's header could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum HeaderError {
    /// A RIFF container, but not a WAVE one (AVI, WebP, ...).
    NotWave([u8; 4]),
    /// The header ends early or contradicts itself.
    Truncated(String),
}

/// True when `bytes` starts like a RIFF file; such files are read with [`parse`].
pub(super) fn is_riff(bytes: &[u8]) -> bool {
    bytes.starts_with(b"RIFF")
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Read the header of a RIFF/WAVE file held in memory.
pub(super) fn parse(bytes: &[u8]) -> Result<WavHeader, HeaderError> {
    let truncated = |what: String| HeaderError::Truncated(what);
    if bytes.len() < 12 {
        return Err(truncated(format!("file ends after {} bytes", bytes.len())));
    }
    if &bytes[8..12] != b"WAVE" {
        let mut form = [0u8; 4];
        form.copy_from_slice(&bytes[8..12]);
        return Err(HeaderError::NotWave(form));
    }

    let mut fmt: Option<(u16, u16, u32, u16, u16)> = None;
    let mut data: Option<Range<usize>> = None;
    let mut declared_data = None;
    let mut pos = 12usize;
    while fmt.is_none() || data.is_none() {
        if bytes.len().saturating_sub(pos) < 8 {
            break;
        }
        let id = &bytes[pos..pos + 8][..4];
        let declared = u32_at(bytes, pos + 4) as usize;
        let body = pos + 8;
        let available = bytes.len() - body;
        match id {
            b"fmt " => {
                if declared < 16 {
                    return Err(truncated(format!("fmt chunk of {declared} bytes")));
                }
                if available < 16 {
                    return Err(truncated("fmt chunk cut off".into()));
                }
                let mut tag = u16_at(bytes, body);
                let channels = u16_at(bytes, body + 2);
                let rate = u32_at(bytes, body + 4);
                let block_align = u16_at(bytes, body + 12);
                let bits = u16_at(bytes, body + 14);
                if tag == FORMAT_EXTENSIBLE {
                    // cbSize(2) validBits(2) channelMask(4) then the sub-format GUID, whose
                    // first two bytes are the plain format tag.
                    if declared < 40 || available < 40 {
                        return Err(truncated("extensible fmt chunk cut off".into()));
                    }
                    tag = u16_at(bytes, body + 24);
                }
                fmt = Some((tag, channels, rate, block_align, bits));
            }
            b"data" => {
                // Streaming writers leave the size at 0 or 0xFFFFFFFF until the end; a file cut
                // off mid-recording has fewer bytes than declared. Either way, use what is there.
                let len = if declared == 0xFFFF_FFFF || declared > available {
                    available
                } else {
                    declared
                };
                if declared != 0xFFFF_FFFF && declared > available {
                    declared_data = Some(declared);
                }
                data = Some(body..body + len);
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        pos = body.saturating_add(declared).saturating_add(declared & 1);
    }

    let (format_tag, channels, sample_rate, block_align, bits_per_sample) =
        fmt.ok_or_else(|| truncated("no fmt chunk".into()))?;
    let data = data.ok_or_else(|| truncated("no data chunk".into()))?;
    Ok(WavHeader {
        format_tag,
        channels,
        sample_rate,
        bits_per_sample,
        block_align,
        data,
        declared_data,
    })
}

/// A human name for a WAV format tag we cannot decode, for the error message.
pub(super) fn format_tag_name(tag: u16) -> String {
    let name = match tag {
        0x0000 => "unknown",
        0x0022 => "TrueSpeech",
        0x0031 => "GSM 6.10",
        0x0040 => "G.721 ADPCM",
        0x0045 => "G.726 ADPCM",
        0x0050 => "MPEG",
        0x0055 => "MPEG Layer 3",
        0x0064 => "G.726 ADPCM",
        0x0065 => "G.722 ADPCM",
        0x0161..=0x0163 => "Windows Media Audio",
        0x1610 | 0x00FF => "AAC",
        0x704F => "Opus",
        _ => "",
    };
    if name.is_empty() {
        format!("WAV format tag {tag:#06x}")
    } else {
        format!("WAV format tag {tag:#06x}, {name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(tag: u16, fmt_len: u32, data: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"RIFF");
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(b"WAVE");
        b.extend_from_slice(b"LIST");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(b"abc\0"); // odd length plus pad byte
        b.extend_from_slice(b"fmt ");
        b.extend_from_slice(&fmt_len.to_le_bytes());
        b.extend_from_slice(&tag.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&8000u32.to_le_bytes());
        b.extend_from_slice(&8000u32.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&8u16.to_le_bytes());
        b.resize(b.len() + (fmt_len as usize - 16), 0);
        b.extend_from_slice(b"data");
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn skips_unknown_chunks_and_padding() {
        let b = header(FORMAT_MULAW, 16, &[1, 2, 3]);
        let h = parse(&b).expect("valid header");
        assert_eq!(h.format_tag, FORMAT_MULAW);
        assert_eq!(h.sample_rate, 8000);
        assert_eq!(&b[h.data], &[1, 2, 3]);
    }

    #[test]
    fn every_prefix_is_an_error_not_a_panic() {
        let b = header(FORMAT_ALAW, 18, &[]);
        for n in 0..b.len() - 8 {
            assert!(parse(&b[..n]).is_err(), "prefix {n}");
        }
    }

    #[test]
    fn data_longer_than_file_is_clamped() {
        let mut b = header(FORMAT_PCM, 16, &[0; 10]);
        let at = b.len() - 14;
        b[at..at + 4].copy_from_slice(&1000u32.to_le_bytes());
        let h = parse(&b).expect("valid");
        assert_eq!(h.data.len(), 10);
        // Said, so that the decoder can warn that the file is cut short.
        assert_eq!(h.declared_data, Some(1000));
        // A streaming writer's placeholder is not a cut file, nor is a whole one.
        b[at..at + 4].copy_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
        assert_eq!(parse(&b).expect("valid").declared_data, None);
        let whole = header(FORMAT_PCM, 16, &[0; 10]);
        assert_eq!(parse(&whole).expect("valid").declared_data, None);
    }
}
