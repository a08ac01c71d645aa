//! The default backend: one sled database in the data directory, one tree per concern.

mod archive;
mod cache;
mod inflight;
mod offline;
mod private;
mod roster;
mod users;
mod vcard;

use super::StorageError;
use std::path::Path;

/// Memory for block lists read from the store (a list is read again once evicted).
pub const BLOCK_LIST_CACHE_BYTES: usize = 32 << 20;

/// An open sled database. Only one process may hold it: while the server runs,
/// the command-line tools reach it through the admin socket instead.
#[derive(Clone)]
pub struct SledStore {
    db: sled::Db,
    users: sled::Tree,
    roster: sled::Tree,
    roster_versions: sled::Tree,
    /// Each roster's item count and bytes, and who holds an item for whom (`roster.rs`).
    roster_totals: sled::Tree,
    roster_holders: sled::Tree,
    roster_pending: sled::Tree,
    last_seen: sled::Tree,
    blocklist: sled::Tree,
    /// The accounts whose block list is not empty (`roster.rs`): every message asks twice
    /// whether its sender or recipient blocked the other, and nearly every list is empty.
    blocking: std::sync::Arc<roster::BlockingOwners>,
    /// The block lists read so far, within [`BLOCK_LIST_CACHE_BYTES`].
    block_cache: std::sync::Arc<cache::Cache<std::sync::Arc<crate::storage::roster::BlockList>>>,
    /// One writer per block list at a time.
    block_writes: std::sync::Arc<crate::stripes::Stripes<()>>,
    offline: sled::Tree,
    /// Each account's offline count and size (`offline.rs`).
    offline_totals: offline::OfflineTotals,
    inflight: sled::Tree,
    /// Message archives (`archive/`): chunks, tails in memory, and their log.
    archives: std::sync::Arc<archive::Archives>,
    archive_prefs: archive::Prefs,
    archive_retention: archive::Retention,
    /// The archive id key, once read.
    archive_ids: std::sync::Arc<std::sync::OnceLock<[u8; 32]>>,
    /// vCards, and apart from them the avatar each advertises (`vcard.rs`).
    vcards: sled::Tree,
    vcard_avatars: sled::Tree,
    /// Private XML (`private.rs`), and each account's bytes of it.
    private: sled::Tree,
    private_totals: sled::Tree,
}

impl SledStore {
    pub fn open(dir: &Path) -> Result<SledStore, StorageError> {
        let db = sled::Config::new()
            .path(dir.join("db"))
            .cache_capacity(64 << 20)
            .open()
            .map_err(|e| StorageError::Backend(format!("opening {}: {e}", dir.display())))?;
        SledStore::from_db(db, Some(&dir.join("archive-log")))
    }

    /// A throwaway in-memory database, for tests.
    pub fn temporary() -> Result<SledStore, StorageError> {
        let db = sled::Config::new().temporary(true).open().map_err(backend)?;
        SledStore::from_db(db, None)
    }

    /// A throwaway database whose archive entries go into chunks as they are appended
    /// (the tails stay empty), for tests of the chunks.
    #[cfg(test)]
    pub fn temporary_chunking_at_once() -> Result<SledStore, StorageError> {
        let store = SledStore::temporary()?;
        store.archives.chunk_at_once.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(store)
    }

    fn from_db(db: sled::Db, archive_log: Option<&Path>) -> Result<SledStore, StorageError> {
        let tree = |name: &str| db.open_tree(name).map_err(backend);
        let blocklist = tree("blocklist")?;
        let blocking = std::sync::Arc::new(roster::BlockingOwners::load(&blocklist)?);
        let (roster, roster_totals, roster_holders) =
            (tree("roster")?, tree("roster_totals")?, tree("roster_holders")?);
        roster::build_indexes(&db, &roster, &roster_totals, &roster_holders)?;
        Ok(SledStore {
            users: tree("users")?,
            roster,
            roster_versions: tree("roster_versions")?,
            roster_totals,
            roster_holders,
            roster_pending: tree("roster_pending")?,
            last_seen: tree("last_seen")?,
            blocklist,
            blocking,
            block_cache: std::sync::Arc::new(cache::Cache::new(BLOCK_LIST_CACHE_BYTES)),
            block_writes: std::sync::Arc::new(crate::stripes::Stripes::new(16)),
            offline: tree("offline")?,
            offline_totals: Default::default(),
            inflight: tree("inflight")?,
            archives: std::sync::Arc::new(archive::Archives::open(&db, archive_log)?),
            archive_prefs: archive::Prefs::open(&db)?,
            archive_retention: archive::Retention::open(&db)?,
            archive_ids: Default::default(),
            vcards: tree("vcard")?,
            vcard_avatars: tree("vcard_avatar")?,
            private: tree("private")?,
            private_totals: tree("private_totals")?,
            db,
        })
    }
}

pub(crate) fn backend(e: sled::Error) -> StorageError {
    match e {
        sled::Error::Io(io) => StorageError::Io(io.to_string()),
        e => StorageError::Backend(e.to_string()),
    }
}

/// A failed transaction's error: its own abort, or the backend's.
pub(crate) fn tx_error(e: sled::transaction::TransactionError<StorageError>) -> StorageError {
    match e {
        sled::transaction::TransactionError::Abort(e) => e,
        sled::transaction::TransactionError::Storage(e) => backend(e),
    }
}

/// Ends a transaction with `e`.
pub(crate) fn abort(e: StorageError) -> sled::transaction::ConflictableTransactionError<StorageError> {
    sled::transaction::ConflictableTransactionError::Abort(e)
}

/// True when opening failed because another process holds the database.
pub fn is_locked(err: &StorageError) -> bool {
    matches!(err, StorageError::Backend(msg) if msg.contains("lock"))
}
