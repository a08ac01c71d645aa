//! A stream-managed (XEP-0198) client for tests where the server may die at any moment
//! (`crash.rs`): it counts the stanzas it sends and receives as XEP-0198 §4 does (every
//! `<message/>`, `<presence/>` and `<iq/>` after `<enabled/>`, never `<r/>`, `<a/>` or other
//! stream-level elements), and after login nothing in it panics on a broken connection:
//! a write that fails or a read that ends says so, and the caller decides.

use super::{xml, Client, Mech, NS_CLIENT, NS_STANZAS};
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

impl SmClient {
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
