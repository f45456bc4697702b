//! A TCP listener for the HTTP servers that bounds what a client can hold open:
//! at most `max_connections` connections at once (more are closed at accept), and a
//! connection must deliver every request's headers within `header_timeout` (slowloris).
//!
//! `axum::serve` runs hyper without a timer, so hyper's own `header_read_timeout` is off and
//! a keep-alive connection could idle between requests for ever, keeping its slot. The
//! deadline is therefore kept here, from what the connection's bytes show of its HTTP/1
//! exchange (see [`Phase`]): it runs from accept until the first request's headers are in
//! (`reason="header_timeout"`), is lifted while the request is handled, and runs again from
//! the last byte of the response written: a connection with no complete next request within
//! `header_timeout` of its last response is closed (`reason="idle_timeout"` when not a byte
//! of a next request came, `"header_timeout"` when its headers were still arriving). A
//! response `101 Switching Protocols` (WebSocket) or `text/event-stream` (SSE) lifts the
//! deadline for the rest of the connection, so media streams and live feeds live as long as
//! they need to (media streams end on their own `read_timeout_s`). HTTP/2 (cleartext, prior
//! knowledge; the TLS listener offers no `h2`) is closed after `header_timeout` with nothing
//! written by the server.
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
                timeout: self.header_timeout,
                phase: Phase::Head,
                scan: HeadScan::default(),
                served: false,
                timed_out: self.timed_out.clone(),
                idle_closed: self.idle_closed.clone(),
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

/// Where a connection is in its HTTP/1 exchange, as far as its bytes show; decides whether
/// the deadline runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request's headers (the first, or the next one after a response): the
    /// deadline runs, reads are scanned for the end of the headers, and each write (the
    /// rest of a response) pushes the deadline to `timeout` after it.
    Head,
    /// A request's headers are in and its response has not started: no deadline (the
    /// handler takes the time it takes). The next write is the response's head.
    Busy,
    /// Upgraded (WebSocket) or a live feed (SSE): no deadline for the rest of the connection.
    Held,
    /// Not HTTP/1 (HTTP/2): the deadline runs and only writes push it.
    Opaque,
}

/// What the first bytes the server writes after a request's headers say of the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Response {
    /// A final response with a bounded body.
    Plain,
    /// `1xx` other than 101 (`100 Continue`): the final response is still to come.
    Interim,
    /// `101 Switching Protocols`.
    Upgrade,
    /// `Content-Type: text/event-stream`.
    Stream,
    /// Not an HTTP/1 status line.
    NotHttp1,
}

/// Reads a response's head from the start of `bytes` (hyper hands a response's whole head
/// to one write). `head_request`: a HEAD has no body, whatever its headers say.
fn classify_response(bytes: &[u8], head_request: bool) -> Response {
    let Some(rest) = bytes.strip_prefix(b"HTTP/1.") else {
        return Response::NotHttp1;
    };
    match rest.get(2..5) {
        Some(b"101") => return Response::Upgrade,
        Some([b'1', ..]) => return Response::Interim,
        _ => {}
    }
    if head_request {
        return Response::Plain;
    }
    let head = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(bytes, |end| &bytes[..end]);
    const SSE: &[u8] = b"\ncontent-type: text/event-stream";
    if head.windows(SSE.len()).any(|w| w.eq_ignore_ascii_case(SSE)) {
        Response::Stream
    } else {
        Response::Plain
    }
}

/// Finds the end of a request's headers in the bytes read: a blank line (`\r\n\r\n`, or
/// bare `\n` line ends as httparse also takes them) after at least one byte that is not a
/// line end (httparse skips blank lines before a request, so they start nothing).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct HeadScan {
    /// A byte other than `\r`/`\n` was seen: a request has begun.
    content: bool,
    /// The last byte other than `\r` was `\n`.
    newline: bool,
    /// The request's first bytes, for its method.
    prefix: [u8; 5],
    prefix_len: u8,
}

impl HeadScan {
    /// Advances over `bytes`; `true` when the end of the headers was seen.
    fn feed(&mut self, bytes: &[u8]) -> bool {
        for &b in bytes {
            match b {
                b'\r' | b'\n' if !self.content => {}
                b'\r' => {}
                b'\n' if self.newline => return true,
                b'\n' => self.newline = true,
                _ => {
                    self.content = true;
                    self.newline = false;
                    if usize::from(self.prefix_len) < self.prefix.len() {
                        self.prefix[usize::from(self.prefix_len)] = b;
                        self.prefix_len += 1;
                    }
                }
            }
        }
        false
    }

    fn is_head_request(&self) -> bool {
        &self.prefix == b"HEAD "
    }
}

/// A connection of a [`GuardedListener`]: holds its connection slot until dropped.
#[derive(Debug)]
pub struct GuardedStream {
    inner: Conn,
    tls_failed: Arc<Counter>,
    _permit: OwnedSemaphorePermit,
    _peer: Option<PeerSlot>,
    /// Runs in [`Phase::Head`] and [`Phase::Opaque`]; `None` otherwise.
    deadline: Option<Pin<Box<Sleep>>>,
    /// The listener's `header_timeout`.
    timeout: Duration,
    phase: Phase,
    /// The request being read, in [`Phase::Head`]; the last one read, in [`Phase::Busy`].
    scan: HeadScan,
    /// A response has been written: a deadline with no next request is an idle close.
    served: bool,
    timed_out: Arc<Counter>,
    idle_closed: Arc<Counter>,
    name: &'static str,
}

impl GuardedStream {
    /// (Re)starts the deadline at `timeout` from now, registered with `cx`'s task so that it
    /// wakes the connection even when nothing is read.
    fn arm(&mut self, cx: &mut Context<'_>) {
        let at = tokio::time::Instant::now() + self.timeout;
        let d = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        d.as_mut().reset(at);
        if d.as_mut().poll(cx).is_ready() {
            // Already due: have the connection polled again, so that the read sees it.
            cx.waker().wake_by_ref();
        }
    }

    /// After the server wrote; `first` is the start of what it handed to that write.
    fn on_written(&mut self, first: &[u8], cx: &mut Context<'_>) {
        match self.phase {
            Phase::Held => {}
            Phase::Head | Phase::Opaque => self.arm(cx),
            Phase::Busy => match classify_response(first, self.scan.is_head_request()) {
                Response::Interim => {}
                Response::Upgrade | Response::Stream => self.phase = Phase::Held,
                Response::Plain => {
                    self.phase = Phase::Head;
                    self.scan = HeadScan::default();
                    self.served = true;
                    self.arm(cx);
                }
                Response::NotHttp1 => {
                    self.phase = Phase::Opaque;
                    self.arm(cx);
                }
            },
        }
    }

    /// The deadline passed: counts and logs the close; the error for the read.
    fn expired(&mut self) -> io::Error {
        self.deadline = None;
        let idle = self.phase == Phase::Opaque || (self.served && !self.scan.content);
        if idle {
            self.idle_closed.inc();
            tracing::warn!(
                listener = self.name,
                reason = "idle_timeout",
                "no request on a kept-alive connection in time; closing"
            );
            io::Error::new(io::ErrorKind::TimedOut, "connection idle too long")
        } else {
            self.timed_out.inc();
            tracing::warn!(
                listener = self.name,
                reason = "header_timeout",
                "request headers not received in time; closing"
            );
            io::Error::new(
                io::ErrorKind::TimedOut,
                "request headers not received in time",
            )
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
        if let Some(d) = this.deadline.as_mut() {
            if d.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(this.expired()));
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
        if this.phase == Phase::Head {
            if let Poll::Ready(Ok(())) = &r {
                if this.scan.feed(&buf.filled()[before..]) {
                    this.phase = Phase::Busy;
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
        let this = self.get_mut();
        let r = with_stream!(&mut *this, cx, |s| s.poll_write(cx, buf));
        if let Poll::Ready(Ok(n)) = r {
            if n > 0 {
                this.on_written(buf, cx);
            }
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
        if let Poll::Ready(Ok(n)) = r {
            if n > 0 {
                let first = bufs
                    .iter()
                    .find(|b| !b.is_empty())
                    .map_or(&[][..], |b| &b[..]);
                this.on_written(first, cx);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_end_is_found_across_reads() {
        let ends = |parts: &[&[u8]]| {
            let mut scan = HeadScan::default();
            parts.iter().any(|p| scan.feed(p))
        };
        assert!(ends(&[b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]));
        assert!(ends(&[b"GET / HTTP/1.1\r\nHost: x\r", b"\n\r\n"]));
        assert!(ends(&[b"GET / HTTP/1.1\nHost: x\n\n"]));
        assert!(!ends(&[b"GET / HTTP/1.1\r\nHost: x\r\n"]));
        // Blank lines before a request start nothing (httparse skips them).
        assert!(!ends(&[b"\r\n\r\n", b"\r\n\n"]));
        assert!(ends(&[b"\r\n\r\nGET / HTTP/1.1\r\n\r\n"]));
        let mut scan = HeadScan::default();
        assert!(scan.feed(b"HEAD /api/events HTTP/1.1\r\n\r\n"));
        assert!(scan.is_head_request());
    }

    #[test]
    fn responses_are_told_apart_from_their_head() {
        let c = |b: &[u8]| classify_response(b, false);
        assert_eq!(
            c(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"),
            Response::Plain
        );
        assert_eq!(
            c(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n"),
            Response::Upgrade
        );
        assert_eq!(c(b"HTTP/1.1 100 Continue\r\n\r\n"), Response::Interim);
        let sse = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n";
        assert_eq!(c(sse), Response::Stream);
        assert_eq!(classify_response(sse, true), Response::Plain, "HEAD");
        // Only the head counts, not a body that mentions the type.
        assert_eq!(
            c(b"HTTP/1.1 200 OK\r\n\r\nx\ncontent-type: text/event-stream"),
            Response::Plain
        );
        assert_eq!(c(b"\0\0\x12\x04\0\0\0\0\0"), Response::NotHttp1);
    }
}
