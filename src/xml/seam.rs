//! The transport seam: negotiation and the session read frames through a [`FrameReader`]
//! and write bytes through a [`ByteWriter`], and never name a socket. A byte stream, plain
//! TCP or TLS (`transport::stream`), is one implementation; a WebSocket (RFC 7395: one
//! element per message, no STARTTLS) or a server-to-server stream is another.

use super::framer::{Frame, FramerError, Limits};
use std::any::Any;
use std::future::Future;
use std::io;
use std::pin::Pin;

/// A future a transport returns (boxed: the traits are used as objects).
pub type Io<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The reading side of a connection: the peer's stream, one frame at a time (a stream
/// header, a top-level element, the stream's close).
pub trait FrameReader: Send + 'static {
    /// Reads until the next frame is complete. Not cancel-safe: a caller that waits on
    /// other things too keeps one read going across its turns.
    fn next_frame(&mut self) -> Io<'_, Result<Frame, FramerError>>;

    /// A stream restart (RFC 6120 §4.3.3, after SASL): a new stream header is expected.
    fn restart(&mut self);

    /// The limits on what the peer may send (larger once it authenticated).
    fn set_limits(&mut self, limits: Limits);

    /// Whether the peer sent more than whitespace that is not read yet (RFC 6120 §5.4.3.3:
    /// nothing may follow `<starttls/>`).
    fn has_buffered_content(&self) -> bool;

    /// The implementation, for the transport that made it (STARTTLS takes its socket back).
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
}

/// How a stream's start and end are written on a transport.
pub trait Framing: Send + Sync {
    /// Our opening (RFC 6120 §4.7.3 on a byte stream; RFC 7395 §3.3.2 `<open/>` on a
    /// WebSocket), with a fresh stream id; `to` echoes the client's `from`.
    fn open(&self, from: &str, id: &str, to: Option<&str>) -> String;

    /// Our closing (RFC 6120 §4.4; RFC 7395 §3.6 `<close/>`).
    fn close(&self) -> &'static str;

    /// A stream error and the closing (RFC 6120 §4.9). Outside a byte stream's root
    /// element the `stream` prefix is declared on the error itself (RFC 7395 §3.6).
    fn error(&self, condition: &str, text: Option<&str>) -> String {
        let error = super::writer::stream_error_element(condition, text);
        let declared = format!("<stream:error xmlns:stream='{}'>", super::NS_STREAM);
        error.replacen("<stream:error>", &declared, 1) + self.close()
    }
}

/// `<stream:stream>` … `</stream:stream>`: a byte stream's framing (RFC 6120 §4).
pub struct ByteStream;

impl Framing for ByteStream {
    fn open(&self, from: &str, id: &str, to: Option<&str>) -> String {
        super::writer::stream_header(from, id, to)
    }

    fn close(&self) -> &'static str {
        super::writer::STREAM_CLOSE
    }

    /// Inside `<stream:stream>`, whose header declared the prefix.
    fn error(&self, condition: &str, text: Option<&str>) -> String {
        super::writer::stream_error(condition, text)
    }
}

/// The writing side of a connection.
pub trait ByteWriter: Send + 'static {
    /// How this transport writes a stream's start and end.
    fn framing(&self) -> &'static dyn Framing {
        &ByteStream
    }

    fn write_all<'a>(&'a mut self, bytes: &'a [u8]) -> Io<'a, io::Result<()>>;

    fn flush(&mut self) -> Io<'_, io::Result<()>>;

    /// Closes the writing side (after the stream's last words).
    fn shutdown(&mut self) -> Io<'_, io::Result<()>>;

    /// The implementation, for the transport that made it.
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
}
