//! The agent-facing page: `/agent/{call_id}` (one call) and `/agent?agent=ID` (that agent's
//! current call, following the next one when it starts), live over `/api/agent/events`.
//!
//! The stream sends a `snapshot` (the call, its active nudges), then only what the page needs
//! for that call: `call_started`, `call_ended`, `assist` events as published, and a reduced
//! `state` (`type`, `call_id`, `t`: the call clock). Nothing about the customer's stress or
//! words reaches the agent page: it shows nudges, and a nudge never carries an inferred
//! emotion of the agent.

use std::collections::BTreeSet;
use std::convert::Infallible;

use axum::extract::{Path, Query, State as AxState};
use axum::http::header;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::IntoResponse;
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::{hold, script_json, LiveFeed, KEEP_ALIVE, RETRY};
use crate::events::{Event, EventBody};
use crate::http::ActiveNudge;

pub(super) const AGENT_HTML: &str = include_str!("agent.html");
pub(super) const AGENT_JS: &str = include_str!("agent.js");
pub(super) const AGENT_CSS: &str = include_str!("agent.css");

/// Longest agent id accepted in a query (ids come from ingest metadata, validated there).
const MAX_AGENT_ID: usize = 64;

/// Which call(s) a page follows.
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct Follow {
    call_id: Option<String>,
    agent: Option<String>,
}

impl Follow {
    fn valid(&self) -> bool {
        let ok = |s: &Option<String>| s.as_ref().is_none_or(|s| s.len() <= 256);
        ok(&self.call_id) && self.agent.as_ref().is_none_or(|a| a.len() <= MAX_AGENT_ID)
    }
}

#[derive(Debug, Serialize)]
struct CallBrief {
    call_id: String,
    t: f64,
}

/// The agent page's first state.
#[derive(Debug, Serialize)]
struct AgentSnapshot {
    call: Option<CallBrief>,
    nudges: Vec<ActiveNudge>,
}

fn snapshot(feed: &LiveFeed, f: &Follow) -> AgentSnapshot {
    let call = match (&f.call_id, &f.agent) {
        (Some(id), _) => feed.calls.call(id),
        (None, Some(agent)) => feed.calls.calls_of_agent(agent).into_iter().next(),
        (None, None) => None,
    };
    AgentSnapshot {
        nudges: call.as_ref().map(|c| c.nudges.clone()).unwrap_or_default(),
        call: call.map(|c| CallBrief {
            call_id: c.call_id,
            t: c.t,
        }),
    }
}

/// What of `ev` the page for `f` gets, if anything; `followed` tracks the agent's calls.
fn for_page(ev: &Event, f: &Follow, followed: &mut BTreeSet<String>) -> Option<serde_json::Value> {
    let mine = match (&f.call_id, &f.agent) {
        (Some(id), _) => &ev.call_id == id,
        (None, Some(agent)) => {
            if let EventBody::CallStarted(s) = &ev.body {
                if s.agent.as_deref() == Some(agent.as_str()) {
                    followed.insert(ev.call_id.clone());
                }
            }
            followed.contains(&ev.call_id)
        }
        (None, None) => false,
    };
    if !mine {
        return None;
    }
    match &ev.body {
        EventBody::CallStarted(_) | EventBody::Assist(_) => serde_json::to_value(ev).ok(),
        EventBody::CallEnded(_) => {
            followed.remove(&ev.call_id);
            Some(serde_json::json!({"type": "call_ended", "call_id": ev.call_id, "t": ev.t}))
        }
        EventBody::State(_) => {
            Some(serde_json::json!({"type": "state", "call_id": ev.call_id, "t": ev.t}))
        }
        _ => None,
    }
}

fn snapshot_event(s: &AgentSnapshot) -> SseEvent {
    match SseEvent::default().event("snapshot").json_data(s) {
        Ok(e) => e.retry(RETRY),
        Err(_) => SseEvent::default().comment("snapshot unavailable"),
    }
}

fn agent_stream(feed: LiveFeed, f: Follow) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let rx = feed.bus.subscribe();
    let mut followed = BTreeSet::new();
    if let Some(agent) = &f.agent {
        for c in feed.calls.calls_of_agent(agent) {
            followed.insert(c.call_id);
        }
    }
    let first = snapshot_event(&snapshot(&feed, &f));
    futures_util::stream::unfold(
        (rx, Some(first), feed, f, followed),
        |(mut rx, first, feed, f, mut followed)| async move {
            if let Some(ev) = first {
                return Some((Ok(ev), (rx, None, feed, f, followed)));
            }
            loop {
                let r = tokio::select! {
                    _ = feed.stop.cancelled() => return None,
                    r = rx.recv() => r,
                };
                let out = match r {
                    Ok(ev) => match for_page(&ev, &f, &mut followed) {
                        Some(v) => match SseEvent::default().json_data(&v) {
                            Ok(e) => e,
                            Err(_) => continue,
                        },
                        None => continue,
                    },
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        feed.metrics.bus_lagged.with(&["agent_page"]).add(n);
                        snapshot_event(&snapshot(&feed, &f))
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                };
                return Some((Ok(out), (rx, None, feed, f, followed)));
            }
        },
    )
}

fn bad_request() -> axum::response::Response {
    (
        axum::http::StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "call_id or agent too long\n",
    )
        .into_response()
}

pub(super) async fn api_agent_events(
    AxState(feed): AxState<LiveFeed>,
    Query(f): Query<Follow>,
) -> axum::response::Response {
    if !f.valid() {
        return bad_request();
    }
    let permit = match feed.stream_permit() {
        Ok(p) => p,
        Err(refused) => return *refused,
    };
    Sse::new(hold(agent_stream(feed, f), permit))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

fn page(feed: &LiveFeed, f: &Follow) -> axum::response::Response {
    if !f.valid() {
        return bad_request();
    }
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        AGENT_HTML.replace("/*SNAPSHOT*/", &script_json(&snapshot(feed, f))),
    )
        .into_response()
}

/// `/agent/{call_id}`.
pub(super) async fn call_page(
    AxState(feed): AxState<LiveFeed>,
    Path(call_id): Path<String>,
) -> axum::response::Response {
    page(
        &feed,
        &Follow {
            call_id: Some(call_id),
            agent: None,
        },
    )
}

/// `/agent?agent=ID`.
pub(super) async fn agent_page(
    AxState(feed): AxState<LiveFeed>,
    Query(f): Query<Follow>,
) -> axum::response::Response {
    page(
        &feed,
        &Follow {
            call_id: None,
            agent: f.agent,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::Speaker;
    use crate::events::{Assist, AssistKind, CallStarted, EventStamper, State};

    #[test]
    fn the_page_gets_only_its_calls_nudges_and_clock() {
        let mut a = EventStamper::new("a");
        let mut b = EventStamper::new("b");
        let start = |st: &mut EventStamper, agent: &str| {
            st.stamp(
                0.0,
                String::new(),
                EventBody::CallStarted(CallStarted {
                    source: "l16".into(),
                    speakers: vec![Speaker::Customer, Speaker::Agent],
                    sample_rate: 8000,
                    agent: Some(agent.into()),
                }),
            )
        };
        let f = Follow {
            call_id: None,
            agent: Some("alice".into()),
        };
        let mut followed = BTreeSet::new();
        assert!(for_page(&start(&mut a, "alice"), &f, &mut followed).is_some());
        assert!(for_page(&start(&mut b, "bob"), &f, &mut followed).is_none());
        let state = a.stamp(
            3.0,
            String::new(),
            EventBody::State(State {
                speakers: Default::default(),
            }),
        );
        let v = for_page(&state, &f, &mut followed).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "state", "call_id": "a", "t": 3.0})
        );
        let nudge = a.stamp(
            4.0,
            String::new(),
            EventBody::Assist(Assist {
                assist_id: "a:assist:0".into(),
                kind: AssistKind::DeadAir,
                message: "m".into(),
                active: true,
                evidence: serde_json::json!({}),
            }),
        );
        assert_eq!(
            for_page(&nudge, &f, &mut followed).unwrap()["type"],
            "assist"
        );
        let other = b.stamp(
            4.0,
            String::new(),
            EventBody::Assist(Assist {
                assist_id: "b:assist:0".into(),
                kind: AssistKind::DeadAir,
                message: "m".into(),
                active: true,
                evidence: serde_json::json!({}),
            }),
        );
        assert!(for_page(&other, &f, &mut followed).is_none());
        assert!(!Follow {
            call_id: None,
            agent: Some("x".repeat(65)),
        }
        .valid());
    }
}
