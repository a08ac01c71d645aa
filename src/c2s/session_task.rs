//! The session loop of one bound resource: the sans-IO [`Session`] fed by its connection
//! ([`Link`]), its router mailbox and its timers, until the stream ends. With XEP-0198
//! resumption it outlives a lost connection and takes over the next one.

use super::admission::Admitted;
use super::durability::Durability;
use super::error::{log_end, StreamCondition, StreamEnd};
use super::link::{control_end, perform, read_frame, Link, BRIEF_CLOSE};
use super::negotiate::{Bound, Conn};
use super::resume::{failed, Resumption};
use crate::c2s::session::{Action, Out, Session};
use crate::core::state::ServerState;
use crate::core::{delivery, signal, Delivery, Mailbox};
use crate::xml::framer::{Frame, FramerError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Why the attached loop stopped.
enum Detached {
    /// The stream ended.
    Ended(StreamEnd),
    /// A new connection resumes this session (the current one is a ghost).
    Takeover(Box<Resumption>),
}

/// What the session task waits on besides its connection.
struct Inputs<'a> {
    mailbox: &'a mut Mailbox,
    resume: &'a mut signal::Receiver<Box<Resumption>>,
    shutdown: &'a mut watch::Receiver<bool>,
}

/// The bound session: runs until the stream ends (across resumptions), then cleans up.
///
/// Set up here and run in the returned future, which holds across its awaits only what
/// it uses: an `async fn`'s arguments would stay in its state for the session's whole
/// life (the negotiated `Conn` alone is about 400 bytes per idle session).
pub fn run_session(
    state: Arc<ServerState>,
    resumptions: Arc<super::resume::Registry>,
    conn: Conn,
    bound: Bound,
    mut shutdown: watch::Receiver<bool>,
    admitted: Admitted,
) -> impl std::future::Future<Output = ()> + Send {
    let Bound { jid, handle, registration } = bound;
    let mut mailbox = registration.take_over(); // the session unbinds itself from here on
    let id = handle.id;
    let mut session = Session::new(&state, jid, id, Instant::now());
    drop(handle);
    let (resume_tx, mut resume) = signal::channel::<Box<Resumption>>();
    session.resumable = Some(super::resume::Resumable { sender: resume_tx, registry: resumptions });
    let link = Link::attach(&state, conn);
    async move {
        let _unbind_on_panic = UnbindOnPanic { state: &state, jid: session.jid.clone(), id };
        let mut inputs = Inputs { mailbox: &mut mailbox, resume: &mut resume, shutdown: &mut shutdown };
        let (end, unwritten) = serve(&state, &mut session, link, &mut inputs).await;
        if session.managed() && matches!(end, StreamEnd::Error(StreamCondition::ConnectionTimeout, _)) {
            tracing::info!("the session ends");
        }
        // Boxed, like every path an idle session does not wait in: the session's future is
        // as large as its largest wait, and thousands of idle sessions each hold one.
        Box::pin(finish(&state, &mut session, inputs.mailbox, unwritten, &end)).await;
        // A resumption that came while the session was ending still gets an answer.
        inputs.resume.close();
        while let Some(late) = inputs.resume.try_recv() {
            let _ = late.reply.send(Err(Box::new((late.conn, failed("item-not-found", None)))));
        }
        drop(admitted); // the connection counted until here
    }
}

/// A session task that panics (a bug: one connection's failure must not affect others)
/// still leaves the router, so its account does not look online until a restart. Only
/// the router entry: nothing that could panic again while unwinding.
struct UnbindOnPanic<'a> {
    state: &'a ServerState,
    jid: xmpp_parsers::jid::FullJid,
    id: u64,
}

impl Drop for UnbindOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!(jid = %self.jid, "the session task panicked: its resource is unbound");
            self.state.registry.unbind(&self.jid, self.id);
        }
    }
}

/// Runs the session on its connection(s); returns how it ended and, for a session
/// without stream management, what its last connection never wrote.
async fn serve(
    state: &ServerState,
    session: &mut Session,
    mut link: Link,
    inputs: &mut Inputs<'_>,
) -> (StreamEnd, Vec<Out>) {
    loop {
        let next = match attached(state, session, &mut link, inputs).await {
            Detached::Ended(end) if session.resumable(&end) => {
                log_end(&end);
                link.abort().await; // what it held is in the unacknowledged queue
                let window = session.resume_window();
                tracing::info!(wait_secs = window.as_secs(), "connection lost: waiting for resumption");
                session.detach(state);
                Box::pin(hibernate(state, session, inputs, Instant::now() + window)).await
            }
            Detached::Ended(end) => {
                log_end(&end);
                // Out of the router first: nothing more is routed here while the socket closes.
                // (Boxed, as every step that awaits the core: an idle session's future does
                // not hold room for it.)
                Box::pin(session.on_end(state)).await;
                let limit = close_limit(state, &end);
                let words = last_words(&end, link.framing);
                let unwritten = Box::pin(link.close(words, limit, inputs.shutdown)).await;
                return (end, if session.managed() { Vec::new() } else { unwritten });
            }
            Detached::Takeover(resumption) => {
                tracing::info!("the client resumed on a new connection: dropping this one");
                // XEP-0198 §5: the old stream learns why, if it can still hear it.
                let conflict = link.framing.error(StreamCondition::Conflict.name(), Some("resumed elsewhere"));
                let _ = Box::pin(link.close(Some(conflict), Duration::from_millis(200), inputs.shutdown)).await;
                session.detach(state);
                let deadline = Instant::now() + session.resume_window();
                match Box::pin(take_over(state, session, resumption)).await {
                    Some(new_link) => Ok(new_link),
                    None => Box::pin(hibernate(state, session, inputs, deadline)).await,
                }
            }
        };
        match next {
            Ok(new_link) => link = new_link,
            Err(end) => return (end, Vec::new()),
        }
    }
}

/// Runs the session on one connection until the stream ends or another connection
/// takes it over.
async fn attached(state: &ServerState, session: &mut Session, link: &mut Link, inputs: &mut Inputs<'_>) -> Detached {
    let limit = Duration::from_secs(state.config.timeouts.ping_timeout_secs);
    let mut durability = Durability::default();
    // Made once, not per stanza: a timer registered and cleared, and a waiter added to
    // and removed from the server-wide shutdown signal, on every turn would cost more
    // than the stanza. The timer may fire early (the deadline moved later): `tick` then
    // finds nothing due and the timer is set again.
    let timer = tokio::time::sleep_until(session.deadline());
    tokio::pin!(timer);
    let shutdown = inputs.shutdown.changed();
    tokio::pin!(shutdown);
    let Some(reader) = link.reader.take() else {
        return Detached::Ended(StreamEnd::Io(std::io::ErrorKind::UnexpectedEof.into()));
    };
    // One read, kept across turns (the framer is not cancel-safe), started again with the
    // reader it gives back.
    let read = read_frame(reader, Duration::ZERO);
    tokio::pin!(read);
    let end = loop {
        // Whether these actions answer the client (its stanzas, the session's timers): an
        // answer is an acknowledgement, so what the client stored waits for no answer
        // unless it is on disk. A delivery from someone else acknowledges nothing.
        let mut answers = true;
        let actions = tokio::select! {
            (reader, frame) = &mut read => {
                let pause = link.pause_after_frame();
                read.set(read_frame(reader, pause));
                match frame {
                    Ok(Frame::Stanza(element)) => {
                        handled(state, session, element).await
                    }
                    Ok(Frame::Close) => break StreamEnd::PeerClosed,
                    // The connection went without closing its stream: it may come back (XEP-0198).
                    Err(FramerError::Eof) => break StreamEnd::Io(std::io::ErrorKind::UnexpectedEof.into()),
                    Ok(Frame::Header(_)) => break StreamEnd::error(StreamCondition::NotWellFormed, "unexpected stream header"),
                    Err(e) => break StreamEnd::from(e),
                }
            }
            // At its bounds the session takes nothing more until its client acknowledges.
            delivery = inputs.mailbox.stanzas.recv(), if session.accepts_deliveries() => {
                answers = false;
                delivered(state, session, &delivery).await
            }
            control = inputs.mailbox.control.recv() => break control_end(control),
            resumption = inputs.resume.recv() => {
                // XEP-0198 §5: the `h` of `<resumed/>` (or of a refusal's `<failed/>`)
                // acknowledges what this client sent: all of it is on disk first.
                if let Err(e) = durability.settle(state).await {
                    let failure = failed("internal-server-error", None);
                    let _ = resumption.reply.send(Err(Box::new((resumption.conn, failure))));
                    break storage_failed(&e);
                }
                match session.refuse_resumption(resumption.h) {
                    // An impossible `h` does not cost the live connection anything.
                    Some(failure) => {
                        let _ = resumption.reply.send(Err(Box::new((resumption.conn, failure))));
                        continue;
                    }
                    None => return Detached::Takeover(resumption),
                }
            }
            () = &mut timer => {
                let actions = session.tick(Instant::now());
                timer.as_mut().reset(session.deadline());
                actions
            }
            _ = &mut shutdown => break StreamEnd::error(StreamCondition::SystemShutdown, "the server is shutting down"),
        };
        if session.deadline() < timer.deadline() {
            timer.as_mut().reset(session.deadline());
        }
        let (actions, stored) = take_durability(actions);
        if stored {
            durability.stored(state);
        }
        if durability.owed() && !actions.is_empty() && (answers || stored) {
            if let Err(e) = durability.settle(state).await {
                break storage_failed(&e);
            }
        }
        let control = Some(&mut inputs.mailbox.control);
        if let Some(end) = perform(state, actions, Some(&link.out), limit, &mut link.unsent, control).await {
            break end;
        }
    };
    // Before the stream's last words, and before anything else is decided about it.
    if let Err(e) = durability.settle(state).await {
        tracing::error!(error = %e, "storage is failing");
    }
    // Whether the read can still be polled (not after it gave its last frame).
    let mut readable = true;
    if server_ended(&end) {
        // Stanzas the client sent before we ended its stream (already read, or waiting in
        // the socket) were accepted: they are handled, without waiting for more, nor again
        // on a writer that already failed. A few, at its stanza rate: a client must not
        // keep an ended session busy by sending on.
        let mut left = READ_AFTER_END;
        while left > 0 {
            let Some((reader, frame)) = ready_now(read.as_mut()) else { break };
            let Ok(Frame::Stanza(element)) = frame else {
                readable = false;
                break;
            };
            let pause = link.pause_after_frame();
            read.set(read_frame(reader, pause));
            // Over its stanza rate: this one is handled, and nothing more is read.
            left = if pause.is_zero() { left - 1 } else { 0 };
            let actions = handled(state, session, element).await;
            if perform(state, actions, Some(&link.out), Duration::ZERO, &mut link.unsent, None).await.is_some() {
                break;
            }
        }
    }
    let shutdown = matches!(end, StreamEnd::Error(StreamCondition::SystemShutdown, _));
    if shutdown && readable && session.awaits_receipt() {
        // The server goes, not the client: a client that is there answers for the live
        // messages it got, and only what it does not answer for goes offline.
        let ping: Vec<Action> = session.last_receipt_ping(Instant::now()).into_iter().collect();
        if perform(state, ping, Some(&link.out), Duration::ZERO, &mut link.unsent, None).await.is_none() {
            let until = Instant::now() + LAST_RECEIPT;
            while session.awaits_receipt() {
                let Ok((reader, Ok(Frame::Stanza(element)))) = tokio::time::timeout_at(until, read.as_mut()).await
                else {
                    break;
                };
                read.set(read_frame(reader, Duration::ZERO));
                let actions = handled(state, session, element).await;
                if perform(state, actions, Some(&link.out), Duration::ZERO, &mut link.unsent, None).await.is_some() {
                    break;
                }
            }
        }
    }
    Detached::Ended(end)
}

/// How long a client has, at shutdown, to answer for the live messages it got.
const LAST_RECEIPT: Duration = Duration::from_secs(1);

/// Stanzas at most handled after the server ended a stream.
const READ_AFTER_END: usize = 16;

/// The future's output if it is ready without waiting.
fn ready_now<F: std::future::Future>(future: std::pin::Pin<&mut F>) -> Option<F::Output> {
    let mut no_wait = std::task::Context::from_waker(std::task::Waker::noop());
    match future.poll(&mut no_wait) {
        std::task::Poll::Ready(output) => Some(output),
        std::task::Poll::Pending => None,
    }
}

fn storage_failed(e: &crate::storage::StorageError) -> StreamEnd {
    // Nothing may be acknowledged that is not on disk: the stream ends first.
    tracing::error!(error = %e, "storage is failing: ending the stream");
    StreamEnd::error(StreamCondition::InternalServerError, "storage failure")
}

/// Takes the durability requests out of `actions` (in place: this runs for every
/// stanza): whether there were any.
fn take_durability(mut actions: Vec<Action>) -> (Vec<Action>, bool) {
    let before = actions.len();
    actions.retain(|a| !matches!(a, Action::AwaitDurable));
    let stored = actions.len() != before;
    (actions, stored)
}

/// XEP-0198 §5: the connection is gone and the session waits for its client until
/// `deadline`, still taking deliveries (counted as unacknowledged, sent on resumption;
/// presence held, the latest per sender) until the window closes, the account goes, or
/// the server stops. Returns the resuming connection, or how the session ended.
async fn hibernate(
    state: &ServerState,
    session: &mut Session,
    inputs: &mut Inputs<'_>,
    deadline: Instant,
) -> Result<Link, StreamEnd> {
    loop {
        let actions = tokio::select! {
            // Deliveries beyond the session's bounds wait; a queue that fills ends it.
            delivery = inputs.mailbox.stanzas.recv(), if session.accepts_deliveries() => {
                delivered(state, session, &delivery).await
            }
            control = inputs.mailbox.control.recv() => return Err(control_end(control)),
            resumption = inputs.resume.recv() => match take_over(state, session, resumption).await {
                Some(link) => return Ok(link),
                None => continue,
            },
            _ = tokio::time::sleep_until(deadline) => {
                tracing::info!("resumption window over");
                return Err(StreamEnd::error(StreamCondition::ConnectionTimeout, "not resumed in time"));
            }
            _ = inputs.shutdown.changed() => {
                return Err(StreamEnd::error(StreamCondition::SystemShutdown, "the server is shutting down"));
            }
        };
        // Writes are in the unacknowledged queue already; only storage work and ends remain.
        if let Some(end) = perform(state, actions, None, Duration::ZERO, &mut Vec::new(), None).await {
            return Err(end);
        }
    }
}

/// Hands the session to the resuming connection: `<resumed/>` and every unacknowledged
/// stanza go out on it. None when the resumption failed (the new connection was told).
async fn take_over(state: &ServerState, session: &mut Session, resumption: Box<Resumption>) -> Option<Link> {
    let Resumption { conn, h, peer, reply } = *resumption;
    match Box::pin(session.resume(state, h, Instant::now())).await {
        Ok(actions) => {
            tracing::info!(%peer, "session resumed");
            let _ = reply.send(Ok(()));
            let mut link = Link::attach(state, conn);
            let limit = Duration::from_secs(state.config.timeouts.ping_timeout_secs);
            // A connection that fails already is found out by the session loop.
            let _ = perform(state, actions, Some(&link.out), limit, &mut link.unsent, None).await;
            Some(link)
        }
        Err(failure) => {
            tracing::info!(%peer, h, "resumption refused: the client acknowledged more than it was sent");
            let _ = reply.send(Err(Box::new((conn, failure))));
            None
        }
    }
}

/// The session is over: it leaves the router (if it has not yet), what it never got goes
/// to offline storage or another resource, and all that is made durable.
async fn finish(
    state: &ServerState,
    session: &mut Session,
    mailbox: &mut Mailbox,
    unwritten: Vec<Out>,
    end: &StreamEnd,
) {
    session.on_end(state).await;
    let unconfirmed = session.take_unconfirmed();
    let mut undelivered: Vec<Out> = match end {
        // RFC 6120 §4.4: a client that closes its stream reads on until the server's close:
        // it has what was written before its close was read; what was not goes offline.
        StreamEnd::PeerClosed => unwritten,
        // Live messages its client never answered for (written or not: every one is
        // there), then the rest of what its connection never wrote (iq requests).
        _ => {
            let mut undelivered: Vec<Out> = unconfirmed.into_iter().map(Out::Owned).collect();
            // (Messages, dialect receipts among them, are all in `unconfirmed`.)
            let live = |bytes: &Out| bytes.starts_with(b"<message") || bytes.starts_with(b"<receipt");
            undelivered.extend(unwritten.into_iter().filter(|bytes| !live(bytes)));
            undelivered
        }
    };
    let mut inflight = Vec::new();
    for unacked in session.take_unacked() {
        match unacked.inflight {
            Some(key) => inflight.push(key),
            None => undelivered.push(unacked.bytes),
        }
    }
    // Oldest first: what was written (or meant to be), then what still waits.
    reroute_unwritten(state, undelivered, session.jid.domain().as_str()).await;
    for delivery in mailbox.stanzas.close_and_drain() {
        match delivery {
            Delivery::Kept { inflight: key, .. } => inflight.push(key),
            Delivery::Bytes(bytes) | Delivery::Message(bytes) => match crate::xml::read_stanza(&bytes).await {
                Some(element) => delivery::reroute(state, element).await,
                None => tracing::error!("undelivered stanza could not be read back"),
            },
            // Roster pushes were for this session only.
            Delivery::Push(..) | Delivery::Wake => {}
        }
    }
    move_to_offline(state, &inflight).await;
    // Messages this session's full queue refused were stored: another available resource
    // of the account takes them now rather than at its next login.
    if matches!(end, StreamEnd::Error(StreamCondition::ResourceConstraint, _)) {
        delivery::wake_if_idle(state, &session.jid.to_bare());
    }
    // Rerouting may have stored messages offline.
    if let Err(e) = state.flusher.durable().await {
        tracing::error!(error = %e, "rerouted messages may not be durable");
    }
}

/// Whether a module answers later: the session then awaits the answer (boxed, and only
/// then: the session's future, which every idle session holds, stays as small as it was).
/// What the session makes of an element from its client, modules' later answers
/// included. Its work is boxed: what a stanza awaits (storage, modules) is not kept in
/// an idle session's future.
async fn handled(state: &ServerState, session: &mut Session, element: crate::xml::Element) -> Vec<Action> {
    let actions = Box::pin(session.handle(state, element, Instant::now())).await;
    let later = actions.iter().any(|action| matches!(action, Action::Await(_)));
    match later {
        true => Box::pin(session.resolved(actions)).await,
        false => actions,
    }
}

/// What the session makes of a delivery (boxed, as [`handled`]).
async fn delivered(state: &ServerState, session: &mut Session, delivery: &Delivery) -> Vec<Action> {
    Box::pin(session.deliver(state, delivery, Instant::now())).await
}

/// Unacknowledged messages go to their owners' offline queues; an available resource
/// is told to look.
async fn move_to_offline(state: &ServerState, inflight: &[u64]) {
    if inflight.is_empty() {
        return;
    }
    match state.store.inflight_to_offline(inflight, crate::core::offline::with_delay).await {
        Ok(owners) => {
            tracing::info!(messages = inflight.len(), "unacknowledged messages kept offline");
            owners.iter().for_each(|owner| delivery::wake_if_idle(state, owner));
        }
        Err(e) => {
            // Only an I/O error gets here (unreadable records are skipped): the store is
            // broken, the server stops, and they move at the next start, before anyone
            // can log in.
            tracing::error!(error = %e, "moving unacknowledged messages offline failed; they move at restart");
            state.storage_failed(&e);
        }
    }
}

/// How long the last words may wait for the writer: not long for a client already known
/// not to read (what it never got is routed again once the connection is closed).
fn close_limit(state: &ServerState, end: &StreamEnd) -> Duration {
    match end {
        StreamEnd::Error(StreamCondition::ResourceConstraint, _) => Duration::from_millis(100),
        // At shutdown, within the grace, so that what the session holds is stored before
        // the process exits; when replaced, so that what it holds reaches the new session
        // soon (a connection replaced is usually one its client left). Its client's
        // unanswered messages go offline either way.
        StreamEnd::Error(StreamCondition::SystemShutdown | StreamCondition::Conflict, _) => BRIEF_CLOSE,
        _ => Duration::from_secs(state.config.timeouts.ping_timeout_secs),
    }
}

fn last_words(end: &StreamEnd, framing: &dyn crate::xml::seam::Framing) -> Option<String> {
    match end {
        StreamEnd::Error(condition, text) => Some(framing.error(condition.name(), Some(text))),
        StreamEnd::PeerClosed | StreamEnd::ServerClosed(_) => Some(framing.close().to_owned()),
        StreamEnd::Io(_) => None,
    }
}

/// The server ended a healthy stream (the client did nothing wrong).
fn server_ended(end: &StreamEnd) -> bool {
    use StreamCondition::*;
    matches!(end, StreamEnd::Error(Conflict | SystemShutdown | ConnectionTimeout, _))
}

/// What was meant for the client but never written (a stalled or broken connection) is
/// routed again like an undelivered mailbox: messages to another resource or offline
/// storage. Offline messages from the backlog are skipped: they are still stored (only the
/// client's acknowledgement deletes them), and our own stream framing is not a stanza.
async fn reroute_unwritten(state: &ServerState, unwritten: Vec<Out>, domain: &str) {
    for bytes in unwritten {
        if bytes.starts_with(b"</") || bytes.starts_with(b"<stream:") {
            continue;
        }
        let Some(element) = crate::xml::read_stanza(&bytes).await else { continue };
        let element = state.modules.routed_form(element);
        if crate::core::offline::is_from_storage(&element, domain) {
            continue;
        }
        delivery::reroute(state, element).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::sasl::credentials::StoredCredentials;
    use crate::storage::sled::SledStore;
    use crate::storage::UserStore;
    use xmpp_parsers::jid::{BareJid, FullJid};

    #[tokio::test]
    async fn bytes_never_written_are_routed_again_except_stored_ones_and_framing() {
        let store = SledStore::temporary().expect("sled");
        let alice = BareJid::new("alice@localhost").expect("jid");
        store.create_user(&alice, &StoredCredentials::derive("pw", 4096).expect("derive")).await.expect("alice");
        let state = ServerState::new(Config::default(), Arc::new(store), Default::default());
        let other = FullJid::new("alice@localhost/other").expect("jid");
        let (handle, mut mailbox) = state.registry.channels(16, 1 << 20);
        state.registry.bind(other.clone(), handle.clone());
        let presence = Arc::new(crate::xml::el("presence", crate::xml::NS_CLIENT));
        state.registry.set_presence(&other, handle.id, Some((0, presence)));

        let unwritten: Vec<Out> = [
            "<message xmlns='jabber:client' from='bob@localhost/b' to='alice@localhost/gone' type='chat' id='live'><body>1</body></message>",
            "<message xmlns='jabber:client' from='bob@localhost/b' to='alice@localhost' type='chat' id='stored'><body>2</body><delay xmlns='urn:xmpp:delay' from='localhost' stamp='2026-01-01T00:00:00Z'/></message>",
            "<iq xmlns='jabber:client' type='result' id='r' to='alice@localhost/gone'/>",
            // Made by the server for that session alone: a carbon copy, an archive result.
            "<message xmlns='jabber:client' from='alice@localhost' to='alice@localhost/gone' type='chat'><received xmlns='urn:xmpp:carbons:2'/></message>",
            "<message xmlns='jabber:client' from='alice@localhost' to='alice@localhost/gone' id='q'><result xmlns='urn:xmpp:mam:2' id='x'/></message>",
            "</stream:stream>",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec().into())
        .collect();
        reroute_unwritten(&state, unwritten, "localhost").await;

        // Kept offline, and the available resource told to fetch it (paced by its acks).
        assert!(matches!(mailbox.stanzas.try_recv(), Some(Delivery::Wake)));
        assert!(mailbox.stanzas.try_recv().is_none());
        let stored = state.store.offline_batch(&alice, crate::core::offline::BATCH).await.expect("offline");
        let got: Vec<String> = stored.iter().map(|m| String::from_utf8_lossy(&m.stanza).into_owned()).collect();
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("id='live'") || got[0].contains("id=\"live\""), "{got:?}");
    }
}
