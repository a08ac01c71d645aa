//! Offline messages (XEP-0160, RFC 6121 §8.5.2.2.1): stored for an account with no
//! available resource of non-negative priority, stamped (XEP-0203), delivered in order at
//! the next presence with priority >= 0 in batches each followed by a ping whose answer
//! acknowledges (and only then deletes) them; durable before the sender's next stanza is
//! handled; counted by the dialect's `<ib><offline count/></ib>`.
//!
//! Ordering facts the tests rely on (src/transport/tcp.rs, src/c2s/session.rs):
//! * a session handles its client's stanzas one by one, and a stored message is flushed
//!   to disk before the next one is handled; so when a sender's ping is answered, every
//!   message it sent before is stored, durable, or refused (the refusal came first);
//! * the backlog is written while the presence that triggers it is handled, so it comes
//!   before the answer to a ping sent right after that presence; the presence echo goes
//!   through the session's mailbox and may come before or after the backlog.

use crate::support::daemon::{adduser, Daemon};
use crate::support::sm::{Event, SmClient, NS_SM};
use crate::support::{xml, Client, TestServer, NS_CLIENT, NS_PING, NS_STANZAS, TIMEOUT};
use stanzad::config::Config;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};
use xmpp_parsers::minidom::Element;

const PW: &str = "pw";
const ALICE: &str = "alice@localhost/laptop";
const BOB: &str = "bob@localhost";
const NS_DELAY: &str = "urn:xmpp:delay";
const NS_DIALECT: &str = "urn:stanzad:dialect:0";

async fn server_with(configure: impl FnOnce(&mut Config)) -> TestServer {
    let server = TestServer::with(configure).await;
    server.add_user("alice@localhost", PW).await;
    server.add_user(BOB, PW).await;
    server
}

async fn server() -> TestServer {
    server_with(|_| {}).await
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs()
}

fn ids(range: std::ops::RangeInclusive<usize>) -> Vec<String> {
    range.map(|i| format!("m{i}")).collect()
}

/// A message to Bob's bare JID whose body is its id; `kind` None means no `type`.
fn message(id: &str, kind: Option<&str>) -> String {
    let kind = kind.map(|k| format!(" type='{k}'")).unwrap_or_default();
    format!("<message to='{BOB}'{kind} id='{id}'><body>{id}</body></message>")
}

fn chat(id: &str) -> String {
    message(id, Some("chat"))
}

/// The stored form of `message(id, kind)` sent by Alice: `from` stamped, delay appended.
fn stored(id: &str, kind: Option<&str>) -> String {
    stored_to(BOB, id, kind)
}

fn stored_to(to: &str, id: &str, kind: Option<&str>) -> String {
    let kind = kind.map(|k| format!(" type='{k}'")).unwrap_or_else(|| " type='{absent}'".to_owned());
    format!(
        "<message to='{to}' from='{ALICE}'{kind} id='{id}'><body>{id}</body>\
         <delay xmlns='{NS_DELAY}' from='localhost' stamp='{{any}}'/></message>"
    )
}

/// The server's answer to our ping `id`: a dialect session's carries the server time `t`
/// (Unix seconds, docs/dialect.md), a standard session's nothing else.
fn assert_ping_answer(element: &Element, id: &str, to: &str) {
    let t = match element.attr("t") {
        Some(t) => {
            assert!(!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()), "t={t:?} in {}", xml::show(element));
            format!(" t='{t}'")
        }
        None => String::new(),
    };
    xml::assert_matches(element, &format!("<iq type='result' id='{id}' from='localhost' to='{to}'{t}/>"));
}

/// Pings the server; the answer must be the next thing `client` reads.
async fn sync(client: &mut Client) {
    let jid = client.jid().to_owned();
    client.send(&format!("<iq type='get' id='sync' to='localhost'><ping xmlns='{NS_PING}'/></iq>")).await;
    let answer = client.recv().await;
    assert_ping_answer(&answer, "sync", &jid);
}

/// Alice sends chat messages with these ids, ten per write, and each write is followed by
/// a ping whose answer must come next: every message was accepted without a word (and,
/// by the session's ordering, is durable).
async fn send_chats(alice: &mut Client, ids: &[String]) {
    for chunk in ids.chunks(10) {
        let bytes: String = chunk.iter().map(|id| chat(id)).collect();
        alice.send(&bytes).await;
        sync(alice).await;
    }
}

/// Reads elements until the answer to the ping with id `ping_id`; returns what came before,
/// except one presence from the client's own JID, which must match `echo` (and may also
/// come after the answer).
async fn collect_until_answer(client: &mut Client, ping_id: &str, echo: Option<&str>) -> Vec<Element> {
    let jid = client.jid().to_owned();
    let mut echo_seen = echo.is_none();
    let mut answered = false;
    let mut got = Vec::new();
    while !(echo_seen && answered) {
        let element = client.recv().await;
        if !echo_seen && element.is("presence", NS_CLIENT) && element.attr("from") == Some(jid.as_str()) {
            xml::assert_matches(&element, echo.expect("an echo is expected"));
            echo_seen = true;
        } else if element.is("iq", NS_CLIENT) && element.attr("id") == Some(ping_id) {
            assert_ping_answer(&element, ping_id, &jid);
            answered = true;
        } else {
            assert!(!answered, "after the answer to {ping_id}: {}", xml::show(&element));
            got.push(element);
        }
    }
    got
}

/// Sends available presence with `priority` and a ping; returns everything that arrived
/// before the ping's answer except the presence echo (which is checked).
async fn go_online(client: &mut Client, priority: i8) -> Vec<Element> {
    let jid = client.jid().to_owned();
    client
        .send(&format!(
            "<presence><priority>{priority}</priority></presence>\
             <iq type='get' id='online' to='localhost'><ping xmlns='{NS_PING}'/></iq>"
        ))
        .await;
    // RFC 6121 §4.2.2: the presence comes back from the full JID, without `to`.
    let echo = format!("<presence from='{jid}'><priority>{priority}</priority></presence>");
    collect_until_answer(client, "online", Some(&echo)).await
}

/// Answers the acknowledgement ping `ack_id` (with a result, or an error when `as_error`)
/// and pings the server; returns what came before that answer (the next batch, if any).
async fn acknowledge(client: &mut Client, ack_id: &str, as_error: bool) -> Vec<Element> {
    let answer = if as_error {
        format!(
            "<iq type='error' id='{ack_id}' to='localhost'><ping xmlns='{NS_PING}'/>\
             <error type='cancel'><service-unavailable xmlns='{NS_STANZAS}'/></error></iq>"
        )
    } else {
        format!("<iq type='result' id='{ack_id}' to='localhost'/>")
    };
    client.send(&format!("{answer}<iq type='get' id='acked' to='localhost'><ping xmlns='{NS_PING}'/></iq>")).await;
    collect_until_answer(client, "acked", None).await
}

/// `got` must be exactly the stored messages `expected` (see [`stored`]), in order, each
/// stamped within `stamped` (Unix seconds), followed by the server's ping to `to` asking
/// for an acknowledgement; returns that ping's id.
fn assert_backlog(got: &[Element], expected: &[String], stamped: (u64, u64), to: &str) -> String {
    let shown: Vec<String> = got.iter().map(xml::show).collect();
    assert_eq!(got.len(), expected.len() + 1, "want {} messages and the ack ping, got {shown:#?}", expected.len());
    for (want, element) in expected.iter().zip(got) {
        xml::assert_matches(element, want);
        let stamp = element.get_child("delay", NS_DELAY).and_then(|d| d.attr("stamp")).expect("delay stamp");
        let at = parse_stamp(stamp).unwrap_or_else(|| panic!("stamp {stamp:?} is not an XEP-0082 UTC DateTime"));
        assert!(
            stamped.0 <= at && at <= stamped.1,
            "stamp {stamp} ({at}) is not within the time it was sent ({}..={})",
            stamped.0,
            stamped.1
        );
    }
    let ping = got.last().expect("the ack ping");
    xml::assert_matches(
        ping,
        &format!("<iq type='get' id='{{any}}' from='localhost' to='{to}'><ping xmlns='{NS_PING}'/></iq>"),
    );
    ping.attr("id").expect("ping id").to_owned()
}

/// The stored forms of chat messages with these ids.
fn chats(ids: &[String]) -> Vec<String> {
    ids.iter().map(|id| stored(id, Some("chat"))).collect()
}

/// Enables the dialect (with a ping in the same write): `<enabled/>`, then the offline
/// count `count`, then the ping's answer, nothing in between.
async fn enable_dialect(client: &mut Client, count: u64) {
    let jid = client.jid().to_owned();
    client
        .send(&format!(
            "<enable xmlns='{NS_DIALECT}'/><iq type='get' id='after-enable' to='localhost'><ping xmlns='{NS_PING}'/></iq>"
        ))
        .await;
    client.expect(&format!("<enabled xmlns='{NS_DIALECT}'/>")).await;
    client.expect(&format!("<ib xmlns='{NS_DIALECT}' from='localhost'><offline count='{count}'/></ib>")).await;
    let answer = client.recv().await;
    assert!(answer.attr("t").is_some(), "a dialect session's ping answer carries t: {}", xml::show(&answer));
    assert_ping_answer(&answer, "after-enable", &jid);
}

// ---- XEP-0082 ----

/// Unix seconds of an XEP-0082 DateTime in UTC: `CCYY-MM-DDThh:mm:ss[.sss]Z`.
fn parse_stamp(stamp: &str) -> Option<u64> {
    let rest = stamp.strip_suffix('Z')?;
    let (main, fraction) = match rest.split_once('.') {
        Some((main, fraction)) => (main, Some(fraction)),
        None => (rest, None),
    };
    if fraction.is_some_and(|f| f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let b = main.as_bytes();
    if b.len() != 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<i64> {
        let digits = main.get(from..to)?;
        digits.bytes().all(|b| b.is_ascii_digit()).then(|| digits.parse().ok())?
    };
    let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&month) || day < 1 || day > month_days[(month - 1) as usize] {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hour * 3600 + minute * 60 + second).ok()
}

#[test]
fn offline_stamp_parser_accepts_xep0082_utc_only() {
    assert_eq!(parse_stamp("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(parse_stamp("2000-02-29T00:00:00Z"), Some(951_782_400));
    assert_eq!(parse_stamp("2026-11-22T19:05:27.123Z"), Some(1_795_374_327));
    for bad in ["2026-11-22T19:05:27", "2026-11-22T19:05:27+00:00", "2026-02-30T00:00:00Z", "20261122T190527Z"] {
        assert_eq!(parse_stamp(bad), None, "{bad}");
    }
}

// ---- store and drain ----

/// XEP-0160 / RFC 6121 §8.5.2.2.1: messages (chat, normal, no type) to an account without
/// available resources are stored, stamped (XEP-0203) and delivered in order at the next
/// available presence, followed by the acknowledgement ping; the sender hears nothing.
#[tokio::test]
async fn five_messages_arrive_in_order_with_delay_at_login() {
    let server = server().await;
    let mut alice = server.available("alice", PW, "laptop", 0).await;
    let sent = [("m1", Some("chat")), ("m2", Some("chat")), ("m3", Some("chat")), ("m4", Some("normal")), ("m5", None)];
    let expected: Vec<String> = sent.iter().map(|(id, kind)| stored(id, *kind)).collect();
    let start = unix_now();
    let bytes: String = sent.iter().map(|(id, kind)| message(id, *kind)).collect();
    alice.send(&bytes).await;
    sync(&mut alice).await; // no error came before the answer
    let mut bob = server.session("bob", PW, "phone").await;
    let got = go_online(&mut bob, 0).await;
    let ack = assert_backlog(&got, &expected, (start, unix_now()), bob.jid());
    assert!(acknowledge(&mut bob, &ack, false).await.is_empty(), "nothing after the only batch");
    // Alice was told nothing at all.
    sync(&mut alice).await;
}

/// A backlog the client never acknowledged (its connection died) is sent again at the
/// next login; once acknowledged, it is gone.
#[tokio::test]
async fn a_backlog_lost_with_the_connection_comes_again() {
    let server = server().await;
    let mut alice = server.available("alice", PW, "laptop", 0).await;
    let ids = ids(1..=5);
    let start = unix_now();
    send_chats(&mut alice, &ids).await;
    let stamped = (start, unix_now());

    let mut bob = server.session("bob", PW, "phone").await;
    let got = go_online(&mut bob, 0).await;
    assert_backlog(&got, &chats(&ids), stamped, bob.jid());
    drop(bob); // the TCP connection closes; the ping stays unanswered

    let mut bob = server.session("bob", PW, "phone").await;
    let got = go_online(&mut bob, 0).await;
    let ack = assert_backlog(&got, &chats(&ids), stamped, bob.jid());
    assert!(acknowledge(&mut bob, &ack, false).await.is_empty(), "nothing after the only batch");
    bob.log_off().await;

    let mut bob = server.session("bob", PW, "phone").await;
    enable_dialect(&mut bob, 0).await;
    assert!(go_online(&mut bob, 0).await.is_empty(), "the acknowledged backlog came again");
}

/// More than one batch: 100, the ping, and only after its answer the remaining 50.
/// An error answer acknowledges as well as a result.
#[tokio::test]
async fn a_long_backlog_comes_in_acknowledged_batches() {
    let server = server().await;
    let mut alice = server.available("alice", PW, "laptop", 0).await;
    let ids = ids(1..=150);
    let start = unix_now();
    send_chats(&mut alice, &ids).await;
    let stamped = (start, unix_now());

    let mut bob = server.session("bob", PW, "phone").await;
    let got = go_online(&mut bob, 0).await;
    let first = assert_backlog(&got, &chats(&ids[..100]), stamped, bob.jid());
    let got = acknowledge(&mut bob, &first, false).await;
    let second = assert_backlog(&got, &chats(&ids[100..]), stamped, bob.jid());
    assert_ne!(first, second, "each batch has its own ping id");
    assert!(acknowledge(&mut bob, &second, true).await.is_empty(), "nothing after the last batch");
    bob.log_off().await;

    let mut bob = server.session("bob", PW, "phone").await;
    enable_dialect(&mut bob, 0).await;
    assert!(go_online(&mut bob, 0).await.is_empty());
}

/// Batches are bounded in bytes as well as in number: 40 messages of 250 kB (10 MB, more
/// than a stream-managed session may hold unacknowledged, 8 MiB) reach a stream-managed
/// client that acknowledges as XEP-0198 asks, each once, and its session never ends for
/// what the server chose to send it.
#[tokio::test]
async fn a_backlog_of_large_messages_reaches_a_stream_managed_client() {
    let server = server().await;
    let mut alice = server.session("alice", PW, "laptop").await;
    let pad = "p".repeat(250_000);
    let ids = ids(1..=40);
    for id in &ids {
        alice.send(&format!("<message to='{BOB}' type='chat' id='{id}' pad='{pad}'><body>{id}</body></message>")).await;
        sync(&mut alice).await;
    }
    let mut bob = SmClient::login(server.addr, "bob", "phone", None, false).await.client;
    assert!(bob.send_stanzas("<presence/>", 1).await);
    let mut got = Vec::new();
    while got.len() < ids.len() {
        let element = match bob.next(TIMEOUT).await {
            Event::Element(element) => element,
            Event::Idle | Event::Closed => panic!("the backlog stopped after {} messages", got.len()),
        };
        if element.is("message", NS_CLIENT) {
            got.push(element.attr("id").unwrap_or_default().to_owned());
        } else if element.is("iq", NS_CLIENT) && element.attr("type") == Some("get") {
            let answer = format!("<iq type='result' id='{}' to='localhost'/>", element.attr("id").unwrap_or_default());
            assert!(bob.send_stanzas(&answer, 1).await);
        } else if element.is("r", NS_SM) {
            assert!(bob.ack().await);
        } else {
            assert!(element.is("presence", NS_CLIENT), "{}", xml::show(&element));
        }
    }
    assert_eq!(got, ids, "every message once, in order");
    // The session goes on (a batch too large for it ended it once the messages were
    // written, before the client could acknowledge them), and the backlog is gone.
    let ping = format!("<iq type='get' id='alive' to='localhost'><ping xmlns='{NS_PING}'/></iq>");
    assert!(bob.send_stanzas(&ping, 1).await);
    loop {
        match bob.next(TIMEOUT).await {
            Event::Element(e) if e.is("iq", NS_CLIENT) && e.attr("id") == Some("alive") => break,
            Event::Element(e) if e.is("iq", NS_CLIENT) && e.attr("type") == Some("get") => {
                let answer = format!("<iq type='result' id='{}' to='localhost'/>", e.attr("id").unwrap_or_default());
                assert!(bob.send_stanzas(&answer, 1).await);
            }
            Event::Element(e) if e.is("r", NS_SM) => assert!(bob.ack().await),
            Event::Element(e) => assert!(!e.is("message", NS_CLIENT), "twice: {}", xml::show(&e)),
            Event::Idle | Event::Closed => panic!("the session ended after its backlog"),
        }
    }
    bob.close(TIMEOUT).await;
    let mut bob = server.session("bob", PW, "phone").await;
    enable_dialect(&mut bob, 0).await;
}

/// XEP-0191 §3.5: messages stored from a sender the recipient blocked since are dropped
/// when the backlog is read, not delivered, and no longer counted.
#[tokio::test]
async fn stored_messages_from_a_sender_blocked_since_are_dropped() {
    let server = server().await;
    server.add_user("carol@localhost", PW).await;
    let mut alice = server.session("alice", PW, "laptop").await;
    send_chats(&mut alice, &ids(1..=3)).await;
    let mut carol = server.session("carol", PW, "pad").await;
    carol.send(&format!("{}<iq type='get' id='sync' to='localhost'><ping xmlns='{NS_PING}'/></iq>", chat("c1"))).await;
    carol.recv().await;
    let mut bob = server.session("bob", PW, "phone").await;
    bob.send("<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='alice@localhost'/></block></iq>")
        .await;
    bob.expect("<iq type='result' id='b1' to='bob@localhost/phone'/>").await;
    let got = go_online(&mut bob, 0).await;
    let messages: Vec<&Element> = got.iter().filter(|e| e.is("message", NS_CLIENT)).collect();
    assert_eq!(messages.len(), 1, "{}", got.iter().map(xml::show).collect::<Vec<_>>().join("\n"));
    assert_eq!(messages[0].attr("id"), Some("c1"));
    let ping = got.last().and_then(|e| e.attr("id")).expect("the batch's ping").to_owned();
    assert!(acknowledge(&mut bob, &ping, false).await.is_empty());
    bob.log_off().await;
    let mut bob = server.session("bob", PW, "phone").await;
    enable_dialect(&mut bob, 0).await;
}

/// RFC 6121 §8.5.3.2.1 and §8.5.2: a chat to a full JID that is not connected is handled as
/// if to the bare JID (stored, `to` kept); a resource that is connected but never sent
/// presence is not available, so the account counts as offline.
#[tokio::test]
async fn messages_for_an_unavailable_account_are_stored_whatever_the_address() {
    let server = server().await;
    let mut alice = server.available("alice", PW, "laptop", 0).await;
    let mut bob = server.session("bob", PW, "phone").await; // connected, not available
    let start = unix_now();
    alice.send(&format!("<message to='{BOB}/gone' type='chat' id='m1'><body>m1</body></message>{}", chat("m2"))).await;
    sync(&mut alice).await;
    let stamped = (start, unix_now());
    // The barrier: a message to Bob's connected full JID (§8.5.3.1) must be the next thing
    // Bob reads (a session's mailbox is FIFO): m1 and m2 were not delivered to it.
    alice.send(&format!("<message to='{BOB}/phone' type='chat' id='barrier'><body>b</body></message>")).await;
    bob.expect(&format!("<message to='{BOB}/phone' from='{ALICE}' type='chat' id='barrier'><body>b</body></message>"))
        .await;
    let got = go_online(&mut bob, 0).await;
    let expected = [stored_to(&format!("{BOB}/gone"), "m1", Some("chat")), stored("m2", Some("chat"))];
    let ack = assert_backlog(&got, &expected, stamped, bob.jid());
    assert!(acknowledge(&mut bob, &ack, false).await.is_empty());
}

/// The batch goes once per session until it is acknowledged: a presence update before the
/// answer does not send it again.
#[tokio::test]
async fn a_presence_update_does_not_resend_the_unacknowledged_batch() {
    let server = server().await;
    let mut alice = server.available("alice", PW, "laptop", 0).await;
    let start = unix_now();
    send_chats(&mut alice, &ids(1..=2)).await;
    let stamped = (start, unix_now());
    let mut bob = server.session("bob", PW, "phone").await;
    let got = go_online(&mut bob, 0).await;
    let ack = assert_backlog(&got, &chats(&ids(1..=2)), stamped, bob.jid());
    let again = go_online(&mut bob, 5).await;
    assert!(again.is_empty(), "sent again: {:#?}", again.iter().map(xml::show).collect::<Vec<_>>());
    assert!(acknowledge(&mut bob, &ack, false).await.is_empty());
}

// ---- quota ----

fn quota_error(id: &str) -> String {
    format!(
        "<message type='error' id='{id}' from='{BOB}' to='{ALICE}'><body>{id}</body>\
         <error type='wait'><resource-constraint xmlns='{NS_STANZAS}'/>\
         <text xmlns='{NS_STANZAS}'>{{any}}</text></error></message>"
    )
}

/// `limits.offline_quota`: a full queue refuses with `resource-constraint` (type wait);
/// once drained, it takes messages again.
#[tokio::test]
async fn a_full_queue_refuses_with_resource_constraint_until_drained() {
    let server = server_with(|c| c.limits.offline_quota = 3).await;
    let mut alice = server.available("alice", PW, "laptop", 0).await;
    let start = unix_now();
    send_chats(&mut alice, &ids(1..=3)).await;
    alice.send(&chat("m4")).await;
    alice.expect(&quota_error("m4")).await;
    sync(&mut alice).await;
    let stamped = (start, unix_now());

    let mut bob = server.session("bob", PW, "phone").await;
    let got = go_online(&mut bob, 0).await;
    let ack = assert_backlog(&got, &chats(&ids(1..=3)), stamped, bob.jid());
    assert!(acknowledge(&mut bob, &ack, false).await.is_empty());
    bob.log_off().await;

    // Room for three again, and not for a fourth.
    let start = unix_now();
    send_chats(&mut alice, &ids(5..=7)).await;
    alice.send(&chat("m8")).await;
    alice.expect(&quota_error("m8")).await;
    sync(&mut alice).await;
    let mut bob = server.session("bob", PW, "phone").await;
    enable_dialect(&mut bob, 3).await;
    let got = go_online(&mut bob, 0).await;
    assert_backlog(&got, &chats(&ids(5..=7)), (start, unix_now()), bob.jid());
}

/// A message taken live and bounced later (its recipient's connection dropped before it
/// answered for it, and its offline storage was full) is not remembered as taken: sent
/// again, it is handled again (refused again here, the storage being still full), never
/// swallowed as a retransmission of an accepted message.
#[tokio::test]
async fn a_message_bounced_after_it_was_taken_can_be_sent_again() {
    let server = server_with(|c| c.limits.offline_quota = 2).await;
    let mut alice = server.available("alice", PW, "laptop", 0).await;
    send_chats(&mut alice, &ids(1..=2)).await;
    let mut bob = server.session("bob", PW, "phone").await;
    let backlog = go_online(&mut bob, 0).await; // never acknowledged: the storage stays full
    assert_eq!(backlog.len(), 3, "two messages and the ping");
    let live = "<message to='bob@localhost/phone' type='chat' id='again'><body>again</body></message>";
    alice.send(live).await;
    sync(&mut alice).await;
    let got = bob.recv().await;
    assert_eq!(got.attr("id"), Some("again"), "{}", xml::show(&got));
    drop(bob); // gone without answering for it
    let bounced = format!(
        "<message type='error' id='again' from='bob@localhost/phone' to='{ALICE}'><body>again</body>\
         <error type='wait'><resource-constraint xmlns='{NS_STANZAS}'/><text xmlns='{NS_STANZAS}'>{{any}}</text>\
         </error></message>"
    );
    alice.expect(&bounced).await;
    alice.send(live).await;
    alice.expect(&bounced).await;
}

/// In-flight messages (to a stream-managed session, until it acknowledges them) count
/// against the recipient's offline quota with what is stored: they move there if the
/// session ends first, and the quota must hold then too.
#[tokio::test]
async fn messages_in_flight_count_against_the_offline_quota() {
    let server = server_with(|c| c.limits.offline_quota = 3).await;
    let mut alice = server.available("alice", PW, "laptop", 0).await;
    send_chats(&mut alice, &ids(1..=2)).await;
    let mut bob = SmClient::login(server.addr, "bob", "phone", None, false).await.client;
    let to_bob =
        |id: &str| format!("<message to='bob@localhost/phone' type='chat' id='{id}'><body>{id}</body></message>");
    alice.send(&to_bob("m3")).await;
    sync(&mut alice).await; // in flight: three waiting in all
    alice.send(&to_bob("m4")).await;
    let refused = alice.recv().await;
    xml::assert_matches(
        &refused,
        &format!(
            "<message type='error' id='m4' from='bob@localhost/phone' to='{ALICE}'><body>m4</body>\
             <error type='wait'><resource-constraint xmlns='{NS_STANZAS}'/><text xmlns='{NS_STANZAS}'>{{any}}</text>\
             </error></message>"
        ),
    );
    // Acknowledged, m3 frees its place.
    loop {
        match bob.next(TIMEOUT).await {
            Event::Element(e) if e.is("message", NS_CLIENT) && e.attr("id") == Some("m3") => break,
            Event::Element(_) => {}
            Event::Idle | Event::Closed => panic!("m3 never came"),
        }
    }
    assert!(bob.ack().await && bob.request_ack().await);
    // Its answer means the acknowledgement before it was handled.
    while !matches!(bob.next(TIMEOUT).await, Event::Element(e) if e.is("a", NS_SM)) {}
    alice.send(&to_bob("m5")).await;
    sync(&mut alice).await;
}

/// RFC 6120 §8.3.2: `wait` means "retry after waiting". A message refused because the
/// queue was full, sent again with the same id once there is room, must be stored (it was
/// never taken the first time, so it is no retransmission of an accepted message). Guards
/// against de-duplication remembering refused messages (which swallowed the retry: no
/// error, not stored).
#[tokio::test]
async fn a_message_refused_for_quota_is_taken_when_retried_after_the_drain() {
    let server = server_with(|c| c.limits.offline_quota = 1).await;
    let mut alice = server.available("alice", PW, "laptop", 0).await;
    send_chats(&mut alice, &ids(1..=1)).await;
    alice.send(&chat("m2")).await;
    alice.expect(&quota_error("m2")).await;
    sync(&mut alice).await;

    let mut bob = server.session("bob", PW, "phone").await;
    let got = go_online(&mut bob, 0).await;
    let ack = assert_backlog(&got, &chats(&ids(1..=1)), (0, unix_now()), bob.jid());
    assert!(acknowledge(&mut bob, &ack, false).await.is_empty());
    bob.log_off().await;

    // The retry: same id, same recipient, same body.
    let start = unix_now();
    send_chats(&mut alice, &ids(2..=2)).await;
    let mut bob = server.session("bob", PW, "phone").await;
    enable_dialect(&mut bob, 1).await;
    let got = go_online(&mut bob, 0).await;
    assert_backlog(&got, &chats(&ids(2..=2)), (start, unix_now()), bob.jid());
}

/// A deleted account's queue goes with it: an account created again with the same name
/// starts empty.
#[tokio::test]
async fn a_deleted_account_leaves_no_offline_messages_behind() {
    let server = server().await;
    let mut alice = server.available("alice", PW, "laptop", 0).await;
    send_chats(&mut alice, &ids(1..=3)).await;
    let deluser = stanzad::admin::Request::Deluser { jid: BOB.into() };
    assert_eq!(server.admin(deluser).await, stanzad::admin::Response::Done);
    server.add_user(BOB, PW).await;
    let mut bob = server.session("bob", PW, "phone").await;
    enable_dialect(&mut bob, 0).await;
    let got = go_online(&mut bob, 0).await;
    assert!(got.is_empty(), "{:#?}", got.iter().map(xml::show).collect::<Vec<_>>());
}

// ---- priority ----

/// RFC 6121 §8.5.2.1.1: an account whose only available resource has a negative priority
/// is treated as offline: messages are stored, and that resource gets no backlog until it
/// goes to a non-negative priority.
#[tokio::test]
async fn a_negative_priority_resource_gets_the_backlog_only_at_priority_zero() {
    let server = server().await;
    let mut alice = server.available("alice", PW, "laptop", 0).await;
    let start = unix_now();
    send_chats(&mut alice, &ids(1..=2)).await;

    let mut bob = server.session("bob", PW, "phone").await;
    let got = go_online(&mut bob, -1).await;
    assert!(got.is_empty(), "backlog at priority -1: {:#?}", got.iter().map(xml::show).collect::<Vec<_>>());
    // Stored as well while Bob is at -1 (not delivered to that resource).
    send_chats(&mut alice, &ids(3..=3)).await;
    let stamped = (start, unix_now());
    // The barrier: a message to Bob's full JID (delivered, §8.5.3.1) after m3 must be the
    // next thing Bob reads (a session's mailbox is FIFO).
    let barrier = format!("<message to='{BOB}/phone' type='chat' id='barrier'><body>b</body></message>");
    alice.send(&barrier).await;
    bob.expect(&format!("<message to='{BOB}/phone' from='{ALICE}' type='chat' id='barrier'><body>b</body></message>"))
        .await;

    let got = go_online(&mut bob, 0).await;
    let ack = assert_backlog(&got, &chats(&ids(1..=3)), stamped, bob.jid());
    assert!(acknowledge(&mut bob, &ack, false).await.is_empty());
}

// ---- the dialect's count ----

/// The dialect session learns the count right after `<enabled/>`, before anything else.
async fn dialect_count_is(n: usize) {
    let server = server().await;
    let mut alice = server.available("alice", PW, "laptop", 0).await;
    let start = unix_now();
    send_chats(&mut alice, &ids(1..=n)).await;
    let stamped = (start, unix_now());
    let mut bob = server.session("bob", PW, "phone").await;
    enable_dialect(&mut bob, n as u64).await;
    let got = go_online(&mut bob, 0).await;
    if n == 0 {
        assert!(got.is_empty(), "{:#?}", got.iter().map(xml::show).collect::<Vec<_>>());
    } else {
        assert_backlog(&got, &chats(&ids(1..=n)), stamped, bob.jid());
    }
}

#[tokio::test]
async fn dialect_offline_count_zero() {
    dialect_count_is(0).await;
}

#[tokio::test]
async fn dialect_offline_count_one() {
    dialect_count_is(1).await;
}

#[tokio::test]
async fn dialect_offline_count_seven() {
    dialect_count_is(7).await;
}

// ---- restart ----

/// Stored messages survive a restart, with their original stamps.
#[tokio::test]
async fn stored_messages_survive_a_restart() {
    let server = server().await;
    let mut alice = server.available("alice", PW, "laptop", 0).await;
    let start = unix_now();
    send_chats(&mut alice, &ids(1..=5)).await;
    let stamped = (start, unix_now());
    drop(alice);
    let server = server.restart().await;
    let mut bob = server.session("bob", PW, "phone").await;
    enable_dialect(&mut bob, 5).await;
    let got = go_online(&mut bob, 0).await;
    let ack = assert_backlog(&got, &chats(&ids(1..=5)), stamped, bob.jid());
    assert!(acknowledge(&mut bob, &ack, false).await.is_empty());
}

// ---- what is not stored ----

/// RFC 6121 §8.5.2.2.1: headline is dropped silently, groupchat gets service-unavailable,
/// error is dropped silently; none of them is stored.
#[tokio::test]
async fn headline_groupchat_and_error_are_not_stored() {
    let server = server().await;
    let mut alice = server.available("alice", PW, "laptop", 0).await;
    alice
        .send(&format!(
            "{}{}<message to='{BOB}' type='error' id='e1'><body>e1</body>\
             <error type='cancel'><item-not-found xmlns='{NS_STANZAS}'/></error></message>",
            message("h1", Some("headline")),
            message("g1", Some("groupchat")),
        ))
        .await;
    alice
        .expect(&format!(
            "<message type='error' id='g1' from='{BOB}' to='{ALICE}'><body>g1</body>\
             <error type='cancel'><service-unavailable xmlns='{NS_STANZAS}'/></error></message>"
        ))
        .await;
    sync(&mut alice).await;
    let mut bob = server.session("bob", PW, "phone").await;
    enable_dialect(&mut bob, 0).await;
    let got = go_online(&mut bob, 0).await;
    assert!(got.is_empty(), "{:#?}", got.iter().map(xml::show).collect::<Vec<_>>());
}

// ---- SIGKILL: the real binary ----

/// The stored forms these tests expect carry no XEP-0359 stanza-id.
const NO_ARCHIVE: &str = "[archive]\nenabled = false\n";

async fn daemon_with_accounts(dir: &Path) -> Daemon {
    adduser(dir, "alice@localhost");
    adduser(dir, BOB);
    Daemon::start_with(dir, 1, NO_ARCHIVE).await
}

/// The durability promise: once the sender's ping after its messages is answered, they
/// are on disk. The process is killed (SIGKILL, no shutdown) right after that answer; the
/// next process on the same data delivers all of them, in order.
#[tokio::test]
async fn offline_messages_acknowledged_before_sigkill_survive_it() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let daemon = daemon_with_accounts(dir.path()).await;
    let mut alice = daemon.session("alice", "laptop").await;
    let ids = ids(1..=5);
    let start = unix_now();
    let bytes: String = ids.iter().map(|id| chat(id)).collect();
    alice.send(&bytes).await;
    sync(&mut alice).await;
    let stamped = (start, unix_now());
    daemon.kill();
    drop(alice);

    let daemon = Daemon::start_with(dir.path(), 2, NO_ARCHIVE).await;
    let mut bob = daemon.session("bob", "phone").await;
    let got = go_online(&mut bob, 0).await;
    let ack = assert_backlog(&got, &chats(&ids), stamped, bob.jid());
    assert!(acknowledge(&mut bob, &ack, false).await.is_empty());
}

/// Arrival order holds across a crash: messages stored after the restart come after
/// those stored before it.
#[tokio::test]
async fn offline_order_holds_across_a_sigkill() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let daemon = daemon_with_accounts(dir.path()).await;
    let mut alice = daemon.session("alice", "laptop").await;
    let start = unix_now();
    send_chats(&mut alice, &ids(1..=3)).await;
    daemon.kill();
    drop(alice);

    let daemon = Daemon::start_with(dir.path(), 2, NO_ARCHIVE).await;
    let mut alice = daemon.session("alice", "laptop").await;
    send_chats(&mut alice, &ids(4..=6)).await;
    let stamped = (start, unix_now());
    let mut bob = daemon.session("bob", "phone").await;
    let got = go_online(&mut bob, 0).await;
    assert_backlog(&got, &chats(&ids(1..=6)), stamped, bob.jid());
}
