//! XEP-0352 client state indication: while a client says it is inactive (a phone in a
//! pocket), presence updates are held, only the latest per sender, and sent when it is
//! active again. Messages and everything else go at once.

use crate::xml::Element;

pub const NS: &str = "urn:xmpp:csi:0";

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

/// Most senders whose presence is held; beyond it everything held goes out at once, so
/// other users cannot grow a sleeping client's memory.
pub const MAX_HELD: usize = 1000;

/// Keeps only the latest presence of each sender, in the order senders last changed.
/// Returns what must go out now because the cap was reached.
pub fn hold(held: &mut Vec<(String, Vec<u8>)>, from: String, bytes: Vec<u8>) -> Vec<Vec<u8>> {
    held.retain(|(sender, _)| *sender != from);
    held.push((from, bytes));
    if held.len() > MAX_HELD {
        return std::mem::take(held).into_iter().map(|(_, b)| b).collect();
    }
    Vec::new()
}
