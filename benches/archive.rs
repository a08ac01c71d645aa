//! Queries on a big archive (issue 15): one account with `ARCHIVE_BENCH_ENTRIES` archived
//! messages (default 1 000 000) with 100 correspondents, in a temporary sled store; one
//! iteration is one XEP-0313 page of 50 as the MAM module asks for it (counted up to its
//! limit), by time range, by conversation (bare and full JID), after and before an id, and
//! the last page of the whole archive; and one page without its count. The archive is
//! built as the server builds it (the store's maintenance after every 32 appends, as the
//! flusher runs it after each group commit); the queries are what is measured.
//!
//!     cargo bench --bench archive -- --quick
//!     ARCHIVE_BENCH_ENTRIES=100000 cargo bench --bench archive

use criterion::{criterion_group, criterion_main, Criterion};
use stanzad::storage::archive::{ArchiveQuery, ArchiveStore, Page};
use stanzad::storage::sled::SledStore;
use stanzad::storage::UserStore;
use std::hint::black_box;
use xmpp_parsers::jid::{BareJid, Jid};

// Only `block_on` of what the session benchmarks share.
#[allow(dead_code)]
mod common;
use common::block_on;

/// What the MAM module counts up to before it gives up on an exact `<count/>`.
const COUNT_UP_TO: u64 = 10_000;
const PAGE: usize = 50;
/// One entry every millisecond, from this stamp on (µs).
const FIRST_STAMP: u64 = 1_700_000_000_000_000;

fn entries() -> u64 {
    std::env::var("ARCHIVE_BENCH_ENTRIES").ok().and_then(|n| n.parse().ok()).unwrap_or(1_000_000)
}

fn correspondent(i: u64) -> Jid {
    Jid::new(&format!("c{}@example.org/phone", i % 100)).expect("jid")
}

/// The archive, and the ids of its entries a quarter, half and three quarters in.
fn big_archive(owner: &BareJid, n: u64) -> (SledStore, Vec<String>) {
    let store = SledStore::temporary().expect("sled");
    let stanza =
        b"<message xmlns='jabber:client' type='chat'><body>a message of some sixty bytes, as chats go</body></message>";
    let mut marks = Vec::new();
    for i in 0..n {
        let id = block_on(store.archive(owner, &correspondent(i), FIRST_STAMP + i * 1000, stanza)).expect("archive");
        if i % 32 == 31 {
            block_on(store.maintain()).expect("maintenance");
        }
        if [n / 4, n / 2, 3 * n / 4].contains(&i) {
            marks.push(id);
        }
    }
    (store, marks)
}

fn query(page: Page) -> ArchiveQuery {
    ArchiveQuery { page, count_up_to: COUNT_UP_TO, max_bytes: 1 << 20, ..ArchiveQuery::all(PAGE) }
}

fn archive_queries(c: &mut Criterion) {
    let n = entries();
    let owner = BareJid::new("alice@example.org").expect("jid");
    let (store, marks) = big_archive(&owner, n);
    let middle = FIRST_STAMP + (n / 2) * 1000;
    let cases: Vec<(&str, ArchiveQuery)> = vec![
        ("last_page", query(Page::Before(None))),
        (
            "time_range",
            ArchiveQuery { start: Some(middle), end: Some(middle + 60_000_000), ..query(Page::After(None)) },
        ),
        (
            "with_bare_last_page",
            ArchiveQuery { with: Some(Jid::new("c7@example.org").expect("jid")), ..query(Page::Before(None)) },
        ),
        (
            "with_full_after_id",
            ArchiveQuery { with: Some(correspondent(7)), ..query(Page::After(Some(marks[0].clone()))) },
        ),
        ("after_id", query(Page::After(Some(marks[1].clone())))),
        ("before_id", query(Page::Before(Some(marks[2].clone())))),
        // The same page without `<count/>`: what the count costs.
        ("after_id_uncounted", ArchiveQuery { count_up_to: 0, ..query(Page::After(Some(marks[1].clone()))) }),
    ];
    let mut group = c.benchmark_group(format!("archive_{n}"));
    for (name, q) in cases {
        let page = block_on(store.query_archive(&owner, &q)).expect("query");
        assert_eq!(page.messages.len(), PAGE.min(n as usize), "{name}: a full page");
        group.bench_function(name, |b| b.iter(|| black_box(block_on(store.query_archive(&owner, &q)).expect("query"))));
    }
    group.finish();
}

criterion_group!(benches, archive_queries);
criterion_main!(benches);
