//! Event sinks that leave the box: the MQTT sink with its durable outbox, and the embedded
//! broker used when no external broker is configured.
//!
//! * [`outbox`] — append-only, CRC-framed segment log of QoS 1 events with a persisted ack
//!   cursor (durability across broker outages and restarts).
//! * [`mqtt`] — rumqttc client: contract topics, Last Will, PUBACK-driven outbox acks,
//!   reconnect with capped, jittered backoff, TLS on rustls/ring.
//! * [`broker`] — in-process rumqttd broker.

pub mod broker;
pub mod mqtt;
pub mod outbox;

pub use broker::{BrokerError, EmbeddedAuth, EmbeddedBroker};
pub use mqtt::{
    forward_from_bus, BrokerTarget, MqttConfig, MqttError, MqttHandle, MqttSink, PublishError,
};
pub use outbox::{Outbox, OutboxEntry, OutboxError};
