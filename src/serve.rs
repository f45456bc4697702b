//! `calltone serve`: the live service. Wires sources → call router → one task per call
//! (the [`CallPipeline`]) → sinks (MQTT with the durable outbox, the event bus for the HTTP
//! API), with the shared ASR pool on the side.
//!
//! Invariants:
//! * intake never waits for ASR: transcription requests go to the pool, which sheds the
//!   oldest waiting utterance when it falls behind, and transcripts come back to the call
//!   task on their own channel;
//! * every QoS 1 event is in the on-disk outbox before anything else sees it;
//! * a call that was open when the process died is ended (`restart_recovery`) on the next
//!   start, continuing its `seq`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::asr::pool::AsrPool;
use crate::asr::transcribe::{TranscribeOptions, WhisperModel};
use crate::audio::Speaker;
use crate::config::Config;
use crate::events::{now_rfc3339, CallEnded, CallSummary, Event, EventBody, EventStamper};
use crate::http::{serve_router, AppState, CallRegistry};
use crate::listener::GuardedListener;
use crate::metrics::Metrics;
use crate::pipeline::{Analyzers, CallPipeline, Output, TranscriptResult};
use crate::publish::broker::EmbeddedBroker;
use crate::publish::mqtt::{MqttHandle, MqttSink};
use crate::report::StressLevels;
use crate::security;
use crate::sources::ingest::{LegGuard, Pacing};
use crate::sources::legs::LegRegistry;
use crate::sources::CallEvent;

/// `[serve]`: listeners and state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Supervisor side: dashboard, `/api`, SSE, `/metrics`, `/healthz`.
    /// Default `127.0.0.1:8080`.
    pub http: SocketAddr,
    /// Media ingest: the `/media/twilio` and `/media/l16` WebSockets, on a listener of their
    /// own so the public ingest never exposes the supervisor side; empty string disables it.
    /// Default `127.0.0.1:8081`.
    pub media: String,
    /// Asterisk AudioSocket listener; empty string disables it. Default `127.0.0.1:9092`
    /// (AudioSocket has no authentication: bind it wider only with
    /// `audiosocket.allow_networks`).
    pub audiosocket: String,
    /// Outbox and open-call state. Default `/var/lib/calltone`.
    pub data_dir: PathBuf,
    /// On shutdown, how long to wait for open calls' transcripts and the outbox to drain,
    /// seconds. Default 10.
    pub shutdown_grace_s: f64,
    /// The retained hand-off context (`…/calls/{call_id}/context`) is republished at most
    /// this often while it changes, seconds. Default 3.
    pub context_interval_s: f64,
    /// TLS on both HTTP listeners (supervisor and media): a PEM certificate chain and its
    /// PEM private key (PKCS#8, PKCS#1 or SEC1). Both or neither; with them, the listeners
    /// speak only HTTPS / WSS. Default: none (plain HTTP, e.g. behind a TLS terminator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key_file: Option<PathBuf>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            http: SocketAddr::from(([127, 0, 0, 1], 8080)),
            media: "127.0.0.1:8081".into(),
            audiosocket: "127.0.0.1:9092".into(),
            data_dir: PathBuf::from("/var/lib/calltone"),
            shutdown_grace_s: 10.0,
            context_interval_s: 3.0,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

impl ServeConfig {
    /// Checks values; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.shutdown_grace_s.is_finite() && self.shutdown_grace_s >= 0.0) {
            return Err(format!(
                "serve.shutdown_grace_s {} must be a finite number >= 0",
                self.shutdown_grace_s
            ));
        }
        if !(self.context_interval_s.is_finite()
            && (0.5..=600.0).contains(&self.context_interval_s))
        {
            return Err(format!(
                "serve.context_interval_s {} must be 0.5..=600",
                self.context_interval_s
            ));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(
                "serve.data_dir is empty; name a directory (default /var/lib/calltone)".into(),
            );
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return Err("serve.tls_cert_file and serve.tls_key_file go together".into());
        }
        if self.media.trim() == self.audiosocket.trim() && !self.media.trim().is_empty() {
            return Err("serve.media and serve.audiosocket name the same address".into());
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error("{0}")]
    Setup(String),
    #[error("{addr}: cannot listen: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
}

/// Everything call tasks share.
struct Shared {
    /// The configuration the service started with (listeners, broker, ASR, limits).
    cfg: Config,
    /// What a new call is analysed with; SIGHUP replaces it (see [`reload`]).
    calls: std::sync::RwLock<Arc<CallSetup>>,
    pool: AsrPool,
    mqtt: Option<MqttHandle>,
    bus: broadcast::Sender<Event>,
    metrics: Arc<Metrics>,
    open_calls: OpenCalls,
    /// Live calls for the HTTP side; its hand-off context rules follow SIGHUP.
    registry: CallRegistry,
}

/// The configuration and analyzers a call runs with, fixed for the call's life.
struct CallSetup {
    cfg: Config,
    analyzers: Analyzers,
}

/// Re-reads the configuration (the file and the command line's overrides) on SIGHUP.
pub type Reload = Box<dyn Fn() -> Result<Config, String> + Send + Sync>;

/// Config sections SIGHUP applies to calls that start afterwards; the others (listeners,
/// broker, ASR, limits, ingest, device) need a restart.
pub const RELOADABLE: &[&str] = &[
    "vad",
    "prosody",
    "pipeline",
    "emotion",
    "redact",
    "alerts",
    "empathy",
    "scorecard",
    "assist",
];

/// Runs the service until `shutdown` is cancelled. Returns after a graceful drain.
pub async fn run(cfg: Config, shutdown: CancellationToken) -> Result<(), ServeError> {
    run_with_reload(cfg, None, shutdown).await
}

/// [`run`], re-reading the configuration with `reload` on SIGHUP.
pub async fn run_with_reload(
    cfg: Config,
    reload: Option<Reload>,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let setup = |what: &str, e: &dyn std::fmt::Display| ServeError::Setup(format!("{what}: {e}"));
    // Before anything reads or writes the outbox or the open-call records: one process per
    // data_dir. A second one (an operator running `calltone serve` by hand next to the
    // service) would otherwise append to the same segments and end the live calls.
    let _data_dir_lock = DataDirLock::acquire(&cfg.serve.data_dir)?;
    let metrics = Metrics::new();
    metrics.max_calls.set(cfg.security.max_calls as f64);

    // The model first: a missing or broken model is a setup error, before any socket opens.
    let model = WhisperModel::load(&cfg.asr.model).map_err(|e| setup("asr.model", &e))?;
    let mut opts = TranscribeOptions::default();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    // ggml's worker threads spin while they wait; on a box that is also doing intake and
    // prosody, one thread per ASR worker transcribes faster than two contending ones
    // (measured: jfk.wav 1.1 s with one thread vs 2.2–3.2 s with two on a busy 2-core box).
    opts.threads = if cfg.asr.threads > 0 {
        cfg.asr.threads
    } else {
        (cores / (cfg.asr.workers + 1)).max(1)
    };
    // Parsed by the transcriber: "" and "auto" detect.
    opts.language = Some(cfg.asr.language.clone());
    opts.initial_prompt = cfg.asr.initial_prompt.clone();
    let pool = AsrPool::start(&model, cfg.asr.workers, opts, cfg.asr.queue)
        .map_err(|e| setup("asr", &e))?;
    let analyzers = Analyzers::from_config(&cfg).map_err(|e| setup("emotion", &e))?;
    if cfg.pipeline.agent_emotion {
        tracing::warn!("emotion inference for agents is ON (pipeline.agent_emotion); make sure this is lawful where the box runs");
    }

    if cfg.mqtt.credentials_in_clear() {
        tracing::warn!(url = %cfg.mqtt.shown_target(), "mqtt.username and password go to a non-loopback broker over plain mqtt://; use mqtts://");
    }
    let mut mqtt_cfg = cfg.mqtt.clone();
    let embedded = matches!(
        cfg.mqtt.target(),
        Ok(crate::publish::mqtt::BrokerTarget::Embedded(_))
    );
    let _broker = if embedded {
        let b = EmbeddedBroker::for_config(&cfg.mqtt)
            .map_err(|e| ServeError::Setup(e.to_string()))?
            .ok_or_else(|| ServeError::Setup("mqtt.url embedded: no broker".into()))?;
        tracing::info!(addr = %b.addr(), "embedded MQTT broker started");
        // calltone's own login, when the broker has users (it never leaves the process).
        if let Some((user, password)) = b.login() {
            mqtt_cfg.username = Some(user.clone());
            mqtt_cfg.password = Some(password.clone());
        }
        Some(b)
    } else {
        None
    };
    let sink = MqttSink::start(&mqtt_cfg, &cfg.serve.data_dir, metrics.clone())
        .map_err(|e| setup("mqtt", &e))?;
    let mqtt = sink.handle();

    let (bus, _) = broadcast::channel::<Event>(4096);
    let registry = CallRegistry::new(metrics.clone());
    registry.set_context_rules(&cfg.alerts, cfg.empathy.agent_scoring);
    let stop_sources = CancellationToken::new();
    let mut background = JoinSet::new();
    background.spawn(registry.clone().follow(bus.subscribe(), shutdown.clone()));

    let open_calls = OpenCalls::new(cfg.serve.data_dir.join("calls"))
        .map_err(|e| setup("data_dir/calls", &e))?;
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        calls: std::sync::RwLock::new(Arc::new(CallSetup {
            cfg: cfg.clone(),
            analyzers,
        })),
        pool,
        mqtt: Some(mqtt.clone()),
        bus: bus.clone(),
        metrics: metrics.clone(),
        open_calls,
        registry: registry.clone(),
    });
    let (tx, rx) = mpsc::channel::<CallEvent>(1024);
    let sec = &cfg.security;
    let header_timeout = Duration::from_secs_f64(sec.http_header_timeout_s);
    let tls = match (&cfg.serve.tls_cert_file, &cfg.serve.tls_key_file) {
        (Some(cert), Some(key)) => Some(
            crate::listener::tls_acceptor(cert, key)
                .map_err(|e| setup("serve.tls_cert_file", &e))?,
        ),
        _ => None,
    };
    let guarded = |l: TcpListener, name: &'static str| {
        GuardedListener::new(l, name, sec.max_connections, header_timeout, &metrics)
            .with_tls(tls.clone())
    };
    let bind = |addr: String| async move {
        TcpListener::bind(&addr)
            .await
            .map_err(|source| ServeError::Listen { addr, source })
    };
    let http_listener = guarded(bind(cfg.serve.http.to_string()).await?, "http")
        .with_per_peer_cap(sec.http_max_connections_per_ip);
    // Every source shares one leg-ownership table, so no connection can take over a leg
    // another connection (of any source) owns.
    let guard = LegGuard {
        legs: LegRegistry::new(),
        pacing: Pacing::from_config(sec),
    };
    let media_addr = cfg.serve.media.trim().to_string();
    if !media_addr.is_empty() {
        let listener = guarded(bind(media_addr.clone()).await?, "media");
        let media_auth = crate::sources::media_stream::MediaAuth::from_config(&cfg.media_stream)
            .map_err(ServeError::Setup)?;
        let authenticated = media_auth.authenticated();
        let media = crate::sources::media_stream::router_with_auth(
            cfg.media_stream.clone(),
            media_auth,
            tx.clone(),
            metrics.clone(),
            guard.clone(),
            stop_sources.clone(),
        );
        security::warn_if_exposed("media", &media_addr, authenticated);
        background.spawn({
            let stop = stop_sources.clone();
            async move {
                if let Err(e) = serve_router(listener, media, stop).await {
                    tracing::error!(error = %e, "media server failed");
                }
            }
        });
    }
    let auth = security::SupervisorAuth::from_config(sec).map_err(ServeError::Setup)?;
    security::warn_if_exposed("http", &cfg.serve.http.to_string(), auth.enabled());
    let state = AppState::new(metrics.clone(), registry.clone(), Some(mqtt.clone()));
    let http_stop = CancellationToken::new();
    let dashboard = crate::dashboard::router(
        crate::dashboard::LiveFeed::new(
            bus.clone(),
            registry.clone(),
            StressLevels::from_rule(&cfg.alerts.customer_stress),
            metrics.clone(),
            http_stop.clone(),
        )
        .with_stream_limit(sec.max_sse_clients),
    );
    background.spawn({
        let stop = http_stop.clone();
        let metrics_http = metrics.clone();
        async move {
            let app = crate::http::with_auth(
                crate::http::router(state).merge(dashboard),
                auth,
                metrics_http,
            );
            if let Err(e) = serve_router(http_listener, app, stop).await {
                tracing::error!(error = %e, "http server failed");
            }
        }
    });
    if !cfg.serve.audiosocket.trim().is_empty() {
        let addr = cfg.serve.audiosocket.trim().to_string();
        let listener = bind(addr.clone()).await?;
        security::warn_if_exposed(
            "audiosocket",
            &addr,
            !cfg.audiosocket.allow_networks.is_empty(),
        );
        background.spawn({
            let (tx, metrics, stop) = (tx.clone(), metrics.clone(), stop_sources.clone());
            let acfg = cfg.audiosocket.clone();
            let limits = crate::sources::audiosocket::Limits {
                max_connections: sec.max_connections,
            };
            let guard = guard.clone();
            async move {
                if let Err(e) = crate::sources::audiosocket::serve_audiosocket_with(
                    listener, acfg, tx, metrics, guard, limits, stop,
                )
                .await
                {
                    tracing::error!(error = %e, "audiosocket server failed");
                }
            }
        });
    }
    let device = if cfg.device.enabled {
        Some(
            crate::sources::device::start(
                &cfg.device,
                tx.clone(),
                &guard.legs,
                stop_sources.clone(),
            )
            .map_err(|e| ServeError::Setup(e.to_string()))?,
        )
    } else {
        None
    };
    // Calls that were open when the previous process died end now, continuing their seq:
    // only once every listener is bound, so a start that fails changes nothing on disk or on
    // the broker. New calls wait in the channel until the router starts below.
    for (call_id, run, next_seq, t) in shared.open_calls.leftovers() {
        tracing::warn!(%call_id, "ending call left open by a previous run");
        let mut st = EventStamper::resume(&call_id, next_seq);
        let mut ev = st.stamp(
            t,
            now_rfc3339(),
            EventBody::CallEnded(CallEnded {
                reason: "restart_recovery".into(),
                duration: t,
                summary: CallSummary::default(),
            }),
        );
        ev.event_id = run_event_id(&call_id, run, ev.seq);
        shared.publish(&ev);
        shared.open_calls.remove(&call_id);
    }

    drop(tx);
    background.spawn(sample_pool_gauges(shared.clone(), shutdown.clone()));
    if let Some(reload) = reload {
        background.spawn(watch_sighup(reload, shared.clone(), shutdown.clone()));
    }
    tracing::info!(http = %cfg.serve.http, media = %cfg.serve.media, audiosocket = %cfg.serve.audiosocket, mqtt = %cfg.mqtt.shown_target(), "calltone serving");
    // Every listener is bound: READY=1 (and watchdog pings) for systemd's Type=notify.
    background.spawn(crate::systemd::ready_then_watchdog(shutdown.clone()));

    let router = tokio::spawn(route_calls(rx, shared.clone()));
    shutdown.cancelled().await;
    tracing::info!("shutting down: stopping intake");
    stop_sources.cancel();
    // WebSocket sessions end their legs on `stop_sources`; the HTTP server then closes so its
    // handle on the router channel goes away too.
    http_stop.cancel();
    drop(device);
    let grace = Duration::from_secs_f64(cfg.serve.shutdown_grace_s.max(0.0));
    // The router ends once every source has dropped its sender and every call has ended.
    if tokio::time::timeout(grace + Duration::from_secs(2), router)
        .await
        .is_err()
    {
        tracing::warn!("calls did not finish within the grace period");
    }
    sink.shutdown(grace).await;
    background.abort_all();
    Ok(())
}

/// Applies a new configuration on every SIGHUP, for calls that start afterwards.
async fn watch_sighup(reload: Reload, shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGHUP; configuration reload unavailable");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = hup.recv() => if r.is_none() { return },
        }
        let new = match reload() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: configuration not reloaded; keeping the current one");
                continue;
            }
        };
        // Building the analyzers may read a model file: off the async threads.
        let sh = shared.clone();
        let applied = tokio::task::spawn_blocking(move || sh.apply(new)).await;
        match applied {
            Ok(Ok((changed, fixed))) => {
                tracing::info!(changed = ?changed, "SIGHUP: configuration reloaded; calls that start from now on use it (calls in progress keep theirs)");
                if !fixed.is_empty() {
                    tracing::warn!(sections = ?fixed, "SIGHUP: these sections changed but are not reloadable; restart calltone to apply them");
                }
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "SIGHUP: configuration not reloaded; keeping the current one")
            }
            Err(e) => tracing::error!(error = %e, "SIGHUP: reload failed"),
        }
    }
}

/// The names of `sections` whose TOML differs between `a` and `b`.
fn changed_sections(a: &Config, b: &Config) -> (Vec<String>, Vec<String>) {
    let (Ok(toml::Value::Table(a)), Ok(toml::Value::Table(b))) =
        (toml::Value::try_from(a), toml::Value::try_from(b))
    else {
        return (Vec::new(), Vec::new());
    };
    let mut reloadable = Vec::new();
    let mut fixed = Vec::new();
    for (k, v) in &b {
        if a.get(k) != Some(v) {
            if RELOADABLE.contains(&k.as_str()) {
                reloadable.push(k.clone());
            } else {
                fixed.push(k.clone());
            }
        }
    }
    (reloadable, fixed)
}

impl Shared {
    /// The setup a call starting now gets.
    fn call_setup(&self) -> Arc<CallSetup> {
        self.calls.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Takes the reloadable sections of `new` for calls that start from now on; returns
    /// the reloadable and the fixed sections that changed.
    fn apply(&self, new: Config) -> Result<(Vec<String>, Vec<String>), String> {
        let current = self.call_setup();
        let (changed, fixed) = changed_sections(&current.cfg, &new);
        let mut merged = current.cfg.clone();
        merged.vad = new.vad;
        merged.prosody = new.prosody;
        merged.pipeline = new.pipeline;
        merged.emotion = new.emotion;
        merged.redact = new.redact;
        merged.alerts = new.alerts;
        merged.empathy = new.empathy;
        merged.scorecard = new.scorecard;
        merged.assist = new.assist;
        merged
            .validate(std::path::Path::new("<reloaded>"))
            .map_err(|e| e.to_string())?;
        let analyzers = Analyzers::from_config(&merged).map_err(|e| e.to_string())?;
        self.registry
            .set_context_rules(&merged.alerts, merged.empathy.agent_scoring);
        *self.calls.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(CallSetup {
            cfg: merged,
            analyzers,
        });
        Ok((changed, fixed))
    }

    /// Hands an event to every sink: the durable outbox first, then the in-process bus.
    fn publish(&self, ev: &Event) {
        if let Some(m) = &self.mqtt {
            if let Err(e) = m.publish(ev) {
                tracing::error!(call_id = %ev.call_id, seq = ev.seq, error = %e, "event not queued for MQTT");
            }
        }
        let _ = self.bus.send(ev.clone());
    }
}

/// Messages a call task receives on its own channel (transcripts); source events come on
/// a bounded channel of their own.
enum CallMsg {
    Source(CallEvent),
    Transcript(u64, TranscriptResult, Duration),
}

/// Source events waiting for one call task; beyond it, audio for that call is dropped and
/// counted (`calltone_audio_dropped_total{reason="call_full"}`) so one slow call cannot
/// hold up the router and every other call. About 10 s of 20 ms frames per leg.
const CALL_QUEUE: usize = 1024;

/// Beyond [`CALL_QUEUE`], room for a waiting call's control events (leg starts and ends):
/// its audio is dropped first.
const CONTROL_EXTRA: usize = 64;

/// What the router knows of a live call.
struct RoutedCall {
    tx: mpsc::Sender<CallEvent>,
    /// Legs that have started and not ended; when the last ends the router forgets the
    /// call, so a later `Start` with the same id is a new call with a new run.
    live: Vec<Speaker>,
    source: &'static str,
    run: u64,
}

/// The `End` reason as it may appear in an event: one word of a fixed vocabulary, never a
/// client's text (the detail stays in the source's log line).
pub fn event_reason(reason: &str) -> &'static str {
    match crate::sources::ingest::reason_class(reason.trim()) {
        "hangup" => "hangup",
        "disconnected" => "disconnected",
        "timeout" => "timeout",
        "shutdown" => "shutdown",
        "restart_recovery" => "restart_recovery",
        _ => "error",
    }
}

/// A run id for a new call: wall-clock milliseconds, strictly increasing within the process,
/// so a reused call id never repeats an earlier call's `event_id`s (across restarts too,
/// unless the clock steps back).
fn next_run(last: &mut u64) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    *last = now.max(*last + 1);
    *last
}

/// The `event_id` of event `seq` of run `run` of `call_id` (serve; replay keeps
/// `{call_id}:{seq}`).
pub fn run_event_id(call_id: &str, run: Option<u64>, seq: u64) -> String {
    match run {
        Some(r) => format!("{call_id}:{r}:{seq}"),
        None => format!("{call_id}:{seq}"),
    }
}

/// Routes source events to per-call tasks, creating a task for each new call.
///
/// A call whose legs have all ended may still be finishing (transcripts out, `call_ended`
/// to come). A new call with the same id waits for it, its events queued (at most
/// [`CALL_QUEUE`]; audio beyond is dropped and counted as `call_full`), so the two runs
/// never share the id's registry entry, open-call record or retained topics.
async fn route_calls(mut rx: mpsc::Receiver<CallEvent>, shared: Arc<Shared>) {
    let mut router = Router {
        max_calls: shared.cfg.security.max_calls,
        shared,
        calls: HashMap::new(),
        finishing: HashMap::new(),
        waiting: HashMap::new(),
        tasks: JoinSet::new(),
        task_calls: HashMap::new(),
        last_run: 0,
    };
    loop {
        tokio::select! {
            Some(done) = router.tasks.join_next_with_id(), if !router.tasks.is_empty() => {
                let task = match &done {
                    Ok((task, _)) => *task,
                    Err(e) => e.id(),
                };
                if let Some((id, run)) = router.task_calls.remove(&task) {
                    router.task_ended(id, run).await;
                }
            }
            ev = rx.recv() => match ev {
                Some(ev) => router.route(ev).await,
                None => break,
            },
        }
    }
    // Every source has stopped; wait for the open calls to end.
    drop(router.calls);
    while router.tasks.join_next().await.is_some() {}
}

struct Router {
    shared: Arc<Shared>,
    max_calls: usize,
    calls: HashMap<String, RoutedCall>,
    /// Calls whose legs have all ended and whose task is still running: id → run.
    finishing: HashMap<String, u64>,
    /// Events of a new call waiting for the finishing call of the same id.
    waiting: HashMap<String, VecDeque<CallEvent>>,
    /// Call tasks, and the call id and run of each (also known when a task fails).
    tasks: JoinSet<()>,
    task_calls: HashMap<tokio::task::Id, (String, u64)>,
    last_run: u64,
}

impl Router {
    async fn route(&mut self, ev: CallEvent) {
        let id = ev.call_id().to_string();
        let mut ev = Some(ev);
        if let Some(call) = self.calls.get_mut(&id) {
            let Some(e) = ev.take() else { return };
            match &e {
                CallEvent::Start { speakers, .. } => {
                    for s in speakers {
                        if !call.live.contains(s) {
                            call.live.push(*s);
                        }
                    }
                }
                CallEvent::End { speaker, .. } => call.live.retain(|s| s != speaker),
                CallEvent::Audio { .. } | CallEvent::Agent { .. } => {}
            }
            let ended = call.live.is_empty();
            let sent = match e {
                CallEvent::Audio { .. } => match call.tx.try_send(e) {
                    Ok(()) => Ok(()),
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        self.shared
                            .metrics
                            .audio_dropped
                            .with(&[call.source, "call_full"])
                            .inc();
                        Ok(())
                    }
                    Err(mpsc::error::TrySendError::Closed(e)) => Err(e),
                },
                control => call.tx.send(control).await.map_err(|e| e.0),
            };
            match sent {
                Ok(()) if !ended => return,
                Ok(()) => {
                    if let Some(call) = self.calls.remove(&id) {
                        self.finishing.insert(id, call.run);
                    }
                    return;
                }
                // The task has ended; a Start begins a new call.
                Err(e) => {
                    self.calls.remove(&id);
                    ev = Some(e);
                }
            }
        }
        let Some(ev) = ev else { return };
        if self.finishing.contains_key(&id) || self.waiting.contains_key(&id) {
            let queue = self.waiting.entry(id.clone()).or_default();
            if queue.is_empty() && !matches!(ev, CallEvent::Start { .. }) {
                // The finished call's stragglers.
                self.waiting.remove(&id);
                tracing::debug!(call_id = %id, "event for an ending call ignored");
            } else if queue.len() < CALL_QUEUE
                || (!matches!(ev, CallEvent::Audio { .. })
                    && queue.len() < CALL_QUEUE + CONTROL_EXTRA)
            {
                // Audio first is dropped when full; a leg's start and end are kept, or the
                // call would never end.
                queue.push_back(ev);
            } else if !matches!(ev, CallEvent::Audio { .. }) {
                tracing::warn!(call_id = %id, reason = "call_full", "control event for a waiting call dropped");
            } else {
                let source: &'static str = match queue.front() {
                    Some(CallEvent::Start { source, .. }) => source,
                    _ => "unknown",
                };
                self.shared
                    .metrics
                    .audio_dropped
                    .with(&[source, "call_full"])
                    .inc();
            }
            return;
        }
        let CallEvent::Start {
            source, speakers, ..
        } = &ev
        else {
            tracing::debug!(call_id = %id, "event for an unknown call ignored");
            return;
        };
        // A finishing call still holds its thread and its transcripts: it counts.
        if self.calls.len() + self.finishing.len() >= self.max_calls {
            tracing::warn!(call_id = %id, max_calls = self.max_calls, reason = "too_many_calls", "call limit reached; call refused");
            self.shared
                .metrics
                .audio_dropped
                .with(&[source, "too_many_calls"])
                .inc();
            return;
        }
        let (tx, crx) = mpsc::channel(CALL_QUEUE);
        let (source, live) = (*source, speakers.clone());
        let _ = tx.try_send(ev);
        let run = next_run(&mut self.last_run);
        let task = self.tasks.spawn(spawn_call_thread(
            id.clone(),
            source,
            run,
            crx,
            self.shared.clone(),
        ));
        self.task_calls.insert(task.id(), (id.clone(), run));
        self.calls.insert(
            id,
            RoutedCall {
                tx,
                live,
                source,
                run,
            },
        );
    }

    /// A call task has ended: a new call of the same id that waited for it starts now.
    async fn task_ended(&mut self, id: String, run: u64) {
        if self.finishing.get(&id) != Some(&run) {
            return;
        }
        self.finishing.remove(&id);
        if let Some(queue) = self.waiting.remove(&id) {
            tracing::debug!(call_id = %id, events = queue.len(), "previous call with this id ended; starting the new one");
            for ev in queue {
                Box::pin(self.route(ev)).await;
            }
        }
    }
}

/// Runs one call's analysis on a thread of its own and resolves when the call has ended.
///
/// The analysis (resampling, VAD, pitch, arousal, alerts, redaction) is synchronous CPU work;
/// on the async runtime's few worker threads a busy call would hold up HTTP, SSE, MQTT and
/// every other call's sockets. On its own thread it competes only as one more thread for the
/// cores, and it waits for input with the runtime's channels (`Handle::block_on`).
async fn spawn_call_thread(
    call_id: String,
    source: &'static str,
    run: u64,
    src: mpsc::Receiver<CallEvent>,
    shared: Arc<Shared>,
) {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::runtime::Handle::current();
    let name = format!("call-{run}");
    let metrics = shared.metrics.clone();
    let spawned = std::thread::Builder::new().name(name).spawn({
        let call_id = call_id.clone();
        move || {
            call_task(handle, call_id, source, run, src, shared);
            let _ = done_tx.send(());
        }
    });
    match spawned {
        // The sender is dropped when the thread ends, also if it panicked.
        Ok(_) => {
            let _ = done_rx.await;
        }
        Err(e) => {
            tracing::warn!(%call_id, error = %e, reason = "no_thread", "call refused: no thread for its analysis");
            metrics.audio_dropped.with(&[source, "no_thread"]).inc();
        }
    }
}

/// One call: owns its pipeline, feeds it audio and transcripts, publishes its events.
/// Runs on the call's own thread ([`spawn_call_thread`]).
fn call_task(
    rt: tokio::runtime::Handle,
    call_id: String,
    source: &'static str,
    run: u64,
    mut src: mpsc::Receiver<CallEvent>,
    shared: Arc<Shared>,
) {
    let (self_tx, mut rx) = mpsc::unbounded_channel::<CallMsg>();
    let mut src_open = true;
    // Fixed for the call's life: a SIGHUP reload applies to calls that start after it.
    let setup = shared.call_setup();
    let cfg = &setup.cfg;
    let mut pipeline: Option<CallPipeline> = None;
    let mut live_legs: Vec<Speaker> = Vec::new();
    // Legs heard since they (re)connected, and when the call's first audio came: a leg that
    // starts later is put on the call's clock (`CallPipeline::join_at`).
    let mut heard: Vec<Speaker> = Vec::new();
    let mut first_audio: Option<Instant> = None;
    let mut out = Vec::new();
    // Wall-clock arrival of audio per (call time) so alert latency can be measured from the
    // moment the triggering audio entered the process.
    let mut arrivals: VecDeque<(f64, Instant)> = Default::default();
    let mut audio_t = 0.0f64;
    let mut agent: Option<String> = None;
    let mut context = crate::context::ContextBuilder::with_rules(
        &call_id,
        &cfg.alerts,
        cfg.empathy.agent_scoring,
    );
    let context_every = Duration::from_secs_f64(cfg.serve.context_interval_s);
    let mut context_sent: Option<Instant> = None;
    loop {
        let next = rt.block_on(async {
            tokio::select! {
                Some(m) = rx.recv() => Some(m),
                m = src.recv(), if src_open => m.map(CallMsg::Source),
            }
        });
        let msg = match next {
            Some(m) => m,
            None => {
                // The router forgot the call (its last leg ended) or is shutting down.
                src_open = false;
                match pipeline.as_mut() {
                    None => return,
                    Some(p) if !p.is_finished() && !live_legs.is_empty() => {
                        live_legs.clear();
                        CallMsg::Source(CallEvent::End {
                            call_id: call_id.clone(),
                            speaker: Speaker::Customer,
                            reason: "disconnected".into(),
                        })
                    }
                    Some(_) => continue,
                }
            }
        };
        match msg {
            CallMsg::Source(CallEvent::Start { speakers, .. }) => {
                for s in speakers {
                    if !live_legs.contains(&s) {
                        live_legs.push(s);
                    }
                    heard.retain(|h| *h != s);
                }
            }
            CallMsg::Source(CallEvent::Agent { agent: a, .. }) => {
                // Only before the call has started: `call_started` carries it.
                if pipeline.is_none() {
                    agent = Some(a);
                }
            }
            CallMsg::Source(CallEvent::Audio {
                speaker,
                sample_rate,
                samples,
                ..
            }) => {
                // Stamped before the pipeline is made, which takes a moment.
                let since_start = first_audio.get_or_insert_with(Instant::now).elapsed();
                let p = match pipeline.as_mut() {
                    Some(p) => p,
                    None => {
                        match CallPipeline::new(
                            &call_id,
                            source,
                            &[Speaker::Customer, Speaker::Agent],
                            sample_rate,
                            agent.clone(),
                            cfg,
                            &setup.analyzers,
                            now_rfc3339,
                            &mut out,
                        ) {
                            Ok(p) => {
                                tracing::info!(%call_id, source, sample_rate, "call started");
                                pipeline.insert(p)
                            }
                            Err(e) => {
                                tracing::warn!(%call_id, error = %e, "call rejected");
                                return;
                            }
                        }
                    }
                };
                if let Err(e) = p.set_input_rate(speaker, sample_rate) {
                    tracing::warn!(%call_id, %speaker, error = %e, "bad sample rate; audio dropped");
                    continue;
                }
                if !heard.contains(&speaker) {
                    heard.push(speaker);
                    let pad = p.join_at(speaker, since_start.as_secs_f64(), &mut out);
                    if pad > 0.0 {
                        tracing::info!(%call_id, %speaker, late_s = pad, "leg joined late; on the call's clock");
                        if speaker == Speaker::Customer {
                            audio_t += pad;
                        }
                    }
                }
                if speaker == Speaker::Customer {
                    audio_t += samples.len() as f64 / sample_rate as f64;
                    arrivals.push_back((audio_t, Instant::now()));
                    while arrivals.len() > 4096 {
                        arrivals.pop_front();
                    }
                }
                p.push(speaker, &samples, &mut out);
            }
            CallMsg::Source(CallEvent::End {
                speaker, reason, ..
            }) => {
                live_legs.retain(|s| *s != speaker);
                heard.retain(|s| *s != speaker);
                if let Some(p) = pipeline.as_mut() {
                    p.end_leg(speaker);
                }
                if live_legs.is_empty() {
                    tracing::info!(%call_id, %reason, "call ending");
                    match pipeline.as_mut() {
                        Some(p) => p.finish(event_reason(&reason), &mut out),
                        None => return, // no audio ever arrived: nothing to report
                    }
                }
            }
            CallMsg::Transcript(job, result, queued) => {
                shared.metrics.asr_lag_seconds.set(queued.as_secs_f64());
                if let Some(p) = pipeline.as_mut() {
                    p.on_transcript(job, result, &mut out);
                }
            }
        }
        for o in out.drain(..) {
            match o {
                Output::Event(mut ev) => {
                    ev.event_id = run_event_id(&call_id, Some(run), ev.seq);
                    if let EventBody::Alert(a) = &ev.body {
                        if let Some((_, at)) = arrivals.iter().find(|(t, _)| *t >= a.end) {
                            shared
                                .metrics
                                .audio_to_alert_latency
                                .observe(at.elapsed().as_secs_f64());
                        }
                    }
                    if matches!(ev.body, EventBody::CallEnded(_)) {
                        shared.open_calls.remove(&call_id);
                    } else {
                        shared.open_calls.record(&call_id, run, ev.seq + 1, ev.t);
                    }
                    context.observe(&ev);
                    let ended = matches!(ev.body, EventBody::CallEnded(_));
                    let due = context_sent.is_none_or(|at| at.elapsed() >= context_every);
                    if !ended && due && context.take_changed() {
                        if let Some(m) = &shared.mqtt {
                            if let Err(e) = m.publish_context(&call_id, &context.snapshot()) {
                                tracing::warn!(%call_id, error = %e, "hand-off context not published");
                            }
                        }
                        context_sent = Some(Instant::now());
                    }
                    shared.publish(&ev);
                }
                Output::Asr(job) => {
                    let tx = self_tx.clone();
                    shared.pool.submit(
                        job,
                        Box::new(move |job, result, timing| {
                            let _ = tx.send(CallMsg::Transcript(job.job_id, result, timing.queued));
                        }),
                    );
                }
            }
        }
        if pipeline.as_ref().is_some_and(|p| p.is_finished()) {
            tracing::info!(%call_id, "call ended");
            return;
        }
    }
}

async fn sample_pool_gauges(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut shed_seen = 0;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let m = &shared.metrics;
        m.asr_queue_depth.set(shared.pool.depth() as f64);
        let shed = shared
            .pool
            .stats()
            .shed
            .load(std::sync::atomic::Ordering::Relaxed);
        m.asr_shed.add(shed - shed_seen);
        shed_seen = shed;
    }
}

/// Makes sure `data_dir` is a directory: creates it (`0700`) when it is missing and its parent
/// directory exists. A missing parent is refused rather than created: it is usually a typo or
/// a volume that is not mounted, and the outbox must not land silently on the root file
/// system. The error is one line naming the path and the problem.
fn prepare_data_dir(data_dir: &Path) -> Result<(), String> {
    use std::io::ErrorKind;
    let shown = data_dir.display();
    let not_dir = |what: &str| {
        format!("serve.data_dir {shown} is not a directory ({what}); remove it or choose another data_dir")
    };
    match std::fs::metadata(data_dir) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(m) if m.is_file() => return Err(not_dir("it is a regular file")),
        Ok(_) => return Err(not_dir("it is a device, socket or pipe")),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            if std::fs::symlink_metadata(data_dir).is_ok() {
                return Err(not_dir("it is a symbolic link to nothing"));
            }
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
            let file = data_dir
                .ancestors()
                .skip(1)
                .find(|a| std::fs::metadata(a).is_ok_and(|m| !m.is_dir()));
            return Err(match file {
                Some(f) => format!(
                    "serve.data_dir {shown}: {} is not a directory (it is a file)",
                    f.display()
                ),
                None => format!("serve.data_dir {shown}: {e}"),
            });
        }
        Err(e) => return Err(format!("serve.data_dir {shown}: {e}")),
    }
    let parent = match data_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match std::fs::metadata(parent) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(format!(
                "serve.data_dir {shown}: its parent {} is not a directory",
                parent.display()
            ))
        }
        Err(e) if e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => {
            return Err(format!(
                "serve.data_dir {shown}: its parent directory {} does not exist; create it (or mount its volume) or choose another data_dir",
                parent.display()
            ))
        }
        Err(e) => {
            return Err(format!(
                "serve.data_dir {shown}: its parent {}: {e}",
                parent.display()
            ))
        }
    }
    crate::publish::outbox::create_dir_if_missing(data_dir)
        .map_err(|e| format!("serve.data_dir {shown}: cannot create it: {e}"))
}

/// An exclusive `flock(2)` on `{data_dir}/lock`, held for the life of the process (the
/// kernel releases it when the process ends, however it ends). The file holds the owner's pid
/// for the message a second start prints.
struct DataDirLock {
    _file: std::fs::File,
}

impl DataDirLock {
    fn acquire(data_dir: &Path) -> Result<Self, ServeError> {
        use std::io::{Read, Seek, Write};
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        use std::os::unix::io::AsRawFd;
        let shown = data_dir.display();
        let fail =
            |e: &dyn std::fmt::Display| ServeError::Setup(format!("serve.data_dir {shown}: {e}"));
        // Created 0700 when missing; an existing directory is left as it is (it may be a
        // shared one): calltone's own subdirectories are owner-only.
        prepare_data_dir(data_dir).map_err(ServeError::Setup)?;
        let path = data_dir.join("lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            // A link planted in a shared directory is not followed.
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| fail(&format!("{}: {e}", path.display())))?;
        // SAFETY: flock on a descriptor this function owns; no memory is passed.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let owner = match text.trim().parse::<u32>() {
                    Ok(pid) => format!("pid {pid}"),
                    Err(_) => "pid unknown".into(),
                };
                return Err(ServeError::Setup(format!(
                    "serve.data_dir {shown} is in use by another calltone ({owner}); stop it or use another data_dir"
                )));
            }
            return Err(fail(&format!("cannot lock {}: {err}", path.display())));
        }
        let _ = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()));
        if let Ok(m) = std::fs::metadata(data_dir) {
            if m.permissions().mode() & 0o077 != 0 {
                tracing::info!(data_dir = %shown, mode = format!("{:o}", m.permissions().mode() & 0o7777), "serve.data_dir is open to other users; left as it is (the outbox and open-call records are in owner-only subdirectories)");
            }
        }
        Ok(Self { _file: file })
    }
}

/// Open calls on disk (`data_dir/calls/{call_id}`: next seq and call time), so a crash
/// leaves a record that the next start turns into `call_ended{reason: restart_recovery}`.
struct OpenCalls {
    dir: PathBuf,
}

impl OpenCalls {
    fn new(dir: PathBuf) -> std::io::Result<Self> {
        crate::publish::outbox::create_private_dir(&dir)?;
        Ok(Self { dir })
    }

    fn path(&self, call_id: &str) -> PathBuf {
        self.dir.join(crate::publish::mqtt::topic_level(call_id))
    }

    fn record(&self, call_id: &str, run: u64, next_seq: u64, t: f64) {
        // One temporary file per call: call tasks run in parallel, and a shared name would
        // let one call's rename publish another call's record.
        let tmp = self.dir.join(format!(
            ".{}.tmp",
            crate::publish::mqtt::topic_level(call_id)
        ));
        let body = format!("{call_id}\n{next_seq}\n{t}\n{run}\n");
        if let Err(e) = crate::publish::outbox::write_private(&tmp, body.as_bytes())
            .and_then(|_| std::fs::rename(&tmp, self.path(call_id)))
        {
            tracing::error!(%call_id, error = %e, "cannot record open call");
        }
    }

    fn remove(&self, call_id: &str) {
        let _ = std::fs::remove_file(self.path(call_id));
    }

    /// `(call_id, run, next_seq, t)` of every call left open; records from before run ids
    /// have none.
    fn leftovers(&self) -> Vec<(String, Option<u64>, u64, f64)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| parse_open_call(&e.path()))
            .collect()
    }
}

fn parse_open_call(path: &Path) -> Option<(String, Option<u64>, u64, f64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    let id = lines.next()?.to_string();
    let seq = lines.next()?.parse().ok()?;
    let t = lines.next()?.parse().ok()?;
    let run = lines.next().and_then(|r| r.parse().ok());
    Some((id, run, seq, t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_in_events_come_from_a_fixed_vocabulary() {
        assert_eq!(event_reason("hangup"), "hangup");
        assert_eq!(event_reason("error: bad JSON: <script>"), "error");
        assert_eq!(event_reason("error: asterisk error code 0x02"), "error");
        assert_eq!(event_reason("timeout"), "timeout");
        assert_eq!(event_reason(&"x".repeat(10_000)), "error");
    }

    #[test]
    fn runs_increase_and_give_distinct_event_ids() {
        let mut last = u64::MAX - 10;
        let a = next_run(&mut last);
        let b = next_run(&mut last);
        assert!(b > a);
        assert_ne!(run_event_id("c", Some(a), 0), run_event_id("c", Some(b), 0));
        assert_eq!(run_event_id("c", None, 3), "c:3");
    }
}
