//! The legacy `session` establishment of RFC 3921, kept as a no-op for old clients
//! (RFC 6121 Appendix E); advertised as `<optional/>`.

use super::{Request, Target};
use crate::error::Condition;
use crate::xml::Element;

pub fn handle(request: &Request) -> Element {
    match request.target {
        Target::Server(_) if !request.is_get() => request.result(),
        Target::Account(bare) if !request.is_get() && *bare == request.sender.to_bare() => request.result(),
        _ => request.error(Condition::BadRequest),
    }
}
