//! XEP-0199: the server answers pings to itself and on behalf of accounts.
//! (Pinging idle clients is the session's job: `router::session`.)

use super::Request;
use crate::core::module::{Module, Registrar, Scope, Targets, Types};
use crate::xml::{Element, ElementExt};
use crate::xmpp::error::Condition;
use std::sync::Arc;

pub use crate::xml::ns::PING as NS;

pub fn handle(request: &Request) -> Element {
    if !request.is_get() {
        return request.error(Condition::BadRequest);
    }
    // XEP-0199 §3: the ping element is empty (xmpp-parsers is lenient about children).
    let empty = request.payload.children().next().is_none() && request.payload.text().trim().is_empty();
    match request.parse::<xmpp_parsers::ping::Ping>() {
        // The dialect's ping result carries the server time (docs/dialect.md).
        Ok(_) if empty && request.viewer.dialect => {
            request.result().with(super::dialect::TIME, crate::core::presence::unix_now().to_string())
        }
        Ok(_) if empty => request.result(),
        Ok(_) => request.error(Condition::BadRequest),
        Err(condition) => request.error(condition),
    }
}

pub struct Ping;

impl Module for Ping {
    fn name(&self) -> &'static str {
        "XEP-0199"
    }

    fn register(self: Arc<Self>, api: &mut Registrar) {
        api.iq(Some("ping"), NS, Types::Get, Targets::SERVER_AND_ACCOUNT, |r| handle(r).into());
        api.feature(Scope::Server, NS);
        api.feature(Scope::Account, NS);
    }
}
