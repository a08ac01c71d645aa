//! Message archives in three trees:
//! - `archive`: `owner NUL place` → the other party, the stanza;
//! - `archive_with`: `owner NUL with-bare NUL place` → the other party as given, so a
//!   conversation is a range too;
//! - `archive_prefs`: `owner` → JSON;
//! - and the id key, `archive:id-key` in the default tree.
//!
//! An append is two inserts. Retention walks the archives one owner at a time (each
//! archive's oldest entries are the start of its range). Stores written before kept a
//! third tree, `archive_expiry` (`place owner` → with-bare), for retention across all
//! archives: retention still empties it, and nothing writes it any more.
//!
//! A place (`archive/ids.rs`) is the stamp (µs) and a database-wide sequence number,
//! big-endian in keys: within an archive stamps never decrease, so places sort in arrival
//! order and time bounds are key bounds. Queries run in `archive/paging.rs` over [`View`].

use super::{backend, SledStore};
use crate::storage::archive::ids::{place, stamp_of, Ids, Place};
use crate::storage::archive::paging::{self, Entries, Places, Span};
use crate::storage::archive::{ArchivePage, ArchivePrefs, ArchiveQuery, ArchiveStore, ArchivedMessage, Default};
use crate::storage::Reply;
use crate::storage::StorageError;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use xmpp_parsers::jid::{BareJid, Jid};

/// `owner NUL`: JIDs never contain NUL, so one owner's keys share a prefix.
fn prefix(owner: &str) -> Vec<u8> {
    let mut key = owner.as_bytes().to_vec();
    key.push(0);
    key
}

fn with_prefix(owner: &str, with_bare: &str) -> Vec<u8> {
    let mut key = prefix(owner);
    key.extend_from_slice(with_bare.as_bytes());
    key.push(0);
    key
}

fn key(prefix: &[u8], place: Place) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(&place.to_be_bytes());
    key
}

fn expiry_key(place: Place, owner: &str) -> Vec<u8> {
    let mut key = place.to_be_bytes().to_vec();
    key.extend_from_slice(owner.as_bytes());
    key
}

fn corrupt(e: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(format!("archive: {e}"))
}

/// The place at the end (or, for expiry keys, the start) of a key.
fn place_in(bytes: Option<&[u8]>) -> Result<Place, StorageError> {
    let bytes = bytes.and_then(|b| <[u8; 16]>::try_from(b).ok()).ok_or_else(|| corrupt("short key"))?;
    Ok(Place::from_be_bytes(bytes))
}

fn place_at_end(key: &[u8]) -> Result<Place, StorageError> {
    place_in(key.len().checked_sub(16).and_then(|start| key.get(start..)))
}

/// Where the id key lives, in the default tree.
const ID_KEY: &[u8] = b"archive:id-key";

/// An entry's value: length of the other party's JID, that JID, the stanza.
fn encode_entry(with: &str, stanza: &[u8]) -> Result<Vec<u8>, StorageError> {
    let len = u16::try_from(with.len()).map_err(|_| StorageError::Backend("JID too long to archive".into()))?;
    let mut value = Vec::with_capacity(2 + with.len() + stanza.len());
    value.extend_from_slice(&len.to_be_bytes());
    value.extend_from_slice(with.as_bytes());
    value.extend_from_slice(stanza);
    Ok(value)
}

/// The other party and the stanza.
fn decode_entry(value: &[u8]) -> Result<(&str, &[u8]), StorageError> {
    let len = value.get(..2).and_then(|b| <[u8; 2]>::try_from(b).ok()).map(u16::from_be_bytes);
    let end = 2 + usize::from(len.ok_or_else(|| corrupt("short entry"))?);
    let with = value.get(2..end).ok_or_else(|| corrupt("short entry"))?;
    Ok((std::str::from_utf8(with).map_err(corrupt)?, &value[end..]))
}

impl SledStore {
    /// The id key, made on first use and then kept in memory.
    fn ids(&self) -> Result<Ids, StorageError> {
        if let Some(key) = self.archive_ids.get() {
            return Ok(Ids(*key));
        }
        if self.db.get(ID_KEY).map_err(backend)?.is_none() {
            let fresh: [u8; 32] = rand::random();
            // Whoever comes first sets it; everyone reads it back.
            let _ = self.db.compare_and_swap(ID_KEY, None::<&[u8]>, Some(&fresh[..])).map_err(backend)?;
        }
        let key = self.db.get(ID_KEY).map_err(backend)?.ok_or_else(|| corrupt("no id key"))?;
        let key = <[u8; 32]>::try_from(key.as_ref()).map_err(|_| corrupt("id key"))?;
        Ok(Ids(*self.archive_ids.get_or_init(|| key)))
    }

    /// The newest stamp in an archive.
    fn newest_stamp(&self, owner: &str) -> Result<Option<u64>, StorageError> {
        let newest = self.archive.scan_prefix(prefix(owner)).next_back().transpose().map_err(backend)?;
        newest.map(|(key, _)| place_at_end(&key).map(stamp_of)).transpose()
    }
}

/// One archive, as the query engine reads it.
struct View<'a> {
    store: &'a SledStore,
    owner: &'a str,
    ids: Ids,
}

impl Entries for View<'_> {
    fn find(&self, id: &str) -> Result<(Place, String), StorageError> {
        let missing = || StorageError::NotFound(id.to_string());
        let place = self.ids.decode(id).ok_or_else(missing)?;
        let value = self.store.archive.get(key(&prefix(self.owner), place)).map_err(backend)?.ok_or_else(missing)?;
        Ok((place, decode_entry(&value)?.0.to_string()))
    }

    /// A key range of the archive, or of its conversation index; for a full JID, only the
    /// index entries whose other party is exactly that JID.
    fn scan(&self, span: Span, with: Option<&Jid>) -> Places<'_> {
        let (tree, prefix) = match with {
            None => (&self.store.archive, prefix(self.owner)),
            Some(with) => (&self.store.archive_with, with_prefix(self.owner, with.to_bare().as_str())),
        };
        let full = with.filter(|with| with.resource().is_some()).map(|with| with.to_string());
        let range = tree.range(key(&prefix, span.lo)..=key(&prefix, span.hi));
        Box::new(range.filter_map(move |entry| match entry {
            Err(e) => Some(Err(backend(e))),
            Ok((_, with)) if full.as_ref().is_some_and(|f| f.as_bytes() != with.as_ref()) => None,
            Ok((key, _)) => Some(place_at_end(&key)),
        }))
    }

    fn load(&self, place: Place) -> Result<Option<ArchivedMessage>, StorageError> {
        let value = self.store.archive.get(key(&prefix(self.owner), place)).map_err(backend)?;
        let Some(value) = value else { return Ok(None) };
        let (with, stanza) = decode_entry(&value)?;
        Ok(Some(ArchivedMessage {
            id: self.ids.encode(place),
            with: Jid::new(with).map_err(corrupt)?,
            stamp_micros: stamp_of(place),
            stanza: stanza.to_vec(),
        }))
    }
}

impl ArchiveStore for SledStore {
    fn archive(&self, owner: &BareJid, with: &Jid, stamp_micros: u64, stanza: &[u8]) -> Reply<'_, String> {
        Reply::now(|| {
            let owner = owner.as_str();
            let ids = self.ids()?;
            let entry = encode_entry(with.as_str(), stanza)?;
            let bare = with.to_bare();
            // One append per archive at a time (under its owner's stripe): an id, once seen,
            // has every earlier entry of its archive stored already, so paging "after" it
            // misses nothing.
            let mut newest = self.archive_lock.lock(owner);
            let seq = self.db.generate_id().map_err(backend)?;
            let last = match newest.get(owner) {
                Some(stamp) => *stamp,
                None => self.newest_stamp(owner)?.unwrap_or(0),
            };
            let stamp = stamp_micros.max(last);
            newest.insert(owner.to_owned(), stamp);
            let place = place(stamp, seq);
            let (entry_key, with_key) = (key(&prefix(owner), place), key(&with_prefix(owner, bare.as_str()), place));
            // Plain inserts (a sled batch or transaction costs a log write of its own), the
            // index first: an index entry whose message is missing is skipped by readers
            // and removed by expiry, while a message without its index would not be found
            // by conversation.
            self.archive_with.insert(with_key, with.as_str().as_bytes()).map_err(backend)?;
            self.archive.insert(entry_key, entry).map_err(backend)?;
            Ok(ids.encode(place))
        })
    }

    fn unarchive(&self, owner: &BareJid, id: &str) -> Reply<'_, bool> {
        Reply::now(|| {
            let Some(place) = self.ids()?.decode(id) else { return Ok(false) };
            let owner = owner.as_str();
            let entry_key = key(&prefix(owner), place);
            let Some(value) = self.archive.get(&entry_key).map_err(backend)? else { return Ok(false) };
            let with_bare = Jid::new(decode_entry(&value)?.0).map_err(corrupt)?.to_bare();
            // The index first, as expiry does: a crash in between leaves an entry that expires.
            self.archive_with.remove(key(&with_prefix(owner, with_bare.as_str()), place)).map_err(backend)?;
            self.archive.remove(entry_key).map_err(backend)?;
            self.archive_expiry.remove(expiry_key(place, owner)).map_err(backend)?;
            Ok(true)
        })
    }

    fn query_archive(&self, owner: &BareJid, query: &ArchiveQuery) -> Reply<'_, ArchivePage> {
        Reply::now(|| paging::query(&View { store: self, owner: owner.as_str(), ids: self.ids()? }, query))
    }

    fn archive_prefs(&self, owner: &BareJid) -> Reply<'_, Option<Arc<ArchivePrefs>>> {
        Reply::now(|| {
            let read = || {
                let value = self.archive_prefs.get(owner.as_str()).map_err(backend)?;
                value.map(|v| decode_prefs(&v).map(Arc::new)).transpose()
            };
            self.prefs_cache.get_or_load(owner.as_str(), prefs_weight, read)
        })
    }

    fn set_archive_prefs(&self, owner: &BareJid, prefs: &ArchivePrefs) -> Reply<'_, ()> {
        Reply::now(|| {
            self.archive_prefs.insert(owner.as_str(), encode_prefs(prefs)?).map_err(backend)?;
            self.prefs_cache.forget(owner.as_str());
            Ok(())
        })
    }

    fn expire_archive(&self, before_micros: u64) -> Reply<'_, u64> {
        Reply::now(|| Ok(self.expire_legacy(before_micros)? + self.expire_each_archive(before_micros)?))
    }

    fn delete_archive(&self, owner: &BareJid) -> Reply<'_, ()> {
        Reply::now(|| {
            let owner = owner.as_str();
            let prefix = prefix(owner);
            // A chunk at a time under the archive's stripe, released in between: appends to
            // other archives wait for one chunk at most, never for the whole archive, and an
            // append to this one that started before the last (empty) look is deleted too.
            loop {
                let mut newest = self.archive_lock.lock(owner);
                if self.delete_chunk(owner, &prefix)? == 0 {
                    newest.remove(owner);
                    break;
                }
            }
            self.archive_prefs.remove(owner).map_err(backend)?;
            self.prefs_cache.forget(owner);
            Ok(())
        })
    }
}

impl SledStore {
    /// Retention over the expiry index stores written before kept (see the module doc):
    /// empties it, as the entries it names expire.
    fn expire_legacy(&self, before_micros: u64) -> Result<u64, StorageError> {
        let mut expired = 0;
        for item in self.archive_expiry.range(..place(before_micros, 0).to_be_bytes()) {
            let (expiry, with_bare) = item.map_err(backend)?;
            let place = place_in(expiry.get(..16))?;
            let owner = std::str::from_utf8(&expiry[16..]).map_err(corrupt)?;
            let with_bare = std::str::from_utf8(&with_bare).map_err(corrupt)?;
            // The index first: a crash in between leaves an entry that expires next time.
            self.archive_with.remove(key(&with_prefix(owner, with_bare), place)).map_err(backend)?;
            if self.archive.remove(key(&prefix(owner), place)).map_err(backend)?.is_some() {
                expired += 1;
            }
            self.archive_expiry.remove(expiry).map_err(backend)?;
        }
        Ok(expired)
    }

    /// Retention, one conversation at a time: in each conversation index range (`owner
    /// NUL with-bare NUL place`) the entries stamped before the limit come first; each goes
    /// with its archive entry. Every entry has its index entry (written first), so this
    /// reaches them all, and index entries a crash left without their entry too.
    fn expire_each_archive(&self, before_micros: u64) -> Result<u64, StorageError> {
        let mut expired = 0;
        let mut next: Vec<u8> = Vec::new();
        while let Some(first) = self.archive_with.range(next.as_slice()..).keys().next() {
            let first = first.map_err(backend)?;
            // `owner NUL with-bare NUL`: the closing NUL is what moves the walk on (below),
            // so a key without it is refused rather than walked for ever.
            let conversation = first
                .len()
                .checked_sub(16)
                .and_then(|end| first.get(..end))
                .filter(|conversation| conversation.last() == Some(&0))
                .ok_or_else(|| corrupt("conversation index key"))?;
            let owner_end = conversation.iter().position(|b| *b == 0).ok_or_else(|| corrupt("key without owner"))?;
            let owner_prefix = &conversation[..=owner_end];
            for index_key in
                self.archive_with.range(key(conversation, 0)..key(conversation, place(before_micros, 0))).keys()
            {
                let index_key = index_key.map_err(backend)?;
                let place = place_at_end(&index_key)?;
                self.archive_with.remove(&index_key).map_err(backend)?;
                if self.archive.remove(key(owner_prefix, place)).map_err(backend)?.is_some() {
                    expired += 1;
                }
            }
            // Past every key of this conversation: its closing NUL becomes 1.
            next = conversation.to_vec();
            if let Some(last) = next.last_mut() {
                *last = 1;
            }
        }
        Ok(expired)
    }
}

/// Entries an archive deletion removes per turn of its stripe.
const DELETE_CHUNK: usize = 256;

impl SledStore {
    /// Removes up to [`DELETE_CHUNK`] entries of an archive (its conversation index
    /// first); returns how many went.
    fn delete_chunk(&self, owner: &str, prefix: &[u8]) -> Result<usize, StorageError> {
        let first = |tree: &sled::Tree, n: usize| -> Result<Vec<sled::IVec>, StorageError> {
            tree.scan_prefix(prefix).keys().take(n).map(|k| k.map_err(backend)).collect()
        };
        let index = first(&self.archive_with, DELETE_CHUNK)?;
        for key in &index {
            self.archive_with.remove(key).map_err(backend)?;
        }
        let entries = first(&self.archive, DELETE_CHUNK - index.len())?;
        for key in &entries {
            // The entry before its expiry key: a crash in between leaves a key that expires.
            let expiry = expiry_key(place_at_end(key)?, owner);
            self.archive.remove(key).map_err(backend)?;
            self.archive_expiry.remove(expiry).map_err(backend)?;
        }
        Ok(index.len() + entries.len())
    }
}

/// What preferences weigh in memory: their JIDs' text and about 64 bytes per JID.
fn prefs_weight(prefs: &Option<Arc<ArchivePrefs>>) -> usize {
    prefs.as_ref().map_or(0, |p| p.bytes() as usize + 64 * (p.always.len() + p.never.len()))
}

/// Preferences as stored: JIDs as text.
#[derive(Serialize, Deserialize)]
struct StoredPrefs {
    default: String,
    always: Vec<String>,
    never: Vec<String>,
}

fn encode_prefs(prefs: &ArchivePrefs) -> Result<Vec<u8>, StorageError> {
    let texts = |jids: &[Jid]| jids.iter().map(ToString::to_string).collect();
    let stored =
        StoredPrefs { default: prefs.default.name().into(), always: texts(&prefs.always), never: texts(&prefs.never) };
    serde_json::to_vec(&stored).map_err(corrupt)
}

fn decode_prefs(bytes: &[u8]) -> Result<ArchivePrefs, StorageError> {
    let stored: StoredPrefs = serde_json::from_slice(bytes).map_err(corrupt)?;
    let jids = |texts: Vec<String>| texts.iter().map(|t| Jid::new(t).map_err(corrupt)).collect::<Result<Vec<_>, _>>();
    Ok(ArchivePrefs {
        default: stored.default.parse::<Default>().map_err(|()| corrupt("default"))?,
        always: jids(stored.always)?,
        never: jids(stored.never)?,
    })
}

#[cfg(test)]
mod tests {
    use crate::storage::archive::ArchiveQuery;
    use xmpp_parsers::jid::{BareJid, Jid};

    /// Deleting a large archive holds up no other account's archiving: while it runs,
    /// another archive is appended to, and the deletion is not over yet. (A deletion that
    /// outran the append, on a loaded machine, is tried again: behind a lock held for the
    /// whole deletion, the append could never come first.)
    #[test]
    fn deleting_a_big_archive_does_not_hold_up_another_accounts_appends() {
        let overtaken = (0..5).any(|_| an_append_overtakes_a_big_deletion());
        assert!(overtaken, "bob's append waited for the whole of alice's archive to go, five times");
    }

    fn an_append_overtakes_a_big_deletion() -> bool {
        use crate::storage::archive::ArchiveStore;
        use std::time::{Duration, Instant};
        let store = super::SledStore::temporary().expect("temporary sled");
        let (alice, bob) =
            (BareJid::new("alice@example.org").expect("jid"), BareJid::new("bob@example.org").expect("jid"));
        let carol = Jid::new("carol@example.org/phone").expect("jid");
        for i in 0..20_000 {
            store.archive(&alice, &carol, i, b"<message/>").at_once().expect("archive");
        }
        let index_len = || store.archive_with.scan_prefix(super::prefix("alice@example.org")).count();
        let before = index_len();
        let deleter = {
            let store = store.clone();
            let alice = alice.clone();
            std::thread::spawn(move || store.delete_archive(&alice).at_once())
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while index_len() == before {
            assert!(Instant::now() < deadline, "the deletion never started");
            std::thread::yield_now();
        }
        // The deletion is under way: an append elsewhere goes through before it ends.
        store.archive(&bob, &carol, 1, b"<message/>").at_once().expect("archive");
        let left = store.archive.scan_prefix(super::prefix("alice@example.org")).next().is_some();
        deleter.join().expect("no panic").expect("deleted");
        assert!(store.archive.scan_prefix(super::prefix("alice@example.org")).next().is_none());
        assert!(store.archive_expiry.iter().next().is_none(), "appends keep no expiry index");
        assert_eq!(store.query_archive(&bob, &ArchiveQuery::all(5)).at_once().expect("query").messages.len(), 1);
        left
    }

    /// Retention reaches what a store written before kept in its expiry index, and index
    /// entries a crash left without their message; nothing newer goes.
    #[tokio::test]
    async fn retention_reaches_legacy_entries_and_orphan_index_entries() {
        use crate::storage::archive::ids::place;
        use crate::storage::archive::{ArchiveQuery, ArchiveStore};
        let store = super::SledStore::temporary().expect("temporary sled");
        let (alice, bob) =
            (BareJid::new("alice@example.org").expect("jid"), Jid::new("bob@example.org/b").expect("jid"));
        let old = store.archive(&alice, &bob, 1_000, b"old").await.expect("archive");
        // As a store written before would hold it: the entry also in the expiry index.
        let old_place = store.ids().expect("ids").decode(&old).expect("place");
        let expiry = super::expiry_key(old_place, "alice@example.org");
        store.archive_expiry.insert(expiry, "bob@example.org").expect("legacy expiry key");
        // An index entry whose message a crash kept from being written.
        let orphan = super::key(&super::with_prefix("alice@example.org", "carol@example.org"), place(1_500, 7));
        store.archive_with.insert(orphan.clone(), "carol@example.org").expect("orphan");
        store.archive(&alice, &bob, 5_000, b"new").await.expect("archive");
        assert_eq!(store.expire_archive(2_000).await.expect("expire"), 1, "the old entry, counted once");
        assert!(store.archive_expiry.iter().next().is_none(), "the legacy index is emptied");
        assert!(store.archive_with.get(orphan).expect("get").is_none(), "the orphan index entry went");
        let page = store.query_archive(&alice, &ArchiveQuery::all(10)).await.expect("query");
        assert_eq!(page.messages.iter().map(|m| m.stanza.clone()).collect::<Vec<_>>(), vec![b"new".to_vec()]);
    }

    /// A conversation index key that is not `owner NUL with NUL place` is an error for
    /// retention, never a walk that does not end.
    #[test]
    fn retention_refuses_a_malformed_index_key() {
        use crate::storage::archive::ArchiveStore;
        let store = super::SledStore::temporary().expect("temporary sled");
        let mut bad = b"alice@example.org\0bob@example.org".to_vec();
        bad.extend_from_slice(&[5; 16]);
        store.archive_with.insert(bad, "bob@example.org").expect("raw insert");
        // On a thread of its own: a walk that never ends fails the test instead of hanging it.
        let (done, outcome) = std::sync::mpsc::channel();
        std::thread::spawn(move || done.send(store.expire_archive(2_000).at_once()));
        let outcome = outcome.recv_timeout(std::time::Duration::from_secs(10)).expect("retention ends");
        assert!(matches!(outcome, Err(crate::storage::StorageError::Corrupt(_))), "{outcome:?}");
    }

    /// What every archived message asks is answered from memory once read, and a change
    /// through the store is seen at once.
    #[tokio::test]
    async fn preferences_are_answered_from_memory_and_follow_changes() {
        use crate::storage::archive::{ArchivePrefs, ArchiveStore, Default};
        let store = super::SledStore::temporary().expect("temporary sled");
        let alice = BareJid::new("alice@example.org").expect("jid");
        assert!(store.archive_prefs(&alice).await.expect("prefs").is_none());
        let prefs = ArchivePrefs {
            default: Default::Never,
            always: vec![Jid::new("bob@example.org").expect("jid")],
            never: vec![],
        };
        store.set_archive_prefs(&alice, &prefs).await.expect("set");
        assert_eq!(store.archive_prefs(&alice).await.expect("prefs").as_deref(), Some(&prefs));
        assert!(store.prefs_cache.holds("alice@example.org"));
        // Behind the store's back, the tree loses them: memory still answers.
        store.archive_prefs.remove("alice@example.org").expect("raw remove");
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
        use crate::storage::archive::{ArchivePrefs, ArchiveStore, Default};
        let store = super::SledStore::temporary().expect("temporary sled");
        let alice = BareJid::new("alice@example.org").expect("jid");
        let list = |tag: &str| -> Vec<Jid> {
            (0..1000).map(|i| Jid::new(&format!("{tag}{i:04}{}@example.org", "x".repeat(245))).expect("jid")).collect()
        };
        let prefs = ArchivePrefs { default: Default::Roster, always: list("a"), never: list("n") };
        assert!(prefs.bytes() <= 512 << 10, "{}", prefs.bytes());
        store.set_archive_prefs(&alice, &prefs).await.expect("set");
        assert!(store.archive_prefs(&alice).await.expect("prefs").is_some());
        assert!(store.prefs_cache.holds("alice@example.org"));
    }

    #[tokio::test]
    async fn ids_survive_a_restart() {
        use crate::storage::archive::{ArchiveQuery, ArchiveStore};
        let dir = tempfile::tempdir().expect("temporary directory");
        let owner = xmpp_parsers::jid::BareJid::new("alice@example.org").expect("jid");
        let bob = xmpp_parsers::jid::Jid::new("bob@example.org").expect("jid");
        let id = {
            let store = super::SledStore::open(dir.path()).expect("open");
            let id = store.archive(&owner, &bob, 1, b"m0").await.expect("archive");
            crate::storage::UserStore::flush(&store).await.expect("flush");
            id
        };
        let store = super::SledStore::open(dir.path()).expect("reopen");
        let page = store.query_archive(&owner, &ArchiveQuery { ids: vec![id.clone()], ..ArchiveQuery::all(5) }).await;
        assert_eq!(page.expect("query").messages.first().map(|m| m.id.clone()), Some(id));
    }
}
