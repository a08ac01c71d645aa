//! The roster protocol (RFC 6121 §2) with versioning (XEP-0237, RFC 6121 §2.6).

use super::{storage_fault, Request};
use crate::core::module::{one_reply, Delivering, Hook, Module, Registrar, Slots, Targets, Types};
use crate::core::roster::{item_element, push_item, push_removal};
use crate::core::subscription;
use crate::core::Delivery;
use crate::storage::roster::RosterItem;
use crate::storage::StorageError;
use crate::xml::ns;
use crate::xml::{el, Element, ElementExt};
use crate::xmpp::error::Condition;
use std::collections::HashSet;
use std::sync::Arc;
use xmpp_parsers::jid::BareJid;

pub use crate::xml::ns::ROSTER as NS;
/// Longest item name or group name we store (RFC 6121 §2.3.3 lets a server refuse more).
const MAX_TEXT: usize = 1024;
/// Most groups on one item.
const MAX_GROUPS: usize = 64;

pub async fn handle(request: &Request<'_>) -> Element {
    let outcome = match request.own_account() {
        Ok(owner) if request.is_get() => get(request, owner).await,
        Ok(owner) => set(request, owner).await,
        Err(condition) => Err(condition),
    };
    outcome.unwrap_or_else(|condition| request.error(condition))
}

/// §2.2 and §2.6.3: the whole roster, or an empty result when the client is current.
async fn get(request: &Request<'_>, owner: &BareJid) -> Result<Element, Condition> {
    let roster = request.state.store.roster(owner).await.map_err(storage_fault)?;
    let version = roster.version.to_string();
    if request.payload.attr("ver") == Some(version.as_str()) {
        return Ok(request.result());
    }
    let mut query = el("query", NS).with("ver", version);
    for item in &roster.items {
        query.append_child(item_element(item));
    }
    Ok(request.result_with(query))
}

/// §2.3 and §2.5: add or update one item, or remove it.
async fn set(request: &Request<'_>, owner: &BareJid) -> Result<Element, Condition> {
    let mut items = request.payload.children();
    let (Some(item), None) = (items.next(), items.next()) else { return Err(Condition::BadRequest) };
    if !item.is("item", NS) {
        return Err(Condition::BadRequest);
    }
    let contact = item.attr("jid").ok_or(Condition::BadRequest)?;
    let contact = match crate::xmpp::stanza::parse_address(contact) {
        Ok(jid) if jid.resource().is_none() => jid.to_bare(),
        _ => return Err(Condition::JidMalformed),
    };
    if item.attr("subscription") == Some("remove") {
        return remove(request, owner, &contact).await;
    }
    let (name, groups) = parse_details(item)?;
    let state = request.state;
    // Subscription changes write the same item: never interleave with them.
    let _pair = subscription::lock_pair(state, owner, &contact).await;
    let existing = state.store.roster_item(owner, &contact).await.map_err(storage_fault)?;
    // §2.1.2.5: the client cannot set subscription states; only name and groups change.
    let mut updated = existing.unwrap_or_else(|| RosterItem::new(&contact));
    updated.name = name;
    updated.groups = groups;
    // Within `limits.max_roster_items` and `max_roster_bytes`, checked as it is written.
    let quota = state.config.limits.roster_quota();
    let version = state.store.put_roster_item(owner, &updated, quota).await.map_err(|e| match e {
        StorageError::QuotaExceeded(_) => Condition::ResourceConstraint,
        e => storage_fault(e),
    })?;
    push_item(state, owner, &updated, version);
    Ok(request.result())
}

/// §2.3.3: names and groups a server stores.
fn parse_details(item: &Element) -> Result<(Option<String>, Vec<String>), Condition> {
    let name = item.attr("name").filter(|n| !n.is_empty()).map(str::to_owned);
    if name.as_ref().is_some_and(|n| n.len() > MAX_TEXT) {
        return Err(Condition::NotAcceptable);
    }
    let mut groups = Vec::new();
    let mut seen = HashSet::new();
    for group in item.children().filter(|c| c.is("group", NS)) {
        let group = group.text();
        if group.is_empty() || group.len() > MAX_TEXT {
            return Err(Condition::NotAcceptable);
        }
        if !seen.insert(group.clone()) {
            return Err(Condition::BadRequest);
        }
        groups.push(group);
    }
    if groups.len() > MAX_GROUPS {
        return Err(Condition::NotAcceptable);
    }
    Ok((name, groups))
}

/// §2.5.2: removal also ends both directions of the subscription.
async fn remove(request: &Request<'_>, owner: &BareJid, contact: &BareJid) -> Result<Element, Condition> {
    let state = request.state;
    let pair = subscription::lock_pair(state, owner, contact).await;
    let item = state.store.roster_item(owner, contact).await.map_err(storage_fault)?.ok_or(Condition::ItemNotFound)?;
    let pending_in = state.store.pending_request(owner, contact).await.map_err(storage_fault)?.is_some();
    let before = subscription::State { subscription: item.subscription, pending_out: item.ask, pending_in };
    if let Some(version) = state.store.remove_roster_item(owner, contact).await.map_err(storage_fault)? {
        push_removal(state, owner, contact, version);
    }
    subscription::roster_removed(state, &pair, owner, contact, before).await.map_err(storage_fault)?;
    Ok(request.result())
}

pub struct Roster {
    /// RFC 6121 §2.1.6: pushes go to the sessions that requested the roster.
    pushes: super::PushInterest,
}

impl Default for Roster {
    fn default() -> Roster {
        Roster { pushes: super::PushInterest::new(crate::core::PushKind::Roster) }
    }
}

impl Module for Roster {
    fn name(&self) -> &'static str {
        "RFC 6121 roster"
    }

    fn register(self: Arc<Self>, api: &mut Registrar) {
        let fetched = self.pushes.register(api);
        api.iq(Some("query"), NS, Types::GetAndSet, Targets::ACCOUNT, move |r| {
            super::PushInterest::fetched(fetched, r);
            r.later(|r| one_reply(handle(r)))
        });
        api.hook(Hook::Delivering);
        // RFC 6121 §2.6.1: roster versioning; §3.4: subscription pre-approval.
        api.stream_feature(&format!("<ver xmlns='{}'/><sub xmlns='{}'/>", ns::ROSTER_VERSIONING, ns::PRE_APPROVAL));
    }

    fn delivering(&self, delivery: &Delivery, slots: &mut Slots) -> Delivering {
        self.pushes.delivering(delivery, slots)
    }
}
