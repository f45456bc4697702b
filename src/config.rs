//! Typed configuration: one TOML file (`firmware-config/calltone.toml` is the complete,
//! commented reference), every field with a documented default, validated once at load.
//! Command-line flags override individual keys after loading.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::segment::VadConfig;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{path}: cannot read config: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
    /// A number no setting can use: NaN, infinite, or a negative duration.
    #[error("{path}: {key}: {message}")]
    Number {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("cannot write the config as TOML: {0}")]
    Serialize(String),
}

/// The first number in `v` that no setting accepts: a non-finite float anywhere, or a
/// negative duration (a key ending in `_s` or `_ms`). Returns the dotted key and why.
fn bad_number(v: &toml::Value, key: &str) -> Option<(String, String)> {
    match v {
        toml::Value::Float(x) if !x.is_finite() => {
            Some((key.into(), format!("{x} is not a finite number")))
        }
        toml::Value::Float(x) if *x < 0.0 && is_duration(key) => {
            Some((key.into(), format!("{x}: a duration cannot be negative")))
        }
        toml::Value::Integer(x) if *x < 0 && is_duration(key) => {
            Some((key.into(), format!("{x}: a duration cannot be negative")))
        }
        // Timers are built from these: beyond a year no setting means anything, and near
        // 1e19 seconds the conversion to a `Duration` panics.
        toml::Value::Float(x) if duration_s(key, *x) > MAX_DURATION_S => Some((
            key.into(),
            format!("{x}: a duration over {MAX_DURATION_S} s (one year) is not a setting"),
        )),
        toml::Value::Integer(x) if duration_s(key, *x as f64) > MAX_DURATION_S => Some((
            key.into(),
            format!("{x}: a duration over {MAX_DURATION_S} s (one year) is not a setting"),
        )),
        toml::Value::Table(t) => t.iter().find_map(|(k, v)| {
            let key = if key.is_empty() {
                k.clone()
            } else {
                format!("{key}.{k}")
            };
            bad_number(v, &key)
        }),
        toml::Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, v)| bad_number(v, &format!("{key}[{i}]"))),
        _ => None,
    }
}

fn is_duration(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key);
    last.ends_with("_s") || last.ends_with("_ms")
}

/// The longest duration any `_s`/`_ms` key takes: one year.
const MAX_DURATION_S: f64 = 365.0 * 24.0 * 3600.0;

/// `x` of key `key` in seconds (0 for keys that are no durations).
fn duration_s(key: &str, x: f64) -> f64 {
    let last = key.rsplit('.').next().unwrap_or(key);
    if last.ends_with("_ms") {
        x / 1000.0
    } else if last.ends_with("_s") {
        x
    } else {
        0.0
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub asr: AsrConfig,
    pub vad: VadConfig,
    pub prosody: ProsodySettings,
    pub pipeline: PipelineConfig,
    pub emotion: EmotionConfig,
    pub redact: crate::redact::RedactConfig,
    pub alerts: crate::alerts::AlertConfig,
    pub empathy: crate::empathy::config::EmpathyConfig,
    pub scorecard: crate::empathy::config::ScorecardConfig,
    pub assist: crate::assist::AssistConfig,
    pub serve: crate::serve::ServeConfig,
    pub mqtt: crate::publish::mqtt::MqttConfig,
    pub audiosocket: crate::sources::audiosocket::AudioSocketConfig,
    pub media_stream: crate::sources::media_stream::MediaStreamConfig,
    pub device: crate::sources::device::DeviceConfig,
    pub security: crate::security::SecurityConfig,
}

/// `[emotion]`: the arousal model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmotionConfig {
    /// A retrained arousal model (JSON, as written by `examples/train_arousal`). Default:
    /// none, the model built into the binary (`models/arousal.json` at build time).
    pub arousal_model: Option<PathBuf>,
}

/// `[asr]`: Whisper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AsrConfig {
    /// Path of the ggml Whisper model. Default `models/ggml-tiny.en.bin`.
    pub model: PathBuf,
    /// Language Whisper decodes in: a code ("en", "de", "tr", "ar", ...) for a site that
    /// takes calls in one language, or "auto" (or "") to detect each speaker's language
    /// from their first transcribed utterance of 2 s or more. Anything but "en" needs a
    /// multilingual model (no `.en`). The utterance event reports the language. Default "en".
    pub language: String,
    /// CPU threads per transcription. 0 = automatic (replay: 1 — ggml's threads spin at
    /// every barrier, and two 2-thread replays on a busy 2-core box ran ~50× slower than
    /// alone, README Transcription; serve: cores / (workers + 1)). Default 0.
    pub threads: usize,
    /// ASR worker threads (each with its own Whisper state). `serve`: they take the live
    /// calls' utterances. `replay` (fixed language): they transcribe utterances ahead of the
    /// pipeline in parallel, publishing the same events as one at a time (1: one at a time).
    /// Default 2: on a 2-core box two one-thread workers carried 40 concurrent calls without
    /// shedding where one worker shed from ~35 (README, Capacity).
    pub workers: usize,
    /// Utterances waiting for ASR in `serve` before the oldest are shed. Default 16.
    pub queue: usize,
    /// Text Whisper reads as if it had been said before every utterance: product names and
    /// the site's phrases (e.g. "Acme Telecom"), so they are heard and spelled the site's
    /// way. At most 223 tokens (of a longer one the end is used). Default "" (none).
    pub initial_prompt: String,
    /// Give Whisper the speaker's previous utterance as context (after `initial_prompt`),
    /// as whole-file Whisper carries its previous window: a sentence the segmenter split at
    /// a pause is decoded knowing its first half. Replay then transcribes one utterance at a
    /// time (each decode waits for the previous text). Default false (README, Transcription).
    pub prompt_previous: bool,
}

impl Default for AsrConfig {
    fn default() -> Self {
        Self {
            model: PathBuf::from("models/ggml-tiny.en.bin"),
            language: "en".into(),
            threads: 0,
            workers: 2,
            queue: 16,
            initial_prompt: String::new(),
            prompt_previous: false,
        }
    }
}

/// `[prosody]`: the pitch search range (the other analysis constants follow Praat's defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProsodySettings {
    /// Lowest F0 searched, Hz. Default 60.
    pub f0_min_hz: f32,
    /// Highest F0 searched, Hz. Default 500.
    pub f0_max_hz: f32,
}

impl Default for ProsodySettings {
    fn default() -> Self {
        let d = crate::prosody::ProsodyConfig::default();
        Self {
            f0_min_hz: d.f0_min_hz,
            f0_max_hz: d.f0_max_hz,
        }
    }
}

impl ProsodySettings {
    /// The analyzer configuration these settings describe.
    pub fn analyzer_config(&self) -> crate::prosody::ProsodyConfig {
        crate::prosody::ProsodyConfig {
            f0_min_hz: self.f0_min_hz,
            f0_max_hz: self.f0_max_hz,
            ..Default::default()
        }
    }
}

/// `[pipeline]`: per-call analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Seconds of call audio between `state` events. Default 1.0.
    pub state_interval_s: f64,
    /// Infer emotion for the agent too. Off by default: inferring employees' emotions at
    /// work is prohibited in the EU (AI Act Art. 5(1)(f)); enable only where lawful.
    pub agent_emotion: bool,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            state_interval_s: 1.0,
            agent_emotion: false,
        }
    }
}

impl Config {
    /// Loads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Parses and validates TOML text; `path` names it in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let message = e.message().replace('\n', " ");
            ConfigError::Parse {
                path: path.into(),
                // The line tells the operator where, as the message alone names no section.
                message: match e.span() {
                    Some(span) => {
                        let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                        format!("line {line}: {message}")
                    }
                    None => message,
                },
            }
        })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// The configuration as TOML, every key present (defaults filled in). Parsing the text
    /// again gives back an equal `Config`. Unset optional keys (e.g. `emotion.arousal_model`)
    /// are left out, as TOML has no null.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string_pretty(self).map_err(|e| ConfigError::Serialize(e.to_string()))
    }

    /// Checks ranges once so the rest of the code can trust the values.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |key: &'static str, message: String| ConfigError::Invalid {
            path: path.into(),
            key,
            message,
        };
        // Every section at once: no key may hold a number the code would panic or spin on.
        if let Ok(value) = toml::Value::try_from(self) {
            if let Some((key, message)) = bad_number(&value, "") {
                return Err(ConfigError::Number {
                    path: path.into(),
                    key,
                    message,
                });
            }
        }
        self.alerts
            .validate()
            .map_err(|e| bad("alerts", e.to_string()))?;
        self.empathy
            .validate()
            .map_err(|e| bad("empathy", e.to_string()))?;
        self.scorecard
            .validate()
            .map_err(|e| bad("scorecard", e.to_string()))?;
        self.assist.validate().map_err(|e| bad("assist", e))?;
        self.security.validate().map_err(|e| bad("security", e))?;
        crate::asr::transcribe::parse_language(&self.asr.language)
            .map_err(|e| bad("asr.language", e))?;
        self.audiosocket
            .validate()
            .map_err(|e| bad("audiosocket", e))?;
        self.media_stream
            .validate()
            .map_err(|e| bad("media_stream", e))?;
        self.serve.validate().map_err(|e| bad("serve", e))?;
        self.mqtt.validate().map_err(|e| bad("mqtt", e))?;
        let (lo, hi) = (self.prosody.f0_min_hz, self.prosody.f0_max_hz);
        if !(30.0..=200.0).contains(&lo) || !(150.0..=1000.0).contains(&hi) || lo * 2.0 > hi {
            return Err(bad(
                "prosody.f0_min_hz",
                format!("F0 range {lo}..{hi} Hz invalid; expected 30 ≤ min ≤ 200, 150 ≤ max ≤ 1000, max ≥ 2·min"),
            ));
        }
        // Threads and queues are allocated from these.
        let counts: [(&'static str, u64, u64, u64); 5] = [
            ("asr.workers", self.asr.workers as u64, 1, 64),
            ("asr.threads", self.asr.threads as u64, 0, 64),
            ("asr.queue", self.asr.queue as u64, 1, 100_000),
            ("mqtt.keep_alive_s", self.mqtt.keep_alive_s, 1, 65_535),
            (
                "mqtt.max_packet_bytes",
                self.mqtt.max_packet_bytes as u64,
                1024,
                256 << 20,
            ),
        ];
        for (key, x, lo, hi) in counts {
            if !(lo..=hi).contains(&x) {
                return Err(bad(key, format!("{x} out of range {lo}..={hi}")));
            }
        }
        let v = &self.vad;
        let ranges: [(&'static str, f64, f64, f64); 12] = [
            ("vad.threshold_db", v.threshold_db.into(), 0.0, 60.0),
            (
                "vad.unvoiced_threshold_db",
                v.unvoiced_threshold_db.into(),
                0.0,
                60.0,
            ),
            ("vad.min_level_db", v.min_level_db.into(), -120.0, 0.0),
            ("vad.bleed_margin_db", v.bleed_margin_db.into(), 0.0, 60.0),
            ("vad.onset_window", v.onset_window as f64, 1.0, 100.0),
            ("vad.hangover_s", v.hangover_s, 0.01, 10.0),
            (
                "vad.narrowband_hangover_s",
                v.narrowband_hangover_s,
                0.01,
                10.0,
            ),
            ("vad.pre_roll_s", v.pre_roll_s, 0.0, 2.0),
            ("vad.post_roll_s", v.post_roll_s, 0.0, 2.0),
            ("vad.min_speech_s", v.min_speech_s, 0.0, 10.0),
            ("vad.max_utterance_s", v.max_utterance_s, 2.0, 60.0),
            (
                "pipeline.state_interval_s",
                self.pipeline.state_interval_s,
                0.1,
                60.0,
            ),
        ];
        for (key, x, lo, hi) in ranges {
            if !(lo..=hi).contains(&x) {
                return Err(bad(key, format!("{x} out of range {lo}..={hi}")));
            }
        }
        if self.vad.onset_frames == 0 || self.vad.onset_frames > self.vad.onset_window {
            return Err(bad(
                "vad.onset_frames",
                "must be between 1 and vad.onset_window".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_config_loads_and_equals_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-config/calltone.toml");
        let cfg = Config::load(&path).expect("shipped config must load");
        assert_eq!(
            cfg,
            Config::default(),
            "shipped file documents the defaults"
        );
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let e = Config::from_toml("[asr]\nmodle = 'x'\n", Path::new("c.toml")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("c.toml: "), "{msg}");
        assert!(msg.contains("modle"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn effective_toml_round_trips() {
        let mut cfg = Config::default();
        cfg.asr.workers = 3;
        cfg.emotion.arousal_model = Some("/etc/calltone/arousal.json".into());
        let text = cfg.to_toml().unwrap();
        let back = Config::from_toml(&text, Path::new("effective.toml")).unwrap();
        assert_eq!(back, cfg, "{text}");
        let defaults = Config::default().to_toml().unwrap();
        assert_eq!(
            Config::from_toml(&defaults, Path::new("d.toml")).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn invalid_value_names_the_key() {
        let e = Config::from_toml("[asr]\nworkers = 0\n", Path::new("c.toml")).unwrap_err();
        assert!(e.to_string().contains("asr.workers"), "{e}");
    }
}
