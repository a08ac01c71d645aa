//! Rosters (items + version in one transaction), pending requests, last seen, block lists.

use super::{backend, SledStore};
use crate::storage::roster::{BlockStore, LastSeen, LastSeenStore, Roster, RosterItem, RosterStore};
use crate::storage::StorageError;
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use xmpp_parsers::jid::BareJid;

/// `owner NUL contact`: JIDs never contain NUL, so one owner's keys share a prefix.
fn key(owner: &BareJid, contact: &str) -> Vec<u8> {
    let mut key = prefix(owner);
    key.extend_from_slice(contact.as_bytes());
    key
}

fn prefix(owner: &BareJid) -> Vec<u8> {
    let mut key = owner.as_str().as_bytes().to_vec();
    key.push(0);
    key
}

fn corrupt(e: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(e.to_string())
}

fn tx_error(e: TransactionError<StorageError>) -> StorageError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => backend(e),
    }
}

fn read_version(bytes: Option<sled::IVec>) -> u64 {
    bytes.and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok()).map(u64::from_be_bytes).unwrap_or(0)
}

/// The contact part of a prefixed key.
fn contact_of(key: &[u8], prefix_len: usize) -> Result<BareJid, StorageError> {
    let text = std::str::from_utf8(&key[prefix_len.min(key.len())..]).map_err(corrupt)?;
    BareJid::new(text).map_err(corrupt)
}

impl SledStore {
    /// Writes (or with None removes) one item and bumps the version, atomically.
    fn change_item(&self, owner: &BareJid, contact: &str, value: Option<Vec<u8>>) -> Result<Option<u64>, StorageError> {
        let item_key = key(owner, contact);
        (&self.roster, &self.roster_versions)
            .transaction(|(items, versions)| {
                let changed = match &value {
                    Some(value) => {
                        items.insert(item_key.as_slice(), value.as_slice())?;
                        true
                    }
                    None => items.remove(item_key.as_slice())?.is_some(),
                };
                if !changed {
                    return Ok(None);
                }
                let version = read_version(versions.get(owner.as_str())?) + 1;
                versions.insert(owner.as_str(), &version.to_be_bytes())?;
                Ok::<_, ConflictableTransactionError<StorageError>>(Some(version))
            })
            .map_err(tx_error)
    }
}

impl RosterStore for SledStore {
    fn roster(&self, owner: &BareJid) -> Result<Roster, StorageError> {
        let version = read_version(self.roster_versions.get(owner.as_str()).map_err(backend)?);
        let mut items = Vec::new();
        for entry in self.roster.scan_prefix(prefix(owner)) {
            let (_, value) = entry.map_err(backend)?;
            items.push(serde_json::from_slice(&value).map_err(corrupt)?);
        }
        Ok(Roster { version, items })
    }

    fn roster_item(&self, owner: &BareJid, contact: &BareJid) -> Result<Option<RosterItem>, StorageError> {
        let value = self.roster.get(key(owner, contact.as_str())).map_err(backend)?;
        value.map(|v| serde_json::from_slice(&v).map_err(corrupt)).transpose()
    }

    fn put_roster_item(&self, owner: &BareJid, item: &RosterItem) -> Result<u64, StorageError> {
        let value = serde_json::to_vec(item).map_err(corrupt)?;
        let version = self.change_item(owner, &item.jid, Some(value))?;
        version.ok_or_else(|| StorageError::Backend("roster write lost".into()))
    }

    fn remove_roster_item(&self, owner: &BareJid, contact: &BareJid) -> Result<Option<u64>, StorageError> {
        self.change_item(owner, contact.as_str(), None)
    }

    fn put_pending_in(&self, owner: &BareJid, contact: &BareJid, request: &str) -> Result<(), StorageError> {
        self.roster_pending.insert(key(owner, contact.as_str()), request.as_bytes()).map_err(backend)?;
        Ok(())
    }

    fn remove_pending_in(&self, owner: &BareJid, contact: &BareJid) -> Result<bool, StorageError> {
        Ok(self.roster_pending.remove(key(owner, contact.as_str())).map_err(backend)?.is_some())
    }

    fn pending_in(&self, owner: &BareJid) -> Result<Vec<(BareJid, String)>, StorageError> {
        let prefix = prefix(owner);
        let mut pending = Vec::new();
        for entry in self.roster_pending.scan_prefix(&prefix) {
            let (key, value) = entry.map_err(backend)?;
            let request = String::from_utf8(value.to_vec()).map_err(corrupt)?;
            pending.push((contact_of(&key, prefix.len())?, request));
        }
        Ok(pending)
    }

    fn delete_roster(&self, owner: &BareJid) -> Result<(), StorageError> {
        let prefix = prefix(owner);
        for tree in [&self.roster, &self.roster_pending, &self.blocklist] {
            for entry in tree.scan_prefix(&prefix) {
                let (key, _) = entry.map_err(backend)?;
                tree.remove(key).map_err(backend)?;
            }
        }
        self.blocking.forget_if_empty(owner, &self.blocklist)?;
        self.roster_versions.remove(owner.as_str()).map_err(backend)?;
        self.last_seen.remove(owner.as_str()).map_err(backend)?;
        Ok(())
    }
}

impl LastSeenStore for SledStore {
    fn set_last_seen(&self, owner: &BareJid, last: &LastSeen) -> Result<(), StorageError> {
        let value = serde_json::to_vec(last).map_err(corrupt)?;
        self.last_seen.insert(owner.as_str(), value).map_err(backend)?;
        Ok(())
    }

    fn last_seen(&self, owner: &BareJid) -> Result<Option<LastSeen>, StorageError> {
        let value = self.last_seen.get(owner.as_str()).map_err(backend)?;
        value.map(|v| serde_json::from_slice(&v).map_err(corrupt)).transpose()
    }
}

impl BlockStore for SledStore {
    fn block(&self, owner: &BareJid, jids: &[String]) -> Result<Vec<String>, StorageError> {
        self.blocking.adding(owner, || {
            let mut added = Vec::new();
            for jid in jids {
                if self.blocklist.insert(key(owner, jid), &[]).map_err(backend)?.is_none() {
                    added.push(jid.clone());
                }
            }
            Ok(added)
        })
    }

    fn unblock(&self, owner: &BareJid, jids: &[String]) -> Result<Vec<String>, StorageError> {
        let targets = if jids.is_empty() { self.blocklist(owner)? } else { jids.to_vec() };
        let mut removed = Vec::new();
        for jid in targets {
            if self.blocklist.remove(key(owner, &jid)).map_err(backend)?.is_some() {
                removed.push(jid);
            }
        }
        self.blocking.forget_if_empty(owner, &self.blocklist)?;
        Ok(removed)
    }

    fn blocklist(&self, owner: &BareJid) -> Result<Vec<String>, StorageError> {
        if !self.blocking.has_list(owner) {
            return Ok(Vec::new());
        }
        let prefix = prefix(owner);
        let mut jids = Vec::new();
        for entry in self.blocklist.scan_prefix(&prefix) {
            let (key, _) = entry.map_err(backend)?;
            jids.push(String::from_utf8(key[prefix.len()..].to_vec()).map_err(corrupt)?);
        }
        Ok(jids)
    }
}

/// The accounts with a block list, kept in memory: asking whether an account blocked
/// someone costs no store lookup when its list is empty. Changes to the set are made one
/// at a time (under `change`), so an owner is never forgotten while an item is written.
pub struct BlockingOwners {
    owners: std::sync::RwLock<std::collections::HashSet<String>>,
    change: std::sync::Mutex<()>,
}

impl BlockingOwners {
    /// The owners of the items in `tree`, read at start.
    pub fn load(tree: &sled::Tree) -> Result<BlockingOwners, StorageError> {
        let mut owners = std::collections::HashSet::new();
        for entry in tree.iter() {
            let (key, _) = entry.map_err(backend)?;
            let end = key.iter().position(|b| *b == 0).ok_or_else(|| corrupt("block list key without owner"))?;
            owners.insert(String::from_utf8(key[..end].to_vec()).map_err(corrupt)?);
        }
        Ok(BlockingOwners { owners: std::sync::RwLock::new(owners), change: Default::default() })
    }

    fn has_list(&self, owner: &BareJid) -> bool {
        self.owners.read().unwrap_or_else(|p| p.into_inner()).contains(owner.as_str())
    }

    /// Adds `owner`, then runs `write` (which writes its items), holding off other changes
    /// meanwhile. Known before the first item is written: a reader may then scan an empty
    /// list, never miss an item.
    fn adding<R>(&self, owner: &BareJid, write: impl FnOnce() -> R) -> R {
        let _one_at_a_time = self.change.lock().unwrap_or_else(|p| p.into_inner());
        self.owners.write().unwrap_or_else(|p| p.into_inner()).insert(owner.as_str().to_owned());
        write()
    }

    /// After items were removed (or none added): forgets `owner` if its list is empty.
    pub fn forget_if_empty(&self, owner: &BareJid, tree: &sled::Tree) -> Result<(), StorageError> {
        let _one_at_a_time = self.change.lock().unwrap_or_else(|p| p.into_inner());
        if tree.scan_prefix(prefix(owner)).next().transpose().map_err(backend)?.is_none() {
            self.owners.write().unwrap_or_else(|p| p.into_inner()).remove(owner.as_str());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sled_passes_the_roster_contracts() {
        let store = super::SledStore::temporary().expect("temporary sled");
        crate::storage::contract::roster_store(&store);
        crate::storage::contract::last_seen_store(&store);
        crate::storage::contract::block_store(&store);
    }

    #[test]
    fn block_lists_are_known_again_after_a_restart() {
        use crate::storage::roster::BlockStore;
        let dir = tempfile::tempdir().expect("temp dir");
        let alice = xmpp_parsers::jid::BareJid::new("alice@localhost").expect("jid");
        let bob = xmpp_parsers::jid::BareJid::new("bob@localhost").expect("jid");
        {
            let store = super::SledStore::open(dir.path()).expect("open");
            store.block(&alice, &["spam@example.org".to_owned()]).expect("block");
            store.block(&bob, &["x@example.org".to_owned()]).expect("block");
            store.unblock(&bob, &[]).expect("unblock all");
        }
        let store = super::SledStore::open(dir.path()).expect("reopen");
        assert_eq!(store.blocklist(&alice).expect("list"), vec!["spam@example.org".to_owned()]);
        assert!(store.blocklist(&bob).expect("list").is_empty());
    }
}
