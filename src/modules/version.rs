//! XEP-0092 software version of the server. The operating system is not disclosed.

use super::{Request, Target};
use crate::error::Condition;
use crate::xml::{el, Element, ElementExt};

pub const NS: &str = "jabber:iq:version";

pub fn handle(request: &Request) -> Element {
    if !matches!(request.target, Target::Server(_)) {
        return request.error(Condition::ServiceUnavailable);
    }
    if !request.is_get() || request.parse::<xmpp_parsers::version::VersionQuery>().is_err() {
        return request.error(Condition::BadRequest);
    }
    let query = el("query", NS)
        .with_child(el("name", NS).with_text("stanzad"))
        .with_child(el("version", NS).with_text(env!("CARGO_PKG_VERSION")));
    request.result_with(query)
}
