//! RFC 6120 §7 (resource binding) and the legacy session of RFC 3921 (RFC 6121 App. E).

use crate::support::xml::assert_matches;
use crate::support::{Mech, TestServer, NS_BIND, NS_SESSION};

async fn server_with_alice() -> TestServer {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "pw").await;
    server
}

#[tokio::test]
async fn features_after_auth_offer_bind_session_and_limits() {
    let server = server_with_alice().await;
    let client = server.authenticated("alice", "pw").await;
    assert_matches(
        client.features.as_ref().expect("features"),
        "<stream:features>\
           <bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>\
           <session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session>\
           <ver xmlns='urn:xmpp:features:rosterver'/>\
           <sub xmlns='urn:xmpp:features:pre-approval'/>\
           <dialect xmlns='urn:stanzad:dialect:0'/>\
           <csi xmlns='urn:xmpp:csi:0'/>\
           <sm xmlns='urn:xmpp:sm:3'/>\
           <limits xmlns='urn:xmpp:stream-limits:0'>\
             <max-bytes>262144</max-bytes><idle-seconds>360</idle-seconds>\
           </limits>\
         </stream:features>",
    );
}

#[tokio::test]
async fn server_generates_a_resource_when_none_is_asked() {
    let server = server_with_alice().await;
    let mut client = server.authenticated("alice", "pw").await;
    let jid = client.bind(None).await;
    let resource = jid.strip_prefix("alice@localhost/").expect("alice's full JID");
    assert!(!resource.is_empty(), "{jid}");
    // Two connections get different resources.
    let mut other = server.authenticated("alice", "pw").await;
    assert_ne!(other.bind(None).await, jid);
}

#[tokio::test]
async fn empty_resource_element_gets_a_generated_resource() {
    let server = server_with_alice().await;
    let mut client = server.authenticated("alice", "pw").await;
    client.send(&format!("<iq type='set' id='b1'><bind xmlns='{NS_BIND}'><resource/></bind></iq>")).await;
    let reply = client
        .expect(&format!("<iq type='result' id='b1'><bind xmlns='{NS_BIND}'><jid>{{any}}</jid></bind></iq>"))
        .await;
    let jid = reply.get_child("bind", NS_BIND).and_then(|b| b.get_child("jid", NS_BIND)).map(|j| j.text());
    let jid = jid.expect("jid");
    assert!(jid.len() > "alice@localhost/".len() && jid.starts_with("alice@localhost/"), "{jid}");
}

#[tokio::test]
async fn requested_resource_is_honored() {
    let server = server_with_alice().await;
    let mut client = server.authenticated("alice", "pw").await;
    assert_eq!(client.bind(Some("laptop")).await, "alice@localhost/laptop");
}

/// A resourcepart longer than 1023 bytes (RFC 7622 §3.4) is refused with a stanza
/// error; the stream survives and a valid bind then works.
#[tokio::test]
async fn invalid_resource_is_bad_request() {
    let server = server_with_alice().await;
    let mut client = server.authenticated("alice", "pw").await;
    let long = "a".repeat(1024);
    client
        .send(&format!("<iq type='set' id='b1'><bind xmlns='{NS_BIND}'><resource>{long}</resource></bind></iq>"))
        .await;
    client
        .expect(&format!(
            "<iq type='error' id='b1'>\
               <bind xmlns='{NS_BIND}'><resource>{long}</resource></bind>\
               <error type='modify'>\
                 <bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
                 <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{{any}}</text>\
               </error>\
             </iq>"
        ))
        .await;
    assert_eq!(client.bind(Some("ok")).await, "alice@localhost/ok");
}

#[tokio::test]
async fn message_before_bind_is_not_authorized() {
    let server = server_with_alice().await;
    let mut client = server.authenticated("alice", "pw").await;
    client.send("<message to='alice@localhost' type='chat'><body>early</body></message>").await;
    client.expect_stream_error("not-authorized").await;
}

#[tokio::test]
async fn iq_other_than_bind_before_bind_is_not_authorized() {
    let server = server_with_alice().await;
    let mut client = server.authenticated("alice", "pw").await;
    client.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    client.expect_stream_error("not-authorized").await;
}

#[tokio::test]
async fn stanza_before_auth_is_not_authorized() {
    let server = server_with_alice().await;
    let mut client = server.connect().await;
    client.open_stream().await;
    client.send("<message to='alice@localhost' type='chat'><body>who am I</body></message>").await;
    client.expect_stream_error("not-authorized").await;
}

#[tokio::test]
async fn bind_before_auth_is_not_authorized() {
    let server = server_with_alice().await;
    let mut client = server.connect().await;
    client.open_stream().await;
    client.send(&format!("<iq type='set' id='b1'><bind xmlns='{NS_BIND}'><resource>r</resource></bind></iq>")).await;
    client.expect_stream_error("not-authorized").await;
}

/// RFC 6120 §7.7.2.2: binding a full JID that is in use ends the older session with
/// `conflict`; the new one is the one the router knows.
#[tokio::test]
async fn binding_a_used_full_jid_replaces_the_old_session() {
    let server = server_with_alice().await;
    let mut old = server.session("alice", "pw", "laptop").await;
    let mut new = server.authenticated("alice", "pw").await;
    assert_eq!(new.bind(Some("laptop")).await, "alice@localhost/laptop");
    old.expect_stream_error("conflict").await;
    new.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    new.expect("<iq type='result' id='p1' from='localhost' to='alice@localhost/laptop'/>").await;
    // Stanzas for the full JID reach the new session.
    new.send("<message to='alice@localhost/laptop' type='chat' id='m1'><body>me</body></message>").await;
    new.expect(
        "<message to='alice@localhost/laptop' from='alice@localhost/laptop' type='chat' id='m1'>\
         <body>me</body></message>",
    )
    .await;
}

#[tokio::test]
async fn legacy_session_iq_is_answered_with_result() {
    let server = server_with_alice().await;
    let mut client = server.session("alice", "pw", "r").await;
    client.send(&format!("<iq type='set' id='s1'><session xmlns='{NS_SESSION}'/></iq>")).await;
    client.expect("<iq type='result' id='s1' to='alice@localhost/r'/>").await;
    client.send(&format!("<iq type='set' id='s2' to='localhost'><session xmlns='{NS_SESSION}'/></iq>")).await;
    client.expect("<iq type='result' id='s2' from='localhost' to='alice@localhost/r'/>").await;
}

/// The whole login also works with the mechanisms used by old clients (SCRAM-SHA-1).
#[tokio::test]
async fn session_after_scram_sha1() {
    let server = server_with_alice().await;
    let mut client = server.connect_open().await;
    client.authenticate(Mech::ScramSha1, "alice", "pw").await.expect("SCRAM-SHA-1");
    assert_eq!(client.bind(Some("old")).await, "alice@localhost/old");
}

/// A client may pipeline its authentication, the restarted stream's header and the bind
/// request in one write (bytes read ahead must survive the stream restart).
#[tokio::test]
async fn pipelined_auth_restart_and_bind() {
    let server = server_with_alice().await;
    let mut client = server.connect().await;
    client.open_stream().await;
    // PLAIN "\0alice\0pw"
    client
        .send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHB3</auth>{}\
             <iq type='set' id='b1'><bind xmlns='{NS_BIND}'><resource>fast</resource></bind></iq>",
            crate::support::stream_header("localhost")
        ))
        .await;
    client.expect("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>").await;
    client.reset_framer();
    client.expect_header().await;
    let features = client.recv().await;
    assert!(features.get_child("bind", NS_BIND).is_some(), "{}", crate::support::xml::show(&features));
    client
        .expect(&format!(
            "<iq type='result' id='b1'><bind xmlns='{NS_BIND}'><jid>alice@localhost/fast</jid></bind></iq>"
        ))
        .await;
}

/// SASL usernames are localparts: they are compared after normalisation (nodeprep).
#[tokio::test]
async fn username_is_case_insensitive() {
    let server = server_with_alice().await;
    let mut client = server.connect_open().await;
    client.authenticate(Mech::ScramSha256, "ALICE", "pw").await.expect("login as ALICE");
    assert_eq!(client.bind(Some("r")).await, "alice@localhost/r");
}

/// The restarted stream may come without an XML declaration.
#[tokio::test]
async fn restart_without_xml_declaration() {
    let server = server_with_alice().await;
    let mut client = server.connect_open().await;
    let mut plain = client.mechanism(Mech::Plain, "alice", "pw");
    client.sasl(plain.as_mut()).await.expect("PLAIN");
    client.reset_framer();
    let header = crate::support::stream_header("localhost").replace("<?xml version='1.0'?>", "");
    let features = client.open_stream_with(&header).await;
    assert!(features.get_child("bind", NS_BIND).is_some());
    assert_eq!(client.bind(Some("r")).await, "alice@localhost/r");
}

/// When a session is replaced while it is busy (its client stopped reading, so the
/// server's write to it waits), the new session binds the same full JID and becomes
/// available at once. When the old session ends, it must not announce "unavailable" for
/// the JID that the new session now owns; what it never wrote goes to the new session.
#[tokio::test]
async fn replaced_busy_session_does_not_announce_the_new_one_unavailable() {
    let server = TestServer::with(|c| {
        c.timeouts.ping_timeout_secs = 30;
        c.timeouts.ping_interval_secs = 60;
        c.limits.session_queue = 10_000;
        c.limits.session_queue_bytes = 64 << 20;
    })
    .await;
    server.add_user("alice@localhost", "pw").await;
    server.add_user("bob@localhost", "pw").await;
    // Negative priority: it hears its account's presence, never its messages.
    let mut observer = server.available("alice", "pw", "observer", -1).await;
    let old_connection = crate::support::Client::connect_small_window(server.addr).await;
    let mut old = server.login(old_connection, "alice", "pw", "laptop").await;
    old.available(0).await;
    observer.expect("<presence from='alice@localhost/laptop'><priority>0</priority></presence>").await;
    // Bob floods the old session (which never reads again): its writer stalls, while its
    // queue (10 000) never fills.
    let mut bob = server.session("bob", "pw", "flood").await;
    crate::support::flood(&mut bob, "alice@localhost/laptop", 0..30).await;
    // The new session takes over alice@localhost/laptop and becomes available.
    let mut new = server.authenticated("alice", "pw").await;
    assert_eq!(new.bind(Some("laptop")).await, "alice@localhost/laptop");
    new.send("<presence/>").await;
    // The observer may hear "unavailable" before "available", never after it.
    let first = observer.recv().await;
    if first.attr("type") == Some("unavailable") {
        observer.expect("<presence from='alice@localhost/laptop'/>").await;
    } else {
        crate::support::xml::assert_matches(&first, "<presence from='alice@localhost/laptop'/>");
    }
    observer.expect_silence(1000).await;
    // The new session gets its own presence and what the old one never wrote.
    loop {
        match new.next_frame(std::time::Duration::from_millis(500)).await {
            Some(Ok(stanzad::xml::framer::Frame::Stanza(e))) if e.attr("from") == Some("bob@localhost/flood") => {}
            Some(Ok(stanzad::xml::framer::Frame::Stanza(e))) if e.is("presence", crate::support::NS_CLIENT) => {}
            // The server's pings (after a backlog batch, or live messages): answered.
            Some(Ok(stanzad::xml::framer::Frame::Stanza(e))) if e.attr("type") == Some("get") => {
                new.send(&format!("<iq type='result' id='{}' to='localhost'/>", e.attr("id").unwrap_or_default()))
                    .await;
            }
            None => break,
            other => panic!("new session: {other:?}"),
        }
    }
}

/// Sends a bind request for `resource` with `id`, and expects `resource-constraint`.
async fn expect_bind_refused_for_too_many_resources(client: &mut crate::support::Client, resource: &str, id: &str) {
    client
        .send(&format!("<iq type='set' id='{id}'><bind xmlns='{NS_BIND}'><resource>{resource}</resource></bind></iq>"))
        .await;
    client
        .expect(&format!(
            "<iq type='error' id='{id}'>\
               <bind xmlns='{NS_BIND}'><resource>{resource}</resource></bind>\
               <error type='wait'>\
                 <resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
                 <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{{any}}</text>\
               </error>\
             </iq>"
        ))
        .await;
}

/// RFC 6120 §7.6.2.1: beyond `limits.max_resources_per_account` simultaneous resources a
/// bind gets `resource-constraint` (type `wait`) and the stream stays open. Replacing a
/// resource in use (§7.7.2.2) is no extra resource; once one leaves, the refused stream
/// may bind.
#[tokio::test]
async fn binds_beyond_the_account_limit_get_resource_constraint_until_a_resource_leaves() {
    let server = TestServer::with(|c| c.limits.max_resources_per_account = 2).await;
    server.add_user("alice@localhost", "pw").await;
    server.add_user("bob@localhost", "pw").await;
    let mut one = server.session("alice", "pw", "one").await;
    let mut two = server.session("alice", "pw", "two").await;
    let mut third = server.authenticated("alice", "pw").await;
    expect_bind_refused_for_too_many_resources(&mut third, "three", "b1").await;
    // Each account has its own limit.
    server.session("bob", "pw", "three").await;
    // A conflict re-bind replaces "two": still two resources.
    let mut new_two = server.authenticated("alice", "pw").await;
    assert_eq!(new_two.bind(Some("two")).await, "alice@localhost/two");
    two.expect_stream_error("conflict").await;
    expect_bind_refused_for_too_many_resources(&mut third, "three", "b2").await;
    // "one" leaves (its resource is gone once the server closed its stream).
    one.send("</stream:stream>").await;
    one.expect_closed().await;
    assert_eq!(third.bind(Some("three")).await, "alice@localhost/three");
    third.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    third.expect("<iq type='result' id='p1' from='localhost' to='alice@localhost/three'/>").await;
}

/// A client that sends its bind request and resets the connection at once: the server
/// registers the resource, then cannot write the bind result. The resource must not stay
/// registered (the account would look online for ever, and stanzas for it would wait in a
/// queue nobody reads): an iq to it is answered `service-unavailable`.
#[tokio::test]
async fn a_bind_whose_result_cannot_be_written_leaves_no_resource() {
    let server = server_with_alice().await;
    let mut probe = server.session("alice", "pw", "probe").await;
    let gone = server.authenticated("alice", "pw").await;
    gone.send_and_reset(&format!(
        "<iq type='set' id='b1'><bind xmlns='{NS_BIND}'><resource>gone</resource></bind></iq>"
    ))
    .await;
    // Its connection is over once the server released its admission.
    let deadline = tokio::time::Instant::now() + crate::support::TIMEOUT;
    while server.server().connections() > 1 {
        assert!(tokio::time::Instant::now() < deadline, "the reset connection never ended");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    probe.send("<iq type='get' id='q1' to='alice@localhost/gone'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    probe
        .expect(
            "<iq type='error' id='q1' from='alice@localhost/gone' to='alice@localhost/probe'>\
               <ping xmlns='urn:xmpp:ping'/>\
               <error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>\
             </iq>",
        )
        .await;
}
