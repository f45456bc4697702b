//! The HTTP server of `serve`: `/healthz`, `/metrics` (Prometheus text), `/api/calls`, and
//! whatever routes the caller merges in (the `/media/*` WebSocket ingest).
//!
//! [`CallRegistry`] keeps the live view behind `/api/calls`: fed from the event bus,
//! `call_started` adds a call, `state`/`utterance`/`alert` update it, `call_ended` removes it.
//! It also derives the event-level metrics (active calls, utterances, alerts by kind), so
//! the pipeline does not count those itself.

use std::collections::BTreeMap;
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
}

/// Live calls, fed from the event bus. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CallRegistry {
    calls: Arc<Mutex<BTreeMap<String, CallInfo>>>,
    metrics: Arc<Metrics>,
}

impl CallRegistry {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            calls: Arc::new(Mutex::new(BTreeMap::new())),
            metrics,
        }
    }

    /// Applies one event.
    pub fn observe(&self, ev: &Event) {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
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
                    },
                );
            }
            EventBody::CallEnded(_) => {
                calls.remove(&ev.call_id);
            }
            EventBody::State(s) => {
                if let Some(c) = calls.get_mut(&ev.call_id) {
                    c.t = ev.t;
                    c.state = Some(s.clone());
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
            EventBody::Alert(a) => {
                self.metrics.alerts.with(&[a.kind.as_str()]).inc();
                if let Some(c) = calls.get_mut(&ev.call_id) {
                    c.t = ev.t;
                    c.alerts += 1;
                    c.last_alert = Some(a.clone());
                }
            }
        }
        self.metrics.active_calls.set(calls.len() as f64);
    }

    /// Live calls, ordered by call id.
    pub fn snapshot(&self) -> Vec<CallInfo> {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls.values().cloned().collect()
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
    active_calls: usize,
}

async fn healthz(AxState(st): AxState<AppState>) -> Json<Health> {
    let (broker_connected, outbox_depth, outbox_bytes) = match &st.mqtt {
        Some(m) => (
            Some(m.is_connected()),
            Some(m.outbox_depth()),
            Some(m.outbox_bytes()),
        ),
        None => (None, None, None),
    };
    Json(Health {
        ok: true,
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

/// `/healthz`, `/metrics` and `/api/calls`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/calls", get(api_calls))
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
    }
}
