//! ITU-T G.711 μ-law and A-law companding.
//!
//! Telephony legs (AudioSocket, Twilio-style media streams, μ-law/A-law WAV recordings) carry
//! 8-bit G.711 codes. The encoders follow the ITU-T G.191 reference (`ulaw_compress`,
//! `alaw_compress`): negative samples use the one's complement, so encoding never overflows
//! and `linear_to_*(…_to_linear(code)) == code` for every code except μ-law's negative zero.
//! Decoding is a 256-entry table built at compile time from the G.191 expansion rules,
//! because decoding is on the hot path of every telephony frame.

/// Decoded value of every μ-law code (ITU-T G.191 `ulaw_expand`, 16-bit scale).
static ULAW_TABLE: [i16; 256] = build_ulaw_table();

/// Decoded value of every A-law code (ITU-T G.191 `alaw_expand`, 16-bit scale).
static ALAW_TABLE: [i16; 256] = build_alaw_table();

const fn ulaw_expand(code: u8) -> i16 {
    let inverted = !code;
    let exponent = ((inverted >> 4) & 0x07) as i32;
    let mantissa = (inverted & 0x0F) as i32;
    let step = 4 << (exponent + 1);
    let magnitude = (0x80 << exponent) + step * mantissa + step / 2 - 4 * 33;
    // Bit 7 set means a positive sample in μ-law.
    if code & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

const fn alaw_expand(code: u8) -> i16 {
    let toggled = (code ^ 0x55) & 0x7F;
    let exponent = (toggled >> 4) as i32;
    let mut mantissa = (toggled & 0x0F) as i32;
    if exponent > 0 {
        mantissa += 16;
    }
    mantissa = (mantissa << 4) + 8;
    if exponent > 1 {
        mantissa <<= exponent - 1;
    }
    // Bit 7 set means a positive sample in A-law too (the 0x55 toggle leaves it alone).
    if code & 0x80 != 0 {
        mantissa as i16
    } else {
        -mantissa as i16
    }
}

const fn build_ulaw_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = ulaw_expand(i as u8);
        i += 1;
    }
    table
}

const fn build_alaw_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = alaw_expand(i as u8);
        i += 1;
    }
    table
}

/// Decode one μ-law code to a 16-bit linear sample.
#[inline]
pub fn ulaw_to_linear(code: u8) -> i16 {
    ULAW_TABLE[usize::from(code)]
}

/// Decode one A-law code to a 16-bit linear sample.
#[inline]
pub fn alaw_to_linear(code: u8) -> i16 {
    ALAW_TABLE[usize::from(code)]
}

/// Encode one 16-bit linear sample to μ-law (G.191 `ulaw_compress`; uses the 14 MSBs).
pub fn linear_to_ulaw(sample: i16) -> u8 {
    // One's complement (`!x`) of a negative i16 is non-negative and never overflows.
    let magnitude = if sample < 0 { !sample } else { sample };
    let absno = ((i32::from(magnitude) >> 2) + 33).min(0x1FFF);
    let mut segment = 1;
    let mut i = absno >> 6;
    while i != 0 {
        segment += 1;
        i >>= 1;
    }
    let high = 8 - segment;
    let low = 0x0F - ((absno >> segment) & 0x0F);
    // high is 0..=7 and low 0..=15, so the code fits 7 bits before the sign.
    let code = ((high << 4) | low) as u8;
    if sample >= 0 {
        code | 0x80
    } else {
        code
    }
}

/// Encode one 16-bit linear sample to A-law (G.191 `alaw_compress`; uses the 13 MSBs).
pub fn linear_to_alaw(sample: i16) -> u8 {
    let magnitude = if sample < 0 { !sample } else { sample };
    let mut ix = i32::from(magnitude) >> 4; // 0..=2047
    if ix > 15 {
        let mut exponent = 1;
        while ix > 16 + 15 {
            ix >>= 1;
            exponent += 1;
        }
        ix -= 16;
        ix += exponent << 4;
    }
    // ix <= 0x7F here (exponent <= 7, mantissa <= 15).
    let mut code = ix as u8;
    if sample >= 0 {
        code |= 0x80;
    }
    code ^ 0x55
}

/// Decode μ-law codes to `f32` samples in [-1, 1), appending to `out`.
pub fn ulaw_to_f32(codes: &[u8], out: &mut Vec<f32>) {
    out.extend(
        codes
            .iter()
            .map(|&c| f32::from(ulaw_to_linear(c)) / 32768.0),
    );
}

/// Decode A-law codes to `f32` samples in [-1, 1), appending to `out`.
pub fn alaw_to_f32(codes: &[u8], out: &mut Vec<f32>) {
    out.extend(
        codes
            .iter()
            .map(|&c| f32::from(alaw_to_linear(c)) / 32768.0),
    );
}

/// Convert an `f32` sample (nominally [-1, 1]) to i16, clamping out-of-range values.
fn f32_to_i16(sample: f32) -> i16 {
    // `as` saturates and maps NaN to 0, which is what we want for stray values.
    (sample * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

/// Encode `f32` samples to μ-law codes, appending to `out`.
pub fn f32_to_ulaw(samples: &[f32], out: &mut Vec<u8>) {
    out.extend(samples.iter().map(|&s| linear_to_ulaw(f32_to_i16(s))));
}

/// Encode `f32` samples to A-law codes, appending to `out`.
pub fn f32_to_alaw(samples: &[f32], out: &mut Vec<u8>) {
    out.extend(samples.iter().map(|&s| linear_to_alaw(f32_to_i16(s))));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_reference_values() {
        // Values of ITU-T G.191 ulaw_expand (identical to Sun's g711.c ulaw2linear).
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0xFE), 8);
        assert_eq!(ulaw_to_linear(0x7E), -8);
        assert_eq!(ulaw_to_linear(0xF0), 120);
        assert_eq!(ulaw_to_linear(0xEF), 132);
        assert_eq!(ulaw_to_linear(0x8F), 16764);
        assert_eq!(ulaw_to_linear(0x0F), -16764);
    }

    #[test]
    fn alaw_reference_values() {
        // Values of ITU-T G.191 alaw_expand (identical to Sun's g711.c alaw2linear).
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0xD4), 24);
        assert_eq!(alaw_to_linear(0xC5), 264);
        assert_eq!(alaw_to_linear(0x80), -(alaw_to_linear(0x00)));
        assert_eq!(alaw_to_linear(0xA5), 16896);
    }

    #[test]
    fn encoder_reference_values() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(-1), 0x7F);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_alaw(-1), 0x55);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
    }

    #[test]
    fn tables_are_odd_symmetric() {
        for code in 0..=0x7Fu8 {
            assert_eq!(
                ulaw_to_linear(code),
                -ulaw_to_linear(code | 0x80),
                "μ {code:#x}"
            );
            assert_eq!(
                alaw_to_linear(code),
                -alaw_to_linear(code | 0x80),
                "A {code:#x}"
            );
        }
    }

    #[test]
    fn encode_inverts_decode_for_every_code() {
        for code in 0..=255u8 {
            // μ-law has two zeros; 0x7F (negative zero) decodes to 0, which encodes as 0xFF.
            if code != 0x7F {
                assert_eq!(linear_to_ulaw(ulaw_to_linear(code)), code, "μ {code:#x}");
            }
            assert_eq!(linear_to_alaw(alaw_to_linear(code)), code, "A {code:#x}");
        }
    }

    #[test]
    fn round_trip_error_is_within_half_a_quantisation_step() {
        for x in i16::MIN..=i16::MAX {
            let m = i32::from(x).abs();
            // μ-law: step 8·2^seg in the biased magnitude |x|+132; half a step is <= (|x|+132)/32,
            // plus 4 for the one's-complement/14-bit truncation. Beyond 32124 it clips.
            let eu = (i32::from(ulaw_to_linear(linear_to_ulaw(x))) - i32::from(x)).abs();
            let bound_u = if m <= 32124 {
                (m + 132) / 32 + 4
            } else {
                m - 32124 + 512
            };
            assert!(eu <= bound_u, "μ-law x={x} err={eu} bound={bound_u}");
            // A-law: step 16 below 256, then 16·2^(seg-1); half a step <= max(8, |x|/32) + 8.
            let ea = (i32::from(alaw_to_linear(linear_to_alaw(x))) - i32::from(x)).abs();
            let bound_a = if m <= 32256 {
                (m / 32).max(8) + 8
            } else {
                m - 32256 + 512
            };
            assert!(ea <= bound_a, "A-law x={x} err={ea} bound={bound_a}");
        }
    }

    #[test]
    fn f32_helpers_round_trip() {
        let input: Vec<f32> = (0..200).map(|i| ((i as f32) * 0.07).sin() * 0.8).collect();
        let (mut u, mut a) = (Vec::new(), Vec::new());
        f32_to_ulaw(&input, &mut u);
        f32_to_alaw(&input, &mut a);
        let (mut du, mut da) = (Vec::new(), Vec::new());
        ulaw_to_f32(&u, &mut du);
        alaw_to_f32(&a, &mut da);
        for ((x, yu), ya) in input.iter().zip(&du).zip(&da) {
            // 8-bit log PCM: relative error about 3%, absolute floor for small samples.
            assert!((x - yu).abs() <= x.abs() * 0.035 + 0.001, "{x} {yu}");
            assert!((x - ya).abs() <= x.abs() * 0.035 + 0.001, "{x} {ya}");
        }
        // Out-of-range and NaN input must not panic.
        f32_to_ulaw(&[2.0, -2.0, f32::NAN], &mut u);
    }
}
