//! [`BytesRead`]: a stream that counts the bytes read through it.
//!
//! Two readers need the count below their parsers: the admin listener, to
//! tell a connection that has sent too little to show its protocol (HTTP/1.1
//! or HTTP/2) from one that has, and the WebSocket gate, whose clients'
//! bytes are their proof of life even in the middle of a long frame (a pong
//! may not go inside another frame, RFC 6455 section 5.4).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A stream (or read half) that adds every byte read through it to a
/// shared counter; writes pass through untouched.
#[derive(Debug)]
pub struct BytesRead<S> {
    inner: S,
    n_read: Arc<AtomicU64>,
}

impl<S> BytesRead<S> {
    /// Wraps `inner`; `n_read` is the counter its owner watches, in bytes.
    pub fn new(inner: S, n_read: Arc<AtomicU64>) -> Self {
        Self { inner, n_read }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for BytesRead<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n_new = buf.filled().len().saturating_sub(before);
        if n_new > 0 {
            self.n_read.fetch_add(n_new as u64, Ordering::Relaxed);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for BytesRead<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
