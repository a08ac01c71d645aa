//! RFC 6121 §2 (roster get, set, remove, pushes to interested resources, the errors of
//! §2.3.3 and §2.5.3) and §2.6 / XEP-0237 (roster versioning).
//!
//! [`kit`] holds the conversation helpers shared by the roster, subscription, presence,
//! last activity and blocking tests.

use crate::support::xml::show;
use crate::support::TestServer;
use kit::*;

/// Helpers for conversations between several accounts and resources.
///
/// "Nothing else arrived" is shown without sleeping by [`drain`]: the client sends a chat
/// message to its own full JID and reads until it comes back. A session's mailbox is FIFO,
/// and a stanza's effects (pushes, deliveries, replies) are queued while the stanza is
/// handled, so once the *sender* of a stanza has drained, everything that stanza caused
/// for any other session is queued ahead of that session's own drain barrier. Drain the
/// sender first, then the others.
pub mod kit {
    use crate::support::xml::{self, show};
    use crate::support::{Client, TestServer};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use xmpp_parsers::minidom::Element;

    pub const NS_ROSTER: &str = "jabber:iq:roster";
    pub const NS_CLIENT: &str = "jabber:client";
    pub const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
    /// Every test account's password.
    pub const PW: &str = "pw";

    static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

    /// A fresh id for requests and barriers.
    pub fn fresh_id(prefix: &str) -> String {
        format!("{prefix}-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
    }

    /// A server with `users` (localparts at `localhost`, password [`PW`]).
    pub async fn server_with(users: &[&str]) -> TestServer {
        let server = TestServer::start().await;
        for user in users {
            server.add_user(&format!("{user}@localhost"), PW).await;
        }
        server
    }

    /// The bare JID of a localpart at `localhost`.
    pub fn bare(user: &str) -> String {
        format!("{user}@localhost")
    }

    /// Sends a barrier message to our own full JID; returns everything read before it.
    pub async fn drain(client: &mut Client) -> Vec<Element> {
        let id = fresh_id("drain");
        let jid = client.jid().to_owned();
        client.send(&format!("<message to='{jid}' type='chat' id='{id}'><body>sync</body></message>")).await;
        let mut got = Vec::new();
        loop {
            let element = client.recv().await;
            if element.is("message", NS_CLIENT)
                && element.attr("id") == Some(id.as_str())
                && element.attr("from") == Some(jid.as_str())
            {
                return got;
            }
            got.push(element);
        }
    }

    /// Nothing is queued for `client` (see the module documentation for when this proves
    /// that something was not delivered).
    pub async fn assert_quiet(client: &mut Client) {
        let got = drain(client).await;
        assert!(got.is_empty(), "{} should have received nothing, got:\n{}", client.jid(), list(&got));
    }

    /// Drains `client` and checks what arrived against `want`, in any order.
    pub async fn expect_drained(client: &mut Client, want: &[String]) -> Vec<Element> {
        let got = drain(client).await;
        assert_set(client.jid(), &got, want);
        got
    }

    /// [`expect_drained`], ignoring whatever matches a pattern of `tolerated` (such as a
    /// re-push of a roster item that did not change).
    pub async fn expect_drained_tolerating(client: &mut Client, want: &[String], tolerated: &[String]) {
        let tolerated: Vec<Element> = tolerated.iter().map(|t| xml::parse(t)).collect();
        let got: Vec<Element> =
            drain(client).await.into_iter().filter(|e| !tolerated.iter().any(|t| xml::matches(t, e).is_ok())).collect();
        assert_set(client.jid(), &got, want);
    }

    pub fn list(elements: &[Element]) -> String {
        elements.iter().map(|e| format!("    {}\n", show(e))).collect()
    }

    /// `got` matches `want` one to one, in any order (see [`xml`] for the matching rule).
    pub fn assert_set(who: &str, got: &[Element], want: &[String]) {
        let patterns: Vec<Element> = want.iter().map(|w| xml::parse(w)).collect();
        let mut used = vec![false; got.len()];
        if got.len() != want.len() || !assign(&patterns, got, &mut used) {
            panic!(
                "{who} received a different set of stanzas\n  want (any order):\n{}  got:\n{}",
                want.iter().map(|w| format!("    {w}\n")).collect::<String>(),
                list(got)
            );
        }
    }

    /// Backtracking assignment of patterns to distinct elements.
    fn assign(patterns: &[Element], got: &[Element], used: &mut [bool]) -> bool {
        let Some((first, rest)) = patterns.split_first() else { return true };
        for i in 0..got.len() {
            if !used[i] && xml::matches(first, &got[i]).is_ok() {
                used[i] = true;
                if assign(rest, got, used) {
                    return true;
                }
                used[i] = false;
            }
        }
        false
    }

    /// Sends `presence` (an available presence without `to`); returns what arrives up to
    /// a barrier, but its echo: whatever was already queued, and what the presence brings
    /// after its echo (RFC 6121 §4.2.2: on initial presence, the pending subscription
    /// requests, then the answers to the server's probes, the contacts' and the account's
    /// other resources'). The order itself is checked in `presence_rfc6121.rs`.
    pub async fn send_presence(client: &mut Client, presence: &str) -> Vec<Element> {
        let jid = client.jid().to_owned();
        client.send(presence).await;
        let mut got = Vec::new();
        loop {
            let element = client.recv().await;
            let echo = element.is("presence", NS_CLIENT)
                && element.attr("from") == Some(jid.as_str())
                && element.attr("to").is_none()
                && element.attr("type").is_none();
            if echo {
                got.extend(drain(client).await);
                return got;
            }
            got.push(element);
        }
    }

    /// Initial presence with priority 0 (see [`send_presence`]).
    pub async fn online(client: &mut Client) -> Vec<Element> {
        send_presence(client, "<presence><priority>0</priority></presence>").await
    }

    /// What a contact sees of [`online`]: the presence from `full`, to the contact's bare JID.
    pub fn presence_of(full: &str, to: &str) -> String {
        format!("<presence from='{full}' to='{to}'><priority>0</priority></presence>")
    }

    pub fn unavailable_of(from: &str, to: &str) -> String {
        format!("<presence type='unavailable' from='{from}' to='{to}'/>")
    }

    /// A subscription stanza as the recipient sees it (RFC 6121 §3: bare JIDs both ways).
    pub fn sub_stanza(kind: &str, from: &str, to: &str) -> String {
        format!("<presence type='{kind}' from='{from}' to='{to}'/>")
    }

    /// A roster push to the full JID `to` carrying `item` (any version).
    pub fn push(to: &str, item: &str) -> String {
        format!("<iq type='set' to='{to}'><query xmlns='{NS_ROSTER}' ver='{{any}}'>{item}</query></iq>")
    }

    /// A roster `<item/>` with subscription `sub`, `ask='subscribe'` when `ask`.
    pub fn item(jid: &str, sub: &str, ask: bool) -> String {
        let ask = if ask { " ask='subscribe'" } else { "" };
        format!("<item jid='{jid}' subscription='{sub}'{ask}/>")
    }

    /// `actual` (a roster `<item/>`) matches `pattern` (written without a namespace).
    pub fn assert_item(actual: &Element, pattern: &str) {
        let wrapped = xml::parse(&format!("<query xmlns='{NS_ROSTER}'>{pattern}</query>"));
        let want = wrapped.children().next().expect("an item pattern");
        if let Err(difference) = xml::matches(want, actual) {
            panic!("roster item differs\n  want: {pattern}\n  got:  {}\n  {difference}", show(actual));
        }
    }

    /// Roster get; returns the result's `<query/>` (None for the empty "you are current" result).
    pub async fn roster_get(client: &mut Client, ver: Option<&str>) -> Option<Element> {
        let id = fresh_id("roster");
        let ver = ver.map(|v| format!(" ver='{v}'")).unwrap_or_default();
        client.send(&format!("<iq type='get' id='{id}'><query xmlns='{NS_ROSTER}'{ver}/></iq>")).await;
        let reply = client.recv().await;
        assert!(
            reply.is("iq", NS_CLIENT) && reply.attr("type") == Some("result") && reply.attr("id") == Some(id.as_str()),
            "roster get {id}: {}",
            show(&reply)
        );
        assert_eq!(reply.attr("to"), Some(client.jid()), "{}", show(&reply));
        let mut children = reply.children();
        let query = children.next().cloned();
        assert!(children.next().is_none(), "{}", show(&reply));
        if let Some(query) = &query {
            assert!(query.is("query", NS_ROSTER), "{}", show(&reply));
            let ver = query.attr("ver").unwrap_or_else(|| panic!("no ver: {}", show(&reply)));
            ver.parse::<u64>().unwrap_or_else(|_| panic!("ver is not a number: {}", show(&reply)));
        }
        query
    }

    /// Roster get, which makes the session an interested resource (RFC 6121 §2.1.6).
    pub async fn roster_items(client: &mut Client) -> Vec<Element> {
        let query = roster_get(client, None).await.expect("a roster");
        query.children().cloned().collect()
    }

    /// The roster item for `jid`, if any.
    pub async fn roster_item(client: &mut Client, jid: &str) -> Option<Element> {
        roster_items(client).await.into_iter().find(|i| i.attr("jid") == Some(jid))
    }

    /// The `ver` of a roster result or push.
    pub fn version(element: &Element) -> u64 {
        let query = if element.is("query", NS_ROSTER) {
            element
        } else {
            element.get_child("query", NS_ROSTER).unwrap_or_else(|| panic!("no roster query: {}", show(element)))
        };
        query.attr("ver").and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no numeric ver: {}", show(element)))
    }

    /// The stanza error inside `reply`: (type, defined condition).
    pub fn error_of(reply: &Element) -> (String, String) {
        assert_eq!(reply.attr("type"), Some("error"), "{}", show(reply));
        let error = reply.get_child("error", NS_CLIENT).unwrap_or_else(|| panic!("no <error/>: {}", show(reply)));
        let conditions: Vec<&str> =
            error.children().filter(|c| c.ns() == STANZAS && c.name() != "text").map(Element::name).collect();
        assert_eq!(conditions.len(), 1, "one defined condition: {}", show(reply));
        (error.attr("type").unwrap_or_default().to_owned(), conditions[0].to_owned())
    }

    /// Sends an iq (whose `id` is `id`) and returns the reply with that id.
    pub async fn iq(client: &mut Client, id: &str, xml: &str) -> Element {
        client.send(xml).await;
        let reply = client.recv().await;
        assert!(reply.is("iq", NS_CLIENT) && reply.attr("id") == Some(id), "reply to {id}: {}", show(&reply));
        reply
    }

    /// Logs `user`/`resource` in, asks for the roster (so it gets pushes) and sends
    /// initial presence; returns the session and what arrived after the echo.
    pub async fn login(server: &TestServer, user: &str, resource: &str) -> (Client, Vec<Element>) {
        let mut client = server.session(user, PW, resource).await;
        roster_items(&mut client).await;
        let before = online(&mut client).await;
        (client, before)
    }

    /// [`login`] for an account none of whose contacts is online yet: nothing may follow
    /// the echo but the presence of the account's other available resources (RFC 6121
    /// §4.2.2, §4.3.2).
    pub async fn login_alone(server: &TestServer, user: &str, resource: &str) -> Client {
        let (client, before) = login(server, user, resource).await;
        let full = client.jid().to_owned();
        let own = |e: &&Element| {
            let from = e.attr("from").unwrap_or_default();
            e.is("presence", NS_CLIENT)
                && from.starts_with(&format!("{user}@localhost/"))
                && e.attr("to") == Some(&full)
        };
        let others: Vec<Element> = before.iter().filter(|e| !own(e)).cloned().collect();
        assert!(others.is_empty(), "{full} got after its echo:\n{}", list(&others));
        client
    }

    /// `subscriber` subscribes to `contact`'s presence and `contact` approves (RFC 6121
    /// §3.1), both sent from the given sessions; everything this causes on `others`, the two
    /// sessions included, is drained and dropped.
    pub async fn subscribe(subscriber: &mut Client, contact: &mut Client, others: &mut [&mut Client]) {
        let (s, c) = (subscriber.bare().to_owned(), contact.bare().to_owned());
        subscriber.send(&format!("<presence type='subscribe' to='{c}'/>")).await;
        drain(subscriber).await;
        contact.send(&format!("<presence type='subscribed' to='{s}'/>")).await;
        drain(contact).await;
        drain(subscriber).await;
        for other in others.iter_mut() {
            drain(other).await;
        }
    }

    /// Sets up subscriptions before the conversation starts: for each `(subscriber,
    /// contact)`, the subscriber asks and the contact approves, from temporary sessions
    /// that never send presence and are closed afterwards.
    pub async fn given_subscriptions(server: &TestServer, pairs: &[(&str, &str)]) {
        let mut sessions: Vec<(String, Client)> = Vec::new();
        for (subscriber, contact) in pairs {
            for user in [subscriber, contact] {
                if !sessions.iter().any(|(u, _)| u == user) {
                    sessions.push((user.to_string(), server.session(user, PW, "setup").await));
                }
            }
            let s = sessions.iter().position(|(u, _)| u == subscriber).expect("subscriber session");
            let c = sessions.iter().position(|(u, _)| u == contact).expect("contact session");
            let (low, high) = sessions.split_at_mut(s.max(c));
            let (first, second) = (&mut low[s.min(c)].1, &mut high[0].1);
            if s < c {
                subscribe(first, second, &mut []).await;
            } else {
                subscribe(second, first, &mut []).await;
            }
        }
        for (_, mut client) in sessions {
            client.send("</stream:stream>").await;
            client.expect_closed().await;
        }
    }

    /// Mutual subscription between the two sessions' accounts (see [`subscribe`]).
    pub async fn befriend(a: &mut Client, b: &mut Client, others: &mut [&mut Client]) {
        subscribe(a, b, others).await;
        subscribe(b, a, others).await;
    }
}

async fn error_reply(server: &TestServer, request: &str) -> (String, String) {
    let mut alice = server.session("alice", PW, "a").await;
    let reply = iq(&mut alice, "bad", request).await;
    assert_eq!(reply.attr("to"), Some("alice@localhost/a"), "{}", show(&reply));
    let error = error_of(&reply);
    // A refused set changes nothing, so nothing is pushed.
    assert_quiet(&mut alice).await;
    error
}

// ---- §2.2: get ----

#[tokio::test]
async fn roster_of_a_new_account_is_empty_with_a_numeric_version() {
    let server = server_with(&["alice"]).await;
    let mut alice = server.session("alice", PW, "a").await;
    alice.send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>").await;
    let reply = alice
        .expect("<iq type='result' id='r1' to='alice@localhost/a'><query xmlns='jabber:iq:roster' ver='{any}'/></iq>")
        .await;
    version(&reply);
}

// ---- §2.3 / §2.1.6: set and pushes ----

/// §2.3.2: the result goes to the requesting resource and the push to every interested
/// resource (those that asked for the roster), the requester included, available or not;
/// a resource that never asked gets no push. The result is written before the push.
#[tokio::test]
async fn roster_set_is_pushed_to_every_interested_resource_only() {
    let server = server_with(&["alice", "bob"]).await;
    let mut one = server.session("alice", PW, "one").await;
    roster_items(&mut one).await;
    let mut two = server.session("alice", PW, "two").await;
    roster_items(&mut two).await;
    let mut uninterested = server.available("alice", PW, "three", 0).await;
    one.send(
        "<iq type='set' id='s1'><query xmlns='jabber:iq:roster'>\
         <item jid='bob@localhost' name='Bob'><group>Friends</group><group>Work</group></item>\
         </query></iq>",
    )
    .await;
    let item =
        "<item jid='bob@localhost' subscription='none' name='Bob'><group>Friends</group><group>Work</group></item>";
    one.expect("<iq type='result' id='s1' to='alice@localhost/one'/>").await;
    let pushed = one.expect(&push("alice@localhost/one", item)).await;
    two.expect(&push("alice@localhost/two", item)).await;
    assert_quiet(&mut uninterested).await;
    assert_quiet(&mut one).await;
    // §2.1.6: the push must be answered; the server takes the result quietly.
    let id = pushed.attr("id").expect("push id").to_owned();
    one.send(&format!("<iq type='result' id='{id}'/>")).await;
    assert_quiet(&mut one).await;
    // The stored roster is what was pushed.
    let query = roster_get(&mut uninterested, None).await.expect("roster");
    assert_eq!(version(&query), version(&pushed));
    let items: Vec<String> = query.children().map(show).collect();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_item(query.children().next().expect("item"), item);
}

/// §2.1.2.5 and §2.3.3: a client cannot set `subscription` (other than remove), `ask` or
/// `approved`; a set only changes the name and the groups, and keeps the subscription.
#[tokio::test]
async fn roster_update_changes_name_and_groups_but_never_the_subscription_state() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = login_alone(&server, "alice", "a").await;
    let mut bob = server.session("bob", PW, "b").await;
    subscribe(&mut alice, &mut bob, &mut []).await;
    alice
        .send(
            "<iq type='set' id='u1'><query xmlns='jabber:iq:roster'>\
             <item jid='bob@localhost' name='Bobby' subscription='both' ask='subscribe' approved='true'>\
             <group>Team</group></item></query></iq>",
        )
        .await;
    alice.expect("<iq type='result' id='u1' to='alice@localhost/a'/>").await;
    let item = "<item jid='bob@localhost' subscription='to' name='Bobby'><group>Team</group></item>";
    alice.expect(&push("alice@localhost/a", item)).await;
    // Renamed again without groups: the groups are gone, the subscription stays.
    alice.send("<iq type='set' id='u2'><query xmlns='jabber:iq:roster'><item jid='bob@localhost'/></query></iq>").await;
    alice.expect("<iq type='result' id='u2' to='alice@localhost/a'/>").await;
    alice.expect(&push("alice@localhost/a", "<item jid='bob@localhost' subscription='to'/>")).await;
    let item = roster_item(&mut alice, "bob@localhost").await.expect("bob stays");
    assert_item(&item, "<item jid='bob@localhost' subscription='to'/>");
}

// ---- §2.5: remove ----

#[tokio::test]
async fn roster_remove_is_pushed_and_the_item_is_gone() {
    let server = server_with(&["alice", "bob", "carol"]).await;
    let mut one = server.session("alice", PW, "one").await;
    roster_items(&mut one).await;
    let mut two = server.session("alice", PW, "two").await;
    roster_items(&mut two).await;
    for (id, jid) in [("a1", "bob@localhost"), ("a2", "carol@localhost")] {
        one.send(&format!("<iq type='set' id='{id}'><query xmlns='jabber:iq:roster'><item jid='{jid}'/></query></iq>"))
            .await;
    }
    drain(&mut one).await;
    drain(&mut two).await;
    one.send("<iq type='set' id='rm'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='remove'/></query></iq>")
        .await;
    one.expect("<iq type='result' id='rm' to='alice@localhost/one'/>").await;
    let removal = "<item jid='bob@localhost' subscription='remove'/>";
    one.expect(&push("alice@localhost/one", removal)).await;
    two.expect(&push("alice@localhost/two", removal)).await;
    let items = roster_items(&mut two).await;
    let jids: Vec<&str> = items.iter().filter_map(|i| i.attr("jid")).collect();
    assert_eq!(jids, ["carol@localhost"]);
}

// ---- §2.3.3 and §2.5.3: errors ----

#[tokio::test]
async fn roster_set_with_two_items_is_bad_request() {
    let server = server_with(&["alice"]).await;
    let request = "<iq type='set' id='bad'><query xmlns='jabber:iq:roster'>\
                   <item jid='bob@localhost'/><item jid='carol@localhost'/></query></iq>";
    assert_eq!(error_reply(&server, request).await.1, "bad-request");
}

#[tokio::test]
async fn roster_set_without_jid_is_bad_request() {
    let server = server_with(&["alice"]).await;
    let request = "<iq type='set' id='bad'><query xmlns='jabber:iq:roster'><item name='x'/></query></iq>";
    assert_eq!(error_reply(&server, request).await.1, "bad-request");
}

#[tokio::test]
async fn roster_set_with_full_or_malformed_jid_is_jid_malformed() {
    let server = server_with(&["alice"]).await;
    for jid in ["bob@localhost/phone", "a@b@c", "@localhost"] {
        let request =
            format!("<iq type='set' id='bad'><query xmlns='jabber:iq:roster'><item jid='{jid}'/></query></iq>");
        assert_eq!(error_reply(&server, &request).await.1, "jid-malformed", "jid {jid}");
    }
}

#[tokio::test]
async fn roster_set_with_duplicate_group_is_bad_request() {
    let server = server_with(&["alice"]).await;
    let request = "<iq type='set' id='bad'><query xmlns='jabber:iq:roster'>\
                   <item jid='bob@localhost'><group>G</group><group>G</group></item></query></iq>";
    assert_eq!(error_reply(&server, request).await.1, "bad-request");
}

#[tokio::test]
async fn roster_set_with_empty_group_is_not_acceptable() {
    let server = server_with(&["alice"]).await;
    let request = "<iq type='set' id='bad'><query xmlns='jabber:iq:roster'>\
                   <item jid='bob@localhost'><group/></item></query></iq>";
    assert_eq!(error_reply(&server, request).await.1, "not-acceptable");
}

/// §2.3.3: a roster is only ever the user's own.
#[tokio::test]
async fn roster_get_or_set_to_another_account_is_forbidden() {
    let server = server_with(&["alice", "bob"]).await;
    let get = "<iq type='get' id='bad' to='bob@localhost'><query xmlns='jabber:iq:roster'/></iq>";
    assert_eq!(error_reply(&server, get).await.1, "forbidden");
    let set = "<iq type='set' id='bad' to='bob@localhost'><query xmlns='jabber:iq:roster'>\
               <item jid='carol@localhost'/></query></iq>";
    assert_eq!(error_reply(&server, set).await.1, "forbidden");
    // Addressed to the user's own bare JID it is fine.
    let mut alice = server.session("alice", PW, "own").await;
    alice.send("<iq type='get' id='own' to='alice@localhost'><query xmlns='jabber:iq:roster'/></iq>").await;
    alice
        .expect("<iq type='result' id='own' from='alice@localhost' to='alice@localhost/own'><query xmlns='jabber:iq:roster' ver='{any}'/></iq>")
        .await;
}

#[tokio::test]
async fn roster_remove_of_an_unknown_item_is_item_not_found() {
    let server = server_with(&["alice"]).await;
    let request = "<iq type='set' id='bad'><query xmlns='jabber:iq:roster'>\
                   <item jid='nobody@localhost' subscription='remove'/></query></iq>";
    assert_eq!(error_reply(&server, request).await.1, "item-not-found");
}

// ---- §2.6 / XEP-0237: versioning ----

/// Every change bumps the version; results and pushes carry it; a client that is current
/// gets an empty result; a stale one gets the roster; versions survive a restart.
#[tokio::test]
async fn roster_versioning() {
    let server = server_with(&["alice", "bob", "carol"]).await;
    let mut alice = server.session("alice", PW, "a").await;
    assert!(
        alice.features.as_ref().and_then(|f| f.get_child("ver", "urn:xmpp:features:rosterver")).is_some(),
        "roster versioning is advertised"
    );
    let v0 = version(&roster_get(&mut alice, None).await.expect("roster"));
    // Current: the empty result (§2.6.3).
    alice.send(&format!("<iq type='get' id='cur'><query xmlns='jabber:iq:roster' ver='{v0}'/></iq>")).await;
    alice.expect("<iq type='result' id='cur' to='alice@localhost/a'/>").await;
    let mut versions = vec![v0];
    for (id, change) in [
        ("v1", "<item jid='bob@localhost'/>"),
        ("v2", "<item jid='carol@localhost' name='C'/>"),
        ("v3", "<item jid='bob@localhost' subscription='remove'/>"),
    ] {
        alice.send(&format!("<iq type='set' id='{id}'><query xmlns='jabber:iq:roster'>{change}</query></iq>")).await;
        alice.expect(&format!("<iq type='result' id='{id}' to='alice@localhost/a'/>")).await;
        let pushed = alice.recv().await;
        versions.push(version(&pushed));
    }
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "versions must grow: {versions:?}");
    let latest = versions[3].to_string();
    // Stale: the whole roster with the current version.
    let query = roster_get(&mut alice, Some(&versions[1].to_string())).await.expect("stale client gets the roster");
    assert_eq!(query.attr("ver"), Some(latest.as_str()));
    let jids: Vec<&str> = query.children().filter_map(|i| i.attr("jid")).collect();
    assert_eq!(jids, ["carol@localhost"]);
    // Still current after a restart.
    drop(alice);
    let server = server.restart().await;
    let mut alice = server.session("alice", PW, "a").await;
    assert!(roster_get(&mut alice, Some(&latest)).await.is_none(), "current after restart");
    let items = roster_items(&mut alice).await;
    assert_eq!(items.len(), 1);
    assert_item(&items[0], "<item jid='carol@localhost' subscription='none' name='C'/>");
}

/// Restart keeps names, groups and subscription states.
#[tokio::test]
async fn roster_survives_a_restart() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = server.session("alice", PW, "a").await;
    let mut bob = server.session("bob", PW, "b").await;
    befriend(&mut alice, &mut bob, &mut []).await;
    alice
        .send("<iq type='set' id='n'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='B'><group>G</group></item></query></iq>")
        .await;
    alice.expect("<iq type='result' id='n' to='alice@localhost/a'/>").await;
    drop((alice, bob));
    let server: TestServer = server.restart().await;
    let mut alice = server.session("alice", PW, "a").await;
    let items = roster_items(&mut alice).await;
    assert_eq!(items.len(), 1);
    assert_item(&items[0], "<item jid='bob@localhost' subscription='both' name='B'><group>G</group></item>");
}
