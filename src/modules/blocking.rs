//! XEP-0191 blocking: a block list per account; nothing passes between a user and
//! the JIDs it blocked, in either direction.

use super::{storage_fault, Request};
use crate::error::Condition;
use crate::router::{presence, PushKind};
use crate::state::ServerState;
use crate::storage::roster::{BlockList, ListQuota};
use crate::storage::StorageError;
use crate::xml::{el, Element, ElementExt};
use xmpp_parsers::jid::{BareJid, Jid};

pub const NS: &str = "urn:xmpp:blocking";
pub const NS_ERRORS: &str = "urn:xmpp:blocking:errors";
/// Most items in one block list (and `limits.max_blocklist_bytes` of them).
const MAX_ITEMS: usize = 10_000;

/// Whether `owner` blocked `other`. Asked for every stanza to or from `owner`: the store
/// answers from memory, and nothing is allocated.
pub fn blocks(state: &ServerState, owner: &BareJid, other: &Jid) -> bool {
    match state.store.blocked(owner) {
        Ok(Some(list)) => on_list(&list, other),
        Ok(None) => false,
        Err(e) => {
            tracing::error!(error = %e, "reading the block list failed");
            false
        }
    }
}

/// §3.1 (the matching of XEP-0016 §2.1): a listed JID matches itself; a listed bare JID
/// any of its resources; a listed domain every JID there; `domain/resource` that resource
/// of the domain, whatever the user.
pub fn on_list(list: &BlockList, other: &Jid) -> bool {
    let full = other.as_str();
    // A localpart and a domain hold neither '/' nor '@' (RFC 7622): the bare JID ends at
    // the first '/', and after the first '@' of a full JID comes "domain/resource".
    let bare = full.split_once('/').map_or(full, |(bare, _)| bare);
    let domain_resource = match (other.node(), other.resource()) {
        (Some(_), Some(_)) => full.split_once('@').map(|(_, rest)| rest),
        _ => None,
    };
    list.contains(full)
        || list.contains(bare)
        || list.contains(other.domain().as_str())
        || domain_resource.is_some_and(|jid| list.contains(jid))
}

/// Whether either account blocked the other.
pub fn between(state: &ServerState, a: &BareJid, b: &BareJid) -> bool {
    blocks(state, a, &Jid::from(b.clone())) || blocks(state, b, &Jid::from(a.clone()))
}

/// §3.6: the error for a stanza a user sends to someone they blocked.
pub fn blocked_error() -> crate::error::StanzaError {
    crate::error::StanzaError::new(Condition::NotAcceptable)
}

/// The `<blocked/>` application condition that goes with [`blocked_error`].
pub fn blocked_condition() -> Element {
    el("blocked", NS_ERRORS)
}

pub fn handle(request: &Request) -> Element {
    use xmpp_parsers::blocking::{Block, BlocklistRequest, Unblock};
    let owner = match request.own_account() {
        Ok(owner) => owner,
        Err(condition) => return request.error(condition),
    };
    let outcome = match (request.payload.name(), request.is_get()) {
        ("blocklist", true) => request.parse::<BlocklistRequest>().and_then(|_| list(request, owner)),
        ("block", false) => request.parse::<Block>().and_then(|b| change(request, owner, b.items, true)),
        ("unblock", false) => request.parse::<Unblock>().and_then(|u| change(request, owner, u.items, false)),
        _ => Err(Condition::BadRequest),
    };
    outcome.unwrap_or_else(|condition| request.error(condition))
}

fn list(request: &Request, owner: &BareJid) -> Result<Element, Condition> {
    let jids = request.state.store.blocklist(owner).map_err(storage_fault)?;
    Ok(request.result_with(items(el("blocklist", NS), &jids)))
}

fn items(mut container: Element, jids: &[String]) -> Element {
    for jid in jids {
        container.append_child(el("item", NS).with("jid", jid.as_str()));
    }
    container
}

/// §3.3 / §3.4: block or unblock, push the change to every resource, and fix presence.
fn change(request: &Request, owner: &BareJid, targets: Vec<Jid>, block: bool) -> Result<Element, Condition> {
    // Stored as a form that parses again to itself (fuzz/jid: the jid crate's own form may not).
    let targets: Vec<Jid> = targets
        .iter()
        .map(|target| crate::stanza::parse_address(target.as_str()))
        .collect::<Result<_, _>>()
        .map_err(|_| Condition::JidMalformed)?;
    let jids: Vec<String> = targets.iter().map(ToString::to_string).collect();
    if block && jids.is_empty() {
        return Err(Condition::BadRequest);
    }
    let state = request.state;
    let changed = if block {
        let quota = ListQuota { items: MAX_ITEMS, bytes: state.config.limits.max_blocklist_bytes };
        let added = state.store.block(owner, &jids, quota).map_err(|e| match e {
            StorageError::QuotaExceeded(_) => Condition::ResourceConstraint,
            e => storage_fault(e),
        })?;
        // Nothing passes any more; those who saw our presence see us go.
        for jid in &added {
            send_unavailable_to(state, owner, jid);
        }
        added
    } else {
        state.store.unblock(owner, &jids).map_err(storage_fault)?
    };
    let name = if block { "block" } else { "unblock" };
    // An empty unblock is "unblock all" and is pushed as such.
    let pushed = if !block && jids.is_empty() { Vec::new() } else { changed.clone() };
    if !changed.is_empty() {
        push(state, owner, items(el(name, NS), &pushed));
    }
    if !block {
        for jid in &changed {
            presence_after_unblock(state, owner, jid);
        }
    }
    Ok(request.result())
}

/// Only a contact that was seeing our presence is told we went away (§3.3).
fn send_unavailable_to(state: &ServerState, owner: &BareJid, jid: &str) {
    let Ok(contact) = BareJid::new(jid) else { return };
    if matches!(state.store.roster_item(owner, &contact), Ok(Some(item)) if item.subscription.has_from()) {
        presence::send_unavailable_of(state, owner, &contact);
    }
}

/// Subscribed contacts see our presence again.
fn presence_after_unblock(state: &ServerState, owner: &BareJid, jid: &str) {
    let Ok(contact) = BareJid::new(jid) else { return };
    match state.store.roster_item(owner, &contact) {
        Ok(Some(item)) if item.subscription.has_from() => presence::send_presence_of(state, owner, &contact),
        _ => {}
    }
}

/// §3.3: block and unblock are pushed to the account's sessions that fetched the list.
fn push(state: &ServerState, owner: &BareJid, payload: Element) {
    let payload = std::sync::Arc::new(payload);
    for resource in state.router.resources(owner) {
        resource.handle.push(PushKind::Blocklist, payload.clone());
    }
}

/// A block list get (the session then wants pushes).
pub fn is_get(stanza: &crate::stanza::Stanza) -> bool {
    stanza.kind == crate::stanza::Kind::Iq(crate::stanza::IqType::Get)
        && stanza.element.children().next().is_some_and(|c| c.is("blocklist", NS))
}
