//! What the session benchmarks share: accounts in a temporary store, bound sessions.

use stanzad::config::Config;
use stanzad::router::session::Session;
use stanzad::router::Mailbox;
use stanzad::sasl::credentials::StoredCredentials;
use stanzad::state::ServerState;
use stanzad::storage::sled::SledStore;
use stanzad::storage::UserStore;
use stanzad::xml::Element;
use std::sync::Arc;
use tokio::time::Instant;
use xmpp_parsers::jid::{BareJid, FullJid};

/// A temporary sled store holding the accounts `users` (password `pw`).
pub fn store_with(users: impl IntoIterator<Item = BareJid>) -> SledStore {
    let store = SledStore::temporary().expect("sled");
    let creds = StoredCredentials::derive("pw", 4096).expect("derive");
    for user in users {
        store.create_user(&user, &creds).expect("create");
    }
    store
}

pub fn state_over(store: SledStore) -> ServerState {
    ServerState::new(Config::default(), Arc::new(store))
}

/// A session bound in the router, with the mailbox a connection task would own.
pub fn bind(state: &ServerState, jid: &str, now: Instant) -> (Session, Mailbox) {
    let jid = FullJid::new(jid).expect("full JID");
    let limits = &state.config.limits;
    let (handle, mailbox) = state.router.channels(limits.session_queue, limits.session_queue_bytes);
    state.router.bind(jid.clone(), handle.clone());
    (Session::new(state, jid, handle.id, now), mailbox)
}

pub fn xml(text: &str) -> Element {
    text.parse().expect("bench XML")
}
