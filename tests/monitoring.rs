//! Monitoring with the real tools: `promtool` checks and unit-tests the shipped alerting rules,
//! and a real Prometheus (Debian's `prometheus`) scrapes a running `calltone serve`, loads
//! the rules and evaluates every query of the Grafana dashboard. Every metric the rules and
//! the dashboard name must exist on `/metrics`, so neither can drift from src/metrics.rs.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::broker::*;
use common::service::*;
use common::*;

fn rules() -> PathBuf {
    root().join("firmware-config/prometheus/calltone-rules.yml")
}

fn rules_test() -> PathBuf {
    root().join("firmware-config/prometheus/calltone-rules.test.yml")
}

fn dashboard() -> serde_json::Value {
    let p = root().join("firmware-config/grafana/calltone.json");
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).expect("dashboard JSON parses")
}

/// Whether `tool` runs; prints a SKIP line when it does not.
fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !ok {
        eprintln!("SKIP: {tool} not found (apt-get install prometheus)");
    }
    ok
}

/// `calltone_*` metric names in `text` (histogram series reduced to their family).
fn names_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(k) = text[i..].find("calltone_") {
        let s = i + k;
        let boundary = s == 0 || !(b[s - 1].is_ascii_alphanumeric() || b[s - 1] == b'_');
        let mut e = s;
        while e < b.len() && (b[e].is_ascii_alphanumeric() || b[e] == b'_') {
            e += 1;
        }
        if boundary {
            let mut n = &text[s..e];
            for suffix in ["_bucket", "_sum", "_count"] {
                n = n.strip_suffix(suffix).unwrap_or(n);
            }
            out.insert(n.to_string());
        }
        i = e;
    }
    out
}

/// The metric families an exposition declares (`# TYPE name kind`).
fn declared(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Every PromQL expression of the dashboard, with Grafana's variables replaced by values
/// Prometheus accepts.
fn dashboard_exprs(d: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            let e = t["expr"].as_str().unwrap();
            let e = e
                .replace("$instance", ".*")
                .replace("$__rate_interval", "1m");
            out.push((p["title"].as_str().unwrap().to_string(), e));
        }
    }
    out
}

fn check_names_exist(exposition: &str, where_: &str) {
    let have = declared(exposition);
    let rules_text = std::fs::read_to_string(rules()).unwrap();
    let dash_text = dashboard().to_string();
    for (what, text) in [("rules", rules_text), ("dashboard", dash_text)] {
        let used = names_in(&text);
        assert!(used.len() >= 8, "{what}: only {used:?}");
        let missing: Vec<_> = used.difference(&have).collect();
        assert!(
            missing.is_empty(),
            "{what} name metrics that {where_} does not export: {missing:?}"
        );
        eprintln!("{what}: {} calltone metrics, all on {where_}", used.len());
    }
}

#[test]
fn rules_pass_promtool_check_and_unit_tests() {
    if !have("promtool") {
        return;
    }
    let check = Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(rules())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&check.stdout).to_string()
        + &String::from_utf8_lossy(&check.stderr);
    eprintln!("{out}");
    assert!(check.status.success(), "promtool check rules: {out}");
    assert!(out.contains("SUCCESS: 9 rules found"), "{out}");

    let test = Command::new("promtool")
        .arg("test")
        .arg("rules")
        .arg(rules_test())
        .output()
        .unwrap();
    let out =
        String::from_utf8_lossy(&test.stdout).to_string() + &String::from_utf8_lossy(&test.stderr);
    eprintln!("{out}");
    assert!(test.status.success(), "promtool test rules: {out}");

    // Every alert has at least one test case that expects it to fire.
    let tests = std::fs::read_to_string(rules_test()).unwrap();
    let rules_text = std::fs::read_to_string(rules()).unwrap();
    for name in rules_text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        assert!(
            tests.contains(&format!(
                "alertname: {name}\n        exp_alerts:\n          - "
            )),
            "no firing case for {name}"
        );
    }
}

#[test]
fn rules_and_dashboard_name_only_exported_metrics() {
    // The registry's own exposition, with no traffic: every family is declared even before
    // its first sample, so this needs no running service.
    let text = calltone::metrics::Metrics::default().render();
    check_names_exist(&text, "Metrics::render");
    let d = dashboard();
    assert_eq!(d["uid"], "calltone");
    let exprs = dashboard_exprs(&d);
    assert!(exprs.len() >= 20, "{} queries", exprs.len());
    for want in [
        "calltone_active_calls",
        "calltone_max_calls",
        "calltone_asr_queue_depth",
        "calltone_asr_lag_seconds",
        "calltone_asr_shed_total",
        "histogram_quantile(0.95",
        "calltone_outbox_depth",
        "calltone_outbox_bytes",
        "calltone_alerts_total",
        "calltone_audio_dropped_total",
    ] {
        assert!(
            exprs.iter().any(|(_, e)| e.contains(want)),
            "dashboard lacks {want}"
        );
    }
}

/// A Prometheus server on a free port with its own storage; killed when dropped.
struct Prometheus {
    port: u16,
    child: Child,
    log: PathBuf,
}

impl Prometheus {
    fn start(dir: &Path, target_port: u16) -> Prometheus {
        let port = free_port();
        let conf = dir.join("prometheus.yml");
        std::fs::write(
            &conf,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {rules:?}\nscrape_configs:\n  - job_name: calltone\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n",
                rules = rules().display().to_string()
            ),
        )
        .unwrap();
        let log = dir.join("prometheus.log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", conf.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start prometheus");
        let p = Prometheus { port, child, log };
        let t0 = Instant::now();
        while !p.get("/-/ready").starts_with("HTTP/1.1 200")
            && !p.get("/-/ready").starts_with("HTTP/1.0 200")
        {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "prometheus not ready:\n{}",
                log_tail(&p.log, 20)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    fn get(&self, path: &str) -> String {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return String::new();
        };
        let _ = write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    fn api(&self, path: &str) -> serde_json::Value {
        let resp = self.get(path);
        let body = resp.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {resp}"))
    }

    /// An instant query's result vector.
    fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        let v = self.api(&format!("/api/v1/query?query={}", urlencode(promql)));
        assert_eq!(v["status"], "success", "{promql}: {v}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    fn wait_for(&self, what: &str, timeout: Duration, mut f: impl FnMut(&Prometheus) -> bool) {
        let t0 = Instant::now();
        while !f(self) {
            assert!(
                t0.elapsed() < timeout,
                "timed out waiting for {what}:\n{}",
                log_tail(&self.log, 20)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Alerts in state `pending` or `firing`, as (name, state).
    fn alerts(&self) -> Vec<(String, String)> {
        let v = self.api("/api/v1/alerts");
        v["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                (
                    a["labels"]["alertname"].as_str().unwrap_or("").to_string(),
                    a["state"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn value(sample: &serde_json::Value) -> f64 {
    sample["value"][1].as_str().unwrap().parse().unwrap()
}

#[test]
fn prometheus_scrapes_serve_and_loads_the_rules() {
    if !have("prometheus") {
        return;
    }
    let Some(model) = model() else { return };
    if !Mosquitto::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(&dir.path().join("broker").tap_mkdir()).unwrap();
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    let serve_dir = dir.path().join("serve").tap_mkdir();
    let serve = Serve::start(&serve_dir, &url, &unique("mon"), &model);
    serve.wait_for("broker connected", Duration::from_secs(20), |s| {
        s.metric("calltone_mqtt_connected") == Some(1.0)
    });
    check_names_exist(&serve.get("/metrics"), "serve's /metrics");

    let prom = Prometheus::start(&dir.path().join("prom").tap_mkdir(), serve.http);
    let t0 = Instant::now();
    prom.wait_for("target up", Duration::from_secs(30), |p| {
        let t = p.api("/api/v1/targets");
        t["data"]["activeTargets"]
            .as_array()
            .is_some_and(|a| a.iter().any(|t| t["health"] == "up"))
    });
    eprintln!(
        "target up after {:.1} s",
        t0.elapsed().as_secs_f64().max(0.0)
    );
    let targets = prom.api("/api/v1/targets");
    let target = &targets["data"]["activeTargets"][0];
    assert_eq!(target["labels"]["job"], "calltone", "{target}");
    assert_eq!(target["lastError"], "", "{target}");

    // calltone's series are in Prometheus with the values serve reports.
    prom.wait_for("calltone series", Duration::from_secs(20), |p| {
        !p.query("calltone_mqtt_connected").is_empty()
    });
    let up = prom.query("up{job=\"calltone\"}");
    assert_eq!(value(&up[0]), 1.0, "{up:?}");
    assert_eq!(value(&prom.query("calltone_mqtt_connected")[0]), 1.0);
    assert_eq!(value(&prom.query("calltone_active_calls")[0]), 0.0);
    let max_calls = value(&prom.query("calltone_max_calls")[0]);
    assert!(max_calls >= 1.0, "calltone_max_calls {max_calls}");
    assert!(value(&prom.query("calltone_outbox_max_bytes")[0]) >= 65536.0);
    let series = prom.api(&format!(
        "/api/v1/label/__name__/values?match[]={}",
        urlencode("{job=\"calltone\"}")
    ));
    let names: BTreeSet<String> = series["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n.as_str())
        .filter(|n| n.starts_with("calltone_"))
        .map(str::to_string)
        .collect();
    eprintln!("{} calltone series names in Prometheus", names.len());
    assert!(names.contains("calltone_mqtt_publish_latency_seconds_bucket"));
    assert!(names.contains("calltone_asr_queue_depth"));

    // Prometheus loaded the shipped rules, healthy, and every dashboard query is valid
    // PromQL that it evaluates.
    let rules = prom.api("/api/v1/rules");
    let loaded: Vec<&serde_json::Value> = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert_eq!(loaded.len(), 9, "{rules}");
    prom.wait_for("rules evaluated", Duration::from_secs(20), |p| {
        let r = p.api("/api/v1/rules");
        r["data"]["groups"][0]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["health"] == "ok")
    });
    for (title, e) in dashboard_exprs(&dashboard()) {
        let v = prom.api(&format!("/api/v1/query?query={}", urlencode(&e)));
        assert_eq!(v["status"], "success", "panel {title}: {e}: {v}");
    }
    assert!(prom.alerts().is_empty(), "{:?}", prom.alerts());

    // Take the broker away: the disconnected alert goes pending; then the process: down.
    broker.stop();
    prom.wait_for(
        "CalltoneBrokerDisconnected pending",
        Duration::from_secs(30),
        |p| {
            p.alerts()
                .iter()
                .any(|(n, s)| n == "CalltoneBrokerDisconnected" && s == "pending")
        },
    );
    serve.sigkill();
    prom.wait_for("CalltoneDown pending", Duration::from_secs(30), |p| {
        p.alerts()
            .iter()
            .any(|(n, s)| n == "CalltoneDown" && s == "pending")
    });
    eprintln!("alerts after broker stop and SIGKILL: {:?}", prom.alerts());
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}

impl TapMkdir for PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}
