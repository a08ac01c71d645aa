//! `idle`: N authenticated, bound, available sessions opened C at a time (spread over
//! source addresses 127.0.0.2… past `--conns-per-source`), held for T seconds while the
//! server's pings are answered; server RSS before the first login and at the end of the hold.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Duration;

use super::{pool, rate};
use crate::cli::IdleArgs;
use crate::client::Stream;
use crate::ctx::Ctx;
use crate::error::BenchError;
use crate::negotiate;
use crate::procfs::{rss_kib, Sample};
use crate::progress::Progress;
use crate::report::Report;
use crate::session::{self, Phase};
use crate::stats::Failures;

#[derive(Default)]
struct Tally {
    opened: AtomicU64,
    alive: AtomicU64,
    failures: Failures,
    /// Sessions that ended before we closed them.
    dropped: Failures,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

pub async fn run(ctx: Arc<Ctx>, args: &IdleArgs) -> Report {
    let tally = Arc::new(Tally::default());
    let (phase_tx, phase_rx) = watch::channel(Phase::Run);
    let rss_before = ctx.server_pid.and_then(|pid| rss_kib(Some(pid)).ok());
    let tool_rss_before = rss_kib(None).ok();
    let progress = {
        let tally = tally.clone();
        Progress::start("idle", move || {
            let (opened, alive) = (tally.opened.load(Relaxed), tally.alive.load(Relaxed));
            format!("{opened} opened, {alive} alive, {} failed", tally.failures.total())
        })
    };
    let started = Instant::now();
    open_all(&ctx, args, &tally, &phase_rx).await;
    let open_secs = started.elapsed().as_secs_f64();
    let before = Sample::take(ctx.server_pid);
    let held = ctx.sleep_until(tokio::time::Instant::now() + Duration::from_secs(args.hold)).await;
    let cpu = before.until(&Sample::take(ctx.server_pid));
    let rss_after = ctx.server_pid.and_then(|pid| rss_kib(Some(pid)).ok());
    let tool_rss_after = rss_kib(None).ok();
    let alive_at_end = tally.alive.load(Relaxed);
    drop(progress);
    let _ = phase_tx.send(Phase::Close);
    let tasks = tally.tasks.lock().map(|mut t| std::mem::take(&mut *t)).unwrap_or_default();
    let aborted = session::join_all(tasks, ctx.wait).await;
    let mut r = Report::new("idle");
    r.param("count", args.count);
    r.param("concurrency", args.concurrency);
    r.param("hold", args.hold);
    let opened = tally.opened.load(Relaxed);
    r.add("opened", opened, "");
    r.failures("open_failed", &tally.failures);
    r.failures("dropped_during_hold", &tally.dropped);
    r.add("alive_at_end", alive_at_end, "");
    r.add_f("open_secs", open_secs, "s");
    r.add_f("opened_per_sec", rate(opened, open_secs), "/s");
    r.cpu("hold_", &cpu, "session", opened);
    memory_rows(&mut r, "server_", rss_before.zip(rss_after), opened);
    memory_rows(&mut r, "tool_", tool_rss_before.zip(tool_rss_after), opened);
    if !held {
        r.note("the hold was cut short by --max-secs");
    }
    if aborted > 0 {
        r.note(format!("{aborted} session tasks did not end within --timeout after the close"));
    }
    r.ok &= opened == args.count;
    r
}

/// RSS before, after, and per session (KiB).
fn memory_rows(r: &mut Report, prefix: &str, rss: Option<(u64, u64)>, sessions: u64) {
    let Some((before, after)) = rss else { return };
    r.add(&format!("{prefix}rss_before_kib"), before, "KiB");
    r.add(&format!("{prefix}rss_after_kib"), after, "KiB");
    if sessions > 0 {
        r.add_f(&format!("{prefix}rss_per_session_kib"), after.saturating_sub(before) as f64 / sessions as f64, "KiB");
    }
}

/// Opens the sessions, C at a time; each one's tasks are started as soon as it is up.
async fn open_all(ctx: &Arc<Ctx>, args: &IdleArgs, tally: &Arc<Tally>, phase: &watch::Receiver<Phase>) {
    let (job_ctx, job_tally, job_phase) = (ctx.clone(), tally.clone(), phase.clone());
    pool(ctx, args.count, args.concurrency, move |i| {
        let (ctx, tally, phase) = (job_ctx.clone(), job_tally.clone(), job_phase.clone());
        async move {
            match negotiate::online(&ctx, i, i).await {
                Ok(stream) => hold(stream, &tally, phase),
                Err(e) => tally.failures.record(&e),
            }
        }
    })
    .await;
}

/// Starts the reader (answers pings; counts the session as dropped if it ends before the
/// close) and the writer of one session.
fn hold(stream: Stream, tally: &Arc<Tally>, phase: watch::Receiver<Phase>) {
    tally.opened.fetch_add(1, Relaxed);
    tally.alive.fetch_add(1, Relaxed);
    let Stream { framer, writer, .. } = stream;
    let (reply_tx, replies) = session::replies();
    let reader = {
        let (tally, phase) = (tally.clone(), phase.clone());
        tokio::spawn(async move {
            let ended = session::read_loop(framer, reply_tx, |_| {}).await;
            tally.alive.fetch_sub(1, Relaxed);
            if *phase.borrow() != Phase::Close {
                tally.dropped.record(&ended.err().unwrap_or(BenchError::Closed("the end of the hold")));
            }
        })
    };
    let writer = tokio::spawn(async move {
        let _ = session::relay(writer, replies, phase).await;
    });
    if let Ok(mut tasks) = tally.tasks.lock() {
        tasks.extend([reader, writer]);
    }
}
