//! Negotiation over a transport that is not a byte stream: one element per message and
//! `<open/>`/`<close/>` framing, as a WebSocket (RFC 7395) carries XMPP. Proves the seam:
//! nothing in negotiation reads bytes or names a socket.

use super::tests::c2s;
use super::*;
use crate::xml::framer::FramerError;
use crate::xml::seam::{ByteWriter, FrameReader, Framing, Io};
use std::any::Any;
use std::sync::Mutex;
use tokio::sync::mpsc;

/// Frames the test hands in, one message each.
struct Messages(mpsc::UnboundedReceiver<Frame>);

impl FrameReader for Messages {
    fn next_frame(&mut self) -> Io<'_, Result<Frame, FramerError>> {
        Box::pin(async move { self.0.recv().await.ok_or(FramerError::Eof) })
    }

    fn restart(&mut self) {}

    fn set_limits(&mut self, _limits: Limits) {}

    fn has_buffered_content(&self) -> bool {
        false
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}

/// Everything written, kept for the test.
struct Written(Arc<Mutex<String>>);

/// RFC 7395 §3.3.2 and §3.6.
struct OpenClose;

impl Framing for OpenClose {
    fn open(&self, from: &str, id: &str, _to: Option<&str>) -> String {
        format!("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='{from}' id='{id}' version='1.0'/>")
    }

    fn close(&self) -> &'static str {
        "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"
    }
}

impl ByteWriter for Written {
    fn framing(&self) -> &'static dyn Framing {
        &OpenClose
    }

    fn write_all<'a>(&'a mut self, bytes: &'a [u8]) -> Io<'a, std::io::Result<()>> {
        self.0.lock().expect("lock").push_str(&String::from_utf8_lossy(bytes));
        Box::pin(async { Ok(()) })
    }

    fn flush(&mut self) -> Io<'_, std::io::Result<()>> {
        Box::pin(async { Ok(()) })
    }

    fn shutdown(&mut self) -> Io<'_, std::io::Result<()>> {
        Box::pin(async { Ok(()) })
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}

/// `<open to='localhost'/>` as the header it stands for.
fn open() -> Frame {
    Frame::Header(crate::c2s::header::tests::header())
}

fn element(xml: &str) -> Frame {
    Frame::Stanza(xml.parse().expect("test XML"))
}

#[tokio::test]
async fn a_client_authenticates_and_binds_over_an_element_transport() {
    let state = crate::core::state::with_accounts(&["alice@localhost"]);
    let (frames, rx) = mpsc::unbounded_channel();
    let written = Arc::new(Mutex::new(String::new()));
    let mut conn = Conn {
        reader: Box::new(Messages(rx)),
        wire: Wire::new(Box::new(Written(written.clone())), "localhost".into()),
    };
    let mut negotiation = Negotiation::new(&state, c2s(&state), SocketAddr::from(([127, 0, 0, 1], 5280)));
    // A WebSocket under TLS (RFC 7395 §3.1): secure, and there is no STARTTLS on it.
    negotiation.secure = true;
    let plain = base64::engine::general_purpose::STANDARD.encode("\0alice\0pw");
    for frame in [
        open(),
        element(&format!("<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{plain}</auth>")),
        open(),
        element(&format!(
            "<iq xmlns='{NS_CLIENT}' type='set' id='b'><bind xmlns='{NS_BIND}'><resource>ws</resource></bind></iq>"
        )),
    ] {
        frames.send(frame).expect("queued");
    }
    let next = negotiation.run(&mut conn).await.map_err(|end| format!("{end:?}")).expect("negotiated");
    let Next::Bound(bound) = next else { panic!("not bound") };
    assert_eq!(bound.jid.as_str(), "alice@localhost/ws");
    let out = written.lock().expect("lock").clone();
    assert!(out.starts_with("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'"), "{out}");
    assert_eq!(out.matches("<open ").count(), 2, "opened again after SASL: {out}");
    assert!(!out.contains("<stream:stream") && !out.contains("starttls"), "{out}");
    assert!(out.contains("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'"), "{out}");
    assert!(out.contains("<jid>alice@localhost/ws</jid>"), "{out}");
    bound.registration.take_over();

    // A stream error ends it with the transport's own closing.
    conn.wire.close(&StreamEnd::error(StreamCondition::PolicyViolation, "test")).await;
    let out = written.lock().expect("lock").clone();
    assert!(out.ends_with("</stream:error><close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"), "{out}");
    assert!(
        out.contains("<stream:error xmlns:stream='http://etherx.jabber.org/streams'>"),
        "the prefix is declared: {out}"
    );
}
