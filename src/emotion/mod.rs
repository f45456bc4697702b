//! Emotion: text sentiment, escalation phrases, and the explainable fusion of stress,
//! arousal and valence into a label.

pub mod sentiment;

pub use sentiment::{Scores, SentimentAnalyzer};
