//! XEP-0012 Last Activity: the server's uptime; for an account, the seconds since its last
//! resource went unavailable and the status it left with, for those allowed to see its
//! presence (a "From"/"Both" subscription granted by that account), `forbidden` otherwise.

use crate::roster::kit::*;
use crate::support::xml::show;
use crate::support::Client;
use xmpp_parsers::minidom::Element;

const NS_LAST: &str = "jabber:iq:last";

async fn last(client: &mut Client, to: &str) -> Element {
    let id = fresh_id("last");
    iq(client, &id, &format!("<iq type='get' id='{id}' to='{to}'><query xmlns='{NS_LAST}'/></iq>")).await
}

/// The seconds of a result from `from`; checks the rest of it, including the status text.
fn seconds(reply: &Element, from: &str, to: &str, status: &str) -> u64 {
    crate::support::xml::assert_matches(
        reply,
        &format!("<iq type='result' from='{from}' to='{to}'><query xmlns='{NS_LAST}' seconds='{{any}}'>{status}</query></iq>"),
    );
    let query = reply.get_child("query", NS_LAST).expect("query");
    query.attr("seconds").and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("seconds: {}", show(reply)))
}

#[tokio::test]
async fn last_activity_of_the_server_is_its_uptime() {
    let server = server_with(&["alice"]).await;
    let mut alice = server.session("alice", PW, "a").await;
    let reply = last(&mut alice, "localhost").await;
    let uptime = seconds(&reply, "localhost", "alice@localhost/a", "");
    assert!(uptime < 30, "the server just started: {}", show(&reply));
}

/// Alice is subscribed to Bob (Bob's roster: "From"); Carol is not.
async fn alice_sees_bob() -> crate::support::TestServer {
    let server = server_with(&["alice", "bob", "carol"]).await;
    given_subscriptions(&server, &[("alice", "bob")]).await;
    server
}

#[tokio::test]
async fn last_activity_of_an_online_contact_is_zero() {
    let server = alice_sees_bob().await;
    let _bob = login_alone(&server, "bob", "b").await;
    let mut alice = server.session("alice", PW, "a").await;
    let reply = last(&mut alice, "bob@localhost").await;
    assert_eq!(seconds(&reply, "bob@localhost", "alice@localhost/a", ""), 0, "{}", show(&reply));
}

/// The status of the last unavailable presence is the text; both survive a restart.
#[tokio::test]
async fn last_activity_after_logout_carries_the_status_across_a_restart() {
    let server = alice_sees_bob().await;
    let mut bob = login_alone(&server, "bob", "b").await;
    bob.send("<presence type='unavailable'><status>bye</status></presence>").await;
    bob.expect("<presence type='unavailable' from='bob@localhost/b'><status>bye</status></presence>").await;
    bob.send("</stream:stream>").await;
    bob.expect_closed().await;
    let mut alice = server.session("alice", PW, "a").await;
    let reply = last(&mut alice, "bob@localhost").await;
    assert!(seconds(&reply, "bob@localhost", "alice@localhost/a", "bye") <= 2, "{}", show(&reply));
    drop(alice);
    let server = server.restart().await;
    let mut alice = server.session("alice", PW, "a").await;
    let reply = last(&mut alice, "bob@localhost").await;
    assert!(seconds(&reply, "bob@localhost", "alice@localhost/a", "bye") <= 10, "{}", show(&reply));
}

/// A connection that dies is recorded too (no status).
#[tokio::test]
async fn last_activity_after_an_abrupt_disconnect() {
    let server = alice_sees_bob().await;
    let mut alice = login(&server, "alice", "a").await.0;
    let (bob, _) = login(&server, "bob", "b").await;
    drain(&mut alice).await;
    drop(bob);
    alice.expect(&unavailable_of("bob@localhost/b", "alice@localhost")).await;
    let reply = last(&mut alice, "bob@localhost").await;
    assert!(seconds(&reply, "bob@localhost", "alice@localhost/a", "") <= 2, "{}", show(&reply));
}

/// Without a subscription granted by the account (none, only the other direction, or
/// only a pending request), the answer is forbidden, online or not.
#[tokio::test]
async fn last_activity_without_permission_is_forbidden() {
    let server = alice_sees_bob().await;
    let mut carol = server.session("carol", PW, "c").await;
    carol.send("<presence type='subscribe' to='bob@localhost'/>").await;
    drain(&mut carol).await;
    let mut bob = login(&server, "bob", "b").await.0;
    for (client, to) in [(&mut carol, "bob@localhost"), (&mut bob, "alice@localhost")] {
        let reply = last(client, to).await;
        assert_eq!(error_of(&reply).1, "forbidden", "{}", show(&reply));
    }
    let mut alice = server.session("alice", PW, "a").await;
    let reply = last(&mut alice, "carol@localhost").await;
    assert_eq!(error_of(&reply).1, "forbidden", "{}", show(&reply));
}

/// RFC 6121 §8.5.1: an iq to an account that does not exist.
#[tokio::test]
async fn last_activity_of_an_unknown_account_is_service_unavailable() {
    let server = server_with(&["alice"]).await;
    let mut alice = server.session("alice", PW, "a").await;
    let reply = last(&mut alice, "nobody@localhost").await;
    assert_eq!(error_of(&reply).1, "service-unavailable", "{}", show(&reply));
}
