//! SCRAM-SHA-1 and SCRAM-SHA-256 client side (RFC 5802, RFC 7677), sans-IO, without channel
//! binding (GS2 header `n,,`).
//!
//! The expensive step is `Hi()` (PBKDF2 with the server's iteration count, 4096 to 10000
//! typically): [`SaltCache`] remembers the salted password per (hash, password, salt,
//! iterations), so accounts that share a password *and* a salt cost one PBKDF2. Servers
//! usually draw a salt per account (stanzad, Prosody and ejabberd do), so a SCRAM login costs
//! the tool one PBKDF2 per account, far more CPU than the server spends on it.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Largest iteration count we agree to compute.
const MAX_ITERATIONS: u32 = 1_000_000;
/// Entries kept in the cache before it is emptied (bounded memory).
const CACHE_LIMIT: usize = 100_000;

/// The hash function of the mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlg {
    Sha1,
    Sha256,
}

impl HashAlg {
    fn h(self, data: &[u8]) -> Vec<u8> {
        match self {
            HashAlg::Sha1 => Sha1::digest(data).to_vec(),
            HashAlg::Sha256 => Sha256::digest(data).to_vec(),
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        // HMAC takes keys of any length: `new_from_slice` cannot fail.
        match self {
            HashAlg::Sha1 => match Hmac::<Sha1>::new_from_slice(key) {
                Ok(mac) => mac.chain_update(data).finalize().into_bytes().to_vec(),
                Err(_) => Vec::new(),
            },
            HashAlg::Sha256 => match Hmac::<Sha256>::new_from_slice(key) {
                Ok(mac) => mac.chain_update(data).finalize().into_bytes().to_vec(),
                Err(_) => Vec::new(),
            },
        }
    }

    /// Hi(password, salt, i): PBKDF2 with HMAC-H.
    fn hi(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            HashAlg::Sha1 => pbkdf2::pbkdf2_hmac_array::<Sha1, 20>(password, salt, iterations).to_vec(),
            HashAlg::Sha256 => pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password, salt, iterations).to_vec(),
        }
    }
}

type CacheKey = (HashAlg, String, Vec<u8>, u32);

/// Salted passwords already computed, shared by all logins of a run.
#[derive(Default)]
pub struct SaltCache {
    map: Mutex<HashMap<CacheKey, Arc<[u8]>>>,
    computed: AtomicU64,
    reused: AtomicU64,
}

impl SaltCache {
    /// The salted password, computed at most once per key (two racing logins may both compute).
    fn salted(&self, hash: HashAlg, password: &str, salt: &[u8], iterations: u32) -> Arc<[u8]> {
        let key = (hash, password.to_owned(), salt.to_vec(), iterations);
        if let Some(found) = self.map.lock().ok().and_then(|map| map.get(&key).cloned()) {
            self.reused.fetch_add(1, Ordering::Relaxed);
            return found;
        }
        let salted: Arc<[u8]> = hash.hi(password.as_bytes(), salt, iterations).into();
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

/// One SCRAM exchange, client side.
pub struct ScramClient {
    hash: HashAlg,
    /// SASLprepped password.
    password: String,
    nonce: String,
    client_first_bare: String,
    /// ServerSignature expected in the server-final message.
    server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    /// Starts an exchange with a random 24-character nonce.
    pub fn new(hash: HashAlg, username: &str, password: &str) -> Result<Self, String> {
        let mut raw = [0u8; 18];
        rand::thread_rng().fill_bytes(&mut raw);
        Self::with_nonce(hash, username, password, &STANDARD.encode(raw))
    }

    /// Starts an exchange with a given nonce (tests replay RFC examples).
    pub fn with_nonce(hash: HashAlg, username: &str, password: &str, nonce: &str) -> Result<Self, String> {
        let user = stringprep::saslprep(username).map_err(|e| format!("username: {e}"))?;
        let password = stringprep::saslprep(password).map_err(|e| format!("password: {e}"))?.into_owned();
        let user = user.replace('=', "=3D").replace(',', "=2C");
        let client_first_bare = format!("n={user},r={nonce}");
        Ok(ScramClient { hash, password, nonce: nonce.to_owned(), client_first_bare, server_signature: None })
    }

    /// The client-first message (initial response of `<auth/>`).
    pub fn client_first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// Answers the server-first message with the client-final message.
    pub fn client_final(&mut self, server_first: &[u8], cache: &SaltCache) -> Result<String, String> {
        let text = std::str::from_utf8(server_first).map_err(|_| "server-first is not UTF-8".to_owned())?;
        let first = ServerFirst::parse(text)?;
        if !first.nonce.starts_with(&self.nonce) || first.nonce.len() <= self.nonce.len() {
            return Err("server nonce does not extend ours".into());
        }
        let salted = cache.salted(self.hash, &self.password, &first.salt, first.iterations);
        let without_proof = format!("c=biws,r={}", first.nonce);
        let auth_message = format!("{},{text},{without_proof}", self.client_first_bare);
        let client_key = self.hash.hmac(&salted, b"Client Key");
        let stored_key = self.hash.h(&client_key);
        let signature = self.hash.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(k, s)| k ^ s).collect();
        let server_key = self.hash.hmac(&salted, b"Server Key");
        self.server_signature = Some(self.hash.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", STANDARD.encode(proof)))
    }

    /// Checks the server-final message (`v=` must prove the server knows our keys).
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(server_final).map_err(|_| "server-final is not UTF-8".to_owned())?;
        if let Some(error) = text.strip_prefix("e=") {
            return Err(format!("server-final error {error}"));
        }
        let value = text.split(',').find_map(|a| a.strip_prefix("v=")).ok_or("server-final without v=")?;
        let got = STANDARD.decode(value).map_err(|_| "server-final v= is not base64".to_owned())?;
        match &self.server_signature {
            Some(expected) if *expected == got => Ok(()),
            Some(_) => Err("wrong server signature".into()),
            None => Err("server-final before server-first".into()),
        }
    }
}

/// The fields of a server-first message.
struct ServerFirst {
    nonce: String,
    salt: Vec<u8>,
    iterations: u32,
}

impl ServerFirst {
    fn parse(text: &str) -> Result<Self, String> {
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for attr in text.split(',') {
            match attr.split_at_checked(2) {
                Some(("m=", _)) => return Err("unsupported mandatory extension".into()),
                Some(("r=", v)) => nonce = Some(v.to_owned()),
                Some(("s=", v)) => salt = Some(STANDARD.decode(v).map_err(|_| "salt is not base64".to_owned())?),
                Some(("i=", v)) => iterations = Some(v.parse::<u32>().map_err(|_| "bad iteration count".to_owned())?),
                _ => {}
            }
        }
        let iterations = iterations.ok_or("no iteration count")?;
        if iterations == 0 || iterations > MAX_ITERATIONS {
            return Err(format!("iteration count {iterations} out of range"));
        }
        Ok(ServerFirst { nonce: nonce.ok_or("no nonce")?, salt: salt.ok_or("no salt")?, iterations })
    }
}

#[cfg(test)]
mod tests;
