//! Presence subscriptions (RFC 6121 §3). Both ends are local accounts, so one stanza runs
//! the sender's outbound rules and the receiver's inbound rules of Appendix A in one step,
//! under the lock of that pair of accounts ([`lock_pair`]): the two rosters never race,
//! and changes between other pairs go on meanwhile.

use super::presence;
use crate::core::roster::{push_item, push_removal};
use crate::core::state::ServerState;
use crate::storage::roster::{RosterItem, Subscription};
use crate::storage::StorageError;
use crate::stripes::AsyncPairGuard;
use crate::xml::{el, writer, Element, ElementExt, NS_CLIENT};
use crate::xmpp::stanza::{PresenceType, Stanza};
use xmpp_parsers::jid::{BareJid, Jid};

/// One side's view of a contact: Appendix A's states ("To + Pending In", ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct State {
    pub subscription: Subscription,
    pub pending_out: bool,
    pub pending_in: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A.2.1: our user sends subscribe.
    OutSubscribe,
    /// A.2.2: a subscribe arrives for our user.
    InSubscribe,
    /// A.3.1: our user approves (subscribed).
    OutSubscribed,
    /// A.3.2: an approval arrives for our user.
    InSubscribed,
    /// A.4.1: our user unsubscribes from the contact.
    OutUnsubscribe,
    /// A.4.2: the contact's unsubscribe arrives.
    InUnsubscribe,
    /// A.3.3/A.5.1: our user cancels or denies the contact's subscription.
    OutUnsubscribed,
    /// A.3.4/A.5.2: the contact cancelled or denied ours.
    InUnsubscribed,
}

/// The new state, or None for Appendix A's "no state change".
pub fn transition(s: State, event: Event) -> Option<State> {
    let sub = s.subscription;
    match event {
        Event::OutSubscribe if sub.has_to() || s.pending_out => None,
        Event::OutSubscribe => Some(State { pending_out: true, ..s }),
        Event::InSubscribe if sub.has_from() || s.pending_in => None,
        Event::InSubscribe => Some(State { pending_in: true, ..s }),
        Event::OutSubscribed if !s.pending_in => None,
        Event::OutSubscribed => Some(State { subscription: sub.with_from(true), pending_in: false, ..s }),
        Event::InSubscribed if !s.pending_out => None,
        Event::InSubscribed => Some(State { subscription: sub.with_to(true), pending_out: false, ..s }),
        Event::OutUnsubscribe | Event::InUnsubscribed if !sub.has_to() && !s.pending_out => None,
        Event::OutUnsubscribe | Event::InUnsubscribed => {
            Some(State { subscription: sub.with_to(false), pending_out: false, ..s })
        }
        Event::InUnsubscribe | Event::OutUnsubscribed if !sub.has_from() && !s.pending_in => None,
        Event::InUnsubscribe | Event::OutUnsubscribed => {
            Some(State { subscription: sub.with_from(false), pending_in: false, ..s })
        }
    }
}

/// Why a subscription stanza was refused; the sender gets a stanza error.
#[derive(Debug)]
pub enum Refused {
    Storage(StorageError),
    /// A subscription request larger than `limits.max_subscription_request_bytes`.
    TooLarge,
}

impl From<StorageError> for Refused {
    fn from(e: StorageError) -> Refused {
        Refused::Storage(e)
    }
}

/// Holds off every other subscription change between `a` and `b` (in either direction),
/// and nothing else: held while a change reads and writes the two rosters.
pub async fn lock_pair<'s>(state: &'s ServerState, a: &BareJid, b: &BareJid) -> AsyncPairGuard<'s> {
    state.subscription_locks.lock_pair(a.as_str(), b.as_str()).await
}

/// One account's stored view of one contact.
struct Side<'a> {
    state: &'a ServerState,
    owner: &'a BareJid,
    contact: &'a BareJid,
    item: Option<RosterItem>,
    pending_in: bool,
}

impl<'a> Side<'a> {
    async fn load(state: &'a ServerState, owner: &'a BareJid, contact: &'a BareJid) -> Result<Side<'a>, StorageError> {
        let item = state.store.roster_item(owner, contact).await?;
        let pending_in = state.store.pending_request(owner, contact).await?.is_some();
        Ok(Side { state, owner, contact, item, pending_in })
    }

    fn current(&self) -> State {
        let (subscription, pending_out) = self.item.as_ref().map(|i| (i.subscription, i.ask)).unwrap_or_default();
        State { subscription, pending_out, pending_in: self.pending_in }
    }

    fn approved(&self) -> bool {
        self.item.as_ref().is_some_and(|i| i.approved)
    }

    /// Applies `event` (with `request`, the stored form of an inbound subscribe); true
    /// when the state changed (stored and pushed).
    async fn apply(&mut self, event: Event, request: Option<&str>) -> Result<bool, StorageError> {
        let Some(next) = transition(self.current(), event) else { return Ok(false) };
        self.store(next, request).await?;
        Ok(true)
    }

    async fn store(&mut self, next: State, request: Option<&str>) -> Result<(), StorageError> {
        // "None + Pending In" needs no roster item (RFC 6121 §3.1.3); every other state does.
        let needs_item = next.subscription != Subscription::None || next.pending_out;
        if self.item.is_some() || needs_item {
            let mut item = self.item.clone().unwrap_or_else(|| RosterItem::new(self.contact));
            item.subscription = next.subscription;
            item.ask = next.pending_out;
            if next.subscription.has_from() {
                item.approved = false;
            }
            // Only a changed item is stored and pushed (Pending In lives outside the roster).
            // First: a full roster refuses it, and the state stays as it was.
            if self.item.as_ref() != Some(&item) {
                self.save(item).await?;
            }
        }
        if next.pending_in != self.pending_in {
            match (next.pending_in, request) {
                (true, Some(request)) => self.state.store.put_pending_in(self.owner, self.contact, request).await?,
                _ => {
                    self.state.store.remove_pending_in(self.owner, self.contact).await?;
                }
            }
            self.pending_in = next.pending_in;
        }
        Ok(())
    }

    async fn set_approved(&mut self, approved: bool) -> Result<(), StorageError> {
        let mut item = self.item.clone().unwrap_or_else(|| RosterItem::new(self.contact));
        item.approved = approved;
        self.save(item).await
    }

    /// Stores `item` within the roster's quota (`QuotaExceeded` otherwise) and pushes it.
    async fn save(&mut self, item: RosterItem) -> Result<(), StorageError> {
        let quota = self.state.config.limits.roster_quota();
        let version = self.state.store.put_roster_item(self.owner, &item, quota).await?;
        push_item(self.state, self.owner, &item, version);
        self.item = Some(item);
        Ok(())
    }
}

/// The request as stored for re-delivery (from the requester's bare JID), refused when
/// larger than `limits.max_subscription_request_bytes`: it waits, payloads and all, until
/// the contact answers, and goes to each of its sessions at login (§3.1.3).
fn stored(state: &ServerState, request: &Element) -> Result<String, Refused> {
    let bytes = writer::to_bytes(request);
    if bytes.len() > state.config.limits.max_subscription_request_bytes {
        return Err(Refused::TooLarge);
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// A subscription stanza between two accounts, as the receiver should see it.
fn subscription_stanza(kind: &str, from: &BareJid, to: &BareJid) -> Element {
    el("presence", NS_CLIENT).with("type", kind).with("from", from.as_str()).with("to", to.as_str())
}

/// Whether `jid` is an account of this server, and whether it exists.
struct Contact {
    local: bool,
    exists: bool,
}

/// Processes a subscription-related presence from `user` (its `from` already stamped).
pub async fn handle(state: &ServerState, user: &BareJid, stanza: &Stanza, contact: &BareJid) -> Result<(), Refused> {
    let Some(kind) = subscription_type(stanza) else { return Ok(()) };
    // RFC 6121 §3.1.2: subscription stanzas carry the sender's bare JID; payloads stay.
    let mut request = stanza.element.clone();
    request.set("from", user.as_str());
    request.set("to", contact.as_str());
    let stored = match kind {
        PresenceType::Subscribe => Some(stored(state, &request)?),
        _ => None,
    };
    let _pair = lock_pair(state, user, contact).await;
    // The account was deleted since the stanza was sent: its relations are being ended
    // (`forget_account`), and nothing may start new ones.
    if !state.store.user_exists(user).await? {
        return Ok(());
    }
    // XEP-0191 §3.3: the contact blocked the user: nothing of it arrives, subscriptions included.
    if crate::core::privacy::blocks(state, contact, &Jid::from(user.clone())).await {
        return Ok(());
    }
    let local = state.config.serves(contact.domain().as_str());
    let them = Contact { local, exists: local && state.store.user_exists(contact).await? };
    let outcome = match (kind, stored.as_deref()) {
        (PresenceType::Subscribe, Some(stored)) => subscribe(state, user, contact, &request, stored, them.exists).await,
        (PresenceType::Subscribed, _) => approve(state, user, contact, &request, them).await,
        (PresenceType::Unsubscribe, _) => unsubscribe(state, user, contact, &request, them.exists).await,
        (PresenceType::Unsubscribed, _) => cancel(state, user, contact, &request, them.exists).await,
        _ => Ok(()),
    };
    outcome.map_err(Refused::from)
}

fn subscription_type(stanza: &Stanza) -> Option<PresenceType> {
    match stanza.kind {
        crate::xmpp::stanza::Kind::Presence(
            t @ (PresenceType::Subscribe
            | PresenceType::Subscribed
            | PresenceType::Unsubscribe
            | PresenceType::Unsubscribed),
        ) => Some(t),
        _ => None,
    }
}

/// §3.1: user asks to see contact's presence; `stored` is the request as it would wait.
async fn subscribe(
    state: &ServerState,
    user: &BareJid,
    contact: &BareJid,
    request: &Element,
    stored: &str,
    exists: bool,
) -> Result<(), StorageError> {
    let mut ours = Side::load(state, user, contact).await?;
    ours.apply(Event::OutSubscribe, None).await?;
    if !exists {
        // §3.1.3: no such contact: the request is answered as denied.
        return cancelled_by_contact(state, user, contact).await;
    }
    let mut theirs = Side::load(state, contact, user).await?;
    if theirs.current().subscription.has_from() {
        // §3.1.3: already subscribed: the contact's server approves on its own.
        return approved_by_contact(state, user, contact, None).await;
    }
    if theirs.approved() {
        // §3.4: pre-approved.
        let next = State { subscription: theirs.current().subscription.with_from(true), ..theirs.current() };
        theirs.store(next, None).await?;
        return approved_by_contact(state, user, contact, None).await;
    }
    if theirs.apply(Event::InSubscribe, Some(stored)).await? {
        presence::deliver_to_available(state, contact, request);
    }
    Ok(())
}

/// §3.1.5 / §3.4: user approves contact's request, or pre-approves it.
async fn approve(
    state: &ServerState,
    user: &BareJid,
    contact: &BareJid,
    request: &Element,
    them: Contact,
) -> Result<(), StorageError> {
    let mut ours = Side::load(state, user, contact).await?;
    if !ours.apply(Event::OutSubscribed, None).await? {
        // §3.4: a pre-approval; none for a local account that does not exist, which
        // someone may create later under that name.
        let preapprovable = them.exists || !them.local;
        if preapprovable && !ours.current().subscription.has_from() && !ours.approved() {
            ours.set_approved(true).await?;
        }
        return Ok(());
    }
    if them.exists {
        approved_by_contact(state, contact, user, Some(request)).await?;
    }
    Ok(())
}

/// The approval reaches `subscriber`: its subscription to `approver` is on. `approval` is
/// the approver's own stanza (kept as sent), or None when the server approves for it.
async fn approved_by_contact(
    state: &ServerState,
    subscriber: &BareJid,
    approver: &BareJid,
    approval: Option<&Element>,
) -> Result<(), StorageError> {
    let mut theirs = Side::load(state, subscriber, approver).await?;
    if theirs.apply(Event::InSubscribed, None).await? {
        let generated = subscription_stanza("subscribed", approver, subscriber);
        presence::deliver_to_available(state, subscriber, approval.unwrap_or(&generated));
        // §3.1.5: the approver's current presence follows.
        presence::send_presence_of(state, approver, subscriber).await;
    }
    Ok(())
}

/// §3.3: user stops seeing contact's presence.
async fn unsubscribe(
    state: &ServerState,
    user: &BareJid,
    contact: &BareJid,
    request: &Element,
    exists: bool,
) -> Result<(), StorageError> {
    let mut ours = Side::load(state, user, contact).await?;
    ours.apply(Event::OutUnsubscribe, None).await?;
    if !exists {
        return Ok(());
    }
    let mut theirs = Side::load(state, contact, user).await?;
    let had_from = theirs.current().subscription.has_from();
    if theirs.apply(Event::InUnsubscribe, None).await? {
        presence::deliver_to_available(state, contact, request);
        if had_from {
            // §3.3.3: the user no longer sees the contact: it goes unavailable for them.
            presence::send_unavailable_of(state, contact, user);
        }
    }
    Ok(())
}

/// §3.2 / §3.1.4: user cancels or denies contact's subscription (or a pre-approval).
async fn cancel(
    state: &ServerState,
    user: &BareJid,
    contact: &BareJid,
    request: &Element,
    exists: bool,
) -> Result<(), StorageError> {
    let mut ours = Side::load(state, user, contact).await?;
    let had_from = ours.current().subscription.has_from();
    if !ours.apply(Event::OutUnsubscribed, None).await? {
        if ours.approved() {
            ours.set_approved(false).await?;
        }
        return Ok(());
    }
    if had_from {
        // §3.2.2: our presence stops reaching the contact.
        presence::send_unavailable_of(state, user, contact);
    }
    if exists {
        let mut theirs = Side::load(state, contact, user).await?;
        if theirs.apply(Event::InUnsubscribed, None).await? {
            presence::deliver_to_available(state, contact, request);
        }
    }
    Ok(())
}

/// RFC 6121 §2.5.2: `owner` removed `contact` from its roster, whose state was `before`:
/// the contact's side of both directions ends (`unsubscribe` and `unsubscribed`), and it
/// stops seeing the owner's presence. The owner's own item is already gone. Called with
/// the pair's lock held (`_pair`), the one the removal was made under.
pub async fn roster_removed(
    state: &ServerState,
    _pair: &AsyncPairGuard<'_>,
    owner: &BareJid,
    contact: &BareJid,
    before: State,
) -> Result<(), StorageError> {
    if before.pending_in {
        state.store.remove_pending_in(owner, contact).await?;
    }
    if before.subscription.has_from() {
        presence::send_unavailable_of(state, owner, contact);
    }
    let exists = state.config.serves(contact.domain().as_str()) && state.store.user_exists(contact).await?;
    if !exists || crate::core::privacy::blocks(state, contact, &Jid::from(owner.clone())).await {
        return Ok(());
    }
    let mut theirs = Side::load(state, contact, owner).await?;
    if before.subscription.has_to() || before.pending_out {
        let had_from = theirs.current().subscription.has_from();
        if theirs.apply(Event::InUnsubscribe, None).await? {
            presence::deliver_to_available(state, contact, &subscription_stanza("unsubscribe", owner, contact));
            if had_from {
                presence::send_unavailable_of(state, contact, owner);
            }
        }
    }
    if (before.subscription.has_from() || before.pending_in) && theirs.apply(Event::InUnsubscribed, None).await? {
        presence::deliver_to_available(state, contact, &subscription_stanza("unsubscribed", owner, contact));
    }
    Ok(())
}

/// An account is being deleted: it leaves the roster of every account that holds it (not
/// only its own contacts'), so a later account of the same name inherits nothing. Reads
/// the reverse index and writes rosters at length (`admin::execute` runs it on the
/// blocking pool).
pub async fn forget_account(state: &ServerState, owner: &BareJid) -> Result<(), StorageError> {
    for contact in related_accounts(state, owner).await? {
        let pair = lock_pair(state, owner, &contact).await;
        leave(state, &pair, owner, &contact).await?;
    }
    Ok(())
}

/// Waits until no subscription change involving `owner` is under way. After its account
/// is gone, every later change finds no account and changes nothing (`handle`), so one
/// more [`forget_account`] then catches whatever raced the first.
pub async fn settle(state: &ServerState, owner: &BareJid) {
    drop(state.subscription_locks.lock(owner.as_str()).await);
}

/// Everyone `owner` has a relation with: its roster's contacts, the accounts whose roster
/// holds it (a pre-approval, say, or a request it made), those whose requests wait for it.
async fn related_accounts(state: &ServerState, owner: &BareJid) -> Result<Vec<BareJid>, StorageError> {
    let own = state.store.roster(owner).await?.items.into_iter().filter_map(|item| BareJid::new(&item.jid).ok());
    let requesters = state.store.pending_in(owner).await?.into_iter().map(|(jid, _)| jid);
    let mut related: Vec<BareJid> = own.chain(state.store.roster_holders(owner).await?).chain(requesters).collect();
    related.retain(|jid| jid != owner);
    related.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    related.dedup();
    Ok(related)
}

/// `contact`'s relation with the deleted `owner` ends as if `owner` had removed it from
/// its roster (RFC 6121 §2.5.2: `unsubscribed` for a subscription or a request of the
/// contact's, which is refused, §3.2; `unsubscribe` for one of the owner's), the owner's
/// resources go unavailable for it, and its roster forgets the owner (a push `remove`).
/// Read from the contact's side alone: the owner's is deleted with its roster.
async fn leave(
    state: &ServerState,
    _pair: &AsyncPairGuard<'_>,
    owner: &BareJid,
    contact: &BareJid,
) -> Result<(), StorageError> {
    let s = Side::load(state, contact, owner).await?.current();
    // XEP-0191 §3.3: nothing of the owner reaches a contact that blocked it.
    if !crate::core::privacy::blocks(state, contact, &Jid::from(owner.clone())).await {
        if s.subscription.has_to() {
            presence::send_unavailable_of(state, owner, contact);
        }
        if s.subscription.has_to() || s.pending_out {
            presence::deliver_to_available(state, contact, &subscription_stanza("unsubscribed", owner, contact));
        }
        if s.subscription.has_from() || s.pending_in {
            presence::deliver_to_available(state, contact, &subscription_stanza("unsubscribe", owner, contact));
        }
    }
    if s.pending_in {
        state.store.remove_pending_in(contact, owner).await?;
    }
    if let Some(version) = state.store.remove_roster_item(contact, owner).await? {
        push_removal(state, contact, owner, version);
    }
    Ok(())
}

/// `subscriber`'s request was refused by `refuser` (or nobody is there to accept it).
async fn cancelled_by_contact(
    state: &ServerState,
    subscriber: &BareJid,
    refuser: &BareJid,
) -> Result<(), StorageError> {
    let mut theirs = Side::load(state, subscriber, refuser).await?;
    if theirs.apply(Event::InUnsubscribed, None).await? {
        presence::deliver_to_available(state, subscriber, &subscription_stanza("unsubscribed", refuser, subscriber));
    }
    Ok(())
}

/// §3.1.3: requests not yet answered are delivered again when the account comes online,
/// except from contacts it has blocked since (XEP-0191 §3.3).
pub async fn pending_requests(state: &ServerState, owner: &BareJid) -> Vec<Element> {
    match state.store.pending_in(owner).await {
        Ok(pending) => {
            let mut requests = Vec::with_capacity(pending.len());
            for (from, xml) in pending {
                if crate::core::privacy::blocks(state, owner, &Jid::from(from.clone())).await {
                    continue;
                }
                // A request our parser cannot read back still arrives, without its payloads.
                requests.push(xml.parse().unwrap_or_else(|_| subscription_stanza("subscribe", &from, owner)));
            }
            requests
        }
        Err(e) => {
            tracing::error!(error = %e, "reading pending subscription requests failed");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests;
