//! XEP-0030 service discovery. Only features that really work are listed.

use super::{blocking, last, ping, version, Request, Target};
use crate::error::Condition;
use crate::router::session::flexible;
use crate::xml::{el, Element, ElementExt};

pub const NS_INFO: &str = "http://jabber.org/protocol/disco#info";
pub const NS_ITEMS: &str = "http://jabber.org/protocol/disco#items";

/// What the server itself supports.
const SERVER_FEATURES: &[&str] =
    &[NS_INFO, NS_ITEMS, ping::NS, version::NS, last::NS, blocking::NS, flexible::NS, crate::router::carbons::NS];
/// What the server does on behalf of every account.
const ACCOUNT_FEATURES: &[&str] = &[NS_INFO, NS_ITEMS, ping::NS, last::NS];

pub fn info(request: &Request) -> Element {
    if !request.is_get() {
        return request.error(Condition::BadRequest);
    }
    match request.parse::<xmpp_parsers::disco::DiscoInfoQuery>() {
        Ok(query) if query.node.as_deref() == Some(flexible::NS) => return offline_info(request),
        Ok(query) if query.node.is_some() => return request.error(Condition::ItemNotFound),
        Ok(_) => {}
        Err(condition) => return request.error(condition),
    }
    let (category, kind, features) = match request.target {
        Target::Server(_) => ("server", "im", SERVER_FEATURES),
        Target::Account(_) => ("account", "registered", ACCOUNT_FEATURES),
    };
    let mut identity = el("identity", NS_INFO).with("category", category).with("type", kind);
    if category == "server" {
        identity.set("name", "stanzad");
    }
    let mut query = el("query", NS_INFO).with_child(identity);
    for feature in features {
        query.append_child(el("feature", NS_INFO).with("var", *feature));
    }
    // XEP-0313 §7 / XEP-0359 §6: the archive is its owner's alone, and only when it is on.
    if request.own_account().is_ok() && request.state.config.archive.enabled {
        for feature in [super::mam::NS, super::mam::NS_EXTENDED, super::mam::NS_SID] {
            query.append_child(el("feature", NS_INFO).with("var", feature));
        }
    }
    request.result_with(query)
}

pub fn items(request: &Request) -> Element {
    if !request.is_get() {
        return request.error(Condition::BadRequest);
    }
    match request.parse::<xmpp_parsers::disco::DiscoItemsQuery>() {
        Ok(query) if query.node.as_deref() == Some(flexible::NS) => offline_headers(request),
        Ok(query) if query.node.is_some() => request.error(Condition::ItemNotFound),
        Ok(_) => request.result_with(el("query", NS_ITEMS)),
        Err(condition) => request.error(condition),
    }
}

/// XEP-0013 §2.2: how many messages wait (only for the account itself).
fn offline_info(request: &Request) -> Element {
    let outcome = request.own_account().and_then(|owner| {
        let count = request.state.store.offline_count(owner).map_err(super::storage_fault)?;
        Ok(request.result_with(flexible::info(count)))
    });
    outcome.unwrap_or_else(|condition| request.error(condition))
}

/// XEP-0013 §2.3: one header per waiting message.
fn offline_headers(request: &Request) -> Element {
    let outcome = request.own_account().and_then(|owner| {
        let messages = crate::router::offline::deliverable(request.state, owner, flexible::HEADERS)
            .map_err(super::storage_fault)?;
        Ok(request.result_with(flexible::headers(owner.as_str(), &messages)))
    });
    outcome.unwrap_or_else(|condition| request.error(condition))
}
