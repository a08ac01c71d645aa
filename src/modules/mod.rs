//! iq requests the server answers itself, one file per feature. An iq to the server's
//! domain, to an account's bare JID, or without `to` lands here (RFC 6120 §10.3.3, §10.5).

pub mod blocking;
pub mod dialect;
pub mod disco;
pub mod last;
pub mod mam;
pub mod ping;
pub mod roster;
pub mod session;
pub mod version;

use crate::error::{Condition, StanzaError};
use crate::stanza::{IqType, Kind, Stanza};
use crate::state::ServerState;
use crate::xml::{el, Element, ElementExt, NS_CLIENT};
use xmpp_parsers::jid::{BareJid, FullJid};

/// Whom an iq is addressed to, once the server takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A hosted domain.
    Server(String),
    /// A local account's bare JID (the sender's own, or someone else's).
    Account(BareJid),
}

/// The request being answered.
pub struct Request<'a> {
    pub state: &'a ServerState,
    pub sender: &'a FullJid,
    pub target: &'a Target,
    pub stanza: &'a Stanza,
    /// The single child of the get/set.
    pub payload: &'a Element,
    /// The asking session enabled the dialect (docs/dialect.md).
    pub dialect: bool,
}

impl Request<'_> {
    pub fn is_get(&self) -> bool {
        self.stanza.kind == Kind::Iq(IqType::Get)
    }

    /// An empty `result`.
    pub fn result(&self) -> Element {
        let mut reply = el("iq", NS_CLIENT).with("type", "result").with("to", self.sender.as_str());
        if let Some(id) = &self.stanza.id {
            reply.set("id", id.as_str());
        }
        if let Some(to) = self.stanza.element.attr("to") {
            reply.set("from", to);
        }
        reply
    }

    pub fn result_with(&self, payload: Element) -> Element {
        self.result().with_child(payload)
    }

    /// The payload as the xmpp-parsers type the handler acts on; a payload that does not
    /// fit it is the client's fault (`bad-request`).
    pub fn parse<T>(&self) -> Result<T, Condition>
    where
        T: TryFrom<Element>,
    {
        T::try_from(self.payload.clone()).map_err(|_| Condition::BadRequest)
    }

    /// The account this request manages, which must be the sender's own
    /// (RFC 6121 §2.3.3, XEP-0191 §3: no one else's roster or block list).
    pub fn own_account(&self) -> Result<&BareJid, Condition> {
        match self.target {
            Target::Account(owner) if *owner == self.sender.to_bare() => Ok(owner),
            Target::Account(_) => Err(Condition::Forbidden),
            Target::Server(_) => Err(Condition::ServiceUnavailable),
        }
    }

    pub fn error(&self, condition: Condition) -> Element {
        tracing::debug!(
            payload = %self.stanza.element.children().next().map(|c| c.ns()).unwrap_or_default(),
            condition = condition.name(),
            "iq refused"
        );
        crate::stanza::error_reply(&self.stanza.element, &StanzaError::new(condition))
    }
}

/// An iq push (roster, block list) for one session, with that session's own id.
pub fn push_iq(to: &str, id: &str, payload: &Element) -> Element {
    el("iq", NS_CLIENT).with("type", "set").with("id", id).with("to", to).with_child(payload.clone())
}

/// A storage fault, logged, as the stanza error a client sees.
pub fn storage_fault(e: crate::storage::StorageError) -> Condition {
    tracing::error!(error = %e, "storage failed while answering an iq");
    Condition::InternalServerError
}

/// Answers an iq get/set; results and errors addressed to the server are absorbed (None).
pub fn handle_iq(
    state: &ServerState,
    sender: &FullJid,
    target: &Target,
    stanza: &Stanza,
    dialect: bool,
) -> Option<Element> {
    if !matches!(stanza.kind, Kind::Iq(IqType::Get | IqType::Set)) {
        return None;
    }
    if let Target::Account(bare) = target {
        match state.store.user_exists(bare) {
            Ok(true) => {}
            Ok(false) => {
                return Some(crate::stanza::error_reply(
                    &stanza.element,
                    &StanzaError::new(Condition::ServiceUnavailable),
                ))
            }
            Err(e) => {
                tracing::error!(error = %e, "user lookup failed");
                return Some(crate::stanza::error_reply(
                    &stanza.element,
                    &StanzaError::new(Condition::InternalServerError),
                ));
            }
        }
    }
    let payload = stanza.element.children().next()?;
    let request = Request { state, sender, target, stanza, payload, dialect };
    let ns = payload.ns();
    let reply = match (payload.name(), ns.as_str()) {
        ("ping", ping::NS) => ping::handle(&request),
        ("query", disco::NS_INFO) => disco::info(&request),
        ("query", disco::NS_ITEMS) => disco::items(&request),
        ("query", version::NS) => version::handle(&request),
        ("session", crate::xml::NS_SESSION) => session::handle(&request),
        ("query", roster::NS) => roster::handle(&request),
        ("query", last::NS) => last::handle(&request),
        (_, blocking::NS) => blocking::handle(&request),
        ("bind", crate::xml::NS_BIND) => request.error(Condition::NotAllowed),
        _ => request.error(Condition::ServiceUnavailable),
    };
    Some(reply)
}
