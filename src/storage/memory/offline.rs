//! Offline queues: per owner, by place (ids grow, so places follow arrival), with the
//! totals of what waits for the owner, offline and in flight, for the quota.

use super::MemoryStore;
use crate::storage::offline::{Batch, OfflineMessage, OfflineStore, Quota, Totals};
use crate::storage::Reply;
use crate::storage::StorageError;
use std::collections::BTreeMap;
use xmpp_parsers::jid::BareJid;

#[derive(Default)]
pub(super) struct Queue {
    messages: BTreeMap<u64, Vec<u8>>,
    pub(super) totals: Totals,
}

impl Queue {
    /// Stores a message at a new place, the last.
    pub(super) fn append(&mut self, seq: u64, stanza: Vec<u8>) {
        self.totals.add_offline(stanza.len());
        self.messages.insert(seq, stanza);
    }
}

impl MemoryStore {
    /// Runs `change` on the owner's queue under its stripe: the quota holds against
    /// concurrent senders, and places are taken in the order messages are stored. A queue
    /// left with nothing waiting goes.
    pub(super) fn with_queue<R>(
        &self,
        owner: &BareJid,
        change: impl FnOnce(&mut Queue) -> Result<R, StorageError>,
    ) -> Result<R, StorageError> {
        let mut stripe = self.offline.lock(owner.as_str());
        let queue = stripe.entry(owner.to_string()).or_default();
        let result = change(queue);
        if queue.totals.is_empty() {
            stripe.remove(owner.as_str());
        }
        result
    }

    fn read_queue<R>(&self, owner: &BareJid, read: impl FnOnce(&Queue) -> R) -> R {
        let stripe = self.offline.lock(owner.as_str());
        read(stripe.get(owner.as_str()).unwrap_or(&Queue::default()))
    }
}

impl OfflineStore for MemoryStore {
    fn push_offline(&self, owner: &BareJid, stanza: &[u8], quota: Quota) -> Reply<'_, u64> {
        Reply::now(|| {
            self.with_queue(owner, |queue| {
                if !queue.totals.fits(stanza.len(), quota) {
                    return Err(StorageError::QuotaExceeded(quota.messages));
                }
                let seq = self.next_id();
                queue.append(seq, stanza.to_vec());
                Ok(seq)
            })
        })
    }

    fn offline_count(&self, owner: &BareJid) -> Reply<'_, u64> {
        Reply::now(|| Ok(self.read_queue(owner, |queue| queue.totals.messages())))
    }

    fn offline_batch(&self, owner: &BareJid, batch: Batch) -> Reply<'_, Vec<OfflineMessage>> {
        Reply::now(|| {
            Ok(self.read_queue(owner, |queue| {
                let (mut messages, mut size) = (Vec::new(), 0);
                for (seq, stanza) in &queue.messages {
                    if !batch.takes(messages.len(), size, stanza.len()) {
                        break;
                    }
                    size += stanza.len();
                    messages.push(OfflineMessage { seq: *seq, stanza: stanza.clone() });
                }
                messages
            }))
        })
    }

    fn offline_message(&self, owner: &BareJid, seq: u64) -> Reply<'_, Option<OfflineMessage>> {
        Reply::now(|| {
            Ok(self.read_queue(owner, |queue| {
                queue.messages.get(&seq).map(|stanza| OfflineMessage { seq, stanza: stanza.clone() })
            }))
        })
    }

    fn remove_offline(&self, owner: &BareJid, seqs: &[u64]) -> Reply<'_, u64> {
        Reply::now(|| {
            self.with_queue(owner, |queue| {
                let mut removed = 0;
                for seq in seqs {
                    if let Some(old) = queue.messages.remove(seq) {
                        removed += 1;
                        queue.totals.remove_offline(old.len());
                    }
                }
                Ok(removed)
            })
        })
    }

    fn delete_offline(&self, owner: &BareJid) -> Reply<'_, ()> {
        Reply::now(|| {
            self.with_queue(owner, |queue| {
                for old in std::mem::take(&mut queue.messages).into_values() {
                    queue.totals.remove_offline(old.len());
                }
                Ok(())
            })
        })
    }
}
