//! A TCP listener for the HTTP servers that bounds what a client can hold open:
//! at most `max_connections` connections at once (more are closed at accept), and a
//! connection must deliver every request's headers within `header_timeout` (slowloris).
//!
//! The header deadline is hyper's own `header_read_timeout`, set by
//! [`crate::http::serve_router`] to [`GuardedListener::header_timeout`]: it runs from the
//! start of the connection (TLS handshake included) until the first request's headers are
//! in, and again from the end of each response until the next request's headers are in, so
//! a kept-alive connection cannot idle between requests for ever, keeping its slot. It does
//! not run while a request is handled or a response is written: a live feed (SSE) lives as
//! long as it needs to, and an upgraded connection (WebSocket) leaves hyper altogether
//! (media streams end on their own `read_timeout_s`). Only HTTP/1 is served. When hyper
//! closes a connection for it, the close is counted as `reason="idle_timeout"` when the
//! connection had been answered and sent not a byte since ([`ConnWatch`]), else as
//! `"header_timeout"`.
//!
//! With [`GuardedListener::with_per_peer_cap`], one source address may hold at most that many
//! of the connections, so a single client (a slowloris, a stuck script) cannot take every
//! slot from everyone else (`reason="too_many_from_peer"`).
//!
//! The refusals are logged and counted in
//! `calltone_connections_closed_total{source=LISTENER,reason=too_many_connections|too_many_from_peer|header_timeout|idle_timeout}`.
//!
//! With TLS ([`GuardedListener::with_tls`], rustls), the handshake runs on the connection's
//! own reads, not in `accept`, so a client that never finishes it holds up no one and is cut
//! off by the same header deadline. A failed
//! handshake (plain HTTP to the TLS port, a bad client) is counted as `reason="tls"`.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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
    idle_closed: Arc<Counter>,
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
            idle_closed: metrics.connections_closed.with(&[name, "idle_timeout"]),
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

    /// How long a connection may take to deliver a request's headers (see the module docs).
    pub fn header_timeout(&self) -> Duration {
        self.header_timeout
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
                watch: Arc::new(ConnWatch {
                    wrote: AtomicBool::new(false),
                    read_since_write: AtomicBool::new(false),
                    timed_out: self.timed_out.clone(),
                    idle_closed: self.idle_closed.clone(),
                    name: self.name,
                }),
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
    watch: Arc<ConnWatch>,
    name: &'static str,
}

impl GuardedStream {
    /// What the server that runs this connection reports a header timeout to.
    pub fn watch(&self) -> Arc<ConnWatch> {
        self.watch.clone()
    }
}

/// Whether a connection has been answered, and has sent anything since: names the reason
/// when the server closes it for not delivering a request's headers in time.
#[derive(Debug)]
pub struct ConnWatch {
    /// The server wrote a byte (a response).
    wrote: AtomicBool,
    /// The client sent a byte since the server last wrote.
    read_since_write: AtomicBool,
    timed_out: Arc<Counter>,
    idle_closed: Arc<Counter>,
    name: &'static str,
}

impl ConnWatch {
    fn on_read(&self) {
        self.read_since_write.store(true, Ordering::Relaxed);
    }

    fn on_written(&self) {
        self.wrote.store(true, Ordering::Relaxed);
        self.read_since_write.store(false, Ordering::Relaxed);
    }

    /// The server closed the connection at its header deadline: counts and logs it, as
    /// `idle_timeout` when the connection had been answered and sent nothing since, else
    /// as `header_timeout`.
    pub fn timed_out(&self) {
        let idle =
            self.wrote.load(Ordering::Relaxed) && !self.read_since_write.load(Ordering::Relaxed);
        if idle {
            self.idle_closed.inc();
            tracing::warn!(
                listener = self.name,
                reason = "idle_timeout",
                "no request on a kept-alive connection in time; closing"
            );
        } else {
            self.timed_out.inc();
            tracing::warn!(
                listener = self.name,
                reason = "header_timeout",
                "request headers not received in time; closing"
            );
        }
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Err(e) = std::task::ready!(this.inner.poll_ready(cx, &this.tls_failed, this.name)) {
            return Poll::Ready(Err(e));
        }
        let before = buf.filled().len();
        let r = match &mut this.inner {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            _ => unreachable!("poll_ready leaves a usable stream"),
        };
        if buf.filled().len() > before {
            this.watch.on_read();
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
        let this = self.get_mut();
        let r = with_stream!(&mut *this, cx, |s| s.poll_write(cx, buf));
        if let Poll::Ready(Ok(1..)) = r {
            this.watch.on_written();
        }
        r
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
        let this = self.get_mut();
        let r = with_stream!(&mut *this, cx, |s| s.poll_write_vectored(cx, bufs));
        if let Poll::Ready(Ok(1..)) = r {
            this.watch.on_written();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        match &self.inner {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
            _ => false,
        }
    }
}
