//! The session's own presence (RFC 6121 §4): initial presence, updates, directed
//! presence, going unavailable, and subscription requests it sends.

use super::{Action, Session};
use crate::core::state::ServerState;
use crate::core::subscription::{self, Refused};
use crate::core::{delivery, presence};
use crate::storage::roster::LastSeen;
use crate::storage::StorageError;
use crate::xml::{writer, Element, ElementExt, NS_CLIENT};
use crate::xmpp::error::{Condition, StanzaError};
use crate::xmpp::stanza::{Kind, PresenceType, Stanza};
use std::sync::Arc;
use xmpp_parsers::jid::Jid;

/// Most entities tracked for directed presence; further ones still get it, untracked.
const MAX_DIRECTED: usize = 1000;

impl Session {
    pub(super) async fn on_presence(&mut self, state: &ServerState, stanza: &Stanza) -> Vec<Action> {
        let Kind::Presence(kind) = stanza.kind else { return Vec::new() };
        use PresenceType::*;
        match (kind, &stanza.to) {
            (Subscribe | Subscribed | Unsubscribe | Unsubscribed, Some(to)) => {
                self.on_subscription(state, stanza, to).await
            }
            (Available | Unavailable, Some(to)) => self.on_directed(state, stanza, kind, to).await,
            (Error, Some(to)) => self.route(state, stanza, to).await,
            (Available, None) => self.on_available(state, stanza).await,
            (Unavailable, None) => {
                if self.priority.is_some() {
                    self.go_unavailable(state, &stanza.element).await;
                }
                Vec::new()
            }
            // Probes are the server's (RFC 6121 §4.3); the rest means nothing without `to`.
            _ => Vec::new(),
        }
    }

    async fn on_subscription(&mut self, state: &ServerState, stanza: &Stanza, to: &Jid) -> Vec<Action> {
        let contact = to.to_bare();
        if contact == self.bare {
            return Vec::new();
        }
        if crate::core::privacy::blocks(state, &self.bare, to).await {
            return self.route(state, stanza, to).await; // answered with the blocking error
        }
        match subscription::handle(state, &self.bare, stanza, &contact).await {
            Ok(()) => Vec::new(),
            Err(Refused::Storage(StorageError::QuotaExceeded(_))) => {
                let full = StanzaError::with_text(Condition::ResourceConstraint, "your roster is full");
                self.reply_error(stanza, full)
            }
            // RFC 6120 §8.3.3.9: a request this server does not keep (it waits, whole,
            // until the contact answers).
            Err(Refused::TooLarge) => {
                let large = StanzaError::with_text(Condition::NotAcceptable, "the subscription request is too large");
                self.reply_error(stanza, large)
            }
            Err(Refused::Storage(e)) => {
                tracing::error!(error = %e, "subscription processing failed");
                self.reply_error(stanza, StanzaError::new(Condition::InternalServerError))
            }
        }
    }

    /// §4.6: presence to one entity; remembered so it learns when we go.
    async fn on_directed(&mut self, state: &ServerState, stanza: &Stanza, kind: PresenceType, to: &Jid) -> Vec<Action> {
        match kind {
            PresenceType::Available if self.directed.len() < MAX_DIRECTED => {
                self.directed.insert(to.clone());
            }
            PresenceType::Unavailable => {
                self.directed.remove(to);
            }
            _ => {}
        }
        self.route(state, stanza, to).await
    }

    /// §4.2 (initial) and §4.4 (update): broadcast, and on the first one learn the
    /// contacts' presence and the subscription requests waiting for us.
    async fn on_available(&mut self, state: &ServerState, stanza: &Stanza) -> Vec<Action> {
        let priority = match priority(&stanza.element) {
            Ok(priority) => priority,
            Err(error) => return self.reply_error(stanza, error),
        };
        let initial = self.priority.is_none();
        // XEP-0160: the backlog goes to the first presence with a non-negative priority.
        let wants_backlog = priority >= 0 && self.priority.is_none_or(|p| p < 0) && self.backlog.is_none();
        self.priority = Some(priority);
        // A client's own `last` was dropped on the way in (router/ingress.rs).
        let presence = Arc::new(stanza.element.clone());
        state.registry.set_presence(&self.jid, self.id, Some((priority, presence.clone())));
        // RFC 6121 §4.2.2 and §4.3.2, in the order a client can rely on: its own echo
        // first, then (on initial presence) the subscription requests waiting for it, then
        // the presence of its contacts and of the account's other resources.
        let echo = presence::broadcast_available(state, &self.jid, &presence, self.id).await;
        let mut actions = vec![Action::Write(self.shown(state, &echo).into())];
        if initial {
            // As many as there are contacts and requests: paced like the backlog, so that
            // a stream-managed client is never sent more than it may hold unacknowledged.
            let requests = subscription::pending_requests(state, &self.bare).await;
            let requests: Vec<Vec<u8>> = requests.iter().map(|request| self.shown(state, request)).collect();
            self.paced.extend(requests);
            let answers = presence::probe_answers(state, &self.jid, self.viewer).await;
            self.paced.extend(answers.iter().map(writer::to_bytes));
        }
        if wants_backlog {
            // Messages to the account queue behind the backlog from now on.
            self.backlog_due = true;
            state.registry.set_draining(&self.jid, self.id, true);
        }
        actions.extend(self.send_paced(state).await);
        actions
    }

    /// `element` as this session's client sees it (the modules' `shown`).
    fn shown(&self, state: &ServerState, element: &Element) -> Vec<u8> {
        let shown = state.modules.shown(element, self.viewer, None);
        writer::to_bytes(shown.as_ref().unwrap_or(element))
    }

    /// §4.5: unavailable goes to subscribers, our resources and directed-presence
    /// recipients; the last resource to go records the account's last-seen time.
    pub(super) async fn go_unavailable(&mut self, state: &ServerState, unavailable: &Element) {
        self.priority = None;
        state.registry.set_presence(&self.jid, self.id, None);
        let mut presence = unavailable.clone(); // a client's own `last` dropped in ingress.rs
        presence.set("type", "unavailable");
        presence.set("from", self.jid.as_str());
        let told = presence::broadcast(state, &self.jid, &presence, Some(self.id)).await;
        for to in std::mem::take(&mut self.directed) {
            if told.contains(&to.to_bare()) {
                continue; // the broadcast reached that contact's available resources
            }
            presence.set("to", to.as_str());
            if let Ok(stanza) = Stanza::parse(presence.clone()) {
                let _ = delivery::route(state, &stanza, &to).await;
            }
        }
        if state.registry.available(&self.bare).is_empty() {
            let status = unavailable.get_child("status", NS_CLIENT).map(|s| s.text());
            let last = LastSeen { at: presence::unix_now(), status };
            if let Err(e) = state.store.set_last_seen(&self.bare, &last).await {
                tracing::error!(error = %e, "recording last seen failed");
            }
        }
    }
}

/// RFC 6121 §4.7.2.3: priority is an integer in −128..=127; absent means 0.
fn priority(presence: &Element) -> Result<i8, StanzaError> {
    match presence.get_child("priority", NS_CLIENT) {
        None => Ok(0),
        Some(p) => {
            p.text().trim().parse::<i8>().map_err(|_| {
                StanzaError::with_text(Condition::BadRequest, "priority must be an integer from -128 to 127")
            })
        }
    }
}
