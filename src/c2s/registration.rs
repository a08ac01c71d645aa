//! A resource that negotiation registered in the router and no session task serves yet.
//!
//! Between the registration and the start of the session task, the bind result is written
//! (which can fail), and the negotiation deadline or the server's shutdown can end the
//! negotiation. Whatever ends it there drops the [`Registration`], which takes the resource
//! out of the router again (else the account would look online for ever, and stanzas for
//! that full JID would wait in a queue nobody reads) and routes again what was queued for
//! it. The session task takes it over ([`Registration::take_over`]) and from then on leaves
//! the router itself.

use crate::core::state::ServerState;
use crate::core::{delivery, Delivery, Mailbox};
use std::sync::Arc;
use xmpp_parsers::jid::FullJid;

/// Undoes a resource's registration when dropped before its session task took it over.
pub struct Registration {
    state: Arc<ServerState>,
    jid: FullJid,
    /// The session id the router knows the resource by.
    id: u64,
    /// Taken once: by [`take_over`](Self::take_over), or when dropped.
    mailbox: Option<Mailbox>,
}

impl Registration {
    /// `jid` was registered in the router for session `id`, which reads `mailbox`.
    pub fn new(state: Arc<ServerState>, jid: FullJid, id: u64, mailbox: Mailbox) -> Registration {
        Registration { state, jid, id, mailbox: Some(mailbox) }
    }

    /// The session task takes over the resource and its mailbox; it unbinds it when it ends.
    pub fn take_over(mut self) -> Mailbox {
        match self.mailbox.take() {
            Some(mailbox) => mailbox,
            None => unreachable!("a registration's mailbox is taken once, by take_over or drop"),
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let Some(mut mailbox) = self.mailbox.take() else { return };
        tracing::info!(jid = %self.jid, "the session never started: its resource is unbound");
        // Out of the router first: nothing more is queued here (a sender holding the handle
        // finds the mailbox closed, and routes elsewhere).
        self.state.registry.unbind(&self.jid, self.id);
        let left = mailbox.stanzas.close_and_drain();
        // While unwinding, only the router entry: nothing that could panic again.
        if !left.is_empty() && !std::thread::panicking() {
            reroute_later(self.state.clone(), left);
        }
    }
}

/// What was queued for a session that never started goes elsewhere, as the session task
/// does with its mailbox when it ends: messages to another resource or offline storage,
/// iq requests answered `recipient-unavailable`. In a task of its own: reading the bytes
/// back is asynchronous, and a drop cannot wait.
fn reroute_later(state: Arc<ServerState>, left: Vec<Delivery>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::error!(stanzas = left.len(), "no runtime: stanzas for a session that never started are lost");
        return;
    };
    runtime.spawn(async move {
        for delivery in left {
            match delivery {
                Delivery::Bytes(bytes) | Delivery::Message(bytes) => match crate::xml::read_stanza(&bytes).await {
                    Some(element) => delivery::reroute(&state, element).await,
                    None => tracing::error!("undelivered stanza could not be read back"),
                },
                // Only a stream-managed session gets `Kept` (and its record stays in the
                // in-flight store, which moves it offline); pushes were for it alone.
                Delivery::Kept { .. } | Delivery::Push(..) | Delivery::Wake => {}
            }
        }
        if let Err(e) = state.flusher.durable().await {
            tracing::error!(error = %e, "rerouted messages may not be durable");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::c2s::error::StreamEnd;
    use crate::c2s::negotiate::{session_limits, Conn, Negotiation};
    use crate::c2s::wire::Wire;
    use crate::transport::stream::Transport;
    use crate::xml::framer::Frame;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    use xmpp_parsers::jid::BareJid;

    fn state_with_alice() -> Arc<ServerState> {
        crate::core::state::with_accounts(&["alice@localhost"])
    }

    fn register(state: &Arc<ServerState>, jid: &FullJid) -> (crate::core::SessionHandle, Registration) {
        let (handle, mailbox) = state.registry.channels(16, 1 << 20);
        state.registry.bind(jid.clone(), handle.clone());
        let registration = Registration::new(state.clone(), jid.clone(), handle.id, mailbox);
        (handle, registration)
    }

    #[tokio::test]
    async fn a_registration_dropped_before_its_session_started_is_undone() {
        let state = state_with_alice();
        let jid = FullJid::new("alice@localhost/r").expect("jid");
        let (handle, registration) = register(&state, &jid);
        let message = "<message xmlns='jabber:client' from='bob@localhost/b' to='alice@localhost/r' \
                       type='chat' id='m1'><body>hi</body></message>";
        handle.send(Delivery::Bytes(message.as_bytes().into())).expect("queued");
        drop(registration);
        assert!(!state.registry.is_online(&jid.to_bare()), "the resource is unbound");
        assert!(handle.send(Delivery::Wake).is_err(), "its mailbox takes nothing more");
        // The message it never got is kept offline.
        let alice = jid.to_bare();
        let stored = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let stored = state.store.offline_batch(&alice, crate::core::offline::BATCH).await.expect("offline");
                if !stored.is_empty() {
                    return stored;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the message was stored offline");
        assert_eq!(stored.len(), 1);
        assert!(String::from_utf8_lossy(&stored[0].stanza).contains("m1"));
    }

    const HEADER: &[u8] =
        b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

    const BIND: &[u8] =
        b"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>";

    fn plaintext_state() -> Arc<ServerState> {
        let state = state_with_alice();
        let mut config = state.config.clone();
        config.auth.allow_plaintext = true;
        ServerState::new(config, state.store.clone(), Default::default())
    }

    /// A negotiation's connection that authenticated and read its stream header, over a real
    /// loopback connection (`peer` is the client's end, which reads nothing). With
    /// `stalled`, the connection takes no more bytes for the client.
    async fn ready_to_bind(state: &Arc<ServerState>, stalled: bool) -> (Conn, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("listen");
        let client = tokio::net::TcpSocket::new_v4().expect("socket");
        // Small buffers that stay small (set, they are not tuned).
        client.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let mut peer = client.connect(listener.local_addr().expect("addr")).await.expect("connect");
        let (server_side, _) = listener.accept().await.expect("accept");
        socket2::SockRef::from(&server_side).set_send_buffer_size(4096).expect("SO_SNDBUF");
        if stalled {
            fill_until_stalled(&server_side).await;
        }
        let (reader, writer) = crate::transport::stream::split(Transport::Plain(server_side), session_limits(state));
        let mut conn = Conn { reader, wire: Wire::new(writer, "localhost".into()) };
        peer.write_all(HEADER).await.expect("header");
        assert!(matches!(conn.reader.next_frame().await, Ok(Frame::Header(_))));
        (conn, peer)
    }

    /// Writes to a client that never reads until the kernel takes nothing more, even after
    /// pauses for late acknowledgements (raw writes: tokio would not try again without news).
    async fn fill_until_stalled(socket: &tokio::net::TcpStream) {
        let socket = socket2::SockRef::from(socket);
        let mut quiet_rounds = 0;
        while quiet_rounds < 3 {
            let mut written = 0;
            while let Ok(bytes) = socket.send(&[b' '; 1024]) {
                written += bytes;
            }
            quiet_rounds = if written == 0 { quiet_rounds + 1 } else { 0 };
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    /// Alice's negotiation after SASL, its stream header read.
    fn negotiation<'a>(state: &'a Arc<ServerState>, peer: &tokio::net::TcpStream) -> Negotiation<'a> {
        let c2s = crate::c2s::negotiate::tests::c2s(state);
        let mut negotiation = Negotiation::new(state, c2s, peer.local_addr().expect("addr"));
        negotiation.user = Some(BareJid::new("alice@localhost").expect("jid"));
        negotiation.mid_stream = true;
        negotiation
    }

    /// The bind result cannot be written (the connection broke): the resource is not left
    /// in the router.
    #[tokio::test]
    async fn a_bind_whose_result_cannot_be_written_leaves_no_resource() {
        let state = plaintext_state();
        let (mut conn, mut peer) = ready_to_bind(&state, false).await;
        conn.wire.out.shutdown().await.expect("shut our side down: writes fail from now on");
        peer.write_all(BIND).await.expect("bind request");
        let outcome = negotiation(&state, &peer).run(&mut conn).await;
        assert!(matches!(outcome, Err(StreamEnd::Io(_))), "the write failed");
        assert!(!state.registry.is_online(&BareJid::new("alice@localhost").expect("jid")));
    }

    /// The negotiation deadline fires while the bind result waits for a client that does
    /// not read: the negotiation is dropped there, and the resource with it.
    #[tokio::test]
    async fn a_bind_abandoned_while_its_result_waits_leaves_no_resource() {
        let state = plaintext_state();
        let (mut conn, mut peer) = ready_to_bind(&state, true).await;
        peer.write_all(BIND).await.expect("bind request");
        let mut negotiation = negotiation(&state, &peer);
        let outcome = tokio::time::timeout(Duration::from_millis(300), negotiation.run(&mut conn)).await;
        assert!(outcome.is_err(), "the bind result could not be written: the deadline fired");
        assert!(!state.registry.is_online(&BareJid::new("alice@localhost").expect("jid")));
    }

    #[tokio::test]
    async fn a_registration_taken_over_stays() {
        let state = state_with_alice();
        let jid = FullJid::new("alice@localhost/r").expect("jid");
        let (handle, registration) = register(&state, &jid);
        let mailbox = registration.take_over();
        assert_eq!(state.registry.resource(&jid).map(|r| r.id()), Some(handle.id));
        assert!(handle.send(Delivery::Wake).is_ok(), "the session's mailbox is open");
        drop(mailbox);
    }

    #[tokio::test]
    async fn a_registration_replaced_meanwhile_leaves_its_successor_alone() {
        let state = state_with_alice();
        let jid = FullJid::new("alice@localhost/r").expect("jid");
        let (_first, registration) = register(&state, &jid);
        let (second, _second_registration) = register(&state, &jid);
        drop(registration);
        assert_eq!(state.registry.resource(&jid).map(|r| r.id()), Some(second.id));
    }
}
