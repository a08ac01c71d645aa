//! The task of one connection. After negotiation it becomes three tasks joined by
//! bounded channels: a reader (framer → elements), this session loop (the sans-IO
//! [`Session`] plus its mailbox and timers), and a writer (bytes → socket).

use super::error::{StreamCondition, StreamEnd};
use super::negotiate::{preauth_limits, Bound, Conn, Negotiation, Next, Reader};
use super::resume::Resumption;
use super::transport::Transport;
use super::wire::Wire;
use crate::router::session::{Action, Session};
use crate::router::{delivery, Control, Delivery, Mailbox};
use crate::state::ServerState;
use crate::tls::TlsSetup;
use crate::xml::framer::{Frame, Framer, FramerError};
use crate::xml::writer;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant};
use tracing::Instrument;

/// Frames read ahead of the session loop.
const READ_AHEAD: usize = 16;
/// Writes queued for the writer task.
const WRITE_QUEUE: usize = 64;

pub struct Listener {
    pub state: Arc<ServerState>,
    pub tls: Arc<TlsSetup>,
    pub direct_tls: bool,
    pub shutdown: watch::Receiver<bool>,
}

impl Listener {
    /// Serves one accepted connection to its end.
    pub async fn serve(&self, tcp: TcpStream, peer: SocketAddr) {
        let span = tracing::info_span!("c2s", %peer, jid = tracing::field::Empty);
        self.serve_inner(tcp, peer).instrument(span).await;
    }

    async fn serve_inner(&self, tcp: TcpStream, peer: SocketAddr) {
        let _ = tcp.set_nodelay(true);
        keepalive(&tcp);
        let mut shutdown = self.shutdown.clone();
        let deadline = Instant::now() + Duration::from_secs(self.state.config.timeouts.negotiation_secs);
        let transport = if self.direct_tls {
            match self.accept_tls(tcp, true, deadline).await {
                Some(tls) => tls,
                None => return,
            }
        } else {
            Transport::Plain(tcp)
        };
        let Some((conn, bound)) = self.negotiate(transport, peer, deadline, &mut shutdown).await else {
            return;
        };
        tracing::Span::current().record("jid", tracing::field::display(&bound.jid));
        tracing::info!("session started");
        run_session(self.state.clone(), conn, *bound, shutdown).await;
    }

    async fn accept_tls(&self, tcp: TcpStream, direct: bool, deadline: Instant) -> Option<Transport> {
        let config = if direct { self.tls.direct.clone() } else { self.tls.starttls.clone() };
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        match timeout_at(deadline, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => Some(Transport::Tls(Box::new(tls))),
            Ok(Err(e)) => {
                tracing::info!(error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::info!("TLS handshake timed out");
                None
            }
        }
    }

    /// Negotiates on each transport in turn (plain, then TLS after STARTTLS).
    async fn negotiate(
        &self,
        transport: Transport,
        peer: SocketAddr,
        deadline: Instant,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<(Conn, Box<Bound>)> {
        let state = &self.state;
        let mut negotiation = Negotiation::new(state, peer);
        let mut conn = self.split(transport, &mut negotiation);
        loop {
            let outcome = tokio::select! {
                outcome = timeout_at(deadline, negotiation.run(&mut conn)) => outcome
                    .unwrap_or_else(|_| Err(StreamEnd::error(StreamCondition::ConnectionTimeout, "negotiation took too long"))),
                _ = shutdown.changed() => Err(StreamEnd::error(StreamCondition::SystemShutdown, "the server is shutting down")),
            };
            match outcome {
                Ok(Next::Bound(bound)) => return Some((conn, bound)),
                Ok(Next::Resume(session, h)) => {
                    conn = hand_over(conn, session, h, peer).await?;
                    // Refused: the client may bind a new resource on the same stream.
                    negotiation.mid_stream = true;
                }
                Ok(Next::StartTls) => {
                    let Transport::Plain(tcp) = conn.reader.into_inner().unsplit(conn.wire.out) else {
                        return None;
                    };
                    let transport = self.accept_tls(tcp, false, deadline).await?;
                    conn = self.split(transport, &mut negotiation);
                }
                Err(end) => {
                    log_end(&end);
                    conn.wire.close(&end).await;
                    return None;
                }
            }
        }
    }

    fn split(&self, transport: Transport, negotiation: &mut Negotiation) -> Conn {
        negotiation.secure = transport.is_secure();
        negotiation.cb = transport.channel_bindings(&self.tls.end_point);
        let (read, write) = tokio::io::split(transport);
        Conn {
            reader: Framer::new(read, preauth_limits(&self.state)),
            wire: Wire::new(write, self.state.config.default_host().to_owned()),
        }
    }
}

/// XEP-0198 §5: offers the connection to the session being resumed. None when the
/// session took it; otherwise the connection comes back after `<failed/>` was sent on it.
async fn hand_over(conn: Conn, session: super::resume::ResumeSender, h: u32, peer: SocketAddr) -> Option<Conn> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let failure = match session.send(Resumption { conn, h, peer, reply }).await {
        // The session ended in between.
        Err(mpsc::error::SendError(back)) => Box::new((back.conn, super::resume::failed("item-not-found", None))),
        Ok(()) => match answer.await {
            Ok(Ok(())) => return None, // the session runs on this connection now
            Ok(Err(failure)) => failure,
            Err(_) => return None, // the session ended while taking it: the connection went with it
        },
    };
    let (mut conn, failed) = *failure;
    if let Err(e) = conn.wire.send(failed.as_bytes()).await {
        log_end(&StreamEnd::Io(e));
        return None;
    }
    Some(conn)
}

/// TCP keepalive finds a peer that vanished (its host is gone) even while the session has
/// nothing to send: about 90 s after the last sign of life, the socket fails.
fn keepalive(tcp: &TcpStream) {
    let probes = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(60))
        .with_interval(Duration::from_secs(10))
        .with_retries(3);
    if let Err(e) = socket2::SockRef::from(tcp).set_tcp_keepalive(&probes) {
        tracing::debug!(error = %e, "TCP keepalive not set");
    }
}

fn log_end(end: &StreamEnd) {
    match end {
        StreamEnd::Error(condition, text) => {
            tracing::info!(condition = condition.name(), %text, "stream error")
        }
        StreamEnd::PeerClosed => tracing::info!("stream closed by the client"),
        StreamEnd::ServerClosed(reason) => tracing::warn!("stream closed: {reason}"),
        StreamEnd::Io(e) => tracing::info!(error = %e, "connection lost"),
    }
}

/// One connection attached to the session: its reader and writer tasks.
struct Link {
    frames: mpsc::Receiver<Result<Frame, FramerError>>,
    out: mpsc::Sender<Vec<u8>>,
    /// The writer holds its queue behind a lock: when it ends (or is stopped), what it
    /// never wrote can be taken back and routed again.
    out_queue: Arc<tokio::sync::Mutex<mpsc::Receiver<Vec<u8>>>>,
    reader_task: JoinHandle<()>,
    writer_task: JoinHandle<()>,
    /// Bytes that could not even be queued for the writer.
    unsent: Vec<Vec<u8>>,
}

impl Link {
    fn attach(state: &ServerState, conn: Conn) -> Link {
        let mut reader = conn.reader;
        reader.set_limits(super::negotiate::session_limits(state));
        let (frames_tx, frames) = mpsc::channel(READ_AHEAD);
        let reader_task = tokio::spawn(read_frames(reader, frames_tx).in_current_span());
        let (out, out_rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
        let out_queue = Arc::new(tokio::sync::Mutex::new(out_rx));
        let writer_task = tokio::spawn(write_bytes(conn.wire.out, out_queue.clone()).in_current_span());
        Link { frames, out, out_queue, reader_task, writer_task, unsent: Vec::new() }
    }

    /// Sends the last words (if the connection can take them), stops both tasks, and
    /// returns what was never written.
    async fn close(mut self, last: Option<String>, limit: Duration) -> Vec<Vec<u8>> {
        if let Some(last) = last {
            let _ = tokio::time::timeout(limit, self.out.send(last.into_bytes())).await;
        }
        drop(self.out);
        // A client that stopped reading must not keep its socket and task alive.
        if tokio::time::timeout(limit, &mut self.writer_task).await.is_err() {
            self.writer_task.abort();
            let _ = (&mut self.writer_task).await; // returns once the task is gone, lock released
        }
        self.reader_task.abort();
        let mut never_written = self.unsent;
        let mut queue = self.out_queue.lock().await;
        while let Ok(bytes) = queue.try_recv() {
            never_written.push(bytes);
        }
        never_written
    }
}

/// Why the attached loop stopped.
enum Detached {
    /// The stream ended.
    Ended(StreamEnd),
    /// A new connection resumes this session (the current one is a ghost).
    Takeover(Box<Resumption>),
}

/// The bound session: runs until the stream ends (across resumptions), then cleans up.
async fn run_session(state: Arc<ServerState>, conn: Conn, bound: Bound, mut shutdown: watch::Receiver<bool>) {
    let Bound { jid, handle, mut mailbox } = bound;
    let mut session = Session::new(&state, jid, handle.id, Instant::now());
    drop(handle);
    let (resume_tx, mut resume_rx) = mpsc::channel::<Resumption>(1);
    session.resume_sender = Some(resume_tx);
    let limit = Duration::from_secs(state.config.timeouts.ping_timeout_secs);
    let mut link = Link::attach(&state, conn);
    let mut rerouted: Vec<Vec<u8>> = Vec::new();
    let end = loop {
        let mut pending =
            match attached(&state, &mut session, &mut link, &mut mailbox, &mut resume_rx, &mut shutdown).await {
                Detached::Ended(end) if session.resumable(&end) => {
                    log_end(&end);
                    let _ = link.close(None, limit).await; // counted in the unacknowledged queue
                    tracing::info!(
                        wait_secs = session.resume_window().as_secs(),
                        "connection lost: waiting for resumption"
                    );
                    match hibernate(&state, &mut session, &mut mailbox, &mut resume_rx, &mut shutdown).await {
                        Detached::Takeover(resumption) => resumption,
                        Detached::Ended(end) => break end,
                    }
                }
                Detached::Ended(end) => {
                    log_end(&end);
                    // Out of the router first: nothing more is routed here while the socket closes.
                    session.on_end(&state);
                    let unwritten = link.close(last_words(&end), limit).await;
                    if !session.managed() {
                        rerouted = unwritten;
                    }
                    break end;
                }
                Detached::Takeover(resumption) => {
                    tracing::info!("the client resumed on a new connection: dropping this one");
                    let _ = link.close(None, limit).await;
                    resumption
                }
            };
        // Resumption failures leave the session waiting on: try whatever comes next.
        loop {
            match take_over(&state, &mut session, pending).await {
                Some(new_link) => {
                    link = new_link;
                    break;
                }
                None => match hibernate(&state, &mut session, &mut mailbox, &mut resume_rx, &mut shutdown).await {
                    Detached::Takeover(next) => pending = next,
                    Detached::Ended(end) => {
                        finish(&state, &mut session, &mut mailbox, rerouted).await;
                        log_end(&end);
                        return;
                    }
                },
            }
        }
    };
    if matches!(end, StreamEnd::Error(StreamCondition::ConnectionTimeout, _)) && session.managed() {
        tracing::info!("resumption window over: the session ends");
    }
    finish(&state, &mut session, &mut mailbox, rerouted).await;
}

/// Runs the session on its connection until the stream ends or another connection
/// takes it over.
async fn attached(
    state: &ServerState,
    session: &mut Session,
    link: &mut Link,
    mailbox: &mut Mailbox,
    resume: &mut mpsc::Receiver<Resumption>,
    shutdown: &mut watch::Receiver<bool>,
) -> Detached {
    let limit = Duration::from_secs(state.config.timeouts.ping_timeout_secs);
    let end = loop {
        let actions = tokio::select! {
            frame = link.frames.recv() => match frame {
                Some(Ok(Frame::Stanza(element))) => session.handle(state, element, Instant::now()),
                Some(Ok(Frame::Close)) => break StreamEnd::PeerClosed,
                // The connection went without closing its stream: it may come back (XEP-0198).
                Some(Err(FramerError::Eof)) | None => break StreamEnd::Io(std::io::ErrorKind::UnexpectedEof.into()),
                Some(Ok(Frame::Header(_))) => break StreamEnd::error(StreamCondition::NotWellFormed, "unexpected stream header"),
                Some(Err(e)) => break StreamEnd::from(e),
            },
            Some(delivery) = mailbox.stanzas.recv() => delivered(state, session, &delivery),
            Some(control) = mailbox.control.recv() => break control_end(control),
            Some(resumption) = resume.recv() => return Detached::Takeover(Box::new(resumption)),
            _ = tokio::time::sleep_until(session.deadline()) => session.tick(Instant::now()),
            _ = shutdown.changed() => break StreamEnd::error(StreamCondition::SystemShutdown, "the server is shutting down"),
        };
        if let Some(end) = perform(state, actions, Some(&link.out), limit, &mut link.unsent).await {
            break end;
        }
    };
    if server_ended(&end) {
        // Stanzas the client sent before we ended its stream were accepted: handle them.
        while let Ok(Ok(Frame::Stanza(element))) = link.frames.try_recv() {
            let actions = session.handle(state, element, Instant::now());
            let _ = perform(state, actions, Some(&link.out), limit, &mut link.unsent).await;
        }
    }
    Detached::Ended(end)
}

fn delivered(state: &ServerState, session: &mut Session, delivery: &Delivery) -> Vec<Action> {
    let actions = session.deliver(state, delivery, Instant::now());
    if matches!(actions[..], [Action::Wake]) {
        session.wake(state)
    } else {
        actions
    }
}

/// XEP-0198 §5: the connection is gone and the session waits for its client, still
/// taking deliveries (counted as unacknowledged, sent on resumption) until the window
/// closes, the account goes, or the server stops.
async fn hibernate(
    state: &ServerState,
    session: &mut Session,
    mailbox: &mut Mailbox,
    resume: &mut mpsc::Receiver<Resumption>,
    shutdown: &mut watch::Receiver<bool>,
) -> Detached {
    let deadline = Instant::now() + session.resume_window();
    let limit = Duration::from_secs(state.config.timeouts.ping_timeout_secs);
    loop {
        let actions = tokio::select! {
            Some(delivery) = mailbox.stanzas.recv() => delivered(state, session, &delivery),
            Some(control) = mailbox.control.recv() => return Detached::Ended(control_end(control)),
            Some(resumption) = resume.recv() => return Detached::Takeover(Box::new(resumption)),
            _ = tokio::time::sleep_until(deadline) => {
                return Detached::Ended(StreamEnd::error(StreamCondition::ConnectionTimeout, "not resumed in time"));
            }
            _ = shutdown.changed() => {
                return Detached::Ended(StreamEnd::error(StreamCondition::SystemShutdown, "the server is shutting down"));
            }
        };
        let actions = actions.into_iter().filter(|a| !matches!(a, Action::Write(_) | Action::Send(_))).collect();
        if let Some(end) = perform(state, actions, None, limit, &mut Vec::new()).await {
            return Detached::Ended(end);
        }
    }
}

/// Hands the session to the resuming connection: `<resumed/>` and every unacknowledged
/// stanza go out on it. None when the resumption failed (the new connection was told).
async fn take_over(state: &ServerState, session: &mut Session, resumption: Box<Resumption>) -> Option<Link> {
    let Resumption { conn, h, peer, reply } = *resumption;
    match session.resume(state, h, Instant::now()) {
        Ok(actions) => {
            tracing::info!(%peer, resent = actions.len() - 1, "session resumed");
            let _ = reply.send(Ok(()));
            let mut link = Link::attach(state, conn);
            let limit = Duration::from_secs(state.config.timeouts.ping_timeout_secs);
            // A connection that fails already is found out by the session loop.
            let _ = perform(state, actions, Some(&link.out), limit, &mut link.unsent).await;
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
async fn finish(state: &ServerState, session: &mut Session, mailbox: &mut Mailbox, unwritten: Vec<Vec<u8>>) {
    session.on_end(state);
    let mut unwritten = unwritten;
    let mut inflight = Vec::new();
    for unacked in session.take_unacked() {
        match unacked.inflight {
            Some(key) => inflight.push(key),
            None => unwritten.push(unacked.bytes),
        }
    }
    // Oldest first: what was written (or meant to be), then what still waits.
    reroute_unwritten(state, unwritten, session.jid.domain().as_str()).await;
    for delivery in mailbox.stanzas.close_and_drain() {
        match delivery {
            Delivery::Kept { inflight: key, .. } => inflight.push(key),
            Delivery::Bytes(bytes) => match crate::xml::read_stanza(&bytes).await {
                Some(element) => delivery::reroute(state, element),
                None => tracing::error!("undelivered stanza could not be read back"),
            },
            // Roster pushes were for this session only.
            Delivery::Push(..) | Delivery::Wake => {}
        }
    }
    move_to_offline(state, &inflight);
    // Rerouting may have stored messages offline.
    if let Err(e) = state.flusher.durable().await {
        tracing::error!(error = %e, "rerouted messages may not be durable");
    }
}

/// Unacknowledged messages go to their owners' offline queues; an available resource
/// is told to look.
fn move_to_offline(state: &ServerState, inflight: &[u64]) {
    if inflight.is_empty() {
        return;
    }
    match state.store.inflight_to_offline(inflight) {
        Ok(owners) => {
            tracing::info!(messages = inflight.len(), "unacknowledged messages kept offline");
            owners.iter().for_each(|owner| delivery::wake_if_idle(state, owner));
        }
        Err(e) => tracing::error!(error = %e, "moving unacknowledged messages offline failed; they move at restart"),
    }
}

fn last_words(end: &StreamEnd) -> Option<String> {
    match end {
        StreamEnd::Error(condition, text) => Some(writer::stream_error(condition.name(), Some(text))),
        StreamEnd::PeerClosed | StreamEnd::ServerClosed(_) => Some(writer::STREAM_CLOSE.to_owned()),
        StreamEnd::Io(_) => None,
    }
}

/// The server ended a healthy stream (the client did nothing wrong).
fn server_ended(end: &StreamEnd) -> bool {
    use StreamCondition::*;
    matches!(end, StreamEnd::Error(Conflict | SystemShutdown | ConnectionTimeout, _))
}

fn control_end(control: Control) -> StreamEnd {
    match control {
        Control::Replaced => {
            StreamEnd::error(StreamCondition::Conflict, "replaced by a new session with the same resource")
        }
        Control::AccountDeleted => StreamEnd::error(StreamCondition::NotAuthorized, "the account was deleted"),
        Control::PushLost => {
            StreamEnd::error(StreamCondition::ResourceConstraint, "too much waiting for this client; reconnect")
        }
    }
}

/// Carries out the session's actions; returns how the stream ends, if it does.
/// Bytes that could not be queued for the writer go to `unsent`, with the rest of the
/// writes, to be routed again.
async fn perform(
    state: &ServerState,
    actions: Vec<Action>,
    out: Option<&mpsc::Sender<Vec<u8>>>,
    limit: Duration,
    unsent: &mut Vec<Vec<u8>>,
) -> Option<StreamEnd> {
    let mut actions = actions.into_iter();
    while let Some(action) = actions.next() {
        match action {
            Action::AwaitDurable => {
                if let Err(e) = state.flusher.durable().await {
                    // Nothing may be acknowledged that is not on disk: the stream ends
                    // before the client learns anything more.
                    tracing::error!(error = %e, "storage is failing: ending the stream");
                    return Some(StreamEnd::error(StreamCondition::InternalServerError, "storage failure"));
                }
            }
            Action::Write(bytes) | Action::Send(bytes) => {
                let Some(out) = out else { continue };
                let end = match tokio::time::timeout(limit, out.reserve()).await {
                    Ok(Ok(permit)) => {
                        permit.send(bytes);
                        continue;
                    }
                    Ok(Err(_)) => StreamEnd::Io(std::io::ErrorKind::BrokenPipe.into()),
                    Err(_) => StreamEnd::error(StreamCondition::ConnectionTimeout, "the client stopped reading"),
                };
                unsent.push(bytes);
                unsent.extend(actions.filter_map(|a| match a {
                    Action::Write(bytes) | Action::Send(bytes) => Some(bytes),
                    _ => None,
                }));
                return Some(end);
            }
            Action::End(end) => return Some(end),
            Action::Wake => {}
        }
    }
    None
}

/// What was meant for the client but never written (a stalled or broken connection) is
/// routed again like an undelivered mailbox: messages to another resource or offline
/// storage. Offline messages from the backlog are skipped: they are still stored (only the
/// client's acknowledgement deletes them), and our own stream framing is not a stanza.
async fn reroute_unwritten(state: &ServerState, unwritten: Vec<Vec<u8>>, domain: &str) {
    for bytes in unwritten {
        if bytes.starts_with(b"</") || bytes.starts_with(b"<stream:") {
            continue;
        }
        let Some(element) = crate::xml::read_stanza(&bytes).await else { continue };
        if crate::router::offline::is_from_storage(&element, domain) {
            continue;
        }
        delivery::reroute(state, element);
    }
}

async fn read_frames(mut reader: Reader, frames: mpsc::Sender<Result<Frame, FramerError>>) {
    loop {
        let frame = reader.next().await;
        let last = !matches!(frame, Ok(Frame::Stanza(_)));
        if frames.send(frame).await.is_err() || last {
            return;
        }
    }
}

/// Writes queued bytes, flushing once per batch. It holds the queue's lock while it runs,
/// so the session can take back what it never wrote once it ends or is stopped.
async fn write_bytes(mut out: WriteHalf<Transport>, queue: Arc<tokio::sync::Mutex<mpsc::Receiver<Vec<u8>>>>) {
    let mut queue = queue.lock_owned().await;
    while let Some(bytes) = queue.recv().await {
        if out.write_all(&bytes).await.is_err() {
            return;
        }
        while let Ok(more) = queue.try_recv() {
            if out.write_all(&more).await.is_err() {
                return;
            }
        }
        if out.flush().await.is_err() {
            return;
        }
    }
    let _ = out.shutdown().await;
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
        store.create_user(&alice, &StoredCredentials::derive("pw", 4096).expect("derive")).expect("alice");
        let state = ServerState::new(Config::default(), Arc::new(store));
        let other = FullJid::new("alice@localhost/other").expect("jid");
        let (handle, mut mailbox) = state.router.channels(16, 1 << 20);
        state.router.bind(other.clone(), handle.clone());
        let presence = Arc::new(crate::xml::el("presence", crate::xml::NS_CLIENT));
        state.router.set_presence(&other, handle.id, Some((0, presence)));

        let unwritten: Vec<Vec<u8>> = [
            "<message xmlns='jabber:client' from='bob@localhost/b' to='alice@localhost/gone' type='chat' id='live'><body>1</body></message>",
            "<message xmlns='jabber:client' from='bob@localhost/b' to='alice@localhost' type='chat' id='stored'><body>2</body><delay xmlns='urn:xmpp:delay' from='localhost' stamp='2026-01-01T00:00:00Z'/></message>",
            "<iq xmlns='jabber:client' type='result' id='r' to='alice@localhost/gone'/>",
            "</stream:stream>",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        reroute_unwritten(&state, unwritten, "localhost").await;

        let mut got = Vec::new();
        while let Some(Delivery::Bytes(bytes)) = mailbox.stanzas.try_recv() {
            got.push(String::from_utf8(bytes.to_vec()).expect("utf-8"));
        }
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("id='live'") || got[0].contains("id=\"live\""), "{got:?}");
    }
}
