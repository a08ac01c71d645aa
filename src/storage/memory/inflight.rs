//! In-flight messages: by key (ids grow, so keys follow time), counted in their owner's
//! queue totals from the moment they are recorded until they are removed or moved.

use super::{held, MemoryStore};
use crate::storage::inflight::{InflightStore, StoredForm};
use crate::storage::offline::Quota;
use crate::storage::Reply;
use crate::storage::{StorageError, UserStore};
use xmpp_parsers::jid::BareJid;

pub(super) struct Record {
    owner: BareJid,
    stamp: u64,
    stanza: Vec<u8>,
}

impl MemoryStore {
    /// A record left: its owner's quota has the room again.
    fn uncount_inflight(&self, record: &Record) -> Result<(), StorageError> {
        self.with_queue(&record.owner, |queue| {
            queue.totals.remove_inflight(record.stanza.len());
            Ok(())
        })
    }
}

impl InflightStore for MemoryStore {
    fn put_inflight(&self, owner: &BareJid, stamp: u64, stanza: &[u8], quota: Quota) -> Reply<'_, u64> {
        Reply::now(|| {
            // Under the owner's queue stripe, as offline messages: the quota holds for
            // concurrent senders.
            self.with_queue(owner, |queue| {
                if !queue.totals.fits(stanza.len(), quota) {
                    return Err(StorageError::QuotaExceeded(quota.messages));
                }
                let key = self.next_id();
                held(&self.inflight).insert(key, Record { owner: owner.clone(), stamp, stanza: stanza.to_vec() });
                queue.totals.add_inflight(stanza.len());
                Ok(key)
            })
        })
    }

    fn remove_inflight(&self, keys: &[u64]) -> Reply<'_, ()> {
        Reply::now(|| {
            for key in keys {
                let removed = held(&self.inflight).remove(key);
                if let Some(record) = removed {
                    self.uncount_inflight(&record)?;
                }
            }
            Ok(())
        })
    }

    fn inflight_to_offline(&self, keys: &[u64], stored: StoredForm) -> Reply<'_, Vec<BareJid>> {
        Reply::now(|| {
            let mut keys = keys.to_vec();
            keys.sort_unstable();
            let mut owners: Vec<BareJid> = Vec::new();
            for key in keys {
                // Taken out first: an entry moves once, whoever else moves it meanwhile.
                let Some(record) = held(&self.inflight).remove(&key) else { continue };
                if !self.user_exists(&record.owner).at_once()? {
                    // A deleted account's messages are only forgotten.
                    self.uncount_inflight(&record)?;
                    continue;
                }
                let form = stored(&record.owner, record.stamp, &record.stanza);
                // Stored and uncounted in one step: it was counted when recorded, so it fits.
                self.with_queue(&record.owner, |queue| {
                    queue.append(self.next_id(), form);
                    queue.totals.remove_inflight(record.stanza.len());
                    Ok(())
                })?;
                if !owners.contains(&record.owner) {
                    owners.push(record.owner);
                }
            }
            Ok(owners)
        })
    }

    fn inflight_keys(&self) -> Reply<'_, Vec<u64>> {
        Reply::now(|| Ok(held(&self.inflight).keys().copied().collect()))
    }
}
