//! RFC 6121 §8.5: where a stanza addressed to a local account goes.
//! The caller has stamped `from`, and handled what the server answers itself.

use super::offline::quota;
use super::route::{destination, Destination};
use super::{DeliveryError, Resource};
use crate::core::state::ServerState;
use crate::storage::StorageError;
use crate::xmpp::error::{Condition, StanzaError};
use crate::xmpp::stanza::{IqType, Kind, MessageType, PresenceType, Stanza};
use xmpp_parsers::jid::{BareJid, Jid};

/// Where a routed stanza went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routed {
    /// Handed to session(s), or dropped where the rules say so.
    Delivered,
    /// Kept in storage (offline, in flight): nothing more is written to the sender until it is durable.
    Stored,
}

/// What happened to a routed stanza.
pub type Outcome = Result<Routed, StanzaError>;

fn err(condition: Condition) -> Outcome {
    Err(StanzaError::new(condition))
}

/// Routes a stanza with a `to` that is not the server itself.
pub async fn route(state: &ServerState, stanza: &Stanza, to: &Jid) -> Outcome {
    let bare = match destination(state, to) {
        Destination::Account(bare) => bare,
        Destination::Service(domain) => return to_service(state, stanza, &domain).await,
        // No server-to-server yet (RFC 6120 §10.4.3).
        Destination::Remote(_) => return drop_responses(stanza, Condition::RemoteServerNotFound),
    };
    if !account_exists(state, &bare).await? {
        return unknown_account(stanza);
    }
    // XEP-0191 §3.5: a blocked sender learns nothing but service-unavailable.
    let blocked = match &stanza.from {
        Some(from) => crate::core::privacy::blocks(state, &bare, from).await,
        None => false,
    };
    if blocked {
        return match stanza.kind {
            Kind::Presence(_) => Ok(Routed::Delivered),
            _ => unknown_account(stanza),
        };
    }
    // Modules see it first (an archive stamps its id: every copy then carries it).
    let handled = match stanza.kind {
        Kind::Message(_) => state.modules.message_to_account(state, stanza, &bare).await,
        _ => Default::default(),
    };
    let stanza = handled.changed.as_ref().unwrap_or(stanza);
    let outcome = to_account(state, stanza, to, &bare).await;
    if !handled.stored {
        return outcome;
    }
    match outcome {
        // What a module stored is durable before the sender learns the message was taken.
        Ok(_) => Ok(Routed::Stored),
        Err(error) => {
            state.modules.message_undelivered(state, &bare, stanza).await;
            Err(error)
        }
    }
}

/// To one account's session (a full JID) or by the rules for its bare JID.
async fn to_account(state: &ServerState, stanza: &Stanza, to: &Jid, bare: &BareJid) -> Outcome {
    match to.try_as_full() {
        Ok(full) => match state.registry.resource(full) {
            Some(resource) => {
                let outcome = deliver_one(state, &resource, stanza).await;
                if outcome.is_ok() {
                    state.modules.message_delivered(state, bare, stanza, std::slice::from_ref(full));
                }
                or_offline(state, stanza, bare, outcome).await
            }
            None => to_unconnected_full_jid(state, stanza, bare).await,
        },
        Err(_) => to_bare_jid(state, stanza, bare).await,
    }
}

/// A stanza for a module's service domain; a request it refuses is answered, a response is
/// dropped (RFC 6120 §8.3.1: never an error to an error).
async fn to_service(state: &ServerState, stanza: &Stanza, domain: &str) -> Outcome {
    let Some(module) = state.modules.service(domain) else {
        return drop_responses(stanza, Condition::ServiceUnavailable);
    };
    match module.to_service(state, stanza).await {
        Err(error) => drop_responses(stanza, error.condition).map_err(|_| error),
        routed => routed,
    }
}

async fn account_exists(state: &ServerState, bare: &BareJid) -> Result<bool, StanzaError> {
    if state.registry.is_online(bare) {
        return Ok(true);
    }
    state.store.user_exists(bare).await.map_err(|e| {
        tracing::error!(error = %e, "user lookup failed while routing");
        StanzaError::new(Condition::InternalServerError)
    })
}

/// RFC 6121 §8.5.1: no such account.
fn unknown_account(stanza: &Stanza) -> Outcome {
    match stanza.kind {
        Kind::Message(MessageType::Headline | MessageType::Error) | Kind::Presence(_) => Ok(Routed::Delivered),
        _ => drop_responses(stanza, Condition::ServiceUnavailable),
    }
}

/// Errors for requests; iq results and errors that cannot be delivered are dropped.
fn drop_responses(stanza: &Stanza, condition: Condition) -> Outcome {
    match stanza.kind {
        Kind::Iq(IqType::Result | IqType::Error) | Kind::Presence(_) => Ok(Routed::Delivered),
        Kind::Message(MessageType::Error) => Ok(Routed::Delivered),
        _ => err(condition),
    }
}

/// RFC 6121 §8.5.3.2: a full JID with no such resource.
async fn to_unconnected_full_jid(state: &ServerState, stanza: &Stanza, bare: &BareJid) -> Outcome {
    match stanza.kind {
        Kind::Message(MessageType::Normal | MessageType::Chat) => to_bare_jid(state, stanza, bare).await,
        Kind::Message(MessageType::Groupchat) => err(Condition::ServiceUnavailable),
        Kind::Message(_) | Kind::Presence(_) => Ok(Routed::Delivered),
        Kind::Iq(IqType::Get | IqType::Set) => err(Condition::ServiceUnavailable),
        Kind::Iq(_) => Ok(Routed::Delivered),
    }
}

/// RFC 6121 §8.5.2: the bare JID of an existing account.
async fn to_bare_jid(state: &ServerState, stanza: &Stanza, bare: &BareJid) -> Outcome {
    let resources = state.registry.resources(bare);
    match stanza.kind {
        Kind::Message(MessageType::Normal | MessageType::Chat) => {
            let top = highest_priority(&resources);
            // No resource to take it, or one still receiving older stored messages: store,
            // so it arrives after them.
            if top.is_empty() || top.iter().any(|r| r.draining) {
                // RFC 6121 §8.5.2.2.1: no available resource: store (XEP-0160).
                return store_and_wake(state, stanza, bare).await;
            }
            let outcome = deliver_any(state, &top, stanza).await;
            if outcome.is_ok() {
                let delivered: Vec<_> = top.iter().map(|r| r.jid.clone()).collect();
                state.modules.message_delivered(state, bare, stanza, &delivered);
            }
            or_offline(state, stanza, bare, outcome).await
        }
        Kind::Message(MessageType::Headline) => {
            let _ = deliver_any(state, &non_negative(&resources), stanza).await;
            Ok(Routed::Delivered)
        }
        Kind::Message(MessageType::Groupchat) => err(Condition::ServiceUnavailable),
        Kind::Message(MessageType::Error) => Ok(Routed::Delivered),
        Kind::Presence(PresenceType::Available | PresenceType::Unavailable) => {
            let available: Vec<&Resource> = resources.iter().filter(|r| r.priority.is_some()).collect();
            let _ = deliver_any(state, &available, stanza).await;
            Ok(Routed::Delivered)
        }
        // Subscriptions and probes are the roster issue's; until then they go nowhere.
        Kind::Presence(_) => Ok(Routed::Delivered),
        // iq to a bare JID is answered by the server (modules), never routed here.
        Kind::Iq(_) => drop_responses(stanza, Condition::ServiceUnavailable),
    }
}

/// A message no session could take, because their queues are full (their clients stopped
/// reading; those sessions are ending) or they ended since we looked, is kept offline like
/// one for an unavailable account: the sender learns nothing, the recipient gets it at its
/// next login.
async fn or_offline(state: &ServerState, stanza: &Stanza, bare: &BareJid, outcome: Outcome) -> Outcome {
    let missed = matches!(&outcome, Err(e) if matches!(e.condition, Condition::ResourceConstraint | Condition::RecipientUnavailable));
    if missed && matches!(stanza.kind, Kind::Message(MessageType::Normal | MessageType::Chat)) {
        return store_and_wake(state, stanza, bare).await;
    }
    outcome
}

/// Stores a message offline; an available resource that is idle is told to fetch it.
async fn store_and_wake(state: &ServerState, stanza: &Stanza, bare: &BareJid) -> Outcome {
    let outcome = super::offline::store(state, stanza, bare).await;
    wake_if_idle(state, bare);
    outcome
}

/// A resource may have become available, or finished its backlog, between our look and
/// the store: one that is available and not draining is told to look again, so the
/// message does not wait for its next login.
pub fn wake_if_idle(state: &ServerState, bare: &BareJid) {
    let resources = state.registry.resources(bare);
    let top = highest_priority(&resources);
    if !top.is_empty() && top.iter().all(|r| !r.draining) {
        for resource in top {
            state.registry.wake(resource);
        }
    }
}

fn non_negative(resources: &[Resource]) -> Vec<&Resource> {
    resources.iter().filter(|r| matches!(r.priority, Some(p) if p >= 0)).collect()
}

/// §8.5.2.1.1: the available resource(s) with the highest non-negative priority.
fn highest_priority(resources: &[Resource]) -> Vec<&Resource> {
    let candidates = non_negative(resources);
    let top = candidates.iter().filter_map(|r| r.priority).max();
    candidates.into_iter().filter(|r| r.priority == top).collect()
}

/// Hands the stanza to one session, as that session's client sees it (the modules'
/// `shown`: a dialect session's receipts, docs/dialect.md).
async fn deliver_one(state: &ServerState, resource: &Resource, stanza: &Stanza) -> Outcome {
    let converted = state.modules.shown(&stanza.element, resource.viewer(), None);
    let element = converted.as_ref().unwrap_or(&stanza.element);
    let handed = match stanza.kind {
        Kind::Message(MessageType::Normal | MessageType::Chat) if resource.managed => {
            return deliver_kept(state, resource, stanza, element).await;
        }
        // Kept by the session until its client answers for it (`session/receipts.rs`).
        Kind::Message(MessageType::Normal | MessageType::Chat) => {
            state.registry.send(resource, super::Delivery::Message(crate::xml::writer::to_bytes(element).into()))
        }
        _ => state.registry.deliver(resource, element),
    };
    match handed {
        Ok(()) => Ok(Routed::Delivered),
        Err(DeliveryError::Full) => {
            tracing::debug!(to = %resource.jid, "recipient queue full");
            drop_responses(stanza, Condition::ResourceConstraint)
        }
        Err(DeliveryError::Gone) => drop_responses(stanza, Condition::RecipientUnavailable),
    }
}

/// A message for a stream-managed session is recorded in storage first (XEP-0198): if
/// the connection dies, or the server, before the client acknowledges it, it moves to
/// offline storage instead of being lost. The sender waits for that record to be durable.
/// The record holds the message as routed (a receipt stays a standard message): if it ends
/// up offline (with its delay, `offline::with_delay`), it is converted for whichever
/// session fetches it, like any stored message.
async fn deliver_kept(
    state: &ServerState,
    resource: &Resource,
    stanza: &Stanza,
    element: &crate::xml::Element,
) -> Outcome {
    let bytes: std::sync::Arc<[u8]> = crate::xml::writer::to_bytes(element).into();
    let owner = resource.jid.to_bare();
    let routed = if std::ptr::eq(element, &stanza.element) {
        bytes.to_vec()
    } else {
        crate::xml::writer::to_bytes(&stanza.element)
    };
    let inflight = match state.store.put_inflight(&owner, super::presence::unix_now(), &routed, quota(state)).await {
        Ok(key) => key,
        Err(StorageError::QuotaExceeded(_)) => {
            // It would have to fit offline if the session ended before its acknowledgement.
            tracing::info!(to = %owner, "offline quota reached, refusing a message in flight");
            return Err(StanzaError::with_text(Condition::ResourceConstraint, "the recipient's storage is full"));
        }
        Err(e) => {
            tracing::error!(error = %e, "recording an in-flight message failed");
            state.storage_failed(&e);
            return err(Condition::InternalServerError);
        }
    };
    match state.registry.send(resource, super::Delivery::Kept { inflight, bytes }) {
        Ok(()) => Ok(Routed::Stored),
        Err(e) => {
            if let Err(e) = state.store.remove_inflight(&[inflight]).await {
                tracing::error!(error = %e, "forgetting an in-flight message failed");
            }
            match e {
                DeliveryError::Full => {
                    tracing::debug!(to = %resource.jid, "recipient queue full");
                    drop_responses(stanza, Condition::ResourceConstraint)
                }
                DeliveryError::Gone => drop_responses(stanza, Condition::RecipientUnavailable),
            }
        }
    }
}

/// Delivers to every target; succeeds if at least one took it (stored, if one kept it).
async fn deliver_any(state: &ServerState, targets: &[&Resource], stanza: &Stanza) -> Outcome {
    let mut outcome = err(Condition::ServiceUnavailable);
    for resource in targets {
        let this = deliver_one(state, resource, stanza).await;
        outcome = match (outcome, this) {
            (Ok(Routed::Stored), _) | (_, Ok(Routed::Stored)) => Ok(Routed::Stored),
            (Ok(first), _) => Ok(first),
            (Err(_), this) => this,
        };
    }
    outcome
}

/// A stanza left in an ended session's queue: messages go to the account's offline storage
/// and an available resource is told to fetch them (paced by its acknowledgements, so a
/// whole queue rerouted at once cannot overflow a healthy sibling); other stanzas that
/// expect an answer get `recipient-unavailable` (RFC 6120 §8.3.3.14), so nothing vanishes
/// without a word.
pub async fn reroute(state: &ServerState, element: crate::xml::Element) {
    // As shown to that session (a dialect receipt), back in its routed form.
    let element = state.modules.routed_form(element);
    let Ok(stanza) = Stanza::parse(element) else {
        return;
    };
    let Some(to) = stanza.to.clone() else { return };
    // A message from the recipient's own bare JID was made by the server for that session
    // alone: carbon copies (live only, XEP-0280 §7), archive results (answers to its own
    // query). Never rerouted, never stored. (Clients' messages carry their full JID.)
    if matches!(stanza.kind, Kind::Message(_)) && stanza.from.as_ref() == Some(&Jid::from(to.to_bare())) {
        return;
    }
    let outcome = match stanza.kind {
        Kind::Message(MessageType::Normal | MessageType::Chat) => store_and_wake(state, &stanza, &to.to_bare()).await,
        Kind::Message(MessageType::Error | MessageType::Headline) | Kind::Presence(_) => Ok(Routed::Delivered),
        Kind::Iq(IqType::Result | IqType::Error) => Ok(Routed::Delivered),
        _ => err(Condition::RecipientUnavailable),
    };
    let Err(error) = outcome else { return };
    // Accepted before, bounced now: a retransmission of it is not a repeat, and what was
    // kept for the recipient (its archive's entry) goes.
    if let (Kind::Message(_), Some(from)) = (stanza.kind, stanza.from.as_ref()) {
        state.modules.message_refused(&from.to_bare(), &stanza, true);
        state.modules.message_undelivered(state, &to.to_bare(), &stanza).await;
    }
    let (Some(reply), Some(sender)) = (stanza.error_reply(&error), stanza.from.as_ref()) else {
        return;
    };
    let bounce = Stanza::parse(reply);
    if let Ok(bounce) = bounce {
        let _ = Box::pin(route(state, &bounce, sender)).await;
    }
}
