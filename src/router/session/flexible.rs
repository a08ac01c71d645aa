//! XEP-0013 flexible offline retrieval: a client that uses it before its initial
//! presence reads, views and removes its stored messages itself, and gets no automatic
//! flood at login (the messages stay until it removes or purges them).

use super::{Action, Session};
use crate::error::{Condition, StanzaError};
use crate::stanza::{IqType, Kind, Stanza};
use crate::state::ServerState;
use crate::storage::offline::OfflineMessage;
use crate::xml::{el, writer, Element, ElementExt, NS_CLIENT};

pub const NS: &str = "http://jabber.org/protocol/offline";

/// The XEP's node for one message: its place in the queue.
fn node(message: &OfflineMessage) -> String {
    message.seq.to_string()
}

impl Session {
    pub(super) fn on_flexible_offline(
        &mut self,
        state: &ServerState,
        stanza: &Stanza,
        payload: &Element,
    ) -> Vec<Action> {
        self.flexible_offline = true;
        let get = stanza.kind == Kind::Iq(IqType::Get);
        let messages = match state.store.offline_messages(&self.bare, usize::MAX) {
            Ok(messages) => messages,
            Err(e) => return self.reply_error(stanza, StanzaError::new(crate::modules::storage_fault(e))),
        };
        let mut out = Vec::new();
        for command in payload.children() {
            match (command.name(), command.attr("action"), get) {
                ("fetch", _, true) => out.extend(messages.iter().map(|m| self.flagged(m))),
                ("purge", _, false) => self.remove(state, &messages.iter().map(|m| m.seq).collect::<Vec<_>>()),
                ("item", Some(action), _) => {
                    let Some(found) = messages.iter().find(|m| Some(node(m).as_str()) == command.attr("node")) else {
                        return self.reply_error(stanza, StanzaError::new(Condition::ItemNotFound));
                    };
                    match (action, get) {
                        ("view", true) => out.push(self.flagged(found)),
                        ("remove", false) => self.remove(state, &[found.seq]),
                        _ => return self.reply_error(stanza, StanzaError::new(Condition::BadRequest)),
                    }
                }
                _ => return self.reply_error(stanza, StanzaError::new(Condition::BadRequest)),
            }
        }
        let result = el("iq", NS_CLIENT).with("type", "result").with("id", stanza.id.clone().unwrap_or_default());
        out.push(Action::Write(writer::to_bytes(&result.with("to", self.jid.as_str()))));
        out
    }

    /// A stored message as XEP-0013 sends it: marked with its node.
    fn flagged(&self, message: &OfflineMessage) -> Action {
        let marker = format!("<offline xmlns='{NS}'><item node='{}'/></offline></message>", node(message));
        let mut bytes = self.stored_form(message.stanza.clone());
        if bytes.ends_with(b"</message>") {
            bytes.truncate(bytes.len() - b"</message>".len());
            bytes.extend_from_slice(marker.as_bytes());
        }
        Action::Write(bytes)
    }

    fn remove(&self, state: &ServerState, seqs: &[u64]) {
        if let Err(e) = state.store.remove_offline(&self.bare, seqs) {
            tracing::error!(error = %e, "removing offline messages failed");
        }
    }
}

/// The disco#info of the offline node (XEP-0013 §2.2): the number of messages.
pub fn info(count: u64) -> Element {
    let ns_info = crate::modules::disco::NS_INFO;
    let form = el("x", "jabber:x:data")
        .with("type", "result")
        .with_child(
            el("field", "jabber:x:data")
                .with("var", "FORM_TYPE")
                .with("type", "hidden")
                .with_child(el("value", "jabber:x:data").with_text(NS)),
        )
        .with_child(
            el("field", "jabber:x:data")
                .with("var", "number_of_messages")
                .with_child(el("value", "jabber:x:data").with_text(count.to_string())),
        );
    el("query", ns_info)
        .with("node", NS)
        .with_child(el("identity", ns_info).with("category", "automation").with("type", "message-list"))
        .with_child(el("feature", ns_info).with("var", NS))
        .with_child(form)
}

/// The disco#items of the offline node (XEP-0013 §2.3): one header per message.
pub fn headers(owner: &str, messages: &[OfflineMessage]) -> Element {
    let ns_items = crate::modules::disco::NS_ITEMS;
    let mut query = el("query", ns_items).with("node", NS);
    for message in messages {
        let mut item = el("item", ns_items).with("jid", owner).with("node", node(message));
        let sender = std::str::from_utf8(&message.stanza).ok().and_then(|t| t.parse::<Element>().ok());
        if let Some(from) = sender.as_ref().and_then(|m| m.attr("from")) {
            item.set("name", from);
        }
        query.append_child(item);
    }
    query
}
