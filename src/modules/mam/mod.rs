//! XEP-0313 message archive management: an account pages through its own archive
//! (XEP-0059 result set management) and chooses what is archived (XEP-0441 preferences,
//! in the same namespace). What gets archived is decided by [`is_archivable`] and [`allowed`].

pub mod archive;
pub mod retention;

use super::storage_fault;
use crate::core::module::{Handled, Hook, Module, Registrar, Request, Scope, Soon, Target, Targets, Types};
use crate::core::state::ServerState;
use crate::storage::archive::{ArchivePage, ArchivePrefs, ArchiveQuery, ArchivedMessage, Page};
use crate::storage::{Storage, StorageError};
use crate::xml::{el, Element, ElementExt, NS_CLIENT};
use crate::xmpp::error::{Condition, StanzaError};
use crate::xmpp::stanza::parse_address;
use crate::xmpp::stanza::Stanza;
use std::sync::Arc;
use xmpp_parsers::jid::{BareJid, FullJid, Jid};
use xmpp_parsers::minidom::Node;

use crate::xml::ns::CARBONS as NS_CARBONS;
use crate::xml::ns::DATA_FORMS as NS_DATA;
use crate::xml::ns::DELAY as NS_DELAY;
use crate::xml::ns::FORWARD as NS_FORWARD;
use crate::xml::ns::HINTS as NS_HINTS;
pub use crate::xml::ns::MAM as NS;
/// §7: before-id, after-id and ids, flipped pages, and the metadata query.
pub use crate::xml::ns::MAM_EXTENDED as NS_EXTENDED;
use crate::xml::ns::RSM as NS_RSM;
/// XEP-0359 stanza ids, which carry the archive id on delivered messages (§3.5).
pub use crate::xml::ns::SID as NS_SID;
use crate::xml::ns::XDATA_VALIDATE as NS_VALIDATE;
/// Most matches counted for RSM `<count/>` and `index`: beyond, they are left out
/// (XEP-0313 §4.3.2 makes both optional), so no page costs a scan of a huge archive.
const COUNT_UP_TO: u64 = 10_000;
/// Most JIDs on each preference list.
const MAX_PREF_JIDS: usize = 1_000;

/// Page sizes, and what is archived for an account that set no preferences.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Results per page when the query asks for no RSM `<max/>`.
    pub default_page: usize,
    /// The largest page; a larger `<max/>` is lowered to it.
    pub max_page: usize,
    /// The most bytes of archived stanzas in one page (at least one result goes), within
    /// [`PAGE_BYTES`]: a page ends early, not complete, and the client pages on.
    pub page_bytes: usize,
    pub default: crate::storage::archive::Default,
    /// The most bytes of JIDs an account's preferences may list (`limits.max_archive_prefs_bytes`).
    pub max_prefs_bytes: u64,
}

/// The most bytes of archived stanzas in one page: a page is built whole in memory, and a
/// stream-managed client keeps it unacknowledged.
pub const PAGE_BYTES: usize = 1 << 20;

/// Answers an iq get or set whose payload is in [`NS`], from `sender` to the archive of
/// `target_owner`. Returns, in order, what the sender gets: the result messages and the
/// final iq result, or a single iq error.
pub async fn handle(
    store: &dyn Storage,
    sender: &FullJid,
    target_owner: &BareJid,
    iq: &Element,
    settings: &Settings,
) -> Vec<Element> {
    respond(store, sender, target_owner, iq, settings)
        .await
        .unwrap_or_else(|condition| vec![error(iq, sender, condition)])
}

async fn respond(
    store: &dyn Storage,
    sender: &FullJid,
    owner: &BareJid,
    iq: &Element,
    settings: &Settings,
) -> Result<Vec<Element>, Condition> {
    // §8.1: an archive is its owner's alone.
    if *owner != sender.to_bare() {
        return Err(Condition::Forbidden);
    }
    let payload = iq.children().next().filter(|p| p.has_ns(NS)).ok_or(Condition::ServiceUnavailable)?;
    let get = iq.attr("type") == Some("get");
    let reply = |payload| vec![result(iq, sender, payload)];
    match (payload.name(), get) {
        ("query", true) => Ok(reply(query_form())),
        ("query", false) => query(store, sender, owner, iq, payload, settings).await,
        ("prefs", true) => prefs_get(store, owner, settings).await.map(reply),
        ("prefs", false) => prefs_set(store, owner, payload, settings).await.map(reply),
        ("metadata", true) => metadata(store, owner).await.map(reply),
        _ => Err(Condition::BadRequest),
    }
}

fn result(iq: &Element, sender: &FullJid, payload: Element) -> Element {
    crate::xmpp::stanza::result_reply(iq, Some(sender.as_str())).with_child(payload)
}

fn error(iq: &Element, sender: &FullJid, condition: Condition) -> Element {
    let mut reply = crate::xmpp::stanza::error_reply(iq, &StanzaError::new(condition));
    reply.set("to", sender.as_str());
    reply
}

/// §4.1.5: the fields a query form may use.
fn query_form() -> Element {
    let field = |var: &str, kind: &str| el("field", NS_DATA).with("var", var).with("type", kind);
    let open = el("validate", NS_VALIDATE).with("datatype", "xs:string").with_child(el("open", NS_VALIDATE));
    let mut form = el("x", NS_DATA)
        .with("type", "form")
        .with_child(field("FORM_TYPE", "hidden").with_child(el("value", NS_DATA).with_text(NS)))
        .with_child(field("with", "jid-single"));
    for var in ["start", "end", "before-id", "after-id"] {
        form.append_child(field(var, "text-single"));
    }
    el("query", NS).with_child(form.with_child(field("ids", "list-multi").with_child(open)))
}

/// A query as asked.
struct Query {
    id: Option<String>,
    archive: ArchiveQuery,
    /// §4.3.4: the page is sent newest first.
    flip: bool,
}

/// §4.1–§4.3: the matching messages, then the `<fin/>`.
async fn query(
    store: &dyn Storage,
    sender: &FullJid,
    owner: &BareJid,
    iq: &Element,
    payload: &Element,
    settings: &Settings,
) -> Result<Vec<Element>, Condition> {
    let query = parse_query(payload, settings)?;
    let mut page = store.query_archive(owner, &query.archive).await.map_err(not_found_or_fault)?;
    if matches!(query.archive.page, Page::Before(_)) {
        // XEP-0059 §2.3 makes `index` optional. Paging backwards, the newest page's first
        // index plus its size is the count, which clients (slixmpp's RSM iterator) read as
        // "nothing left": they would stop after the first page.
        page.first_index = None;
    }
    let mut out: Vec<Element> =
        page.messages.iter().map(|m| result_message(sender, owner, query.id.as_deref(), m)).collect();
    if query.flip {
        out.reverse();
    }
    out.push(result(iq, sender, fin(&page)));
    Ok(out)
}

/// §4.1.3, §4.3.2: an id the archive does not hold is `item-not-found`.
fn not_found_or_fault(e: StorageError) -> Condition {
    match e {
        StorageError::NotFound(_) => Condition::ItemNotFound,
        e => storage_fault(e),
    }
}

fn parse_query(payload: &Element, settings: &Settings) -> Result<Query, Condition> {
    // §6.1.3: pubsub node archives (XEP-0442) are not kept here.
    if payload.attr("node").is_some() {
        return Err(Condition::FeatureNotImplemented);
    }
    let page = settings.default_page.min(settings.max_page);
    let max_bytes = settings.page_bytes.min(PAGE_BYTES);
    let mut archive = ArchiveQuery { count_up_to: COUNT_UP_TO, max_bytes, ..ArchiveQuery::all(page) };
    let mut flip = false;
    for child in payload.children() {
        match (child.name(), child.ns().as_str()) {
            ("x", NS_DATA) => apply_form(child, &mut archive, settings)?,
            ("set", NS_RSM) => apply_rsm(child, &mut archive, settings)?,
            ("flip-page", NS) => flip = true,
            _ => {}
        }
    }
    Ok(Query { id: payload.attr("queryid").map(str::to_string), archive, flip })
}

/// §4.1: the filters of the query form.
fn apply_form(form: &Element, query: &mut ArchiveQuery, settings: &Settings) -> Result<(), Condition> {
    for field in form.children().filter(|c| c.is("field", NS_DATA)) {
        let values: Vec<String> =
            field.children().filter(|c| c.is("value", NS_DATA)).map(|v| v.text().trim().to_string()).collect();
        let var = field.attr("var").ok_or(Condition::BadRequest)?;
        if var == "ids" {
            if values.len() > settings.max_page {
                return Err(Condition::PolicyViolation);
            }
            query.ids = values.into_iter().filter(|v| !v.is_empty()).collect();
            continue;
        }
        let value = single(&values)?;
        match var {
            "FORM_TYPE" if value == Some(NS) => {}
            "FORM_TYPE" => return Err(Condition::BadRequest),
            "with" => query.with = value.map(|v| parse_address(v).map_err(|_| Condition::JidMalformed)).transpose()?,
            "start" => query.start = value.map(micros).transpose()?,
            "end" => query.end = value.map(micros).transpose()?,
            "after-id" => query.after_id = value.map(str::to_string),
            "before-id" => query.before_id = value.map(str::to_string),
            // §4.1.5: a field we do not know.
            _ => return Err(Condition::FeatureNotImplemented),
        }
    }
    Ok(())
}

/// The value of a single-valued field; None when it is absent or empty.
fn single(values: &[String]) -> Result<Option<&str>, Condition> {
    match values {
        [] => Ok(None),
        [value] => Ok(Some(value.as_str()).filter(|v| !v.is_empty())),
        _ => Err(Condition::BadRequest),
    }
}

/// §4.1.2: an XEP-0082 date-time, in microseconds since the epoch (earlier counts as 0).
fn micros(text: &str) -> Result<u64, Condition> {
    let date: xmpp_parsers::date::DateTime = text.parse().map_err(|_| Condition::BadRequest)?;
    Ok(u64::try_from(date.0.timestamp_micros()).unwrap_or(0))
}

/// XEP-0059 §2: page size and position.
fn apply_rsm(set: &Element, query: &mut ArchiveQuery, settings: &Settings) -> Result<(), Condition> {
    let mut page = None;
    for child in set.children().filter(|c| c.has_ns(NS_RSM)) {
        let text = child.text().trim().to_string();
        match child.name() {
            "max" => {
                let max = text.parse::<u64>().map_err(|_| Condition::BadRequest)?;
                query.max = usize::try_from(max).unwrap_or(usize::MAX).min(settings.max_page);
            }
            "after" if text.is_empty() => return Err(Condition::BadRequest),
            "after" => page = replace(page, Page::After(Some(text)))?,
            // §2.5: an empty `<before/>` asks for the last page.
            "before" => page = replace(page, Page::Before(Some(text).filter(|t| !t.is_empty())))?,
            // §2.6: jumping to an index is not offered.
            "index" => return Err(Condition::FeatureNotImplemented),
            _ => {}
        }
    }
    if let Some(page) = page {
        query.page = page;
    }
    Ok(())
}

/// §4.3.2: `after` and `before` together are undefined, so refused.
fn replace(current: Option<Page>, new: Page) -> Result<Option<Page>, Condition> {
    match current {
        None => Ok(Some(new)),
        Some(_) => Err(Condition::BadRequest),
    }
}

/// §4.2: one result, the archived stanza forwarded (XEP-0297) with when it was archived.
fn result_message(sender: &FullJid, owner: &BareJid, query_id: Option<&str>, message: &ArchivedMessage) -> Element {
    let mut forwarded = el("forwarded", NS_FORWARD).with_child(el("delay", NS_DELAY).with("stamp", stamp(message)));
    match parse_stored(&message.stanza) {
        Some(stanza) => forwarded = forwarded.with_child(stanza),
        // §3.2 allows a result without its message; the rest of the page still goes.
        None => tracing::error!(id = %message.id, "an archived stanza does not parse"),
    }
    let mut result = el("result", NS).with("id", message.id.as_str());
    if let Some(query_id) = query_id {
        result.set("queryid", query_id);
    }
    el("message", NS_CLIENT)
        .with("to", sender.as_str())
        .with("from", owner.as_str())
        .with("id", format!("mam-{:016x}", rand::random::<u64>()))
        .with_child(result.with_child(forwarded))
}

/// XEP-0082 in UTC with microseconds: `2010-07-10T23:08:25.000123Z`.
fn stamp(message: &ArchivedMessage) -> String {
    let micros = message.stamp_micros;
    let seconds = crate::core::offline::xep0082(micros / 1_000_000);
    format!("{}.{:06}Z", seconds.trim_end_matches('Z'), micros % 1_000_000)
}

/// Reads back an archived stanza, whatever the length of its tokens; one stored without
/// its namespace (as a stream child) is in `jabber:client`.
fn parse_stored(bytes: &[u8]) -> Option<Element> {
    use xmpp_parsers::minidom::{rxml, tree_builder::TreeBuilder};
    let options = rxml::Options { max_token_length: bytes.len().max(1), ..Default::default() };
    let mut reader = rxml::RawReader::with_options(bytes, options);
    let mut builder = TreeBuilder::new().with_prefixes_stack(vec![Some(NS_CLIENT.to_string()).into()]);
    loop {
        builder.process_event(reader.read().ok()??).ok()?;
        if let Some(root) = builder.root.take() {
            return Some(root);
        }
    }
}

/// §4.3: where the page lies in the result set, and whether it ends it.
fn fin(page: &ArchivePage) -> Element {
    let mut set = el("set", NS_RSM);
    if let (Some(first), Some(last)) = (page.messages.first(), page.messages.last()) {
        let mut first_el = el("first", NS_RSM).with_text(first.id.as_str());
        if let Some(index) = page.first_index {
            first_el.set("index", index.to_string());
        }
        set.append_child(first_el);
        set.append_child(el("last", NS_RSM).with_text(last.id.as_str()));
    }
    if let Some(count) = page.count {
        set.append_child(el("count", NS_RSM).with_text(count.to_string()));
    }
    el("fin", NS).with("complete", if page.complete { "true" } else { "false" }).with_child(set)
}

/// §5: the first and the last entry of the archive.
async fn metadata(store: &dyn Storage, owner: &BareJid) -> Result<Element, Condition> {
    let edge = async |page| {
        let query = ArchiveQuery { page, count_up_to: 0, ..ArchiveQuery::all(1) };
        store.query_archive(owner, &query).await.map(|p| p.messages.into_iter().next()).map_err(storage_fault)
    };
    let mut metadata = el("metadata", NS);
    if let (Some(start), Some(end)) = (edge(Page::After(None)).await?, edge(Page::Before(None)).await?) {
        for (name, message) in [("start", start), ("end", end)] {
            let stamp = stamp(&message);
            metadata.append_child(el(name, NS).with("id", message.id).with("timestamp", stamp));
        }
    }
    Ok(metadata)
}

/// XEP-0441 §2.1: the stored preferences, or the server's default with empty lists.
async fn prefs_get(store: &dyn Storage, owner: &BareJid, settings: &Settings) -> Result<Element, Condition> {
    let stored = store.archive_prefs(owner).await.map_err(storage_fault)?;
    let server_default = ArchivePrefs { default: settings.default, always: Vec::new(), never: Vec::new() };
    Ok(prefs_element(stored.as_deref().unwrap_or(&server_default)))
}

/// XEP-0441 §2.1: replaces the preferences and answers with them. Lists longer than the
/// server keeps are refused with `resource-constraint`, and nothing changes.
async fn prefs_set(
    store: &dyn Storage,
    owner: &BareJid,
    payload: &Element,
    settings: &Settings,
) -> Result<Element, Condition> {
    let default = payload.attr("default").and_then(|d| d.parse().ok()).ok_or(Condition::BadRequest)?;
    let prefs = ArchivePrefs { default, always: pref_list(payload, "always")?, never: pref_list(payload, "never")? };
    if prefs.bytes() > settings.max_prefs_bytes {
        return Err(Condition::ResourceConstraint);
    }
    store.set_archive_prefs(owner, &prefs).await.map_err(storage_fault)?;
    Ok(prefs_element(&prefs))
}

/// The JIDs of one list; a missing list is empty (XEP-0441 §2.1.2, §2.1.3).
fn pref_list(payload: &Element, name: &str) -> Result<Vec<Jid>, Condition> {
    let Some(list) = payload.get_child(name, NS) else { return Ok(Vec::new()) };
    let mut jids = Vec::new();
    for jid in list.children().filter(|c| c.is("jid", NS)) {
        // Only a JID whose stored form parses again (it is read back on every archive write).
        let jid = parse_address(jid.text().trim()).map_err(|_| Condition::JidMalformed)?;
        if jids.contains(&jid) {
            continue;
        }
        if jids.len() == MAX_PREF_JIDS {
            return Err(Condition::ResourceConstraint);
        }
        jids.push(jid);
    }
    Ok(jids)
}

fn prefs_element(prefs: &ArchivePrefs) -> Element {
    let list = |name: &str, jids: &[Jid]| {
        jids.iter().fold(el(name, NS), |list, jid| list.with_child(el("jid", NS).with_text(jid.as_str())))
    };
    el("prefs", NS)
        .with("default", prefs.default.name())
        .with_child(list("always", &prefs.always))
        .with_child(list("never", &prefs.never))
}

/// §6.1.1 and XEP-0334: whether a routed message belongs in archives. Conversation
/// messages (chat or normal, with a body or a `<store/>` hint) do; errors, groupchat,
/// headlines, messages hinted `<no-store/>` or `<no-permanent-store/>`, and carbon
/// copies (XEP-0280, archived once as the original) do not.
pub fn is_archivable(message: &Element) -> bool {
    let hint = |name| message.has_child(name, NS_HINTS);
    let carbon = message.has_child("sent", NS_CARBONS) || message.has_child("received", NS_CARBONS);
    if !message.is("message", NS_CLIENT) || carbon || hint("no-store") || hint("no-permanent-store") {
        return false;
    }
    // RFC 6121 §5.2.2: a missing or unknown type is `normal`.
    match message.attr("type") {
        Some("error" | "groupchat" | "headline") => false,
        _ => hint("store") || message.has_child("body", NS_CLIENT),
    }
}

/// §3.5 and XEP-0359 §4: tells `owner` where its archive keeps a message it receives, with
/// a `<stanza-id/>` that replaces any already claiming to come from that archive.
pub fn set_stanza_id(message: &mut Element, owner: &BareJid, id: &str) {
    strip_stanza_ids(message, owner);
    message.append_child(el("stanza-id", NS_SID).with("by", owner.as_str()).with("id", id));
}

/// XEP-0359 §5: removes every `<stanza-id/>` claiming to come from `owner`'s archive (JIDs
/// compared normalised), which a sender could have forged; others stay. True if any went.
pub fn strip_stanza_ids(message: &mut Element, owner: &BareJid) -> bool {
    let claims_ours = |node: &Node| match node {
        Node::Element(e) if e.is("stanza-id", NS_SID) => {
            e.attr("by").and_then(|by| Jid::new(by).ok()).is_some_and(|by| by.as_str() == owner.as_str())
        }
        _ => false,
    };
    if !message.nodes().any(claims_ours) {
        return false;
    }
    for node in message.take_nodes() {
        if !claims_ours(&node) {
            message.append_node(node);
        }
    }
    true
}

/// XEP-0441 §2.1: whether `owner`'s preferences let a conversation with `with` (the `to`
/// of an outgoing message, the `from` of an incoming one) be archived. Without stored
/// preferences, `server_default` applies. When in doubt (a storage fault), no.
pub async fn allowed(
    store: &dyn Storage,
    owner: &BareJid,
    with: &Jid,
    server_default: crate::storage::archive::Default,
) -> bool {
    // Kept in memory by the store: no read, no copy per message.
    let prefs = match store.archive_prefs(owner).await {
        Ok(prefs) => prefs,
        Err(e) => {
            tracing::error!(error = %e, "reading archive preferences failed");
            return false;
        }
    };
    let default = match prefs.as_deref() {
        Some(prefs) => {
            // The bare JID as text: what precedes the resource (no `/` comes before it).
            let bare = with.as_str().split('/').next().unwrap_or_default();
            // §2.3.1: a bare listed JID matches any resource, a full one only itself.
            let listed = |jid: &Jid| match jid.resource() {
                Some(_) => jid == with,
                None => jid.as_str() == bare,
            };
            if prefs.never.iter().any(listed) {
                return false;
            }
            if prefs.always.iter().any(listed) {
                return true;
            }
            prefs.default
        }
        None => server_default,
    };
    match default {
        crate::storage::archive::Default::Always => true,
        crate::storage::archive::Default::Never => false,
        crate::storage::archive::Default::Roster => {
            let bare = with.to_bare();
            bare == *owner || on_roster(store, owner, &bare).await
        }
    }
}

async fn on_roster(store: &dyn Storage, owner: &BareJid, contact: &BareJid) -> bool {
    match store.roster_item(owner, contact).await {
        Ok(item) => item.is_some(),
        Err(e) => {
            tracing::error!(error = %e, "reading the roster failed");
            false
        }
    }
}

/// The archive (XEP-0313) and the stanza ids it stamps (XEP-0359): registered only when
/// `archive.enabled`.
pub struct Archive;

impl Module for Archive {
    fn name(&self) -> &'static str {
        "XEP-0313"
    }

    fn register(self: Arc<Self>, api: &mut Registrar) {
        // XEP-0359 §5: a stanza-id claiming to come from the recipient's archive is removed
        // whether or not the archive is on.
        api.hook(Hook::MessageToAccount);
        if !api.config.archive.enabled {
            return;
        }
        api.hook(Hook::MessageSent);
        api.hook(Hook::MessageUndelivered);
        api.iq(None, NS, Types::GetAndSet, Targets::ACCOUNT, |r| r.later(|r| Soon::later(answer(r))));
        api.command(retention::RetentionCommand::default());
        // §7 / XEP-0359 §6: the archive is its owner's alone.
        for feature in [NS, NS_EXTENDED, NS_SID] {
            api.feature(Scope::OwnAccount, feature);
        }
    }

    fn message_to_account<'a>(
        &'a self,
        state: &'a ServerState,
        stanza: &'a Stanza,
        owner: &'a BareJid,
    ) -> Soon<'a, Handled> {
        match stanza.kind {
            crate::xmpp::stanza::Kind::Message(_) if state.config.archive.enabled => {
                Soon::later(archive::incoming(state, stanza, owner))
            }
            crate::xmpp::stanza::Kind::Message(_) => {
                Soon::ready(Handled { changed: archive::without_forged_ids(stanza, owner), stored: false })
            }
            _ => Soon::ready(Handled::default()),
        }
    }

    fn message_undelivered<'a>(
        &'a self,
        state: &'a ServerState,
        owner: &'a BareJid,
        stanza: &'a Stanza,
    ) -> Soon<'a, ()> {
        Soon::later(archive::refused(state, stanza, owner))
    }

    fn message_sent<'a>(
        &'a self,
        state: &'a ServerState,
        sender: &'a FullJid,
        stanza: &'a Stanza,
        to: &'a Jid,
    ) -> Soon<'a, Handled> {
        Soon::later(archive::outgoing(state, stanza, sender, to))
    }
}

/// A query or preferences request, answered within the room the client has now.
async fn answer(request: &Request<'_>) -> Vec<Element> {
    let Target::Account(owner) = request.target else { return Vec::new() };
    let state = request.state;
    let config = &state.config.archive;
    let settings = Settings {
        default_page: config.default_page,
        // Results are stanzas too: a stream-managed client gets no more than it has room for.
        max_page: config.max_page.min(request.room.messages.max(1)),
        page_bytes: request.room.bytes,
        default: config.default_preference(),
        max_prefs_bytes: state.config.limits.max_archive_prefs_bytes,
    };
    handle(state.store.as_ref(), request.sender, owner, &request.stanza.element, &settings).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::archive::ArchiveStore;
    use crate::storage::roster::{RosterItem, RosterStore};
    use crate::storage::sled::SledStore;

    const ALICE: &str = "alice@example.org";

    fn settings() -> Settings {
        Settings {
            default_page: 50,
            max_page: 2,
            page_bytes: usize::MAX,
            default: crate::storage::archive::Default::Always,
            max_prefs_bytes: 64 << 10,
        }
    }

    fn xml(text: &str) -> Element {
        text.parse().expect("test XML")
    }

    fn bare(s: &str) -> BareJid {
        BareJid::new(s).expect("bare JID")
    }

    fn desk() -> FullJid {
        FullJid::new("alice@example.org/desk").expect("full JID")
    }

    /// Alice's archive with `n` chat messages from Bob, one second apart; their ids.
    fn archive_of(n: usize) -> (SledStore, Vec<String>) {
        let store = SledStore::temporary().expect("sled");
        let bob = Jid::new("bob@example.org/phone").expect("jid");
        let ids = (0..n)
            .map(|i| {
                let stanza = format!(
                    "<message xmlns='jabber:client' from='bob@example.org/phone' to='alice@example.org' \
                     type='chat' id='m{i}'><body>hi {i}</body></message>"
                );
                let stamp = 1_278_803_305_000_000 + i as u64 * 1_000_000;
                store.archive(&bare(ALICE), &bob, stamp, stanza.as_bytes()).at_once().expect("archive")
            })
            .collect();
        (store, ids)
    }

    /// Runs one iq from Alice's desk to her own archive.
    async fn ask(store: &SledStore, iq: &str) -> Vec<Element> {
        handle(store, &desk(), &bare(ALICE), &xml(iq), &settings()).await
    }

    /// A query set with the given children of `<query/>`.
    async fn query(store: &SledStore, children: &str) -> Vec<Element> {
        ask(store, &format!("<iq xmlns='jabber:client' type='set' id='q1'><query xmlns='{NS}'>{children}</query></iq>"))
            .await
    }

    fn form(fields: &str) -> String {
        format!(
            "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>\
             <value>{NS}</value></field>{fields}</x>"
        )
    }

    fn field(var: &str, value: &str) -> String {
        format!("<field var='{var}'><value>{value}</value></field>")
    }

    fn rsm(inner: &str) -> String {
        format!("<set xmlns='{NS_RSM}'>{inner}</set>")
    }

    /// The archive ids of the results, and the final `<fin/>`.
    fn results(out: &[Element]) -> (Vec<String>, &Element) {
        let (last, messages) = out.split_last().expect("a reply");
        assert_eq!((last.name(), last.attr("type"), last.attr("id")), ("iq", Some("result"), Some("q1")), "{last:?}");
        let ids = messages
            .iter()
            .map(|m| m.get_child("result", NS).and_then(|r| r.attr("id")).expect("a result").to_string())
            .collect();
        (ids, last.get_child("fin", NS).expect("fin"))
    }

    fn rsm_text(fin: &Element, name: &str) -> Option<String> {
        fin.get_child("set", NS_RSM).expect("set").get_child(name, NS_RSM).map(Element::text)
    }

    fn condition(out: &[Element]) -> String {
        let [reply] = out else { panic!("one error: {out:?}") };
        assert_eq!((reply.attr("type"), reply.attr("to")), (Some("error"), Some("alice@example.org/desk")));
        let error = reply.get_child("error", NS_CLIENT).expect("error");
        error.children().next().expect("condition").name().to_string()
    }

    #[tokio::test]
    async fn a_query_sends_each_result_then_the_fin() {
        let (store, ids) = archive_of(2);
        let out = ask(
            &store,
            &format!("<iq xmlns='jabber:client' type='set' id='q1'><query xmlns='{NS}' queryid='f27'/></iq>"),
        )
        .await;
        assert_eq!(out.len(), 3);
        let message = &out[0];
        assert_eq!((message.attr("to"), message.attr("from")), (Some("alice@example.org/desk"), Some(ALICE)));
        assert!(message.attr("id").is_some_and(|id| !id.is_empty()));
        let result = message.get_child("result", NS).expect("result");
        assert_eq!((result.attr("queryid"), result.attr("id")), (Some("f27"), Some(ids[0].as_str())));
        let forwarded = result.get_child("forwarded", NS_FORWARD).expect("forwarded");
        let delay = forwarded.get_child("delay", NS_DELAY).expect("delay");
        assert_eq!(delay.attr("stamp"), Some("2010-07-10T23:08:25.000000Z"));
        let original = forwarded.get_child("message", NS_CLIENT).expect("the archived message");
        assert_eq!((original.attr("id"), original.attr("type")), (Some("m0"), Some("chat")));
        assert_eq!(original.get_child("body", NS_CLIENT).map(Element::text).as_deref(), Some("hi 0"));

        let (got, fin) = results(&out);
        assert_eq!(got, ids);
        assert_eq!(fin.attr("complete"), Some("true"));
        let first = fin.get_child("set", NS_RSM).and_then(|s| s.get_child("first", NS_RSM)).expect("first");
        assert_eq!((first.text(), first.attr("index")), (ids[0].clone(), Some("0")));
        assert_eq!(rsm_text(fin, "last"), Some(ids[1].clone()));
        assert_eq!(rsm_text(fin, "count").as_deref(), Some("2"));
        assert_eq!(out[2].attr("to"), Some("alice@example.org/desk"));
    }

    #[tokio::test]
    async fn pages_forward_until_complete() {
        let (store, ids) = archive_of(5);
        let (mut seen, mut completes, mut after) = (Vec::new(), Vec::new(), None::<String>);
        while completes.last() != Some(&"true".to_string()) && completes.len() < 5 {
            let position = after.as_ref().map(|id| format!("<after>{id}</after>")).unwrap_or_default();
            // A page larger than the server's largest is lowered to it.
            let out = query(&store, &rsm(&format!("<max>10</max>{position}"))).await;
            let (page, fin) = results(&out);
            assert_eq!(rsm_text(fin, "count").as_deref(), Some("5"));
            after = rsm_text(fin, "last");
            seen.extend(page);
            completes.push(fin.attr("complete").expect("complete").to_string());
        }
        assert_eq!(completes, ["false", "false", "true"]);
        assert_eq!(seen, ids);
    }

    #[tokio::test]
    async fn pages_backward_from_the_last_page() {
        let (store, ids) = archive_of(5);
        let out = query(&store, &rsm("<max>2</max><before/>")).await;
        let (page, fin) = results(&out);
        assert_eq!((page, fin.attr("complete")), (ids[3..].to_vec(), Some("false")));
        let index =
            fin.get_child("set", NS_RSM).and_then(|s| s.get_child("first", NS_RSM)).and_then(|f| f.attr("index"));
        assert_eq!(index, None, "no index paging backward: index + size = count would read as the end");
        let out = query(&store, &rsm(&format!("<max>2</max><before>{}</before>", ids[1]))).await;
        let (page, fin) = results(&out);
        assert_eq!((page, fin.attr("complete")), (ids[..1].to_vec(), Some("true")));
    }

    #[tokio::test]
    async fn catches_up_after_an_id_and_between_ids() {
        let (store, ids) = archive_of(5);
        let out = query(&store, &form(&field("after-id", &ids[2]))).await;
        assert_eq!(results(&out).0, ids[3..].to_vec());
        let between = format!("{}{}", field("after-id", &ids[0]), field("before-id", &ids[4]));
        let out = query(&store, &format!("{}{}", form(&between), rsm("<max>5</max>"))).await;
        assert_eq!(results(&out).0, ids[1..3].to_vec(), "max lowered to 2");
        let out = query(
            &store,
            &form(&format!("<field var='ids'><value>{}</value><value>{}</value></field>", ids[4], ids[1])),
        )
        .await;
        assert_eq!(results(&out).0, vec![ids[1].clone(), ids[4].clone()]);
        let out = query(&store, &format!("{}<flip-page xmlns='{NS}'/>", form(&field("after-id", &ids[2])))).await;
        assert_eq!(results(&out).0, vec![ids[4].clone(), ids[3].clone()], "a flipped page comes newest first");
    }

    #[tokio::test]
    async fn filters_by_time_and_with() {
        let (store, ids) = archive_of(4);
        let times = format!("{}{}", field("start", "2010-07-10T23:08:26Z"), field("end", "2010-07-11T01:08:27+02:00"));
        assert_eq!(results(&query(&store, &form(&times)).await).0, ids[1..3].to_vec(), "inclusive bounds");
        assert_eq!(results(&query(&store, &form(&field("with", "bob@example.org"))).await).0.len(), 2, "a page of 2");
        assert!(results(&query(&store, &form(&field("with", "bob@example.org/laptop"))).await).0.is_empty());
    }

    #[tokio::test]
    async fn only_count_with_max_zero() {
        let (store, _) = archive_of(3);
        let out = query(&store, &rsm("<max>0</max>")).await;
        let (page, fin) = results(&out);
        assert!(page.is_empty());
        assert_eq!((rsm_text(fin, "count").as_deref(), rsm_text(fin, "first")), (Some("3"), None));
    }

    #[tokio::test]
    async fn bad_queries_are_refused() {
        let (store, ids) = archive_of(1);
        let bad_request = "bad-request".to_string();
        assert_eq!(condition(&query(&store, &form(&field("start", "yesterday"))).await), bad_request);
        assert_eq!(condition(&query(&store, &rsm("<max>many</max>")).await), bad_request);
        let both = format!("<after>{0}</after><before>{0}</before>", ids[0]);
        assert_eq!(condition(&query(&store, &rsm(&both)).await), bad_request);
        assert_eq!(condition(&query(&store, &form(&field("with", "@@"))).await), "jid-malformed");
        assert_eq!(
            condition(&query(&store, &form(&field("include-groupchat", "true"))).await),
            "feature-not-implemented"
        );
        assert_eq!(condition(&query(&store, &rsm("<index>3</index>")).await), "feature-not-implemented");
        assert_eq!(condition(&query(&store, &rsm("<after>nope</after>")).await), "item-not-found");
        assert_eq!(condition(&query(&store, &rsm("<before>nope</before>")).await), "item-not-found");
        assert_eq!(condition(&query(&store, &form(&field("after-id", "nope"))).await), "item-not-found");
        let too_many = "<field var='ids'><value>a</value><value>b</value><value>c</value></field>";
        assert_eq!(condition(&query(&store, &form(too_many)).await), "policy-violation");
    }

    #[tokio::test]
    async fn another_account_archive_is_forbidden() {
        let (store, _) = archive_of(1);
        let iq = xml(&format!(
            "<iq xmlns='jabber:client' type='set' id='q1' to='bob@example.org'><query xmlns='{NS}'/></iq>"
        ));
        let out = handle(&store, &desk(), &bare("bob@example.org"), &iq, &settings()).await;
        assert_eq!(condition(&out), "forbidden");
    }

    #[tokio::test]
    async fn the_form_lists_the_supported_fields() {
        let store = SledStore::temporary().expect("sled");
        let out =
            ask(&store, &format!("<iq xmlns='jabber:client' type='get' id='form1'><query xmlns='{NS}'/></iq>")).await;
        let [reply] = out.as_slice() else { panic!("one reply: {out:?}") };
        assert_eq!((reply.attr("type"), reply.attr("id")), (Some("result"), Some("form1")));
        let form = reply.get_child("query", NS).and_then(|q| q.get_child("x", NS_DATA)).expect("form");
        assert_eq!(form.attr("type"), Some("form"));
        let fields: Vec<(&str, &str)> =
            form.children().map(|f| (f.attr("var").unwrap_or_default(), f.attr("type").unwrap_or_default())).collect();
        let expected = [
            ("FORM_TYPE", "hidden"),
            ("with", "jid-single"),
            ("start", "text-single"),
            ("end", "text-single"),
            ("before-id", "text-single"),
            ("after-id", "text-single"),
            ("ids", "list-multi"),
        ];
        assert_eq!(fields, expected);
        assert_eq!(
            form.children().next().and_then(|f| f.get_child("value", NS_DATA)).map(Element::text).as_deref(),
            Some(NS)
        );
    }

    #[tokio::test]
    async fn metadata_gives_the_first_and_last_entries() {
        let store = SledStore::temporary().expect("sled");
        let get = format!("<iq xmlns='jabber:client' type='get' id='md'><metadata xmlns='{NS}'/></iq>");
        let empty = ask(&store, &get).await;
        assert_eq!(empty[0].get_child("metadata", NS).map(|m| m.children().count()), Some(0));
        let (store, ids) = archive_of(3);
        let out = ask(&store, &get).await;
        let metadata = out[0].get_child("metadata", NS).expect("metadata");
        let edge = |name| metadata.get_child(name, NS).and_then(|e| e.attr("id")).map(str::to_string);
        assert_eq!((edge("start"), edge("end")), (Some(ids[0].clone()), Some(ids[2].clone())));
    }

    #[tokio::test]
    async fn preferences_round_trip() {
        let store = SledStore::temporary().expect("sled");
        let get = format!("<iq xmlns='jabber:client' type='get' id='p1'><prefs xmlns='{NS}'/></iq>");
        let prefs = |out: &[Element]| out[0].get_child("prefs", NS).expect("prefs").clone();
        let initial = prefs(&ask(&store, &get).await);
        assert_eq!(initial.attr("default"), Some("always"), "the server default");
        assert!(initial.get_child("always", NS).is_some() && initial.get_child("never", NS).is_some());

        let set = format!(
            "<iq xmlns='jabber:client' type='set' id='p2'><prefs xmlns='{NS}' default='roster'>\
             <always><jid>romeo@montague.lit</jid></always><never><jid>montague@montague.lit/x</jid></never>\
             </prefs></iq>"
        );
        let applied = prefs(&ask(&store, &set).await);
        assert_eq!(prefs(&ask(&store, &get).await), applied);
        assert_eq!(applied.attr("default"), Some("roster"));
        let never = applied.get_child("never", NS).and_then(|n| n.get_child("jid", NS)).map(Element::text);
        assert_eq!(never.as_deref(), Some("montague@montague.lit/x"));
        let stored = store.archive_prefs(&bare(ALICE)).await.expect("prefs").expect("stored");
        assert_eq!(stored.always, vec![Jid::new("romeo@montague.lit").expect("jid")]);

        let bad =
            format!("<iq xmlns='jabber:client' type='set' id='p3'><prefs xmlns='{NS}' default='sometimes'/></iq>");
        assert_eq!(condition(&ask(&store, &bad).await), "bad-request");
    }

    #[test]
    fn what_is_archivable() {
        let yes = [
            "<message xmlns='jabber:client' type='chat'><body>hi</body></message>",
            "<message xmlns='jabber:client'><body>no type is normal</body></message>",
            "<message xmlns='jabber:client' type='chat'><store xmlns='urn:xmpp:hints'/></message>",
        ];
        let no = [
            "<message xmlns='jabber:client' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
            "<message xmlns='jabber:client' type='groupchat'><body>room</body></message>",
            "<message xmlns='jabber:client' type='headline'><body>news</body></message>",
            "<message xmlns='jabber:client' type='error'><body>hi</body></message>",
            "<message xmlns='jabber:client' type='chat'><body>hi</body><no-store xmlns='urn:xmpp:hints'/></message>",
            "<message xmlns='jabber:client'><body>hi</body><no-permanent-store xmlns='urn:xmpp:hints'/></message>",
            "<message xmlns='jabber:client' type='chat'><received xmlns='urn:xmpp:carbons:2'><forwarded \
             xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'><body>hi</body></message></forwarded>\
             </received></message>",
            "<presence xmlns='jabber:client'/>",
        ];
        assert!(yes.iter().all(|m| is_archivable(&xml(m))));
        for m in no {
            assert!(!is_archivable(&xml(m)), "{m}");
        }
    }

    #[tokio::test]
    async fn allowed_follows_preferences_and_defaults() {
        use crate::storage::archive::Default::{Always, Never, Roster};
        let store = SledStore::temporary().expect("sled");
        let (alice, friend, stranger) = (
            bare(ALICE),
            Jid::new("friend@example.org/x").expect("jid"),
            Jid::new("stranger@example.net").expect("jid"),
        );
        let quota = crate::storage::roster::ListQuota { items: 10, bytes: 1000 };
        store.put_roster_item(&alice, &RosterItem::new(&friend.to_bare()), quota).await.expect("roster");
        let both = async |default| {
            (allowed(&store, &alice, &friend, default).await, allowed(&store, &alice, &stranger, default).await)
        };
        assert_eq!(both(Always).await, (true, true), "no preferences: the server default");
        assert_eq!(both(Never).await, (false, false));
        assert_eq!(both(Roster).await, (true, false));
        assert!(allowed(&store, &alice, &Jid::from(alice.clone()), Roster).await, "notes to self");

        let prefs = ArchivePrefs {
            default: Roster,
            always: vec![Jid::new("stranger@example.net").expect("jid")],
            never: vec![Jid::new("friend@example.org/x").expect("jid")],
        };
        store.set_archive_prefs(&alice, &prefs).await.expect("prefs");
        assert_eq!(both(Always).await, (false, true), "the account's lists, whatever the server default");
        let other_resource = Jid::new("friend@example.org/y").expect("jid");
        assert!(allowed(&store, &alice, &other_resource, Never).await, "a full listed JID matches only itself");
        store.set_archive_prefs(&alice, &ArchivePrefs { default: Never, ..prefs }).await.expect("prefs");
        assert!(!allowed(&store, &alice, &other_resource, Always).await);
        assert!(
            allowed(&store, &alice, &Jid::new("stranger@example.net/any").expect("jid"), Never).await,
            "bare matches all"
        );
    }

    #[test]
    fn the_stanza_id_replaces_forged_ones() {
        let mut message = xml(&format!(
            "<message xmlns='jabber:client' type='chat'><body>hi</body>\
             <stanza-id xmlns='{NS_SID}' by='Alice@Example.org' id='forged'/>\
             <stanza-id xmlns='{NS_SID}' by='room@muc.example.org' id='kept'/></message>"
        ));
        set_stanza_id(&mut message, &bare(ALICE), "real");
        let ids: Vec<(Option<&str>, Option<&str>)> =
            message.children().filter(|c| c.is("stanza-id", NS_SID)).map(|c| (c.attr("by"), c.attr("id"))).collect();
        assert_eq!(ids, [(Some("room@muc.example.org"), Some("kept")), (Some(ALICE), Some("real"))]);
        assert!(message.has_child("body", NS_CLIENT));
    }

    #[test]
    fn long_stored_attributes_read_back() {
        let long =
            format!("<message xmlns='jabber:client' type='chat' pad='{}'><body>x</body></message>", "p".repeat(20_000));
        assert_eq!(parse_stored(long.as_bytes()).and_then(|m| m.attr("pad").map(str::len)), Some(20_000));
        assert!(parse_stored(b"<message").is_none());
        let bare = parse_stored(b"<message><body>from a stream</body></message>").expect("parses");
        assert!(bare.is("message", NS_CLIENT) && bare.has_child("body", NS_CLIENT), "{bare:?}");
    }
}
