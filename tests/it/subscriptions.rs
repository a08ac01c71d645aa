//! RFC 6121 §3 (presence subscriptions) and Appendix A (the subscription state tables).
//!
//! The `appendix_a_*` tests run every row of A.2 (the user's server, outbound) and A.3
//! (the contact's server, inbound) for one event each: both accounts are local, so one
//! stanza from the user is an outbound row for the user and the inbound row of the
//! mirrored state for the contact. The expectations come from the tables written out
//! below, not from the server's code. Each case checks the roster pushes and stanzas both
//! sides receive, both rosters afterwards, and, through a new session of each account,
//! the pending requests re-delivered and the presence that flows at login.

use crate::roster::kit::*;
use crate::support::{stream_header, xml, Client, Mech, TestServer};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ev {
    Subscribe,
    Subscribed,
    Unsubscribe,
    Unsubscribed,
}

impl Ev {
    fn name(self) -> &'static str {
        match self {
            Ev::Subscribe => "subscribe",
            Ev::Subscribed => "subscribed",
            Ev::Unsubscribe => "unsubscribe",
            Ev::Unsubscribed => "unsubscribed",
        }
    }
}

/// The states of Appendix A, as the RFC names them.
const STATES: [&str; 9] = [
    "None",
    "None + Pending Out",
    "None + Pending In",
    "None + Pending Out+In",
    "To",
    "To + Pending In",
    "From",
    "From + Pending Out",
    "Both",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct State {
    to: bool,
    from: bool,
    pending_out: bool,
    pending_in: bool,
}

fn state(name: &str) -> State {
    let (sub, pending) = name.split_once(" + ").unwrap_or((name, ""));
    State {
        to: matches!(sub, "To" | "Both"),
        from: matches!(sub, "From" | "Both"),
        pending_out: matches!(pending, "Pending Out" | "Pending Out+In"),
        pending_in: matches!(pending, "Pending In" | "Pending Out+In"),
    }
}

fn name(s: State) -> &'static str {
    STATES.iter().copied().find(|n| state(n) == s).unwrap_or_else(|| panic!("no such state {s:?}"))
}

/// The contact's view of the same relationship.
fn mirror(s: State) -> State {
    State { to: s.from, from: s.to, pending_out: s.pending_in, pending_in: s.pending_out }
}

/// RFC 6121 A.2: the user's server on an outbound subscription stanza: does it route it,
/// and the new state (None: "no state change").
fn outbound(ev: Ev, s: &str) -> (bool, Option<&'static str>) {
    match ev {
        // A.2.1 Subscribe
        Ev::Subscribe => match s {
            "None" => (true, Some("None + Pending Out")),
            "None + Pending Out" => (true, None),
            "None + Pending In" => (true, Some("None + Pending Out+In")),
            "None + Pending Out+In" => (true, None),
            "To" => (true, None),
            "To + Pending In" => (true, None),
            "From" => (true, Some("From + Pending Out")),
            "From + Pending Out" => (true, None),
            "Both" => (true, None),
            _ => unreachable!(),
        },
        // A.2.2 Subscribed
        Ev::Subscribed => match s {
            "None" => (false, None),
            "None + Pending Out" => (false, None),
            "None + Pending In" => (true, Some("From")),
            "None + Pending Out+In" => (true, Some("From + Pending Out")),
            "To" => (false, None),
            "To + Pending In" => (true, Some("Both")),
            "From" => (false, None),
            "From + Pending Out" => (false, None),
            "Both" => (false, None),
            _ => unreachable!(),
        },
        // A.2.3 Unsubscribe
        Ev::Unsubscribe => match s {
            "None" => (true, None),
            "None + Pending Out" => (true, Some("None")),
            "None + Pending In" => (true, None),
            "None + Pending Out+In" => (true, Some("None + Pending In")),
            "To" => (true, Some("None")),
            "To + Pending In" => (true, Some("None + Pending In")),
            "From" => (true, None),
            "From + Pending Out" => (true, Some("From")),
            "Both" => (true, Some("From")),
            _ => unreachable!(),
        },
        // A.2.4 Unsubscribed
        Ev::Unsubscribed => match s {
            "None" => (false, None),
            "None + Pending Out" => (false, None),
            "None + Pending In" => (true, Some("None")),
            "None + Pending Out+In" => (true, Some("None + Pending Out")),
            "To" => (false, None),
            "To + Pending In" => (true, Some("To")),
            "From" => (true, Some("None")),
            "From + Pending Out" => (true, Some("None + Pending Out")),
            "Both" => (true, Some("To")),
            _ => unreachable!(),
        },
    }
}

/// RFC 6121 A.3: the contact's server on an inbound subscription stanza: does it deliver
/// it to the contact, and the contact's new state.
fn inbound(ev: Ev, s: &str) -> (bool, Option<&'static str>) {
    match ev {
        // A.3.1 Subscribe (From, From + Pending Out, Both: the server auto-replies "subscribed", §3.1.3)
        Ev::Subscribe => match s {
            "None" => (true, Some("None + Pending In")),
            "None + Pending Out" => (true, Some("None + Pending Out+In")),
            "None + Pending In" => (false, None),
            "None + Pending Out+In" => (false, None),
            "To" => (true, Some("To + Pending In")),
            "To + Pending In" => (false, None),
            "From" => (false, None),
            "From + Pending Out" => (false, None),
            "Both" => (false, None),
            _ => unreachable!(),
        },
        // A.3.2 Subscribed
        Ev::Subscribed => match s {
            "None" => (false, None),
            "None + Pending Out" => (true, Some("To")),
            "None + Pending In" => (false, None),
            "None + Pending Out+In" => (true, Some("To + Pending In")),
            "To" => (false, None),
            "To + Pending In" => (false, None),
            "From" => (false, None),
            "From + Pending Out" => (true, Some("Both")),
            "Both" => (false, None),
            _ => unreachable!(),
        },
        // A.3.3 Unsubscribe
        Ev::Unsubscribe => match s {
            "None" => (false, None),
            "None + Pending Out" => (false, None),
            "None + Pending In" => (true, Some("None")),
            "None + Pending Out+In" => (true, Some("None + Pending Out")),
            "To" => (false, None),
            "To + Pending In" => (true, Some("To")),
            "From" => (true, Some("None")),
            "From + Pending Out" => (true, Some("None + Pending Out")),
            "Both" => (true, Some("To")),
            _ => unreachable!(),
        },
        // A.3.4 Unsubscribed
        Ev::Unsubscribed => match s {
            "None" => (false, None),
            "None + Pending Out" => (true, Some("None")),
            "None + Pending In" => (false, None),
            "None + Pending Out+In" => (true, Some("None + Pending In")),
            "To" => (true, Some("None")),
            "To + Pending In" => (true, Some("None + Pending In")),
            "From" => (false, None),
            "From + Pending Out" => (true, Some("From")),
            "Both" => (true, Some("From")),
            _ => unreachable!(),
        },
    }
}

/// What a roster shows of a state (pending-in is not part of the roster, §3.1.3).
fn item_of(jid: &str, s: State, approved: bool) -> String {
    let sub = match (s.to, s.from) {
        (false, false) => "none",
        (true, false) => "to",
        (false, true) => "from",
        (true, true) => "both",
    };
    let ask = if s.pending_out { " ask='subscribe'" } else { "" };
    let approved = if approved { " approved='true'" } else { "" };
    format!("<item jid='{jid}' subscription='{sub}'{ask}{approved}/>")
}

/// The roster of `client` has `want` for `jid`; an item that shows nothing ("none", no
/// ask, no pre-approval) may also be absent.
async fn assert_roster_has(client: &mut Client, jid: &str, want: &str) {
    match roster_item(client, jid).await {
        Some(item) => assert_item(&item, want),
        None => assert_eq!(want, item_of(jid, state("None"), false), "{}: no item for {jid}", client.jid()),
    }
}

/// Splits roster pushes from the rest.
fn pushes_and_rest(
    got: Vec<xmpp_parsers::minidom::Element>,
) -> (Vec<xmpp_parsers::minidom::Element>, Vec<xmpp_parsers::minidom::Element>) {
    got.into_iter().partition(|e| e.is("iq", NS_CLIENT) && e.get_child("query", NS_ROSTER).is_some())
}

/// Drops pushes of `before` to `full` when the item did not change (`before == after`).
fn without_repush(
    pushes: Vec<xmpp_parsers::minidom::Element>,
    full: &str,
    before: &str,
    after: &str,
) -> Vec<xmpp_parsers::minidom::Element> {
    if before != after {
        return pushes;
    }
    let same = xml::parse(&push(full, before));
    let (repushed, rest): (Vec<_>, Vec<_>) = pushes.into_iter().partition(|p| xml::matches(&same, p).is_ok());
    if !repushed.is_empty() {
        println!("  tolerated: {} push(es) of the unchanged item {before} to {full}", repushed.len());
    }
    rest
}

/// The expected outcome of `ev` sent by the user in state `s` (the contact in the mirror).
struct Expected {
    /// The user's state after (and its roster item's pre-approval flag).
    user: State,
    approved: bool,
    contact: State,
    /// Stanzas other than pushes each side receives.
    to_user: Vec<String>,
    to_contact: Vec<String>,
}

fn expected(ev: Ev, s: &str, ub: &str, cb: &str) -> Expected {
    let a0 = state(s);
    let b0 = mirror(a0);
    let (route, a1) = outbound(ev, s);
    let a1 = a1.map(state).unwrap_or(a0);
    let mut e = Expected { user: a1, approved: false, contact: b0, to_user: Vec::new(), to_contact: Vec::new() };
    // §3.4: "subscribed" without a pending request is a pre-approval (None, None + Pending Out, To).
    if ev == Ev::Subscribed && !route && !a0.from {
        e.approved = true;
    }
    if route {
        let (deliver, b1) = inbound(ev, name(b0));
        e.contact = b1.map(state).unwrap_or(b0);
        if deliver {
            e.to_contact.push(sub_stanza(ev.name(), ub, cb));
        }
        if ev == Ev::Subscribe && b0.from {
            // §3.1.3: the contact's server answers "subscribed" itself; the user's server
            // handles it by A.3.2.
            let (deliver, a2) = inbound(Ev::Subscribed, name(a1));
            e.user = a2.map(state).unwrap_or(a1);
            if deliver {
                e.to_user.push(sub_stanza("subscribed", cb, ub));
                e.to_user.push(presence_of(&format!("{cb}/main"), ub));
            }
        }
        match ev {
            // §3.1.5: the approver's presence follows the approval.
            Ev::Subscribed if deliver => e.to_contact.push(presence_of(&format!("{ub}/main"), cb)),
            // §3.2.2: the contact no longer sees the user.
            Ev::Unsubscribed if a0.from => e.to_contact.push(unavailable_of(&format!("{ub}/main"), cb)),
            // §3.3.3: the user no longer sees the contact.
            Ev::Unsubscribe if b0.from => e.to_user.push(unavailable_of(&format!("{cb}/main"), ub)),
            _ => {}
        }
    }
    assert_eq!(mirror(e.user), e.contact, "the tables keep both sides consistent ({ev:?} in {s})");
    e
}

/// Drives one row: sets up state `s` between user{i} and contact{i}, sends `ev` from the user.
async fn run_case(server: &TestServer, i: usize, s: &str, ev: Ev) {
    println!("case: the user in \"{s}\" sends {}", ev.name());
    let (u, c) = (format!("user{i}"), format!("contact{i}"));
    let (ub, cb) = (bare(&u), bare(&c));
    let (uf, cf) = (format!("{ub}/main"), format!("{cb}/main"));
    let mut user = login_alone(server, &u, "main").await;
    let mut contact = login_alone(server, &c, "main").await;
    let s0 = state(s);
    if s0.to {
        subscribe(&mut user, &mut contact, &mut []).await;
    }
    if s0.from {
        subscribe(&mut contact, &mut user, &mut []).await;
    }
    if s0.pending_out {
        user.send(&format!("<presence type='subscribe' to='{cb}'/>")).await;
        drain(&mut user).await;
        drain(&mut contact).await;
    }
    if s0.pending_in {
        contact.send(&format!("<presence type='subscribe' to='{ub}'/>")).await;
        drain(&mut contact).await;
        drain(&mut user).await;
    }
    assert_roster_has(&mut user, &cb, &item_of(&cb, s0, false)).await;
    assert_roster_has(&mut contact, &ub, &item_of(&ub, mirror(s0), false)).await;

    let e = expected(ev, s, &ub, &cb);
    user.send(&format!("<presence type='{}' to='{cb}'/>", ev.name())).await;
    let got_user = drain(&mut user).await;
    let got_contact = drain(&mut contact).await;

    // Pushes: one when what the roster shows changed, none otherwise.
    let (user_pushes, user_rest) = pushes_and_rest(got_user);
    let (contact_pushes, contact_rest) = pushes_and_rest(got_contact);
    // Tolerated: a push of an item that did not change (the server re-pushes when only
    // "Pending In", which the roster does not show, changes).
    let user_pushes = without_repush(user_pushes, &uf, &item_of(&cb, s0, false), &item_of(&cb, e.user, e.approved));
    let contact_pushes =
        without_repush(contact_pushes, &cf, &item_of(&ub, mirror(s0), false), &item_of(&ub, e.contact, false));
    let user_item = item_of(&cb, e.user, e.approved);
    let want_user_pushes = if user_item != item_of(&cb, s0, false) { vec![push(&uf, &user_item)] } else { Vec::new() };
    let contact_item = item_of(&ub, e.contact, false);
    let want_contact_pushes =
        if contact_item != item_of(&ub, mirror(s0), false) { vec![push(&cf, &contact_item)] } else { Vec::new() };
    assert_set(&format!("{uf} (roster pushes)"), &user_pushes, &want_user_pushes);
    assert_set(&format!("{cf} (roster pushes)"), &contact_pushes, &want_contact_pushes);
    assert_set(&uf, &user_rest, &e.to_user);
    assert_set(&cf, &contact_rest, &e.to_contact);

    // The stored rosters.
    assert_roster_has(&mut user, &cb, &user_item).await;
    assert_roster_has(&mut contact, &ub, &contact_item).await;

    // A new session of the user: probe answers and pending requests (§3.1.3, §4.3), and
    // the presence of the account's other resource (§4.2.2).
    let mut user_late = server.session(&u, PW, "late").await;
    let mut want = vec![presence_of(&uf, &format!("{ub}/late"))];
    if e.user.to {
        want.push(format!("<presence from='{cf}' to='{ub}/late'><priority>0</priority></presence>"));
    }
    if e.user.pending_in {
        want.push(sub_stanza("subscribe", &cb, &ub));
    }
    let before_echo = online(&mut user_late).await;
    assert_set(&format!("{ub}/late at login"), &before_echo, &want);
    expect_drained(&mut user, &[format!("<presence from='{ub}/late'><priority>0</priority></presence>")]).await;
    let seen = if e.contact.to { vec![presence_of(&format!("{ub}/late"), &cb)] } else { Vec::new() };
    expect_drained(&mut contact, &seen).await;

    // And of the contact.
    let mut contact_late = server.session(&c, PW, "late").await;
    let mut want = vec![presence_of(&cf, &format!("{cb}/late"))];
    if e.contact.to {
        for from in [&uf, &format!("{ub}/late")] {
            want.push(format!("<presence from='{from}' to='{cb}/late'><priority>0</priority></presence>"));
        }
    }
    if e.contact.pending_in {
        want.push(sub_stanza("subscribe", &ub, &cb));
    }
    let before_echo = online(&mut contact_late).await;
    assert_set(&format!("{cb}/late at login"), &before_echo, &want);
    expect_drained(&mut contact, &[format!("<presence from='{cb}/late'><priority>0</priority></presence>")]).await;
    let seen = if e.user.to { vec![presence_of(&format!("{cb}/late"), &ub)] } else { Vec::new() };
    expect_drained(&mut user, &seen).await;
    expect_drained(&mut user_late, &seen).await;
}

async fn appendix_a(ev: Ev) {
    let server = TestServer::start().await;
    for i in 0..STATES.len() {
        server.add_user(&format!("user{i}@localhost"), PW).await;
        server.add_user(&format!("contact{i}@localhost"), PW).await;
    }
    for (i, s) in STATES.iter().enumerate() {
        run_case(&server, i, s, ev).await;
    }
}

/// A.2.1 and A.3.1, every row.
#[tokio::test]
async fn appendix_a_subscribe() {
    appendix_a(Ev::Subscribe).await;
}

/// A.2.2 and A.3.2, every row, with §3.4 pre-approval where A.2.2 does not route.
#[tokio::test]
async fn appendix_a_subscribed() {
    appendix_a(Ev::Subscribed).await;
}

/// A.2.3 and A.3.3, every row.
#[tokio::test]
async fn appendix_a_unsubscribe() {
    appendix_a(Ev::Unsubscribe).await;
}

/// A.2.4 and A.3.4, every row.
#[tokio::test]
async fn appendix_a_unsubscribed() {
    appendix_a(Ev::Unsubscribed).await;
}

// ---- §3.1: the whole conversation, three accounts, several resources ----

const NICK: &str = "<nick xmlns='http://jabber.org/protocol/nick'>Alice</nick>";

/// Alice (two available resources and one connected, unavailable, interested one) asks
/// Bob (an interested and an uninterested available resource); Carol looks on.
/// Requests go to available resources only, pushes to interested resources only; after the
/// approval Bob's presence flows to Alice's available resources and Alice's does not flow
/// to Bob; Carol never sees anything.
#[tokio::test]
async fn subscription_conversation_with_several_resources_and_a_bystander() {
    let server = server_with(&["alice", "bob", "carol"]).await;
    let mut a1 = login_alone(&server, "alice", "a1").await;
    let mut a2 = login_alone(&server, "alice", "a2").await;
    let mut a3 = server.session("alice", PW, "a3").await;
    roster_items(&mut a3).await;
    let mut b1 = login_alone(&server, "bob", "b1").await;
    let mut b2 = server.available("bob", PW, "b2", 0).await;
    let mut carol = login_alone(&server, "carol", "c").await;
    drain(&mut a1).await; // a2's presence
    drain(&mut b1).await; // b2's presence

    a1.send(&format!("<presence type='subscribe' to='bob@localhost'>{NICK}<status>add me</status></presence>")).await;
    let ask = item("bob@localhost", "none", true);
    expect_drained(&mut a1, &[push("alice@localhost/a1", &ask)]).await;
    expect_drained(&mut a2, &[push("alice@localhost/a2", &ask)]).await;
    expect_drained(&mut a3, &[push("alice@localhost/a3", &ask)]).await;
    let request = format!(
        "<presence type='subscribe' from='alice@localhost' to='bob@localhost'>{NICK}<status>add me</status></presence>"
    );
    // Bob has no roster item yet ("None + Pending In"), so nothing is pushed to him.
    expect_drained(&mut b1, std::slice::from_ref(&request)).await;
    expect_drained(&mut b2, &[request]).await;
    assert_quiet(&mut carol).await;

    // Approved from the resource that never asked for the roster.
    b2.send("<presence type='subscribed' to='alice@localhost'/>").await;
    assert_quiet(&mut b2).await;
    expect_drained(&mut b1, &[push("bob@localhost/b1", &item("alice@localhost", "from", false))]).await;
    for (client, full) in [(&mut a1, "alice@localhost/a1"), (&mut a2, "alice@localhost/a2")] {
        expect_drained(
            client,
            &[
                sub_stanza("subscribed", "bob@localhost", "alice@localhost"),
                push(full, &item("bob@localhost", "to", false)),
                presence_of("bob@localhost/b1", "alice@localhost"),
                presence_of("bob@localhost/b2", "alice@localhost"),
            ],
        )
        .await;
    }
    expect_drained(&mut a3, &[push("alice@localhost/a3", &item("bob@localhost", "to", false))]).await;
    assert_quiet(&mut carol).await;

    // Bob's presence now reaches Alice's available resources.
    let before = send_presence(&mut b2, "<presence><show>away</show></presence>").await;
    assert!(before.is_empty(), "an update brings no probe answers:\n{}", list(&before));
    let away = "<presence from='bob@localhost/b2' to='alice@localhost'><show>away</show></presence>";
    expect_drained(&mut a1, &[away.to_owned()]).await;
    expect_drained(&mut a2, &[away.to_owned()]).await;
    assert_quiet(&mut a3).await;
    expect_drained(&mut b1, &["<presence from='bob@localhost/b2'><show>away</show></presence>".to_owned()]).await;
    assert_quiet(&mut carol).await;
    // Alice's does not reach Bob (his subscription state is "From").
    send_presence(&mut a1, "<presence><show>dnd</show></presence>").await;
    expect_drained(&mut a2, &["<presence from='alice@localhost/a1'><show>dnd</show></presence>".to_owned()]).await;
    assert_quiet(&mut b1).await;
    assert_quiet(&mut b2).await;
    assert_quiet(&mut carol).await;
}

/// §3.1.2: the contact's bare JID is what the request is about, even when the user
/// addressed a full JID.
#[tokio::test]
async fn subscription_request_to_a_full_jid_is_about_the_bare_jid() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = login_alone(&server, "alice", "a").await;
    let mut bob = login_alone(&server, "bob", "b").await;
    alice.send("<presence type='subscribe' to='bob@localhost/b'/>").await;
    expect_drained(&mut alice, &[push("alice@localhost/a", &item("bob@localhost", "none", true))]).await;
    expect_drained(&mut bob, &[sub_stanza("subscribe", "alice@localhost", "bob@localhost")]).await;
}

// ---- §3.1.3: requests kept until answered ----

/// The full request (its payloads too) is re-delivered after initial presence at every
/// login, across a restart, until it is answered; the requester, offline when the answer
/// came, finds the subscription in its roster and the contact's presence at login.
#[tokio::test]
async fn pending_request_is_redelivered_at_every_login_until_answered() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = login_alone(&server, "alice", "a").await;
    alice.send(&format!("<presence type='subscribe' to='bob@localhost'>{NICK}<status>hi</status></presence>")).await;
    drain(&mut alice).await;
    alice.send("</stream:stream>").await;
    alice.expect_closed().await;
    let request = format!(
        "<presence type='subscribe' from='alice@localhost' to='bob@localhost'>{NICK}<status>hi</status></presence>"
    );
    for resource in ["first", "second"] {
        let (mut bob, before) = login(&server, "bob", resource).await;
        assert_set(&format!("bob/{resource}"), &before, std::slice::from_ref(&request));
        bob.send("</stream:stream>").await;
        bob.expect_closed().await;
    }
    // Not while merely connected: only initial presence brings it.
    let mut quiet = server.session("bob", PW, "quiet").await;
    assert_quiet(&mut quiet).await;
    // Closed cleanly: had its connection just dropped, the messages it sent itself to check
    // for quiet would come back offline, never answered for (docs/delivery.md).
    quiet.send("</stream:stream>").await;
    quiet.expect_closed().await;

    let server = server.restart().await;
    let (mut bob, before) = login(&server, "bob", "third").await;
    assert_set("bob/third after restart", &before, std::slice::from_ref(&request));
    bob.send("<presence type='subscribed' to='alice@localhost'/>").await;
    expect_drained(&mut bob, &[push("bob@localhost/third", &item("alice@localhost", "from", false))]).await;
    // Answered: not delivered again.
    let (_bob2, before) = login(&server, "bob", "fourth").await;
    let sibling = presence_of("bob@localhost/third", "bob@localhost/fourth");
    assert_set("bob/fourth (answered: not delivered again)", &before, &[sibling]);

    let (mut alice, before) = {
        let mut client = server.session("alice", PW, "a").await;
        let item = roster_item(&mut client, "bob@localhost").await.expect("bob in alice's roster");
        assert_item(&item, &item_of("bob@localhost", state("To"), false));
        let before = online(&mut client).await;
        (client, before)
    };
    assert_set(
        "alice at login",
        &before,
        &[
            "<presence from='bob@localhost/third' to='alice@localhost/a'><priority>0</priority></presence>".to_owned(),
            "<presence from='bob@localhost/fourth' to='alice@localhost/a'><priority>0</priority></presence>".to_owned(),
        ],
    );
    assert_quiet(&mut alice).await;
}

/// Two requests waiting for one account are both delivered; answering one leaves the other.
#[tokio::test]
async fn several_pending_requests_are_each_redelivered_until_answered() {
    let server = server_with(&["alice", "bob", "carol"]).await;
    let mut alice = login_alone(&server, "alice", "a").await;
    let mut bob = login_alone(&server, "bob", "b").await;
    alice.send("<presence type='subscribe' to='carol@localhost'/>").await;
    bob.send("<presence type='subscribe' to='carol@localhost'/>").await;
    drain(&mut alice).await;
    drain(&mut bob).await;
    let (mut carol, before) = login(&server, "carol", "c1").await;
    assert_set(
        "carol",
        &before,
        &[
            sub_stanza("subscribe", "alice@localhost", "carol@localhost"),
            sub_stanza("subscribe", "bob@localhost", "carol@localhost"),
        ],
    );
    // Carol denies bob (§3.2.1 "unsubscribed" to a pending request).
    carol.send("<presence type='unsubscribed' to='bob@localhost'/>").await;
    assert_quiet(&mut carol).await;
    expect_drained(
        &mut bob,
        &[
            sub_stanza("unsubscribed", "carol@localhost", "bob@localhost"),
            push("bob@localhost/b", &item("carol@localhost", "none", false)),
        ],
    )
    .await;
    let (_carol2, before) = login(&server, "carol", "c2").await;
    let sibling = presence_of("carol@localhost/c1", "carol@localhost/c2");
    assert_set("carol again", &before, &[sub_stanza("subscribe", "alice@localhost", "carol@localhost"), sibling]);
}

// ---- §3.4: pre-approval ----

#[tokio::test]
async fn preapproval_is_stored_and_approves_a_later_request() {
    let server = server_with(&["alice", "bob"]).await;
    let mut bob = server.session("bob", PW, "b").await;
    assert!(
        bob.features.as_ref().and_then(|f| f.get_child("sub", "urn:xmpp:features:pre-approval")).is_some(),
        "pre-approval is advertised"
    );
    roster_items(&mut bob).await;
    assert!(online(&mut bob).await.is_empty());
    let mut alice = login_alone(&server, "alice", "a").await;
    bob.send("<presence type='subscribed' to='alice@localhost'/>").await;
    expect_drained(
        &mut bob,
        &[push("bob@localhost/b", "<item jid='alice@localhost' subscription='none' approved='true'/>")],
    )
    .await;
    // §3.4.2: the pre-approval is not routed to the contact.
    assert_quiet(&mut alice).await;
    let stored = roster_item(&mut bob, "alice@localhost").await.expect("pre-approved item");
    assert_item(&stored, "<item jid='alice@localhost' subscription='none' approved='true'/>");

    alice.send("<presence type='subscribe' to='bob@localhost'/>").await;
    expect_drained(
        &mut alice,
        &[
            push("alice@localhost/a", &item("bob@localhost", "none", true)),
            sub_stanza("subscribed", "bob@localhost", "alice@localhost"),
            push("alice@localhost/a", &item("bob@localhost", "to", false)),
            presence_of("bob@localhost/b", "alice@localhost"),
        ],
    )
    .await;
    // Bob is not asked: his item is now "From", the flag spent.
    expect_drained(&mut bob, &[push("bob@localhost/b", &item("alice@localhost", "from", false))]).await;
    // Bob's presence flows to Alice.
    send_presence(&mut bob, "<presence><status>here</status></presence>").await;
    expect_drained(
        &mut alice,
        &["<presence from='bob@localhost/b' to='alice@localhost'><status>here</status></presence>".to_owned()],
    )
    .await;
}

/// §3.4: "unsubscribed" withdraws a pre-approval (and is not routed); a later request is
/// then asked as usual.
#[tokio::test]
async fn preapproval_is_withdrawn_by_unsubscribed() {
    let server = server_with(&["alice", "bob"]).await;
    let mut bob = login_alone(&server, "bob", "b").await;
    let mut alice = login_alone(&server, "alice", "a").await;
    bob.send("<presence type='subscribed' to='alice@localhost'/>").await;
    drain(&mut bob).await;
    bob.send("<presence type='unsubscribed' to='alice@localhost'/>").await;
    expect_drained(&mut bob, &[push("bob@localhost/b", &item("alice@localhost", "none", false))]).await;
    assert_quiet(&mut alice).await;
    alice.send("<presence type='subscribe' to='bob@localhost'/>").await;
    expect_drained(&mut alice, &[push("alice@localhost/a", &item("bob@localhost", "none", true))]).await;
    // Bob now has an item, unchanged by the request: a re-push of it is tolerated.
    expect_drained_tolerating(
        &mut bob,
        &[sub_stanza("subscribe", "alice@localhost", "bob@localhost")],
        &[push("bob@localhost/b", &item("alice@localhost", "none", false))],
    )
    .await;
}

// ---- §3.1.3: no such contact; already subscribed ----

/// A request to a local account that does not exist is answered as denied: the requester
/// gets "unsubscribed" from that JID and its item goes back to "None" without ask.
#[tokio::test]
async fn subscribe_to_an_unknown_local_user_is_answered_unsubscribed() {
    let server = server_with(&["alice"]).await;
    let mut alice = login_alone(&server, "alice", "a").await;
    alice.send("<presence type='subscribe' to='nobody@localhost'/>").await;
    expect_drained(
        &mut alice,
        &[
            push("alice@localhost/a", &item("nobody@localhost", "none", true)),
            sub_stanza("unsubscribed", "nobody@localhost", "alice@localhost"),
            push("alice@localhost/a", &item("nobody@localhost", "none", false)),
        ],
    )
    .await;
    assert_roster_has(&mut alice, "nobody@localhost", &item("nobody@localhost", "none", false)).await;
}

/// §3.1.3: when the user already has a subscription, the contact's server answers
/// "subscribed" itself and the contact is not asked; the user's server, in state "To",
/// ignores that answer (A.3.2), so nobody receives anything and nothing changes.
#[tokio::test]
async fn subscribe_when_already_subscribed_asks_nobody() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = login_alone(&server, "alice", "a").await;
    let mut bob = login_alone(&server, "bob", "b").await;
    subscribe(&mut alice, &mut bob, &mut []).await;
    alice.send("<presence type='subscribe' to='bob@localhost'/>").await;
    assert_quiet(&mut alice).await;
    assert_quiet(&mut bob).await;
    assert_roster_has(&mut alice, "bob@localhost", &item("bob@localhost", "to", false)).await;
    assert_roster_has(&mut bob, "alice@localhost", &item("alice@localhost", "from", false)).await;
}

// ---- §3.2.2 ordering ----

/// §3.2.2: the contact's server sends the unavailable presence while the user is still
/// subscribed, i.e. before it routes the "unsubscribed".
#[tokio::test]
async fn cancellation_sends_unavailable_before_unsubscribed() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = login_alone(&server, "alice", "a").await;
    let mut bob = login_alone(&server, "bob", "b").await;
    befriend(&mut alice, &mut bob, &mut []).await;
    alice.send("<presence type='unsubscribed' to='bob@localhost'/>").await;
    expect_drained(&mut alice, &[push("alice@localhost/a", &item("bob@localhost", "to", false))]).await;
    let got = expect_drained(
        &mut bob,
        &[
            unavailable_of("alice@localhost/a", "bob@localhost"),
            sub_stanza("unsubscribed", "alice@localhost", "bob@localhost"),
            push("bob@localhost/b", &item("alice@localhost", "from", false)),
        ],
    )
    .await;
    let position = |kind: &str| got.iter().position(|e| e.is("presence", NS_CLIENT) && e.attr("type") == Some(kind));
    assert!(position("unavailable") < position("unsubscribed"), "unavailable first:\n{}", list(&got));
}

// ---- §2.5.2: removing a contact from the roster ----

/// Removing a contact whose presence we see ("To") unsubscribes: the contact gets
/// "unsubscribe" and a push to "None", and we see it go unavailable (§3.3.3).
#[tokio::test]
async fn roster_remove_of_a_to_contact_unsubscribes() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = login_alone(&server, "alice", "a").await;
    let mut bob = login_alone(&server, "bob", "b").await;
    subscribe(&mut alice, &mut bob, &mut []).await;
    alice
        .send("<iq type='set' id='rm'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='remove'/></query></iq>")
        .await;
    expect_drained(
        &mut alice,
        &[
            "<iq type='result' id='rm' to='alice@localhost/a'/>".to_owned(),
            push("alice@localhost/a", "<item jid='bob@localhost' subscription='remove'/>"),
            unavailable_of("bob@localhost/b", "alice@localhost"),
        ],
    )
    .await;
    expect_drained(
        &mut bob,
        &[
            sub_stanza("unsubscribe", "alice@localhost", "bob@localhost"),
            push("bob@localhost/b", &item("alice@localhost", "none", false)),
        ],
    )
    .await;
    // Bob's presence no longer reaches Alice.
    send_presence(&mut bob, "<presence><show>xa</show></presence>").await;
    assert_quiet(&mut alice).await;
}

/// Removing a contact with a request pending from it denies the request.
#[tokio::test]
async fn roster_remove_with_a_pending_request_denies_it() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = login_alone(&server, "alice", "a").await;
    let mut bob = login_alone(&server, "bob", "b").await;
    alice
        .send("<iq type='set' id='add'><query xmlns='jabber:iq:roster'><item jid='bob@localhost'/></query></iq>")
        .await;
    drain(&mut alice).await;
    bob.send("<presence type='subscribe' to='alice@localhost'/>").await;
    drain(&mut bob).await;
    drain(&mut alice).await;
    alice
        .send("<iq type='set' id='rm'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='remove'/></query></iq>")
        .await;
    expect_drained(
        &mut alice,
        &[
            "<iq type='result' id='rm' to='alice@localhost/a'/>".to_owned(),
            push("alice@localhost/a", "<item jid='bob@localhost' subscription='remove'/>"),
        ],
    )
    .await;
    expect_drained(
        &mut bob,
        &[
            sub_stanza("unsubscribed", "alice@localhost", "bob@localhost"),
            push("bob@localhost/b", &item("alice@localhost", "none", false)),
        ],
    )
    .await;
    let (_alice2, before) = login(&server, "alice", "again").await;
    let sibling = presence_of("alice@localhost/a", "alice@localhost/again");
    assert_set("alice/again (the denied request does not come back)", &before, &[sibling]);
}

/// Removing a contact that sees our presence ("From") cancels its subscription: it sees us
/// go unavailable, then gets "unsubscribed" and a push to "None" (§2.5.2, §3.2).
#[tokio::test]

async fn roster_remove_of_a_from_contact_cancels_its_subscription() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = login_alone(&server, "alice", "a").await;
    let mut bob = login_alone(&server, "bob", "b").await;
    subscribe(&mut bob, &mut alice, &mut []).await;
    alice
        .send("<iq type='set' id='rm'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='remove'/></query></iq>")
        .await;
    expect_drained(
        &mut alice,
        &[
            "<iq type='result' id='rm' to='alice@localhost/a'/>".to_owned(),
            push("alice@localhost/a", "<item jid='bob@localhost' subscription='remove'/>"),
        ],
    )
    .await;
    let got = expect_drained(
        &mut bob,
        &[
            unavailable_of("alice@localhost/a", "bob@localhost"),
            sub_stanza("unsubscribed", "alice@localhost", "bob@localhost"),
            push("bob@localhost/b", &item("alice@localhost", "none", false)),
        ],
    )
    .await;
    let position = |kind: &str| got.iter().position(|e| e.is("presence", NS_CLIENT) && e.attr("type") == Some(kind));
    assert!(position("unavailable") < position("unsubscribed"), "unavailable first:\n{}", list(&got));
    assert_roster_has(&mut bob, "alice@localhost", &item("alice@localhost", "none", false)).await;
    send_presence(&mut alice, "<presence><show>xa</show></presence>").await;
    assert_quiet(&mut bob).await;
}

/// §2.5.2: removing a "Both" contact sends it "unsubscribe" and "unsubscribed"; it sees us
/// go unavailable and ends with "None"; we see it go unavailable; no presence flows after.
#[tokio::test]

async fn roster_remove_of_a_both_contact_ends_both_directions() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = login_alone(&server, "alice", "a").await;
    let mut bob = login_alone(&server, "bob", "b").await;
    befriend(&mut alice, &mut bob, &mut []).await;
    alice
        .send("<iq type='set' id='rm'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='remove'/></query></iq>")
        .await;
    expect_drained(
        &mut alice,
        &[
            "<iq type='result' id='rm' to='alice@localhost/a'/>".to_owned(),
            push("alice@localhost/a", "<item jid='bob@localhost' subscription='remove'/>"),
            unavailable_of("bob@localhost/b", "alice@localhost"),
        ],
    )
    .await;
    let got = drain(&mut bob).await;
    let (pushes, rest) = pushes_and_rest(got.clone());
    assert_set(
        "bob@localhost/b",
        &rest,
        &[
            sub_stanza("unsubscribe", "alice@localhost", "bob@localhost"),
            unavailable_of("alice@localhost/a", "bob@localhost"),
            sub_stanza("unsubscribed", "alice@localhost", "bob@localhost"),
        ],
    );
    let last = pushes.last().unwrap_or_else(|| panic!("bob's roster was not pushed:\n{}", list(&got)));
    xml::assert_matches(last, &push("bob@localhost/b", &item("alice@localhost", "none", false)));
    assert_roster_has(&mut bob, "alice@localhost", &item("alice@localhost", "none", false)).await;
    send_presence(&mut alice, "<presence><show>xa</show></presence>").await;
    assert_quiet(&mut bob).await;
    send_presence(&mut bob, "<presence><show>xa</show></presence>").await;
    assert_quiet(&mut alice).await;
}

// ---- virtual hosts ----

/// A bound session of `user`@`domain` on a server with several hosts.
async fn session_on(server: &TestServer, domain: &str, user: &str, resource: &str) -> Client {
    let mut client = server.connect().await;
    client.send(&stream_header(domain)).await;
    client.next_header().await;
    client.features = Some(client.recv().await);
    let mut mechanism = client.mechanism(Mech::ScramSha256, user, PW);
    client.sasl(mechanism.as_mut()).await.unwrap_or_else(|e| panic!("{user}@{domain}: {e}"));
    client.reset_framer();
    client.send(&stream_header(domain)).await;
    client.next_header().await;
    client.recv().await;
    client.bind(Some(resource)).await;
    client
}

/// Subscriptions between accounts on two hosts of one server work like local ones.
#[tokio::test]
async fn mutual_subscription_across_virtual_hosts() {
    let server = TestServer::with(|c| c.hosts = vec!["localhost".into(), "example.org".into()]).await;
    server.add_user("alice@localhost", PW).await;
    server.add_user("bob@example.org", PW).await;
    let mut alice = login_alone(&server, "alice", "a").await;
    let mut bob = session_on(&server, "example.org", "bob", "b").await;
    roster_items(&mut bob).await;
    assert!(online(&mut bob).await.is_empty());

    alice.send("<presence type='subscribe' to='bob@example.org'/>").await;
    expect_drained(&mut alice, &[push("alice@localhost/a", &item("bob@example.org", "none", true))]).await;
    expect_drained(&mut bob, &[sub_stanza("subscribe", "alice@localhost", "bob@example.org")]).await;
    bob.send("<presence type='subscribed' to='alice@localhost'/>").await;
    expect_drained(&mut bob, &[push("bob@example.org/b", &item("alice@localhost", "from", false))]).await;
    expect_drained(
        &mut alice,
        &[
            sub_stanza("subscribed", "bob@example.org", "alice@localhost"),
            push("alice@localhost/a", &item("bob@example.org", "to", false)),
            presence_of("bob@example.org/b", "alice@localhost"),
        ],
    )
    .await;
    bob.send("<presence type='subscribe' to='alice@localhost'/>").await;
    expect_drained(&mut bob, &[push("bob@example.org/b", &item("alice@localhost", "from", true))]).await;
    expect_drained_tolerating(
        &mut alice,
        &[sub_stanza("subscribe", "bob@example.org", "alice@localhost")],
        &[push("alice@localhost/a", &item("bob@example.org", "to", false))],
    )
    .await;
    alice.send("<presence type='subscribed' to='bob@example.org'/>").await;
    expect_drained(&mut alice, &[push("alice@localhost/a", &item("bob@example.org", "both", false))]).await;
    expect_drained(
        &mut bob,
        &[
            sub_stanza("subscribed", "alice@localhost", "bob@example.org"),
            push("bob@example.org/b", &item("alice@localhost", "both", false)),
            presence_of("alice@localhost/a", "bob@example.org"),
        ],
    )
    .await;
    // Presence flows both ways, and goes when the session goes.
    send_presence(&mut alice, "<presence><show>chat</show></presence>").await;
    expect_drained(
        &mut bob,
        &["<presence from='alice@localhost/a' to='bob@example.org'><show>chat</show></presence>".to_owned()],
    )
    .await;
    bob.send("<presence type='unavailable'/>").await;
    bob.expect("<presence type='unavailable' from='bob@example.org/b'/>").await;
    expect_drained(&mut alice, &[unavailable_of("bob@example.org/b", "alice@localhost")]).await;
}
