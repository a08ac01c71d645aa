//! Presence fan-out to 100 contacts, without sockets: an account whose roster holds 100
//! contacts with a `both` subscription, all of them online and available, sends a
//! presence update; its session handles it (`Session::handle`), which reads the roster
//! and queues the serialised presence in each contact's mailbox (and the echo in its
//! own). One iteration is one fan-out, the draining of the 101 mailboxes included.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use stanzad::core::state::ServerState;
use stanzad::core::Mailbox;
use stanzad::storage::roster::{RosterItem, RosterStore, Subscription};
use stanzad::xml::Element;
use std::hint::black_box;
use tokio::time::Instant;
use xmpp_parsers::jid::BareJid;

mod common;
use common::{bind, block_on, xml};

const CONTACTS: usize = 100;
const USER: &str = "alice@localhost";

/// A server state over a temporary sled store: `alice` and her contacts, each on the
/// other's roster with a `both` subscription.
fn state() -> std::sync::Arc<ServerState> {
    let user = BareJid::new(USER).expect("jid");
    let store = common::store_with(std::iter::once(user.clone()).chain(contacts()));
    let quota = stanzad::config::Limits::default().roster_quota();
    for contact in contacts() {
        let item = |jid: &BareJid| RosterItem { subscription: Subscription::Both, ..RosterItem::new(jid) };
        block_on(store.put_roster_item(&user, &item(&contact), quota)).expect("roster");
        block_on(store.put_roster_item(&contact, &item(&user), quota)).expect("roster");
    }
    common::state_over(store)
}

fn contacts() -> impl Iterator<Item = BareJid> {
    (0..CONTACTS).map(|n| BareJid::new(&format!("contact{n}@localhost")).expect("jid"))
}

/// Empties a mailbox; returns how many deliveries it held.
fn drain(mailbox: &mut Mailbox) -> usize {
    std::iter::from_fn(|| mailbox.stanzas.try_recv()).map(black_box).count()
}

fn presence(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    // The state's flusher task is spawned on this runtime.
    let _guard = rt.enter();
    let state = state();
    let now = Instant::now();
    let available = xml("<presence xmlns='jabber:client'/>");
    let mut contact_boxes: Vec<Mailbox> = contacts()
        .map(|contact| {
            let (mut session, mailbox) = bind(&state, &format!("{contact}/phone"), now);
            block_on(session.handle(&state, available.clone(), now));
            mailbox
        })
        .collect();
    // Each contact's own presence, echoed to itself.
    let echoes: usize = contact_boxes.iter_mut().map(drain).sum();
    assert_eq!(echoes, CONTACTS);
    let (mut alice, mut alice_box) = bind(&state, &format!("{USER}/laptop"), now);
    // Initial presence: she learns the contacts' presence (written to her client).
    let answers = block_on(alice.handle(&state, available.clone(), now));
    assert_eq!(answers.len(), CONTACTS, "one presence per available contact");

    // Her initial presence reached each contact, and herself.
    let queued: usize = contact_boxes.iter_mut().map(drain).sum();
    assert_eq!((queued, drain(&mut alice_box)), (CONTACTS, 1));

    let mut fan_out = |update: Element, now: Instant| {
        let written = block_on(alice.handle(&state, update, now));
        debug_assert!(written.is_empty(), "an update writes nothing to the sender itself: {written:?}");
        let delivered: usize = contact_boxes.iter_mut().map(drain).sum();
        (delivered, drain(&mut alice_box))
    };
    assert_eq!(fan_out(available.clone(), now), (CONTACTS, 1), "each contact once, and the echo");

    let mut group = c.benchmark_group("presence");
    group.throughput(Throughput::Elements(CONTACTS as u64));
    group.bench_function("broadcast_100_contacts", |b| {
        b.iter_batched(
            || (available.clone(), Instant::now()),
            |(update, now)| black_box(fan_out(update, now)),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, presence);
criterion_main!(benches);
