//! The protocol's vocabulary: stanzas, their addresses, and the error conditions of
//! RFC 6120 §8.3 (stanza) that every layer above speaks.

pub mod error;
pub mod stanza;
