//! XEP-0054 vcard-temp: every account keeps one vCard, which it sets and anyone reads
//! (§5: vCards are world-readable), stored through [`VcardStore`]. And XEP-0153
//! vCard-based avatars: the hash of the vCard's photo, worked out when it is set, rides
//! on the presence of the account's clients that do not advertise one themselves
//! ([`avatar`]).
//!
//! Gets are answered later: the stored vCard is read and parsed off the session's turn,
//! and the session writes the reply before it handles its client's next stanza.
//!
//! [`VcardStore`]: crate::storage::vcard::VcardStore

pub mod avatar;

use super::{storage_fault, stored_xml, Request, Target};
use crate::core::module::{one_reply, Hook, Module, Registrar, Scope, Slots, Soon, Targets, Types};
use crate::core::state::ServerState;
use crate::xml::{el, writer, Element};
use crate::xmpp::error::{Condition, StanzaError};
use crate::xmpp::stanza::Stanza;
use std::sync::Arc;
use xmpp_parsers::jid::{BareJid, Jid};

pub use crate::xml::ns::VCARD as NS;

pub struct Vcard;

impl Module for Vcard {
    fn name(&self) -> &'static str {
        "XEP-0054"
    }

    fn register(self: Arc<Self>, api: &mut Registrar) {
        api.iq(Some("vCard"), NS, Types::Get, Targets::ACCOUNT, |r| r.later(|r| one_reply(get(r))));
        api.iq(Some("vCard"), NS, Types::Set, Targets::ACCOUNT, |r| r.later(|r| one_reply(set(r))));
        // §4: the server (it answers for its accounts) and every account support it.
        api.feature(Scope::Server, NS);
        api.feature(Scope::Account, NS);
        // XEP-0153: the avatar's hash in the presence its clients send.
        api.hook(Hook::Inbound);
    }

    fn inbound<'a>(
        &'a self,
        state: &'a ServerState,
        sender: &'a BareJid,
        stanza: &'a mut Stanza,
        _slots: &'a mut Slots,
    ) -> Soon<'a, Result<(), StanzaError>> {
        if !avatar::wanted(stanza) {
            return Soon::ready(Ok(()));
        }
        Soon::later(async move {
            avatar::advertise(state, sender, stanza).await;
            Ok(())
        })
    }
}

/// §3.1 and §3.3: the vCard of the sender's own account, or of another local account.
async fn get(request: &Request<'_>) -> Element {
    let Target::Account(owner) = request.target else { return request.error(Condition::ServiceUnavailable) };
    let own = *owner == request.sender.to_bare();
    // XEP-0191 §3.3: an iq get from someone the owner blocked "SHOULD be"
    // `service-unavailable`, which is also what an account without a vCard answers.
    if !own && crate::core::privacy::blocks(request.state, owner, &Jid::from(request.sender.clone())).await {
        return request.error(Condition::ServiceUnavailable);
    }
    match stored_xml(request.state.store.vcard(owner)).await {
        Ok(Some(vcard)) => request.result_with(vcard),
        // §3.1 allows an error or an empty vCard for one's own: the empty vCard, so a
        // client shows an empty form rather than a failure.
        Ok(None) if own => request.result_with(el("vCard", NS)),
        // §3.3 (version 1.3.0): `service-unavailable`, the answer for an account that
        // does not exist (RFC 6121 §8.5.1), so no one learns which accounts exist.
        Ok(None) => request.error(Condition::ServiceUnavailable),
        Err(condition) => request.error(condition),
    }
}

/// §3.2: the sender replaces its own vCard; another's is `forbidden`.
async fn set(request: &Request<'_>) -> Element {
    let owner = match request.own_account() {
        Ok(owner) => owner,
        Err(condition) => return request.error(condition),
    };
    let vcard = writer::to_bytes(request.payload);
    let max = request.state.config.limits.max_vcard_bytes;
    // XEP-0054 names no limit. `not-acceptable` (RFC 6120 §8.3.3.9, type modify): this
    // vCard will never be taken as it is; `resource-constraint` (type wait) would tell the
    // client to send it again later.
    if vcard.len() as u64 > max {
        return request.error_with(Condition::NotAcceptable, &format!("a vCard may hold at most {max} bytes"));
    }
    let avatar = match avatar::of(request.payload) {
        Ok(avatar) => avatar,
        Err(why) => return request.error_with(Condition::BadRequest, why),
    };
    match request.state.store.set_vcard(owner, &vcard, &avatar).await {
        Ok(()) => request.result(),
        Err(e) => request.error(storage_fault(e)),
    }
}
