//! XEP-0280 message carbons (docs/delivery.md, "Other devices of the same account"):
//! enabling and disabling, `received` copies of messages to the bare or a full JID,
//! `sent` copies, the messages that are never copied, and offline recipients.
//!
//! Absence is shown without sleeping: after the stanza under test, the session that sent
//! it sends a *barrier* (a ping iq, which carbons never copy) to the full JID that must
//! not get a copy. A session's stanzas are handled in order and a session's mailbox is
//! FIFO, and a copy is queued while the original is handled, so if the barrier is the
//! next thing the recipient reads, no copy was queued for it.

use crate::roster::kit::{self, error_of, iq};
use crate::support::xml::show;
use crate::support::{Client, TestServer, NS_PING, NS_STANZAS};

const PW: &str = "pw";
const NS: &str = "urn:xmpp:carbons:2";
const NS_FORWARD: &str = "urn:xmpp:forward:0";
const NS_HINTS: &str = "urn:xmpp:hints";
const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";

async fn server() -> TestServer {
    kit::server_with(&["alice", "bob"]).await
}

/// `from` pings the full JID of `to`; that iq must be the next thing `to` reads.
async fn barrier(from: &mut Client, to: &mut Client) {
    let id = kit::fresh_id("barrier");
    let (sender, recipient) = (from.jid().to_owned(), to.jid().to_owned());
    from.send(&format!("<iq type='get' id='{id}' to='{recipient}'><ping xmlns='{NS_PING}'/></iq>")).await;
    to.expect(&format!("<iq type='get' id='{id}' from='{sender}' to='{recipient}'><ping xmlns='{NS_PING}'/></iq>"))
        .await;
}

/// [`barrier`] from a session to itself.
async fn own_barrier(client: &mut Client) {
    let id = kit::fresh_id("own-barrier");
    let jid = client.jid().to_owned();
    client.send(&format!("<iq type='get' id='{id}' to='{jid}'><ping xmlns='{NS_PING}'/></iq>")).await;
    client.expect(&format!("<iq type='get' id='{id}' from='{jid}' to='{jid}'><ping xmlns='{NS_PING}'/></iq>")).await;
}

/// XEP-0280 §4: `<enable/>`, answered with a result.
async fn enable(client: &mut Client) {
    let id = kit::fresh_id("enable");
    let jid = client.jid().to_owned();
    client.send(&format!("<iq type='set' id='{id}'><enable xmlns='{NS}'/></iq>")).await;
    client.expect(&format!("<iq type='result' id='{id}' to='{jid}'/>")).await;
}

/// XEP-0280 §5: `<disable/>`, answered with a result.
async fn disable(client: &mut Client) {
    let id = kit::fresh_id("disable");
    let jid = client.jid().to_owned();
    client.send(&format!("<iq type='set' id='{id}'><disable xmlns='{NS}'/></iq>")).await;
    client.expect(&format!("<iq type='result' id='{id}' to='{jid}'/>")).await;
}

/// A copy for `to` (a full JID of alice) wrapping `original` (XEP-0280 §6, §7).
fn carbon(direction: &str, to: &str, original: &str) -> String {
    format!(
        "<message from='alice@localhost' to='{to}' type='chat'><{direction} xmlns='{NS}'>\
         <forwarded xmlns='{NS_FORWARD}'>{}</forwarded></{direction}></message>",
        // Inside <forwarded/> the default namespace is urn:xmpp:forward:0: say jabber:client.
        original.replacen("<message", "<message xmlns='jabber:client'", 1)
    )
}

/// A chat message as its recipient (or a copy) shows it.
fn chat(to: &str, from: &str, id: &str) -> String {
    format!("<message to='{to}' from='{from}' type='chat' id='{id}'><body>hi</body></message>")
}

/// The `id` of a message written as XML.
fn id_of(xml: &str) -> Option<&str> {
    let start = xml.find(" id='")? + 5;
    xml[start..].split('\'').next()
}

/// Alice's devices: the phone (priority 5), the laptop and the tablet (priority 1).
struct Alice {
    phone: Client,
    laptop: Client,
    tablet: Client,
}

/// Alice's three devices, available, with carbons enabled on those named; and bob/b,
/// available (no subscriptions: no presence goes between them).
async fn devices(server: &TestServer, carbons: &[&str]) -> (Alice, Client) {
    let mut phone = server.available("alice", PW, "phone", 5).await;
    let mut laptop = server.available("alice", PW, "laptop", 1).await;
    phone.expect("<presence from='alice@localhost/laptop'><priority>1</priority></presence>").await;
    let mut tablet = server.available("alice", PW, "tablet", 1).await;
    for earlier in [&mut phone, &mut laptop] {
        earlier.expect("<presence from='alice@localhost/tablet'><priority>1</priority></presence>").await;
    }
    for (name, device) in [("phone", &mut phone), ("laptop", &mut laptop), ("tablet", &mut tablet)] {
        if carbons.contains(&name) {
            enable(device).await;
        }
    }
    let bob = server.available("bob", PW, "b", 0).await;
    (Alice { phone, laptop, tablet }, bob)
}

// ---- §6: received ----

/// A message to the bare JID goes to the phone (highest priority); the laptop (carbons
/// on) gets a `received` copy with the original inside; the tablet (carbons off) nothing.
#[tokio::test]
async fn message_to_the_bare_jid_is_copied_to_the_other_enabled_resources() {
    let server = server().await;
    let (mut alice, mut bob) = devices(&server, &["laptop"]).await;
    bob.send("<message to='alice@localhost' type='chat' id='m1'><body>hi</body></message>").await;
    let original = chat("alice@localhost", "bob@localhost/b", "m1");
    alice.phone.expect(&original).await;
    alice.laptop.expect(&carbon("received", "alice@localhost/laptop", &original)).await;
    barrier(&mut bob, &mut alice.laptop).await;
    barrier(&mut bob, &mut alice.tablet).await;
    barrier(&mut bob, &mut alice.phone).await;
}

/// Resources that got the original (equal top priority) get no copy of it as well.
#[tokio::test]
async fn resources_that_got_the_original_get_no_copy() {
    let server = server().await;
    let (mut alice, mut bob) = devices(&server, &["laptop", "tablet"]).await;
    bob.send("<message to='alice@localhost/phone' type='chat' id='m0'><body>hi</body></message>").await;
    let to_phone = chat("alice@localhost/phone", "bob@localhost/b", "m0");
    alice.phone.expect(&to_phone).await;
    alice.laptop.expect(&carbon("received", "alice@localhost/laptop", &to_phone)).await;
    alice.tablet.expect(&carbon("received", "alice@localhost/tablet", &to_phone)).await;
    // The phone goes down to priority 1: now all three share the top priority.
    alice.phone.available(1).await;
    for other in [&mut alice.laptop, &mut alice.tablet] {
        other.expect("<presence from='alice@localhost/phone'><priority>1</priority></presence>").await;
    }
    bob.send("<message to='alice@localhost' type='chat' id='m1'><body>hi</body></message>").await;
    let original = chat("alice@localhost", "bob@localhost/b", "m1");
    for device in [&mut alice.phone, &mut alice.laptop, &mut alice.tablet] {
        device.expect(&original).await;
        barrier(&mut bob, device).await;
    }
}

/// A message to a full JID (the laptop): the phone gets a `received` copy because it
/// enabled carbons; the laptop gets the original only; the tablet nothing.
#[tokio::test]
async fn message_to_a_full_jid_is_copied_to_the_other_enabled_resources() {
    let server = server().await;
    let (mut alice, mut bob) = devices(&server, &["phone", "laptop"]).await;
    bob.send("<message to='alice@localhost/laptop' type='chat' id='m1'><body>hi</body></message>").await;
    let original = chat("alice@localhost/laptop", "bob@localhost/b", "m1");
    alice.laptop.expect(&original).await;
    alice.phone.expect(&carbon("received", "alice@localhost/phone", &original)).await;
    barrier(&mut bob, &mut alice.laptop).await;
    barrier(&mut bob, &mut alice.phone).await;
    barrier(&mut bob, &mut alice.tablet).await;
}

/// The same without carbons on the phone: no copy for it.
#[tokio::test]
async fn message_to_a_full_jid_is_not_copied_to_resources_without_carbons() {
    let server = server().await;
    let (mut alice, mut bob) = devices(&server, &["laptop"]).await;
    bob.send("<message to='alice@localhost/laptop' type='chat' id='m1'><body>hi</body></message>").await;
    alice.laptop.expect(&chat("alice@localhost/laptop", "bob@localhost/b", "m1")).await;
    barrier(&mut bob, &mut alice.laptop).await;
    barrier(&mut bob, &mut alice.phone).await;
    barrier(&mut bob, &mut alice.tablet).await;
}

// ---- §7: sent ----

/// The phone (carbons on) writes to bob: the laptop gets a `sent` copy of the original,
/// `from` stamped with the phone's full JID; the phone and the tablet get nothing.
#[tokio::test]
async fn sent_message_is_copied_to_the_other_enabled_resources_not_the_sender() {
    let server = server().await;
    let (mut alice, mut bob) = devices(&server, &["phone", "laptop"]).await;
    alice.phone.send("<message to='bob@localhost' type='chat' id='s1'><body>hi</body></message>").await;
    let original = chat("bob@localhost", "alice@localhost/phone", "s1");
    bob.expect(&original).await;
    alice.laptop.expect(&carbon("sent", "alice@localhost/laptop", &original)).await;
    own_barrier(&mut alice.phone).await;
    barrier(&mut alice.phone, &mut alice.laptop).await;
    barrier(&mut alice.phone, &mut alice.tablet).await;
}

/// §7: copies are made "irrespective of whether the sending client has carbons enabled".
#[tokio::test]
async fn sent_message_of_a_resource_without_carbons_is_copied_too() {
    let server = server().await;
    let (mut alice, mut bob) = devices(&server, &["laptop"]).await;
    alice.tablet.send("<message to='bob@localhost/b' type='chat' id='s1'><body>hi</body></message>").await;
    let original = chat("bob@localhost/b", "alice@localhost/tablet", "s1");
    bob.expect(&original).await;
    alice.laptop.expect(&carbon("sent", "alice@localhost/laptop", &original)).await;
    barrier(&mut alice.tablet, &mut alice.laptop).await;
    barrier(&mut alice.tablet, &mut alice.phone).await;
    own_barrier(&mut alice.tablet).await;
}

/// A message to a contact who is offline is stored for them and still copied as sent.
#[tokio::test]
async fn sent_message_to_an_offline_contact_is_copied() {
    let server = server().await;
    let mut phone = server.available("alice", PW, "phone", 0).await;
    let mut laptop = server.available("alice", PW, "laptop", 0).await;
    phone.expect("<presence from='alice@localhost/laptop'><priority>0</priority></presence>").await;
    enable(&mut laptop).await;
    phone.send("<message to='bob@localhost' type='chat' id='s1'><body>hi</body></message>").await;
    let original = chat("bob@localhost", "alice@localhost/phone", "s1");
    laptop.expect(&carbon("sent", "alice@localhost/laptop", &original)).await;
    barrier(&mut phone, &mut laptop).await;
    let mut bob = server.session("bob", PW, "b").await;
    bob.send("<presence/>").await;
    bob.expect("<presence from='bob@localhost/b'/>").await;
    bob.expect(
        "<message to='bob@localhost' from='alice@localhost/phone' type='chat' id='s1'><body>hi</body>\
         <delay xmlns='urn:xmpp:delay' from='localhost' stamp='{any}'/></message>",
    )
    .await;
}

// ---- §8, XEP-0334: messages that are not copied ----

/// `<private/>` and `<no-copy/>` messages, and messages that are not `chat` (normal,
/// headline, groupchat, error; docs/delivery.md copies chat only), sent by the phone:
/// no `sent` copies.
#[tokio::test]
async fn private_no_copy_and_non_chat_messages_are_not_copied_when_sent() {
    let server = server().await;
    let (mut alice, mut bob) = devices(&server, &["phone", "laptop", "tablet"]).await;
    let excluded = [
        format!("<message to='bob@localhost/b' type='chat' id='p'><body>hi</body><private xmlns='{NS}'/></message>"),
        format!(
            "<message to='bob@localhost/b' type='chat' id='n'><body>hi</body><no-copy xmlns='{NS_HINTS}'/></message>"
        ),
        "<message to='bob@localhost/b' type='normal' id='o'><body>hi</body></message>".to_owned(),
        "<message to='bob@localhost/b' id='u'><body>hi</body></message>".to_owned(),
        "<message to='bob@localhost/b' type='headline' id='h'><body>hi</body></message>".to_owned(),
        "<message to='bob@localhost/b' type='groupchat' id='g'><body>hi</body></message>".to_owned(),
        format!(
            "<message to='bob@localhost/b' type='error' id='e'><error type='cancel'>\
             <service-unavailable xmlns='{NS_STANZAS}'/></error></message>"
        ),
    ];
    for message in &excluded {
        alice.phone.send(message).await;
        let got = bob.recv().await;
        assert_eq!(got.attr("id"), id_of(message), "bob got {}", show(&got));
        barrier(&mut alice.phone, &mut alice.laptop).await;
        barrier(&mut alice.phone, &mut alice.tablet).await;
        own_barrier(&mut alice.phone).await;
    }
}

/// The same kinds of message from bob: no `received` copies.
#[tokio::test]
async fn private_no_copy_and_non_chat_messages_are_not_copied_when_received() {
    let server = server().await;
    let (mut alice, mut bob) = devices(&server, &["phone", "laptop", "tablet"]).await;
    let excluded = [
        format!("<message to='alice@localhost' type='chat' id='p'><body>hi</body><private xmlns='{NS}'/></message>"),
        format!(
            "<message to='alice@localhost' type='chat' id='n'><body>hi</body><no-copy xmlns='{NS_HINTS}'/></message>"
        ),
        "<message to='alice@localhost' type='normal' id='o'><body>hi</body></message>".to_owned(),
        "<message to='alice@localhost/phone' type='normal' id='o2'><body>hi</body></message>".to_owned(),
        "<message to='alice@localhost/phone' type='headline' id='h'><body>hi</body></message>".to_owned(),
        "<message to='alice@localhost/phone' type='groupchat' id='g'><body>hi</body></message>".to_owned(),
        format!(
            "<message to='alice@localhost/phone' type='error' id='e'><error type='cancel'>\
             <service-unavailable xmlns='{NS_STANZAS}'/></error></message>"
        ),
    ];
    for message in &excluded {
        bob.send(message).await;
        let got = alice.phone.recv().await;
        assert_eq!(got.attr("id"), id_of(message), "the phone got {}", show(&got));
        barrier(&mut bob, &mut alice.laptop).await;
        barrier(&mut bob, &mut alice.tablet).await;
        barrier(&mut bob, &mut alice.phone).await;
    }
}

/// A headline to the bare JID goes to every available resource (RFC 6121 §8.5.2.1.1),
/// as the original, with no copies on top.
#[tokio::test]
async fn headline_to_the_bare_jid_reaches_every_resource_without_copies() {
    let server = server().await;
    let (mut alice, mut bob) = devices(&server, &["phone", "laptop"]).await;
    bob.send("<message to='alice@localhost' type='headline' id='h'><body>news</body></message>").await;
    for device in [&mut alice.phone, &mut alice.laptop, &mut alice.tablet] {
        device.expect("<message to='alice@localhost' from='bob@localhost/b' type='headline' id='h'><body>news</body></message>").await;
        barrier(&mut bob, device).await;
    }
}

/// XEP-0280 §8: the receiving server "SHOULD remove the <private/> element before
/// delivering to the recipient"; and a private message is not copied.
#[tokio::test]
async fn private_element_is_removed_before_delivery() {
    let server = server().await;
    let (mut alice, mut bob) = devices(&server, &["laptop"]).await;
    alice
        .phone
        .send(&format!(
            "<message to='bob@localhost/b' type='chat' id='p'><body>hi</body><private xmlns='{NS}'/></message>"
        ))
        .await;
    bob.expect(&chat("bob@localhost/b", "alice@localhost/phone", "p")).await;
    barrier(&mut alice.phone, &mut alice.laptop).await;
}

/// Enabling twice is harmless; disabling (twice too) stops both kinds of copy; enabling
/// again restarts them.
#[tokio::test]
async fn enable_is_idempotent_and_disable_stops_copies() {
    let server = server().await;
    let (mut alice, mut bob) = devices(&server, &["laptop"]).await;
    enable(&mut alice.laptop).await;
    bob.send("<message to='alice@localhost' type='chat' id='m1'><body>hi</body></message>").await;
    let original = chat("alice@localhost", "bob@localhost/b", "m1");
    alice.phone.expect(&original).await;
    alice.laptop.expect(&carbon("received", "alice@localhost/laptop", &original)).await;

    disable(&mut alice.laptop).await;
    disable(&mut alice.laptop).await;
    bob.send("<message to='alice@localhost' type='chat' id='m2'><body>hi</body></message>").await;
    alice.phone.expect(&chat("alice@localhost", "bob@localhost/b", "m2")).await;
    barrier(&mut bob, &mut alice.laptop).await;
    alice.phone.send("<message to='bob@localhost/b' type='chat' id='s1'><body>hi</body></message>").await;
    bob.expect(&chat("bob@localhost/b", "alice@localhost/phone", "s1")).await;
    barrier(&mut alice.phone, &mut alice.laptop).await;

    // And on again.
    enable(&mut alice.laptop).await;
    alice.phone.send("<message to='bob@localhost/b' type='chat' id='s2'><body>hi</body></message>").await;
    let original = chat("bob@localhost/b", "alice@localhost/phone", "s2");
    bob.expect(&original).await;
    alice.laptop.expect(&carbon("sent", "alice@localhost/laptop", &original)).await;
}

/// Enable addressed to the account's own bare JID works like one without `to`.
#[tokio::test]
async fn enable_addressed_to_the_own_bare_jid() {
    let server = server().await;
    let mut alice = server.session("alice", PW, "a").await;
    alice.send(&format!("<iq type='set' id='e' to='alice@localhost'><enable xmlns='{NS}'/></iq>")).await;
    // RFC 6120 §8.2.3: the result comes from whom the request was addressed to.
    alice.expect("<iq type='result' id='e' from='alice@localhost' to='alice@localhost/a'/>").await;
}

/// `<enable/>` and `<disable/>` are sets; a get is bad-request.
#[tokio::test]
async fn enable_or_disable_as_get_is_bad_request() {
    let server = server().await;
    let mut alice = server.session("alice", PW, "a").await;
    for payload in ["enable", "disable"] {
        let reply = iq(&mut alice, "g", &format!("<iq type='get' id='g'><{payload} xmlns='{NS}'/></iq>")).await;
        assert_eq!(reply.attr("to"), Some("alice@localhost/a"), "{}", show(&reply));
        assert_eq!(error_of(&reply), ("modify".to_owned(), "bad-request".to_owned()), "{}", show(&reply));
    }
}

/// §3: the server advertises urn:xmpp:carbons:2.
#[tokio::test]
async fn server_disco_info_lists_carbons() {
    let server = server().await;
    let mut alice = server.session("alice", PW, "a").await;
    let reply =
        iq(&mut alice, "d", &format!("<iq type='get' id='d' to='localhost'><query xmlns='{NS_DISCO_INFO}'/></iq>"))
            .await;
    assert_eq!(reply.attr("type"), Some("result"), "{}", show(&reply));
    let query = reply.get_child("query", NS_DISCO_INFO).expect("disco#info");
    assert!(query.children().any(|f| f.name() == "feature" && f.attr("var") == Some(NS)), "{}", show(&reply));
}

// ---- offline and unavailable resources ----

/// No available resource: the message is stored (no copy for the connected,
/// carbons-enabled but unavailable laptop) and arrives later as itself.
#[tokio::test]
async fn message_stored_offline_is_not_copied() {
    let server = server().await;
    let mut laptop = server.session("alice", PW, "laptop").await;
    enable(&mut laptop).await;
    let mut bob = server.available("bob", PW, "b", 0).await;
    bob.send("<message to='alice@localhost' type='chat' id='m1'><body>hi</body></message>").await;
    barrier(&mut bob, &mut laptop).await;
    laptop.send("<presence/>").await;
    laptop.expect("<presence from='alice@localhost/laptop'/>").await;
    laptop
        .expect(
            "<message to='alice@localhost' from='bob@localhost/b' type='chat' id='m1'><body>hi</body>\
             <delay xmlns='urn:xmpp:delay' from='localhost' stamp='{any}'/></message>",
        )
        .await;
    laptop
        .expect(
            "<iq type='get' id='{any}' from='localhost' to='alice@localhost/laptop'><ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .await;
}

/// A carbons-enabled session that never sent presence is not available: no copies,
/// neither received nor sent.
#[tokio::test]
async fn connected_but_unavailable_resource_gets_no_copies() {
    let server = server().await;
    let mut phone = server.available("alice", PW, "phone", 0).await;
    let mut laptop = server.session("alice", PW, "laptop").await;
    enable(&mut laptop).await;
    let mut bob = server.available("bob", PW, "b", 0).await;
    bob.send("<message to='alice@localhost' type='chat' id='m1'><body>hi</body></message>").await;
    phone.expect(&chat("alice@localhost", "bob@localhost/b", "m1")).await;
    barrier(&mut bob, &mut laptop).await;
    phone.send("<message to='bob@localhost/b' type='chat' id='s1'><body>hi</body></message>").await;
    bob.expect(&chat("bob@localhost/b", "alice@localhost/phone", "s1")).await;
    barrier(&mut phone, &mut laptop).await;
}
