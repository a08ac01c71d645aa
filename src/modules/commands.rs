//! XEP-0050 ad-hoc commands: the commands modules offer each local account about itself
//! ([`Registrar::command`]), listed at the server's commands node, run one stage each: the
//! client asks (`execute`), gets the form, and submits it (`complete`) or cancels.
//!
//! A command session belongs to the stream that opened it; a stream keeps its
//! [`OPEN_SESSIONS`] newest.

use super::{Request, Target};
use crate::core::module::{one_reply, Answer, Command, Module, NodeQuery, Registrar, Scope, Soon, Targets, Types};
use crate::xml::ns::{DATA_FORMS, DISCO_INFO, DISCO_ITEMS};
use crate::xml::{el, Element, ElementExt, NS_CLIENT};
use crate::xmpp::error::Condition;
use std::collections::VecDeque;
use std::sync::Arc;

pub use crate::xml::ns::COMMANDS as NS;

/// Command sessions a stream keeps open; opening one more closes its oldest.
pub const OPEN_SESSIONS: usize = 8;

/// Registered after every module that offers a command: it lists them.
pub struct Commands;

impl Module for Commands {
    fn name(&self) -> &'static str {
        "XEP-0050"
    }

    fn register(self: Arc<Self>, api: &mut Registrar) {
        let nodes = api.command_nodes();
        if nodes.is_empty() {
            return;
        }
        api.iq(Some("command"), NS, Types::Set, Targets::SERVER, answer);
        api.disco_node(NS, |r, query| Soon::ready(command_list(r, query)));
        for node in nodes {
            api.disco_node(node, |r, query| Soon::ready(command_node(r, query)));
        }
        api.feature(Scope::Server, NS);
    }
}

/// The command sessions of one stream: those open (session id and node), oldest first,
/// and the ids of those that ended lately.
#[derive(Default)]
struct Sessions {
    open: VecDeque<(String, &'static str)>,
    ended: VecDeque<String>,
}

impl Sessions {
    fn open(&mut self, node: &'static str) -> String {
        let id = format!("{:016x}", rand::random::<u64>());
        if self.open.len() == OPEN_SESSIONS {
            if let Some((oldest, _)) = self.open.pop_front() {
                self.end(oldest);
            }
        }
        self.open.push_back((id.clone(), node));
        id
    }

    fn is_open(&self, id: &str, node: &str) -> bool {
        self.open.iter().any(|(open, of)| open == id && *of == node)
    }

    /// Ends the open session `id` (§4.4: completed, or canceled by the requester).
    fn close(&mut self, id: &str) {
        if let Some(at) = self.open.iter().position(|(open, _)| open == id) {
            if let Some((id, _)) = self.open.remove(at) {
                self.end(id);
            }
        }
    }

    fn end(&mut self, id: String) {
        if self.ended.len() == OPEN_SESSIONS {
            self.ended.pop_front();
        }
        self.ended.push_back(id);
    }

    fn has_ended(&self, id: &str) -> bool {
        self.ended.iter().any(|ended| ended == id)
    }
}

/// §3: a command's execution, submission or cancellation, by a local account about
/// itself.
fn answer(request: &mut Request) -> Answer {
    let node = request.payload.attr("node").unwrap_or_default();
    let Some(command) = request.state.modules.commands().iter().find(|c| c.node() == node).cloned() else {
        return request.error(Condition::ItemNotFound).into();
    };
    if !is_local_account(request) {
        return request.error(Condition::Forbidden).into();
    }
    let action = request.payload.attr("action").unwrap_or("execute");
    if !matches!(action, "execute" | "complete" | "cancel" | "next" | "prev") {
        return refused(request, Condition::BadRequest, "malformed-action").into();
    }
    let Some(id) = request.payload.attr("sessionid").map(str::to_owned) else {
        if action != "execute" {
            return refused(request, Condition::BadRequest, "bad-sessionid").into();
        }
        let id = request.slots.get_or_default::<Sessions>().open(command.node());
        return request.later_with((command, id), |r, (command, id)| one_reply(form(r, command, id)));
    };
    let sessions = request.slots.get_or_default::<Sessions>();
    if !sessions.is_open(&id, command.node()) {
        // §4.6: one that ended is expired; one never given is not valid.
        return match sessions.has_ended(&id) {
            true => refused(request, Condition::NotAllowed, "session-expired").into(),
            false => refused(request, Condition::BadRequest, "bad-sessionid").into(),
        };
    }
    match action {
        "cancel" => {
            sessions.close(&id);
            request.result_with(reply(command.node(), &id, "canceled")).into()
        }
        // A single stage: nothing before it, nothing after.
        "next" | "prev" => refused(request, Condition::BadRequest, "bad-action").into(),
        _ => {
            // §4.4.1: a form of type cancel counts as submitted.
            let form = request.payload.get_child("x", DATA_FORMS);
            let form = form.filter(|x| matches!(x.attr("type"), Some("submit" | "cancel")));
            let checked = match form {
                Some(form) => command.check(request.state, form),
                None => Err("a submitted form (jabber:x:data, type submit) is required".into()),
            };
            if let Err(why) = checked {
                // The session stays open for a corrected form.
                return with_specific(request.error_with(Condition::BadRequest, &why), "bad-payload").into();
            }
            sessions.close(&id);
            request.later_with((command, id), |r, (command, id)| one_reply(submit(r, command, id)))
        }
    }
}

/// Commands are about the asking account, asked of its own server.
fn is_local_account(request: &Request) -> bool {
    matches!(request.target, Target::Server(domain) if domain.eq_ignore_ascii_case(request.sender.domain().as_str()))
}

/// §3.4: the form of the command's single stage.
async fn form(request: &Request<'_>, command: Arc<dyn Command>, id: String) -> Element {
    let account = request.sender.to_bare();
    match command.form(request.state, &account).await {
        Ok(form) => {
            let actions = el("actions", NS).with("execute", "complete").with_child(el("complete", NS));
            request.result_with(reply(command.node(), &id, "executing").with_child(actions).with_child(form))
        }
        Err(condition) => request.error(condition),
    }
}

/// §3.4: the submitted form carried out; the note says what was done, or (§4.5: the
/// command completed all the same) why it failed.
async fn submit(request: &Request<'_>, command: Arc<dyn Command>, id: String) -> Element {
    let Some(form) = request.payload.get_child("x", DATA_FORMS) else {
        return request.error(Condition::InternalServerError);
    };
    let account = request.sender.to_bare();
    let (kind, text) = match command.submit(request.state, &account, form).await {
        Ok(note) => ("info", note),
        Err(why) => {
            tracing::warn!(node = command.node(), account = %account, why, "command failed");
            ("error", why)
        }
    };
    let note = el("note", NS).with("type", kind).with_text(text);
    request.result_with(reply(command.node(), &id, "completed").with_child(note))
}

fn reply(node: &str, id: &str, status: &str) -> Element {
    el("command", NS).with("node", node).with("sessionid", id).with("status", status)
}

/// §4.6: an error with the command's own condition beside the general one.
fn refused(request: &Request, condition: Condition, specific: &str) -> Element {
    with_specific(request.error(condition), specific)
}

fn with_specific(mut reply: Element, specific: &str) -> Element {
    if let Some(error) = reply.get_child_mut("error", NS_CLIENT) {
        error.append_child(el(specific, NS));
    }
    reply
}

/// §2.2: the commands node; its items are the commands, listed to local accounts only.
fn command_list(request: &Request, query: NodeQuery) -> Element {
    let Target::Server(domain) = request.target else { return request.error(Condition::ItemNotFound) };
    match query {
        NodeQuery::Info => {
            let identity = el("identity", DISCO_INFO).with("category", "automation").with("type", "command-list");
            request.result_with(el("query", DISCO_INFO).with("node", NS).with_child(identity))
        }
        NodeQuery::Items => {
            let mut items = el("query", DISCO_ITEMS).with("node", NS);
            if is_local_account(request) {
                for command in request.state.modules.commands() {
                    let item = el("item", DISCO_ITEMS).with("jid", domain.as_str());
                    items.append_child(item.with("node", command.node()).with("name", command.name()));
                }
            }
            request.result_with(items)
        }
    }
}

/// §2.3: what a command's node is.
fn command_node(request: &Request, query: NodeQuery) -> Element {
    let node = request.payload.attr("node").unwrap_or_default();
    let command = request.state.modules.commands().iter().find(|c| c.node() == node);
    let (Target::Server(_), Some(command)) = (request.target, command) else {
        return request.error(Condition::ItemNotFound);
    };
    match query {
        NodeQuery::Info => {
            let identity = el("identity", DISCO_INFO)
                .with("category", "automation")
                .with("type", "command-node")
                .with("name", command.name());
            let mut info = el("query", DISCO_INFO).with("node", node).with_child(identity);
            for feature in [NS, DATA_FORMS] {
                info.append_child(el("feature", DISCO_INFO).with("var", feature));
            }
            request.result_with(info)
        }
        NodeQuery::Items => request.result_with(el("query", DISCO_ITEMS).with("node", node)),
    }
}
