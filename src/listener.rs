//! A TCP listener for the HTTP servers that bounds what a client can hold open:
//! at most `max_connections` connections at once (more are closed at accept), and a
//! connection must deliver its first request's headers within `header_timeout` (slowloris).
//! After the headers, the deadline is lifted, so SSE streams and WebSocket sessions live as
//! long as they need to.
//!
//! Both refusals are logged and counted in
//! `calltone_connections_closed_total{source=LISTENER,reason=too_many_connections|header_timeout}`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

use crate::metrics::{Counter, Metrics};

/// See the module docs.
#[derive(Debug)]
pub struct GuardedListener {
    inner: TcpListener,
    name: &'static str,
    slots: Arc<Semaphore>,
    max_connections: usize,
    header_timeout: Duration,
    refused: Arc<Counter>,
    timed_out: Arc<Counter>,
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
        }
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
            let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                self.refused.inc();
                tracing::warn!(listener = self.name, %peer, max = self.max_connections, reason = "too_many_connections", "connection limit reached; closing");
                continue;
            };
            let _ = stream.set_nodelay(true);
            let io = GuardedStream {
                inner: stream,
                _permit: permit,
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

/// A connection of a [`GuardedListener`]: holds its connection slot until dropped.
#[derive(Debug)]
pub struct GuardedStream {
    inner: TcpStream,
    _permit: OwnedSemaphorePermit,
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
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
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

impl AsyncWrite for GuardedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
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
