//! Archive retention: the server's `archive.max_age`, and the shorter time an account
//! chooses for its own archive through the XEP-0050 command `urn:stanzad:mam:retention`.
//! Old entries are put in the store directly (stamped days ago); everything else goes
//! over the wire, and once through the real binary.

use crate::mam::{query, server_with, PW};
use crate::roster::kit::{error_of, fresh_id};
use crate::support::daemon::{self, Daemon};
use crate::support::xml::show;
use crate::support::{Client, TestServer, NS_CLIENT};
use stanzad::storage::archive::ArchiveStore;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use xmpp_parsers::jid::{BareJid, Jid};
use xmpp_parsers::minidom::Element;

const NS_COMMANDS: &str = "http://jabber.org/protocol/commands";
const NODE: &str = "urn:stanzad:mam:retention";
const NS_DATA: &str = "jabber:x:data";
const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
const NS_DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
const DAY: u64 = 86_400_000_000;

fn days_ago(days: u64) -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_micros() as u64 - days * DAY
}

/// Puts a chat from `with` in `owner`'s archive, stamped `days` ago, its body `body`.
async fn archived(store: &dyn ArchiveStore, owner: &str, days: u64, body: &str) {
    let (owner, with) = (BareJid::new(owner).expect("jid"), Jid::new("zoe@example.net/z").expect("jid"));
    let stanza =
        format!("<message xmlns='jabber:client' type='chat' from='zoe@example.net/z'><body>{body}</body></message>");
    store.archive(&owner, &with, days_ago(days), stanza.as_bytes()).await.expect("archive");
}

/// An iq to the server and its answer, which must be the next thing read.
async fn ask(client: &mut Client, payload: &str) -> Element {
    let id = fresh_id("c");
    client.send(&format!("<iq type='set' id='{id}' to='localhost'>{payload}</iq>")).await;
    let reply = client.recv().await;
    assert_eq!(reply.attr("id"), Some(id.as_str()), "{}", show(&reply));
    reply
}

async fn disco(client: &mut Client, ns: &str, node: Option<&str>) -> Element {
    let id = fresh_id("d");
    let node = node.map(|n| format!(" node='{n}'")).unwrap_or_default();
    client.send(&format!("<iq type='get' id='{id}' to='localhost'><query xmlns='{ns}'{node}/></iq>")).await;
    let reply = client.recv().await;
    assert_eq!(reply.attr("id"), Some(id.as_str()), "{}", show(&reply));
    reply
}

/// Starts the command: its session id and form.
async fn execute(client: &mut Client) -> (String, Element) {
    let reply = ask(client, &format!("<command xmlns='{NS_COMMANDS}' node='{NODE}' action='execute'/>")).await;
    let command = reply.get_child("command", NS_COMMANDS).unwrap_or_else(|| panic!("{}", show(&reply)));
    assert_eq!((command.attr("node"), command.attr("status")), (Some(NODE), Some("executing")), "{}", show(&reply));
    let actions = command.get_child("actions", NS_COMMANDS).expect("actions");
    assert!(actions.get_child("complete", NS_COMMANDS).is_some(), "{}", show(&reply));
    let form = command.get_child("x", NS_DATA).expect("a form").clone();
    (command.attr("sessionid").expect("sessionid").to_owned(), form)
}

/// Submits `value` for `max_age` in session `session`; the answer.
async fn complete(client: &mut Client, session: &str, value: &str) -> Element {
    let form = format!(
        "<x xmlns='{NS_DATA}' type='submit'><field var='FORM_TYPE'><value>{NODE}</value></field>\
         <field var='max_age'><value>{value}</value></field></x>"
    );
    let command = format!("<command xmlns='{NS_COMMANDS}' node='{NODE}' sessionid='{session}' action='complete'>");
    ask(client, &format!("{command}{form}</command>")).await
}

/// The `max_age` field's current value and offered values.
fn max_age(form: &Element) -> (String, Vec<String>) {
    let field = form.children().find(|f| f.attr("var") == Some("max_age")).expect("max_age");
    assert_eq!(field.attr("type"), Some("list-single"));
    let value = |e: &Element| e.get_child("value", NS_DATA).map(Element::text).unwrap_or_default();
    (value(field), field.children().filter(|o| o.name() == "option").map(value).collect())
}

/// Queries `client`'s archive until its bodies are `want` (deletion runs in the
/// background), for 10 s at most.
async fn until_archive_is(client: &mut Client, want: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let bodies = query(client, "").await.bodies();
        if bodies == want {
            return;
        }
        assert!(Instant::now() < deadline, "the archive still holds {bodies:?}, not {want:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_command_is_listed_to_local_accounts_and_described() {
    let server = server_with(|_| {}).await;
    let mut alice = server.session("alice", PW, "desk").await;
    let info = disco(&mut alice, NS_DISCO_INFO, None).await;
    let query = info.get_child("query", NS_DISCO_INFO).expect("query");
    assert!(query.children().any(|f| f.attr("var") == Some(NS_COMMANDS)), "{}", show(&info));

    let items = disco(&mut alice, NS_DISCO_ITEMS, Some(NS_COMMANDS)).await;
    let listed: Vec<(Option<&str>, Option<&str>)> = items
        .get_child("query", NS_DISCO_ITEMS)
        .expect("query")
        .children()
        .map(|i| (i.attr("jid"), i.attr("node")))
        .collect();
    assert_eq!(listed, [(Some("localhost"), Some(NODE))], "{}", show(&items));

    let node = disco(&mut alice, NS_DISCO_INFO, Some(NODE)).await;
    let query = node.get_child("query", NS_DISCO_INFO).expect("query");
    let identity = query.get_child("identity", NS_DISCO_INFO).expect("identity");
    assert_eq!((identity.attr("category"), identity.attr("type")), (Some("automation"), Some("command-node")));
    let features: Vec<&str> = query.children().filter_map(|f| f.attr("var")).collect();
    assert_eq!(features, [NS_COMMANDS, NS_DATA]);
}

#[tokio::test]
async fn with_the_archive_off_no_command_is_offered() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", PW).await;
    let mut alice = server.session("alice", PW, "desk").await;
    let info = disco(&mut alice, NS_DISCO_INFO, None).await;
    assert!(!info
        .get_child("query", NS_DISCO_INFO)
        .expect("query")
        .children()
        .any(|f| f.attr("var") == Some(NS_COMMANDS)));
    let items = disco(&mut alice, NS_DISCO_ITEMS, Some(NS_COMMANDS)).await;
    assert_eq!(error_of(&items).1, "item-not-found", "{}", show(&items));
    let reply = ask(&mut alice, &format!("<command xmlns='{NS_COMMANDS}' node='{NODE}'/>")).await;
    assert_eq!(error_of(&reply).1, "service-unavailable", "{}", show(&reply));
}

/// Alice keeps a week: her older messages go at once, Bob's stay; she is offered only
/// times under the server's 90 days, a choice outside them is refused, and going back to
/// the server's time keeps what is left.
#[tokio::test]
async fn the_retention_chosen_deletes_older_messages_of_that_account_alone() {
    let server = server_with(|config| config.archive.max_age = Some("90d".into())).await;
    let store = server.server().state.store.clone();
    for owner in ["alice@localhost", "bob@localhost"] {
        for (days, body) in [(40, "old"), (10, "older than a week"), (1, "yesterday")] {
            archived(store.as_ref(), owner, days, body).await;
        }
    }
    let mut alice = server.session("alice", PW, "desk").await;
    let mut bob = server.session("bob", PW, "phone").await;

    let (session, form) = execute(&mut alice).await;
    assert_eq!(form.attr("type"), Some("form"));
    assert_eq!(max_age(&form), ("server".into(), vec!["server".into(), "1d".into(), "7d".into(), "30d".into()]));
    let done = complete(&mut alice, &session, "7d").await;
    let command = done.get_child("command", NS_COMMANDS).unwrap_or_else(|| panic!("{}", show(&done)));
    assert_eq!(command.attr("status"), Some("completed"), "{}", show(&done));
    let note = command.get_child("note", NS_COMMANDS).expect("a note");
    assert!(note.text().contains("1 week"), "{}", show(&done));
    until_archive_is(&mut alice, &["yesterday"]).await;
    assert_eq!(query(&mut bob, "").await.bodies(), ["old", "older than a week", "yesterday"], "Bob's untouched");

    // A time not offered is refused (XEP-0050 bad-payload), and the session stays open
    // for a corrected form.
    let (session, form) = execute(&mut alice).await;
    assert_eq!(max_age(&form).0, "7d", "the form shows the choice");
    let refused = complete(&mut alice, &session, "365d").await;
    assert_eq!(error_of(&refused), ("modify".into(), "bad-request".into()), "{}", show(&refused));
    let error = refused.get_child("error", NS_CLIENT).expect("error");
    assert!(error.get_child("bad-payload", NS_COMMANDS).is_some(), "{}", show(&refused));
    let done = complete(&mut alice, &session, "server").await;
    assert!(done.get_child("command", NS_COMMANDS).is_some_and(|c| c.attr("status") == Some("completed")));
    let alice_jid = BareJid::new("alice@localhost").expect("jid");
    assert_eq!(store.archive_retention(&alice_jid).await.expect("retention"), None);
    assert_eq!(query(&mut alice, "").await.bodies(), ["yesterday"]);

    // The session ended with it.
    let again = complete(&mut alice, &session, "7d").await;
    assert_eq!(error_of(&again), ("cancel".into(), "not-allowed".into()), "{}", show(&again));
    let error = again.get_child("error", NS_CLIENT).expect("error");
    assert!(error.get_child("session-expired", NS_COMMANDS).is_some(), "{}", show(&again));
}

/// A submission must come in the session the command opened, with a form.
#[tokio::test]
async fn a_submission_needs_its_session_and_a_form() {
    let server = server_with(|_| {}).await;
    let mut alice = server.session("alice", PW, "desk").await;
    let refused = complete(&mut alice, "made-up", "7d").await;
    assert_eq!(error_of(&refused).1, "bad-request", "{}", show(&refused));
    let error = refused.get_child("error", NS_CLIENT).expect("error");
    assert!(error.get_child("bad-sessionid", NS_COMMANDS).is_some(), "{}", show(&refused));

    let (session, _) = execute(&mut alice).await;
    let bare = format!("<command xmlns='{NS_COMMANDS}' node='{NODE}' sessionid='{session}' action='complete'/>");
    let refused = ask(&mut alice, &bare).await;
    let error = refused.get_child("error", NS_CLIENT).expect("error");
    assert!(error.get_child("bad-payload", NS_COMMANDS).is_some(), "{}", show(&refused));
}

/// The real binary applies each account's stored retention as it starts; others keep
/// theirs within the server's default year.
#[tokio::test]
async fn the_binary_applies_each_accounts_retention_as_it_starts() {
    let dir = tempfile::tempdir().expect("temporary directory");
    for user in ["carol@localhost", "dave@localhost"] {
        daemon::adduser(dir.path(), user);
    }
    {
        let store = stanzad::storage::sled::SledStore::open(&dir.path().join("data")).expect("open the store");
        for owner in ["carol@localhost", "dave@localhost"] {
            archived(&store, owner, 3, "three days ago").await;
            archived(&store, owner, 0, "now").await;
        }
        let carol = BareJid::new("carol@localhost").expect("jid");
        store.set_archive_retention(&carol, Some(86_400)).await.expect("retention");
        stanzad::storage::UserStore::flush(&store).await.expect("flush");
    }
    let daemon = Daemon::start_after_closing(dir.path(), 0).await;
    let mut carol = daemon.session("carol", "c").await;
    until_archive_is(&mut carol, &["now"]).await;
    let mut dave = daemon.session("dave", "d").await;
    assert_eq!(query(&mut dave, "").await.bodies(), ["three days ago", "now"]);
    // The walk logs once it is through, maybe after the tail it began with was queried.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !daemon.log_text().contains("archived messages past their owner's chosen retention deleted") {
        assert!(Instant::now() < deadline, "no log line of the retention applied:\n{}", daemon.log_text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    daemon.stop();
}
