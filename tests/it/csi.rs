//! XEP-0352 client state indication (docs/rosters.md): the stream feature, presence
//! updates held while the client is inactive (only the latest per sender), everything
//! else at once, and the release at `<active/>`.
//!
//! Absence is shown with `roster::kit::drain`: the client sends a message to its own full
//! JID (messages are never held) and reads until it comes back; see `roster::kit`.

use crate::roster::kit::{
    assert_quiet, assert_set, drain, given_subscriptions, list, login, send_presence, server_with,
};
use crate::support::{Mech, TestServer, NS_STREAM};

const PW: &str = "pw";
const NS: &str = "urn:xmpp:csi:0";

/// alice and bob see each other; so do alice and carol; dave is a stranger to alice.
async fn relations() -> TestServer {
    let server = server_with(&["alice", "bob", "carol", "dave"]).await;
    given_subscriptions(&server, &[("alice", "bob"), ("bob", "alice"), ("alice", "carol"), ("carol", "alice")]).await;
    server
}

/// A presence update from `full` as alice sees it.
fn update(full: &str, payload: &str) -> String {
    format!("<presence from='{full}' to='alice@localhost'>{payload}</presence>")
}

#[tokio::test]
async fn csi_is_a_stream_feature_after_authentication_only() {
    let server = server_with(&["alice"]).await;
    let mut client = server.connect_open().await;
    let before = client.mechanisms();
    assert!(!before.is_empty(), "SASL offered");
    let mut mechanism = client.mechanism(Mech::ScramSha256, "alice", PW);
    client.sasl(mechanism.as_mut()).await.expect("login");
    let features = client.restart().await;
    assert!(features.is("features", NS_STREAM));
    assert!(
        features.get_child("csi", NS).is_some(),
        "no <csi/> after authentication: {}",
        crate::support::xml::show(&features)
    );
    let mut fresh = server.connect().await;
    let features = fresh.open_stream().await;
    assert!(features.get_child("csi", NS).is_none(), "<csi/> before authentication");
}

/// While inactive: presence updates of contacts wait (only the latest per sender);
/// messages and subscription requests arrive at once; `<inactive/>` and `<active/>` are
/// not answered. At `<active/>` the latest presence arrives, then updates flow again.
#[tokio::test]
async fn inactive_client_gets_only_the_latest_presence_when_active_again() {
    let server = relations().await;
    let (mut bob, _) = login(&server, "bob", "b").await;
    let (mut alice, before) = login(&server, "alice", "a").await;
    let probed = [
        "<presence from='bob@localhost/b' to='alice@localhost/a'><priority>0</priority></presence>".to_owned(),
        "<presence type='unavailable' from='carol@localhost' to='alice@localhost/a'/>".to_owned(),
    ];
    assert_set("alice/a at login", &before, &probed);
    drain(&mut bob).await;
    let mut dave = server.session("dave", PW, "d").await;

    alice.send(&format!("<inactive xmlns='{NS}'/>")).await;
    assert_quiet(&mut alice).await;
    send_presence(&mut bob, "<presence><show>away</show></presence>").await;
    send_presence(&mut bob, "<presence><show>dnd</show></presence>").await;
    // A message from the same sender, after the updates, arrives at once: they were held.
    bob.send("<message to='alice@localhost/a' type='chat' id='m1'><body>hi</body></message>").await;
    alice
        .expect("<message to='alice@localhost/a' from='bob@localhost/b' type='chat' id='m1'><body>hi</body></message>")
        .await;
    // A subscription request arrives at once.
    dave.send("<presence type='subscribe' to='alice@localhost'/>").await;
    alice.expect("<presence type='subscribe' from='dave@localhost' to='alice@localhost'/>").await;
    assert_quiet(&mut alice).await;

    alice.send(&format!("<active xmlns='{NS}'/>")).await;
    alice.expect(&update("bob@localhost/b", "<show>dnd</show>")).await;
    assert_quiet(&mut alice).await;

    send_presence(&mut bob, "<presence><show>xa</show></presence>").await;
    alice.expect(&update("bob@localhost/b", "<show>xa</show>")).await;
}

/// Held presence is kept per sender, the latest of each (an unavailable presence
/// included), in the order the senders last changed.
#[tokio::test]
async fn held_presence_is_the_latest_of_each_sender_in_order_of_last_change() {
    let server = relations().await;
    let (mut bob, _) = login(&server, "bob", "b").await;
    let (mut carol, _) = login(&server, "carol", "c").await;
    let (mut alice, before) = login(&server, "alice", "a").await;
    assert_eq!(before.len(), 2, "bob's and carol's presence: {}", list(&before));
    drain(&mut bob).await;
    drain(&mut carol).await;

    alice.send(&format!("<inactive xmlns='{NS}'/>")).await;
    send_presence(&mut bob, "<presence><show>away</show></presence>").await;
    send_presence(&mut carol, "<presence><show>away</show></presence>").await;
    bob.send("<presence type='unavailable'/>").await;
    drain(&mut bob).await;
    assert_quiet(&mut alice).await;

    alice.send(&format!("<active xmlns='{NS}'/>")).await;
    alice.expect(&update("carol@localhost/c", "<show>away</show>")).await;
    alice.expect("<presence type='unavailable' from='bob@localhost/b' to='alice@localhost'/>").await;
    assert_quiet(&mut alice).await;
}

/// Saying `<inactive/>` twice, or `<active/>` while active, changes nothing and is not
/// answered.
#[tokio::test]
async fn repeated_states_are_harmless() {
    let server = relations().await;
    let (mut bob, _) = login(&server, "bob", "b").await;
    let (mut alice, _) = login(&server, "alice", "a").await;
    drain(&mut bob).await;
    alice.send(&format!("<active xmlns='{NS}'/><inactive xmlns='{NS}'/><inactive xmlns='{NS}'/>")).await;
    send_presence(&mut bob, "<presence><show>away</show></presence>").await;
    assert_quiet(&mut alice).await;
    alice.send(&format!("<active xmlns='{NS}'/>")).await;
    alice.expect(&update("bob@localhost/b", "<show>away</show>")).await;
    alice.send(&format!("<active xmlns='{NS}'/>")).await;
    assert_quiet(&mut alice).await;
}

/// An element in the CSI namespace that is neither `<active/>` nor `<inactive/>`.
#[tokio::test]
async fn unknown_csi_element_is_unsupported_stanza_type() {
    let server = server_with(&["alice"]).await;
    let mut alice = server.session("alice", PW, "a").await;
    alice.send(&format!("<sleepy xmlns='{NS}'/>")).await;
    alice.expect_stream_error("unsupported-stanza-type").await;
}
