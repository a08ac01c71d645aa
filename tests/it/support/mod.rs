//! Test harness for the integration tests: an in-process server ([`TestServer`]), a raw
//! XML client ([`Client`]) and structural XML matching ([`xml`]).
//!
//! Every wait in here is bounded (see [`TIMEOUT`]), so a test fails instead of hanging.

#![allow(dead_code)] // not every test module uses every helper

pub mod client;
pub mod daemon;
pub mod scram;
pub mod server;
pub mod sm;
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

/// Sends batches of ten chat messages of about 9 kB to `to` (ids `f{batch}-{i}`), without
/// reading anything. Returns the ids sent.
pub async fn flood(sender: &mut Client, to: &str, batches: std::ops::Range<usize>) -> Vec<String> {
    let pad = "p".repeat(9_000);
    let mut sent = Vec::new();
    for batch in batches {
        let mut bytes = String::new();
        for i in 0..10 {
            let id = format!("f{batch}-{i}");
            bytes.push_str(&format!("<message to='{to}' type='chat' id='{id}' pad='{pad}'><body>x</body></message>"));
            sent.push(id);
        }
        sender.send(&bytes).await;
    }
    sent
}

/// Floods `to` (whose client must have stopped reading; see [`flood`]) until `watcher`, an
/// available resource of the same account, hears it go unavailable: its queue filled and
/// the server ended it. Returns the ids sent and the ids of the messages `watcher` got
/// meanwhile.
pub async fn flood_until_dropped(sender: &mut Client, to: &str, watcher: &mut Client) -> (Vec<String>, Vec<String>) {
    let mut sent = Vec::new();
    let mut seen = Vec::new();
    for round in 0..200 {
        sent.extend(flood(sender, to, round..round + 1).await);
        while let Some(frame) = watcher.next_frame(Duration::from_millis(5)).await {
            let Ok(stanzad::xml::framer::Frame::Stanza(e)) = frame else { panic!("watcher: {frame:?}") };
            if e.is("message", NS_CLIENT) {
                seen.push(e.attr("id").unwrap_or_default().to_owned());
            } else if e.is("iq", NS_CLIENT) && e.attr("type") == Some("get") {
                // The acknowledgement of an offline batch (stored messages it was woken for).
                let id = e.attr("id").unwrap_or_default();
                watcher.send(&format!("<iq type='result' id='{id}' to='localhost'/>")).await;
            } else if e.is("presence", NS_CLIENT) && e.attr("from") == Some(to) {
                assert_eq!(e.attr("type"), Some("unavailable"), "{}", xml::show(&e));
                return (sent, seen);
            }
        }
    }
    panic!("the queue of {to} never overflowed");
}

/// Every message that reaches `client` until it has been quiet for 500 ms, answering the
/// offline backlog's batch acknowledgements (pings) and skipping presence. Their ids.
pub async fn collect_messages(client: &mut Client) -> Vec<String> {
    let mut ids = Vec::new();
    while let Some(frame) = client.next_frame(Duration::from_millis(500)).await {
        let Ok(stanzad::xml::framer::Frame::Stanza(element)) = frame else { panic!("collecting: {frame:?}") };
        if element.is("iq", NS_CLIENT) && element.attr("type") == Some("get") {
            let id = element.attr("id").unwrap_or_default();
            client.send(&format!("<iq type='result' id='{id}' to='localhost'/>")).await;
        } else if element.is("message", NS_CLIENT) {
            ids.push(element.attr("id").unwrap_or_default().to_owned());
        } else if !element.is("presence", NS_CLIENT) {
            panic!("collecting messages: {}", xml::show(&element));
        }
    }
    ids
}
