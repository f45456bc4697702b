//! Twilio Media Streams messages, as JSON text (each test wraps them in its WebSocket crate's
//! message type).

use base64::Engine as _;

/// The `start` message of a two-track μ-law stream `MZ1` for call `call_sid`.
pub fn start(call_sid: &str) -> String {
    serde_json::json!({"event": "start", "sequenceNumber": "1", "streamSid": "MZ1", "start": {
        "streamSid": "MZ1", "callSid": call_sid, "accountSid": "AC1",
        "tracks": ["inbound", "outbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})
    .to_string()
}

/// A `media` message of stream `MZ1`: `ulaw` bytes on `track`, chunk number `chunk` (20 ms).
pub fn media(track: &str, chunk: u64, ulaw: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(ulaw);
    serde_json::json!({"event": "media", "streamSid": "MZ1",
        "media": {"track": track, "chunk": chunk.to_string(),
                  "timestamp": (chunk * 20).to_string(), "payload": b64}})
    .to_string()
}
