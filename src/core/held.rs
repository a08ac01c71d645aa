//! Presence held back from a session, the latest per sender (RFC 6121 §4.4.2: only a
//! contact's current presence matters): while its client is inactive (XEP-0352, the CSI
//! module) or its connection is gone and it waits for a resumption (XEP-0198, the
//! session). Held presence goes out in the order its senders last changed.

use crate::xml::Element;

/// Most senders whose presence is held, and most bytes held; beyond either, everything
/// held goes out at once, so other users cannot grow a sleeping client's memory.
pub const MAX_HELD: usize = 1000;
pub const MAX_HELD_BYTES: usize = 1 << 20;

#[derive(Debug, Default)]
pub struct Held(Vec<(String, Vec<u8>)>);

impl Held {
    /// The sender of an available or unavailable presence, which may be held; None for
    /// anything else (subscription presence, messages, iq go at once).
    pub fn sender(bytes: &[u8]) -> Option<String> {
        if !bytes.starts_with(b"<presence") {
            return None;
        }
        let presence: Element = std::str::from_utf8(bytes).ok()?.parse().ok()?;
        match presence.attr("type") {
            None | Some("unavailable") => presence.attr("from").map(str::to_owned),
            _ => None,
        }
    }

    /// Keeps `bytes` as the latest presence of `from`. Returns what must go out now
    /// because a cap was reached (everything held, this one included).
    pub fn hold(&mut self, from: String, bytes: Vec<u8>) -> Vec<Vec<u8>> {
        self.0.retain(|(sender, _)| *sender != from);
        self.0.push((from, bytes));
        if self.0.len() > MAX_HELD || self.0.iter().map(|(_, b)| b.len()).sum::<usize>() > MAX_HELD_BYTES {
            return self.take();
        }
        Vec::new()
    }

    /// Everything held, in order; nothing is held afterwards.
    pub fn take(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.0).into_iter().map(|(_, bytes)| bytes).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_per_sender_is_held_until_a_cap() {
        let mut held = Held::default();
        assert!(held.hold("a".into(), b"1".to_vec()).is_empty());
        assert!(held.hold("a".into(), b"2".to_vec()).is_empty());
        assert_eq!(held.0, vec![("a".to_owned(), b"2".to_vec())], "only the latest");
        let big = vec![b'x'; 400 << 10];
        assert!(held.hold("b".into(), big.clone()).is_empty());
        assert!(held.hold("c".into(), big.clone()).is_empty());
        let released = held.hold("d".into(), big);
        assert_eq!(released.len(), 4, "over 1 MiB held: everything goes out");
        assert!(held.is_empty());
    }

    #[test]
    fn only_availability_presence_is_held() {
        let from = |xml: &str| Held::sender(xml.as_bytes());
        assert_eq!(from("<presence xmlns='jabber:client' from='a@x/r'/>"), Some("a@x/r".into()));
        assert_eq!(from("<presence xmlns='jabber:client' from='a@x/r' type='unavailable'/>"), Some("a@x/r".into()));
        assert_eq!(from("<presence xmlns='jabber:client' from='a@x' type='subscribe'/>"), None);
        assert_eq!(from("<message xmlns='jabber:client' from='a@x/r'/>"), None);
    }
}
