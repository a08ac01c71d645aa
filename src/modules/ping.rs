//! XEP-0199: the server answers pings to itself and on behalf of accounts.
//! (Pinging idle clients is the session's job: `router::session`.)

use super::Request;
use crate::error::Condition;
use crate::xml::Element;

pub const NS: &str = "urn:xmpp:ping";

pub fn handle(request: &Request) -> Element {
    if !request.is_get() {
        return request.error(Condition::BadRequest);
    }
    match request.parse::<xmpp_parsers::ping::Ping>() {
        Ok(_) => request.result(),
        Err(condition) => request.error(condition),
    }
}
