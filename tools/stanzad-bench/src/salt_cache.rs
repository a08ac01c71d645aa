//! The expensive step of a SCRAM login is `Hi()` (PBKDF2 with the server's iteration
//! count, 4096 to 10000 typically): [`SaltCache`] remembers the salted password per (hash,
//! password, salt, iterations), so accounts that share a password *and* a salt cost one
//! PBKDF2. Servers usually draw a salt per account (stanzad, Prosody and ejabberd do), so
//! a SCRAM login costs the tool one PBKDF2 per account, far more CPU than the server
//! spends on it. The exchange itself is `stanzad::sasl::client`'s.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use stanzad::sasl::HashAlg;

/// Entries kept in the cache before it is emptied (bounded memory).
const CACHE_LIMIT: usize = 100_000;

type CacheKey = (HashAlg, String, Vec<u8>, u32);

/// Salted passwords already computed, shared by all logins of a run.
#[derive(Default)]
pub struct SaltCache {
    map: Mutex<HashMap<CacheKey, Arc<[u8]>>>,
    computed: AtomicU64,
    reused: AtomicU64,
}

impl SaltCache {
    /// The salted password, computed at most once per key (two racing logins may both
    /// compute): the callback of `ScramClient::client_final_with`.
    pub fn salted(&self, hash: HashAlg, password: &str, salt: &[u8], iterations: u32) -> Arc<[u8]> {
        let key = (hash, password.to_owned(), salt.to_vec(), iterations);
        if let Some(found) = self.map.lock().ok().and_then(|map| map.get(&key).cloned()) {
            self.reused.fetch_add(1, Ordering::Relaxed);
            return found;
        }
        let salted: Arc<[u8]> = hash.salted_password(password.as_bytes(), salt, iterations).into();
        self.computed.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= CACHE_LIMIT {
                map.clear();
            }
            map.insert(key, salted.clone());
        }
        salted
    }

    /// (PBKDF2 computations, cache hits).
    pub fn counts(&self) -> (u64, u64) {
        (self.computed.load(Ordering::Relaxed), self.reused.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests;
