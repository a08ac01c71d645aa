//! `login`: N accounts log in, C at a time. One login is TCP connect, [STARTTLS], SASL,
//! stream restart, bind, initial presence and a ping to the domain; its latency runs from
//! the connect to the ping's answer. Then the stream is closed (not part of the latency, but
//! of the logins/s).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{pool, rate};
use crate::cli::LoginArgs;
use crate::ctx::Ctx;
use crate::error::Result;
use crate::negotiate;
use crate::procfs::Sample;
use crate::progress::Progress;
use crate::report::Report;
use crate::stats::{Failures, Latency};

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failures: Failures,
    latency: Mutex<Latency>,
}

pub async fn run(ctx: Arc<Ctx>, args: &LoginArgs) -> Report {
    let tally = Arc::new(Tally::default());
    let progress = {
        let (tally, n) = (tally.clone(), args.count);
        Progress::start("login", move || {
            format!("{}/{n} ok, {} failed", tally.ok.load(Ordering::Relaxed), tally.failures.total())
        })
    };
    let before = Sample::take(ctx.server_pid);
    let job_tally = tally.clone();
    let job_ctx = ctx.clone();
    pool(&ctx, args.count, args.concurrency, move |i| {
        let (ctx, tally) = (job_ctx.clone(), job_tally.clone());
        async move {
            match one(&ctx, i).await {
                Ok(latency) => {
                    tally.ok.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut h) = tally.latency.lock() {
                        h.record_duration(latency);
                    }
                }
                Err(e) => tally.failures.record(&e),
            }
        }
    })
    .await;
    let cpu = before.until(&Sample::take(ctx.server_pid));
    drop(progress);
    report(&ctx, args, &tally, &cpu)
}

/// One login of the account at offset `i`, on connection `i`; its latency.
async fn one(ctx: &Ctx, i: u64) -> Result<Duration> {
    let started = Instant::now();
    let stream = negotiate::online(ctx, i, i).await?;
    let latency = started.elapsed();
    stream.close(ctx).await?;
    Ok(latency)
}

fn report(ctx: &Ctx, args: &LoginArgs, tally: &Tally, cpu: &crate::procfs::CpuUse) -> Report {
    let mut r = Report::new("login");
    r.param("count", args.count);
    r.param("concurrency", args.concurrency);
    r.param("mech", ctx.mech.name());
    r.param("starttls", ctx.tls.is_some());
    let ok = tally.ok.load(Ordering::Relaxed);
    r.add("logins_ok", ok, "");
    r.failures("logins_failed", &tally.failures);
    if ok + tally.failures.total() < args.count {
        r.note(format!("stopped by --max-secs after {} of {} logins", ok + tally.failures.total(), args.count));
        r.ok = false;
    }
    r.add_f("logins_per_sec", rate(ok, cpu.wall_secs), "/s");
    if let Ok(h) = tally.latency.lock() {
        r.latency("login", &h.summary());
    }
    r.cpu("", cpu, "login", ok);
    let (computed, reused) = ctx.salts.counts();
    if computed + reused > 0 {
        r.add("pbkdf2_computed", computed, "");
        r.add("pbkdf2_cached", reused, "");
    }
    r
}
