//! XEP-0313 on the delivery path: a conversation message is archived for each local
//! account in it, and the recipient's copy carries its archive id as an XEP-0359
//! `<stanza-id/>`, as do the sender's carbon copies the sender's. An archived message is
//! stored like an offline one: the sender is told it was taken once the entry is durable.
//! One refused after it was archived for its recipient leaves that archive again. The
//! queries are answered by `modules::mam`.

use crate::core::module::Handled;
use crate::core::state::ServerState;
use crate::modules::mam;
use crate::xml::writer;
use crate::xmpp::stanza::Stanza;
use xmpp_parsers::jid::{BareJid, FullJid, Jid};

/// Now, in µs since the epoch: an archive entry's stamp.
pub(super) fn now_micros() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// Archives `message` in `owner`'s archive, talking with `with`; returns its archive id.
async fn archive(state: &ServerState, owner: &BareJid, with: &Jid, stanza: &Stanza) -> Option<String> {
    let config = &state.config.archive;
    if !config.enabled || !mam::is_archivable(&stanza.element) {
        return None;
    }
    if !mam::allowed(state.store.as_ref(), owner, with, config.default_preference()).await {
        return None;
    }
    match state.store.archive(owner, with, now_micros(), &writer::to_bytes(&stanza.element)).await {
        Ok(id) => Some(id),
        Err(e) => {
            tracing::error!(error = %e, "archiving a message failed");
            state.storage_failed(&e);
            None
        }
    }
}

/// The recipient's side, before delivery: the message as the recipient will get it, with
/// its `<stanza-id/>` (XEP-0359 §4). A `<stanza-id/>` the sender put in that claims to come
/// from the recipient's archive is removed either way, before anything is archived
/// (XEP-0359 §5: it could be forged).
pub async fn incoming(state: &ServerState, stanza: &Stanza, recipient: &BareJid) -> Handled {
    let Some(from) = stanza.from.as_ref() else { return Handled::default() };
    let stripped = without_forged_ids(stanza, recipient);
    let message = stripped.as_ref().unwrap_or(stanza);
    match archive(state, recipient, from, message).await {
        Some(id) => {
            let mut copy = stripped.unwrap_or_else(|| stanza.clone());
            mam::set_stanza_id(&mut copy.element, recipient, &id);
            Handled { changed: Some(copy), stored: true }
        }
        None => Handled { changed: stripped, stored: false },
    }
}

/// A message archived for `recipient` and then refused (blocked, bounced): the entry its
/// `<stanza-id/>` names leaves the archive; the sender was told it was not delivered.
pub async fn refused(state: &ServerState, stanza: &Stanza, recipient: &BareJid) {
    let ours =
        stanza.element.children().find(|c| c.is("stanza-id", mam::NS_SID) && c.attr("by") == Some(recipient.as_str()));
    let Some(id) = ours.and_then(|c| c.attr("id")) else { return };
    if let Err(e) = state.store.unarchive(recipient, id).await {
        tracing::error!(error = %e, "removing a refused message from the archive failed");
        state.storage_failed(&e);
    }
}

/// The message without the `<stanza-id/>`s that claim to come from the recipient's
/// archive (XEP-0359 §5); None when it has none. What is left of [`incoming`] with the
/// archive off: nothing to await.
pub fn without_forged_ids(stanza: &Stanza, recipient: &BareJid) -> Option<Stanza> {
    if !stanza.element.children().any(|c| c.is("stanza-id", mam::NS_SID)) {
        return None;
    }
    let mut copy = stanza.clone();
    mam::strip_stanza_ids(&mut copy.element, recipient).then_some(copy)
}

/// The sender's side, once the message was accepted: its own archive keeps what it sent,
/// and the copy the sender's other devices get (carbons) carries that archive's id.
pub async fn outgoing(state: &ServerState, stanza: &Stanza, sender: &FullJid, to: &Jid) -> Handled {
    let owner = sender.to_bare();
    // A message to oneself is archived once, as received.
    if to.as_str().split('/').next() == Some(owner.as_str()) {
        return Handled::default();
    }
    let Some(id) = archive(state, &owner, to, stanza).await else { return Handled::default() };
    // The copy with the id is for the sender's other carbon-enabled devices (XEP-0280
    // sent carbons): made only when there is one.
    let others = state.registry.available_where(&owner, &|r| r.carbons && r.jid != *sender);
    if others.is_empty() {
        return Handled { changed: None, stored: true };
    }
    let mut copy = stanza.clone();
    mam::set_stanza_id(&mut copy.element, &owner, &id);
    Handled { changed: Some(copy), stored: true }
}
