//! Everything that touches raw XML: the strict framer (bytes → elements), the writer
//! (elements → bytes) and small helpers for building and editing elements.
//! Nothing outside this module parses or prints XML text.

pub mod budget;
pub mod framer;
pub mod lazy_buf;
pub mod ns;
pub mod seam;
pub mod writer;

use xmpp_parsers::minidom::rxml::{Namespace, NcName};
pub use xmpp_parsers::minidom::Element;

pub use ns::BIND as NS_BIND;
pub use ns::CLIENT as NS_CLIENT;
pub use ns::LIMITS as NS_LIMITS;
pub use ns::SASL as NS_SASL;
pub use ns::SASL_CB as NS_SASL_CB;
pub use ns::SESSION as NS_SESSION;
pub use ns::STANZA_ERRORS as NS_STANZA_ERRORS;
pub use ns::STREAM as NS_STREAM;
pub use ns::STREAM_ERRORS as NS_STREAM_ERRORS;
pub use ns::TLS as NS_TLS;

/// Attribute access by plain (un-namespaced) name.
pub trait ElementExt {
    fn set(&mut self, name: &str, value: impl Into<String>);
    fn unset(&mut self, name: &str);
    fn with(self, name: &str, value: impl Into<String>) -> Self;
    fn with_child(self, child: Element) -> Self;
    fn with_text(self, text: impl Into<String>) -> Self;
}

impl ElementExt for Element {
    fn set(&mut self, name: &str, value: impl Into<String>) {
        if let Ok(name) = NcName::try_from(name) {
            self.attrs_mut().insert(Namespace::NONE, name, value.into());
        }
    }

    fn unset(&mut self, name: &str) {
        self.attrs_mut().remove(&Namespace::NONE, name);
    }

    fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.set(name, value);
        self
    }

    fn with_child(mut self, child: Element) -> Self {
        self.append_child(child);
        self
    }

    fn with_text(mut self, text: impl Into<String>) -> Self {
        self.append_text_node(text.into());
        self
    }
}

/// Reads back one stanza the server serialised itself (queued bytes of a session that
/// ended). Uses the framer: minidom's parser refuses long tokens that clients may send.
pub async fn read_stanza(bytes: &[u8]) -> Option<Element> {
    let header = format!("<stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}'>");
    let input = tokio::io::AsyncReadExt::chain(header.as_bytes(), bytes);
    // The framer counts the header against the limit too.
    let size = header.len() + bytes.len() + 1;
    let limits = framer::Limits { max_stanza_bytes: size, max_depth: 1024, max_attributes: 1024 };
    let mut framer = framer::Framer::new(input, limits);
    framer.next().await.ok()?;
    match framer.next().await {
        Ok(framer::Frame::Stanza(element)) => Some(element),
        _ => None,
    }
}

/// An attribute of the first start tag in `bytes` (a stanza the server serialised itself),
/// unescaped, without reading further: the sender of a stored message is known without
/// parsing the whole message.
pub fn start_tag_attr(bytes: &[u8], name: &str) -> Option<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let start = match reader.read_event().ok()? {
        Event::Start(start) | Event::Empty(start) => start,
        _ => return None,
    };
    let attr = start.attributes().flatten().find(|a| a.key.into_inner() == name)?;
    attr.normalized_value(quick_xml::XmlVersion::Implicit1_0).ok().map(|v| v.into_owned())
}

/// A new empty element.
pub fn el(name: &str, ns: &str) -> Element {
    Element::builder(name, ns).build()
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn read_stanza_reads_back_short_and_long_stanzas() {
        let short = super::read_stanza(b"<presence xmlns='jabber:client' type='unavailable'/>").await;
        assert_eq!(short.map(|e| e.name().to_owned()).as_deref(), Some("presence"));
        let long = format!("<message xmlns='jabber:client' pad='{}'/>", "p".repeat(20_000));
        let long = super::read_stanza(long.as_bytes()).await.expect("long attribute values read back");
        assert_eq!(long.attr("pad").map(str::len), Some(20_000));
        assert!(super::read_stanza(b"<message").await.is_none());
    }

    #[test]
    fn start_tag_attributes_are_read_without_the_rest() {
        let stored = b"<message xmlns='jabber:client' from='o&apos;hara@x/r' to='b@x'><body>unfinished";
        assert_eq!(super::start_tag_attr(stored, "from").as_deref(), Some("o'hara@x/r"));
        assert_eq!(super::start_tag_attr(b"<presence type=\"unavailable\"/>", "type").as_deref(), Some("unavailable"));
        assert_eq!(super::start_tag_attr(stored, "id"), None);
        assert_eq!(super::start_tag_attr(b"text", "from"), None);
    }
}
