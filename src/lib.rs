//! stanzad: an XMPP server. See docs/architecture.md for the module map.

pub mod admin;
pub mod c2s;
pub mod cli;
pub mod config;
pub mod core;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod keyed;
pub mod modules;
pub mod sasl;
pub mod server;
pub mod storage;
pub mod stripes;
pub mod transport;
pub mod xml;
pub mod xmpp;
