//! Offline messages (XEP-0160): per account, in arrival order, with an O(1) count.

use crate::storage::Reply;
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

/// How much one batch handed to a client may hold: at most `messages` messages and
/// `bytes` bytes, but at least one message whenever any is stored, so that a batch always
/// makes progress even when one message alone is larger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batch {
    pub messages: usize,
    pub bytes: usize,
}

impl Batch {
    /// Whether a batch holding `count` messages of `size` bytes may take one of `next`
    /// bytes more.
    pub fn takes(&self, count: usize, size: usize, next: usize) -> bool {
        count == 0 || (count < self.messages && size.saturating_add(next) <= self.bytes)
    }
}

/// Messages and bytes waiting for one account: in its offline queue, and in flight to its
/// stream-managed sessions (those may end up offline: they count against the same quota).
#[derive(Clone, Copy, Default, Debug)]
pub struct Totals {
    offline: Count,
    inflight: Count,
}

/// Some messages and their bytes.
#[derive(Clone, Copy, Default, Debug)]
struct Count {
    messages: u64,
    bytes: u64,
}

impl Count {
    fn add(&mut self, size: usize) {
        self.messages += 1;
        self.bytes = self.bytes.saturating_add(size as u64);
    }

    /// Subtraction stops at zero: in-flight records made in an earlier run were never
    /// counted.
    fn remove(&mut self, size: usize) {
        self.messages = self.messages.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(size as u64);
    }
}

impl Totals {
    /// Messages in the offline queue.
    pub fn messages(&self) -> u64 {
        self.offline.messages
    }

    /// Nothing waits, offline or in flight.
    pub fn is_empty(&self) -> bool {
        self.offline.messages == 0 && self.inflight.messages == 0
    }

    /// Whether one more message of `size` bytes stays within the quota.
    pub fn fits(&self, size: usize, quota: Quota) -> bool {
        let (offline, inflight) = (self.offline, self.inflight);
        let messages = offline.messages.saturating_add(inflight.messages);
        let bytes = offline.bytes.saturating_add(inflight.bytes).saturating_add(size as u64);
        messages < quota.messages && bytes <= quota.bytes
    }

    pub fn add_offline(&mut self, size: usize) {
        self.offline.add(size);
    }

    pub fn remove_offline(&mut self, size: usize) {
        self.offline.remove(size);
    }

    pub fn add_inflight(&mut self, size: usize) {
        self.inflight.add(size);
    }

    pub fn remove_inflight(&mut self, size: usize) {
        self.inflight.remove(size);
    }
}

pub trait OfflineStore: Send + Sync {
    /// Appends a message; `QuotaExceeded` when it would take the account over its quota of
    /// messages or bytes. The count and size change in the same write as the queue.
    fn push_offline(&self, owner: &BareJid, stanza: &[u8], quota: Quota) -> Reply<'_, u64>;
    fn offline_count(&self, owner: &BareJid) -> Reply<'_, u64>;
    /// The oldest messages, oldest first, as many as `batch` takes (at least one when any
    /// is stored).
    fn offline_batch(&self, owner: &BareJid, batch: Batch) -> Reply<'_, Vec<OfflineMessage>>;
    /// One stored message, by its place in the queue.
    fn offline_message(&self, owner: &BareJid, seq: u64) -> Reply<'_, Option<OfflineMessage>>;
    /// Removes the given entries (those that exist); returns how many went.
    fn remove_offline(&self, owner: &BareJid, seqs: &[u64]) -> Reply<'_, u64>;
    /// Forgets a deleted account's queue.
    fn delete_offline(&self, owner: &BareJid) -> Reply<'_, ()>;
}
