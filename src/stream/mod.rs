//! One client connection: negotiation (TLS, SASL, bind) and then the session loop.

pub mod admission;
pub mod connection;
pub mod durability;
pub mod error;
pub mod features;
pub mod header;
pub mod link;
pub mod negotiate;
pub mod rate;
pub mod registration;
pub mod resume;
pub mod revocation;
pub mod session_task;
pub mod throttle;
pub mod transport;
pub mod wire;
