//! XEP-0191 §3.5/§3.6 as policy: nothing passes between a user and the JIDs it blocked,
//! in either direction. The core asks this for every stanza it routes; the block list
//! itself is managed by `modules::blocking`.

use super::state::ServerState;
use crate::storage::roster::BlockList;
use crate::xml::ns;
use crate::xml::{el, Element};
use crate::xmpp::error::{Condition, StanzaError};
use xmpp_parsers::jid::{BareJid, Jid};

/// Whether `owner` blocked `other`. Asked for every stanza to or from `owner`: sled and
/// memory answer from memory at once, and nothing is allocated.
pub async fn blocks(state: &ServerState, owner: &BareJid, other: &Jid) -> bool {
    match state.store.blocked(owner).await {
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
pub async fn between(state: &ServerState, a: &BareJid, b: &BareJid) -> bool {
    blocks(state, a, &Jid::from(b.clone())).await || blocks(state, b, &Jid::from(a.clone())).await
}

/// §3.6: the error for a stanza a user sends to someone they blocked.
pub fn blocked_error() -> StanzaError {
    StanzaError::new(Condition::NotAcceptable)
}

/// The `<blocked/>` application condition that goes with [`blocked_error`].
pub fn blocked_condition() -> Element {
    el("blocked", ns::BLOCKING_ERRORS)
}
