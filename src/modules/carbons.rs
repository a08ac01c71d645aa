//! XEP-0280 message carbons: an account's other devices see the chat messages it sends
//! and receives. Copies go to the account's other available resources that enabled carbons;
//! messages marked `<private/>` (XEP-0280 §6) or `<no-copy/>` (XEP-0334) are not copied.

use crate::core::module::{Answer, Hook, Module, Registrar, Request, Scope, Soon, Targets, Types, Viewer};
use crate::core::state::ServerState;
use crate::xml::{el, Element, ElementExt, NS_CLIENT};
use crate::xmpp::error::Condition;
use crate::xmpp::stanza::{Kind, MessageType, Stanza};
use std::sync::Arc;
use xmpp_parsers::jid::{BareJid, FullJid, Jid};

pub use crate::xml::ns::CARBONS as NS;
pub use crate::xml::ns::FORWARD as NS_FORWARD;
pub use crate::xml::ns::HINTS as NS_HINTS;

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
    let targets = state.registry.available_where(owner, &|r| r.carbons && !skip.contains(&r.jid));
    for resource in targets {
        let copy = wrap(direction, owner, &resource.jid, &stanza.element);
        // As that session's client sees it (the modules' `shown`), the copied message too.
        let copy = state.modules.shown(&copy, resource.viewer(), None).unwrap_or(copy);
        if state.registry.deliver(&resource, &copy).is_err() {
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

pub struct Carbons;

impl Module for Carbons {
    fn name(&self) -> &'static str {
        "XEP-0280"
    }

    fn register(self: Arc<Self>, api: &mut Registrar) {
        api.iq(None, NS, Types::GetAndSet, Targets::ACCOUNT, toggle);
        api.feature(Scope::Server, NS);
        for hook in [Hook::Shown, Hook::MessageDelivered, Hook::MessageSent] {
            api.hook(hook);
        }
    }

    /// §8: the `<private/>` marker is for servers; the recipient does not get it.
    fn shown(&self, element: &Element, _viewer: Viewer, _last_seen: Option<u64>) -> Option<Element> {
        element.get_child("private", NS)?;
        let mut stripped = element.clone();
        while stripped.remove_child("private", NS).is_some() {}
        Some(stripped)
    }

    fn shows_stored_differently(&self, bytes: &[u8], _viewer: Viewer) -> bool {
        bytes.windows(NS.len()).any(|w| w == NS.as_bytes())
    }

    fn message_delivered(&self, state: &ServerState, owner: &BareJid, stanza: &Stanza, to: &[FullJid]) {
        received(state, owner, stanza, to);
    }

    fn message_sent<'a>(
        &'a self,
        state: &'a ServerState,
        sender: &'a FullJid,
        stanza: &'a Stanza,
        _to: &'a Jid,
    ) -> Soon<'a, crate::core::module::Handled> {
        sent(state, sender, stanza);
        Soon::ready(crate::core::module::Handled::default())
    }
}

/// §3: `<enable/>` and `<disable/>`, an iq set to the client's own account.
fn toggle(request: &mut Request) -> Answer {
    if request.own_account().is_err() {
        return request.error(Condition::ServiceUnavailable).into();
    }
    let enable = match (request.payload.name(), request.is_get()) {
        ("enable", false) => true,
        ("disable", false) => false,
        _ => return request.error(Condition::BadRequest).into(),
    };
    request.state.registry.set_carbons(request.sender, request.session, enable);
    request.result().into()
}
