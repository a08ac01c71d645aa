//! What every connection shares: configuration, storage, the session registry, the
//! registered modules.

use super::module::Modules;
use super::revocation::{Revocations, KEPT_BEYOND_NEGOTIATION};
use super::{LocalRegistry, Registry};
use crate::config::Config;
use crate::storage::flusher::Flusher;
use crate::storage::Storage;
use std::sync::{Arc, Weak};
use tokio::time::Instant;

pub struct ServerState {
    pub config: Config,
    pub store: Arc<dyn Storage>,
    /// The session registry: every send to a session goes through it.
    pub registry: Box<dyn Registry>,
    /// The feature modules, with what they registered.
    pub modules: Modules,
    pub started: Instant,
    /// Serialises the subscription changes of each pair of accounts, which read and write
    /// both rosters (`core::subscription::lock_pair`); other pairs are not held up.
    pub subscription_locks: crate::stripes::AsyncStripes,
    /// Makes writes durable before anyone is told they happened (group commit).
    pub flusher: Flusher,
    /// Accounts whose password changed or that were deleted: their negotiating streams end.
    pub revocations: Revocations,
    /// This state's own `Arc`, for work that outlives a borrow (an iq answered later).
    me: Weak<ServerState>,
}

impl ServerState {
    pub fn new(config: Config, store: Arc<dyn Storage>, modules: Modules) -> Arc<ServerState> {
        let negotiation = std::time::Duration::from_secs(config.timeouts.negotiation_secs);
        Arc::new_cyclic(|me| ServerState {
            config,
            registry: Box::new(LocalRegistry::default()),
            modules,
            started: Instant::now(),
            subscription_locks: crate::stripes::AsyncStripes::new(64),
            flusher: Flusher::start(store.clone()),
            revocations: Revocations::new(negotiation + KEPT_BEYOND_NEGOTIATION),
            store,
            me: me.clone(),
        })
    }

    /// A shared handle on this state (for a future that outlives the caller's borrow).
    pub fn shared(&self) -> Option<Arc<ServerState>> {
        self.me.upgrade()
    }

    /// A storage operation failed: an I/O error breaks the store (`storage/flusher.rs`), and
    /// the server stops rather than serve on it.
    pub fn storage_failed(&self, error: &crate::storage::StorageError) {
        self.flusher.report(error);
    }
}

/// A server state over a store in memory with the accounts `users` (password `pw`) and no
/// feature modules, for unit tests of the core.
#[cfg(test)]
pub(crate) fn with_accounts(users: &[&str]) -> Arc<ServerState> {
    with_accounts_and(users, Config::default(), Modules::default())
}

/// The same with a configuration and modules of the test's choosing.
#[cfg(test)]
pub(crate) fn with_accounts_and(users: &[&str], config: Config, modules: Modules) -> Arc<ServerState> {
    use crate::storage::UserStore;
    let store = crate::storage::memory::MemoryStore::new();
    for user in users {
        let jid = xmpp_parsers::jid::BareJid::new(user).expect("jid");
        let creds = crate::sasl::credentials::StoredCredentials::derive("pw", 4096).expect("derive");
        store.create_user(&jid, &creds).at_once().expect("account");
    }
    ServerState::new(config, Arc::new(store), modules)
}
