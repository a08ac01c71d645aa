//! XEP-0013 flexible offline retrieval, the commands (§2.4–§2.6): a client that uses the
//! XEP before its initial presence reads, views and removes its stored messages itself,
//! and gets no automatic flood at login (the messages stay until it removes or purges
//! them).
//!
//! Such a client has a [`Retrieval`] slot: made by the module's inbound hook when it first
//! asks about the offline node or sends a command, and holding what it was shown.

use super::{node, NS};
use crate::core::module::{storage_fault, Answer, Request, Soon};
use crate::core::offline;
use crate::storage::offline::{Batch, OfflineMessage};
use crate::xml::{el, Element, ElementExt};
use crate::xmpp::error::{Condition, StanzaError};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// In a session's slots: its client retrieves offline messages itself. It holds the stored
/// messages that client was shown (fetched or viewed): a purge removes these and nothing
/// that arrived since. Shared with the command's later answer.
#[derive(Default)]
pub(super) struct Retrieval(Arc<Mutex<BTreeSet<u64>>>);

type Shown = Arc<Mutex<BTreeSet<u64>>>;

impl Retrieval {
    /// What the client was shown, oldest first.
    #[cfg(test)]
    pub(super) fn seqs(&self) -> Vec<u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).iter().copied().collect()
    }
}

/// `<offline/>` to the client's own account; any other target is nobody's to answer.
pub(super) fn answer(request: &mut Request) -> Answer {
    if request.own_account().is_err() {
        return request.error(Condition::ServiceUnavailable).into();
    }
    let shown = request.slots.get_or_default::<Retrieval>().0.clone();
    request.later_with(shown, |r, shown| Soon::later(commands(r, shown)))
}

/// The commands of one request, in order; the first that fails is the answer.
async fn commands(request: &Request<'_>, shown: Shown) -> Vec<Element> {
    let get = request.is_get();
    // What one request may hand over in all, however many commands it holds.
    let mut budget = Batch {
        messages: request.room.messages.min(offline::BATCH.messages),
        bytes: request.room.bytes.min(offline::BATCH.bytes),
    };
    let mut out = Vec::new();
    for command in request.payload.children() {
        let done = match (command.name(), command.attr("action"), get) {
            ("fetch", _, true) => fetch(request, &shown, &mut budget).await.map(|messages| out.extend(messages)),
            ("purge", _, false) => purge(request, &shown).await,
            ("item", Some("view"), true) => {
                let first = out.is_empty();
                view(request, &shown, command.attr("node"), &mut budget, first).await.map(|message| out.push(message))
            }
            ("item", Some("remove"), false) => remove_item(request, &shown, command.attr("node")).await,
            _ => Err(StanzaError::new(Condition::BadRequest)),
        };
        if let Err(error) = done {
            tracing::debug!(condition = error.condition.name(), "XEP-0013 command refused");
            return vec![crate::xmpp::stanza::error_reply(&request.stanza.element, &error)];
        }
    }
    out.push(request.result());
    out
}

/// §2.4: the stored messages, oldest first, as many as one batch the client can take
/// holds (a client purges them and fetches again for more; disco#info counts them).
/// Once per request: a second would hand over the same messages again.
async fn fetch(request: &Request<'_>, shown: &Shown, budget: &mut Batch) -> Result<Vec<Element>, StanzaError> {
    if budget.messages == 0 {
        return Err(StanzaError::with_text(Condition::PolicyViolation, "one fetch per request"));
    }
    let owner = request.sender.to_bare();
    let messages = offline::deliverable(request.state, &owner, *budget).await.map_err(fault)?;
    *budget = Batch { messages: 0, bytes: 0 };
    // Only what the client is shown counts as shown: a purge removes nothing else.
    let (mut out, mut seqs) = (Vec::with_capacity(messages.len()), Vec::with_capacity(messages.len()));
    for message in &messages {
        if let Some(element) = flagged(request, message).await {
            out.push(element);
            seqs.push(message.seq);
        }
    }
    mark_shown(request, shown, seqs);
    Ok(out)
}

/// §2.5.2: one message by its node, within what the request may still hand over (the
/// first always goes).
async fn view(
    request: &Request<'_>,
    shown: &Shown,
    node: Option<&str>,
    budget: &mut Batch,
    first: bool,
) -> Result<Element, StanzaError> {
    let message = stored(request, node).await?;
    if !first && (budget.messages == 0 || message.stanza.len() > budget.bytes) {
        let text = "more than one batch of stored messages in one request";
        return Err(StanzaError::with_text(Condition::ResourceConstraint, text));
    }
    budget.messages = budget.messages.saturating_sub(1);
    budget.bytes = budget.bytes.saturating_sub(message.stanza.len());
    let element = flagged(request, &message).await.ok_or(StanzaError::new(Condition::InternalServerError))?;
    mark_shown(request, shown, [message.seq]);
    Ok(element)
}

/// Remembers what the client was shown, at most as many as the account may store: a
/// message another resource removed meanwhile stays in the set, and the oldest go first.
fn mark_shown(request: &Request<'_>, shown: &Shown, seqs: impl IntoIterator<Item = u64>) {
    let mut shown = shown.lock().unwrap_or_else(|p| p.into_inner());
    shown.extend(seqs);
    let cap = usize::try_from(request.state.config.limits.offline_quota).unwrap_or(usize::MAX);
    while shown.len() > cap {
        shown.pop_first();
    }
}

/// §2.5.3: one message by its node, shown or not (the client names it).
async fn remove_item(request: &Request<'_>, shown: &Shown, node: Option<&str>) -> Result<(), StanzaError> {
    let message = stored(request, node).await?;
    shown.lock().unwrap_or_else(|p| p.into_inner()).remove(&message.seq);
    remove(request, &[message.seq]).await
}

/// §2.6: "remove all messages": those this client was shown. A message that arrived
/// after its fetch was never seen by it and stays, for its next fetch.
async fn purge(request: &Request<'_>, shown: &Shown) -> Result<(), StanzaError> {
    let seqs: Vec<u64> = std::mem::take(&mut *shown.lock().unwrap_or_else(|p| p.into_inner())).into_iter().collect();
    remove(request, &seqs).await
}

async fn stored(request: &Request<'_>, node: Option<&str>) -> Result<OfflineMessage, StanzaError> {
    let seq = node.and_then(|n| n.parse::<u64>().ok()).ok_or(StanzaError::new(Condition::ItemNotFound))?;
    let owner = request.sender.to_bare();
    let message = request.state.store.offline_message(&owner, seq).await.map_err(fault)?;
    let message = message.ok_or(StanzaError::new(Condition::ItemNotFound))?;
    // XEP-0191 §3.5: a sender blocked since it was stored is never shown.
    if offline::from_blocked(request.state, &owner, &message).await {
        remove(request, &[message.seq]).await?;
        return Err(StanzaError::new(Condition::ItemNotFound));
    }
    Ok(message)
}

/// A stored message as XEP-0013 sends it: as the client sees it, marked with its node (a
/// message; a dialect `<receipt/>` carries no children). None (logged) if the stored bytes
/// no longer parse.
async fn flagged(request: &Request<'_>, message: &OfflineMessage) -> Option<Element> {
    let Some(element) = crate::xml::read_stanza(&message.stanza).await else {
        tracing::error!(bytes = message.stanza.len(), "a stored message cannot be read back");
        return None;
    };
    let mut shown = request.state.modules.shown(&element, request.viewer, None).unwrap_or(element);
    if shown.name() == "message" {
        shown.append_child(el("offline", NS).with_child(el("item", NS).with("node", node(message))));
    }
    Some(shown)
}

async fn remove(request: &Request<'_>, seqs: &[u64]) -> Result<(), StanzaError> {
    let owner = request.sender.to_bare();
    request.state.store.remove_offline(&owner, seqs).map(|_| ()).await.map_err(fault)
}

fn fault(e: crate::storage::StorageError) -> StanzaError {
    StanzaError::new(storage_fault(e))
}
