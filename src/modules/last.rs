//! XEP-0012 last activity: the server's uptime, and when a contact was last online,
//! for those allowed to see its presence.

use super::{Request, Target};
use crate::core::module::{one_reply, Module, Registrar, Scope, Targets, Types};
use crate::core::presence::unix_now;
use crate::xml::{el, Element, ElementExt};
use crate::xmpp::error::Condition;
use std::sync::Arc;

pub use crate::xml::ns::LAST as NS;

pub async fn handle(request: &Request<'_>) -> Element {
    if !request.is_get() {
        return request.error(Condition::BadRequest);
    }
    match request.target {
        Target::Server(_) => reply(request, request.state.started.elapsed().as_secs(), None),
        Target::Account(account) => {
            let asker = request.sender.to_bare();
            // §4: only the account itself and those subscribed to its presence may know.
            let allowed = *account == asker
                || matches!(request.state.store.roster_item(account, &asker).await,
                            Ok(Some(item)) if item.subscription.has_from());
            if !allowed || crate::core::privacy::between(request.state, account, &asker).await {
                return request.error(Condition::Forbidden);
            }
            if !request.state.registry.available(account).is_empty() {
                return reply(request, 0, None);
            }
            match request.state.store.last_seen(account).await {
                Ok(Some(last)) => reply(request, unix_now().saturating_sub(last.at), last.status),
                Ok(None) => request.error(Condition::ItemNotFound),
                Err(e) => {
                    tracing::error!(error = %e, "reading last seen failed");
                    request.error(Condition::InternalServerError)
                }
            }
        }
    }
}

fn reply(request: &Request, seconds: u64, status: Option<String>) -> Element {
    let mut query = el("query", NS).with("seconds", seconds.to_string());
    if let Some(status) = status {
        query = query.with_text(status);
    }
    request.result_with(query)
}

pub struct LastActivity;

impl Module for LastActivity {
    fn name(&self) -> &'static str {
        "XEP-0012"
    }

    fn register(self: Arc<Self>, api: &mut Registrar) {
        api.iq(Some("query"), NS, Types::GetAndSet, Targets::SERVER_AND_ACCOUNT, |r| r.later(|r| one_reply(handle(r))));
        api.feature(Scope::Server, NS);
        api.feature(Scope::Account, NS);
    }
}
