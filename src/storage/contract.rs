//! The contract every storage backend must pass: one function per case, run against a
//! fresh store of every backend by [`suite!`] (instantiated at the end of this file; a new
//! backend adds one line there).

use super::{StorageError, UserStore};
use crate::sasl::credentials::StoredCredentials;
use xmpp_parsers::jid::BareJid;

/// A batch of at most `messages`, whatever their size.
fn batch(messages: usize) -> Batch {
    Batch { messages, bytes: usize::MAX }
}

fn jid(s: &str) -> BareJid {
    BareJid::new(s).expect("valid test JID")
}

/// Runs every `UserStore` rule against an empty store.
pub async fn user_store(store: &dyn UserStore) {
    let alice = jid("alice@example.org");
    let bob = jid("bob@example.org");
    let first = StoredCredentials::derive("pencil", 4096).expect("derive");
    let second = StoredCredentials::derive("pen", 4096).expect("derive");

    assert!(store.list_users().await.expect("list").is_empty());
    assert!(!store.user_exists(&alice).await.expect("exists"));
    assert!(store.credentials(&alice).await.expect("get").is_none());

    store.create_user(&alice, &first).await.expect("create alice");
    let again = store.create_user(&alice, &second).await;
    assert!(matches!(again, Err(StorageError::AlreadyExists(_))), "{again:?}");
    assert_eq!(store.credentials(&alice).await.expect("get"), Some(first.clone()), "create must not be overwritten");

    store.set_credentials(&alice, &second).await.expect("passwd");
    assert_eq!(store.credentials(&alice).await.expect("get"), Some(second));
    let missing = store.set_credentials(&bob, &first).await;
    assert!(matches!(missing, Err(StorageError::NotFound(_))), "{missing:?}");
    assert!(!store.user_exists(&bob).await.expect("set_credentials must not create"));

    store.create_user(&bob, &first).await.expect("create bob");
    assert_eq!(store.list_users().await.expect("list"), vec![alice.clone(), bob.clone()]);

    store.delete_user(&alice).await.expect("delete");
    assert!(matches!(store.delete_user(&alice).await, Err(StorageError::NotFound(_))));
    assert_eq!(store.list_users().await.expect("list"), vec![bob]);
    store.flush().await.expect("flush");
}

use super::roster::{
    BlockStore, LastSeen, LastSeenStore, ListQuota, RosterItem, RosterStore, Subscription, SubscriptionRequestStore,
};

const ROOMY: ListQuota = ListQuota { items: 1000, bytes: 1 << 20 };

/// Runs every `RosterStore` rule against an empty store.
pub async fn roster_store(store: &dyn RosterStore) {
    let alice = jid("alice@example.org");
    let bob = jid("bob@example.org");
    let carol = jid("carol@example.net");

    let empty = store.roster(&alice).await.expect("roster");
    assert_eq!((empty.version, empty.items.len()), (0, 0));
    assert!(store.roster_item(&alice, &bob).await.expect("item").is_none());

    let mut item = RosterItem::new(&bob);
    item.name = Some("Bob".into());
    item.groups = vec!["Friends".into()];
    let v1 = store.put_roster_item(&alice, &item, ROOMY).await.expect("put");
    item.subscription = Subscription::To;
    let v2 = store.put_roster_item(&alice, &item, ROOMY).await.expect("update");
    assert!(v2 > v1 && v1 > 0, "every change bumps the version: {v1} {v2}");
    assert_eq!(store.roster_item(&alice, &bob).await.expect("item"), Some(item.clone()));
    let v3 = store.put_roster_item(&alice, &RosterItem::new(&carol), ROOMY).await.expect("put");
    let roster = store.roster(&alice).await.expect("roster");
    assert_eq!(roster.version, v3);
    assert_eq!(roster.items.len(), 2);
    assert!(store.roster(&bob).await.expect("roster").items.is_empty(), "rosters are per owner");

    assert_eq!(store.remove_roster_item(&alice, &jid("nobody@example.org")).await.expect("remove"), None);
    assert_eq!(store.roster(&alice).await.expect("roster").version, v3, "removing nothing changes nothing");
    let v4 = store.remove_roster_item(&alice, &carol).await.expect("remove").expect("existed");
    assert!(v4 > v3);
    assert_eq!(store.roster(&alice).await.expect("roster").items, vec![item.clone()]);

    // Who holds an item for whom, in step with the items.
    store.put_roster_item(&carol, &RosterItem::new(&bob), ROOMY).await.expect("put");
    assert_eq!(store.roster_holders(&bob).await.expect("holders"), vec![alice.clone(), carol.clone()]);
    assert!(store.roster_holders(&carol).await.expect("holders").is_empty(), "alice's item for carol went");
    store.remove_roster_item(&carol, &bob).await.expect("remove");
    assert_eq!(store.roster_holders(&bob).await.expect("holders"), vec![alice.clone()]);

    roster_quota(store).await;

    store.delete_roster(&alice).await.expect("delete");
    assert!(store.roster(&alice).await.expect("roster").items.is_empty());
    assert!(store.roster_holders(&bob).await.expect("holders").is_empty(), "a deleted roster holds nothing");
}

/// `put_roster_item` keeps a roster within its quota of items and bytes.
async fn roster_quota(store: &dyn RosterStore) {
    let dave = jid("dave@example.org");
    let quota = ListQuota { items: 2, bytes: 100 };
    let named = |who: &str, name: &str| RosterItem { name: Some(name.into()), ..RosterItem::new(&jid(who)) };
    let refused =
        |outcome: Result<u64, super::StorageError>| matches!(outcome, Err(super::StorageError::QuotaExceeded(_)));
    let first = named("e@example.org", &"n".repeat(40)); // 13 + 40 bytes
    store.put_roster_item(&dave, &first, quota).await.expect("fits");
    assert!(
        refused(store.put_roster_item(&dave, &named("f@example.org", &"n".repeat(40)), quota).await),
        "106 > 100 bytes"
    );
    assert_eq!(store.roster(&dave).await.expect("roster").items, vec![first.clone()], "a refused item is not stored");
    store.put_roster_item(&dave, &named("f@example.org", "F"), quota).await.expect("67 bytes");
    assert!(
        refused(store.put_roster_item(&dave, &RosterItem::new(&jid("g@example.org")), quota).await),
        "a third item"
    );
    let renamed = named("e@example.org", &"n".repeat(80));
    assert!(
        refused(store.put_roster_item(&dave, &renamed, quota).await),
        "an existing item may not grow past the bytes"
    );
    let subscribed = RosterItem { subscription: Subscription::Both, ..first };
    store.put_roster_item(&dave, &subscribed, quota).await.expect("an existing item still changes");
    let tight = ListQuota { items: 1, bytes: 10 };
    let shorter = named("e@example.org", "short");
    store.put_roster_item(&dave, &shorter, tight).await.expect("shrinking is always allowed, even over the quota");
    store.remove_roster_item(&dave, &jid("f@example.org")).await.expect("remove");
    store.put_roster_item(&dave, &named("f@example.org", "F"), quota).await.expect("room again after a removal");
    store.delete_roster(&dave).await.expect("delete");
}

/// Runs every `SubscriptionRequestStore` rule against an empty store.
pub async fn subscription_request_store(store: &dyn SubscriptionRequestStore) {
    let alice = jid("alice@example.org");
    let carol = jid("carol@example.net");
    let request = "<presence xmlns='jabber:client' type='subscribe' from='carol@example.net'/>";
    assert!(store.pending_request(&alice, &carol).await.expect("pending").is_none());
    store.put_pending_in(&alice, &carol, request).await.expect("pending");
    assert_eq!(store.pending_in(&alice).await.expect("pending"), vec![(carol.clone(), request.to_string())]);
    assert_eq!(store.pending_request(&alice, &carol).await.expect("pending").as_deref(), Some(request));
    assert!(store.pending_request(&carol, &alice).await.expect("pending").is_none(), "per owner");
    assert!(store.remove_pending_in(&alice, &carol).await.expect("remove"));
    assert!(!store.remove_pending_in(&alice, &carol).await.expect("remove again"));
    assert!(store.pending_request(&alice, &carol).await.expect("pending").is_none());

    // One per contact (a new one replaces the last), listed in the order of their JIDs.
    let (adam, zoe) = (jid("adam@example.org"), jid("zoe@example.org"));
    store.put_pending_in(&alice, &zoe, "first").await.expect("pending");
    store.put_pending_in(&alice, &adam, "adam's").await.expect("pending");
    store.put_pending_in(&alice, &zoe, "second").await.expect("pending");
    let listed = store.pending_in(&alice).await.expect("pending");
    assert_eq!(listed, vec![(adam, "adam's".to_string()), (zoe, "second".to_string())]);
}

pub async fn last_seen_store(store: &dyn LastSeenStore) {
    let alice = jid("alice@example.org");
    assert!(store.last_seen(&alice).await.expect("get").is_none());
    let last = LastSeen { at: 1_700_000_000, status: Some("gone fishing".into()) };
    store.set_last_seen(&alice, &last).await.expect("set");
    assert_eq!(store.last_seen(&alice).await.expect("get"), Some(last));
    let later = LastSeen { at: 1_700_000_100, status: None };
    store.set_last_seen(&alice, &later).await.expect("set again");
    assert_eq!(store.last_seen(&alice).await.expect("get"), Some(later), "replaced");
    assert!(store.last_seen(&jid("bob@example.org")).await.expect("get").is_none(), "per owner");
}

pub async fn block_store(store: &dyn BlockStore) {
    let alice = jid("alice@example.org");
    let spam = ["spam@example.net".to_string(), "example.com".to_string()];
    assert!(store.blocked(&alice).await.expect("list").is_none());
    assert_eq!(store.block(&alice, &spam, ROOMY).await.expect("block"), spam.to_vec());
    assert!(store.block(&alice, &spam[..1], ROOMY).await.expect("again").is_empty(), "already blocked");
    assert_eq!(
        store.blocklist(&alice).await.expect("list"),
        vec!["example.com".to_string(), "spam@example.net".to_string()]
    );
    let blocked = store.blocked(&alice).await.expect("list").expect("not empty");
    assert!(blocked.contains("example.com") && !blocked.contains("example.net"));
    assert_eq!((blocked.len(), blocked.bytes()), (2, 27));
    assert!(store.blocklist(&jid("bob@example.org")).await.expect("list").is_empty());
    assert_eq!(store.unblock(&alice, &spam[..1]).await.expect("unblock"), spam[..1].to_vec());
    assert!(
        !store.blocked(&alice).await.expect("list").is_some_and(|l| l.contains("spam@example.net")),
        "seen at once"
    );
    assert_eq!(store.unblock(&alice, &[]).await.expect("unblock all"), vec!["example.com".to_string()]);
    assert!(store.blocklist(&alice).await.expect("list").is_empty());
    assert!(store.blocked(&alice).await.expect("list").is_none());

    // The quota counts JIDs and their bytes; a refused block adds nothing.
    let quota = ListQuota { items: 3, bytes: 32 };
    let refused = |outcome: Result<Vec<String>, super::StorageError>| {
        matches!(outcome, Err(super::StorageError::QuotaExceeded(_)))
    };
    let two = ["a@example.org".to_string(), "b@example.org".to_string()];
    store.block(&alice, &two, quota).await.expect("26 bytes");
    assert!(refused(store.block(&alice, &["cc@example.org".to_string()], quota).await), "40 > 32 bytes");
    assert!(refused(store.block(&alice, &["c.org".to_string(), "d.org".to_string()], quota).await), "4 > 3 JIDs");
    assert_eq!(store.blocklist(&alice).await.expect("list"), two.to_vec(), "nothing added");
    store.block(&alice, &["c.org".to_string(), "a@example.org".to_string()], quota).await.expect("31 bytes, 3 JIDs");
    assert!(refused(store.block(&alice, &["x".to_string()], quota).await), "a fourth JID");
    store.unblock(&alice, &[]).await.expect("unblock all");

    // What was added and removed, in the order given, each JID once; a refused block
    // leaves no list behind.
    let given = |jids: &[&str]| jids.iter().map(|j| j.to_string()).collect::<Vec<_>>();
    let added = store.block(&alice, &given(&["z@example.org", "a@example.org", "z@example.org"]), ROOMY).await;
    assert_eq!(added.expect("block"), given(&["z@example.org", "a@example.org"]));
    let removed = store.unblock(&alice, &given(&["a@example.org", "nobody@example.org", "a@example.org"])).await;
    assert_eq!(removed.expect("unblock"), given(&["a@example.org"]));
    let bob = jid("bob@example.org");
    assert!(store.unblock(&bob, &[]).await.expect("nothing to unblock").is_empty());
    let none = ListQuota { items: 0, bytes: 1 << 20 };
    assert!(refused(store.block(&bob, &given(&["x@example.org"]), none).await));
    assert!(store.blocked(&bob).await.expect("list").is_none());
    assert!(store.block(&bob, &[], ROOMY).await.expect("nothing to block").is_empty());
    assert!(store.blocked(&bob).await.expect("list").is_none());
}

/// A roster reads in the order of its contacts' JIDs. Deleting it forgets everything of
/// the account the roster traits keep (its requests, block list, last seen) and nothing
/// of anyone else's.
pub async fn roster_order_and_deletion(store: &dyn super::Storage) {
    let (alice, bob) = (jid("alice@example.org"), jid("bob@example.org"));
    for contact in ["zoe@example.org", "adam@example.org", "example.com", "mia@example.net"] {
        store.put_roster_item(&alice, &RosterItem::new(&jid(contact)), ROOMY).await.expect("put");
    }
    let order: Vec<String> = store.roster(&alice).await.expect("roster").items.into_iter().map(|i| i.jid).collect();
    assert_eq!(order, ["adam@example.org", "example.com", "mia@example.net", "zoe@example.org"]);
    let spam = vec!["spam@example.net".to_string()];
    let seen = LastSeen { at: 1_700_000_000, status: None };
    for (owner, other) in [(&alice, &bob), (&bob, &alice)] {
        store.put_roster_item(owner, &RosterItem::new(other), ROOMY).await.expect("put");
        store.put_pending_in(owner, other, "<presence type='subscribe'/>").await.expect("pending");
        store.block(owner, &spam, ROOMY).await.expect("block");
        store.set_last_seen(owner, &seen).await.expect("last seen");
    }

    store.delete_roster(&alice).await.expect("delete");
    assert!(store.roster(&alice).await.expect("roster").items.is_empty());
    assert!(store.pending_in(&alice).await.expect("pending").is_empty());
    assert!(store.blocked(&alice).await.expect("list").is_none());
    assert!(store.last_seen(&alice).await.expect("last seen").is_none());
    assert!(store.roster_holders(&jid("zoe@example.org")).await.expect("holders").is_empty());
    assert!(store.roster_holders(&bob).await.expect("holders").is_empty());
    assert_eq!(store.roster_holders(&alice).await.expect("holders"), vec![bob.clone()], "bob's roster stays");
    assert_eq!(store.pending_in(&bob).await.expect("pending").len(), 1);
    assert_eq!(store.blocklist(&bob).await.expect("list"), spam);
    assert_eq!(store.last_seen(&bob).await.expect("last seen"), Some(seen));
    let one = ListQuota { items: 1, bytes: 1 << 20 };
    store.put_roster_item(&alice, &RosterItem::new(&bob), one).await.expect("deleted items count no more");
}

/// Runs one writer of a concurrency case on its own thread.
fn block_on<T>(work: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime").block_on(work)
}

fn over_quota<T>(outcome: &Result<T, StorageError>) -> bool {
    matches!(outcome, Err(StorageError::QuotaExceeded(_)))
}

/// The quotas hold against concurrent writers of one account: exactly as many writes as
/// fit succeed, and a refused one changes nothing.
pub async fn quotas_hold_under_concurrency(store: &dyn super::Storage) {
    const THREADS: usize = 4;
    const TRIES: usize = 10;
    let owner = jid("crowd@example.org");
    let ten = Quota { messages: 10, bytes: 1 << 20 };
    let five = ListQuota { items: 5, bytes: 1 << 20 };
    let accepted: (usize, usize) = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..THREADS)
            .map(|t| {
                let owner = &owner;
                scope.spawn(move || {
                    block_on(async move {
                        let mut accepted = (0, 0);
                        for i in 0..TRIES {
                            let offline = match i % 2 {
                                0 => store.push_offline(owner, b"<message/>", ten).await,
                                _ => store.put_inflight(owner, 1_700_000_000, b"<message/>", ten).await,
                            };
                            assert!(offline.is_ok() || over_quota(&offline), "{offline:?}");
                            let contact = jid(&format!("c{t}-{i}@example.org"));
                            let item = store.put_roster_item(owner, &RosterItem::new(&contact), five).await;
                            assert!(item.is_ok() || over_quota(&item), "{item:?}");
                            let block = store.block(owner, &[format!("b{t}-{i}@example.org")], five).await;
                            assert!(block.is_ok() || over_quota(&block), "{block:?}");
                            // Every entry weighs 9 bytes ("nsT-I" and "<x/>"): five fit.
                            let private = store.put_private(owner, &format!("ns{t}-{i}"), b"<x/>", 45).await;
                            assert!(private.is_ok() || over_quota(&private), "{private:?}");
                            accepted.0 += usize::from(offline.is_ok());
                            accepted.1 += usize::from(private.is_ok());
                        }
                        accepted
                    })
                })
            })
            .collect();
        writers.into_iter().map(|w| w.join().expect("no panic")).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    });
    assert_eq!(accepted.0, 10, "offline and in flight share the quota");
    assert_eq!((accepted.1, store.private_bytes(&owner).await.expect("bytes")), (5, 45), "private entries");
    let inflight = store.inflight_keys().await.expect("keys").len() as u64;
    assert_eq!(store.offline_count(&owner).await.expect("count") + inflight, 10);
    let roster = store.roster(&owner).await.expect("roster");
    assert_eq!((roster.items.len(), roster.version), (5, 5), "refused items bump no version");
    assert_eq!(store.blocklist(&owner).await.expect("list").len(), 5);
}

use super::offline::{Batch, OfflineStore, Quota};

/// Runs every `OfflineStore` rule against an empty store.
pub async fn offline_store(store: &dyn OfflineStore) {
    let bob = jid("bob@example.org");
    let carol = jid("carol@example.org");
    assert_eq!(store.offline_count(&bob).await.expect("count"), 0);
    assert!(store.offline_batch(&bob, batch(10)).await.expect("list").is_empty());

    let five = Quota { messages: 5, bytes: 1 << 20 };
    let mut seqs: Vec<u64> = Vec::new();
    for i in 0..5 {
        seqs.push(store.push_offline(&bob, format!("m{i}").as_bytes(), five).await.expect("push"));
    }
    assert_eq!(store.offline_count(&bob).await.expect("count"), 5);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "places follow arrival: {seqs:?}");
    let quota = store.push_offline(&bob, b"m5", five).await;
    assert!(matches!(quota, Err(StorageError::QuotaExceeded(5))), "{quota:?}");
    assert_eq!(store.offline_count(&bob).await.expect("count"), 5, "a refused message is not counted");
    store.push_offline(&carol, b"c0", five).await.expect("other account");

    let listed = store.offline_batch(&bob, batch(3)).await.expect("list");
    let bodies: Vec<&[u8]> = listed.iter().map(|m| m.stanza.as_slice()).collect();
    assert_eq!(bodies, vec![&b"m0"[..], b"m1", b"m2"], "arrival order, limited");
    assert_eq!(listed.iter().map(|m| m.seq).collect::<Vec<_>>(), seqs[..3].to_vec());
    // Bounded in bytes too (2 bytes each), but never empty: one message larger than the
    // whole batch still goes.
    let by_bytes = |bytes| {
        let bob = &bob;
        async move { store.offline_batch(bob, Batch { messages: 10, bytes }).await.expect("list").len() }
    };
    assert_eq!((by_bytes(5).await, by_bytes(6).await, by_bytes(1).await, by_bytes(0).await), (2, 3, 1, 1));
    assert_eq!(store.offline_message(&bob, seqs[1]).await.expect("one").map(|m| m.stanza), Some(b"m1".to_vec()));
    assert_eq!(store.offline_message(&carol, seqs[1]).await.expect("another queue"), None);

    assert_eq!(store.remove_offline(&bob, &seqs[..2]).await.expect("remove"), 2);
    assert_eq!(store.remove_offline(&bob, &seqs[..2]).await.expect("remove again"), 0, "removal is idempotent");
    assert_eq!(store.offline_count(&bob).await.expect("count"), 3);
    assert_eq!(store.offline_batch(&bob, batch(10)).await.expect("list")[0].stanza, b"m2");
    assert_eq!(store.offline_message(&bob, seqs[1]).await.expect("removed"), None);
    store.push_offline(&bob, b"m6", five).await.expect("room again");

    // The byte quota counts what is waiting, and what leaves frees its room.
    let small = Quota { messages: 100, bytes: 10 };
    let dave = jid("dave@example.org");
    let first = store.push_offline(&dave, b"12345678", small).await.expect("8 bytes fit");
    assert!(matches!(store.push_offline(&dave, b"123", small).await, Err(StorageError::QuotaExceeded(_))), "11 > 10");
    store.remove_offline(&dave, &[first]).await.expect("remove");
    store.push_offline(&dave, b"123", small).await.expect("room again");

    store.delete_offline(&bob).await.expect("delete");
    assert_eq!(store.offline_count(&bob).await.expect("count"), 0);
    assert_eq!(store.offline_count(&carol).await.expect("count"), 1, "queues are per account");
}

/// Runs every `InflightStore` rule against an empty store (and its offline side).
pub async fn inflight_store(store: &dyn super::Storage) {
    let offline = store;
    // The caller's stored form (the server adds a delay): here, the stamp before it.
    let stamped = |_: &BareJid, stamp: u64, message: &[u8]| [format!("{stamp}:").as_bytes(), message].concat();
    let bob = jid("bob@example.org");
    let carol = jid("carol@example.org");
    let dave = jid("dave@example.org");
    let creds = StoredCredentials::derive("pw", 4096).expect("derive");
    for user in [&bob, &carol] {
        store.create_user(user, &creds).await.expect("account");
    }
    assert!(store.inflight_keys().await.expect("keys").is_empty());
    let m = |i: u32| format!("<message xmlns='jabber:client' id='m{i}'><body>{i}</body></message>");
    let quota = Quota { messages: 100, bytes: 1 << 20 };
    let mut keys: Vec<u64> = Vec::new();
    for i in 0..4 {
        keys.push(store.put_inflight(&bob, 1_700_000_000, m(i).as_bytes(), quota).await.expect("put"));
    }
    let other = store.put_inflight(&carol, 1_700_000_000, m(9).as_bytes(), quota).await.expect("put");
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "keys grow: {keys:?}");
    assert_eq!(store.inflight_keys().await.expect("keys").len(), 5);

    store.remove_inflight(&keys[..1]).await.expect("acknowledged");
    store.remove_inflight(&keys[..1]).await.expect("removing again is harmless");
    assert_eq!(offline.offline_count(&bob).await.expect("count"), 0, "in flight is not offline");

    // Moved out of order: they still arrive in the order they were recorded.
    let owners = store.inflight_to_offline(&[keys[3], keys[1], keys[2]], stamped).await.expect("move");
    assert_eq!(owners, vec![bob.clone()]);
    let stored = offline.offline_batch(&bob, batch(10)).await.expect("list");
    let ids: Vec<bool> =
        ["m1", "m2", "m3"].iter().zip(&stored).map(|(id, s)| String::from_utf8_lossy(&s.stanza).contains(id)).collect();
    assert_eq!(ids, vec![true, true, true], "arrival order");
    assert_eq!(stored[0].stanza, format!("1700000000:{}", m(1)).into_bytes(), "moved in the form the caller makes");
    assert!(store.inflight_to_offline(&keys, stamped).await.expect("again").is_empty(), "an entry moves once");
    assert_eq!(offline.offline_count(&bob).await.expect("count"), 3);
    assert_eq!(store.inflight_keys().await.expect("keys"), vec![other]);

    // An account that is gone gets nothing back: its records are only removed.
    let gone = store.put_inflight(&dave, 1_700_000_000, m(7).as_bytes(), quota).await.expect("put");
    assert!(store.inflight_to_offline(&[gone], stamped).await.expect("move").is_empty());
    assert_eq!(offline.offline_count(&dave).await.expect("count"), 0);
    assert_eq!(store.inflight_keys().await.expect("keys"), vec![other]);

    // In-flight messages count against the offline quota, with what is stored offline
    // (they end up there if their session ends first), and free it when they go.
    let two = Quota { messages: 2, bytes: 1 << 20 };
    let eve = jid("eve@example.org");
    store.create_user(&eve, &creds).await.expect("account");
    offline.push_offline(&eve, b"o0", two).await.expect("offline");
    let first = store.put_inflight(&eve, 1_700_000_000, m(1).as_bytes(), two).await.expect("fits");
    let over = store.put_inflight(&eve, 1_700_000_000, m(2).as_bytes(), two).await;
    assert!(matches!(over, Err(StorageError::QuotaExceeded(_))), "{over:?}");
    assert!(matches!(offline.push_offline(&eve, b"o1", two).await, Err(StorageError::QuotaExceeded(_))));
    store.remove_inflight(&[first]).await.expect("acknowledged");
    let second = store.put_inflight(&eve, 1_700_000_000, m(2).as_bytes(), two).await.expect("room again");
    store.inflight_to_offline(&[second], stamped).await.expect("move");
    assert_eq!(offline.offline_count(&eve).await.expect("count"), 2, "moved within the quota it held");
    let bytes = Quota { messages: 100, bytes: 64 };
    let frank = jid("frank@example.org");
    let too_big = store.put_inflight(&frank, 1_700_000_000, &[b'x'; 65], bytes).await;
    assert!(matches!(too_big, Err(StorageError::QuotaExceeded(_))), "bytes count too: {too_big:?}");
}

use super::archive::{self, ArchivePage, ArchivePrefs, ArchiveQuery, ArchiveStore, Page};
use xmpp_parsers::jid::Jid;

fn any_jid(s: &str) -> Jid {
    Jid::new(s).expect("valid test JID")
}

fn bodies(page: &ArchivePage) -> Vec<String> {
    page.messages.iter().map(|m| String::from_utf8_lossy(&m.stanza).into_owned()).collect()
}

/// Asserts the page's stanzas, completeness, and (when the backend gives them) count and index.
fn assert_page(page: &ArchivePage, expected: &[&str], complete: bool, count: u64, first_index: u64) {
    assert_eq!(bodies(page), expected, "{page:?}");
    assert_eq!(page.complete, complete, "complete: {page:?}");
    assert!(page.count.is_none_or(|c| c == count), "count {count}: {page:?}");
    let index = if expected.is_empty() { None } else { Some(first_index) };
    assert!(page.first_index.is_none() || page.first_index == index, "index {index:?}: {page:?}");
}

/// Runs every `ArchiveStore` rule against an empty store.
pub async fn archive_store(store: &dyn ArchiveStore) {
    let (alice, bob) = (jid("alice@example.org"), jid("bob@example.org"));
    let all = |max| ArchiveQuery::all(max);
    let query = |q: ArchiveQuery| {
        let alice = &alice;
        async move { store.query_archive(alice, &q).await.expect("query") }
    };
    assert_page(&query(all(10)).await, &[], true, 0, 0);

    // m6 arrives last with an older stamp: it is stamped like its predecessor.
    let entries = [
        ("bob@example.org/phone", 1_000),
        ("carol@example.net", 2_000),
        ("bob@example.org", 3_000),
        ("bob@example.org/laptop", 3_000),
        ("carol@example.net", 5_000),
        ("alice@example.org", 6_000),
        ("bob@example.org/phone", 4_000),
    ];
    let mut ids = Vec::new();
    for (i, (with, stamp)) in entries.iter().enumerate() {
        let id = store.archive(&alice, &any_jid(with), *stamp, format!("m{i}").as_bytes()).await.expect("archive");
        ids.push(id);
    }
    let theirs = store.archive(&bob, &any_jid("alice@example.org/home"), 2_500, b"b0").await.expect("archive");
    let distinct: std::collections::HashSet<&String> = ids.iter().chain([&theirs]).collect();
    assert_eq!(distinct.len(), ids.len() + 1, "ids are unique: {ids:?}");

    let everything = query(all(100)).await;
    assert_page(&everything, &["m0", "m1", "m2", "m3", "m4", "m5", "m6"], true, 7, 0);
    assert_eq!(everything.messages.iter().map(|m| m.id.clone()).collect::<Vec<_>>(), ids);
    let stamps: Vec<u64> = everything.messages.iter().map(|m| m.stamp_micros).collect();
    assert_eq!(stamps, vec![1_000, 2_000, 3_000, 3_000, 5_000, 6_000, 6_000], "stamps never decrease");
    assert_eq!(everything.messages[0].with, any_jid("bob@example.org/phone"), "the other party as given");

    // Filters: with (bare, full, the owner itself), time (inclusive), ids (exclusive), start > end.
    let with = |s: &str| ArchiveQuery { with: Some(any_jid(s)), ..all(100) };
    assert_page(&query(with("bob@example.org")).await, &["m0", "m2", "m3", "m6"], true, 4, 0);
    assert_page(&query(with("bob@example.org/phone")).await, &["m0", "m6"], true, 2, 0);
    assert_page(&query(with("alice@example.org")).await, &["m5"], true, 1, 0);
    assert_page(&query(with("dave@example.org")).await, &[], true, 0, 0);
    let times = ArchiveQuery { start: Some(3_000), end: Some(5_000), ..all(100) };
    assert_page(&query(times).await, &["m2", "m3", "m4"], true, 3, 0);
    assert_page(&query(ArchiveQuery { start: Some(5_000), end: Some(3_000), ..all(100) }).await, &[], true, 0, 0);
    let between = ArchiveQuery { after_id: Some(ids[1].clone()), before_id: Some(ids[4].clone()), ..all(100) };
    assert_page(&query(between).await, &["m2", "m3"], true, 2, 0);
    let named = ArchiveQuery { ids: vec![ids[4].clone(), ids[1].clone(), ids[4].clone()], ..all(100) };
    assert_page(&query(named).await, &["m1", "m4"], true, 2, 0);
    let named_with = ArchiveQuery { ids: vec![ids[0].clone(), ids[1].clone()], ..with("carol@example.net") };
    assert_page(&query(named_with).await, &["m1"], true, 1, 0);

    // Forward paging until complete.
    let after = |id: Option<&String>, max| ArchiveQuery { page: Page::After(id.cloned()), ..all(max) };
    assert_page(&query(after(None, 3)).await, &["m0", "m1", "m2"], false, 7, 0);
    assert_page(&query(after(Some(&ids[2]), 3)).await, &["m3", "m4", "m5"], false, 7, 3);
    assert_page(&query(after(Some(&ids[5]), 3)).await, &["m6"], true, 7, 6);
    assert_page(&query(after(Some(&ids[6]), 3)).await, &[], true, 7, 0);
    // Backward from the last page until complete; chronological within each page.
    let before = |id: Option<&String>, max| ArchiveQuery { page: Page::Before(id.cloned()), ..all(max) };
    assert_page(&query(before(None, 3)).await, &["m4", "m5", "m6"], false, 7, 4);
    assert_page(&query(before(Some(&ids[4]), 3)).await, &["m1", "m2", "m3"], false, 7, 1);
    assert_page(&query(before(Some(&ids[1]), 3)).await, &["m0"], true, 7, 0);
    let conversation = |page| ArchiveQuery { page, ..with("bob@example.org") };
    let last_two = ArchiveQuery { max: 2, ..conversation(Page::Before(None)) };
    assert_page(&query(last_two).await, &["m3", "m6"], false, 4, 2);
    let earlier = ArchiveQuery { max: 2, ..conversation(Page::Before(Some(ids[3].clone()))) };
    assert_page(&query(earlier).await, &["m0", "m2"], true, 4, 0);
    assert_page(&query(all(0)).await, &[], false, 7, 0);
    let capped = |count_up_to| query(ArchiveQuery { count_up_to, ..after(Some(&ids[2]), 2) });
    assert_eq!((capped(7).await.count, capped(7).await.first_index), (Some(7), Some(3)));
    let over = capped(6).await;
    assert!(
        matches!((over.count, over.first_index), (None, None) | (Some(7), Some(3))),
        "more matches than the limit: not counted, unless from an index (and then exactly): {over:?}"
    );
    assert_eq!(bodies(&capped(0).await), ["m3", "m4"], "paging is the same, counted or not");

    // Unknown ids, ids of another archive, and altered ids are all NotFound.
    let mut altered = ids[2].clone();
    let last = if altered.ends_with('0') { "1" } else { "0" };
    altered.replace_range(altered.len() - 1.., last);
    for id in ["nope".to_string(), theirs.clone(), altered] {
        let queries = [
            after(Some(&id), 5),
            before(Some(&id), 5),
            ArchiveQuery { after_id: Some(id.clone()), ..all(5) },
            ArchiveQuery { before_id: Some(id.clone()), ..all(5) },
            ArchiveQuery { ids: vec![ids[0].clone(), id.clone()], ..all(5) },
        ];
        for q in queries {
            let outcome = store.query_archive(&alice, &q).await;
            assert!(matches!(&outcome, Err(super::StorageError::NotFound(x)) if *x == id), "{q:?}: {outcome:?}");
        }
    }
    let bobs = store.query_archive(&bob, &all(10)).await.expect("query");
    assert_page(&bobs, &["b0"], true, 1, 0);

    // Preferences.
    assert!(store.archive_prefs(&alice).await.expect("prefs").is_none());
    let prefs = ArchivePrefs {
        default: archive::Default::Roster,
        always: vec![any_jid("carol@example.net")],
        never: vec![any_jid("bob@example.org/phone"), any_jid("example.com")],
    };
    store.set_archive_prefs(&alice, &prefs).await.expect("set prefs");
    assert_eq!(store.archive_prefs(&alice).await.expect("prefs").as_deref(), Some(&prefs));
    let fewer = ArchivePrefs { never: Vec::new(), ..prefs.clone() };
    store.set_archive_prefs(&alice, &fewer).await.expect("set prefs");
    assert_eq!(store.archive_prefs(&alice).await.expect("prefs").as_deref(), Some(&fewer), "a change is seen at once");
    store.set_archive_prefs(&alice, &prefs).await.expect("set prefs");
    assert!(store.archive_prefs(&bob).await.expect("prefs").is_none(), "preferences are per account");

    // Retention: only what is older than the limit, across archives.
    assert_eq!(store.expire_archive(2_500).await.expect("expire"), 2);
    assert_page(&query(all(100)).await, &["m2", "m3", "m4", "m5", "m6"], true, 5, 0);
    assert_page(&query(with("bob@example.org/phone")).await, &["m6"], true, 1, 0);
    assert!(matches!(query_err(store, &alice, &ids[0]).await, super::StorageError::NotFound(_)));
    assert_eq!(store.expire_archive(2_501).await.expect("expire"), 1);
    assert_eq!(store.expire_archive(2_501).await.expect("expire again"), 0);

    // An account's own retention: chosen, listed, and applied to its archive alone.
    let (carol, dave) = (jid("carol@example.org"), jid("dave@example.org"));
    assert_eq!(store.archive_retention(&alice).await.expect("retention"), None);
    store.set_archive_retention(&alice, Some(86_400)).await.expect("set retention");
    store.set_archive_retention(&bob, Some(3_600)).await.expect("set retention");
    store.set_archive_retention(&bob, None).await.expect("back to the server's");
    assert_eq!(store.archive_retention(&alice).await.expect("retention"), Some(86_400));
    assert_eq!(store.archive_retention(&bob).await.expect("retention"), None);
    let chosen = store.archive_retentions().await.expect("retentions");
    assert_eq!(chosen, [(alice.clone(), 86_400)]);
    for (i, stamp) in [2_000, 3_000, 4_000].into_iter().enumerate() {
        store.archive(&carol, &any_jid("alice@example.org"), stamp, format!("c{i}").as_bytes()).await.expect("archive");
    }
    let before = query(all(100)).await.messages.len();
    assert_eq!(store.expire_archive_of(&carol, 3_500).await.expect("expire one"), 2);
    assert_eq!(store.expire_archive_of(&carol, 3_500).await.expect("again"), 0);
    assert_eq!(store.expire_archive_of(&dave, 3_500).await.expect("no archive"), 0);
    let carols = store.query_archive(&carol, &all(10)).await.expect("query");
    assert_page(&carols, &["c2"], true, 1, 0);
    assert_eq!(query(all(100)).await.messages.len(), before, "others' archives untouched");

    // A message refused after it was archived for its recipient leaves that archive, its
    // conversation index too; nothing else goes.
    let before = query(all(100)).await.messages.len();
    assert!(store.unarchive(&alice, &ids[6]).await.expect("unarchive"));
    assert!(!store.unarchive(&alice, &ids[6]).await.expect("again"), "gone already");
    assert!(!store.unarchive(&bob, &ids[5]).await.expect("another archive's"), "only the owner's");
    assert!(!store.unarchive(&alice, "not an id").await.expect("not an id"));
    assert_eq!(query(all(100)).await.messages.len(), before - 1);
    assert_page(&query(with("bob@example.org/phone")).await, &[], true, 0, 0);

    // Deletion forgets the archive and preferences; ids are never reused.
    store.archive(&bob, &any_jid("alice@example.org"), 7_000, b"b1").await.expect("archive");
    store.delete_archive(&alice).await.expect("delete");
    assert_page(&query(all(100)).await, &[], true, 0, 0);
    assert_page(&query(with("bob@example.org")).await, &[], true, 0, 0);
    assert!(store.archive_prefs(&alice).await.expect("prefs").is_none());
    assert_eq!(store.archive_retention(&alice).await.expect("retention"), None);
    assert!(store.archive_retentions().await.expect("retentions").is_empty());
    assert_page(&store.query_archive(&bob, &all(10)).await.expect("query"), &["b1"], true, 1, 0);
    let again = store.archive(&alice, &any_jid("bob@example.org"), 1, b"n0").await.expect("archive");
    assert!(!ids.contains(&again));
    assert_page(&query(all(100)).await, &["n0"], true, 1, 0);
}

/// A page ends early at `max_bytes` (its first entry always goes): going forward the
/// oldest are kept, going backward the newest, and such a page is not complete.
pub async fn archive_page_bytes(store: &dyn ArchiveStore) {
    let pat = jid("pat@example.org");
    let bob = any_jid("bob@example.org");
    for i in 0..5 {
        store.archive(&pat, &bob, 1_000 + i, format!("p{i}-------").as_bytes()).await.expect("archive");
        // 10 bytes
    }
    let page = |page, max_bytes| {
        let q = ArchiveQuery { page, max_bytes, ..ArchiveQuery::all(10) };
        let pat = &pat;
        async move { store.query_archive(pat, &q).await.expect("query") }
    };
    let p = |i| format!("p{i}-------");
    let (p0, p1, p3, p4) = (p(0), p(1), p(3), p(4));
    assert_page(&page(Page::After(None), 25).await, &[&p0, &p1], false, 5, 0);
    assert_page(&page(Page::After(None), 5).await, &[&p0], false, 5, 0);
    assert_page(&page(Page::After(None), 0).await, &[&p0], false, 5, 0);
    assert_page(&page(Page::Before(None), 25).await, &[&p3, &p4], false, 5, 3);
    assert_page(&page(Page::Before(None), 5).await, &[&p4], false, 5, 4);
    let all: Vec<String> = (0..5).map(p).collect();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    assert_page(&page(Page::After(None), 50).await, &all, true, 5, 0);
    assert_page(&page(Page::Before(None), 50).await, &all, true, 5, 0);
}

async fn query_err(store: &dyn ArchiveStore, owner: &BareJid, id: &str) -> super::StorageError {
    let q = ArchiveQuery { page: Page::After(Some(id.to_string())), ..ArchiveQuery::all(1) };
    store.query_archive(owner, &q).await.expect_err("unknown id")
}

use super::private::{entry_size, PrivateStore};
use super::vcard::{Avatar, VcardStore};

/// A vCard per account, replaced whole, read with or without its avatar, deleted with it.
pub async fn vcard_store(store: &dyn VcardStore) {
    let (alice, bob) = (jid("alice@example.org"), jid("bob@example.org"));
    assert!(store.vcard(&alice).await.expect("get").is_none());
    assert!(store.avatar(&alice).await.expect("avatar").is_none(), "no vCard, no avatar");

    let plain = b"<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>";
    store.set_vcard(&alice, plain, &Avatar::NoPhoto).await.expect("set");
    assert_eq!(store.vcard(&alice).await.expect("get").as_deref(), Some(&plain[..]));
    assert_eq!(store.avatar(&alice).await.expect("avatar"), Some(Avatar::NoPhoto));
    assert!(store.vcard(&bob).await.expect("get").is_none(), "per owner");

    let photo = b"<vCard xmlns='vcard-temp'><PHOTO><BINVAL>AAEC</BINVAL></PHOTO></vCard>";
    let hash = Avatar::Sha1("0c7a623fd2bbc05b06423be359e4021d36e721ad".into());
    store.set_vcard(&alice, photo, &hash).await.expect("replace");
    assert_eq!(store.vcard(&alice).await.expect("get").as_deref(), Some(&photo[..]), "replaced whole");
    assert_eq!(store.avatar(&alice).await.expect("avatar"), Some(hash.clone()));
    store.set_vcard(&bob, plain, &Avatar::NoPhoto).await.expect("set");

    store.delete_vcard(&alice).await.expect("delete");
    assert!(store.vcard(&alice).await.expect("get").is_none());
    assert!(store.avatar(&alice).await.expect("avatar").is_none(), "the avatar goes with it");
    store.delete_vcard(&alice).await.expect("deleting nothing is no error");
    assert_eq!(store.avatar(&bob).await.expect("avatar"), Some(Avatar::NoPhoto), "nobody else's");
}

/// One entry per namespace, replaced whole, within a quota of bytes per account.
pub async fn private_store(store: &dyn PrivateStore) {
    let (alice, bob) = (jid("alice@example.org"), jid("bob@example.org"));
    let roomy = 1 << 20;
    let (bookmarks, prefs) = ("storage:bookmarks", "exodus:prefs");
    assert!(store.private(&alice, bookmarks).await.expect("get").is_none());
    assert_eq!(store.private_bytes(&alice).await.expect("bytes"), 0);

    let marks = b"<storage xmlns='storage:bookmarks'><conference jid='a@b'/></storage>";
    store.put_private(&alice, bookmarks, marks, roomy).await.expect("put");
    assert_eq!(store.private(&alice, bookmarks).await.expect("get").as_deref(), Some(&marks[..]));
    assert!(store.private(&alice, prefs).await.expect("get").is_none(), "per namespace");
    assert!(store.private(&bob, bookmarks).await.expect("get").is_none(), "per owner");
    let nick = b"<exodus xmlns='exodus:prefs'><defaultnick>A</defaultnick></exodus>";
    store.put_private(&alice, prefs, nick, roomy).await.expect("put");
    let both = entry_size(bookmarks, marks) + entry_size(prefs, nick);
    assert_eq!(store.private_bytes(&alice).await.expect("bytes"), both);
    let empty = b"<storage xmlns='storage:bookmarks'/>";
    store.put_private(&alice, bookmarks, empty, roomy).await.expect("replace");
    assert_eq!(store.private(&alice, bookmarks).await.expect("get").as_deref(), Some(&empty[..]), "replaced whole");
    let after = entry_size(bookmarks, empty) + entry_size(prefs, nick);
    assert_eq!(store.private_bytes(&alice).await.expect("bytes"), after, "the old entry's bytes are given back");

    // The quota: growing past it is refused and changes nothing; shrinking always works.
    let refused = store.put_private(&alice, bookmarks, marks, after).await;
    assert!(over_quota(&refused), "{refused:?}");
    assert_eq!(store.private(&alice, bookmarks).await.expect("get").as_deref(), Some(&empty[..]));
    assert_eq!(store.private_bytes(&alice).await.expect("bytes"), after);
    store
        .put_private(&alice, prefs, b"<exodus xmlns='exodus:prefs'/>", 1)
        .await
        .expect("shrinking, even over the quota");
    let nothing = store.put_private(&bob, bookmarks, marks, 10).await;
    assert!(over_quota(&nothing), "{nothing:?}");
    assert_eq!(store.private_bytes(&bob).await.expect("bytes"), 0, "a refused first entry leaves nothing");
    store.put_private(&bob, bookmarks, marks, entry_size(bookmarks, marks)).await.expect("exactly the quota");

    store.delete_private(&alice).await.expect("delete");
    assert!(store.private(&alice, bookmarks).await.expect("get").is_none());
    assert!(store.private(&alice, prefs).await.expect("get").is_none());
    assert_eq!(store.private_bytes(&alice).await.expect("bytes"), 0);
    assert_eq!(store.private(&bob, bookmarks).await.expect("get").as_deref(), Some(&marks[..]), "nobody else's");
}

/// One test per case of the contract, each against a fresh store that `$make` makes.
#[cfg(test)]
macro_rules! suite {
    ($make:expr) => {
        $crate::storage::contract::suite!(@cases $make;
            user_store,
            roster_store,
            roster_order_and_deletion,
            subscription_request_store,
            last_seen_store,
            block_store,
            offline_store,
            inflight_store,
            archive_store,
            archive_page_bytes,
            quotas_hold_under_concurrency,
            vcard_store,
            private_store,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let store = $make;
                $crate::storage::contract::$case(&store).await;
            }
        )*
    };
}
#[cfg(test)]
pub(crate) use suite;

#[cfg(test)]
mod sled {
    super::suite!(crate::storage::sled::SledStore::temporary().expect("a temporary sled database"));
}

/// sled with every archive entry written out as chunks at once (`archive/chunks.rs`),
/// where the plain one keeps them in its tails.
#[cfg(test)]
mod sled_chunks {
    super::suite!(crate::storage::sled::SledStore::temporary_chunking_at_once().expect("a temporary sled database"));
}

#[cfg(test)]
mod memory {
    super::suite!(crate::storage::memory::MemoryStore::new());
}

/// The memory backend answering later, as a store across a network does.
#[cfg(test)]
mod later {
    super::suite!(crate::storage::later::Later::new(std::sync::Arc::new(crate::storage::memory::MemoryStore::new())));
}
