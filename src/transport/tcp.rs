//! The task of one connection: TLS, negotiation (or the hand-over of the connection to a
//! session being resumed), then the session loop (`session_task`).

use super::stream::Transport;
use super::tls::TlsSetup;
use crate::c2s::admission::Admitted;
use crate::c2s::error::{log_end, StreamCondition, StreamEnd};
use crate::c2s::negotiate::{preauth_limits, Bound, Conn, Negotiation, Next};
use crate::c2s::resume::Resumption;
use crate::c2s::wire::Wire;
use crate::core::state::ServerState;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{timeout_at, Instant};
use tracing::Instrument;

pub struct Listener {
    pub state: Arc<ServerState>,
    pub c2s: Arc<crate::c2s::Shared>,
    pub tls: Arc<TlsSetup>,
    pub direct_tls: bool,
    pub shutdown: watch::Receiver<bool>,
}

impl Listener {
    /// Negotiates one accepted connection (TLS, SASL, bind); returns its session, to run
    /// in a task of its own: the negotiation's state (a few KiB) is freed with this one's.
    /// `admitted` is held until the session ends (or the negotiation fails).
    pub async fn serve(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
        admitted: Admitted,
    ) -> Option<impl std::future::Future<Output = ()> + Send> {
        let span = tracing::info_span!("c2s", %peer, jid = tracing::field::Empty);
        let session = self.negotiate_connection(tcp, peer, admitted).instrument(span.clone()).await?;
        Some(session.instrument(span))
    }

    async fn negotiate_connection(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
        admitted: Admitted,
    ) -> Option<impl std::future::Future<Output = ()> + Send> {
        let _ = tcp.set_nodelay(true);
        keepalive(&tcp);
        send_buffer(&tcp, self.state.config.limits.send_buffer_bytes);
        let mut shutdown = self.shutdown.clone();
        let deadline = Instant::now() + Duration::from_secs(self.state.config.timeouts.negotiation_secs);
        let transport =
            if self.direct_tls { self.accept_tls(tcp, true, deadline).await? } else { Transport::Plain(tcp) };
        let (conn, bound) = self.negotiate(transport, peer, deadline, &mut shutdown).await?;
        tracing::Span::current().record("jid", tracing::field::display(&bound.jid));
        tracing::info!("session started");
        Some(crate::c2s::session_task::run_session(
            self.state.clone(),
            self.c2s.resumptions.clone(),
            conn,
            *bound,
            shutdown,
            admitted,
        ))
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
        let mut negotiation = Negotiation::new(state, &self.c2s, peer);
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
                    let Some(Transport::Plain(tcp)) = super::stream::reunite(conn.reader, conn.wire.out) else {
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
        let (reader, writer) = super::stream::split(transport, preauth_limits(&self.state));
        Conn { reader, wire: Wire::new(writer, self.state.config.default_host().to_owned()) }
    }
}

/// How long a resuming connection waits for the session to answer.
const HAND_OVER: Duration = Duration::from_secs(30);

/// XEP-0198 §5: offers the connection to the session being resumed. None when the
/// session took it; otherwise the connection comes back after `<failed/>` was sent on it.
async fn hand_over(conn: Conn, session: crate::c2s::resume::ResumeSender, h: u32, peer: SocketAddr) -> Option<Conn> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    // Offered at once: only the answer is waited for. Never queued behind another offer:
    // connections queued at a session that is stuck would outlive their admission.
    let failure = match session.send_alone(Box::new(Resumption { conn, h, peer, reply })) {
        // The session ended in between, or another connection is resuming it.
        Err(back) => Box::new((back.conn, crate::c2s::resume::failed("item-not-found", None))),
        // The session answers between two of its own steps. One stuck longer than this has
        // the connection in its queue: it takes it, or drops it with its answer.
        Ok(()) => match tokio::time::timeout(HAND_OVER, answer).await {
            Ok(Ok(Ok(()))) => return None, // the session runs on this connection now
            Ok(Ok(Err(failure))) => failure,
            Ok(Err(_)) | Err(_) => return None,
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

/// A small kernel send buffer: what a client has not read waits in the session (counted,
/// bounded, kept until the client answers for it) rather than in the kernel, and a client
/// that stops reading is noticed sooner. 0 keeps the kernel's own sizing.
fn send_buffer(tcp: &TcpStream, bytes: usize) {
    if bytes == 0 {
        return;
    }
    if let Err(e) = socket2::SockRef::from(tcp).set_send_buffer_size(bytes) {
        tracing::debug!(error = %e, "socket send buffer not set");
    }
}
