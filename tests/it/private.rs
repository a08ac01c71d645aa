//! XEP-0049 private XML storage: store and fetch by namespace, the errors (another
//! account, reserved namespaces, an empty query, several namespaces), the size limit,
//! discovery, account deletion, a restart; and XEP-0048 bookmarks kept through it from
//! one login to the next.

use crate::roster::kit::*;
use crate::support::xml::{assert_matches, show};
use crate::support::{Client, TestServer};
use stanzad::admin::{Request, Response};
use xmpp_parsers::jid::BareJid;
use xmpp_parsers::minidom::Element;

const NS_PRIVATE: &str = "jabber:iq:private";
const NS_BOOKMARKS: &str = "storage:bookmarks";

fn query(inner: &str) -> String {
    format!("<query xmlns='{NS_PRIVATE}'>{inner}</query>")
}

async fn private(client: &mut Client, kind: &str, to: Option<&str>, inner: &str) -> Element {
    let id = fresh_id("priv");
    let to = to.map(|to| format!(" to='{to}'")).unwrap_or_default();
    iq(client, &id, &format!("<iq type='{kind}' id='{id}'{to}>{}</iq>", query(inner))).await
}

async fn store(client: &mut Client, inner: &str) {
    let reply = private(client, "set", None, inner).await;
    assert_matches(&reply, &format!("<iq type='result' to='{}'/>", client.jid()));
}

/// A get of `asked`; checks the result and returns what it holds.
async fn fetch(client: &mut Client, asked: &str) -> String {
    let reply = private(client, "get", None, asked).await;
    assert_eq!(reply.attr("type"), Some("result"), "{}", show(&reply));
    let query = reply.get_child("query", NS_PRIVATE).unwrap_or_else(|| panic!("no query: {}", show(&reply)));
    query.children().map(show).collect()
}

fn bookmarks(rooms: &[&str]) -> String {
    let rooms: String = rooms
        .iter()
        .map(|room| format!("<conference jid='{room}' autojoin='true' name='{room}'><nick>al</nick></conference>"))
        .collect();
    format!("<storage xmlns='{NS_BOOKMARKS}'>{rooms}</storage>")
}

/// `fetched` (what [`fetch`] returned) is the one element `want`.
fn assert_holds(fetched: &str, want: &str) {
    let got: Element = fetched.parse().unwrap_or_else(|e| panic!("one element, got {fetched}: {e}"));
    assert_matches(&got, want);
}

/// §2.3: a namespace never stored gives back the empty element asked for; what is stored
/// is given back whole, by namespace, and replaced whole; several elements of one
/// namespace are stored together.
#[tokio::test]
async fn store_fetch_and_replace_by_namespace() {
    let server = server_with(&["alice"]).await;
    let mut alice = server.session("alice", PW, "a").await;
    assert_holds(&fetch(&mut alice, "<exodus xmlns='exodus:prefs'/>").await, "<exodus xmlns='exodus:prefs'/>");
    let prefs = "<exodus xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick></exodus>";
    store(&mut alice, prefs).await;
    assert_holds(&fetch(&mut alice, "<exodus xmlns='exodus:prefs'/>").await, prefs);
    // The namespace is the key: another name in it gets the stored element.
    assert_holds(&fetch(&mut alice, "<other xmlns='exodus:prefs'/>").await, prefs);
    let again = "<exodus xmlns='exodus:prefs'><defaultnick>Macbeth</defaultnick></exodus>";
    let reply = private(&mut alice, "set", Some("alice@localhost"), again).await;
    assert_matches(&reply, "<iq type='result' from='alice@localhost' to='alice@localhost/a'/>");
    assert_holds(&fetch(&mut alice, "<exodus xmlns='exodus:prefs'/>").await, again);
    let two = "<a xmlns='x:multi'>1</a><b xmlns='x:multi'>2</b>";
    store(&mut alice, two).await;
    let reply = private(&mut alice, "get", None, "<a xmlns='x:multi'/>").await;
    assert_matches(&reply, &format!("<iq type='result' to='alice@localhost/a'>{}</iq>", query(two)));
    assert_holds(&fetch(&mut alice, "<exodus xmlns='exodus:prefs'/>").await, again);
}

/// XEP-0048 §3 (its jabber:iq:private storage): bookmarks stored in one session are
/// there at the next login.
#[tokio::test]
async fn bookmarks_are_there_at_the_next_login() {
    let server = server_with(&["alice"]).await;
    let mut alice = server.session("alice", PW, "laptop").await;
    assert_holds(
        &fetch(&mut alice, &format!("<storage xmlns='{NS_BOOKMARKS}'/>")).await,
        &format!("<storage xmlns='{NS_BOOKMARKS}'/>"),
    );
    let marks = bookmarks(&["council@conference.localhost", "tea@conference.localhost"]);
    store(&mut alice, &marks).await;
    alice.log_off().await;
    let mut phone = server.session("alice", PW, "phone").await;
    assert_holds(&fetch(&mut phone, &format!("<storage xmlns='{NS_BOOKMARKS}'/>")).await, &marks);
}

/// §2.3, §4: another account's private data is `forbidden`, get or set.
#[tokio::test]
async fn another_accounts_data_is_forbidden() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = server.session("alice", PW, "a").await;
    store(&mut alice, &bookmarks(&["secret@conference.localhost"])).await;
    let mut bob = server.session("bob", PW, "b").await;
    for kind in ["get", "set"] {
        let reply = private(&mut bob, kind, Some("alice@localhost"), &bookmarks(&[])).await;
        assert_eq!(error_of(&reply), ("auth".into(), "forbidden".into()), "{}", show(&reply));
    }
    assert_holds(&fetch(&mut alice, &bookmarks(&[])).await, &bookmarks(&["secret@conference.localhost"]));
}

/// §2.3, §3: an empty query and the reserved namespaces (`jabber:`…, `http://jabber.org/`…,
/// `vcard-temp`; an element without a namespace of its own is in `jabber:iq:private`) are
/// `not-acceptable`; a get of two elements or a set of two namespaces is a `bad-request`.
#[tokio::test]
async fn bad_payloads_are_refused() {
    let server = server_with(&["alice"]).await;
    let mut alice = server.session("alice", PW, "a").await;
    let reserved = [
        "<x xmlns='jabber:client'/>",
        "<x xmlns='jabber:server'/>",
        "<x/>",
        "<query xmlns='jabber:iq:roster'/>",
        "<x xmlns='http://jabber.org/protocol/muc'/>",
        "<vCard xmlns='vcard-temp'><FN>A</FN></vCard>",
    ];
    for kind in ["get", "set"] {
        for inner in ["", " "].iter().chain(reserved.iter()) {
            let reply = private(&mut alice, kind, None, inner).await;
            assert_eq!(
                error_of(&reply),
                ("modify".into(), "not-acceptable".into()),
                "{kind} {inner}: {}",
                show(&reply)
            );
        }
    }
    let two = "<a xmlns='x:one'/><b xmlns='x:one'/>";
    let reply = private(&mut alice, "get", None, two).await;
    assert_eq!(error_of(&reply).1, "bad-request", "{}", show(&reply));
    let mixed = "<a xmlns='x:one'/><b xmlns='x:two'/>";
    let reply = private(&mut alice, "set", None, mixed).await;
    assert_eq!(error_of(&reply).1, "bad-request", "{}", show(&reply));
    assert_holds(&fetch(&mut alice, "<a xmlns='x:one'/>").await, "<a xmlns='x:one'/>");
}

/// `limits.max_private_bytes` bounds what one account stores over all its namespaces: a
/// set past it is `resource-constraint` with a text and changes nothing; an entry may
/// always shrink, and then there is room again.
#[tokio::test]
async fn the_size_limit_is_per_account() {
    let server = TestServer::with(|c| c.limits.max_private_bytes = 4096).await;
    server.add_user("alice@localhost", PW).await;
    let mut alice = server.session("alice", PW, "a").await;
    let pad = |ns: &str, n: usize| format!("<p xmlns='{ns}'>{}</p>", "p".repeat(n));
    store(&mut alice, &pad("x:one", 2500)).await;
    let reply = private(&mut alice, "set", None, &pad("x:two", 2500)).await;
    assert_eq!(error_of(&reply).1, "resource-constraint", "{}", show(&reply));
    let error = reply.get_child("error", NS_CLIENT).expect("error");
    let text = error.get_child("text", STANZAS).map(Element::text).unwrap_or_default();
    assert!(text.contains("4096 bytes"), "{}", show(&reply));
    assert_holds(&fetch(&mut alice, "<p xmlns='x:two'/>").await, "<p xmlns='x:two'/>");
    store(&mut alice, &pad("x:one", 10)).await;
    store(&mut alice, &pad("x:two", 2500)).await;
}

/// XEP-0049 defines no disco feature; the server lists `jabber:iq:private` (as Prosody).
#[tokio::test]
async fn disco_lists_private_storage_on_the_server() {
    let server = server_with(&["alice"]).await;
    let mut alice = server.session("alice", PW, "a").await;
    let disco = "http://jabber.org/protocol/disco#info";
    let reply =
        iq(&mut alice, "d", &format!("<iq type='get' id='d' to='localhost'><query xmlns='{disco}'/></iq>")).await;
    let query = reply.get_child("query", disco).expect("disco#info");
    assert!(query.children().any(|f| f.attr("var") == Some(NS_PRIVATE)), "{}", show(&reply));
}

/// Deleting an account deletes its private data: a new account of the same name starts
/// empty.
#[tokio::test]
async fn deleting_the_account_deletes_its_private_data() {
    let server = server_with(&["alice"]).await;
    let mut alice = server.session("alice", PW, "a").await;
    store(&mut alice, &bookmarks(&["old@conference.localhost"])).await;
    assert_eq!(server.admin(Request::Deluser { jid: "alice@localhost".into() }).await, Response::Done);
    alice.expect_stream_error("not-authorized").await;
    let owner = BareJid::new("alice@localhost").expect("jid");
    let store_of = &server.server().state.store;
    assert!(store_of.private(&owner, NS_BOOKMARKS).await.expect("read").is_none());
    assert_eq!(store_of.private_bytes(&owner).await.expect("read"), 0);
    server.add_user("alice@localhost", PW).await;
    let mut alice = server.session("alice", PW, "a").await;
    assert_holds(&fetch(&mut alice, &bookmarks(&[])).await, &bookmarks(&[]));
}

#[tokio::test]
async fn private_data_survives_a_restart() {
    let server = server_with(&["alice"]).await;
    let mut alice = server.session("alice", PW, "a").await;
    let marks = bookmarks(&["council@conference.localhost"]);
    store(&mut alice, &marks).await;
    drop(alice);
    let server = server.restart().await;
    let mut alice = server.session("alice", PW, "a").await;
    assert_holds(&fetch(&mut alice, &bookmarks(&[])).await, &marks);
}
