//! The contract every storage backend must pass. A new backend calls these from its tests.

use super::{StorageError, UserStore};
use crate::sasl::credentials::StoredCredentials;
use xmpp_parsers::jid::BareJid;

fn jid(s: &str) -> BareJid {
    BareJid::new(s).expect("valid test JID")
}

/// Runs every `UserStore` rule against an empty store.
pub fn user_store(store: &dyn UserStore) {
    let alice = jid("alice@example.org");
    let bob = jid("bob@example.org");
    let first = StoredCredentials::derive("pencil", 4096).expect("derive");
    let second = StoredCredentials::derive("pen", 4096).expect("derive");

    assert!(store.list_users().expect("list").is_empty());
    assert!(!store.user_exists(&alice).expect("exists"));
    assert!(store.credentials(&alice).expect("get").is_none());

    store.create_user(&alice, &first).expect("create alice");
    let again = store.create_user(&alice, &second);
    assert!(matches!(again, Err(StorageError::AlreadyExists(_))), "{again:?}");
    assert_eq!(store.credentials(&alice).expect("get"), Some(first.clone()), "create must not be overwritten");

    store.set_credentials(&alice, &second).expect("passwd");
    assert_eq!(store.credentials(&alice).expect("get"), Some(second));
    let missing = store.set_credentials(&bob, &first);
    assert!(matches!(missing, Err(StorageError::NotFound(_))), "{missing:?}");
    assert!(!store.user_exists(&bob).expect("set_credentials must not create"));

    store.create_user(&bob, &first).expect("create bob");
    assert_eq!(store.list_users().expect("list"), vec![alice.clone(), bob.clone()]);

    store.delete_user(&alice).expect("delete");
    assert!(matches!(store.delete_user(&alice), Err(StorageError::NotFound(_))));
    assert_eq!(store.list_users().expect("list"), vec![bob]);
    store.flush().expect("flush");
}

use super::roster::{BlockStore, LastSeen, LastSeenStore, RosterItem, RosterStore, Subscription};

/// Runs every `RosterStore` rule against an empty store.
pub fn roster_store(store: &dyn RosterStore) {
    let alice = jid("alice@example.org");
    let bob = jid("bob@example.org");
    let carol = jid("carol@example.net");

    let empty = store.roster(&alice).expect("roster");
    assert_eq!((empty.version, empty.items.len()), (0, 0));
    assert!(store.roster_item(&alice, &bob).expect("item").is_none());

    let mut item = RosterItem::new(&bob);
    item.name = Some("Bob".into());
    item.groups = vec!["Friends".into()];
    let v1 = store.put_roster_item(&alice, &item).expect("put");
    item.subscription = Subscription::To;
    let v2 = store.put_roster_item(&alice, &item).expect("update");
    assert!(v2 > v1 && v1 > 0, "every change bumps the version: {v1} {v2}");
    assert_eq!(store.roster_item(&alice, &bob).expect("item"), Some(item.clone()));
    let v3 = store.put_roster_item(&alice, &RosterItem::new(&carol)).expect("put");
    let roster = store.roster(&alice).expect("roster");
    assert_eq!(roster.version, v3);
    assert_eq!(roster.items.len(), 2);
    assert!(store.roster(&bob).expect("roster").items.is_empty(), "rosters are per owner");

    assert_eq!(store.remove_roster_item(&alice, &jid("nobody@example.org")).expect("remove"), None);
    assert_eq!(store.roster(&alice).expect("roster").version, v3, "removing nothing changes nothing");
    let v4 = store.remove_roster_item(&alice, &carol).expect("remove").expect("existed");
    assert!(v4 > v3);
    assert_eq!(store.roster(&alice).expect("roster").items, vec![item]);

    let request = "<presence xmlns='jabber:client' type='subscribe' from='carol@example.net'/>";
    store.put_pending_in(&alice, &carol, request).expect("pending");
    assert_eq!(store.pending_in(&alice).expect("pending"), vec![(carol.clone(), request.to_string())]);
    assert!(store.remove_pending_in(&alice, &carol).expect("remove"));
    assert!(!store.remove_pending_in(&alice, &carol).expect("remove again"));

    store.put_pending_in(&alice, &carol, request).expect("pending");
    store.delete_roster(&alice).expect("delete");
    assert!(store.roster(&alice).expect("roster").items.is_empty());
    assert!(store.pending_in(&alice).expect("pending").is_empty());
}

pub fn last_seen_store(store: &dyn LastSeenStore) {
    let alice = jid("alice@example.org");
    assert!(store.last_seen(&alice).expect("get").is_none());
    let last = LastSeen { at: 1_700_000_000, status: Some("gone fishing".into()) };
    store.set_last_seen(&alice, &last).expect("set");
    assert_eq!(store.last_seen(&alice).expect("get"), Some(last));
}

pub fn block_store(store: &dyn BlockStore) {
    let alice = jid("alice@example.org");
    let spam = ["spam@example.net".to_string(), "example.com".to_string()];
    assert_eq!(store.block(&alice, &spam).expect("block"), spam.to_vec());
    assert!(store.block(&alice, &spam[..1]).expect("again").is_empty(), "already blocked");
    let mut list = store.blocklist(&alice).expect("list");
    list.sort();
    assert_eq!(list, vec!["example.com".to_string(), "spam@example.net".to_string()]);
    assert!(store.blocklist(&jid("bob@example.org")).expect("list").is_empty());
    assert_eq!(store.unblock(&alice, &spam[..1]).expect("unblock"), spam[..1].to_vec());
    assert_eq!(store.unblock(&alice, &[]).expect("unblock all"), vec!["example.com".to_string()]);
    assert!(store.blocklist(&alice).expect("list").is_empty());
}

use super::offline::{OfflineStore, Quota};

/// Runs every `OfflineStore` rule against an empty store.
pub fn offline_store(store: &dyn OfflineStore) {
    let bob = jid("bob@example.org");
    let carol = jid("carol@example.org");
    assert_eq!(store.offline_count(&bob).expect("count"), 0);
    assert!(store.offline_messages(&bob, 10).expect("list").is_empty());

    let five = Quota { messages: 5, bytes: 1 << 20 };
    let seqs: Vec<u64> =
        (0..5).map(|i| store.push_offline(&bob, format!("m{i}").as_bytes(), five).expect("push")).collect();
    assert_eq!(store.offline_count(&bob).expect("count"), 5);
    let quota = store.push_offline(&bob, b"m5", five);
    assert!(matches!(quota, Err(StorageError::QuotaExceeded(5))), "{quota:?}");
    assert_eq!(store.offline_count(&bob).expect("count"), 5, "a refused message is not counted");
    store.push_offline(&carol, b"c0", five).expect("other account");

    let listed = store.offline_messages(&bob, 3).expect("list");
    let bodies: Vec<&[u8]> = listed.iter().map(|m| m.stanza.as_slice()).collect();
    assert_eq!(bodies, vec![&b"m0"[..], b"m1", b"m2"], "arrival order, limited");
    assert_eq!(listed.iter().map(|m| m.seq).collect::<Vec<_>>(), seqs[..3].to_vec());

    assert_eq!(store.remove_offline(&bob, &seqs[..2]).expect("remove"), 2);
    assert_eq!(store.remove_offline(&bob, &seqs[..2]).expect("remove again"), 0, "removal is idempotent");
    assert_eq!(store.offline_count(&bob).expect("count"), 3);
    assert_eq!(store.offline_messages(&bob, 10).expect("list")[0].stanza, b"m2");
    store.push_offline(&bob, b"m6", five).expect("room again");

    // The byte quota counts what is waiting, and what leaves frees its room.
    let small = Quota { messages: 100, bytes: 10 };
    let dave = jid("dave@example.org");
    let first = store.push_offline(&dave, b"12345678", small).expect("8 bytes fit");
    assert!(matches!(store.push_offline(&dave, b"123", small), Err(StorageError::QuotaExceeded(_))), "11 > 10");
    store.remove_offline(&dave, &[first]).expect("remove");
    store.push_offline(&dave, b"123", small).expect("room again");

    store.delete_offline(&bob).expect("delete");
    assert_eq!(store.offline_count(&bob).expect("count"), 0);
    assert_eq!(store.offline_count(&carol).expect("count"), 1, "queues are per account");
}
