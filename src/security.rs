//! `[security]`: the limits every listener and leg runs under, and the checks on where a
//! listener binds. Plain values and pure functions; the sources, the HTTP listeners and the
//! call router read them.
//!
//! Invariants (ARCHITECTURE.md "Security"):
//! * nothing a client sends grows memory or CPU without a bound: connections per listener,
//!   open calls, audio faster than real time per leg and the time to send a request's
//!   headers are all capped here;
//! * a listener bound to anything but loopback without authentication is logged as a warning
//!   at start ([`warn_if_exposed`]).

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

/// `[security]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// A leg may send audio at most this many times faster than real time (after
    /// `pacing_burst_s`); audio beyond it is dropped and counted in
    /// `calltone_audio_dropped_total{reason="too_fast"}`. Default 3.0.
    pub max_realtime_factor: f64,
    /// Seconds of audio a leg may send ahead of the real-time budget (network jitter,
    /// buffered start). Default 5.0.
    pub pacing_burst_s: f64,
    /// Calls open at once; a `Start` for a new call beyond it is refused and counted.
    /// Default 256.
    pub max_calls: usize,
    /// Open connections per listener (supervisor HTTP, media ingest, AudioSocket); more are
    /// closed at accept and counted. Default 512.
    pub max_connections: usize,
    /// Connections one source address may hold on the supervisor listener, so one client
    /// (a slowloris, a runaway script) cannot take every slot; 0 = no per-address cap.
    /// Behind a reverse proxy every client shares the proxy's address: raise it or use 0.
    /// Not applied to media ingest and AudioSocket, whose legs come from a few PBX
    /// addresses (use `audiosocket.allow_networks` and the media credentials there).
    /// Default 64.
    pub http_max_connections_per_ip: usize,
    /// An HTTP connection must deliver its first request's headers within this many
    /// seconds, else it is closed (slowloris). Default 10.
    pub http_header_timeout_s: f64,
    /// Supervisor listener authentication: a file of SHA-256 digests (hex, one per line,
    /// `#` comments, optional `name:` before the digest) of bearer tokens. When set, every
    /// supervisor request needs `Authorization: Bearer TOKEN` (or HTTP basic auth with the
    /// token as password) whose digest is listed; others get 401. Make a digest with
    /// `printf %s "$TOKEN" | sha256sum`. Default: none (no authentication; loopback only).
    pub http_tokens_file: Option<std::path::PathBuf>,
    /// `/healthz` answers without a token (load balancers, watchdogs). Default true.
    pub healthz_open: bool,
    /// `/metrics` answers without a token (a Prometheus without credentials). Default false.
    pub metrics_open: bool,
    /// Host header names (without port) the supervisor listener answers to, against DNS
    /// rebinding; others get 421. Default empty: any.
    pub allowed_hosts: Vec<String>,
    /// Live feeds (dashboard `/api/events`, agent pages `/api/agent/events`) open at once;
    /// more get 503 (`calltone_connections_closed_total{reason="too_many_streams"}`).
    /// Default 64.
    pub max_sse_clients: usize,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            max_realtime_factor: 3.0,
            pacing_burst_s: 5.0,
            max_calls: 256,
            max_connections: 512,
            http_max_connections_per_ip: 64,
            http_header_timeout_s: 10.0,
            http_tokens_file: None,
            healthz_open: true,
            metrics_open: false,
            allowed_hosts: Vec::new(),
            max_sse_clients: 64,
        }
    }
}

impl SecurityConfig {
    /// Checks values; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        let finite_pos = |v: f64| v.is_finite() && v > 0.0;
        if !(finite_pos(self.max_realtime_factor) && self.max_realtime_factor >= 1.0) {
            return Err(format!(
                "security.max_realtime_factor {} must be a finite number >= 1",
                self.max_realtime_factor
            ));
        }
        if !(self.pacing_burst_s.is_finite() && self.pacing_burst_s >= 0.0) {
            return Err(format!(
                "security.pacing_burst_s {} must be a finite number >= 0",
                self.pacing_burst_s
            ));
        }
        if self.max_calls == 0 {
            return Err("security.max_calls must be at least 1".into());
        }
        if self.max_sse_clients == 0 {
            return Err("security.max_sse_clients must be at least 1".into());
        }
        if self.max_connections == 0 {
            return Err("security.max_connections must be at least 1".into());
        }
        if !finite_pos(self.http_header_timeout_s) {
            return Err(format!(
                "security.http_header_timeout_s {} must be a finite number > 0",
                self.http_header_timeout_s
            ));
        }
        Ok(())
    }
}

/// Who may use the supervisor listener: bearer tokens (by SHA-256 digest) and Host names.
#[derive(Debug, Clone, Default)]
pub struct SupervisorAuth {
    digests: Vec<[u8; 32]>,
    healthz_open: bool,
    metrics_open: bool,
    hosts: Vec<String>,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No or unknown credentials (401).
    Unauthorized,
    /// Host header not allowed (421).
    BadHost,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Unauthorized => "unauthorized",
            Refusal::BadHost => "bad_host",
        }
    }
}

impl SupervisorAuth {
    /// Reads `security.http_tokens_file`; the error names the file and line.
    pub fn from_config(c: &SecurityConfig) -> Result<Self, String> {
        let digests = match &c.http_tokens_file {
            Some(path) => read_digest_file("security.http_tokens_file", path)?,
            None => Vec::new(),
        };
        Ok(Self {
            digests,
            healthz_open: c.healthz_open,
            metrics_open: c.metrics_open,
            hosts: c
                .allowed_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
        })
    }

    /// Whether requests need credentials.
    pub fn enabled(&self) -> bool {
        !self.digests.is_empty()
    }

    /// Checks one request: its path, `Host` and `Authorization` header values.
    pub fn check(
        &self,
        path: &str,
        host: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<(), Refusal> {
        if !self.hosts.is_empty() {
            let name = host.map(host_name).unwrap_or_default();
            if !self.hosts.contains(&name) {
                return Err(Refusal::BadHost);
            }
        }
        if self.digests.is_empty()
            || (path == "/healthz" && self.healthz_open)
            || (path == "/metrics" && self.metrics_open)
        {
            return Ok(());
        }
        let token = authorization
            .and_then(credential)
            .ok_or(Refusal::Unauthorized)?;
        let d: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()).into();
        // Digests of the secret are compared, so timing reveals nothing about the token.
        if self.digests.contains(&d) {
            Ok(())
        } else {
            Err(Refusal::Unauthorized)
        }
    }
}

/// The host name of a `Host` header value, lowercase, without port or IPv6 brackets.
fn host_name(h: &str) -> String {
    let h = h.trim();
    let name = if let Some(rest) = h.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        h.rsplit_once(':').map_or(h, |(n, _)| n)
    };
    name.to_ascii_lowercase()
}

/// The secret of `Bearer TOKEN` or of `Basic base64(user:TOKEN)`.
fn credential(v: &str) -> Option<String> {
    use base64::Engine as _;
    let (scheme, rest) = v.trim().split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.trim().to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?;
        let s = String::from_utf8(raw).ok()?;
        return s.split_once(':').map(|(_, p)| p.to_string());
    }
    None
}

fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    let b = hex.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

/// Whether every address `addr` can resolve to is a loopback address. A literal
/// `IP:port` is checked directly; `localhost:port` counts as loopback; any other name is
/// treated as exposed.
pub fn is_loopback(addr: &str) -> bool {
    if let Ok(sa) = addr.parse::<SocketAddr>() {
        return sa.ip().is_loopback();
    }
    match addr.rsplit_once(':') {
        Some((host, _)) => {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            host.eq_ignore_ascii_case("localhost")
                || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        None => false,
    }
}

/// A network in CIDR notation (`10.0.0.0/8`, `fd00::/8`; a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (a, p) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("{s:?} is not an IP network (e.g. 10.0.0.0/8)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0..={max}"))?,
        };
        Ok(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let bits = |ip: IpAddr| -> u128 {
            match ip {
                IpAddr::V4(v) => u32::from(v) as u128,
                IpAddr::V6(v) => u128::from(v),
            }
        };
        let width = if self.addr.is_ipv4() { 32 } else { 128 };
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        if self.prefix == 0 {
            return true;
        }
        let shift = width - self.prefix as u32;
        (bits(ip) >> shift) == (bits(self.addr) >> shift)
    }
}

/// Whether `ip` is in any of `networks` (CIDR strings, validated at load); an empty list
/// allows everyone.
pub fn allowed(networks: &[String], ip: IpAddr) -> bool {
    networks.is_empty()
        || networks
            .iter()
            .filter_map(|n| Network::parse(n).ok())
            .any(|n| n.contains(ip))
}

/// Reads a file of SHA-256 digests (64 hex digits per line, `name:` prefix allowed, `#`
/// comments), e.g. `security.http_tokens_file`. The error names the key, the file and the line.
pub fn read_digest_file(key: &str, path: &std::path::Path) -> Result<Vec<[u8; 32]>, String> {
    read_lines(key, path, "a SHA-256 digest (64 hex digits)", |line| {
        parse_digest(line.rsplit(':').next().unwrap_or(line).trim())
    })
}

/// Reads a file of `user:digest` lines (SHA-256 of each user's password, hex; `#` comments):
/// the embedded broker's users. The error names the key, the file and the line.
pub fn read_user_file(
    key: &str,
    path: &std::path::Path,
) -> Result<Vec<(String, [u8; 32])>, String> {
    read_lines(
        key,
        path,
        "USER:SHA256 (64 hex digits of the password's digest)",
        |line| {
            let (u, hex) = line.rsplit_once(':')?;
            let u = u.trim();
            if u.is_empty() {
                return None;
            }
            Some((u.to_string(), parse_digest(hex.trim())?))
        },
    )
}

/// The entries of a credentials file: one per non-blank, non-`#` line, parsed by `parse`;
/// at least one. Errors name the key, the file and the line (`expect` says what a line holds).
fn read_lines<T>(
    key: &str,
    path: &std::path::Path,
    expect: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("{key} {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let entry = parse(line)
            .ok_or_else(|| format!("{key} {}:{}: expected {expect}", path.display(), n + 1))?;
        out.push(entry);
    }
    if out.is_empty() {
        return Err(format!("{key} {}: no entries", path.display()));
    }
    Ok(out)
}

/// Whether `secret`'s SHA-256 digest is one of `digests` (digests are compared, so timing
/// reveals nothing about the secret).
pub fn digest_listed(digests: &[[u8; 32]], secret: &str) -> bool {
    let d: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(secret.as_bytes()).into();
    digests.contains(&d)
}

/// Logs a warning when `listener` binds to a non-loopback address without authentication.
/// Returns whether it warned.
pub fn warn_if_exposed(listener: &str, addr: &str, authenticated: bool) -> bool {
    if addr.trim().is_empty() || authenticated || is_loopback(addr) {
        return false;
    }
    tracing::warn!(
        listener,
        %addr,
        "listener bound to a non-loopback address without authentication; anyone who can reach it can use it"
    );
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        SecurityConfig::default().validate().unwrap();
    }

    #[test]
    fn nan_and_negative_values_name_the_key() {
        let mut c = SecurityConfig {
            max_realtime_factor: f64::NAN,
            ..Default::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .contains("security.max_realtime_factor"));
        c.max_realtime_factor = 2.0;
        c.pacing_burst_s = -1.0;
        assert!(c
            .validate()
            .unwrap_err()
            .contains("security.pacing_burst_s"));
        c.pacing_burst_s = 1.0;
        c.http_header_timeout_s = f64::INFINITY;
        assert!(c
            .validate()
            .unwrap_err()
            .contains("security.http_header_timeout_s"));
    }

    #[test]
    fn networks_match_by_prefix() {
        let n = Network::parse("10.1.0.0/16").unwrap();
        assert!(n.contains("10.1.200.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.0.9".parse().unwrap()));
        assert!(!n.contains("::1".parse().unwrap()));
        let one = Network::parse("192.168.1.7").unwrap();
        assert!(one.contains("192.168.1.7".parse().unwrap()));
        assert!(!one.contains("192.168.1.8".parse().unwrap()));
        assert!(Network::parse("fd00::/8")
            .unwrap()
            .contains("fd12::1".parse().unwrap()));
        assert!(Network::parse("10.0.0.0/33").is_err());
        assert!(Network::parse("nonsense").is_err());
        assert!(allowed(&[], "8.8.8.8".parse().unwrap()));
        assert!(!allowed(
            &["127.0.0.0/8".into()],
            "8.8.8.8".parse().unwrap()
        ));
    }

    #[test]
    fn supervisor_tokens_and_hosts() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tokens");
        let digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(b"s3cret").into();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(&f, format!("# supervisors\nwall:{hex}\n")).unwrap();
        let cfg = SecurityConfig {
            http_tokens_file: Some(f.clone()),
            allowed_hosts: vec!["calltone.local".into(), "127.0.0.1".into()],
            ..Default::default()
        };
        let a = SupervisorAuth::from_config(&cfg).unwrap();
        assert!(a.enabled());
        let host = Some("127.0.0.1:8080");
        assert_eq!(a.check("/api/calls", host, Some("Bearer s3cret")), Ok(()));
        use base64::Engine as _;
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("sup:s3cret")
        );
        assert_eq!(a.check("/", host, Some(&basic)), Ok(()));
        assert_eq!(
            a.check("/api/calls", host, Some("Bearer wrong")),
            Err(Refusal::Unauthorized)
        );
        assert_eq!(a.check("/metrics", host, None), Err(Refusal::Unauthorized));
        assert_eq!(a.check("/healthz", host, None), Ok(()));
        assert_eq!(
            a.check("/healthz", Some("evil.example"), None),
            Err(Refusal::BadHost)
        );
        assert_eq!(a.check("/healthz", None, None), Err(Refusal::BadHost));
        std::fs::write(&f, "not a digest\n").unwrap();
        let e = SupervisorAuth::from_config(&cfg).unwrap_err();
        assert!(e.contains(":1:"), "{e}");
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback("127.0.0.1:8080"));
        assert!(is_loopback("[::1]:8080"));
        assert!(is_loopback("localhost:1883"));
        assert!(!is_loopback("0.0.0.0:9092"));
        assert!(!is_loopback("10.1.2.3:9092"));
        assert!(!is_loopback("broker.example:1883"));
        assert!(warn_if_exposed("media", "0.0.0.0:8081", false));
        assert!(!warn_if_exposed("media", "0.0.0.0:8081", true));
        assert!(!warn_if_exposed("media", "127.0.0.1:8081", false));
        assert!(!warn_if_exposed("media", "", false));
    }
}
