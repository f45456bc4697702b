//! Whisper speech recognition: model provisioning and the transcription worker pool.
//!
//! * [`models`] — `calltone model fetch|import-ct2|list`: download official ggml files,
//!   convert CTranslate2 (faster-whisper) models, list installed models.
//! * [`ct2`] — reader for CTranslate2 `model.bin` files.
//! * [`ggml`] — writer/reader for whisper.cpp's ggml model format, mel filterbank, BPE bytes.

pub mod ct2;
pub mod ggml;
pub mod models;
pub mod pool;
mod timing;
pub mod transcribe;
