//! XEP-0013 flexible offline message retrieval, all of it: the server's feature, its
//! disco node (§2.2 the count, §2.3 one header per message), the retrieval commands
//! (`retrieval.rs`), and the session's automatic offline backlog held back for a client
//! that retrieves by itself.

mod retrieval;

use crate::core::module::{storage_fault, Hook, Module, NodeQuery, Registrar, Request, Scope, Slots, Soon};
use crate::core::module::{Targets, Types};
use crate::core::state::ServerState;
use crate::storage::offline::{Batch, OfflineMessage};
use crate::xml::ns::{DATA_FORMS, DISCO_INFO, DISCO_ITEMS};
use crate::xml::{el, Element, ElementExt};
use crate::xmpp::error::StanzaError;
use crate::xmpp::stanza::{IqType, Kind, Stanza};
use retrieval::Retrieval;
use std::sync::Arc;
use xmpp_parsers::jid::BareJid;

pub use crate::xml::ns::OFFLINE as NS;

/// The most headers one disco#items of the offline node lists (XEP-0013 §2.3): the
/// oldest messages, read within this many bytes; the count in disco#info tells the rest.
pub const HEADERS: Batch = Batch { messages: 1000, bytes: 8 << 20 };

pub struct FlexibleOffline;

impl Module for FlexibleOffline {
    fn name(&self) -> &'static str {
        "XEP-0013"
    }

    fn register(self: Arc<Self>, api: &mut Registrar) {
        api.feature(Scope::Server, NS);
        api.disco_node(NS, |r, query| Soon::later(node_query(r, query)));
        api.iq(Some("offline"), NS, Types::GetAndSet, Targets::ACCOUNT, retrieval::answer);
        api.hook(Hook::Inbound);
        api.hook(Hook::OfflineBacklog);
    }

    /// §2.2/§2.3: a client that counts or lists its messages, or sends a command, to its
    /// own account retrieves by itself from then on.
    fn inbound<'a>(
        &'a self,
        _state: &'a ServerState,
        sender: &'a BareJid,
        stanza: &'a mut Stanza,
        slots: &'a mut Slots,
    ) -> Soon<'a, Result<(), StanzaError>> {
        let own = stanza.to.as_ref().is_none_or(|to| to.resource().is_none() && to.to_bare() == *sender);
        if matches!(stanza.kind, Kind::Iq(IqType::Get | IqType::Set))
            && own
            && stanza.element.children().any(|q| q.attr("node") == Some(NS) || q.is("offline", NS))
        {
            slots.get_or_default::<Retrieval>();
        }
        Soon::ready(Ok(()))
    }

    fn retrieves_offline_itself(&self, slots: &Slots) -> bool {
        slots.get::<Retrieval>().is_some()
    }
}

/// What a session's client was shown through XEP-0013 and has not removed, oldest first.
#[cfg(test)]
pub(crate) fn shown(slots: &Slots) -> Vec<u64> {
    slots.get::<Retrieval>().map(Retrieval::seqs).unwrap_or_default()
}

/// The XEP's node for one message: its place in the queue.
pub fn node(message: &OfflineMessage) -> String {
    message.seq.to_string()
}

/// The offline node, for the account itself only.
async fn node_query(request: &Request<'_>, query: NodeQuery) -> Element {
    let owner = match request.own_account() {
        Ok(owner) => owner,
        Err(condition) => return request.error(condition),
    };
    let state = request.state;
    let payload = match query {
        NodeQuery::Info => state.store.offline_count(owner).await.map(info),
        NodeQuery::Items => {
            crate::core::offline::deliverable(state, owner, HEADERS).await.map(|m| headers(owner.as_str(), &m))
        }
    };
    match payload {
        Ok(payload) => request.result_with(payload),
        Err(e) => request.error(storage_fault(e)),
    }
}

/// The disco#info of the offline node (XEP-0013 §2.2): the number of messages.
pub fn info(count: u64) -> Element {
    let ns_info = DISCO_INFO;
    let form = el("x", DATA_FORMS)
        .with("type", "result")
        .with_child(
            el("field", DATA_FORMS)
                .with("var", "FORM_TYPE")
                .with("type", "hidden")
                .with_child(el("value", DATA_FORMS).with_text(NS)),
        )
        .with_child(
            el("field", DATA_FORMS)
                .with("var", "number_of_messages")
                .with_child(el("value", DATA_FORMS).with_text(count.to_string())),
        );
    el("query", ns_info)
        .with("node", NS)
        .with_child(el("identity", ns_info).with("category", "automation").with("type", "message-list"))
        .with_child(el("feature", ns_info).with("var", NS))
        .with_child(form)
}

/// The disco#items of the offline node (XEP-0013 §2.3): one header per message.
pub fn headers(owner: &str, messages: &[OfflineMessage]) -> Element {
    let ns_items = DISCO_ITEMS;
    let mut query = el("query", ns_items).with("node", NS);
    for message in messages {
        let mut item = el("item", ns_items).with("jid", owner).with("node", node(message));
        // Only the start tag is read: the message itself may be large.
        if let Some(from) = crate::xml::start_tag_attr(&message.stanza, "from") {
            item.set("name", from);
        }
        query.append_child(item);
    }
    query
}
