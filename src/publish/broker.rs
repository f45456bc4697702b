//! Embedded MQTT broker (rumqttd) so that a single box works with no broker installed
//! (`mqtt.url = "embedded"`). It runs on its own threads with their own runtimes and lives
//! until the process exits; calltone publishes to it over loopback like to any broker.
//!
//! rumqttd is built without default features: no TLS (and so no second crypto provider),
//! no websockets. Supervisors on other machines connect to `embedded_listen` (a non-loopback
//! address needs `mqtt.embedded_users_file`) or a site broker bridges it.
//!
//! With `mqtt.embedded_users_file`, every client logs in as a listed user (the password's
//! SHA-256 is compared), and calltone's own client id belongs to calltone alone: it logs in
//! with a user and password made at each start that never leave the process, so no client
//! can take its session over (MQTT drops the older of two connections with one id).

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

/// Who may use the embedded broker (see the module docs).
#[derive(Debug, Clone)]
pub struct EmbeddedAuth {
    /// Listed users and their passwords' SHA-256 digests.
    pub users: Vec<(String, [u8; 32])>,
    /// calltone's own client id, reserved for `internal`.
    pub own_client_id: String,
    /// calltone's own login (user, password), made fresh at each start.
    pub internal: (String, String),
}

impl EmbeddedAuth {
    /// Reads `config.embedded_users_file` (when set) and makes calltone's own login.
    pub fn for_config(config: &MqttConfig) -> Result<Option<Self>, String> {
        let Some(path) = &config.embedded_users_file else {
            return Ok(None);
        };
        let users = crate::security::read_user_file("mqtt.embedded_users_file", path)?;
        let mut secret = [0u8; 24];
        getrandom::fill(&mut secret)
            .map_err(|e| format!("no randomness for the broker login: {e}"))?;
        let password: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Some(Self {
            users,
            own_client_id: config.own_client_id(),
            internal: ("calltone-internal".into(), password),
        }))
    }

    /// The broker's decision on one login.
    pub fn allows(&self, client_id: &str, user: &str, password: &str) -> bool {
        if user == self.internal.0 {
            return subtle_eq(password.as_bytes(), self.internal.1.as_bytes());
        }
        if client_id == self.own_client_id {
            return false;
        }
        let d: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(password.as_bytes()).into();
        self.users
            .iter()
            .any(|(u, digest)| u == user && subtle_eq(digest, &d))
    }
}

/// Constant-time comparison of two byte strings of equal length (digests, secrets).
fn subtle_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A running embedded broker.
#[derive(Debug)]
pub struct EmbeddedBroker {
    addr: SocketAddr,
    login: Option<(String, String)>,
}

impl EmbeddedBroker {
    /// Starts the broker on `addr` and returns once it accepts connections. Fails with a
    /// clear message when the port is taken. Port 0 picks a free port (see [`Self::addr`]).
    pub fn start(addr: SocketAddr) -> Result<Self, BrokerError> {
        Self::start_with_auth(addr, None)
    }

    /// [`Self::start`] with logins checked by `auth` (none: open).
    pub fn start_with_auth(
        addr: SocketAddr,
        auth: Option<EmbeddedAuth>,
    ) -> Result<Self, BrokerError> {
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

        let login = auth.as_ref().map(|a| a.internal.clone());
        let mut broker = Broker::new(broker_config(addr, auth));
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
            if mqtt_handshake(addr, login.as_ref()).is_ok() {
                tracing::info!(%addr, authenticated = login.is_some(), "embedded MQTT broker listening");
                return Ok(Self { addr, login });
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
            Ok(BrokerTarget::Embedded(addr)) => {
                let auth = EmbeddedAuth::for_config(config)
                    .map_err(|reason| BrokerError::Start { addr, reason })?;
                Self::start_with_auth(addr, auth).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// The login calltone's own client uses (with `mqtt.embedded_users_file`).
    pub fn login(&self) -> Option<&(String, String)> {
        self.login.as_ref()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Connects as an MQTT 3.1.1 client, expects a successful CONNACK and disconnects cleanly
/// (a bare TCP probe would make rumqttd log an error).
fn mqtt_handshake(addr: SocketAddr, login: Option<&(String, String)>) -> std::io::Result<()> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    s.set_read_timeout(Some(Duration::from_millis(500)))?;
    let id = b"calltone-probe";
    // Variable header: protocol name, level 4, flags (clean session; user and password when
    // logging in), keep-alive 10 s.
    let flags = if login.is_some() { 0xc2 } else { 0x02 };
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, flags, 0, 10];
    let mut field = |b: &[u8]| {
        body.extend_from_slice(&(b.len() as u16).to_be_bytes());
        body.extend_from_slice(b);
    };
    field(id);
    if let Some((user, password)) = login {
        field(user.as_bytes());
        field(password.as_bytes());
    }
    let mut connect = vec![0x10, body.len() as u8];
    connect.extend_from_slice(&body);
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

fn broker_config(addr: SocketAddr, auth: Option<EmbeddedAuth>) -> Config {
    let mut connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: 1 << 20,
        max_inflight_count: 200,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    if let Some(auth) = auth {
        let auth = std::sync::Arc::new(auth);
        connections.set_auth_handler(move |client_id: String, user: String, password: String| {
            let ok = auth.allows(&client_id, &user, &password);
            if !ok {
                tracing::warn!(client_id = %client_id.escape_debug(), user = %user.escape_debug(), reason = "unauthorized", "embedded broker: login refused");
            }
            std::future::ready(ok)
        });
    }
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
