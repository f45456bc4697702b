//! Sound-device capture (cpal): a line tap on the box, one call per capture session.
//!
//! Real-time hygiene: the audio callback only converts samples to `f32` and copies them
//! into a pre-allocated lock-free ring buffer (dropping with a counter when it is full); it
//! never allocates, locks, logs or blocks. A reader thread drains the ring every 20 ms,
//! de-interleaves by the configured channel → speaker map and sends `CallEvent`s.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::HeapRb;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::CallEvent;
use crate::audio::{Speaker, SUPPORTED_RATES};

const SOURCE: &str = "device";

/// `[device]`: a capture device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceConfig {
    /// Capture from a sound device in `serve`. Default false.
    pub enabled: bool,
    /// Device id as `calltone devices` lists it (e.g. `alsa:hw:1,0`); empty = the default
    /// input device.
    pub device: String,
    /// Speaker of each captured channel, in order; channels beyond the list are ignored.
    /// Default `["customer", "agent"]` (a stereo line tap: caller left, agent right).
    pub channels: Vec<Speaker>,
    /// Requested capture rate, Hz; 0 = the device's default. The pipeline resamples.
    pub sample_rate: u32,
    /// Call id prefix; the call id is `{prefix}-{unix seconds}`. Default `device`.
    pub call_prefix: String,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            device: String::new(),
            channels: vec![Speaker::Customer, Speaker::Agent],
            sample_rate: 0,
            call_prefix: "device".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    #[error("sound device {device:?}: not found; `calltone devices` lists what is there")]
    NotFound { device: String },
    #[error("sound device {device:?}: {message}")]
    Device { device: String, message: String },
}

/// A running capture; dropping it stops the stream and ends the call.
pub struct Capture {
    stop: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
    /// Samples dropped because the ring buffer was full.
    pub dropped: Arc<AtomicU64>,
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// Lists input devices as `id (description): channels, rate`.
pub fn list_devices() -> Vec<String> {
    let host = cpal::default_host();
    let mut out = Vec::new();
    let default_id = host.default_input_device().and_then(|d| d.id().ok());
    let Ok(devices) = host.input_devices() else {
        return out;
    };
    for d in devices {
        let id = d.id().map(|i| i.to_string()).unwrap_or_else(|_| "?".into());
        let desc = d.description().map(|x| x.to_string()).unwrap_or_default();
        let cfg = match d.default_input_config() {
            Ok(c) => {
                let (format, _) = capture_format(&d, c.channels(), c.sample_rate());
                let format =
                    format.map_or_else(|| "unsupported sample format".into(), |f| f.to_string());
                format!("{} ch, {} Hz, {format}", c.channels(), c.sample_rate())
            }
            Err(e) => format!("no input config ({e})"),
        };
        let mark = if Some(&id) == default_id.as_ref().map(|i| i.to_string()).as_ref() {
            " [default]"
        } else {
            ""
        };
        out.push(format!("{id}{mark}  {desc}  {cfg}"));
    }
    out
}

/// Capture period: 20 ms, the AudioSocket frame size, so audio reaches the pipeline as
/// promptly as it does from telephony sources.
const PERIOD_S: f64 = 0.02;

/// The sample format calltone captures in from `device` at `channels` × `rate`: 16-bit
/// integer when the device offers it (telephone audio is 16-bit; no conversion on the way),
/// else 32-bit float. Also the 20 ms period when the device's period range allows it.
fn capture_format(
    device: &cpal::Device,
    channels: u16,
    rate: u32,
) -> (Option<cpal::SampleFormat>, cpal::BufferSize) {
    let ranges: Vec<_> = device
        .supported_input_configs()
        .map(|r| {
            r.filter(|c| {
                c.channels() == channels
                    && (c.min_sample_rate()..=c.max_sample_rate()).contains(&rate)
            })
            .collect()
        })
        .unwrap_or_default();
    let period = (rate as f64 * PERIOD_S).round() as u32;
    for want in [cpal::SampleFormat::I16, cpal::SampleFormat::F32] {
        if let Some(c) = ranges.iter().find(|c| c.sample_format() == want) {
            let buffer = match c.buffer_size() {
                cpal::SupportedBufferSize::Range { min, max }
                    if (*min..=*max).contains(&period) =>
                {
                    cpal::BufferSize::Fixed(period)
                }
                _ => cpal::BufferSize::Default,
            };
            return (Some(want), buffer);
        }
    }
    (None, cpal::BufferSize::Default)
}

fn find_device(cfg: &DeviceConfig) -> Result<cpal::Device, DeviceError> {
    let host = cpal::default_host();
    if cfg.device.is_empty() {
        return host.default_input_device().ok_or(DeviceError::NotFound {
            device: "default".into(),
        });
    }
    let id: cpal::DeviceId = cfg.device.parse().map_err(|e| DeviceError::Device {
        device: cfg.device.clone(),
        message: format!("bad device id: {e}"),
    })?;
    host.device_by_id(&id).ok_or(DeviceError::NotFound {
        device: cfg.device.clone(),
    })
}

/// Starts capturing; audio flows into `tx` until the returned [`Capture`] is dropped or
/// `shutdown` fires (the call then ends with reason `shutdown`).
pub fn start(
    cfg: &DeviceConfig,
    tx: mpsc::Sender<CallEvent>,
    legs: &crate::sources::legs::LegRegistry,
    shutdown: CancellationToken,
) -> Result<Capture, DeviceError> {
    let device = find_device(cfg)?;
    let name = if cfg.device.is_empty() {
        "default".to_string()
    } else {
        cfg.device.clone()
    };
    let err = |message: String| DeviceError::Device {
        device: name.clone(),
        message,
    };
    let default = device
        .default_input_config()
        .map_err(|e| err(format!("no input configuration: {e}")))?;
    let channels = default.channels() as usize;
    let rate = if cfg.sample_rate > 0 {
        cfg.sample_rate
    } else {
        default.sample_rate()
    };
    if !SUPPORTED_RATES.contains(&rate) {
        return Err(err(format!(
            "capture rate {rate} Hz out of range {}..={} Hz",
            SUPPORTED_RATES.start(),
            SUPPORTED_RATES.end()
        )));
    }
    let speakers: Vec<Speaker> = cfg.channels.iter().copied().take(channels).collect();
    if speakers.is_empty() {
        return Err(err("device.channels maps no speaker".into()));
    }
    let (format, buffer_size) = capture_format(&device, channels as u16, rate);
    let Some(format) = format else {
        return Err(err(format!(
            "no 16-bit or float capture at {channels} ch, {rate} Hz"
        )));
    };
    let stream_cfg = cpal::StreamConfig {
        channels: channels as u16,
        sample_rate: rate,
        buffer_size,
    };
    // Four seconds of interleaved audio: the reader drains every 20 ms, so only a stalled
    // process fills it.
    let rb = HeapRb::<f32>::new(rate as usize * channels * 4);
    let (mut prod, mut cons) = rb.split();
    let dropped = Arc::new(AtomicU64::new(0));
    let dropped_cb = dropped.clone();
    // A device that goes away (USB unplugged) ends the call; other stream errors (overruns)
    // are logged and capture goes on.
    let lost = Arc::new(AtomicBool::new(false));
    let lost_cb = lost.clone();
    let stream_err = move |e: cpal::Error| {
        if e.kind() == cpal::ErrorKind::DeviceNotAvailable {
            lost_cb.store(true, Ordering::Release);
        }
        tracing::warn!(source = SOURCE, error = %e, "capture stream error");
    };
    let stream = match format {
        cpal::SampleFormat::F32 => device.build_input_stream(
            stream_cfg,
            move |data: &[f32], _: &cpal::InputCallbackInfo| {
                let n = prod.push_slice(data);
                if n < data.len() {
                    dropped_cb.fetch_add((data.len() - n) as u64, Ordering::Relaxed);
                }
            },
            stream_err,
            None,
        ),
        cpal::SampleFormat::I16 => device.build_input_stream(
            stream_cfg,
            move |data: &[i16], _: &cpal::InputCallbackInfo| {
                // Convert in place-sized chunks on the stack: no allocation in the callback.
                let mut buf = [0f32; 256];
                for chunk in data.chunks(buf.len()) {
                    for (o, &s) in buf.iter_mut().zip(chunk) {
                        *o = s as f32 / 32768.0;
                    }
                    let n = prod.push_slice(&buf[..chunk.len()]);
                    if n < chunk.len() {
                        dropped_cb.fetch_add((chunk.len() - n) as u64, Ordering::Relaxed);
                    }
                }
            },
            stream_err,
            None,
        ),
        other => return Err(err(format!("unsupported sample format {other}"))),
    }
    .map_err(|e| err(format!("cannot open capture stream: {e}")))?;
    stream
        .play()
        .map_err(|e| err(format!("cannot start capture: {e}")))?;

    let call_id = format!(
        "{}-{}",
        cfg.call_prefix,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    );
    // The capture owns the call's legs, as a connection does: no media stream or
    // AudioSocket client naming the (predictable) call id can join it.
    let claim = legs
        .claim(&call_id, SOURCE, &speakers)
        .map_err(|r| err(format!("call id {call_id} is in use ({})", r.reason())))?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop_reader = stop.clone();
    let dropped_reader = dropped.clone();
    let reader = std::thread::Builder::new()
        .name("capture".into())
        .spawn(move || {
            // The stream lives on this thread (cpal streams are not Send on every host).
            let _stream = stream;
            let _claim = claim;
            let send = |ev: CallEvent| tx.blocking_send(ev).is_ok();
            if !send(CallEvent::Start {
                call_id: call_id.clone(),
                source: SOURCE,
                speakers: speakers.clone(),
            }) {
                return;
            }
            tracing::info!(%call_id, rate, channels, %format, ?buffer_size, "capture started");
            let mut interleaved = vec![0f32; rate as usize * channels / 10];
            let mut per_speaker: Vec<Vec<f32>> = vec![Vec::new(); speakers.len()];
            let mut reason = "shutdown";
            while !stop_reader.load(Ordering::Acquire) && !shutdown.is_cancelled() {
                if lost.load(Ordering::Acquire) {
                    reason = "device_lost";
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
                loop {
                    // Whole frames only, so channels never shift.
                    let whole = interleaved.len() / channels * channels;
                    let want = (cons.occupied_len() / channels * channels).min(whole);
                    if want == 0 {
                        break;
                    }
                    let n = cons.pop_slice(&mut interleaved[..want]);
                    let frames = n / channels;
                    for (k, buf) in per_speaker.iter_mut().enumerate() {
                        buf.clear();
                        buf.extend((0..frames).map(|i| interleaved[i * channels + k]));
                    }
                    for (k, &speaker) in speakers.iter().enumerate() {
                        let ev = CallEvent::Audio {
                            call_id: call_id.clone(),
                            speaker,
                            sample_rate: rate,
                            samples: per_speaker[k].clone(),
                        };
                        if !send(ev) {
                            return;
                        }
                    }
                }
            }
            for &speaker in &speakers {
                let _ = send(CallEvent::End {
                    call_id: call_id.clone(),
                    speaker,
                    reason: reason.into(),
                });
            }
            tracing::info!(%call_id, reason, dropped = dropped_reader.load(Ordering::Relaxed), "capture stopped");
        })
        .map_err(|e| err(format!("cannot start the capture thread: {e}")))?;
    Ok(Capture {
        stop,
        reader: Some(reader),
        dropped,
    })
}
