//! XEP-0313 message archive management (`urn:xmpp:mam:2`) with XEP-0359 stanza ids and
//! XEP-0059 result set management: what is archived and for whom, the stanza-id on the
//! recipient's copy, paging both ways, filters, catching up after an id, preferences
//! (XEP-0441), errors, discovery, restarts, and offline messages.
//!
//! Messages go between accounts without subscriptions, mostly to the recipient's full JID,
//! so no presence traffic interleaves with them. No test uses a chat message to itself as
//! a barrier (like `roster::kit::drain`): that would be archived. Barriers are pings.

use crate::roster::kit::{error_of, fresh_id, roster_items, NS_ROSTER};
use crate::support::xml::{self, show};
use crate::support::{Client, TestServer, NS_CLIENT, NS_PING};
use stanzad::config::Config;
use xmpp_parsers::minidom::Element;

pub(crate) const PW: &str = "pw";
const NS: &str = "urn:xmpp:mam:2";
const NS_SID: &str = "urn:xmpp:sid:0";
const NS_RSM: &str = "http://jabber.org/protocol/rsm";
const NS_FORWARD: &str = "urn:xmpp:forward:0";
const NS_DELAY: &str = "urn:xmpp:delay";
const NS_DATA: &str = "jabber:x:data";
const NS_HINTS: &str = "urn:xmpp:hints";
const NS_CHATSTATES: &str = "http://jabber.org/protocol/chatstates";
const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";

/// The archive on (the test default is off), then `configure`.
pub(crate) async fn server_with(configure: impl FnOnce(&mut Config)) -> TestServer {
    let server = TestServer::with(|config| {
        config.archive.enabled = true;
        configure(config);
    })
    .await;
    for user in ["alice", "bob", "carol"] {
        server.add_user(&format!("{user}@localhost"), PW).await;
    }
    server
}

async fn server() -> TestServer {
    server_with(|_| {}).await
}

/// Alice at her desk and Bob on his phone, available (no subscriptions: no presence
/// goes between them).
async fn alice_and_bob(server: &TestServer) -> (Client, Client) {
    let alice = server.available("alice", PW, "desk", 0).await;
    let bob = server.available("bob", PW, "phone", 0).await;
    (alice, bob)
}

/// A ping to the server, whose answer must be the next thing `client` reads: everything
/// it sent before was handled (routed, archived, stored) without an error.
async fn sync(client: &mut Client) {
    let id = fresh_id("sync");
    let jid = client.jid().to_owned();
    client.send(&format!("<iq type='get' id='{id}' to='localhost'><ping xmlns='{NS_PING}'/></iq>")).await;
    client.expect(&format!("<iq type='result' id='{id}' from='localhost' to='{jid}'/>")).await;
}

/// `from` pings the full JID of `to`; that iq must be the next thing `to` reads, so
/// nothing `from` sent before it is queued for `to`.
async fn barrier(from: &mut Client, to: &mut Client) {
    let id = fresh_id("barrier");
    let (sender, recipient) = (from.jid().to_owned(), to.jid().to_owned());
    from.send(&format!("<iq type='get' id='{id}' to='{recipient}'><ping xmlns='{NS_PING}'/></iq>")).await;
    to.expect(&format!("<iq type='get' id='{id}' from='{sender}' to='{recipient}'><ping xmlns='{NS_PING}'/></iq>"))
        .await;
}

/// The value of the `<stanza-id/>` by `by` in a received message; panics unless there is
/// exactly one XEP-0359 stanza-id, and it is by `by`.
fn stanza_id(message: &Element, by: &str) -> String {
    let ids: Vec<&Element> = message.children().filter(|c| c.is("stanza-id", NS_SID)).collect();
    let [sid] = ids.as_slice() else { panic!("one stanza-id wanted: {}", show(message)) };
    assert_eq!(sid.attr("by"), Some(by), "{}", show(message));
    let id = sid.attr("id").unwrap_or_default().to_owned();
    assert!(!id.is_empty(), "an empty stanza-id: {}", show(message));
    id
}

/// `from` sends chat messages with these bodies to `to`'s full JID in one write; `to`
/// reads each, in order, with its stanza-id by its own bare JID. Returns those ids.
async fn chats(from: &mut Client, to: &mut Client, bodies: &[String]) -> Vec<String> {
    let recipient = to.jid().to_owned();
    let bytes: String = bodies
        .iter()
        .map(|body| format!("<message to='{recipient}' type='chat' id='{body}'><body>{body}</body></message>"))
        .collect();
    from.send(&bytes).await;
    let (sender, owner) = (from.jid().to_owned(), to.bare().to_owned());
    let mut ids = Vec::new();
    for body in bodies {
        let got = to
            .expect(&format!(
                "<message to='{recipient}' from='{sender}' type='chat' id='{body}'><body>{body}</body>\
                 <stanza-id xmlns='{NS_SID}' by='{owner}' id='{{any}}'/></message>"
            ))
            .await;
        ids.push(stanza_id(&got, &owner));
    }
    ids
}

/// Bodies `prefix0`, `prefix1`, … (also used as the messages' ids).
fn bodies(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// A data form of type submit for a query, with `fields`.
fn form(fields: &str) -> String {
    format!(
        "<x xmlns='{NS_DATA}' type='submit'><field var='FORM_TYPE' type='hidden'><value>{NS}</value></field>\
         {fields}</x>"
    )
}

fn field(var: &str, value: &str) -> String {
    format!("<field var='{var}'><value>{value}</value></field>")
}

fn rsm(inner: &str) -> String {
    format!("<set xmlns='{NS_RSM}'>{inner}</set>")
}

/// The `<delay/>` stamp of a result message.
fn stamp(result: &Element) -> &str {
    let forwarded = result.get_child("result", NS).and_then(|r| r.get_child("forwarded", NS_FORWARD));
    let stamp = forwarded.and_then(|f| f.get_child("delay", NS_DELAY)).and_then(|d| d.attr("stamp"));
    stamp.unwrap_or_else(|| panic!("a delay stamp: {}", show(result)))
}

/// An XEP-0082 date-time in microseconds since the epoch.
fn micros(stamp: &str) -> i64 {
    let date: xmpp_parsers::date::DateTime =
        stamp.parse().unwrap_or_else(|e| panic!("stamp {stamp:?} is not XEP-0082: {e}"));
    date.0.timestamp_micros()
}

/// One answered query: the result messages and the `<fin/>` of the final iq result.
pub(crate) struct Page {
    results: Vec<Element>,
    fin: Element,
}

impl Page {
    /// The archive ids of the results, in the order they came.
    fn ids(&self) -> Vec<String> {
        self.results
            .iter()
            .map(|m| m.get_child("result", NS).and_then(|r| r.attr("id")).expect("a result id").to_owned())
            .collect()
    }

    /// The forwarded (archived) message of each result.
    fn messages(&self) -> Vec<&Element> {
        self.results
            .iter()
            .map(|m| {
                let forwarded = m.get_child("result", NS).and_then(|r| r.get_child("forwarded", NS_FORWARD));
                forwarded.and_then(|f| f.get_child("message", NS_CLIENT)).expect("a forwarded message")
            })
            .collect()
    }

    /// The bodies of the archived messages.
    pub(crate) fn bodies(&self) -> Vec<String> {
        self.messages().iter().map(|m| m.get_child("body", NS_CLIENT).map(Element::text).unwrap_or_default()).collect()
    }

    /// The `<delay/>` stamp of each result, in microseconds since the epoch.
    fn stamps(&self) -> Vec<i64> {
        self.results.iter().map(|m| micros(stamp(m))).collect()
    }

    fn complete(&self) -> &str {
        self.fin.attr("complete").unwrap_or_else(|| panic!("fin without complete: {}", show(&self.fin)))
    }

    fn rsm(&self, name: &str) -> Option<String> {
        self.fin.get_child("set", NS_RSM).expect("an RSM set in fin").get_child(name, NS_RSM).map(Element::text)
    }

    /// The page holds exactly `ids`, its RSM set names its first and last and `count`,
    /// and `<fin/>` says `complete`.
    #[track_caller]
    fn assert(&self, ids: &[String], complete: bool, count: usize) {
        assert_eq!(self.ids(), ids, "the page's results");
        assert_eq!(self.complete(), if complete { "true" } else { "false" }, "complete: {}", show(&self.fin));
        assert_eq!(self.rsm("first"), ids.first().cloned(), "first: {}", show(&self.fin));
        assert_eq!(self.rsm("last"), ids.last().cloned(), "last: {}", show(&self.fin));
        assert_eq!(self.rsm("count"), Some(count.to_string()), "count: {}", show(&self.fin));
    }
}

/// Reads the answer to the query `qid`: result messages, then the iq result with `<fin/>`.
async fn read_page(client: &mut Client, qid: &str) -> Page {
    let (jid, bare) = (client.jid().to_owned(), client.bare().to_owned());
    let mut results = Vec::new();
    loop {
        let element = client.recv().await;
        if element.is("iq", NS_CLIENT) && element.attr("type") == Some("get") && element.has_child("ping", NS_PING) {
            // The server's ping after live messages: answered, as a client does.
            let id = element.attr("id").unwrap_or_default();
            client.send(&format!("<iq type='result' id='{id}' to='localhost'/>")).await;
            continue;
        }
        if element.is("iq", NS_CLIENT) {
            // No `to` on the query: the answer has no `from`.
            let shown = show(&element);
            let attrs = ["type", "id", "to", "from"].map(|a| element.attr(a));
            assert_eq!(attrs, [Some("result"), Some(qid), Some(jid.as_str()), None], "the answer to {qid}: {shown}");
            let children: Vec<&Element> = element.children().collect();
            let [fin] = children[..] else { panic!("one fin: {shown}") };
            assert!(fin.is("fin", NS), "{shown}");
            return Page { results, fin: fin.clone() };
        }
        // §4.2: from the archive (the bare JID) to the querying resource, one result.
        let shown = show(&element);
        assert!(element.is("message", NS_CLIENT), "a result or the fin of {qid}: {shown}");
        assert_eq!((element.attr("to"), element.attr("from")), (Some(jid.as_str()), Some(bare.as_str())), "{shown}");
        let children: Vec<&Element> = element.children().collect();
        let [result] = children[..] else { panic!("one result: {shown}") };
        assert!(result.is("result", NS) && result.attr("queryid") == Some(qid), "{shown}");
        assert!(result.attr("id").is_some_and(|id| !id.is_empty()), "{shown}");
        let forwarded: Vec<&Element> = result.children().collect();
        let [forwarded] = forwarded[..] else { panic!("one forwarded: {shown}") };
        let inner: Vec<&Element> = forwarded.children().collect();
        let [delay, message] = inner[..] else { panic!("a delay and a message: {shown}") };
        assert!(forwarded.is("forwarded", NS_FORWARD), "{shown}");
        assert!(delay.is("delay", NS_DELAY) && delay.attr("stamp").is_some(), "{shown}");
        assert!(message.is("message", NS_CLIENT), "{shown}");
        results.push(element);
    }
}

/// Queries the client's own archive with `children` inside `<query/>`.
pub(crate) async fn query(client: &mut Client, children: &str) -> Page {
    let qid = fresh_id("q");
    client
        .send(&format!("<iq type='set' id='{qid}'><query xmlns='{NS}' queryid='{qid}'>{children}</query></iq>"))
        .await;
    read_page(client, &qid).await
}

/// A query (`children` inside `<query/>`, the iq sent `to` when given) that must be
/// refused: returns the error's (type, condition), after checking the error's addresses.
async fn query_error(client: &mut Client, to: Option<&str>, children: &str) -> (String, String) {
    let qid = fresh_id("bad");
    let to_attr = to.map(|to| format!(" to='{to}'")).unwrap_or_default();
    client
        .send(&format!(
            "<iq type='set' id='{qid}'{to_attr}><query xmlns='{NS}' queryid='{qid}'>{children}</query></iq>"
        ))
        .await;
    let reply = client.recv().await;
    assert!(reply.is("iq", NS_CLIENT) && reply.attr("id") == Some(qid.as_str()), "reply to {qid}: {}", show(&reply));
    assert_eq!(reply.attr("to"), Some(client.jid()), "{}", show(&reply));
    assert_eq!(reply.attr("from"), to, "{}", show(&reply));
    error_of(&reply)
}

/// Sets the archiving preferences; returns the `<prefs/>` of the result.
async fn set_prefs(client: &mut Client, prefs: &str) -> Element {
    let id = fresh_id("prefs");
    let jid = client.jid().to_owned();
    client.send(&format!("<iq type='set' id='{id}'>{prefs}</iq>")).await;
    let reply = client
        .expect(&format!(
            "<iq type='result' id='{id}' to='{jid}'><prefs xmlns='{NS}' default='{{any}}'>\
             <always/><never/></prefs></iq>"
        ))
        .await;
    reply.get_child("prefs", NS).cloned().expect("prefs")
}

// ---- XEP-0359 stanza-id and XEP-0313 results ----

/// XEP-0313 §3.5, §4.2 and the XEP-0359 business rules: the recipient's copy carries the
/// archive id as a stanza-id by the recipient's bare JID; the recipient's archive returns
/// the message under that id, forwarded with a delay, then `<fin complete='true'/>` with
/// the RSM set. The sender's archive has it too.
#[tokio::test]
async fn a_chat_message_is_delivered_with_a_stanza_id_that_names_it_in_both_archives() {
    let server = server().await;
    let (mut alice, mut bob) = alice_and_bob(&server).await;
    let before = std::time::SystemTime::now();
    bob.send("<message to='alice@localhost/desk' type='chat' id='m1'><body>hello</body></message>").await;
    let got = alice
        .expect(&format!(
            "<message to='alice@localhost/desk' from='bob@localhost/phone' type='chat' id='m1'><body>hello</body>\
             <stanza-id xmlns='{NS_SID}' by='alice@localhost' id='{{any}}'/></message>"
        ))
        .await;
    let sid = stanza_id(&got, "alice@localhost");

    alice.send(&format!("<iq type='set' id='q1'><query xmlns='{NS}' queryid='q1'/></iq>")).await;
    let result = alice
        .expect(&format!(
            "<message to='alice@localhost/desk' from='alice@localhost'><result xmlns='{NS}' queryid='q1' id='{sid}'>\
             <forwarded xmlns='{NS_FORWARD}'><delay xmlns='{NS_DELAY}' stamp='{{any}}'/>\
             <message xmlns='jabber:client' to='alice@localhost/desk' from='bob@localhost/phone' type='chat' id='m1'>\
             <body>hello</body></message></forwarded></result></message>"
        ))
        .await;
    alice
        .expect(&format!(
            "<iq type='result' id='q1' to='alice@localhost/desk'><fin xmlns='{NS}' complete='true'>\
             <set xmlns='{NS_RSM}'><first index='0'>{sid}</first><last>{sid}</last><count>1</count></set></fin></iq>"
        ))
        .await;
    let since_epoch =
        |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_micros() as i64;
    assert!(
        (since_epoch(before)..=since_epoch(std::time::SystemTime::now())).contains(&micros(stamp(&result))),
        "the delay stamp is when the message was archived: {}",
        show(&result)
    );

    // XEP-0313 §3: the sender's archive keeps what it sent, under its own id.
    let page = query(&mut bob, "").await;
    let [sent] = page.messages()[..] else { panic!("one message in Bob's archive: {:?}", page.ids()) };
    xml::assert_matches(
        sent,
        "<message xmlns='jabber:client' to='alice@localhost/desk' from='bob@localhost/phone' type='chat' id='m1'>\
         <body>hello</body></message>",
    );
    let bob_ids = page.ids();
    page.assert(&bob_ids, true, 1);
}

// ---- XEP-0059 paging ----

/// XEP-0313 §4.3, XEP-0059 §2.2: 25 messages, pages of at most 10 asked for with
/// `<after/>` the previous page's last: 10, 10, 5; only the last is complete; every
/// message comes once, in order.
#[tokio::test]
async fn paging_forward_with_after_returns_every_message_once_in_order() {
    let server = server().await;
    let (mut alice, mut bob) = alice_and_bob(&server).await;
    let ids = chats(&mut bob, &mut alice, &bodies("fwd", 25)).await;

    let first = query(&mut alice, &rsm("<max>10</max>")).await;
    first.assert(&ids[..10], false, 25);
    assert_eq!(first.bodies(), bodies("fwd", 25)[..10]);
    let last = first.rsm("last").expect("last");
    let second = query(&mut alice, &rsm(&format!("<max>10</max><after>{last}</after>"))).await;
    second.assert(&ids[10..20], false, 25);
    let last = second.rsm("last").expect("last");
    let third = query(&mut alice, &rsm(&format!("<max>10</max><after>{last}</after>"))).await;
    third.assert(&ids[20..], true, 25);
    assert_eq!(third.bodies(), bodies("fwd", 25)[20..]);
}

/// XEP-0059 §2.5, XEP-0313 §4.3: an empty `<before/>` gives the last page; `<before/>`
/// the previous page's first pages backward until the page that holds the oldest message,
/// the only complete one. Each page is in chronological order.
#[tokio::test]
async fn paging_backward_with_before_starts_at_the_newest_messages() {
    let server = server().await;
    let (mut alice, mut bob) = alice_and_bob(&server).await;
    let ids = chats(&mut bob, &mut alice, &bodies("back", 25)).await;

    let newest = query(&mut alice, &rsm("<max>10</max><before/>")).await;
    newest.assert(&ids[15..], false, 25);
    let first = newest.rsm("first").expect("first");
    let middle = query(&mut alice, &rsm(&format!("<max>10</max><before>{first}</before>"))).await;
    middle.assert(&ids[5..15], false, 25);
    let first = middle.rsm("first").expect("first");
    let oldest = query(&mut alice, &rsm(&format!("<max>10</max><before>{first}</before>"))).await;
    oldest.assert(&ids[..5], true, 25);
    assert_eq!(oldest.bodies(), bodies("back", 5));
}

/// XEP-0059 §2.3 paging backward one result at a time, as a client's RSM iterator does it
/// (slixmpp's, among others): `<before/>`, then `<before>` the first id of the page it
/// got, until a page without results. Such a client also stops as soon as a page says it
/// reaches the end of the set: `<first index/>` plus the page's size equal to `<count/>`.
/// Every message comes, newest first, and only the page with the oldest is complete.
#[tokio::test]
async fn paging_backward_one_at_a_time_reaches_every_message() {
    let server = server().await;
    let (mut alice, mut bob) = alice_and_bob(&server).await;
    let ids = chats(&mut bob, &mut alice, &bodies("one", 5)).await;
    let mut seen = Vec::new();
    let mut before = String::new();
    for _ in 0..ids.len() + 2 {
        let page = query(&mut alice, &rsm(&format!("<max>1</max><before>{before}</before>"))).await;
        let Some(first) = page.rsm("first") else { break };
        seen.extend(page.ids());
        let oldest = page.ids().first() == ids.first();
        assert_eq!(page.complete(), if oldest { "true" } else { "false" }, "{}", show(&page.fin));
        let index = page.fin.get_child("set", NS_RSM).and_then(|s| s.get_child("first", NS_RSM)?.attr("index"));
        let index: Option<usize> = index.map(|i| i.parse().expect("a numeric index"));
        if index.is_some_and(|i| i + page.ids().len() == ids.len()) {
            break; // the iterator's rule: the page reaches the end of the set
        }
        before = first;
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first, "every message, newest first");
}

/// A page holds at most 1 MiB of archived stanzas (one result at least): a page of large
/// messages ends early, not complete, and paging on from its last id reaches the rest,
/// both ways; no message is skipped or repeated.
#[tokio::test]
async fn pages_are_bounded_in_bytes_and_page_on() {
    let server = server().await;
    let (mut alice, mut bob) = alice_and_bob(&server).await;
    let pad = "p".repeat(200_000);
    let recipient = alice.jid().to_owned();
    for i in 0..12 {
        bob.send(&format!(
            "<message to='{recipient}' type='chat' id='big{i}' pad='{pad}'><body>big{i}</body></message>"
        ))
        .await;
        // The message, and perhaps the server's ping after its messages (answered).
        loop {
            let got = alice.recv().await;
            if got.is("message", NS_CLIENT) {
                break;
            }
            alice
                .send(&format!("<iq type='result' id='{}' to='localhost'/>", got.attr("id").unwrap_or_default()))
                .await;
        }
    }
    let mut forward = Vec::new();
    let mut after = String::new();
    for _ in 0..12 {
        let position = if after.is_empty() { String::new() } else { format!("<after>{after}</after>") };
        let page = query(&mut alice, &rsm(&format!("<max>50</max>{position}"))).await;
        assert!((1..=5).contains(&page.ids().len()), "five of 200 kB fit in 1 MiB: {}", page.ids().len());
        forward.extend(page.bodies());
        if page.complete() == "true" {
            break;
        }
        after = page.rsm("last").expect("last");
    }
    assert_eq!(forward, bodies("big", 12));
    let mut backward = Vec::new();
    let mut before = String::new();
    for _ in 0..12 {
        let page = query(&mut alice, &rsm(&format!("<max>50</max><before>{before}</before>"))).await;
        assert!((1..=5).contains(&page.ids().len()), "{}", page.ids().len());
        backward.splice(0..0, page.bodies());
        if page.complete() == "true" {
            break;
        }
        before = page.rsm("first").expect("first");
    }
    assert_eq!(backward, bodies("big", 12), "paging backward keeps the newest of each page");
}

// ---- XEP-0313 §4.1 filters ----

/// §4.1.1: `with` a bare JID returns only the conversation with that account.
#[tokio::test]
async fn filtering_with_a_bare_jid_returns_only_that_conversation() {
    let server = server().await;
    let (mut alice, mut bob) = alice_and_bob(&server).await;
    let mut carol = server.available("carol", PW, "pad", 0).await;
    let mut from_bob = Vec::new();
    for round in 0..3 {
        from_bob.extend(chats(&mut bob, &mut alice, &bodies(&format!("bob{round}-"), 2)).await);
        chats(&mut carol, &mut alice, &bodies(&format!("carol{round}-"), 1)).await;
    }
    let page = query(&mut alice, &form(&field("with", "bob@localhost"))).await;
    page.assert(&from_bob, true, 6);
    assert!(page.messages().iter().all(|m| m.attr("from") == Some("bob@localhost/phone")));
    let page = query(&mut alice, &form(&field("with", "carol@localhost"))).await;
    assert_eq!(page.bodies(), ["carol0-0", "carol1-0", "carol2-0"]);
    let everything = query(&mut alice, "").await;
    assert_eq!(everything.ids().len(), 9);
}

/// §4.1.2: `start` and `end` are inclusive XEP-0082 bounds on when a message was archived;
/// an `end` before the first message (in any time zone) matches nothing, completely.
#[tokio::test]
async fn filtering_by_start_and_end_uses_xep0082_timestamps() {
    let server = server().await;
    let (mut alice, mut bob) = alice_and_bob(&server).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        // One at a time, so that no two share a microsecond.
        ids.extend(chats(&mut bob, &mut alice, &[format!("t{i}")]).await);
    }
    let all = query(&mut alice, "").await;
    all.assert(&ids, true, 4);
    let stamps = all.stamps();
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "stamps grow: {stamps:?}");
    let stamp = |i: usize| stamp(&all.results[i]).to_owned();

    let nothing = query(&mut alice, &form(&field("end", "1999-12-31T19:00:00-05:00"))).await;
    nothing.assert(&[], true, 0);
    let nothing = query(&mut alice, &form(&field("start", "2999-01-01T00:00:00Z"))).await;
    nothing.assert(&[], true, 0);
    let from_second = query(&mut alice, &form(&field("start", &stamp(1)))).await;
    from_second.assert(&ids[1..], true, 3);
    let up_to_third = query(&mut alice, &form(&field("end", &stamp(2)))).await;
    up_to_third.assert(&ids[..3], true, 3);
    let between = format!("{}{}", field("start", &stamp(1)), field("end", &stamp(2)));
    query(&mut alice, &form(&between)).await.assert(&ids[1..3], true, 2);
    let wide = format!("{}{}", field("start", "2000-01-01T00:00:00Z"), field("end", "2999-01-01T00:00:00+01:00"));
    query(&mut alice, &form(&wide)).await.assert(&ids, true, 4);
}

// ---- catching up ----

/// §4.1.3 (`after-id`) and XEP-0059 `<after/>`: a device that last saw message k gets
/// exactly the messages after it, from a session that came later.
#[tokio::test]
async fn a_new_device_catches_up_after_the_last_id_it_saw() {
    let server = server().await;
    let (mut alice, mut bob) = alice_and_bob(&server).await;
    let ids = chats(&mut bob, &mut alice, &bodies("sync", 8)).await;
    let mut tablet = server.session("alice", PW, "tablet").await;

    let page = query(&mut tablet, &form(&field("after-id", &ids[4]))).await;
    page.assert(&ids[5..], true, 3);
    assert_eq!(page.bodies(), ["sync5", "sync6", "sync7"]);
    let page = query(&mut tablet, &rsm(&format!("<after>{}</after>", ids[4]))).await;
    assert_eq!((page.ids(), page.complete()), (ids[5..].to_vec(), "true"));
    let page = query(&mut tablet, &form(&field("after-id", &ids[7]))).await;
    page.assert(&[], true, 0);

    // More arrive; the next catch-up starts after the newest id the tablet saw.
    let newest = page.ids().last().cloned().unwrap_or_else(|| ids[7].clone());
    let more = chats(&mut bob, &mut alice, &bodies("later", 2)).await;
    let page = query(&mut tablet, &form(&field("after-id", &newest))).await;
    page.assert(&more, true, 2);
}

// ---- XEP-0359 ----

/// XEP-0359: the sender's `<origin-id/>` stays in the delivered and the archived
/// message; a `<stanza-id/>` claiming to be by the recipient is replaced on the
/// delivered copy by the real one.
#[tokio::test]
async fn the_origin_id_is_kept_and_a_forged_stanza_id_is_replaced_on_delivery() {
    let server = server().await;
    let (mut alice, mut bob) = alice_and_bob(&server).await;
    bob.send(&format!(
        "<message to='alice@localhost/desk' type='chat' id='m1'><body>hi</body><origin-id xmlns='{NS_SID}' id='o1'/>\
         <stanza-id xmlns='{NS_SID}' by='alice@localhost' id='forged'/></message>"
    ))
    .await;
    let got = alice
        .expect(&format!(
            "<message to='alice@localhost/desk' from='bob@localhost/phone' type='chat' id='m1'><body>hi</body>\
             <origin-id xmlns='{NS_SID}' id='o1'/><stanza-id xmlns='{NS_SID}' by='alice@localhost' id='{{any}}'/>\
             </message>"
        ))
        .await;
    let sid = stanza_id(&got, "alice@localhost");
    assert_ne!(sid, "forged");
    let page = query(&mut alice, "").await;
    assert_eq!(page.ids(), [sid]);
    let [archived] = page.messages()[..] else { panic!("one message") };
    let origin = archived.get_child("origin-id", NS_SID).and_then(|o| o.attr("id"));
    assert_eq!(origin, Some("o1"), "the archived copy keeps the origin-id: {}", show(archived));

    // The claim counts whatever the letter case of the JID: one stanza-id, the real one.
    bob.send(&format!(
        "<message to='alice@localhost/desk' type='chat' id='m2'><body>again</body>\
         <stanza-id xmlns='{NS_SID}' by='Alice@LOCALHOST' id='forged'/></message>"
    ))
    .await;
    let got = alice.recv().await;
    assert_ne!(stanza_id(&got, "alice@localhost"), "forged");
}

/// XEP-0313 §3.5 and the XEP-0359 business rules (the id by the archive overrides any
/// other claiming to be by it; at most one per `by`): the copy in the recipient's archive
/// carries no `<stanza-id/>` that the sender forged in the archive's name.
#[tokio::test]
async fn a_forged_stanza_id_is_not_kept_in_the_recipients_archive() {
    let server = server().await;
    let (mut alice, mut bob) = alice_and_bob(&server).await;
    bob.send(&format!(
        "<message to='alice@localhost/desk' type='chat' id='m1'><body>hi</body>\
         <stanza-id xmlns='{NS_SID}' by='alice@localhost' id='forged'/></message>"
    ))
    .await;
    let got = alice.recv().await;
    let sid = stanza_id(&got, "alice@localhost");
    let page = query(&mut alice, "").await;
    assert_eq!(page.ids(), [sid]);
    let [archived] = page.messages()[..] else { panic!("one message") };
    let forged = archived.children().any(|c| c.is("stanza-id", NS_SID) && c.attr("id") == Some("forged"));
    assert!(!forged, "Alice's archive returns Bob's forged stanza-id as if it were hers: {}", show(archived));
}

/// Alice's session with preferences `never`, and Bob's; Bob sends `extra` (stanza-ids)
/// in a chat message `id`; returns what Alice gets.
async fn unarchived_with(server: &TestServer, id: &str, extra: &str) -> Element {
    let (mut alice, mut bob) = alice_and_bob(server).await;
    set_prefs(&mut alice, &format!("<prefs xmlns='{NS}' default='never'/>")).await;
    bob.send(&format!("<message to='alice@localhost/desk' type='chat' id='{id}'><body>hi</body>{extra}</message>"))
        .await;
    let got = alice.recv().await;
    query(&mut alice, "").await.assert(&[], true, 0);
    got
}

/// A message that is not archived (preferences `never`) still loses a stanza-id forged in
/// the recipient's name (src/modules/mam/archive.rs: "removed either way").
#[tokio::test]
async fn a_forged_stanza_id_is_removed_even_when_the_message_is_not_archived() {
    let server = server().await;
    let forged = format!("<stanza-id xmlns='{NS_SID}' by='alice@localhost' id='forged'/>");
    let got = unarchived_with(&server, "m1", &forged).await;
    xml::assert_matches(
        &got,
        "<message to='alice@localhost/desk' from='bob@localhost/phone' type='chat' id='m1'><body>hi</body></message>",
    );
}

/// XEP-0359 business rules (routers MUST NOT strip `urn:xmpp:sid:0` elements): only
/// stanza-ids by the recipient go; one by another entity (a room, say) stays, also when
/// the message is not archived.
#[tokio::test]
async fn a_stanza_id_by_another_entity_is_kept_when_the_message_is_not_archived() {
    let server = server().await;
    let ids = format!(
        "<stanza-id xmlns='{NS_SID}' by='room@conference.example.org' id='kept'/>\
         <stanza-id xmlns='{NS_SID}' by='alice@localhost' id='forged'/>"
    );
    let got = unarchived_with(&server, "m2", &ids).await;
    xml::assert_matches(
        &got,
        &format!(
            "<message to='alice@localhost/desk' from='bob@localhost/phone' type='chat' id='m2'><body>hi</body>\
             <stanza-id xmlns='{NS_SID}' by='room@conference.example.org' id='kept'/></message>"
        ),
    );
}

/// `by='Alice@LOCALHOST'` is the recipient's JID too (RFC 7622: nodeprep, case-insensitive
/// domain). When the message is archived the server replaces it (see
/// `the_origin_id_is_kept_and_a_forged_stanza_id_is_replaced_on_delivery`); when it is
/// not, the claim must go as well.
#[tokio::test]
async fn a_forged_stanza_id_in_other_letter_case_is_removed_when_the_message_is_not_archived() {
    let server = server().await;
    let forged = format!("<stanza-id xmlns='{NS_SID}' by='Alice@LOCALHOST' id='forged'/>");
    let got = unarchived_with(&server, "m3", &forged).await;
    xml::assert_matches(
        &got,
        "<message to='alice@localhost/desk' from='bob@localhost/phone' type='chat' id='m3'><body>hi</body></message>",
    );
}

// ---- errors ----

/// §4.1.3, XEP-0059 §2.2: an id the archive does not hold is `item-not-found`, as an
/// RSM `<after/>` or `<before/>` and as an `after-id` field.
#[tokio::test]
async fn an_unknown_id_to_page_from_is_item_not_found() {
    let server = server().await;
    let (mut alice, mut bob) = alice_and_bob(&server).await;
    chats(&mut bob, &mut alice, &bodies("e", 2)).await;
    let bob_ids = query(&mut bob, "").await.ids();
    let not_found = ("cancel".to_owned(), "item-not-found".to_owned());
    let unknown = "00000000000000000000000000000000";
    assert_eq!(query_error(&mut alice, None, &rsm(&format!("<after>{unknown}</after>"))).await, not_found);
    assert_eq!(query_error(&mut alice, None, &rsm(&format!("<before>{unknown}</before>"))).await, not_found);
    assert_eq!(query_error(&mut alice, None, &form(&field("after-id", "nope"))).await, not_found);
    // An id of Bob's archive is unknown in Alice's.
    assert_eq!(query_error(&mut alice, None, &rsm(&format!("<after>{}</after>", bob_ids[0]))).await, not_found);
}

/// §8.1: an archive answers its owner only: Alice asking Bob's archive is `forbidden`.
#[tokio::test]
async fn querying_another_accounts_archive_is_forbidden() {
    let server = server().await;
    let (mut alice, mut bob) = alice_and_bob(&server).await;
    chats(&mut alice, &mut bob, &bodies("secret", 1)).await;
    let (kind, condition) = query_error(&mut alice, Some("bob@localhost"), "").await;
    assert_eq!((kind.as_str(), condition.as_str()), ("auth", "forbidden"));
    let prefs = fresh_id("prefs");
    alice.send(&format!("<iq type='get' id='{prefs}' to='bob@localhost'><prefs xmlns='{NS}'/></iq>")).await;
    let reply = alice.recv().await;
    assert_eq!(error_of(&reply).1, "forbidden", "{}", show(&reply));
    // Bob's own archive is untouched and his to query.
    assert_eq!(query(&mut bob, "").await.bodies(), ["secret0"]);
}

/// §4.1.2: a date that is not XEP-0082 is `bad-request`; so is a non-numeric `<max/>`.
#[tokio::test]
async fn a_bad_date_is_bad_request() {
    let server = server().await;
    let mut alice = server.available("alice", PW, "desk", 0).await;
    let bad = ("modify".to_owned(), "bad-request".to_owned());
    assert_eq!(query_error(&mut alice, None, &form(&field("start", "yesterday"))).await, bad);
    assert_eq!(query_error(&mut alice, None, &form(&field("end", "2024-13-45T99:00:00Z"))).await, bad);
    assert_eq!(query_error(&mut alice, None, &rsm("<max>ten</max>")).await, bad);
    // The session is fine afterwards.
    query(&mut alice, "").await.assert(&[], true, 0);
}

// ---- XEP-0441 preferences ----

/// XEP-0441 §2.1: with `default='never'`, later messages are neither archived nor given a
/// stanza-id; earlier ones stay; a get returns what was set.
#[tokio::test]
async fn with_preference_never_later_messages_are_not_archived() {
    let server = server().await;
    let (mut alice, mut bob) = alice_and_bob(&server).await;
    let get = format!("<iq type='get' id='p0'><prefs xmlns='{NS}'/></iq>");
    alice.send(&get).await;
    alice
        .expect(&format!(
            "<iq type='result' id='p0' to='alice@localhost/desk'><prefs xmlns='{NS}' default='always'>\
             <always/><never/></prefs></iq>"
        ))
        .await;
    let kept = chats(&mut bob, &mut alice, &bodies("before", 1)).await;

    let prefs = set_prefs(&mut alice, &format!("<prefs xmlns='{NS}' default='never'/>")).await;
    assert_eq!(prefs.attr("default"), Some("never"));
    alice.send(&get).await;
    alice
        .expect(&format!(
            "<iq type='result' id='p0' to='alice@localhost/desk'><prefs xmlns='{NS}' default='never'>\
             <always/><never/></prefs></iq>"
        ))
        .await;
    bob.send("<message to='alice@localhost/desk' type='chat' id='n1'><body>off the record</body></message>").await;
    alice
        .expect(
            "<message to='alice@localhost/desk' from='bob@localhost/phone' type='chat' id='n1'>\
             <body>off the record</body></message>",
        )
        .await;
    query(&mut alice, "").await.assert(&kept, true, 1);
    // Bob's preferences are his own: his archive has both.
    assert_eq!(query(&mut bob, "").await.bodies(), ["before0", "off the record"]);
}

/// XEP-0441 §2.1.1: with `default='roster'`, only conversations with roster contacts are
/// archived (for the messages Alice receives and those she sends).
#[tokio::test]
async fn with_preference_roster_only_roster_contacts_are_archived() {
    let server = server().await;
    let (mut alice, mut bob) = alice_and_bob(&server).await;
    let mut carol = server.available("carol", PW, "pad", 0).await;
    let prefs = set_prefs(&mut alice, &format!("<prefs xmlns='{NS}' default='roster'/>")).await;
    assert_eq!(prefs.attr("default"), Some("roster"));

    // Bob goes on Alice's roster (she asked for it first, so she gets the push too).
    assert!(roster_items(&mut alice).await.is_empty());
    alice
        .send(&format!(
            "<iq type='set' id='add-bob'><query xmlns='{NS_ROSTER}'><item jid='bob@localhost'/></query></iq>"
        ))
        .await;
    let got = [alice.recv().await, alice.recv().await];
    crate::roster::kit::assert_set(
        alice.jid(),
        &got,
        &[
            "<iq type='result' id='add-bob' to='alice@localhost/desk'/>".to_owned(),
            format!(
                "<iq type='set' to='alice@localhost/desk'><query xmlns='{NS_ROSTER}' ver='{{any}}'>\
                 <item jid='bob@localhost' subscription='none'/></query></iq>"
            ),
        ],
    );

    let from_bob = chats(&mut bob, &mut alice, &bodies("friend", 1)).await;
    carol.send("<message to='alice@localhost/desk' type='chat' id='c1'><body>stranger</body></message>").await;
    alice
        .expect(
            "<message to='alice@localhost/desk' from='carol@localhost/pad' type='chat' id='c1'>\
             <body>stranger</body></message>",
        )
        .await;
    // Alice writes to both: only the message to Bob is archived (the archive is Alice's;
    // Bob and Carol archive everything).
    alice.send("<message to='bob@localhost/phone' type='chat' id='a1'><body>to bob</body></message>").await;
    alice.send("<message to='carol@localhost/pad' type='chat' id='a2'><body>to carol</body></message>").await;
    bob.recv().await;
    carol.recv().await;
    let page = query(&mut alice, "").await;
    assert_eq!(page.bodies(), ["friend0", "to bob"]);
    assert_eq!(page.ids()[0], from_bob[0]);

    let get = fresh_id("get");
    alice.send(&format!("<iq type='get' id='{get}'><prefs xmlns='{NS}'/></iq>")).await;
    alice
        .expect(&format!(
            "<iq type='result' id='{get}' to='alice@localhost/desk'><prefs xmlns='{NS}' default='roster'>\
             <always/><never/></prefs></iq>"
        ))
        .await;
}

// ---- discovery and configuration ----

async fn account_features(client: &mut Client) -> Vec<String> {
    let id = fresh_id("disco");
    let bare = client.bare().to_owned();
    client.send(&format!("<iq type='get' id='{id}' to='{bare}'><query xmlns='{NS_DISCO_INFO}'/></iq>")).await;
    let reply = client.recv().await;
    assert!(reply.attr("type") == Some("result") && reply.attr("id") == Some(id.as_str()), "{}", show(&reply));
    let query = reply.get_child("query", NS_DISCO_INFO).unwrap_or_else(|| panic!("disco#info: {}", show(&reply)));
    query
        .children()
        .filter(|c| c.is("feature", NS_DISCO_INFO))
        .filter_map(|f| f.attr("var"))
        .map(str::to_owned)
        .collect()
}

/// §7: the account advertises `urn:xmpp:mam:2` (and XEP-0359 `urn:xmpp:sid:0`).
#[tokio::test]
async fn disco_info_on_the_account_lists_mam() {
    let server = server().await;
    let mut alice = server.available("alice", PW, "desk", 0).await;
    let features = account_features(&mut alice).await;
    assert!(features.iter().any(|f| f == NS), "{features:?}");
    assert!(features.iter().any(|f| f == NS_SID), "{features:?}");
}

/// With `archive.enabled = false`: no feature, no stanza-id, and a query is an error.
#[tokio::test]
async fn with_the_archive_disabled_mam_is_not_offered_and_queries_fail() {
    let server = server_with(|config| config.archive.enabled = false).await;
    let (mut alice, mut bob) = alice_and_bob(&server).await;
    let features = account_features(&mut alice).await;
    assert!(!features.iter().any(|f| f == NS || f == NS_SID), "{features:?}");
    bob.send("<message to='alice@localhost/desk' type='chat' id='m1'><body>hi</body></message>").await;
    alice
        .expect(
            "<message to='alice@localhost/desk' from='bob@localhost/phone' type='chat' id='m1'><body>hi</body>\
             </message>",
        )
        .await;
    let (_, condition) = query_error(&mut alice, None, "").await;
    assert!(
        ["service-unavailable", "feature-not-implemented"].contains(&condition.as_str()),
        "a query to a disabled archive: {condition}"
    );
}

// ---- what is not archived ----

/// §6.1.1 and XEP-0334: headlines, messages hinted `<no-store/>` and chat states without
/// a body are delivered without a stanza-id and not archived; a chat message is.
#[tokio::test]
async fn headlines_no_store_hints_and_bodiless_chat_states_are_not_archived() {
    let server = server().await;
    let (mut alice, mut bob) = alice_and_bob(&server).await;
    let not_archived = [
        "<message to='alice@localhost/desk' type='headline' id='h1'><body>news</body></message>".to_owned(),
        format!(
            "<message to='alice@localhost/desk' type='chat' id='h2'><body>secret</body><no-store xmlns='{NS_HINTS}'/>\
             </message>"
        ),
        format!(
            "<message to='alice@localhost/desk' type='chat' id='h3'><composing xmlns='{NS_CHATSTATES}'/></message>"
        ),
    ];
    for message in &not_archived {
        bob.send(message).await;
        // Delivered as sent (`from` stamped), nothing added.
        let delivered = message.replacen(" type=", " from='bob@localhost/phone' type=", 1);
        alice.expect(&delivered).await;
    }
    let ids = chats(&mut bob, &mut alice, &bodies("kept", 1)).await;
    query(&mut alice, "").await.assert(&ids, true, 1);
    assert_eq!(query(&mut bob, "").await.bodies(), ["kept0"], "not in the sender's archive either");
}

// ---- durability ----

/// The archive is stored: after a restart, the same query returns the same ids.
#[tokio::test]
async fn the_archive_survives_a_restart() {
    let server = server().await;
    let (mut alice, mut bob) = alice_and_bob(&server).await;
    let ids = chats(&mut bob, &mut alice, &bodies("durable", 3)).await;
    sync(&mut bob).await;
    // Closed cleanly: a client whose connection just drops would get again, offline, the
    // live messages it never answered a ping for (docs/delivery.md).
    for mut client in [alice, bob] {
        client.send("</stream:stream>").await;
        client.expect_closed().await;
    }
    let server = server.restart().await;
    let mut alice = server.session("alice", PW, "desk").await;
    let page = query(&mut alice, "").await;
    page.assert(&ids, true, 3);
    assert_eq!(page.bodies(), bodies("durable", 3));
    let mut bob = server.session("bob", PW, "phone").await;
    assert_eq!(query(&mut bob, "").await.bodies(), bodies("durable", 3));
    // New messages page on after the old ids.
    let mut alice_online = server.available("alice", PW, "laptop", 0).await;
    let more = chats(&mut bob, &mut alice_online, &bodies("new", 1)).await;
    let page = query(&mut alice, &rsm(&format!("<after>{}</after>", ids[2]))).await;
    page.assert(&more, true, 4);
}

// ---- offline ----

/// XEP-0160 with XEP-0313: a message to an offline account is stored offline and
/// archived; at login the offline copy carries the archive's id as its stanza-id.
#[tokio::test]
async fn an_offline_message_is_archived_and_arrives_with_the_archive_id() {
    let server = server().await;
    let mut bob = server.available("bob", PW, "phone", 0).await;
    bob.send("<message to='alice@localhost' type='chat' id='off1'><body>while away</body></message>").await;
    sync(&mut bob).await;

    // A session without presence gets no offline messages, and can read the archive.
    let mut alice = server.session("alice", PW, "desk").await;
    let page = query(&mut alice, "").await;
    let [archived] = page.messages()[..] else { panic!("one archived message: {:?}", page.ids()) };
    xml::assert_matches(
        archived,
        "<message xmlns='jabber:client' to='alice@localhost' from='bob@localhost/phone' type='chat' id='off1'>\
         <body>while away</body></message>",
    );
    let sid = page.ids()[0].clone();

    // Available: the backlog, then the server's acknowledgement ping, before the answer
    // to our ping; the presence echo (through the mailbox) before or after it.
    alice.send(&format!("<presence/><iq type='get' id='online' to='localhost'><ping xmlns='{NS_PING}'/></iq>")).await;
    let (mut got, mut answered, mut echoed) = (Vec::new(), false, false);
    while !(answered && echoed) {
        let element = alice.recv().await;
        if element.is("iq", NS_CLIENT) && element.attr("id") == Some("online") {
            answered = true;
        } else if element.is("presence", NS_CLIENT) && element.attr("from") == Some("alice@localhost/desk") {
            echoed = true;
        } else {
            assert!(!answered, "after the answer to our ping: {}", show(&element));
            got.push(element);
        }
    }
    let [offline, ping] = &got[..] else { panic!("the message and the ack ping: {}", crate::roster::kit::list(&got)) };
    xml::assert_matches(
        offline,
        &format!(
            "<message to='alice@localhost' from='bob@localhost/phone' type='chat' id='off1'><body>while away</body>\
             <stanza-id xmlns='{NS_SID}' by='alice@localhost' id='{sid}'/>\
             <delay xmlns='{NS_DELAY}' from='localhost' stamp='{{any}}'/></message>"
        ),
    );
    assert!(ping.is("iq", NS_CLIENT) && ping.has_child("ping", NS_PING), "{}", show(ping));
    // Bob's archive has it as sent.
    barrier(&mut bob, &mut alice).await;
    assert_eq!(query(&mut bob, "").await.bodies(), ["while away"]);
}

/// An account deleted and created again starts with an empty archive: nothing of the old
/// owner's belongs to the new one. (Creating an account also wipes what a message
/// archived while the deletion ran could have left; that race is not reproduced here.)
#[tokio::test]
async fn a_recreated_account_starts_with_an_empty_archive() {
    let server = server().await;
    let (mut alice, mut bob) = alice_and_bob(&server).await;
    chats(&mut bob, &mut alice, &bodies("old", 2)).await;
    assert_eq!(query(&mut alice, "").await.ids().len(), 2);
    let deluser = stanzad::admin::Request::Deluser { jid: "alice@localhost".into() };
    assert_eq!(server.admin(deluser).await, stanzad::admin::Response::Done);
    let adduser = stanzad::admin::Request::Adduser { jid: "alice@localhost".into(), password: PW.into() };
    assert_eq!(server.admin(adduser).await, stanzad::admin::Response::Done);
    let mut alice = server.available("alice", PW, "desk", 0).await;
    let page = query(&mut alice, "").await;
    assert!(page.ids().is_empty(), "{:?}", page.ids());
}

/// A preference JID whose normal form would not parse again (the jid crate turns
/// `a@ß--bexaeII` into `a@ss--bexaeii`, which it refuses) is `jid-malformed`: stored, it
/// broke every later prefs read and switched the archive off (found by fuzz/jid).
#[tokio::test]
async fn a_preference_jid_that_does_not_parse_again_is_refused_and_archiving_goes_on() {
    let server = server().await;
    let (mut alice, mut bob) = alice_and_bob(&server).await;
    let id = fresh_id("prefs");
    alice
        .send(&format!(
            "<iq type='set' id='{id}'><prefs xmlns='{NS}' default='always'><always/>\
             <never><jid>a@\u{DF}--bexaeII</jid></never></prefs></iq>"
        ))
        .await;
    let reply = alice.recv().await;
    assert_eq!(reply.attr("type"), Some("error"), "{}", show(&reply));
    assert!(show(&reply).contains("jid-malformed"), "{}", show(&reply));
    bob.send("<message to='alice@localhost/desk' type='chat' id='m1'><body>hi</body></message>").await;
    alice.recv().await;
    assert_eq!(query(&mut alice, "").await.ids().len(), 1, "still archived");
}

// ---- Durability, refusals, carbons (issue 15) ----

/// A sent carbon carries the sender's archive id (XEP-0280 with XEP-0359): the sender's
/// other device can page its archive from that message on.
#[tokio::test]
async fn a_sent_carbon_carries_the_senders_archive_id() {
    let server = server().await;
    let (mut alice, mut bob) = alice_and_bob(&server).await;
    let mut tablet = server.available("alice", PW, "tablet", 0).await;
    tablet.send("<iq type='set' id='c1'><enable xmlns='urn:xmpp:carbons:2'/></iq>").await;
    tablet.expect("<iq type='result' id='c1' to='alice@localhost/tablet'/>").await;
    alice.send("<message to='bob@localhost/phone' type='chat' id='s1'><body>hi</body></message>").await;
    let got = bob
        .expect(&format!(
            "<message to='bob@localhost/phone' from='alice@localhost/desk' type='chat' id='s1'><body>hi</body>\
         <stanza-id xmlns='{NS_SID}' by='bob@localhost' id='{{any}}'/></message>"
        ))
        .await;
    stanza_id(&got, "bob@localhost");
    let carbon = tablet.recv().await;
    let copied = carbon
        .get_child("sent", "urn:xmpp:carbons:2")
        .and_then(|sent| sent.get_child("forwarded", NS_FORWARD))
        .and_then(|forwarded| forwarded.get_child("message", NS_CLIENT))
        .unwrap_or_else(|| panic!("a sent carbon: {}", show(&carbon)));
    let sid = stanza_id(copied, "alice@localhost");
    let page = query(&mut tablet, "").await;
    assert_eq!(page.ids(), vec![sid], "the id names the message in Alice's archive");
}

/// A message archived for its recipient and then refused (here: the recipient's offline
/// storage is full) is not left in the recipient's archive, nor in the sender's.
#[tokio::test]
async fn a_message_refused_after_it_was_archived_leaves_no_entry() {
    let server = server_with(|config| config.limits.offline_quota = 1).await;
    let mut alice = server.available("alice", PW, "desk", 0).await;
    alice.send("<message to='bob@localhost' type='chat' id='kept'><body>kept</body></message>").await;
    sync(&mut alice).await;
    alice.send("<message to='bob@localhost' type='chat' id='over'><body>over</body></message>").await;
    let error = alice.recv().await;
    assert_eq!(error_of(&error).1, "resource-constraint", "{}", show(&error));
    let mut bob = server.session("bob", PW, "phone").await;
    let page = query(&mut bob, "").await;
    let bodies: Vec<String> =
        page.messages().iter().map(|m| m.get_child("body", NS_CLIENT).map(|b| b.text()).unwrap_or_default()).collect();
    assert_eq!(bodies, vec!["kept".to_owned()], "only what Bob was given");
    assert_eq!(query(&mut alice, "").await.messages().len(), 1, "Alice's archive keeps only what was taken");
}

/// The archive is as durable as the offline store: once the sender's ping after a
/// message is answered, the message's entries are on disk in both archives. The process
/// is killed (SIGKILL) right after that answer.
#[tokio::test]
async fn archived_messages_acknowledged_before_sigkill_survive_it() {
    use crate::support::daemon::{adduser, Daemon};
    let dir = tempfile::tempdir().expect("temporary directory");
    adduser(dir.path(), "alice@localhost");
    adduser(dir.path(), "bob@localhost");
    let daemon = Daemon::start(dir.path(), 1).await;
    let mut bob = daemon.session("bob", "phone").await;
    bob.send("<presence/>").await;
    let mut alice = daemon.session("alice", "desk").await;
    let bytes: String = bodies("live", 5)
        .iter()
        .map(|body| format!("<message to='bob@localhost/phone' type='chat' id='{body}'><body>{body}</body></message>"))
        .collect();
    alice.send(&bytes).await;
    sync(&mut alice).await;
    daemon.kill();
    drop((alice, bob));

    let daemon = Daemon::start(dir.path(), 2).await;
    for user in ["alice", "bob"] {
        let mut client = daemon.session(user, "again").await;
        let page = query(&mut client, "").await;
        assert_eq!(page.messages().len(), 5, "{user}'s archive after the kill: {:?}", page.ids());
    }
}

/// An archived message waits for its group commit before its sender is answered, but
/// messages to the sender from others are no answer and are not held back meanwhile.
#[tokio::test]
async fn a_reply_reaches_a_sender_whose_archive_entry_awaits_its_flush() {
    let server = server().await;
    let (mut alice, mut bob) = alice_and_bob(&server).await;
    let flusher = server.server().state.flusher.clone();
    let held = flusher.hold().await;
    alice.send("<message to='bob@localhost/phone' type='chat' id='a1'><body>hello</body></message>").await;
    let got = bob.recv().await;
    assert!(got.is("message", NS_CLIENT), "{}", show(&got));
    // Bob's reply reaches alice while her message's entries still wait for the disk...
    bob.send("<message to='alice@localhost/desk' type='chat' id='b1'><body>hi</body></message>").await;
    let got = alice.recv().await;
    assert!(got.is("message", NS_CLIENT) && got.attr("id") == Some("b1"), "{}", show(&got));
    // ...and her ping, which would tell her hers was taken, is answered only after it.
    alice.send("<iq type='get' id='after-a1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    alice.expect_silence(300).await;
    drop(held);
    alice.expect("<iq type='result' id='after-a1' from='localhost' to='alice@localhost/desk'/>").await;
}
