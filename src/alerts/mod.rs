//! Alert rules with hysteresis and cooldown: pure, clock-free, one engine per call.
//!
//! The pipeline feeds [`AlertEngine`] ticks (voice activity and customer stress, about every
//! 100 ms) and redacted utterances (sentiment, words); it gets back `crate::events::Alert`s to
//! publish. Times are seconds of call audio, so live and replay behave identically.

pub mod config;
mod engine;
mod episode;

pub use config::{
    AlertConfig, AlertConfigError, OvertalkRule, PhraseRule, SentimentRule, SilenceRule,
    SpeakingRateRule, StressRule,
};
pub use engine::{is_distress, AlertEngine, Suppressed, Tick, UtteranceInfo};
