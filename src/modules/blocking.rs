//! XEP-0191 blocking: a block list per account; nothing passes between a user and
//! the JIDs it blocked, in either direction.

use super::{storage_fault, Request};
use crate::core::module::{one_reply, Delivering, Hook, Module, Registrar, Scope, Slots, Targets, Types};
use crate::core::state::ServerState;
use crate::core::{presence, Delivery, PushKind};
use crate::storage::roster::ListQuota;
use crate::storage::StorageError;
use crate::xml::{el, Element, ElementExt};
use crate::xmpp::error::Condition;
use std::sync::Arc;
use xmpp_parsers::jid::{BareJid, Jid};

pub use crate::xml::ns::BLOCKING as NS;
/// Most items in one block list (and `limits.max_blocklist_bytes` of them).
const MAX_ITEMS: usize = 10_000;

pub async fn handle(request: &Request<'_>) -> Element {
    use xmpp_parsers::blocking::{Block, BlocklistRequest, Unblock};
    let owner = match request.own_account() {
        Ok(owner) => owner,
        Err(condition) => return request.error(condition),
    };
    let outcome = match (request.payload.name(), request.is_get()) {
        ("blocklist", true) => match request.parse::<BlocklistRequest>() {
            Ok(_) => list(request, owner).await,
            Err(condition) => Err(condition),
        },
        ("block", false) => match request.parse::<Block>() {
            Ok(block) => change(request, owner, block.items, true).await,
            Err(condition) => Err(condition),
        },
        ("unblock", false) => match request.parse::<Unblock>() {
            Ok(unblock) => change(request, owner, unblock.items, false).await,
            Err(condition) => Err(condition),
        },
        _ => Err(Condition::BadRequest),
    };
    outcome.unwrap_or_else(|condition| request.error(condition))
}

async fn list(request: &Request<'_>, owner: &BareJid) -> Result<Element, Condition> {
    let jids = request.state.store.blocklist(owner).await.map_err(storage_fault)?;
    Ok(request.result_with(items(el("blocklist", NS), &jids)))
}

fn items(mut container: Element, jids: &[String]) -> Element {
    for jid in jids {
        container.append_child(el("item", NS).with("jid", jid.as_str()));
    }
    container
}

/// §3.3 / §3.4: block or unblock, push the change to every resource, and fix presence.
async fn change(request: &Request<'_>, owner: &BareJid, targets: Vec<Jid>, block: bool) -> Result<Element, Condition> {
    // Stored as a form that parses again to itself (fuzz/jid: the jid crate's own form may not).
    let targets: Vec<Jid> = targets
        .iter()
        .map(|target| crate::xmpp::stanza::parse_address(target.as_str()))
        .collect::<Result<_, _>>()
        .map_err(|_| Condition::JidMalformed)?;
    let jids: Vec<String> = targets.iter().map(ToString::to_string).collect();
    if block && jids.is_empty() {
        return Err(Condition::BadRequest);
    }
    let state = request.state;
    let changed = if block {
        let quota = ListQuota { items: MAX_ITEMS, bytes: state.config.limits.max_blocklist_bytes };
        let added = state.store.block(owner, &jids, quota).await.map_err(|e| match e {
            StorageError::QuotaExceeded(_) => Condition::ResourceConstraint,
            e => storage_fault(e),
        })?;
        // Nothing passes any more; those who saw our presence see us go.
        for jid in &added {
            send_unavailable_to(state, owner, jid).await;
        }
        added
    } else {
        state.store.unblock(owner, &jids).await.map_err(storage_fault)?
    };
    let name = if block { "block" } else { "unblock" };
    // An empty unblock is "unblock all" and is pushed as such.
    let pushed = if !block && jids.is_empty() { Vec::new() } else { changed.clone() };
    if !changed.is_empty() {
        push(state, owner, items(el(name, NS), &pushed));
    }
    if !block {
        for jid in &changed {
            presence_after_unblock(state, owner, jid).await;
        }
    }
    Ok(request.result())
}

/// Only a contact that was seeing our presence is told we went away (§3.3).
async fn send_unavailable_to(state: &ServerState, owner: &BareJid, jid: &str) {
    let Ok(contact) = BareJid::new(jid) else { return };
    if matches!(state.store.roster_item(owner, &contact).await, Ok(Some(item)) if item.subscription.has_from()) {
        presence::send_unavailable_of(state, owner, &contact);
    }
}

/// Subscribed contacts see our presence again.
async fn presence_after_unblock(state: &ServerState, owner: &BareJid, jid: &str) {
    let Ok(contact) = BareJid::new(jid) else { return };
    match state.store.roster_item(owner, &contact).await {
        Ok(Some(item)) if item.subscription.has_from() => presence::send_presence_of(state, owner, &contact).await,
        _ => {}
    }
}

/// §3.3: block and unblock are pushed to the account's sessions that fetched the list.
fn push(state: &ServerState, owner: &BareJid, payload: Element) {
    let payload = std::sync::Arc::new(payload);
    for resource in state.registry.resources(owner) {
        state.registry.push(&resource, PushKind::Blocklist, payload.clone());
    }
}

pub struct Blocking {
    /// XEP-0191 §3.3: pushes go to the sessions that requested the block list.
    pushes: super::PushInterest,
}

impl Default for Blocking {
    fn default() -> Blocking {
        Blocking { pushes: super::PushInterest::new(PushKind::Blocklist) }
    }
}

impl Module for Blocking {
    fn name(&self) -> &'static str {
        "XEP-0191"
    }

    fn register(self: Arc<Self>, api: &mut Registrar) {
        let fetched = self.pushes.register(api);
        api.iq(None, NS, Types::GetAndSet, Targets::ACCOUNT, move |r| {
            if r.payload.name() == "blocklist" {
                super::PushInterest::fetched(fetched, r);
            }
            r.later(|r| one_reply(handle(r)))
        });
        api.hook(Hook::Delivering);
        api.feature(Scope::Server, NS);
    }

    fn delivering(&self, delivery: &Delivery, slots: &mut Slots) -> Delivering {
        self.pushes.delivering(delivery, slots)
    }
}
