//! XEP-0198 §5 resumption: which sessions can be resumed, by whom, and the hand-over of a
//! new connection to the session task that waits for it.

use super::negotiate::Conn;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;
use xmpp_parsers::jid::BareJid;

/// Ended sessions whose last `h` is remembered, for `<failed h=''/>`.
const TOMBSTONES: usize = 10_000;

/// A new connection asking to take over a session.
pub struct Resumption {
    pub conn: Conn,
    /// What the client received of ours.
    pub h: u32,
    pub peer: std::net::SocketAddr,
    /// Ok once the session took the connection; otherwise the connection comes back with
    /// the `<failed/>` to send on it, and negotiation goes on.
    pub reply: oneshot::Sender<Result<(), Box<(Conn, String)>>>,
}

/// Where a session task listens for resumptions: every session has one, nearly always
/// unused, so it is a [`signal`](crate::core::signal) channel (nothing allocated until a
/// resumption comes). Boxed: the queue's first allocation is then four pointers, not four
/// connections.
pub type ResumeSender = crate::core::signal::Sender<Box<Resumption>>;

/// Where a session registers itself when its client enables resumption.
pub struct Resumable {
    pub sender: ResumeSender,
    pub registry: std::sync::Arc<Registry>,
}

struct Entry {
    owner: BareJid,
    session: ResumeSender,
}

/// What a lookup found.
pub enum Lookup {
    Live(ResumeSender),
    /// The session ended; its client had sent us this many stanzas.
    Ended(u32),
    Unknown,
}

#[derive(Default)]
pub struct Registry {
    live: Mutex<HashMap<String, Entry>>,
    ended: Mutex<HashMap<String, (BareJid, u32, Instant)>>,
}

impl Registry {
    pub fn register(&self, id: &str, owner: BareJid, session: ResumeSender) {
        lock(&self.live).insert(id.to_owned(), Entry { owner, session });
    }

    /// The session ended for good; its last `h` is kept a while for `<failed h=''/>` (None:
    /// it is forgotten, and a resumption is answered as for an unknown session).
    pub fn ended(&self, id: &str, inbound: Option<u32>, keep: Duration) {
        let Some(entry) = lock(&self.live).remove(id) else { return };
        let Some(inbound) = inbound else { return };
        let now = Instant::now();
        let mut ended = lock(&self.ended);
        if ended.len() >= TOMBSTONES {
            ended.retain(|_, (_, _, at)| now.saturating_duration_since(*at) < keep);
        }
        if ended.len() < TOMBSTONES {
            ended.insert(id.to_owned(), (entry.owner, inbound, now));
        }
    }

    /// Only the account that enabled the session may resume it: to anyone else it is unknown.
    pub fn lookup(&self, id: &str, user: &BareJid) -> Lookup {
        if let Some(entry) = lock(&self.live).get(id).filter(|e| e.owner == *user) {
            return Lookup::Live(entry.session.clone());
        }
        match lock(&self.ended).get(id) {
            Some((owner, h, _)) if owner == user => Lookup::Ended(*h),
            _ => Lookup::Unknown,
        }
    }

    pub fn live_sessions(&self) -> usize {
        lock(&self.live).len()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A fresh, unguessable resumption id.
pub fn new_id() -> String {
    use rand::Rng;
    let bytes: [u8; 18] = rand::thread_rng().gen();
    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes)
}

/// `<failed xmlns='urn:xmpp:sm:3' [h='']><condition/></failed>` (XEP-0198 §5).
pub fn failed(condition: &str, h: Option<u32>) -> String {
    let ns = crate::c2s::session::sm::NS;
    let h = h.map(|h| format!(" h='{h}'")).unwrap_or_default();
    let errors = crate::xml::NS_STANZA_ERRORS;
    format!("<failed xmlns='{ns}'{h}><{condition} xmlns='{errors}'/></failed>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_owner_finds_a_session_and_an_ended_one_keeps_its_h() {
        let registry = Registry::default();
        let alice = BareJid::new("alice@x").expect("jid");
        let mallory = BareJid::new("mallory@x").expect("jid");
        let (tx, _rx) = crate::core::signal::channel();
        registry.register("id1", alice.clone(), tx);
        assert!(matches!(registry.lookup("id1", &alice), Lookup::Live(_)));
        assert!(matches!(registry.lookup("id1", &mallory), Lookup::Unknown));
        registry.ended("id1", Some(7), Duration::from_secs(60));
        assert!(matches!(registry.lookup("id1", &alice), Lookup::Ended(7)));
        assert!(matches!(registry.lookup("id1", &mallory), Lookup::Unknown));
        assert!(matches!(registry.lookup("nope", &alice), Lookup::Unknown));
        assert_eq!(registry.live_sessions(), 0);
        assert_ne!(new_id(), new_id());
    }
}
