//! Messages handed to a stream-managed session (XEP-0198) and not yet acknowledged by its
//! client. They are written here before the sender is told anything, removed when the
//! client acknowledges them, and moved to the owner's offline queue when the session ends
//! without that acknowledgement, or at the next start after a crash (docs/delivery.md).

use super::offline::Quota;
use super::StorageError;
use xmpp_parsers::jid::BareJid;

pub trait InflightStore: Send + Sync {
    /// Records a message for `owner`, stamped `stamp` (unix seconds), in the form it is to
    /// take offline (the caller stamps it: storage builds no XML); returns its key.
    /// In-flight messages count against the owner's offline quota (they move there if
    /// their session ends first): `QuotaExceeded` when this one would not fit.
    fn put_inflight(&self, owner: &BareJid, stamp: u64, stanza: &[u8], quota: Quota) -> Result<u64, StorageError>;
    /// Forgets acknowledged entries (those that exist).
    fn remove_inflight(&self, keys: &[u64]) -> Result<(), StorageError>;
    /// Moves the given entries, as recorded, to their owners' offline queues, in key
    /// order; entries of accounts that no longer exist are only removed. They were
    /// counted against the quota when they were recorded, so they always fit. Returns the
    /// owners that got messages.
    fn inflight_to_offline(&self, keys: &[u64]) -> Result<Vec<BareJid>, StorageError>;
    /// Every key still recorded, oldest first (after a crash, all of them move).
    fn inflight_keys(&self) -> Result<Vec<u64>, StorageError>;
}
