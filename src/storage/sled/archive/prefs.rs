//! Archive preferences (XEP-0441): `archive_prefs` (`owner` → JSON), read once and then
//! answered from memory.

use super::records::corrupt;
use crate::storage::archive::{ArchivePrefs, Default};
use crate::storage::sled::{backend, cache::Cache};
use crate::storage::StorageError;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use xmpp_parsers::jid::Jid;

/// Memory for archive preferences read from the store.
pub const CACHE_BYTES: usize = 16 << 20;

#[derive(Clone)]
pub struct Prefs {
    tree: sled::Tree,
    /// The preferences read so far (None: the account set none), within [`CACHE_BYTES`].
    cache: Arc<Cache<Option<Arc<ArchivePrefs>>>>,
}

impl Prefs {
    pub fn open(db: &sled::Db) -> Result<Prefs, StorageError> {
        Ok(Prefs { tree: db.open_tree("archive_prefs").map_err(backend)?, cache: Arc::new(Cache::new(CACHE_BYTES)) })
    }

    pub fn get(&self, owner: &str) -> Result<Option<Arc<ArchivePrefs>>, StorageError> {
        let read = || {
            let value = self.tree.get(owner).map_err(backend)?;
            value.map(|v| decode(&v).map(Arc::new)).transpose()
        };
        self.cache.get_or_load(owner, weight, read)
    }

    pub fn set(&self, owner: &str, prefs: &ArchivePrefs) -> Result<(), StorageError> {
        self.tree.insert(owner, encode(prefs)?).map_err(backend)?;
        self.cache.forget(owner);
        Ok(())
    }

    pub fn forget(&self, owner: &str) -> Result<(), StorageError> {
        self.tree.remove(owner).map_err(backend)?;
        self.cache.forget(owner);
        Ok(())
    }

    #[cfg(test)]
    pub fn in_memory(&self, owner: &str) -> bool {
        self.cache.holds(owner)
    }

    #[cfg(test)]
    pub fn tree(&self) -> &sled::Tree {
        &self.tree
    }
}

/// What preferences weigh in memory: their JIDs' text and about 64 bytes per JID.
fn weight(prefs: &Option<Arc<ArchivePrefs>>) -> usize {
    prefs.as_ref().map_or(0, |p| p.bytes() as usize + 64 * (p.always.len() + p.never.len()))
}

/// Preferences as stored: JIDs as text.
#[derive(Serialize, Deserialize)]
struct StoredPrefs {
    default: String,
    always: Vec<String>,
    never: Vec<String>,
}

fn encode(prefs: &ArchivePrefs) -> Result<Vec<u8>, StorageError> {
    let texts = |jids: &[Jid]| jids.iter().map(ToString::to_string).collect();
    let stored =
        StoredPrefs { default: prefs.default.name().into(), always: texts(&prefs.always), never: texts(&prefs.never) };
    serde_json::to_vec(&stored).map_err(corrupt)
}

fn decode(bytes: &[u8]) -> Result<ArchivePrefs, StorageError> {
    let stored: StoredPrefs = serde_json::from_slice(bytes).map_err(corrupt)?;
    let jids = |texts: Vec<String>| texts.iter().map(|t| Jid::new(t).map_err(corrupt)).collect::<Result<Vec<_>, _>>();
    Ok(ArchivePrefs {
        default: stored.default.parse::<Default>().map_err(|()| corrupt("default"))?,
        always: jids(stored.always)?,
        never: jids(stored.never)?,
    })
}
