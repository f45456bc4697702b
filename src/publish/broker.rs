//! Embedded MQTT broker (rumqttd) so that a single box works with no broker installed
//! (`mqtt.url = "embedded"`). It runs on its own threads with their own runtimes and lives
//! until the process exits; calltone publishes to it over loopback like to any broker.
//!
//! rumqttd is built without default features: no TLS (and so no second crypto provider),
//! no websockets. Supervisors on other machines connect to `embedded_listen` (set it to
//! `0.0.0.0:1883` to expose it) or a site broker bridges it.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

use super::mqtt::{BrokerTarget, MqttConfig};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    #[error("{addr}: address in use; set mqtt.url to the running broker or choose another embedded address (mqtt.embedded_listen)")]
    AddrInUse { addr: SocketAddr },
    #[error("embedded broker on {addr}: {source}")]
    Io {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("embedded broker on {addr} did not start: {reason}")]
    Start { addr: SocketAddr, reason: String },
}

/// A running embedded broker.
#[derive(Debug)]
pub struct EmbeddedBroker {
    addr: SocketAddr,
}

impl EmbeddedBroker {
    /// Starts the broker on `addr` and returns once it accepts connections. Fails with a
    /// clear message when the port is taken. Port 0 picks a free port (see [`Self::addr`]).
    pub fn start(addr: SocketAddr) -> Result<Self, BrokerError> {
        // rumqttd binds inside its own thread and only logs a failure there, so probe first
        // (this also resolves port 0 to a concrete free port).
        let probe = TcpListener::bind(addr).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                BrokerError::AddrInUse { addr }
            } else {
                BrokerError::Io { addr, source: e }
            }
        })?;
        let addr = probe
            .local_addr()
            .map_err(|e| BrokerError::Io { addr, source: e })?;
        drop(probe);

        let mut broker = Broker::new(broker_config(addr));
        let thread = std::thread::Builder::new()
            .name("mqtt-broker".into())
            .spawn(move || {
                if let Err(e) = broker.start() {
                    tracing::error!(error = %e, "embedded broker stopped");
                }
            })
            .map_err(|e| BrokerError::Io { addr, source: e })?;

        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if mqtt_handshake(addr).is_ok() {
                tracing::info!(%addr, "embedded MQTT broker listening");
                return Ok(Self { addr });
            }
            if thread.is_finished() || Instant::now() > deadline {
                // Most likely someone took the port between the probe and rumqttd's bind.
                return Err(BrokerError::Start {
                    addr,
                    reason: "not accepting connections (port taken meanwhile?)".into(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the broker when `config.url` is `embedded`; `None` for an external broker.
    pub fn for_config(config: &MqttConfig) -> Result<Option<Self>, BrokerError> {
        match config.target() {
            Ok(BrokerTarget::Embedded(addr)) => Self::start(addr).map(Some),
            _ => Ok(None),
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Connects as an MQTT 3.1.1 client, expects a successful CONNACK and disconnects cleanly
/// (a bare TCP probe would make rumqttd log an error).
fn mqtt_handshake(addr: SocketAddr) -> std::io::Result<()> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    s.set_read_timeout(Some(Duration::from_millis(500)))?;
    let id = b"calltone-probe";
    let mut connect = vec![0x10, (10 + 2 + id.len()) as u8];
    connect.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 10]);
    connect.extend_from_slice(&(id.len() as u16).to_be_bytes());
    connect.extend_from_slice(id);
    s.write_all(&connect)?;
    let mut connack = [0u8; 4];
    s.read_exact(&mut connack)?;
    if connack != [0x20, 0x02, 0x00, 0x00] {
        return Err(std::io::Error::other(format!(
            "unexpected CONNACK {connack:02x?}"
        )));
    }
    s.write_all(&[0xe0, 0x00])
}

fn broker_config(addr: SocketAddr) -> Config {
    let connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: 1 << 20,
        max_inflight_count: 200,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = ServerSettings {
        name: "v4-1".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    let mut v4 = HashMap::new();
    v4.insert("1".to_string(), server);
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: 1000,
            max_outgoing_packet_count: 200,
            // Commit log per topic, in memory: 256 KiB segments, at most 4 per topic.
            max_segment_size: 256 * 1024,
            max_segment_count: 4,
            ..Default::default()
        },
        v4: Some(v4),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taken_port_gives_a_clear_error() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let err = EmbeddedBroker::start(addr).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("address in use"), "{msg}");
        assert!(msg.contains(&addr.to_string()), "{msg}");
        assert!(msg.contains("mqtt.url"), "{msg}");
    }
}
