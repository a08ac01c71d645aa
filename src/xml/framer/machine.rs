//! The framer's state machine: what each quick-xml event means in the current phase
//! (prolog, between stanzas, inside a stanza), namespace scopes, the stanza tree being
//! built, and the size, depth and memory limits checked on the way.

use std::mem;

use quick_xml::events::{BytesStart, Event};
use xmpp_parsers::minidom::rxml::{Namespace, NcName};
use xmpp_parsers::minidom::Element;

use super::lexical::{
    attribute_value, check_decl, is_all_ws, is_ncname, push_text, resolve_reference, scan_attributes, slice,
    split_qname, RawAttr,
};
use super::{nwf, restricted, Frame, FramerError, Limits, StreamHeader};

/// The namespace bound to the `xml` prefix.
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
/// The namespace bound to the `xmlns` prefix.
const XMLNS_NS: &str = "http://www.w3.org/2000/xmlns/";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
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

/// The parsing state, separate from the byte source.
pub(super) struct Machine {
    pub(super) limits: Limits,
    pub(super) phase: Phase,
    /// No event was handled yet by the current parser instance.
    pub(super) first_event: bool,
    /// The current parser instance was created by `reset()`.
    pub(super) after_reset: bool,
    /// Namespace declarations in scope (root first).
    ns: Vec<Binding>,
    /// `ns.len()` before the declarations of each open element (root first).
    scopes: Vec<usize>,
    /// Open elements of the stanza being built (stanza element first).
    pub(super) stack: Vec<Element>,
    /// Pending (stitched) character data of the innermost open element.
    text: Vec<u8>,
    /// Scratch space for attribute parsing.
    attrs: Vec<RawAttr>,
    /// Parser position of the `<` of the current stanza.
    stanza_start: u64,
    /// Memory the current stanza's tree costs so far (see [`Machine::charge`]).
    built: usize,
}

/// Longest namespace name accepted: every element copies its namespace, so a long one
/// repeated on many small elements would multiply memory far beyond the byte limit.
pub(super) const MAX_NAMESPACE_BYTES: usize = 1024;
/// What one element or attribute costs in memory besides its strings (a rough upper bound).
const NODE_OVERHEAD: usize = 128;
/// A stanza's tree may cost this many times its byte limit before it is refused.
const BUILT_FACTOR: usize = 16;

impl Machine {
    pub(super) fn new(limits: Limits) -> Self {
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
            built: 0,
        }
    }

    pub(super) fn reset(&mut self) {
        self.phase = Phase::Prolog;
        self.first_event = true;
        self.after_reset = true;
        self.ns.clear();
        self.scopes.clear();
        self.stack.clear();
        self.text.clear();
        self.stanza_start = 0;
    }

    pub(super) fn handle(&mut self, event: Event<'_>, before: u64, after: u64) -> Result<Option<Frame>, FramerError> {
        let first = mem::replace(&mut self.first_event, false);
        match self.phase {
            Phase::Prolog => self.handle_prolog(event, first, after),
            Phase::Stream if self.stack.is_empty() => self.handle_top_level(event, before, after),
            Phase::Stream => self.handle_in_stanza(event, after),
            Phase::Closed | Phase::Failed => Err(FramerError::Eof),
        }
    }

    fn handle_prolog(&mut self, event: Event<'_>, first: bool, after: u64) -> Result<Option<Frame>, FramerError> {
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
                    return Err(FramerError::PolicyViolation("stream header exceeds the size limit".into()));
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

    fn handle_top_level(&mut self, event: Event<'_>, before: u64, after: u64) -> Result<Option<Frame>, FramerError> {
        match event {
            Event::Start(start) => {
                self.stanza_start = before;
                self.built = 0;
                self.check_size(after)?;
                self.check_depth()?;
                let element = self.open_element(&start)?;
                self.stack.push(element);
                Ok(None)
            }
            Event::Empty(start) => {
                self.stanza_start = before;
                self.built = 0;
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
            Event::Text(_) | Event::CData(_) | Event::GeneralRef(_) => Err(nwf("character data between stanzas")),
            Event::Eof => Err(FramerError::Eof),
            other => Err(forbidden(&other)),
        }
    }

    fn handle_in_stanza(&mut self, event: Event<'_>, after: u64) -> Result<Option<Frame>, FramerError> {
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
                self.text.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                Ok(None)
            }
            Event::Eof => Err(FramerError::Eof),
            other => Err(forbidden(&other)),
        }
    }

    fn check_size(&self, after: u64) -> Result<(), FramerError> {
        if after.saturating_sub(self.stanza_start) > self.limits.max_stanza_bytes as u64 {
            Err(FramerError::PolicyViolation(format!("element exceeds {} bytes", self.limits.max_stanza_bytes)))
        } else {
            Ok(())
        }
    }

    /// Checks that one more element may be opened.
    /// Adds to the memory the stanza's tree costs; refuses trees far larger than the
    /// bytes that described them.
    fn charge(&mut self, bytes: usize) -> Result<(), FramerError> {
        self.built = self.built.saturating_add(bytes + NODE_OVERHEAD);
        if self.built > self.limits.max_stanza_bytes.saturating_mul(BUILT_FACTOR) {
            return Err(FramerError::PolicyViolation("stanza expands to too much memory".into()));
        }
        Ok(())
    }

    fn check_depth(&self) -> Result<(), FramerError> {
        if self.stack.len() >= self.limits.max_depth {
            Err(FramerError::PolicyViolation(format!("elements nested deeper than {}", self.limits.max_depth)))
        } else {
            Ok(())
        }
    }

    fn flush_text(&mut self) -> Result<(), FramerError> {
        if self.text.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8(mem::take(&mut self.text)).map_err(|_| nwf("invalid UTF-8 in character data"))?;
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
        self.ns.iter().rev().find(|b| b.prefix == prefix).map(|b| b.uri.as_str())
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
        let qname = content.get(..start.name().as_ref().len()).ok_or_else(|| nwf("invalid element name"))?;
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
            if uri.len() > MAX_NAMESPACE_BYTES {
                return Err(FramerError::PolicyViolation(format!("namespace name over {MAX_NAMESPACE_BYTES} bytes")));
            }
            check_declaration(decl_prefix, &uri)?;
            if self.ns[mark..].iter().any(|b| b.prefix == decl_prefix) {
                return Err(nwf(format!("duplicate attribute {name:?}")));
            }
            self.ns.push(Binding { prefix: decl_prefix.to_owned(), uri });
        }

        let ns = match prefix {
            None => self.lookup("").unwrap_or("").to_owned(),
            Some("xml") => XML_NS.to_owned(),
            Some("xmlns") => return Err(nwf("element names must not use the xmlns prefix")),
            Some(p) => self.lookup(p).ok_or_else(|| nwf(format!("unbound element prefix {p:?}")))?.to_owned(),
        };
        self.charge(ns.len() + local.len())?;
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
            let attr_name =
                NcName::try_from(attr_local).map_err(|_| nwf(format!("invalid attribute name {name:?}")))?;
            let value = attribute_value(slice(raw, a.value_start, a.value_end)?)?;
            self.charge(attr_ns.as_str().len() + attr_local.len() + value.len())?;
            if element.attrs_mut().insert(attr_ns, attr_name, value).is_some() {
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
        // XML 1.0 §2.8: a declaration anywhere but the very start is a malformed document.
        Event::Decl(_) => nwf("XML declaration is only allowed at the start of the stream"),
        _ => nwf("unexpected markup"),
    }
}

/// Checks a namespace declaration (`prefix` is empty for `xmlns=`).
fn check_declaration(prefix: &str, uri: &str) -> Result<(), FramerError> {
    match prefix {
        "xmlns" => Err(nwf("the xmlns prefix must not be declared")),
        "xml" if uri == XML_NS => Ok(()),
        "xml" => Err(nwf("the xml prefix must not be rebound")),
        _ if uri == XML_NS || uri == XMLNS_NS => Err(nwf(format!("namespace {uri:?} must not be declared"))),
        "" => Ok(()),
        _ if uri.is_empty() => Err(nwf(format!("prefix {prefix:?} must not be undeclared"))),
        _ => Ok(()),
    }
}
