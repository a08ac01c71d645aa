//! XEP-0013 flexible offline retrieval: a client that uses it before its initial
//! presence reads, views and removes its stored messages itself, and gets no automatic
//! flood at login (the messages stay until it removes or purges them).

use super::{Action, Session};
use crate::core::offline;
use crate::core::state::ServerState;
use crate::storage::offline::{Batch, OfflineMessage};
use crate::xml::{writer, Element};
use crate::xmpp::error::{Condition, StanzaError};
use crate::xmpp::stanza::{IqType, Kind, Stanza};

use crate::modules::offline::node;
pub use crate::modules::offline::NS;

impl Session {
    pub(super) async fn on_flexible_offline(
        &mut self,
        state: &ServerState,
        stanza: &Stanza,
        payload: &Element,
    ) -> Vec<Action> {
        self.flexible_offline = true;
        let get = stanza.kind == Kind::Iq(IqType::Get);
        // What one request may hand over in all, however many commands it holds.
        let mut budget = self.request_budget();
        let mut out = Vec::new();
        for command in payload.children() {
            let done = match (command.name(), command.attr("action"), get) {
                ("fetch", _, true) => self.fetch(state, &mut budget).await.map(|shown| out.extend(shown)),
                ("purge", _, false) => self.purge(state).await,
                ("item", Some(action), _) => match (action, get) {
                    ("view", true) => {
                        let first = out.is_empty();
                        self.view(state, command.attr("node"), &mut budget, first).await.map(|shown| out.push(shown))
                    }
                    ("remove", false) => self.remove_item(state, command.attr("node")).await,
                    _ => Err(StanzaError::new(Condition::BadRequest)),
                },
                _ => Err(StanzaError::new(Condition::BadRequest)),
            };
            if let Err(error) = done {
                return self.reply_error(stanza, error);
            }
        }
        let result = crate::xmpp::stanza::result_reply(&stanza.element, Some(self.jid.as_str()));
        out.push(Action::Write(writer::to_bytes(&result).into()));
        out
    }

    /// One batch the client can take: what a request may hand over in all.
    fn request_budget(&self) -> Batch {
        let room = self.reply_room();
        Batch { messages: room.messages.min(offline::BATCH.messages), bytes: room.bytes.min(offline::BATCH.bytes) }
    }

    /// §2.4: the stored messages, oldest first, as many as one batch the client can take
    /// holds (a client purges them and fetches again for more; disco#info counts them).
    /// Once per request: a second would hand over the same messages again.
    async fn fetch(&mut self, state: &ServerState, budget: &mut Batch) -> Result<Vec<Action>, StanzaError> {
        if budget.messages == 0 {
            return Err(StanzaError::with_text(Condition::PolicyViolation, "one fetch per request"));
        }
        let messages = offline::deliverable(state, &self.bare, *budget).await.map_err(fault)?;
        *budget = Batch { messages: 0, bytes: 0 };
        self.mark_shown(state, messages.iter().map(|m| m.seq));
        Ok(messages.iter().map(|m| self.flagged(state, m)).collect())
    }

    /// §2.5.2: one message by its node, within what the request may still hand over (the
    /// first always goes).
    async fn view(
        &mut self,
        state: &ServerState,
        node: Option<&str>,
        budget: &mut Batch,
        first: bool,
    ) -> Result<Action, StanzaError> {
        let message = self.stored(state, node).await?;
        if !first && (budget.messages == 0 || message.stanza.len() > budget.bytes) {
            let text = "more than one batch of stored messages in one request";
            return Err(StanzaError::with_text(Condition::ResourceConstraint, text));
        }
        budget.messages = budget.messages.saturating_sub(1);
        budget.bytes = budget.bytes.saturating_sub(message.stanza.len());
        self.mark_shown(state, [message.seq]);
        Ok(self.flagged(state, &message))
    }

    /// Remembers what the client was shown, at most as many as the account may store: a
    /// message another resource removed meanwhile stays in the set, and the oldest go first.
    fn mark_shown(&mut self, state: &ServerState, seqs: impl IntoIterator<Item = u64>) {
        self.flexible_shown.extend(seqs);
        let cap = usize::try_from(state.config.limits.offline_quota).unwrap_or(usize::MAX);
        while self.flexible_shown.len() > cap {
            self.flexible_shown.pop_first();
        }
    }

    /// §2.5.3: one message by its node, shown or not (the client names it).
    async fn remove_item(&mut self, state: &ServerState, node: Option<&str>) -> Result<(), StanzaError> {
        let message = self.stored(state, node).await?;
        self.flexible_shown.remove(&message.seq);
        self.remove(state, &[message.seq]).await
    }

    /// §2.6: "remove all messages": those this client was shown. A message that arrived
    /// after its fetch was never seen by it and stays, for its next fetch.
    async fn purge(&mut self, state: &ServerState) -> Result<(), StanzaError> {
        let shown: Vec<u64> = std::mem::take(&mut self.flexible_shown).into_iter().collect();
        self.remove(state, &shown).await
    }

    async fn stored(&self, state: &ServerState, node: Option<&str>) -> Result<OfflineMessage, StanzaError> {
        let seq = node.and_then(|n| n.parse::<u64>().ok()).ok_or(StanzaError::new(Condition::ItemNotFound))?;
        let message = state.store.offline_message(&self.bare, seq).await.map_err(fault)?;
        let message = message.ok_or(StanzaError::new(Condition::ItemNotFound))?;
        // XEP-0191 §3.5: a sender blocked since it was stored is never shown.
        if offline::from_blocked(state, &self.bare, &message).await {
            self.remove(state, &[message.seq]).await?;
            return Err(StanzaError::new(Condition::ItemNotFound));
        }
        Ok(message)
    }

    /// A stored message as XEP-0013 sends it: marked with its node.
    fn flagged(&self, state: &ServerState, message: &OfflineMessage) -> Action {
        let marker = format!("<offline xmlns='{NS}'><item node='{}'/></offline></message>", node(message));
        let mut bytes = state.modules.shown_stored(message.stanza.clone(), self.viewer);
        if bytes.ends_with(b"</message>") {
            bytes.truncate(bytes.len() - b"</message>".len());
            bytes.extend_from_slice(marker.as_bytes());
        }
        Action::Write(bytes.into())
    }

    async fn remove(&self, state: &ServerState, seqs: &[u64]) -> Result<(), StanzaError> {
        state.store.remove_offline(&self.bare, seqs).map(|_| ()).await.map_err(fault)
    }
}

fn fault(e: crate::storage::StorageError) -> StanzaError {
    StanzaError::new(crate::core::module::storage_fault(e))
}
