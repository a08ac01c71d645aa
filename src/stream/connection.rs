//! The task of one connection. After negotiation it becomes three tasks joined by
//! bounded channels: a reader (framer → elements), this session loop (the sans-IO
//! [`Session`] plus its mailbox and timers), and a writer (bytes → socket).

use super::error::{StreamCondition, StreamEnd};
use super::negotiate::{preauth_limits, Bound, Conn, Negotiation, Next, Reader};
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
        mut transport: Transport,
        peer: SocketAddr,
        deadline: Instant,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<(Conn, Box<Bound>)> {
        let state = &self.state;
        let mut negotiation = Negotiation::new(state, peer);
        loop {
            negotiation.secure = transport.is_secure();
            negotiation.cb = transport.channel_bindings(&self.tls.end_point);
            let (read, write) = tokio::io::split(transport);
            let mut conn = Conn {
                reader: Framer::new(read, preauth_limits(state)),
                wire: Wire::new(write, state.config.default_host().to_owned()),
            };
            let outcome = tokio::select! {
                outcome = timeout_at(deadline, negotiation.run(&mut conn)) => outcome
                    .unwrap_or_else(|_| Err(StreamEnd::error(StreamCondition::ConnectionTimeout, "negotiation took too long"))),
                _ = shutdown.changed() => Err(StreamEnd::error(StreamCondition::SystemShutdown, "the server is shutting down")),
            };
            match outcome {
                Ok(Next::Bound(bound)) => return Some((conn, bound)),
                Ok(Next::StartTls) => {
                    let Transport::Plain(tcp) = conn.reader.into_inner().unsplit(conn.wire.out) else {
                        return None;
                    };
                    transport = self.accept_tls(tcp, false, deadline).await?;
                }
                Err(end) => {
                    log_end(&end);
                    conn.wire.close(&end).await;
                    return None;
                }
            }
        }
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

/// The bound session: runs until the stream ends, then cleans up.
async fn run_session(state: Arc<ServerState>, conn: Conn, bound: Bound, mut shutdown: watch::Receiver<bool>) {
    let Bound { jid, handle, mut mailbox } = bound;
    let mut session = Session::new(&state, jid, handle.id, Instant::now());
    drop(handle);
    let mut reader = conn.reader;
    reader.set_limits(super::negotiate::session_limits(&state));
    let (frames_tx, mut frames) = mpsc::channel(READ_AHEAD);
    let reader_task = tokio::spawn(read_frames(reader, frames_tx).in_current_span());
    let (out, out_rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    // The writer holds its queue behind a lock: when it ends (or is stopped), what it never
    // wrote can be taken back and routed again.
    let out_queue = Arc::new(tokio::sync::Mutex::new(out_rx));
    let mut writer_task = tokio::spawn(write_bytes(conn.wire.out, out_queue.clone()).in_current_span());
    let mut unsent: Vec<Vec<u8>> = Vec::new();
    let write_timeout = Duration::from_secs(state.config.timeouts.ping_timeout_secs);

    let end = loop {
        let actions = tokio::select! {
            frame = frames.recv() => match frame {
                Some(Ok(Frame::Stanza(element))) => session.handle(&state, element, Instant::now()),
                Some(Ok(Frame::Close)) | None => break StreamEnd::PeerClosed,
                Some(Ok(Frame::Header(_))) => break StreamEnd::error(StreamCondition::NotWellFormed, "unexpected stream header"),
                Some(Err(e)) => break StreamEnd::from(e),
            },
            Some(delivery) = mailbox.stanzas.recv() => {
                let actions = session.deliver(&delivery);
                if matches!(actions[..], [Action::Wake]) { session.wake(&state) } else { actions }
            }
            Some(control) = mailbox.control.recv() => break control_end(control),
            _ = tokio::time::sleep_until(session.deadline()) => session.tick(Instant::now()),
            _ = shutdown.changed() => break StreamEnd::error(StreamCondition::SystemShutdown, "the server is shutting down"),
        };
        if let Some(end) = perform(&state, actions, &out, write_timeout, &mut unsent).await {
            break end;
        }
    };
    log_end(&end);
    if server_ended(&end) {
        // Stanzas the client sent before we ended its stream were accepted: handle them.
        while let Ok(Ok(Frame::Stanza(element))) = frames.try_recv() {
            let actions = session.handle(&state, element, Instant::now());
            let _ = perform(&state, actions, &out, write_timeout, &mut unsent).await;
        }
    }
    session.on_end(&state);
    let last = match &end {
        StreamEnd::Error(condition, text) => Some(writer::stream_error(condition.name(), Some(text))),
        StreamEnd::PeerClosed | StreamEnd::ServerClosed(_) => Some(writer::STREAM_CLOSE.to_owned()),
        StreamEnd::Io(_) => None,
    };
    if let Some(last) = last {
        let _ = tokio::time::timeout(write_timeout, out.send(last.into_bytes())).await;
    }
    drop(out);
    // A client that stopped reading must not keep its socket and task alive.
    if tokio::time::timeout(write_timeout, &mut writer_task).await.is_err() {
        writer_task.abort();
        let _ = (&mut writer_task).await; // returns once the task is gone, lock released
    }
    reader_task.abort();
    let mut never_written = unsent;
    {
        let mut queue = out_queue.lock().await;
        while let Ok(bytes) = queue.try_recv() {
            never_written.push(bytes);
        }
    }
    reroute_unwritten(&state, never_written, session.jid.domain().as_str()).await;
    reroute_undelivered(&state, &mut mailbox).await;
    // Rerouting may have stored messages offline.
    if let Err(e) = state.flusher.durable().await {
        tracing::error!(error = %e, "rerouted messages may not be durable");
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
    out: &mpsc::Sender<Vec<u8>>,
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
            Action::Write(bytes) => {
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
                    Action::Write(bytes) => Some(bytes),
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

/// Stanzas that reached our mailbox after the stream ended are routed again:
/// to another resource if one fits, else their sender learns they were not delivered.
async fn reroute_undelivered(state: &ServerState, mailbox: &mut Mailbox) {
    for delivery in mailbox.stanzas.close_and_drain() {
        // Roster pushes were for this session only; stanzas are read back (rare path).
        let Delivery::Bytes(bytes) = delivery else { continue };
        match crate::xml::read_stanza(&bytes).await {
            Some(element) => delivery::reroute(state, element),
            None => tracing::error!("undelivered stanza could not be read back"),
        }
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
