//! Message archives, written in chunks.
//!
//! An archived message costs no sled write of its own: it joins its archive's tail in
//! memory and its stripe's log bytes (`tails.rs`). The group commit writes the log of
//! every append since the last one as one frame of a file beside sled (`log.rs`), so an
//! entry is durable when its sender is told. Maintenance, after a group
//! commit, writes tails out as chunks and then drops the log they came from (`chunks.rs`);
//! at start the log is read back into the tails (`recover.rs`).
//!
//! The `archive_chunks` tree, by key:
//! - `owner NUL d place`: a chunk of the archive, entry records (`records.rs`) oldest
//!   first, keyed by the place of its first (at most [`tail::CHUNK_ENTRIES`] entries);
//! - `owner NUL w with-bare NUL place`: a chunk of one conversation's index;
//! - `owner NUL h place`: a hole, an entry removed from the middle (`remove.rs`);
//! - `owner NUL x`: the newest place removed wholesale, by deleting the archive or by
//!   the owner's own retention (the log's entries of it up to there are not restored).
//!
//! Each entry has an ordinal in its archive and one in its conversation, given in order
//! and never again: the number of entries between two is the difference of their
//! ordinals less the holes between them, so counts and indexes (XEP-0059) cost a few
//! reads whatever the size of the archive (`view.rs`).
//!
//! A place (`archive/ids.rs`) is the stamp (µs) and a database-wide sequence number,
//! big-endian in keys: within an archive stamps never decrease, so places sort in arrival
//! order and time bounds are key bounds.
//!
//! Stores written before kept one key per entry (`archive`, `archive_with`,
//! `archive_expiry`): they are moved into chunks at start (`recover.rs`).

mod chunks;
mod log;
mod packed;
mod prefs;
mod records;
mod recover;
mod remove;
mod retention;
mod tail;
mod tails;
#[cfg(test)]
mod tests;
mod view;

use super::{backend, SledStore};
use crate::storage::archive::ids::Ids;
use crate::storage::archive::{paging, ArchivePage, ArchivePrefs, ArchiveQuery, ArchiveStore};
use crate::storage::{Reply, StorageError};
use records::corrupt;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use xmpp_parsers::jid::{BareJid, Jid};

pub use prefs::Prefs;
pub use retention::Retention;

/// Keys of the `archive_chunks` tree (see the module doc). JIDs never contain NUL, so one
/// owner's keys share a prefix.
pub(super) mod keys {
    use crate::storage::archive::ids::Place;

    fn owner_and(owner: &str, kind: u8) -> Vec<u8> {
        let mut key = Vec::with_capacity(owner.len() + 2 + 16);
        key.extend_from_slice(owner.as_bytes());
        key.push(0);
        key.push(kind);
        key
    }

    pub fn owner(owner: &str) -> Vec<u8> {
        let mut key = owner.as_bytes().to_vec();
        key.push(0);
        key
    }

    /// Past every key of `owner`: its NUL becomes 1.
    pub fn after_owner(owner: &str) -> Vec<u8> {
        let mut key = owner.as_bytes().to_vec();
        key.push(1);
        key
    }

    pub fn data(owner: &str) -> Vec<u8> {
        owner_and(owner, b'd')
    }

    pub fn conversation(owner: &str, with_bare: &str) -> Vec<u8> {
        let mut key = owner_and(owner, b'w');
        key.extend_from_slice(with_bare.as_bytes());
        key.push(0);
        key
    }

    pub fn holes(owner: &str) -> Vec<u8> {
        owner_and(owner, b'h')
    }

    pub fn deleted(owner: &str) -> Vec<u8> {
        owner_and(owner, b'x')
    }

    pub fn at(prefix: &[u8], place: Place) -> Vec<u8> {
        let mut key = prefix.to_vec();
        key.extend_from_slice(&place.to_be_bytes());
        key
    }
}

/// Where the id key lives, in the default tree.
const ID_KEY: &[u8] = b"archive:id-key";
/// Retention's newest limit (µs), in the default tree: the log's older entries are not
/// restored.
const EXPIRED_KEY: &[u8] = b"archive:expired-before";

/// The archives of one database.
pub struct Archives {
    db: sled::Db,
    chunks: sled::Tree,
    log: log::Log,
    tails: crate::stripes::Stripes<tails::Stripe>,
    /// Bytes of entry records in all tails.
    tail_bytes: AtomicUsize,
    /// Archives on a due list.
    due: AtomicUsize,
    /// Log files up to this one hold only entries now in chunks: they go after the next
    /// flush.
    log_done: Mutex<Option<u64>>,
    /// The log frame being written, kept between group commits.
    frame: Mutex<Vec<u8>>,
    /// When the last full maintenance ran.
    last_full: Mutex<std::time::Instant>,
    /// Maintenance, removals and retention take turns. Long walks (retention, a deleted
    /// archive) hand each turn over fairly ([`Archives::end_turn`]).
    maintenance: parking_lot::Mutex<()>,
    /// The legacy trees, emptied at start.
    legacy: [sled::Tree; 3],
    /// Tests: every append is written out as chunks at once.
    #[cfg(test)]
    pub chunk_at_once: std::sync::atomic::AtomicBool,
}

impl Archives {
    /// The archives of `db`, with their log in `log_dir` (None: a temporary store, no log).
    pub fn open(db: &sled::Db, log_dir: Option<&std::path::Path>) -> Result<Archives, StorageError> {
        let tree = |name: &str| db.open_tree(name).map_err(backend);
        let (log, batches) = log::Log::open(log_dir)?;
        let archives = Archives {
            db: db.clone(),
            chunks: tree("archive_chunks")?,
            log,
            tails: crate::stripes::Stripes::new(tails::STRIPES),
            tail_bytes: AtomicUsize::new(0),
            due: AtomicUsize::new(0),
            log_done: Mutex::new(None),
            frame: Mutex::new(Vec::new()),
            last_full: Mutex::new(std::time::Instant::now()),
            maintenance: parking_lot::Mutex::new(()),
            legacy: [tree("archive")?, tree("archive_with")?, tree("archive_expiry")?],
            #[cfg(test)]
            chunk_at_once: Default::default(),
        };
        archives.migrate_legacy()?;
        archives.recover(&batches)?;
        Ok(archives)
    }

    fn lock_maintenance(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.maintenance.lock()
    }

    /// Ends a turn of a long walk: a thread waiting for maintenance (the flusher's) gets
    /// the lock before the walk can take it again.
    fn end_turn(turn: parking_lot::MutexGuard<'_, ()>) {
        parking_lot::MutexGuard::unlock_fair(turn);
    }
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
}

impl ArchiveStore for SledStore {
    fn archive(&self, owner: &BareJid, with: &Jid, stamp_micros: u64, stanza: &[u8]) -> Reply<'_, String> {
        Reply::now(|| {
            let ids = self.ids()?;
            let place = self.archives.append(owner.as_str(), with.as_str(), stamp_micros, stanza)?;
            #[cfg(test)]
            if self.archives.chunk_at_once.load(std::sync::atomic::Ordering::Relaxed) {
                self.archives.write_tails(true)?;
            }
            Ok(ids.encode(place))
        })
    }

    fn unarchive(&self, owner: &BareJid, id: &str) -> Reply<'_, bool> {
        Reply::now(|| {
            let Some(place) = self.ids()?.decode(id) else { return Ok(false) };
            self.archives.unarchive(owner.as_str(), place)
        })
    }

    fn query_archive(&self, owner: &BareJid, query: &ArchiveQuery) -> Reply<'_, ArchivePage> {
        Reply::now(|| paging::query(&view::View::new(&self.archives, owner.as_str(), self.ids()?), query))
    }

    fn archive_prefs(&self, owner: &BareJid) -> Reply<'_, Option<Arc<ArchivePrefs>>> {
        Reply::now(|| self.archive_prefs.get(owner.as_str()))
    }

    fn set_archive_prefs(&self, owner: &BareJid, prefs: &ArchivePrefs) -> Reply<'_, ()> {
        Reply::now(|| self.archive_prefs.set(owner.as_str(), prefs))
    }

    fn expire_archive(&self, before_micros: u64) -> Reply<'_, u64> {
        Reply::now(|| self.archives.expire(before_micros))
    }

    fn expire_archive_of(&self, owner: &BareJid, before_micros: u64) -> Reply<'_, u64> {
        Reply::now(|| self.archives.expire_owner(owner.as_str(), before_micros))
    }

    fn archive_retention(&self, owner: &BareJid) -> Reply<'_, Option<u64>> {
        Reply::now(|| self.archive_retention.get(owner.as_str()))
    }

    fn set_archive_retention(&self, owner: &BareJid, max_age_secs: Option<u64>) -> Reply<'_, ()> {
        Reply::now(|| self.archive_retention.set(owner.as_str(), max_age_secs))
    }

    fn archive_retentions(&self) -> Reply<'_, Vec<(BareJid, u64)>> {
        Reply::now(|| self.archive_retention.all())
    }

    fn delete_archive(&self, owner: &BareJid) -> Reply<'_, ()> {
        Reply::now(|| {
            self.archives.delete(owner.as_str())?;
            self.archive_retention.set(owner.as_str(), None)?;
            self.archive_prefs.forget(owner.as_str())
        })
    }
}
