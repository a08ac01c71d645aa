//! Test harness for the integration tests: an in-process server ([`TestServer`]), a raw
//! XML client ([`Client`]) and structural XML matching ([`xml`]).
//!
//! Every wait in here is bounded (see [`TIMEOUT`]), so a test fails instead of hanging.

#![allow(dead_code)] // not every test module uses every helper

pub mod client;
pub mod daemon;
pub mod scram;
pub mod server;
pub mod xml;

pub use client::{Client, Mech};
pub use server::TestServer;

use std::time::Duration;

/// How long any single expectation waits for the server.
pub const TIMEOUT: Duration = Duration::from_secs(5);

pub const NS_CLIENT: &str = "jabber:client";
pub const NS_STREAM: &str = "http://etherx.jabber.org/streams";
pub const NS_STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
pub const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
pub const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
pub const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
pub const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
pub const NS_SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
pub const NS_SASL_CB: &str = "urn:xmpp:sasl-cb:0";
pub const NS_PING: &str = "urn:xmpp:ping";

/// The domain every test server serves.
pub const DOMAIN: &str = "localhost";

/// The stream header a well-behaved client sends.
pub fn stream_header(to: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}' \
         to='{to}' version='1.0'>"
    )
}

/// Sends chat messages of about 9 kB to `to` (whose client must have stopped reading)
/// until the server answers one with `resource-constraint` (the recipient's queue is
/// full). Returns how many were sent.
pub async fn flood_until_overflow(sender: &mut Client, to: &str) -> usize {
    let pad = "p".repeat(9_000);
    let mut sent = 0;
    for batch in 0..200 {
        let mut bytes = String::new();
        for i in 0..10 {
            bytes.push_str(&format!(
                "<message to='{to}' type='chat' id='f{batch}-{i}' pad='{pad}'><body>x</body></message>"
            ));
        }
        sender.send(&bytes).await;
        sent += 10;
        if let Some(frame) = sender.next_frame(Duration::from_millis(5)).await {
            let Ok(stanzad::xml::framer::Frame::Stanza(reply)) = frame else {
                panic!("expected an error reply, got {frame:?}")
            };
            xml::assert_matches(
                &reply,
                &format!(
                    "<message type='error' from='{to}' to='{{any}}'><body>x</body>\
                     <error type='wait'><resource-constraint xmlns='{NS_STANZAS}'/></error></message>"
                ),
            );
            return sent;
        }
    }
    panic!("the queue of {to} never overflowed");
}
