//! `query`: the archive (XEP-0313). The sender (offset 1) stores M messages for the offline
//! recipient (offset 0), as `offline` does, which archives each in both archives (the
//! server's archive must be on). Then the recipient pages through its whole archive, P
//! results a page (RSM `<after/>` the previous page's `<last/>`), oldest first, until
//! `complete='true'`: pages/s, results/s, the latency of one page, and the server's CPU
//! per page. The archive may hold more than M (earlier runs); at least M must come.

use std::sync::atomic::AtomicU64;
use std::time::Instant;

use super::rate;
use crate::cli::{OfflineArgs, QueryArgs};
use crate::client::Stream;
use crate::ctx::Ctx;
use crate::error::{BenchError, Result};
use crate::procfs::Sample;
use crate::report::Report;
use crate::stats::Latency;
use crate::{negotiate, xmpp};
use std::sync::Arc;

const NS_MAM: &str = "urn:xmpp:mam:2";
const NS_RSM: &str = "http://jabber.org/protocol/rsm";

pub async fn run(ctx: Arc<Ctx>, args: &QueryArgs) -> Report {
    let mut r = Report::new("query");
    r.param("messages", args.messages);
    r.param("page", args.page);
    if let Err(e) = phases(&ctx, args, &mut r).await {
        r.ok = false;
        r.note(format!("aborted: {e}"));
    }
    r
}

async fn phases(ctx: &Ctx, args: &QueryArgs, r: &mut Report) -> Result<()> {
    let fill = OfflineArgs { common: args.common.clone(), messages: args.messages, body_bytes: args.body_bytes };
    let stored = super::offline::store::run(ctx, &fill, &AtomicU64::new(0)).await?;
    r.add_f("fill_secs", stored.secs, "s");
    r.add("bounced", stored.bounced, "");
    let before = Sample::take(ctx.server_pid);
    let paged = page_through(ctx, args.page).await?;
    let cpu = before.until(&Sample::take(ctx.server_pid));
    r.add("results", paged.results, "");
    r.add("pages", paged.pages, "");
    r.add_f("query_secs", paged.secs, "s");
    r.add_f("pages_per_sec", rate(paged.pages, paged.secs), "/s");
    r.add_f("results_per_sec", rate(paged.results, paged.secs), "/s");
    r.latency("page", &paged.latency.summary());
    r.cpu("query_", &cpu, "page", paged.pages);
    r.ok &= stored.bounced == 0 && paged.results >= args.messages;
    Ok(())
}

#[derive(Default)]
struct Paged {
    results: u64,
    pages: u64,
    secs: f64,
    latency: Latency,
}

/// The recipient reads its whole archive, page after page.
async fn page_through(ctx: &Ctx, page: u64) -> Result<Paged> {
    let mut stream = negotiate::login(ctx, 0, 3).await?;
    let mut paged = Paged::default();
    let mut after: Option<String> = None;
    let started = Instant::now();
    loop {
        let id = format!("q{}", paged.pages);
        let after_element = after.as_deref().map(|last| format!("<after>{last}</after>")).unwrap_or_default();
        let query = format!(
            "<iq type='set' id='{id}'><query xmlns='{NS_MAM}' queryid='{id}'>\
             <set xmlns='{NS_RSM}'><max>{page}</max>{after_element}</set></query></iq>"
        );
        let sent = Instant::now();
        stream.send(ctx, query.as_bytes()).await?;
        let (results, fin) = read_page(&mut stream, ctx, &id).await?;
        paged.latency.record_duration(sent.elapsed());
        paged.pages += 1;
        paged.results += results;
        let complete = fin.attr("complete") == Some("true");
        after = fin.get_child("set", NS_RSM).and_then(|set| xmpp::child_text(set, "last", NS_RSM)).map(str::to_owned);
        if complete || after.is_none() {
            break;
        }
        if ctx.expired() {
            return Err(BenchError::Deadline);
        }
    }
    paged.secs = started.elapsed().as_secs_f64();
    stream.close(ctx).await?;
    Ok(paged)
}

/// Results until the answer to query `id`; that answer's `<fin/>`.
async fn read_page(stream: &mut Stream, ctx: &Ctx, id: &str) -> Result<(u64, stanzad::xml::Element)> {
    let mut results = 0;
    loop {
        let el = stream.stanza(ctx, "archive page").await?;
        match xmpp::iq_outcome(&el, id) {
            Some(true) => {
                let fin = el.get_child("fin", NS_MAM).cloned();
                return fin.map(|fin| (results, fin)).ok_or(BenchError::Protocol(format!("no <fin/> for {id}")));
            }
            Some(false) => return Err(BenchError::Protocol(format!("query {id}: {}", xmpp::stanza_error(&el)))),
            None if xmpp::is_iq_request(&el) => stream.send(ctx, &xmpp::iq_reply(&el)).await?,
            None if el.name() == "message" && el.has_child("result", NS_MAM) => results += 1,
            None => {}
        }
    }
}
