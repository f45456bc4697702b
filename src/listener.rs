//! A TCP listener for the HTTP servers that bounds what a client can hold open:
//! at most `max_connections` connections at once (more are closed at accept), and a
//! connection must deliver its first request's headers within `header_timeout` (slowloris).
//! After the headers, the deadline is lifted, so SSE streams and WebSocket sessions live as
//! long as they need to.
//!
//! With [`GuardedListener::with_per_peer_cap`], one source address may hold at most that many
//! of the connections, so a single client (a slowloris, a stuck script) cannot take every
//! slot from everyone else (`reason="too_many_from_peer"`).
//!
//! The refusals are logged and counted in
//! `calltone_connections_closed_total{source=LISTENER,reason=too_many_connections|too_many_from_peer|header_timeout}`.
//!
//! With TLS ([`GuardedListener::with_tls`], rustls), the handshake runs on the connection's
//! own reads, not in `accept`, so a client that never finishes it holds up no one and is cut
//! off by the same header deadline; the header scan reads the decrypted bytes. A failed
//! handshake (plain HTTP to the TLS port, a bad client) is counted as `reason="tls"`.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

use crate::metrics::{Counter, Metrics};

/// A TLS acceptor from a PEM certificate chain and a PEM private key; the error names the
/// file and the problem.
pub fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    let open = |p: &std::path::Path| {
        std::fs::File::open(p)
            .map(io::BufReader::new)
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    let certs: Vec<_> = rustls_pemfile::certs(&mut open(cert)?)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", cert.display()));
    }
    let key_der = rustls_pemfile::private_key(&mut open(key)?)
        .map_err(|e| format!("{}: {e}", key.display()))?
        .ok_or_else(|| format!("{}: no PEM private key in it", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(certs, key_der)
    .map_err(|e| format!("{}: {e}", key.display()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// See the module docs.
pub struct GuardedListener {
    inner: TcpListener,
    name: &'static str,
    slots: Arc<Semaphore>,
    max_connections: usize,
    header_timeout: Duration,
    refused: Arc<Counter>,
    timed_out: Arc<Counter>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    tls_failed: Arc<Counter>,
    /// Most connections one source address may hold; 0 = no per-address cap.
    per_peer: usize,
    peers: Arc<Mutex<HashMap<IpAddr, usize>>>,
    peer_refused: Arc<Counter>,
}

/// One connection's share of its source address's count; gives it back when dropped.
#[derive(Debug)]
struct PeerSlot {
    peers: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = peers.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                peers.remove(&self.ip);
            }
        }
    }
}

impl GuardedListener {
    /// `name` labels logs and counters (`http`, `media`).
    pub fn new(
        inner: TcpListener,
        name: &'static str,
        max_connections: usize,
        header_timeout: Duration,
        metrics: &Metrics,
    ) -> Self {
        Self {
            inner,
            name,
            slots: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            header_timeout,
            refused: metrics
                .connections_closed
                .with(&[name, "too_many_connections"]),
            timed_out: metrics.connections_closed.with(&[name, "header_timeout"]),
            tls: None,
            tls_failed: metrics.connections_closed.with(&[name, "tls"]),
            per_peer: 0,
            peers: Arc::default(),
            peer_refused: metrics
                .connections_closed
                .with(&[name, "too_many_from_peer"]),
        }
    }

    /// At most `max` connections from one source address (0: no such cap).
    pub fn with_per_peer_cap(mut self, max: usize) -> Self {
        self.per_peer = max;
        self
    }

    /// Takes a slot for `ip`, or `None` when it already holds `per_peer` connections.
    fn peer_slot(&self, ip: IpAddr) -> Option<Option<PeerSlot>> {
        if self.per_peer == 0 {
            return Some(None);
        }
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        let n = peers.entry(ip).or_insert(0);
        if *n >= self.per_peer {
            return None;
        }
        *n += 1;
        Some(Some(PeerSlot {
            peers: self.peers.clone(),
            ip,
        }))
    }

    /// Speaks TLS on every connection (`None`: plain).
    pub fn with_tls(mut self, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        self.tls = tls;
        self
    }
}

impl axum::serve::Listener for GuardedListener {
    type Io = GuardedStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, peer) = match self.inner.accept().await {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(listener = self.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Some(peer_slot) = self.peer_slot(peer.ip()) else {
                self.peer_refused.inc();
                tracing::warn!(listener = self.name, %peer, max = self.per_peer, reason = "too_many_from_peer", "connection limit for this address reached; closing");
                continue;
            };
            let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                self.refused.inc();
                tracing::warn!(listener = self.name, %peer, max = self.max_connections, reason = "too_many_connections", "connection limit reached; closing");
                continue;
            };
            let _ = stream.set_nodelay(true);
            let inner = match &self.tls {
                Some(acceptor) => Conn::Handshake(Box::new(acceptor.accept(stream))),
                None => Conn::Plain(stream),
            };
            let io = GuardedStream {
                inner,
                tls_failed: self.tls_failed.clone(),
                _permit: permit,
                _peer: peer_slot,
                deadline: Some(Box::pin(tokio::time::sleep(self.header_timeout))),
                matched: 0,
                timed_out: self.timed_out.clone(),
                name: self.name,
            };
            return (io, peer);
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// The transport under a [`GuardedStream`].
enum Conn {
    Plain(TcpStream),
    /// TLS, handshake in progress (driven by the first read or write).
    Handshake(Box<tokio_rustls::Accept<TcpStream>>),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// The handshake failed; every call errors.
    Failed,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conn::Plain(_) => "Plain",
            Conn::Handshake(_) => "Handshake",
            Conn::Tls(_) => "Tls",
            Conn::Failed => "Failed",
        })
    }
}

impl Conn {
    /// Drives a pending handshake; `Ready(Ok)` once the stream can carry data.
    fn poll_ready(
        &mut self,
        cx: &mut Context<'_>,
        failed: &Counter,
        name: &'static str,
    ) -> Poll<io::Result<()>> {
        if let Conn::Handshake(accept) = self {
            match Pin::new(accept.as_mut()).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(s)) => *self = Conn::Tls(Box::new(s)),
                Poll::Ready(Err(e)) => {
                    *self = Conn::Failed;
                    failed.inc();
                    tracing::warn!(listener = name, reason = "tls", error = %e, "TLS handshake failed; closing");
                    return Poll::Ready(Err(e));
                }
            }
        }
        match self {
            Conn::Failed => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "TLS handshake failed",
            ))),
            _ => Poll::Ready(Ok(())),
        }
    }
}

/// A connection of a [`GuardedListener`]: holds its connection slot until dropped.
#[derive(Debug)]
pub struct GuardedStream {
    inner: Conn,
    tls_failed: Arc<Counter>,
    _permit: OwnedSemaphorePermit,
    _peer: Option<PeerSlot>,
    /// Until the first `\r\n\r\n` has been read.
    deadline: Option<Pin<Box<Sleep>>>,
    /// How much of `\r\n\r\n` the bytes read so far end with.
    matched: u8,
    timed_out: Arc<Counter>,
    name: &'static str,
}

/// Advances the `\r\n\r\n` matcher over `bytes`; `Some` when the end of headers was seen.
fn scan_headers_end(mut matched: u8, bytes: &[u8]) -> (u8, bool) {
    const END: &[u8; 4] = b"\r\n\r\n";
    for &b in bytes {
        matched = if b == END[matched as usize] {
            matched + 1
        } else if b == b'\r' {
            1
        } else {
            0
        };
        if matched == 4 {
            return (4, true);
        }
    }
    (matched, false)
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(d) = this.deadline.as_mut() {
            if d.as_mut().poll(cx).is_ready() {
                this.deadline = None;
                this.timed_out.inc();
                tracing::warn!(
                    listener = this.name,
                    reason = "header_timeout",
                    "request headers not received in time; closing"
                );
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "request headers not received in time",
                )));
            }
        }
        if let Err(e) = std::task::ready!(this.inner.poll_ready(cx, &this.tls_failed, this.name)) {
            return Poll::Ready(Err(e));
        }
        let before = buf.filled().len();
        let r = match &mut this.inner {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            _ => unreachable!("poll_ready leaves a usable stream"),
        };
        if this.deadline.is_some() {
            if let Poll::Ready(Ok(())) = &r {
                let (m, done) = scan_headers_end(this.matched, &buf.filled()[before..]);
                this.matched = m;
                if done {
                    this.deadline = None;
                }
            }
        }
        r
    }
}

/// Runs `$op` on the usable stream under a [`GuardedStream`], after any handshake.
macro_rules! with_stream {
    ($this:expr, $cx:expr, |$s:ident| $op:expr) => {{
        let this = $this;
        if let Err(e) = std::task::ready!(this.inner.poll_ready($cx, &this.tls_failed, this.name)) {
            return Poll::Ready(Err(e));
        }
        match &mut this.inner {
            Conn::Plain($s) => {
                let $s = Pin::new($s);
                $op
            }
            Conn::Tls(s) => {
                let $s = Pin::new(s.as_mut());
                $op
            }
            _ => unreachable!("poll_ready leaves a usable stream"),
        }
    }};
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        with_stream!(self.get_mut(), cx, |s| s.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        with_stream!(self.get_mut(), cx, |s| s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        with_stream!(self.get_mut(), cx, |s| s.poll_shutdown(cx))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        with_stream!(self.get_mut(), cx, |s| s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match &self.inner {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_end_is_found_across_reads() {
        assert_eq!(
            scan_headers_end(0, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            (4, true)
        );
        let (m, done) = scan_headers_end(0, b"GET / HTTP/1.1\r\nHost: x\r");
        assert!(!done);
        assert_eq!(scan_headers_end(m, b"\n\r\n"), (4, true));
        assert!(!scan_headers_end(0, b"\r\n\r\r\n").1);
        assert!(scan_headers_end(0, b"\r\r\n\r\n").1);
    }
}
