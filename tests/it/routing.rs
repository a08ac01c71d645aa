//! RFC 6121 §8.5 (delivery rules for local accounts), RFC 6120 §8.1.2.1 (`from`
//! stamping and spoofing), §8.3 (routing errors), RFC 6121 §4.2.2/§4.5.2 (own presence).
//!
//! "Never receives" is shown without sleeping: after the stanza under test, the same
//! sender sends a *barrier* message to the same recipient's full JID. A session's mailbox
//! is FIFO and the sender's stanzas are routed in order, so if the barrier is the next
//! thing the recipient reads, the earlier stanza was not delivered to it.

use crate::support::{Client, TestServer};

async fn server() -> TestServer {
    let server = TestServer::start().await;
    for user in ["alice", "bob", "carol"] {
        server.add_user(&format!("{user}@localhost"), "pw").await;
    }
    server
}

/// Two available resources of `user`, in order; the first has read the second's presence.
async fn two_resources(server: &TestServer, user: &str, first: (&str, i8), second: (&str, i8)) -> (Client, Client) {
    let mut a = server.available(user, "pw", first.0, first.1).await;
    let b = server.available(user, "pw", second.0, second.1).await;
    a.expect(&format!("<presence from='{}'><priority>{}</priority></presence>", b.jid(), second.1)).await;
    (a, b)
}

/// `from` sends a chat message to `to`'s full JID, which must be the next thing `to` reads.
async fn barrier(from: &mut Client, to: &mut Client) {
    let (sender, recipient) = (from.jid().to_owned(), to.jid().to_owned());
    from.send(&format!("<message to='{recipient}' type='chat' id='barrier'><body>barrier</body></message>")).await;
    to.expect(&format!(
        "<message to='{recipient}' from='{sender}' type='chat' id='barrier'><body>barrier</body></message>"
    ))
    .await;
}

/// `client` pings the server and the answer must be the next thing it reads: nothing
/// (such as an error reply) was queued for it before.
async fn no_reply(client: &mut Client) {
    let jid = client.jid().to_owned();
    client.send("<iq type='get' id='sync' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    client.expect(&format!("<iq type='result' id='sync' from='localhost' to='{jid}'/>")).await;
}

/// The error reply to `<message to='{to}' type='chat' id='m1'><body>hi</body></message>`.
fn message_error(to: &str, sender: &str, error_type: &str, condition: &str) -> String {
    format!(
        "<message type='error' id='m1' from='{to}' to='{sender}'><body>hi</body>\
         <error type='{error_type}'><{condition} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>\
         </message>"
    )
}

fn chat(to: &str) -> String {
    format!("<message to='{to}' type='chat' id='m1'><body>hi</body></message>")
}

fn delivered(to: &str, from: &str) -> String {
    format!("<message to='{to}' from='{from}' type='chat' id='m1'><body>hi</body></message>")
}

// ---- §8.5.2: bare JID ----

#[tokio::test]
async fn bare_jid_message_goes_to_the_highest_priority_resource_only() {
    let server = server().await;
    let mut alice = server.available("alice", "pw", "laptop", 0).await;
    let (mut high, mut low) = two_resources(&server, "bob", ("high", 5), ("low", 1)).await;
    alice.send(&chat("bob@localhost")).await;
    high.expect(&delivered("bob@localhost", "alice@localhost/laptop")).await;
    barrier(&mut alice, &mut low).await;
    no_reply(&mut alice).await;
}

#[tokio::test]
async fn bare_jid_message_goes_to_all_resources_of_equal_priority() {
    let server = server().await;
    let mut alice = server.available("alice", "pw", "laptop", 0).await;
    let (mut one, mut two) = two_resources(&server, "bob", ("one", 3), ("two", 3)).await;
    alice.send(&chat("bob@localhost")).await;
    one.expect(&delivered("bob@localhost", "alice@localhost/laptop")).await;
    two.expect(&delivered("bob@localhost", "alice@localhost/laptop")).await;
}

#[tokio::test]
async fn negative_priority_resource_never_gets_bare_jid_messages() {
    let server = server().await;
    let mut alice = server.available("alice", "pw", "laptop", 0).await;
    let (mut zero, mut negative) = two_resources(&server, "bob", ("zero", 0), ("negative", -1)).await;
    alice.send(&chat("bob@localhost")).await;
    zero.expect(&delivered("bob@localhost", "alice@localhost/laptop")).await;
    barrier(&mut alice, &mut negative).await;
}

#[tokio::test]
async fn only_a_negative_priority_resource_means_the_message_is_stored() {
    let server = server().await;
    let mut alice = server.available("alice", "pw", "laptop", 0).await;
    let mut negative = server.available("bob", "pw", "negative", -5).await;
    alice.send(&chat("bob@localhost")).await;
    no_reply(&mut alice).await;
    barrier(&mut alice, &mut negative).await;
}

#[tokio::test]
async fn full_jid_message_reaches_a_negative_priority_resource() {
    let server = server().await;
    let mut alice = server.available("alice", "pw", "laptop", 0).await;
    let mut negative = server.available("bob", "pw", "negative", -1).await;
    alice.send(&chat("bob@localhost/negative")).await;
    negative.expect(&delivered("bob@localhost/negative", "alice@localhost/laptop")).await;
    no_reply(&mut alice).await;
}

/// §8.5.3.2.1: a message to a full JID that is not connected is treated as if sent to
/// the bare JID; it keeps its original `to`.
#[tokio::test]
async fn message_to_unknown_full_jid_of_online_account_falls_back_to_bare_rules() {
    let server = server().await;
    let mut alice = server.available("alice", "pw", "laptop", 0).await;
    let (mut high, mut low) = two_resources(&server, "bob", ("high", 2), ("low", 1)).await;
    alice.send(&chat("bob@localhost/gone")).await;
    high.expect(&delivered("bob@localhost/gone", "alice@localhost/laptop")).await;
    barrier(&mut alice, &mut low).await;
    no_reply(&mut alice).await;
}

/// The stored message as it arrives later: the original, plus when the server got it.
fn stored(to: &str, from: &str) -> String {
    format!(
        "<message to='{to}' from='{from}' type='chat' id='m1'><body>hi</body>\
         <delay xmlns='urn:xmpp:delay' from='localhost' stamp='{{any}}'/></message>"
    )
}

/// RFC 6121 §8.5.2.2.1 / XEP-0160: no available resource: the message is stored, the
/// sender hears nothing, and the recipient gets it when it comes online.
#[tokio::test]
async fn message_to_offline_account_is_stored_and_delivered_at_login() {
    let server = server().await;
    let mut alice = server.available("alice", "pw", "laptop", 0).await;
    alice.send(&chat("bob@localhost")).await;
    no_reply(&mut alice).await;
    let mut bob = server.session("bob", "pw", "phone").await;
    bob.send("<presence/>").await;
    // RFC 6121 §4.2.2: the echo first; then the backlog (XEP-0160) and its acknowledgement ping.
    bob.expect("<presence from='bob@localhost/phone'/>").await;
    bob.expect(&stored("bob@localhost", "alice@localhost/laptop")).await;
    bob.expect(
        "<iq type='get' id='{any}' from='localhost' to='bob@localhost/phone'><ping xmlns='urn:xmpp:ping'/></iq>",
    )
    .await;
}

/// Connected but never sent presence: not available (RFC 6121 §4.1), so no delivery now.
#[tokio::test]
async fn message_to_account_with_only_unavailable_resources_is_stored() {
    let server = server().await;
    let mut alice = server.available("alice", "pw", "laptop", 0).await;
    let mut quiet = server.session("bob", "pw", "quiet").await;
    alice.send(&chat("bob@localhost")).await;
    no_reply(&mut alice).await;
    barrier(&mut alice, &mut quiet).await;
}

#[tokio::test]
async fn message_to_unknown_local_user_is_service_unavailable() {
    let server = server().await;
    let mut alice = server.available("alice", "pw", "laptop", 0).await;
    alice.send(&chat("nobody@localhost")).await;
    alice.expect(&message_error("nobody@localhost", "alice@localhost/laptop", "cancel", "service-unavailable")).await;
}

#[tokio::test]
async fn message_to_remote_domain_is_remote_server_not_found() {
    let server = server().await;
    let mut alice = server.available("alice", "pw", "laptop", 0).await;
    alice.send(&chat("someone@example.net")).await;
    alice
        .expect(&message_error("someone@example.net", "alice@localhost/laptop", "cancel", "remote-server-not-found"))
        .await;
}

/// §8.5.1: presence to a non-existent account is silently dropped; and errors are never
/// answered with errors (RFC 6120 §8.3.1).
#[tokio::test]
async fn presence_and_error_messages_to_nowhere_are_dropped_silently() {
    let server = server().await;
    let mut alice = server.available("alice", "pw", "laptop", 0).await;
    alice.send("<presence to='nobody@localhost'/>").await;
    alice
        .send("<message to='bob@localhost' type='error' id='e1'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>")
        .await;
    no_reply(&mut alice).await;
}

/// §8.5.2.1.2: headlines to the bare JID go to every non-negative available resource.
#[tokio::test]
async fn headline_to_bare_jid_goes_to_all_non_negative_resources() {
    let server = server().await;
    let mut alice = server.available("alice", "pw", "laptop", 0).await;
    let (mut high, mut low) = two_resources(&server, "bob", ("high", 5), ("low", 0)).await;
    let mut negative = server.available("bob", "pw", "negative", -1).await;
    for c in [&mut high, &mut low] {
        c.expect("<presence from='bob@localhost/negative'><priority>-1</priority></presence>").await;
    }
    alice.send("<message to='bob@localhost' type='headline' id='h1'><body>news</body></message>").await;
    let news = "<message to='bob@localhost' from='alice@localhost/laptop' type='headline' id='h1'>\
                <body>news</body></message>";
    high.expect(news).await;
    low.expect(news).await;
    barrier(&mut alice, &mut negative).await;
    no_reply(&mut alice).await;
}

#[tokio::test]
async fn iq_to_offline_full_jid_is_service_unavailable() {
    let server = server().await;
    let mut alice = server.available("alice", "pw", "laptop", 0).await;
    let _bob = server.available("bob", "pw", "phone", 0).await;
    alice.send("<iq type='get' id='q1' to='bob@localhost/gone'><query xmlns='jabber:iq:version'/></iq>").await;
    alice
        .expect(
            "<iq type='error' id='q1' from='bob@localhost/gone' to='alice@localhost/laptop'>\
             <query xmlns='jabber:iq:version'/>\
             <error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>\
             </iq>",
        )
        .await;
}

#[tokio::test]
async fn iq_to_full_jid_is_routed_and_answered() {
    let server = server().await;
    let mut alice = server.available("alice", "pw", "laptop", 0).await;
    let mut bob = server.session("bob", "pw", "phone").await;
    alice.send("<iq type='get' id='v1' to='bob@localhost/phone'><query xmlns='jabber:iq:version'/></iq>").await;
    bob.expect(
        "<iq type='get' id='v1' from='alice@localhost/laptop' to='bob@localhost/phone'>\
         <query xmlns='jabber:iq:version'/></iq>",
    )
    .await;
    bob.send(
        "<iq type='result' id='v1' to='alice@localhost/laptop'>\
         <query xmlns='jabber:iq:version'><name>bobclient</name><version>1</version></query></iq>",
    )
    .await;
    alice
        .expect(
            "<iq type='result' id='v1' from='bob@localhost/phone' to='alice@localhost/laptop'>\
             <query xmlns='jabber:iq:version'><name>bobclient</name><version>1</version></query></iq>",
        )
        .await;
}

// ---- RFC 6120 §8.1.2.1: from ----

#[tokio::test]
async fn spoofed_from_is_invalid_from_and_never_delivered() {
    let server = server().await;
    let mut alice = server.available("alice", "pw", "laptop", 0).await;
    let mut bob = server.available("bob", "pw", "phone", 0).await;
    let mut carol = server.available("carol", "pw", "desk", 0).await;
    alice
        .send("<message from='carol@localhost' to='bob@localhost/phone' type='chat' id='s1'><body>I am carol</body></message>")
        .await;
    alice.expect_stream_error("invalid-from").await;
    barrier(&mut carol, &mut bob).await;
}

/// Another resource of the same account is not "self" either.
#[tokio::test]
async fn from_another_own_resource_is_invalid_from() {
    let server = server().await;
    let mut alice = server.available("alice", "pw", "laptop", 0).await;
    let mut bob = server.available("bob", "pw", "phone", 0).await;
    let mut carol = server.available("carol", "pw", "desk", 0).await;
    alice
        .send("<message from='alice@localhost/phone' to='bob@localhost/phone' type='chat' id='s1'><body>x</body></message>")
        .await;
    alice.expect_stream_error("invalid-from").await;
    barrier(&mut carol, &mut bob).await;
}

#[tokio::test]
async fn own_full_or_bare_from_is_accepted_and_stamped_with_the_full_jid() {
    let server = server().await;
    let mut alice = server.available("alice", "pw", "laptop", 0).await;
    let mut bob = server.available("bob", "pw", "phone", 0).await;
    // Distinct ids: an identical retransmission would be recognised and not delivered twice.
    for (id, from) in [("m1", "alice@localhost/laptop"), ("m2", "alice@localhost")] {
        alice
            .send(&format!(
                "<message from='{from}' to='bob@localhost/phone' type='chat' id='{id}'><body>hi</body></message>"
            ))
            .await;
        bob.expect(&format!(
            "<message to='bob@localhost/phone' from='alice@localhost/laptop' type='chat' id='{id}'><body>hi</body></message>"
        ))
        .await;
    }
    no_reply(&mut alice).await;
}

/// The router forwards the element: unknown attributes and children arrive unchanged.
#[tokio::test]
async fn delivered_stanza_keeps_unknown_attributes_and_children() {
    let server = server().await;
    let mut alice = server.available("alice", "pw", "laptop", 0).await;
    let mut bob = server.available("bob", "pw", "phone", 0).await;
    alice
        .send(
            "<message to='bob@localhost/phone' type='chat' id='m1' t='123' notify='yes'>\
             <body>hi</body>\
             <x xmlns='urn:example:unknown' a='b'><y c='d'>z</y><w/></x>\
             <thread parent='p'>t1</thread>\
             </message>",
        )
        .await;
    bob.expect(
        "<message to='bob@localhost/phone' from='alice@localhost/laptop' type='chat' id='m1' t='123' notify='yes'>\
         <body>hi</body>\
         <x xmlns='urn:example:unknown' a='b'><y c='d'>z</y><w/></x>\
         <thread parent='p'>t1</thread>\
         </message>",
    )
    .await;
}

#[tokio::test]
async fn presence_to_a_full_jid_is_delivered_directly() {
    let server = server().await;
    let mut alice = server.available("alice", "pw", "laptop", 0).await;
    let mut bob = server.available("bob", "pw", "phone", 0).await;
    alice.send("<presence to='bob@localhost/phone'><show>away</show></presence>").await;
    bob.expect("<presence to='bob@localhost/phone' from='alice@localhost/laptop'><show>away</show></presence>").await;
}

// ---- presence ----

/// RFC 6121 §4.7.2.3: priority is -128..127.
#[tokio::test]
async fn presence_priority_out_of_range_is_bad_request() {
    let server = server().await;
    let mut alice = server.available("alice", "pw", "laptop", 0).await;
    let mut bob = server.session("bob", "pw", "phone").await;
    bob.send("<presence id='p1'><priority>200</priority></presence>").await;
    bob.expect(
        "<presence type='error' id='p1' to='bob@localhost/phone'><priority>200</priority>\
         <error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{any}</text></error></presence>",
    )
    .await;
    // The refused presence did not make bob available: the message waits for him.
    alice.send(&chat("bob@localhost")).await;
    no_reply(&mut alice).await;
    barrier(&mut alice, &mut bob).await;
}

/// RFC 6121 §4.2.2: initial presence goes to all of the user's available resources,
/// the sender included; unavailable presence likewise (§4.5.2).
#[tokio::test]
async fn presence_is_echoed_to_own_resources() {
    let server = server().await;
    let mut first = server.available("alice", "pw", "one", 1).await; // checks its own echo
    let mut second = server.session("alice", "pw", "two").await;
    second.send("<presence><show>dnd</show></presence>").await;
    second.expect("<presence from='alice@localhost/two'><show>dnd</show></presence>").await;
    // RFC 6121 §4.2.2, §4.3.2: the new resource learns of the first at once.
    second
        .expect("<presence from='alice@localhost/one' to='alice@localhost/two'><priority>1</priority></presence>")
        .await;
    first.expect("<presence from='alice@localhost/two'><show>dnd</show></presence>").await;
    second.send("<presence type='unavailable'/>").await;
    first.expect("<presence type='unavailable' from='alice@localhost/two'/>").await;
    second.expect("<presence type='unavailable' from='alice@localhost/two'/>").await;
}

/// A connected but unavailable resource does not get its sibling's presence.
#[tokio::test]
async fn unavailable_resource_does_not_get_sibling_presence() {
    let server = server().await;
    let mut quiet = server.session("alice", "pw", "quiet").await;
    let mut bob = server.available("bob", "pw", "phone", 0).await;
    let _loud = server.available("alice", "pw", "loud", 0).await;
    barrier(&mut bob, &mut quiet).await;
}

/// A session that ends without unavailable presence is announced as unavailable.
#[tokio::test]
async fn disconnect_sends_unavailable_to_own_resources() {
    let server = server().await;
    let mut stay = server.available("alice", "pw", "stay", 0).await;
    let mut leave = server.available("alice", "pw", "leave", 0).await;
    stay.expect("<presence from='alice@localhost/leave'><priority>0</priority></presence>").await;
    leave.send("</stream:stream>").await;
    leave.expect_closed().await;
    stay.expect("<presence type='unavailable' from='alice@localhost/leave'/>").await;
}

#[tokio::test]
async fn message_to_own_server_domain_is_service_unavailable() {
    let server = server().await;
    let mut alice = server.available("alice", "pw", "laptop", 0).await;
    alice.send(&chat("localhost")).await;
    alice.expect(&message_error("localhost", "alice@localhost/laptop", "cancel", "service-unavailable")).await;
}

/// JIDs are compared after normalisation: localpart and domain are case-insensitive,
/// the resource is not (RFC 7622 §3.2–§3.4).
#[tokio::test]
async fn jids_are_compared_after_normalisation() {
    let server = server().await;
    let mut alice = server.available("alice", "pw", "laptop", 0).await;
    let mut bob = server.available("bob", "pw", "phone", 0).await;
    alice.send(&chat("BOB@LocalHost/phone")).await;
    bob.expect(&delivered("BOB@LocalHost/phone", "alice@localhost/laptop")).await;
    // Another resource by case: not connected, so the bare rules pick bob/phone.
    alice.send(&chat("bob@localhost/PHONE")).await;
    bob.expect(&delivered("bob@localhost/PHONE", "alice@localhost/laptop")).await;
    no_reply(&mut alice).await;
}

/// RFC 6121 §8.5.3.1: a message to the full JID of a connected (even unavailable)
/// resource is delivered.
#[tokio::test]
async fn full_jid_message_reaches_a_connected_but_unavailable_resource() {
    let server = server().await;
    let mut alice = server.available("alice", "pw", "laptop", 0).await;
    let mut quiet = server.session("bob", "pw", "quiet").await;
    alice.send(&chat("bob@localhost/quiet")).await;
    quiet.expect(&delivered("bob@localhost/quiet", "alice@localhost/laptop")).await;
}

#[tokio::test]
async fn malformed_to_is_jid_malformed() {
    let server = server().await;
    let mut alice = server.available("alice", "pw", "laptop", 0).await;
    alice.send("<message to='a@b@c' type='chat' id='m1'><body>hi</body></message>").await;
    alice
        .expect(
            "<message type='error' id='m1' from='{absent}' to='alice@localhost/laptop'><body>hi</body>\
             <error type='modify'><jid-malformed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{any}</text></error></message>",
        )
        .await;
}

/// A new available presence with another priority changes where bare-JID messages go.
#[tokio::test]
async fn priority_change_moves_bare_jid_delivery() {
    let server = server().await;
    let mut alice = server.available("alice", "pw", "laptop", 0).await;
    let (mut first, mut second) = two_resources(&server, "bob", ("first", 5), ("second", 1)).await;
    second.send("<presence><priority>10</priority></presence>").await;
    second.expect("<presence from='bob@localhost/second'><priority>10</priority></presence>").await;
    first.expect("<presence from='bob@localhost/second'><priority>10</priority></presence>").await;
    alice.send(&chat("bob@localhost")).await;
    second.expect(&delivered("bob@localhost", "alice@localhost/laptop")).await;
    barrier(&mut alice, &mut first).await;
}

/// After unavailable presence a resource no longer gets bare-JID messages.
#[tokio::test]
async fn unavailable_resource_no_longer_gets_bare_jid_messages() {
    let server = server().await;
    let mut alice = server.available("alice", "pw", "laptop", 0).await;
    let (mut first, mut second) = two_resources(&server, "bob", ("first", 5), ("second", 1)).await;
    first.send("<presence type='unavailable'/>").await;
    first.expect("<presence type='unavailable' from='bob@localhost/first'/>").await;
    second.expect("<presence type='unavailable' from='bob@localhost/first'/>").await;
    alice.send(&chat("bob@localhost")).await;
    second.expect(&delivered("bob@localhost", "alice@localhost/laptop")).await;
    barrier(&mut alice, &mut first).await;
}

/// A connection that drops without closing its stream is announced as unavailable.
#[tokio::test]
async fn abrupt_disconnect_sends_unavailable_to_own_resources() {
    let server = server().await;
    let mut stay = server.available("alice", "pw", "stay", 0).await;
    let leave = server.available("alice", "pw", "leave", 0).await;
    stay.expect("<presence from='alice@localhost/leave'><priority>0</priority></presence>").await;
    drop(leave);
    stay.expect("<presence type='unavailable' from='alice@localhost/leave'/>").await;
}

/// Namespaced attributes (`xml:lang`, prefixed ones) and escaped characters survive routing.
#[tokio::test]
async fn namespaced_attributes_and_escapes_survive_routing() {
    let server = server().await;
    let mut alice = server.available("alice", "pw", "laptop", 0).await;
    let mut bob = server.available("bob", "pw", "phone", 0).await;
    alice
        .send(
            "<message to='bob@localhost/phone' type='chat' id='a&apos;b&quot;c' xml:lang='de'>\
             <body>&lt;&amp;&gt;'\" \u{1F600}</body>\
             <x xmlns='urn:example:x' xmlns:e='urn:example:e' e:flag='on'/>\
             </message>",
        )
        .await;
    let got = bob
        .expect(
            "<message to='bob@localhost/phone' from='alice@localhost/laptop' type='chat' xml:lang='de'>\
             <body>&lt;&amp;&gt;'\" \u{1F600}</body>\
             <x xmlns='urn:example:x' xmlns:e='urn:example:e' e:flag='on'/>\
             </message>",
        )
        .await;
    assert_eq!(got.attr("id"), Some("a'b\"c"));
}

/// The content namespace may be bound to a prefix on the stanza itself.
#[tokio::test]
async fn prefixed_stanza_is_accepted() {
    let server = server().await;
    let mut alice = server.available("alice", "pw", "laptop", 0).await;
    let mut bob = server.available("bob", "pw", "phone", 0).await;
    alice
        .send("<c:message xmlns:c='jabber:client' to='bob@localhost/phone' type='chat' id='m1'><c:body>hi</c:body></c:message>")
        .await;
    bob.expect(&delivered("bob@localhost/phone", "alice@localhost/laptop")).await;
}

/// A recipient that stops reading fills its queue: its session is ended at once
/// (`resource-constraint`), its own resources learn it is gone, and nothing is lost or
/// refused: what was queued for it, and what was written to it that it never answered a
/// ping for, is rerouted by the bare-JID rules (here: to its other available resource),
/// what its full queue refused is stored offline and fetched by that resource, and the
/// sender never gets an error. What the stalled client reads later it gets twice.
#[tokio::test]
async fn stalled_recipient_is_dropped_and_nothing_it_missed_is_lost() {
    let server = TestServer::with(|c| {
        c.timeouts.ping_interval_secs = 60;
        c.limits.session_queue = 64; // the stalled client's, and the other's: it must keep up
    })
    .await;
    server.add_user("alice@localhost", "pw").await;
    server.add_user("bob@localhost", "pw").await;
    let mut other = server.available("alice", "pw", "other", 0).await;
    let connection = Client::connect_small_window(server.addr).await;
    let mut stalled = server.login(connection, "alice", "pw", "stalled").await;
    stalled.available(0).await;
    other.expect("<presence from='alice@localhost/stalled'><priority>0</priority></presence>").await;
    let mut bob = server.session("bob", "pw", "flood").await;
    let (sent, mut got) = crate::support::flood_until_dropped(&mut bob, "alice@localhost/stalled", &mut other).await;
    // The stalled client reads at last: what the server wrote before ending it.
    let mut read_by_stalled = Vec::new();
    while let Some(Ok(stanzad::xml::framer::Frame::Stanza(e))) = stalled.next_frame(crate::support::TIMEOUT).await {
        if e.is("message", crate::support::NS_CLIENT) {
            read_by_stalled.push(e.attr("id").unwrap_or_default().to_owned());
        }
    }
    got.extend(crate::support::collect_messages(&mut other).await);
    got.sort();
    let mut expected = sent.clone();
    expected.sort();
    assert_eq!(
        got,
        expected,
        "every message reached the other resource, once ({} read by the stalled one)",
        read_by_stalled.len()
    );
    assert!(read_by_stalled.iter().all(|id| sent.contains(id)), "{read_by_stalled:?}");
    bob.expect_silence(100).await;
}

// ---- live messages to a client without stream management (docs/delivery.md) ----

/// Bob sends `n` chat messages of about 1 kB to `to` (ids `live-0`…), in writes of ten,
/// and pings the server after them: every one was routed before the answer. Their ids.
async fn live_messages(bob: &mut Client, to: &str, n: usize) -> Vec<String> {
    let pad = "p".repeat(1000);
    let ids: Vec<String> = (0..n).map(|i| format!("live-{i}")).collect();
    for chunk in ids.chunks(10) {
        let bytes: String = chunk
            .iter()
            .map(|id| format!("<message to='{to}' type='chat' id='{id}' pad='{pad}'><body>{id}</body></message>"))
            .collect();
        bob.send(&bytes).await;
    }
    bob.send("<iq type='get' id='routed' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    bob.expect(&format!("<iq type='result' id='routed' from='localhost' to='{}'/>", bob.jid())).await;
    ids
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

/// Alice available at alice@localhost/phone on a connection that never reads, and Bob's
/// `n` live messages sent to it (the ids).
async fn stalled_alice_sent(server: &TestServer, n: usize) -> (Client, Vec<String>) {
    let connection = Client::connect_small_window(server.addr).await;
    let mut alice = server.login(connection, "alice", "pw", "phone").await;
    alice.available(0).await;
    let mut bob = server.session("bob", "pw", "desk").await;
    let sent = live_messages(&mut bob, "alice@localhost/phone", n).await;
    (alice, sent)
}

/// Alice's next session (with `password`): the messages it finds, backlog and all.
async fn next_session_gets(server: &TestServer, password: &str) -> Vec<String> {
    let mut alice = server.session("alice", password, "phone").await;
    alice.send("<presence/>").await;
    sorted(crate::support::collect_messages(&mut alice).await)
}

/// A client without stream management stops reading, then its connection drops: every
/// live message it never answered a ping for, wherever it waited (queue, writer, kernel),
/// is kept offline and reaches its next session.
#[tokio::test]
async fn live_messages_to_a_client_that_vanishes_are_kept_offline() {
    let server = server().await;
    let (alice, sent) = stalled_alice_sent(&server, 300).await;
    drop(alice); // never read a thing, and gone without a word
    assert_eq!(next_session_gets(&server, "pw").await, sorted(sent), "every message, once");
}

/// What a client answered for is not sent again: it read the messages and answered the
/// server's pings (as RFC 6120 §8.2.3 asks), then its connection dropped.
#[tokio::test]
async fn live_messages_a_client_answered_for_are_not_sent_again() {
    let server = server().await;
    let mut alice = server.available("alice", "pw", "phone", 0).await;
    let mut bob = server.session("bob", "pw", "desk").await;
    let sent = live_messages(&mut bob, "alice@localhost/phone", 64).await;
    // Every message, then the server's ping after them (at most 2 s later), answered.
    let mut got = Vec::new();
    loop {
        let element = alice.recv().await;
        if element.is("message", crate::support::NS_CLIENT) {
            got.push(element.attr("id").unwrap_or_default().to_owned());
        } else if element.is("iq", crate::support::NS_CLIENT) && element.attr("type") == Some("get") {
            let id = element.attr("id").unwrap_or_default();
            alice.send(&format!("<iq type='result' id='{id}' to='localhost'/>")).await;
            if got.len() == sent.len() {
                break;
            }
        }
    }
    assert_eq!(sorted(got), sorted(sent));
    alice.send("<iq type='get' id='answered' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    alice.expect("<iq type='result' id='answered' from='localhost' to='alice@localhost/phone'/>").await;
    drop(alice);
    let again = next_session_gets(&server, "pw").await;
    assert!(again.is_empty(), "confirmed messages came again: {again:?}");
}

/// Graceful shutdown with a client that stopped reading: whatever waited for it (in its
/// queue, its writer, the kernel) is stored offline before the process exits, and it
/// arrives after the restart.
#[tokio::test]
async fn shutdown_keeps_what_a_slow_client_was_sent() {
    let server = server().await;
    let (alice, sent) = stalled_alice_sent(&server, 400).await;
    let started = std::time::Instant::now();
    let server = server.restart().await;
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "shutdown took {:?}", started.elapsed());
    drop(alice);
    assert_eq!(next_session_gets(&server, "pw").await, sorted(sent), "every message, once");
}

/// A session that ended before the shutdown and waits to close on a client that does not
/// read (here: its password changed) is not left behind: the shutdown cuts its wait short,
/// and what it held is stored before the process exits.
#[tokio::test]
async fn shutdown_cuts_short_a_slow_close_and_keeps_what_it_held() {
    let server = server().await;
    let (alice, sent) = stalled_alice_sent(&server, 300).await;
    let passwd = stanzad::admin::Request::Passwd { jid: "alice@localhost".into(), password: "new".into() };
    assert_eq!(server.admin(passwd).await, stanzad::admin::Response::Done);
    let started = std::time::Instant::now();
    let server = server.restart().await;
    assert!(started.elapsed() < std::time::Duration::from_secs(8), "shutdown took {:?}", started.elapsed());
    drop(alice);
    assert_eq!(next_session_gets(&server, "new").await, sorted(sent), "every message, once");
}

/// A client without stream management that never answers the ping after its messages
/// (while it keeps sending) is ended like a silent one (`connection-timeout`) once the
/// ping is `timeouts.ping_timeout_secs` old, and what it did not answer for is kept offline:
/// it is never left with deliveries waiting behind an answer that does not come.
#[tokio::test]
async fn a_client_that_never_answers_for_its_messages_is_ended_and_loses_nothing() {
    let server = TestServer::with(|c| c.timeouts.ping_timeout_secs = 2).await;
    for user in ["alice", "bob"] {
        server.add_user(&format!("{user}@localhost"), "pw").await;
    }
    let mut alice = server.available("alice", "pw", "phone", 0).await;
    let mut bob = server.session("bob", "pw", "desk").await;
    let sent = live_messages(&mut bob, "alice@localhost/phone", 3).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut pinged = false;
    loop {
        assert!(std::time::Instant::now() < deadline, "the session was never ended");
        // The server may have ended the stream meanwhile: its error is read below.
        let _ = alice.try_send_bytes(b"<presence><status>busy</status></presence>").await;
        match alice.next_frame(std::time::Duration::from_millis(500)).await {
            Some(Ok(stanzad::xml::framer::Frame::Stanza(e))) if e.is("error", crate::support::NS_STREAM) => {
                assert!(
                    crate::support::xml::show(&e).contains("connection-timeout"),
                    "{}",
                    crate::support::xml::show(&e)
                );
                break;
            }
            Some(Ok(stanzad::xml::framer::Frame::Stanza(e))) => pinged |= e.is("iq", crate::support::NS_CLIENT),
            Some(_) => break,
            None => {}
        }
    }
    assert!(pinged, "it was pinged");
    drop(alice);
    assert_eq!(next_session_gets(&server, "pw").await, sorted(sent));
}
