//! Routing one chat message between two bound, available sessions, without sockets:
//! the sender's `Session::handle` (parse, stamp `from`, dedup, archive for both accounts
//! with the default configuration, queue the serialised bytes), then the recipient takes
//! the delivery from its mailbox and `Session::deliver` turns it into the `Write` for its
//! client. One iteration is one message end to end.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use stanzad::c2s::session::Action;
use stanzad::core::state::ServerState;
use stanzad::core::Mailbox;
use stanzad::xml::{Element, ElementExt};
use std::hint::black_box;
use tokio::time::Instant;
use xmpp_parsers::jid::BareJid;

mod common;
use common::{bind, block_on, xml};

/// A server state over a temporary sled store, with the accounts `users`.
fn state(users: &[&str]) -> std::sync::Arc<ServerState> {
    common::state_over(common::store_with(users.iter().map(|u| BareJid::new(u).expect("jid"))))
}

fn drain(mailbox: &mut Mailbox) {
    while mailbox.stanzas.try_recv().is_some() {}
}

fn routing(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    // The state's flusher task is spawned on this runtime.
    let _guard = rt.enter();
    let state = state(&["alice@localhost", "bob@localhost"]);
    let now = Instant::now();
    let (mut alice, mut alice_box) = bind(&state, "alice@localhost/a", now);
    let (mut bob, mut bob_box) = bind(&state, "bob@localhost/b", now);
    let available = xml("<presence xmlns='jabber:client'/>");
    block_on(alice.handle(&state, available.clone(), now));
    block_on(bob.handle(&state, available, now));
    drain(&mut alice_box);
    drain(&mut bob_box);

    let template = xml("<message xmlns='jabber:client' to='bob@localhost' type='chat'><body>hello</body></message>");
    let mut next_id = 0u64;
    // Every message has its own id, so none is taken for a retransmission.
    let mut message = || {
        next_id += 1;
        template.clone().with("id", next_id.to_string())
    };
    let mut send = |message: Element, now: Instant| -> Vec<u8> {
        let sent = block_on(alice.handle(&state, message, now));
        debug_assert!(sent.is_empty(), "delivered, nothing for the sender: {sent:?}");
        let delivery = bob_box.stanzas.try_recv().expect("queued for bob");
        let mut actions = block_on(bob.deliver(&state, &delivery, now)).into_iter();
        let Some(Action::Write(bytes)) = actions.next() else { panic!("expected a write") };
        // Now and then the ping after its messages follows, answered as a client does
        // (its cost is part of a message's).
        for action in actions {
            let Action::Write(ping) = action else { panic!("expected the ping: {action:?}") };
            let ping = xml(std::str::from_utf8(&ping).expect("utf-8"));
            let id = ping.attr("id").expect("the ping's id");
            block_on(bob.handle(
                &state,
                xml(&format!("<iq xmlns='jabber:client' type='result' id='{id}' to='localhost'/>")),
                now,
            ));
        }
        bytes.into_vec()
    };
    let written = xml(std::str::from_utf8(&send(message(), now)).expect("utf-8"));
    assert_eq!(written.attr("from"), Some("alice@localhost/a"), "from is stamped");
    assert!(written.get_child("stanza-id", stanzad::modules::mam::NS_SID).is_some(), "archived for bob");

    let mut group = c.benchmark_group("routing");
    group.throughput(Throughput::Elements(1));
    group.bench_function("chat_message", |b| {
        b.iter_batched(|| (message(), Instant::now()), |(m, now)| black_box(send(m, now)), BatchSize::SmallInput)
    });
    group.finish();
    assert!(alice_box.stanzas.try_recv().is_none(), "carbons are off: nothing for the sender's session");
}

criterion_group!(benches, routing);
criterion_main!(benches);
