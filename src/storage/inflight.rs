//! Messages handed to a stream-managed session (XEP-0198) and not yet acknowledged by its
//! client. They are written here before the sender is told anything, removed when the
//! client acknowledges them, and moved to the owner's offline queue when the session ends
//! without that acknowledgement, or at the next start after a crash (docs/delivery.md).

use super::StorageError;
use xmpp_parsers::jid::BareJid;

pub trait InflightStore: Send + Sync {
    /// Records a message for `owner`, stamped `stamp` (unix seconds); returns its key.
    fn put_inflight(&self, owner: &BareJid, stamp: u64, stanza: &[u8]) -> Result<u64, StorageError>;
    /// Forgets acknowledged entries (those that exist).
    fn remove_inflight(&self, keys: &[u64]) -> Result<(), StorageError>;
    /// Moves the given entries to their owners' offline queues, in key order, each with
    /// its stamp; entries of accounts that no longer exist are only removed. Offline quotas
    /// do not apply: these were accepted already. Returns the owners that got messages.
    fn inflight_to_offline(&self, keys: &[u64]) -> Result<Vec<BareJid>, StorageError>;
    /// Every key still recorded, oldest first (after a crash, all of them move).
    fn inflight_keys(&self) -> Result<Vec<u64>, StorageError>;
}
