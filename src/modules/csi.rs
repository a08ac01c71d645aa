//! XEP-0352 client state indication: while a client says it is inactive (a phone in a
//! pocket), presence updates are held, only the latest per sender, and sent when it is
//! active again. Messages and everything else go at once.

use crate::core::module::{Module, Registrar};
use crate::xml::Element;
use std::sync::Arc;

pub use crate::xml::ns::CSI as NS;

/// The sender of an available or unavailable presence, which may be held; None for
/// anything else (subscription presence, messages, iq go at once).
pub fn held_presence_sender(bytes: &[u8]) -> Option<String> {
    if !bytes.starts_with(b"<presence") {
        return None;
    }
    let presence: Element = std::str::from_utf8(bytes).ok()?.parse().ok()?;
    match presence.attr("type") {
        None | Some("unavailable") => presence.attr("from").map(str::to_owned),
        _ => None,
    }
}

/// Most senders whose presence is held, and most bytes held; beyond either, everything
/// held goes out at once, so other users cannot grow a sleeping client's memory.
pub const MAX_HELD: usize = 1000;
pub const MAX_HELD_BYTES: usize = 1 << 20;

/// Keeps only the latest presence of each sender, in the order senders last changed.
/// Returns what must go out now because a cap was reached.
pub fn hold(held: &mut Vec<(String, Vec<u8>)>, from: String, bytes: Vec<u8>) -> Vec<Vec<u8>> {
    held.retain(|(sender, _)| *sender != from);
    held.push((from, bytes));
    if held.len() > MAX_HELD || held.iter().map(|(_, b)| b.len()).sum::<usize>() > MAX_HELD_BYTES {
        return std::mem::take(held).into_iter().map(|(_, b)| b).collect();
    }
    Vec::new()
}

/// The feature; what `<inactive/>` and `<active/>` change is the session's (it holds the
/// presence it is delivered).
pub struct ClientState;

impl Module for ClientState {
    fn name(&self) -> &'static str {
        "XEP-0352"
    }

    fn register(self: Arc<Self>, api: &mut Registrar) {
        api.stream_feature(&format!("<csi xmlns='{NS}'/>"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_per_sender_is_held_until_a_cap() {
        let mut held = Vec::new();
        assert!(hold(&mut held, "a".into(), b"1".to_vec()).is_empty());
        assert!(hold(&mut held, "a".into(), b"2".to_vec()).is_empty());
        assert_eq!(held, vec![("a".to_owned(), b"2".to_vec())], "only the latest");
        let big = vec![b'x'; 400 << 10];
        assert!(hold(&mut held, "b".into(), big.clone()).is_empty());
        assert!(hold(&mut held, "c".into(), big.clone()).is_empty());
        let released = hold(&mut held, "d".into(), big);
        assert_eq!(released.len(), 4, "over 1 MiB held: everything goes out");
        assert!(held.is_empty());
    }
}
