//! The supervisor dashboard: a read-only page at `/` (HTML, CSS and JS compiled into the
//! binary, nothing fetched from elsewhere: edge boxes are offline) and its live feed
//! `/api/events`, Server-Sent Events.
//!
//! The feed first sends a `snapshot` event (active calls with their stress history, the
//! recent alerts, the stress levels that colour gauges), then every bus event as an unnamed
//! event whose data is the event's JSON (the same object MQTT carries). When the subscriber
//! falls behind the bus it gets a fresh `snapshot` instead of the events it missed, so the
//! page never shows a state that is silently wrong. The stream ends when `stop` fires, so a
//! graceful shutdown does not wait on open dashboards; browsers reconnect by themselves
//! (`retry` is sent) and get a new snapshot.

mod agent;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State as AxState;
use axum::http::header;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use futures_util::Stream;
use serde::Serialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::events::Event;
use crate::http::{CallInfo, CallRegistry, RecentAlert};
use crate::metrics::Metrics;
use crate::report::StressLevels;

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const STYLE_CSS: &str = include_str!("style.css");

/// How long a browser waits before reconnecting after the stream breaks.
const RETRY: Duration = Duration::from_secs(2);
/// Comment lines that keep idle connections (and proxies) open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What the dashboard routes share.
#[derive(Debug, Clone)]
pub struct LiveFeed {
    bus: broadcast::Sender<Event>,
    calls: CallRegistry,
    levels: StressLevels,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    /// Open live streams (`/api/events`, `/api/agent/events`) share these permits.
    streams: Arc<tokio::sync::Semaphore>,
}

/// Live streams open at once on one supervisor listener unless configured
/// (`security.max_sse_clients`).
pub const DEFAULT_MAX_STREAMS: usize = 64;

impl LiveFeed {
    /// `bus` is subscribed once per open page; `calls` provides the snapshots; streams end
    /// when `stop` fires.
    pub fn new(
        bus: broadcast::Sender<Event>,
        calls: CallRegistry,
        levels: StressLevels,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
    ) -> Self {
        Self {
            bus,
            calls,
            levels,
            metrics,
            stop,
            streams: Arc::new(tokio::sync::Semaphore::new(DEFAULT_MAX_STREAMS)),
        }
    }

    /// At most `n` live streams open at once; more are refused with 503.
    pub fn with_stream_limit(mut self, n: usize) -> Self {
        self.streams = Arc::new(tokio::sync::Semaphore::new(n));
        self
    }

    /// A permit for one more open stream (held by the stream, released when it ends), or the
    /// 503 for a client over the limit (logged and counted).
    fn stream_permit(
        &self,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, Box<axum::response::Response>> {
        self.streams.clone().try_acquire_owned().map_err(|_| {
            self.metrics
                .connections_closed
                .with(&["http", "too_many_streams"])
                .inc();
            tracing::warn!(
                reason = "too_many_streams",
                "live feed refused: too many open streams"
            );
            Box::new(
                (
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, "5")],
                    "too many open live feeds\n",
                )
                    .into_response(),
            )
        })
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            calls: self.calls.snapshot(),
            alerts: self.calls.recent_alerts(),
            levels: self.levels,
        }
    }
}

/// The first event of every stream, and the answer to lag.
#[derive(Debug, Serialize)]
pub struct Snapshot {
    pub calls: Vec<CallInfo>,
    /// Newest first.
    pub alerts: Vec<RecentAlert>,
    pub levels: StressLevels,
}

/// The SSE event of a snapshot.
fn snapshot_event(s: &Snapshot) -> SseEvent {
    match SseEvent::default().event("snapshot").json_data(s) {
        Ok(e) => e.retry(RETRY),
        // Serialising plain data structs does not fail; an empty snapshot would be wrong,
        // so say so and let the page keep what it has.
        Err(e) => {
            tracing::error!(error = %e, "dashboard snapshot not serialisable");
            SseEvent::default().comment("snapshot unavailable")
        }
    }
}

/// Snapshot, then bus events, until the bus closes or `stop` fires.
fn event_stream(feed: LiveFeed) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    // Subscribe before taking the snapshot: an event in between shows up in both, and the
    // page applies events idempotently (state replaces, alerts de-duplicate by event_id).
    let rx = feed.bus.subscribe();
    let first = snapshot_event(&feed.snapshot());
    futures_util::stream::unfold(
        (rx, Some(first), feed),
        |(mut rx, first, feed)| async move {
            if let Some(ev) = first {
                return Some((Ok(ev), (rx, None, feed)));
            }
            loop {
                let r = tokio::select! {
                    _ = feed.stop.cancelled() => return None,
                    r = rx.recv() => r,
                };
                let out = match r {
                    Ok(ev) => match SseEvent::default().json_data(&ev) {
                        Ok(e) => e,
                        Err(e) => {
                            tracing::warn!(call_id = %ev.call_id, error = %e, "event not sent to dashboard");
                            continue;
                        }
                    },
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        feed.metrics.bus_lagged.with(&["dashboard"]).add(n);
                        tracing::warn!(
                            missed = n,
                            "dashboard stream lagged behind the event bus; resending snapshot"
                        );
                        snapshot_event(&feed.snapshot())
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                };
                return Some((Ok(out), (rx, None, feed)));
            }
        },
    )
}

async fn api_events(AxState(feed): AxState<LiveFeed>) -> axum::response::Response {
    let permit = match feed.stream_permit() {
        Ok(p) => p,
        Err(refused) => return *refused,
    };
    Sse::new(hold(event_stream(feed), permit))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

/// `stream`, keeping `permit` until it is dropped (the client went away or the feed ended).
fn hold<S: Stream>(
    stream: S,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> impl Stream<Item = S::Item> {
    use futures_util::StreamExt;
    stream.map(move |x| {
        let _held = &permit;
        x
    })
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // The binary is the version: after an upgrade the page must not run old code.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

/// JSON that is safe inside a `<script>` element: `<`, `>` and `&` only occur in JSON
/// strings, where their `\u` escapes mean the same, so no `</script>` can end the element.
fn script_json<T: Serialize>(v: &T) -> String {
    match serde_json::to_string(v) {
        Ok(s) => s
            .replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026"),
        // Plain data structs serialise; the page then starts empty and the feed fills it.
        Err(_) => "null".into(),
    }
}

/// The page with the current snapshot inlined.
fn index_page(feed: &LiveFeed) -> String {
    INDEX_HTML.replace("/*SNAPSHOT*/", &script_json(&feed.snapshot()))
}

async fn index(AxState(feed): AxState<LiveFeed>) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        index_page(&feed),
    )
}

/// `/`, its assets and `/api/events`.
pub fn router(feed: LiveFeed) -> Router {
    Router::new()
        .route("/", get(index))
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        )
        .route("/api/events", get(api_events))
        .route("/agent", get(agent::agent_page))
        .route("/agent/{call_id}", get(agent::call_page))
        .route(
            "/agent.js",
            get(|| async { asset("text/javascript; charset=utf-8", agent::AGENT_JS) }),
        )
        .route(
            "/agent.css",
            get(|| async { asset("text/css; charset=utf-8", agent::AGENT_CSS) }),
        )
        .route("/api/agent/events", get(agent::api_agent_events))
        .with_state(feed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::Speaker;
    use crate::events::{CallStarted, EventBody, EventStamper};
    use futures_util::StreamExt;

    fn started(st: &mut EventStamper) -> Event {
        st.stamp(
            0.0,
            "ts".into(),
            EventBody::CallStarted(CallStarted {
                source: "audiosocket".into(),
                speakers: vec![Speaker::Customer, Speaker::Agent],
                sample_rate: 8000,
                agent: None,
            }),
        )
    }

    #[test]
    fn assets_are_self_contained() {
        for (name, text) in [
            ("index.html", INDEX_HTML),
            ("app.js", APP_JS),
            ("style.css", STYLE_CSS),
            ("agent.html", agent::AGENT_HTML),
            ("agent.js", agent::AGENT_JS),
            ("agent.css", agent::AGENT_CSS),
        ] {
            for external in ["http://", "https://", "//cdn", "@import", "fonts.g"] {
                let n = text.matches(external).count()
                    - text.matches("http://www.w3.org/2000/svg").count()
                        * usize::from(external == "http://");
                assert_eq!(n, 0, "{name} references {external}");
            }
        }
        // The page's script never turns event text into markup.
        assert!(!APP_JS.contains("innerHTML"), "app.js must build DOM nodes");
        assert!(
            !agent::AGENT_JS.contains("innerHTML"),
            "agent.js must build DOM nodes"
        );
    }

    #[test]
    fn inlined_snapshot_cannot_end_its_script_element() {
        let metrics = Metrics::new();
        let reg = CallRegistry::new(metrics.clone());
        reg.observe(&started(&mut EventStamper::new(
            "</script><script>alert(1)</script>",
        )));
        let (bus, _) = broadcast::channel(4);
        let feed = LiveFeed::new(
            bus,
            reg,
            StressLevels::default(),
            metrics,
            CancellationToken::new(),
        );
        let page = index_page(&feed);
        assert_eq!(
            page.matches("</script>").count(),
            INDEX_HTML.matches("</script>").count()
        );
        assert!(page.contains("\\u003c/script\\u003e\\u003cscript\\u003ealert(1)"));
        let json = page
            .split(r#"<script id="snapshot" type="application/json">"#)
            .nth(1)
            .and_then(|r| r.split("</script>").next())
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(
            v["calls"][0]["call_id"],
            "</script><script>alert(1)</script>"
        );
    }

    #[tokio::test]
    async fn stream_sends_snapshot_then_events_and_ends_on_stop() {
        let metrics = Metrics::new();
        let reg = CallRegistry::new(metrics.clone());
        let (bus, _) = broadcast::channel(16);
        let mut st = EventStamper::new("c1");
        reg.observe(&started(&mut st));
        let stop = CancellationToken::new();
        let feed = LiveFeed::new(
            bus.clone(),
            reg,
            StressLevels::default(),
            metrics,
            stop.clone(),
        );
        let mut s = Box::pin(event_stream(feed));
        let first = s.next().await.unwrap().unwrap();
        let text = format!("{first:?}");
        assert!(text.contains("snapshot") && text.contains("c1"), "{text}");
        bus.send(started(&mut EventStamper::new("c2"))).unwrap();
        let second = format!("{:?}", s.next().await.unwrap().unwrap());
        assert!(second.contains("c2"), "{second}");
        stop.cancel();
        assert!(s.next().await.is_none());
    }

    #[tokio::test]
    async fn lag_sends_a_fresh_snapshot() {
        let metrics = Metrics::new();
        let reg = CallRegistry::new(metrics.clone());
        let (bus, _) = broadcast::channel(2);
        let stop = CancellationToken::new();
        let feed = LiveFeed::new(
            bus.clone(),
            reg,
            StressLevels::default(),
            metrics.clone(),
            stop,
        );
        let mut s = Box::pin(event_stream(feed));
        let _snapshot = s.next().await.unwrap().unwrap();
        let mut st = EventStamper::new("c3");
        for _ in 0..5 {
            bus.send(started(&mut st)).unwrap();
        }
        let next = format!("{:?}", s.next().await.unwrap().unwrap());
        assert!(next.contains("snapshot"), "{next}");
        assert_eq!(metrics.bus_lagged.with(&["dashboard"]).get(), 3);
    }
}
