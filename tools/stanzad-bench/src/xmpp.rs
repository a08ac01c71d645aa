//! What the tool writes (pre-serialised bytes) and cheap checks on what it reads.

use stanzad::xml::writer::escape;
use stanzad::xml::{Element, NS_CLIENT, NS_STANZA_ERRORS, NS_STREAM};

pub const NS_PING: &str = "urn:xmpp:ping";
pub const CLOSE: &[u8] = b"</stream:stream>";
pub const PRESENCE: &[u8] = b"<presence/>";

/// Our `<stream:stream>` opening for `domain`.
pub fn stream_header(domain: &str) -> Vec<u8> {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}' \
         to='{}' version='1.0' xml:lang='en'>",
        escape(domain)
    )
    .into_bytes()
}

/// A XEP-0199 ping to `to`.
pub fn ping(id: &str, to: &str) -> Vec<u8> {
    format!("<iq type='get' id='{}' to='{}'><ping xmlns='{NS_PING}'/></iq>", escape(id), escape(to)).into_bytes()
}

/// Whether `el` is an iq the peer expects an answer to.
pub fn is_iq_request(el: &Element) -> bool {
    el.name() == "iq" && matches!(el.attr("type"), Some("get" | "set"))
}

/// The answer to a request from the server: a result to a ping, `service-unavailable`
/// to anything else.
pub fn iq_reply(request: &Element) -> Vec<u8> {
    let id = escape(request.attr("id").unwrap_or_default());
    let to = request.attr("from").map(|from| format!(" to='{}'", escape(from))).unwrap_or_default();
    let is_ping = request.attr("type") == Some("get") && request.get_child("ping", NS_PING).is_some();
    if is_ping {
        return format!("<iq type='result' id='{id}'{to}/>").into_bytes();
    }
    format!(
        "<iq type='error' id='{id}'{to}><error type='cancel'>\
         <service-unavailable xmlns='{NS_STANZA_ERRORS}'/></error></iq>"
    )
    .into_bytes()
}

/// `Some(true)` for a result to our iq `id`, `Some(false)` for an error, `None` otherwise.
pub fn iq_outcome(el: &Element, id: &str) -> Option<bool> {
    if el.name() != "iq" || el.attr("id") != Some(id) {
        return None;
    }
    match el.attr("type") {
        Some("result") => Some(true),
        Some("error") => Some(false),
        _ => None,
    }
}

/// The condition of an error stanza (`<error><condition/></error>`), or `unknown`.
pub fn stanza_error(el: &Element) -> String {
    el.get_child("error", NS_CLIENT)
        .and_then(|error| error.children().find(|c| c.ns() == NS_STANZA_ERRORS))
        .map_or_else(|| "unknown".to_owned(), |c| c.name().to_owned())
}

/// For `<stream:error/>`, its condition.
pub fn stream_error(el: &Element) -> Option<String> {
    if !el.is("error", NS_STREAM) {
        return None;
    }
    let condition = el.children().find(|c| c.name() != "text").map_or("unknown", |c| c.name());
    Some(condition.to_owned())
}

/// The first text node of a child, without allocating.
pub fn child_text<'a>(el: &'a Element, name: &str, ns: &str) -> Option<&'a str> {
    el.get_child(name, ns).and_then(|child| child.texts().next())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Element {
        text.parse().expect("element")
    }

    #[test]
    fn answers_pings_with_results_and_other_requests_with_errors() {
        let ping =
            parse("<iq xmlns='jabber:client' type='get' id='p1' from='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
        assert!(is_iq_request(&ping));
        assert_eq!(iq_reply(&ping), b"<iq type='result' id='p1' to='localhost'/>");
        let other = parse("<iq xmlns='jabber:client' type='set' id='a&amp;b'><query xmlns='x'/></iq>");
        let reply = String::from_utf8(iq_reply(&other)).expect("utf-8");
        assert!(
            reply.starts_with("<iq type='error' id='a&amp;b'><error type='cancel'><service-unavailable"),
            "{reply}"
        );
        assert!(!is_iq_request(&parse("<iq xmlns='jabber:client' type='result' id='x'/>")));
    }

    #[test]
    fn reads_outcomes_and_conditions() {
        let error = parse(
            "<iq xmlns='jabber:client' type='error' id='b'><error type='cancel'>\
             <conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        );
        assert_eq!(iq_outcome(&error, "b"), Some(false));
        assert_eq!(iq_outcome(&error, "c"), None);
        assert_eq!(stanza_error(&error), "conflict");
        let stream = parse(
            "<stream:error xmlns:stream='http://etherx.jabber.org/streams'>\
             <host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
        );
        assert_eq!(stream_error(&stream).as_deref(), Some("host-unknown"));
    }
}
