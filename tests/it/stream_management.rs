//! XEP-0198 stream management: acknowledgements both ways, resumption after a cut
//! connection (every message sent meanwhile arrives once), and the promise behind it: what
//! a client never acknowledged goes to offline storage when its session ends, when a
//! client stops acknowledging, and when the server is killed.

use crate::support::daemon::{adduser, Daemon};
use crate::support::{xml, Client, Mech, TestServer, NS_CLIENT, NS_PING, NS_STANZAS};
use stanzad::config::Config;
use std::time::Duration;
use xmpp_parsers::minidom::Element;

const NS_SM: &str = "urn:xmpp:sm:3";
const PW: &str = "pw";
/// XEP-0013 §2.2: how many offline messages wait.
const COUNT_QUERY: &str = "<iq type='get' id='count' to='alice@localhost'>\
     <query xmlns='http://jabber.org/protocol/disco#info' node='http://jabber.org/protocol/offline'/></iq>";

/// With the archive on, as in production: stream management and the archive together.
async fn server_with(configure: impl FnOnce(&mut Config)) -> TestServer {
    let server = TestServer::with(|config| {
        config.archive.enabled = true;
        configure(config);
    })
    .await;
    server.add_user("alice@localhost", PW).await;
    server.add_user("bob@localhost", PW).await;
    server.add_user("mallory@localhost", PW).await;
    server
}

fn chat(id: &str) -> String {
    format!("<message to='alice@localhost' type='chat' id='{id}'><body>{id}</body></message>")
}

/// Bob's messages to Alice, each answered by a ping so they were taken before we go on.
async fn send_from(bob: &mut Client, ids: &[&str]) {
    for id in ids {
        bob.send(&chat(id)).await;
    }
    bob.send(&format!("<iq type='get' id='sync' to='localhost'><ping xmlns='{NS_PING}'/></iq>")).await;
    bob.expect("<iq type='result' id='sync' from='localhost' to='bob@localhost/pc'/>").await;
}

/// Enables stream management; returns the resumption id when `resume`.
async fn enable(client: &mut Client, resume: bool) -> Option<String> {
    let attr = if resume { " resume='true'" } else { "" };
    client.send(&format!("<enable xmlns='{NS_SM}'{attr}/>")).await;
    let enabled = match resume {
        true => client.expect(&format!("<enabled xmlns='{NS_SM}' id='{{any}}' resume='true' max='{{any}}'/>")).await,
        false => client.expect(&format!("<enabled xmlns='{NS_SM}'/>")).await,
    };
    enabled.attr("id").map(str::to_owned)
}

/// The next message's id, skipping the server's `<r/>` requests.
async fn next_message(client: &mut Client) -> String {
    loop {
        let element = client.recv().await;
        if element.is("r", NS_SM) {
            continue;
        }
        assert!(element.is("message", NS_CLIENT), "expected a message: {}", xml::show(&element));
        return element.attr("id").expect("an id").to_owned();
    }
}

async fn messages(client: &mut Client, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(next_message(client).await);
    }
    ids
}

/// The ids of the next `n` messages, skipping anything else (presence, `<r/>`, pings).
async fn message_ids(client: &mut Client, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    while ids.len() < n {
        let element = client.recv().await;
        if element.is("message", NS_CLIENT) {
            ids.push(element.attr("id").unwrap_or_default().to_owned());
        }
    }
    ids
}

/// Authenticates a new connection as `user` and asks to resume `previd`; returns the answer.
async fn resume(server: &TestServer, user: &str, previd: &str, h: u32) -> (Client, Element) {
    let mut client = server.connect().await;
    client.open_stream().await;
    client.authenticate(Mech::ScramSha256, user, PW).await.expect("login");
    client.send(&format!("<resume xmlns='{NS_SM}' previd='{previd}' h='{h}'/>")).await;
    let answer = client.recv().await;
    (client, answer)
}

/// Alice online with a resumable session.
async fn resumable_alice(server: &TestServer) -> (Client, String) {
    let mut alice = server.available("alice", PW, "phone", 0).await;
    let id = enable(&mut alice, true).await.expect("a resumption id");
    (alice, id)
}

#[tokio::test]
async fn stream_management_is_offered_after_authentication_and_needs_a_bound_resource() {
    let server = server_with(|_| {}).await;
    let mut client = server.connect().await;
    client.open_stream().await;
    client.authenticate(Mech::ScramSha256, "alice", PW).await.expect("login");
    // `authenticate` restarts the stream; the features it read offer sm:3.
    client.send(&format!("<enable xmlns='{NS_SM}'/>")).await;
    client.expect(&unexpected_request()).await;
    client.bind(Some("r")).await;
    enable(&mut client, false).await;
    client.send(&format!("<enable xmlns='{NS_SM}'/>")).await;
    client.expect(&unexpected_request()).await;
}

fn unexpected_request() -> String {
    format!("<failed xmlns='{NS_SM}'><unexpected-request xmlns='{}'/></failed>", crate::support::NS_STANZAS)
}

#[tokio::test]
async fn the_features_after_authentication_list_sm() {
    let server = server_with(|_| {}).await;
    let mut client = server.connect().await;
    client.open_stream().await;
    let mut mechanism = client.mechanism(Mech::ScramSha256, "alice", PW);
    client.sasl(mechanism.as_mut()).await.expect("SASL");
    let features = client.restart().await;
    assert!(features.get_child("sm", NS_SM).is_some(), "{}", xml::show(&features));
}

#[tokio::test]
async fn acknowledgements_count_stanzas_both_ways() {
    let server = server_with(|c| c.stream_management.ack_request_every = 2).await;
    let mut alice = server.available("alice", PW, "phone", 0).await;
    enable(&mut alice, false).await;
    alice.send(&format!("<r xmlns='{NS_SM}'/>")).await;
    alice.expect(&format!("<a xmlns='{NS_SM}' h='0'/>")).await;
    alice.send(&format!("<iq type='get' id='p1' to='localhost'><ping xmlns='{NS_PING}'/></iq>")).await;
    alice.expect("<iq type='result' id='p1' from='localhost' to='alice@localhost/phone'/>").await;
    alice.send(&format!("<r xmlns='{NS_SM}'/>")).await;
    alice.expect(&format!("<a xmlns='{NS_SM}' h='1'/>")).await;

    // The ping's answer and m1 make two stanzas: the server asks her to acknowledge them.
    let mut bob = server.available("bob", PW, "pc", 0).await;
    send_from(&mut bob, &["m1", "m2"]).await;
    let m1 = alice.recv().await;
    assert_eq!(m1.attr("id"), Some("m1"), "{}", xml::show(&m1));
    alice.expect(&format!("<r xmlns='{NS_SM}'/>")).await;
    let m2 = alice.recv().await;
    assert_eq!(m2.attr("id"), Some("m2"), "{}", xml::show(&m2));
    alice.send(&format!("<a xmlns='{NS_SM}' h='3'/>")).await;
    alice.expect_silence(200).await;

    // More than was ever sent is a stream error (XEP-0198 §4).
    alice.send(&format!("<a xmlns='{NS_SM}' h='9'/>")).await;
    alice.expect_stream_error("undefined-condition").await;
}

#[tokio::test]
async fn a_resumed_session_gets_what_it_missed_exactly_once() {
    let server = server_with(|_| {}).await;
    let (mut alice, id) = resumable_alice(&server).await;
    let mut bob = server.available("bob", PW, "pc", 0).await;
    send_from(&mut bob, &["m1"]).await;
    assert_eq!(next_message(&mut alice).await, "m1");
    drop(alice); // the network goes; m1 was read but never acknowledged
    send_from(&mut bob, &["m2", "m3"]).await;

    let (mut alice, resumed) = resume(&server, "alice", &id, 1).await;
    // Alice sent nothing after enabling.
    xml::assert_matches(&resumed, &format!("<resumed xmlns='{NS_SM}' previd='{id}' h='0'/>"));
    assert_eq!(messages(&mut alice, 2).await, vec!["m2", "m3"], "m1 was acknowledged by h=1");
    send_from(&mut bob, &["m4"]).await;
    assert_eq!(next_message(&mut alice).await, "m4", "the session goes on, still available");
    alice.send(&format!("<r xmlns='{NS_SM}'/>")).await;
    alice.expect(&format!("<a xmlns='{NS_SM}' h='0'/>")).await;
    alice.send(&format!("<a xmlns='{NS_SM}' h='4'/>")).await;
    alice.expect_silence(200).await;

    // Nothing was also kept offline: a second device finds no backlog.
    let mut laptop = server.session("alice", PW, "laptop").await;
    laptop.send("<presence><priority>-1</priority></presence>").await;
    laptop.send(COUNT_QUERY).await;
    let mut info = laptop.recv().await;
    while !info.is("iq", NS_CLIENT) {
        info = laptop.recv().await;
    }
    assert!(xml::show(&info).contains("<value>0</value>"), "{}", xml::show(&info));
}

/// XEP-0198 §5 and durability: the `h` of `<resumed/>`, and of a refused resumption's
/// `<failed/>`, acknowledges what the client sent, so neither leaves the server before
/// all of that is on disk. Here a message stored offline on the live connection waits for
/// its flush (held) when another connection asks to resume: nothing is answered until the
/// flush completes.
#[tokio::test]
async fn a_takeover_is_answered_only_once_what_it_acknowledges_is_on_disk() {
    let server = server_with(|_| {}).await;
    let (mut alice, id) = resumable_alice(&server).await;
    let flusher = server.server().state.flusher.clone();

    let held = flusher.hold().await;
    alice.send("<message to='bob@localhost' type='chat' id='p1'><body>stored</body></message>").await;
    alice.expect_silence(200).await; // handled: stored offline, its flush waits
    let (mut refused, answer) = resume_pending(&server, &id, 99).await;
    assert!(answer.is_none(), "<failed h/> before the flush: {}", answer.as_ref().map(xml::show).unwrap_or_default());
    drop(held);
    refused
        .expect(&format!("<failed xmlns='{NS_SM}' h='1'><undefined-condition xmlns='{NS_STANZAS}'/></failed>"))
        .await;

    let held = flusher.hold().await;
    alice.send("<message to='bob@localhost' type='chat' id='p2'><body>stored</body></message>").await;
    alice.expect_silence(200).await;
    let (mut taker, answer) = resume_pending(&server, &id, 0).await;
    assert!(answer.is_none(), "<resumed h/> before the flush: {}", answer.as_ref().map(xml::show).unwrap_or_default());
    drop(held);
    taker.expect(&format!("<resumed xmlns='{NS_SM}' previd='{id}' h='2'/>")).await;
    alice.expect_stream_error("conflict").await;
}

/// A resumption of `previd` with `h` on a new connection; the answer, if one comes within
/// 300 ms.
async fn resume_pending(server: &TestServer, previd: &str, h: u32) -> (Client, Option<Element>) {
    let mut client = server.connect().await;
    client.open_stream().await;
    client.authenticate(Mech::ScramSha256, "alice", PW).await.expect("login");
    client.send(&format!("<resume xmlns='{NS_SM}' previd='{previd}' h='{h}'/>")).await;
    let answer = match client.next_frame(std::time::Duration::from_millis(300)).await {
        Some(Ok(stanzad::xml::framer::Frame::Stanza(element))) => Some(element),
        _ => None,
    };
    (client, answer)
}

#[tokio::test]
async fn resuming_a_live_connection_takes_it_over() {
    let server = server_with(|_| {}).await;
    let (mut ghost, id) = resumable_alice(&server).await;
    let (mut alice, resumed) = resume(&server, "alice", &id, 0).await;
    xml::assert_matches(&resumed, &format!("<resumed xmlns='{NS_SM}' previd='{id}' h='0'/>"));
    ghost.expect_stream_error("conflict").await;
    let mut bob = server.available("bob", PW, "pc", 0).await;
    send_from(&mut bob, &["m1"]).await;
    assert_eq!(next_message(&mut alice).await, "m1");
}

#[tokio::test]
async fn only_the_same_account_resumes_and_a_refused_resumption_can_still_bind() {
    let server = server_with(|_| {}).await;
    let (_alice, id) = resumable_alice(&server).await;
    let (mut mallory, failed) = resume(&server, "mallory", &id, 0).await;
    xml::assert_matches(&failed, &not_found(None));
    assert_eq!(mallory.bind(Some("m")).await, "mallory@localhost/m");
    let (_, failed) = resume(&server, "alice", "no-such-id", 0).await;
    xml::assert_matches(&failed, &not_found(None));
}

fn not_found(h: Option<u32>) -> String {
    let h = h.map(|h| format!(" h='{h}'")).unwrap_or_default();
    format!("<failed xmlns='{NS_SM}'{h}><item-not-found xmlns='{}'/></failed>", crate::support::NS_STANZAS)
}

#[tokio::test]
async fn an_expired_session_leaves_its_messages_offline_and_failed_carries_h() {
    let server = server_with(|c| c.stream_management.resume_timeout_secs = 1).await;
    let (mut alice, id) = resumable_alice(&server).await;
    let mut bob = server.available("bob", PW, "pc", 0).await;
    send_from(&mut bob, &["m1"]).await;
    assert_eq!(next_message(&mut alice).await, "m1");
    alice.send(&format!("<iq type='get' id='p1' to='localhost'><ping xmlns='{NS_PING}'/></iq>")).await;
    alice.expect("<iq type='result' id='p1' from='localhost' to='alice@localhost/phone'/>").await;
    drop(alice);
    send_from(&mut bob, &["m2"]).await;
    tokio::time::sleep(Duration::from_millis(1600)).await;

    let (mut alice, failed) = resume(&server, "alice", &id, 0).await;
    // The session had counted one stanza of Alice's (her ping).
    xml::assert_matches(&failed, &not_found(Some(1)));
    // The dialect counts them, and the next available presence delivers them.
    alice.bind(Some("phone")).await;
    alice.send("<enable xmlns='urn:stanzad:dialect:0'/>").await;
    alice.expect("<enabled xmlns='urn:stanzad:dialect:0'/>").await;
    alice.expect("<ib from='localhost' xmlns='urn:stanzad:dialect:0'><offline count='2'/></ib>").await;
    alice.send("<presence/>").await;
    let mut got = Vec::new();
    while got.len() < 2 {
        let element = alice.recv().await;
        if element.is("message", NS_CLIENT) {
            assert!(element.get_child("delay", "urn:xmpp:delay").is_some(), "stamped: {}", xml::show(&element));
            got.push(element.attr("id").unwrap_or_default().to_owned());
        }
    }
    assert_eq!(got, vec!["m1", "m2"]);
}

/// A client that never acknowledges gets `max_unacked` stanzas and then nothing more: the
/// rest waits in its session's queue, and when that fills the session ends
/// (`resource-constraint`, as for a client that stopped reading). Every message it did not
/// acknowledge is kept offline, and its next session gets each of them once.
#[tokio::test]
async fn a_client_that_never_acknowledges_is_disconnected_and_loses_nothing() {
    let server = server_with(|c| {
        c.stream_management.max_unacked = 16;
        c.stream_management.ack_request_every = 100;
        c.limits.session_queue = 16;
    })
    .await;
    let mut alice = server.available("alice", PW, "phone", 0).await;
    enable(&mut alice, false).await;
    let mut bob = server.available("bob", PW, "pc", 0).await;
    let ids: Vec<String> = (1..=40).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    send_from(&mut bob, &refs).await;
    let (mut seen, mut asked, mut ended) = (0, false, false);
    loop {
        match alice.next_frame(crate::support::TIMEOUT).await {
            Some(Ok(stanzad::xml::framer::Frame::Stanza(e))) if e.is("message", NS_CLIENT) => seen += 1,
            Some(Ok(stanzad::xml::framer::Frame::Stanza(e))) if e.is("r", NS_SM) => asked = true,
            Some(Ok(stanzad::xml::framer::Frame::Stanza(e))) if e.is("error", crate::support::NS_STREAM) => {
                assert!(xml::show(&e).contains("resource-constraint"), "{}", xml::show(&e));
                ended = true;
            }
            Some(Ok(stanzad::xml::framer::Frame::Close)) | Some(Err(_)) | None => break,
            Some(_) => {}
        }
    }
    assert_eq!(seen, 16, "max_unacked stanzas, then nothing until an acknowledgement");
    assert!(asked && ended, "an acknowledgement was asked for ({asked}); the full queue ended the session ({ended})");
    let mut laptop = server.session("alice", PW, "laptop").await;
    laptop.send("<presence/>").await;
    let mut got = message_ids(&mut laptop, 40).await;
    got.sort_by_key(|id| id[1..].parse::<u32>().unwrap_or(0));
    assert_eq!(got, ids, "every unacknowledged message, once");
}

/// What initial presence brings (here 40 waiting subscription requests, more than twice
/// `max_unacked`) is paced like the backlog for a stream-managed client: it all arrives,
/// and the session is never ended for what the server chose to send.
#[tokio::test]
async fn initial_presence_brings_more_than_the_bounds_without_ending_the_session() {
    let server = server_with(|c| c.stream_management.max_unacked = 16).await;
    for i in 0..40 {
        let user = format!("fan{i}");
        server.add_user(&format!("{user}@localhost"), PW).await;
        let mut fan = server.session(&user, PW, "r").await;
        fan.send("<presence type='subscribe' to='alice@localhost'/>").await;
        fan.send(&format!("<iq type='get' id='s' to='localhost'><ping xmlns='{NS_PING}'/></iq>")).await;
        fan.expect(&format!("<iq type='result' id='s' from='localhost' to='{user}@localhost/r'/>")).await;
    }
    let mut alice = crate::support::sm::SmClient::login(server.addr, "alice", "phone", None, false).await.client;
    assert!(alice.send_stanzas("<presence/>", 1).await);
    let mut requests = 0;
    while requests < 40 {
        match alice.next(crate::support::TIMEOUT).await {
            crate::support::sm::Event::Element(e) if e.attr("type") == Some("subscribe") => requests += 1,
            crate::support::sm::Event::Element(e) if e.is("r", NS_SM) => assert!(alice.ack().await),
            crate::support::sm::Event::Element(e) => {
                assert!(!e.is("error", crate::support::NS_STREAM), "{}", xml::show(&e));
            }
            other => panic!("after {requests} requests: {other:?}"),
        }
    }
    // Still there (a session ended for it would have got every stanza first).
    let ping = format!("<iq type='get' id='alive' to='localhost'><ping xmlns='{NS_PING}'/></iq>");
    assert!(alice.send_stanzas(&ping, 1).await);
    loop {
        match alice.next(crate::support::TIMEOUT).await {
            crate::support::sm::Event::Element(e) if e.attr("id") == Some("alive") => break,
            crate::support::sm::Event::Element(e) if e.is("r", NS_SM) => assert!(alice.ack().await),
            crate::support::sm::Event::Element(e) => {
                assert!(!e.is("error", crate::support::NS_STREAM), "{}", xml::show(&e));
            }
            other => panic!("the session ended: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_silent_connection_is_found_dead_and_stops_being_a_target() {
    let server = server_with(|c| {
        c.stream_management.ack_request_every = 1;
        c.stream_management.ack_timeout_secs = 1;
    })
    .await;
    let mut alice = server.available("alice", PW, "phone", 0).await;
    enable(&mut alice, false).await;
    let mut bob = server.available("bob", PW, "pc", 0).await;
    send_from(&mut bob, &["m1"]).await;
    alice
        .expect(
            "<message id='m1' type='chat' from='bob@localhost/pc' to='alice@localhost'><body>m1</body>\
             <stanza-id xmlns='urn:xmpp:sid:0' by='alice@localhost' id='{any}'/></message>",
        )
        .await;
    alice.expect(&format!("<r xmlns='{NS_SM}'/>")).await;
    // Alice's phone is in a tunnel: it reads but never answers.
    alice.expect_stream_error("connection-timeout").await;
    send_from(&mut bob, &["m2"]).await;
    let mut laptop = server.session("alice", PW, "laptop").await;
    laptop.send("<presence/>").await;
    let got = message_ids(&mut laptop, 2).await;
    assert_eq!(got, vec!["m1", "m2"]);
}

#[tokio::test]
async fn a_graceful_restart_keeps_what_a_resumable_session_had_not_acknowledged() {
    let server = server_with(|_| {}).await;
    let (mut alice, _id) = resumable_alice(&server).await;
    let mut bob = server.available("bob", PW, "pc", 0).await;
    send_from(&mut bob, &["m1", "m2"]).await;
    assert_eq!(messages(&mut alice, 2).await, vec!["m1", "m2"]);
    drop(alice);
    drop(bob);
    let server = server.restart().await;
    let mut alice = server.session("alice", PW, "phone").await;
    alice.send("<presence/>").await;
    let got = message_ids(&mut alice, 2).await;
    assert_eq!(got, vec!["m1", "m2"]);
}

/// The real binary, killed with SIGKILL while a resumable session had unacknowledged
/// messages: the next process delivers them at the next login.
#[tokio::test]
async fn unacknowledged_messages_survive_sigkill() {
    let dir = tempfile::tempdir().expect("temporary directory");
    adduser(dir.path(), "alice@localhost");
    adduser(dir.path(), "bob@localhost");
    let daemon = Daemon::start(dir.path(), 1).await;
    let mut alice = daemon.session("alice", "phone").await;
    alice.send("<presence/>").await;
    alice.expect("<presence from='alice@localhost/phone'/>").await;
    enable(&mut alice, true).await;
    let mut bob = daemon.session("bob", "pc").await;
    send_from(&mut bob, &["m1", "m2", "m3"]).await;
    assert_eq!(messages(&mut alice, 3).await, vec!["m1", "m2", "m3"]);
    daemon.kill();
    drop(alice);

    let daemon = Daemon::start(dir.path(), 2).await;
    let mut alice = daemon.session("alice", "phone").await;
    alice.send("<presence/>").await;
    let got = message_ids(&mut alice, 3).await;
    assert_eq!(got, vec!["m1", "m2", "m3"]);
}

/// A stream-managed session that gets a backlog when another device's unacknowledged
/// messages are moved offline counts it like any other stanza: acknowledging it all is
/// not "too high".
#[tokio::test]
async fn a_backlog_woken_by_another_device_is_counted() {
    let server = server_with(|_| {}).await;
    let mut phone = server.available("alice", PW, "phone", 0).await;
    enable(&mut phone, false).await;
    let mut laptop = server.available("alice", PW, "laptop", 5).await;
    phone.expect("<presence from='alice@localhost/laptop'><priority>5</priority></presence>").await;
    enable(&mut laptop, false).await;
    let mut bob = server.available("bob", PW, "pc", 0).await;
    send_from(&mut bob, &["m1"]).await;
    assert_eq!(next_message(&mut laptop).await, "m1");
    laptop.send("</stream:stream>").await; // closed with m1 unacknowledged: m1 goes offline

    let mut ids = Vec::new();
    let mut ping = None;
    while ping.is_none() {
        let element = phone.recv().await;
        if element.is("message", NS_CLIENT) {
            ids.push(element.attr("id").unwrap_or_default().to_owned());
        } else if element.is("iq", NS_CLIENT) && element.get_child("ping", NS_PING).is_some() {
            ping = element.attr("id").map(str::to_owned);
        }
    }
    assert_eq!(ids, vec!["m1"]);
    let ping = ping.unwrap_or_default();
    phone.send(&format!("<iq type='result' id='{ping}' to='localhost'/>")).await;
    // The laptop's unavailable presence, m1 and the ping: three stanzas.
    phone.send(&format!("<a xmlns='{NS_SM}' h='3'/>")).await;
    phone.send(&format!("<r xmlns='{NS_SM}'/>")).await;
    let answer = phone.recv().await;
    assert!(answer.is("a", NS_SM), "no stream error: {}", xml::show(&answer));
}

/// A receipt kept for a dialect session goes offline in its routed (standard) form, so a
/// standard session fetching it gets a valid XEP-0184 receipt.
#[tokio::test]
async fn a_receipt_kept_for_a_dialect_session_goes_offline_as_a_standard_receipt() {
    let server = server_with(|_| {}).await;
    let mut alice = server.available("alice", PW, "phone", 0).await;
    alice.send("<enable xmlns='urn:stanzad:dialect:0'/>").await;
    alice.expect("<enabled xmlns='urn:stanzad:dialect:0'/>").await;
    alice.expect("<ib from='localhost' xmlns='urn:stanzad:dialect:0'><offline count='0'/></ib>").await;
    enable(&mut alice, false).await;
    let mut bob = server.available("bob", PW, "pc", 0).await;
    bob.send("<message to='alice@localhost' id='r1'><received xmlns='urn:xmpp:receipts' id='x1'/></message>").await;
    bob.send(&format!("<iq type='get' id='sync' to='localhost'><ping xmlns='{NS_PING}'/></iq>")).await;
    bob.expect("<iq type='result' id='sync' from='localhost' to='bob@localhost/pc'/>").await;
    let receipt = alice.recv().await;
    assert!(receipt.is("receipt", "urn:stanzad:dialect:0"), "{}", xml::show(&receipt));
    alice.send("</stream:stream>").await;

    let mut laptop = server.session("alice", PW, "laptop").await;
    laptop.send("<presence/>").await;
    loop {
        let element = laptop.recv().await;
        if element.is("message", NS_CLIENT) {
            let received = element.get_child("received", "urn:xmpp:receipts");
            assert_eq!(received.and_then(|r| r.attr("id")), Some("x1"), "{}", xml::show(&element));
            break;
        }
    }
}
