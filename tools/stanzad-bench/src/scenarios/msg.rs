//! `msg`: K pairs of online accounts (offsets 2p and 2p+1) send each other chat messages
//! for `--duration` seconds, closed loop (`--window` W in flight per direction) or open loop
//! (`--rate` R per second over all 2K senders). The receiver takes the latency from the
//! timestamp in the body. After sending stops, `--drain-secs` at most are given to the
//! messages in flight; lost = sent − received.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use tokio::sync::{watch, Semaphore};
use tokio::time::{Duration, Instant};

use super::body::Template;
use super::msg_tasks::{Counters, Pace, Receiver, Sender};
use super::{pool, rate};
use crate::cli::MsgArgs;
use crate::client::Stream;
use crate::ctx::Ctx;
use crate::negotiate;
use crate::procfs::{CpuUse, Sample};
use crate::progress::Progress;
use crate::report::Report;
use crate::session::{self, Phase};
use crate::stats::{self, ns_of, Batch, Failures, Latency, Summary};

pub async fn run(ctx: Arc<Ctx>, args: &MsgArgs) -> Report {
    let mut report = Report::new("msg");
    params(&mut report, args);
    let failures: Arc<Failures> = Arc::default();
    let Some(streams) = login_all(&ctx, 2 * args.pairs, args.concurrency, &failures).await else {
        report.failures("logins_failed", &failures);
        report.note("not every account could log in: no messages sent");
        return report;
    };
    let counters = Arc::new(Counters::default());
    let latency: stats::Shared = Arc::default();
    let (phase_tx, phase_rx) = watch::channel(Phase::Run);
    let windows: Vec<Option<Arc<Semaphore>>> = (0..2 * args.pairs)
        .map(|_| args.rate.is_none().then(|| Arc::new(Semaphore::new(args.window as usize))))
        .collect();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (i, stream) in (0u64..).zip(streams) {
        tasks.extend(spawn_client(&ctx, args, i, stream, start, &counters, &latency, &windows, &phase_rx));
    }
    let measured = measure(&ctx, args, start, &counters, &phase_tx).await;
    let _ = phase_tx.send(Phase::Close);
    let aborted = session::join_all(tasks, ctx.wait).await;
    if !measured.completed {
        report.note("sending was cut short by --max-secs");
    }
    if aborted > 0 {
        report.note(format!("{aborted} client tasks did not end within --timeout after the close"));
    }
    let summary = latency.lock().map(|h| h.summary()).unwrap_or_else(|_| Latency::default().summary());
    results(&mut report, &counters, start, &measured, &summary);
    report
}

/// The sending phase and the drain, as measured.
struct Measured {
    /// Sending lasted `--duration` (not cut by `--max-secs`).
    completed: bool,
    sent_secs: f64,
    /// From the start of sending to the end of the drain.
    cpu: CpuUse,
}

/// Lets the senders run for `--duration` (keeping time for the drain and the close before
/// the deadline), then waits for the messages in flight.
async fn measure(
    ctx: &Ctx,
    args: &MsgArgs,
    start: Instant,
    counters: &Arc<Counters>,
    phase: &watch::Sender<Phase>,
) -> Measured {
    let progress = progress(counters, start);
    let before = Sample::take(ctx.server_pid);
    let reserve = Duration::from_secs(args.drain_secs) + ctx.wait;
    let latest = ctx.deadline.checked_sub(reserve).unwrap_or(start);
    let planned = start + Duration::from_secs(args.duration);
    ctx.sleep_until(planned.min(latest)).await;
    let sent_secs = start.elapsed().as_secs_f64();
    let _ = phase.send(Phase::Drain);
    drain(ctx, counters, Duration::from_secs(args.drain_secs)).await;
    let cpu = before.until(&Sample::take(ctx.server_pid));
    drop(progress);
    Measured { completed: planned <= latest, sent_secs, cpu }
}

fn params(r: &mut Report, args: &MsgArgs) {
    r.param("pairs", args.pairs);
    match args.rate {
        Some(total) => r.param("rate", total),
        None => r.param("window", args.window),
    }
    r.param("duration", args.duration);
    r.param("body_bytes", args.body_bytes);
}

/// Logs in the accounts at offsets `0..n` with presence; `None` unless all did (the others
/// are closed again).
async fn login_all(ctx: &Arc<Ctx>, n: u64, concurrency: u64, failures: &Arc<Failures>) -> Option<Vec<Stream>> {
    let slots: Arc<Mutex<Vec<Option<Stream>>>> = Arc::new(Mutex::new((0..n).map(|_| None).collect()));
    let (job_ctx, job_slots, job_failures) = (ctx.clone(), slots.clone(), failures.clone());
    pool(ctx, n, concurrency, move |i| {
        let (ctx, slots, failures) = (job_ctx.clone(), job_slots.clone(), job_failures.clone());
        async move {
            match negotiate::online(&ctx, i, i).await {
                Ok(stream) => {
                    if let (Ok(mut slots), Ok(i)) = (slots.lock(), usize::try_from(i)) {
                        slots[i] = Some(stream);
                    }
                }
                Err(e) => failures.record(&e),
            }
        }
    })
    .await;
    let streams: Vec<Option<Stream>> = slots.lock().map(|mut s| std::mem::take(&mut *s)).unwrap_or_default();
    if streams.len() as u64 == n && streams.iter().all(Option::is_some) {
        return Some(streams.into_iter().flatten().collect());
    }
    for stream in streams.into_iter().flatten() {
        let _ = stream.close(ctx).await;
    }
    None
}

/// Splits client `i` into its receiver and sender tasks.
#[allow(clippy::too_many_arguments)]
fn spawn_client(
    ctx: &Ctx,
    args: &MsgArgs,
    i: u64,
    stream: Stream,
    start: Instant,
    counters: &Arc<Counters>,
    latency: &stats::Shared,
    windows: &[Option<Arc<Semaphore>>],
    phase: &watch::Receiver<Phase>,
) -> [tokio::task::JoinHandle<()>; 2] {
    let partner = i ^ 1;
    let (own, partner_window) = (windows[i as usize].clone(), windows[partner as usize].clone());
    let (reply_tx, reply_rx) = session::replies();
    let mut receiver = Receiver {
        run_tag: Arc::from(ctx.run_tag.as_str()),
        own: own.clone(),
        partner: partner_window,
        counters: counters.clone(),
        latency: Batch::new(latency.clone()),
    };
    let pace = match (own, args.rate) {
        (Some(window), _) => Pace::Window(window),
        (None, rate) => open_loop(rate.unwrap_or(1.0), 2 * args.pairs, i, start),
    };
    let sender = Sender {
        writer: stream.writer,
        replies: reply_rx,
        phase: phase.clone(),
        template: Template::new(&ctx.bare_jid(partner), &ctx.run_tag, args.body_bytes as usize),
        pace,
        counters: counters.clone(),
    };
    let framer = stream.framer;
    [
        tokio::spawn(async move {
            let _ = session::read_loop(framer, reply_tx, |el| receiver.on_stanza(el)).await;
        }),
        tokio::spawn(async move {
            let _ = sender.run().await;
        }),
    ]
}

/// Open loop: `total` messages/s over `senders`; sender `i` starts `i/senders` of an
/// interval late so that the senders do not fire together.
fn open_loop(total: f64, senders: u64, i: u64, start: Instant) -> Pace {
    let per_sender = (total / senders as f64).max(1e-3);
    let interval = Duration::from_secs_f64(1.0 / per_sender).max(Duration::from_micros(1));
    let offset = interval.mul_f64(i as f64 / senders as f64);
    Pace::Rate { next: start + offset, interval }
}

fn progress(counters: &Arc<Counters>, start: Instant) -> Progress {
    let counters = counters.clone();
    Progress::start("msg", move || {
        let (sent, received) = (counters.sent.load(Relaxed), counters.received.load(Relaxed));
        let secs = start.elapsed().as_secs_f64();
        format!("sent {sent}, received {received} ({:.0}/s)", rate(received, secs))
    })
}

/// Waits until every sent message was received or bounced, at most `limit`.
async fn drain(ctx: &Ctx, counters: &Counters, limit: Duration) {
    let until = Instant::now() + limit;
    while Instant::now() < until && !ctx.expired() {
        let done = counters.received.load(Relaxed) + counters.bounced.load(Relaxed);
        if done >= counters.sent.load(Relaxed) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn results(r: &mut Report, c: &Counters, start: Instant, m: &Measured, latency: &Summary) {
    let (sent, received) = (c.sent.load(Relaxed), c.received.load(Relaxed));
    let lost = sent.saturating_sub(received);
    r.add("sent", sent, "");
    r.add("received", received, "");
    r.add("bounced", c.bounced.load(Relaxed), "");
    r.add("lost", lost, "");
    r.add("stale", c.stale.load(Relaxed), "");
    r.add_f("sent_per_sec", rate(sent, m.sent_secs), "/s");
    let last = c.last_rx_ns.load(Relaxed).saturating_sub(ns_of(start.into_std()));
    r.add_f("delivered_per_sec", rate(received, last as f64 / 1e9), "/s");
    r.latency("latency", latency);
    r.cpu("", &m.cpu, "message", received);
    if lost > 0 {
        r.ok = false;
        r.note("messages were lost (sent − received > 0 after the drain wait)");
    }
}
