//! The store phase of `offline`: the sender writes M messages back to back, then a ping;
//! the ping's answer means the server has handled (stored) every message before it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;

use crate::cli::OfflineArgs;
use crate::client::Writer;
use crate::ctx::Ctx;
use crate::error::{BenchError, Result};
use crate::procfs::{CpuUse, Sample};
use crate::session;
use crate::{negotiate, xmpp};

/// Bytes gathered before one write.
const CHUNK: usize = 64 * 1024;
/// The id of the ping that follows the messages.
const PING_ID: &str = "stored";

pub struct Stored {
    pub secs: f64,
    pub bounced: u64,
    pub cpu: CpuUse,
}

pub async fn run(ctx: &Ctx, args: &OfflineArgs, written: &AtomicU64) -> Result<Stored> {
    let stream = negotiate::online(ctx, 1, 1).await?;
    let mut writer = stream.writer;
    let (reply_tx, mut replies) = session::replies();
    let bounced = Arc::new(AtomicU64::new(0));
    let (done_tx, mut done) = oneshot::channel::<Instant>();
    let reader = {
        let bounced = bounced.clone();
        let mut done_tx = Some(done_tx);
        tokio::spawn(session::read_loop(stream.framer, reply_tx, move |el| {
            if el.name() == "message" && el.attr("type") == Some("error") {
                bounced.fetch_add(1, Relaxed);
            } else if xmpp::iq_outcome(el, PING_ID).is_some() {
                done_tx.take().map(|tx| tx.send(Instant::now()));
            }
        }))
    };
    let before = Sample::take(ctx.server_pid);
    let started = Instant::now();
    let template = super::template(ctx, args.body_bytes);
    let sending = write_all(&mut writer, &template, args.messages, &ctx.domain, written);
    tokio::time::timeout_at(ctx.deadline, sending).await.map_err(|_| BenchError::Deadline)??;
    let finished = loop {
        let next = async {
            tokio::select! {
                biased;
                at = &mut done => Ok(at),
                reply = replies.recv() => Err(reply),
            }
        };
        match tokio::time::timeout_at(ctx.deadline, next).await.map_err(|_| BenchError::Deadline)? {
            Ok(Ok(at)) => break at,
            Ok(Err(_)) | Err(None) => return Err(BenchError::Closed("the answer to the ping after the messages")),
            Err(Some(reply)) => session::write(&mut writer, &reply).await?,
        }
    };
    let cpu = before.until(&Sample::take(ctx.server_pid));
    session::write(&mut writer, xmpp::CLOSE).await?;
    let _ = ctx.within("stream close", reader).await;
    Ok(Stored { secs: finished.duration_since(started).as_secs_f64(), bounced: bounced.load(Relaxed), cpu })
}

/// Writes messages 1..=m in chunks, then the ping.
async fn write_all(
    writer: &mut Writer,
    template: &super::Template,
    m: u64,
    domain: &str,
    written: &AtomicU64,
) -> Result<()> {
    let mut buf = Vec::with_capacity(CHUNK + 1024);
    for seq in 1..=m {
        template.push(&mut buf, seq, crate::stats::now_ns());
        if buf.len() >= CHUNK {
            session::write(writer, &buf).await?;
            written.store(seq, Relaxed);
            buf.clear();
        }
    }
    buf.extend_from_slice(&xmpp::ping(PING_ID, domain));
    session::write(writer, &buf).await?;
    written.store(m, Relaxed);
    Ok(())
}
