//! A byte-budgeted [`AsyncRead`] wrapper.
//!
//! The XML framer sits on top of a parser (quick-xml) that buffers a whole
//! token (a start tag, a text run) before handing it out, so a single 100 MB
//! attribute value would be read into memory in full before any size check on
//! the event could run. [`Budget`] bounds the number of bytes the inner reader
//! may *deliver* since it was last (re-)armed: once the budget is spent, every
//! further read fails with an [`io::Error`] wrapping [`BudgetExceeded`]
//! (kind [`io::ErrorKind::Other`]) and [`Budget::exceeded`] becomes `true`.
//!
//! Reads are clipped to the remaining budget, so the wrapper never delivers a
//! single byte more than it was armed with. The framer re-arms it at every
//! top-level element boundary with `max_stanza_bytes` plus a slack that covers
//! the read-ahead of the buffer above it.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

/// The error carried inside the [`io::Error`] returned once the budget is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetExceeded;

impl fmt::Display for BudgetExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("read budget exceeded")
    }
}

impl std::error::Error for BudgetExceeded {}

/// Returns `true` if `err` is the error produced by an exhausted [`Budget`].
pub fn is_budget_exceeded(err: &io::Error) -> bool {
    err.get_ref().is_some_and(|inner| inner.is::<BudgetExceeded>())
}

/// An [`AsyncRead`] that delivers at most a re-armable number of bytes.
#[derive(Debug)]
pub struct Budget<R> {
    inner: R,
    remaining: usize,
    exceeded: bool,
    eof: bool,
    delivered: u64,
}

impl<R> Budget<R> {
    /// Wraps `inner`, allowing `budget` bytes to be delivered before reads fail.
    pub fn new(inner: R, budget: usize) -> Self {
        Budget { inner, remaining: budget, exceeded: false, eof: false, delivered: 0 }
    }

    /// Starts a new window: `budget` more bytes may be delivered from now on.
    /// Clears the [`exceeded`](Self::exceeded) flag.
    pub fn rearm(&mut self, budget: usize) {
        self.remaining = budget;
        self.exceeded = false;
    }

    /// Bytes that may still be delivered in the current window.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// `true` once a read was refused because the budget was spent (until the
    /// next [`rearm`](Self::rearm)).
    pub fn exceeded(&self) -> bool {
        self.exceeded
    }

    /// `true` once the inner reader has reported end of file.
    pub fn eof_seen(&self) -> bool {
        self.eof
    }

    /// Total number of bytes delivered since construction (all windows).
    pub fn total_delivered(&self) -> u64 {
        self.delivered
    }

    /// Shared access to the wrapped reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Mutable access to the wrapped reader. Bytes read through it directly
    /// bypass the budget.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Unwraps the inner reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Budget<R> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if this.remaining == 0 {
            this.exceeded = true;
            return Poll::Ready(Err(io::Error::other(BudgetExceeded)));
        }
        let n = if buf.remaining() <= this.remaining {
            let before = buf.filled().len();
            ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
            buf.filled().len().saturating_sub(before)
        } else {
            // Clip the read to the remaining budget. `initialize_unfilled_to`
            // only zeroes bytes that are not initialised yet (tokio's
            // BufReader hands out a fully initialised buffer, so this is free
            // in the normal stack).
            let dst = buf.initialize_unfilled_to(this.remaining);
            let mut sub = ReadBuf::new(dst);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut sub))?;
            let n = sub.filled().len();
            buf.advance(n);
            n
        };
        if n == 0 {
            this.eof = true;
        }
        this.remaining = this.remaining.saturating_sub(n);
        this.delivered = this.delivered.saturating_add(n as u64);
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn delivers_up_to_budget_then_fails() {
        let data = [b'a'; 100];
        let mut b = Budget::new(&data[..], 30);
        let mut buf = [0u8; 64];
        let n = b.read(&mut buf).await.unwrap();
        assert_eq!(n, 30);
        assert_eq!(b.remaining(), 0);
        assert!(!b.exceeded());
        let err = b.read(&mut buf).await.unwrap_err();
        assert!(is_budget_exceeded(&err));
        assert!(b.exceeded());
        assert_eq!(b.total_delivered(), 30);
    }

    #[tokio::test]
    async fn rearm_opens_a_new_window() {
        let data = [b'a'; 100];
        let mut b = Budget::new(&data[..], 10);
        let mut buf = [0u8; 8];
        assert_eq!(b.read(&mut buf).await.unwrap(), 8);
        assert_eq!(b.read(&mut buf).await.unwrap(), 2);
        assert!(b.read(&mut buf).await.is_err());
        b.rearm(50);
        assert!(!b.exceeded());
        let mut rest = Vec::new();
        let err = b.read_to_end(&mut rest).await.unwrap_err();
        assert!(is_budget_exceeded(&err));
        assert_eq!(rest.len(), 50);
        assert_eq!(b.total_delivered(), 60);
    }

    #[tokio::test]
    async fn eof_is_reported_and_remembered() {
        let data = b"xyz";
        let mut b = Budget::new(&data[..], 1000);
        let mut out = Vec::new();
        b.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"xyz");
        assert!(b.eof_seen());
        assert!(!b.exceeded());
    }

    #[tokio::test]
    async fn other_io_errors_are_not_budget_errors() {
        let e = io::Error::other("boom");
        assert!(!is_budget_exceeded(&e));
        let e = io::Error::new(io::ErrorKind::UnexpectedEof, BudgetExceeded);
        assert!(is_budget_exceeded(&e));
    }
}
