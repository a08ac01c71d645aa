//! One connection from accept to a bound resource (RFC 6120 §4–§7): stream headers,
//! STARTTLS, SASL and resource binding, with the stream restarts in between.

use super::error::{StreamCondition, StreamEnd};
use super::link::control_end;
use super::registration::Registration;
use super::wire::Wire;
use super::{features, header};
use crate::core::revocation::Generation;
use crate::core::state::ServerState;
use crate::core::{BindRefused, Control, SessionHandle};
use crate::sasl::{self, ChannelBindings, CredentialLookup, Exchange, Mechanism, SaslError, Step};
use crate::xml::framer::{Frame, Limits};
use crate::xml::{el, writer, Element, ElementExt, NS_BIND, NS_CLIENT, NS_SASL, NS_TLS};
use crate::xmpp::error::{Condition, StanzaError};
use crate::xmpp::stanza::{error_reply, IqType, Kind, ParseError, Stanza};
use base64::Engine;
use std::net::SocketAddr;
use std::sync::Arc;
use xmpp_parsers::jid::{BareJid, FullJid};

/// The reading side of a connection (the transport seam).
pub type Reader = Box<dyn crate::xml::seam::FrameReader>;

/// A connection's two halves during negotiation.
pub struct Conn {
    pub reader: Reader,
    pub wire: Wire,
}

/// Where negotiation on one transport ended.
pub enum Next {
    /// The client sent `<starttls/>` and we said `<proceed/>`.
    StartTls,
    /// A resource is bound: the session starts.
    Bound(Box<Bound>),
    /// XEP-0198 §5: the client resumes a session that still exists; `h` is what it got.
    Resume(super::resume::ResumeSender, u32),
}

pub struct Bound {
    pub jid: FullJid,
    pub handle: SessionHandle,
    /// Undone if the session never starts; the session task takes it over.
    pub registration: Registration,
}

/// What negotiation knows about the connection so far.
pub struct Negotiation<'a> {
    /// Shared, not only borrowed: a registered resource keeps it to undo the registration.
    pub state: &'a Arc<ServerState>,
    pub c2s: &'a super::Shared,
    pub peer: SocketAddr,
    pub secure: bool,
    pub cb: ChannelBindings,
    pub domain: Option<String>,
    pub user: Option<BareJid>,
    exchange: Option<Exchange>,
    failures: u32,
    /// `<auth/>` elements seen on this connection (restarted exchanges included).
    auths: u32,
    /// The stream is open already: go on reading it (after a resumption that failed).
    pub mid_stream: bool,
    /// When the latest SASL exchange started: a later change of the account's credentials
    /// (`stanzad passwd`, `deluser`) revokes what it authenticated.
    since: Generation,
}

pub fn preauth_limits(state: &ServerState) -> Limits {
    let l = &state.config.limits;
    Limits { max_stanza_bytes: l.preauth_stanza_bytes, max_depth: l.max_depth, max_attributes: l.max_attributes }
}

pub fn session_limits(state: &ServerState) -> Limits {
    let l = &state.config.limits;
    Limits { max_stanza_bytes: l.max_stanza_bytes, max_depth: l.max_depth, max_attributes: l.max_attributes }
}

fn stream_error(condition: StreamCondition, text: &str) -> StreamEnd {
    StreamEnd::error(condition, text)
}

impl<'a> Negotiation<'a> {
    pub fn new(state: &'a Arc<ServerState>, c2s: &'a super::Shared, peer: SocketAddr) -> Negotiation<'a> {
        Negotiation {
            state,
            c2s,
            peer,
            secure: false,
            cb: ChannelBindings::default(),
            domain: None,
            user: None,
            exchange: None,
            failures: 0,
            auths: 0,
            mid_stream: false,
            since: state.revocations.now(),
        }
    }

    /// Runs streams on the current transport until STARTTLS or a bound resource.
    pub async fn run(&mut self, conn: &mut Conn) -> Result<Next, StreamEnd> {
        loop {
            if !std::mem::take(&mut self.mid_stream) {
                self.open_stream(conn).await?;
            }
            if let Some(next) = self.negotiate_stream(conn).await? {
                return Ok(next);
            }
            // SASL succeeded: the client opens a new stream on the same transport.
            conn.reader.restart();
            conn.reader.set_limits(session_limits(self.state));
            conn.wire.header_sent = false;
        }
    }

    /// Reads the client's header, answers with ours and the features of this stage.
    async fn open_stream(&mut self, conn: &mut Conn) -> Result<(), StreamEnd> {
        let header = match self.next_frame(conn).await? {
            Frame::Header(header) => header,
            _ => return Err(stream_error(StreamCondition::NotWellFormed, "expected a stream header")),
        };
        let domain = header::validate(&header, &self.state.config)?;
        if self.domain.as_ref().is_some_and(|d| *d != domain) {
            return Err(stream_error(StreamCondition::HostUnknown, "the domain changed on restart"));
        }
        conn.wire.domain = domain.clone();
        self.domain = Some(domain);
        let client_from = header.from.as_deref().filter(|f| xmpp_parsers::jid::Jid::new(f).is_ok());
        conn.wire.open(client_from).await?;
        let config = &self.state.config;
        let features = match (&self.user, self.secure) {
            (Some(_), _) => features::after_auth(config, &self.state.modules),
            (None, false) => features::before_tls(config),
            (None, true) => features::before_auth(config, &self.cb, true),
        };
        conn.wire.send(features.as_bytes()).await?;
        Ok(())
    }

    /// The client's next frame. After authentication, a change of the account's credentials
    /// ends the stream at once instead, as it ends bound sessions (RFC 6120 §4.9.3.17): the
    /// framer's read is dropped unfinished only then, when the stream ends anyway.
    async fn next_frame(&self, conn: &mut Conn) -> Result<Frame, StreamEnd> {
        let Some(user) = &self.user else {
            return Ok(conn.reader.next_frame().await?);
        };
        tokio::select! {
            biased;
            why = self.state.revocations.revoked(user, self.since) => Err(control_end(why)),
            frame = conn.reader.next_frame() => Ok(frame?),
        }
    }

    /// How the stream ends if the authenticated account's credentials changed since.
    fn revoked(&self) -> Option<Control> {
        self.state.revocations.revoked_since(self.user.as_ref()?, self.since)
    }

    /// Handles elements until the stream restarts (Ok(None)) or negotiation ends here.
    async fn negotiate_stream(&mut self, conn: &mut Conn) -> Result<Option<Next>, StreamEnd> {
        loop {
            let element = match self.next_frame(conn).await? {
                Frame::Stanza(element) => element,
                Frame::Close => return Err(StreamEnd::PeerClosed),
                Frame::Header(_) => {
                    return Err(stream_error(StreamCondition::NotWellFormed, "unexpected stream header"))
                }
            };
            let ns = element.ns();
            if ns == NS_TLS {
                return self.on_starttls(conn, &element).await.map(Some);
            }
            if !self.secure && !self.state.config.auth.allow_plaintext {
                return Err(stream_error(StreamCondition::PolicyViolation, "STARTTLS is required"));
            }
            if ns == NS_SASL {
                if self.on_sasl(conn, &element).await? {
                    return Ok(None);
                }
                continue;
            }
            if element.has_ns(crate::c2s::session::sm::NS) && self.user.is_some() {
                if let Some(next) = self.on_stream_management(conn, &element).await? {
                    return Ok(Some(next));
                }
                continue;
            }
            if let Some(bound) = self.on_stanza(conn, element).await? {
                return Ok(Some(Next::Bound(Box::new(bound))));
            }
        }
    }

    async fn on_starttls(&mut self, conn: &mut Conn, element: &Element) -> Result<Next, StreamEnd> {
        if element.name() != "starttls" || self.secure || self.user.is_some() {
            return Err(stream_error(StreamCondition::PolicyViolation, "STARTTLS is not available now"));
        }
        // Plaintext pipelined behind <starttls/> would be read as if it came over TLS
        // (CVE-2011-0411): refuse the upgrade and close (RFC 6120 §5.4.2.2).
        if conn.reader.has_buffered_content() {
            conn.wire.send(format!("<failure xmlns='{NS_TLS}'/>").as_bytes()).await?;
            return Err(StreamEnd::ServerClosed("data pipelined after <starttls/>: TLS refused"));
        }
        conn.wire.send(format!("<proceed xmlns='{NS_TLS}'/>").as_bytes()).await?;
        // RFC 6120 §5.4.3.3: nothing learned before TLS carries over.
        self.exchange = None;
        Ok(Next::StartTls)
    }

    /// Returns true when authentication succeeded (the stream restarts).
    async fn on_sasl(&mut self, conn: &mut Conn, element: &Element) -> Result<bool, StreamEnd> {
        if self.user.is_some() {
            return Err(stream_error(StreamCondition::PolicyViolation, "already authenticated"));
        }
        // Restarted exchanges never fail, so they are capped separately (RFC 6120 §6.4.5).
        if element.name() == "auth" && self.auths > self.state.config.auth.max_failed_attempts * 2 {
            return Err(stream_error(StreamCondition::PolicyViolation, "too many authentication attempts"));
        }
        let step = match element.name() {
            "auth" => self.start_exchange(element).await,
            "response" => match self.exchange.take() {
                Some(exchange) => match sasl::decode_b64(&element.text()) {
                    Ok(input) => self.step(exchange, input).await,
                    Err(e) => Step::Failure(e),
                },
                None => Step::Failure(SaslError::MalformedRequest),
            },
            "abort" => Step::Failure(SaslError::Aborted),
            _ => Step::Failure(SaslError::MalformedRequest),
        };
        match step {
            Step::Challenge(data) => {
                let text = base64::engine::general_purpose::STANDARD.encode(data);
                conn.wire.send(format!("<challenge xmlns='{NS_SASL}'>{text}</challenge>").as_bytes()).await?;
                Ok(false)
            }
            Step::Success { username, authzid, additional_data } => {
                self.on_sasl_success(conn, &username, authzid.as_deref(), additional_data).await
            }
            Step::Failure(error) => {
                self.on_sasl_failure(conn, error).await?;
                Ok(false)
            }
        }
    }

    async fn start_exchange(&mut self, element: &Element) -> Step {
        self.auths += 1;
        // Before the credentials are looked up: a change after this revokes the login.
        self.since = self.state.revocations.now();
        let Some(mechanism) = element.attr("mechanism").and_then(Mechanism::from_name) else {
            return Step::Failure(SaslError::InvalidMechanism);
        };
        let allow_plain = self.state.config.auth.allow_plaintext;
        let exchange = Exchange::start(mechanism, self.cb.clone(), self.secure, allow_plain);
        match sasl::decode_b64(&element.text()) {
            Ok(input) => self.step(exchange, input).await,
            Err(e) => {
                self.exchange = Some(exchange);
                Step::Failure(e)
            }
        }
    }

    /// Runs one step and keeps the exchange. The credentials the step will look up are
    /// fetched first (the store may answer later; the mechanisms are synchronous). PLAIN
    /// derives a key from the password (PBKDF2): that runs on the blocking pool, a few at a
    /// time, never on the workers that serve every other connection.
    async fn step(&mut self, mut exchange: Exchange, input: Option<Vec<u8>>) -> Step {
        let lookup = self.lookup(exchange.username_in(input.as_deref())).await;
        if exchange.mechanism() != Mechanism::Plain {
            let step = exchange.step(input.as_deref(), &lookup);
            self.exchange = Some(exchange);
            return step;
        }
        let Ok(_permit) = self.c2s.kdf_permits.acquire().await else {
            return Step::Failure(SaslError::TemporaryAuthFailure);
        };
        let work = tokio::task::spawn_blocking(move || {
            let step = exchange.step(input.as_deref(), &lookup);
            (exchange, step)
        });
        match work.await {
            Ok((exchange, step)) => {
                self.exchange = Some(exchange);
                step
            }
            Err(e) => {
                tracing::error!(error = %e, "SASL step failed");
                Step::Failure(SaslError::TemporaryAuthFailure)
            }
        }
    }

    /// What the step's credential lookup answers: the credentials of `username`, fetched
    /// now.
    async fn lookup(&self, username: Option<String>) -> Lookup {
        let domain = self.domain.clone().unwrap_or_default();
        let jid = username.as_deref().and_then(|name| account(name, &domain));
        let fetched = match jid {
            Some(jid) => self.state.store.credentials(&jid).await.map_err(|e| {
                tracing::error!(error = %e, "credential lookup failed");
            }),
            None => Ok(None),
        };
        Lookup {
            fetched: username.map(|name| (name, fetched)),
            domain,
            iterations: self.state.config.auth.scram_iterations,
        }
    }

    async fn on_sasl_success(
        &mut self,
        conn: &mut Conn,
        username: &str,
        authzid: Option<&str>,
        additional: Option<Vec<u8>>,
    ) -> Result<bool, StreamEnd> {
        let Some(user) = account(username, self.domain.as_deref().unwrap_or_default()) else {
            self.on_sasl_failure(conn, SaslError::NotAuthorized).await?;
            return Ok(false);
        };
        self.exchange = None;
        // RFC 6120 §6.4.6: we only let a user act as themselves.
        if authzid.is_some_and(|a| !a.is_empty() && BareJid::new(a).ok().as_ref() != Some(&user)) {
            self.on_sasl_failure(conn, SaslError::InvalidAuthzid).await?;
            return Ok(false);
        }
        // A right guess waits as long as a wrong one would, so parallel guessing cannot
        // tell success from a slow failure early.
        let penalty = self.c2s.throttle.penalty(&self.throttle_keys(Some(&user)), tokio::time::Instant::now());
        tokio::time::sleep(penalty).await;
        let success = match additional {
            Some(data) => {
                let text = base64::engine::general_purpose::STANDARD.encode(data);
                format!("<success xmlns='{NS_SASL}'>{text}</success>")
            }
            None => format!("<success xmlns='{NS_SASL}'/>"),
        };
        self.c2s.throttle.succeeded(&format!("user:{user}"));
        tracing::info!(user = %user, "authenticated");
        self.user = Some(user);
        conn.wire.send(success.as_bytes()).await?;
        Ok(true)
    }

    /// Sends `<failure/>`, slowed down for wrong credentials; too many ends the stream.
    async fn on_sasl_failure(&mut self, conn: &mut Conn, error: SaslError) -> Result<(), StreamEnd> {
        let user = self.attempted_user();
        self.exchange = None;
        if error != SaslError::Aborted {
            self.failures += 1;
        }
        if error == SaslError::NotAuthorized {
            let keys = self.throttle_keys(user.as_ref());
            let delay = self.c2s.throttle.failed(&keys, tokio::time::Instant::now());
            tracing::info!(peer = %self.peer, delay_ms = delay.as_millis() as u64, "authentication failed");
            tokio::time::sleep(delay).await;
        }
        let failure = format!("<failure xmlns='{NS_SASL}'><{}/></failure>", error.condition());
        conn.wire.send(failure.as_bytes()).await?;
        if self.failures >= self.state.config.auth.max_failed_attempts {
            return Err(stream_error(StreamCondition::PolicyViolation, "too many failed authentication attempts"));
        }
        Ok(())
    }

    /// The account the current exchange is about, whether or not it exists: a name that
    /// earned a delay only when it exists would tell which names do.
    fn attempted_user(&self) -> Option<BareJid> {
        account(self.exchange.as_ref()?.authcid()?, self.domain.as_deref().unwrap_or_default())
    }

    fn throttle_keys(&self, user: Option<&BareJid>) -> Vec<String> {
        // IPv6 per /64: one subscriber's prefix, as for connections.
        let mut keys = vec![format!("ip:{}", super::admission::source_of(self.peer.ip()))];
        keys.extend(user.map(|user| format!("user:{user}")));
        keys
    }

    /// XEP-0198 before a resource is bound: `<resume/>` instead of binding; anything else
    /// has to wait for the bind (§3: enable after binding).
    async fn on_stream_management(&mut self, conn: &mut Conn, element: &Element) -> Result<Option<Next>, StreamEnd> {
        use super::resume::{failed, Lookup};
        let (Some(user), "resume", true) = (&self.user, element.name(), self.state.config.stream_management.enabled)
        else {
            conn.wire.send(failed("unexpected-request", None).as_bytes()).await?;
            return Ok(None);
        };
        let previd = element.attr("previd").unwrap_or_default();
        let Some(h) = element.attr("h").and_then(|h| h.parse::<u32>().ok()) else {
            conn.wire.send(failed("bad-request", None).as_bytes()).await?;
            return Ok(None);
        };
        // Not handed to the session if the credentials changed; a change from now on
        // reaches the session itself (it is in the router), connection and all.
        if let Some(why) = self.revoked() {
            return Err(control_end(why));
        }
        let failure = match self.c2s.resumptions.lookup(previd, user) {
            Lookup::Live(session) => return Ok(Some(Next::Resume(session, h))),
            Lookup::Ended(h) => failed("item-not-found", Some(h)),
            Lookup::Unknown => failed("item-not-found", None),
        };
        tracing::info!(user = %user, "resumption refused: no such session");
        conn.wire.send(failure.as_bytes()).await?;
        Ok(None)
    }

    /// Stanzas before a resource is bound: only the bind request is allowed (RFC 6120 §7.1).
    async fn on_stanza(&mut self, conn: &mut Conn, element: Element) -> Result<Option<Bound>, StreamEnd> {
        let Some(user) = self.user.clone() else {
            return Err(stream_error(StreamCondition::NotAuthorized, "authenticate first"));
        };
        let stanza = match Stanza::parse(element).map_err(|b| *b) {
            Ok(stanza) => stanza,
            Err((ParseError::NotAStanza, _)) => {
                return Err(stream_error(StreamCondition::UnsupportedStanzaType, "not a stanza"))
            }
            Err((ParseError::Invalid(error), element)) => {
                if crate::xmpp::stanza::answerable(&element) {
                    conn.wire.send(&writer::to_bytes(&error_reply(&element, &error))).await?;
                }
                return Ok(None);
            }
        };
        let bind = stanza.element.get_child("bind", NS_BIND);
        let (Kind::Iq(IqType::Set), Some(bind)) = (stanza.kind, bind) else {
            return Err(stream_error(StreamCondition::NotAuthorized, "bind a resource first"));
        };
        let requested = match xmpp_parsers::bind::BindQuery::try_from(bind.clone()) {
            Ok(query) => query.resource.filter(|r| !r.is_empty()),
            Err(e) => {
                let error = StanzaError::with_text(Condition::BadRequest, &format!("malformed bind: {e}"));
                conn.wire.send(&writer::to_bytes(&error_reply(&stanza.element, &error))).await?;
                return Ok(None);
            }
        };
        let resource = requested.unwrap_or_else(generated_resource);
        let jid = match user.with_resource_str(&resource) {
            Ok(jid) => jid,
            Err(e) => {
                let error = StanzaError::with_text(Condition::BadRequest, &format!("invalid resource: {e}"));
                conn.wire.send(&writer::to_bytes(&error_reply(&stanza.element, &error))).await?;
                return Ok(None);
            }
        };
        // The account may have been deleted since authentication.
        if !self.state.store.user_exists(&user).await.unwrap_or(false) {
            return Err(stream_error(StreamCondition::NotAuthorized, "the account no longer exists"));
        }
        let bound = match self.bind(jid).await {
            Ok(bound) => bound,
            Err(BindRefused::TooManyResources) => {
                // RFC 6120 §7.6.2.1: a stanza error; the stream stays, and the client may
                // try again once one of its resources is gone.
                let error =
                    StanzaError::with_text(Condition::ResourceConstraint, "too many resources for this account");
                conn.wire.send(&writer::to_bytes(&error_reply(&stanza.element, &error))).await?;
                return Ok(None);
            }
            Err(BindRefused::NotAdmitted(why)) => return Err(control_end(why)),
        };
        let result = crate::xmpp::stanza::result_reply(&stanza.element, None)
            .with_child(el("bind", NS_BIND).with_child(el("jid", NS_BIND).with_text(bound.jid.as_str())));
        conn.wire.send(&writer::to_bytes(&result)).await?;
        Ok(Some(bound))
    }

    /// Registers the resource, within the account's limit of resources; an older session
    /// with the same full JID is told to go (RFC 6120 §7.7.2.2, "override the existing
    /// session").
    async fn bind(&self, jid: FullJid) -> Result<Bound, BindRefused> {
        let registry = &self.state.registry;
        let limits = &self.state.config.limits;
        let (handle, mailbox) = registry.channels(limits.session_queue, limits.session_queue_bytes);
        // Asked under the router's lock: a credential change is either seen here or comes
        // after the registration, and then it ends this session with the others.
        let admit = || self.revoked().map_or(Ok(()), Err);
        let replaced = registry.bind_within(jid.clone(), handle.clone(), limits.max_resources_per_account, &admit);
        if let Err(BindRefused::TooManyResources) = replaced {
            tracing::info!(jid = %jid, "bind refused: the account has too many resources");
        }
        let replaced = replaced?;
        // From here until the session task takes over, whatever ends the negotiation (the
        // bind result cannot be written, the deadline, shutdown) undoes the registration.
        let registration = Registration::new(self.state.clone(), jid.clone(), handle.id, mailbox);
        if let Some(old) = replaced {
            tracing::info!(jid = %jid, "resource conflict: replacing the older session");
            // Out of the router already, the predecessor is told to go whatever happens
            // next, even if this negotiation ends while the broadcast below awaits.
            let replaced = Replaced { registry: registry.as_ref(), old };
            if replaced.old.priority.is_some() {
                // The predecessor leaves now, before its successor can announce itself.
                let unavailable = el("presence", NS_CLIENT).with("type", "unavailable");
                crate::core::presence::broadcast(self.state, &jid, &unavailable, None).await;
            }
        }
        Ok(Bound { jid, handle, registration })
    }
}

fn generated_resource() -> String {
    format!("stanzad-{}", &super::wire::new_stream_id()[..12])
}

/// Tells a session that a new one took its JID (`Control::Replaced`) when dropped.
struct Replaced<'a> {
    registry: &'a dyn crate::core::Registry,
    old: crate::core::Resource,
}

impl Drop for Replaced<'_> {
    fn drop(&mut self) {
        self.registry.control(&self.old, Control::Replaced);
    }
}

/// The account a SASL username names: a localpart of the stream's domain.
fn account(username: &str, domain: &str) -> Option<BareJid> {
    let jid = BareJid::new(&format!("{username}@{domain}")).ok()?;
    (jid.node().is_some() && jid.domain().as_str() == domain).then_some(jid)
}

/// The credentials one step looks up, fetched before it (`Negotiation::lookup`).
struct Lookup {
    /// The username and what the store answered for it.
    fetched: Option<(String, Result<Option<sasl::credentials::StoredCredentials>, ()>)>,
    domain: String,
    iterations: u32,
}

impl CredentialLookup for Lookup {
    /// The fetched answer; a name nobody fetched (the engine asks only for the one
    /// `username_in` gave) is a fault, never a guess.
    fn lookup(&self, username: &str) -> Result<Option<sasl::credentials::StoredCredentials>, ()> {
        match &self.fetched {
            Some((name, fetched)) if name == username => fetched.clone(),
            _ => {
                tracing::error!("SASL looked up a name that was not fetched");
                Err(())
            }
        }
    }

    /// Unknown users get the iteration count real accounts have, so they look alike.
    fn fake_iterations(&self) -> u32 {
        self.iterations
    }

    fn canonical(&self, username: &str) -> String {
        match account(username, &self.domain).as_ref().and_then(|jid| jid.node()) {
            Some(node) => node.to_string(),
            None => username.to_owned(),
        }
    }
}

#[cfg(test)]
mod element_transport;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::transport::stream::Transport;

    /// The client connections' shared state, for the test's whole run.
    pub(crate) fn c2s(state: &ServerState) -> &'static crate::c2s::Shared {
        Box::leak(Box::new(crate::c2s::Shared::new(&state.config)))
    }

    fn state_with_alice() -> Arc<ServerState> {
        crate::core::state::with_accounts(&["alice@localhost"])
    }

    /// Alice's negotiation, authenticated (its SASL exchange began now).
    fn authenticated(state: &Arc<ServerState>) -> Negotiation<'_> {
        let mut negotiation = Negotiation::new(state, c2s(state), SocketAddr::from(([127, 0, 0, 1], 5222)));
        negotiation.since = state.revocations.now();
        negotiation.user = Some(BareJid::new("alice@localhost").expect("jid"));
        negotiation
    }

    /// A connection over loopback TCP, and the client's end of it.
    async fn loopback(state: &ServerState) -> (Conn, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("listen");
        let client = tokio::net::TcpStream::connect(listener.local_addr().expect("addr")).await.expect("connect");
        let (server_side, _) = listener.accept().await.expect("accept");
        let (reader, writer) = crate::transport::stream::split(Transport::Plain(server_side), session_limits(state));
        let conn = Conn { reader, wire: Wire::new(writer, "localhost".into()) };
        (conn, client)
    }

    /// The race of `stanzad passwd` with a bind already read: the administrator's change
    /// comes before the registration (after it, ending the router's sessions ends this one).
    #[tokio::test]
    async fn a_bind_after_the_password_changed_registers_nothing() {
        let state = state_with_alice();
        let negotiation = authenticated(&state);
        let alice = BareJid::new("alice@localhost").expect("jid");
        state.revocations.revoke(&alice, Control::PasswordChanged);
        let jid = alice.with_resource_str("r").expect("jid");
        assert!(matches!(negotiation.bind(jid).await, Err(BindRefused::NotAdmitted(Control::PasswordChanged))));
        assert!(!state.registry.is_online(&alice));
    }

    /// A negotiation that ends (its deadline, shutdown) while its bind awaits the store for
    /// the unavailable presence of the session it replaces still tells that session to go:
    /// it is out of the router already, and would otherwise stay connected and unreachable.
    #[tokio::test]
    async fn a_replaced_session_is_told_even_if_the_bind_is_cancelled() {
        use crate::storage::UserStore;
        let store = crate::storage::memory::MemoryStore::new();
        let alice = BareJid::new("alice@localhost").expect("jid");
        let creds = crate::sasl::credentials::StoredCredentials::derive("pw", 4096).expect("derive");
        store.create_user(&alice, &creds).at_once().expect("account");
        let later = crate::storage::later::Later::new(Arc::new(store));
        let state = ServerState::new(crate::config::Config::default(), Arc::new(later), Default::default());
        let jid = alice.with_resource_str("r").expect("jid");
        let (old, mut old_mailbox) = state.registry.channels(8, 1 << 20);
        state.registry.bind(jid.clone(), old.clone());
        let presence = Arc::new(el("presence", NS_CLIENT));
        state.registry.set_presence(&jid, old.id, Some((0, presence)));
        let negotiation = authenticated(&state);
        let mut bind = Box::pin(negotiation.bind(jid));
        assert!(futures::poll!(&mut bind).is_pending(), "the broadcast awaits the store");
        drop(bind);
        assert!(matches!(old_mailbox.control.try_recv(), Some(Control::Replaced)));
    }

    /// A `<resume/>` read before the change was noticed is not handed to the session.
    #[tokio::test]
    async fn a_resumption_after_the_account_was_deleted_ends_the_stream() {
        let state = state_with_alice();
        let alice = BareJid::new("alice@localhost").expect("jid");
        let (session, mut waiting) = crate::core::signal::channel();
        let mut negotiation = authenticated(&state);
        negotiation.c2s.resumptions.register("previd", alice.clone(), session);
        state.revocations.revoke(&alice, Control::AccountDeleted);
        let (mut conn, _client) = loopback(&state).await;
        let resume = el("resume", crate::c2s::session::sm::NS).with("previd", "previd").with("h", "0");
        let outcome = negotiation.on_stream_management(&mut conn, &resume).await;
        assert!(matches!(outcome, Err(StreamEnd::Error(StreamCondition::NotAuthorized, _))));
        assert!(waiting.try_recv().is_none(), "nothing was offered to the session");
    }

    /// Changes before the SASL exchange began revoke nothing.
    #[tokio::test]
    async fn a_change_before_the_login_began_does_not_revoke_it() {
        let state = state_with_alice();
        let alice = BareJid::new("alice@localhost").expect("jid");
        state.revocations.revoke(&alice, Control::PasswordChanged);
        let negotiation = authenticated(&state);
        let jid = alice.with_resource_str("r").expect("jid");
        let bound = negotiation.bind(jid).await;
        assert!(bound.is_ok());
        assert!(state.registry.is_online(&alice));
    }
}
