//! XEP-0280 message carbons: an account's other devices see the chat messages it sends
//! and receives. Copies go to the account's other available resources that enabled carbons;
//! messages marked `<private/>` (XEP-0280 §6) or `<no-copy/>` (XEP-0334) are not copied.

use crate::stanza::{Kind, MessageType, Stanza};
use crate::state::ServerState;
use crate::xml::{el, Element, ElementExt, NS_CLIENT};
use xmpp_parsers::jid::{BareJid, FullJid};

pub const NS: &str = "urn:xmpp:carbons:2";
pub const NS_FORWARD: &str = "urn:xmpp:forward:0";
pub const NS_HINTS: &str = "urn:xmpp:hints";

/// Whether a message is copied at all (XEP-0280 §6, §9: chat messages only).
fn eligible(stanza: &Stanza) -> bool {
    stanza.kind == Kind::Message(MessageType::Chat)
        && stanza.element.get_child("private", NS).is_none()
        && stanza.element.get_child("no-copy", NS_HINTS).is_none()
        && stanza.element.get_child("received", NS).is_none()
        && stanza.element.get_child("sent", NS).is_none()
}

/// `<message from='bare' to='copy recipient' type='chat'><{direction}><forwarded>…`
fn wrap(direction: &str, owner: &BareJid, to: &FullJid, original: &Element) -> Element {
    el("message", NS_CLIENT)
        .with("from", owner.as_str())
        .with("to", to.as_str())
        .with("type", "chat")
        .with_child(el(direction, NS).with_child(el("forwarded", NS_FORWARD).with_child(original.clone())))
}

fn copy_to(state: &ServerState, owner: &BareJid, direction: &str, stanza: &Stanza, skip: &[FullJid]) {
    let targets = state.router.available_where(owner, |r| r.carbons && !skip.contains(&r.jid));
    for resource in targets {
        // A standard session never sees the dialect, not even inside a copy.
        let original = match resource.dialect {
            false => crate::modules::dialect::for_standard(&stanza.element),
            true => None,
        };
        let original = original.as_ref().unwrap_or(&stanza.element);
        if resource.handle.deliver(&wrap(direction, owner, &resource.jid, original)).is_err() {
            tracing::debug!(to = %resource.jid, "carbon copy not delivered");
        }
    }
}

/// §5: a message our session sent goes, as `sent`, to our other carbon-enabled resources.
pub fn sent(state: &ServerState, sender: &FullJid, stanza: &Stanza) {
    if eligible(stanza) {
        copy_to(state, &sender.to_bare(), "sent", stanza, std::slice::from_ref(sender));
    }
}

/// §4: a message delivered to some of an account's resources goes, as `received`, to its
/// other carbon-enabled resources.
pub fn received(state: &ServerState, owner: &BareJid, stanza: &Stanza, delivered_to: &[FullJid]) {
    if eligible(stanza) {
        copy_to(state, owner, "received", stanza, delivered_to);
    }
}
