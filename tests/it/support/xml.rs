//! Structural comparison of a received element with an expected XML literal.
//!
//! # The rule
//!
//! The expectation is parsed inside a wrapper that declares `xmlns='jabber:client'` and
//! `xmlns:stream='http://etherx.jabber.org/streams'`, so `<iq/>` means a `jabber:client` iq
//! and `<stream:error/>` works without declarations. Then, recursively:
//!
//! * element name and namespace must be equal;
//! * every attribute of the expectation must be present with the same value; the value
//!   `{any}` accepts any value (but the attribute must be present) and `{absent}` requires
//!   the attribute to be missing;
//! * every attribute of the received element that the expectation does not mention must
//!   be absent, **except** `id` and `xml:lang`, which are ignored unless mentioned.
//!   `from` and `to` are strict: write them (or `{any}`) when the server sends them;
//! * child elements must match one to one, in order (same count);
//! * the text directly inside an element, trimmed, must be equal; an expected text of
//!   `{any}` accepts any text (including none).
//!
//! Namespace declarations and prefixes are not compared: `<s:stream xmlns:s='x'>` equals
//! `<stream:stream xmlns:stream='x'>`.

use xmpp_parsers::minidom::Element;

pub const ANY: &str = "{any}";
pub const ABSENT: &str = "{absent}";

/// Attributes ignored when the expectation does not mention them.
const LENIENT: &[&str] = &["id", "xml:lang"];

const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// Parses an expectation (see the module documentation for the implied namespaces).
pub fn parse(expected: &str) -> Element {
    let wrapped =
        format!("<wrapper xmlns='{}' xmlns:stream='{}'>{expected}</wrapper>", super::NS_CLIENT, super::NS_STREAM);
    let root: Element = wrapped.parse().unwrap_or_else(|e| panic!("bad expectation {expected:?}: {e}"));
    let mut children = root.children();
    let first = children.next().unwrap_or_else(|| panic!("expectation {expected:?} has no element")).clone();
    assert!(children.next().is_none(), "expectation {expected:?} must be one element");
    first
}

/// Serialises an element for messages.
pub fn show(element: &Element) -> String {
    let mut out = Vec::new();
    match element.write_to(&mut out) {
        Ok(()) => String::from_utf8_lossy(&out).into_owned(),
        Err(e) => format!("<unprintable {}: {e}>", element.name()),
    }
}

/// Panics unless `actual` matches `expected` (see the module documentation).
pub fn assert_matches(actual: &Element, expected: &str) {
    if let Err(difference) = matches(&parse(expected), actual) {
        panic!("element differs\n  want: {expected}\n  got:  {}\n  {difference}", show(actual));
    }
}

/// Compares by the rule of the module documentation; `Err` says where they differ.
pub fn matches(expected: &Element, actual: &Element) -> Result<(), String> {
    compare(expected, actual, &format!("/{}", actual.name()))
}

fn attributes(element: &Element) -> Vec<(String, String)> {
    element
        .attrs()
        .iter()
        .map(|((ns, name), value)| {
            let ns: &str = ns.as_ref();
            let key = if ns.is_empty() {
                name.to_string()
            } else if ns == XML_NS {
                format!("xml:{name}")
            } else {
                format!("{{{ns}}}{name}")
            };
            (key, value.clone())
        })
        .filter(|(key, _)| key != "xmlns" && !key.starts_with("xmlns:"))
        .collect()
}

fn compare(expected: &Element, actual: &Element, path: &str) -> Result<(), String> {
    if expected.name() != actual.name() || expected.ns() != actual.ns() {
        return Err(format!(
            "{path}: expected element {{{}}}{}, got {{{}}}{}",
            expected.ns(),
            expected.name(),
            actual.ns(),
            actual.name()
        ));
    }
    let got = attributes(actual);
    let want = attributes(expected);
    for (key, value) in &want {
        let found = got.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        match (value.as_str(), found) {
            (ABSENT, None) | (ANY, Some(_)) => {}
            (ABSENT, Some(v)) => return Err(format!("{path}: attribute {key}={v:?} must be absent")),
            (_, None) => return Err(format!("{path}: attribute {key} missing (want {value:?})")),
            (want, Some(v)) if want != v => return Err(format!("{path}: attribute {key} is {v:?}, want {want:?}")),
            _ => {}
        }
    }
    for (key, value) in &got {
        if !want.iter().any(|(k, _)| k == key) && !LENIENT.contains(&key.as_str()) {
            return Err(format!("{path}: unexpected attribute {key}={value:?}"));
        }
    }
    let want_text = expected.text();
    let got_text = actual.text();
    if want_text.trim() != ANY && want_text.trim() != got_text.trim() {
        return Err(format!("{path}: text is {:?}, want {:?}", got_text.trim(), want_text.trim()));
    }
    let want_children: Vec<&Element> = expected.children().collect();
    let got_children: Vec<&Element> = actual.children().collect();
    for (i, (w, g)) in want_children.iter().zip(&got_children).enumerate() {
        compare(w, g, &format!("{path}/{}[{i}]", g.name()))?;
    }
    if want_children.len() != got_children.len() {
        return Err(format!("{path}: {} child element(s), want {}", got_children.len(), want_children.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(expected: &str, actual: &str) -> Result<(), String> {
        matches(&parse(expected), &parse(actual))
    }

    #[test]
    fn the_matching_rule() {
        assert!(check("<iq type='result'/>", "<iq type='result' id='7'/>").is_ok());
        assert!(check("<iq type='result'/>", "<iq type='result' to='a@b'/>").is_err());
        assert!(check("<iq type='result' to='{any}'/>", "<iq type='result' to='a@b'/>").is_ok());
        assert!(check("<iq type='result' to='{any}'/>", "<iq type='result'/>").is_err());
        assert!(check("<iq to='{absent}'/>", "<iq/>").is_ok());
        assert!(check("<iq to='{absent}'/>", "<iq to='x'/>").is_err());
        assert!(check("<a><b/><c/></a>", "<a><c/><b/></a>").is_err());
        assert!(check("<a><b/></a>", "<a><b/><c/></a>").is_err());
        assert!(check("<a> x </a>", "<a>x</a>").is_ok());
        assert!(check("<a>x</a>", "<a>y</a>").is_err());
        assert!(check("<a>{any}</a>", "<a>y</a>").is_ok());
        assert!(check("<a/>", "<a xmlns='other'/>").is_err());
        assert!(check("<stream:error/>", "<s:error xmlns:s='http://etherx.jabber.org/streams'/>").is_ok());
        assert!(check("<a/>", "<a xml:lang='en'/>").is_ok());
    }
}
