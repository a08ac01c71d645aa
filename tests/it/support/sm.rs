//! A stream-managed (XEP-0198) client for tests where the server may die at any moment
//! (`crash.rs`): it counts the stanzas it sends and receives as XEP-0198 §4 does (every
//! `<message/>`, `<presence/>` and `<iq/>` after `<enabled/>`, never `<r/>`, `<a/>` or other
//! stream-level elements), and after login nothing in it panics on a broken connection:
//! a write that fails or a read that ends says so, and the caller decides.

use super::{stream_header, xml, Client, Mech, DOMAIN, NS_BIND, NS_CLIENT, NS_SASL, NS_STANZAS, NS_STREAM, TIMEOUT};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use stanzad::xml::framer::Frame;
use std::net::SocketAddr;
use std::time::Duration;
use xmpp_parsers::minidom::Element;

pub const NS_SM: &str = "urn:xmpp:sm:3";

/// What the next read brought.
#[derive(Debug)]
pub enum Event {
    /// A stanza (already counted) or a stream-level element (`<r/>`, `<a/>`, …).
    Element(Element),
    /// Nothing within the wait.
    Idle,
    /// The stream or the connection ended (the server was killed, say).
    Closed,
}

pub struct SmClient {
    client: Client,
    /// Stanzas sent since `<enabled/>`: what the server's `h` counts.
    pub sent: u32,
    /// Stanzas received since `<enabled/>`: our `h`.
    pub received: u32,
    /// The last `h` we sent the server.
    pub acked: u32,
    /// The resumption id the server gave, if any.
    pub resume_id: Option<String>,
    pub closed: bool,
    pub jid: String,
}

/// How a login went with respect to a previous session.
pub struct Login {
    pub client: SmClient,
    /// The server's answer to `<resume/>`, when one was attempted.
    pub resume_answer: Option<Element>,
}

/// Why a login on a new connection did not get through.
#[derive(Debug)]
pub enum Broken {
    /// The connection failed or ended on the way (the server was killed, say).
    Connection(String),
    /// The server answered something a login does not expect (or nothing in time).
    Unexpected(String),
}

/// The server's answer to `<resume/>` on a new connection.
pub enum Resumption {
    /// `<resumed h=''/>` (its `h`: how many of our stanzas the server handled): the session
    /// goes on on `client`, whose counters carry on (`sent` from that `h`, `received` from
    /// ours); the server resends after it what our `h` did not count.
    Resumed { client: SmClient, h: u32 },
    /// `<failed/>` (`answer`, with or without `h`): `client` is a new session, bound and
    /// with stream management enabled (resumable).
    Failed { client: SmClient, answer: Element },
}

/// A new connection, authenticated, on which a session is to be resumed (XEP-0198 §5),
/// while the server may die at any moment: nothing in here panics.
pub struct Reconnect {
    client: Client,
}

impl Reconnect {
    /// Connects and authenticates as `user` (SCRAM-SHA-256, password [`super::daemon::PW`]).
    pub async fn open(addr: SocketAddr, user: &str) -> Result<Reconnect, Broken> {
        let mut client = Client::try_connect(addr).await.map_err(|e| Broken::Connection(format!("connect: {e}")))?;
        open_stream(&mut client).await?;
        scram(&mut client, user).await?;
        client.reset_framer();
        open_stream(&mut client).await?;
        Ok(Reconnect { client })
    }

    /// Asks to resume `previous` (`(id, h)`; `jid` is the session's full JID); if that
    /// fails, binds `resource` and enables resumable stream management, as a client does
    /// on the stream where its resumption failed.
    pub async fn resume(self, resource: &str, previous: (&str, u32), jid: &str) -> Result<Resumption, Broken> {
        let Reconnect { mut client } = self;
        let (previd, h) = previous;
        send(&mut client, &format!("<resume xmlns='{NS_SM}' previd='{previd}' h='{h}'/>")).await?;
        let answer = element(&mut client, "the answer to <resume/>").await?;
        if answer.is("resumed", NS_SM) {
            let handled = answer.attr("h").and_then(|h| h.parse::<u32>().ok());
            let (Some(handled), Some(id)) = (handled, answer.attr("previd").filter(|id| *id == previd)) else {
                return Err(Broken::Unexpected(format!("<resume previd='{previd}'/> got {}", xml::show(&answer))));
            };
            let client = SmClient {
                client,
                sent: handled,
                received: h,
                acked: h,
                resume_id: Some(id.to_owned()),
                closed: false,
                jid: jid.to_owned(),
            };
            return Ok(Resumption::Resumed { client, h: handled });
        }
        if !answer.is("failed", NS_SM) {
            return Err(Broken::Unexpected(format!("<resume/> got {}", xml::show(&answer))));
        }
        send(
            &mut client,
            &format!("<iq type='set' id='bind-1'><bind xmlns='{NS_BIND}'><resource>{resource}</resource></bind></iq>"),
        )
        .await?;
        let bound = element(&mut client, "the bind result").await?;
        let jid = bound
            .get_child("bind", NS_BIND)
            .and_then(|b| b.get_child("jid", NS_BIND))
            .map(Element::text)
            .filter(|_| bound.is("iq", NS_CLIENT) && bound.attr("type") == Some("result"));
        let Some(jid) = jid else {
            return Err(Broken::Unexpected(format!("binding after <failed/> got {}", xml::show(&bound))));
        };
        client.jid = Some(jid.clone());
        send(&mut client, &format!("<enable xmlns='{NS_SM}' resume='true'/>")).await?;
        let enabled = element(&mut client, "<enabled/>").await?;
        let Some(id) = enabled.attr("id").filter(|_| enabled.is("enabled", NS_SM)) else {
            return Err(Broken::Unexpected(format!("<enable resume='true'/> got {}", xml::show(&enabled))));
        };
        let resume_id = Some(id.to_owned());
        let client = SmClient { client, sent: 0, received: 0, acked: 0, resume_id, closed: false, jid };
        Ok(Resumption::Failed { client, answer })
    }
}

impl SmClient {
    /// The connection dies (FIN, no `</stream:stream>`): the server's session, if
    /// resumable, waits for a resumption. Nothing can be written or read on it after this.
    pub async fn drop_connection(&mut self) {
        if !self.closed {
            self.client.shutdown_write().await;
        }
        self.closed = true;
    }

    /// Logs in as `user` (SCRAM-SHA-256, password [`super::daemon::PW`]); first tries to
    /// resume `previous` (`(id, h)`) when given, then binds `resource` and enables stream
    /// management (asking for resumption when `resumable`). Panics on any failure: the
    /// server is expected to be up and idle while clients log in.
    pub async fn login(
        addr: SocketAddr,
        user: &str,
        resource: &str,
        previous: Option<(&str, u32)>,
        resumable: bool,
    ) -> Login {
        let mut client = Client::connect(addr).await;
        client.open_stream().await;
        client
            .authenticate(Mech::ScramSha256, user, super::daemon::PW)
            .await
            .unwrap_or_else(|condition| panic!("login of {user} failed: {condition}"));
        let resume_answer = match previous {
            Some((id, h)) => {
                client.send(&format!("<resume xmlns='{NS_SM}' previd='{id}' h='{h}'/>")).await;
                Some(client.recv().await)
            }
            None => None,
        };
        let jid = client.bind(Some(resource)).await;
        let attr = if resumable { " resume='true'" } else { "" };
        client.send(&format!("<enable xmlns='{NS_SM}'{attr}/>")).await;
        let enabled = client.recv().await;
        assert!(enabled.is("enabled", NS_SM), "{user}: expected <enabled/>, got {}", xml::show(&enabled));
        let resume_id = enabled.attr("id").map(str::to_owned);
        assert_eq!(resume_id.is_some(), resumable, "{user}: {}", xml::show(&enabled));
        let client = SmClient { client, sent: 0, received: 0, acked: 0, resume_id, closed: false, jid };
        Login { client, resume_answer }
    }

    /// Writes bytes that are not stanzas (`<r/>`, `<a/>`, the stream's end); false if the
    /// connection is broken.
    pub async fn send_raw(&mut self, bytes: &str) -> bool {
        if self.closed {
            return false;
        }
        if self.client.try_send_bytes(bytes.as_bytes()).await.is_err() {
            self.closed = true;
        }
        !self.closed
    }

    /// Writes `count` stanzas (serialised together in `bytes`) and counts them: whatever
    /// the server got of them is what its `h` will say. False if the connection is broken.
    pub async fn send_stanzas(&mut self, bytes: &str, count: u32) -> bool {
        if self.closed {
            return false;
        }
        // Counted before the write: a write that fails may still have delivered some.
        self.sent = self.sent.wrapping_add(count);
        self.send_raw(bytes).await
    }

    /// `<r/>`: asks the server how many of our stanzas it handled.
    pub async fn request_ack(&mut self) -> bool {
        self.send_raw(&format!("<r xmlns='{NS_SM}'/>")).await
    }

    /// `<a h=''/>` with everything received so far.
    pub async fn ack(&mut self) -> bool {
        let h = self.received;
        let ok = self.send_raw(&format!("<a xmlns='{NS_SM}' h='{h}'/>")).await;
        if ok {
            self.acked = h;
        }
        ok
    }

    /// The next element within `wait`; stanzas are counted.
    pub async fn next(&mut self, wait: Duration) -> Event {
        if self.closed {
            return Event::Closed;
        }
        match self.client.next_frame(wait).await {
            None => Event::Idle,
            Some(Ok(Frame::Stanza(element))) => {
                if element.ns() == NS_CLIENT && matches!(element.name(), "message" | "presence" | "iq") {
                    self.received = self.received.wrapping_add(1);
                }
                Event::Element(element)
            }
            Some(Ok(Frame::Header(_))) | Some(Ok(Frame::Close)) | Some(Err(_)) => {
                self.closed = true;
                Event::Closed
            }
        }
    }

    /// Ends the stream cleanly: acknowledges what arrived, `</stream:stream>`, and reads
    /// (and counts, returning them) whatever comes before the server's end, within `wait`.
    pub async fn close(&mut self, wait: Duration) -> Vec<Element> {
        let mut late = Vec::new();
        if !self.ack().await || !self.send_raw("</stream:stream>").await {
            return late;
        }
        let deadline = tokio::time::Instant::now() + wait;
        while tokio::time::Instant::now() < deadline {
            match self.next(deadline - tokio::time::Instant::now()).await {
                Event::Element(element) => late.push(element),
                Event::Idle | Event::Closed => break,
            }
        }
        self.closed = true;
        late
    }
}

/// Whether `element` is `<failed xmlns='urn:xmpp:sm:3'>` with `condition` (and no `h`).
pub fn is_failed_unknown(element: &Element, condition: &str) -> bool {
    element.is("failed", NS_SM)
        && element.attr("h").is_none()
        && element.children().any(|c| c.ns() == NS_STANZAS && c.name() == condition)
}

async fn send(client: &mut Client, bytes: &str) -> Result<(), Broken> {
    client.try_send_bytes(bytes.as_bytes()).await.map_err(|e| Broken::Connection(format!("write: {e}")))
}

/// The next frame within [`TIMEOUT`]; the connection's end is [`Broken::Connection`].
async fn frame(client: &mut Client, what: &str) -> Result<Frame, Broken> {
    match client.next_frame(TIMEOUT).await {
        Some(Ok(Frame::Close)) => Err(Broken::Connection(format!("the stream ended while waiting for {what}"))),
        Some(Ok(frame)) => Ok(frame),
        Some(Err(e)) => Err(Broken::Connection(format!("waiting for {what}: {e}"))),
        None => Err(Broken::Unexpected(format!("nothing within {TIMEOUT:?} while waiting for {what}"))),
    }
}

/// The next element; a stream header or a stream error is unexpected.
async fn element(client: &mut Client, what: &str) -> Result<Element, Broken> {
    match frame(client, what).await? {
        Frame::Stanza(element) if !element.is("error", NS_STREAM) => Ok(element),
        Frame::Stanza(error) => Err(Broken::Unexpected(format!("waiting for {what}: {}", xml::show(&error)))),
        other => Err(Broken::Unexpected(format!("waiting for {what}: {other:?}"))),
    }
}

/// Our stream header; the server's header and features.
async fn open_stream(client: &mut Client) -> Result<(), Broken> {
    send(client, &stream_header(DOMAIN)).await?;
    match frame(client, "the stream header").await? {
        Frame::Header(_) => {}
        other => return Err(Broken::Unexpected(format!("expected the stream header, got {other:?}"))),
    }
    let features = element(client, "the stream features").await?;
    match features.is("features", NS_STREAM) {
        true => Ok(()),
        false => Err(Broken::Unexpected(format!("expected stream features, got {}", xml::show(&features)))),
    }
}

/// SCRAM-SHA-256 as `user` (password [`super::daemon::PW`]), the server's signature checked.
async fn scram(client: &mut Client, user: &str) -> Result<(), Broken> {
    let mut mechanism = client.mechanism(Mech::ScramSha256, user, super::daemon::PW);
    let initial = STANDARD.encode(mechanism.initial());
    send(client, &format!("<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>{initial}</auth>")).await?;
    loop {
        let element = element(client, "SASL").await?;
        let unexpected = |why: String| Broken::Unexpected(format!("SASL: {why}: {}", xml::show(&element)));
        let text = element.text();
        let data = match text.trim() {
            "=" | "" => Vec::new(),
            text => STANDARD.decode(text).map_err(|e| unexpected(e.to_string()))?,
        };
        match (element.ns() == NS_SASL, element.name()) {
            (true, "challenge") => {
                let response = mechanism.response(&data).map_err(|e| unexpected(format!("{e:?}")))?;
                let response = STANDARD.encode(response);
                send(client, &format!("<response xmlns='{NS_SASL}'>{response}</response>")).await?;
            }
            (true, "success") => {
                return mechanism.success(&data).map_err(|e| unexpected(format!("{e:?}")));
            }
            _ => return Err(unexpected("not a challenge or success".to_owned())),
        }
    }
}
