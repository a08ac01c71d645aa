//! Incremental, strict framer for an XMPP client-to-server stream.
//!
//! [`Framer`] reads an [`AsyncRead`] and yields one [`Frame`] per top-level
//! child of `<stream:stream>`: the stream header, every complete stanza (or
//! other top-level element) as a [`minidom::Element`](Element), and the
//! closing `</stream:stream>`.
//!
//! quick-xml does the tokenising; everything quick-xml is lenient about is
//! checked here, as RFC 6120 §11.1 requires: DTDs, comments, processing
//! instructions (→ [`FramerError::RestrictedXml`]), undeclared entities,
//! invalid character references, control characters, duplicate attributes
//! (also by expanded name), unbound prefixes, invalid names, `<` in attribute
//! values, unquoted attributes, missing whitespace between attributes, `]]>`
//! in text, misplaced XML declarations (→ [`FramerError::NotWellFormed`]).
//!
//! Byte source stack: `R` → [`Budget`] (bounds the bytes delivered per
//! top-level element, so that a single huge token cannot be buffered in
//! full) → [`LazyBuf`](super::lazy_buf::LazyBuf) (holds read-ahead across a stream restart,
//! and no buffer at all while waiting for the peer) →
//! quick-xml [`Reader`] (recreated on [`Framer::reset`]).
//!
//! # Cancel safety
//!
//! [`Framer::next`] is **not** cancel-safe: quick-xml moves the bytes of a
//! partially read token out of the buffer before the token is complete, and
//! the partially built stanza lives in the framer. Dropping the future of
//! `next()` before it completes loses data and leaves the framer in an
//! undefined (but memory-safe, non-panicking) state; the only sensible thing
//! to do afterwards is to drop the framer.
//!
//! # After an error or `Close`
//!
//! After `next()` returned an error or [`Frame::Close`], further calls return
//! [`FramerError::Eof`] without reading (until [`Framer::reset`]).

mod lexical;
mod machine;
#[cfg(test)]
mod tests;

use std::io;
use std::sync::Arc;

use quick_xml::errors::Error as XmlError;
use quick_xml::Reader;
use tokio::io::{AsyncBufReadExt, AsyncRead};
use xmpp_parsers::minidom::Element;

use self::lexical::is_ws;
use self::machine::{Machine, Phase};
use super::budget::{is_budget_exceeded, Budget};

/// The namespace of `<stream:stream>`.
/// The streams namespace (one definition: `xml::NS_STREAM`).
pub const STREAM_NS: &str = super::NS_STREAM;

/// Capacity of the read buffer between the budget and the XML parser. It is
/// also the slack added to `max_stanza_bytes` when arming the budget.
pub const READ_BUFFER_CAPACITY: usize = 8 * 1024;

/// Event buffer capacity kept across top-level elements; a larger buffer
/// (left by a large stanza) is released.
const RETAINED_BUFFER_CAPACITY: usize = 4 * READ_BUFFER_CAPACITY;

/// Resource limits enforced by the framer.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest serialized size (input bytes, from `<` to the final `>`) of one
    /// top-level element; also applies to the stream header including the XML
    /// declaration.
    pub max_stanza_bytes: usize,
    /// Deepest allowed nesting, counted from the stanza element (the stanza
    /// element itself is depth 1). `0` rejects every stanza.
    pub max_depth: usize,
    /// Most attributes allowed on one element, namespace declarations
    /// (`xmlns`, `xmlns:p`) included.
    pub max_attributes: usize,
}

/// The stream header (`<stream:stream ...>`) as sent by the peer. The framer
/// does not judge it; the caller checks names and namespaces.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamHeader {
    /// Resolved namespace URI of the root element (`None` if the root is
    /// unprefixed and no default namespace is in effect).
    pub ns: Option<String>,
    /// Local name of the root element, e.g. `stream`.
    pub local_name: String,
    /// The default namespace declared on the root (`xmlns="..."`), e.g.
    /// `jabber:client`; `None` if not declared or declared empty.
    pub default_ns: Option<String>,
    /// Unprefixed `to` attribute.
    pub to: Option<String>,
    /// Unprefixed `from` attribute.
    pub from: Option<String>,
    /// Unprefixed `id` attribute.
    pub id: Option<String>,
    /// Unprefixed `version` attribute.
    pub version: Option<String>,
    /// `xml:lang` attribute.
    pub lang: Option<String>,
}

/// One item of the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// The root start tag.
    Header(StreamHeader),
    /// A complete top-level child element of the root.
    Stanza(Element),
    /// `</stream:stream>` (the end tag of the root).
    Close,
}

/// Why the framer stopped.
#[derive(Debug, thiserror::Error)]
pub enum FramerError {
    /// An XML declaration naming an encoding other than UTF-8: stream error
    /// `<unsupported-encoding/>` (RFC 6120 §4.9.3.22).
    #[error("unsupported encoding {0:?}")]
    UnsupportedEncoding(String),
    /// Forbidden XML feature (DTD, comment, processing instruction): stream error
    /// `<restricted-xml/>`.
    #[error("restricted XML: {0}")]
    RestrictedXml(String),
    /// Not well-formed XML (or not namespace-well-formed): stream error
    /// `<not-well-formed/>`.
    #[error("not well-formed: {0}")]
    NotWellFormed(String),
    /// A size, depth or attribute-count limit was exceeded: stream error
    /// `<policy-violation/>`.
    #[error("policy violation: {0}")]
    PolicyViolation(String),
    /// The peer closed the connection (cleanly between frames or in the middle
    /// of a token).
    #[error("connection closed")]
    Eof,
    /// I/O error from the underlying reader.
    #[error(transparent)]
    Io(io::Error),
}

fn nwf(msg: impl Into<String>) -> FramerError {
    FramerError::NotWellFormed(msg.into())
}

fn restricted(msg: impl Into<String>) -> FramerError {
    FramerError::RestrictedXml(msg.into())
}

type Source<R> = super::lazy_buf::LazyBuf<Budget<R>>;

/// The incremental stream framer. See the [module documentation](self).
pub struct Framer<R> {
    /// Always `Some` outside of [`Framer::reset`] (which takes and puts it back
    /// without any fallible step in between).
    reader: Option<Reader<Source<R>>>,
    /// Event buffer, reused for every event.
    buf: Vec<u8>,
    machine: Machine,
}

impl<R: AsyncRead + Unpin> Framer<R> {
    /// Wraps `inner`. The budget for the stream header is armed with `limits`.
    pub fn new(inner: R, limits: Limits) -> Self {
        let budget = Budget::new(inner, budget_for(&limits));
        let source = super::lazy_buf::LazyBuf::with_capacity(READ_BUFFER_CAPACITY, budget);
        Framer { reader: Some(make_reader(source)), buf: Vec::new(), machine: Machine::new(limits) }
    }

    /// Reads until the next frame is complete.
    ///
    /// Not cancel-safe (see the [module documentation](self)).
    pub async fn next(&mut self) -> Result<Frame, FramerError> {
        if matches!(self.machine.phase, Phase::Closed | Phase::Failed) {
            return Err(FramerError::Eof);
        }
        let res = self.next_inner().await;
        if res.is_err() {
            self.machine.phase = Phase::Failed;
        }
        res
    }

    async fn next_inner(&mut self) -> Result<Frame, FramerError> {
        loop {
            if self.machine.phase == Phase::Stream && self.machine.stack.is_empty() {
                // Top-level element boundary: new byte budget, and whitespace
                // keepalives are discarded straight from the buffer (without
                // quick-xml accumulating them into one text event).
                self.rearm();
                if self.buf.capacity() > RETAINED_BUFFER_CAPACITY || !self.has_buffered_bytes() {
                    // Do not keep a large stanza's worth of memory per connection, nor any
                    // while it waits for its client.
                    self.buf = Vec::new();
                }
                self.skip_whitespace(true).await?;
            } else if self.machine.phase == Phase::Prolog && self.machine.after_reset && self.machine.first_event {
                // After a stream restart, tolerate whitespace between the
                // previous stream's last element and the new XML declaration.
                self.skip_whitespace(false).await?;
            }
            if self.machine.phase == Phase::Prolog && self.machine.first_event {
                self.check_stream_start().await?;
            }
            let Some(reader) = self.reader.as_mut() else {
                return Err(poisoned());
            };
            self.buf.clear();
            let before = reader.buffer_position();
            let event = reader.read_event_into_async(&mut self.buf).await;
            let after = reader.buffer_position();
            let event = match event {
                Ok(event) => event,
                Err(err) => return Err(map_xml_error(err, reader.get_ref().get_ref())),
            };
            if let Some(frame) = self.machine.handle(event, before, after)? {
                return Ok(frame);
            }
        }
    }

    /// Consumes ASCII whitespace directly from the read buffer. Stops at the
    /// first other byte or at EOF (left for the parser to report).
    async fn skip_whitespace(&mut self, rearm: bool) -> Result<(), FramerError> {
        let budget = budget_for(&self.machine.limits);
        let Some(reader) = self.reader.as_mut() else {
            return Err(poisoned());
        };
        let source = reader.get_mut();
        loop {
            let n = match source.fill_buf().await {
                Ok(available) => available.iter().take_while(|b| is_ws(**b)).count(),
                Err(err) => return Err(map_io_error(err, source.get_ref())),
            };
            if n == 0 {
                return Ok(());
            }
            source.consume(n);
            if rearm {
                source.get_mut().rearm(budget);
            }
        }
    }

    /// A stream starts with `<` (the XML declaration or the header), or whitespace; any
    /// other first byte is character data before the stream header. Decided on that byte
    /// alone, so that the decision does not depend on how the bytes arrive: quick-xml drops
    /// a UTF-8 byte order mark that its first read returns whole (and keeps one split
    /// across reads), and may report text with invalid UTF-8 only at the end of the input.
    /// RFC 6120 §11.6: U+FEFF is a zero-width no-break space in XMPP, never a byte order
    /// mark.
    async fn check_stream_start(&mut self) -> Result<(), FramerError> {
        let Some(reader) = self.reader.as_mut() else {
            return Err(poisoned());
        };
        let source = reader.get_mut();
        match source.fill_buf().await {
            Ok([first, ..]) if *first != b'<' && !is_ws(*first) => Err(nwf("character data before the stream header")),
            Ok(_) => Ok(()),
            Err(err) => Err(map_io_error(err, source.get_ref())),
        }
    }

    fn rearm(&mut self) {
        let budget = budget_for(&self.machine.limits);
        if let Some(reader) = self.reader.as_mut() {
            reader.get_mut().get_mut().rearm(budget);
        }
    }

    /// Stream restart (after SASL success): a fresh parser state that expects
    /// an optional XML declaration and a new stream header. Bytes already read
    /// from the peer but not yet parsed are kept. Also re-arms the byte budget.
    pub fn reset(&mut self) {
        if let Some(reader) = self.reader.take() {
            self.reader = Some(make_reader(reader.into_inner()));
        }
        self.machine.reset();
        self.buf.clear();
        self.rearm();
    }

    /// `true` if bytes were read from the peer but not parsed yet (checked
    /// before a STARTTLS upgrade: such bytes must not be processed).
    pub fn has_buffered_bytes(&self) -> bool {
        self.reader.as_ref().is_some_and(|reader| !reader.get_ref().buffer().is_empty())
    }

    /// `true` if bytes other than XML whitespace were read but not parsed yet.
    /// Whitespace between top-level elements is allowed (RFC 6120 §11.7), so a
    /// newline after `<starttls/>` is no reason to refuse the upgrade; anything
    /// else is (CVE-2011-0411).
    pub fn has_buffered_content(&self) -> bool {
        self.reader
            .as_ref()
            .is_some_and(|reader| reader.get_ref().buffer().iter().any(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n')))
    }

    /// Replaces the limits (e.g. the small pre-authentication budget by the
    /// full one) and re-arms the byte budget with them.
    pub fn set_limits(&mut self, limits: Limits) {
        self.machine.limits = limits;
        self.rearm();
    }

    /// Unwraps the underlying reader. Bytes in the read buffer are dropped:
    /// check [`has_buffered_bytes`](Self::has_buffered_bytes) first.
    pub fn into_inner(self) -> R {
        match self.reader {
            Some(reader) => reader.into_inner().into_inner().into_inner(),
            // `reader` is only `None` inside `reset()`, which cannot be
            // interrupted between taking and restoring it.
            None => unreachable!("framer reader is always present"),
        }
    }

    /// Mutable access to the underlying reader (e.g. to write to a socket).
    /// Reading from it directly bypasses the framer and its buffer.
    pub fn get_mut(&mut self) -> &mut R {
        match self.reader.as_mut() {
            Some(reader) => reader.get_mut().get_mut().get_mut(),
            // See `into_inner`.
            None => unreachable!("framer reader is always present"),
        }
    }
}

fn poisoned() -> FramerError {
    FramerError::Io(io::Error::other("framer reader missing"))
}

fn budget_for(limits: &Limits) -> usize {
    limits.max_stanza_bytes.saturating_add(READ_BUFFER_CAPACITY)
}

fn make_reader<S>(source: S) -> Reader<S> {
    let mut reader = Reader::from_reader(source);
    let config = reader.config_mut();
    config.allow_dangling_amp = false;
    config.allow_unmatched_ends = false;
    config.check_end_names = true;
    config.expand_empty_elements = false;
    config.trim_markup_names_in_closing_tags = true;
    config.trim_text(false);
    reader
}

fn map_io_error<R>(err: io::Error, budget: &Budget<R>) -> FramerError {
    if budget.exceeded() || is_budget_exceeded(&err) {
        FramerError::PolicyViolation("element exceeds the size limit".into())
    } else if err.kind() == io::ErrorKind::UnexpectedEof {
        FramerError::Eof
    } else {
        FramerError::Io(err)
    }
}

fn map_xml_error<R>(err: XmlError, budget: &Budget<R>) -> FramerError {
    match err {
        XmlError::Io(err) => {
            let err = Arc::try_unwrap(err).unwrap_or_else(|e| io::Error::new(e.kind(), e.to_string()));
            map_io_error(err, budget)
        }
        _ if budget.exceeded() => FramerError::PolicyViolation("element exceeds the size limit".into()),
        // The parser ran out of input in the middle of a token.
        _ if budget.eof_seen() => FramerError::Eof,
        err => nwf(err.to_string()),
    }
}
