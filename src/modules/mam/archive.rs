//! XEP-0313 on the delivery path: a conversation message is archived for each local
//! account in it, and the recipient's copy carries its archive id as an XEP-0359
//! `<stanza-id/>`. The queries are answered by `modules::mam`.

use crate::core::state::ServerState;
use crate::modules::mam;
use crate::xml::writer;
use crate::xmpp::stanza::Stanza;
use xmpp_parsers::jid::{BareJid, Jid};

fn now_micros() -> u64 {
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
/// its `<stanza-id/>` (XEP-0359 §4); None when it is unchanged. A `<stanza-id/>` the sender
/// put in that claims to come from the recipient's archive is removed either way, before
/// anything is archived (XEP-0359 §5: it could be forged).
pub async fn incoming(state: &ServerState, stanza: &Stanza, recipient: &BareJid) -> Option<Stanza> {
    let from = stanza.from.as_ref()?;
    let mut message = match without_forged_ids(stanza, recipient) {
        Some(copy) => copy,
        None => {
            let id = archive(state, recipient, from, stanza).await?;
            let mut copy = stanza.clone();
            mam::set_stanza_id(&mut copy.element, recipient, &id);
            return Some(copy);
        }
    };
    if let Some(id) = archive(state, recipient, from, &message).await {
        mam::set_stanza_id(&mut message.element, recipient, &id);
    }
    Some(message)
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

/// The sender's side, once the message was accepted: its own archive keeps what it sent.
pub async fn outgoing(state: &ServerState, stanza: &Stanza, sender: &BareJid, to: &Jid) {
    // A message to oneself is archived once, as received.
    if to.to_bare() != *sender {
        archive(state, sender, to, stanza).await;
    }
}
