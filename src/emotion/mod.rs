//! Emotion: text sentiment, escalation phrases, and the explainable fusion of stress,
//! arousal and valence into a label.

pub mod phrases;
pub mod sentiment;

pub use phrases::{PhraseMatch, PhraseMatcher};
pub use sentiment::{Scores, SentimentAnalyzer};
