//! A buffered reader that holds its buffer only while it has bytes in it: an idle
//! connection (waiting for its client) keeps no read buffer, which is most of what an
//! idle session would otherwise cost. Busy connections pay one allocation per read that
//! finds the buffer drained.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncBufRead, AsyncRead, ReadBuf};

pub struct LazyBuf<R> {
    inner: R,
    buf: Vec<u8>,
    pos: usize,
    filled: usize,
    capacity: usize,
}

impl<R> LazyBuf<R> {
    pub fn with_capacity(capacity: usize, inner: R) -> LazyBuf<R> {
        LazyBuf { inner, buf: Vec::new(), pos: 0, filled: 0, capacity }
    }

    /// The bytes read and not yet consumed.
    pub fn buffer(&self) -> &[u8] {
        &self.buf[self.pos..self.filled]
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The inner reader; buffered bytes are dropped.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: AsyncRead + Unpin> AsyncBufRead for LazyBuf<R> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        if this.pos >= this.filled {
            if this.buf.is_empty() {
                this.buf = vec![0; this.capacity];
            }
            let mut read = ReadBuf::new(&mut this.buf);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    this.filled = read.filled().len();
                    this.pos = 0;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    // Waiting for the peer: nothing is buffered, so nothing is kept.
                    this.buf = Vec::new();
                    (this.pos, this.filled) = (0, 0);
                    return Poll::Pending;
                }
            }
        }
        Poll::Ready(Ok(&this.buf[this.pos..this.filled]))
    }

    fn consume(self: Pin<&mut Self>, amount: usize) {
        let this = self.get_mut();
        this.pos = (this.pos + amount).min(this.filled);
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for LazyBuf<R> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos >= this.filled {
            return Pin::new(&mut this.inner).poll_read(cx, out);
        }
        let n = out.remaining().min(this.filled - this.pos);
        out.put_slice(&this.buf[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn reads_through_the_buffer_and_drops_it_when_waiting() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut reader = LazyBuf::with_capacity(8, server);
        client.write_all(b"hello world").await.expect("write");
        assert_eq!(reader.fill_buf().await.expect("fill"), b"hello wo");
        reader.consume(6);
        assert_eq!(reader.buffer(), b"wo");
        let mut rest = [0u8; 5];
        reader.read_exact(&mut rest).await.expect("read");
        assert_eq!(&rest, b"world");
        // Nothing more: the next fill waits, and the buffer is released meanwhile.
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(20), reader.fill_buf()).await;
        assert!(waiting.is_err());
        assert_eq!(reader.buf.capacity(), 0);
        client.write_all(b"!").await.expect("write");
        assert_eq!(reader.fill_buf().await.expect("fill"), b"!");
        drop(client);
        reader.consume(1);
        assert!(reader.fill_buf().await.expect("eof").is_empty());
    }
}
