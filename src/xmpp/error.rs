//! Stanza errors (RFC 6120 §8.3): faults in one stanza, answered with an error stanza while
//! the stream goes on. Framing faults are stream errors (`stream::error`).

use crate::xml::{el, Element, ElementExt, NS_CLIENT, NS_STANZA_ERRORS};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    BadRequest,
    Conflict,
    FeatureNotImplemented,
    Forbidden,
    InternalServerError,
    ItemNotFound,
    JidMalformed,
    NotAcceptable,
    NotAllowed,
    NotAuthorized,
    PolicyViolation,
    RecipientUnavailable,
    RemoteServerNotFound,
    ResourceConstraint,
    ServiceUnavailable,
    UnexpectedRequest,
}

impl Condition {
    pub fn name(self) -> &'static str {
        match self {
            Condition::BadRequest => "bad-request",
            Condition::Conflict => "conflict",
            Condition::FeatureNotImplemented => "feature-not-implemented",
            Condition::Forbidden => "forbidden",
            Condition::InternalServerError => "internal-server-error",
            Condition::ItemNotFound => "item-not-found",
            Condition::JidMalformed => "jid-malformed",
            Condition::NotAcceptable => "not-acceptable",
            Condition::NotAllowed => "not-allowed",
            Condition::NotAuthorized => "not-authorized",
            Condition::PolicyViolation => "policy-violation",
            Condition::RecipientUnavailable => "recipient-unavailable",
            Condition::RemoteServerNotFound => "remote-server-not-found",
            Condition::ResourceConstraint => "resource-constraint",
            Condition::ServiceUnavailable => "service-unavailable",
            Condition::UnexpectedRequest => "unexpected-request",
        }
    }

    /// The error type RFC 6120 §8.3.3 gives each condition.
    pub fn error_type(self) -> &'static str {
        match self {
            Condition::BadRequest | Condition::JidMalformed | Condition::NotAcceptable | Condition::PolicyViolation => {
                "modify"
            }
            Condition::Forbidden | Condition::NotAuthorized => "auth",
            Condition::RecipientUnavailable | Condition::ResourceConstraint | Condition::UnexpectedRequest => "wait",
            _ => "cancel",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}", condition.name(), text.as_deref().map(|t| format!(": {t}")).unwrap_or_default())]
pub struct StanzaError {
    pub condition: Condition,
    pub text: Option<String>,
}

impl StanzaError {
    pub fn new(condition: Condition) -> StanzaError {
        StanzaError { condition, text: None }
    }

    pub fn with_text(condition: Condition, text: &str) -> StanzaError {
        StanzaError { condition, text: Some(text.to_owned()) }
    }

    /// `<error type='..'><condition xmlns='..stanzas'/><text/></error>`
    pub fn to_element(&self) -> Element {
        let mut error = el("error", NS_CLIENT)
            .with("type", self.condition.error_type())
            .with_child(el(self.condition.name(), NS_STANZA_ERRORS));
        if let Some(text) = &self.text {
            error.append_child(el("text", NS_STANZA_ERRORS).with_text(text.as_str()));
        }
        error
    }
}
