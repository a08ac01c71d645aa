//! A long-running session split in two tasks: the reader (framer) hands answers to the
//! server's iq requests to the writer, which also carries the scenario's own traffic.

use stanzad::xml::framer::{Frame, FramerError};
use stanzad::xml::Element;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Duration, Instant};

use crate::client::{Reader, Writer};
use crate::error::{BenchError, Result};
use crate::xmpp;

/// Where a run is; set by the scenario, watched by every writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Scenario traffic flows.
    Run,
    /// No new traffic; answers still go out.
    Drain,
    /// Send `</stream:stream>`.
    Close,
}

/// Answers from the reader to its writer.
pub fn replies() -> (mpsc::Sender<Vec<u8>>, mpsc::Receiver<Vec<u8>>) {
    mpsc::channel(64)
}

/// Reads until the server closes the stream. iq requests are answered through `replies`;
/// every other stanza goes to `on`. EOF without `</stream:stream>` and stream errors are
/// errors.
pub async fn read_loop(mut framer: Reader, replies: mpsc::Sender<Vec<u8>>, mut on: impl FnMut(&Element)) -> Result<()> {
    loop {
        match framer.next().await {
            Ok(Frame::Stanza(el)) if xmpp::is_iq_request(&el) => {
                // The writer is gone only when the session ends anyway.
                let _ = replies.send(xmpp::iq_reply(&el)).await;
            }
            Ok(Frame::Stanza(el)) => match xmpp::stream_error(&el) {
                Some(condition) => return Err(BenchError::Stream(condition)),
                None => on(&el),
            },
            Ok(Frame::Close) => return Ok(()),
            Ok(Frame::Header(_)) => return Err(BenchError::Protocol("unexpected stream header".into())),
            Err(FramerError::Eof) => return Err(BenchError::Closed("stanzas")),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Waits until the phase satisfies `reached` (or the scenario is gone).
pub async fn phase(phase: &mut watch::Receiver<Phase>, reached: impl FnMut(&Phase) -> bool) {
    // The guard `wait_for` returns is not `Send`: dropped here, before any other await.
    let _ = phase.wait_for(reached).await.is_ok();
}

/// Writes and flushes.
pub async fn write(writer: &mut Writer, bytes: &[u8]) -> Result<()> {
    writer.write_all(bytes).await?;
    writer.flush().await?;
    Ok(())
}

/// Writes the reader's answers until the phase is `Close`, then closes the stream.
pub async fn relay(
    mut writer: Writer,
    mut replies: mpsc::Receiver<Vec<u8>>,
    mut phase: watch::Receiver<Phase>,
) -> Result<()> {
    loop {
        tokio::select! {
            reply = replies.recv() => match reply {
                Some(bytes) => write(&mut writer, &bytes).await?,
                None => break,
            },
            _ = self::phase(&mut phase, |p| *p == Phase::Close) => break,
        }
    }
    write(&mut writer, xmpp::CLOSE).await
}

/// Waits for `handles` until `limit` has passed, then aborts the rest; how many were aborted.
pub async fn join_all(handles: Vec<JoinHandle<()>>, limit: Duration) -> usize {
    let until = Instant::now() + limit;
    let mut aborted = 0;
    for mut handle in handles {
        if timeout_at(until, &mut handle).await.is_err() {
            handle.abort();
            aborted += 1;
        }
    }
    aborted
}
