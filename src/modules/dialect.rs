//! The opt-in dialect (docs/dialect.md, schemas/dialect.xsd): a session sends
//! `<enable xmlns='urn:stanzad:dialect:0'/>` after binding and is answered `<enabled/>`;
//! from then on it gets the dialect's extra attributes and elements. Sessions that did not
//! enable it never see any of them.

use crate::xml::{Element, ElementExt};

pub const NS: &str = "urn:stanzad:dialect:0";

/// The last-seen attribute on unavailable presence: Unix seconds.
pub const LAST: &str = "last";

/// The server-time attribute on ping results: Unix seconds.
pub const TIME: &str = "t";

/// A copy of an unavailable presence carrying `last`.
pub fn with_last(presence: &Element, unix_seconds: u64) -> Element {
    let mut copy = presence.clone();
    copy.set(LAST, unix_seconds.to_string());
    copy
}

/// `<ib from='domain'><offline count='N'/></ib>`: how many messages wait (docs/dialect.md).
pub fn offline_count(domain: &str, count: u64) -> Element {
    crate::xml::el("ib", NS)
        .with("from", domain)
        .with_child(crate::xml::el("offline", NS).with("count", count.to_string()))
}

/// `<ack id='..' t='..'/>`: the server took the message with this id (the "sent" tick).
pub fn sent_ack(id: &str, unix_seconds: u64) -> Element {
    crate::xml::el("ack", NS).with("id", id).with(TIME, unix_seconds.to_string())
}
