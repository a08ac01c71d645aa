//! Storage behind small per-concern traits, so another backend can replace sled
//! without touching the router. Every backend must pass [`contract`]; the configuration
//! chooses one ([`Backend`], `[storage] backend`).

pub mod archive;
pub mod contract;
pub mod files;
pub mod flusher;
pub mod inflight;
pub mod later;
pub mod memory;
pub mod offline;
pub mod private;
pub mod reply;
pub mod roster;
pub mod sled;
pub mod vcard;

use crate::sasl::credentials::StoredCredentials;
pub use reply::{Reply, Soon};
use std::path::Path;
use std::sync::Arc;
use xmpp_parsers::jid::BareJid;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("storage backend: {0}")]
    Backend(String),
    /// The backend could not read or write its files (a full disk, say). With sled such an
    /// error is sticky: the store is broken until it is opened again (`flusher.rs`).
    #[error("storage I/O: {0}")]
    Io(String),
    #[error("quota of {0} reached")]
    QuotaExceeded(u64),
}

/// Everything the server keeps: one object implementing every per-concern trait.
pub trait Storage:
    UserStore
    + roster::RosterStore
    + roster::SubscriptionRequestStore
    + roster::LastSeenStore
    + roster::BlockStore
    + offline::OfflineStore
    + inflight::InflightStore
    + archive::ArchiveStore
    + vcard::VcardStore
    + private::PrivateStore
{
}
impl<T> Storage for T where
    T: UserStore
        + roster::RosterStore
        + roster::SubscriptionRequestStore
        + roster::LastSeenStore
        + roster::BlockStore
        + offline::OfflineStore
        + inflight::InflightStore
        + archive::ArchiveStore
        + vcard::VcardStore
        + private::PrivateStore
{
}

/// Accounts and their SCRAM credentials (never the password).
pub trait UserStore: Send + Sync {
    /// Creates an account; `AlreadyExists` if it is taken.
    fn create_user(&self, jid: &BareJid, creds: &StoredCredentials) -> Reply<'_, ()>;
    /// Replaces the credentials of an existing account; `NotFound` otherwise.
    fn set_credentials(&self, jid: &BareJid, creds: &StoredCredentials) -> Reply<'_, ()>;
    /// Deletes an account; `NotFound` if there was none.
    fn delete_user(&self, jid: &BareJid) -> Reply<'_, ()>;
    fn credentials(&self, jid: &BareJid) -> Reply<'_, Option<StoredCredentials>>;
    fn user_exists(&self, jid: &BareJid) -> Reply<'_, bool> {
        self.credentials(jid).map(|creds| creds.is_some())
    }
    /// Every account, sorted.
    fn list_users(&self) -> Reply<'_, Vec<BareJid>>;
    /// Makes every completed write durable.
    fn flush(&self) -> Reply<'_, ()>;
    /// Work the store puts off the acknowledgement path, run by the flusher after each
    /// group commit once its waiters are answered (the sled store writes archive tails
    /// out as chunks).
    fn maintain(&self) -> Reply<'_, ()> {
        Reply::ready(Ok(()))
    }
    /// Whether the store still takes writes (a cheap probe; the flusher runs it while a
    /// flush takes long).
    fn check(&self) -> Reply<'_, ()> {
        Reply::ready(Ok(()))
    }
}

/// Runs `work` (store calls that may block an embedded store for long: a flush, a scan)
/// on the blocking pool, where it waits for the store's answers, whatever the backend.
pub fn on_blocking_pool<T: Send + 'static>(
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    tokio::task::spawn_blocking(move || tokio::runtime::Handle::current().block_on(work))
}

/// Where the server keeps its data (`[storage] backend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// One sled database in the data directory (the default).
    Sled,
    /// Memory only: nothing survives the process.
    Memory,
}

impl Backend {
    /// Every backend's name, for messages.
    pub const NAMES: &'static str = "sled, memory";

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sled => "sled",
            Backend::Memory => "memory",
        }
    }

    /// Opens the store (sled's in `data_dir`).
    pub fn open(self, data_dir: &Path) -> Result<Arc<dyn Storage>, StorageError> {
        Ok(match self {
            Backend::Sled => Arc::new(sled::SledStore::open(data_dir)?),
            Backend::Memory => Arc::new(memory::MemoryStore::new()),
        })
    }
}

impl std::str::FromStr for Backend {
    type Err = ();

    fn from_str(s: &str) -> Result<Backend, ()> {
        match s {
            "sled" => Ok(Backend::Sled),
            "memory" => Ok(Backend::Memory),
            _ => Err(()),
        }
    }
}
