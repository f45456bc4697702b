//! `calltone fleet`: one page for many boxes. Subscribes to a central broker (where the box
//! brokers bridge into, see `firmware-config/mosquitto-bridge.conf`) and serves the boxes,
//! their calls and the latest alerts at `/` (HTML) and `/api/fleet` (JSON).
//!
//! Invariants: state is built only from what the broker delivers (retained `status`, QoS 1
//! lifecycle/alert events, QoS 0 state); events are de-duplicated by `event_id`; memory is
//! bounded (ended calls and alerts beyond the last [`KEEP`] are forgotten).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Json, Router};
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};
use serde::Serialize;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::publish::mqtt::{BrokerTarget, MqttConfig};

/// Alerts kept, and ended calls kept per box.
pub const KEEP: usize = 200;

#[derive(Debug, Default, Serialize)]
pub struct FleetCall {
    pub call_id: String,
    pub started: Option<String>,
    /// `call_ended.reason`, null while the call runs.
    pub ended: Option<String>,
    pub alerts: u32,
    /// The last `state` of the customer: stress 0..1.
    pub customer_stress: Option<f64>,
}

#[derive(Debug, Default, Serialize)]
pub struct FleetBox {
    pub site: String,
    #[serde(rename = "box")]
    pub box_id: String,
    /// `online`/`offline` from the retained status, null before one arrived.
    pub status: Option<String>,
    pub calls: BTreeMap<String, FleetCall>,
}

#[derive(Debug, Default, Serialize)]
pub struct Fleet {
    pub boxes: BTreeMap<String, FleetBox>,
    /// Newest last: `{site, box, alert…}`.
    pub alerts: VecDeque<Value>,
    #[serde(skip)]
    seen: HashSet<String>,
    #[serde(skip)]
    seen_order: VecDeque<String>,
}

impl Fleet {
    /// Folds one message on `{prefix}/{site}/{box}/…` into the view.
    pub fn apply(&mut self, prefix: &str, topic: &str, payload: &[u8]) {
        let Some(rest) = topic.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')) else {
            return;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        if parts.len() < 3 {
            return;
        }
        let (site, box_id) = (parts[0], parts[1]);
        let key = format!("{site}/{box_id}");
        let b = self.boxes.entry(key).or_insert_with(|| FleetBox {
            site: site.into(),
            box_id: box_id.into(),
            ..Default::default()
        });
        let Ok(v) = serde_json::from_slice::<Value>(payload) else {
            return; // cleared retained state, bridge notifications
        };
        if parts[2] == "status" {
            b.status = v["state"].as_str().map(str::to_string);
            return;
        }
        if parts[2] != "calls" || parts.len() < 5 {
            return;
        }
        let Some(kind) = v["type"].as_str() else {
            return;
        };
        if kind != "state" {
            let Some(id) = v["event_id"].as_str() else {
                return;
            };
            if !self.seen.insert(id.to_string()) {
                return; // a QoS 1 redelivery
            }
            self.seen_order.push_back(id.to_string());
            if self.seen_order.len() > 64 * KEEP {
                if let Some(old) = self.seen_order.pop_front() {
                    self.seen.remove(&old);
                }
            }
        }
        let call_id = parts[3].to_string();
        let call = b.calls.entry(call_id.clone()).or_insert_with(|| FleetCall {
            call_id,
            ..Default::default()
        });
        match kind {
            "call_started" => call.started = v["ts"].as_str().map(str::to_string),
            "call_ended" => call.ended = v["reason"].as_str().map(str::to_string),
            "state" => call.customer_stress = v["speakers"]["customer"]["stress"].as_f64(),
            "alert" => {
                call.alerts += 1;
                let mut a = v.clone();
                a["site"] = site.into();
                a["box"] = box_id.into();
                self.alerts.push_back(a);
                if self.alerts.len() > KEEP {
                    self.alerts.pop_front();
                }
            }
            _ => {}
        }
        let ended: Vec<String> = b
            .calls
            .values()
            .filter(|c| c.ended.is_some())
            .map(|c| c.call_id.clone())
            .collect();
        for id in ended.iter().take(ended.len().saturating_sub(KEEP)) {
            b.calls.remove(id);
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    #[error("{0}")]
    Config(String),
    #[error("http listener: {0}")]
    Listen(std::io::Error),
}

/// Subscribes to `{prefix}/#` on the broker at `url` (`mqtt://host:port`) and serves the
/// view on `listener` until `shutdown`.
pub async fn run(
    url: &str,
    prefix: &str,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), FleetError> {
    let cfg = MqttConfig {
        url: url.to_string(),
        ..Default::default()
    };
    let (host, port) = match cfg.target().map_err(FleetError::Config)? {
        BrokerTarget::Tcp { host, port } => (host, port),
        _ => {
            return Err(FleetError::Config(format!(
                "--mqtt {url:?}: fleet reads a central broker over mqtt://host:port"
            )))
        }
    };
    let fleet = Arc::new(Mutex::new(Fleet::default()));
    let id = format!("calltone-fleet-{}", std::process::id());
    let mut opts = MqttOptions::new(id, host, port);
    opts.set_keep_alive(Duration::from_secs(15));
    // A persistent session: what arrives while the central broker restarts (it keeps the
    // session) or this client reconnects is queued for it, not missed.
    opts.set_clean_session(false);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(opts, 256);
    let topic = format!("{prefix}/#");
    let (f, p, stop) = (fleet.clone(), prefix.to_string(), shutdown.clone());
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                ev = eventloop.poll() => match ev {
                    Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                        tracing::info!(topic = %topic, "fleet: connected, subscribing");
                        let _ = client.subscribe(topic.clone(), QoS::AtLeastOnce).await;
                    }
                    Ok(MqttEvent::Incoming(Packet::Publish(m))) => {
                        let mut g = f.lock().unwrap_or_else(|e| e.into_inner());
                        g.apply(&p, &m.topic, &m.payload);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "fleet: broker connection lost; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                },
            }
        }
    });
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/api/fleet", get(api))
        .with_state(fleet);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "fleet view listening");
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(FleetError::Listen)
}

async fn api(State(f): State<Arc<Mutex<Fleet>>>) -> impl IntoResponse {
    let g = f.lock().unwrap_or_else(|e| e.into_inner());
    Json(serde_json::to_value(&*g).unwrap_or_default())
}

const PAGE: &str = r#"<!doctype html><html><head><meta charset="utf-8"><title>calltone fleet</title>
<style>body{font:14px system-ui,sans-serif;margin:1.5em;background:#f6f7f9}table{border-collapse:collapse;margin-bottom:1.5em;background:#fff}
td,th{border:1px solid #ccd;padding:4px 8px;text-align:left}.offline{color:#b00}.online{color:#070}.hi{background:#fdd}</style></head>
<body><h1>calltone fleet</h1><div id="boxes"></div><h2>Latest alerts</h2><table id="alerts"></table>
<script>
function esc(s){return String(s??'').replace(/[&<>"]/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]))}
async function tick(){const f=await (await fetch('/api/fleet')).json();let h='';
for(const b of Object.values(f.boxes)){const calls=Object.values(b.calls);const live=calls.filter(c=>!c.ended);
h+=`<h2>${esc(b.site)} / ${esc(b.box)} <span class="${esc(b.status)}">${esc(b.status||'?')}</span> — ${live.length} live call(s)</h2><table><tr><th>call</th><th>started</th><th>ended</th><th>alerts</th><th>customer stress</th></tr>`;
for(const c of calls){h+=`<tr class="${(c.customer_stress||0)>=0.7?'hi':''}"><td>${esc(c.call_id)}</td><td>${esc(c.started)}</td><td>${esc(c.ended||'live')}</td><td>${c.alerts}</td><td>${c.customer_stress==null?'':c.customer_stress.toFixed(2)}</td></tr>`}
h+='</table>'}document.getElementById('boxes').innerHTML=h||'<p>no boxes yet</p>';
let a='<tr><th>box</th><th>call</th><th>kind</th><th>severity</th><th>message</th></tr>';
for(const x of [...f.alerts].reverse()){a+=`<tr><td>${esc(x.site)}/${esc(x.box)}</td><td>${esc(x.call_id)}</td><td>${esc(x.kind)}</td><td>${esc(x.severity)}</td><td>${esc(x.message)}</td></tr>`}
document.getElementById('alerts').innerHTML=a}
tick();setInterval(tick,2000);
</script></body></html>"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_status_calls_and_alerts_and_drops_redeliveries() {
        let mut f = Fleet::default();
        f.apply("calltone", "calltone/s/b1/status", br#"{"state":"online"}"#);
        let started = br#"{"type":"call_started","call_id":"c1","event_id":"c1:0","ts":"T"}"#;
        f.apply("calltone", "calltone/s/b1/calls/c1/lifecycle", started);
        let alert =
            br#"{"type":"alert","call_id":"c1","event_id":"c1:3","kind":"customer_stress"}"#;
        f.apply("calltone", "calltone/s/b1/calls/c1/alert", alert);
        f.apply("calltone", "calltone/s/b1/calls/c1/alert", alert); // redelivered
        f.apply("calltone", "calltone/s/b1/calls/c1/state", b""); // cleared retained state
        f.apply("calltone", "other/s/b1/status", br#"{"state":"offline"}"#);
        let b = &f.boxes["s/b1"];
        assert_eq!(b.status.as_deref(), Some("online"));
        assert_eq!(b.calls["c1"].alerts, 1);
        assert_eq!(b.calls["c1"].started.as_deref(), Some("T"));
        assert_eq!(f.alerts.len(), 1);
        assert_eq!(f.alerts[0]["box"], "b1");
    }
}
