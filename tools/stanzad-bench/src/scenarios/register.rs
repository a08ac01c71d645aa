//! `register`: N accounts created by in-band registration (XEP-0077), C at a time, for
//! servers that allow it (Prosody with `allow_registration`, ejabberd with mod_register).
//! An account that exists already (`conflict`) is counted, not failed.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use stanzad::xml::writer::escape;

use super::{pool, rate};
use crate::cli::RegisterArgs;
use crate::ctx::Ctx;
use crate::error::{BenchError, Result};
use crate::procfs::Sample;
use crate::progress::Progress;
use crate::report::Report;
use crate::stats::{Failures, Latency};
use crate::{negotiate, xmpp};

const NS_REGISTER: &str = "jabber:iq:register";
const NS_REGISTER_FEATURE: &str = "http://jabber.org/features/iq-register";

#[derive(Default)]
struct Tally {
    created: AtomicU64,
    existed: AtomicU64,
    not_advertised: AtomicU64,
    failures: Failures,
    latency: Mutex<Latency>,
}

pub async fn run(ctx: Arc<Ctx>, args: &RegisterArgs) -> Report {
    let tally = Arc::new(Tally::default());
    let progress = {
        let tally = tally.clone();
        Progress::start("register", move || {
            let (created, existed) = (tally.created.load(Relaxed), tally.existed.load(Relaxed));
            format!("{created} created, {existed} existed, {} failed", tally.failures.total())
        })
    };
    let before = Sample::take(ctx.server_pid);
    let (job_ctx, job_tally) = (ctx.clone(), tally.clone());
    pool(&ctx, args.count, args.concurrency, move |i| {
        let (ctx, tally) = (job_ctx.clone(), job_tally.clone());
        async move {
            let started = Instant::now();
            match one(&ctx, i, &tally).await {
                Ok(created) => {
                    let counter = if created { &tally.created } else { &tally.existed };
                    counter.fetch_add(1, Relaxed);
                    if let Ok(mut h) = tally.latency.lock() {
                        h.record_duration(started.elapsed());
                    }
                }
                Err(e) => tally.failures.record(&e),
            }
        }
    })
    .await;
    let cpu = before.until(&Sample::take(ctx.server_pid));
    drop(progress);
    report(args, &tally, &cpu)
}

/// Registers the account at offset `i`: `true` if created, `false` if it existed.
async fn one(ctx: &Ctx, i: u64, tally: &Tally) -> Result<bool> {
    let (mut stream, features) = negotiate::connect(ctx, i).await?;
    if features.get_child("register", NS_REGISTER_FEATURE).is_none() {
        tally.not_advertised.fetch_add(1, Relaxed);
    }
    let request = format!(
        "<iq type='set' id='reg'><query xmlns='{NS_REGISTER}'><username>{}</username>\
         <password>{}</password></query></iq>",
        escape(&ctx.localpart(i)),
        escape(&ctx.password)
    );
    stream.send(ctx, request.as_bytes()).await?;
    let answer = stream.wait_for(ctx, "registration result", |el| xmpp::iq_outcome(el, "reg").is_some()).await?;
    let created = match (xmpp::iq_outcome(&answer, "reg"), xmpp::stanza_error(&answer)) {
        (Some(true), _) => true,
        (_, condition) if condition == "conflict" => false,
        (_, condition) => return Err(BenchError::Protocol(format!("registration refused: {condition}"))),
    };
    stream.close(ctx).await?;
    Ok(created)
}

fn report(args: &RegisterArgs, tally: &Tally, cpu: &crate::procfs::CpuUse) -> Report {
    let mut r = Report::new("register");
    r.param("count", args.count);
    r.param("concurrency", args.concurrency);
    let created = tally.created.load(Relaxed);
    r.add("created", created, "");
    r.add("existed", tally.existed.load(Relaxed), "");
    r.failures("failed", &tally.failures);
    r.add_f("created_per_sec", rate(created, cpu.wall_secs), "/s");
    if let Ok(h) = tally.latency.lock() {
        r.latency("register", &h.summary());
    }
    r.cpu("", cpu, "registration", created);
    let not_advertised = tally.not_advertised.load(Relaxed);
    if not_advertised > 0 {
        r.note(format!("{not_advertised} streams did not advertise in-band registration"));
    }
    r.ok &= created + tally.existed.load(Relaxed) == args.count;
    r
}
