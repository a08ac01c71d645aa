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
    let text = text
        .map(|t| format!("<text xmlns='{NS_STREAM_ERRORS}' xml:lang='en'>{}</text>", escape(t)))
        .unwrap_or_default();
    format!("<stream:error><{condition} xmlns='{NS_STREAM_ERRORS}'/>{text}</stream:error>{STREAM_CLOSE}")
}

/// Serialises one element. minidom only fails on names it could not have parsed.
pub fn to_bytes(element: &Element) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    if let Err(e) = element.write_to(&mut out) {
        tracing::error!(error = %e, name = element.name(), "cannot serialise element");
        out.clear();
    }
    out
}

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
