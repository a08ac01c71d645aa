//! XEP-0030 service discovery, built from what the modules registered: a feature is listed
//! only because a module that implements it is registered. Nodes (XEP-0013's, say) are
//! answered by the module that registered them.

use super::{Request, Target};
use crate::core::module::{one_reply, Answer, Module, NodeQuery, Registrar, Scope, Targets, Types};
use crate::xml::{el, Element, ElementExt};
use crate::xmpp::error::Condition;
use std::sync::Arc;

pub use crate::xml::ns::DISCO_INFO as NS_INFO;
pub use crate::xml::ns::DISCO_ITEMS as NS_ITEMS;

pub struct Disco;

impl Module for Disco {
    fn name(&self) -> &'static str {
        "XEP-0030"
    }

    fn register(self: Arc<Self>, api: &mut Registrar) {
        api.iq(Some("query"), NS_INFO, Types::Get, Targets::SERVER_AND_ACCOUNT, info);
        api.iq(Some("query"), NS_ITEMS, Types::Get, Targets::SERVER_AND_ACCOUNT, items);
        for scope in [Scope::Server, Scope::Account] {
            api.feature(scope, NS_INFO);
            api.feature(scope, NS_ITEMS);
        }
    }
}

pub fn info(request: &mut Request) -> Answer {
    match request.parse::<xmpp_parsers::disco::DiscoInfoQuery>() {
        // A node's module may read storage for it: answered later.
        Ok(query) if query.node.is_some() => request.later(|r| one_reply(node_answer(r, NodeQuery::Info))),
        Ok(_) => identity_and_features(request).into(),
        Err(condition) => request.error(condition).into(),
    }
}

pub fn items(request: &mut Request) -> Answer {
    match request.parse::<xmpp_parsers::disco::DiscoItemsQuery>() {
        Ok(query) if query.node.is_some() => request.later(|r| one_reply(node_answer(r, NodeQuery::Items))),
        Ok(_) => service_items(request).into(),
        Err(condition) => request.error(condition).into(),
    }
}

/// The answer of the module that registered the query's node (XEP-0030 §3.2, §4.2).
async fn node_answer(request: &Request<'_>, query: NodeQuery) -> Element {
    let node = request.payload.attr("node").unwrap_or_default();
    match request.state.modules.disco_node(node) {
        Some(handler) => handler(request, query).await,
        None => request.error(Condition::ItemNotFound),
    }
}

fn identity_and_features(request: &Request) -> Element {
    let (category, kind, scope) = match request.target {
        Target::Server(_) => ("server", "im", Scope::Server),
        Target::Account(_) => ("account", "registered", Scope::Account),
    };
    let mut identity = el("identity", NS_INFO).with("category", category).with("type", kind);
    if category == "server" {
        identity.set("name", "stanzad");
    }
    let mut query = el("query", NS_INFO).with_child(identity);
    let modules = &request.state.modules;
    let own = (request.own_account().is_ok()).then(|| modules.features(Scope::OwnAccount));
    for feature in modules.features(scope).chain(own.into_iter().flatten()) {
        query.append_child(el("feature", NS_INFO).with("var", feature));
    }
    request.result_with(query)
}

/// The server's items are the service domains modules serve; an account has none here.
fn service_items(request: &Request) -> Element {
    let mut query = el("query", NS_ITEMS);
    if let Target::Server(_) = request.target {
        let mut domains: Vec<&str> = request.state.modules.service_domains().collect();
        domains.sort_unstable();
        for domain in domains {
            query.append_child(el("item", NS_ITEMS).with("jid", domain));
        }
    }
    request.result_with(query)
}
