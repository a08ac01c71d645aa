//! One XMPP stream driven step by step: write, then wait (bounded) for what comes back.
//! Used for negotiation and for the sequential parts of the scenarios; long-running
//! sessions are split into a reader and a writer task (`session.rs`).

use stanzad::xml::framer::{Frame, Framer, FramerError, Limits};
use stanzad::xml::Element;
use tokio::io::{split, AsyncWriteExt, ReadHalf, WriteHalf};

use crate::ctx::Ctx;
use crate::error::{BenchError, Result};
use crate::transport::Transport;
use crate::xmpp;

/// The framer over the read half.
pub type Reader = Framer<ReadHalf<Transport>>;
/// The write half.
pub type Writer = WriteHalf<Transport>;

/// Limits for what servers send us (generous: we trust the target).
const LIMITS: Limits = Limits { max_stanza_bytes: 1 << 20, max_depth: 64, max_attributes: 128 };

pub struct Stream {
    pub framer: Reader,
    pub writer: Writer,
    /// Our full JID once bound.
    pub jid: String,
}

impl Stream {
    pub fn new(transport: Transport) -> Self {
        let (read, writer) = split(transport);
        Stream { framer: Framer::new(read, LIMITS), writer, jid: String::new() }
    }

    /// Joins the halves again (for the TLS upgrade). Unparsed read-ahead is dropped, which
    /// is right before TLS: nothing may follow `<proceed/>` in the clear.
    pub fn into_transport(self) -> Transport {
        self.framer.into_inner().unsplit(self.writer)
    }

    /// Writes and flushes `bytes`.
    pub async fn send(&mut self, ctx: &Ctx, bytes: &[u8]) -> Result<()> {
        ctx.within("write", async {
            self.writer.write_all(bytes).await?;
            self.writer.flush().await
        })
        .await??;
        Ok(())
    }

    /// The next frame, within `--timeout`.
    pub async fn frame(&mut self, ctx: &Ctx, what: &'static str) -> Result<Frame> {
        match ctx.within(what, self.framer.next()).await? {
            Ok(frame) => Ok(frame),
            Err(FramerError::Eof) => Err(BenchError::Closed(what)),
            Err(e) => Err(e.into()),
        }
    }

    /// The next top-level element; a stream close or stream error is an error.
    pub async fn stanza(&mut self, ctx: &Ctx, what: &'static str) -> Result<Element> {
        match self.frame(ctx, what).await? {
            Frame::Stanza(el) => match xmpp::stream_error(&el) {
                Some(condition) => Err(BenchError::Stream(condition)),
                None => Ok(el),
            },
            Frame::Close => Err(BenchError::Closed(what)),
            Frame::Header(_) => Err(BenchError::Protocol(format!("unexpected stream header waiting for {what}"))),
        }
    }

    /// Reads until `pick` accepts an element, answering the server's iq requests and
    /// skipping everything else (presence echoes, roster pushes, …).
    pub async fn wait_for(
        &mut self,
        ctx: &Ctx,
        what: &'static str,
        pick: impl Fn(&Element) -> bool,
    ) -> Result<Element> {
        loop {
            let el = self.stanza(ctx, what).await?;
            if pick(&el) {
                return Ok(el);
            }
            if xmpp::is_iq_request(&el) {
                self.send(ctx, &xmpp::iq_reply(&el)).await?;
            }
        }
    }

    /// Waits for the answer to our iq `id`: `Ok` for a result, `Err` with the condition else.
    pub async fn expect_result(&mut self, ctx: &Ctx, what: &'static str, id: &str) -> Result<()> {
        let el = self.wait_for(ctx, what, |el| xmpp::iq_outcome(el, id).is_some()).await?;
        match xmpp::iq_outcome(&el, id) {
            Some(true) => Ok(()),
            _ => Err(BenchError::Protocol(format!("{what}: error {}", xmpp::stanza_error(&el)))),
        }
    }

    /// Sends `</stream:stream>` and waits (bounded) for the server's close or EOF.
    pub async fn close(mut self, ctx: &Ctx) -> Result<()> {
        self.send(ctx, xmpp::CLOSE).await?;
        loop {
            match self.frame(ctx, "stream close").await {
                Ok(Frame::Close) | Err(BenchError::Closed(_)) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
    }
}
