//! calltone: on-box call audio analytics for contact centers.
//!
//! Module map (pure computation has no I/O; I/O lives in sources, the ASR pool and sinks):
//! * [`audio`] — speaker roles, file decoding, G.711, resampling to 16 kHz.
//! * [`prosody`] — streaming pitch, voice quality, loudness and rate features (pure DSP).
//! * [`segment`] — voice activity detection and utterance segmentation per speaker.
//! * [`asr`] — Whisper model provisioning (fetch, CTranslate2 import) and transcription.
//! * [`emotion`] — arousal model, text sentiment, escalation phrases, fusion.
//! * [`alerts`] — alert rules with hysteresis and cooldown.
//! * [`empathy`] — agent behaviours, empathy opportunities, the customer journey, scorecards.
//! * [`redact`] — PII redaction of transcripts.
//! * [`events`] — the event schema shared by every sink (the interface contract).
//! * [`schema`] — the JSON Schema of the events, generated from [`events`].
//! * [`fleet`] — `calltone fleet`: all boxes' calls and alerts from a central broker.
//! * [`pipeline`] — per-call orchestration shared by replay and live paths.
//! * [`config`] — typed configuration with documented defaults.
//! * [`sources`] — network ingest (AudioSocket, WebSocket media streams) → `CallEvent`s.
//! * [`publish`] — MQTT sink with durable outbox, embedded broker.
//! * [`metrics`] — counters/gauges/histograms with Prometheus exposition.
//! * [`http`] — `/healthz`, `/metrics`, `/api/calls`, `/media/*`.
//! * [`dashboard`] — the supervisor dashboard at `/` and its live feed `/api/events` (SSE).
//! * [`report`] — QA report pages (HTML with an SVG timeline) drawn from a call's events.
//! * [`progress`] — replay progress bars on a terminal.
//! * [`systemd`] — `Type=notify` readiness and watchdog pings for `serve`.

pub mod alerts;
pub mod asr;
pub mod assist;
pub mod audio;
pub mod config;
pub mod context;
pub mod dashboard;
pub mod emotion;
pub mod empathy;
pub mod events;
pub mod fleet;
pub mod http;
pub mod listener;
pub mod metrics;
pub mod pipeline;
pub mod progress;
pub mod prosody;
pub mod publish;
pub mod redact;
pub mod replay;
pub mod report;
pub mod rescore;
pub mod schema;
pub mod security;
pub mod segment;
pub mod serve;
pub mod sources;
pub mod systemd;
