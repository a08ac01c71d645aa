//! XEP-0092 software version of the server. The operating system is not disclosed.

use super::{Request, Target};
use crate::core::module::{Module, Registrar, Scope, Targets, Types};
use crate::xml::{el, Element, ElementExt};
use crate::xmpp::error::Condition;
use std::sync::Arc;

pub use crate::xml::ns::VERSION as NS;

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

pub struct Version;

impl Module for Version {
    fn name(&self) -> &'static str {
        "XEP-0092"
    }

    fn register(self: Arc<Self>, api: &mut Registrar) {
        api.iq(Some("query"), NS, Types::GetAndSet, Targets::SERVER, |r| handle(r).into());
        api.feature(Scope::Server, NS);
    }
}
