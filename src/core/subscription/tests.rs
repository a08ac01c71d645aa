//! RFC 6121 Appendix A, row by row: for each event, every state and its successor
//! (None where the RFC says "no state change").

use super::*;

/// Appendix A's names: "None", "None + Pending Out", ... "Both".
fn state(name: &str) -> State {
    let (sub, rest) = name.split_once(" + ").unwrap_or((name, ""));
    let subscription = match sub {
        "None" => Subscription::None,
        "To" => Subscription::To,
        "From" => Subscription::From,
        "Both" => Subscription::Both,
        other => panic!("unknown state {other}"),
    };
    State {
        subscription,
        pending_out: rest.contains("Out"),
        pending_in: rest.contains("In") || rest.contains("Out/In"),
    }
}

const STATES: [&str; 9] = [
    "None",
    "None + Pending Out",
    "None + Pending In",
    "None + Pending Out/In",
    "To",
    "To + Pending In",
    "From",
    "From + Pending Out",
    "Both",
];

/// Checks one table: `rows[i]` is the successor of `STATES[i]`, "" for no change.
fn table(event: Event, rows: [&str; 9]) {
    for (from, to) in STATES.iter().zip(rows) {
        let expected = (!to.is_empty()).then(|| state(to));
        assert_eq!(transition(state(from), event), expected, "{event:?} from {from}");
    }
}

#[test]
fn a_2_1_outbound_subscribe() {
    table(
        Event::OutSubscribe,
        ["None + Pending Out", "", "None + Pending Out/In", "", "", "", "From + Pending Out", "", ""],
    );
}

#[test]
fn a_2_2_inbound_subscribe() {
    table(
        Event::InSubscribe,
        ["None + Pending In", "None + Pending Out/In", "", "", "To + Pending In", "", "", "", ""],
    );
}

#[test]
fn a_3_1_outbound_subscribed() {
    table(Event::OutSubscribed, ["", "", "From", "From + Pending Out", "", "Both", "", "", ""]);
}

#[test]
fn a_3_2_inbound_subscribed() {
    table(Event::InSubscribed, ["", "To", "", "To + Pending In", "", "", "", "Both", ""]);
}

#[test]
fn a_4_1_outbound_unsubscribe_and_inbound_unsubscribed() {
    let rows = ["", "None", "", "None + Pending In", "None", "None + Pending In", "", "From", "From"];
    table(Event::OutUnsubscribe, rows);
    table(Event::InUnsubscribed, rows);
}

#[test]
fn a_4_2_inbound_unsubscribe_and_outbound_unsubscribed() {
    let rows = ["", "", "None", "None + Pending Out", "", "To", "None", "None + Pending Out", "To"];
    table(Event::InUnsubscribe, rows);
    table(Event::OutUnsubscribed, rows);
}

mod locking {
    use super::super::*;
    use crate::sasl::credentials::StoredCredentials;
    use crate::storage::sled::SledStore;
    use std::sync::{mpsc, Arc};
    use std::time::Duration;

    fn jid(text: &str) -> BareJid {
        BareJid::new(text).expect("jid")
    }

    /// Four accounts, the stripes of the first two apart from those of the last two.
    fn state_with_disjoint_pairs() -> (Arc<ServerState>, [BareJid; 4]) {
        let store = SledStore::temporary().expect("sled");
        let state = ServerState::new(crate::config::Config::default(), Arc::new(store), Default::default());
        let (alice, bob) = (jid("alice@localhost"), jid("bob@localhost"));
        let taken = [alice.as_str(), bob.as_str()].map(|j| state.subscription_locks.index(j));
        let mut others = (0..)
            .map(|i| jid(&format!("user{i}@localhost")))
            .filter(|j| !taken.contains(&state.subscription_locks.index(j.as_str())));
        let (carol, dave) = (others.next().expect("a name"), others.next().expect("a name"));
        let creds = StoredCredentials::derive("pw", 4096).expect("derive");
        for user in [&alice, &bob, &carol, &dave] {
            state.store.create_user(user, &creds).at_once().expect("account");
        }
        (state, [alice, bob, carol, dave])
    }

    fn subscribe(from: &BareJid, to: &BareJid) -> Stanza {
        let element: Element = format!("<presence xmlns='jabber:client' type='subscribe' from='{from}/r' to='{to}'/>")
            .parse()
            .expect("xml");
        Stanza::parse(element).map_err(|_| "a stanza").expect("parses")
    }

    /// Runs `user`'s subscription request to `contact` on a thread; the receiver hears
    /// when it is done.
    fn request_on_a_thread(state: &Arc<ServerState>, user: &BareJid, contact: &BareJid) -> mpsc::Receiver<()> {
        let (done, finished) = mpsc::channel();
        let (state, user, contact) = (state.clone(), user.clone(), contact.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            let handled = runtime.block_on(handle(&state, &user, &subscribe(&user, &contact), &contact));
            handled.map_err(|e| format!("{e:?}")).expect("handled");
            let _ = done.send(());
        });
        finished
    }

    /// While a change between alice and bob is under way (holding their lock), one
    /// between carol and dave is carried out; one between bob and alice waits for it.
    #[tokio::test]
    async fn changes_between_disjoint_pairs_do_not_wait_for_each_other() {
        let (state, [alice, bob, carol, dave]) = state_with_disjoint_pairs();
        let under_way = lock_pair(&state, &alice, &bob).await;
        let other_pair = request_on_a_thread(&state, &carol, &dave);
        assert_eq!(other_pair.recv_timeout(Duration::from_secs(5)), Ok(()), "carol's request waited for alice and bob");
        assert!(state.store.pending_request(&dave, &carol).await.expect("read").is_some());
        let same_pair = request_on_a_thread(&state, &bob, &alice);
        assert!(same_pair.recv_timeout(Duration::from_millis(200)).is_err(), "bob's request did not wait");
        drop(under_way);
        assert_eq!(same_pair.recv_timeout(Duration::from_secs(5)), Ok(()));
        assert!(state.store.pending_request(&alice, &bob).await.expect("read").is_some());
    }
}
