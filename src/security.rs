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
    /// An HTTP connection must deliver its first request's headers within this many
    /// seconds, else it is closed (slowloris). Default 10.
    pub http_header_timeout_s: f64,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            max_realtime_factor: 3.0,
            pacing_burst_s: 5.0,
            max_calls: 256,
            max_connections: 512,
            http_header_timeout_s: 10.0,
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
