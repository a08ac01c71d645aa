//! stanzad: an XMPP server. See docs/architecture.md for the module map.

pub mod admin;
pub mod cli;
pub mod config;
pub mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod modules;
pub mod router;
pub mod sasl;
pub mod server;
pub mod stanza;
pub mod state;
pub mod storage;
pub mod stream;
pub mod stripes;
pub mod tls;
pub mod xml;
