//! One client connection: negotiation (TLS, SASL, bind) and then the session loop.

pub mod admission;
pub mod durability;
pub mod error;
pub mod features;
pub mod header;
pub mod link;
pub mod negotiate;
pub mod rate;
pub mod registration;
pub mod resume;
pub mod session;
pub mod session_task;
pub mod throttle;
pub mod wire;

use std::sync::Arc;

/// What client connections share beyond the core: the login throttle, the password key
/// derivations allowed at once, and the sessions a client may resume.
pub struct Shared {
    pub throttle: throttle::AuthThrottle,
    /// Password key derivations (PLAIN) allowed at once: one per core.
    pub kdf_permits: tokio::sync::Semaphore,
    /// Stream-managed sessions a client may resume (XEP-0198).
    pub resumptions: Arc<resume::Registry>,
}

impl Shared {
    pub fn new(config: &crate::config::Config) -> Shared {
        Shared {
            throttle: throttle::AuthThrottle::new(&config.auth),
            kdf_permits: tokio::sync::Semaphore::new(cores()),
            resumptions: Default::default(),
        }
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}
