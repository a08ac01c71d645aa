//! Presence distribution (RFC 6121 §4): broadcast to subscribers, answers to probes, and
//! the presence side effects of subscription changes. Broadcast presence is serialised
//! once per contact and the same bytes go to each of that contact's resources.

use super::privacy;
use super::{Delivery, Resource};
use crate::core::module::Viewer;
use crate::core::state::ServerState;
use crate::storage::roster::RosterItem;
use crate::xml::{el, writer, Element, ElementExt, NS_CLIENT};
use std::sync::Arc;
use xmpp_parsers::jid::{BareJid, FullJid, Jid};

/// Contacts of `owner` whose items match `keep`; a storage fault is logged and yields none.
async fn contacts(state: &ServerState, owner: &BareJid, keep: impl Fn(&RosterItem) -> bool) -> Vec<BareJid> {
    match state.store.roster(owner).await {
        Ok(roster) => roster.items.iter().filter(|i| keep(i)).filter_map(|i| BareJid::new(&i.jid).ok()).collect(),
        Err(e) => {
            tracing::error!(error = %e, %owner, "reading the roster failed");
            Vec::new()
        }
    }
}

/// Hands `stanza` to each of `resources` as each sees it (the modules' `shown`),
/// serialised once per kind of viewer. `last_seen` is given when the stanza says the
/// account went offline (a dialect session is shown it, docs/dialect.md).
fn deliver_to(
    state: &ServerState,
    resources: impl IntoIterator<Item = Resource>,
    stanza: &Element,
    last_seen: Option<u64>,
) {
    // At most a few kinds of viewer: a short list beats a map.
    let mut shown: Vec<(Viewer, Arc<[u8]>)> = Vec::with_capacity(2);
    for resource in resources {
        let viewer = resource.viewer();
        let bytes = match shown.iter().find(|(v, _)| *v == viewer) {
            Some((_, bytes)) => bytes.clone(),
            None => {
                let last_seen = last_seen.filter(|_| viewer.sees_last_seen());
                let element = state.modules.shown(stanza, viewer, last_seen);
                let bytes: Arc<[u8]> = writer::to_bytes(element.as_ref().unwrap_or(stanza)).into();
                shown.push((viewer, bytes.clone()));
                bytes
            }
        };
        if state.registry.send(&resource, Delivery::Bytes(bytes)).is_err() {
            tracing::debug!(to = %resource.jid, "presence not delivered: queue full or session gone");
        }
    }
}

/// A copy of `stanza` to each available resource of `to` (subscription stanzas, §3).
pub fn deliver_to_available(state: &ServerState, to: &BareJid, stanza: &Element) {
    deliver_to(state, state.registry.available(to), stanza, went_offline(state, stanza));
}

/// The time the sender was last seen belongs on unavailable presence only when its
/// account has no available resource left (it went offline, not one device of several).
fn went_offline(state: &ServerState, stanza: &Element) -> Option<u64> {
    if stanza.name() != "presence" || stanza.attr("type") != Some("unavailable") {
        return None;
    }
    let from = xmpp_parsers::jid::Jid::new(stanza.attr("from")?).ok()?.to_bare();
    state.registry.available(&from).is_empty().then(unix_now)
}

/// `presence` (from one of `user`'s resources) to `contact`, unless blocking forbids it.
async fn send_to_contact(state: &ServerState, user: &FullJid, contact: &BareJid, presence: &Element) {
    if privacy::between(state, &user.to_bare(), contact).await {
        return;
    }
    let mut copy = presence.clone();
    copy.set("from", user.as_str());
    copy.set("to", contact.as_str());
    deliver_to_available(state, contact, &copy);
}

/// §4.2.2 / §4.4.2: a presence broadcast goes to every contact with a `from` or `both`
/// subscription, and to the user's own available resources and the sending session
/// (`sender`, a router session id; None when the server speaks for a session).
/// Returns the contacts it went to.
pub async fn broadcast(state: &ServerState, user: &FullJid, presence: &Element, sender: Option<u64>) -> Vec<BareJid> {
    let subscribers = to_subscribers(state, user, presence).await;
    let own = own_copy(user, presence);
    echo_to_own_resources(state, user, &own, |r| r.priority.is_some() || Some(r.id()) == sender);
    subscribers
}

/// §4.2.2 / §4.4.2 for the available presence of session `sender`: to the subscribers
/// and the user's other available resources. The session's own echo is returned, for it
/// to write itself ahead of whatever else its presence brings it (initial presence: the
/// echo, then the waiting requests, then the contacts' presence, in that order).
pub async fn broadcast_available(state: &ServerState, user: &FullJid, presence: &Element, sender: u64) -> Element {
    to_subscribers(state, user, presence).await;
    let own = own_copy(user, presence);
    echo_to_own_resources(state, user, &own, |r| r.priority.is_some() && r.id() != sender);
    own
}

/// `presence` to each contact with a `from` or `both` subscription; returns them.
async fn to_subscribers(state: &ServerState, user: &FullJid, presence: &Element) -> Vec<BareJid> {
    let subscribers = contacts(state, &user.to_bare(), |i| i.subscription.has_from()).await;
    for contact in &subscribers {
        send_to_contact(state, user, contact, presence).await;
    }
    subscribers
}

/// The copy of `presence` the user's own resources see: from the full JID, no `to`.
fn own_copy(user: &FullJid, presence: &Element) -> Element {
    let mut copy = presence.clone();
    copy.set("from", user.as_str());
    copy.unset("to");
    copy
}

/// §4.2.2: the user's own resources (those `keep` selects) see its presence; nothing is
/// serialised when there are none (a single session's update).
fn echo_to_own_resources(state: &ServerState, user: &FullJid, own: &Element, keep: impl Fn(&Resource) -> bool) {
    let mut resources = state.registry.resources(&user.to_bare());
    resources.retain(keep);
    if !resources.is_empty() {
        deliver_to(state, resources, own, None);
    }
}

/// §4.3.2: what a new session learns about the contacts it is subscribed to: each
/// available resource's last presence, or one unavailable presence for a contact offline
/// (with the contact's last-seen time, for a `viewer` that sees it); and then, as §4.2.2
/// has the user's server probe the user's own bare JID too, the last presence of each of
/// the account's other available resources. Each as `viewer` sees it.
pub async fn probe_answers(state: &ServerState, user: &FullJid, viewer: Viewer) -> Vec<Element> {
    let mut answers = contacts_presence(state, user, viewer).await;
    let to = Jid::from(user.clone());
    let others = state.registry.available_where(&user.to_bare(), &|r| r.jid != *user);
    answers.extend(others.iter().filter_map(|r| presence_of(r, &to)).map(|p| shown(state, p, viewer, None)));
    answers
}

fn shown(state: &ServerState, element: Element, viewer: Viewer, last_seen: Option<u64>) -> Element {
    state.modules.shown(&element, viewer, last_seen).unwrap_or(element)
}

/// The contacts' part of [`probe_answers`].
async fn contacts_presence(state: &ServerState, user: &FullJid, viewer: Viewer) -> Vec<Element> {
    let bare = user.to_bare();
    let mut answers = Vec::new();
    for contact in contacts(state, &bare, |i| i.subscription.has_to()).await {
        if privacy::between(state, &bare, &contact).await {
            continue;
        }
        let available = state.registry.available(&contact);
        if available.is_empty() {
            let unavailable = unavailable_from(&Jid::from(contact.clone()), &Jid::from(user.clone()));
            // Read only for a session that is told when a contact was last seen.
            let last = match viewer.sees_last_seen() {
                true => state.store.last_seen(&contact).await.ok().flatten(),
                false => None,
            };
            answers.push(shown(state, unavailable, viewer, last.map(|last| last.at)));
        }
        let to = Jid::from(user.clone());
        answers.extend(available.iter().filter_map(|r| presence_of(r, &to)).map(|p| shown(state, p, viewer, None)));
    }
    answers
}

fn presence_of(resource: &Resource, to: &Jid) -> Option<Element> {
    let mut presence = resource.presence.as_deref()?.clone();
    presence.set("from", resource.jid.as_str());
    presence.set("to", to.as_str());
    Some(presence)
}

fn unavailable_from(from: &Jid, to: &Jid) -> Element {
    el("presence", NS_CLIENT).with("type", "unavailable").with("from", from.as_str()).with("to", to.as_str())
}

/// §3.1.5: after an approval, the approver's current presence goes to the subscriber.
pub async fn send_presence_of(state: &ServerState, of: &BareJid, to: &BareJid) {
    if privacy::between(state, of, to).await {
        return;
    }
    for resource in state.registry.available(of) {
        if let Some(presence) = presence_of(&resource, &Jid::from(to.clone())) {
            deliver_to_available(state, to, &presence);
        }
    }
}

/// §3.2.2 / §3.3.3: a subscription ended: `to` sees `of`'s resources go unavailable.
pub fn send_unavailable_of(state: &ServerState, of: &BareJid, to: &BareJid) {
    for resource in state.registry.available(of) {
        let presence = unavailable_from(&Jid::from(resource.jid.clone()), &Jid::from(to.clone()));
        deliver_to_available(state, to, &presence);
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
