//! The offline queue: `owner NUL seq` → stanza. Each account's count and size are kept in
//! memory, read from its queue the first time they are needed: a write is one plain
//! insert (a sled transaction or batch costs a log write of its own, measured), and
//! after a crash the totals are simply counted again.

use super::{backend, SledStore};
use crate::storage::offline::{Batch, OfflineMessage, OfflineStore, Quota, Totals};
use crate::storage::Reply;
use crate::storage::StorageError;
use std::collections::HashMap;
use std::sync::MutexGuard;
use xmpp_parsers::jid::BareJid;

/// In shards by account: every offline store and every message in flight takes one.
pub type OfflineTotals = std::sync::Arc<[std::sync::Mutex<HashMap<BareJid, Totals>>; SHARDS]>;
const SHARDS: usize = 16;

fn prefix(owner: &BareJid) -> Vec<u8> {
    let mut key = owner.as_str().as_bytes().to_vec();
    key.push(0);
    key
}

fn key(owner: &BareJid, seq: u64) -> Vec<u8> {
    let mut key = prefix(owner);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The place in the queue at the end of a key.
fn seq_of(key: &[u8], prefix_len: usize) -> Result<u64, StorageError> {
    key.get(prefix_len..)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StorageError::Corrupt("offline key".into()))
}

impl SledStore {
    fn totals_shard(&self, owner: &BareJid) -> MutexGuard<'_, HashMap<BareJid, Totals>> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        owner.as_str().hash(&mut hasher);
        let shard = &self.offline_totals[hasher.finish() as usize % SHARDS];
        shard.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `change` on the account's totals under its shard's lock (queue writes happen
    /// inside it: the quota holds against concurrent senders, and places in the queue are
    /// taken in the order messages are stored). Counted from the queue on first use,
    /// without the lock: a long queue holds up no other account. Every write of the queue
    /// runs here with the totals present, so a count made meanwhile is simply not used.
    pub(super) fn with_totals<R>(
        &self,
        owner: &BareJid,
        change: impl FnOnce(&mut Totals) -> Result<R, StorageError>,
    ) -> Result<R, StorageError> {
        if let Some(totals) = self.totals_shard(owner).get_mut(owner) {
            return change(totals);
        }
        let counted = self.count_queue(owner)?;
        let mut shard = self.totals_shard(owner);
        change(shard.entry(owner.clone()).or_insert(counted))
    }

    fn count_queue(&self, owner: &BareJid) -> Result<Totals, StorageError> {
        let mut counted = Totals::default();
        for entry in self.offline.scan_prefix(prefix(owner)) {
            let (_, value) = entry.map_err(backend)?;
            counted.add_offline(value.len());
        }
        Ok(counted)
    }
}

impl OfflineStore for SledStore {
    fn push_offline(&self, owner: &BareJid, stanza: &[u8], quota: Quota) -> Reply<'_, u64> {
        Reply::now(|| {
            self.with_totals(owner, |account| {
                if !account.fits(stanza.len(), quota) {
                    return Err(StorageError::QuotaExceeded(quota.messages));
                }
                let seq = self.db.generate_id().map_err(backend)?;
                self.offline.insert(key(owner, seq), stanza).map_err(backend)?;
                account.add_offline(stanza.len());
                Ok(seq)
            })
        })
    }

    fn offline_count(&self, owner: &BareJid) -> Reply<'_, u64> {
        Reply::now(|| self.with_totals(owner, |account| Ok(account.messages())))
    }

    fn offline_batch(&self, owner: &BareJid, batch: Batch) -> Reply<'_, Vec<OfflineMessage>> {
        Reply::now(|| {
            let prefix = prefix(owner);
            let (mut messages, mut size) = (Vec::new(), 0);
            for entry in self.offline.scan_prefix(&prefix) {
                let (key, value) = entry.map_err(backend)?;
                if !batch.takes(messages.len(), size, value.len()) {
                    break;
                }
                size += value.len();
                messages.push(OfflineMessage { seq: seq_of(&key, prefix.len())?, stanza: value.to_vec() });
            }
            Ok(messages)
        })
    }

    fn offline_message(&self, owner: &BareJid, seq: u64) -> Reply<'_, Option<OfflineMessage>> {
        Reply::now(|| {
            let value = self.offline.get(key(owner, seq)).map_err(backend)?;
            Ok(value.map(|v| OfflineMessage { seq, stanza: v.to_vec() }))
        })
    }

    fn remove_offline(&self, owner: &BareJid, seqs: &[u64]) -> Reply<'_, u64> {
        Reply::now(|| {
            self.with_totals(owner, |account| {
                let mut removed = 0;
                for seq in seqs {
                    if let Some(old) = self.offline.remove(key(owner, *seq)).map_err(backend)? {
                        removed += 1;
                        account.remove_offline(old.len());
                    }
                }
                Ok(removed)
            })
        })
    }

    fn delete_offline(&self, owner: &BareJid) -> Reply<'_, ()> {
        Reply::now(|| {
            let prefix = prefix(owner);
            let mut seqs = Vec::new();
            for key in self.offline.scan_prefix(&prefix).keys() {
                seqs.push(seq_of(&key.map_err(backend)?, prefix.len())?);
            }
            self.remove_offline(owner, &seqs).at_once()?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn totals_are_counted_again_from_the_queue() {
        let store = SledStore::temporary().expect("temporary sled");
        let bob = BareJid::new("bob@example.org").expect("jid");
        let quota = Quota { messages: 10, bytes: 1 << 20 };
        store.push_offline(&bob, b"12345", quota).await.expect("push");
        store.push_offline(&bob, b"678", quota).await.expect("push");
        store.offline_totals.iter().for_each(|shard| shard.lock().expect("shard").clear()); // as after a restart
        assert_eq!(store.offline_count(&bob).await.expect("count"), 2);
        let small = Quota { messages: 10, bytes: 10 };
        assert!(
            matches!(store.push_offline(&bob, b"123", small).await, Err(StorageError::QuotaExceeded(_))),
            "8 + 3 > 10"
        );
    }
}
