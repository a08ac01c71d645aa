//! XEP-0199: the server answers pings to itself and on behalf of accounts.
//! (Pinging idle clients is the session's job: `router::session`.)

use super::Request;
use crate::error::Condition;
use crate::xml::{Element, ElementExt};

pub const NS: &str = "urn:xmpp:ping";

pub fn handle(request: &Request) -> Element {
    if !request.is_get() {
        return request.error(Condition::BadRequest);
    }
    // XEP-0199 §3: the ping element is empty (xmpp-parsers is lenient about children).
    let empty = request.payload.children().next().is_none() && request.payload.text().trim().is_empty();
    match request.parse::<xmpp_parsers::ping::Ping>() {
        // The dialect's ping result carries the server time (docs/dialect.md).
        Ok(_) if empty && request.dialect => {
            request.result().with(crate::modules::dialect::TIME, crate::router::presence::unix_now().to_string())
        }
        Ok(_) if empty => request.result(),
        Ok(_) => request.error(Condition::BadRequest),
        Err(condition) => request.error(condition),
    }
}
