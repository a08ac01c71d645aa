//! One bound client session as a state machine without sockets:
//! `handle(element, now)`, `deliver(element)` and `tick(now)` return the [`Action`]s the
//! connection task carries out. Time is passed in (tokio's clock, so tests can pause it).

use super::delivery;
use crate::error::{Condition, StanzaError};
use crate::modules::{self, Target};
use crate::stanza::{error_reply, Kind, MessageType, ParseError, PresenceType, Stanza};
use crate::state::ServerState;
use crate::stream::error::{StreamCondition, StreamEnd};
use crate::xml::{el, writer, Element, ElementExt, NS_CLIENT};
use std::time::Duration;
use tokio::time::Instant;
use xmpp_parsers::jid::{BareJid, FullJid, Jid};

#[derive(Debug)]
pub enum Action {
    /// Bytes for this session's own client.
    Write(Vec<u8>),
    /// End the stream.
    End(StreamEnd),
}

pub struct Session {
    pub jid: FullJid,
    bare: BareJid,
    /// The router's id for this session (to tell it from a replacement with the same JID).
    pub id: u64,
    /// `Some(priority)` while available.
    priority: Option<i8>,
    last_inbound: Instant,
    /// The id and send time of our unanswered XEP-0199 ping.
    ping: Option<(String, Instant)>,
    pings_sent: u64,
    ping_interval: Duration,
    ping_timeout: Duration,
}

impl Session {
    pub fn new(state: &ServerState, jid: FullJid, id: u64, now: Instant) -> Session {
        let t = &state.config.timeouts;
        Session {
            bare: jid.to_bare(),
            jid,
            id,
            priority: None,
            last_inbound: now,
            ping: None,
            pings_sent: 0,
            ping_interval: Duration::from_secs(t.ping_interval_secs),
            ping_timeout: Duration::from_secs(t.ping_timeout_secs),
        }
    }

    pub fn is_available(&self) -> bool {
        self.priority.is_some()
    }

    /// An element from our client.
    pub fn handle(&mut self, state: &ServerState, element: Element, now: Instant) -> Vec<Action> {
        self.last_inbound = now;
        self.ping = None; // any traffic proves the client alive
        let mut stanza = match Stanza::parse(element).map_err(|b| *b) {
            Ok(stanza) => stanza,
            Err((ParseError::NotAStanza, el)) => {
                let text = format!("<{}/> in {} is not a stanza", el.name(), el.ns());
                return vec![Action::End(StreamEnd::error(StreamCondition::UnsupportedStanzaType, text))];
            }
            Err((ParseError::Invalid(error), el)) => return self.reject(&el, &error),
        };
        // RFC 6120 §8.1.2.1: the server stamps `from`; anything but our own JID is refused.
        if let Some(from) = &stanza.from {
            let own = match from.try_as_full() {
                Ok(full) => *full == self.jid,
                Err(bare) => *bare == self.bare,
            };
            if !own {
                let text = format!("{from} is not {}", self.jid);
                return vec![Action::End(StreamEnd::error(StreamCondition::InvalidFrom, text))];
            }
        }
        stanza.set_from(Jid::from(self.jid.clone()));
        match stanza.kind {
            Kind::Iq(_) => self.on_iq(state, &stanza),
            Kind::Message(_) => self.on_message(state, &stanza),
            Kind::Presence(_) => self.on_presence(state, &stanza),
        }
    }

    /// A stanza the router delivered to us.
    pub fn deliver(&mut self, element: &Element) -> Vec<Action> {
        vec![Action::Write(writer::to_bytes(element))]
    }

    /// When `tick` next has something to do.
    pub fn deadline(&self) -> Instant {
        match &self.ping {
            Some((_, sent)) => *sent + self.ping_timeout,
            None => self.last_inbound + self.ping_interval,
        }
    }

    /// XEP-0199 §4.2: ping a client that has been quiet; end it if it never answers.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        if now < self.deadline() {
            return Vec::new();
        }
        if self.ping.is_some() {
            let text = "no answer to ping";
            return vec![Action::End(StreamEnd::error(StreamCondition::ConnectionTimeout, text))];
        }
        self.pings_sent += 1;
        let id = format!("ping-{}", self.pings_sent);
        let ping = el("iq", NS_CLIENT)
            .with("type", "get")
            .with("id", id.as_str())
            .with("from", self.bare.domain().as_str())
            .with("to", self.jid.as_str())
            .with_child(el("ping", modules::ping::NS));
        self.ping = Some((id, now));
        vec![Action::Write(writer::to_bytes(&ping))]
    }

    /// What the session leaves behind when it ends (RFC 6121 §4.5.3.2, as far as this
    /// server tracks presence yet): our other resources learn we went away.
    pub fn on_end(&mut self, state: &ServerState) {
        state.router.unbind(&self.jid, self.id);
        if self.priority.take().is_some() {
            let unavailable = el("presence", NS_CLIENT).with("type", "unavailable").with("from", self.jid.as_str());
            self.echo_to_own_resources(state, &unavailable);
        }
    }

    fn reject(&self, element: &Element, error: &StanzaError) -> Vec<Action> {
        if element.attr("type") == Some("error") {
            return Vec::new();
        }
        let mut reply = error_reply(element, error);
        reply.set("to", self.jid.as_str());
        vec![Action::Write(writer::to_bytes(&reply))]
    }

    fn reply_error(&self, stanza: &Stanza, error: StanzaError) -> Vec<Action> {
        match stanza.error_reply(&error) {
            Some(reply) => vec![Action::Write(writer::to_bytes(&reply))],
            None => Vec::new(),
        }
    }

    fn route(&self, state: &ServerState, stanza: &Stanza, to: &Jid) -> Vec<Action> {
        match delivery::route(state, stanza, to) {
            Ok(()) => Vec::new(),
            Err(error) => self.reply_error(stanza, error),
        }
    }

    /// Whom an iq is for, when the server answers it; None when it is routed.
    fn iq_target(&self, state: &ServerState, to: Option<&Jid>) -> Option<Target> {
        match to {
            None => Some(Target::Account(self.bare.clone())),
            Some(jid) if jid.node().is_none() && jid.resource().is_none() => {
                let domain = jid.domain().as_str();
                state.config.serves(domain).then(|| Target::Server(domain.to_owned()))
            }
            Some(jid) if jid.resource().is_none() && state.config.serves(jid.domain().as_str()) => {
                Some(Target::Account(jid.to_bare()))
            }
            Some(_) => None,
        }
    }

    fn on_iq(&mut self, state: &ServerState, stanza: &Stanza) -> Vec<Action> {
        if let Some(target) = self.iq_target(state, stanza.to.as_ref()) {
            return match modules::handle_iq(state, &self.jid, &target, stanza) {
                Some(reply) => vec![Action::Write(writer::to_bytes(&reply))],
                None => Vec::new(),
            };
        }
        match &stanza.to {
            Some(to) => self.route(state, stanza, to),
            None => Vec::new(),
        }
    }

    fn on_message(&mut self, state: &ServerState, stanza: &Stanza) -> Vec<Action> {
        // RFC 6120 §10.3.1: no `to` means our own bare JID.
        let to = stanza.to.clone().unwrap_or_else(|| Jid::from(self.bare.clone()));
        if to.node().is_none() && to.resource().is_none() && state.config.serves(to.domain().as_str()) {
            // The server itself takes no messages.
            return match stanza.kind {
                Kind::Message(MessageType::Error | MessageType::Headline) => Vec::new(),
                _ => self.reply_error(stanza, StanzaError::new(Condition::ServiceUnavailable)),
            };
        }
        self.route(state, stanza, &to)
    }

    fn on_presence(&mut self, state: &ServerState, stanza: &Stanza) -> Vec<Action> {
        let Kind::Presence(kind) = stanza.kind else {
            return Vec::new();
        };
        if let Some(to) = &stanza.to {
            return self.route(state, stanza, to);
        }
        match kind {
            PresenceType::Available => match priority(&stanza.element) {
                Ok(priority) => {
                    self.priority = Some(priority);
                    state.router.set_priority(&self.jid, self.id, Some(priority));
                    self.echo_to_own_resources(state, &stanza.element);
                    Vec::new()
                }
                Err(error) => self.reply_error(stanza, error),
            },
            PresenceType::Unavailable => {
                self.priority = None;
                state.router.set_priority(&self.jid, self.id, None);
                self.echo_to_own_resources(state, &stanza.element);
                Vec::new()
            }
            // Subscription states without a `to` have no meaning; probes are the server's.
            _ => Vec::new(),
        }
    }

    /// RFC 6121 §4.2.2: our presence goes to all our available resources, ourselves included.
    fn echo_to_own_resources(&self, state: &ServerState, presence: &Element) {
        for resource in state.router.resources(&self.bare) {
            if resource.priority.is_none() && resource.handle.id != self.id {
                continue;
            }
            let mut copy = presence.clone();
            copy.set("to", resource.jid.as_str());
            if resource.handle.deliver(copy).is_err() {
                tracing::debug!(to = %resource.jid, "own presence not delivered");
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

#[cfg(test)]
mod tests;
