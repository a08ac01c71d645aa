//! What the session benchmarks share: accounts in a temporary store, bound sessions.

use stanzad::c2s::session::Session;
use stanzad::config::Config;
use stanzad::core::state::ServerState;
use stanzad::core::Mailbox;
use stanzad::sasl::credentials::StoredCredentials;
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
        block_on(store.create_user(&user, &creds)).expect("create");
    }
    store
}

/// Runs a session step to its end, on this thread. Over sled nothing waits, so this is
/// one poll, as cheap as the call was when the session's steps were synchronous.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// A server over `store` with the standard modules, as `stanzad serve` runs it.
pub fn state_over(store: SledStore) -> Arc<ServerState> {
    let config = Config::default();
    let modules = stanzad::modules::standard(&config);
    ServerState::new(config, Arc::new(store), modules)
}

/// A session bound in the router, with the mailbox a connection task would own.
pub fn bind(state: &ServerState, jid: &str, now: Instant) -> (Session, Mailbox) {
    let jid = FullJid::new(jid).expect("full JID");
    let limits = &state.config.limits;
    let (handle, mailbox) = state.registry.channels(limits.session_queue, limits.session_queue_bytes);
    state.registry.bind(jid.clone(), handle.clone());
    (Session::new(state, jid, handle.id, now), mailbox)
}

pub fn xml(text: &str) -> Element {
    text.parse().expect("bench XML")
}
