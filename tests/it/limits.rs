//! Limits a hostile or broken peer meets (docs/configuration.md `[limits]`, XEP-0205):
//! connections per address, the stanza rate, roster size, login failures across
//! connections, a dribbling negotiation, and a stream-managed client that stops reading.
//! (Stanza size, depth and attributes are in framing.rs; the offline quota in offline.rs;
//! a plain client that stops reading in routing.rs.)

use crate::support::{xml, Client, TestServer, NS_CLIENT, NS_PING, NS_STANZAS};
use std::collections::HashSet;
use std::time::{Duration, Instant};

const NS_ROSTER: &str = "jabber:iq:roster";

/// XEP-0205 §3.1: a source past `max_connections_per_ip` hears `policy-violation` after a
/// stream header; a closed connection gives its place back.
#[tokio::test]
async fn connections_beyond_the_per_address_limit_get_policy_violation() {
    let server = TestServer::with(|c| c.limits.max_connections_per_ip = 2).await;
    let mut first = server.connect().await;
    first.open_stream().await;
    let mut second = server.connect().await;
    second.open_stream().await;
    let mut third = server.connect().await;
    third.expect_header().await;
    third.expect_stream_error("policy-violation").await;
    first.send("</stream:stream>").await;
    first.expect_closed().await;
    for _ in 0..100 {
        if server.server().connections() < 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut again = server.connect().await;
    again.open_stream().await;
    second.send("</stream:stream>").await; // still served
    second.expect_closed().await;
}

/// XEP-0205 §3.2: a client sending faster than `stanzas_per_sec` (after its burst) is read
/// more slowly: every stanza is answered, none refused. Lower bounds only.
#[tokio::test]
async fn a_client_over_the_stanza_rate_is_read_more_slowly_not_refused() {
    let server = TestServer::with(|c| {
        c.limits.stanzas_per_sec = 5;
        c.limits.stanza_burst = 5;
    })
    .await;
    server.add_user("alice@localhost", "pw").await;
    server.add_user("bob@localhost", "pw").await;
    let mut alice = server.session("alice", "pw", "r").await;
    let mut bob = server.session("bob", "pw", "r").await;
    let start = Instant::now();
    let pings: String =
        (0..15).map(|i| format!("<iq type='get' id='p{i}' to='localhost'><ping xmlns='{NS_PING}'/></iq>")).collect();
    alice.send(&pings).await;
    for i in 0..15 {
        alice.expect(&format!("<iq type='result' id='p{i}' from='localhost' to='alice@localhost/r'/>")).await;
    }
    // 5 at once, then 10 more at 5/s: the last was read at least ~2 s after the first.
    assert!(start.elapsed() >= Duration::from_millis(1800), "answered after {:?}", start.elapsed());
    // Another session was never held up by it.
    bob.send(&format!("<iq type='get' id='b' to='localhost'><ping xmlns='{NS_PING}'/></iq>")).await;
    bob.expect("<iq type='result' id='b' from='localhost' to='bob@localhost/r'/>").await;
}

fn roster_set(id: &str, jid: &str) -> String {
    format!("<iq type='set' id='{id}'><query xmlns='{NS_ROSTER}'><item jid='{jid}'/></query></iq>")
}

/// Reads until the iq `id` comes (skipping roster pushes); returns it.
async fn iq_answer(client: &mut Client, id: &str) -> stanzad::xml::Element {
    loop {
        let element = client.recv().await;
        if element.is("iq", NS_CLIENT) && element.attr("id") == Some(id) {
            return element;
        }
    }
}

/// `limits.max_roster_items`: a new item past it is refused with `resource-constraint`,
/// by a roster set or a subscription request alike; existing items still change, and a
/// removal makes room.
#[tokio::test]
async fn the_roster_is_capped() {
    let server = TestServer::with(|c| c.limits.max_roster_items = 10).await;
    server.add_user("alice@localhost", "pw").await;
    server.add_user("bob@localhost", "pw").await;
    let mut alice = server.session("alice", "pw", "r").await;
    alice.send(&format!("<iq type='get' id='get'><query xmlns='{NS_ROSTER}'/></iq>")).await;
    iq_answer(&mut alice, "get").await;
    for i in 0..10 {
        alice.send(&roster_set(&format!("s{i}"), &format!("c{i}@example.org"))).await;
        assert_eq!(iq_answer(&mut alice, &format!("s{i}")).await.attr("type"), Some("result"));
    }
    alice.send(&roster_set("over", "c10@example.org")).await;
    xml::assert_matches(
        &iq_answer(&mut alice, "over").await,
        &format!(
            "<iq type='error' id='over' to='alice@localhost/r'><query xmlns='{NS_ROSTER}'><item jid='c10@example.org'/></query>\
             <error type='wait'><resource-constraint xmlns='{NS_STANZAS}'/></error></iq>"
        ),
    );
    // An existing item still changes.
    alice
        .send(&format!(
            "<iq type='set' id='rename'><query xmlns='{NS_ROSTER}'><item jid='c3@example.org' name='Three'/></query></iq>"
        ))
        .await;
    assert_eq!(iq_answer(&mut alice, "rename").await.attr("type"), Some("result"));
    // A subscription request would add bob: refused the same way, and nothing was stored.
    alice.send("<presence type='subscribe' to='bob@localhost' id='sub'/>").await;
    let refused = loop {
        let element = alice.recv().await; // past the rename's roster push
        if element.is("presence", NS_CLIENT) {
            break element;
        }
    };
    xml::assert_matches(
        &refused,
        &format!(
            "<presence type='error' id='sub' from='bob@localhost' to='alice@localhost/r'>\
             <error type='wait'><resource-constraint xmlns='{NS_STANZAS}'/><text xmlns='{NS_STANZAS}'>your roster is full</text></error></presence>"
        ),
    );
    // Removing one makes room.
    alice
        .send(&format!(
            "<iq type='set' id='rm'><query xmlns='{NS_ROSTER}'><item jid='c0@example.org' subscription='remove'/></query></iq>"
        ))
        .await;
    assert_eq!(iq_answer(&mut alice, "rm").await.attr("type"), Some("result"));
    alice.send(&roster_set("fits", "c10@example.org")).await;
    assert_eq!(iq_answer(&mut alice, "fits").await.attr("type"), Some("result"));
}

async fn failed_plain_login(server: &TestServer, user: &str) -> Duration {
    let mut client = server.connect().await;
    client.open_stream().await;
    let start = Instant::now();
    let result = client.authenticate(crate::support::Mech::Plain, user, "wrong").await;
    assert!(result.is_err(), "{user} logged in with a wrong password");
    start.elapsed()
}

/// The login throttle remembers the address across connections and accounts: a guesser
/// cannot reset it by reconnecting or by trying another account. Lower bounds only.
#[tokio::test]
async fn login_failures_are_delayed_per_address_across_connections_and_accounts() {
    let server = TestServer::with(|c| c.auth.failure_delay_ms = 200).await;
    server.add_user("alice@localhost", "pw").await;
    server.add_user("bob@localhost", "pw").await;
    let first = failed_plain_login(&server, "alice").await;
    let second = failed_plain_login(&server, "alice").await;
    let other_account = failed_plain_login(&server, "bob").await;
    assert!(first >= Duration::from_millis(150), "first failure after {first:?}");
    assert!(second >= Duration::from_millis(350), "second failure (new connection) after {second:?}");
    assert!(other_account >= Duration::from_millis(750), "third failure (other account) after {other_account:?}");
}

/// Slowloris: a client dribbling its stream header a byte at a time still meets the
/// negotiation deadline (`timeouts.negotiation_secs` counts from accept, not from the
/// last byte).
#[tokio::test]
async fn a_dribbling_negotiation_meets_the_deadline() {
    let server = TestServer::with(|c| c.timeouts.negotiation_secs = 1).await;
    let mut client = server.connect().await;
    let header = crate::support::stream_header("localhost");
    let start = Instant::now();
    for byte in header.as_bytes().chunks(1).take(40) {
        if client.try_send_bytes(byte).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    client.expect_header().await;
    client.expect_stream_error("connection-timeout").await;
    assert!(start.elapsed() < Duration::from_secs(5), "closed after {:?}", start.elapsed());
}

/// A stream-managed client that stops reading fills its queue and is disconnected
/// (`resource-constraint`); every message it did not acknowledge goes to offline storage,
/// and its next session gets each of them once.
#[tokio::test]
async fn a_stream_managed_client_that_stops_reading_loses_nothing() {
    let server = TestServer::with(|c| {
        c.limits.session_queue = 16;
        c.stream_management.ack_request_every = 1000;
        c.stream_management.max_unacked = 100_000;
        c.stream_management.max_unacked_bytes = 1 << 30;
    })
    .await;
    server.add_user("alice@localhost", "pw").await;
    server.add_user("bob@localhost", "pw").await;
    let mut watcher = server.available("alice", "pw", "watcher", -1).await;
    let connection = Client::connect_small_window(server.addr).await;
    let mut stalled = server.login(connection, "alice", "pw", "stalled").await;
    stalled.send("<enable xmlns='urn:xmpp:sm:3'/>").await;
    stalled.expect("<enabled xmlns='urn:xmpp:sm:3'/>").await;
    stalled.available(0).await;
    watcher.expect("<presence from='alice@localhost/stalled'><priority>0</priority></presence>").await;
    let mut bob = server.session("bob", "pw", "flood").await;
    let (sent, seen_by_watcher) =
        crate::support::flood_until_dropped(&mut bob, "alice@localhost/stalled", &mut watcher).await;
    assert!(seen_by_watcher.is_empty(), "negative priority: no messages");
    bob.expect_silence(100).await; // the sender never heard of it
    drop(stalled); // it read nothing, so it acknowledged nothing
    let mut again = server.session("alice", "pw", "again").await;
    again.send("<presence/>").await;
    let got = crate::support::collect_messages(&mut again).await;
    let unique: HashSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "no message twice");
    assert_eq!(unique, sent.iter().collect::<HashSet<_>>(), "every message");
}

/// An item with a name and `groups` groups of 1 000 bytes each (about 1 KB per piece).
fn big_item(id: &str, jid: &str, groups: usize) -> String {
    let text = "g".repeat(1000);
    let groups: String = (0..groups).map(|g| format!("<group>{g}{text}</group>")).collect();
    format!("<iq type='set' id='{id}'><query xmlns='{NS_ROSTER}'><item jid='{jid}' name='{text}'>{groups}</item></query></iq>")
}

/// The stanza error of an iq or presence reply: (error type, defined condition).
fn condition(reply: &stanzad::xml::Element) -> (String, String) {
    assert_eq!(reply.attr("type"), Some("error"), "{}", xml::show(reply));
    let error = reply.get_child("error", NS_CLIENT).unwrap_or_else(|| panic!("no error: {}", xml::show(reply)));
    let defined = error.children().find(|c| c.ns() == NS_STANZAS && c.name() != "text").expect("a condition");
    (error.attr("type").unwrap_or_default().to_owned(), defined.name().to_owned())
}

/// `limits.max_roster_bytes` (RFC 6121 §2.3.3 lets a server refuse what it does not
/// keep): names and groups count, a roster set that would take the roster past it gets
/// `resource-constraint` and changes nothing; a smaller item still fits, an item may
/// shrink.
#[tokio::test]
async fn the_roster_is_capped_in_bytes() {
    let server = TestServer::with(|c| c.limits.max_roster_bytes = 16 << 10).await;
    server.add_user("alice@localhost", "pw").await;
    let mut alice = server.session("alice", "pw", "r").await;
    for i in 0..3 {
        alice.send(&big_item(&format!("s{i}"), &format!("c{i}@example.org"), 4)).await; // 5 KB each
        assert_eq!(iq_answer(&mut alice, &format!("s{i}")).await.attr("type"), Some("result"));
    }
    alice.send(&big_item("over", "c3@example.org", 4)).await;
    assert_eq!(condition(&iq_answer(&mut alice, "over").await), ("wait".into(), "resource-constraint".into()));
    alice.send(&big_item("grow", "c0@example.org", 6)).await;
    assert_eq!(condition(&iq_answer(&mut alice, "grow").await), ("wait".into(), "resource-constraint".into()));
    alice.send(&roster_set("small", "c3@example.org")).await;
    assert_eq!(iq_answer(&mut alice, "small").await.attr("type"), Some("result"), "14 more bytes fit");
    alice.send(&big_item("shrink", "c0@example.org", 1)).await;
    assert_eq!(iq_answer(&mut alice, "shrink").await.attr("type"), Some("result"));
    alice.send(&format!("<iq type='get' id='get'><query xmlns='{NS_ROSTER}'/></iq>")).await;
    let roster = iq_answer(&mut alice, "get").await;
    let query = roster.get_child("query", NS_ROSTER).expect("a roster");
    let jids: HashSet<&str> = query.children().filter_map(|i| i.attr("jid")).collect();
    assert_eq!(jids, HashSet::from(["c0@example.org", "c1@example.org", "c2@example.org", "c3@example.org"]));
}

/// `limits.max_subscription_request_bytes`: a subscription request is kept, payloads and
/// all, until its recipient answers (RFC 6121 §3.1.3); a larger one is refused with
/// `not-acceptable` before anything changes, and the contact never sees it.
#[tokio::test]
async fn a_subscription_request_larger_than_kept_is_not_acceptable() {
    let server = TestServer::with(|c| c.limits.max_subscription_request_bytes = 1024).await;
    server.add_user("alice@localhost", "pw").await;
    server.add_user("bob@localhost", "pw").await;
    let mut alice = server.session("alice", "pw", "r").await;
    let mut bob = server.available("bob", "pw", "r", 0).await;
    let status = "s".repeat(1100);
    alice
        .send(&format!("<presence type='subscribe' to='bob@localhost' id='big'><status>{status}</status></presence>"))
        .await;
    let refused = alice.recv().await;
    assert_eq!(refused.attr("id"), Some("big"), "{}", xml::show(&refused));
    assert_eq!(condition(&refused), ("modify".into(), "not-acceptable".into()));
    alice.send(&format!("<iq type='get' id='get'><query xmlns='{NS_ROSTER}'/></iq>")).await;
    let roster = iq_answer(&mut alice, "get").await;
    assert_eq!(roster.get_child("query", NS_ROSTER).map(|q| q.children().count()), Some(0), "no item for bob");
    bob.expect_silence(200).await;
    // A request of ordinary size goes through, its payload kept.
    alice.send("<presence type='subscribe' to='bob@localhost'><status>hi</status></presence>").await;
    bob.expect("<presence type='subscribe' from='alice@localhost' to='bob@localhost'><status>hi</status></presence>")
        .await;
}

/// The block command of `n` JIDs whose localparts take 1 000 bytes (1 012 bytes each).
fn block_long(id: &str, first: usize, n: usize) -> String {
    let items: String =
        (first..first + n).map(|i| format!("<item jid='{i}{}@example.org'/>", "b".repeat(999))).collect();
    format!("<iq type='set' id='{id}'><block xmlns='urn:xmpp:blocking'>{items}</block></iq>")
}

/// `limits.max_blocklist_bytes` (XEP-0191 §3.3: the server may refuse a block): a block
/// that would take the list past it gets `resource-constraint`, and nothing of it is
/// blocked.
#[tokio::test]
async fn the_block_list_is_capped_in_bytes() {
    let server = TestServer::with(|c| c.limits.max_blocklist_bytes = 4096).await;
    server.add_user("alice@localhost", "pw").await;
    let mut alice = server.session("alice", "pw", "r").await;
    alice.send(&block_long("b1", 0, 3)).await;
    assert_eq!(iq_answer(&mut alice, "b1").await.attr("type"), Some("result"));
    alice.send(&block_long("b2", 3, 2)).await; // 5 060 bytes in all
    assert_eq!(condition(&iq_answer(&mut alice, "b2").await), ("wait".into(), "resource-constraint".into()));
    alice.send(&block_long("b3", 3, 1)).await; // 4 048 bytes
    assert_eq!(iq_answer(&mut alice, "b3").await.attr("type"), Some("result"));
    alice.send("<iq type='get' id='list'><blocklist xmlns='urn:xmpp:blocking'/></iq>").await;
    let list = iq_answer(&mut alice, "list").await;
    assert_eq!(list.get_child("blocklist", "urn:xmpp:blocking").map(|l| l.children().count()), Some(4));
}

/// `limits.max_archive_prefs_bytes` (XEP-0441): preferences listing more bytes of JIDs
/// than kept are refused with `resource-constraint`, and the previous ones stay.
#[tokio::test]
async fn archive_preferences_are_capped_in_bytes() {
    const NS_MAM: &str = "urn:xmpp:mam:2";
    let server = TestServer::with(|c| {
        c.archive.enabled = true;
        c.limits.max_archive_prefs_bytes = 4096;
    })
    .await;
    server.add_user("alice@localhost", "pw").await;
    let mut alice = server.session("alice", "pw", "r").await;
    let prefs = |id: &str, n: usize| {
        let jids: String = (0..n).map(|i| format!("<jid>{i}{}@example.org</jid>", "j".repeat(999))).collect();
        format!("<iq type='set' id='{id}'><prefs xmlns='{NS_MAM}' default='roster'><never>{jids}</never></prefs></iq>")
    };
    alice.send(&prefs("fits", 4)).await; // 4 048 bytes
    assert_eq!(iq_answer(&mut alice, "fits").await.attr("type"), Some("result"));
    alice.send(&prefs("over", 5)).await; // 5 060 bytes
    assert_eq!(condition(&iq_answer(&mut alice, "over").await), ("wait".into(), "resource-constraint".into()));
    alice.send(&format!("<iq type='get' id='get'><prefs xmlns='{NS_MAM}'/></iq>")).await;
    let current = iq_answer(&mut alice, "get").await;
    let never = current.get_child("prefs", NS_MAM).and_then(|p| p.get_child("never", NS_MAM)).expect("never");
    assert_eq!(never.children().count(), 4, "the previous preferences stay");
}
