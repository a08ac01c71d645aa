//! Interoperability: two tokio-xmpp 6 clients log in (plaintext TCP connector, since
//! its STARTTLS wants a publicly trusted certificate) and chat both ways.

use crate::support::{TestServer, TIMEOUT};
use futures::StreamExt;
use tokio_xmpp::connect::{DnsConfig, TcpServerConnector};
use tokio_xmpp::parsers::jid::{FullJid, Jid};
use tokio_xmpp::parsers::message::{Lang, Message, MessageType};
use tokio_xmpp::parsers::presence::Presence;
use tokio_xmpp::xmlstream::Timeouts;
use tokio_xmpp::{Client, Event, Stanza};

async fn online(server: &TestServer, jid: &str, password: &str) -> Client {
    let jid = FullJid::new(jid).expect("full JID");
    let connector = TcpServerConnector::from(DnsConfig::addr(&server.addr.to_string()));
    let mut client = Client::new_with_connector(jid.clone(), password, connector, Timeouts::tight());
    let event = tokio::time::timeout(TIMEOUT, client.next())
        .await
        .unwrap_or_else(|_| panic!("{jid} did not get online within {TIMEOUT:?}"))
        .expect("client event");
    match event {
        Event::Online { bound_jid, .. } => assert_eq!(bound_jid, Jid::from(jid.clone())),
        other => panic!("{jid}: expected Online, got {other:?}"),
    }
    client.send_stanza(Presence::available().into()).await.expect("send presence");
    // The server echoes our presence (RFC 6121 §4.2.2): once it is back, we are available.
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let event = tokio::time::timeout_at(deadline, client.next())
            .await
            .unwrap_or_else(|_| panic!("{jid}: no presence echo within {TIMEOUT:?}"))
            .expect("client event");
        match event {
            Event::Stanza(Stanza::Presence(p)) if p.from == Some(Jid::from(jid.clone())) => break,
            Event::Stanza(_) => continue,
            other => panic!("{jid}: unexpected event {other:?}"),
        }
    }
    client
}

/// The next chat message `client` receives (presence and other stanzas are skipped).
async fn next_chat(client: &mut Client) -> Message {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let event = tokio::time::timeout_at(deadline, client.next())
            .await
            .expect("a chat message within the timeout")
            .expect("client event");
        match event {
            Event::Stanza(Stanza::Message(message)) if message.type_ == MessageType::Chat => return message,
            Event::Stanza(_) => continue,
            Event::Disconnected(e) => panic!("disconnected: {e}"),
            other => panic!("unexpected event {other:?}"),
        }
    }
}

fn chat(to: &str, body: &str) -> Stanza {
    let to = Jid::new(to).expect("JID");
    Message::chat(Some(to)).with_body(Lang::from(""), body.to_owned()).into()
}

fn body(message: &Message) -> String {
    message.get_best_body_cloned(vec![]).map(|(_, b)| b).unwrap_or_default()
}

#[tokio::test]
async fn two_tokio_xmpp_clients_chat_both_ways() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "alice-pw").await;
    server.add_user("bob@localhost", "bob-pw").await;
    let mut alice = online(&server, "alice@localhost/laptop", "alice-pw").await;
    let mut bob = online(&server, "bob@localhost/phone", "bob-pw").await;

    alice.send_stanza(chat("bob@localhost", "hello bob")).await.expect("send to bob");
    let received = next_chat(&mut bob).await;
    assert_eq!(received.from, Some(Jid::new("alice@localhost/laptop").expect("JID")));
    assert_eq!(body(&received), "hello bob");

    bob.send_stanza(chat("alice@localhost/laptop", "hello alice")).await.expect("send to alice");
    let received = next_chat(&mut alice).await;
    assert_eq!(received.from, Some(Jid::new("bob@localhost/phone").expect("JID")));
    assert_eq!(body(&received), "hello alice");

    for client in [alice, bob] {
        tokio::time::timeout(TIMEOUT, client.send_end())
            .await
            .expect("clean close within the timeout")
            .expect("clean close");
    }
}
