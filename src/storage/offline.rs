//! Offline messages (XEP-0160): per account, in arrival order, with an O(1) count.

use super::StorageError;
use xmpp_parsers::jid::BareJid;

/// One stored message: its place in the account's queue and the stanza as it will be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfflineMessage {
    pub seq: u64,
    pub stanza: Vec<u8>,
}

/// How much one account may have waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub messages: u64,
    pub bytes: u64,
}

pub trait OfflineStore: Send + Sync {
    /// Appends a message; `QuotaExceeded` when it would take the account over its quota of
    /// messages or bytes. The count and size change in the same write as the queue.
    fn push_offline(&self, owner: &BareJid, stanza: &[u8], quota: Quota) -> Result<u64, StorageError>;
    fn offline_count(&self, owner: &BareJid) -> Result<u64, StorageError>;
    /// The oldest `limit` messages, oldest first.
    fn offline_messages(&self, owner: &BareJid, limit: usize) -> Result<Vec<OfflineMessage>, StorageError>;
    /// Removes the given entries (those that exist); returns how many went.
    fn remove_offline(&self, owner: &BareJid, seqs: &[u64]) -> Result<u64, StorageError>;
    /// Forgets a deleted account's queue.
    fn delete_offline(&self, owner: &BareJid) -> Result<(), StorageError>;
}
