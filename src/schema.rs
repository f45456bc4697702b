//! The JSON Schema of every event calltone emits, generated from the Rust types in
//! [`crate::events`] (`schemars` derives), so the schema cannot drift from the code.
//!
//! `calltone schema` prints it; the shipped copy is `docs/events.schema.json`, and
//! `tests/schema.rs` checks that the copy equals [`events_schema_json`] and that real events
//! (replays and MQTT payloads) validate against it.

use crate::events::Event;

/// `$id` of the schema (a name, not a fetchable address).
pub const SCHEMA_ID: &str = "urn:calltone:events:v1";

/// The schema of one event (one JSON line of `replay`, one MQTT payload), as a JSON value.
pub fn events_schema() -> serde_json::Value {
    // The serialize contract: what calltone writes, so an `Option` field that is always
    // written (as null when absent) is required, and only `skip_serializing_if` fields are
    // optional.
    let mut schema = schemars::generate::SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<Event>()
        .to_value();
    if let Some(obj) = schema.as_object_mut() {
        obj.insert("$id".into(), SCHEMA_ID.into());
        obj.insert("title".into(), "calltone event".into());
        obj.insert(
            "description".into(),
            "One calltone event: a JSON line of `calltone replay` or one MQTT payload of \
             `calltone serve`. Common envelope (call_id, seq, event_id, t, ts) plus a body \
             selected by `type`. Generated from src/events.rs by `calltone schema`."
                .into(),
        );
    }
    schema
}

/// [`events_schema`] as the pretty-printed text of `docs/events.schema.json` (with a final
/// newline).
pub fn events_schema_json() -> String {
    // Serialising a `serde_json::Value` cannot fail (string keys, finite numbers).
    let mut s = serde_json::to_string_pretty(&events_schema()).expect("schema serialises");
    s.push('\n');
    s
}
