//! The stanzad dialect (docs/dialect.md) seen from both sides: receipts bridged to
//! XEP-0184 / XEP-0333 in every direction, live and from offline storage; the "sent" ack;
//! retransmissions (docs/delivery.md); `t` on ping results; `last` on unavailable presence;
//! and the rule that a standard session never sees anything of the dialect.
//!
//! Absence is shown without sleeping: [`barrier`] sends a message to the client's own
//! full JID and reads until it comes back (a session's mailbox is FIFO, see
//! `roster::kit`); a ping's answer ([`sync`]) comes after everything the session wrote
//! while handling the stanzas sent before it (acks, errors).

use crate::roster::kit::{self, given_subscriptions};
use crate::support::{xml, Client, TestServer, NS_CLIENT, NS_PING, NS_STANZAS};
use std::time::{SystemTime, UNIX_EPOCH};
use xmpp_parsers::minidom::Element;

const PW: &str = "pw";
const NS: &str = "urn:stanzad:dialect:0";
const NS_RECEIPTS: &str = "urn:xmpp:receipts";
const NS_MARKERS: &str = "urn:xmpp:chat-markers:0";
const NS_DELAY: &str = "urn:xmpp:delay";

async fn server() -> TestServer {
    let server = TestServer::start().await;
    for user in ["alice", "bob", "carol"] {
        server.add_user(&format!("{user}@localhost"), PW).await;
    }
    server
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs()
}

/// `value` is Unix seconds within `[from, unix_now()]`.
fn assert_unix_seconds(value: Option<&str>, from: u64, element: &Element) {
    let value = value.unwrap_or_else(|| panic!("no time attribute in {}", xml::show(element)));
    let t: u64 = value.parse().unwrap_or_else(|_| panic!("{value:?} is not Unix seconds: {}", xml::show(element)));
    assert!(from <= t && t <= unix_now(), "{t} is not now ({from}..): {}", xml::show(element));
}

/// Pings the server; returns everything that arrived before the answer (which is checked:
/// `t` for a dialect session, nothing else for a standard one).
async fn sync(client: &mut Client, dialect: bool) -> Vec<Element> {
    let id = kit::fresh_id("sync");
    let jid = client.jid().to_owned();
    client.send(&format!("<iq type='get' id='{id}' to='localhost'><ping xmlns='{NS_PING}'/></iq>")).await;
    let mut got = Vec::new();
    loop {
        let element = client.recv().await;
        if element.is("iq", NS_CLIENT) && element.attr("id") == Some(id.as_str()) {
            let t = if dialect { " t='{any}'" } else { "" };
            xml::assert_matches(&element, &format!("<iq type='result' id='{id}' from='localhost' to='{jid}'{t}/>"));
            return got;
        }
        got.push(element);
    }
}

/// Sends a chat message to the client's own full JID and returns everything read before it
/// came back; a dialect session's `<ack/>` of the barrier itself is consumed, wherever it
/// comes.
async fn barrier(client: &mut Client, dialect: bool) -> Vec<Element> {
    let id = kit::fresh_id("barrier");
    let jid = client.jid().to_owned();
    client.send(&format!("<message to='{jid}' type='chat' id='{id}'><body>sync</body></message>")).await;
    let (mut back, mut acked) = (false, !dialect);
    let mut got = Vec::new();
    while !(back && acked) {
        let element = client.recv().await;
        if element.is("message", NS_CLIENT)
            && element.attr("id") == Some(id.as_str())
            && element.attr("from") == Some(jid.as_str())
        {
            back = true;
        } else if element.is("ack", NS) && element.attr("id") == Some(id.as_str()) {
            acked = true;
        } else {
            got.push(element);
        }
    }
    got
}

async fn assert_quiet(client: &mut Client, dialect: bool) {
    let got = barrier(client, dialect).await;
    assert!(got.is_empty(), "{} should have received nothing, got:\n{}", client.jid(), kit::list(&got));
}

/// Enables the dialect: `<enabled/>`, then the offline count.
async fn enable(client: &mut Client, count: u64) {
    client.send(&format!("<enable xmlns='{NS}'/>")).await;
    client.expect(&format!("<enabled xmlns='{NS}'/>")).await;
    client.expect(&format!("<ib xmlns='{NS}' from='localhost'><offline count='{count}'/></ib>")).await;
}

/// A bound dialect session with no messages waiting, without presence.
async fn dialect_session(server: &TestServer, user: &str, resource: &str) -> Client {
    let mut client = server.session(user, PW, resource).await;
    enable(&mut client, 0).await;
    client
}

/// Sends available presence and a ping; returns what came before the ping's answer,
/// except the presence echo (which may come before or after the backlog).
async fn go_online(client: &mut Client, dialect: bool) -> Vec<Element> {
    let jid = client.jid().to_owned();
    client.send("<presence/>").await;
    let mut got = sync(client, dialect).await;
    let echo = |e: &Element| e.is("presence", NS_CLIENT) && e.attr("from") == Some(jid.as_str());
    match got.iter().position(echo) {
        Some(i) => {
            got.remove(i);
        }
        None => {
            let echo = client.recv().await;
            xml::assert_matches(&echo, &format!("<presence from='{jid}'/>"));
        }
    }
    got
}

/// `got` is one stored stanza matching `want` followed by the ack ping, which is answered.
async fn expect_backlog(client: &mut Client, got: &[Element], want: &[&str]) {
    assert_eq!(got.len(), want.len() + 1, "want {want:?} and the ack ping, got:\n{}", kit::list(got));
    for (element, want) in got.iter().zip(want) {
        xml::assert_matches(element, want);
    }
    let ping = got.last().expect("the ack ping");
    let jid = client.jid().to_owned();
    xml::assert_matches(
        ping,
        &format!("<iq type='get' id='{{any}}' from='localhost' to='{jid}'><ping xmlns='{NS_PING}'/></iq>"),
    );
    let id = ping.attr("id").expect("ping id");
    client.send(&format!("<iq type='result' id='{id}' to='localhost'/>")).await;
}

/// Every element in `elements`, recursively, is free of the dialect: no element in its
/// namespace, no `last`, `t` or `participant` attribute, no `stamp` outside an XEP-0203 delay.
fn assert_no_dialect(who: &str, elements: &[Element]) {
    fn walk(element: &Element, path: &str, found: &mut Vec<String>) {
        let path = format!("{path}/{}", element.name());
        if element.ns() == NS {
            found.push(format!("{path}: element in {NS}"));
        }
        for ((_, name), _) in element.attrs().iter() {
            let name: &str = name.as_ref();
            let stamp = name == "stamp" && !element.is("delay", NS_DELAY);
            if stamp || ["last", "t", "participant"].contains(&name) {
                found.push(format!("{path}: attribute {name}"));
            }
        }
        for child in element.children() {
            walk(child, &path, found);
        }
    }
    let mut found = Vec::new();
    for element in elements {
        walk(element, "", &mut found);
    }
    assert!(found.is_empty(), "{who} saw the dialect: {found:#?}\nin:\n{}", kit::list(elements));
}

/// The stanza error condition inside `reply` (of any element name).
fn condition(reply: &Element) -> String {
    assert_eq!(reply.attr("type"), Some("error"), "{}", xml::show(reply));
    let error = reply.get_child("error", NS_CLIENT).unwrap_or_else(|| panic!("no <error/>: {}", xml::show(reply)));
    let conditions: Vec<&str> =
        error.children().filter(|c| c.ns() == NS_STANZAS && c.name() != "text").map(Element::name).collect();
    assert_eq!(conditions.len(), 1, "one condition: {}", xml::show(reply));
    conditions[0].to_owned()
}

/// After a dialect client sent a receipt, it hears nothing but (possibly) the ack of the
/// message the server made of it.
async fn sender_quiet_after_receipt(client: &mut Client) {
    let got: Vec<Element> = sync(client, true).await.into_iter().filter(|e| !e.is("ack", NS)).collect();
    assert!(got.is_empty(), "the receipt's sender got:\n{}", kit::list(&got));
}

// ---- 1. receipts, four directions ----

/// docs/dialect.md, table row 1: a dialect delivery receipt reaches a standard client as
/// XEP-0184 `<received/>`.
#[tokio::test]
async fn dialect_delivery_receipt_reaches_a_standard_client_as_xep0184() {
    let server = server().await;
    let mut alice = dialect_session(&server, "alice", "phone").await;
    let mut bob = server.available("bob", PW, "phone", 0).await;
    alice.send(&format!("<receipt xmlns='{NS}' id='m1' to='bob@localhost'/>")).await;
    sender_quiet_after_receipt(&mut alice).await;
    let got = barrier(&mut bob, false).await;
    assert_eq!(got.len(), 1, "{}", kit::list(&got));
    xml::assert_matches(
        &got[0],
        &format!(
            "<message from='alice@localhost/phone' to='bob@localhost' id='{{any}}'>\
             <received xmlns='{NS_RECEIPTS}' id='m1'/></message>"
        ),
    );
    assert_no_dialect("bob", &got);
}

/// Row 2: a read receipt reaches a standard client as XEP-0333 `<displayed/>`, and its
/// participant stays behind.
#[tokio::test]
async fn dialect_read_receipt_reaches_a_standard_client_as_xep0333_without_participant() {
    let server = server().await;
    let mut alice = dialect_session(&server, "alice", "phone").await;
    let mut bob = server.available("bob", PW, "phone", 0).await;
    alice
        .send(&format!("<receipt xmlns='{NS}' id='m1' to='bob@localhost' type='read' participant='carol@localhost'/>"))
        .await;
    sender_quiet_after_receipt(&mut alice).await;
    let got = barrier(&mut bob, false).await;
    assert_eq!(got.len(), 1, "{}", kit::list(&got));
    xml::assert_matches(
        &got[0],
        &format!(
            "<message from='alice@localhost/phone' to='bob@localhost' id='{{any}}'>\
             <displayed xmlns='{NS_MARKERS}' id='m1'/></message>"
        ),
    );
    assert_no_dialect("bob", &got);
}

/// Rows 3 and 4: standard XEP-0184 and XEP-0333 receipts reach a dialect client as
/// `<receipt/>`.
#[tokio::test]
async fn standard_receipts_reach_a_dialect_client_as_receipt() {
    let server = server().await;
    let mut alice = dialect_session(&server, "alice", "phone").await;
    alice.available(0).await;
    let mut bob = server.session("bob", PW, "phone").await;
    bob.send(&format!("<message to='alice@localhost'><received xmlns='{NS_RECEIPTS}' id='m2'/></message>")).await;
    bob.send(&format!("<message to='alice@localhost' id='r3'><displayed xmlns='{NS_MARKERS}' id='m3'/></message>"))
        .await;
    assert!(sync(&mut bob, false).await.is_empty(), "bob is told nothing");
    let got = barrier(&mut alice, true).await;
    assert_eq!(got.len(), 2, "{}", kit::list(&got));
    xml::assert_matches(
        &got[0],
        &format!("<receipt xmlns='{NS}' from='bob@localhost/phone' to='alice@localhost' id='m2'/>"),
    );
    xml::assert_matches(
        &got[1],
        &format!("<receipt xmlns='{NS}' from='bob@localhost/phone' to='alice@localhost' id='m3' type='read'/>"),
    );
}

/// A dialect read receipt to a dialect client keeps its participant.
#[tokio::test]
async fn dialect_read_receipt_keeps_its_participant_for_a_dialect_client() {
    let server = server().await;
    let mut alice = dialect_session(&server, "alice", "phone").await;
    let mut bob = dialect_session(&server, "bob", "phone").await;
    bob.available(0).await;
    alice
        .send(&format!("<receipt xmlns='{NS}' id='m1' to='bob@localhost' type='read' participant='carol@localhost'/>"))
        .await;
    sender_quiet_after_receipt(&mut alice).await;
    let got = barrier(&mut bob, true).await;
    assert_eq!(got.len(), 1, "{}", kit::list(&got));
    xml::assert_matches(
        &got[0],
        &format!(
            "<receipt xmlns='{NS}' from='alice@localhost/phone' to='bob@localhost' id='m1' type='read' \
             participant='carol@localhost'/>"
        ),
    );
}

/// A dialect receipt for an offline standard client is stored and arrives at login as
/// XEP-0184 / XEP-0333 with the XEP-0203 delay, without the participant.
#[tokio::test]
async fn dialect_receipts_stored_for_a_standard_client_arrive_in_standard_form() {
    let server = server().await;
    let mut alice = dialect_session(&server, "alice", "phone").await;
    alice.send(&format!("<receipt xmlns='{NS}' id='m1' to='bob@localhost'/>")).await;
    alice
        .send(&format!("<receipt xmlns='{NS}' id='m2' to='bob@localhost' type='read' participant='carol@localhost'/>"))
        .await;
    sender_quiet_after_receipt(&mut alice).await;
    let mut bob = server.session("bob", PW, "phone").await;
    let got = go_online(&mut bob, false).await;
    let delay = format!("<delay xmlns='{NS_DELAY}' from='localhost' stamp='{{any}}'/>");
    expect_backlog(
        &mut bob,
        &got,
        &[
            &format!(
                "<message from='alice@localhost/phone' to='bob@localhost' id='{{any}}'>\
                 <received xmlns='{NS_RECEIPTS}' id='m1'/>{delay}</message>"
            ),
            &format!(
                "<message from='alice@localhost/phone' to='bob@localhost' id='{{any}}'>\
                 <displayed xmlns='{NS_MARKERS}' id='m2'/>{delay}</message>"
            ),
        ],
    )
    .await;
    assert_no_dialect("bob", &got);
}

/// Standard receipts (and a dialect read receipt with participant) for an offline dialect
/// client arrive at login as `<receipt/>` with `stamp`.
#[tokio::test]
async fn receipts_stored_for_a_dialect_client_arrive_as_receipt_with_stamp() {
    let server = server().await;
    let mut bob = server.session("bob", PW, "phone").await;
    bob.send(&format!("<message to='alice@localhost' id='r1'><received xmlns='{NS_RECEIPTS}' id='m1'/></message>"))
        .await;
    bob.send(&format!("<message to='alice@localhost' id='r2'><displayed xmlns='{NS_MARKERS}' id='m2'/></message>"))
        .await;
    assert!(sync(&mut bob, false).await.is_empty(), "bob is told nothing");
    let mut carol = dialect_session(&server, "carol", "phone").await;
    carol
        .send(&format!("<receipt xmlns='{NS}' id='m3' to='alice@localhost' type='read' participant='dave@localhost'/>"))
        .await;
    sender_quiet_after_receipt(&mut carol).await;

    let mut alice = server.session("alice", PW, "phone").await;
    enable(&mut alice, 3).await;
    let got = go_online(&mut alice, true).await;
    expect_backlog(
        &mut alice,
        &got,
        &[
            &format!("<receipt xmlns='{NS}' from='bob@localhost/phone' to='alice@localhost' id='m1' stamp='{{any}}'/>"),
            &format!(
                "<receipt xmlns='{NS}' from='bob@localhost/phone' to='alice@localhost' id='m2' type='read' \
                 stamp='{{any}}'/>"
            ),
            &format!(
                "<receipt xmlns='{NS}' from='carol@localhost/phone' to='alice@localhost' id='m3' type='read' \
                 participant='dave@localhost' stamp='{{any}}'/>"
            ),
        ],
    )
    .await;
}

// ---- 2. a standard client never sees the dialect ----

/// The live part of a conversation from a dialect client, the standard client being
/// online from the start (available presence with a made-up `last`, an update, directed
/// presence, a message with `last`, receipts with a participant, unavailable presence):
/// nothing of the dialect reaches the standard client.
#[tokio::test]
async fn a_standard_client_never_sees_the_dialect_live() {
    let server = server().await;
    given_subscriptions(&server, &[("alice", "bob"), ("bob", "alice")]).await;
    let mut bob = server.session("bob", PW, "phone").await;
    kit::online(&mut bob).await;
    let mut alice = dialect_session(&server, "alice", "phone").await;
    kit::send_presence(&mut alice, "<presence last='123'><priority>0</priority></presence>").await;
    alice.send("<presence last='456'><priority>1</priority></presence>").await;
    alice.send("<presence to='bob@localhost/phone' last='457'/>").await;
    alice.send("<message to='bob@localhost' type='chat' id='c1' last='458'><body>hi</body></message>").await;
    alice.send(&format!("<receipt xmlns='{NS}' id='b1' to='bob@localhost'/>")).await;
    alice
        .send(&format!(
            "<receipt xmlns='{NS}' id='b2' to='bob@localhost/phone' type='read' participant='carol@localhost'/>"
        ))
        .await;
    alice.send("<presence type='unavailable' last='459'/>").await;
    barrier(&mut alice, true).await;
    let seen = barrier(&mut bob, false).await;
    assert!(seen.iter().any(|e| e.attr("id") == Some("c1")), "the message arrived:\n{}", kit::list(&seen));
    for id in ["b1", "b2"] {
        assert!(
            seen.iter().any(|e| e.children().any(|c| c.attr("id") == Some(id))),
            "receipt {id} arrived:\n{}",
            kit::list(&seen)
        );
    }
    assert!(
        seen.iter().any(|e| e.is("presence", NS_CLIENT) && e.attr("type") == Some("unavailable")),
        "alice's unavailable presence arrived:\n{}",
        kit::list(&seen)
    );
    assert_no_dialect("bob", &seen);
}

/// A whole conversation from a dialect client (presence with a made-up `last`, directed
/// presence, messages, receipts with participants, unavailable presence), live and
/// stored: nothing of the dialect reaches the standard client.
#[tokio::test]
async fn a_standard_client_never_sees_the_dialect_in_a_conversation() {
    let server = server().await;
    given_subscriptions(&server, &[("alice", "bob"), ("bob", "alice")]).await;
    let mut alice = dialect_session(&server, "alice", "phone").await;
    kit::send_presence(&mut alice, "<presence last='123'><priority>0</priority></presence>").await;
    let mut seen = Vec::new();

    // Bob logs in after Alice is available: her presence comes as a probe answer.
    let mut bob = server.session("bob", PW, "phone").await;
    seen.extend(kit::online(&mut bob).await);
    alice.send("<presence last='456'><priority>1</priority></presence>").await;
    alice.send("<presence to='bob@localhost/phone' last='457'/>").await;
    alice.send("<message to='bob@localhost' type='chat' id='c1' last='458'><body>hi</body></message>").await;
    alice.send(&format!("<receipt xmlns='{NS}' id='b1' to='bob@localhost'/>")).await;
    alice
        .send(&format!(
            "<receipt xmlns='{NS}' id='b2' to='bob@localhost/phone' type='read' participant='carol@localhost'/>"
        ))
        .await;
    alice.send("<presence type='unavailable' last='459'/>").await;
    barrier(&mut alice, true).await;
    seen.extend(barrier(&mut bob, false).await);

    // The same while Bob is offline: stored, then delivered at login.
    kit::send_presence(&mut alice, "<presence last='460'/>").await;
    bob.send("</stream:stream>").await;
    loop {
        match bob.next_frame(crate::support::TIMEOUT).await {
            Some(Ok(stanzad::xml::framer::Frame::Close)) => break,
            Some(Ok(stanzad::xml::framer::Frame::Stanza(e))) => seen.push(e),
            other => panic!("waiting for the end of bob's stream: {other:?}"),
        }
    }
    bob.expect_eof().await;
    alice.send("<message to='bob@localhost' type='chat' id='c2' last='461'><body>later</body></message>").await;
    alice.send(&format!("<receipt xmlns='{NS}' id='b3' to='bob@localhost'/>")).await;
    alice
        .send(&format!("<receipt xmlns='{NS}' id='b4' to='bob@localhost' type='read' participant='carol@localhost'/>"))
        .await;
    sync(&mut alice, true).await;
    let mut bob = server.session("bob", PW, "phone").await;
    let backlog = go_online(&mut bob, false).await;
    let stored = backlog.iter().filter(|e| !e.is("presence", NS_CLIENT)).count();
    assert_eq!(stored, 4, "3 stored and the ack ping (besides presence):\n{}", kit::list(&backlog));
    seen.extend(backlog);
    seen.extend(barrier(&mut bob, false).await);

    assert!(seen.iter().any(|e| e.attr("id") == Some("c1")), "the live message arrived:\n{}", kit::list(&seen));
    assert!(seen.iter().any(|e| e.attr("id") == Some("c2")), "the stored message arrived:\n{}", kit::list(&seen));
    assert!(
        seen.iter().any(|e| e.is("presence", NS_CLIENT) && e.attr("type") == Some("unavailable")),
        "alice's unavailable presence arrived:\n{}",
        kit::list(&seen)
    );
    assert_no_dialect("bob", &seen);
}

/// Only the probe answer of the conversation above: Alice's available presence carrying a
/// `last` she wrote herself, learnt by a standard client that logs in afterwards.
#[tokio::test]
async fn a_standard_client_logging_in_never_sees_last_in_a_dialect_contacts_presence() {
    let server = server().await;
    given_subscriptions(&server, &[("bob", "alice")]).await;
    let mut alice = dialect_session(&server, "alice", "phone").await;
    kit::send_presence(&mut alice, "<presence last='123'><priority>0</priority></presence>").await;
    let mut bob = server.session("bob", PW, "phone").await;
    let got = kit::online(&mut bob).await;
    assert_eq!(got.len(), 1, "alice's presence:\n{}", kit::list(&got));
    assert_no_dialect("bob", &got);
}

/// Live, `for_standard` removes a `last` a dialect client put on its message; from
/// offline storage it must be removed too.
#[tokio::test]
async fn a_stored_message_reaches_a_standard_client_without_last() {
    let server = server().await;
    let mut alice = dialect_session(&server, "alice", "phone").await;
    alice.send("<message to='bob@localhost' type='chat' id='c1' last='461'><body>later</body></message>").await;
    sync(&mut alice, true).await;
    let mut bob = server.session("bob", PW, "phone").await;
    let got = go_online(&mut bob, false).await;
    expect_backlog(
        &mut bob,
        &got,
        &[&format!(
            "<message from='alice@localhost/phone' to='bob@localhost' type='chat' id='c1'><body>later</body>\
             <delay xmlns='{NS_DELAY}' from='localhost' stamp='{{any}}'/></message>"
        )],
    )
    .await;
}

/// Payload a dialect client puts in a message in the dialect namespace (a `<receipt/>`
/// child) does not reach a standard client either. (Attributes a client puts on its own
/// message, `t` included, are forwarded unchanged, as the core issue requires of unknown
/// attributes: docs/dialect.md.)
#[tokio::test]
async fn a_standard_client_never_sees_dialect_payload_inside_a_message() {
    let server = server().await;
    let mut alice = dialect_session(&server, "alice", "phone").await;
    let mut bob = server.available("bob", PW, "phone", 0).await;
    alice
        .send(&format!(
            "<message to='bob@localhost' type='chat' id='c1'><body>hi</body>\
             <receipt xmlns='{NS}' id='zz'/></message>"
        ))
        .await;
    sync(&mut alice, true).await;
    let got = barrier(&mut bob, false).await;
    assert_eq!(got.len(), 1, "{}", kit::list(&got));
    assert_no_dialect("bob", &got);
}

// ---- 3. the sent ack ----

#[tokio::test]
async fn a_dialect_session_gets_an_ack_for_delivered_and_stored_messages_only() {
    let server = server().await;
    let mut alice = dialect_session(&server, "alice", "phone").await;
    let _bob = server.available("bob", PW, "phone", 0).await;
    let start = unix_now();

    // Delivered to an online contact.
    alice.send("<message to='bob@localhost' type='chat' id='x1'><body>hi</body></message>").await;
    let got = sync(&mut alice, true).await;
    assert_eq!(got.len(), 1, "{}", kit::list(&got));
    xml::assert_matches(&got[0], &format!("<ack xmlns='{NS}' id='x1' t='{{any}}'/>"));
    assert_unix_seconds(got[0].attr("t"), start, &got[0]);

    // Stored for an offline contact.
    alice.send("<message to='carol@localhost' type='chat' id='x2'><body>hi</body></message>").await;
    let got = sync(&mut alice, true).await;
    assert_eq!(got.len(), 1, "{}", kit::list(&got));
    xml::assert_matches(&got[0], &format!("<ack xmlns='{NS}' id='x2' t='{{any}}'/>"));
    assert_unix_seconds(got[0].attr("t"), start, &got[0]);

    // Refused: the error only.
    alice.send("<message to='nobody@localhost' type='chat' id='x3'><body>hi</body></message>").await;
    let got = sync(&mut alice, true).await;
    assert_eq!(got.len(), 1, "the error and nothing else:\n{}", kit::list(&got));
    assert!(got[0].is("message", NS_CLIENT) && got[0].attr("id") == Some("x3"), "{}", xml::show(&got[0]));
    assert_eq!(condition(&got[0]), "service-unavailable");

    // Without an id: no ack.
    alice.send("<message to='bob@localhost' type='chat'><body>no id</body></message>").await;
    assert!(sync(&mut alice, true).await.is_empty(), "no ack for a message without id");
}

#[tokio::test]
async fn a_standard_session_gets_no_ack() {
    let server = server().await;
    let mut alice = server.session("alice", PW, "phone").await;
    let _bob = server.available("bob", PW, "phone", 0).await;
    alice.send("<message to='bob@localhost' type='chat' id='x1'><body>hi</body></message>").await;
    alice.send("<message to='carol@localhost' type='chat' id='x2'><body>hi</body></message>").await;
    assert!(sync(&mut alice, false).await.is_empty(), "a standard session hears nothing");
    assert_quiet(&mut alice, false).await;
}

// ---- 4. retransmissions ----

fn bodies(got: &[Element]) -> Vec<(String, String)> {
    got.iter()
        .filter(|e| e.is("message", NS_CLIENT))
        .map(|e| {
            let body = e.get_child("body", NS_CLIENT).map(Element::text).unwrap_or_default();
            (e.attr("id").unwrap_or_default().to_owned(), body)
        })
        .collect()
}

#[tokio::test]
async fn a_retransmitted_message_is_delivered_once_and_acked_twice() {
    let server = server().await;
    let mut alice = dialect_session(&server, "alice", "phone").await;
    let mut bob = server.available("bob", PW, "phone", 0).await;
    let message = "<message to='bob@localhost' type='chat' id='d1'><body>once</body></message>";
    alice.send(message).await;
    alice.send(message).await;
    let got = sync(&mut alice, true).await;
    let acks: Vec<&Element> = got.iter().filter(|e| e.is("ack", NS) && e.attr("id") == Some("d1")).collect();
    assert_eq!((acks.len(), got.len()), (2, 2), "two acks:\n{}", kit::list(&got));

    // The same id with another body is another message.
    alice.send("<message to='bob@localhost' type='chat' id='d1'><body>other</body></message>").await;
    let got = sync(&mut alice, true).await;
    assert_eq!(got.len(), 1, "{}", kit::list(&got));
    xml::assert_matches(&got[0], &format!("<ack xmlns='{NS}' id='d1' t='{{any}}'/>"));

    let got = barrier(&mut bob, false).await;
    assert_eq!(
        bodies(&got),
        vec![("d1".to_owned(), "once".to_owned()), ("d1".to_owned(), "other".to_owned())],
        "{}",
        kit::list(&got)
    );
}

#[tokio::test]
async fn a_retransmitted_message_to_an_offline_contact_is_stored_once() {
    let server = server().await;
    let mut alice = dialect_session(&server, "alice", "phone").await;
    let message = "<message to='bob@localhost' type='chat' id='d2'><body>once</body></message>";
    alice.send(message).await;
    alice.send(message).await;
    let got = sync(&mut alice, true).await;
    assert_eq!(got.iter().filter(|e| e.is("ack", NS) && e.attr("id") == Some("d2")).count(), 2, "{}", kit::list(&got));
    assert_eq!(got.len(), 2, "{}", kit::list(&got));

    // The client lost its connection and sends it again from a new one.
    alice.send("</stream:stream>").await;
    alice.expect_closed().await;
    let mut alice = dialect_session(&server, "alice", "phone").await;
    alice.send(message).await;
    let got = sync(&mut alice, true).await;
    assert_eq!(got.len(), 1, "{}", kit::list(&got));
    xml::assert_matches(&got[0], &format!("<ack xmlns='{NS}' id='d2' t='{{any}}'/>"));

    let mut bob = server.session("bob", PW, "phone").await;
    let got = go_online(&mut bob, false).await;
    expect_backlog(
        &mut bob,
        &got,
        &[&format!(
            "<message from='alice@localhost/phone' to='bob@localhost' type='chat' id='d2'><body>once</body>\
             <delay xmlns='{NS_DELAY}' from='localhost' stamp='{{any}}'/></message>"
        )],
    )
    .await;
    assert_quiet(&mut bob, false).await;
}

// ---- 5. ping ----

#[tokio::test]
async fn ping_results_carry_t_for_dialect_sessions_only() {
    let server = server().await;
    let mut alice = dialect_session(&server, "alice", "phone").await;
    let mut bob = server.session("bob", PW, "phone").await;
    let start = unix_now();
    alice.send(&format!("<iq type='get' id='p1' to='localhost'><ping xmlns='{NS_PING}'/></iq>")).await;
    let answer =
        alice.expect("<iq type='result' id='p1' from='localhost' to='alice@localhost/phone' t='{any}'/>").await;
    assert_unix_seconds(answer.attr("t"), start, &answer);
    bob.send(&format!("<iq type='get' id='p1' to='localhost'><ping xmlns='{NS_PING}'/></iq>")).await;
    bob.expect("<iq type='result' id='p1' from='localhost' to='bob@localhost/phone'/>").await;
}

// ---- 6. last on unavailable presence ----

#[tokio::test]
async fn unavailable_presence_carries_last_for_dialect_subscribers_only() {
    let server = server().await;
    given_subscriptions(&server, &[("alice", "carol"), ("bob", "carol")]).await;
    let mut alice = dialect_session(&server, "alice", "phone").await;
    kit::online(&mut alice).await; // carol was never seen: a plain unavailable, maybe
    let mut bob = server.session("bob", PW, "phone").await;
    kit::online(&mut bob).await;
    let mut carol = server.session("carol", PW, "phone").await;
    kit::online(&mut carol).await;
    for (client, dialect) in [(&mut alice, true), (&mut bob, false)] {
        let got = barrier(client, dialect).await;
        assert_eq!(got.len(), 1, "carol's presence:\n{}", kit::list(&got));
    }

    let start = unix_now();
    carol.send("<presence type='unavailable'/>").await;
    barrier(&mut carol, false).await;
    let got = barrier(&mut alice, true).await;
    assert_eq!(got.len(), 1, "{}", kit::list(&got));
    xml::assert_matches(
        &got[0],
        "<presence type='unavailable' from='carol@localhost/phone' to='alice@localhost' last='{any}'/>",
    );
    assert_unix_seconds(got[0].attr("last"), start, &got[0]);
    let got = barrier(&mut bob, false).await;
    assert_eq!(got.len(), 1, "{}", kit::list(&got));
    xml::assert_matches(&got[0], "<presence type='unavailable' from='carol@localhost/phone' to='bob@localhost'/>");

    // Logging in while Carol is offline.
    let mut alice2 = dialect_session(&server, "alice", "tablet").await;
    let got = kit::online(&mut alice2).await;
    let carols: Vec<&Element> = got.iter().filter(|e| e.attr("from") == Some("carol@localhost")).collect();
    assert_eq!(carols.len(), 1, "{}", kit::list(&got));
    xml::assert_matches(
        carols[0],
        "<presence type='unavailable' from='carol@localhost' to='alice@localhost/tablet' last='{any}'/>",
    );
    assert_unix_seconds(carols[0].attr("last"), start, carols[0]);
    let mut bob2 = server.session("bob", PW, "tablet").await;
    let got = kit::online(&mut bob2).await;
    let carols: Vec<&Element> = got.iter().filter(|e| e.attr("from") == Some("carol@localhost")).collect();
    assert_eq!(carols.len(), 1, "{}", kit::list(&got));
    xml::assert_matches(carols[0], "<presence type='unavailable' from='carol@localhost' to='bob@localhost/tablet'/>");
}

// ---- 7. errors ----

#[tokio::test]
async fn a_receipt_without_id_or_to_or_with_another_type_is_a_bad_request() {
    let server = server().await;
    let mut alice = dialect_session(&server, "alice", "phone").await;
    let mut bob = server.available("bob", PW, "phone", 0).await;
    for receipt in [
        format!("<receipt xmlns='{NS}' to='bob@localhost'/>"),
        format!("<receipt xmlns='{NS}' id='' to='bob@localhost'/>"),
        format!("<receipt xmlns='{NS}' id='m1'/>"),
        format!("<receipt xmlns='{NS}' id='m1' to='bob@localhost' type='seen'/>"),
    ] {
        alice.send(&receipt).await;
        let got = sync(&mut alice, true).await;
        assert_eq!(got.len(), 1, "{receipt}: the error only:\n{}", kit::list(&got));
        assert_eq!(condition(&got[0]), "bad-request", "{receipt}");
    }
    assert_quiet(&mut bob, false).await;
}

#[tokio::test]
async fn a_receipt_from_a_standard_session_is_an_unsupported_stanza_type() {
    let server = server().await;
    let mut alice = server.session("alice", PW, "phone").await;
    alice.send(&format!("<receipt xmlns='{NS}' id='m1' to='bob@localhost'/>")).await;
    alice.expect_stream_error("unsupported-stanza-type").await;
}
