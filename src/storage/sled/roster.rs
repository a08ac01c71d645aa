//! Rosters, pending requests, last seen, block lists.
//!
//! A roster change is one transaction over four trees: the item (`roster`: `owner NUL
//! contact` → JSON), the version (`roster_versions`), the roster's totals
//! (`roster_totals`: `owner` → item count and bytes, for the quota) and the reverse
//! index (`roster_holders`: `contact NUL owner`, for [`RosterStore::roster_holders`]).
//! Databases written before the last two existed get them at open (`build_indexes`).
//!
//! Block lists (`blocklist`: `owner NUL jid`) are read through a byte-bounded memory
//! cache (`cache.rs`) and, before that, a set of the accounts that have one at all.

use super::{abort, backend, tx_error, SledStore};
use crate::storage::roster::{
    BlockList, BlockStore, LastSeen, LastSeenStore, ListQuota, Roster, RosterItem, RosterStore, RosterTotals as Totals,
    SubscriptionRequestStore,
};
use crate::storage::Reply;
use crate::storage::StorageError;
use sled::transaction::Transactional;
use std::sync::Arc;
use xmpp_parsers::jid::BareJid;

/// `owner NUL contact`: JIDs never contain NUL, so one owner's keys share a prefix.
pub(super) fn key(owner: &BareJid, contact: &str) -> Vec<u8> {
    let mut key = prefix(owner);
    key.extend_from_slice(contact.as_bytes());
    key
}

pub(super) fn prefix(owner: &BareJid) -> Vec<u8> {
    text_prefix(owner.as_str())
}

fn text_prefix(text: &str) -> Vec<u8> {
    let mut key = text.as_bytes().to_vec();
    key.push(0);
    key
}

/// The reverse index's key: `contact NUL owner`.
fn holder_key(contact: &str, owner: &str) -> Vec<u8> {
    let mut key = text_prefix(contact);
    key.extend_from_slice(owner.as_bytes());
    key
}

fn corrupt(e: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(e.to_string())
}

fn read_version(bytes: Option<sled::IVec>) -> u64 {
    bytes.and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok()).map(u64::from_be_bytes).unwrap_or(0)
}

/// The JID after a key's prefix.
fn jid_after(key: &[u8], prefix_len: usize) -> Result<BareJid, StorageError> {
    let text = std::str::from_utf8(&key[prefix_len.min(key.len())..]).map_err(corrupt)?;
    BareJid::new(text).map_err(corrupt)
}

fn decode_item(value: &[u8]) -> Result<RosterItem, StorageError> {
    serde_json::from_slice(value).map_err(corrupt)
}

/// How a roster's totals are stored: item count and bytes, big-endian.
impl Totals {
    fn read(value: Option<&[u8]>) -> Totals {
        let half = |range: std::ops::Range<usize>| {
            value.and_then(|v| v.get(range)).and_then(|b| <[u8; 8]>::try_from(b).ok()).map_or(0, u64::from_be_bytes)
        };
        Totals { items: half(0..8), bytes: half(8..16) }
    }

    fn encode(self) -> [u8; 16] {
        let mut value = [0; 16];
        value[..8].copy_from_slice(&self.items.to_be_bytes());
        value[8..].copy_from_slice(&self.bytes.to_be_bytes());
        value
    }
}

/// Marks a database whose roster totals and reverse index were built.
const INDEXES_BUILT: &[u8] = b"roster:indexes-v1";

/// Fills `roster_totals` and `roster_holders` from the items, once per database: those
/// written before the indexes existed have none. A crash meanwhile starts it over.
pub fn build_indexes(
    db: &sled::Db,
    items: &sled::Tree,
    totals: &sled::Tree,
    holders: &sled::Tree,
) -> Result<(), StorageError> {
    if db.contains_key(INDEXES_BUILT).map_err(backend)? {
        return Ok(());
    }
    totals.clear().map_err(backend)?;
    holders.clear().map_err(backend)?;
    let mut sums: std::collections::HashMap<Vec<u8>, Totals> = std::collections::HashMap::new();
    for entry in items.iter() {
        let (key, value) = entry.map_err(backend)?;
        let end = key.iter().position(|b| *b == 0).ok_or_else(|| corrupt("roster key without owner"))?;
        let (owner, contact) = (&key[..end], &key[end + 1..]);
        let sum = sums.entry(owner.to_vec()).or_default();
        *sum = sum.change(None, Some(decode_item(&value)?.size()));
        let mut reverse = contact.to_vec();
        reverse.push(0);
        reverse.extend_from_slice(owner);
        holders.insert(reverse, &[]).map_err(backend)?;
    }
    for (owner, sum) in sums {
        totals.insert(owner, &sum.encode()).map_err(backend)?;
    }
    db.insert(INDEXES_BUILT, &[1]).map_err(backend)?;
    Ok(())
}

impl SledStore {
    /// Writes (or with None removes) one item, and with it the version, the totals and the
    /// reverse index, in one transaction. `quota` is checked in it.
    fn change_item(
        &self,
        owner: &BareJid,
        contact: &str,
        new: Option<&RosterItem>,
        quota: Option<ListQuota>,
    ) -> Result<Option<u64>, StorageError> {
        let item_key = key(owner, contact);
        let reverse_key = holder_key(contact, owner.as_str());
        let value = new.map(|item| serde_json::to_vec(item).map_err(corrupt)).transpose()?;
        let new_size = new.map(RosterItem::size);
        let trees = (&self.roster, &self.roster_versions, &self.roster_totals, &self.roster_holders);
        trees
            .transaction(|(items, versions, totals, holders)| {
                let old = items.get(item_key.as_slice())?;
                if old.is_none() && value.is_none() {
                    return Ok(None);
                }
                let old_size = old.as_ref().map(|v| decode_item(v).map(|i| i.size())).transpose().map_err(abort)?;
                let before = Totals::read(totals.get(owner.as_str())?.as_deref());
                let after = before.change(old_size, new_size);
                if let Some(quota) = quota.filter(|q| !before.allows(after, *q)) {
                    return Err(abort(StorageError::QuotaExceeded(quota.items as u64)));
                }
                match &value {
                    Some(value) => {
                        items.insert(item_key.as_slice(), value.as_slice())?;
                        holders.insert(reverse_key.as_slice(), &[])?;
                    }
                    None => {
                        items.remove(item_key.as_slice())?;
                        holders.remove(reverse_key.as_slice())?;
                    }
                }
                totals.insert(owner.as_str(), &after.encode())?;
                let version = read_version(versions.get(owner.as_str())?) + 1;
                versions.insert(owner.as_str(), &version.to_be_bytes())?;
                Ok(Some(version))
            })
            .map_err(tx_error)
    }

    /// The block list as stored (a prefix scan).
    fn read_blocklist(&self, owner: &BareJid) -> Result<BlockList, StorageError> {
        let prefix = prefix(owner);
        let mut jids = Vec::new();
        for entry in self.blocklist.scan_prefix(&prefix) {
            let (key, _) = entry.map_err(backend)?;
            jids.push(String::from_utf8(key[prefix.len()..].to_vec()).map_err(corrupt)?);
        }
        Ok(BlockList::new(jids))
    }
}

impl RosterStore for SledStore {
    fn roster(&self, owner: &BareJid) -> Reply<'_, Roster> {
        Reply::now(|| {
            let version = read_version(self.roster_versions.get(owner.as_str()).map_err(backend)?);
            let mut items = Vec::new();
            for entry in self.roster.scan_prefix(prefix(owner)) {
                let (_, value) = entry.map_err(backend)?;
                items.push(decode_item(&value)?);
            }
            Ok(Roster { version, items })
        })
    }

    fn roster_item(&self, owner: &BareJid, contact: &BareJid) -> Reply<'_, Option<RosterItem>> {
        Reply::now(|| {
            let value = self.roster.get(key(owner, contact.as_str())).map_err(backend)?;
            value.map(|v| decode_item(&v)).transpose()
        })
    }

    fn put_roster_item(&self, owner: &BareJid, item: &RosterItem, quota: ListQuota) -> Reply<'_, u64> {
        Reply::now(|| {
            let version = self.change_item(owner, &item.jid, Some(item), Some(quota))?;
            version.ok_or_else(|| StorageError::Backend("roster write lost".into()))
        })
    }

    fn remove_roster_item(&self, owner: &BareJid, contact: &BareJid) -> Reply<'_, Option<u64>> {
        Reply::now(|| self.change_item(owner, contact.as_str(), None, None))
    }

    fn roster_holders(&self, contact: &BareJid) -> Reply<'_, Vec<BareJid>> {
        Reply::now(|| {
            let prefix = prefix(contact);
            let mut holders = Vec::new();
            for entry in self.roster_holders.scan_prefix(&prefix) {
                let (key, _) = entry.map_err(backend)?;
                holders.push(jid_after(&key, prefix.len())?);
            }
            Ok(holders)
        })
    }

    fn delete_roster(&self, owner: &BareJid) -> Reply<'_, ()> {
        Reply::now(|| {
            let prefix = prefix(owner);
            for entry in self.roster.scan_prefix(&prefix) {
                let (key, _) = entry.map_err(backend)?;
                let contact = std::str::from_utf8(&key[prefix.len()..]).map_err(corrupt)?;
                self.change_item(owner, contact, None, None)?;
            }
            for entry in self.roster_pending.scan_prefix(&prefix) {
                self.roster_pending.remove(entry.map_err(backend)?.0).map_err(backend)?;
            }
            self.unblock(owner, &[]).at_once()?;
            self.roster_totals.remove(owner.as_str()).map_err(backend)?;
            self.roster_versions.remove(owner.as_str()).map_err(backend)?;
            self.last_seen.remove(owner.as_str()).map_err(backend)?;
            Ok(())
        })
    }
}

impl SubscriptionRequestStore for SledStore {
    fn put_pending_in(&self, owner: &BareJid, contact: &BareJid, request: &str) -> Reply<'_, ()> {
        Reply::now(|| {
            self.roster_pending.insert(key(owner, contact.as_str()), request.as_bytes()).map_err(backend)?;
            Ok(())
        })
    }

    fn remove_pending_in(&self, owner: &BareJid, contact: &BareJid) -> Reply<'_, bool> {
        Reply::now(|| Ok(self.roster_pending.remove(key(owner, contact.as_str())).map_err(backend)?.is_some()))
    }

    fn pending_request(&self, owner: &BareJid, contact: &BareJid) -> Reply<'_, Option<String>> {
        Reply::now(|| {
            let value = self.roster_pending.get(key(owner, contact.as_str())).map_err(backend)?;
            value.map(|v| String::from_utf8(v.to_vec()).map_err(corrupt)).transpose()
        })
    }

    fn pending_in(&self, owner: &BareJid) -> Reply<'_, Vec<(BareJid, String)>> {
        Reply::now(|| {
            let prefix = prefix(owner);
            let mut pending = Vec::new();
            for entry in self.roster_pending.scan_prefix(&prefix) {
                let (key, value) = entry.map_err(backend)?;
                let request = String::from_utf8(value.to_vec()).map_err(corrupt)?;
                pending.push((jid_after(&key, prefix.len())?, request));
            }
            Ok(pending)
        })
    }
}

impl LastSeenStore for SledStore {
    fn set_last_seen(&self, owner: &BareJid, last: &LastSeen) -> Reply<'_, ()> {
        Reply::now(|| {
            let value = serde_json::to_vec(last).map_err(corrupt)?;
            self.last_seen.insert(owner.as_str(), value).map_err(backend)?;
            Ok(())
        })
    }

    fn last_seen(&self, owner: &BareJid) -> Reply<'_, Option<LastSeen>> {
        Reply::now(|| {
            let value = self.last_seen.get(owner.as_str()).map_err(backend)?;
            value.map(|v| serde_json::from_slice(&v).map_err(corrupt)).transpose()
        })
    }
}

/// What a block list weighs in memory: its text and about 64 bytes per JID.
fn block_list_weight(list: &Arc<BlockList>) -> usize {
    (list.bytes() as usize).saturating_add(list.len() * 64)
}

impl BlockStore for SledStore {
    fn block(&self, owner: &BareJid, jids: &[String], quota: ListQuota) -> Reply<'_, Vec<String>> {
        Reply::now(|| {
            // One writer per list at a time: the quota holds against a concurrent block.
            let _writer = self.block_writes.lock(owner.as_str());
            if !self.blocked(owner).at_once()?.unwrap_or_default().takes(jids, quota) {
                return Err(StorageError::QuotaExceeded(quota.items as u64));
            }
            let added = self.blocking.adding(owner, || {
                let mut added = Vec::new();
                for jid in jids {
                    if self.blocklist.insert(key(owner, jid), &[]).map_err(backend)?.is_none() {
                        added.push(jid.clone());
                    }
                }
                Ok(added)
            });
            self.block_cache.forget(owner.as_str());
            added
        })
    }

    fn unblock(&self, owner: &BareJid, jids: &[String]) -> Reply<'_, Vec<String>> {
        Reply::now(|| {
            let _writer = self.block_writes.lock(owner.as_str());
            let targets = if jids.is_empty() { self.read_blocklist(owner)?.sorted() } else { jids.to_vec() };
            let mut removed = Vec::new();
            for jid in targets {
                if self.blocklist.remove(key(owner, &jid)).map_err(backend)?.is_some() {
                    removed.push(jid);
                }
            }
            self.block_cache.forget(owner.as_str());
            self.blocking.forget_if_empty(owner, &self.blocklist)?;
            Ok(removed)
        })
    }

    fn blocked(&self, owner: &BareJid) -> Reply<'_, Option<Arc<BlockList>>> {
        Reply::now(|| {
            if !self.blocking.has_list(owner) {
                return Ok(None);
            }
            let read = || self.read_blocklist(owner).map(Arc::new);
            let list = self.block_cache.get_or_load(owner.as_str(), block_list_weight, read)?;
            Ok(Some(list).filter(|list| !list.is_empty()))
        })
    }
}

/// The accounts with a block list, kept in memory: asking whether an account blocked
/// someone costs no store lookup when its list is empty. An owner's entry changes only
/// under its list's writer stripe (`block_writes`), so it is never forgotten while an item
/// is written, and no lock is shared by all accounts while items are.
pub struct BlockingOwners {
    owners: std::sync::RwLock<std::collections::HashSet<String>>,
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
        Ok(BlockingOwners { owners: std::sync::RwLock::new(owners) })
    }

    fn has_list(&self, owner: &BareJid) -> bool {
        self.owners.read().unwrap_or_else(|p| p.into_inner()).contains(owner.as_str())
    }

    /// Adds `owner`, then runs `write` (which writes its items); under the owner's writer
    /// stripe. Known before the first item is written: a reader may then read an empty
    /// list, never miss an item.
    fn adding<R>(&self, owner: &BareJid, write: impl FnOnce() -> R) -> R {
        self.owners.write().unwrap_or_else(|p| p.into_inner()).insert(owner.as_str().to_owned());
        write()
    }

    /// After items were removed (or none added), under the owner's writer stripe: forgets
    /// `owner` if its list is empty.
    fn forget_if_empty(&self, owner: &BareJid, tree: &sled::Tree) -> Result<(), StorageError> {
        if tree.scan_prefix(prefix(owner)).next().transpose().map_err(backend)?.is_none() {
            self.owners.write().unwrap_or_else(|p| p.into_inner()).remove(owner.as_str());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::roster::ListQuota;

    fn jid(text: &str) -> BareJid {
        BareJid::new(text).expect("jid")
    }

    const ROOMY: ListQuota = ListQuota { items: 10_000, bytes: 1 << 20 };

    #[tokio::test]
    async fn block_lists_are_known_again_after_a_restart() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (alice, bob) = (jid("alice@localhost"), jid("bob@localhost"));
        {
            let store = SledStore::open(dir.path()).expect("open");
            store.block(&alice, &["spam@example.org".to_owned()], ROOMY).await.expect("block");
            store.block(&bob, &["x@example.org".to_owned()], ROOMY).await.expect("block");
            store.unblock(&bob, &[]).await.expect("unblock all");
        }
        let store = SledStore::open(dir.path()).expect("reopen");
        assert_eq!(store.blocklist(&alice).await.expect("list"), vec!["spam@example.org".to_owned()]);
        assert!(store.blocklist(&bob).await.expect("list").is_empty());
    }

    /// What every stanza asks is answered from memory once read, and a change through
    /// the store is seen at once.
    #[tokio::test]
    async fn a_block_list_is_answered_from_memory_and_follows_changes() {
        let store = SledStore::temporary().expect("temporary sled");
        let alice = jid("alice@localhost");
        store.block(&alice, &["spam@example.org".to_owned()], ROOMY).await.expect("block");
        assert!(store.blocked(&alice).await.expect("read").is_some_and(|l| l.contains("spam@example.org")));
        assert!(store.block_cache.holds("alice@localhost"));
        // Behind the store's back, the tree loses the item: memory still answers.
        store.blocklist.remove(key(&alice, "spam@example.org")).expect("raw remove");
        assert!(store.blocked(&alice).await.expect("read").is_some_and(|l| l.contains("spam@example.org")));
        // Writes through the store are seen at once.
        store.block(&alice, &["more@example.org".to_owned()], ROOMY).await.expect("block");
        let list = store.blocked(&alice).await.expect("read").expect("a list");
        assert!(list.contains("more@example.org") && !list.contains("spam@example.org"), "read again: {list:?}");
        store.unblock(&alice, &["more@example.org".to_owned()]).await.expect("unblock");
        assert!(store.blocked(&alice).await.expect("read").is_none());
    }

    /// The largest block list the configuration allows (10 000 JIDs, 1 MiB) still fits in
    /// memory: it is never read from the tree per stanza.
    #[tokio::test]
    async fn the_largest_block_list_allowed_is_kept_in_memory() {
        let store = SledStore::temporary().expect("temporary sled");
        let alice = jid("alice@localhost");
        let jids: Vec<String> = (0..10_000).map(|i| format!("{i:05}{}@example.org", "x".repeat(87))).collect();
        let most = ListQuota { items: 10_000, bytes: 1 << 20 };
        store.block(&alice, &jids, most).await.expect("fits the quota");
        assert_eq!(store.blocked(&alice).await.expect("read").map(|l| l.len()), Some(10_000));
        assert!(store.block_cache.holds("alice@localhost"));
    }

    #[tokio::test]
    async fn roster_indexes_are_built_for_an_older_database() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (alice, bob, carol) = (jid("alice@localhost"), jid("bob@localhost"), jid("carol@localhost"));
        {
            let store = SledStore::open(dir.path()).expect("open");
            store.put_roster_item(&alice, &RosterItem::new(&bob), ROOMY).await.expect("put");
            store.put_roster_item(&carol, &RosterItem::new(&bob), ROOMY).await.expect("put");
            // As a database written before the indexes existed.
            store.roster_totals.clear().expect("clear");
            store.roster_holders.clear().expect("clear");
            store.db.remove(INDEXES_BUILT).expect("unmark");
        }
        let store = SledStore::open(dir.path()).expect("reopen");
        assert_eq!(store.roster_holders(&bob).await.expect("holders"), vec![alice.clone(), carol]);
        let one = ListQuota { items: 1, bytes: 1 << 20 };
        let second = store.put_roster_item(&alice, &RosterItem::new(&jid("dave@localhost")), one).await;
        assert!(matches!(second, Err(StorageError::QuotaExceeded(_))), "alice's item was counted: {second:?}");
    }
}
