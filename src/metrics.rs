//! Service metrics: a small hand-written registry of counters, gauges and histograms with
//! Prometheus text exposition (`/metrics`).
//!
//! Every drop, shed, retry and latency in the live service has a metric here. Hot paths
//! (audio intake) resolve a labelled series once ([`Family::with`]) and then bump an atomic;
//! nothing here allocates or locks per audio frame.
//!
//! Invariants: metric and label names are fixed at compile time; label values are escaped on
//! output; a family never holds more series than its label combinations seen (sources,
//! reasons and alert kinds are small closed sets, never call ids).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (stored as an `f64` bit pattern so fractional values such
/// as lag in seconds fit).
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
    pub fn add(&self, d: f64) {
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            let new = (f64::from_bits(cur) + d).to_bits();
            match self
                .0
                .compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }
    pub fn inc(&self) {
        self.add(1.0);
    }
    pub fn dec(&self) {
        self.add(-1.0);
    }
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// A histogram with fixed upper bounds (seconds for latencies).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Non-cumulative counts per bucket; the last one is `+Inf`.
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    /// Sum in microunits (µs for second-valued histograms), to stay atomic without floats.
    sum_micro: AtomicI64,
}

/// Latency buckets, seconds: 1 ms … 30 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micro: AtomicI64::new(0),
        }
    }

    pub fn observe(&self, v: f64) {
        let i = self.bounds.partition_point(|b| *b < v);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micro
            .fetch_add((v * 1e6).round() as i64, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new(LATENCY_BUCKETS)
    }
}

/// A metric with labels: one series per distinct label-value tuple.
#[derive(Debug)]
pub struct Family<T> {
    labels: &'static [&'static str],
    series: Mutex<BTreeMap<Vec<String>, Arc<T>>>,
}

impl<T: Default> Family<T> {
    pub fn new(labels: &'static [&'static str]) -> Self {
        Self {
            labels,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    /// The series for these label values (created on first use). Callers on hot paths keep
    /// the returned `Arc` instead of calling this per event.
    pub fn with(&self, values: &[&str]) -> Arc<T> {
        debug_assert_eq!(values.len(), self.labels.len());
        let key: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        let mut map = self.series.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(key).or_default().clone()
    }

    fn snapshot(&self) -> Vec<(Vec<String>, Arc<T>)> {
        let map = self.series.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// Every metric the service exports. One instance per process, shared as `Arc<Metrics>`.
#[derive(Debug)]
pub struct Metrics {
    /// Calls currently known to the call registry.
    pub active_calls: Gauge,
    /// The configured call limit (`security.max_calls`), for capacity panels and alerts.
    pub max_calls: Gauge,
    /// Audio frames received, by source (`audiosocket`, `twilio`, `l16`, `device`).
    pub audio_frames: Family<Counter>,
    /// Audio frames dropped before the call router, by source and reason
    /// (`router_full`: router did not take the frame within the send timeout).
    pub audio_dropped: Family<Counter>,
    /// Frames rejected as malformed, by source and reason.
    pub bad_frames: Family<Counter>,
    /// Ingest connections closed, by source and reason (`hangup`, `disconnected`, `timeout`,
    /// `error`, `shutdown`, `rejected`, `router_gone`).
    pub connections_closed: Family<Counter>,
    /// Media-stream frames dropped by the reorder buffer, by reason (`duplicate`, `late`).
    pub reorder_dropped: Family<Counter>,
    /// Utterances seen on the event bus.
    pub utterances: Counter,
    /// Alerts seen on the event bus, by kind.
    pub alerts: Family<Counter>,
    /// Utterances waiting for a Whisper worker.
    pub asr_queue_depth: Gauge,
    /// Age in seconds of the oldest utterance waiting for ASR.
    pub asr_lag_seconds: Gauge,
    /// Utterances reported as not transcribed because the ASR pool shed them.
    pub asr_shed: Counter,
    /// Unacknowledged QoS 1 entries in the outbox.
    pub outbox_depth: Gauge,
    /// Bytes on disk used by outbox segments.
    pub outbox_bytes: Gauge,
    /// The configured outbox bound (`mqtt.outbox_max_bytes`).
    pub outbox_max_bytes: Gauge,
    /// QoS 1 events refused because the outbox was full (drop-newest policy).
    pub outbox_full_drops: Counter,
    /// Corrupt outbox tails truncated on open.
    pub outbox_truncations: Counter,
    /// 1 while the MQTT client is connected to its broker.
    pub mqtt_connected: Gauge,
    /// MQTT connection failures/disconnects (each one triggers a backoff and reconnect).
    pub mqtt_disconnects: Counter,
    /// QoS 1 entries (re)sent to the broker.
    pub mqtt_published: Counter,
    /// QoS 0 state updates that could not be handed to the MQTT client.
    pub mqtt_state_dropped: Counter,
    /// Time from handing a QoS 1 publish to the client until its PUBACK, seconds.
    pub mqtt_publish_latency: Histogram,
    /// Time from the audio that triggered an alert to the alert being emitted, seconds.
    pub audio_to_alert_latency: Histogram,
    /// Events missed by a lagging event-bus subscriber, by subscriber.
    pub bus_lagged: Family<Counter>,
    /// Events not delivered over MQTT, by reason (`oversize`: over `mqtt.max_packet_bytes`,
    /// refused at publish; `set_aside`: the broker kept refusing it, kept on disk; `corrupt`:
    /// unreadable in the outbox, its bytes kept in `outbox/corrupt/`; `corrupt_not_kept`: the
    /// same past that directory's bound).
    pub mqtt_refused: Family<Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            active_calls: Gauge::default(),
            max_calls: Gauge::default(),
            audio_frames: Family::new(&["source"]),
            audio_dropped: Family::new(&["source", "reason"]),
            bad_frames: Family::new(&["source", "reason"]),
            connections_closed: Family::new(&["source", "reason"]),
            reorder_dropped: Family::new(&["source", "reason"]),
            utterances: Counter::default(),
            alerts: Family::new(&["kind"]),
            asr_queue_depth: Gauge::default(),
            asr_lag_seconds: Gauge::default(),
            asr_shed: Counter::default(),
            outbox_depth: Gauge::default(),
            outbox_bytes: Gauge::default(),
            outbox_max_bytes: Gauge::default(),
            outbox_full_drops: Counter::default(),
            outbox_truncations: Counter::default(),
            mqtt_connected: Gauge::default(),
            mqtt_disconnects: Counter::default(),
            mqtt_published: Counter::default(),
            mqtt_state_dropped: Counter::default(),
            mqtt_publish_latency: Histogram::default(),
            audio_to_alert_latency: Histogram::default(),
            bus_lagged: Family::new(&["subscriber"]),
            mqtt_refused: Family::new(&["reason"]),
        }
    }
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let w = &mut out;
        gauge(
            w,
            "calltone_active_calls",
            "Calls in progress.",
            &self.active_calls,
        );
        gauge(
            w,
            "calltone_max_calls",
            "Configured call limit (security.max_calls).",
            &self.max_calls,
        );
        counter_family(
            w,
            "calltone_audio_frames_total",
            "Audio frames received.",
            &self.audio_frames,
        );
        counter_family(
            w,
            "calltone_audio_dropped_total",
            "Audio frames dropped before the call router.",
            &self.audio_dropped,
        );
        counter_family(
            w,
            "calltone_bad_frames_total",
            "Malformed ingest frames.",
            &self.bad_frames,
        );
        counter_family(
            w,
            "calltone_connections_closed_total",
            "Ingest connections closed.",
            &self.connections_closed,
        );
        counter_family(
            w,
            "calltone_reorder_dropped_total",
            "Media frames dropped by the reorder buffer.",
            &self.reorder_dropped,
        );
        counter(
            w,
            "calltone_utterances_total",
            "Utterances emitted.",
            &self.utterances,
        );
        counter_family(w, "calltone_alerts_total", "Alerts emitted.", &self.alerts);
        gauge(
            w,
            "calltone_asr_queue_depth",
            "Utterances waiting for ASR.",
            &self.asr_queue_depth,
        );
        gauge(
            w,
            "calltone_asr_lag_seconds",
            "Age of the oldest utterance waiting for ASR.",
            &self.asr_lag_seconds,
        );
        counter(
            w,
            "calltone_asr_shed_total",
            "Utterances shed by the ASR pool.",
            &self.asr_shed,
        );
        gauge(
            w,
            "calltone_outbox_depth",
            "Unacknowledged QoS 1 events in the outbox.",
            &self.outbox_depth,
        );
        gauge(
            w,
            "calltone_outbox_bytes",
            "Bytes used by outbox segments on disk.",
            &self.outbox_bytes,
        );
        gauge(
            w,
            "calltone_outbox_max_bytes",
            "Configured outbox bound (mqtt.outbox_max_bytes).",
            &self.outbox_max_bytes,
        );
        counter(
            w,
            "calltone_outbox_full_drops_total",
            "QoS 1 events refused because the outbox was full.",
            &self.outbox_full_drops,
        );
        counter(
            w,
            "calltone_outbox_truncations_total",
            "Corrupt outbox tails truncated on open.",
            &self.outbox_truncations,
        );
        gauge(
            w,
            "calltone_mqtt_connected",
            "1 while connected to the MQTT broker.",
            &self.mqtt_connected,
        );
        counter(
            w,
            "calltone_mqtt_disconnects_total",
            "MQTT connection failures and disconnects.",
            &self.mqtt_disconnects,
        );
        counter(
            w,
            "calltone_mqtt_published_total",
            "QoS 1 publishes (including resends).",
            &self.mqtt_published,
        );
        counter(
            w,
            "calltone_mqtt_state_dropped_total",
            "QoS 0 state updates dropped.",
            &self.mqtt_state_dropped,
        );
        histogram(
            w,
            "calltone_mqtt_publish_latency_seconds",
            "Publish to PUBACK.",
            &self.mqtt_publish_latency,
        );
        histogram(
            w,
            "calltone_audio_to_alert_latency_seconds",
            "Triggering audio to alert emission.",
            &self.audio_to_alert_latency,
        );
        counter_family(
            w,
            "calltone_bus_lagged_total",
            "Events missed by a lagging bus subscriber.",
            &self.bus_lagged,
        );
        counter_family(
            w,
            "calltone_mqtt_events_refused_total",
            "Events not delivered over MQTT (oversize at publish, set aside after repeated broker refusals, corrupt on disk).",
            &self.mqtt_refused,
        );
        out
    }
}

fn header(w: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(w, "# HELP {name} {help}");
    let _ = writeln!(w, "# TYPE {name} {kind}");
}

fn fmt_f64(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

fn labels(names: &[&str], values: &[String]) -> String {
    if names.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{n}=\"{v}\"")
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

fn counter(w: &mut String, name: &str, help: &str, c: &Counter) {
    header(w, name, help, "counter");
    let _ = writeln!(w, "{name} {}", c.get());
}

fn gauge(w: &mut String, name: &str, help: &str, g: &Gauge) {
    header(w, name, help, "gauge");
    let _ = writeln!(w, "{name} {}", fmt_f64(g.get()));
}

fn counter_family(w: &mut String, name: &str, help: &str, f: &Family<Counter>) {
    header(w, name, help, "counter");
    for (values, c) in f.snapshot() {
        let _ = writeln!(w, "{name}{} {}", labels(f.labels, &values), c.get());
    }
}

fn histogram(w: &mut String, name: &str, help: &str, h: &Histogram) {
    header(w, name, help, "histogram");
    let mut cum = 0u64;
    for (i, b) in h.buckets.iter().enumerate() {
        cum += b.load(Ordering::Relaxed);
        let le = h.bounds.get(i).copied().unwrap_or(f64::INFINITY);
        let _ = writeln!(w, "{name}_bucket{{le=\"{}\"}} {cum}", fmt_f64(le));
    }
    let sum = h.sum_micro.load(Ordering::Relaxed) as f64 / 1e6;
    let _ = writeln!(w, "{name}_sum {sum}");
    let _ = writeln!(w, "{name}_count {}", h.count());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.active_calls.set(2.0);
        m.audio_frames.with(&["audiosocket"]).add(5);
        m.bad_frames.with(&["twilio", "bad \"json\""]).inc();
        m.mqtt_publish_latency.observe(0.003);
        m.mqtt_publish_latency.observe(100.0);
        let text = m.render();
        assert!(text.contains("calltone_active_calls 2\n"), "{text}");
        assert!(text.contains("calltone_audio_frames_total{source=\"audiosocket\"} 5\n"));
        assert!(
            text.contains(r#"calltone_bad_frames_total{source="twilio",reason="bad \"json\""} 1"#)
        );
        assert!(text.contains("calltone_mqtt_publish_latency_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("calltone_mqtt_publish_latency_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("calltone_mqtt_publish_latency_seconds_count 2\n"));
        assert!(text.contains("# TYPE calltone_outbox_depth gauge\n"));
    }

    #[test]
    fn gauge_adds_fractions() {
        let g = Gauge::default();
        g.inc();
        g.add(0.5);
        g.dec();
        assert_eq!(g.get(), 0.5);
    }

    #[test]
    fn family_reuses_series() {
        let f: Family<Counter> = Family::new(&["source"]);
        f.with(&["a"]).inc();
        f.with(&["a"]).inc();
        assert_eq!(f.with(&["a"]).get(), 2);
        assert_eq!(f.snapshot().len(), 1);
    }
}
