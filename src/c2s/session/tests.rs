//! The session state machine without sockets: XML literals in, actions out.

use super::*;
use crate::config::Config;
use crate::core::Mailbox;
use crate::sasl::credentials::StoredCredentials;
use crate::storage::memory::MemoryStore;
use std::sync::Arc;

fn state() -> Arc<ServerState> {
    state_with(Config::default())
}

/// Alice and Bob (password `pw`) on a server configured with `config`, over the memory
/// store answering later (as a store across a network does), so that every step the
/// session takes is tested with storage it must wait for.
fn state_with(config: Config) -> Arc<ServerState> {
    let store = MemoryStore::new();
    for user in ["alice@localhost", "bob@localhost"] {
        let creds = StoredCredentials::derive("pw", 4096).expect("derive");
        store.create_user(&BareJid::new(user).expect("jid"), &creds).at_once().expect("create");
    }
    let modules = crate::modules::standard(&config);
    ServerState::new(config, Arc::new(crate::storage::later::Later::new(Arc::new(store))), modules)
}

use crate::storage::UserStore;

/// A session bound in the router, with the mailbox a connection task would own.
fn bind(state: &ServerState, jid: &str, now: Instant) -> (Session, Mailbox) {
    let jid = FullJid::new(jid).expect("full JID");
    let (handle, mailbox) = state.registry.channels(8, 1 << 20);
    state.registry.bind(jid.clone(), handle.clone());
    (Session::new(state, jid, handle.id, now), mailbox)
}

fn xml(text: &str) -> Element {
    text.parse().expect("test XML")
}

/// What `session` makes of `element`, with the answers modules give later resolved, as
/// the session task does.
async fn handle(session: &mut Session, state: &ServerState, element: Element, now: Instant) -> Vec<Action> {
    let actions = session.handle(state, element, now).await;
    session.resolved(actions).await
}

/// The actions after the wait for durability that an archived message brings (the
/// archive is on here: its entries are durable before the sender learns anything more).
fn after_durable(actions: &[Action]) -> &[Action] {
    match actions {
        [Action::AwaitDurable, rest @ ..] => rest,
        all => all,
    }
}

/// The single element written to our own client.
fn written(actions: &[Action]) -> Element {
    match actions {
        [Action::Write(bytes) | Action::Send(bytes)] => {
            std::str::from_utf8(bytes).expect("utf-8").parse().expect("one element")
        }
        other => panic!("expected one write, got {other:?}"),
    }
}

fn ended(actions: &[Action]) -> StreamCondition {
    match actions {
        [Action::End(StreamEnd::Error(condition, _))] => *condition,
        other => panic!("expected a stream error, got {other:?}"),
    }
}

fn error_condition(reply: &Element) -> String {
    let error = reply.get_child("error", NS_CLIENT).expect("<error/>");
    error.children().next().expect("condition").name().to_owned()
}

async fn available(state: &ServerState, session: &mut Session, priority: i8, now: Instant) {
    let presence = xml(&format!("<presence xmlns='jabber:client'><priority>{priority}</priority></presence>"));
    session.handle(state, presence, now).await;
}

/// What reached a mailbox, as elements (shared bytes parsed back).
fn drain(mailbox: &mut Mailbox) -> Vec<Element> {
    std::iter::from_fn(|| mailbox.stanzas.try_recv())
        .filter_map(|delivery| match delivery {
            Delivery::Bytes(bytes) | Delivery::Kept { bytes, .. } | Delivery::Message(bytes) => {
                std::str::from_utf8(&bytes).ok()?.parse().ok()
            }
            Delivery::Push(..) | Delivery::Wake => None,
        })
        .collect()
}

#[tokio::test]
async fn message_to_bare_jid_reaches_the_highest_priority_resource() {
    let state = state();
    let now = Instant::now();
    let (mut alice, _a) = bind(&state, "alice@localhost/a", now);
    let (mut high, mut high_box) = bind(&state, "bob@localhost/high", now);
    let (mut low, mut low_box) = bind(&state, "bob@localhost/low", now);
    available(&state, &mut high, 5, now).await;
    available(&state, &mut low, 1, now).await;
    drain(&mut high_box);
    drain(&mut low_box);

    let msg = "<message xmlns='jabber:client' to='bob@localhost' type='chat' t='9'><body>hi</body></message>";
    assert!(after_durable(&handle(&mut alice, &state, xml(msg), now).await).is_empty());
    let got = drain(&mut high_box);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].attr("from"), Some("alice@localhost/a"), "from is stamped");
    assert_eq!(got[0].attr("t"), Some("9"), "unknown attributes survive");
    assert!(drain(&mut low_box).is_empty());
}

#[tokio::test]
async fn negative_priority_never_gets_bare_jid_messages() {
    let state = state();
    let now = Instant::now();
    let (mut alice, _a) = bind(&state, "alice@localhost/a", now);
    let (mut bob, mut bob_box) = bind(&state, "bob@localhost/b", now);
    available(&state, &mut bob, -1, now).await;
    drain(&mut bob_box);

    // No resource with a non-negative priority: the message is stored (XEP-0160).
    let actions = handle(
        &mut alice,
        &state,
        xml("<message xmlns='jabber:client' to='bob@localhost'><body>x</body></message>"),
        now,
    )
    .await;
    assert!(matches!(actions[..], [Action::AwaitDurable]), "{actions:?}");
    assert!(drain(&mut bob_box).is_empty());
    assert_eq!(state.store.offline_count(&BareJid::new("bob@localhost").expect("jid")).await.expect("count"), 1);

    let to_full = "<message xmlns='jabber:client' to='bob@localhost/b'><body>x</body></message>";
    assert!(after_durable(&handle(&mut alice, &state, xml(to_full), now).await).is_empty());
    assert_eq!(drain(&mut bob_box).len(), 1, "a full JID reaches the resource whatever its priority");
}

#[tokio::test]
async fn spoofed_from_ends_the_stream_and_is_not_delivered() {
    let state = state();
    let now = Instant::now();
    let (mut alice, _a) = bind(&state, "alice@localhost/a", now);
    let (mut bob, mut bob_box) = bind(&state, "bob@localhost/b", now);
    available(&state, &mut bob, 0, now).await;
    drain(&mut bob_box);
    let spoof = "<message xmlns='jabber:client' from='bob@localhost' to='bob@localhost/b'><body>x</body></message>";
    assert_eq!(ended(&handle(&mut alice, &state, xml(spoof), now).await), StreamCondition::InvalidFrom);
    assert!(drain(&mut bob_box).is_empty());

    let own_bare = "<message xmlns='jabber:client' from='alice@localhost' to='bob@localhost/b'/>";
    assert!(handle(&mut alice, &state, xml(own_bare), now).await.is_empty());
    assert_eq!(drain(&mut bob_box)[0].attr("from"), Some("alice@localhost/a"));
}

#[tokio::test]
async fn iq_faults_are_stanza_errors_and_unknown_elements_end_the_stream() {
    let state = state();
    let now = Instant::now();
    let (mut alice, _a) = bind(&state, "alice@localhost/a", now);
    let cases = [
        ("<iq xmlns='jabber:client' type='get'><ping xmlns='urn:xmpp:ping'/></iq>", "bad-request"),
        (
            "<iq xmlns='jabber:client' id='1' type='get' to='localhost'><x xmlns='urn:unknown'/></iq>",
            "service-unavailable",
        ),
        (
            "<iq xmlns='jabber:client' id='2' type='get' to='nobody@localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
            "service-unavailable",
        ),
        (
            "<iq xmlns='jabber:client' id='3' type='get' to='bob@localhost/gone'><ping xmlns='urn:xmpp:ping'/></iq>",
            "service-unavailable",
        ),
        (
            "<iq xmlns='jabber:client' id='4' type='get' to='example.net'><ping xmlns='urn:xmpp:ping'/></iq>",
            "remote-server-not-found",
        ),
        ("<presence xmlns='jabber:client'><priority>200</priority></presence>", "bad-request"),
        // Payloads are read with xmpp-parsers types: what does not fit is bad-request.
        ("<iq xmlns='jabber:client' id='5' type='get' to='localhost'><ping xmlns='urn:xmpp:ping'><x/></ping></iq>", "bad-request"),
        ("<iq xmlns='jabber:client' id='6' type='set'><block xmlns='urn:xmpp:blocking'><item jid='@@'/></block></iq>", "bad-request"),
        ("<iq xmlns='jabber:client' id='7' type='set'><block xmlns='urn:xmpp:blocking'/></iq>", "bad-request"),
    ];
    for (input, condition) in cases {
        let reply = written(&handle(&mut alice, &state, xml(input), now).await);
        assert!(
            reply.get_child("error", NS_CLIENT).is_some(),
            "{input} got {}",
            String::from_utf8_lossy(&writer::to_bytes(&reply))
        );
        assert_eq!(error_condition(&reply), condition, "{input}");
        assert_eq!(reply.attr("to"), Some("alice@localhost/a"), "{input}");
    }
    let unknown = handle(&mut alice, &state, xml("<foo xmlns='jabber:client'/>"), now).await;
    assert_eq!(ended(&unknown), StreamCondition::UnsupportedStanzaType);
}

#[tokio::test]
async fn ping_and_disco_are_answered_by_the_server() {
    let state = state();
    let now = Instant::now();
    let (mut alice, _a) = bind(&state, "alice@localhost/a", now);
    let pong = written(
        &handle(
            &mut alice,
            &state,
            xml("<iq xmlns='jabber:client' id='p' type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"),
            now,
        )
        .await,
    );
    assert_eq!((pong.attr("type"), pong.attr("id"), pong.attr("from")), (Some("result"), Some("p"), Some("localhost")));

    let info = written(&handle(
        &mut alice,
        &state,
        xml("<iq xmlns='jabber:client' id='d' type='get' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"),
        now,
    ).await);
    let query = info.get_child("query", "http://jabber.org/protocol/disco#info").expect("query");
    let features: Vec<&str> = query.children().filter_map(|c| c.attr("var")).collect();
    assert!(features.contains(&"urn:xmpp:ping"), "{features:?}");
    let identity = query.get_child("identity", "http://jabber.org/protocol/disco#info").expect("identity");
    assert_eq!((identity.attr("category"), identity.attr("type")), (Some("server"), Some("im")));
}

#[tokio::test(start_paused = true)]
async fn idle_client_is_pinged_then_timed_out() {
    let state = state();
    let start = Instant::now();
    let (mut alice, _a) = bind(&state, "alice@localhost/a", start);
    assert!(alice.tick(start).is_empty());
    let interval = Duration::from_secs(state.config.timeouts.ping_interval_secs);
    let timeout = Duration::from_secs(state.config.timeouts.ping_timeout_secs);

    let ping = written(&alice.tick(start + interval));
    assert!(ping.get_child("ping", "urn:xmpp:ping").is_some());
    assert_eq!(alice.deadline(), start + interval + timeout);

    // An answer keeps the session; silence after the next ping ends it.
    let answer = format!("<iq xmlns='jabber:client' type='result' id='{}'/>", ping.attr("id").unwrap_or_default());
    let later = start + interval + Duration::from_secs(1);
    assert!(handle(&mut alice, &state, xml(&answer), later).await.is_empty());
    assert!(alice.tick(later + timeout).is_empty());
    written(&alice.tick(later + interval));
    assert_eq!(ended(&alice.tick(later + interval + timeout)), StreamCondition::ConnectionTimeout);
}

#[tokio::test]
async fn ending_a_session_tells_our_other_resources() {
    let state = state();
    let now = Instant::now();
    let (mut first, mut first_box) = bind(&state, "alice@localhost/one", now);
    let (mut second, _s) = bind(&state, "alice@localhost/two", now);
    available(&state, &mut first, 0, now).await;
    available(&state, &mut second, 0, now).await;
    let echoes = drain(&mut first_box);
    // Its own echo it wrote itself (RFC 6121 §4.2.2: first, before anything else).
    assert_eq!(echoes.len(), 1, "the other resource's presence: {echoes:?}");
    second.on_end(&state).await;
    let gone = drain(&mut first_box);
    assert_eq!(gone.len(), 1);
    assert_eq!((gone[0].attr("type"), gone[0].attr("from")), (Some("unavailable"), Some("alice@localhost/two")));
    assert!(state.registry.resource(&FullJid::new("alice@localhost/two").expect("jid")).is_none());
}

#[tokio::test]
async fn only_dialect_sessions_see_last_on_unavailable_presence() {
    let state = state();
    let now = Instant::now();
    let (mut standard, mut standard_box) = bind(&state, "alice@localhost/std", now);
    let (mut dialect, mut dialect_box) = bind(&state, "alice@localhost/dia", now);
    // Bob lets alice see his presence, and his only resource goes offline.
    let (mut leaving, _l) = bind(&state, "bob@localhost/gone", now);
    let mut item = crate::storage::roster::RosterItem::new(&BareJid::new("alice@localhost").expect("jid"));
    item.subscription = crate::storage::roster::Subscription::From;
    let quota = state.config.limits.roster_quota();
    state.store.put_roster_item(&BareJid::new("bob@localhost").expect("jid"), &item, quota).await.expect("roster");
    let actions = handle(&mut dialect, &state, xml("<enable xmlns='urn:stanzad:dialect:0'/>"), now).await;
    assert!(written(&actions[..1]).is("enabled", "urn:stanzad:dialect:0"));
    available(&state, &mut standard, 0, now).await;
    available(&state, &mut dialect, 0, now).await;
    available(&state, &mut leaving, 0, now).await;
    drain(&mut standard_box);
    drain(&mut dialect_box);

    // A client-supplied `last` never reaches a standard session either.
    // (One device of several going away is not "last seen": see the next test.)
    let bye = "<presence xmlns='jabber:client' type='unavailable' last='1'/>";
    assert!(handle(&mut leaving, &state, xml(bye), now).await.is_empty());
    let seen_by_standard = drain(&mut standard_box);
    let seen_by_dialect = drain(&mut dialect_box);
    assert_eq!(seen_by_standard.len(), 1);
    assert_eq!(seen_by_standard[0].attr("last"), None, "standard clients never see the attribute");
    let last: u64 = seen_by_dialect[0].attr("last").expect("last").parse().expect("unix seconds");
    assert!(last >= crate::core::presence::unix_now() - 5, "{last}");
}

#[tokio::test]
async fn one_device_of_several_going_away_carries_no_last() {
    let state = state();
    let now = Instant::now();
    let (mut dialect, mut dialect_box) = bind(&state, "alice@localhost/dia", now);
    let (mut leaving, _l) = bind(&state, "alice@localhost/gone", now);
    handle(&mut dialect, &state, xml("<enable xmlns='urn:stanzad:dialect:0'/>"), now).await;
    available(&state, &mut dialect, 0, now).await;
    available(&state, &mut leaving, 0, now).await;
    drain(&mut dialect_box);
    handle(&mut leaving, &state, xml("<presence xmlns='jabber:client' type='unavailable' last='1'/>"), now).await;
    let seen = drain(&mut dialect_box);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].attr("last"), None, "the account is still online, and a client's own last is dropped");
}

#[tokio::test]
async fn offline_messages_wait_with_their_time_and_go_only_when_acknowledged() {
    let state = state();
    let now = Instant::now();
    let bob = BareJid::new("bob@localhost").expect("jid");
    let (mut alice, _a) = bind(&state, "alice@localhost/a", now);
    for i in 0..3 {
        let msg = format!(
            "<message xmlns='jabber:client' to='bob@localhost' type='chat' id='m{i}'><body>{i}</body></message>"
        );
        assert!(matches!(handle(&mut alice, &state, xml(&msg), now).await[..], [Action::AwaitDurable]));
    }
    assert_eq!(state.store.offline_count(&bob).await.expect("count"), 3);

    // A dialect session learns the count before anything else.
    let (mut first, _f) = bind(&state, "bob@localhost/first", now);
    let actions = handle(&mut first, &state, xml("<enable xmlns='urn:stanzad:dialect:0'/>"), now).await;
    let ib = written(&actions[1..]);
    assert!(ib.is("ib", "urn:stanzad:dialect:0"));
    assert_eq!(ib.get_child("offline", "urn:stanzad:dialect:0").and_then(|o| o.attr("count")), Some("3"));

    // The backlog follows available presence, in order, with XEP-0203 delay, then a ping.
    let actions = handle(&mut first, &state, xml("<presence xmlns='jabber:client'/>"), now).await;
    let sent: Vec<Element> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Write(bytes) => std::str::from_utf8(bytes).ok()?.parse().ok(),
            _ => None,
        })
        .collect();
    let ids: Vec<&str> = sent.iter().filter(|e| e.name() == "message").filter_map(|e| e.attr("id")).collect();
    assert_eq!(ids, vec!["m0", "m1", "m2"]);
    assert!(sent[0].is("presence", NS_CLIENT), "the echo first: {:?}", sent[0]);
    let delay = sent[1].get_child("delay", "urn:xmpp:delay").expect("delay");
    assert_eq!(delay.attr("from"), Some("localhost"));
    assert!(delay.attr("stamp").is_some_and(|s| s.ends_with('Z')));
    let ping = sent.last().expect("ping");
    assert!(ping.get_child("ping", "urn:xmpp:ping").is_some());

    // Not acknowledged (the connection died): nothing is lost.
    first.on_end(&state).await;
    assert_eq!(state.store.offline_count(&bob).await.expect("count"), 3);

    // Acknowledged: gone.
    let (mut second, _s) = bind(&state, "bob@localhost/second", now);
    let actions = handle(&mut second, &state, xml("<presence xmlns='jabber:client'/>"), now).await;
    let ping: Element = match actions.last() {
        Some(Action::Write(bytes)) => std::str::from_utf8(bytes).expect("utf-8").parse().expect("ping"),
        other => panic!("{other:?}"),
    };
    let id = ping.attr("id").expect("id");
    let ack = format!("<iq xmlns='jabber:client' type='result' id='{id}' to='localhost'/>");
    assert!(handle(&mut second, &state, xml(&ack), now).await.is_empty(), "nothing more to send");
    assert_eq!(state.store.offline_count(&bob).await.expect("count"), 0);
}

#[tokio::test]
async fn headline_groupchat_and_error_are_not_stored() {
    let state = state();
    let now = Instant::now();
    let (mut alice, _a) = bind(&state, "alice@localhost/a", now);
    for kind in ["headline", "error"] {
        let msg = format!("<message xmlns='jabber:client' to='bob@localhost' type='{kind}'><body>x</body></message>");
        assert!(handle(&mut alice, &state, xml(&msg), now).await.is_empty(), "{kind} is dropped");
    }
    let groupchat = "<message xmlns='jabber:client' to='bob@localhost' type='groupchat'><body>x</body></message>";
    assert_eq!(
        error_condition(&written(&handle(&mut alice, &state, xml(groupchat), now).await)),
        "service-unavailable"
    );
    assert_eq!(state.store.offline_count(&BareJid::new("bob@localhost").expect("jid")).await.expect("count"), 0);
}

/// The elements of a list of write actions.
fn writes(actions: &[Action]) -> Vec<Element> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Write(bytes) | Action::Send(bytes) => std::str::from_utf8(bytes).ok()?.parse().ok(),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn flexible_offline_retrieval_leaves_messages_until_removed() {
    const FLEX: &str = "http://jabber.org/protocol/offline";
    let state = state();
    let now = Instant::now();
    let bob = BareJid::new("bob@localhost").expect("jid");
    let (mut alice, _a) = bind(&state, "alice@localhost/a", now);
    for i in 0..2 {
        let msg = format!("<message xmlns='jabber:client' to='bob@localhost' id='m{i}'><body>{i}</body></message>");
        handle(&mut alice, &state, xml(&msg), now).await;
    }
    let (mut phone, _p) = bind(&state, "bob@localhost/phone", now);
    let info = written(&handle(
        &mut phone,
        &state,
        xml(&format!("<iq xmlns='jabber:client' type='get' id='i' to='bob@localhost'><query xmlns='http://jabber.org/protocol/disco#info' node='{FLEX}'/></iq>")),
        now,
    ).await);
    let text = String::from_utf8(writer::to_bytes(&info)).expect("utf-8");
    assert!(text.contains("number_of_messages") && text.contains("<value>2</value>"), "{text}");

    let headers = written(&handle(
        &mut phone,
        &state,
        xml(&format!("<iq xmlns='jabber:client' type='get' id='h' to='bob@localhost'><query xmlns='http://jabber.org/protocol/disco#items' node='{FLEX}'/></iq>")),
        now,
    ).await);
    let nodes: Vec<String> = headers
        .get_child("query", "http://jabber.org/protocol/disco#items")
        .expect("items")
        .children()
        .map(|i| {
            assert_eq!(i.attr("name"), Some("alice@localhost/a"));
            i.attr("node").expect("node").to_owned()
        })
        .collect();
    assert_eq!(nodes.len(), 2);

    let viewed = writes(&handle(
        &mut phone,
        &state,
        xml(&format!("<iq xmlns='jabber:client' type='get' id='v'><offline xmlns='{FLEX}'><item action='view' node='{}'/></offline></iq>", nodes[0])),
        now,
    ).await);
    assert_eq!(viewed.len(), 2, "the message, then the result");
    assert_eq!(viewed[0].attr("id"), Some("m0"));
    assert!(viewed[0].get_child("offline", FLEX).is_some(), "marked with its node");
    assert_eq!(viewed[1].attr("type"), Some("result"));

    let remove = format!("<iq xmlns='jabber:client' type='set' id='r'><offline xmlns='{FLEX}'><item action='remove' node='{}'/></offline></iq>", nodes[0]);
    assert_eq!(writes(&handle(&mut phone, &state, xml(&remove), now).await)[0].attr("type"), Some("result"));
    assert_eq!(state.store.offline_count(&bob).await.expect("count"), 1);
    assert_eq!(error_condition(&written(&handle(&mut phone, &state, xml(&remove), now).await)), "item-not-found");

    // A client retrieving by itself gets no flood at login.
    let presence = writes(&handle(&mut phone, &state, xml("<presence xmlns='jabber:client'/>"), now).await);
    assert!(presence.iter().all(|e| e.name() != "message"), "{presence:?}");
    let fetched = writes(
        &handle(
            &mut phone,
            &state,
            xml(&format!(
                "<iq xmlns='jabber:client' type='get' id='f'><offline xmlns='{FLEX}'><fetch/></offline></iq>"
            )),
            now,
        )
        .await,
    );
    assert_eq!(fetched.iter().filter(|e| e.name() == "message").count(), 1);
    assert_eq!(state.store.offline_count(&bob).await.expect("count"), 1, "fetch does not delete");
    handle(
        &mut phone,
        &state,
        xml(&format!("<iq xmlns='jabber:client' type='set' id='p'><offline xmlns='{FLEX}'><purge/></offline></iq>")),
        now,
    )
    .await;
    assert_eq!(state.store.offline_count(&bob).await.expect("count"), 0);
}

#[tokio::test]
async fn what_a_flexible_client_was_shown_is_remembered_up_to_the_quota() {
    const FLEX: &str = "http://jabber.org/protocol/offline";
    let mut config = Config::default();
    config.limits.offline_quota = 3;
    let state = state_with(config);
    let now = Instant::now();
    let bob = BareJid::new("bob@localhost").expect("jid");
    let (mut alice, _a) = bind(&state, "alice@localhost/a", now);
    let (mut phone, _p) = bind(&state, "bob@localhost/phone", now);
    let fetch = format!("<iq xmlns='jabber:client' type='get' id='f'><offline xmlns='{FLEX}'><fetch/></offline></iq>");
    for round in 0..4 {
        for i in 0..3 {
            let msg =
                format!("<message xmlns='jabber:client' to='bob@localhost' id='m{round}{i}'><body>x</body></message>");
            handle(&mut alice, &state, xml(&msg), now).await;
        }
        handle(&mut phone, &state, xml(&fetch), now).await;
        // Another resource takes them away: what this one was shown goes stale.
        let stored: Vec<u64> =
            state.store.offline_batch(&bob, offline::BATCH).await.expect("batch").iter().map(|m| m.seq).collect();
        assert_eq!(stored.len(), 3, "round {round}");
        state.store.remove_offline(&bob, &stored).await.expect("remove");
    }
    let shown = crate::modules::offline::shown(&phone.slots);
    assert_eq!(shown.len(), 3, "at most the quota, the newest kept");
    assert!(shown.iter().all(|seq| *seq >= shown[0]) && shown[0] >= 9, "{shown:?}");
}

#[tokio::test]
async fn dialect_sessions_get_server_time_and_sent_acks_and_retransmissions_are_dropped() {
    let state = state();
    let now = Instant::now();
    let (mut alice, _a) = bind(&state, "alice@localhost/a", now);
    let (mut bob, mut bob_box) = bind(&state, "bob@localhost/b", now);
    available(&state, &mut bob, 0, now).await;
    drain(&mut bob_box);
    let ping = "<iq xmlns='jabber:client' type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>";
    assert_eq!(written(&handle(&mut alice, &state, xml(ping), now).await).attr("t"), None, "standard: no t");
    handle(&mut alice, &state, xml("<enable xmlns='urn:stanzad:dialect:0'/>"), now).await;
    let t: u64 =
        written(&handle(&mut alice, &state, xml(ping), now).await).attr("t").expect("t").parse().expect("seconds");
    assert!(t >= crate::core::presence::unix_now() - 5);

    // Delivered live: acknowledged with its id.
    let msg = "<message xmlns='jabber:client' to='bob@localhost' type='chat' id='x1'><body>hi</body></message>";
    let ack = written(after_durable(&handle(&mut alice, &state, xml(msg), now).await));
    assert!(ack.is("ack", "urn:stanzad:dialect:0"));
    assert_eq!(ack.attr("id"), Some("x1"));
    assert_eq!(drain(&mut bob_box).len(), 1);

    // Sent again (the client never saw the ack): acknowledged again, not delivered twice.
    assert_eq!(written(&handle(&mut alice, &state, xml(msg), now).await).attr("id"), Some("x1"));
    assert!(drain(&mut bob_box).is_empty());

    // Stored offline: the ack comes after durability.
    let offline = "<message xmlns='jabber:client' to='carol@localhost' type='chat' id='x2'><body>hi</body></message>";
    let creds = crate::sasl::credentials::StoredCredentials::derive("pw", 4096).expect("derive");
    state.store.create_user(&BareJid::new("carol@localhost").expect("jid"), &creds).await.expect("carol");
    let actions = handle(&mut alice, &state, xml(offline), now).await;
    assert!(matches!(actions[0], Action::AwaitDurable), "{actions:?}");
    assert_eq!(written(&actions[1..]).attr("id"), Some("x2"));
}

#[tokio::test]
async fn receipts_reach_each_client_in_its_own_form_live_and_offline() {
    let state = state();
    let now = Instant::now();
    let (mut dia, mut dia_box) = bind(&state, "alice@localhost/dialect", now);
    handle(&mut dia, &state, xml("<enable xmlns='urn:stanzad:dialect:0'/>"), now).await;
    available(&state, &mut dia, 0, now).await;
    let (mut std_bob, mut bob_box) = bind(&state, "bob@localhost/std", now);
    available(&state, &mut std_bob, 0, now).await;
    drain(&mut dia_box);
    drain(&mut bob_box);

    // Dialect → standard: a read receipt arrives as XEP-0333 displayed, no dialect element.
    let read =
        "<receipt xmlns='urn:stanzad:dialect:0' id='m1' to='bob@localhost' type='read' participant='x@localhost'/>";
    handle(&mut dia, &state, xml(read), now).await;
    let got = drain(&mut bob_box);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].get_child("displayed", "urn:xmpp:chat-markers:0").and_then(|d| d.attr("id")), Some("m1"));
    assert_eq!(got[0].attr("from"), Some("alice@localhost/dialect"));
    assert!(got[0].children().all(|c| c.ns() != "urn:stanzad:dialect:0"), "no dialect element");

    // Standard → dialect: an XEP-0184 receipt arrives as <receipt/>.
    let received =
        "<message xmlns='jabber:client' to='alice@localhost'><received xmlns='urn:xmpp:receipts' id='m2'/></message>";
    handle(&mut std_bob, &state, xml(received), now).await;
    let got = drain(&mut dia_box);
    assert!(got[0].is("receipt", "urn:stanzad:dialect:0"), "{got:?}");
    assert_eq!((got[0].attr("id"), got[0].attr("from")), (Some("m2"), Some("bob@localhost/std")));

    // Offline sender: the receipt waits like a message, and comes in the right form.
    dia.on_end(&state).await;
    handle(&mut std_bob, &state, xml(received), now).await;
    let (mut back, _b) = bind(&state, "alice@localhost/back", now);
    handle(&mut back, &state, xml("<enable xmlns='urn:stanzad:dialect:0'/>"), now).await;
    let sent = writes(&handle(&mut back, &state, xml("<presence xmlns='jabber:client'/>"), now).await);
    let receipt = sent.iter().find(|e| e.name() == "receipt").expect("the stored receipt");
    assert_eq!(receipt.attr("id"), Some("m2"));
    assert!(receipt.attr("stamp").is_some(), "with the time it was stored");
}

#[tokio::test]
async fn a_message_arriving_during_the_backlog_queues_behind_it() {
    let state = state();
    let now = Instant::now();
    let (mut alice, _a) = bind(&state, "alice@localhost/a", now);
    let old = "<message xmlns='jabber:client' to='bob@localhost' id='old'><body>1</body></message>";
    handle(&mut alice, &state, xml(old), now).await;
    let (mut bob, mut bob_box) = bind(&state, "bob@localhost/b", now);
    let first = writes(&handle(&mut bob, &state, xml("<presence xmlns='jabber:client'/>"), now).await);
    assert_eq!(first.iter().filter(|e| e.name() == "message").count(), 1);
    let ack_id = first.last().and_then(|p| p.attr("id")).expect("ack ping").to_owned();

    let new = "<message xmlns='jabber:client' to='bob@localhost' id='new'><body>2</body></message>";
    assert!(matches!(handle(&mut alice, &state, xml(new), now).await[..], [Action::AwaitDurable]), "queued, not live");
    assert!(drain(&mut bob_box).iter().all(|e| e.name() != "message"));

    let ack = format!("<iq xmlns='jabber:client' type='result' id='{ack_id}'/>");
    let next = writes(&handle(&mut bob, &state, xml(&ack), now).await);
    let ids: Vec<&str> = next.iter().filter(|e| e.name() == "message").filter_map(|e| e.attr("id")).collect();
    assert_eq!(ids, vec!["new"], "after the older one");
    let last_ack = next.last().and_then(|p| p.attr("id")).expect("ack ping").to_owned();
    handle(&mut bob, &state, xml(&format!("<iq xmlns='jabber:client' type='result' id='{last_ack}'/>")), now).await;

    // Drained: live again.
    let live = "<message xmlns='jabber:client' to='bob@localhost' id='live'><body>3</body></message>";
    assert!(after_durable(&handle(&mut alice, &state, xml(live), now).await).is_empty());
    assert!(drain(&mut bob_box).iter().any(|e| e.attr("id") == Some("live")));
}

#[tokio::test]
async fn carbons_copy_chat_to_the_other_enabled_resources() {
    const CARBONS: &str = "urn:xmpp:carbons:2";
    let state = state();
    let now = Instant::now();
    let (mut phone, mut phone_box) = bind(&state, "alice@localhost/phone", now);
    let (mut laptop, mut laptop_box) = bind(&state, "alice@localhost/laptop", now);
    let (mut tablet, mut tablet_box) = bind(&state, "alice@localhost/tablet", now);
    let (mut bob, mut bob_box) = bind(&state, "bob@localhost/b", now);
    for (session, priority) in [(&mut phone, 5), (&mut laptop, 1), (&mut tablet, 1)] {
        available(&state, session, priority, now).await;
    }
    available(&state, &mut bob, 0, now).await;
    let enable = "<iq xmlns='jabber:client' type='set' id='c'><enable xmlns='urn:xmpp:carbons:2'/></iq>";
    for session in [&mut phone, &mut laptop] {
        assert_eq!(written(&handle(session, &state, xml(enable), now).await).attr("type"), Some("result"));
    }
    for mailbox in [&mut phone_box, &mut laptop_box, &mut tablet_box, &mut bob_box] {
        drain(mailbox);
    }

    // Received: bob's message goes to the phone (highest priority); the laptop gets a copy,
    // the tablet (carbons off) does not.
    let to_alice = "<message xmlns='jabber:client' to='alice@localhost' type='chat' id='r1'><body>hi</body></message>";
    handle(&mut bob, &state, xml(to_alice), now).await;
    assert_eq!(drain(&mut phone_box)[0].attr("id"), Some("r1"));
    let copy = drain(&mut laptop_box);
    assert_eq!(copy.len(), 1);
    assert_eq!((copy[0].attr("from"), copy[0].attr("to")), (Some("alice@localhost"), Some("alice@localhost/laptop")));
    let forwarded = copy[0]
        .get_child("received", CARBONS)
        .and_then(|r| r.get_child("forwarded", "urn:xmpp:forward:0"))
        .and_then(|f| f.get_child("message", NS_CLIENT))
        .expect("the original inside");
    assert_eq!((forwarded.attr("id"), forwarded.attr("from")), (Some("r1"), Some("bob@localhost/b")));
    assert!(drain(&mut tablet_box).is_empty());

    // Sent: the phone's message to bob is copied to the laptop, not back to the phone.
    let to_bob = "<message xmlns='jabber:client' to='bob@localhost' type='chat' id='s1'><body>yo</body></message>";
    handle(&mut phone, &state, xml(to_bob), now).await;
    let sent = drain(&mut laptop_box);
    assert!(sent[0].get_child("sent", CARBONS).is_some(), "{sent:?}");
    assert!(drain(&mut phone_box).is_empty());

    // Private, no-copy, and non-chat messages are not copied.
    for excluded in [
        "<message xmlns='jabber:client' to='bob@localhost' type='chat' id='p'><body>x</body><private xmlns='urn:xmpp:carbons:2'/></message>",
        "<message xmlns='jabber:client' to='bob@localhost' type='chat' id='n'><body>x</body><no-copy xmlns='urn:xmpp:hints'/></message>",
        "<message xmlns='jabber:client' to='bob@localhost' type='normal' id='o'><body>x</body></message>",
    ] {
        handle(&mut phone, &state, xml(excluded), now).await;
        assert!(drain(&mut laptop_box).is_empty(), "{excluded}");
    }

    // Disabled: no more copies.
    let disable = "<iq xmlns='jabber:client' type='set' id='d'><disable xmlns='urn:xmpp:carbons:2'/></iq>";
    handle(&mut laptop, &state, xml(disable), now).await;
    handle(&mut phone, &state, xml(&to_bob.replace("s1", "s2")), now).await;
    assert!(drain(&mut laptop_box).is_empty());
}

#[tokio::test]
async fn an_inactive_client_gets_messages_at_once_and_only_the_latest_presence_later() {
    let state = state();
    let now = Instant::now();
    let (mut alice, _a) = bind(&state, "alice@localhost/a", now);
    available(&state, &mut alice, 0, now).await;
    assert!(handle(&mut alice, &state, xml("<inactive xmlns='urn:xmpp:csi:0'/>"), now).await.is_empty());

    let presence = |show: &str| {
        let p: Element =
            format!("<presence xmlns='jabber:client' from='bob@localhost/b'><show>{show}</show></presence>")
                .parse()
                .expect("xml");
        Delivery::Bytes(writer::to_bytes(&p).into())
    };
    assert!(alice.deliver(&state, &presence("away"), now).await.is_empty(), "held");
    assert!(alice.deliver(&state, &presence("dnd"), now).await.is_empty(), "held, replacing the first");
    let message: Element =
        "<message xmlns='jabber:client' from='bob@localhost/b'><body>hi</body></message>".parse().expect("xml");
    assert_eq!(
        alice.deliver(&state, &Delivery::Bytes(writer::to_bytes(&message).into()), now).await.len(),
        1,
        "messages go at once"
    );
    let subscribe: Element =
        "<presence xmlns='jabber:client' from='carol@localhost' type='subscribe'/>".parse().expect("xml");
    assert_eq!(
        alice.deliver(&state, &Delivery::Bytes(writer::to_bytes(&subscribe).into()), now).await.len(),
        1,
        "requests go at once"
    );

    let released = writes(&handle(&mut alice, &state, xml("<active xmlns='urn:xmpp:csi:0'/>"), now).await);
    assert_eq!(released.len(), 1, "only the latest presence of bob");
    assert_eq!(released[0].get_child("show", NS_CLIENT).map(|s| s.text()).as_deref(), Some("dnd"));
    assert_eq!(alice.deliver(&state, &presence("chat"), now).await.len(), 1, "active again: at once");
}

#[tokio::test]
async fn a_message_stored_behind_an_idle_session_wakes_it() {
    let state = state();
    let now = Instant::now();
    let (mut bob, _b) = bind(&state, "bob@localhost/b", now);
    available(&state, &mut bob, 0, now).await;
    // The race: a sender stored a message just as bob finished (or started) its backlog.
    let stored: Element =
        "<message xmlns='jabber:client' to='bob@localhost' from='alice@localhost/a' id='late'><body>x</body></message>"
            .parse()
            .expect("xml");
    let stanza = Stanza::parse(stored).expect("stanza");
    crate::core::offline::store(&state, &stanza, &BareJid::new("bob@localhost").expect("jid")).await.expect("stored");
    let sent = writes(&bob.deliver(&state, &Delivery::Wake, now).await);
    assert_eq!(sent.iter().filter_map(|e| e.attr("id")).next(), Some("late"));
    assert!(
        bob.deliver(&state, &Delivery::Wake, now).await.is_empty(),
        "a batch is in flight: nothing more until it is acknowledged"
    );
}

#[test]
fn a_receipt_for_a_dialect_session_goes_back_to_its_routed_form() {
    let receipt: Element =
        "<receipt xmlns='urn:stanzad:dialect:0' from='bob@localhost/b' to='alice@localhost' id='m1' type='read'/>"
            .parse()
            .expect("xml");
    let message = crate::modules::dialect::vocabulary::receipt_back_to_message(&receipt).expect("a message");
    assert_eq!((message.attr("from"), message.attr("to")), (Some("bob@localhost/b"), Some("alice@localhost")));
    assert!(message.get_child("displayed", "urn:xmpp:chat-markers:0").is_some());
}

#[tokio::test]
async fn while_detached_presence_waits_and_only_the_latest_follows_the_resumption() {
    let state = state();
    let now = Instant::now();
    let (mut alice, _a) = bind(&state, "alice@localhost/a", now);
    let (sender, _resumptions) = crate::core::signal::channel();
    alice.resumable = Some(crate::c2s::resume::Resumable { sender, registry: Default::default() });
    let enabled = writes(&handle(&mut alice, &state, xml("<enable xmlns='urn:xmpp:sm:3' resume='true'/>"), now).await);
    assert!(enabled[0].attr("id").is_some(), "resumable");
    alice.detach(&state);
    let presence = |show: &str| {
        let p = format!("<presence xmlns='jabber:client' from='bob@localhost/b'><show>{show}</show></presence>");
        Delivery::Bytes(p.into_bytes().into())
    };
    assert!(writes(&alice.deliver(&state, &presence("away"), now).await).is_empty(), "held");
    assert!(writes(&alice.deliver(&state, &presence("dnd"), now).await).is_empty(), "held, replacing");
    let message = "<message xmlns='jabber:client' from='bob@localhost/b' id='m1'><body>x</body></message>";
    assert_eq!(writes(&alice.deliver(&state, &Delivery::Bytes(message.as_bytes().into()), now).await).len(), 1);

    let resumed = writes(&alice.resume(&state, 0, now).await.expect("resumed"));
    let names: Vec<&str> = resumed.iter().map(|e| e.name()).collect();
    assert_eq!(names, vec!["resumed", "message", "presence"], "the message resent, then the latest presence");
    assert_eq!(resumed[2].get_child("show", NS_CLIENT).map(|s| s.text()).as_deref(), Some("dnd"));
    assert!(alice.refuse_resumption(9).is_some(), "h beyond what was sent");
    assert!(alice.refuse_resumption(2).is_none());
}

/// XEP-0352 §5.2: the client state is not restored when a stream is resumed. Presence the
/// inactive client did not get comes after `<resumed/>`, older than what waited while the
/// connection was gone, and the resumed stream gets presence at once.
#[tokio::test]
async fn a_resumed_stream_is_active_and_gets_what_was_held_for_it() {
    let state = state();
    let now = Instant::now();
    let (mut alice, _a) = bind(&state, "alice@localhost/a", now);
    let (sender, _resumptions) = crate::core::signal::channel();
    alice.resumable = Some(crate::c2s::resume::Resumable { sender, registry: Default::default() });
    handle(&mut alice, &state, xml("<enable xmlns='urn:xmpp:sm:3' resume='true'/>"), now).await;
    assert!(handle(&mut alice, &state, xml("<inactive xmlns='urn:xmpp:csi:0'/>"), now).await.is_empty());
    let presence = |from: &str| {
        let p = format!("<presence xmlns='jabber:client' from='{from}'/>");
        Delivery::Bytes(p.into_bytes().into())
    };
    assert!(writes(&alice.deliver(&state, &presence("bob@localhost/b"), now).await).is_empty(), "inactive");
    alice.detach(&state);
    assert!(writes(&alice.deliver(&state, &presence("carol@localhost/c"), now).await).is_empty(), "inactive");

    let resumed = writes(&alice.resume(&state, 0, now).await.expect("resumed"));
    let from: Vec<Option<&str>> = resumed.iter().map(|e| e.attr("from")).collect();
    assert_eq!(from, vec![None, Some("bob@localhost/b"), Some("carol@localhost/c")]);
    assert_eq!(writes(&alice.deliver(&state, &presence("bob@localhost/b"), now).await).len(), 1, "active");
}

/// XEP-0050: the retention command run in one stage, its session kept by the stream that
/// opened it: a submission from another stream is `bad-sessionid`, one after the session
/// ended `session-expired`, a bad form `bad-payload` with the session still open.
#[tokio::test]
async fn a_command_runs_in_a_session_of_the_stream_that_opened_it() {
    let state = state();
    let now = Instant::now();
    let (mut alice, _a) = bind(&state, "alice@localhost/a", now);
    let (mut other, _o) = bind(&state, "alice@localhost/o", now);
    let ns = crate::xml::ns::COMMANDS;
    let node = crate::xml::ns::RETENTION_COMMAND;
    let command = |id: &str, attrs: &str, inner: &str| {
        xml(&format!(
            "<iq xmlns='jabber:client' type='set' id='{id}' to='localhost'>\
             <command xmlns='{ns}' node='{node}' {attrs}>{inner}</command></iq>"
        ))
    };
    let submit = "<x xmlns='jabber:x:data' type='submit'><field var='max_age'><value>7d</value></field></x>";

    let started = written(&handle(&mut alice, &state, command("c1", "action='execute'", ""), now).await);
    let reply = started.get_child("command", ns).expect("command");
    assert_eq!(reply.attr("status"), Some("executing"));
    let form = reply.get_child("x", "jabber:x:data").expect("the form");
    assert_eq!(form.attr("type"), Some("form"));
    let session = reply.attr("sessionid").expect("a session id").to_owned();

    let elsewhere = command("c2", &format!("sessionid='{session}' action='complete'"), submit);
    let refused = written(&handle(&mut other, &state, elsewhere, now).await);
    assert_eq!(error_condition(&refused), "bad-request");
    assert!(refused.get_child("error", NS_CLIENT).and_then(|e| e.get_child("bad-sessionid", ns)).is_some());

    let done = command("c3", &format!("sessionid='{session}' action='complete'"), submit);
    let done = written(&handle(&mut alice, &state, done, now).await);
    assert_eq!(done.get_child("command", ns).and_then(|c| c.attr("status")), Some("completed"), "{done:?}");
    let account = BareJid::new("alice@localhost").expect("jid");
    assert_eq!(state.store.archive_retention(&account).await.expect("retention"), Some(7 * 86_400));

    let again = command("c4", &format!("sessionid='{session}' action='complete'"), submit);
    let expired = written(&handle(&mut alice, &state, again, now).await);
    assert_eq!(error_condition(&expired), "not-allowed", "ended");
    assert!(expired.get_child("error", NS_CLIENT).and_then(|e| e.get_child("session-expired", ns)).is_some());
    let odd = written(&handle(&mut alice, &state, command("c4b", "action='jump'", ""), now).await);
    assert!(odd.get_child("error", NS_CLIENT).and_then(|e| e.get_child("malformed-action", ns)).is_some());
    let started = written(&handle(&mut alice, &state, command("c5", "", ""), now).await);
    let session = started.get_child("command", ns).and_then(|c| c.attr("sessionid")).expect("session").to_owned();
    // A form without max_age is refused, and the session stays open.
    let empty = "<x xmlns='jabber:x:data' type='submit'/>";
    let bad = command("c5b", &format!("sessionid='{session}' action='complete'"), empty);
    let bad = written(&handle(&mut alice, &state, bad, now).await);
    assert!(bad.get_child("error", NS_CLIENT).and_then(|e| e.get_child("bad-payload", ns)).is_some(), "{bad:?}");
    let cancel = command("c6", &format!("sessionid='{session}' action='cancel'"), "");
    let canceled = written(&handle(&mut alice, &state, cancel, now).await);
    assert_eq!(canceled.get_child("command", ns).and_then(|c| c.attr("status")), Some("canceled"));
    let unknown = xml(&format!(
        "<iq xmlns='jabber:client' type='set' id='c7' to='localhost'><command xmlns='{ns}' node='nope'/></iq>"
    ));
    assert_eq!(error_condition(&written(&handle(&mut alice, &state, unknown, now).await)), "item-not-found");
}
