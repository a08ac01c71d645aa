//! XEP-0049 private XML storage: an account keeps XML on the server that only it reads
//! and writes (XEP-0048 bookmarks, client preferences), stored through [`PrivateStore`]
//! under the namespace of the elements (§2.1: a get names the namespace "used for storage
//! of that fragment"; §2.3: a set or result "MAY contain multiple elements qualified by
//! the same namespace"), within `limits.max_private_bytes` per account.
//!
//! XEP-0049 defines no service discovery feature; `jabber:iq:private` is listed on the
//! server, as Prosody does, so that clients that look for it find it.
//!
//! [`PrivateStore`]: crate::storage::private::PrivateStore

use super::{storage_fault, stored_xml, Request};
use crate::core::module::{one_reply, Module, Registrar, Scope, Targets, Types};
use crate::storage::StorageError;
use crate::xml::{el, writer, Element, ElementExt};
use crate::xmpp::error::Condition;
use std::sync::Arc;

pub use crate::xml::ns::PRIVATE as NS;

pub struct PrivateStorage;

impl Module for PrivateStorage {
    fn name(&self) -> &'static str {
        "XEP-0049"
    }

    fn register(self: Arc<Self>, api: &mut Registrar) {
        api.iq(Some("query"), NS, Types::GetAndSet, Targets::ACCOUNT, |r| r.later(|r| one_reply(handle(r))));
        api.feature(Scope::Server, NS);
    }
}

/// §2.3: namespaces "reserved in Jabber" ("namespaces beginning with 'jabber:' or
/// 'http://jabber.org/', as well as 'vcard-temp'"). Refusing them is optional there, and
/// the error "commonly Not Acceptable" (§3); they are refused here. An element without a
/// namespace of its own is in `jabber:iq:private` and refused with them.
fn reserved(namespace: &str) -> bool {
    namespace.starts_with("jabber:")
        || namespace.starts_with("http://jabber.org/")
        || namespace == crate::xml::ns::VCARD
}

async fn handle(request: &Request<'_>) -> Element {
    match check(request) {
        Ok(namespace) if request.is_get() => get(request, namespace).await,
        Ok(namespace) => set(request, &namespace).await,
        Err(refusal) => refusal,
    }
}

/// The namespace the request stores or fetches, or the error refusing it.
fn check(request: &Request) -> Result<String, Element> {
    // §2.3 and §4: only the account itself; another's data is `forbidden`, which §2.3
    // prefers to `service-unavailable`.
    request.own_account().map_err(|condition| request.error(condition))?;
    let mut children = request.payload.children();
    // §2.3: "At least one child element with a proper namespace MUST be included;
    // otherwise the server MUST respond with a "Not Acceptable" error".
    let Some(first) = children.next() else {
        return Err(request.error_with(Condition::NotAcceptable, "the query holds no element"));
    };
    let namespace = first.ns();
    if reserved(&namespace) {
        return Err(request.error_with(Condition::NotAcceptable, "that namespace is reserved"));
    }
    // §2.3: "A client MUST NOT query for more than one namespace in a single IQ get
    // request"; a set stores the elements of one namespace. XEP-0049 names no condition:
    // `bad-request` (RFC 6120 §8.3.3.1).
    let others = children.collect::<Vec<_>>();
    if request.is_get() && !others.is_empty() {
        return Err(request.error_with(Condition::BadRequest, "a get names one element"));
    }
    if others.iter().any(|other| other.ns() != namespace) {
        return Err(request.error_with(Condition::BadRequest, "a set stores one namespace"));
    }
    Ok(namespace)
}

/// What is stored under the namespace, or the empty element asked for when nothing is.
async fn get(request: &Request<'_>, namespace: String) -> Element {
    let owner = request.sender.to_bare();
    match stored_xml(request.state.store.private(&owner, &namespace)).await {
        Ok(Some(query)) => request.result_with(query),
        Ok(None) => {
            let name = request.payload.children().next().map_or("", |asked| asked.name());
            request.result_with(el("query", NS).with_child(el(name, &namespace)))
        }
        Err(condition) => request.error(condition),
    }
}

/// Replaces what is stored under the namespace by the query's elements (kept in their
/// `<query/>`, which a get answers with as it is).
async fn set(request: &Request<'_>, namespace: &str) -> Element {
    let owner = request.sender.to_bare();
    let max = request.state.config.limits.max_private_bytes;
    match request.state.store.put_private(&owner, namespace, &writer::to_bytes(request.payload), max).await {
        Ok(()) => request.result(),
        // A quota over everything the account stores, as for rosters and block lists:
        // there is room again once the account stores less.
        Err(StorageError::QuotaExceeded(_)) => request.error_with(
            Condition::ResourceConstraint,
            &format!("private storage holds at most {max} bytes per account"),
        ),
        Err(e) => request.error(storage_fault(e)),
    }
}
