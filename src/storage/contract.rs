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
