//! The offline queue: `owner NUL seq` → stanza, and `owner` → count, changed together.

use super::{backend, SledStore};
use crate::storage::offline::{OfflineMessage, OfflineStore, Quota};
use crate::storage::StorageError;
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use xmpp_parsers::jid::BareJid;

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

/// The account's `(messages, bytes)` waiting, stored as two big-endian u64.
fn totals(value: Option<sled::IVec>) -> (u64, u64) {
    let field = |b: &[u8], i: usize| b.get(i..i + 8).and_then(|s| <[u8; 8]>::try_from(s).ok()).map(u64::from_be_bytes);
    value.map(|b| (field(&b, 0).unwrap_or(0), field(&b, 8).unwrap_or(0))).unwrap_or((0, 0))
}

fn encode_totals(messages: u64, bytes: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&messages.to_be_bytes());
    out[8..].copy_from_slice(&bytes.to_be_bytes());
    out
}

fn tx_error(e: TransactionError<StorageError>) -> StorageError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => backend(e),
    }
}

impl OfflineStore for SledStore {
    fn push_offline(&self, owner: &BareJid, stanza: &[u8], quota: Quota) -> Result<u64, StorageError> {
        // Ids are taken outside the transaction, which may run more than once (PITFALLS.md).
        let seq = self.db.generate_id().map_err(backend)?;
        let entry = key(owner, seq);
        (&self.offline, &self.offline_counts)
            .transaction(|(queue, counts)| {
                let (count, size) = totals(counts.get(owner.as_str())?);
                let size_after = size.saturating_add(stanza.len() as u64);
                if count >= quota.messages || size_after > quota.bytes {
                    return Err(ConflictableTransactionError::Abort(StorageError::QuotaExceeded(quota.messages)));
                }
                queue.insert(entry.as_slice(), stanza)?;
                counts.insert(owner.as_str(), &encode_totals(count + 1, size_after))?;
                Ok(seq)
            })
            .map_err(tx_error)
    }

    fn offline_count(&self, owner: &BareJid) -> Result<u64, StorageError> {
        Ok(totals(self.offline_counts.get(owner.as_str()).map_err(backend)?).0)
    }

    fn offline_messages(&self, owner: &BareJid, limit: usize) -> Result<Vec<OfflineMessage>, StorageError> {
        let prefix = prefix(owner);
        let mut messages = Vec::new();
        for entry in self.offline.scan_prefix(&prefix).take(limit) {
            let (key, value) = entry.map_err(backend)?;
            let seq = key
                .get(prefix.len()..)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| StorageError::Corrupt("offline key".into()))?;
            messages.push(OfflineMessage { seq, stanza: value.to_vec() });
        }
        Ok(messages)
    }

    fn remove_offline(&self, owner: &BareJid, seqs: &[u64]) -> Result<u64, StorageError> {
        (&self.offline, &self.offline_counts)
            .transaction(|(queue, counts)| {
                let (mut removed, mut freed) = (0, 0);
                for seq in seqs {
                    if let Some(old) = queue.remove(key(owner, *seq))? {
                        removed += 1;
                        freed += old.len() as u64;
                    }
                }
                let (count, size) = totals(counts.get(owner.as_str())?);
                counts.insert(
                    owner.as_str(),
                    &encode_totals(count.saturating_sub(removed), size.saturating_sub(freed)),
                )?;
                Ok::<_, ConflictableTransactionError<StorageError>>(removed)
            })
            .map_err(tx_error)
    }

    fn delete_offline(&self, owner: &BareJid) -> Result<(), StorageError> {
        let seqs: Vec<u64> = self.offline_messages(owner, usize::MAX)?.iter().map(|m| m.seq).collect();
        self.remove_offline(owner, &seqs)?;
        self.offline_counts.remove(owner.as_str()).map_err(backend)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sled_passes_the_offline_contract() {
        let store = super::SledStore::temporary().expect("temporary sled");
        crate::storage::contract::offline_store(&store);
    }
}
