//! Lexical rules of XML 1.0 and Namespaces in XML as the framer applies them: whitespace,
//! names, the attribute list of a start tag, character data, attribute values, entity
//! and character references, and the XML declaration.

use quick_xml::events::BytesDecl;

use super::{nwf, FramerError};

/// Byte offsets of one attribute inside the raw attribute string.
#[derive(Debug, Clone, Copy)]
pub(super) struct RawAttr {
    pub(super) name_start: usize,
    pub(super) name_end: usize,
    pub(super) value_start: usize,
    pub(super) value_end: usize,
}

/// Validates the XML declaration: `version='1.0'`, optional UTF-8
/// `encoding`, optional `standalone`, in that order.
pub(super) fn check_decl(decl: &BytesDecl<'_>) -> Result<(), FramerError> {
    let content: &str = decl;
    let raw = content.get(3..).ok_or_else(|| nwf("malformed XML declaration"))?;
    let mut attrs = Vec::new();
    scan_attributes(raw, &mut attrs, 4).map_err(|_| nwf("malformed XML declaration"))?;
    let mut pseudo = attrs.iter().map(|a| {
        Ok::<_, FramerError>((slice(raw, a.name_start, a.name_end)?, slice(raw, a.value_start, a.value_end)?))
    });
    match pseudo.next().transpose()? {
        Some(("version", "1.0")) => {}
        Some(("version", v)) => return Err(nwf(format!("unsupported XML version {v:?}"))),
        _ => return Err(nwf("XML declaration without version")),
    }
    let mut next = pseudo.next().transpose()?;
    if let Some(("encoding", enc)) = next {
        if !enc.eq_ignore_ascii_case("UTF-8") {
            return Err(FramerError::UnsupportedEncoding(enc.to_owned()));
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

pub(super) fn slice(s: &str, start: usize, end: usize) -> Result<&str, FramerError> {
    s.get(start..end).ok_or_else(|| nwf("malformed tag"))
}

/// XML `S` production.
pub(super) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

pub(super) fn is_all_ws(s: &str) -> bool {
    s.bytes().all(is_ws)
}

/// Splits the attribute part of a start tag (everything after the element
/// name) into name/value offsets, enforcing `(S Name S? '=' S? AttValue)* S?`.
/// Names and values are validated later.
pub(super) fn scan_attributes(raw: &str, out: &mut Vec<RawAttr>, max: usize) -> Result<(), FramerError> {
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
        let Some(off) = b.get(value_start..).and_then(|rest| rest.iter().position(|&c| c == quote)) else {
            return Err(nwf("unterminated attribute value"));
        };
        let value_end = value_start + off;
        i = value_end + 1;
        if out.len() >= max {
            return Err(FramerError::PolicyViolation(format!("more than {max} attributes on one element")));
        }
        out.push(RawAttr { name_start, name_end, value_start, value_end });
    }
}

/// Checks for U+FFFE / U+FFFF (UTF-8 `EF BF BE` / `EF BF BF`) at `i`.
fn is_noncharacter_at(b: &[u8], i: usize) -> bool {
    b.get(i + 1) == Some(&0xBF) && matches!(b.get(i + 2), Some(0xBE | 0xBF))
}

/// Appends character data (text or CDATA content, without references) to
/// `out`: checks every character against XML `Char`, normalises line ends,
/// and (for text) rejects `]]>`.
pub(super) fn push_text(raw: &str, out: &mut Vec<u8>, is_text: bool) -> Result<(), FramerError> {
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
pub(super) fn attribute_value(raw: &str) -> Result<String, FramerError> {
    let b = raw.as_bytes();
    if !b.iter().any(|&c| c < 0x20 || c == b'&' || c == b'<' || c == 0xEF) {
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
                let rest = raw.get(i + 1..).ok_or_else(|| nwf("malformed reference"))?;
                let semi = rest.find(';').ok_or_else(|| nwf("unterminated reference in attribute value"))?;
                let name = rest.get(..semi).ok_or_else(|| nwf("malformed reference"))?;
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
pub(super) fn resolve_reference(name: &str) -> Result<char, FramerError> {
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

/// XML 1.0 (5th edition) `NameStartChar`, without `:`, and without `[#xFDF0-#xFFFD]`:
/// rxml's names (and so minidom's writer) leave that range out, and an element the writer
/// cannot write would be forwarded or stored as nothing (found by fuzz/framer_bytes: a
/// child named with U+FEFF). One rule for every name the framer accepts.
fn is_name_start_char(c: char) -> bool {
    matches!(c,
        'A'..='Z' | '_' | 'a'..='z'
        | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}'
        | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}' | '\u{10000}'..='\u{EFFFF}')
}

/// XML 1.0 (5th edition) `NameChar`, without `:`.
fn is_name_char(c: char) -> bool {
    is_name_start_char(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// Namespaces in XML `NCName`.
pub(super) fn is_ncname(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if is_name_start_char(c) => chars.all(is_name_char),
        _ => false,
    }
}

/// Splits a `QName` into optional prefix and local part, validating both.
pub(super) fn split_qname(qname: &str) -> Result<(Option<&str>, &str), FramerError> {
    let (prefix, local) = match qname.split_once(':') {
        Some((p, l)) => (Some(p), l),
        None => (None, qname),
    };
    if prefix.is_some_and(|p| !is_ncname(p)) || !is_ncname(local) {
        return Err(nwf(format!("invalid name {qname:?}")));
    }
    Ok((prefix, local))
}
