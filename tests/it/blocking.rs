//! XEP-0191 Blocking Command: the block list (get, block, unblock, unblock all) and its
//! pushes, the errors on both sides of a block, presence while blocked and after, and
//! discovery.

use crate::roster::kit::*;
use crate::support::xml::show;
use crate::support::Client;
use xmpp_parsers::minidom::Element;

const NS_BLOCKING: &str = "urn:xmpp:blocking";
const NS_BLOCKING_ERRORS: &str = "urn:xmpp:blocking:errors";

async fn blocklist(client: &mut Client) -> Vec<String> {
    let id = fresh_id("bl");
    let reply = iq(client, &id, &format!("<iq type='get' id='{id}'><blocklist xmlns='{NS_BLOCKING}'/></iq>")).await;
    assert_eq!(reply.attr("type"), Some("result"), "{}", show(&reply));
    let list = reply.get_child("blocklist", NS_BLOCKING).unwrap_or_else(|| panic!("no blocklist: {}", show(&reply)));
    list.children().map(|i| i.attr("jid").expect("item jid").to_owned()).collect()
}

fn items(jids: &[&str]) -> String {
    jids.iter().map(|j| format!("<item jid='{j}'/>")).collect()
}

/// Sends a block (or unblock) command and checks its empty result.
async fn command(client: &mut Client, verb: &str, jids: &[&str]) {
    let id = fresh_id(verb);
    let reply = iq(
        client,
        &id,
        &format!("<iq type='set' id='{id}'><{verb} xmlns='{NS_BLOCKING}'>{}</{verb}></iq>", items(jids)),
    )
    .await;
    crate::support::xml::assert_matches(&reply, &format!("<iq type='result' to='{}'/>", client.jid()));
}

fn block_push(to: &str, verb: &str, jids: &[&str]) -> String {
    format!("<iq type='set' to='{to}'><{verb} xmlns='{NS_BLOCKING}'>{}</{verb}></iq>", items(jids))
}

/// Two resources of Alice that asked for the block list.
async fn alice_twice(server: &crate::support::TestServer) -> (Client, Client) {
    let mut one = server.session("alice", PW, "one").await;
    assert!(blocklist(&mut one).await.is_empty());
    let mut two = server.session("alice", PW, "two").await;
    assert!(blocklist(&mut two).await.is_empty());
    (one, two)
}

#[tokio::test]
async fn block_unblock_and_unblock_all_are_pushed_to_the_resources() {
    let server = server_with(&["alice", "bob", "carol"]).await;
    let (mut one, mut two) = alice_twice(&server).await;
    command(&mut one, "block", &["bob@localhost", "carol@localhost"]).await;
    let both = ["bob@localhost", "carol@localhost"];
    expect_drained(&mut one, &[block_push("alice@localhost/one", "block", &both)]).await;
    expect_drained(&mut two, &[block_push("alice@localhost/two", "block", &both)]).await;
    let mut list = blocklist(&mut two).await;
    list.sort();
    assert_eq!(list, both);

    command(&mut two, "unblock", &["bob@localhost"]).await;
    expect_drained(&mut two, &[block_push("alice@localhost/two", "unblock", &["bob@localhost"])]).await;
    expect_drained(&mut one, &[block_push("alice@localhost/one", "unblock", &["bob@localhost"])]).await;
    assert_eq!(blocklist(&mut one).await, ["carol@localhost"]);

    command(&mut one, "block", &["dave@localhost"]).await;
    drain(&mut one).await;
    drain(&mut two).await;
    // An empty unblock is "unblock all", pushed as an empty <unblock/>.
    command(&mut one, "unblock", &[]).await;
    expect_drained(&mut one, &[block_push("alice@localhost/one", "unblock", &[])]).await;
    expect_drained(&mut two, &[block_push("alice@localhost/two", "unblock", &[])]).await;
    assert!(blocklist(&mut two).await.is_empty());
}

#[tokio::test]
async fn blocklist_survives_a_restart() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = server.session("alice", PW, "a").await;
    command(&mut alice, "block", &["bob@localhost", "spammer@example.net"]).await;
    drop(alice);
    let server = server.restart().await;
    let mut alice = server.session("alice", PW, "a").await;
    let mut list = blocklist(&mut alice).await;
    list.sort();
    assert_eq!(list, ["bob@localhost", "spammer@example.net"]);
}

#[tokio::test]
async fn block_without_items_or_with_a_malformed_jid_is_refused() {
    let server = server_with(&["alice"]).await;
    let mut alice = server.session("alice", PW, "a").await;
    let reply = iq(&mut alice, "e1", &format!("<iq type='set' id='e1'><block xmlns='{NS_BLOCKING}'/></iq>")).await;
    assert_eq!(error_of(&reply).1, "bad-request", "{}", show(&reply));
    let reply = iq(
        &mut alice,
        "e2",
        &format!("<iq type='set' id='e2'><block xmlns='{NS_BLOCKING}'><item jid='a@b@c'/></block></iq>"),
    )
    .await;
    // XEP-0191 names no condition for this; either is a fair answer.
    let condition = error_of(&reply).1;
    assert!(["jid-malformed", "bad-request"].contains(&condition.as_str()), "{}", show(&reply));
    assert!(blocklist(&mut alice).await.is_empty());
}

#[tokio::test]
async fn server_disco_info_lists_blocking() {
    let server = server_with(&["alice"]).await;
    let mut alice = server.session("alice", PW, "a").await;
    let reply = iq(
        &mut alice,
        "d",
        "<iq type='get' id='d' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    )
    .await;
    let query = reply.get_child("query", "http://jabber.org/protocol/disco#info").expect("disco#info");
    assert!(query.children().any(|f| f.name() == "feature" && f.attr("var") == Some(NS_BLOCKING)), "{}", show(&reply));
}

/// The defined condition and the children of the `<error/>` of `reply`.
fn blocked_error(reply: &Element) -> (String, bool) {
    let (_, condition) = error_of(reply);
    let error = reply.get_child("error", NS_CLIENT).expect("error");
    (condition, error.get_child("blocked", NS_BLOCKING_ERRORS).is_some())
}

/// §3.3: what a blocked contact sends is refused: messages and iq get/set with
/// service-unavailable, presence silently; the user receives none of it.
#[tokio::test]
async fn stanzas_from_a_blocked_contact_are_refused() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = login_alone(&server, "alice", "a").await;
    let mut bob = login_alone(&server, "bob", "b").await;
    command(&mut alice, "block", &["bob@localhost"]).await;
    drain(&mut alice).await;
    drain(&mut bob).await; // see blocking_a_stranger_sends_it_no_presence
    for to in ["alice@localhost", "alice@localhost/a"] {
        bob.send(&format!("<message to='{to}' type='chat' id='m'><body>hi</body></message>")).await;
        let reply = bob.recv().await;
        assert!(reply.is("message", NS_CLIENT), "{}", show(&reply));
        assert_eq!(error_of(&reply).1, "service-unavailable", "{}", show(&reply));
    }
    let reply =
        iq(&mut bob, "v", "<iq type='get' id='v' to='alice@localhost/a'><query xmlns='jabber:iq:version'/></iq>").await;
    assert_eq!(error_of(&reply).1, "service-unavailable", "{}", show(&reply));
    bob.send("<presence to='alice@localhost'><status>look</status></presence>").await;
    assert_quiet(&mut bob).await;
    assert_quiet(&mut alice).await;
}

/// §3.3: what the user sends to a contact it blocked is refused with not-acceptable and
/// the `<blocked/>` application condition, and never reaches the contact.
#[tokio::test]
async fn stanzas_to_a_blocked_contact_are_not_acceptable() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = login_alone(&server, "alice", "a").await;
    let mut bob = login_alone(&server, "bob", "b").await;
    command(&mut alice, "block", &["bob@localhost"]).await;
    drain(&mut alice).await;
    drain(&mut bob).await; // see blocking_a_stranger_sends_it_no_presence
    alice.send("<message to='bob@localhost' type='chat' id='m'><body>hi</body></message>").await;
    let reply = alice.recv().await;
    crate::support::xml::assert_matches(
        &reply,
        &format!(
            "<message type='error' id='m' from='bob@localhost' to='alice@localhost/a'><body>hi</body>\
             <error type='{{any}}'><not-acceptable xmlns='{STANZAS}'/><blocked xmlns='{NS_BLOCKING_ERRORS}'/></error>\
             </message>"
        ),
    );
    let reply =
        iq(&mut alice, "v", "<iq type='get' id='v' to='bob@localhost/b'><query xmlns='jabber:iq:version'/></iq>").await;
    assert_eq!(blocked_error(&reply), ("not-acceptable".to_owned(), true), "{}", show(&reply));
    alice.send("<presence type='subscribe' to='bob@localhost'/>").await;
    alice.send("<presence to='bob@localhost/b'/>").await;
    for reply in drain(&mut alice).await {
        assert_eq!(blocked_error(&reply), ("not-acceptable".to_owned(), true), "{}", show(&reply));
    }
    assert_quiet(&mut bob).await;
    assert!(roster_item(&mut alice, "bob@localhost").await.is_none(), "the refused request changed the roster");
}

/// §3.3: blocking sends the contact our unavailable presence; while blocked no presence
/// passes either way (not even at login, where the user appears offline); §3.4: unblocking
/// sends our current presence and presence flows again.
#[tokio::test]
async fn blocking_cuts_presence_both_ways_until_unblocked() {
    let server = server_with(&["alice", "bob"]).await;
    given_subscriptions(&server, &[("alice", "bob"), ("bob", "alice")]).await;
    let mut b1 = login(&server, "bob", "b1").await.0;
    let mut a1 = login(&server, "alice", "a1").await.0;
    drain(&mut b1).await;
    command(&mut a1, "block", &["bob@localhost"]).await;
    drain(&mut a1).await;
    expect_drained(&mut b1, &[unavailable_of("alice@localhost/a1", "bob@localhost")]).await;

    send_presence(&mut a1, "<presence><show>away</show></presence>").await;
    assert_quiet(&mut b1).await;
    send_presence(&mut b1, "<presence><show>away</show></presence>").await;
    assert_quiet(&mut a1).await;
    let (mut b2, before) = login(&server, "bob", "b2").await;
    // Of its own account's resources only (RFC 6121 §4.2.2), nothing of alice.
    let b1_away = "<presence from='bob@localhost/b1' to='bob@localhost/b2'><show>away</show></presence>";
    assert_set("bob/b2 at login", &before, &[b1_away.to_owned()]);
    drain(&mut b1).await;
    assert_quiet(&mut a1).await;
    let (mut a2, before) = login(&server, "alice", "a2").await;
    let a1_away = "<presence from='alice@localhost/a1' to='alice@localhost/a2'><show>away</show></presence>";
    assert_set("alice/a2 at login", &before, &[a1_away.to_owned()]);
    drain(&mut a1).await;
    assert_quiet(&mut b1).await;

    command(&mut a2, "unblock", &["bob@localhost"]).await;
    drain(&mut a2).await;
    drain(&mut a1).await;
    let current = [
        "<presence from='alice@localhost/a1' to='bob@localhost'><show>away</show></presence>".to_owned(),
        presence_of("alice@localhost/a2", "bob@localhost"),
    ];
    expect_drained(&mut b1, &current).await;
    expect_drained(&mut b2, &current).await;
    send_presence(&mut b2, "<presence><status>back</status></presence>").await;
    drain(&mut b1).await;
    for client in [&mut a1, &mut a2] {
        expect_drained(
            client,
            &["<presence from='bob@localhost/b2' to='alice@localhost'><status>back</status></presence>".to_owned()],
        )
        .await;
    }
}

/// Blocking a contact that does not see our presence sends it nothing: §3.3 sends the
/// unavailable presence "only if the contact is allowed to receive presence notifications".
#[tokio::test]

async fn blocking_a_stranger_sends_it_no_presence() {
    let server = server_with(&["alice", "eve"]).await;
    let mut eve = login_alone(&server, "eve", "e").await;
    let mut alice = login_alone(&server, "alice", "a").await;
    command(&mut alice, "block", &["eve@localhost"]).await;
    drain(&mut alice).await;
    assert_quiet(&mut eve).await;
}

/// §3.3: presence from a blocked contact, "including ... subscriptions", is dropped.
#[tokio::test]

async fn subscription_requests_from_a_blocked_contact_are_dropped() {
    let server = server_with(&["alice", "eve"]).await;
    let mut alice = login_alone(&server, "alice", "a").await;
    let mut eve = login_alone(&server, "eve", "e").await;
    command(&mut alice, "block", &["eve@localhost"]).await;
    drain(&mut alice).await;
    drain(&mut eve).await;
    eve.send("<presence type='subscribe' to='alice@localhost'/>").await;
    drain(&mut eve).await;
    assert_quiet(&mut alice).await;
    // Nor is it kept for later.
    let (_alice2, before) = login(&server, "alice", "a2").await;
    assert_set("alice/a2 at login", &before, &[presence_of("alice@localhost/a", "alice@localhost/a2")]);
}

/// A request that waited while its receiver was away is not delivered at the next login
/// once its sender is blocked (XEP-0191 §3.3).
#[tokio::test]
async fn a_waiting_subscription_request_from_a_since_blocked_contact_is_not_delivered() {
    let server = server_with(&["alice", "eve"]).await;
    let mut eve = login_alone(&server, "eve", "e").await;
    eve.send("<presence type='subscribe' to='alice@localhost'/>").await;
    drain(&mut eve).await;
    let (mut alice, before) = login(&server, "alice", "a").await;
    assert!(before.iter().any(|e| e.attr("type") == Some("subscribe")), "not blocked yet:\n{}", list(&before));
    command(&mut alice, "block", &["eve@localhost"]).await;
    drain(&mut alice).await;
    let (_alice2, before) = login(&server, "alice", "a2").await;
    assert!(before.iter().all(|e| e.attr("type") != Some("subscribe")), "alice/a2 got:\n{}", list(&before));
}

/// Every push is an iq that the client answers by id (RFC 6120 §8.1.3, §8.2.3): two pushes
/// on one stream must not share an id.
#[tokio::test]

async fn block_pushes_have_distinct_ids() {
    let server = server_with(&["alice"]).await;
    let (mut one, mut two) = alice_twice(&server).await;
    for jid in ["x@example.net", "y@example.net", "z@example.net"] {
        command(&mut one, "block", &[jid]).await;
        drain(&mut one).await;
    }
    let pushes = drain(&mut two).await;
    assert_eq!(pushes.len(), 3, "{}", list(&pushes));
    let mut ids: Vec<&str> = pushes.iter().map(|p| p.attr("id").expect("push id")).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "ids must differ:\n{}", list(&pushes));
}

/// §3.3 and §3.4: pushes go to "all of the user's resources that have requested the
/// blocklist"; a resource that never asked (and may not know the protocol) gets none.
#[tokio::test]

async fn block_pushes_skip_resources_that_never_requested_the_blocklist() {
    let server = server_with(&["alice"]).await;
    let mut asked = server.session("alice", PW, "asked").await;
    assert!(blocklist(&mut asked).await.is_empty());
    let mut never = server.session("alice", PW, "never").await;
    command(&mut asked, "block", &["x@example.net"]).await;
    expect_drained(&mut asked, &[block_push("alice@localhost/asked", "block", &["x@example.net"])]).await;
    assert_quiet(&mut never).await;
}

/// A contact blocked by the user cannot learn its last activity either.
#[tokio::test]
async fn last_activity_of_a_user_who_blocked_the_asker_is_forbidden() {
    let server = server_with(&["alice", "bob"]).await;
    given_subscriptions(&server, &[("bob", "alice")]).await;
    let mut alice = server.session("alice", PW, "a").await;
    command(&mut alice, "block", &["bob@localhost"]).await;
    let mut bob = server.session("bob", PW, "b").await;
    let reply =
        iq(&mut bob, "l", "<iq type='get' id='l' to='alice@localhost'><query xmlns='jabber:iq:last'/></iq>").await;
    assert_eq!(error_of(&reply).1, "forbidden", "{}", show(&reply));
}
