//! Why one connection, login or exchange failed.

use stanzad::xml::framer::FramerError;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A network wait exceeded `--timeout`.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The run's `--max-secs` is over.
    #[error("the run's time (--max-secs) is over")]
    Deadline,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("xml: {0}")]
    Xml(#[from] FramerError),
    /// The server ended the stream (`</stream:stream>` or EOF) while we waited.
    #[error("stream closed while waiting for {0}")]
    Closed(&'static str),
    /// `<stream:error/>` with its condition.
    #[error("stream error {0}")]
    Stream(String),
    #[error("tls: {0}")]
    Tls(String),
    #[error("sasl: {0}")]
    Sasl(String),
    /// An iq error or an unexpected stanza.
    #[error("{0}")]
    Protocol(String),
}

impl BenchError {
    /// A short category for the failure tally.
    pub fn kind(&self) -> &'static str {
        match self {
            BenchError::Timeout(_) => "timeout",
            BenchError::Deadline => "deadline",
            BenchError::Io(_) => "io",
            BenchError::Xml(_) => "xml",
            BenchError::Closed(_) => "closed",
            BenchError::Stream(_) => "stream-error",
            BenchError::Tls(_) => "tls",
            BenchError::Sasl(_) => "sasl",
            BenchError::Protocol(_) => "protocol",
        }
    }
}

pub type Result<T, E = BenchError> = std::result::Result<T, E>;
