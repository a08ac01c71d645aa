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
//! full) → tokio [`BufReader`] (holds read-ahead across a stream restart) →
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

use std::io;
use std::mem;
use std::sync::Arc;

use quick_xml::errors::Error as XmlError;
use quick_xml::events::{BytesDecl, BytesStart, Event};
use quick_xml::Reader;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use xmpp_parsers::minidom::rxml::{Namespace, NcName};
use xmpp_parsers::minidom::Element;

use super::budget::{is_budget_exceeded, Budget};

/// The namespace of `<stream:stream>`.
pub const STREAM_NS: &str = "http://etherx.jabber.org/streams";

/// The namespace bound to the `xml` prefix.
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
/// The namespace bound to the `xmlns` prefix.
const XMLNS_NS: &str = "http://www.w3.org/2000/xmlns/";

/// Capacity of the read buffer between the budget and the XML parser. It is
/// also the slack added to `max_stanza_bytes` when arming the budget.
pub const READ_BUFFER_CAPACITY: usize = 8 * 1024;

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
    /// Forbidden XML feature (DTD, comment, processing instruction, misplaced
    /// XML declaration): stream error `<restricted-xml/>`.
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

type Source<R> = BufReader<Budget<R>>;

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
        let source = BufReader::with_capacity(READ_BUFFER_CAPACITY, budget);
        Framer {
            reader: Some(make_reader(source)),
            buf: Vec::new(),
            machine: Machine::new(limits),
        }
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
                self.skip_whitespace(true).await?;
            } else if self.machine.phase == Phase::Prolog
                && self.machine.after_reset
                && self.machine.first_event
            {
                // After a stream restart, tolerate whitespace between the
                // previous stream's last element and the new XML declaration.
                self.skip_whitespace(false).await?;
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
        self.reader
            .as_ref()
            .is_some_and(|reader| !reader.get_ref().buffer().is_empty())
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
        _ if budget.exceeded() => {
            FramerError::PolicyViolation("element exceeds the size limit".into())
        }
        // The parser ran out of input in the middle of a token.
        _ if budget.eof_seen() => FramerError::Eof,
        err => nwf(err.to_string()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before the root start tag.
    Prolog,
    /// Inside the root element.
    Stream,
    /// The root was closed.
    Closed,
    /// An error was returned.
    Failed,
}

/// A namespace declaration in scope. `prefix` is empty for the default
/// namespace; `uri` is empty for an undeclared default namespace.
#[derive(Debug)]
struct Binding {
    prefix: String,
    uri: String,
}

/// Byte offsets of one attribute inside the raw attribute string.
#[derive(Debug, Clone, Copy)]
struct RawAttr {
    name_start: usize,
    name_end: usize,
    value_start: usize,
    value_end: usize,
}

/// The parsing state, separate from the byte source.
struct Machine {
    limits: Limits,
    phase: Phase,
    /// No event was handled yet by the current parser instance.
    first_event: bool,
    /// The current parser instance was created by `reset()`.
    after_reset: bool,
    /// Namespace declarations in scope (root first).
    ns: Vec<Binding>,
    /// `ns.len()` before the declarations of each open element (root first).
    scopes: Vec<usize>,
    /// Open elements of the stanza being built (stanza element first).
    stack: Vec<Element>,
    /// Pending (stitched) character data of the innermost open element.
    text: Vec<u8>,
    /// Scratch space for attribute parsing.
    attrs: Vec<RawAttr>,
    /// Parser position of the `<` of the current stanza.
    stanza_start: u64,
}

impl Machine {
    fn new(limits: Limits) -> Self {
        Machine {
            limits,
            phase: Phase::Prolog,
            first_event: true,
            after_reset: false,
            ns: Vec::new(),
            scopes: Vec::new(),
            stack: Vec::new(),
            text: Vec::new(),
            attrs: Vec::new(),
            stanza_start: 0,
        }
    }

    fn reset(&mut self) {
        self.phase = Phase::Prolog;
        self.first_event = true;
        self.after_reset = true;
        self.ns.clear();
        self.scopes.clear();
        self.stack.clear();
        self.text.clear();
        self.stanza_start = 0;
    }

    fn handle(
        &mut self,
        event: Event<'_>,
        before: u64,
        after: u64,
    ) -> Result<Option<Frame>, FramerError> {
        let first = mem::replace(&mut self.first_event, false);
        match self.phase {
            Phase::Prolog => self.handle_prolog(event, first, after),
            Phase::Stream if self.stack.is_empty() => self.handle_top_level(event, before, after),
            Phase::Stream => self.handle_in_stanza(event, after),
            Phase::Closed | Phase::Failed => Err(FramerError::Eof),
        }
    }

    fn handle_prolog(
        &mut self,
        event: Event<'_>,
        first: bool,
        after: u64,
    ) -> Result<Option<Frame>, FramerError> {
        match event {
            Event::Decl(decl) if first => {
                check_decl(&decl)?;
                Ok(None)
            }
            Event::Text(text) if is_all_ws(&text) => Ok(None),
            Event::Text(_) | Event::CData(_) | Event::GeneralRef(_) => {
                Err(nwf("character data before the stream header"))
            }
            Event::Start(start) => {
                if after > self.limits.max_stanza_bytes as u64 {
                    return Err(FramerError::PolicyViolation(
                        "stream header exceeds the size limit".into(),
                    ));
                }
                let header = self.open_root(&start)?;
                self.phase = Phase::Stream;
                Ok(Some(Frame::Header(header)))
            }
            Event::Empty(_) => Err(nwf("the stream header must not be self-closed")),
            Event::End(_) => Err(nwf("end tag before the stream header")),
            Event::Eof => Err(FramerError::Eof),
            other => Err(forbidden(&other)),
        }
    }

    fn handle_top_level(
        &mut self,
        event: Event<'_>,
        before: u64,
        after: u64,
    ) -> Result<Option<Frame>, FramerError> {
        match event {
            Event::Start(start) => {
                self.stanza_start = before;
                self.check_size(after)?;
                self.check_depth()?;
                let element = self.open_element(&start)?;
                self.stack.push(element);
                Ok(None)
            }
            Event::Empty(start) => {
                self.stanza_start = before;
                self.check_size(after)?;
                self.check_depth()?;
                let element = self.open_element(&start)?;
                self.close_scope();
                Ok(Some(Frame::Stanza(element)))
            }
            Event::End(_) => {
                // quick-xml has checked that it matches the root start tag.
                self.close_scope();
                self.phase = Phase::Closed;
                Ok(Some(Frame::Close))
            }
            Event::Text(text) if is_all_ws(&text) => Ok(None),
            Event::CData(data) if is_all_ws(&data) => Ok(None),
            Event::Text(_) | Event::CData(_) | Event::GeneralRef(_) => {
                Err(nwf("character data between stanzas"))
            }
            Event::Eof => Err(FramerError::Eof),
            other => Err(forbidden(&other)),
        }
    }

    fn handle_in_stanza(
        &mut self,
        event: Event<'_>,
        after: u64,
    ) -> Result<Option<Frame>, FramerError> {
        self.check_size(after)?;
        match event {
            Event::Start(start) => {
                self.check_depth()?;
                self.flush_text()?;
                let element = self.open_element(&start)?;
                self.stack.push(element);
                Ok(None)
            }
            Event::Empty(start) => {
                self.check_depth()?;
                self.flush_text()?;
                let element = self.open_element(&start)?;
                self.close_scope();
                if let Some(parent) = self.stack.last_mut() {
                    parent.append_child(element);
                }
                Ok(None)
            }
            Event::End(_) => {
                // quick-xml has checked that it matches the start tag.
                self.flush_text()?;
                self.close_scope();
                let Some(element) = self.stack.pop() else {
                    return Err(nwf("unbalanced end tag"));
                };
                match self.stack.last_mut() {
                    Some(parent) => {
                        parent.append_child(element);
                        Ok(None)
                    }
                    None => Ok(Some(Frame::Stanza(element))),
                }
            }
            Event::Text(text) => {
                push_text(&text, &mut self.text, true)?;
                Ok(None)
            }
            Event::CData(data) => {
                push_text(&data, &mut self.text, false)?;
                Ok(None)
            }
            Event::GeneralRef(reference) => {
                let c = resolve_reference(&reference)?;
                let mut utf8 = [0u8; 4];
                self.text
                    .extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                Ok(None)
            }
            Event::Eof => Err(FramerError::Eof),
            other => Err(forbidden(&other)),
        }
    }

    fn check_size(&self, after: u64) -> Result<(), FramerError> {
        if after.saturating_sub(self.stanza_start) > self.limits.max_stanza_bytes as u64 {
            Err(FramerError::PolicyViolation(format!(
                "element exceeds {} bytes",
                self.limits.max_stanza_bytes
            )))
        } else {
            Ok(())
        }
    }

    /// Checks that one more element may be opened.
    fn check_depth(&self) -> Result<(), FramerError> {
        if self.stack.len() >= self.limits.max_depth {
            Err(FramerError::PolicyViolation(format!(
                "elements nested deeper than {}",
                self.limits.max_depth
            )))
        } else {
            Ok(())
        }
    }

    fn flush_text(&mut self) -> Result<(), FramerError> {
        if self.text.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8(mem::take(&mut self.text))
            .map_err(|_| nwf("invalid UTF-8 in character data"))?;
        if let Some(element) = self.stack.last_mut() {
            element.append_text_node(text);
        }
        Ok(())
    }

    fn close_scope(&mut self) {
        if let Some(mark) = self.scopes.pop() {
            self.ns.truncate(mark);
        }
    }

    fn lookup(&self, prefix: &str) -> Option<&str> {
        self.ns
            .iter()
            .rev()
            .find(|b| b.prefix == prefix)
            .map(|b| b.uri.as_str())
    }

    fn open_root(&mut self, start: &BytesStart<'_>) -> Result<StreamHeader, FramerError> {
        let root = self.open_element(start)?;
        let mark = self.scopes.last().copied().unwrap_or(0);
        let default_ns = self
            .ns
            .get(mark..)
            .and_then(|decls| decls.iter().find(|b| b.prefix.is_empty()))
            .filter(|b| !b.uri.is_empty())
            .map(|b| b.uri.clone());
        let ns = root.ns();
        let attr = |name: &str| root.attr(name).map(str::to_owned);
        Ok(StreamHeader {
            ns: if ns.is_empty() { None } else { Some(ns) },
            local_name: root.name().to_owned(),
            default_ns,
            to: attr("to"),
            from: attr("from"),
            id: attr("id"),
            version: attr("version"),
            lang: root.attr_ns(&Namespace::XML, "lang").map(str::to_owned),
        })
    }

    /// Validates a start tag, opens its namespace scope and builds the
    /// (childless) element.
    fn open_element(&mut self, start: &BytesStart<'_>) -> Result<Element, FramerError> {
        let content: &str = start;
        let qname = content
            .get(..start.name().as_ref().len())
            .ok_or_else(|| nwf("invalid element name"))?;
        let (prefix, local) = split_qname(qname)?;
        let raw = start.attributes_raw();
        let mut attrs = mem::take(&mut self.attrs);
        let result = self.open_element_with(prefix, local, raw, &mut attrs);
        self.attrs = attrs;
        result
    }

    fn open_element_with(
        &mut self,
        prefix: Option<&str>,
        local: &str,
        raw: &str,
        attrs: &mut Vec<RawAttr>,
    ) -> Result<Element, FramerError> {
        scan_attributes(raw, attrs, self.limits.max_attributes)?;
        let mark = self.ns.len();
        self.scopes.push(mark);

        // Pass 1: namespace declarations (they apply to the element itself and
        // to all of its attributes, whatever the order).
        for a in attrs.iter() {
            let name = slice(raw, a.name_start, a.name_end)?;
            let decl_prefix = if name == "xmlns" {
                ""
            } else if let Some(p) = name.strip_prefix("xmlns:") {
                if !is_ncname(p) {
                    return Err(nwf(format!("invalid namespace prefix {p:?}")));
                }
                p
            } else {
                continue;
            };
            let uri = attribute_value(slice(raw, a.value_start, a.value_end)?)?;
            check_declaration(decl_prefix, &uri)?;
            if self.ns[mark..].iter().any(|b| b.prefix == decl_prefix) {
                return Err(nwf(format!("duplicate attribute {name:?}")));
            }
            self.ns.push(Binding {
                prefix: decl_prefix.to_owned(),
                uri,
            });
        }

        let ns = match prefix {
            None => self.lookup("").unwrap_or("").to_owned(),
            Some("xml") => XML_NS.to_owned(),
            Some("xmlns") => return Err(nwf("element names must not use the xmlns prefix")),
            Some(p) => self
                .lookup(p)
                .ok_or_else(|| nwf(format!("unbound element prefix {p:?}")))?
                .to_owned(),
        };
        let mut element = Element::bare(local.to_owned(), ns);

        // Pass 2: ordinary attributes.
        for a in attrs.iter() {
            let name = slice(raw, a.name_start, a.name_end)?;
            if name == "xmlns" || name.starts_with("xmlns:") {
                continue;
            }
            let (attr_prefix, attr_local) = split_qname(name)?;
            let attr_ns = match attr_prefix {
                None => Namespace::NONE,
                Some("xml") => Namespace::XML,
                Some(p) => match self.lookup(p) {
                    Some(uri) => Namespace::from(uri.to_owned()),
                    None => return Err(nwf(format!("unbound attribute prefix {p:?}"))),
                },
            };
            let attr_name = NcName::try_from(attr_local)
                .map_err(|_| nwf(format!("invalid attribute name {name:?}")))?;
            let value = attribute_value(slice(raw, a.value_start, a.value_end)?)?;
            if element
                .attrs_mut()
                .insert(attr_ns, attr_name, value)
                .is_some()
            {
                return Err(nwf(format!("duplicate attribute {name:?}")));
            }
        }
        Ok(element)
    }
}

/// The error for an event that is never allowed where it occurred.
fn forbidden(event: &Event<'_>) -> FramerError {
    match event {
        Event::Comment(_) => restricted("comments are not allowed"),
        Event::PI(_) => restricted("processing instructions are not allowed"),
        Event::DocType(_) => restricted("document type declarations are not allowed"),
        Event::Decl(_) => restricted("XML declaration is only allowed at the start of the stream"),
        _ => nwf("unexpected markup"),
    }
}

/// Checks a namespace declaration (`prefix` is empty for `xmlns=`).
fn check_declaration(prefix: &str, uri: &str) -> Result<(), FramerError> {
    match prefix {
        "xmlns" => Err(nwf("the xmlns prefix must not be declared")),
        "xml" if uri == XML_NS => Ok(()),
        "xml" => Err(nwf("the xml prefix must not be rebound")),
        _ if uri == XML_NS || uri == XMLNS_NS => {
            Err(nwf(format!("namespace {uri:?} must not be declared")))
        }
        "" => Ok(()),
        _ if uri.is_empty() => Err(nwf(format!("prefix {prefix:?} must not be undeclared"))),
        _ => Ok(()),
    }
}

/// Validates the XML declaration: `version='1.0'`, optional UTF-8
/// `encoding`, optional `standalone`, in that order.
fn check_decl(decl: &BytesDecl<'_>) -> Result<(), FramerError> {
    let content: &str = decl;
    let raw = content
        .get(3..)
        .ok_or_else(|| nwf("malformed XML declaration"))?;
    let mut attrs = Vec::new();
    scan_attributes(raw, &mut attrs, 4).map_err(|_| nwf("malformed XML declaration"))?;
    let mut pseudo = attrs.iter().map(|a| {
        Ok::<_, FramerError>((
            slice(raw, a.name_start, a.name_end)?,
            slice(raw, a.value_start, a.value_end)?,
        ))
    });
    match pseudo.next().transpose()? {
        Some(("version", "1.0")) => {}
        Some(("version", v)) => return Err(nwf(format!("unsupported XML version {v:?}"))),
        _ => return Err(nwf("XML declaration without version")),
    }
    let mut next = pseudo.next().transpose()?;
    if let Some(("encoding", enc)) = next {
        if !enc.eq_ignore_ascii_case("UTF-8") {
            return Err(nwf(format!("unsupported encoding {enc:?}")));
        }
        next = pseudo.next().transpose()?;
    }
    if let Some(("standalone", sd)) = next {
        if sd != "yes" && sd != "no" {
            return Err(nwf("invalid standalone value"));
        }
        next = pseudo.next().transpose()?;
    }
    match next {
        None => Ok(()),
        Some((name, _)) => Err(nwf(format!("unexpected {name:?} in XML declaration"))),
    }
}

fn slice(s: &str, start: usize, end: usize) -> Result<&str, FramerError> {
    s.get(start..end).ok_or_else(|| nwf("malformed tag"))
}

/// XML `S` production.
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_all_ws(s: &str) -> bool {
    s.bytes().all(is_ws)
}

/// Splits the attribute part of a start tag (everything after the element
/// name) into name/value offsets, enforcing `(S Name S? '=' S? AttValue)* S?`.
/// Names and values are validated later.
fn scan_attributes(raw: &str, out: &mut Vec<RawAttr>, max: usize) -> Result<(), FramerError> {
    out.clear();
    let b = raw.as_bytes();
    let len = b.len();
    let mut i = 0;
    loop {
        let ws_start = i;
        while i < len && is_ws(b[i]) {
            i += 1;
        }
        if i >= len {
            return Ok(());
        }
        if i == ws_start {
            return Err(nwf("missing whitespace between attributes"));
        }
        let name_start = i;
        while i < len && !is_ws(b[i]) && b[i] != b'=' {
            i += 1;
        }
        let name_end = i;
        while i < len && is_ws(b[i]) {
            i += 1;
        }
        if i >= len || b[i] != b'=' {
            return Err(nwf("attribute without value"));
        }
        i += 1;
        while i < len && is_ws(b[i]) {
            i += 1;
        }
        let quote = match b.get(i) {
            Some(&q) if q == b'"' || q == b'\'' => q,
            _ => return Err(nwf("unquoted attribute value")),
        };
        i += 1;
        let value_start = i;
        let Some(off) = b
            .get(value_start..)
            .and_then(|rest| rest.iter().position(|&c| c == quote))
        else {
            return Err(nwf("unterminated attribute value"));
        };
        let value_end = value_start + off;
        i = value_end + 1;
        if out.len() >= max {
            return Err(FramerError::PolicyViolation(format!(
                "more than {max} attributes on one element"
            )));
        }
        out.push(RawAttr {
            name_start,
            name_end,
            value_start,
            value_end,
        });
    }
}

/// Checks for U+FFFE / U+FFFF (UTF-8 `EF BF BE` / `EF BF BF`) at `i`.
fn is_noncharacter_at(b: &[u8], i: usize) -> bool {
    b.get(i + 1) == Some(&0xBF) && matches!(b.get(i + 2), Some(0xBE | 0xBF))
}

/// Appends character data (text or CDATA content, without references) to
/// `out`: checks every character against XML `Char`, normalises line ends,
/// and (for text) rejects `]]>`.
fn push_text(raw: &str, out: &mut Vec<u8>, is_text: bool) -> Result<(), FramerError> {
    let b = raw.as_bytes();
    let mut run = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\r' => {
                out.extend_from_slice(&b[run..i]);
                out.push(b'\n');
                if b.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                run = i + 1;
            }
            b'\t' | b'\n' => {}
            0..=0x1F => return Err(nwf("control character in character data")),
            0xEF if is_noncharacter_at(b, i) => {
                return Err(nwf("U+FFFE or U+FFFF in character data"));
            }
            b']' if is_text && b.get(i + 1) == Some(&b']') && b.get(i + 2) == Some(&b'>') => {
                return Err(nwf("']]>' in character data"));
            }
            b'<' | b'&' if is_text => return Err(nwf("unexpected markup character in text")),
            _ => {}
        }
        i += 1;
    }
    out.extend_from_slice(&b[run..]);
    Ok(())
}

/// Unescapes and normalises an attribute value (XML 1.0 §3.3.3, CDATA type):
/// references are resolved, literal whitespace characters become spaces,
/// `<`, control characters and unknown entities are rejected.
fn attribute_value(raw: &str) -> Result<String, FramerError> {
    let b = raw.as_bytes();
    if !b
        .iter()
        .any(|&c| c < 0x20 || c == b'&' || c == b'<' || c == 0xEF)
    {
        return Ok(raw.to_owned());
    }
    let mut out = Vec::with_capacity(b.len());
    let mut run = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'<' => return Err(nwf("'<' in attribute value")),
            b'&' => {
                out.extend_from_slice(&b[run..i]);
                let rest = raw
                    .get(i + 1..)
                    .ok_or_else(|| nwf("malformed reference"))?;
                let semi = rest
                    .find(';')
                    .ok_or_else(|| nwf("unterminated reference in attribute value"))?;
                let name = rest
                    .get(..semi)
                    .ok_or_else(|| nwf("malformed reference"))?;
                let c = resolve_reference(name)?;
                let mut utf8 = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                i += semi + 2;
                run = i;
                continue;
            }
            b'\r' => {
                out.extend_from_slice(&b[run..i]);
                out.push(b' ');
                if b.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                run = i + 1;
            }
            b'\n' | b'\t' => {
                out.extend_from_slice(&b[run..i]);
                out.push(b' ');
                run = i + 1;
            }
            0..=0x1F => return Err(nwf("control character in attribute value")),
            0xEF if is_noncharacter_at(b, i) => {
                return Err(nwf("U+FFFE or U+FFFF in attribute value"));
            }
            _ => {}
        }
        i += 1;
    }
    out.extend_from_slice(b.get(run..).unwrap_or_default());
    String::from_utf8(out).map_err(|_| nwf("invalid UTF-8 in attribute value"))
}

/// Resolves the name of a reference (between `&` and `;`): one of the five
/// predefined entities or a character reference to an XML `Char`.
fn resolve_reference(name: &str) -> Result<char, FramerError> {
    let code = match name {
        "lt" => return Ok('<'),
        "gt" => return Ok('>'),
        "amp" => return Ok('&'),
        "apos" => return Ok('\''),
        "quot" => return Ok('"'),
        _ => {
            if let Some(hex) = name.strip_prefix("#x") {
                parse_number(hex, 16)
            } else if let Some(dec) = name.strip_prefix('#') {
                parse_number(dec, 10)
            } else {
                return Err(nwf(format!("undeclared entity {name:?}")));
            }
        }
    };
    code.and_then(char::from_u32)
        .filter(|&c| is_xml_char(c))
        .ok_or_else(|| nwf(format!("invalid character reference {name:?}")))
}

fn parse_number(digits: &str, radix: u32) -> Option<u32> {
    if digits.is_empty() {
        return None;
    }
    digits.chars().try_fold(0u32, |acc, c| {
        let d = c.to_digit(radix)?;
        acc.checked_mul(radix)?.checked_add(d)
    })
}

/// XML 1.0 `Char`.
fn is_xml_char(c: char) -> bool {
    matches!(c as u32, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

/// XML 1.0 (5th edition) `NameStartChar`, without `:`.
fn is_name_start_char(c: char) -> bool {
    matches!(c,
        'A'..='Z' | '_' | 'a'..='z'
        | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}'
        | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
}

/// XML 1.0 (5th edition) `NameChar`, without `:`.
fn is_name_char(c: char) -> bool {
    is_name_start_char(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// Namespaces in XML `NCName`.
fn is_ncname(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if is_name_start_char(c) => chars.all(is_name_char),
        _ => false,
    }
}

/// Splits a `QName` into optional prefix and local part, validating both.
fn split_qname(qname: &str) -> Result<(Option<&str>, &str), FramerError> {
    let (prefix, local) = match qname.split_once(':') {
        Some((p, l)) => (Some(p), l),
        None => (None, qname),
    };
    if prefix.is_some_and(|p| !is_ncname(p)) || !is_ncname(local) {
        return Err(nwf(format!("invalid name {qname:?}")));
    }
    Ok((prefix, local))
}
