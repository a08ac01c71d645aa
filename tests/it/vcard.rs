//! XEP-0054 vcard-temp (get one's own and another account's vCard, set one's own, the
//! errors, the size limit, discovery, account deletion, a restart) and XEP-0153 avatar
//! hashes in the presence the account's clients send. Gets are answered later by the
//! module: their replies still come in the order of the requests.

use crate::roster::kit::*;
use crate::support::xml::{assert_matches, show};
use crate::support::{Client, TestServer};
use stanzad::admin::{Request, Response};
use xmpp_parsers::jid::BareJid;
use xmpp_parsers::minidom::Element;

const NS_VCARD: &str = "vcard-temp";
const NS_UPDATE: &str = "vcard-temp:x:update";
const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";

/// The PNG signature, and the SHA-1 of those 8 bytes (XEP-0153 §3.1: lower-case hex).
const PHOTO: &str = "iVBORw0KGgo=";
const HASH: &str = "4caece539b039b16e16206ea2478f8c5ffb2ca05";

fn card(name: &str) -> String {
    format!("<vCard xmlns='{NS_VCARD}'><FN>{name}</FN><NICKNAME>{name}</NICKNAME></vCard>")
}

fn card_with_photo(name: &str) -> String {
    format!(
        "<vCard xmlns='{NS_VCARD}'><FN>{name}</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>{PHOTO}</BINVAL></PHOTO></vCard>"
    )
}

/// A vCard get, to `to` (None: no `to`, one's own).
async fn get(client: &mut Client, to: Option<&str>) -> Element {
    let id = fresh_id("vc");
    let to = to.map(|to| format!(" to='{to}'")).unwrap_or_default();
    iq(client, &id, &format!("<iq type='get' id='{id}'{to}><vCard xmlns='{NS_VCARD}'/></iq>")).await
}

/// A vCard set of `vcard`, to `to` (None: no `to`).
async fn set(client: &mut Client, to: Option<&str>, vcard: &str) -> Element {
    let id = fresh_id("vc");
    let to = to.map(|to| format!(" to='{to}'")).unwrap_or_default();
    iq(client, &id, &format!("<iq type='set' id='{id}'{to}>{vcard}</iq>")).await
}

async fn set_ok(client: &mut Client, vcard: &str) {
    let reply = set(client, None, vcard).await;
    assert_matches(&reply, &format!("<iq type='result' to='{}'/>", client.jid()));
}

/// The text of an error reply.
fn error_text(reply: &Element) -> String {
    let error = reply.get_child("error", NS_CLIENT).unwrap_or_else(|| panic!("no error: {}", show(reply)));
    error.get_child("text", STANZAS).map(Element::text).unwrap_or_default()
}

#[tokio::test]
async fn own_vcard_is_empty_then_what_was_set_with_or_without_to() {
    let server = server_with(&["alice"]).await;
    let mut alice = server.session("alice", PW, "a").await;
    // §3.1 allows item-not-found or an empty vCard: the empty vCard.
    assert_matches(
        &get(&mut alice, None).await,
        &format!("<iq type='result' to='alice@localhost/a'><vCard xmlns='{NS_VCARD}'/></iq>"),
    );
    set_ok(&mut alice, &card("Alice")).await;
    let reply = get(&mut alice, None).await;
    assert_matches(&reply, &format!("<iq type='result' to='alice@localhost/a'>{}</iq>", card("Alice")));
    // To the own bare JID: the same, from it.
    let reply = set(&mut alice, Some("alice@localhost"), &card("Alice Again")).await;
    assert_matches(&reply, "<iq type='result' from='alice@localhost' to='alice@localhost/a'/>");
    let reply = get(&mut alice, Some("alice@localhost")).await;
    let want = format!("<iq type='result' from='alice@localhost' to='alice@localhost/a'>{}</iq>", card("Alice Again"));
    assert_matches(&reply, &want);
}

/// §3.3: anyone reads a local account's vCard, answered by the server; no vCard, or no
/// account at all, is `service-unavailable` (version 1.3.0), the same for both.
#[tokio::test]
async fn another_accounts_vcard_is_answered_by_the_server() {
    let server = server_with(&["alice", "bob", "carol"]).await;
    let mut alice = server.session("alice", PW, "a").await;
    set_ok(&mut alice, &card("Alice")).await;
    let mut bob = server.session("bob", PW, "b").await;
    let reply = get(&mut bob, Some("alice@localhost")).await;
    assert_matches(
        &reply,
        &format!("<iq type='result' from='alice@localhost' to='bob@localhost/b'>{}</iq>", card("Alice")),
    );
    for nobody in ["carol@localhost", "nobody@localhost"] {
        let reply = get(&mut bob, Some(nobody)).await;
        assert_eq!(error_of(&reply), ("cancel".into(), "service-unavailable".into()), "{}", show(&reply));
    }
}

/// §3.2: setting another account's vCard is `forbidden`, and changes nothing.
#[tokio::test]
async fn setting_another_accounts_vcard_is_forbidden() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = server.session("alice", PW, "a").await;
    set_ok(&mut alice, &card("Alice")).await;
    let mut bob = server.session("bob", PW, "b").await;
    let reply = set(&mut bob, Some("alice@localhost"), &card("Mallory")).await;
    assert_eq!(error_of(&reply).1, "forbidden", "{}", show(&reply));
    let reply = get(&mut bob, Some("alice@localhost")).await;
    assert_matches(
        &reply,
        &format!("<iq type='result' from='alice@localhost' to='bob@localhost/b'>{}</iq>", card("Alice")),
    );
}

/// XEP-0191: someone the owner blocked sees what an account without a vCard gives.
#[tokio::test]
async fn a_blocked_asker_gets_service_unavailable() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = server.session("alice", PW, "a").await;
    set_ok(&mut alice, &card("Alice")).await;
    let reply = iq(
        &mut alice,
        "blk",
        "<iq type='set' id='blk'><block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></block></iq>",
    )
    .await;
    assert_eq!(reply.attr("type"), Some("result"), "{}", show(&reply));
    let mut bob = server.session("bob", PW, "b").await;
    let reply = get(&mut bob, Some("alice@localhost")).await;
    assert_eq!(error_of(&reply).1, "service-unavailable", "{}", show(&reply));
}

/// `limits.max_vcard_bytes`: a larger vCard is `not-acceptable` with a text, and the
/// vCard stays as it was. Bad payloads: a photo that is not base64 is a `bad-request`; an
/// iq type the namespace does not take, or another element of it, is refused.
#[tokio::test]
async fn the_size_limit_and_bad_payloads() {
    let server = TestServer::with(|c| c.limits.max_vcard_bytes = 1024).await;
    server.add_user("alice@localhost", PW).await;
    let mut alice = server.session("alice", PW, "a").await;
    set_ok(&mut alice, &card("Alice")).await;
    let big = format!("<vCard xmlns='{NS_VCARD}'><DESC>{}</DESC></vCard>", "d".repeat(1100));
    let reply = set(&mut alice, None, &big).await;
    assert_eq!(error_of(&reply), ("modify".into(), "not-acceptable".into()), "{}", show(&reply));
    assert!(error_text(&reply).contains("1024 bytes"), "{}", show(&reply));
    let garbage = format!("<vCard xmlns='{NS_VCARD}'><PHOTO><BINVAL>*not base64*</BINVAL></PHOTO></vCard>");
    let reply = set(&mut alice, None, &garbage).await;
    assert_eq!(error_of(&reply).1, "bad-request", "{}", show(&reply));
    let reply = get(&mut alice, None).await;
    assert_matches(&reply, &format!("<iq type='result' to='alice@localhost/a'>{}</iq>", card("Alice")));

    let reply = iq(&mut alice, "other", &format!("<iq type='get' id='other'><photo xmlns='{NS_VCARD}'/></iq>")).await;
    assert_eq!(error_of(&reply).1, "service-unavailable", "{}", show(&reply));
    let reply =
        iq(&mut alice, "srv", &format!("<iq type='get' id='srv' to='localhost'><vCard xmlns='{NS_VCARD}'/></iq>"))
            .await;
    assert_eq!(error_of(&reply).1, "service-unavailable", "the server has no vCard: {}", show(&reply));
}

async fn features(client: &mut Client, to: &str) -> Vec<String> {
    let id = fresh_id("disco");
    let reply =
        iq(client, &id, &format!("<iq type='get' id='{id}' to='{to}'><query xmlns='{NS_DISCO_INFO}'/></iq>")).await;
    let query = reply.get_child("query", NS_DISCO_INFO).unwrap_or_else(|| panic!("disco#info: {}", show(&reply)));
    query.children().filter(|f| f.name() == "feature").filter_map(|f| f.attr("var")).map(str::to_owned).collect()
}

/// §4: `vcard-temp` is listed by the server and by every account.
#[tokio::test]
async fn disco_lists_vcard_temp_on_the_server_and_the_accounts() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = server.session("alice", PW, "a").await;
    for to in ["localhost", "alice@localhost", "bob@localhost"] {
        assert!(features(&mut alice, to).await.iter().any(|f| f == NS_VCARD), "{to}");
    }
}

/// A get is answered later (the module reads and parses the vCard off the session's
/// turn), yet every reply comes in the order of the requests: the session writes a later
/// reply before it handles the next stanza (RFC 6120 §10.1).
#[tokio::test]
async fn vcard_gets_and_pings_are_answered_in_order() {
    let server = server_with(&["alice", "bob"]).await;
    let mut bob = server.session("bob", PW, "b").await;
    // A large vCard, which takes a while to read back.
    set_ok(&mut bob, &format!("<vCard xmlns='{NS_VCARD}'><DESC>{}</DESC></vCard>", "d".repeat(60_000))).await;
    let mut alice = server.session("alice", PW, "a").await;
    let ping = |id: &str| format!("<iq type='get' id='{id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
    let vcard = |id: &str, to: &str| format!("<iq type='get' id='{id}' to='{to}'><vCard xmlns='{NS_VCARD}'/></iq>");
    let batch = [
        vcard("v1", "bob@localhost"),
        ping("p1"),
        vcard("v2", "alice@localhost"),
        ping("p2"),
        vcard("v3", "bob@localhost"),
    ];
    alice.send(&batch.concat()).await;
    let mut ids = Vec::new();
    for _ in 0..batch.len() {
        let reply = alice.recv().await;
        assert_eq!(reply.attr("type"), Some("result"), "{}", show(&reply));
        ids.push(reply.attr("id").unwrap_or_default().to_owned());
    }
    assert_eq!(ids, ["v1", "p1", "v2", "p2", "v3"]);
}

/// Deleting an account deletes its vCard: a new account of the same name has none, and
/// the vCard (with its avatar) is gone from the store.
#[tokio::test]
async fn deleting_the_account_deletes_its_vcard() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = server.session("alice", PW, "a").await;
    set_ok(&mut alice, &card_with_photo("Alice")).await;
    assert_eq!(server.admin(Request::Deluser { jid: "alice@localhost".into() }).await, Response::Done);
    alice.expect_stream_error("not-authorized").await;
    let store = &server.server().state.store;
    let owner = BareJid::new("alice@localhost").expect("jid");
    assert!(store.vcard(&owner).await.expect("read").is_none() && store.avatar(&owner).await.expect("read").is_none());
    let mut bob = server.session("bob", PW, "b").await;
    let reply = get(&mut bob, Some("alice@localhost")).await;
    assert_eq!(error_of(&reply).1, "service-unavailable", "{}", show(&reply));
    server.add_user("alice@localhost", PW).await;
    let reply = get(&mut bob, Some("alice@localhost")).await;
    assert_eq!(error_of(&reply).1, "service-unavailable", "the new alice has no vCard: {}", show(&reply));
    let mut alice = server.session("alice", PW, "a").await;
    assert_matches(
        &get(&mut alice, None).await,
        &format!("<iq type='result' to='alice@localhost/a'><vCard xmlns='{NS_VCARD}'/></iq>"),
    );
}

/// What presence a contact gets from `full` after [`online`], with `extra` after the priority.
fn presence_with(full: &str, to: &str, extra: &str) -> String {
    format!("<presence from='{full}' to='{to}'><priority>0</priority>{extra}</presence>")
}

fn update(photo: Option<&str>) -> String {
    match photo {
        Some(hash) => format!("<x xmlns='{NS_UPDATE}'><photo>{hash}</photo></x>"),
        None => format!("<x xmlns='{NS_UPDATE}'><photo/></x>"),
    }
}

/// XEP-0153: the hash of the vCard's photo rides on the presence of the account's
/// clients, echo and broadcast to contacts, and on directed presence; a client that sends
/// its own update element, even empty, is left alone (§4.1, §4.3); a vCard without a photo
/// gives an empty `<photo/>` (§4.1); an account without a vCard gets nothing added.
#[tokio::test]
async fn presence_carries_the_avatar_hash_to_contacts() {
    let server = server_with(&["alice", "bob", "carol"]).await;
    given_subscriptions(&server, &[("alice", "bob"), ("bob", "alice")]).await;
    // Alice is offline: Bob hears so at login.
    let mut bob = login(&server, "bob", "b").await.0;
    let mut alice = server.session("alice", PW, "a").await;
    set_ok(&mut alice, &card_with_photo("Alice")).await;
    alice.send("<presence><priority>0</priority></presence>").await;
    alice
        .expect(&format!("<presence from='alice@localhost/a'><priority>0</priority>{}</presence>", update(Some(HASH))))
        .await;
    let (a, b) = ("alice@localhost/a", "bob@localhost/b");
    expect_drained(&mut alice, &[presence_of(b, a)]).await;
    expect_drained(&mut bob, &[presence_with(a, "bob@localhost", &update(Some(HASH)))]).await;

    // A client that speaks XEP-0153 itself.
    let own = format!("<x xmlns='{NS_UPDATE}'/>");
    send_presence(&mut alice, &format!("<presence><priority>0</priority>{own}</presence>")).await;
    expect_drained(&mut bob, &[presence_with(a, "bob@localhost", &own)]).await;

    // Directed presence carries it too.
    let mut carol = server.session("carol", PW, "c").await;
    alice.send("<presence to='carol@localhost/c'/>").await;
    drain(&mut alice).await;
    expect_drained(
        &mut carol,
        &[format!("<presence from='{a}' to='carol@localhost/c'>{}</presence>", update(Some(HASH)))],
    )
    .await;

    // No photo any more: an empty photo element.
    set_ok(&mut alice, &card("Alice")).await;
    send_presence(&mut alice, "<presence><priority>0</priority></presence>").await;
    expect_drained(&mut bob, &[presence_with(a, "bob@localhost", &update(None))]).await;

    // Bob never set a vCard: his presence goes as sent.
    send_presence(&mut bob, "<presence><priority>0</priority></presence>").await;
    expect_drained(&mut alice, &[presence_of(b, "alice@localhost")]).await;
}

/// The vCard and its avatar hash are stored: both are there after a restart.
#[tokio::test]
async fn the_vcard_and_its_avatar_survive_a_restart() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = server.session("alice", PW, "a").await;
    set_ok(&mut alice, &card_with_photo("Alice")).await;
    drop(alice);
    let server = server.restart().await;
    let mut bob = server.session("bob", PW, "b").await;
    let reply = get(&mut bob, Some("alice@localhost")).await;
    let want =
        format!("<iq type='result' from='alice@localhost' to='bob@localhost/b'>{}</iq>", card_with_photo("Alice"));
    assert_matches(&reply, &want);
    let mut alice = server.session("alice", PW, "a").await;
    alice.send("<presence><priority>0</priority></presence>").await;
    alice
        .expect(&format!("<presence from='alice@localhost/a'><priority>0</priority>{}</presence>", update(Some(HASH))))
        .await;
}
