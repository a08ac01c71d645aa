//! RFC 6120 §8.2.3 (iq semantics), §8.3 (stanza errors), §11 (unsupported stanza types);
//! what the server answers itself: XEP-0199 ping, XEP-0030 disco, XEP-0092 version; and
//! XEP-0199 §4.2 pings from the server to idle clients.

use crate::support::xml::show;
use crate::support::{Client, TestServer, NS_PING};
use std::collections::BTreeSet;

const NS_INFO: &str = "http://jabber.org/protocol/disco#info";
const NS_ITEMS: &str = "http://jabber.org/protocol/disco#items";
const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

async fn alice() -> (TestServer, Client) {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "pw").await;
    server.add_user("bob@localhost", "pw").await;
    let client = server.session("alice", "pw", "r").await;
    (server, client)
}

/// Checks a disco#info result: its identities (category, type) and its feature set.
fn assert_disco_info(reply: &xmpp_parsers::minidom::Element, identity: (&str, &str), features: &[&str]) {
    assert_eq!(reply.attr("type"), Some("result"), "{}", show(reply));
    let query = reply.get_child("query", NS_INFO).expect("disco#info query");
    let identities: Vec<(Option<&str>, Option<&str>)> =
        query.children().filter(|c| c.is("identity", NS_INFO)).map(|c| (c.attr("category"), c.attr("type"))).collect();
    assert_eq!(identities, vec![(Some(identity.0), Some(identity.1))], "{}", show(reply));
    let got: BTreeSet<&str> =
        query.children().filter(|c| c.is("feature", NS_INFO)).filter_map(|c| c.attr("var")).collect();
    let want: BTreeSet<&str> = features.iter().copied().collect();
    assert_eq!(got, want, "{}", show(reply));
    let others: Vec<&str> = query
        .children()
        .filter(|c| !c.is("identity", NS_INFO) && !c.is("feature", NS_INFO))
        .map(|c| c.name())
        .collect();
    assert!(others.is_empty(), "unexpected children {others:?}");
}

#[tokio::test]
async fn iq_without_id_is_bad_request() {
    let (_server, mut client) = alice().await;
    client.send("<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    client
        .expect(&format!(
            "<iq type='error' from='localhost' to='alice@localhost/r'><ping xmlns='{NS_PING}'/>\
             <error type='modify'><bad-request xmlns='{STANZAS}'/><text xmlns='{STANZAS}'>{{any}}</text></error></iq>"
        ))
        .await;
}

#[tokio::test]
async fn iq_without_type_is_bad_request() {
    let (_server, mut client) = alice().await;
    client.send("<iq id='t1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    client
        .expect(&format!(
            "<iq type='error' id='t1' from='localhost' to='alice@localhost/r'><ping xmlns='{NS_PING}'/>\
             <error type='modify'><bad-request xmlns='{STANZAS}'/><text xmlns='{STANZAS}'>{{any}}</text></error></iq>"
        ))
        .await;
}

#[tokio::test]
async fn iq_get_without_child_is_bad_request() {
    let (_server, mut client) = alice().await;
    client.send("<iq type='get' id='e1' to='localhost'/>").await;
    client
        .expect(&format!(
            "<iq type='error' id='e1' from='localhost' to='alice@localhost/r'>\
             <error type='modify'><bad-request xmlns='{STANZAS}'/><text xmlns='{STANZAS}'>{{any}}</text></error></iq>"
        ))
        .await;
}

#[tokio::test]
async fn iq_get_with_two_children_is_bad_request() {
    let (_server, mut client) = alice().await;
    client
        .send("<iq type='get' id='e2' to='localhost'><ping xmlns='urn:xmpp:ping'/><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    client
        .expect(&format!(
            "<iq type='error' id='e2' from='localhost' to='alice@localhost/r'>\
             <ping xmlns='{NS_PING}'/><ping xmlns='{NS_PING}'/>\
             <error type='modify'><bad-request xmlns='{STANZAS}'/><text xmlns='{STANZAS}'>{{any}}</text></error></iq>"
        ))
        .await;
}

#[tokio::test]
async fn unknown_payload_to_server_is_service_unavailable() {
    let (_server, mut client) = alice().await;
    client.send("<iq type='get' id='u1' to='localhost'><foo xmlns='urn:example:foo'/></iq>").await;
    client
        .expect(&format!(
            "<iq type='error' id='u1' from='localhost' to='alice@localhost/r'><foo xmlns='urn:example:foo'/>\
             <error type='cancel'><service-unavailable xmlns='{STANZAS}'/></error></iq>"
        ))
        .await;
}

#[tokio::test]
async fn unknown_payload_to_own_account_is_service_unavailable() {
    let (_server, mut client) = alice().await;
    client.send("<iq type='set' id='u2'><foo xmlns='urn:example:foo'/></iq>").await;
    client
        .expect(&format!(
            "<iq type='error' id='u2' to='alice@localhost/r'><foo xmlns='urn:example:foo'/>\
             <error type='cancel'><service-unavailable xmlns='{STANZAS}'/></error></iq>"
        ))
        .await;
}

#[tokio::test]
async fn unknown_top_level_element_is_unsupported_stanza_type() {
    let (_server, mut client) = alice().await;
    client.send("<foo xmlns='jabber:client'/>").await;
    client.expect_stream_error("unsupported-stanza-type").await;
}

#[tokio::test]
async fn stanza_in_foreign_namespace_is_unsupported_stanza_type() {
    let (_server, mut client) = alice().await;
    client.send("<message xmlns='urn:example:other' to='bob@localhost'><body>x</body></message>").await;
    client.expect_stream_error("unsupported-stanza-type").await;
}

#[tokio::test]
async fn ping_to_server_is_answered() {
    let (_server, mut client) = alice().await;
    client.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    client.expect("<iq type='result' id='p1' from='localhost' to='alice@localhost/r'/>").await;
}

#[tokio::test]
async fn ping_to_own_bare_jid_is_answered() {
    let (_server, mut client) = alice().await;
    client.send("<iq type='get' id='p2' to='alice@localhost'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    client.expect("<iq type='result' id='p2' from='alice@localhost' to='alice@localhost/r'/>").await;
    client.send("<iq type='get' id='p3'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    client.expect("<iq type='result' id='p3' to='alice@localhost/r'/>").await;
}

#[tokio::test]
async fn disco_info_of_the_server_lists_exactly_what_works() {
    let (_server, mut client) = alice().await;
    client.send(&format!("<iq type='get' id='d1' to='localhost'><query xmlns='{NS_INFO}'/></iq>")).await;
    let reply = client.recv().await;
    assert_eq!(reply.attr("from"), Some("localhost"));
    assert_eq!(reply.attr("to"), Some("alice@localhost/r"));
    assert_eq!(reply.attr("id"), Some("d1"));
    assert_disco_info(
        &reply,
        ("server", "im"),
        &[
            NS_INFO,
            NS_ITEMS,
            NS_PING,
            "jabber:iq:version",
            "jabber:iq:last",
            "urn:xmpp:blocking",
            "http://jabber.org/protocol/offline",
            "urn:xmpp:carbons:2",
            "vcard-temp",
            "jabber:iq:private",
        ],
    );
}

#[tokio::test]
async fn disco_info_of_own_account_is_a_registered_account() {
    let (_server, mut client) = alice().await;
    client.send(&format!("<iq type='get' id='d2' to='alice@localhost'><query xmlns='{NS_INFO}'/></iq>")).await;
    let reply = client.recv().await;
    assert_eq!(reply.attr("from"), Some("alice@localhost"));
    assert_eq!(reply.attr("id"), Some("d2"));
    assert_disco_info(&reply, ("account", "registered"), &[NS_INFO, NS_ITEMS, NS_PING, "jabber:iq:last", "vcard-temp"]);
}

/// The server answers for a local account's bare JID even while it is offline.
#[tokio::test]
async fn disco_info_of_another_local_account() {
    let (_server, mut client) = alice().await;
    client.send(&format!("<iq type='get' id='d3' to='bob@localhost'><query xmlns='{NS_INFO}'/></iq>")).await;
    let reply = client.recv().await;
    assert_eq!(reply.attr("from"), Some("bob@localhost"));
    assert_disco_info(&reply, ("account", "registered"), &[NS_INFO, NS_ITEMS, NS_PING, "jabber:iq:last", "vcard-temp"]);
}

/// RFC 6121 §8.5.1: an iq to an account that does not exist is service-unavailable.
#[tokio::test]
async fn iq_to_unknown_account_is_service_unavailable() {
    let (_server, mut client) = alice().await;
    client.send(&format!("<iq type='get' id='d4' to='nobody@localhost'><query xmlns='{NS_INFO}'/></iq>")).await;
    client
        .expect(&format!(
            "<iq type='error' id='d4' from='nobody@localhost' to='alice@localhost/r'><query xmlns='{NS_INFO}'/>\
             <error type='cancel'><service-unavailable xmlns='{STANZAS}'/></error></iq>"
        ))
        .await;
}

#[tokio::test]
async fn disco_items_of_the_server_is_empty() {
    let (_server, mut client) = alice().await;
    client.send(&format!("<iq type='get' id='i1' to='localhost'><query xmlns='{NS_ITEMS}'/></iq>")).await;
    client
        .expect(&format!(
            "<iq type='result' id='i1' from='localhost' to='alice@localhost/r'><query xmlns='{NS_ITEMS}'/></iq>"
        ))
        .await;
}

#[tokio::test]
async fn software_version_is_stanzad() {
    let (_server, mut client) = alice().await;
    client.send("<iq type='get' id='v1' to='localhost'><query xmlns='jabber:iq:version'/></iq>").await;
    client
        .expect(
            "<iq type='result' id='v1' from='localhost' to='alice@localhost/r'>\
             <query xmlns='jabber:iq:version'><name>stanzad</name><version>{any}</version></query></iq>",
        )
        .await;
}

/// Results and errors addressed to the server are absorbed, never answered.
#[tokio::test]
async fn iq_result_and_error_to_server_get_no_answer() {
    let (_server, mut client) = alice().await;
    client.send("<iq type='result' id='x1' to='localhost'/>").await;
    client
        .send(&format!(
            "<iq type='error' id='x2' to='localhost'><error type='cancel'><item-not-found xmlns='{STANZAS}'/></error></iq>"
        ))
        .await;
    client.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    client.expect("<iq type='result' id='p1' from='localhost' to='alice@localhost/r'/>").await;
}

async fn pinging_server() -> (TestServer, Client) {
    let server = TestServer::with(|c| {
        c.timeouts.ping_interval_secs = 1;
        c.timeouts.ping_timeout_secs = 1;
    })
    .await;
    server.add_user("alice@localhost", "pw").await;
    let client = server.session("alice", "pw", "r").await;
    (server, client)
}

/// Waits for the server's ping; returns its id.
async fn expect_server_ping(client: &mut Client) -> String {
    let ping = client
        .expect(&format!(
            "<iq type='get' id='{{any}}' from='localhost' to='alice@localhost/r'><ping xmlns='{NS_PING}'/></iq>"
        ))
        .await;
    ping.attr("id").expect("ping id").to_owned()
}

#[tokio::test]
async fn unanswered_server_ping_is_connection_timeout() {
    let (_server, mut client) = pinging_server().await;
    expect_server_ping(&mut client).await;
    client.expect_stream_error("connection-timeout").await;
}

#[tokio::test]
async fn answered_server_ping_keeps_the_stream() {
    let (_server, mut client) = pinging_server().await;
    let first = expect_server_ping(&mut client).await;
    client.send(&format!("<iq type='result' id='{first}' to='localhost'/>")).await;
    // Longer than interval + timeout: the stream stays up and the server pings again.
    let second = expect_server_ping(&mut client).await;
    assert_ne!(first, second, "each ping has its own id");
    client.send(&format!("<iq type='result' id='{second}' to='localhost'/>")).await;
    client.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    client.expect("<iq type='result' id='p1' from='localhost' to='alice@localhost/r'/>").await;
}

/// XEP-0478: the advertised idle time is the ping interval plus its timeout.
#[tokio::test]
async fn advertised_idle_seconds_follow_the_ping_settings() {
    let server = TestServer::with(|c| {
        c.timeouts.ping_interval_secs = 7;
        c.timeouts.ping_timeout_secs = 3;
        c.limits.max_stanza_bytes = 50_000;
    })
    .await;
    server.add_user("alice@localhost", "pw").await;
    let client = server.authenticated("alice", "pw").await;
    let limits = client
        .features
        .as_ref()
        .and_then(|f| f.get_child("limits", "urn:xmpp:stream-limits:0"))
        .expect("XEP-0478 limits");
    crate::support::xml::assert_matches(
        limits,
        "<limits xmlns='urn:xmpp:stream-limits:0'><max-bytes>50000</max-bytes><idle-seconds>10</idle-seconds></limits>",
    );
}

#[tokio::test]
async fn disco_info_of_an_unknown_node_is_item_not_found() {
    let (_server, mut client) = alice().await;
    client
        .send(&format!("<iq type='get' id='n1' to='localhost'><query xmlns='{NS_INFO}' node='urn:example:nope'/></iq>"))
        .await;
    client
        .expect(&format!(
            "<iq type='error' id='n1' from='localhost' to='alice@localhost/r'><query xmlns='{NS_INFO}' node='urn:example:nope'/>\
             <error type='cancel'><item-not-found xmlns='{STANZAS}'/></error></iq>"
        ))
        .await;
}
