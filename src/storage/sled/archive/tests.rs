use super::super::SledStore;
use crate::storage::archive::{ArchivePage, ArchivePrefs, ArchiveQuery, ArchiveStore, Default, Page};
use crate::storage::memory::MemoryStore;
use crate::storage::UserStore;
use xmpp_parsers::jid::{BareJid, Jid};

fn bare(s: &str) -> BareJid {
    BareJid::new(s).expect("jid")
}

fn full(s: &str) -> Jid {
    Jid::new(s).expect("jid")
}

fn bodies(page: &ArchivePage) -> Vec<String> {
    page.messages.iter().map(|m| String::from_utf8_lossy(&m.stanza).into_owned()).collect()
}

/// A small deterministic generator (xorshift), so a failure repeats.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

const PARTIES: [&str; 5] =
    ["bob@example.org/phone", "bob@example.org/laptop", "carol@example.net", "dave@example.com/x", "bob@example.org"];

/// Appends, refusals, retention and maintenance in a random order, compared with the
/// memory store after each step.
#[tokio::test]
async fn chunks_and_tails_answer_as_the_memory_store_does() {
    for seed in 1..=6u64 {
        let (sled, memory) = (SledStore::temporary().expect("sled"), MemoryStore::new());
        let owner = bare("alice@example.org");
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        // Each id in both stores, by body.
        let mut ids: Vec<(String, String)> = Vec::new();
        for step in 0..400u64 {
            match rng.below(20) {
                0 => sled.archives.write_tails(rng.below(2) == 0).expect("maintenance"),
                1 if !ids.is_empty() => {
                    let (a, b) = ids.remove(rng.below(ids.len() as u64) as usize);
                    assert!(sled.unarchive(&owner, &a).await.expect("unarchive"));
                    assert!(memory.unarchive(&owner, &b).await.expect("unarchive"));
                }
                2 | 3 if step % 7 == 0 => {
                    let before = step * 10 - rng.below(step * 5 + 1);
                    let (a, b) = if rng.below(2) == 0 {
                        (sled.expire_archive(before).await, memory.expire_archive(before).await)
                    } else {
                        (sled.expire_archive_of(&owner, before).await, memory.expire_archive_of(&owner, before).await)
                    };
                    assert_eq!(a.expect("expire"), b.expect("expire"), "expired alike");
                    let alive = memory.query_archive(&owner, &ArchiveQuery::all(10_000)).await.expect("query");
                    ids.retain(|(_, b)| alive.messages.iter().any(|m| &m.id == b));
                }
                _ => {
                    let with = full(PARTIES[rng.below(PARTIES.len() as u64) as usize]);
                    let body = format!("m{step}");
                    let a = sled.archive(&owner, &with, step * 10, body.as_bytes()).await.expect("archive");
                    let b = memory.archive(&owner, &with, step * 10, body.as_bytes()).await.expect("archive");
                    ids.push((a, b));
                }
            }
            if step % 25 == 0 {
                let sled_ids: Vec<String> = ids.iter().map(|(a, _)| a.clone()).collect();
                let memory_ids: Vec<String> = ids.iter().map(|(_, b)| b.clone()).collect();
                same_answers(&sled, &memory, &owner, &sled_ids, &memory_ids, &mut rng).await;
            }
        }
    }
}

/// Both stores answer random queries alike (entries by body, completeness, count,
/// index), whatever is in sled's tails and whatever in its chunks. Ids are named by
/// position: each store has its own.
async fn same_answers(
    sled: &SledStore,
    memory: &MemoryStore,
    owner: &BareJid,
    sled_ids: &[String],
    memory_ids: &[String],
    rng: &mut Rng,
) {
    let translate = |q: &ArchiveQuery, to: &[String]| -> ArchiveQuery {
        let map = |id: &String| sled_ids.iter().position(|s| s == id).map(|i| to[i].clone()).unwrap_or_default();
        let page = match &q.page {
            Page::After(id) => Page::After(id.as_ref().map(map)),
            Page::Before(id) => Page::Before(id.as_ref().map(map)),
        };
        ArchiveQuery { page, ..q.clone() }
    };
    let mut seeded = Rng(rng.0);
    let mut queries = vec![ArchiveQuery::all(1000)];
    for _ in 0..12 {
        let id =
            |rng: &mut Rng| (!sled_ids.is_empty()).then(|| sled_ids[rng.below(sled_ids.len() as u64) as usize].clone());
        let with = match seeded.below(4) {
            0 => None,
            1 => Some(full("bob@example.org")),
            _ => Some(full(PARTIES[seeded.below(PARTIES.len() as u64) as usize])),
        };
        let page = if seeded.below(2) == 0 { Page::After(id(&mut seeded)) } else { Page::Before(id(&mut seeded)) };
        let start = (seeded.below(3) == 0).then(|| seeded.below(4000));
        queries.push(ArchiveQuery { with, page, start, ..ArchiveQuery::all(1 + seeded.below(7) as usize) });
    }
    rng.0 = seeded.0;
    for query in queries {
        let a = sled.query_archive(owner, &translate(&query, sled_ids)).await;
        let b = memory.query_archive(owner, &translate(&query, memory_ids)).await;
        match (a, b) {
            (Ok(a), Ok(b)) => {
                assert_eq!(bodies(&a), bodies(&b), "{query:?}");
                assert_eq!((a.complete, a.count, a.first_index), (b.complete, b.count, b.first_index), "{query:?}");
            }
            (Err(_), Err(_)) => {}
            (a, b) => panic!("{query:?}: sled {a:?}, memory {b:?}"),
        }
    }
}

/// Everything acknowledged survives a restart, wherever it was (the log or chunks), and
/// nothing removed comes back: a refused entry, a deleted archive, expired entries.
#[tokio::test]
async fn a_restart_keeps_what_was_flushed_and_brings_back_nothing_removed() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (alice, bob, carol) = (bare("alice@example.org"), bare("bob@example.org"), bare("carol@example.org"));
    let with = full("dave@example.org/d");
    let open = || reopen(dir.path());
    let all = ArchiveQuery::all(100);
    {
        let store = open();
        for i in 0..5u64 {
            store.archive(&alice, &with, 1_000 + i, format!("a{i}").as_bytes()).await.expect("archive");
            store.archive(&bob, &with, 1_000 + i, format!("b{i}").as_bytes()).await.expect("archive");
        }
        store.archive(&carol, &with, 10, b"old").await.expect("archive");
        store.archive(&carol, &with, 5_000, b"new").await.expect("archive");
        let a2 = store.query_archive(&alice, &all).await.expect("query").messages[2].id.clone();
        store.flush().await.expect("flush");
        // Only in the log so far; then removed in three ways.
        assert!(store.unarchive(&alice, &a2).await.expect("unarchive"));
        store.delete_archive(&bob).await.expect("delete");
        assert_eq!(store.expire_archive(1_000).await.expect("expire"), 1);
        store.flush().await.expect("flush");
    }
    let store = open();
    let page = store.query_archive(&alice, &all).await.expect("query");
    assert_eq!(bodies(&page), ["a0", "a1", "a3", "a4"]);
    assert_eq!((page.count, page.first_index), (Some(4), Some(0)));
    assert!(store.query_archive(&bob, &all).await.expect("query").messages.is_empty(), "deleted");
    assert_eq!(bodies(&store.query_archive(&carol, &all).await.expect("query")), ["new"], "expired");
    // Written out as chunks, the log is dropped after the next flush; all still there.
    store.maintain().await.expect("maintain");
    store.archives.write_tails(true).expect("full maintenance");
    store.flush().await.expect("flush");
    assert_eq!(store.archives.log.files(), 0, "the log is dropped once its entries are in chunks");
    store.archive(&bob, &with, 9_000, b"b-again").await.expect("archive");
    store.flush().await.expect("flush");
    drop(store);
    let store = open();
    assert_eq!(bodies(&store.query_archive(&alice, &all).await.expect("query")), ["a0", "a1", "a3", "a4"]);
    assert_eq!(bodies(&store.query_archive(&bob, &all).await.expect("query")), ["b-again"]);
    // New entries follow the old ones, and counts hold across the hole.
    store.archive(&alice, &with, 2_000, b"a5").await.expect("archive");
    let page = store.query_archive(&alice, &all).await.expect("query");
    assert_eq!(bodies(&page), ["a0", "a1", "a3", "a4", "a5"]);
    assert_eq!(page.count, Some(5));
}

/// An account's own retention takes its archive alone, tail and chunks, holes too, and
/// what it took stays gone after a restart that reads the log back.
#[tokio::test]
async fn an_owners_retention_takes_its_archive_alone_and_survives_a_restart() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (alice, bob) = (bare("alice@example.org"), bare("bob@example.org"));
    let with = full("carol@example.org/c");
    let all = ArchiveQuery::all(1_000);
    {
        let store = reopen(dir.path());
        let mut ids = Vec::new();
        for i in 0..700u64 {
            ids.push(store.archive(&alice, &with, i, format!("a{i}").as_bytes()).await.expect("archive"));
            store.archive(&bob, &with, i, format!("b{i}").as_bytes()).await.expect("archive");
            if i == 400 {
                // Older ones in chunks (more than a turn of them), newer ones in the tail.
                store.archives.write_tails(true).expect("maintenance");
            }
        }
        assert!(store.unarchive(&alice, &ids[10]).await.expect("unarchive"), "a hole");
        assert!(store.unarchive(&alice, &ids[600]).await.expect("unarchive"), "one more");
        store.flush().await.expect("flush");
        let holes = || store.archives.chunks.scan_prefix(super::keys::holes("alice@example.org")).count();
        assert_eq!(holes(), 2);
        assert_eq!(store.expire_archive_of(&alice, 500).await.expect("expire"), 499, "500 less the hole");
        assert_eq!(store.expire_archive_of(&alice, 500).await.expect("again"), 0);
        store.flush().await.expect("flush");
        let page = store.query_archive(&alice, &all).await.expect("query");
        assert_eq!((page.messages.len(), page.count), (199, Some(199)));
        assert_eq!(bodies(&page)[0], "a500");
        assert_eq!(holes(), 1, "the hole of an expired entry went with it, a later one stays");
        assert_eq!(store.query_archive(&bob, &all).await.expect("query").count, Some(700), "bob's untouched");
    }
    let store = reopen(dir.path());
    for check in ["after a restart", "after maintenance"] {
        let page = store.query_archive(&alice, &all).await.expect("query");
        assert_eq!((page.messages.len(), page.count, bodies(&page)[0].as_str()), (199, Some(199), "a500"), "{check}");
        let by_carol = ArchiveQuery { with: Some(full("carol@example.org")), ..ArchiveQuery::all(1_000) };
        assert_eq!(store.query_archive(&alice, &by_carol).await.expect("query").count, Some(199), "{check}");
        assert_eq!(store.query_archive(&bob, &all).await.expect("query").count, Some(700), "{check}");
        store.archives.write_tails(true).expect("maintenance");
    }
    // Later entries are kept, and follow.
    store.archive(&alice, &with, 10, b"late").await.expect("archive");
    let page = store.query_archive(&alice, &ArchiveQuery { page: Page::Before(None), ..ArchiveQuery::all(1) }).await;
    assert_eq!(bodies(&page.expect("query")), ["late"]);
}

/// Retention, for all or for one account, releases maintenance's lock between turns: a
/// long expiry lets maintenance (and the group commits waiting behind it) in between.
#[test]
fn retention_takes_turns_with_maintenance() {
    let store = SledStore::temporary().expect("sled");
    let (alice, with) = (bare("alice@example.org"), full("bob@example.org"));
    for i in 0..(super::tail::CHUNK_ENTRIES as u64 * 600) {
        store.archive(&alice, &with, i, b"m").at_once().expect("archive");
    }
    store.archives.write_tails(true).expect("maintenance");
    let chunks = |store: &SledStore| store.archives.chunks.scan_prefix(super::keys::data("alice@example.org")).count();
    assert_eq!(chunks(&store), 600);
    let expiring = {
        let (store, alice) = (store.clone(), alice.clone());
        std::thread::spawn(move || store.expire_archive_of(&alice, u64::MAX >> 1).at_once().expect("expire"))
    };
    // Maintenance's turn, taken while the expiry is half done.
    let mut between = false;
    while !expiring.is_finished() {
        let _turn = store.archives.lock_maintenance();
        between |= (1..600).contains(&chunks(&store));
    }
    assert_eq!(expiring.join().expect("no panic"), super::tail::CHUNK_ENTRIES as u64 * 600);
    assert_eq!(chunks(&store), 0);
    assert!(between, "maintenance got in between");
}

/// Opens a store in `dir` whose database was just dropped: sled's own threads may hold its
/// file lock a moment longer.
fn reopen(dir: &std::path::Path) -> SledStore {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match SledStore::open(dir) {
            Ok(store) => return store,
            Err(e) if super::super::is_locked(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("open: {e:?}"),
        }
    }
}

/// A message refused at once is the newest entry of its archive: it leaves no hole (a
/// flood of refused messages leaves nothing behind), the next entry takes its ordinals,
/// and the log's record of the removal keeps it out after a restart.
#[tokio::test]
async fn refusing_the_newest_entry_leaves_no_hole_and_survives_a_restart() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (alice, bob) = (bare("alice@example.org"), full("bob@example.org/b"));
    let all = ArchiveQuery { count_up_to: 0, ..ArchiveQuery::all(100) };
    {
        let store = SledStore::open(dir.path()).expect("open");
        store.archive(&alice, &bob, 1, b"kept").await.expect("archive");
        for i in 0..50u64 {
            let id = store.archive(&alice, &bob, 2 + i, b"refused").await.expect("archive");
            assert!(store.unarchive(&alice, &id).await.expect("unarchive"));
        }
        store.archive(&alice, &bob, 100, b"next").await.expect("archive");
        assert!(store.archives.chunks.scan_prefix(super::keys::holes("alice@example.org")).next().is_none());
        store.flush().await.expect("flush");
    }
    let store = reopen(dir.path());
    let page = store.query_archive(&alice, &all).await.expect("query");
    assert_eq!(bodies(&page), ["kept", "next"]);
    let counted = store.query_archive(&alice, &ArchiveQuery::all(100)).await.expect("query");
    assert_eq!((counted.count, counted.first_index), (Some(2), Some(0)));
    store.archives.write_tails(true).expect("maintenance");
    let by_bob = ArchiveQuery { with: Some(full("bob@example.org")), ..ArchiveQuery::all(100) };
    assert_eq!(store.query_archive(&alice, &by_bob).await.expect("query").count, Some(2));
}

/// Archives of a store written before (one key per entry) are moved into chunks at
/// start, in order, with their conversations; the old trees are emptied.
#[tokio::test]
async fn legacy_archives_are_moved_into_chunks() {
    use crate::storage::archive::ids::place;
    let dir = tempfile::tempdir().expect("temporary directory");
    {
        let db = sled::open(dir.path().join("db")).expect("sled");
        let (entries, index) = (db.open_tree("archive").expect("tree"), db.open_tree("archive_with").expect("tree"));
        for i in 0..150u64 {
            let with = if i % 3 == 0 { "bob@example.org/phone" } else { "carol@example.net" };
            let mut key = b"alice@example.org\0".to_vec();
            key.extend_from_slice(&place(1_000 + i, i).to_be_bytes());
            let mut value = (with.len() as u16).to_be_bytes().to_vec();
            value.extend_from_slice(with.as_bytes());
            value.extend_from_slice(format!("m{i}").as_bytes());
            entries.insert(&key, value).expect("insert");
            index.insert(b"alice@example.org\0orphan\0", b"x").expect("insert");
        }
        db.open_tree("archive_expiry").expect("tree").insert(b"k", b"v").expect("insert");
        db.flush().expect("flush");
    }
    let store = reopen(dir.path());
    let alice = bare("alice@example.org");
    let page = store.query_archive(&alice, &ArchiveQuery::all(1000)).await.expect("query");
    assert_eq!(bodies(&page), (0..150).map(|i| format!("m{i}")).collect::<Vec<_>>());
    let bob = ArchiveQuery { with: Some(full("bob@example.org")), ..ArchiveQuery::all(10) };
    let page = store.query_archive(&alice, &bob).await.expect("query");
    assert_eq!((page.count, bodies(&page)[1].as_str()), (Some(50), "m3"));
    assert!(store.archives.legacy.iter().all(sled::Tree::is_empty), "the old trees are empty");
}

/// Appends and queries never wait for maintenance, retention or a deletion.
#[test]
fn appends_do_not_wait_for_maintenance() {
    let store = SledStore::temporary().expect("sled");
    let (alice, with) = (bare("alice@example.org"), full("bob@example.org"));
    let held = store.archives.lock_maintenance();
    let appended = {
        let store = store.clone();
        std::thread::spawn(move || {
            store.archive(&alice, &with, 1, b"m").at_once().expect("archive");
            store.query_archive(&alice, &ArchiveQuery::all(5)).at_once().expect("query").messages.len()
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !appended.is_finished() {
        assert!(std::time::Instant::now() < deadline, "the append waited for maintenance");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    drop(held);
    assert_eq!(appended.join().expect("no panic"), 1);
}

/// Counting a big archive's page reads a few chunks, not the matches: the count is exact
/// far beyond any scan limit.
#[tokio::test]
async fn counts_come_from_ordinals() {
    let store = SledStore::temporary().expect("sled");
    let (alice, bob, carol) = (bare("alice@example.org"), full("bob@example.org/b"), full("carol@example.org"));
    let mut ids = Vec::new();
    for i in 0..3_000u64 {
        let with = if i % 3 == 0 { &bob } else { &carol };
        ids.push(store.archive(&alice, with, i, b"m").await.expect("archive"));
        if i % 500 == 0 {
            store.archives.write_tails(true).expect("maintenance");
        }
    }
    assert!(store.unarchive(&alice, &ids[1_501]).await.expect("unarchive"));
    let limited = |with: Option<Jid>, page| ArchiveQuery { with, page, count_up_to: 10, ..ArchiveQuery::all(5) };
    let page = store.query_archive(&alice, &limited(None, Page::After(Some(ids[2_000].clone())))).await;
    assert_eq!(page.map(|p| (p.count, p.first_index)).expect("query"), (Some(2_999), Some(2_000)));
    let conversation = limited(Some(full("carol@example.org")), Page::Before(None));
    let page = store.query_archive(&alice, &conversation).await.expect("query");
    assert_eq!((page.count, page.first_index), (Some(1_999), Some(1_994)), "1,501 was carol's");
    let by_full_jid = limited(Some(bob.clone()), Page::Before(None));
    let page = store.query_archive(&alice, &by_full_jid).await.expect("query");
    assert_eq!(page.count, None, "a full JID is counted by a scan, here over its limit");
}

/// Chunks are kept packed, and a store whose chunks were written before, as plain
/// records, answers the same: queries, counts, removal and retention read both.
#[tokio::test]
async fn packed_and_older_plain_chunks_answer_alike() {
    let store = SledStore::temporary().expect("sled");
    let (alice, bob, carol) = (bare("alice@example.org"), full("bob@example.org/b"), full("carol@example.org"));
    let mut ids = Vec::new();
    for i in 0..200u64 {
        let with = if i % 2 == 0 { &bob } else { &carol };
        let body = format!("<message><body>hello there, number {i}</body></message>");
        ids.push(store.archive(&alice, with, 1_000 + i, body.as_bytes()).await.expect("archive"));
    }
    store.archives.write_tails(true).expect("maintenance");
    let all = ArchiveQuery { count_up_to: 1_000, ..ArchiveQuery::all(500) };
    let by_carol = ArchiveQuery { with: Some(full("carol@example.org")), ..all.clone() };
    let before = (store.query_archive(&alice, &all).await, store.query_archive(&alice, &by_carol).await);
    let (before_all, before_carol) = (before.0.expect("query"), before.1.expect("query"));
    assert_eq!((before_all.messages.len(), before_carol.count), (200, Some(100)));
    let mut packed_bytes = 0;
    let mut plain_bytes = 0;
    for item in store.archives.chunks.scan_prefix(b"alice@example.org\0") {
        let (key, value) = item.expect("chunk");
        let plain = super::packed::unpack(&value).expect("unpack").into_owned();
        if plain.len() != value.len() {
            (packed_bytes, plain_bytes) = (packed_bytes + value.len(), plain_bytes + plain.len());
            store.archives.chunks.insert(key, plain).expect("write as before");
        }
    }
    assert!(packed_bytes * 2 < plain_bytes, "packed {packed_bytes} bytes, plain {plain_bytes}");
    let after_all = store.query_archive(&alice, &all).await.expect("query");
    assert_eq!(bodies(&after_all), bodies(&before_all));
    assert_eq!(after_all.count, before_all.count);
    let after_carol = store.query_archive(&alice, &by_carol).await.expect("query");
    assert_eq!((bodies(&after_carol), after_carol.count), (bodies(&before_carol), before_carol.count));
    // Removal and retention rewrite a plain chunk packed.
    assert!(store.unarchive(&alice, &ids[51]).await.expect("unarchive"));
    store.archives.expire(1_020).expect("retention");
    let left = store.query_archive(&alice, &all).await.expect("query");
    assert_eq!((left.messages.len(), left.count), (179, Some(179)));
    let left_carol = store.query_archive(&alice, &by_carol).await.expect("query");
    assert_eq!(left_carol.count, Some(89));
}

/// What every archived message asks is answered from memory once read, and a change
/// through the store is seen at once.
#[tokio::test]
async fn preferences_are_answered_from_memory_and_follow_changes() {
    let store = SledStore::temporary().expect("temporary sled");
    let alice = bare("alice@example.org");
    assert!(store.archive_prefs(&alice).await.expect("prefs").is_none());
    let prefs = ArchivePrefs { default: Default::Never, always: vec![full("bob@example.org")], never: vec![] };
    store.set_archive_prefs(&alice, &prefs).await.expect("set");
    assert_eq!(store.archive_prefs(&alice).await.expect("prefs").as_deref(), Some(&prefs));
    assert!(store.archive_prefs.in_memory("alice@example.org"));
    // Behind the store's back, the tree loses them: memory still answers.
    store.archive_prefs.tree().remove("alice@example.org").expect("raw remove");
    assert_eq!(store.archive_prefs(&alice).await.expect("prefs").as_deref(), Some(&prefs));
    let always = ArchivePrefs { default: Default::Always, ..prefs };
    store.set_archive_prefs(&alice, &always).await.expect("set");
    assert_eq!(store.archive_prefs(&alice).await.expect("prefs").as_deref(), Some(&always), "seen at once");
    store.delete_archive(&alice).await.expect("delete");
    assert!(store.archive_prefs(&alice).await.expect("prefs").is_none(), "deleted with the archive");
}

/// The largest preferences the configuration allows (1 000 JIDs per list, 512 KiB)
/// still fit in memory.
#[tokio::test]
async fn the_largest_preferences_allowed_are_kept_in_memory() {
    let store = SledStore::temporary().expect("temporary sled");
    let alice = bare("alice@example.org");
    let list = |tag: &str| -> Vec<Jid> {
        (0..1000).map(|i| full(&format!("{tag}{i:04}{}@example.org", "x".repeat(245)))).collect()
    };
    let prefs = ArchivePrefs { default: Default::Roster, always: list("a"), never: list("n") };
    assert!(prefs.bytes() <= 512 << 10, "{}", prefs.bytes());
    store.set_archive_prefs(&alice, &prefs).await.expect("set");
    assert!(store.archive_prefs(&alice).await.expect("prefs").is_some());
    assert!(store.archive_prefs.in_memory("alice@example.org"));
}
