//! The framer's tests, by concern, and the helpers they share: readers that deliver
//! input in chunks or without end, and runs of the framer to its first error.

use super::*;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncWriteExt, ReadBuf};

const LIMITS: Limits = Limits { max_stanza_bytes: 64 * 1024, max_depth: 32, max_attributes: 64 };

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>";

/// Delivers `data` at most `chunk` bytes per read and counts what it delivered.
struct Chunked {
    data: Vec<u8>,
    pos: usize,
    chunk: usize,
    delivered: Arc<AtomicUsize>,
}

impl Chunked {
    fn new(data: impl Into<Vec<u8>>, chunk: usize) -> Self {
        Chunked { data: data.into(), pos: 0, chunk, delivered: Arc::new(AtomicUsize::new(0)) }
    }
}

impl AsyncRead for Chunked {
    fn poll_read(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let n = this.chunk.min(buf.remaining()).min(this.data.len() - this.pos);
        buf.put_slice(&this.data[this.pos..this.pos + n]);
        this.pos += n;
        this.delivered.fetch_add(n, Ordering::Relaxed);
        Poll::Ready(Ok(()))
    }
}

/// Delivers `prefix`, then `fill` bytes forever, counting what it delivered.
struct Endless {
    prefix: Vec<u8>,
    pos: usize,
    fill: u8,
    delivered: Arc<AtomicUsize>,
}

impl AsyncRead for Endless {
    fn poll_read(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let n = buf.remaining();
        let mut chunk = Vec::with_capacity(n);
        while chunk.len() < n {
            if this.pos < this.prefix.len() {
                chunk.push(this.prefix[this.pos]);
                this.pos += 1;
            } else {
                chunk.push(this.fill);
            }
        }
        buf.put_slice(&chunk);
        this.delivered.fetch_add(n, Ordering::Relaxed);
        Poll::Ready(Ok(()))
    }
}

/// Runs the framer over `input` until it fails; returns the frames and the error.
async fn run_with<R: AsyncRead + Unpin>(mut framer: Framer<R>) -> (Vec<Frame>, FramerError) {
    let mut frames = Vec::new();
    loop {
        match framer.next().await {
            Ok(frame) => frames.push(frame),
            Err(err) => return (frames, err),
        }
    }
}

async fn run(input: &[u8]) -> (Vec<Frame>, FramerError) {
    run_with(Framer::new(input, LIMITS)).await
}

/// The error the framer reports for `body` sent after the standard header.
async fn error_after_header(body: &[u8]) -> FramerError {
    let mut input = HEADER.as_bytes().to_vec();
    input.extend_from_slice(body);
    let (frames, err) = run(&input).await;
    assert!(matches!(frames.first(), Some(Frame::Header(_))), "{frames:?}");
    err
}

fn stanza(frame: &Frame) -> &Element {
    match frame {
        Frame::Stanza(el) => el,
        other => panic!("expected a stanza, got {other:?}"),
    }
}

fn header(frame: &Frame) -> &StreamHeader {
    match frame {
        Frame::Header(h) => h,
        other => panic!("expected a header, got {other:?}"),
    }
}

macro_rules! assert_err {
    ($err:expr, $pat:pat) => {{
        let err = $err;
        assert!(matches!(err, $pat), "unexpected error: {err:?}");
    }};
}

mod differential;
mod limits;
mod rejects;
mod stream;
