//! Stream errors (RFC 6120 §4.9.3): the faults that end a stream.

use crate::xml::framer::FramerError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamCondition {
    BadFormat,
    Conflict,
    ConnectionTimeout,
    HostUnknown,
    ImproperAddressing,
    InternalServerError,
    InvalidFrom,
    InvalidNamespace,
    NotAuthorized,
    NotWellFormed,
    PolicyViolation,
    Reset,
    ResourceConstraint,
    RestrictedXml,
    SystemShutdown,
    UndefinedCondition,
    UnsupportedEncoding,
    UnsupportedFeature,
    UnsupportedStanzaType,
    UnsupportedVersion,
}

impl StreamCondition {
    pub fn name(self) -> &'static str {
        use StreamCondition::*;
        match self {
            BadFormat => "bad-format",
            Conflict => "conflict",
            ConnectionTimeout => "connection-timeout",
            HostUnknown => "host-unknown",
            ImproperAddressing => "improper-addressing",
            InternalServerError => "internal-server-error",
            InvalidFrom => "invalid-from",
            InvalidNamespace => "invalid-namespace",
            NotAuthorized => "not-authorized",
            NotWellFormed => "not-well-formed",
            PolicyViolation => "policy-violation",
            Reset => "reset",
            ResourceConstraint => "resource-constraint",
            RestrictedXml => "restricted-xml",
            SystemShutdown => "system-shutdown",
            UndefinedCondition => "undefined-condition",
            UnsupportedEncoding => "unsupported-encoding",
            UnsupportedFeature => "unsupported-feature",
            UnsupportedStanzaType => "unsupported-stanza-type",
            UnsupportedVersion => "unsupported-version",
        }
    }
}

/// Why a stream ends.
#[derive(Debug)]
pub enum StreamEnd {
    /// We send this stream error, then close.
    Error(StreamCondition, String),
    /// The peer closed the stream or the connection: nothing more to send but our close tag.
    PeerClosed,
    /// We close the stream without a stream error (after a STARTTLS `<failure/>`).
    ServerClosed(&'static str),
    /// The transport failed: nothing can be sent.
    Io(std::io::Error),
}

impl StreamEnd {
    pub fn error(condition: StreamCondition, text: impl Into<String>) -> StreamEnd {
        StreamEnd::Error(condition, text.into())
    }
}

impl From<FramerError> for StreamEnd {
    fn from(e: FramerError) -> StreamEnd {
        let text = e.to_string();
        match e {
            FramerError::RestrictedXml(_) => StreamEnd::Error(StreamCondition::RestrictedXml, text),
            FramerError::NotWellFormed(_) => StreamEnd::Error(StreamCondition::NotWellFormed, text),
            FramerError::PolicyViolation(_) => StreamEnd::Error(StreamCondition::PolicyViolation, text),
            FramerError::UnsupportedEncoding(_) => StreamEnd::Error(StreamCondition::UnsupportedEncoding, text),
            FramerError::Eof => StreamEnd::PeerClosed,
            FramerError::Io(e) => StreamEnd::Io(e),
        }
    }
}

impl From<std::io::Error> for StreamEnd {
    fn from(e: std::io::Error) -> StreamEnd {
        StreamEnd::Io(e)
    }
}

/// The operator's line for how a stream ended.
pub fn log_end(end: &StreamEnd) {
    match end {
        StreamEnd::Error(condition, text) => {
            tracing::info!(condition = condition.name(), ?text, "stream error")
        }
        StreamEnd::PeerClosed => tracing::info!("stream closed by the client"),
        StreamEnd::ServerClosed(reason) => tracing::warn!("stream closed: {reason}"),
        StreamEnd::Io(e) => tracing::info!(error = %e, "connection lost"),
    }
}
