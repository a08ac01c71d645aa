//! Logins revoked by an administrator: `stanzad passwd` and `deluser` end every stream of
//! the account, bound or not, so that whoever logged in with the old password is out at
//! once (RFC 6120 §4.9.3.17: `reset`; `not-authorized` for a deleted account).
//!
//! Bound sessions hear it from the router (`Control`). A stream still negotiating notes the
//! [`Generation`] at which its SASL exchange started (before the credentials are looked
//! up), and a change of its account's credentials after that revokes what it
//! authenticated. It looks:
//! - while it waits for the client after authentication: every change wakes it;
//! - when it registers its resource, under the router's lock: the administrator bumps the
//!   generation before ending the account's sessions, so a stream registering at the same
//!   time either sees the change or is among the sessions ended;
//! - before it hands its connection to a session it resumes (XEP-0198).

use crate::core::Control;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use xmpp_parsers::jid::BareJid;

/// How long after a change a negotiation that began before it may still look, beyond
/// `timeouts.negotiation_secs`: a resumption hand-over waits outside that deadline.
pub const KEPT_BEYOND_NEGOTIATION: Duration = Duration::from_secs(120);

/// A point in the sequence of credential changes (server-wide).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Generation(u64);

/// The latest change of each account's credentials, for as long as a negotiation that
/// began before it can still be going on; older ones are forgotten (the map stays bounded).
pub struct Revocations {
    changes: Mutex<Changes>,
    /// The generation of the latest change: negotiating streams wait on it.
    latest: watch::Sender<Generation>,
    keep: Duration,
}

#[derive(Default)]
struct Changes {
    /// The generation of the latest change.
    latest: u64,
    by_account: HashMap<BareJid, Change>,
}

struct Change {
    generation: Generation,
    /// How the account's streams end.
    why: Control,
    at: Instant,
}

impl Revocations {
    /// Remembers each change for `keep`: at least as long as a negotiation may last.
    pub fn new(keep: Duration) -> Revocations {
        Revocations { changes: Mutex::default(), latest: watch::Sender::new(Generation(0)), keep }
    }

    /// The current generation: a SASL exchange starting now is revoked by later changes.
    pub fn now(&self) -> Generation {
        Generation(self.lock().latest)
    }

    /// The account's credentials changed (`why`: `PasswordChanged` or `AccountDeleted`).
    /// Called after the change is stored (a login that looked up the old credentials
    /// started before this) and before the account's sessions are ended.
    pub fn revoke(&self, account: &BareJid, why: Control) {
        let now = Instant::now();
        let generation = {
            let mut changes = self.lock();
            changes.latest += 1;
            let generation = Generation(changes.latest);
            let keep = self.keep;
            changes.by_account.retain(|_, change| now.saturating_duration_since(change.at) < keep);
            changes.by_account.insert(account.clone(), Change { generation, why, at: now });
            generation
        };
        self.latest.send_replace(generation);
    }

    /// How the account's streams are to end, if its credentials changed after `since`.
    pub fn revoked_since(&self, account: &BareJid, since: Generation) -> Option<Control> {
        let changes = self.lock();
        let change = changes.by_account.get(account)?;
        (change.generation > since).then_some(change.why)
    }

    /// Waits until the account's credentials change after `since` (at once if they did).
    /// Cancel-safe.
    pub async fn revoked(&self, account: &BareJid, since: Generation) -> Control {
        // Watched before looking: a change between the two is not missed.
        let mut latest = self.latest.subscribe();
        loop {
            if let Some(why) = self.revoked_since(account, since) {
                return why;
            }
            // The sender lives as long as `self`: this never fails while anyone waits.
            if latest.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Changes> {
        self.changes.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.lock().by_account.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> BareJid {
        BareJid::new(s).expect("jid")
    }

    #[test]
    fn only_changes_after_a_login_began_revoke_it() {
        let revocations = Revocations::new(Duration::from_secs(60));
        revocations.revoke(&jid("alice@x"), Control::PasswordChanged);
        let since = revocations.now();
        assert_eq!(revocations.revoked_since(&jid("alice@x"), since), None, "changed before the login began");
        revocations.revoke(&jid("bob@x"), Control::AccountDeleted);
        assert_eq!(revocations.revoked_since(&jid("alice@x"), since), None, "another account");
        assert_eq!(revocations.revoked_since(&jid("bob@x"), since), Some(Control::AccountDeleted));
        revocations.revoke(&jid("alice@x"), Control::PasswordChanged);
        assert_eq!(revocations.revoked_since(&jid("alice@x"), since), Some(Control::PasswordChanged));
    }

    #[tokio::test(start_paused = true)]
    async fn changes_are_forgotten_once_no_negotiation_can_care() {
        let revocations = Revocations::new(Duration::from_secs(60));
        revocations.revoke(&jid("alice@x"), Control::PasswordChanged);
        tokio::time::advance(Duration::from_secs(61)).await;
        revocations.revoke(&jid("bob@x"), Control::PasswordChanged);
        assert_eq!(revocations.remembered(), 1, "alice's change is forgotten");
    }

    #[tokio::test]
    async fn a_waiting_login_wakes_for_its_own_account_only() {
        let revocations = Revocations::new(Duration::from_secs(60));
        let since = revocations.now();
        let alice = jid("alice@x");
        let wait = revocations.revoked(&alice, since);
        tokio::pin!(wait);
        assert!(futures::FutureExt::now_or_never(wait.as_mut()).is_none(), "nothing changed");
        revocations.revoke(&jid("bob@x"), Control::PasswordChanged);
        assert!(futures::FutureExt::now_or_never(wait.as_mut()).is_none(), "bob's change is not alice's");
        revocations.revoke(&alice, Control::AccountDeleted);
        assert_eq!(wait.await, Control::AccountDeleted);
    }
}
