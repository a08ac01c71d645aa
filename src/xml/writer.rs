//! Serialising what the server sends: stream headers, stream errors, stanzas.

use super::{Element, NS_CLIENT, NS_STREAM, NS_STREAM_ERRORS};

pub const STREAM_CLOSE: &str = "</stream:stream>";

/// Our opening `<stream:stream>` (RFC 6120 §4.7). `to` echoes the client's `from` when valid.
pub fn stream_header(from: &str, id: &str, to: Option<&str>) -> String {
    let to = to.map(|to| format!(" to='{}'", escape(to))).unwrap_or_default();
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}' \
         id='{}' from='{}'{to} version='1.0' xml:lang='en'>",
        escape(id),
        escape(from)
    )
}

/// A stream error followed by the closing tag (RFC 6120 §4.9).
pub fn stream_error(condition: &str, text: Option<&str>) -> String {
    stream_error_element(condition, text) + STREAM_CLOSE
}

/// `<stream:error>` alone (a transport adds its own closing).
pub fn stream_error_element(condition: &str, text: Option<&str>) -> String {
    let text = text
        .map(|t| format!("<text xmlns='{NS_STREAM_ERRORS}' xml:lang='en'>{}</text>", escape(t)))
        .unwrap_or_default();
    format!("<stream:error><{condition} xmlns='{NS_STREAM_ERRORS}'/>{text}</stream:error>")
}

/// Serialises one element (once per delivered stanza: written here rather than by
/// minidom, which allocates for every namespace it looks at). Namespaces are written as
/// default declarations where an element's differs from its parent's; an attribute in a
/// namespace other than `xml:` is left to minidom, which declares a prefix for it.
pub fn to_bytes(element: &Element) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    match write_element(element, None, &mut out) {
        Ok(()) => {}
        Err(Unwritable::NeedsPrefixes) => {
            out.clear();
            if let Err(e) = element.write_to(&mut out) {
                // minidom only fails on names it could not have parsed.
                tracing::error!(error = %e, name = element.name(), "cannot serialise element");
                out.clear();
            }
        }
        Err(Unwritable::BadCharacter) => {
            // Not handed to minidom: its encoder panics on these.
            tracing::error!(name = element.name(), "cannot serialise element: a character XML does not allow");
            out.clear();
        }
    }
    out
}

/// Why our writer did not write an element.
enum Unwritable {
    /// An attribute, or the element, needs a namespace prefix: left to minidom.
    NeedsPrefixes,
    /// Text or an attribute holds a character XML 1.0 does not allow.
    BadCharacter,
}

const NS_XML: &str = "http://www.w3.org/XML/1998/namespace";
const NS_XMLNS: &str = "http://www.w3.org/2000/xmlns/";

fn write_element(element: &Element, parent_ns: Option<&str>, out: &mut Vec<u8>) -> Result<(), Unwritable> {
    let name = element.name().as_bytes();
    out.push(b'<');
    out.extend_from_slice(name);
    // `has_ns` compares in place; `ns()` allocates, so it is asked only when they differ.
    let ns = match parent_ns {
        Some(parent) if element.has_ns(parent) => None,
        // Nearly every stanza: no allocation for it.
        None if element.has_ns(NS_CLIENT) => Some(std::borrow::Cow::Borrowed(NS_CLIENT)),
        _ => Some(std::borrow::Cow::Owned(element.ns())),
    };
    if let Some(ns) = &ns {
        // Namespaces in XML §3: these two are never declared as a default namespace.
        if ns == NS_XML || ns == NS_XMLNS {
            return Err(Unwritable::NeedsPrefixes);
        }
        out.extend_from_slice(b" xmlns='");
        escape_into(ns, true, out)?;
        out.push(b'\'');
    }
    for ((attr_ns, attr), value) in element.attrs().iter() {
        out.push(b' ');
        if !attr_ns.is_none() {
            if attr_ns.as_str() != NS_XML {
                return Err(Unwritable::NeedsPrefixes);
            }
            out.extend_from_slice(b"xml:");
        }
        out.extend_from_slice(attr.as_str().as_bytes());
        out.extend_from_slice(b"='");
        escape_into(value, true, out)?;
        out.push(b'\'');
    }
    let mut nodes = element.nodes().peekable();
    if nodes.peek().is_none() {
        out.extend_from_slice(b"/>");
        return Ok(());
    }
    out.push(b'>');
    let own_ns = ns.as_deref().or(parent_ns);
    for node in nodes {
        match node {
            xmpp_parsers::minidom::Node::Element(child) => write_element(child, own_ns, out)?,
            xmpp_parsers::minidom::Node::Text(text) => escape_into(text, false, out)?,
        }
    }
    out.extend_from_slice(b"</");
    out.extend_from_slice(name);
    out.push(b'>');
    Ok(())
}

/// Escapes character data (`attribute` false) or a single-quoted attribute value. Carriage
/// returns, and tabs and newlines in attributes, are written as references so that a
/// parser's normalisation gives back the same value.
/// Refuses a character XML 1.0 does not allow: nothing is written rather than bytes the
/// client's parser would refuse with its whole stream. The framer lets none through;
/// elements the server builds, or stored long ago, might hold one.
fn escape_into(text: &str, attribute: bool, out: &mut Vec<u8>) -> Result<(), Unwritable> {
    let bytes = text.as_bytes();
    let mut start = 0;
    // Most bytes need nothing: a table lookup each, eight at a time, and the match below
    // for each byte of an eight that holds one that does.
    let skip = if attribute { TEXT_OR_ATTRIBUTE } else { TEXT };
    for (block, eight) in bytes.chunks(8).enumerate() {
        if eight.iter().fold(0, |any, b| any | LOOK[usize::from(*b)]) & skip == 0 {
            continue;
        }
        for (offset, b) in eight.iter().enumerate() {
            let i = block * 8 + offset;
            let escaped: &[u8] = match b {
                _ if LOOK[usize::from(*b)] & skip == 0 => continue,
                0..=0x08 | 0x0b | 0x0c | 0x0e..=0x1f => return Err(Unwritable::BadCharacter),
                // U+FFFE and U+FFFF.
                0xef if matches!(bytes.get(i + 1..i + 3), Some([0xbf, 0xbe | 0xbf])) => {
                    return Err(Unwritable::BadCharacter)
                }
                b'&' => b"&amp;",
                b'<' => b"&lt;",
                b'>' => b"&gt;",
                b'\r' => b"&#xD;",
                b'\'' if attribute => b"&apos;",
                b'"' if attribute => b"&quot;",
                b'\t' if attribute => b"&#x9;",
                b'\n' if attribute => b"&#xA;",
                _ => continue,
            };
            out.extend_from_slice(&bytes[start..i]);
            out.extend_from_slice(escaped);
            start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
    Ok(())
}

/// [`LOOK`]: bytes `escape_into` must look at in text, and in attributes only.
const TEXT: u8 = 1;
const TEXT_OR_ATTRIBUTE: u8 = TEXT | 2;

/// Per byte: whether `escape_into` must look at it (control characters, the first byte of
/// U+FFFE/U+FFFF, markup, and in attributes quotes and white space).
const LOOK: [u8; 256] = {
    let mut look = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        look[b] = TEXT;
        b += 1;
    }
    look[0xef] = TEXT;
    look[b'&' as usize] = TEXT;
    look[b'<' as usize] = TEXT;
    look[b'>' as usize] = TEXT;
    look[b'\'' as usize] = 2;
    look[b'"' as usize] = 2;
    // Tab and line feed are plain in text: only attributes escape them.
    look[b'\t' as usize] = 2;
    look[b'\n' as usize] = 2;
    look
};

/// Escapes text for use in character data or a single- or double-quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(xml: &str) -> (Element, String) {
        let element: Element = xml.parse().expect("test XML");
        let bytes = String::from_utf8(to_bytes(&element)).expect("utf-8");
        let again: Element = bytes.parse().unwrap_or_else(|e| panic!("{bytes}: {e}"));
        assert_eq!(again, element, "{bytes}");
        (element, bytes)
    }

    #[test]
    fn elements_are_written_back_to_what_was_read() {
        let (_, bytes) = round_trip(
            "<message xmlns='jabber:client' to='b@x' id='a&amp;b' xml:lang='en'><body>1 &lt; 2 &amp;&amp; 3 &gt; 2</body>\
             <x xmlns='urn:other'><y a='q&quot;&apos;t&#9;n&#10;r&#13;'/>text&#13;\n</x><empty xmlns=''/></message>",
        );
        assert!(bytes.starts_with("<message xmlns='jabber:client'"), "{bytes}");
        assert!(bytes.contains("<body>1 &lt; 2"), "{bytes}");
        assert!(bytes.contains(" xml:lang='en'"), "{bytes}");
        assert!(bytes.contains("<empty xmlns=''/>"), "{bytes}");
        assert_eq!(bytes.matches("xmlns='jabber:client'").count(), 1, "children share their parent's: {bytes}");
    }

    #[test]
    fn prefixed_attributes_are_left_to_minidom() {
        let (_, bytes) = round_trip("<message xmlns='jabber:client' xmlns:p='urn:p' p:a='1'><body>x</body></message>");
        assert!(bytes.contains("urn:p"), "{bytes}");
        // An element in the xml namespace (found by fuzz/framer_bytes): written with its
        // prefix by minidom, never as a default namespace.
        let mut message: Element = "<message xmlns='jabber:client'/>".parse().expect("xml");
        message.append_child(Element::builder("x", NS_XML).build());
        let bytes = String::from_utf8(to_bytes(&message)).expect("utf-8");
        assert!(!bytes.contains(&format!("xmlns='{NS_XML}'")), "{bytes}");
    }

    #[test]
    fn characters_xml_does_not_allow_are_never_written() {
        for bad in ["a\u{1}b", "\u{fffe}", "x\u{ffff}"] {
            let mut message: Element = "<message xmlns='jabber:client'><body/></message>".parse().expect("xml");
            message.append_text_node(bad);
            assert!(to_bytes(&message).is_empty(), "{bad:?}");
        }
        let mut fine: Element = "<message xmlns='jabber:client'/>".parse().expect("xml");
        fine.append_text_node("\u{fffd}\u{effe}");
        assert!(String::from_utf8(to_bytes(&fine)).expect("utf-8").contains("\u{fffd}\u{effe}"));
    }

    #[test]
    fn text_and_attributes_escape_what_each_must() {
        let escaped = |text: &str, attribute: bool| {
            let mut out = Vec::new();
            escape_into(text, attribute, &mut out).map(|()| String::from_utf8(out).expect("utf-8")).ok()
        };
        let all = "a&b<c>d'e\"f\tg\nh\ri\u{fffd}j";
        assert_eq!(escaped(all, false).as_deref(), Some("a&amp;b&lt;c&gt;d'e\"f\tg\nh&#xD;i\u{fffd}j"));
        assert_eq!(escaped(all, true).as_deref(), Some("a&amp;b&lt;c&gt;d&apos;e&quot;f&#x9;g&#xA;h&#xD;i\u{fffd}j"));
        assert_eq!(escaped("plain text, nothing to do", true).as_deref(), Some("plain text, nothing to do"));
        for bad in ["\u{0}", "x\u{1f}", "\u{b}", "\u{ffff}"] {
            assert_eq!(escaped(bad, false), None, "{bad:?}");
            assert_eq!(escaped(bad, true), None, "{bad:?}");
        }
        // Bytes are looked at eight at a time: what needs escaping on either side of a
        // block's edge, and a U+FFFF that starts in one block and ends in the next.
        let edges = "1234567<8901234&&6789012345678>";
        assert_eq!(escaped(edges, false).as_deref(), Some("1234567&lt;8901234&amp;&amp;6789012345678&gt;"));
        assert_eq!(escaped("1234567\u{ffff}", false), None);
        assert_eq!(escaped("123456\u{fffe}", true), None);
        assert_eq!(escaped("1234567\u{effe}", false).as_deref(), Some("1234567\u{effe}"));
    }

    #[test]
    fn header_escapes_its_attributes() {
        let h = stream_header("example.org", "a'b", Some("x<y"));
        assert!(h.contains("id='a&apos;b'"), "{h}");
        assert!(h.contains("to='x&lt;y'"), "{h}");
    }

    #[tokio::test]
    async fn forwarded_stanzas_keep_lang_and_foreign_attributes() {
        use crate::xml::framer::{Frame, Framer, Limits};
        let input = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' \
            to='x' version='1.0'><message xmlns:e='urn:ext' xml:lang='de' e:mark='1' t='5'>\
            <body>Gr&#xFC;&#xDF;e &amp; &lt;mehr&gt;</body><e:x e:y='2'/></message>";
        let limits = Limits { max_stanza_bytes: 10_000, max_depth: 16, max_attributes: 16 };
        let mut framer = Framer::new(input.as_bytes(), limits);
        assert!(matches!(framer.next().await, Ok(Frame::Header(_))));
        let Ok(Frame::Stanza(message)) = framer.next().await else { panic!("a stanza") };
        let bytes = to_bytes(&message);
        let text = String::from_utf8(bytes).expect("utf-8");
        let again: Element = text.parse().expect("our output parses");
        assert_eq!(again, message, "{text}");
        assert!(text.contains("xml:lang=\"de\"") || text.contains("xml:lang='de'"), "{text}");
    }

    #[test]
    fn stream_error_names_its_condition() {
        let e = stream_error("host-unknown", Some("no such host"));
        assert!(e.starts_with("<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"));
        assert!(e.ends_with("</stream:error></stream:stream>"));
    }
}
