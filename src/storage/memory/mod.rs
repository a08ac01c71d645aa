//! A backend in memory: nothing survives the process. For tests, and for a server that
//! may forget everything when it stops (`[storage] backend = "memory"`). It passes the
//! same contract as sled (`contract.rs`), with the same semantics: quotas, ordering, ids.
//!
//! Data is kept per account in maps sharded by account ([`Stripes`]): an operation on one
//! account holds its stripe only, never a lock every account needs. A stripe is taken
//! before the in-flight records or the roster holders' stripes, never after.

mod archive;
mod inflight;
mod offline;
mod private;
mod roster;
mod users;
mod vcard;

use crate::stripes::Stripes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Stripes per sharded map.
const STRIPES: usize = 64;

pub struct MemoryStore {
    /// Offline places, in-flight keys and archive sequence numbers: one counter, as sled's
    /// `generate_id`.
    next_id: AtomicU64,
    users: std::sync::RwLock<std::collections::BTreeMap<String, crate::sasl::credentials::StoredCredentials>>,
    /// Rosters, subscription requests, last seen and block lists, per owner.
    contacts: Stripes<HashMap<String, roster::Contacts>>,
    /// Who holds a roster item for whom: contact → owners.
    holders: Stripes<HashMap<String, std::collections::BTreeSet<String>>>,
    /// Offline queues with the totals of what waits (offline and in flight), per owner.
    offline: Stripes<HashMap<String, offline::Queue>>,
    inflight: Mutex<std::collections::BTreeMap<u64, inflight::Record>>,
    /// Archives and their preferences, per owner.
    archives: Stripes<HashMap<String, archive::Archive>>,
    archive_ids: crate::storage::archive::ids::Ids,
    /// vCards with their avatars, per owner.
    vcards: Stripes<HashMap<String, vcard::Vcard>>,
    /// Private XML by namespace, per owner.
    private: Stripes<HashMap<String, private::Entries>>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore {
            next_id: AtomicU64::new(0),
            users: Default::default(),
            contacts: Stripes::new(STRIPES),
            holders: Stripes::new(STRIPES),
            offline: Stripes::new(STRIPES),
            inflight: Default::default(),
            archives: Stripes::new(STRIPES),
            archive_ids: crate::storage::archive::ids::Ids(rand::random()),
            vcards: Stripes::new(STRIPES),
            private: Stripes::new(STRIPES),
        }
    }

    /// A new id, larger than every one before.
    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

impl Default for MemoryStore {
    fn default() -> MemoryStore {
        MemoryStore::new()
    }
}

/// The lock, even after a panic elsewhere: every change made under it is one step, so a
/// panic leaves nothing half-done (as in `Stripes`).
fn held<T>(lock: &Mutex<T>) -> MutexGuard<'_, T> {
    lock.lock().unwrap_or_else(|p| p.into_inner())
}

fn corrupt(e: impl std::fmt::Display) -> crate::storage::StorageError {
    crate::storage::StorageError::Corrupt(e.to_string())
}
