//! One bound client session as a state machine without sockets:
//! `handle(element, now)`, `deliver(element)` and `tick(now)` return the [`Action`]s the
//! connection task carries out. Time is passed in (tokio's clock, so tests can pause it).

use crate::c2s::error::{StreamCondition, StreamEnd};
use crate::core::held::Held;
use crate::core::module::{self, Answer, Request, Slots, Target, Viewer};
use crate::core::state::ServerState;
use crate::core::{delivery, offline, Delivery};
use crate::storage::offline::Batch;
use crate::xml::{el, writer, Element, ElementExt, NS_CLIENT};
use crate::xmpp::error::{Condition, StanzaError};
use crate::xmpp::stanza::{error_reply, Kind, MessageType, ParseError, Stanza};
pub use out::Out;
use std::time::Duration;
use tokio::time::Instant;
use xmpp_parsers::jid::{BareJid, FullJid, Jid};

#[derive(Debug)]
pub enum Action {
    /// A stanza for this session's own client (counted by stream management).
    Write(Out),
    /// Bytes written as they are, never counted: stream-level elements, and stanzas
    /// resent after a resumption (counted when first sent).
    Send(Out),
    /// End the stream.
    End(StreamEnd),
    /// Replies a module answers later (its handler awaits storage): written before the
    /// next stanza from this client is handled (RFC 6120 §10.1, in order).
    Await(Box<crate::core::module::Pending>),
    /// Something was stored (offline, in flight): make it durable before anything more is
    /// written to this client and before waiting for its next stanza, so whatever the
    /// client learns afterwards (an answer, an ack) comes after it. Stanzas the client
    /// already sent are handled meanwhile: their stores share one flush.
    AwaitDurable,
}

pub struct Session {
    pub jid: FullJid,
    bare: BareJid,
    /// The router's id for this session (to tell it from a replacement with the same JID).
    pub id: u64,
    /// `Some(priority)` while available.
    priority: Option<i8>,
    /// Numbers the ids of what the server itself sends this client.
    ids_issued: u64,
    /// Entities we sent directed presence to while available (RFC 6121 §4.6): they get
    /// our unavailable presence when we go.
    directed: std::collections::HashSet<Jid>,
    /// How this session sees stanzas (modules set its flags: the dialect's `<enable/>`).
    viewer: Viewer,
    /// XEP-0198: the connection is gone, the session waits for a resumption; presence
    /// updates wait in `held`. (While the client is inactive, XEP-0352, the CSI module
    /// holds them.)
    detached: bool,
    /// Presence held while detached, the latest per sender.
    held: Held,
    /// The offline batch sent and not yet acknowledged.
    backlog: Option<offline::Backlog>,
    /// What the server chose to send waits for the client to acknowledge what it holds
    /// (XEP-0198): it goes on its `<a/>` (`send_paced`).
    waits_for_room: bool,
    /// Stanzas initial presence brought (requests, contacts' presence), waiting for room.
    paced: std::collections::VecDeque<Vec<u8>>,
    /// The offline backlog starts once `paced` is out.
    backlog_due: bool,
    last_inbound: Instant,
    /// The id and send time of our unanswered XEP-0199 ping.
    ping: Option<(String, Instant)>,
    ping_interval: Duration,
    ping_timeout: Duration,
    /// XEP-0198, once the client enabled it.
    sm: Option<sm::StreamManagement>,
    /// Live messages written to a client without stream management and not yet answered
    /// for; allocated with the first one (an idle session keeps a pointer).
    receipts: Option<Box<receipts::Receipts>>,
    /// The modules' state for this session, allocated on first use.
    slots: Slots,
    /// Where a resumption reaches this session's task, and the registry that finds it.
    pub resumable: Option<crate::c2s::resume::Resumable>,
}

impl Session {
    pub fn new(state: &ServerState, jid: FullJid, id: u64, now: Instant) -> Session {
        let t = &state.config.timeouts;
        Session {
            bare: jid.to_bare(),
            jid,
            id,
            priority: None,
            ids_issued: 0,
            directed: std::collections::HashSet::new(),
            viewer: Viewer::default(),
            detached: false,
            held: Held::default(),
            backlog: None,
            waits_for_room: false,
            paced: Default::default(),
            backlog_due: false,
            last_inbound: now,
            ping: None,
            ping_interval: Duration::from_secs(t.ping_interval_secs),
            ping_timeout: Duration::from_secs(t.ping_timeout_secs),
            sm: None,
            receipts: None,
            slots: Slots::default(),
            resumable: None,
        }
    }

    /// An element from our client.
    pub async fn handle(&mut self, state: &ServerState, element: Element, now: Instant) -> Vec<Action> {
        self.last_inbound = now;
        self.ping = None; // any traffic proves the client alive
        if element.has_ns(sm::NS) {
            return self.on_stream_management(state, &element, now).await;
        }
        let counted = match element.has_ns(NS_CLIENT) {
            true => sm::counts(&element),
            false => state.modules.stands_for_stanza(&element),
        };
        let actions = self.handle_element(state, element).await;
        if let Some(sm) = self.sm.as_mut().filter(|_| counted) {
            sm.received();
        }
        self.track(actions, None, now)
    }

    async fn handle_element(&mut self, state: &ServerState, mut element: Element) -> Vec<Action> {
        // Not a stanza of RFC 6120: a module's element (XEP-0352's `<active/>`), or one a
        // module turns into the stanza it stands for (a dialect `<receipt/>`).
        if !element.has_ns(NS_CLIENT) {
            if let Some(actions) = self.module_element(state, &element).await {
                return actions;
            }
            if let Err(error) = state.modules.stanza_from_client(&mut element, self.viewer, self.id) {
                return self.reject(&element, &error);
            }
        }
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
        if let Err(error) = state.modules.inbound(state, &self.bare, &mut stanza, &mut self.slots).await {
            return self.reject(&stanza.element, &error);
        }
        if self.backlog.as_ref().is_some_and(|b| offline::is_ack(&stanza.element, b)) && to_the_server(state, &stanza) {
            return self.backlog_acknowledged(state).await;
        }
        if self.answers_receipt(state, &stanza) {
            return Vec::new();
        }
        match stanza.kind {
            Kind::Iq(_) => self.on_iq(state, &stanza).await,
            Kind::Message(_) => self.on_message(state, &stanza).await,
            Kind::Presence(_) => self.on_presence(state, &stanza).await,
        }
    }

    /// What the module that took `element` writes, or why the stream ends; None when no
    /// module took it.
    async fn module_element(&mut self, state: &ServerState, element: &Element) -> Option<Vec<Action>> {
        let client = module::Client {
            state,
            jid: &self.jid,
            session: self.id,
            viewer: &mut self.viewer,
            slots: &mut self.slots,
        };
        Some(match state.modules.element(element, client)?.await {
            Ok(writes) => {
                let stream = writes.stream.into_iter().map(|bytes| Action::Send(bytes.into()));
                stream.chain(writes.stanzas.into_iter().map(|bytes| Action::Write(bytes.into()))).collect()
            }
            Err(text) => vec![Action::End(StreamEnd::error(StreamCondition::UnsupportedStanzaType, text))],
        })
    }

    /// Awaits the replies modules answer later, in place, as writes counted like any other
    /// (the caller awaits this before it handles the client's next stanza).
    pub async fn resolved(&mut self, actions: Vec<Action>) -> Vec<Action> {
        let mut out = Vec::with_capacity(actions.len());
        for action in actions {
            match action {
                Action::Await(pending) => {
                    let replies = pending.replies().await;
                    let writes = replies.iter().map(|reply| Action::Write(writer::to_bytes(reply).into())).collect();
                    out.extend(self.track(writes, None, Instant::now()));
                }
                other => out.push(other),
            }
        }
        out
    }

    /// Counts the stanzas among `actions` for stream management (the first one carrying
    /// `inflight`), and asks for an acknowledgement when one is due, or when deliveries or
    /// the backlog wait for one.
    fn track(&mut self, mut actions: Vec<Action>, mut inflight: Option<u64>, now: Instant) -> Vec<Action> {
        let waits_for_room = self.waits_for_room;
        let Some(sm) = self.sm.as_mut() else { return actions };
        for action in &actions {
            if let Action::Write(bytes) = action {
                sm.track(bytes.clone(), inflight.take(), now);
            }
        }
        let waiting = (sm.full() || waits_for_room) && !sm.unacked.is_empty() && !sm.awaiting_ack();
        if sm.over_limit() {
            let text = "too many stanzas left unacknowledged";
            actions.push(Action::End(StreamEnd::error(StreamCondition::ResourceConstraint, text)));
        } else if sm.should_request(now) || waiting {
            sm.requested(now);
            actions.push(Action::Send(format!("<r xmlns='{}'/>", sm::NS).into_bytes().into()));
        }
        actions
    }

    /// Whether the session takes deliveries from its queue now. A stream-managed session
    /// at its bounds of unacknowledged stanzas does not: they wait for the client's `<a/>`
    /// (and a queue that fills meanwhile ends the session, its messages kept offline).
    pub fn accepts_deliveries(&self) -> bool {
        self.sm.as_ref().is_none_or(|sm| !sm.full()) && self.receipts.as_ref().is_none_or(|r| !r.full())
    }

    /// A live message written to a client without stream management: kept until it
    /// answers a ping sent after it. (With stream management, its unacknowledged queue
    /// keeps it.)
    fn keep_until_answered(&mut self, state: &ServerState, message: &std::sync::Arc<[u8]>, now: Instant) {
        if self.sm.is_some() {
            return;
        }
        let bounds = &state.config.stream_management;
        let receipts = self
            .receipts
            .get_or_insert_with(|| Box::new(receipts::Receipts::new(bounds.max_unacked, bounds.max_unacked_bytes)));
        receipts.written(message, now);
    }

    /// The ping that confirms the live messages written so far, when one is due.
    fn receipt_ping(&mut self, now: Instant) -> Option<Action> {
        if !self.receipts.as_ref().is_some_and(|r| r.ping_due(now)) {
            return None;
        }
        let id = self.next_id("delivered");
        let ping = self.ping_from_server(&id);
        self.receipts.as_mut()?.pinged(id, now);
        Some(Action::Write(ping.into()))
    }

    /// Whether `stanza` answers one of our receipt pings (a result or an error: RFC 6120
    /// §10.1 makes either a receipt for everything before the ping).
    fn answers_receipt(&mut self, state: &ServerState, stanza: &Stanza) -> bool {
        let answer =
            matches!(stanza.kind, Kind::Iq(crate::xmpp::stanza::IqType::Result | crate::xmpp::stanza::IqType::Error))
                && to_the_server(state, stanza);
        let (Some(receipts), Some(id), true) = (self.receipts.as_mut(), stanza.id.as_deref(), answer) else {
            return false;
        };
        receipts.answered(id)
    }

    /// At shutdown: a ping after every live message not yet answered for, if some were
    /// written since the last one (or the last one's answer is awaited: then None).
    pub fn last_receipt_ping(&mut self, now: Instant) -> Option<Action> {
        let receipts = self.receipts.as_mut()?;
        receipts.hurry();
        self.receipt_ping(now)
    }

    /// Whether live messages wait for the client to answer a ping sent after them.
    pub fn awaits_receipt(&self) -> bool {
        self.receipts.as_ref().is_some_and(|r| !r.is_empty())
    }

    /// What the client never answered for, oldest first, when the session ends.
    pub fn take_unconfirmed(&mut self) -> Vec<Vec<u8>> {
        self.receipts.as_mut().map(|r| r.take()).unwrap_or_default()
    }

    /// What a batch the server chooses to send this client may hold now (offline backlog,
    /// XEP-0013 fetch, archive page): at most [`offline::BATCH`], within the room a
    /// stream-managed client has for unacknowledged stanzas. None: no room until the client
    /// acknowledges.
    fn batch_room(&self) -> Option<Batch> {
        let room = match &self.sm {
            Some(sm) => sm.room()?,
            None => offline::BATCH,
        };
        Some(Batch {
            messages: room.messages.min(offline::BATCH.messages),
            bytes: room.bytes.min(offline::BATCH.bytes),
        })
    }

    /// A batch the client asked for (an XEP-0013 fetch, an archive page): one stanza at
    /// least, even when it has no room left (the answer is its own request's).
    fn reply_room(&self) -> Batch {
        self.batch_room().unwrap_or(Batch { messages: 1, bytes: 1 })
    }

    /// Presence held while detached, now due.
    fn release_held(&mut self) -> Vec<Action> {
        self.held.take().into_iter().map(|bytes| Action::Write(bytes.into())).collect()
    }

    /// Sends the next batch of offline messages, if any, followed by the ping whose
    /// answer acknowledges it.
    pub(super) async fn send_backlog(&mut self, state: &ServerState) -> Vec<Action> {
        // A client that retrieves by itself (XEP-0013, `modules/offline/`) gets none.
        if state.modules.retrieves_offline_itself(&self.slots) {
            state.registry.set_draining(&self.jid, self.id, false);
            self.backlog = None;
            return Vec::new();
        }
        let Some(room) = self.batch_room() else {
            // XEP-0198: the client holds as much unacknowledged as a batch may take: the
            // next one follows its `<a/>` (an ack is asked for), never a batch that its
            // session could not keep. Messages to the account keep queueing behind it.
            self.waits_for_room = true;
            self.backlog_due = true;
            state.registry.set_draining(&self.jid, self.id, true);
            return Vec::new();
        };
        self.waits_for_room = false;
        let ack_id = self.next_id("offline");
        let (mut stanzas, mut backlog) = offline::next_batch(state, &self.bare, ack_id.clone(), room).await;
        if backlog.is_none() {
            // A message stored while this session was draining woke nobody (it was to be
            // in the next batch): a second look once the flag is down sees it, and one
            // stored after that wakes this session.
            state.registry.set_draining(&self.jid, self.id, false);
            (stanzas, backlog) = offline::next_batch(state, &self.bare, ack_id.clone(), room).await;
        }
        state.registry.set_draining(&self.jid, self.id, backlog.is_some());
        let mut actions = Vec::with_capacity(stanzas.len() + 1);
        for bytes in stanzas {
            actions.push(Action::Write(state.modules.shown_stored(bytes, self.viewer).await.into()));
        }
        if backlog.is_some() {
            // Its answer acknowledges the batch: a client answers stanzas in order.
            actions.push(Action::Write(self.ping_from_server(&ack_id).into()));
        }
        self.backlog = backlog;
        actions
    }

    /// What the server chose to send, as the client's room allows (XEP-0198: within half its
    /// unacknowledged bounds, at least one stanza when nothing is unacknowledged; without
    /// stream management, all at once): what initial presence brought, then the backlog.
    pub(super) async fn send_paced(&mut self, state: &ServerState) -> Vec<Action> {
        let mut actions = Vec::new();
        if !self.paced.is_empty() {
            let room = match &self.sm {
                Some(sm) => sm.room(),
                None => Some(Batch { messages: usize::MAX, bytes: usize::MAX }),
            };
            let Some(room) = room else {
                self.waits_for_room = true;
                return actions;
            };
            let (mut count, mut size) = (0, 0);
            while let Some(next) = self.paced.pop_front() {
                if !room.takes(count, size, next.len()) {
                    self.paced.push_front(next);
                    self.waits_for_room = true;
                    return actions;
                }
                (count, size) = (count + 1, size + next.len());
                actions.push(Action::Write(next.into()));
            }
            self.paced = Default::default(); // gives its buffer back
        }
        self.waits_for_room = false;
        if std::mem::take(&mut self.backlog_due) {
            actions.extend(self.send_backlog(state).await);
        }
        actions
    }

    /// A message was stored for the account while this session was available and idle:
    /// deliver it as a backlog batch.
    async fn wake(&mut self, state: &ServerState) -> Vec<Action> {
        if self.backlog.is_some() || self.waits_for_room || self.priority.is_none_or(|p| p < 0) {
            return Vec::new();
        }
        self.send_backlog(state).await
    }

    async fn backlog_acknowledged(&mut self, state: &ServerState) -> Vec<Action> {
        if let Some(backlog) = self.backlog.take() {
            offline::acknowledged(state, &self.bare, &backlog).await;
        }
        self.send_backlog(state).await
    }

    /// A fresh id for something the server sends this client: `prefix-N`.
    fn next_id(&mut self, prefix: &str) -> String {
        self.ids_issued += 1;
        format!("{prefix}-{}", self.ids_issued)
    }

    /// What the router delivered to us.
    pub async fn deliver(&mut self, state: &ServerState, delivery: &Delivery, now: Instant) -> Vec<Action> {
        if let Delivery::Kept { inflight, bytes } = delivery {
            if self.sm.is_none() {
                // Not stream-managed (cannot happen: only managed sessions get these).
                forget_inflight(state, &[*inflight]).await;
            }
            return self.track(vec![Action::Write(Out::Shared(bytes.clone()))], Some(*inflight), now);
        }
        let mut actions = self.deliver_unkept(state, delivery, now).await;
        actions.extend(self.receipt_ping(now));
        self.track(actions, None, now)
    }

    async fn deliver_unkept(&mut self, state: &ServerState, delivery: &Delivery, now: Instant) -> Vec<Action> {
        match delivery {
            Delivery::Message(bytes) => {
                self.keep_until_answered(state, bytes, now);
                vec![Action::Write(Out::Shared(bytes.clone()))]
            }
            Delivery::Bytes(bytes) => {
                // A module may keep it (CSI holds presence while the client is inactive).
                let due = match state.modules.delivering(delivery, &mut self.slots) {
                    module::Delivering::Held(due) => due,
                    module::Delivering::Dropped => Vec::new(),
                    // Presence waits (the latest per sender) while the connection is gone and
                    // the session waits for a resumption.
                    module::Delivering::Pass => match self.detached.then(|| Held::sender(bytes)).flatten() {
                        Some(from) => self.held.hold(from, bytes.to_vec()),
                        None => return vec![Action::Write(Out::Shared(bytes.clone()))],
                    },
                };
                due.into_iter().map(|bytes| Action::Write(bytes.into())).collect()
            }
            // Only to a client that fetched that list (the roster and blocking modules).
            Delivery::Push(_, payload) => match state.modules.delivering(delivery, &mut self.slots) {
                module::Delivering::Pass => {
                    let id = self.next_id("push");
                    let push = crate::modules::push_iq(self.jid.as_str(), &id, payload);
                    vec![Action::Write(writer::to_bytes(&push).into())]
                }
                module::Delivering::Held(due) => due.into_iter().map(|bytes| Action::Write(bytes.into())).collect(),
                module::Delivering::Dropped => Vec::new(),
            },
            Delivery::Kept { .. } => Vec::new(),
            Delivery::Wake => self.wake(state).await,
        }
    }

    /// When `tick` next has something to do.
    pub fn deadline(&self) -> Instant {
        let ping = match &self.ping {
            Some((_, sent)) => *sent + self.ping_timeout,
            None => self.last_inbound + self.ping_interval,
        };
        let receipts = self.receipts.as_ref().and_then(|r| r.deadline(self.ping_timeout)).map_or(ping, |r| r.min(ping));
        self.sm.as_ref().and_then(|sm| sm.deadline()).map_or(receipts, |sm| sm.min(receipts))
    }

    /// XEP-0199 §4.2: ping a client that has been quiet; end it if it never answers.
    /// XEP-0198: ask for an acknowledgement that is due; end if one never comes.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        if let Some(sm) = &self.sm {
            if sm.request_expired(now) {
                let text = "no acknowledgement of our stanzas";
                return vec![Action::End(StreamEnd::error(StreamCondition::ConnectionTimeout, text))];
            }
        }
        // What it was sent goes offline (`receipts.rs`).
        if self.receipts.as_ref().is_some_and(|r| r.expired(now, self.ping_timeout)) {
            let text = "no answer to the ping after its messages";
            return vec![Action::End(StreamEnd::error(StreamCondition::ConnectionTimeout, text))];
        }
        let mut pinged = self.ping_if_due(now);
        pinged.extend(self.receipt_ping(now));
        self.track(pinged, None, now)
    }

    fn ping_if_due(&mut self, now: Instant) -> Vec<Action> {
        let ping_due = match &self.ping {
            Some((_, sent)) => *sent + self.ping_timeout,
            None => self.last_inbound + self.ping_interval,
        };
        if now < ping_due {
            return Vec::new();
        }
        if self.ping.is_some() {
            let text = "no answer to ping";
            return vec![Action::End(StreamEnd::error(StreamCondition::ConnectionTimeout, text))];
        }
        let id = self.next_id("ping");
        let ping = self.ping_from_server(&id);
        self.ping = Some((id, now));
        vec![Action::Write(ping.into())]
    }

    /// An XEP-0199 ping from the server to this client.
    fn ping_from_server(&self, id: &str) -> Vec<u8> {
        let ping = el("iq", NS_CLIENT)
            .with("type", "get")
            .with("id", id)
            .with("from", self.bare.domain().as_str())
            .with("to", self.jid.as_str())
            .with_child(el("ping", crate::modules::ping::NS));
        writer::to_bytes(&ping)
    }

    /// RFC 6121 §4.5.2: a session that ends while available (with or without a word)
    /// goes unavailable for everyone who saw it.
    pub async fn on_end(&mut self, state: &ServerState) {
        // A replaced session's departure was announced when it was replaced.
        if self.priority.is_some() && state.registry.owns(&self.jid, self.id) {
            let unavailable = el("presence", NS_CLIENT).with("type", "unavailable");
            self.go_unavailable(state, &unavailable).await;
        }
        state.registry.unbind(&self.jid, self.id);
        let _ = state.modules.session_event(module::SessionEvent::Ended, &mut self.slots);
        let resume_id = self.sm.as_ref().and_then(|sm| sm.resume_id.as_deref());
        if let (Some(id), Some(resumable)) = (resume_id, &self.resumable) {
            let keep = Duration::from_secs(state.config.stream_management.resume_timeout_secs.max(60));
            // XEP-0198 §5: a later `<failed h=''/>` would acknowledge what the client sent;
            // when storage failed, that may not be on disk: the resumption is then unknown.
            let inbound = self.sm.as_ref().map_or(0, |sm| sm.inbound);
            let h = state.flusher.failure().is_none().then_some(inbound);
            resumable.registry.ended(id, h, keep);
        }
    }

    fn reject(&self, element: &Element, error: &StanzaError) -> Vec<Action> {
        log_refusal(element, error);
        if !crate::xmpp::stanza::answerable(element) {
            return Vec::new();
        }
        let mut reply = error_reply(element, error);
        reply.set("to", self.jid.as_str());
        vec![Action::Write(writer::to_bytes(&reply).into())]
    }

    fn reply_error(&self, stanza: &Stanza, error: StanzaError) -> Vec<Action> {
        log_refusal(&stanza.element, &error);
        match stanza.error_reply(&error) {
            Some(reply) => vec![Action::Write(writer::to_bytes(&reply).into())],
            None => Vec::new(),
        }
    }

    async fn route(&self, state: &ServerState, stanza: &Stanza, to: &Jid) -> Vec<Action> {
        // XEP-0191 §3.6: nothing goes to those we blocked.
        if crate::core::privacy::blocks(state, &self.bare, to).await {
            return match stanza.error_reply(&crate::core::privacy::blocked_error()) {
                Some(mut reply) => {
                    if let Some(error) = reply.get_child_mut("error", NS_CLIENT) {
                        // XEP-0191 §3.6 gives this error type `cancel`.
                        error.set("type", "cancel");
                        error.append_child(crate::core::privacy::blocked_condition());
                    }
                    vec![Action::Write(writer::to_bytes(&reply).into())]
                }
                None => Vec::new(),
            };
        }
        match delivery::route(state, stanza, to).await {
            Ok(delivery::Routed::Delivered) => Vec::new(),
            Ok(delivery::Routed::Stored) => vec![Action::AwaitDurable],
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

    async fn on_iq(&mut self, state: &ServerState, stanza: &Stanza) -> Vec<Action> {
        let Some(target) = self.iq_target(state, stanza.to.as_ref()) else {
            return match &stanza.to {
                Some(to) => self.route(state, stanza, to).await,
                None => Vec::new(),
            };
        };
        // Results and errors addressed to the server are absorbed.
        let Some(payload) = stanza.element.children().next().filter(|_| stanza.kind.is_request()) else {
            return Vec::new();
        };
        if payload.is("bind", crate::xml::NS_BIND) {
            // RFC 6120 §7.7.2.1: one resource per stream, bound already.
            return self.reply_error(stanza, StanzaError::new(Condition::NotAllowed));
        }
        let mut request = Request {
            state,
            sender: &self.jid,
            session: self.id,
            target: &target,
            stanza,
            payload,
            viewer: self.viewer,
            room: self.reply_room(),
            slots: &mut self.slots,
        };
        match module::answer(&mut request).await {
            Answer::Now(replies) => replies.iter().map(|reply| Action::Write(writer::to_bytes(reply).into())).collect(),
            Answer::Later(pending) => vec![Action::Await(Box::new(pending))],
        }
    }

    async fn on_message(&mut self, state: &ServerState, stanza: &Stanza) -> Vec<Action> {
        // RFC 6120 §10.3.1: no `to` means our own bare JID.
        let to = stanza.to.clone().unwrap_or_else(|| Jid::from(self.bare.clone()));
        if to.node().is_none() && to.resource().is_none() && state.config.serves(to.domain().as_str()) {
            // The server itself takes no messages.
            return match stanza.kind {
                Kind::Message(MessageType::Error | MessageType::Headline) => Vec::new(),
                _ => self.reply_error(stanza, StanzaError::new(Condition::ServiceUnavailable)),
            };
        }
        // A retransmission of a message taken before (`modules/dedup.rs`) is not routed again.
        if state.modules.message_from_client(&self.bare, stanza, self.last_inbound) == module::FromClient::Repeat {
            return self.taken(state, stanza);
        }
        let mut actions = self.route(state, stanza, &to).await;
        // Taken (delivered or durably stored): the client is told (the dialect's "sent"
        // tick), after durability. A refused message may be sent again.
        if actions.iter().all(|a| matches!(a, Action::AwaitDurable)) {
            // The sender's archive keeps it too: durable before the client is told.
            if state.modules.message_sent(state, &self.jid, stanza, &to).await.stored && actions.is_empty() {
                actions.push(Action::AwaitDurable);
            }
            actions.extend(self.taken(state, stanza));
        } else {
            state.modules.message_refused(&self.bare, stanza, false);
        }
        actions
    }

    /// What the modules tell the client whose message was taken (or was a repeat).
    fn taken(&self, state: &ServerState, stanza: &Stanza) -> Vec<Action> {
        let writes = state.modules.message_taken(stanza, self.viewer);
        writes.into_iter().map(|bytes| Action::Write(bytes.into())).collect()
    }
}

/// Whether a stanza is addressed to the server (no `to`, or one of its domains): only such
/// an answer answers the server's own pings, never one a contact asked for with the same id.
fn to_the_server(state: &ServerState, stanza: &Stanza) -> bool {
    match &stanza.to {
        None => true,
        Some(to) => to.node().is_none() && to.resource().is_none() && state.config.serves(to.domain().as_str()),
    }
}

/// In-flight records no longer needed: the message was acknowledged (or never kept).
async fn forget_inflight(state: &ServerState, keys: &[u64]) {
    if let Err(e) = state.store.remove_inflight(keys).await {
        tracing::error!(error = %e, "forgetting acknowledged in-flight messages failed");
        state.storage_failed(&e);
    }
}

pub mod out;
mod presence;
pub mod receipts;
pub mod sm;
mod stream_management;
/// The operator's line for a stanza the server refused (RFC 6120 §8.3): what it was,
/// where it went, and why. Debug level: peers cause these at will.
fn log_refusal(element: &Element, error: &StanzaError) {
    tracing::debug!(
        stanza = element.name(),
        kind = element.attr("type").unwrap_or(""),
        to = element.attr("to").unwrap_or(""),
        id = element.attr("id").unwrap_or(""),
        condition = error.condition.name(),
        text = ?error.text,
        "stanza refused"
    );
}

#[cfg(test)]
mod tests;
