//! The session registry: which sessions are bound, which are available with what
//! priority and flags ([`Registry`], the only way to hand a session anything). One
//! server's registry ([`LocalRegistry`]) is a map under a short-held `RwLock` (never held
//! across an await); its sessions are reached through [`SessionHandle`]s, bounded
//! channels into their tasks. (The RFC 6121 §8 rules that pick sessions are in
//! `delivery.rs`.)

use super::signal;
use crate::xml::Element;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::sync::RwLock;
use xmpp_parsers::jid::{BareJid, FullJid};

/// What the router asks of a session outside of stanza delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Another stream bound the same full JID (RFC 6120 §7.7.2.2): end with `conflict`.
    Replaced,
    /// The account was deleted: end with `not-authorized`.
    AccountDeleted,
    /// The account's password changed: end with `reset` (RFC 6120 §4.9.3.17).
    PasswordChanged,
    /// The session's queue filled (its client stopped reading): end with
    /// `resource-constraint`. What it was not given goes to offline storage or another
    /// resource, and its client refetches its lists when it reconnects.
    Overflow,
    /// The server is shutting down: end with `system-shutdown`, now, even while waiting
    /// for a client that does not read (what it holds goes to offline storage first).
    Shutdown,
}

/// What the router hands a session.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// A serialised stanza for this session's client. Serialised once, in the sender's
    /// task, and shared when many recipients get the same bytes (presence fan-out).
    Bytes(Arc<[u8]>),
    /// The payload of an iq push: sent only to sessions that asked for that list, each
    /// wrapping it in an iq with its own id.
    Push(PushKind, Arc<Element>),
    /// A message also kept in in-flight storage until this session's client acknowledges
    /// it (XEP-0198): the session owns the record from here on.
    Kept { inflight: u64, bytes: Arc<[u8]> },
    /// A message (chat or normal) for a session without stream management: the session
    /// keeps it until its client answers a ping sent after it, and stores it offline if
    /// the session ends first (`session/receipts.rs`).
    Message(Arc<[u8]>),
    /// Something was stored for this account while the session may have been about to
    /// finish (or start) its backlog: look again.
    Wake,
}

/// Lists whose changes are pushed to the sessions that fetched them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushKind {
    /// RFC 6121 §2.1.6.
    Roster,
    /// XEP-0191 §3.3.
    Blocklist,
}

impl Delivery {
    /// What it weighs against the session's byte budget.
    fn cost(&self) -> usize {
        match self {
            Delivery::Bytes(bytes) | Delivery::Kept { bytes, .. } | Delivery::Message(bytes) => bytes.len(),
            Delivery::Push(..) => 512,
            Delivery::Wake => 0,
        }
    }
}

/// The router's way into one session's task.
#[derive(Clone, Debug)]
pub struct SessionHandle {
    pub id: u64,
    /// A signal channel, not a tokio one: that allocates 32 slots when it is created, and
    /// every idle session would hold them (bounded here by `capacity` and `byte_limit`).
    stanzas: signal::Sender<Delivery>,
    capacity: usize,
    /// Nearly always unused: a [`signal`] channel, 80 bytes until a word is sent.
    control: signal::Sender<Control>,
    budget: Arc<QueueBudget>,
    byte_limit: usize,
}

/// Shared by a session's handles and its inbox.
#[derive(Debug, Default)]
struct QueueBudget {
    /// Deliveries queued and not yet taken by the session; bounded by `capacity`.
    count: AtomicUsize,
    /// Bytes queued and not yet taken by the session; bounded by `byte_limit`.
    queued: AtomicUsize,
    /// The queue filled once: the session was told to end (told once, so a flood of
    /// refused stanzas cannot grow its control channel).
    overflowed: AtomicBool,
    /// A [`Delivery::Wake`] is queued and not yet taken: another would say nothing new.
    wake_queued: AtomicBool,
}

impl QueueBudget {
    fn taken(&self, delivery: &Delivery) {
        self.count.fetch_sub(1, Ordering::Relaxed);
        self.queued.fetch_sub(delivery.cost(), Ordering::Relaxed);
        if let Delivery::Wake = delivery {
            self.wake_queued.store(false, Ordering::Relaxed);
        }
    }
}

/// The receiving ends, owned by the session's task.
pub struct Mailbox {
    pub stanzas: Inbox,
    pub control: signal::Receiver<Control>,
}

/// Deliveries for one session, giving back their bytes to the budget as they are taken.
pub struct Inbox {
    rx: signal::Receiver<Delivery>,
    budget: Arc<QueueBudget>,
}

impl Inbox {
    /// The next delivery, waiting for one (cancel-safe; never completes while empty).
    pub async fn recv(&mut self) -> Delivery {
        let delivery = self.rx.recv().await;
        self.budget.taken(&delivery);
        delivery
    }

    /// Stops accepting, and returns what is still queued.
    pub fn close_and_drain(&mut self) -> Vec<Delivery> {
        self.rx.close();
        std::iter::from_fn(|| self.try_recv()).collect()
    }

    pub fn try_recv(&mut self) -> Option<Delivery> {
        let delivery = self.rx.try_recv()?;
        self.budget.taken(&delivery);
        Some(delivery)
    }
}

/// Why a stanza could not be handed to a session.
#[derive(Debug, PartialEq, Eq)]
pub enum DeliveryError {
    /// The session's queue is full: its client is not reading.
    Full,
    /// The session ended.
    Gone,
}

impl SessionHandle {
    pub fn deliver(&self, element: &Element) -> Result<(), DeliveryError> {
        self.send(Delivery::Bytes(crate::xml::writer::to_bytes(element).into()))
    }

    /// Queues without waiting: a session whose client does not read fills its queue
    /// (by count or by bytes); further stanzas are refused, never buffered without bound,
    /// and the session is told to end (its client is not keeping up).
    pub fn send(&self, delivery: Delivery) -> Result<(), DeliveryError> {
        let cost = delivery.cost();
        let queued = &self.budget.queued;
        // An empty queue takes any one stanza: a large stanza made larger on the way
        // (carbons, stanza-id, delay) must not end a healthy session.
        let before = queued.fetch_add(cost, Ordering::Relaxed);
        let count = self.budget.count.fetch_add(1, Ordering::Relaxed);
        if (before > 0 && before + cost > self.byte_limit) || count >= self.capacity {
            queued.fetch_sub(cost, Ordering::Relaxed);
            self.budget.count.fetch_sub(1, Ordering::Relaxed);
            return Err(self.overflow());
        }
        self.stanzas.send(delivery).map_err(|_| {
            queued.fetch_sub(cost, Ordering::Relaxed);
            self.budget.count.fetch_sub(1, Ordering::Relaxed);
            DeliveryError::Gone
        })
    }

    fn overflow(&self) -> DeliveryError {
        if !self.budget.overflowed.swap(true, Ordering::Relaxed) {
            tracing::debug!(session = self.id, "a session's queue is full (its client is not reading): ending it");
            self.control(Control::Overflow);
        }
        DeliveryError::Full
    }

    /// Tells the session to look for stored messages; at most one such word is queued at a
    /// time, so many stored messages cannot fill the queue with them.
    pub fn wake(&self) {
        if !self.budget.wake_queued.swap(true, Ordering::Relaxed) && self.send(Delivery::Wake).is_err() {
            self.budget.wake_queued.store(false, Ordering::Relaxed);
        }
    }

    /// Queues a list push; one that cannot be queued ends the session (never a stale list).
    pub fn push(&self, kind: PushKind, payload: Arc<Element>) {
        let _ = self.send(Delivery::Push(kind, payload));
    }

    pub fn control(&self, control: Control) {
        // A closed channel means the session already ended: nothing left to tell it.
        let _ = self.control.send(control);
    }
}

/// One bound session as the registry knows it: plain data any node could hold.
#[derive(Clone, Debug)]
pub struct Resource {
    pub jid: FullJid,
    /// How the session is reached: only through the [`Registry`] (a clustered registry
    /// reaches a session on another node here).
    pub(super) handle: SessionHandle,
    /// `Some(priority)` once the resource sent available presence; None while merely connected.
    pub priority: Option<i8>,
    /// Its last broadcast available presence, for probes (RFC 6121 §4.3.2).
    pub presence: Option<Arc<Element>>,
    /// The session enabled the dialect (docs/dialect.md).
    pub dialect: bool,
    /// The session is receiving its offline backlog: new messages to the bare JID queue
    /// behind it, so nothing overtakes older stored messages.
    pub draining: bool,
    /// The session enabled message carbons (XEP-0280).
    pub carbons: bool,
    /// The session enabled stream management (XEP-0198): messages for it are kept in
    /// storage until its client acknowledges them.
    pub managed: bool,
}

/// Why [`Registry::bind_within`] registered nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindRefused {
    /// The account has as many resources as it may (`limits.max_resources_per_account`).
    TooManyResources,
    /// The caller's `admit` refused, saying how the stream is to end.
    NotAdmitted(Control),
}

impl Resource {
    /// The session's id in the registry (a replacement with the same JID has another).
    pub fn id(&self) -> u64 {
        self.handle.id
    }

    /// How the session sees stanzas (its flags), for the modules' `shown`.
    pub fn viewer(&self) -> super::module::Viewer {
        super::module::Viewer { dialect: self.dialect }
    }
}

/// The session registry: which sessions are bound, available with what priority, with
/// which flags, and the only way to hand one anything. A single server uses
/// [`LocalRegistry`]; a cluster puts its own behind the same trait.
pub trait Registry: Send + Sync {
    /// A handle and mailbox for a new session on this node, queueing at most `capacity`
    /// deliveries and `byte_limit` bytes.
    fn channels(&self, capacity: usize, byte_limit: usize) -> (SessionHandle, Mailbox);

    /// Registers a bound resource unless `admit`, asked under the registry's lock (so a
    /// change it watches for is seen either by it or by whoever then looks at the
    /// registry), refuses, or the account has `max_resources` resources already
    /// (RFC 6120 §7.6.2.1). Binding a full JID in use replaces its session (RFC 6120
    /// §7.7.2.2) and is no extra resource. Returns the resource it replaced, if any.
    fn bind_within(
        &self,
        jid: FullJid,
        handle: SessionHandle,
        max_resources: usize,
        admit: &dyn Fn() -> Result<(), Control>,
    ) -> Result<Option<Resource>, BindRefused>;

    /// Registers a bound resource without any limit (tests, benchmarks, fuzzing; streams
    /// use [`bind_within`](Self::bind_within)); returns the resource it replaced, if any.
    fn bind(&self, jid: FullJid, handle: SessionHandle) -> Option<Resource> {
        self.bind_within(jid, handle, usize::MAX, &|| Ok(())).unwrap_or_default()
    }

    /// Removes a resource, but only if it still belongs to session `id`.
    fn unbind(&self, jid: &FullJid, id: u64);

    /// Records available presence (`Some((priority, presence))`) or unavailable (`None`).
    fn set_presence(&self, jid: &FullJid, id: u64, presence: Option<(i8, Arc<Element>)>);

    /// Changes a session's flags.
    fn update(&self, jid: &FullJid, id: u64, change: &dyn Fn(&mut Resource));

    /// Marks a session as speaking the dialect.
    fn set_dialect(&self, jid: &FullJid, id: u64) {
        self.update(jid, id, &|r| r.dialect = true);
    }

    /// Marks whether a session wants carbon copies.
    fn set_carbons(&self, jid: &FullJid, id: u64, enabled: bool) {
        self.update(jid, id, &|r| r.carbons = enabled);
    }

    /// Marks a session as stream-managed (XEP-0198).
    fn set_managed(&self, jid: &FullJid, id: u64) {
        self.update(jid, id, &|r| r.managed = true);
    }

    /// Marks whether a session is receiving its offline backlog.
    fn set_draining(&self, jid: &FullJid, id: u64, draining: bool) {
        self.update(jid, id, &|r| r.draining = draining);
    }

    /// Tells every bound session (available, connected or waiting for a resumption) that
    /// the server is shutting down.
    fn shutdown_all(&self);

    /// The available resources that `keep` selects (chosen under the lock: only those are
    /// copied out).
    fn available_where(&self, bare: &BareJid, keep: &dyn Fn(&Resource) -> bool) -> Vec<Resource>;

    /// The account's available resources.
    fn available(&self, bare: &BareJid) -> Vec<Resource> {
        self.available_where(bare, &|_| true)
    }

    /// A snapshot of an account's bound resources.
    fn resources(&self, bare: &BareJid) -> Vec<Resource>;

    fn resource(&self, jid: &FullJid) -> Option<Resource>;

    /// Whether session `id` still holds `jid` (it may have been replaced).
    fn owns(&self, jid: &FullJid, id: u64) -> bool {
        self.resource(jid).is_some_and(|r| r.id() == id)
    }

    fn is_online(&self, bare: &BareJid) -> bool;

    /// Hands a session a delivery; refused when its queue is full (it is then told to
    /// end) or it ended.
    fn send(&self, to: &Resource, delivery: Delivery) -> Result<(), DeliveryError> {
        to.handle.send(delivery)
    }

    /// Serialises `element` and hands it to the session.
    fn deliver(&self, to: &Resource, element: &Element) -> Result<(), DeliveryError> {
        to.handle.deliver(element)
    }

    /// Queues a list push; one that cannot be queued ends the session (never a stale list).
    fn push(&self, to: &Resource, kind: PushKind, payload: Arc<Element>) {
        to.handle.push(kind, payload);
    }

    /// Tells the session to look for stored messages.
    fn wake(&self, to: &Resource) {
        to.handle.wake();
    }

    /// A word outside stanza delivery (ending it, mostly).
    fn control(&self, to: &Resource, control: Control) {
        to.handle.control(control);
    }
}

/// The registry of one server: a map under a short-held `RwLock`, never held across an
/// await.
#[derive(Default)]
pub struct LocalRegistry {
    accounts: RwLock<HashMap<BareJid, Vec<Resource>>>,
    next_id: AtomicU64,
}

impl Registry for LocalRegistry {
    fn channels(&self, capacity: usize, byte_limit: usize) -> (SessionHandle, Mailbox) {
        let (stanza_tx, stanza_rx) = signal::channel();
        let (control_tx, control_rx) = signal::channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let budget = Arc::new(QueueBudget::default());
        let handle =
            SessionHandle { id, stanzas: stanza_tx, capacity, control: control_tx, budget: budget.clone(), byte_limit };
        (handle, Mailbox { stanzas: Inbox { rx: stanza_rx, budget }, control: control_rx })
    }

    fn bind_within(
        &self,
        jid: FullJid,
        handle: SessionHandle,
        max_resources: usize,
        admit: &dyn Fn() -> Result<(), Control>,
    ) -> Result<Option<Resource>, BindRefused> {
        let mut accounts = self.write();
        admit().map_err(BindRefused::NotAdmitted)?;
        let bare = jid.to_bare();
        let (replaced, in_use) = match accounts.get(&bare) {
            Some(resources) => (resources.iter().position(|r| r.jid == jid), resources.len()),
            None => (None, 0),
        };
        if replaced.is_none() && in_use >= max_resources {
            return Err(BindRefused::TooManyResources);
        }
        let resources = accounts.entry(bare).or_default();
        let old = replaced.map(|i| resources.remove(i));
        resources.push(Resource {
            jid,
            handle,
            priority: None,
            presence: None,
            dialect: false,
            draining: false,
            carbons: false,
            managed: false,
        });
        Ok(old)
    }

    fn unbind(&self, jid: &FullJid, id: u64) {
        let mut accounts = self.write();
        let bare = jid.to_bare();
        if let Some(resources) = accounts.get_mut(&bare) {
            resources.retain(|r| !(r.jid == *jid && r.id() == id));
            if resources.is_empty() {
                accounts.remove(&bare);
            }
        }
    }

    fn set_presence(&self, jid: &FullJid, id: u64, presence: Option<(i8, Arc<Element>)>) {
        let mut accounts = self.write();
        if let Some(resources) = accounts.get_mut(&jid.to_bare()) {
            for r in resources.iter_mut().filter(|r| r.jid == *jid && r.id() == id) {
                r.priority = presence.as_ref().map(|(p, _)| *p);
                r.presence = presence.as_ref().map(|(_, el)| el.clone());
            }
        }
    }

    fn update(&self, jid: &FullJid, id: u64, change: &dyn Fn(&mut Resource)) {
        let mut accounts = self.write();
        if let Some(resources) = accounts.get_mut(&jid.to_bare()) {
            resources.iter_mut().filter(|r| r.jid == *jid && r.id() == id).for_each(change);
        }
    }

    fn shutdown_all(&self) {
        for resource in self.read().values().flatten() {
            resource.handle.control(Control::Shutdown);
        }
    }

    fn available_where(&self, bare: &BareJid, keep: &dyn Fn(&Resource) -> bool) -> Vec<Resource> {
        let accounts = self.read();
        let chosen = |rs: &Vec<Resource>| rs.iter().filter(|r| r.priority.is_some() && keep(r)).cloned().collect();
        accounts.get(bare).map(chosen).unwrap_or_default()
    }

    fn resources(&self, bare: &BareJid) -> Vec<Resource> {
        self.read().get(bare).cloned().unwrap_or_default()
    }

    fn resource(&self, jid: &FullJid) -> Option<Resource> {
        self.read().get(&jid.to_bare())?.iter().find(|r| r.jid == *jid).cloned()
    }

    fn is_online(&self, bare: &BareJid) -> bool {
        self.read().contains_key(bare)
    }
}

impl LocalRegistry {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<BareJid, Vec<Resource>>> {
        self.accounts.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<BareJid, Vec<Resource>>> {
        self.accounts.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::ElementExt;

    fn full(s: &str) -> FullJid {
        FullJid::new(s).expect("full JID")
    }

    #[test]
    fn rebinding_a_full_jid_returns_the_old_session() {
        let router = LocalRegistry::default();
        let (first, _m1) = router.channels(4, 1 << 20);
        let (second, _m2) = router.channels(4, 1 << 20);
        assert!(router.bind(full("a@x/r"), first.clone()).is_none());
        let old = router.bind(full("a@x/r"), second.clone()).expect("replaced");
        assert_eq!(old.handle.id, first.id);
        router.unbind(&full("a@x/r"), first.id);
        assert_eq!(router.resource(&full("a@x/r")).map(|r| r.id()), Some(second.id));
        router.unbind(&full("a@x/r"), second.id);
        assert!(!router.is_online(&BareJid::new("a@x").expect("bare")));
    }

    #[test]
    fn an_account_binds_at_most_its_limit_of_resources_and_rebinding_is_no_extra_one() {
        let router = LocalRegistry::default();
        let bind = |jid: &str| {
            let (handle, _mailbox) = router.channels(4, 1 << 20);
            router.bind_within(full(jid), handle.clone(), 2, &|| Ok(())).map(|old| (handle.id, old.is_some()))
        };
        let (first, _) = bind("a@x/one").expect("first");
        assert!(bind("a@x/two").is_ok());
        assert_eq!(bind("a@x/three"), Err(BindRefused::TooManyResources));
        assert!(bind("b@x/three").is_ok(), "another account has its own limit");
        let (_, replaced) = bind("a@x/one").expect("a full JID in use is replaced, not added");
        assert!(replaced);
        assert_eq!(router.resources(&BareJid::new("a@x").expect("bare")).len(), 2);
        router.unbind(&full("a@x/one"), first);
        assert_eq!(bind("a@x/three"), Err(BindRefused::TooManyResources), "not the replaced session");
        let one = router.resource(&full("a@x/one")).expect("the new one").handle.id;
        router.unbind(&full("a@x/one"), one);
        assert!(bind("a@x/three").is_ok(), "room again once one left");
    }

    #[test]
    fn a_refusing_admit_registers_nothing() {
        let router = LocalRegistry::default();
        let (handle, _mailbox) = router.channels(4, 1 << 20);
        let refused = router.bind_within(full("a@x/r"), handle, 10, &|| Err(Control::PasswordChanged));
        assert_eq!(refused.map(|_| ()), Err(BindRefused::NotAdmitted(Control::PasswordChanged)));
        assert!(!router.is_online(&BareJid::new("a@x").expect("bare")));
    }

    #[test]
    fn full_queue_and_ended_session_are_reported() {
        let router = LocalRegistry::default();
        let (handle, mut mailbox) = router.channels(1, 1 << 20);
        let stanza = crate::xml::el("message", crate::xml::NS_CLIENT);
        assert_eq!(handle.deliver(&stanza), Ok(()));
        assert_eq!(handle.deliver(&stanza), Err(DeliveryError::Full));
        assert_eq!(mailbox.control.try_recv(), Some(Control::Overflow), "a full queue ends the session");
        assert!(mailbox.stanzas.try_recv().is_some());
        drop(mailbox);
        assert_eq!(handle.deliver(&stanza), Err(DeliveryError::Gone));
    }

    #[test]
    fn a_push_that_cannot_be_queued_ends_the_session() {
        let router = LocalRegistry::default();
        let (handle, mut mailbox) = router.channels(16, 600);
        let query = Arc::new(crate::xml::el("query", "jabber:iq:roster"));
        handle.push(PushKind::Roster, query.clone());
        assert!(mailbox.control.try_recv().is_none(), "queued: nothing to say");
        handle.push(PushKind::Roster, query.clone());
        handle.push(PushKind::Roster, query);
        assert_eq!(mailbox.control.try_recv(), Some(Control::Overflow));
        assert!(mailbox.control.try_recv().is_none(), "told once");
    }

    #[test]
    fn wakes_are_queued_once_until_taken() {
        let router = LocalRegistry::default();
        let (handle, mut mailbox) = router.channels(2, 1 << 20);
        for _ in 0..10 {
            handle.wake();
        }
        assert!(matches!(mailbox.stanzas.try_recv(), Some(Delivery::Wake)));
        assert!(mailbox.stanzas.try_recv().is_none(), "one wake for ten");
        handle.wake();
        assert!(matches!(mailbox.stanzas.try_recv(), Some(Delivery::Wake)), "taken: the next one is queued");
        assert!(mailbox.control.try_recv().is_none(), "no overflow");
    }

    #[test]
    fn the_byte_budget_bounds_a_queue_of_large_stanzas() {
        let router = LocalRegistry::default();
        let (handle, mut mailbox) = router.channels(100, 1000);
        let big = crate::xml::el("message", crate::xml::NS_CLIENT).with_text("x".repeat(400));
        assert_eq!(handle.deliver(&big), Ok(()));
        assert_eq!(handle.deliver(&big), Ok(()));
        assert_eq!(handle.deliver(&big), Err(DeliveryError::Full), "over 1000 bytes queued");
        assert!(mailbox.stanzas.try_recv().is_some());
        assert_eq!(handle.deliver(&big), Ok(()), "taking one frees its bytes");
    }

    #[test]
    fn an_empty_queue_takes_one_stanza_larger_than_its_byte_budget() {
        let router = LocalRegistry::default();
        let (handle, mut mailbox) = router.channels(100, 1000);
        let huge = crate::xml::el("message", crate::xml::NS_CLIENT).with_text("x".repeat(1500));
        assert_eq!(handle.deliver(&huge), Ok(()));
        assert_eq!(handle.deliver(&huge), Err(DeliveryError::Full), "not a second one");
        assert_eq!(mailbox.control.try_recv(), Some(Control::Overflow));
    }
}
