//! RFC 6121 §2.1.6 roster pushes: every session of an account that asked for its roster
//! learns each change. (The roster iq itself is answered by `modules::roster`.)

use super::state::ServerState;
use super::PushKind;
use crate::storage::roster::RosterItem;
use crate::xml::ns::ROSTER as NS;
use crate::xml::{el, Element, ElementExt};
use std::sync::Arc;
use xmpp_parsers::jid::BareJid;

/// The `<item/>` of a result or push.
pub fn item_element(item: &RosterItem) -> Element {
    let mut element = el("item", NS).with("jid", item.jid.as_str()).with("subscription", item.subscription.name());
    if let Some(name) = &item.name {
        element.set("name", name.as_str());
    }
    if item.ask {
        element.set("ask", "subscribe");
    }
    if item.approved {
        element.set("approved", "true");
    }
    for group in &item.groups {
        element.append_child(el("group", NS).with_text(group.as_str()));
    }
    element
}

/// §2.1.6: every session of the account that asked for the roster gets the change.
pub fn push_item(state: &ServerState, owner: &BareJid, item: &RosterItem, version: u64) {
    push(state, owner, item_element(item), version);
}

/// §2.5: `contact` left `owner`'s roster.
pub fn push_removal(state: &ServerState, owner: &BareJid, contact: &BareJid, version: u64) {
    push(state, owner, el("item", NS).with("jid", contact.as_str()).with("subscription", "remove"), version);
}

fn push(state: &ServerState, owner: &BareJid, item: Element, version: u64) {
    let query = Arc::new(el("query", NS).with("ver", version.to_string()).with_child(item));
    for resource in state.registry.resources(owner) {
        state.registry.push(&resource, PushKind::Roster, query.clone());
    }
}
