//! The HTTP server of `serve`: `/healthz`, `/metrics` (Prometheus text), `/api/calls`, and
//! whatever routes the caller merges in (the `/media/*` WebSocket ingest).
//!
//! [`CallRegistry`] keeps the live view behind `/api/calls` and `/api/alerts`: fed from the
//! event bus, `call_started` adds a call, `state`/`utterance`/`alert` update it, `call_ended`
//! removes it; the last [`RECENT_ALERTS`] alerts of any call are kept for the dashboard's
//! feed, and each call keeps [`HISTORY_S`] seconds of stress readings for its sparklines.
//! It also derives the event-level metrics (active calls, utterances, alerts by kind), so
//! the pipeline does not count those itself.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::State as AxState;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::audio::Speaker;
use crate::events::{Alert, Event, EventBody, State};
use crate::listener::GuardedListener;
use crate::metrics::Metrics;
use crate::publish::MqttHandle;

/// One live call as `/api/calls` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CallInfo {
    pub call_id: String,
    pub source: String,
    pub speakers: Vec<Speaker>,
    pub sample_rate: u32,
    /// Wall clock of `call_started`.
    pub started: String,
    /// Call time (s) of the latest event.
    pub t: f64,
    /// Latest `state` event body.
    pub state: Option<State>,
    pub utterances: u32,
    pub alerts: u32,
    /// Latest transcript line, after redaction.
    pub last_utterance: Option<String>,
    pub last_alert: Option<Alert>,
    /// Stress readings `[t, stress]` per speaker over the last [`HISTORY_S`] s of the call.
    pub history: BTreeMap<Speaker, VecDeque<[f64; 2]>>,
    /// The agent id from the ingest metadata, when the source gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Nudges to the agent active now (`assist` events raised and not withdrawn).
    pub nudges: Vec<ActiveNudge>,
}

/// A nudge shown to the agent now.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ActiveNudge {
    pub assist_id: String,
    pub kind: crate::events::AssistKind,
    pub message: String,
    /// Call time it was raised at, seconds.
    pub t: f64,
}

/// Active nudges kept per call (there are five kinds; more would be a bug upstream).
const MAX_NUDGES: usize = 8;

/// Seconds of stress history a live call keeps (the dashboard's sparklines).
pub const HISTORY_S: f64 = 180.0;
/// Alerts kept for the dashboard's feed, across calls.
pub const RECENT_ALERTS: usize = 50;

/// An alert with the call it belongs to, as `/api/alerts` and the dashboard show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RecentAlert {
    pub call_id: String,
    pub event_id: String,
    /// Call time (s) the alert was emitted at.
    pub t: f64,
    pub ts: String,
    #[serde(flatten)]
    pub alert: Alert,
}

#[derive(Debug, Default)]
struct Live {
    calls: BTreeMap<String, CallInfo>,
    /// Hand-off context of every live call.
    contexts: BTreeMap<String, crate::context::ContextBuilder>,
    /// Newest last.
    alerts: VecDeque<RecentAlert>,
    /// The escalation-phrase rules and `empathy.agent_scoring` a new call's context is read
    /// with (the defaults until [`CallRegistry::set_context_rules`]).
    context_rules: Option<(crate::alerts::AlertConfig, bool)>,
}

/// Live calls, fed from the event bus. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CallRegistry {
    live: Arc<Mutex<Live>>,
    metrics: Arc<Metrics>,
}

impl CallRegistry {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            live: Arc::new(Mutex::new(Live::default())),
            metrics,
        }
    }

    /// The configured escalation phrases and `empathy.agent_scoring` for the hand-off context
    /// of calls that start from now on (at start and on SIGHUP).
    pub fn set_context_rules(&self, alerts: &crate::alerts::AlertConfig, agent_scoring: bool) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.context_rules = Some((alerts.clone(), agent_scoring));
    }

    /// Applies one event.
    pub fn observe(&self, ev: &Event) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let Live {
            calls,
            contexts,
            alerts,
            context_rules,
        } = &mut *live;
        if let Some(c) = contexts.get_mut(&ev.call_id) {
            c.observe(ev);
        }
        match &ev.body {
            EventBody::CallStarted(s) => {
                calls.insert(
                    ev.call_id.clone(),
                    CallInfo {
                        call_id: ev.call_id.clone(),
                        source: s.source.clone(),
                        speakers: s.speakers.clone(),
                        sample_rate: s.sample_rate,
                        started: ev.ts.clone(),
                        t: ev.t,
                        state: None,
                        utterances: 0,
                        alerts: 0,
                        last_utterance: None,
                        last_alert: None,
                        history: BTreeMap::new(),
                        agent: s.agent.clone(),
                        nudges: Vec::new(),
                    },
                );
                let mut ctx = match context_rules {
                    Some((rules, scoring)) => {
                        crate::context::ContextBuilder::with_rules(&ev.call_id, rules, *scoring)
                    }
                    None => crate::context::ContextBuilder::new(&ev.call_id),
                };
                ctx.observe(ev);
                contexts.insert(ev.call_id.clone(), ctx);
            }
            EventBody::CallEnded(_) => {
                calls.remove(&ev.call_id);
                contexts.remove(&ev.call_id);
            }
            EventBody::Assist(a) => {
                if let Some(c) = calls.get_mut(&ev.call_id) {
                    c.nudges.retain(|n| n.assist_id != a.assist_id);
                    if a.active && c.nudges.len() < MAX_NUDGES {
                        c.nudges.push(ActiveNudge {
                            assist_id: a.assist_id.clone(),
                            kind: a.kind,
                            message: a.message.clone(),
                            t: ev.t,
                        });
                    }
                }
            }
            EventBody::State(s) => {
                if let Some(c) = calls.get_mut(&ev.call_id) {
                    c.t = ev.t;
                    c.state = Some(s.clone());
                    for (sp, st) in &s.speakers {
                        let Some(stress) = st.stress else { continue };
                        let h = c.history.entry(*sp).or_default();
                        h.push_back([ev.t, f64::from(stress)]);
                        while h.front().is_some_and(|p| p[0] < ev.t - HISTORY_S) {
                            h.pop_front();
                        }
                    }
                }
            }
            EventBody::Utterance(u) => {
                self.metrics.utterances.inc();
                if let Some(c) = calls.get_mut(&ev.call_id) {
                    c.t = ev.t;
                    c.utterances += 1;
                    c.last_utterance = Some(format!("{}: {}", u.speaker, u.text));
                }
            }
            EventBody::Empathy(_) => {}
            EventBody::Alert(a) => {
                self.metrics.alerts.with(&[a.kind.as_str()]).inc();
                if let Some(c) = calls.get_mut(&ev.call_id) {
                    c.t = ev.t;
                    c.alerts += 1;
                    c.last_alert = Some(a.clone());
                }
                alerts.push_back(RecentAlert {
                    call_id: ev.call_id.clone(),
                    event_id: ev.event_id.clone(),
                    t: ev.t,
                    ts: ev.ts.clone(),
                    alert: a.clone(),
                });
                if alerts.len() > RECENT_ALERTS {
                    alerts.pop_front();
                }
            }
        }
        self.metrics.active_calls.set(calls.len() as f64);
    }

    /// Live calls, ordered by call id.
    pub fn snapshot(&self) -> Vec<CallInfo> {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.calls.values().cloned().collect()
    }

    /// One live call.
    pub fn call(&self, call_id: &str) -> Option<CallInfo> {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.calls.get(call_id).cloned()
    }

    /// The live calls of one agent (by the ingest metadata's agent id), newest first.
    pub fn calls_of_agent(&self, agent: &str) -> Vec<CallInfo> {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<CallInfo> = live
            .calls
            .values()
            .filter(|c| c.agent.as_deref() == Some(agent))
            .cloned()
            .collect();
        v.sort_by(|a, b| b.started.cmp(&a.started));
        v
    }

    /// The hand-off context of a live call.
    pub fn context(&self, call_id: &str) -> Option<crate::context::HandoffContext> {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.contexts.get(call_id).map(|c| c.snapshot())
    }

    /// The last [`RECENT_ALERTS`] alerts of any call, newest first.
    pub fn recent_alerts(&self) -> Vec<RecentAlert> {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.alerts.iter().rev().cloned().collect()
    }

    /// Follows the event bus until it closes or `shutdown` fires; lag is counted and logged.
    pub async fn follow(self, mut rx: broadcast::Receiver<Event>, shutdown: CancellationToken) {
        let lagged = self.metrics.bus_lagged.with(&["call_registry"]);
        loop {
            let r = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = rx.recv() => r,
            };
            match r {
                Ok(ev) => self.observe(&ev),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    lagged.add(n);
                    tracing::warn!(missed = n, "call registry lagged behind the event bus");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

/// What the HTTP handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub calls: CallRegistry,
    /// The MQTT sink, when one runs (for broker status and outbox depth in `/healthz`).
    pub mqtt: Option<MqttHandle>,
    pub started: Instant,
}

impl AppState {
    pub fn new(metrics: Arc<Metrics>, calls: CallRegistry, mqtt: Option<MqttHandle>) -> Self {
        Self {
            metrics,
            calls,
            mqtt,
            started: Instant::now(),
        }
    }
}

/// `/healthz` body.
#[derive(Debug, Serialize)]
struct Health {
    ok: bool,
    uptime_s: f64,
    /// null when no MQTT sink runs.
    broker_connected: Option<bool>,
    outbox_depth: Option<usize>,
    outbox_bytes: Option<u64>,
    /// `ok`, `full` or `write_error` (see `MqttHandle::outbox_state`); `ok` is false unless
    /// it is `ok`. The service keeps serving either way.
    outbox_state: Option<&'static str>,
    active_calls: usize,
}

async fn healthz(AxState(st): AxState<AppState>) -> Json<Health> {
    let (broker_connected, outbox_depth, outbox_bytes, outbox_state) = match &st.mqtt {
        Some(m) => (
            Some(m.is_connected()),
            Some(m.outbox_depth()),
            Some(m.outbox_bytes()),
            Some(m.outbox_state()),
        ),
        None => (None, None, None, None),
    };
    Json(Health {
        ok: outbox_state.is_none_or(|s| s == "ok"),
        outbox_state,
        uptime_s: st.started.elapsed().as_secs_f64(),
        broker_connected,
        outbox_depth,
        outbox_bytes,
        active_calls: st.calls.snapshot().len(),
    })
}

async fn metrics(AxState(st): AxState<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        st.metrics.render(),
    )
        .into_response()
}

async fn api_calls(AxState(st): AxState<AppState>) -> Json<Vec<CallInfo>> {
    Json(st.calls.snapshot())
}

#[derive(Debug, serde::Deserialize)]
struct ContextQuery {
    /// `json` (default) or `form` (`key=value&…`, for dialplans).
    #[serde(default)]
    format: Option<String>,
}

/// `GET /api/calls/{call_id}/context[?format=form]`: the hand-off context of a live call;
/// 404 for a call that is not live.
async fn api_context(
    AxState(st): AxState<AppState>,
    axum::extract::Path(call_id): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<ContextQuery>,
) -> Response {
    let Some(ctx) = st.calls.context(&call_id) else {
        return (
            axum::http::StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "no live call with that id\n",
        )
            .into_response();
    };
    match q.format.as_deref() {
        None | Some("json") => Json(ctx).into_response(),
        Some("form") => (
            [(header::CONTENT_TYPE, "application/x-www-form-urlencoded")],
            ctx.to_form(),
        )
            .into_response(),
        Some(_) => (
            axum::http::StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "format must be json or form\n",
        )
            .into_response(),
    }
}

async fn api_alerts(AxState(st): AxState<AppState>) -> Json<Vec<RecentAlert>> {
    Json(st.calls.recent_alerts())
}

/// `/healthz`, `/metrics`, `/api/calls` and `/api/alerts`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/calls", get(api_calls))
        .route("/api/alerts", get(api_alerts))
        .route("/api/calls/{call_id}/context", get(api_context))
        .with_state(state)
}

/// Serves [`router`] merged with `extra` (e.g. [`crate::sources::media_stream::router`]) on
/// `listener` until `shutdown` fires; then stops accepting and waits for open connections
/// (WebSocket sessions end themselves on the same token).
pub async fn serve_http(
    listener: TcpListener,
    state: AppState,
    extra: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "http listening");
    }
    let app = router(state).merge(extra);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// Wraps the supervisor routes in `auth` (Host allow-list, bearer tokens): refused requests
/// get 401/421, are logged and counted in
/// `calltone_connections_closed_total{source="http",reason="unauthorized"|"bad_host"}`.
pub fn with_auth(
    app: Router,
    auth: crate::security::SupervisorAuth,
    metrics: Arc<Metrics>,
) -> Router {
    use axum::http::StatusCode;
    let auth = Arc::new(auth);
    app.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let (auth, metrics) = (auth.clone(), metrics.clone());
            async move {
                let verdict = {
                    let h = |name: header::HeaderName| {
                        req.headers().get(name).and_then(|v| v.to_str().ok())
                    };
                    auth.check(req.uri().path(), h(header::HOST), h(header::AUTHORIZATION))
                };
                match verdict {
                    Ok(()) => next.run(req).await,
                    Err(r) => {
                        metrics.connections_closed.with(&["http", r.reason()]).inc();
                        tracing::warn!(path = %req.uri().path(), reason = r.reason(), "supervisor request refused");
                        match r {
                            crate::security::Refusal::Unauthorized => (
                                StatusCode::UNAUTHORIZED,
                                [(header::WWW_AUTHENTICATE, "Basic realm=\"calltone\"")],
                                "unauthorized\n",
                            )
                                .into_response(),
                            crate::security::Refusal::BadHost => {
                                (StatusCode::MISDIRECTED_REQUEST, "host not allowed\n").into_response()
                            }
                        }
                    }
                }
            }
        },
    ))
}

/// Serves `app` over HTTP/1 on `listener` until `shutdown` fires, then stops accepting, asks
/// open connections to close once their request is answered and waits for them (WebSocket
/// sessions end themselves on their own token).
///
/// Each connection must deliver every request's headers within the listener's
/// [`header_timeout`](GuardedListener::header_timeout), from its start (TLS handshake
/// included) and from the end of each response (hyper's `header_read_timeout`), so a
/// kept-alive connection cannot idle between requests and keep its slot; such closes are
/// counted by the listener's [`ConnWatch`](crate::listener::ConnWatch).
pub async fn serve_router(
    mut listener: GuardedListener,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    use axum::serve::Listener as _;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "http listening");
    }
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(listener.header_timeout());
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let watch = io.watch();
        let conn = http
            .serve_connection(TokioIo::new(io), TowerToHyperService::new(app.clone()))
            .with_upgrades();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let mut conn = std::pin::pin!(conn);
            let mut stopping = false;
            // The connection (and its socket) lives until the close is counted.
            let closed = loop {
                tokio::select! {
                    closed = conn.as_mut() => break closed,
                    () = shutdown.cancelled(), if !stopping => {
                        stopping = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            };
            match closed {
                Err(e) if e.is_timeout() => watch.timed_out(),
                Err(e) => tracing::debug!(%peer, error = %e, "http connection ended"),
                Ok(()) => {}
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{AlertKind, CallEnded, CallStarted, EventStamper, Severity};

    #[test]
    fn registry_follows_call_lifecycle_and_counts() {
        let m = Metrics::new();
        let reg = CallRegistry::new(m.clone());
        let mut st = EventStamper::new("c1");
        reg.observe(&st.stamp(
            0.0,
            "ts".into(),
            EventBody::CallStarted(CallStarted {
                source: "twilio".into(),
                speakers: vec![Speaker::Customer],
                sample_rate: 8000,
                agent: None,
            }),
        ));
        assert_eq!(reg.snapshot().len(), 1);
        assert_eq!(m.active_calls.get(), 1.0);
        reg.observe(&st.stamp(
            2.0,
            "ts".into(),
            EventBody::Alert(Alert {
                alert_id: "c1:alert:0".into(),
                kind: AlertKind::EscalationPhrase,
                severity: Severity::Warning,
                speaker: Some(Speaker::Customer),
                start: 1.0,
                end: 2.0,
                message: "Customer asked for a supervisor.".into(),
                evidence: serde_json::json!({"phrase": "supervisor"}),
            }),
        ));
        let snap = reg.snapshot();
        assert_eq!(snap[0].alerts, 1);
        assert_eq!(snap[0].t, 2.0);
        let recent = reg.recent_alerts();
        assert_eq!(recent.len(), 1);
        assert_eq!(recent[0].call_id, "c1");
        assert_eq!(recent[0].event_id, "c1:1");
        assert_eq!(m.alerts.with(&["escalation_phrase"]).get(), 1);
        reg.observe(&st.stamp(
            3.0,
            "ts".into(),
            EventBody::CallEnded(CallEnded {
                reason: "hangup".into(),
                duration: 3.0,
                summary: Default::default(),
            }),
        ));
        assert!(reg.snapshot().is_empty());
        assert_eq!(m.active_calls.get(), 0.0);
        // The alert outlives its call in the feed.
        assert_eq!(reg.recent_alerts().len(), 1);
    }

    fn state_of(stress: f32) -> EventBody {
        let mut speakers = BTreeMap::new();
        speakers.insert(
            Speaker::Customer,
            crate::events::SpeakerState {
                stress: Some(stress),
                ..Default::default()
            },
        );
        EventBody::State(State { speakers })
    }

    #[test]
    fn history_is_bounded_in_time_and_alerts_in_number() {
        let reg = CallRegistry::new(Metrics::new());
        let mut st = EventStamper::new("c2");
        reg.observe(&st.stamp(
            0.0,
            "ts".into(),
            EventBody::CallStarted(CallStarted {
                source: "file".into(),
                speakers: vec![Speaker::Customer],
                sample_rate: 8000,
                agent: None,
            }),
        ));
        for i in 1..=400 {
            reg.observe(&st.stamp(i as f64, "ts".into(), state_of(0.5)));
        }
        let h = &reg.snapshot()[0].history[&Speaker::Customer];
        assert_eq!(h.front().map(|p| p[0]), Some(400.0 - HISTORY_S));
        assert_eq!(h.back().map(|p| p[0]), Some(400.0));
        for n in 0..(RECENT_ALERTS + 5) {
            reg.observe(&st.stamp(
                500.0,
                "ts".into(),
                EventBody::Alert(Alert {
                    alert_id: format!("c2:alert:{n}"),
                    kind: AlertKind::LongSilence,
                    severity: Severity::Info,
                    speaker: None,
                    start: 490.0,
                    end: 500.0,
                    message: "Silence.".into(),
                    evidence: serde_json::json!({}),
                }),
            ));
        }
        let recent = reg.recent_alerts();
        assert_eq!(recent.len(), RECENT_ALERTS);
        assert_eq!(
            recent[0].alert.alert_id,
            format!("c2:alert:{}", RECENT_ALERTS + 4)
        );
    }
}
