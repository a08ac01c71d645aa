//! What every connection shares: configuration, storage, the router, the login throttle.

use crate::config::Config;
use crate::router::dedup::Dedup;
use crate::router::Router;
use crate::storage::flusher::Flusher;
use crate::storage::Storage;
use crate::stream::revocation::{Revocations, KEPT_BEYOND_NEGOTIATION};
use crate::stream::throttle::AuthThrottle;
use std::sync::Arc;
use tokio::time::Instant;

pub struct ServerState {
    pub config: Config,
    pub store: Arc<dyn Storage>,
    pub router: Router,
    pub throttle: AuthThrottle,
    pub started: Instant,
    /// Serialises the subscription changes of each pair of accounts, which read and write
    /// both rosters (`router::subscription::lock_pair`); other pairs are not held up.
    pub subscription_locks: crate::stripes::Stripes<()>,
    /// Password key derivations (PLAIN) allowed at once: one per core.
    pub kdf_permits: tokio::sync::Semaphore,
    /// Makes writes durable before anyone is told they happened (group commit).
    pub flusher: Flusher,
    /// Recognises retransmitted messages.
    pub dedup: Dedup,
    /// Stream-managed sessions a client may resume (XEP-0198).
    pub resumptions: crate::stream::resume::Registry,
    /// Accounts whose password changed or that were deleted: their negotiating streams end.
    pub revocations: Revocations,
}

impl ServerState {
    pub fn new(config: Config, store: Arc<dyn Storage>) -> ServerState {
        let throttle = AuthThrottle::new(&config.auth);
        let negotiation = std::time::Duration::from_secs(config.timeouts.negotiation_secs);
        ServerState {
            dedup: Dedup::new(std::time::Duration::from_secs(config.limits.dedup_window_secs), config.limits.dedup_ids),
            config,
            router: Router::default(),
            throttle,
            started: Instant::now(),
            subscription_locks: crate::stripes::Stripes::new(64),
            kdf_permits: tokio::sync::Semaphore::new(cores()),
            flusher: Flusher::start(store.clone()),
            resumptions: Default::default(),
            revocations: Revocations::new(negotiation + KEPT_BEYOND_NEGOTIATION),
            store,
        }
    }

    /// A storage operation failed: an I/O error breaks the store (`storage/flusher.rs`), and
    /// the server stops rather than serve on it.
    pub fn storage_failed(&self, error: &crate::storage::StorageError) {
        self.flusher.report(error);
    }
}

/// A server state over a store in memory with the accounts `users` (password `pw`), for
/// unit tests.
#[cfg(test)]
pub(crate) fn with_accounts(users: &[&str]) -> Arc<ServerState> {
    use crate::storage::UserStore;
    let store = crate::storage::memory::MemoryStore::new();
    for user in users {
        let jid = xmpp_parsers::jid::BareJid::new(user).expect("jid");
        let creds = crate::sasl::credentials::StoredCredentials::derive("pw", 4096).expect("derive");
        store.create_user(&jid, &creds).expect("account");
    }
    Arc::new(ServerState::new(Config::default(), Arc::new(store)))
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}
