//! XEP-0013 flexible offline message retrieval (docs/delivery.md): before its initial
//! presence a client counts (disco#info), lists (disco#items), views, removes, fetches and
//! purges its stored messages itself, and then gets no automatic backlog.

use crate::roster::kit::{self, error_of, iq};
use crate::support::{xml, Client, TestServer, NS_CLIENT, NS_PING};
use xmpp_parsers::minidom::Element;

const PW: &str = "pw";
const NS: &str = "http://jabber.org/protocol/offline";
const NS_INFO: &str = "http://jabber.org/protocol/disco#info";
const NS_ITEMS: &str = "http://jabber.org/protocol/disco#items";
const NS_DELAY: &str = "urn:xmpp:delay";
const BOB: &str = "bob@localhost/phone";

/// A server where Alice stored `n` chat messages (ids and bodies `m1`..) for Bob, and
/// Bob's bound session, which sent no presence.
async fn bob_with_stored(n: usize) -> (TestServer, Client) {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", PW).await;
    server.add_user("bob@localhost", PW).await;
    let mut alice = server.session("alice", PW, "laptop").await;
    let bytes: String = (1..=n)
        .map(|i| format!("<message to='bob@localhost' type='chat' id='m{i}'><body>m{i}</body></message>"))
        .collect();
    alice.send(&bytes).await;
    alice.send(&format!("<iq type='get' id='stored' to='localhost'><ping xmlns='{NS_PING}'/></iq>")).await;
    alice.expect("<iq type='result' id='stored' from='localhost' to='alice@localhost/laptop'/>").await;
    let bob = server.session("bob", PW, "phone").await;
    (server, bob)
}

/// Like [`bob_with_stored`], with messages of 200 kB each.
async fn bob_with_large_stored(n: usize) -> (TestServer, Client) {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", PW).await;
    server.add_user("bob@localhost", PW).await;
    let mut alice = server.session("alice", PW, "laptop").await;
    let pad = "p".repeat(200_000);
    for i in 1..=n {
        let message =
            format!("<message to='bob@localhost' type='chat' id='m{i}' pad='{pad}'><body>m{i}</body></message>");
        alice.send(&format!("{message}<iq type='get' id='s{i}' to='localhost'><ping xmlns='{NS_PING}'/></iq>")).await;
        alice.expect(&format!("<iq type='result' id='s{i}' from='localhost' to='alice@localhost/laptop'/>")).await;
    }
    let bob = server.session("bob", PW, "phone").await;
    (server, bob)
}

/// A stored message as XEP-0013 sends it: with its delay and the `<offline/>` marker.
fn flagged(id: &str, node: &str) -> String {
    format!(
        "<message from='alice@localhost/laptop' to='bob@localhost' type='chat' id='{id}'><body>{id}</body>\
         <delay xmlns='{NS_DELAY}' from='localhost' stamp='{{any}}'/>\
         <offline xmlns='{NS}'><item node='{node}'/></offline></message>"
    )
}

/// Sends an iq with id `id`; returns what came before its answer, and the answer.
async fn request(client: &mut Client, id: &str, xml: &str) -> (Vec<Element>, Element) {
    client.send(xml).await;
    let mut before = Vec::new();
    loop {
        let element = client.recv().await;
        if element.is("iq", NS_CLIENT) && element.attr("id") == Some(id) {
            return (before, element);
        }
        before.push(element);
    }
}

/// The number_of_messages of Bob's offline node (XEP-0013 §2.2), the whole answer checked.
async fn count(bob: &mut Client) -> u64 {
    let id = kit::fresh_id("count");
    let reply = iq(
        bob,
        &id,
        &format!("<iq type='get' id='{id}' to='bob@localhost'><query xmlns='{NS_INFO}' node='{NS}'/></iq>"),
    )
    .await;
    xml::assert_matches(
        &reply,
        &format!(
            "<iq type='result' id='{id}' from='bob@localhost' to='{BOB}'><query xmlns='{NS_INFO}' node='{NS}'>\
             <identity category='automation' type='message-list'/><feature var='{NS}'/>\
             <x xmlns='jabber:x:data' type='result'>\
             <field var='FORM_TYPE' type='hidden'><value>{NS}</value></field>\
             <field var='number_of_messages'><value>{{any}}</value></field></x></query></iq>"
        ),
    );
    let form = reply.get_child("query", NS_INFO).and_then(|q| q.get_child("x", "jabber:x:data")).expect("form");
    let field = form.children().find(|f| f.attr("var") == Some("number_of_messages")).expect("number_of_messages");
    let value = field.children().next().map(Element::text).unwrap_or_default();
    value.parse().unwrap_or_else(|_| panic!("number_of_messages {value:?}: {}", xml::show(&reply)))
}

/// Bob's message headers (XEP-0013 §2.3): (node, name) per message.
async fn headers(bob: &mut Client) -> Vec<(String, String)> {
    let id = kit::fresh_id("headers");
    let reply = iq(
        bob,
        &id,
        &format!("<iq type='get' id='{id}' to='bob@localhost'><query xmlns='{NS_ITEMS}' node='{NS}'/></iq>"),
    )
    .await;
    assert_eq!((reply.attr("type"), reply.attr("to")), (Some("result"), Some(BOB)), "{}", xml::show(&reply));
    let query = reply.get_child("query", NS_ITEMS).unwrap_or_else(|| panic!("no query: {}", xml::show(&reply)));
    assert_eq!(query.attr("node"), Some(NS), "{}", xml::show(&reply));
    query
        .children()
        .map(|item| {
            xml::assert_matches(
                item,
                &format!("<item xmlns='{NS_ITEMS}' jid='bob@localhost' node='{{any}}' name='{{any}}'/>"),
            );
            (item.attr("node").expect("node").to_owned(), item.attr("name").expect("name").to_owned())
        })
        .collect()
}

fn result(id: &str) -> String {
    format!("<iq type='result' id='{id}' to='{BOB}'/>")
}

/// Initial presence and a ping: nothing but the presence echo may come before the answer.
async fn assert_no_backlog_at_presence(bob: &mut Client) {
    bob.send(&format!("<presence/><iq type='get' id='after' to='localhost'><ping xmlns='{NS_PING}'/></iq>")).await;
    let mut got = Vec::new();
    let mut echo = false;
    let mut answered = false;
    while !(echo && answered) {
        let element = bob.recv().await;
        if element.is("presence", NS_CLIENT) && element.attr("from") == Some(BOB) {
            echo = true;
        } else if element.is("iq", NS_CLIENT) && element.attr("id") == Some("after") {
            xml::assert_matches(&element, &format!("<iq type='result' id='after' from='localhost' to='{BOB}'/>"));
            answered = true;
        } else {
            got.push(element);
        }
    }
    assert!(got.is_empty(), "no automatic backlog after XEP-0013 use, got:\n{}", kit::list(&got));
    kit::assert_quiet(bob).await;
}

// ---- §2.1 / §2.2 ----

#[tokio::test]
async fn the_server_advertises_flexible_offline_and_counts_own_messages_only() {
    let (_server, mut bob) = bob_with_stored(3).await;
    let reply =
        iq(&mut bob, "d1", &format!("<iq type='get' id='d1' to='localhost'><query xmlns='{NS_INFO}'/></iq>")).await;
    let query = reply.get_child("query", NS_INFO).unwrap_or_else(|| panic!("{}", xml::show(&reply)));
    assert!(
        query.children().any(|f| f.is("feature", NS_INFO) && f.attr("var") == Some(NS)),
        "the server lists {NS}: {}",
        xml::show(&reply)
    );

    assert_eq!(count(&mut bob).await, 3);

    let reply = iq(
        &mut bob,
        "d2",
        &format!("<iq type='get' id='d2' to='alice@localhost'><query xmlns='{NS_INFO}' node='{NS}'/></iq>"),
    )
    .await;
    assert_eq!(error_of(&reply).1, "forbidden", "{}", xml::show(&reply));
    assert_eq!(reply.attr("to"), Some(BOB), "{}", xml::show(&reply));
}

// ---- §2.3 – §2.7 ----

#[tokio::test]
async fn headers_view_remove_fetch_and_purge() {
    let (_server, mut bob) = bob_with_stored(3).await;
    let list = headers(&mut bob).await;
    assert_eq!(list.len(), 3, "{list:?}");
    assert!(list.iter().all(|(_, name)| name == "alice@localhost/laptop"), "{list:?}");
    let nodes: Vec<String> = list.into_iter().map(|(node, _)| node).collect();

    // §2.4: view one message.
    let (got, answer) = request(
        &mut bob,
        "v1",
        &format!(
            "<iq type='get' id='v1'><offline xmlns='{NS}'><item action='view' node='{}'/></offline></iq>",
            nodes[1]
        ),
    )
    .await;
    xml::assert_matches(&answer, &result("v1"));
    assert_eq!(got.len(), 1, "{}", kit::list(&got));
    xml::assert_matches(&got[0], &flagged("m2", &nodes[1]));

    // §2.5: remove it; it is gone.
    let (got, answer) = request(
        &mut bob,
        "r1",
        &format!(
            "<iq type='set' id='r1'><offline xmlns='{NS}'><item action='remove' node='{}'/></offline></iq>",
            nodes[1]
        ),
    )
    .await;
    assert!(got.is_empty(), "{}", kit::list(&got));
    xml::assert_matches(&answer, &result("r1"));
    assert_eq!(count(&mut bob).await, 2);
    let (got, answer) = request(
        &mut bob,
        "r2",
        &format!(
            "<iq type='set' id='r2'><offline xmlns='{NS}'><item action='remove' node='{}'/></offline></iq>",
            nodes[1]
        ),
    )
    .await;
    assert!(got.is_empty(), "{}", kit::list(&got));
    assert_eq!(error_of(&answer).1, "item-not-found", "{}", xml::show(&answer));

    // §2.6: fetch all; nothing is removed.
    let (got, answer) =
        request(&mut bob, "f1", &format!("<iq type='get' id='f1'><offline xmlns='{NS}'><fetch/></offline></iq>")).await;
    xml::assert_matches(&answer, &result("f1"));
    assert_eq!(got.len(), 2, "{}", kit::list(&got));
    xml::assert_matches(&got[0], &flagged("m1", &nodes[0]));
    xml::assert_matches(&got[1], &flagged("m3", &nodes[2]));
    assert_eq!(count(&mut bob).await, 2);

    // §2.7: purge.
    let (got, answer) =
        request(&mut bob, "p1", &format!("<iq type='set' id='p1'><offline xmlns='{NS}'><purge/></offline></iq>")).await;
    assert!(got.is_empty(), "{}", kit::list(&got));
    xml::assert_matches(&answer, &result("p1"));
    assert_eq!(count(&mut bob).await, 0);
    assert!(headers(&mut bob).await.is_empty());

    assert_no_backlog_at_presence(&mut bob).await;
}

/// A purge removes what the client was shown (fetched or viewed), not a message that
/// arrived after its fetch: that one the client never saw, and it stays for the next fetch.
#[tokio::test]
async fn a_purge_keeps_what_arrived_after_the_fetch() {
    let (server, mut bob) = bob_with_stored(2).await;
    let fetch = format!("<iq type='get' id='f1'><offline xmlns='{NS}'><fetch/></offline></iq>");
    let (got, _) = request(&mut bob, "f1", &fetch).await;
    assert_eq!(got.len(), 2, "{}", kit::list(&got));
    let mut alice = server.session("alice", PW, "laptop").await;
    let late = "<message to='bob@localhost' type='chat' id='late'><body>late</body></message>";
    alice.send(&format!("{late}<iq type='get' id='s' to='localhost'><ping xmlns='{NS_PING}'/></iq>")).await;
    alice.expect("<iq type='result' id='s' from='localhost' to='alice@localhost/laptop'/>").await;
    assert_eq!(count(&mut bob).await, 3);

    let (_, answer) =
        request(&mut bob, "p1", &format!("<iq type='set' id='p1'><offline xmlns='{NS}'><purge/></offline></iq>")).await;
    xml::assert_matches(&answer, &result("p1"));
    assert_eq!(count(&mut bob).await, 1, "the message that came after the fetch is kept");
    let (got, _) = request(&mut bob, "f2", &fetch.replace("f1", "f2")).await;
    assert_eq!(got.len(), 1, "{}", kit::list(&got));
    assert_eq!(got[0].attr("id"), Some("late"), "{}", xml::show(&got[0]));
}

/// A fetch hands over one bounded batch (at most 100 messages and 1 MiB, one message at
/// least): a client purges it and fetches again until nothing is left; no message is
/// missed or given twice.
#[tokio::test]
async fn large_queues_are_fetched_in_bounded_batches() {
    let (_server, mut bob) = bob_with_large_stored(12).await;
    let mut fetched = Vec::new();
    for round in 0..12 {
        let id = format!("f{round}");
        let (got, _) =
            request(&mut bob, &id, &format!("<iq type='get' id='{id}'><offline xmlns='{NS}'><fetch/></offline></iq>"))
                .await;
        if got.is_empty() {
            break;
        }
        assert!(got.len() <= 5, "1 MiB holds five messages of 200 kB: {}", got.len());
        fetched.extend(got.iter().map(|m| m.attr("id").unwrap_or_default().to_owned()));
        let id = format!("p{round}");
        request(&mut bob, &id, &format!("<iq type='set' id='{id}'><offline xmlns='{NS}'><purge/></offline></iq>"))
            .await;
    }
    let expected: Vec<String> = (1..=12).map(|i| format!("m{i}")).collect();
    assert_eq!(fetched, expected);
    assert_eq!(count(&mut bob).await, 0);
}

/// One request hands over at most one batch, however many commands it holds: a second
/// `<fetch/>` is refused (it would repeat the first), and views past the batch's bytes
/// get `resource-constraint`, before anything is sent.
#[tokio::test]
async fn one_request_hands_over_one_batch_at_most() {
    let (_server, mut bob) = bob_with_large_stored(6).await;
    let twice = format!("<iq type='get' id='f2'><offline xmlns='{NS}'><fetch/><fetch/></offline></iq>");
    let (got, answer) = request(&mut bob, "f2", &twice).await;
    assert!(got.is_empty(), "{}", kit::list(&got));
    assert_eq!(error_of(&answer).1, "policy-violation", "{}", xml::show(&answer));

    let nodes: Vec<String> = headers(&mut bob).await.into_iter().map(|(node, _)| node).collect();
    let items: String = nodes.iter().map(|n| format!("<item action='view' node='{n}'/>")).collect();
    let views = format!("<iq type='get' id='v6'><offline xmlns='{NS}'>{items}</offline></iq>");
    let (got, answer) = request(&mut bob, "v6", &views).await;
    assert!(got.is_empty(), "{}", kit::list(&got));
    assert_eq!(error_of(&answer).1, "resource-constraint", "six of 200 kB are more than 1 MiB: {}", xml::show(&answer));
    let items: String = nodes[..2].iter().map(|n| format!("<item action='view' node='{n}'/>")).collect();
    let (got, answer) =
        request(&mut bob, "v2", &format!("<iq type='get' id='v2'><offline xmlns='{NS}'>{items}</offline></iq>")).await;
    xml::assert_matches(&answer, &result("v2"));
    assert_eq!(got.len(), 2, "{}", kit::list(&got));
}

/// Messages left on the server after XEP-0013 use stay there: no flood at presence.
#[tokio::test]
async fn messages_left_after_a_fetch_are_not_flooded_at_presence() {
    let (_server, mut bob) = bob_with_stored(2).await;
    let (got, answer) =
        request(&mut bob, "f1", &format!("<iq type='get' id='f1'><offline xmlns='{NS}'><fetch/></offline></iq>")).await;
    xml::assert_matches(&answer, &result("f1"));
    assert_eq!(got.len(), 2, "{}", kit::list(&got));
    assert_no_backlog_at_presence(&mut bob).await;
    assert_eq!(count(&mut bob).await, 2, "the messages stay until removed or purged");
}

/// XEP-0013 §2.2: after a disco request to the offline node (info or items), the server
/// MUST NOT send the flood at initial presence; docs/delivery.md counts "count" and "list"
/// among the ways of retrieving that suppress the backlog.
#[tokio::test]
async fn counting_alone_suppresses_the_backlog() {
    let (_server, mut bob) = bob_with_stored(2).await;
    assert_eq!(count(&mut bob).await, 2);
    assert_no_backlog_at_presence(&mut bob).await;
}

#[tokio::test]
async fn listing_headers_alone_suppresses_the_backlog() {
    let (_server, mut bob) = bob_with_stored(2).await;
    assert_eq!(headers(&mut bob).await.len(), 2);
    assert_no_backlog_at_presence(&mut bob).await;
}

/// A stored dialect read receipt fetched with XEP-0013 by a standard client is in the
/// standard form, like the automatic backlog: no dialect `participant` (docs/dialect.md).
#[tokio::test]
async fn a_fetched_dialect_receipt_is_in_standard_form() {
    let (server, mut bob) = bob_with_stored(0).await;
    let mut alice = server.session("alice", PW, "phone").await;
    alice.send("<enable xmlns='urn:stanzad:dialect:0'/>").await;
    alice.expect("<enabled xmlns='urn:stanzad:dialect:0'/>").await;
    alice.expect("<ib xmlns='urn:stanzad:dialect:0' from='localhost'><offline count='0'/></ib>").await;
    alice
        .send(
            "<receipt xmlns='urn:stanzad:dialect:0' id='m1' to='bob@localhost' type='read' \
             participant='carol@localhost'/>",
        )
        .await;
    let (_, answer) =
        request(&mut alice, "s", &format!("<iq type='get' id='s' to='localhost'><ping xmlns='{NS_PING}'/></iq>")).await;
    assert_eq!(answer.attr("type"), Some("result"), "{}", xml::show(&answer));
    let nodes: Vec<String> = headers(&mut bob).await.into_iter().map(|(node, _)| node).collect();
    assert_eq!(nodes.len(), 1);
    let (got, answer) =
        request(&mut bob, "f1", &format!("<iq type='get' id='f1'><offline xmlns='{NS}'><fetch/></offline></iq>")).await;
    xml::assert_matches(&answer, &result("f1"));
    assert_eq!(got.len(), 1, "{}", kit::list(&got));
    xml::assert_matches(
        &got[0],
        &format!(
            "<message from='alice@localhost/phone' to='bob@localhost' id='{{any}}'>\
             <displayed xmlns='urn:xmpp:chat-markers:0' id='m1'/>\
             <delay xmlns='{NS_DELAY}' from='localhost' stamp='{{any}}'/>\
             <offline xmlns='{NS}'><item node='{}'/></offline></message>",
            nodes[0]
        ),
    );
}
