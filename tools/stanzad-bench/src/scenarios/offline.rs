//! `offline`: the recipient (offset 0) is offline; the sender (offset 1) sends M messages,
//! then a ping: stored/s = M / (time from the first byte to the ping's answer). Then the
//! recipient logs in and sends presence: drain time runs from that presence to the M-th
//! message of this run. The recipient answers every iq request (stanzad pings after each
//! batch of the backlog and deletes the batch only when answered).
//!
//! First, whatever an earlier run left for the recipient is fetched and counted as stale.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use stanzad::xml::NS_CLIENT;

use super::body::{self, Template};
use super::rate;
use crate::cli::OfflineArgs;
use crate::client::Stream;
use crate::ctx::Ctx;
use crate::error::{BenchError, Result};
use crate::procfs::{CpuUse, Sample};
use crate::progress::Progress;
use crate::report::Report;
use crate::{negotiate, xmpp};

pub(crate) mod store;

/// What the recipient's login brought.
#[derive(Default)]
struct Drained {
    secs: f64,
    unique: u64,
    duplicates: u64,
    stale: u64,
}

pub async fn run(ctx: Arc<Ctx>, args: &OfflineArgs) -> Report {
    let mut r = Report::new("offline");
    r.param("messages", args.messages);
    r.param("body_bytes", args.body_bytes);
    match phases(&ctx, args, &mut r).await {
        Ok(()) => {}
        Err(e) => {
            r.ok = false;
            r.note(format!("aborted: {e}"));
        }
    }
    r
}

async fn phases(ctx: &Arc<Ctx>, args: &OfflineArgs, r: &mut Report) -> Result<()> {
    let cleared = clear_backlog(ctx).await?;
    r.add("stale_cleared_before", cleared, "");
    let written = Arc::new(AtomicU64::new(0));
    let progress = {
        let (written, m) = (written.clone(), args.messages);
        Progress::start("offline store", move || format!("{}/{m} written", written.load(Relaxed)))
    };
    let stored = store::run(ctx, args, &written).await?;
    drop(progress);
    r.add("stored", args.messages, "");
    r.add("bounced", stored.bounced, "");
    r.add_f("store_secs", stored.secs, "s");
    r.add_f("stored_per_sec", rate(args.messages, stored.secs), "/s");
    r.cpu("store_", &stored.cpu, "message", args.messages);
    let before = Sample::take(ctx.server_pid);
    let drained = drain(ctx, args.messages).await?;
    let cpu = before.until(&Sample::take(ctx.server_pid));
    drain_rows(r, args.messages, &drained, &cpu);
    r.ok &= stored.bounced == 0;
    Ok(())
}

fn drain_rows(r: &mut Report, m: u64, d: &Drained, cpu: &CpuUse) {
    r.add_f("drain_secs", d.secs, "s");
    r.add_f("drained_per_sec", rate(d.unique, d.secs), "/s");
    r.add("received", d.unique, "");
    r.add("missing", m - d.unique.min(m), "");
    r.add("duplicates", d.duplicates, "");
    r.add("stale", d.stale, "");
    r.cpu("drain_", cpu, "message", d.unique);
    r.ok &= d.unique == m;
}

/// Logs the recipient in with presence and fetches its backlog until two pings in a row
/// come back with no message before them; how many messages came.
async fn clear_backlog(ctx: &Ctx) -> Result<u64> {
    let mut stream = negotiate::login(ctx, 0, 0).await?;
    stream.send(ctx, xmpp::PRESENCE).await?;
    let (mut count, mut quiet, mut round) = (0, 0, 0u64);
    while quiet < 2 {
        round += 1;
        let id = format!("clear{round}");
        stream.send(ctx, &xmpp::ping(&id, &ctx.domain)).await?;
        let got = count_until(&mut stream, ctx, &id).await?;
        count += got;
        quiet = if got == 0 { quiet + 1 } else { 0 };
        if got == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        if ctx.expired() {
            return Err(BenchError::Deadline);
        }
    }
    stream.close(ctx).await?;
    Ok(count)
}

/// Counts messages until the answer to our iq `id`, answering the server's requests.
async fn count_until(stream: &mut Stream, ctx: &Ctx, id: &str) -> Result<u64> {
    let mut count = 0;
    loop {
        let el = stream.stanza(ctx, "backlog").await?;
        if xmpp::iq_outcome(&el, id).is_some() {
            return Ok(count);
        }
        if xmpp::is_iq_request(&el) {
            stream.send(ctx, &xmpp::iq_reply(&el)).await?;
        } else if el.name() == "message" {
            count += 1;
        }
    }
}

/// The recipient logs in, sends presence, and reads until it has all M messages.
async fn drain(ctx: &Ctx, m: u64) -> Result<Drained> {
    let mut stream = negotiate::login(ctx, 0, 2).await?;
    let mut seen = vec![false; usize::try_from(m).unwrap_or(usize::MAX).saturating_add(1)];
    let mut d = Drained::default();
    let started = Instant::now();
    stream.send(ctx, xmpp::PRESENCE).await?;
    while d.unique < m {
        let el = stream.stanza(ctx, "offline messages").await?;
        if xmpp::is_iq_request(&el) {
            stream.send(ctx, &xmpp::iq_reply(&el)).await?;
            continue;
        }
        let Some(text) = xmpp::child_text(&el, "body", NS_CLIENT).filter(|_| el.name() == "message") else { continue };
        match body::parse(text, &ctx.run_tag).and_then(|(_, seq)| seen.get_mut(usize::try_from(seq).ok()?)) {
            Some(mark) if !*mark => {
                *mark = true;
                d.unique += 1;
            }
            Some(_) => d.duplicates += 1,
            None => d.stale += 1,
        }
    }
    d.secs = started.elapsed().as_secs_f64();
    stream.close(ctx).await?;
    Ok(d)
}

/// The messages the sender writes.
fn template(ctx: &Ctx, body_bytes: u64) -> Template {
    Template::new(&ctx.bare_jid(0), &ctx.run_tag, usize::try_from(body_bytes).unwrap_or(usize::MAX))
}
