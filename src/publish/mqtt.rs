//! MQTT sink: publishes events on the contract's topics with rumqttc, QoS 1 events through the
//! durable [`Outbox`].
//!
//! Topics (`{base}` = `{prefix}/{site}/{box}`):
//! * `{base}/status` — retained `{"state":"online",…}` on every connect; the Last Will (and a
//!   graceful shutdown) leaves retained `{"state":"offline",…}`.
//! * `{base}/calls/{call_id}/lifecycle` — `call_started`, `call_ended` (QoS 1).
//! * `{base}/calls/{call_id}/utterance`, `…/alert`, `…/empathy`, `…/assist` — QoS 1.
//! * `{base}/calls/{call_id}/context` — the hand-off context, retained QoS 0 like `state`,
//!   cleared the same way when the call ends.
//! * `{base}/calls/{call_id}/state` — retained QoS 0, best effort; cleared with an empty
//!   retained payload when the call ends (that clear goes through the outbox at QoS 1, in
//!   its reserve, so a stale state never outlives an outage; when even the reserve is full
//!   it goes out retained at QoS 0 on the next connect instead).
//!
//! Design:
//! * Input is [`MqttHandle::publish`], a synchronous call: a QoS 1 event is appended to the
//!   outbox before it returns, so nothing is lost between the event bus and the disk, and
//!   there is no in-memory queue to overflow. State updates are coalesced per call (only the
//!   latest unsent one is kept). [`forward_from_bus`] adapts a `broadcast::Receiver<Event>`;
//!   a subscriber that lags behind a broadcast channel loses events, which that function
//!   counts (`calltone_bus_lagged_total{subscriber="mqtt"}`) and logs — give the bus enough
//!   capacity, or call `publish` from the producer directly.
//! * One task owns the outbox cursor and the send window; another polls the rumqttc
//!   `EventLoop` and reports `ConnAck`, `Outgoing::Publish(pkid)`, `PubAck(pkid)` and errors.
//!   Requests reach the event loop in order, so the n-th `Outgoing::Publish` belongs to the
//!   n-th request; that FIFO maps each pkid to its outbox entry, and an entry is acknowledged
//!   in the outbox only on the PUBACK for its pkid. At most `inflight` QoS 1 entries are
//!   outstanding (below rumqttc's own pkid space, so pkids never collide).
//! * Clean session: the outbox, not the broker session, is the durability. On an error the
//!   poller waits until the sink has forgotten the session's in-flight map, drops whatever
//!   rumqttc still holds for the old session, backs off (exponential from
//!   `reconnect_min_ms` to `reconnect_max_ms`, jitter ×0.5–1.0) and reconnects; the sink then
//!   resends every unacknowledged entry in outbox order. Consumers de-duplicate by `event_id`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rumqttc::{
    AsyncClient, ConnectionError, Event as MqttEvent, EventLoop, LastWill, MqttOptions, MqttState,
    Outgoing, Packet, QoS, TlsConfiguration, Transport,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::outbox::{Outbox, OutboxError, SetAside};
use crate::events::{Event, EventBody};
use crate::metrics::Metrics;

/// MQTT settings (`[mqtt]` in the config file).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// Broker: `embedded` (start the in-process broker on `embedded_listen` and publish to
    /// it), `mqtt://host[:port]` (port 1883 by default) or `mqtts://host[:port]` (TLS, 8883).
    /// Default `embedded`.
    pub url: String,
    /// Where the embedded broker listens. Default `127.0.0.1:1883`. Anything but loopback
    /// needs `embedded_users_file`.
    pub embedded_listen: SocketAddr,
    /// Users of the embedded broker: `user:sha256hex(password)` lines. With it every client
    /// must log in as one of them, and calltone's own client id is reserved for calltone
    /// (it logs in with a secret made at each start). Default: none (open, loopback only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedded_users_file: Option<PathBuf>,
    /// First topic level. Default `calltone`.
    pub prefix: String,
    /// Second topic level. Default `site1`.
    pub site: String,
    /// Third topic level. Default: this machine's host name.
    #[serde(rename = "box")]
    pub box_id: String,
    /// MQTT client id. Default `calltone-{site}-{box}`.
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// PEM file with the CA certificate(s) for `mqtts://`; default: the system roots.
    pub ca_file: Option<PathBuf>,
    /// Keep-alive interval, seconds. Default 30.
    pub keep_alive_s: u64,
    /// Outbox bound on disk, bytes. Default 256 MiB.
    pub outbox_max_bytes: u64,
    /// QoS 1 entries outstanding (sent, not yet PUBACKed) at once. Default 16.
    pub inflight: u16,
    /// First reconnect delay, milliseconds. Default 250.
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay, milliseconds. Default 30000.
    pub reconnect_max_ms: u64,
    /// Largest MQTT packet sent or received, bytes. Default 1 MiB.
    pub max_packet_bytes: usize,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            url: "embedded".into(),
            embedded_listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            embedded_users_file: None,
            prefix: "calltone".into(),
            site: "site1".into(),
            box_id: default_box_id(),
            client_id: None,
            username: None,
            password: None,
            ca_file: None,
            keep_alive_s: 30,
            outbox_max_bytes: 256 << 20,
            inflight: 16,
            reconnect_min_ms: 250,
            reconnect_max_ms: 30_000,
            max_packet_bytes: 1 << 20,
        }
    }
}

/// The host name, made safe as a topic level; `box1` if unknown.
pub fn default_box_id() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let id = topic_level(raw.trim());
    if id.is_empty() {
        "box1".into()
    } else {
        id
    }
}

/// Replaces characters that are not allowed (or not wise) in one MQTT topic level.
pub fn topic_level(s: &str) -> String {
    s.chars()
        .map(|c| {
            if matches!(c, '/' | '+' | '#') || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Where the sink connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerTarget {
    /// The in-process broker (start it with [`super::broker::EmbeddedBroker::start`]).
    Embedded(SocketAddr),
    Tcp {
        host: String,
        port: u16,
    },
    Tls {
        host: String,
        port: u16,
    },
}

impl MqttConfig {
    /// Checks values; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        self.target()?;
        for (key, v) in [
            ("mqtt.prefix", &self.prefix),
            ("mqtt.site", &self.site),
            ("mqtt.box", &self.box_id),
        ] {
            if v.is_empty() || topic_level(v) != *v {
                return Err(format!(
                    "{key} {v:?} must be a non-empty topic level without '/', '+', '#'"
                ));
            }
        }
        if self.inflight == 0 || self.inflight > 1000 {
            return Err("mqtt.inflight must be in 1..=1000".into());
        }
        if self.reconnect_min_ms == 0 || self.reconnect_max_ms < self.reconnect_min_ms {
            return Err("mqtt.reconnect_min_ms must be > 0 and <= mqtt.reconnect_max_ms".into());
        }
        if self.outbox_max_bytes < 64 * 1024 {
            return Err("mqtt.outbox_max_bytes must be at least 65536".into());
        }
        if self.password.is_some() && self.username.is_none() {
            return Err("mqtt.password needs mqtt.username".into());
        }
        if self.url == "embedded"
            && !self.embedded_listen.ip().is_loopback()
            && self.embedded_users_file.is_none()
        {
            return Err(format!(
                "mqtt.embedded_listen {} is not loopback: set mqtt.embedded_users_file (the broker's users) or bind 127.0.0.1",
                self.embedded_listen
            ));
        }
        Ok(())
    }

    /// Whether a username and password would cross the network in clear: plain `mqtt://`
    /// to a host that is not loopback.
    pub fn credentials_in_clear(&self) -> bool {
        match self.target() {
            Ok(BrokerTarget::Tcp { host, .. }) => {
                self.username.is_some() && !crate::security::is_loopback(&format!("{host}:0"))
            }
            _ => false,
        }
    }

    /// calltone's MQTT client id (`client_id`, default `calltone-{site}-{box}`).
    pub fn own_client_id(&self) -> String {
        self.client_id
            .clone()
            .unwrap_or_else(|| format!("calltone-{}-{}", self.site, self.box_id))
    }

    /// Parses `url`. Refused, with a message naming `mqtt.url` that never repeats a
    /// password: surrounding or inner whitespace (`"embedded "` would otherwise be taken for
    /// a broker host), a user name or password in the URL (they belong in `mqtt.username`
    /// and `mqtt.password`), a path, query or fragment, and port 0.
    pub fn target(&self) -> Result<BrokerTarget, String> {
        let url = self.url.as_str();
        if url.contains('@') {
            return Err("mqtt.url: a user name or password in the URL is not supported; set mqtt.username and mqtt.password".into());
        }
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "mqtt.url {url:?}: contains whitespace; expected embedded, mqtt://host:port or mqtts://host:port"
            ));
        }
        if url == "embedded" {
            return Ok(BrokerTarget::Embedded(self.embedded_listen));
        }
        let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("mqtt://") {
            (false, r)
        } else {
            return Err(format!(
                "mqtt.url {url:?}: expected embedded, mqtt://host:port or mqtts://host:port"
            ));
        };
        if rest.contains(['?', '#']) {
            return Err(format!(
                "mqtt.url {url:?}: a query or fragment is not supported; expected mqtt://host:port"
            ));
        }
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let default_port = if tls { 8883 } else { 1883 };
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("mqtt.url {url:?}: unclosed '['"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p
                    .parse()
                    .map_err(|_| format!("mqtt.url {url:?}: bad port"))?,
                None if after.is_empty() => default_port,
                None => return Err(format!("mqtt.url {url:?}: bad host")),
            };
            (h.to_string(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (
                    h.to_string(),
                    p.parse()
                        .map_err(|_| format!("mqtt.url {url:?}: bad port {p:?}"))?,
                ),
                None => (rest.to_string(), default_port),
            }
        };
        if host.is_empty()
            || host.contains(['/', '[', ']'])
            || (!url.contains('[') && host.contains(':'))
        {
            return Err(format!("mqtt.url {url:?}: bad host"));
        }
        if port == 0 {
            return Err(format!("mqtt.url {url:?}: port 0 is not a broker's port"));
        }
        Ok(if tls {
            BrokerTarget::Tls { host, port }
        } else {
            BrokerTarget::Tcp { host, port }
        })
    }

    /// `host:port` of the broker, for logs (never credentials).
    pub fn shown_target(&self) -> String {
        match self.target() {
            Ok(BrokerTarget::Embedded(a)) => format!("embedded {a}"),
            Ok(BrokerTarget::Tcp { host, port }) => format!("mqtt://{host}:{port}"),
            Ok(BrokerTarget::Tls { host, port }) => format!("mqtts://{host}:{port}"),
            Err(_) => "(invalid mqtt.url)".into(),
        }
    }

    fn base_topic(&self) -> String {
        format!("{}/{}/{}", self.prefix, self.site, self.box_id)
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MqttError {
    #[error("{0}")]
    Config(String),
    #[error("mqtt TLS: {0}")]
    Tls(String),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The outbox refused the event (full, or a disk error); it is not queued.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// The event's MQTT packet would exceed `mqtt.max_packet_bytes`: it is refused here,
    /// counted in `calltone_mqtt_events_refused_total{reason="oversize"}`, never queued.
    #[error(
        "event {event_id}: MQTT packet of {bytes} bytes exceeds mqtt.max_packet_bytes {limit}"
    )]
    Oversize {
        event_id: String,
        bytes: usize,
        limit: usize,
    },
    #[error("event {event_id} could not be serialised: {source}")]
    Json {
        event_id: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Topic names of one box.
#[derive(Debug, Clone)]
pub struct Topics {
    base: String,
}

impl Topics {
    pub fn status(&self) -> String {
        format!("{}/status", self.base)
    }
    /// `kind`: `lifecycle`, `utterance`, `alert`, `empathy`, `assist`, `state`, `context`.
    pub fn call(&self, call_id: &str, kind: &str) -> String {
        format!("{}/calls/{}/{kind}", self.base, topic_level(call_id))
    }
}

struct Shared {
    outbox: Mutex<Outbox>,
    /// Latest unsent state payload per state topic.
    states: Mutex<BTreeMap<String, Vec<u8>>>,
    wake: Notify,
    connected: AtomicBool,
    metrics: Arc<Metrics>,
    topics: Topics,
    refusals: AtomicU64,
    /// What the last append found: [`OUTBOX_OK`], [`OUTBOX_FULL`] or [`OUTBOX_WRITE_ERROR`].
    outbox_state: std::sync::atomic::AtomicU8,
    max_packet_bytes: usize,
    /// Where outbox entries the broker keeps refusing are set aside for inspection.
    set_aside_dir: PathBuf,
}

const OUTBOX_OK: u8 = 0;
const OUTBOX_FULL: u8 = 1;
const OUTBOX_WRITE_ERROR: u8 = 2;

/// Retained payloads (latest states and contexts of open calls, clears of ended calls that
/// found no room in the outbox) kept for the next connect at most.
const MAX_PENDING_RETAINED: usize = 16_384;

/// Connections an outbox entry may see lost while it was the only one in flight before it
/// is set aside (the broker evidently refuses it: a packet over its own limit, a topic it
/// disconnects for).
const MAX_FAILED_DELIVERIES: u32 = 3;

/// Size of the PUBLISH packet for `topic` and `payload` at QoS 1: fixed header (at most 5
/// bytes), topic length prefix, topic, packet id, payload.
fn publish_packet_bytes(topic: &str, payload: &[u8]) -> usize {
    5 + 2 + topic.len() + 2 + payload.len()
}

impl Shared {
    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        // A panic while holding the lock leaves the outbox consistent on disk; keep going.
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update_gauges(&self, ob: &Outbox) {
        self.metrics.outbox_depth.set(ob.depth() as f64);
        self.metrics.outbox_bytes.set(ob.bytes() as f64);
    }
}

/// Cheap, cloneable input side of the sink.
#[derive(Clone)]
pub struct MqttHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MqttHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttHandle")
            .field("connected", &self.is_connected())
            .finish()
    }
}

impl MqttHandle {
    /// Queues an event for its topic. QoS 1 events are in the outbox file when this returns;
    /// state updates replace the call's previous unsent state. An `Err` means the event was
    /// refused (counted in `calltone_outbox_full_drops_total` and logged).
    pub fn publish(&self, ev: &Event) -> Result<(), PublishError> {
        let sh = &self.shared;
        let payload = serde_json::to_vec(ev).map_err(|source| PublishError::Json {
            event_id: ev.event_id.clone(),
            source,
        })?;
        let kind = match &ev.body {
            EventBody::State(_) => {
                let topic = sh.topics.call(&ev.call_id, "state");
                sh.states
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(topic, payload);
                sh.wake.notify_one();
                return Ok(());
            }
            EventBody::CallStarted(_) | EventBody::CallEnded(_) => "lifecycle",
            EventBody::Utterance(_) => "utterance",
            EventBody::Alert(_) => "alert",
            EventBody::Empathy(_) => "empathy",
            EventBody::Assist(_) => "assist",
        };
        let topic = sh.topics.call(&ev.call_id, kind);
        let bytes = publish_packet_bytes(&topic, &payload);
        if bytes > sh.max_packet_bytes {
            sh.metrics.mqtt_refused.with(&["oversize"]).inc();
            tracing::error!(call_id = %ev.call_id, event_id = %ev.event_id, bytes, limit = sh.max_packet_bytes, reason = "oversize", "mqtt: event larger than the packet limit; refused");
            return Err(PublishError::Oversize {
                event_id: ev.event_id.clone(),
                bytes,
                limit: sh.max_packet_bytes,
            });
        }
        let mut ob = sh.outbox();
        let r = if matches!(ev.body, EventBody::CallStarted(_) | EventBody::CallEnded(_)) {
            ob.append_reserved(&topic, &ev.event_id, &payload, 1, false)
        } else {
            ob.append(&topic, &ev.event_id, &payload, 1, false)
        }
        .map(|_| ());
        if matches!(ev.body, EventBody::CallEnded(_)) {
            // The call's retained topics (state, hand-off context) are cleared with it,
            // whether or not its `call_ended` found room: an unsent state must not be
            // published after the call ended, and the broker must not keep an old one.
            let mut states = sh.states.lock().unwrap_or_else(|e| e.into_inner());
            for kind in ["state", "context"] {
                let topic = sh.topics.call(&ev.call_id, kind);
                states.remove(&topic);
                let id = format!("{}:{kind}-clear", ev.event_id);
                if ob.append_reserved(&topic, &id, b"", 1, true).is_ok() {
                    continue;
                }
                // No room even in the reserve: the clear goes out with the states on the
                // next connect (retained, empty, QoS 0), from a bounded map.
                if states.len() < MAX_PENDING_RETAINED {
                    states.insert(topic, Vec::new());
                } else {
                    sh.metrics.mqtt_state_dropped.inc();
                    tracing::error!(call_id = %ev.call_id, topic = %topic, "mqtt: outbox full and too many pending clears; this retained topic is not cleared");
                }
            }
        }
        sh.update_gauges(&ob);
        drop(ob);
        sh.wake.notify_one();
        let state = match &r {
            Ok(()) => OUTBOX_OK,
            Err(OutboxError::Full { .. }) => OUTBOX_FULL,
            Err(OutboxError::Io { .. }) => OUTBOX_WRITE_ERROR,
            Err(_) => sh.outbox_state.load(Ordering::Relaxed),
        };
        sh.outbox_state.store(state, Ordering::Relaxed);
        if let Err(e) = &r {
            match e {
                OutboxError::Full { .. } => sh.metrics.outbox_full_drops.inc(),
                // A full or read-only disk: the service goes on, the event is lost and counted.
                OutboxError::Io { .. } => sh.metrics.mqtt_refused.with(&["write_error"]).inc(),
                _ => {}
            }
            let n = sh.refusals.fetch_add(1, Ordering::Relaxed);
            // Every refusal is counted; the log is rate-limited so a long outage can't flood it.
            if n < 10 || n % 1000 == 0 {
                tracing::error!(call_id = %ev.call_id, event_id = %ev.event_id, error = %e, refused_so_far = n + 1, "mqtt: event not queued");
            }
        }
        r.map_err(PublishError::from)
    }

    /// Publishes a call's hand-off context retained on `…/calls/{call_id}/context` (QoS 0,
    /// best effort like `state`: only the latest unsent one is kept; `call_ended` clears it
    /// through the outbox).
    pub fn publish_context(
        &self,
        call_id: &str,
        ctx: &crate::context::HandoffContext,
    ) -> Result<(), PublishError> {
        let sh = &self.shared;
        let payload = serde_json::to_vec(ctx).map_err(|source| PublishError::Json {
            event_id: format!("{call_id}:context"),
            source,
        })?;
        let topic = sh.topics.call(call_id, "context");
        let bytes = publish_packet_bytes(&topic, &payload);
        if bytes > sh.max_packet_bytes {
            sh.metrics.mqtt_refused.with(&["oversize"]).inc();
            return Err(PublishError::Oversize {
                event_id: format!("{call_id}:context"),
                bytes,
                limit: sh.max_packet_bytes,
            });
        }
        sh.states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(topic, payload);
        sh.wake.notify_one();
        Ok(())
    }

    /// Whether the client is connected to the broker now.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Relaxed)
    }

    /// `ok`, `full` (the bound is reached: new events are refused) or `write_error` (the disk
    /// refused the last write: full or read-only), as of the last event queued.
    pub fn outbox_state(&self) -> &'static str {
        match self.shared.outbox_state.load(Ordering::Relaxed) {
            OUTBOX_FULL => "full",
            OUTBOX_WRITE_ERROR => "write_error",
            _ => "ok",
        }
    }

    /// Unacknowledged QoS 1 entries.
    pub fn outbox_depth(&self) -> usize {
        self.shared.outbox().depth()
    }

    /// Bytes of outbox segments on disk.
    pub fn outbox_bytes(&self) -> u64 {
        self.shared.outbox().bytes()
    }

    pub fn topics(&self) -> &Topics {
        &self.shared.topics
    }
}

/// Feeds events from the event bus into the sink until the bus closes (every sender
/// dropped) — deliberately not on a shutdown signal, so that the `call_ended` events emitted
/// while calls are being shut down still reach the outbox. Lagging (missed events) is
/// counted in `calltone_bus_lagged_total{subscriber="mqtt"}` and logged, never silent.
pub async fn forward_from_bus(mut rx: broadcast::Receiver<Event>, handle: MqttHandle) {
    let lagged = handle.shared.metrics.bus_lagged.with(&["mqtt"]);
    loop {
        match rx.recv().await {
            Ok(ev) => {
                // A refusal is counted and logged by `publish`.
                let _ = handle.publish(&ev);
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                lagged.add(n);
                tracing::error!(
                    missed = n,
                    "mqtt: event bus subscriber lagged; events lost before the outbox"
                );
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// The running sink: the outbox owner task plus the rumqttc event-loop poller.
pub struct MqttSink {
    handle: MqttHandle,
    stop: CancellationToken,
    grace: Arc<Mutex<Duration>>,
    task: Option<JoinHandle<()>>,
}

impl MqttSink {
    /// Opens the outbox in `{data_dir}/outbox` and starts connecting to the configured broker
    /// (which, for `embedded`, the caller has started). Must run inside a tokio runtime.
    pub fn start(
        config: &MqttConfig,
        data_dir: &Path,
        metrics: Arc<Metrics>,
    ) -> Result<Self, MqttError> {
        config.validate().map_err(MqttError::Config)?;
        let outbox = Outbox::open(data_dir.join("outbox"), config.outbox_max_bytes)?;
        metrics.outbox_truncations.add(outbox.truncations());
        let (kept, not_kept) = outbox.corrupt_at_open();
        metrics.mqtt_refused.with(&["corrupt"]).add(kept);
        metrics
            .mqtt_refused
            .with(&["corrupt_not_kept"])
            .add(not_kept);
        metrics.outbox_max_bytes.set(config.outbox_max_bytes as f64);
        let topics = Topics {
            base: config.base_topic(),
        };
        let options = mqtt_options(config, &topics)?;
        let (client, eventloop) = AsyncClient::new(options, 1024);
        let shared = Arc::new(Shared {
            outbox: Mutex::new(outbox),
            states: Mutex::new(BTreeMap::new()),
            wake: Notify::new(),
            connected: AtomicBool::new(false),
            metrics,
            topics,
            refusals: AtomicU64::new(0),
            outbox_state: std::sync::atomic::AtomicU8::new(OUTBOX_OK),
            max_packet_bytes: config.max_packet_bytes,
            set_aside_dir: data_dir.join("outbox-set-aside"),
        });
        shared.update_gauges(&shared.outbox());
        let stop = CancellationToken::new();
        let (notice_tx, notice_rx) = mpsc::channel(1024);
        let (resume_tx, resume_rx) = mpsc::channel(1);
        let backoff = Backoff {
            min: Duration::from_millis(config.reconnect_min_ms),
            max: Duration::from_millis(config.reconnect_max_ms),
        };
        // Independent of `stop`: the poller must keep running while the sink shuts down gracefully.
        let poller_stop = CancellationToken::new();
        let poller = tokio::spawn(poll_eventloop(
            eventloop,
            notice_tx,
            resume_rx,
            backoff,
            poller_stop.clone(),
        ));
        let grace = Arc::new(Mutex::new(Duration::ZERO));
        let task = SinkTask {
            shared: shared.clone(),
            target: config.shown_target(),
            outage: None,
            client,
            notices: notice_rx,
            resume: resume_tx,
            connected: false,
            fifo: VecDeque::new(),
            offline_pkid: None,
            inflight: HashMap::new(),
            outstanding: 0,
            last_sent: None,
            window: config.inflight as usize,
            failed: HashMap::new(),
            online: status_payload(config, "online"),
            offline: status_payload(config, "offline"),
        };
        let task = tokio::spawn(task.run(stop.clone(), grace.clone(), poller, poller_stop));
        Ok(Self {
            handle: MqttHandle { shared },
            stop,
            grace,
            task: Some(task),
        })
    }

    pub fn handle(&self) -> MqttHandle {
        self.handle.clone()
    }

    /// Stops the sink: waits up to `grace` for queued QoS 1 entries to be acknowledged,
    /// publishes the retained offline status, persists the outbox cursor and disconnects.
    /// Entries still unacknowledged stay in the outbox for the next start.
    pub async fn shutdown(mut self, grace: Duration) {
        *self.grace.lock().unwrap_or_else(|e| e.into_inner()) = grace;
        self.stop.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for MqttSink {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn status_payload(config: &MqttConfig, state: &str) -> Vec<u8> {
    serde_json::json!({
        "state": state,
        "site": config.site,
        "box": config.box_id,
        "version": env!("CARGO_PKG_VERSION"),
        "ts": crate::events::now_rfc3339(),
    })
    .to_string()
    .into_bytes()
}

fn mqtt_options(config: &MqttConfig, topics: &Topics) -> Result<MqttOptions, MqttError> {
    let target = config.target().map_err(MqttError::Config)?;
    let (host, port, tls) = match target {
        BrokerTarget::Embedded(addr) => (addr.ip().to_string(), addr.port(), false),
        BrokerTarget::Tcp { host, port } => (host, port, false),
        BrokerTarget::Tls { host, port } => (host, port, true),
    };
    let client_id = config.own_client_id();
    let mut o = MqttOptions::new(client_id, host, port);
    o.set_keep_alive(Duration::from_secs(config.keep_alive_s.max(5)));
    o.set_clean_session(true);
    // rumqttc's own pkid space is twice our window so pkids are never reused while pending.
    o.set_inflight(config.inflight.saturating_mul(2).max(2));
    o.set_max_packet_size(config.max_packet_bytes, config.max_packet_bytes);
    o.set_last_will(LastWill::new(
        topics.status(),
        status_payload(config, "offline"),
        QoS::AtLeastOnce,
        true,
    ));
    if let Some(user) = &config.username {
        o.set_credentials(user.clone(), config.password.clone().unwrap_or_default());
    }
    if tls {
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(tls_config(config.ca_file.as_deref())?),
        )));
    }
    Ok(o)
}

/// rustls client config on the `ring` provider (aws-lc stays out of the build), with the CA
/// file's certificates or the system roots.
fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, MqttError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // Also make ring the process default, for any rustls user that does not pass a provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let file = std::fs::File::open(path)
                .map_err(|e| MqttError::Tls(format!("mqtt.ca_file {}: {e}", path.display())))?;
            let mut rd = std::io::BufReader::new(file);
            for cert in rustls_pemfile::certs(&mut rd) {
                let cert = cert
                    .map_err(|e| MqttError::Tls(format!("mqtt.ca_file {}: {e}", path.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| MqttError::Tls(format!("mqtt.ca_file {}: {e}", path.display())))?;
            }
            if roots.is_empty() {
                return Err(MqttError::Tls(format!(
                    "mqtt.ca_file {}: no certificates found",
                    path.display()
                )));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(MqttError::Tls(
                    "no system CA certificates found; set mqtt.ca_file".into(),
                ));
            }
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MqttError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[derive(Debug, Clone, Copy)]
struct Backoff {
    min: Duration,
    max: Duration,
}

impl Backoff {
    fn delay(&self, attempt: u32) -> Duration {
        let exp = self.min.saturating_mul(1u32 << attempt.min(20));
        exp.min(self.max).mul_f64(0.5 + 0.5 * fastrand::f64())
    }
}

/// What the poller tells the sink.
#[derive(Debug)]
enum Notice {
    Up,
    Down(String),
    Sent(u16),
    Acked(u16),
}

async fn poll_eventloop(
    mut el: EventLoop,
    tx: mpsc::Sender<Notice>,
    mut resume: mpsc::Receiver<()>,
    backoff: Backoff,
    stop: CancellationToken,
) {
    let mut attempt = 0u32;
    let inflight = el.mqtt_options.inflight();
    loop {
        let ev = tokio::select! {
            _ = stop.cancelled() => return,
            ev = el.poll() => ev,
        };
        let notice = match ev {
            Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                attempt = 0;
                Notice::Up
            }
            Ok(MqttEvent::Incoming(Packet::PubAck(a))) => Notice::Acked(a.pkid),
            Ok(MqttEvent::Outgoing(Outgoing::Publish(pkid))) => Notice::Sent(pkid),
            Ok(_) => continue,
            Err(e) => {
                let graceful = matches!(e, ConnectionError::RequestsDone);
                if tx.send(Notice::Down(e.to_string())).await.is_err() || graceful {
                    return;
                }
                // Wait until the sink has dropped this session's in-flight map, then throw
                // away whatever rumqttc still holds for it: the sink resends from the outbox.
                tokio::select! {
                    _ = stop.cancelled() => return,
                    r = resume.recv() => if r.is_none() { return },
                }
                el.clean();
                el.pending.clear();
                // `clean()` keeps events parsed before the error (e.g. PUBACKs of the old
                // session) and the pkid counter; replayed after the reconnect they would ack
                // the wrong entries. A clean session needs a fresh state.
                el.state = MqttState::new(inflight, false);
                let delay = backoff.delay(attempt);
                attempt = attempt.saturating_add(1);
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                continue;
            }
        };
        if tx.send(notice).await.is_err() {
            return;
        }
    }
}

/// A publish request handed to the client, as the FIFO remembers it.
#[derive(Debug, Clone, Copy)]
enum Req {
    /// An outbox entry: acknowledged in the outbox on its PUBACK.
    Entry(u64),
    /// Online status and QoS 0 state: nothing to do on acknowledgement.
    Untracked,
    /// The offline status at shutdown: its PUBACK ends the shutdown wait.
    Offline,
}

/// A time without a broker connection, for the rate-limited connect-failure log.
#[derive(Debug)]
struct Outage {
    since: Instant,
    /// Connect attempts failed since.
    failures: u64,
    last_warned: Instant,
}

/// How often a continuing outage is logged (the first failure always is).
const CONNECT_WARN_INTERVAL: Duration = Duration::from_secs(60);

struct SinkTask {
    shared: Arc<Shared>,
    /// The broker as logs name it (no credentials).
    target: String,
    outage: Option<Outage>,
    client: AsyncClient,
    notices: mpsc::Receiver<Notice>,
    resume: mpsc::Sender<()>,
    connected: bool,
    /// Requests handed to the client, in order, awaiting their `Outgoing::Publish(pkid)`.
    fifo: VecDeque<Req>,
    /// pkid of the offline status published at shutdown.
    offline_pkid: Option<u16>,
    /// pkid → (outbox index, when it was handed to the client).
    inflight: HashMap<u16, (u64, Instant)>,
    /// Outbox entries handed to the client in this session and not yet acknowledged.
    outstanding: usize,
    /// The last outbox index handed to the client in this session.
    last_sent: Option<u64>,
    window: usize,
    /// Outbox index → connections lost while it was in flight (see [`MAX_FAILED_DELIVERIES`]).
    failed: HashMap<u64, u32>,
    online: Vec<u8>,
    offline: Vec<u8>,
}

impl SinkTask {
    async fn run(
        mut self,
        stop: CancellationToken,
        grace: Arc<Mutex<Duration>>,
        poller: JoinHandle<()>,
        poller_stop: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                n = self.notices.recv() => match n {
                    Some(n) => self.on_notice(n).await,
                    None => break,
                },
                _ = self.shared.wake.notified() => {}
                _ = tick.tick() => {
                    // Also while the broker is down: what was accepted reaches the disk
                    // within 250 ms whether or not it can be published.
                    if !self.connected {
                        self.sync_outbox().await;
                    }
                    self.persist_cursor().await
                }
            }
            self.pump().await;
        }
        let grace = *grace.lock().unwrap_or_else(|e| e.into_inner());
        self.stop(grace).await;
        poller_stop.cancel();
        let _ = poller.await;
    }

    async fn on_notice(&mut self, n: Notice) {
        match n {
            Notice::Up => {
                match self.outage.take() {
                    Some(o) if o.failures > 0 => tracing::info!(
                        broker = %self.target,
                        failed_attempts = o.failures,
                        down_s = o.since.elapsed().as_secs(),
                        "mqtt: connected again"
                    ),
                    _ => tracing::info!(broker = %self.target, "mqtt: connected"),
                }
                self.connected = true;
                self.shared.connected.store(true, Ordering::Relaxed);
                self.shared.metrics.mqtt_connected.set(1.0);
                self.fifo.clear();
                self.inflight.clear();
                self.outstanding = 0;
                self.last_sent = None;
                let status = self.shared.topics.status();
                if self
                    .client
                    .try_publish(status, QoS::AtLeastOnce, true, self.online.clone())
                    .is_ok()
                {
                    self.fifo.push_back(Req::Untracked);
                }
            }
            Notice::Down(err) => {
                if self.connected {
                    // The oldest entry in flight when an established connection is lost is
                    // the suspect; it then goes out alone until acknowledged, so a second
                    // loss pins it down.
                    if let Some(&(index, _)) = self.inflight.values().min_by_key(|(i, _)| *i) {
                        *self.failed.entry(index).or_default() += 1;
                    }
                    tracing::warn!(broker = %self.target, error = %err, "mqtt: connection lost; will reconnect and resend unacknowledged events");
                    self.shared.metrics.mqtt_disconnects.inc();
                    self.outage = Some(Outage {
                        since: Instant::now(),
                        failures: 0,
                        last_warned: Instant::now(),
                    });
                } else {
                    self.shared.metrics.mqtt_disconnects.inc();
                    // Visible in the default log: the first failure of an outage, then one
                    // line a minute with the count, so a dead broker or a wrong mqtt.url
                    // shows without flooding the log.
                    match &mut self.outage {
                        None => {
                            tracing::warn!(broker = %self.target, error = %err, "mqtt: cannot connect to the broker; events wait in the outbox, retrying");
                            self.outage = Some(Outage {
                                since: Instant::now(),
                                failures: 1,
                                last_warned: Instant::now(),
                            });
                        }
                        Some(o) => {
                            o.failures += 1;
                            if o.last_warned.elapsed() >= CONNECT_WARN_INTERVAL {
                                o.last_warned = Instant::now();
                                tracing::warn!(broker = %self.target, error = %err, failed_attempts = o.failures, down_s = o.since.elapsed().as_secs(), "mqtt: still cannot connect to the broker; events wait in the outbox");
                            } else {
                                tracing::debug!(error = %err, "mqtt: connect failed");
                            }
                        }
                    }
                }
                self.connected = false;
                self.shared.connected.store(false, Ordering::Relaxed);
                self.shared.metrics.mqtt_connected.set(0.0);
                self.fifo.clear();
                self.inflight.clear();
                self.outstanding = 0;
                self.last_sent = None;
                let _ = self.resume.send(()).await;
            }
            Notice::Sent(pkid) => match self.fifo.pop_front() {
                Some(Req::Entry(index)) if pkid != 0 => {
                    self.inflight.insert(pkid, (index, Instant::now()));
                }
                Some(Req::Offline) => self.offline_pkid = Some(pkid),
                Some(_) => {}
                None => tracing::debug!(pkid, "mqtt: publish not issued by the sink"),
            },
            Notice::Acked(pkid) => {
                if let Some((index, sent)) = self.inflight.remove(&pkid) {
                    self.outstanding = self.outstanding.saturating_sub(1);
                    self.failed.remove(&index);
                    self.shared
                        .metrics
                        .mqtt_publish_latency
                        .observe(sent.elapsed().as_secs_f64());
                    let mut ob = self.shared.outbox();
                    if let Err(e) = ob.ack(index) {
                        tracing::error!(error = %e, "mqtt: outbox ack failed");
                    }
                    self.shared.update_gauges(&ob);
                }
            }
        }
    }

    /// Hands queued work to the client: fsync new outbox records (group commit), then the
    /// latest state per call, then outbox entries in order up to the window.
    async fn pump(&mut self) {
        if !self.connected {
            return;
        }
        self.sync_outbox().await;
        let states =
            std::mem::take(&mut *self.shared.states.lock().unwrap_or_else(|e| e.into_inner()));
        for (topic, payload) in states {
            match self
                .client
                .try_publish(topic, QoS::AtMostOnce, true, payload)
            {
                Ok(()) => self.fifo.push_back(Req::Untracked),
                Err(_) => self.shared.metrics.mqtt_state_dropped.inc(),
            }
        }
        loop {
            let shared = self.shared.clone();
            let mut ob = shared.outbox();
            let Some(index) = ob.next_pending_after(self.last_sent) else {
                break;
            };
            // Appended after the last fsync began: sent after the next one (the append
            // woke this task, so that is soon).
            if index >= ob.synced_below() {
                break;
            }
            // A suspect entry (lost with a connection before) goes out alone.
            let suspect = ob
                .next_pending_after(None)
                .is_some_and(|head| self.failed.contains_key(&head));
            let window = if suspect { 1 } else { self.window };
            if self.outstanding >= window {
                break;
            }
            if self.failed.get(&index).copied().unwrap_or(0) >= MAX_FAILED_DELIVERIES {
                self.set_aside(&mut ob, index);
                continue;
            }
            let entry = match ob.read(index) {
                Ok(e) => e,
                Err(e) => {
                    // Unreadable on disk: nothing can ever send it. Its raw bytes are kept
                    // for the operator, and delivery goes on past it.
                    self.set_aside_corrupt(&mut ob, index, &e);
                    continue;
                }
            };
            drop(ob);
            let qos = if entry.qos == 0 {
                QoS::AtMostOnce
            } else {
                QoS::AtLeastOnce
            };
            match self
                .client
                .try_publish(entry.topic, qos, entry.retain, entry.payload)
            {
                Ok(()) => {
                    self.fifo.push_back(Req::Entry(index));
                    self.last_sent = Some(index);
                    self.outstanding += 1;
                    self.shared.metrics.mqtt_published.inc();
                }
                Err(_) => break, // request channel full: retried on the next notice
            }
        }
    }

    /// Moves an entry the broker keeps refusing out of the delivery path: written to
    /// `{data_dir}/outbox-set-aside/{index}.json` for inspection, acknowledged in the outbox,
    /// logged and counted (`calltone_mqtt_events_refused_total{reason="set_aside"}`).
    fn set_aside(&mut self, ob: &mut Outbox, index: u64) {
        self.failed.remove(&index);
        let kept = ob.read(index).map_err(|e| e.to_string()).and_then(|e| {
            let record = serde_json::json!({
                "index": index,
                "topic": e.topic,
                "qos": e.qos,
                "retain": e.retain,
                "payload": String::from_utf8_lossy(&e.payload),
            });
            let dir = &self.shared.set_aside_dir;
            super::outbox::create_private_dir(dir)
                .and_then(|()| {
                    super::outbox::write_private(
                        &dir.join(format!("{index}.json")),
                        record.to_string().as_bytes(),
                    )
                })
                .map_err(|e| e.to_string())
        });
        if let Err(e) = ob.ack(index) {
            tracing::error!(index, error = %e, "mqtt: outbox ack of a set-aside entry failed");
        }
        self.shared.update_gauges(ob);
        self.shared.metrics.mqtt_refused.with(&["set_aside"]).inc();
        match kept {
            Ok(()) => {
                tracing::error!(index, dir = %self.shared.set_aside_dir.display(), attempts = MAX_FAILED_DELIVERIES, reason = "set_aside", "mqtt: broker keeps refusing an outbox entry; set aside")
            }
            Err(e) => {
                tracing::error!(index, error = %e, reason = "set_aside", "mqtt: broker keeps refusing an outbox entry; set aside but not kept on disk")
            }
        }
    }

    /// Takes an unreadable outbox entry out of the queue, keeping its raw bytes in
    /// `{data_dir}/outbox/corrupt/` (see [`Outbox::set_aside_corrupt`]); logged and counted
    /// (`calltone_mqtt_events_refused_total{reason="corrupt"}`, or `corrupt_not_kept` when
    /// the bytes could not be kept).
    fn set_aside_corrupt(&self, ob: &mut Outbox, index: u64, error: &OutboxError) {
        match ob.set_aside_corrupt(index) {
            Ok(SetAside::Kept { path, bytes }) => {
                self.shared.metrics.mqtt_refused.with(&["corrupt"]).inc();
                tracing::error!(index, error = %error, path = %path.display(), bytes, reason = "corrupt", "mqtt: outbox entry unreadable; not sent, its raw bytes are kept for recovery");
            }
            Ok(SetAside::NotKept(why)) => {
                self.shared
                    .metrics
                    .mqtt_refused
                    .with(&["corrupt_not_kept"])
                    .inc();
                tracing::error!(index, error = %error, not_kept = %why, reason = "corrupt_not_kept", "mqtt: outbox entry unreadable; not sent and its bytes are NOT kept");
            }
            Err(e) => {
                tracing::error!(index, error = %e, "mqtt: outbox entry unreadable and not taken out of the queue");
            }
        }
        self.shared.update_gauges(ob);
    }

    /// fsyncs new outbox records (group commit), off the runtime threads and without the
    /// outbox lock: pipeline threads appending events never wait for the disk. Entries
    /// appended while the fsync runs are not covered; they wait for the next one before
    /// they are sent (see [`Outbox::synced_below`]).
    async fn sync_outbox(&self) {
        let job = match self.shared.outbox().begin_sync() {
            Ok(Some(job)) => job,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, "mqtt: outbox fsync failed");
                return;
            }
        };
        let sh = self.shared.clone();
        let synced = tokio::task::spawn_blocking(move || {
            let r = job.run();
            sh.outbox().finish_sync(job, r)
        })
        .await;
        if let Ok(Err(e)) = synced {
            tracing::error!(error = %e, "mqtt: outbox fsync failed");
        }
    }

    /// Persists the outbox cursor, like [`SinkTask::sync_outbox`] without the lock.
    async fn persist_cursor(&self) {
        let Some(w) = self.shared.outbox().cursor_to_persist() else {
            return;
        };
        let sh = self.shared.clone();
        let written = tokio::task::spawn_blocking(move || {
            w.run()?;
            sh.outbox().cursor_persisted(&w);
            Ok::<(), OutboxError>(())
        })
        .await;
        if let Ok(Err(e)) = written {
            tracing::error!(error = %e, "mqtt: outbox cursor not persisted");
        }
    }

    async fn stop(&mut self, grace: Duration) {
        tracing::debug!(?grace, connected = self.connected, "mqtt: stopping");
        let deadline = tokio::time::Instant::now() + grace;
        // Deliver what is queued, within the grace period.
        loop {
            self.pump().await;
            if !self.connected || self.shared.outbox().depth() == 0 {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                n = self.notices.recv() => match n {
                    Some(n) => self.on_notice(n).await,
                    None => break,
                },
                // Events appended while stopping (calls ending) go out with the rest.
                _ = self.shared.wake.notified() => {}
            }
        }
        if self.connected && !grace.is_zero() {
            let status = self.shared.topics.status();
            if self
                .client
                .try_publish(status, QoS::AtLeastOnce, true, self.offline.clone())
                .is_ok()
            {
                self.fifo.push_back(Req::Offline);
                // Wait briefly for its PUBACK so the offline status is really stored.
                let until = tokio::time::Instant::now() + Duration::from_millis(500).min(grace);
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep_until(until) => break,
                        n = self.notices.recv() => match n {
                            Some(Notice::Acked(p)) if Some(p) == self.offline_pkid => {
                                tracing::debug!(pkid = p, "mqtt: offline status acknowledged");
                                break;
                            }
                            Some(n) => self.on_notice(n).await,
                            None => break,
                        },
                    }
                }
            }
            // Let the poller put DISCONNECT on the wire (a clean disconnect suppresses the
            // Last Will) before it is stopped.
            if self.client.try_disconnect().is_ok() {
                let until = tokio::time::Instant::now() + Duration::from_millis(300);
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep_until(until) => {
                            tracing::debug!("mqtt: no disconnect confirmation");
                            break;
                        }
                        n = self.notices.recv() => match n {
                            Some(Notice::Down(_)) | None => break,
                            Some(_) => {}
                        },
                    }
                }
            }
        }
        self.persist_cursor().await;
        let ob = self.shared.outbox();
        if ob.depth() > 0 {
            tracing::info!(
                pending = ob.depth(),
                "mqtt: stopping with unacknowledged events; they are resent on the next start"
            );
        }
        self.shared.connected.store(false, Ordering::Relaxed);
        self.shared.metrics.mqtt_connected.set(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let mut c = MqttConfig::default();
        assert_eq!(
            c.target().unwrap(),
            BrokerTarget::Embedded("127.0.0.1:1883".parse().unwrap())
        );
        c.url = "mqtt://broker.local".into();
        assert_eq!(
            c.target().unwrap(),
            BrokerTarget::Tcp {
                host: "broker.local".into(),
                port: 1883
            }
        );
        c.url = "mqtts://10.0.0.1:8884".into();
        assert_eq!(
            c.target().unwrap(),
            BrokerTarget::Tls {
                host: "10.0.0.1".into(),
                port: 8884
            }
        );
        c.url = "mqtt://[::1]:1999".into();
        assert_eq!(
            c.target().unwrap(),
            BrokerTarget::Tcp {
                host: "::1".into(),
                port: 1999
            }
        );
        c.url = "http://x".into();
        assert!(c.target().is_err());
        c.url = "mqtt://x:notaport".into();
        assert!(c.target().is_err());
        c.url = "mqtt://broker.local/".into();
        assert!(c.target().is_ok());
        for bad in [
            "embedded ",
            " embedded",
            "mqtt://host :1883",
            "mqtt://user:s3cret@host:1883",
            "mqtt://host?x=1",
            "mqtt://host:1883#frag",
            "mqtt://host:0",
            "mqtt://host/path",
            "mqtt://a:b:1883",
        ] {
            c.url = bad.into();
            let e = c.target().unwrap_err();
            assert!(e.starts_with("mqtt.url"), "{bad}: {e}");
            assert!(!e.contains("s3cret"), "{bad}: {e}");
        }
    }

    #[test]
    fn validation_names_keys() {
        let mut c = MqttConfig::default();
        assert!(c.validate().is_ok(), "{:?}", c.validate());
        c.site = "a/b".into();
        assert!(c.validate().unwrap_err().contains("mqtt.site"));
    }

    #[test]
    fn topics_follow_contract() {
        let c = MqttConfig {
            site: "s".into(),
            box_id: "b".into(),
            ..Default::default()
        };
        let t = Topics {
            base: c.base_topic(),
        };
        assert_eq!(t.status(), "calltone/s/b/status");
        assert_eq!(t.call("CA1", "alert"), "calltone/s/b/calls/CA1/alert");
        assert_eq!(t.call("x/+#", "state"), "calltone/s/b/calls/x___/state");
    }

    #[test]
    fn backoff_is_capped_with_jitter() {
        let b = Backoff {
            min: Duration::from_millis(100),
            max: Duration::from_millis(1000),
        };
        for attempt in 0..40 {
            let d = b.delay(attempt);
            assert!(d <= Duration::from_millis(1000));
            assert!(d >= Duration::from_millis(50));
        }
        assert!(b.delay(30) >= Duration::from_millis(500));
    }

    #[test]
    fn tls_config_uses_ring_and_a_ca_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ca.pem");
        std::fs::write(&p, "not a cert").unwrap();
        assert!(tls_config(Some(&p)).is_err());
        assert!(tls_config(Some(&dir.path().join("missing.pem"))).is_err());
    }
}
