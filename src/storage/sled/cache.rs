//! Per-account values kept in memory up to a byte budget: what a hot path reads for
//! every stanza or archived message (block lists, archive preferences), so it costs no
//! store read once read.
//!
//! Coherent with the store: a writer changes the store first and then calls
//! [`Cache::forget`]; a reader that found nothing reads the store and keeps what it read
//! only if no `forget` happened in its shard since it looked, so a read that raced a
//! write is never kept. Beyond the budget, entries not used since the last eviction go
//! first (the "clock" rule); a value larger than a shard's budget is not kept at all.

use crate::keyed::{KeyedMap, KeyedState};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

const SHARDS: usize = 16;
/// What an entry costs besides its value's weight: the key's allocation, the map slot.
const ENTRY_OVERHEAD: usize = 96;

pub struct Cache<V> {
    shards: Box<[RwLock<Shard<V>>]>,
    hasher: KeyedState,
    /// Bytes one shard may hold.
    shard_budget: usize,
}

struct Shard<V> {
    entries: KeyedMap<String, Entry<V>>,
    bytes: usize,
    /// Counts the `forget`s: a load that began before one is not kept.
    forgets: u64,
}

struct Entry<V> {
    value: V,
    weight: usize,
    /// Used since the last eviction pass (set by readers under the read lock).
    used: AtomicBool,
}

impl<V: Clone> Cache<V> {
    /// A cache holding up to about `budget` bytes (as its values are weighed).
    pub fn new(budget: usize) -> Cache<V> {
        let shard = || RwLock::new(Shard { entries: KeyedMap::default(), bytes: 0, forgets: 0 });
        Cache {
            shards: (0..SHARDS).map(|_| shard()).collect(),
            hasher: KeyedState::default(),
            shard_budget: budget / SHARDS,
        }
    }

    fn shard(&self, key: &str) -> &RwLock<Shard<V>> {
        &self.shards[(self.hasher.hash_one(key) % SHARDS as u64) as usize]
    }

    /// The value of `key`: from memory, or else from `load` (kept if it fits, weighing
    /// `weigh` bytes).
    pub fn get_or_load<E>(
        &self,
        key: &str,
        weigh: impl FnOnce(&V) -> usize,
        load: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E> {
        let shard = self.shard(key);
        let forgets = {
            let read = shard.read().unwrap_or_else(|p| p.into_inner());
            if let Some(entry) = read.entries.get(key) {
                if !entry.used.load(Ordering::Relaxed) {
                    entry.used.store(true, Ordering::Relaxed);
                }
                return Ok(entry.value.clone());
            }
            read.forgets
        };
        let value = load()?;
        let weight = weigh(&value).saturating_add(key.len() + ENTRY_OVERHEAD);
        if weight <= self.shard_budget {
            let mut write = shard.write().unwrap_or_else(|p| p.into_inner());
            if write.forgets == forgets && !write.entries.contains_key(key) {
                write.make_room(weight, self.shard_budget);
                write.bytes += weight;
                let entry = Entry { value: value.clone(), weight, used: AtomicBool::new(true) };
                write.entries.insert(key.to_owned(), entry);
            }
        }
        Ok(value)
    }

    /// Drops what is known of `key`; call after every change of it in the store.
    pub fn forget(&self, key: &str) {
        let mut write = self.shard(key).write().unwrap_or_else(|p| p.into_inner());
        write.forgets += 1;
        if let Some(old) = write.entries.remove(key) {
            write.bytes -= old.weight;
        }
    }

    /// Whether `key` is held in memory now.
    #[cfg(test)]
    pub fn holds(&self, key: &str) -> bool {
        self.shard(key).read().unwrap_or_else(|p| p.into_inner()).entries.contains_key(key)
    }

    /// Bytes held in all.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.shards.iter().map(|s| s.read().unwrap_or_else(|p| p.into_inner()).bytes).sum()
    }
}

impl<V> Shard<V> {
    /// Evicts until `weight` more bytes fit: first what was not used since the last pass
    /// (marking the rest unused), then anything.
    fn make_room(&mut self, weight: usize, budget: usize) {
        for pass in 0..2 {
            let mut victims = Vec::new();
            let mut freed = 0;
            for (key, entry) in &self.entries {
                if self.bytes - freed + weight <= budget {
                    break;
                }
                if pass == 0 && entry.used.swap(false, Ordering::Relaxed) {
                    continue;
                }
                freed += entry.weight;
                victims.push(key.clone());
            }
            for key in victims {
                if let Some(old) = self.entries.remove(&key) {
                    self.bytes -= old.weight;
                }
            }
            if self.bytes + weight <= budget {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cache;

    fn load(value: u32) -> impl FnOnce() -> Result<u32, ()> {
        move || Ok(value)
    }

    #[test]
    fn a_value_is_read_once_then_kept_until_forgotten() {
        let cache: Cache<u32> = Cache::new(1 << 20);
        assert_eq!(cache.get_or_load("alice", |_| 10, load(1)), Ok(1));
        assert_eq!(cache.get_or_load("alice", |_| 10, || Err(())), Ok(1), "from memory");
        cache.forget("alice");
        assert_eq!(cache.get_or_load("alice", |_| 10, load(2)), Ok(2), "read again");
        assert_eq!(cache.get_or_load("alice", |_| 10, || Err(())), Ok(2));
    }

    #[test]
    fn a_read_that_raced_a_write_is_not_kept() {
        let cache: Cache<u32> = Cache::new(1 << 20);
        let stale = cache.get_or_load(
            "alice",
            |_| 10,
            || {
                cache.forget("alice"); // a writer changed the store while we read it
                Ok::<_, ()>(1)
            },
        );
        assert_eq!(stale, Ok(1));
        assert!(!cache.holds("alice"));
    }

    #[test]
    fn memory_stays_within_the_budget() {
        let budget = 16 * 4096;
        let cache: Cache<u32> = Cache::new(budget);
        for i in 0..10_000 {
            let key = format!("user{i}@example.org");
            assert_eq!(cache.get_or_load(&key, |_| 1000, load(i)), Ok(i));
        }
        assert!(cache.bytes() <= budget, "{} > {budget}", cache.bytes());
        assert!(cache.bytes() > budget / 4, "it still holds something: {}", cache.bytes());
        let huge = cache.get_or_load("big@example.org", |_| budget, load(7));
        assert_eq!(huge, Ok(7));
        assert!(!cache.holds("big@example.org"), "larger than a shard: not kept");
    }
}
