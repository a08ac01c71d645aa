//! The module API: how a feature (one XEP, one file or folder under `modules/`) plugs into
//! the server. A module declares, once at start, through a [`Registrar`]:
//! - the iq it answers, by type, target and namespace ([`Registrar::iq`]); a handler answers
//!   at once or with a future the session awaits before its next stanza (RFC 6120 §10.1:
//!   a stream's stanzas are handled in order);
//! - its disco#info features and stream features;
//! - the service domains it serves (routing hands it their stanzas);
//! - the top-level elements of its clients it takes ([`Registrar::element`]), and those it
//!   turns into stanzas ([`Registrar::stanzas`]);
//! - its per-session flags ([`Registrar::session_flag`]);
//! - the XEP-0050 commands it offers each account about itself ([`Registrar::command`]);
//!
//! and implements the [`Module`] hooks it needs: a stanza from a client (after `from` is
//! stamped), a client's message before routing, refused or taken, a message routed to an
//! account, delivered, or sent, what one session is shown ([`Viewer`]), a delivery about
//! to be written to one session, and what happens to a session. Per-session state lives in
//! [`Slots`], allocated on first use.
//!
//! The core calls modules only through [`Modules`]; it never names one.

use super::delivery::Routed;
use super::state::ServerState;
use super::Delivery;
use crate::config::Config;
use crate::storage::offline::Batch;
pub use crate::storage::reply::Soon;
use crate::xml::{el, Element, ElementExt, NS_CLIENT};
use crate::xmpp::error::{Condition, StanzaError};
use crate::xmpp::stanza::{IqType, Kind, Stanza};
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use xmpp_parsers::jid::{BareJid, FullJid, Jid};

/// Whom an iq is addressed to, once the server takes it (RFC 6120 §10.3.3, §10.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A hosted domain.
    Server(String),
    /// A local account's bare JID (the sender's own, or someone else's).
    Account(BareJid),
}

/// Which targets a handler answers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Targets {
    pub server: bool,
    /// Any local account, the sender's own or another's.
    pub account: bool,
}

impl Targets {
    pub const SERVER: Targets = Targets { server: true, account: false };
    pub const ACCOUNT: Targets = Targets { server: false, account: true };
    pub const SERVER_AND_ACCOUNT: Targets = Targets { server: true, account: true };

    fn takes(&self, target: &Target) -> bool {
        match target {
            Target::Server(_) => self.server,
            Target::Account(_) => self.account,
        }
    }
}

/// The iq types a handler answers; another type on its namespace is a `bad-request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Types {
    Get,
    Set,
    GetAndSet,
}

impl Types {
    fn takes(&self, kind: Kind) -> bool {
        matches!(
            (self, kind),
            (Types::Get | Types::GetAndSet, Kind::Iq(IqType::Get))
                | (Types::Set | Types::GetAndSet, Kind::Iq(IqType::Set))
        )
    }
}

/// The request being answered.
pub struct Request<'a> {
    pub state: &'a ServerState,
    pub sender: &'a FullJid,
    /// The asking session's id in the registry.
    pub session: u64,
    pub target: &'a Target,
    pub stanza: &'a Stanza,
    /// The single child of the get/set.
    pub payload: &'a Element,
    /// How the asking session sees stanzas (its flags).
    pub viewer: Viewer,
    /// What an answer of several stanzas may hold now (a stream-managed client's room).
    pub room: Batch,
    /// The asking session's module state.
    pub slots: &'a mut Slots,
}

impl Request<'_> {
    pub fn is_get(&self) -> bool {
        self.stanza.kind == Kind::Iq(IqType::Get)
    }

    /// An empty `result`.
    pub fn result(&self) -> Element {
        result_to(self.sender, self.stanza)
    }

    pub fn result_with(&self, payload: Element) -> Element {
        self.result().with_child(payload)
    }

    /// The payload as the xmpp-parsers type the handler acts on; a payload that does not
    /// fit it is the client's fault (`bad-request`).
    pub fn parse<T>(&self) -> Result<T, Condition>
    where
        T: TryFrom<Element>,
    {
        T::try_from(self.payload.clone()).map_err(|_| Condition::BadRequest)
    }

    /// The account this request manages, which must be the sender's own
    /// (RFC 6121 §2.3.3, XEP-0191 §3: no one else's roster or block list).
    pub fn own_account(&self) -> Result<&BareJid, Condition> {
        match self.target {
            Target::Account(owner) if *owner == self.sender.to_bare() => Ok(owner),
            Target::Account(_) => Err(Condition::Forbidden),
            Target::Server(_) => Err(Condition::ServiceUnavailable),
        }
    }

    pub fn error(&self, condition: Condition) -> Element {
        refuse(self.stanza, condition)
    }

    /// Answers later: `work` gets this request again, owned by the answer's future (its
    /// slots start empty there: a handler that keeps session state answers now). This is
    /// how a handler awaits storage (RFC 6120 §10.1 holds: the session writes the answer
    /// before it handles its client's next stanza).
    pub fn later(&self, work: for<'r> fn(&'r Request<'r>) -> Soon<'r, Vec<Element>>) -> Answer {
        self.later_with(work, |request, work| work(request))
    }

    /// [`later`](Self::later), handing `work` a `value` too: what it needs of the session
    /// (such as a shared part of a module's slot).
    pub fn later_with<T: Send + 'static>(
        &self,
        value: T,
        work: for<'r> fn(&'r Request<'r>, T) -> Soon<'r, Vec<Element>>,
    ) -> Answer {
        let Some(state) = self.state.shared() else { return self.error(Condition::InternalServerError).into() };
        let (sender, target) = (self.sender.clone(), self.target.clone());
        let (stanza, payload, session, viewer, room) =
            (self.stanza.clone(), self.payload.clone(), self.session, self.viewer, self.room);
        Answer::Later(Pending::new(self.stanza, async move {
            let mut slots = Slots::default();
            let request = Request {
                state: &state,
                sender: &sender,
                session,
                target: &target,
                stanza: &stanza,
                payload: &payload,
                viewer,
                room,
                slots: &mut slots,
            };
            work(&request, value).await
        }))
    }

    /// The error with a text saying why (RFC 6120 §8.3.2).
    pub fn error_with(&self, condition: Condition, text: &str) -> Element {
        tracing::debug!(condition = condition.name(), text, "iq refused");
        crate::xmpp::stanza::error_reply(&self.stanza.element, &StanzaError::with_text(condition, text))
    }
}

/// A later answer of one reply: `request.later(|r| one_reply(handle(r)))` for an
/// `async fn handle(&Request) -> Element`.
pub fn one_reply<'r>(reply: impl Future<Output = Element> + Send + 'r) -> Soon<'r, Vec<Element>> {
    Soon::later(async move { vec![reply.await] })
}

/// The `result` to an iq from `sender` (RFC 6120 §8.2.3: same id, from whom it was to).
pub fn result_to(sender: &FullJid, stanza: &Stanza) -> Element {
    crate::xmpp::stanza::result_reply(&stanza.element, Some(sender.as_str()))
}

/// The error answering an iq (RFC 6120 §8.3), logged for the operator.
pub fn refuse(stanza: &Stanza, condition: Condition) -> Element {
    tracing::debug!(
        payload = %stanza.element.children().next().map(|c| c.ns()).unwrap_or_default(),
        condition = condition.name(),
        "iq refused"
    );
    crate::xmpp::stanza::error_reply(&stanza.element, &StanzaError::new(condition))
}

/// A storage fault, logged, as the stanza error a client sees.
pub fn storage_fault(e: crate::storage::StorageError) -> Condition {
    tracing::error!(error = %e, "storage failed while answering an iq");
    Condition::InternalServerError
}

/// Replies that come later: the session writes them before it handles its next stanza,
/// waiting at most [`Pending::LIMIT`] for them.
pub struct Pending {
    replies: Pin<Box<dyn Future<Output = Vec<Element>> + Send>>,
    /// The request, answered for if they do not come in time.
    request: Stanza,
}

impl Pending {
    /// How long a session waits for a module's answer before it answers for it.
    pub const LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

    /// `replies` to `request`; if they do not come within [`LIMIT`](Self::LIMIT), the
    /// client gets `resource-constraint` (RFC 6120 §8.3.3.18: the server is too busy now,
    /// and it may try again) and the work finishes on a task of its own.
    pub fn new(request: &Stanza, replies: impl Future<Output = Vec<Element>> + Send + 'static) -> Pending {
        Pending { replies: Box::pin(replies), request: request.clone() }
    }

    /// Most late answers still at work at once, server-wide: beyond, a late one is dropped
    /// where it stands (a store that hangs does not pile up tasks without end).
    pub const OVERDUE: usize = 1024;

    /// The replies, or the answer for them once the limit passed. The work goes on then,
    /// on a task of its own, its replies unsent, so that a change is not left half made
    /// (up to [`OVERDUE`](Self::OVERDUE) such tasks).
    pub async fn replies(mut self) -> Vec<Element> {
        static OVERDUE: AtomicUsize = AtomicUsize::new(0);
        match tokio::time::timeout(Self::LIMIT, &mut self.replies).await {
            Ok(replies) => replies,
            Err(_) => {
                tracing::warn!(limit = ?Self::LIMIT, "a module's answer took too long: refused for it");
                if OVERDUE.fetch_add(1, Ordering::Relaxed) < Self::OVERDUE {
                    let work = self.replies;
                    tokio::spawn(async move {
                        work.await;
                        OVERDUE.fetch_sub(1, Ordering::Relaxed);
                    });
                } else {
                    OVERDUE.fetch_sub(1, Ordering::Relaxed);
                    tracing::error!(max = Self::OVERDUE, "too many late answers at work: this one is dropped");
                }
                vec![refuse(&self.request, Condition::ResourceConstraint)]
            }
        }
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pending")
    }
}

/// What a handler answers.
pub enum Answer {
    Now(Vec<Element>),
    Later(Pending),
}

impl From<Element> for Answer {
    fn from(reply: Element) -> Answer {
        Answer::Now(vec![reply])
    }
}

pub type IqHandler = Arc<dyn Fn(&mut Request) -> Answer + Send + Sync>;

struct IqRoute {
    /// The payload's name, or any name in the namespace.
    name: Option<&'static str>,
    ns: &'static str,
    types: Types,
    targets: Targets,
    handler: IqHandler,
}

/// Where a disco#info feature is listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The server's domain.
    Server,
    /// Every account's bare JID.
    Account,
    /// An account's bare JID, asked by its owner only.
    OwnAccount,
}

/// The hooks a module takes (it says so at registration: [`Registrar::hook`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Inbound,
    MessageToAccount,
    Shown,
    MessageDelivered,
    MessageSent,
    MessageTaken,
    MessageFromClient,
    MessageRefused,
    MessageUndelivered,
    Delivering,
    SessionEvents,
    OfflineBacklog,
}

impl Hook {
    const COUNT: usize = 12;
}

/// What a module makes of a client's message before it is routed
/// ([`Module::message_from_client`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FromClient {
    /// Routed (unless a later module says otherwise).
    Pass,
    /// A retransmission of one taken before: not routed again, and the client is told it
    /// was taken ([`Module::message_taken`]).
    Repeat,
}

/// How one session sees stanzas: plain flags of its registry entry, which any node could
/// hold ([`Module::shown`] turns a stanza into what that session's client understands).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Viewer {
    /// The session enabled the dialect (docs/dialect.md).
    pub dialect: bool,
}

impl Viewer {
    /// Whether this session is told when its contacts were last seen (on their unavailable
    /// presence: the dialect's `last`); the core reads last-seen times only for such.
    pub fn sees_last_seen(&self) -> bool {
        self.dialect
    }
}

/// A bound client's session, as a module answering one of its elements sees it
/// ([`Module::element`]).
pub struct Client<'a> {
    pub state: &'a ServerState,
    pub jid: &'a FullJid,
    /// The session's id in the registry.
    pub session: u64,
    /// Its flags, which the module may change (and then tells the registry).
    pub viewer: &'a mut Viewer,
    pub slots: &'a mut Slots,
}

/// What a module writes to its client in answer to an element.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Writes {
    /// Stream-level elements (never counted by stream management), first.
    pub stream: Vec<Vec<u8>>,
    /// Stanzas, counted by stream management.
    pub stanzas: Vec<Vec<u8>>,
}

impl Writes {
    pub fn stanzas(stanzas: Vec<Vec<u8>>) -> Writes {
        Writes { stream: Vec::new(), stanzas }
    }
}

/// What happens to a bound session in its life ([`Module::session_event`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEvent {
    /// Its connection is gone; it waits for a resumption (XEP-0198 §5).
    Hibernated,
    /// A new connection resumed it (XEP-0198 §5).
    Resumed,
    /// It ends, for whatever reason.
    Ended,
}

/// What a module makes of a delivery to one session ([`Module::delivering`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Delivering {
    /// Written as it is (or as the next module says).
    Pass,
    /// The module keeps it; these, kept before and due now, are written instead.
    Held(Vec<Vec<u8>>),
    /// Not for this session's client (a push it never asked for).
    Dropped,
}

/// An XEP-0050 command a module offers every local account, about that account: one
/// stage, a form and then its submission (`modules/commands.rs` speaks the protocol).
pub trait Command: Send + Sync + 'static {
    /// The command's node, and its name in the command list.
    fn node(&self) -> &'static str;
    fn name(&self) -> &'static str;
    /// The form (`jabber:x:data`, type `form`), filled in with the account's current
    /// choice.
    fn form<'a>(&'a self, state: &'a ServerState, account: &'a BareJid) -> Soon<'a, Result<Element, Condition>>;
    /// Why a submitted form cannot be taken, if it cannot: the session stays open for a
    /// corrected one.
    fn check(&self, state: &ServerState, form: &Element) -> Result<(), String>;
    /// Carries out a submitted form that passed [`Command::check`]: what the account is
    /// told was done, or why it failed (XEP-0050 §4.5: a note of type `error`).
    fn submit<'a>(
        &'a self,
        state: &'a ServerState,
        account: &'a BareJid,
        form: &'a Element,
    ) -> Soon<'a, Result<String, String>>;
}

/// A feature's hooks; every one has a default that does nothing, and is called only for
/// the modules that registered it ([`Registrar::hook`]).
pub trait Module: Send + Sync + 'static {
    /// The specification it implements, for logs ("XEP-0199").
    fn name(&self) -> &'static str;

    /// Declares its iq handlers, features and service domains.
    fn register(self: Arc<Self>, api: &mut Registrar);

    /// A stanza from a client of `sender`'s, after `from` is stamped: change it, or refuse it
    /// (then the sender gets the error, and no other module or the router sees it).
    ///
    /// The hooks that may read or write storage answer a [`Soon`]: at once when they do
    /// not wait ([`Soon::ready`]), or a future ([`Soon::later`]) when they do.
    fn inbound<'a>(
        &'a self,
        _state: &'a ServerState,
        _sender: &'a BareJid,
        _stanza: &'a mut Stanza,
        _slots: &'a mut Slots,
    ) -> Soon<'a, Result<(), StanzaError>> {
        Soon::ready(Ok(()))
    }

    /// A message about to be handed to `owner`'s sessions or storage: a changed copy, and
    /// whether the module stored something (an archive stamps its id here, and keeps it).
    fn message_to_account<'a>(
        &'a self,
        _state: &'a ServerState,
        _stanza: &'a Stanza,
        _owner: &'a BareJid,
    ) -> Soon<'a, Handled> {
        Soon::ready(Handled::default())
    }

    /// A message to `owner`, as the modules changed it, was refused after all (the sender
    /// gets an error, at once or as a bounce): undo what was kept for it.
    fn message_undelivered<'a>(
        &'a self,
        _state: &'a ServerState,
        _owner: &'a BareJid,
        _stanza: &'a Stanza,
    ) -> Soon<'a, ()> {
        Soon::ready(())
    }

    /// A stanza about to be written to one session, as that session's client sees it
    /// (`viewer`): a changed copy, or None. `last_seen` is when the sender was last seen
    /// (Unix seconds), given on unavailable presence of an account with no resource left,
    /// for a viewer that [sees last-seen times](Viewer::sees_last_seen).
    fn shown(&self, _element: &Element, _viewer: Viewer, _last_seen: Option<u64>) -> Option<Element> {
        None
    }

    /// Whether [`shown`](Self::shown) may change a stored stanza, given as its bytes: a
    /// stored stanza no module would change is written without being parsed.
    fn shows_stored_differently(&self, _bytes: &[u8], _viewer: Viewer) -> bool {
        true
    }

    /// A stanza as [`shown`](Self::shown) to some session, back in the form it was routed
    /// in (that session ended before taking it: it is routed again); None if it is that.
    fn routed_form(&self, _element: &Element) -> Option<Element> {
        None
    }

    /// A top-level element from a bound client in a namespace this module took as
    /// stanzas ([`Registrar::stanzas`]), to turn into the stanza it stands for, in place.
    /// The error is answered to the client; an element left as it is, not a stanza, ends
    /// the stream (`unsupported-stanza-type`).
    fn stanza_from_client(&self, _element: &mut Element, _viewer: Viewer, _session: u64) -> Result<(), StanzaError> {
        Ok(())
    }

    /// Whether the session's client takes its stored messages itself (XEP-0013), so the
    /// session sends it no offline backlog of its own accord.
    fn retrieves_offline_itself(&self, _slots: &Slots) -> bool {
        false
    }

    /// A client's message (from `sender`, after the inbound hooks), about to be routed; the
    /// clock is the session's (tokio's: tests pause it).
    fn message_from_client(&self, _sender: &BareJid, _stanza: &Stanza, _now: tokio::time::Instant) -> FromClient {
        FromClient::Pass
    }

    /// A client's message was refused: at once (the sender got an error), or `bounced`
    /// later, in the form it had reached by then (its recipient's session ended and it
    /// could not be stored). The sender may send it again.
    fn message_refused(&self, _sender: &BareJid, _stanza: &Stanza, _bounced: bool) {}

    /// A client's message was taken (delivered or durably stored), or was a retransmission
    /// of one taken before: what to tell that client (stanzas).
    fn message_taken(&self, _stanza: &Stanza, _viewer: Viewer) -> Vec<Vec<u8>> {
        Vec::new()
    }

    /// A message was handed to these sessions of `owner`.
    fn message_delivered(&self, _state: &ServerState, _owner: &BareJid, _stanza: &Stanza, _to: &[FullJid]) {}

    /// A stanza to the service domain this module registered (or a JID there): what became
    /// of it, as routing says for accounts.
    fn to_service<'a>(&'a self, _state: &'a ServerState, _stanza: &'a Stanza) -> Soon<'a, Result<Routed, StanzaError>> {
        Soon::ready(Err(StanzaError::new(Condition::ServiceUnavailable)))
    }

    /// A delivery about to be written to one of the sessions (its module state in
    /// `slots`): the module may keep it for later ([`Delivering::Held`]).
    fn delivering(&self, _delivery: &Delivery, _slots: &mut Slots) -> Delivering {
        Delivering::Pass
    }

    /// Something happened to one of the sessions (its module state in `slots`): what to
    /// write to its client now (nothing after `Ended`).
    fn session_event(&self, _event: SessionEvent, _slots: &mut Slots) -> Vec<Vec<u8>> {
        Vec::new()
    }

    /// A top-level element from a bound client, not a stanza, that this module took
    /// ([`Registrar::element`]; XEP-0352's `<active/>`): what to write to the client now,
    /// or why its stream ends (`unsupported-stanza-type`).
    fn element<'a>(&'a self, element: &'a Element, _client: Client<'a>) -> Soon<'a, Result<Writes, String>> {
        Soon::ready(Err(format!("<{}/> is not understood", element.name())))
    }

    /// A client's message to `to` was taken (delivered or durably stored): a changed copy
    /// for the modules after this one (the sender's archive id for its carbon copies), and
    /// whether the module stored something.
    fn message_sent<'a>(
        &'a self,
        _state: &'a ServerState,
        _sender: &'a FullJid,
        _stanza: &'a Stanza,
        _to: &'a Jid,
    ) -> Soon<'a, Handled> {
        Soon::ready(Handled::default())
    }
}

/// What modules made of a message ([`Module::message_to_account`], [`Module::message_sent`]).
#[derive(Debug, Default)]
pub struct Handled {
    /// A changed copy, for what comes next; None: as it was.
    pub changed: Option<Stanza>,
    /// Something was written to storage: the sender is told the message was taken only
    /// once that is durable (XEP-0198 `h`, the dialect's `<ack/>`).
    pub stored: bool,
}

impl Handled {
    /// `next`, made by the following module, on top of this.
    fn then(mut self, next: Handled) -> Handled {
        if next.changed.is_some() {
            self.changed = next.changed;
        }
        self.stored |= next.stored;
        self
    }
}

/// Every registered module, with what they declared: built once at start.
#[derive(Default)]
pub struct Modules {
    /// The modules that take each hook, in registration order: a hook nobody takes costs
    /// nothing on the paths that call it.
    hooks: [Vec<Arc<dyn Module>>; Hook::COUNT],
    iqs: Vec<IqRoute>,
    features: Vec<(Scope, &'static str)>,
    stream_features: String,
    services: HashMap<String, Arc<dyn Module>>,
    /// XEP-0050 commands, in registration order.
    commands: Vec<Arc<dyn Command>>,
    nodes: HashMap<&'static str, NodeHandler>,
    /// Who takes the top-level elements of a namespace (by name, or any name: None).
    elements: HashMap<&'static str, Vec<ElementTaker>>,
    /// Who turns the other top-level elements of a namespace into stanzas.
    stanza_namespaces: HashMap<&'static str, Arc<dyn Module>>,
    /// Session flags handed out ([`Registrar::session_flag`]).
    flags_claimed: u32,
}

/// A module that takes top-level elements of one namespace: those of one name, or any.
type ElementTaker = (Option<&'static str>, Arc<dyn Module>);

/// Answers disco#info or disco#items about one node (XEP-0030 §3.2, §4.2).
pub type NodeHandler = for<'r> fn(&'r Request<'r>, NodeQuery) -> Soon<'r, Element>;

/// Which disco query asks about a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeQuery {
    Info,
    Items,
}

/// What a module declares through.
pub struct Registrar<'a> {
    pub config: &'a Config,
    modules: &'a mut Modules,
    /// The module registering.
    current: Arc<dyn Module>,
}

impl Registrar<'_> {
    /// Answers iq of `types` whose payload is `name` (None: any) in `ns`, sent to `targets`.
    pub fn iq(
        &mut self,
        name: Option<&'static str>,
        ns: &'static str,
        types: Types,
        targets: Targets,
        handler: impl Fn(&mut Request) -> Answer + Send + Sync + 'static,
    ) {
        self.modules.iqs.push(IqRoute { name, ns, types, targets, handler: Arc::new(handler) });
    }

    /// Lists `var` in disco#info where `scope` says (XEP-0030 §3.1).
    pub fn feature(&mut self, scope: Scope, var: &'static str) {
        self.modules.features.push((scope, var));
    }

    /// A stream feature offered after authentication (RFC 6120 §4.3.2), as XML text.
    pub fn stream_feature(&mut self, xml: &str) {
        self.modules.stream_features.push_str(xml);
    }

    /// Hands this module the top-level elements named `name` (None: any name) of
    /// namespace `ns` its clients send ([`Module::element`]).
    pub fn element(&mut self, name: Option<&'static str>, ns: &'static str) {
        self.modules.elements.entry(ns).or_default().push((name, self.current.clone()));
    }

    /// The other top-level elements of namespace `ns` stand for stanzas: this module turns
    /// each into the stanza ([`Module::stanza_from_client`]), and stream management counts them
    /// (XEP-0198 §4).
    pub fn stanzas(&mut self, ns: &'static str) {
        self.modules.stanza_namespaces.insert(ns, self.current.clone());
    }

    /// A per-session flag of this module's own, in [`Slots`]: a bit, for state that is
    /// one yes or no and that most sessions would set (a slot would cost them a map).
    pub fn session_flag(&mut self) -> Flag {
        let bit = self.modules.flags_claimed;
        assert!(bit < u32::BITS, "more session flags than Slots holds");
        self.modules.flags_claimed += 1;
        Flag(1 << bit)
    }

    /// Calls this module's implementation of `hook`.
    pub fn hook(&mut self, hook: Hook) {
        self.modules.hooks[hook as usize].push(self.current.clone());
    }

    /// Answers disco queries about `node` (the module's own node, such as XEP-0013's).
    pub fn disco_node(&mut self, node: &'static str, handler: NodeHandler) {
        self.modules.nodes.insert(node, handler);
    }

    /// Offers `command` to every local account (XEP-0050).
    pub fn command(&mut self, command: impl Command) {
        self.modules.commands.push(Arc::new(command));
    }

    /// The nodes of the commands registered so far.
    pub fn command_nodes(&self) -> Vec<&'static str> {
        self.modules.commands.iter().map(|c| c.node()).collect()
    }

    /// Stanzas to `domain` and its JIDs are this module's ([`Module::to_service`]); the
    /// domain is one of the server's disco#items (XEP-0030 §4).
    pub fn service(&mut self, domain: &str) {
        self.modules.services.insert(domain.to_ascii_lowercase(), self.current.clone());
    }
}

impl Modules {
    /// Registers `module`: what it declares, and its hooks.
    pub fn add(&mut self, config: &Config, module: impl Module) {
        let module = Arc::new(module);
        tracing::debug!(module = module.name(), "module registered");
        let current: Arc<dyn Module> = module.clone();
        module.register(&mut Registrar { config, modules: self, current });
    }

    /// The answer to an iq get/set the server takes; None when no module answers its
    /// namespace (the caller answers `service-unavailable`, RFC 6120 §8.4).
    pub fn answer_iq(&self, request: &mut Request) -> Option<Answer> {
        let (name, ns) = (request.payload.name(), request.payload.ns());
        let mut routes = self.iqs.iter().filter(|r| r.ns == ns && r.name.is_none_or(|n| n == name)).peekable();
        routes.peek()?;
        let mut wrong_type = false;
        for route in routes.filter(|r| r.targets.takes(request.target)) {
            if route.types.takes(request.stanza.kind) {
                return Some((route.handler)(request));
            }
            wrong_type = true;
        }
        wrong_type.then(|| Answer::from(request.error(Condition::BadRequest)))
    }

    /// The disco#info features of `scope`, in registration order.
    pub fn features(&self, scope: Scope) -> impl Iterator<Item = &'static str> + '_ {
        self.features.iter().filter(move |(s, _)| *s == scope).map(|(_, var)| *var)
    }

    /// The stream features modules offer after authentication.
    pub fn stream_features(&self) -> &str {
        &self.stream_features
    }

    /// Who answers disco queries about `node`.
    pub fn disco_node(&self, node: &str) -> Option<NodeHandler> {
        self.nodes.get(node).copied()
    }

    /// The XEP-0050 commands, in registration order.
    pub fn commands(&self) -> &[Arc<dyn Command>] {
        &self.commands
    }

    /// The module serving `domain`, if any.
    pub fn service(&self, domain: &str) -> Option<&dyn Module> {
        self.services.get(domain).map(|module| module.as_ref())
    }

    /// Every service domain, for the server's disco#items.
    pub fn service_domains(&self) -> impl Iterator<Item = &str> {
        self.services.keys().map(String::as_str)
    }

    pub async fn inbound(
        &self,
        state: &ServerState,
        sender: &BareJid,
        stanza: &mut Stanza,
        slots: &mut Slots,
    ) -> Result<(), StanzaError> {
        for module in &self.hooks[Hook::Inbound as usize] {
            module.inbound(state, sender, stanza, slots).await?;
        }
        Ok(())
    }

    /// The message as `owner` gets it, after every module had its say; None: unchanged.
    /// The message as `owner` gets it, after every module had its say, and whether one
    /// stored something.
    pub async fn message_to_account(&self, state: &ServerState, stanza: &Stanza, owner: &BareJid) -> Handled {
        let mut handled = Handled::default();
        for module in &self.hooks[Hook::MessageToAccount as usize] {
            let current = handled.changed.as_ref().unwrap_or(stanza);
            let next = module.message_to_account(state, current, owner).await;
            handled = handled.then(next);
        }
        handled
    }

    /// The message to `owner` (as the modules changed it) was refused after all.
    pub async fn message_undelivered(&self, state: &ServerState, owner: &BareJid, stanza: &Stanza) {
        for module in &self.hooks[Hook::MessageUndelivered as usize] {
            module.message_undelivered(state, owner, stanza).await;
        }
    }

    /// The stanza as one session's client sees it, after every module had its say
    /// ([`Module::shown`]); None: unchanged.
    pub fn shown(&self, element: &Element, viewer: Viewer, last_seen: Option<u64>) -> Option<Element> {
        let mut changed: Option<Element> = None;
        for module in &self.hooks[Hook::Shown as usize] {
            if let Some(copy) = module.shown(changed.as_ref().unwrap_or(element), viewer, last_seen) {
                changed = Some(copy);
            }
        }
        changed
    }

    /// A stored stanza (its bytes) as one session's client sees it; parsed only when a
    /// module may change it (by the framer, as the server reads its own bytes back).
    pub async fn shown_stored(&self, bytes: Vec<u8>, viewer: Viewer) -> Vec<u8> {
        let modules = &self.hooks[Hook::Shown as usize];
        if !modules.iter().any(|module| module.shows_stored_differently(&bytes, viewer)) {
            return bytes;
        }
        let Some(element) = crate::xml::read_stanza(&bytes).await else {
            tracing::error!(bytes = bytes.len(), "a stored stanza cannot be read back: written as stored");
            return bytes;
        };
        match self.shown(&element, viewer, None) {
            Some(shown) => crate::xml::writer::to_bytes(&shown),
            None => bytes,
        }
    }

    /// A stanza shown to a session, in the form it was routed in ([`Module::routed_form`]).
    pub fn routed_form(&self, element: Element) -> Element {
        let modules = &self.hooks[Hook::Shown as usize];
        modules.iter().find_map(|module| module.routed_form(&element)).unwrap_or(element)
    }

    /// Whether a top-level element stands for a stanza a module turns it into (stream
    /// management counts it).
    pub fn stands_for_stanza(&self, element: &Element) -> bool {
        let ns = element.ns();
        self.stanza_namespaces.contains_key(ns.as_str()) && self.taker(element, &ns).is_none()
    }

    /// A client's element in a namespace a module took as stanzas, turned into the stanza.
    pub fn stanza_from_client(&self, element: &mut Element, viewer: Viewer, session: u64) -> Result<(), StanzaError> {
        match self.stanza_namespaces.get(element.ns().as_str()) {
            Some(module) => module.stanza_from_client(element, viewer, session),
            None => Ok(()),
        }
    }

    /// Whether a client's message is routed: the first module that says `Repeat` decides.
    pub fn message_from_client(&self, sender: &BareJid, stanza: &Stanza, now: tokio::time::Instant) -> FromClient {
        let modules = &self.hooks[Hook::MessageFromClient as usize];
        match modules.iter().any(|module| module.message_from_client(sender, stanza, now) == FromClient::Repeat) {
            true => FromClient::Repeat,
            false => FromClient::Pass,
        }
    }

    /// Whether a module takes the session's offline messages to its client itself.
    pub fn retrieves_offline_itself(&self, slots: &Slots) -> bool {
        self.hooks[Hook::OfflineBacklog as usize].iter().any(|module| module.retrieves_offline_itself(slots))
    }

    pub fn message_refused(&self, sender: &BareJid, stanza: &Stanza, bounced: bool) {
        let modules = &self.hooks[Hook::MessageRefused as usize];
        modules.iter().for_each(|module| module.message_refused(sender, stanza, bounced));
    }

    /// What the modules tell a client whose message was taken (or was a repeat of one).
    pub fn message_taken(&self, stanza: &Stanza, viewer: Viewer) -> Vec<Vec<u8>> {
        let modules = &self.hooks[Hook::MessageTaken as usize];
        modules.iter().flat_map(|module| module.message_taken(stanza, viewer)).collect()
    }

    pub fn message_delivered(&self, state: &ServerState, owner: &BareJid, stanza: &Stanza, to: &[FullJid]) {
        self.hooks[Hook::MessageDelivered as usize].iter().for_each(|m| m.message_delivered(state, owner, stanza, to));
    }

    /// The first module that keeps or drops `delivery` says so; otherwise it passes.
    pub fn delivering(&self, delivery: &Delivery, slots: &mut Slots) -> Delivering {
        for module in &self.hooks[Hook::Delivering as usize] {
            match module.delivering(delivery, slots) {
                Delivering::Pass => continue,
                kept_or_dropped => return kept_or_dropped,
            }
        }
        Delivering::Pass
    }

    /// What the modules write to a session's client after `event`, in registration order.
    pub fn session_event(&self, event: SessionEvent, slots: &mut Slots) -> Vec<Vec<u8>> {
        let modules = &self.hooks[Hook::SessionEvents as usize];
        modules.iter().flat_map(|module| module.session_event(event, slots)).collect()
    }

    /// The answer of the module that took `element`; None when none did.
    pub fn element<'a>(&'a self, element: &'a Element, client: Client<'a>) -> Option<Soon<'a, Result<Writes, String>>> {
        let module = self.taker(element, &element.ns())?;
        Some(module.element(element, client))
    }

    fn taker(&self, element: &Element, ns: &str) -> Option<&Arc<dyn Module>> {
        let takers = self.elements.get(ns)?;
        takers.iter().find(|(name, _)| name.is_none_or(|name| name == element.name())).map(|(_, module)| module)
    }

    /// Every module's `message_sent`, in registration order, each seeing the copy the one
    /// before made; whether one stored something.
    pub async fn message_sent(&self, state: &ServerState, sender: &FullJid, stanza: &Stanza, to: &Jid) -> Handled {
        let mut handled = Handled::default();
        for module in &self.hooks[Hook::MessageSent as usize] {
            let current = handled.changed.as_ref().unwrap_or(stanza);
            let next = module.message_sent(state, sender, current, to).await;
            handled = handled.then(next);
        }
        handled
    }
}

/// A session's module state: one value per type, allocated when a module first asks
/// (an idle session holds one empty pointer), and the modules' yes-or-no flags.
/// (Boxed: an empty `HashMap` is 48 bytes, and every idle session would hold them.)
#[derive(Default)]
#[allow(clippy::box_collection)]
pub struct Slots(Option<Box<HashMap<TypeId, Box<dyn Any + Send + Sync>>>>, u32);

/// One module's per-session flag ([`Registrar::session_flag`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag(u32);

impl Slots {
    /// Whether `flag` is set for this session.
    pub fn has(&self, flag: Flag) -> bool {
        self.1 & flag.0 != 0
    }

    pub fn set(&mut self, flag: Flag) {
        self.1 |= flag.0;
    }

    /// The module's state of type `T` for this session, made on first use.
    pub fn get_or_default<T: Any + Send + Sync + Default>(&mut self) -> &mut T {
        let map = self.0.get_or_insert_with(Default::default);
        let value = map.entry(TypeId::of::<T>()).or_insert_with(|| Box::new(T::default()));
        match value.downcast_mut::<T>() {
            Some(value) => value,
            // The map is keyed by the value's own type.
            None => unreachable!("a slot holds the type it is keyed by"),
        }
    }

    /// The state of type `T`, if a module made it.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.0.as_ref()?.get(&TypeId::of::<T>())?.downcast_ref::<T>()
    }

    /// The state of type `T`, if a module made it, to change.
    pub fn get_mut<T: Any + Send + Sync>(&mut self) -> Option<&mut T> {
        self.0.as_mut()?.get_mut(&TypeId::of::<T>())?.downcast_mut::<T>()
    }

    /// Takes the state of type `T` away; the last one gone gives the map back.
    pub fn remove<T: Any + Send + Sync>(&mut self) -> Option<T> {
        let map = self.0.as_mut()?;
        let value = map.remove(&TypeId::of::<T>())?.downcast::<T>().ok()?;
        if map.is_empty() {
            self.0 = None;
        }
        Some(*value)
    }
}

/// An iq push (roster, block list) for one session, with that session's own id.
pub fn push_iq(to: &str, id: &str, payload: &Element) -> Element {
    el("iq", NS_CLIENT).with("type", "set").with("id", id).with("to", to).with_child(payload.clone())
}

/// Answers an iq get/set the server takes: an account that does not exist is
/// `service-unavailable` (RFC 6121 §8.5.1), as is a namespace no module answers (RFC 6120
/// §8.4); otherwise the module's answer.
pub async fn answer(request: &mut Request<'_>) -> Answer {
    if let Target::Account(bare) = request.target {
        match request.state.store.user_exists(bare).await {
            Ok(true) => {}
            Ok(false) => return Answer::from(request.error(Condition::ServiceUnavailable)),
            Err(e) => return Answer::from(request.error(storage_fault(e))),
        }
    }
    let state = request.state;
    state.modules.answer_iq(request).unwrap_or_else(|| Answer::from(request.error(Condition::ServiceUnavailable)))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;

    impl Module for Echo {
        fn name(&self) -> &'static str {
            "test"
        }

        fn register(self: Arc<Self>, api: &mut Registrar) {
            api.iq(Some("q"), "urn:test", Types::Get, Targets::SERVER, |r| r.result().into());
            api.feature(Scope::Server, "urn:test");
            api.feature(Scope::OwnAccount, "urn:test:own");
            api.stream_feature("<t xmlns='urn:test'/>");
        }
    }

    fn answer_to(modules: &Modules, xml: &str, target: Target) -> Option<Element> {
        let state = crate::core::state::with_accounts(&["a@localhost"]);
        let stanza = Stanza::parse(xml.parse().expect("xml")).map_err(|_| "stanza").expect("stanza");
        let sender = FullJid::new("a@localhost/r").expect("jid");
        let payload = stanza.element.children().next().expect("payload").clone();
        let mut slots = Slots::default();
        let room = Batch { messages: 10, bytes: 1 << 20 };
        let mut request = Request {
            state: &state,
            sender: &sender,
            session: 1,
            target: &target,
            stanza: &stanza,
            payload: &payload,
            viewer: Viewer::default(),
            room,
            slots: &mut slots,
        };
        match modules.answer_iq(&mut request)? {
            Answer::Now(mut replies) => replies.pop(),
            Answer::Later(_) => None,
        }
    }

    #[tokio::test]
    async fn the_table_answers_by_name_namespace_type_and_target() {
        let mut modules = Modules::default();
        modules.add(&Config::default(), Echo);
        let server = || Target::Server("localhost".into());
        let get = "<iq xmlns='jabber:client' type='get' id='1'><q xmlns='urn:test'/></iq>";
        let reply = answer_to(&modules, get, server()).expect("answered");
        assert_eq!(reply.attr("type"), Some("result"));
        let set = "<iq xmlns='jabber:client' type='set' id='1'><q xmlns='urn:test'/></iq>";
        let reply = answer_to(&modules, set, server()).expect("answered");
        assert!(reply
            .get_child("error", NS_CLIENT)
            .is_some_and(|e| e.has_child("bad-request", crate::xml::NS_STANZA_ERRORS)));
        let account = Target::Account(BareJid::new("a@localhost").expect("jid"));
        assert!(answer_to(&modules, get, account).is_none(), "not for an account: nobody answers");
        let other = "<iq xmlns='jabber:client' type='get' id='1'><q xmlns='urn:other'/></iq>";
        assert!(answer_to(&modules, other, server()).is_none(), "nobody registered that namespace");
        assert_eq!(modules.features(Scope::Server).collect::<Vec<_>>(), vec!["urn:test"]);
        assert_eq!(modules.features(Scope::OwnAccount).collect::<Vec<_>>(), vec!["urn:test:own"]);
        assert_eq!(modules.stream_features(), "<t xmlns='urn:test'/>");
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_that_never_comes_is_refused_after_the_limit() {
        let request = "<iq xmlns='jabber:client' type='get' id='slow' to='localhost'><q xmlns='urn:test'/></iq>";
        let stanza = Stanza::parse(request.parse().expect("xml")).map_err(|_| "stanza").expect("stanza");
        let started = tokio::time::Instant::now();
        let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let work = {
            let finished = finished.clone();
            async move {
                tokio::time::sleep(Pending::LIMIT * 2).await;
                finished.store(true, std::sync::atomic::Ordering::SeqCst);
                Vec::new()
            }
        };
        let replies = Pending::new(&stanza, work).replies().await;
        assert!(started.elapsed() >= Pending::LIMIT);
        tokio::time::sleep(Pending::LIMIT * 2).await;
        assert!(finished.load(std::sync::atomic::Ordering::SeqCst), "the work was not left half done");
        let error = replies[0].get_child("error", NS_CLIENT).expect("an error");
        assert!(error.has_child("resource-constraint", crate::xml::NS_STANZA_ERRORS));
        assert_eq!(replies[0].attr("id"), Some("slow"));
    }

    #[test]
    fn slots_hold_nothing_until_a_module_asks() {
        #[derive(Default)]
        struct Count(u32);
        let mut slots = Slots::default();
        assert!(slots.get::<Count>().is_none());
        assert!(slots.0.is_none(), "nothing allocated");
        slots.get_or_default::<Count>().0 += 2;
        slots.get_or_default::<Count>().0 += 1;
        assert_eq!(slots.get::<Count>().map(|c| c.0), Some(3));
        assert_eq!(std::mem::size_of::<Slots>(), 2 * std::mem::size_of::<usize>(), "a pointer and the flags");
        let mut modules = Modules::default();
        let mut api = Registrar { config: &Config::default(), modules: &mut modules, current: Arc::new(Echo) };
        let (first, second) = (api.session_flag(), api.session_flag());
        slots.set(second);
        assert!(slots.has(second) && !slots.has(first));
    }
}
