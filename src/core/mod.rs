//! The core: RFC 6120/6121 and nothing else. The session registry, routing, presence,
//! subscriptions, and the state every connection shares. It never names a feature module,
//! the client-connection code or a transport (docs/architecture.md).

pub mod delivery;
pub mod held;
pub mod module;
pub mod offline;
pub mod presence;
pub mod privacy;
pub mod registry;
pub mod revocation;
pub mod roster;
pub mod route;
pub mod signal;
pub mod state;
pub mod subscription;

pub use registry::*;
