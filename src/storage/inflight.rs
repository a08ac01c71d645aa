//! Messages handed to a stream-managed session (XEP-0198) and not yet acknowledged by its
//! client. They are written here before the sender is told anything, removed when the
//! client acknowledges them, and moved to the owner's offline queue when the session ends
//! without that acknowledgement, or at the next start after a crash (docs/delivery.md).

use super::offline::Quota;
use super::StorageError;
use xmpp_parsers::jid::BareJid;

pub trait InflightStore: Send + Sync {
    /// Records a message for `owner`, stamped `stamp` (unix seconds); returns its key.
    /// In-flight messages count against the owner's offline quota (they move there if
    /// their session ends first): `QuotaExceeded` when this one would not fit.
    fn put_inflight(&self, owner: &BareJid, stamp: u64, stanza: &[u8], quota: Quota) -> Result<u64, StorageError>;
    /// Forgets acknowledged entries (those that exist).
    fn remove_inflight(&self, keys: &[u64]) -> Result<(), StorageError>;
    /// Moves the given entries to their owners' offline queues, in key order, each with
    /// its stamp; entries of accounts that no longer exist are only removed. They were
    /// counted against the quota when they were recorded, so they always fit. Returns the
    /// owners that got messages.
    fn inflight_to_offline(&self, keys: &[u64]) -> Result<Vec<BareJid>, StorageError>;
    /// Every key still recorded, oldest first (after a crash, all of them move).
    fn inflight_keys(&self) -> Result<Vec<u64>, StorageError>;
}

/// The stored form: the message with its XEP-0203 delay, as offline messages carry it.
pub fn with_delay(owner: &BareJid, stamp: u64, stanza: &[u8]) -> Vec<u8> {
    let Some(close) = stanza.windows(10).rposition(|w| w == b"</message>") else {
        // A message without children: `<message .../>`.
        let end = stanza.len().saturating_sub(2);
        let mut out = stanza[..end].to_vec();
        out.extend_from_slice(b">");
        out.extend_from_slice(delay(owner, stamp).as_bytes());
        out.extend_from_slice(b"</message>");
        return out;
    };
    let mut out = stanza[..close].to_vec();
    out.extend_from_slice(delay(owner, stamp).as_bytes());
    out.extend_from_slice(&stanza[close..]);
    out
}

fn delay(owner: &BareJid, stamp: u64) -> String {
    let stamp = crate::router::offline::xep0082(stamp);
    format!("<delay xmlns='{}' from='{}' stamp='{stamp}'/>", crate::router::offline::NS_DELAY, owner.domain())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_goes_inside_the_message() {
        let owner = BareJid::new("a@example.org").expect("jid");
        let out = with_delay(&owner, 0, b"<message to='a@example.org'><body>x</body></message>");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.starts_with("<message to='a@example.org'><body>x</body><delay "), "{text}");
        assert!(text.ends_with("stamp='1970-01-01T00:00:00Z'/></message>"), "{text}");
        let empty = String::from_utf8(with_delay(&owner, 0, b"<message to='a@example.org'/>")).expect("utf-8");
        assert!(empty.starts_with("<message to='a@example.org'><delay "), "{empty}");
        assert!(empty.ends_with("</message>"), "{empty}");
    }
}
