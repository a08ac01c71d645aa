//! The legacy `session` establishment of RFC 3921, kept as a no-op for old clients
//! (RFC 6121 Appendix E); advertised as `<optional/>`.

use super::{Request, Target};
use crate::core::module::{Module, Registrar, Targets, Types};
use crate::xml::Element;
use crate::xmpp::error::Condition;
use std::sync::Arc;

pub fn handle(request: &Request) -> Element {
    match request.target {
        Target::Server(_) if !request.is_get() => request.result(),
        Target::Account(bare) if !request.is_get() && *bare == request.sender.to_bare() => request.result(),
        _ => request.error(Condition::BadRequest),
    }
}

pub struct LegacySession;

impl Module for LegacySession {
    fn name(&self) -> &'static str {
        "RFC 3921 session"
    }

    fn register(self: Arc<Self>, api: &mut Registrar) {
        api.iq(Some("session"), crate::xml::NS_SESSION, Types::GetAndSet, Targets::SERVER_AND_ACCOUNT, |r| {
            handle(r).into()
        });
    }
}
