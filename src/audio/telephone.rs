//! A telephone channel simulation: 300–3400 Hz band-pass, 8 kHz, G.711 μ-law. Used to
//! evaluate every analysis stage under the conditions of real call audio.

use super::error::AudioError;
use super::g711::{linear_to_ulaw, ulaw_to_linear};
use super::resample::resample_all;

/// Passes `samples` (at `rate`) through a telephone channel; returns 8 kHz audio as the far
/// end would decode it.
pub fn telephone_channel(samples: &[f32], rate: u32) -> Result<Vec<f32>, AudioError> {
    let band = bandpass(samples, rate as f32, 300.0, 3400.0);
    let narrow = resample_all(&band, rate, 8000)?;
    Ok(narrow
        .iter()
        .map(|&x| {
            let s = (x * 32767.0).round().clamp(-32768.0, 32767.0) as i16;
            ulaw_to_linear(linear_to_ulaw(s)) as f32 / 32768.0
        })
        .collect())
}

/// Linear-phase FIR band-pass (windowed sinc, Blackman window, 40 ms), zero-phase aligned.
pub fn bandpass(x: &[f32], rate: f32, lo_hz: f32, hi_hz: f32) -> Vec<f32> {
    let half = (0.02 * rate) as isize;
    let taps: Vec<f32> = (-half..=half)
        .map(|k| {
            let k = k as f32;
            let sinc = |fc: f32| {
                let w = 2.0 * fc / rate;
                if k == 0.0 {
                    w
                } else {
                    (std::f32::consts::PI * w * k).sin() / (std::f32::consts::PI * k)
                }
            };
            let n = (k + half as f32) / (2 * half) as f32;
            let win = 0.42 - 0.5 * (2.0 * std::f32::consts::PI * n).cos()
                + 0.08 * (4.0 * std::f32::consts::PI * n).cos();
            (sinc(hi_hz) - sinc(lo_hz)) * win
        })
        .collect();
    let n = x.len() as isize;
    (0..n)
        .map(|i| {
            let mut acc = 0.0f32;
            for (j, &h) in taps.iter().enumerate() {
                let idx = i + j as isize - half;
                if idx >= 0 && idx < n {
                    acc += h * x[idx as usize];
                }
            }
            acc
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(f: f32, rate: f32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * f * i as f32 / rate).sin())
            .collect()
    }

    fn rms(x: &[f32]) -> f32 {
        (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt()
    }

    #[test]
    fn passes_the_voice_band_and_removes_the_rest() {
        let n = 16000;
        let pass = telephone_channel(&tone(1000.0, 16000.0, n), 16000).unwrap();
        assert!((pass.len() as i64 - 8000).abs() <= 2, "{}", pass.len());
        let mid = &pass[1000..7000];
        assert!(
            (rms(mid) / (0.5 / 2f32.sqrt()) - 1.0).abs() < 0.05,
            "{}",
            rms(mid)
        );
        for f in [100.0, 5000.0] {
            let out = telephone_channel(&tone(f, 16000.0, n), 16000).unwrap();
            let r = rms(&out[1000..7000]) / (0.5 / 2f32.sqrt());
            assert!(r < 0.05, "{f} Hz leaks at {r}");
        }
    }
}
