//! RFC 6121 §4: presence. Initial presence and its broadcast to subscribers, the answers
//! to the server's probes, updates, unavailable presence on logout and when a connection
//! dies, directed presence (and the unavailable that follows it), priority validation,
//! presence to a bare JID and to a full JID.
//!
//! Presence from a contact arrives from its full JID, addressed to our bare JID; probe
//! answers at initial presence are addressed to the new session's full JID; the echo of our
//! own presence has no `to`.

use crate::roster::kit::*;
use crate::support::TestServer;

fn update(from: &str, to: &str, inner: &str) -> String {
    format!("<presence from='{from}' to='{to}'>{inner}</presence>")
}

/// Accounts alice..eve; Alice and Bob see each other ("Both"), Carol sees Alice
/// (Alice: "From"), Alice sees Dave (Alice: "To"), Eve has nothing to do with Alice.
async fn relations() -> TestServer {
    let server = server_with(&["alice", "bob", "carol", "dave", "eve"]).await;
    given_subscriptions(&server, &[("alice", "bob"), ("bob", "alice"), ("carol", "alice"), ("alice", "dave")]).await;
    server
}

// ---- §4.2 initial presence, §4.3 probes ----

/// §4.2.2: initial presence goes to contacts with "From" or "Both" (not "To", not
/// strangers); §4.3.2: the new session learns the presence of those it is subscribed to.
#[tokio::test]
async fn initial_presence_reaches_subscribers_and_brings_the_contacts_presence() {
    let server = relations().await;
    let mut bob = login(&server, "bob", "b").await.0;
    let mut carol = login(&server, "carol", "c").await.0;
    let mut dave = login(&server, "dave", "d").await.0;
    let mut eve = login_alone(&server, "eve", "e").await;
    let mut alice = server.session("alice", PW, "a").await;
    roster_items(&mut alice).await;
    let before = send_presence(&mut alice, "<presence><show>chat</show><status>hi</status></presence>").await;
    assert_set(
        "alice/a at login",
        &before,
        &[
            "<presence from='bob@localhost/b' to='alice@localhost/a'><priority>0</priority></presence>".to_owned(),
            "<presence from='dave@localhost/d' to='alice@localhost/a'><priority>0</priority></presence>".to_owned(),
        ],
    );
    let hi = "<show>chat</show><status>hi</status>";
    expect_drained(&mut bob, &[update("alice@localhost/a", "bob@localhost", hi)]).await;
    expect_drained(&mut carol, &[update("alice@localhost/a", "carol@localhost", hi)]).await;
    assert_quiet(&mut dave).await;
    assert_quiet(&mut eve).await;
    assert_quiet(&mut alice).await;
}

/// §4.3.2: the answer to a probe is each available resource's last presence, or one
/// unavailable presence from the bare JID of a contact that is offline (never logged in,
/// or gone). A second resource of the user gets the same answers.
#[tokio::test]
async fn probes_are_answered_per_available_resource_or_with_unavailable() {
    let server = server_with(&["alice", "bob", "carol", "dave", "eve"]).await;
    given_subscriptions(&server, &[("alice", "bob"), ("alice", "carol"), ("alice", "dave"), ("eve", "alice")]).await;
    let mut b1 = login_alone(&server, "bob", "b1").await;
    let mut b2 = server.session("bob", PW, "b2").await;
    send_presence(&mut b2, "<presence><show>away</show><priority>-1</priority></presence>").await;
    send_presence(&mut b1, "<presence><status>working</status></presence>").await;
    drain(&mut b2).await;
    let mut dave = login_alone(&server, "dave", "d").await;
    dave.send("<presence type='unavailable'><status>gone</status></presence>").await;
    dave.expect("<presence type='unavailable' from='dave@localhost/d'><status>gone</status></presence>").await;
    let mut eve = login(&server, "eve", "e").await.0;

    let (mut a1, before) = login(&server, "alice", "a1").await;
    let answers = |to: &str| {
        vec![
            format!("<presence from='bob@localhost/b1' to='{to}'><status>working</status></presence>"),
            format!("<presence from='bob@localhost/b2' to='{to}'><show>away</show><priority>-1</priority></presence>"),
            unavailable_of("carol@localhost", to),
            unavailable_of("dave@localhost", to),
        ]
    };
    assert_set("alice/a1 at login", &before, &answers("alice@localhost/a1"));
    expect_drained(&mut eve, &[presence_of("alice@localhost/a1", "eve@localhost")]).await;
    let (_a2, before) = login(&server, "alice", "a2").await;
    let mut a2_learns = answers("alice@localhost/a2");
    a2_learns.push(presence_of("alice@localhost/a1", "alice@localhost/a2")); // its sibling (§4.2.2)
    assert_set("alice/a2 at login", &before, &a2_learns);
    expect_drained(&mut a1, &["<presence from='alice@localhost/a2'><priority>0</priority></presence>".to_owned()])
        .await;
    // Bob has no subscription to Alice: her presence does not reach him.
    assert_quiet(&mut b1).await;
}

/// §4.2.2 and §4.3.2, in the order Prosody sends them too: the echo of initial presence
/// first, then the subscription requests waiting for the account (payloads kept), then
/// the presence of its contacts and of its other available resources, which a second
/// resource learns at once (not only when they next change); the first resource gets the
/// second's presence as before. Raw reads, one element at a time.
#[tokio::test]
async fn initial_presence_brings_the_echo_then_requests_then_presence() {
    let server = server_with(&["alice", "bob", "carol"]).await;
    given_subscriptions(&server, &[("alice", "bob")]).await;
    let _bob = login_alone(&server, "bob", "b").await;
    let mut carol = login_alone(&server, "carol", "c").await;
    let nick = "<nick xmlns='http://jabber.org/protocol/nick'>Carol</nick>";
    carol.send(&format!("<presence type='subscribe' to='alice@localhost'>{nick}</presence>")).await;
    drain(&mut carol).await;
    let request = format!("<presence type='subscribe' from='carol@localhost' to='alice@localhost'>{nick}</presence>");

    let mut a1 = server.session("alice", PW, "a1").await;
    a1.send("<presence><status>one</status></presence>").await;
    a1.expect("<presence from='alice@localhost/a1'><status>one</status></presence>").await;
    a1.expect(&request).await;
    a1.expect("<presence from='bob@localhost/b' to='alice@localhost/a1'><priority>0</priority></presence>").await;
    assert_quiet(&mut a1).await;

    let mut a2 = server.session("alice", PW, "a2").await;
    a2.send("<presence><status>two</status></presence>").await;
    a2.expect("<presence from='alice@localhost/a2'><status>two</status></presence>").await;
    a2.expect(&request).await;
    a2.expect("<presence from='bob@localhost/b' to='alice@localhost/a2'><priority>0</priority></presence>").await;
    a2.expect("<presence from='alice@localhost/a1' to='alice@localhost/a2'><status>one</status></presence>").await;
    assert_quiet(&mut a2).await;
    a1.expect("<presence from='alice@localhost/a2'><status>two</status></presence>").await;
    assert_quiet(&mut a1).await;
}

// ---- §4.4 updates ----

#[tokio::test]
async fn presence_update_reaches_subscribers_and_own_resources_only() {
    let server = relations().await;
    let mut bob = login(&server, "bob", "b").await.0;
    let mut carol = login(&server, "carol", "c").await.0;
    let mut dave = login(&server, "dave", "d").await.0;
    let mut eve = login_alone(&server, "eve", "e").await;
    let mut a1 = login(&server, "alice", "a1").await.0;
    let mut a2 = login(&server, "alice", "a2").await.0;
    for client in [&mut a1, &mut bob, &mut carol] {
        drain(client).await;
    }
    let inner = "<show>away</show><status>lunch</status><priority>5</priority>";
    let before = send_presence(&mut a1, &format!("<presence>{inner}</presence>")).await;
    assert!(before.is_empty(), "an update brings no probe answers:\n{}", list(&before));
    expect_drained(&mut a2, &[format!("<presence from='alice@localhost/a1'>{inner}</presence>")]).await;
    expect_drained(&mut bob, &[update("alice@localhost/a1", "bob@localhost", inner)]).await;
    expect_drained(&mut carol, &[update("alice@localhost/a1", "carol@localhost", inner)]).await;
    assert_quiet(&mut dave).await;
    assert_quiet(&mut eve).await;
    // Dave's update reaches Alice's resources (she sees him), Bob's too.
    send_presence(&mut dave, "<presence><show>dnd</show></presence>").await;
    for client in [&mut a1, &mut a2] {
        expect_drained(client, &[update("dave@localhost/d", "alice@localhost", "<show>dnd</show>")]).await;
    }
    assert_quiet(&mut bob).await;
}

// ---- §4.5 unavailable ----

/// §4.5.2: the unavailable presence (with its status) goes to subscribers and to the
/// user's other resources; closing the stream afterwards sends nothing more.
#[tokio::test]
async fn logout_sends_unavailable_with_status_to_subscribers() {
    let server = relations().await;
    let mut bob = login(&server, "bob", "b").await.0;
    let mut carol = login(&server, "carol", "c").await.0;
    let mut dave = login(&server, "dave", "d").await.0;
    let mut stay = login(&server, "alice", "stay").await.0;
    let mut leave = login(&server, "alice", "leave").await.0;
    for client in [&mut stay, &mut bob, &mut carol] {
        drain(client).await;
    }
    leave.send("<presence type='unavailable'><status>bye</status></presence>").await;
    leave.expect("<presence type='unavailable' from='alice@localhost/leave'><status>bye</status></presence>").await;
    leave.send("</stream:stream>").await;
    leave.expect_closed().await;
    let bye = "<status>bye</status>";
    for (client, to) in [(&mut bob, "bob@localhost"), (&mut carol, "carol@localhost")] {
        expect_drained(
            client,
            &[format!("<presence type='unavailable' from='alice@localhost/leave' to='{to}'>{bye}</presence>")],
        )
        .await;
    }
    expect_drained(&mut stay, &[format!("<presence type='unavailable' from='alice@localhost/leave'>{bye}</presence>")])
        .await;
    assert_quiet(&mut dave).await;
}

/// §4.5.2: a connection that dies without unavailable presence is announced as
/// unavailable to subscribers and to those that got directed presence.
#[tokio::test]
async fn abrupt_disconnect_sends_unavailable_to_subscribers_and_directed_recipients() {
    let server = relations().await;
    let mut bob = login(&server, "bob", "b").await.0;
    let mut eve = login_alone(&server, "eve", "e").await;
    let mut dave = login(&server, "dave", "d").await.0;
    let mut alice = login(&server, "alice", "a").await.0;
    alice.send("<presence to='eve@localhost'/>").await;
    drain(&mut alice).await;
    for client in [&mut bob, &mut eve] {
        drain(client).await;
    }
    drop(alice); // the TCP connection closes, no </stream:stream>
    bob.expect(&unavailable_of("alice@localhost/a", "bob@localhost")).await;
    eve.expect(&unavailable_of("alice@localhost/a", "eve@localhost")).await;
    assert_quiet(&mut bob).await;
    assert_quiet(&mut eve).await;
    assert_quiet(&mut dave).await;
}

// ---- §4.6 directed presence ----

/// §4.6: directed presence to a bare JID reaches every available resource of that
/// account, to a full JID only that resource; §4.6.3: when the user goes unavailable,
/// they all get unavailable presence, addressed as the directed presence was.
#[tokio::test]
async fn directed_presence_and_the_unavailable_that_follows() {
    let server = relations().await;
    let mut bob = login(&server, "bob", "b").await.0;
    let mut e1 = login_alone(&server, "eve", "e1").await;
    let mut e2 = login_alone(&server, "eve", "e2").await;
    let mut e3 = server.session("eve", PW, "e3").await; // connected, never available
    drain(&mut e1).await;
    let mut d1 = login(&server, "dave", "d1").await.0;
    let mut d2 = login(&server, "dave", "d2").await.0;
    drain(&mut d1).await;
    let mut a1 = login(&server, "alice", "a1").await.0;
    let mut a2 = login(&server, "alice", "a2").await.0;
    for client in [&mut a1, &mut bob] {
        drain(client).await;
    }
    a1.send("<presence to='eve@localhost'><status>psst</status></presence>").await;
    a1.send("<presence to='dave@localhost/d1'><status>only you</status></presence>").await;
    assert_quiet(&mut a1).await;
    let psst = update("alice@localhost/a1", "eve@localhost", "<status>psst</status>");
    expect_drained(&mut e1, std::slice::from_ref(&psst)).await;
    expect_drained(&mut e2, &[psst]).await;
    assert_quiet(&mut e3).await;
    expect_drained(&mut d1, &[update("alice@localhost/a1", "dave@localhost/d1", "<status>only you</status>")]).await;
    assert_quiet(&mut d2).await;
    // Directed presence is not broadcast: neither Alice's other resource nor Bob see it.
    assert_quiet(&mut a2).await;
    assert_quiet(&mut bob).await;

    a1.send("<presence type='unavailable'/>").await;
    a1.expect("<presence type='unavailable' from='alice@localhost/a1'/>").await;
    expect_drained(&mut e1, &[unavailable_of("alice@localhost/a1", "eve@localhost")]).await;
    expect_drained(&mut e2, &[unavailable_of("alice@localhost/a1", "eve@localhost")]).await;
    assert_quiet(&mut e3).await;
    expect_drained(&mut d1, &[unavailable_of("alice@localhost/a1", "dave@localhost/d1")]).await;
    assert_quiet(&mut d2).await;
    expect_drained(&mut bob, &[unavailable_of("alice@localhost/a1", "bob@localhost")]).await;
    expect_drained(&mut a2, &["<presence type='unavailable' from='alice@localhost/a1'/>".to_owned()]).await;
}

/// §4.6.3: after directed unavailable presence to an entity, going unavailable sends it
/// nothing more.
#[tokio::test]
async fn directed_unavailable_ends_the_directed_presence() {
    let server = relations().await;
    let mut eve = login_alone(&server, "eve", "e").await;
    let mut alice = login(&server, "alice", "a").await.0;
    alice.send("<presence to='eve@localhost'/>").await;
    alice.send("<presence type='unavailable' to='eve@localhost'/>").await;
    drain(&mut alice).await;
    expect_drained(
        &mut eve,
        &[
            "<presence from='alice@localhost/a' to='eve@localhost'/>".to_owned(),
            unavailable_of("alice@localhost/a", "eve@localhost"),
        ],
    )
    .await;
    alice.send("<presence type='unavailable'/>").await;
    alice.expect("<presence type='unavailable' from='alice@localhost/a'/>").await;
    assert_quiet(&mut eve).await;
}

// ---- §4.7.2.3 priority ----

fn priority_error(full: &str, priority: &str) -> String {
    format!(
        "<presence type='error' id='p' to='{full}'><priority>{priority}</priority>\
         <error type='modify'><bad-request xmlns='{STANZAS}'/><text xmlns='{STANZAS}'>{{any}}</text></error></presence>"
    )
}

/// Priority is an integer from -128 to 127: outside that range the presence is refused
/// with bad-request and goes nowhere, whether initial or an update.
#[tokio::test]
async fn priority_outside_minus_128_to_127_is_bad_request() {
    let server = relations().await;
    let mut bob = login(&server, "bob", "b").await.0;
    let mut alice = server.session("alice", PW, "a").await;
    for priority in ["-129", "128"] {
        alice.send(&format!("<presence id='p'><priority>{priority}</priority></presence>")).await;
        expect_drained(&mut alice, &[priority_error("alice@localhost/a", priority)]).await;
        assert_quiet(&mut bob).await;
    }
    // Still not available: a message to the bare JID is kept for later (XEP-0160), no error.
    bob.send("<message to='alice@localhost' type='chat' id='m'><body>there?</body></message>").await;
    assert_quiet(&mut bob).await;
    // The limits themselves are fine.
    for priority in ["-128", "127"] {
        alice.send(&format!("<presence><priority>{priority}</priority></presence>")).await;
        drain(&mut alice).await;
        expect_drained(
            &mut bob,
            &[update("alice@localhost/a", "bob@localhost", &format!("<priority>{priority}</priority>"))],
        )
        .await;
    }
    // An out-of-range update is refused too and leaves the last presence in force.
    alice.send("<presence id='p'><priority>128</priority><status>x</status></presence>").await;
    let got = drain(&mut alice).await;
    assert_eq!(got.len(), 1, "{}", list(&got));
    assert_eq!(error_of(&got[0]).1, "bad-request");
    assert_quiet(&mut bob).await;
    let (_bob2, before) = login(&server, "bob", "b2").await;
    assert_set(
        "bob/b2 at login",
        &before,
        &[
            "<presence from='alice@localhost/a' to='bob@localhost/b2'><priority>127</priority></presence>".to_owned(),
            presence_of("bob@localhost/b", "bob@localhost/b2"),
        ],
    );
}
