//! Typed stanzas at the router boundary. The typed header (kind, type, addresses, id)
//! is what the router acts on; the original element travels with it unchanged, so
//! unknown attributes and children reach the recipient as the sender wrote them.

use crate::xml::{Element, ElementExt, NS_CLIENT};
use crate::xmpp::error::{Condition, StanzaError};
use xmpp_parsers::jid::Jid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Normal,
    Chat,
    Groupchat,
    Headline,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceType {
    Available,
    Unavailable,
    Subscribe,
    Subscribed,
    Unsubscribe,
    Unsubscribed,
    Probe,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IqType {
    Get,
    Set,
    Result,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Message(MessageType),
    Presence(PresenceType),
    Iq(IqType),
}

impl Kind {
    /// An iq get or set: a request that must be answered (RFC 6120 §8.2.3).
    pub fn is_request(self) -> bool {
        matches!(self, Kind::Iq(IqType::Get | IqType::Set))
    }
}

#[derive(Debug, Clone)]
pub struct Stanza {
    pub kind: Kind,
    pub to: Option<Jid>,
    pub from: Option<Jid>,
    pub id: Option<String>,
    pub element: Element,
}

/// Why an element could not become a stanza.
#[derive(Debug)]
pub enum ParseError {
    /// Not message/presence/iq in `jabber:client`: the stream error `unsupported-stanza-type`.
    NotAStanza,
    /// A stanza with a fault the sender can fix: answered with this stanza error.
    Invalid(StanzaError),
}

impl Stanza {
    /// Reads the typed header; a rejected element comes back with the reason.
    pub fn parse(element: Element) -> Result<Stanza, Box<(ParseError, Element)>> {
        match parse_header(&element) {
            Ok((kind, to, from, id)) => Ok(Stanza { kind, to, from, id, element }),
            Err(e) => Err(Box::new((e, element))),
        }
    }

    pub fn is_error(&self) -> bool {
        matches!(
            self.kind,
            Kind::Message(MessageType::Error) | Kind::Presence(PresenceType::Error) | Kind::Iq(IqType::Error)
        )
    }

    /// Sets `from`, in the element too.
    pub fn set_from(&mut self, from: Jid) {
        self.element.set("from", from.as_str());
        self.from = Some(from);
    }

    /// The `<error/>` reply to this stanza, or None for stanzas that must not be answered
    /// with an error (RFC 6120 §8.3.1: never answer an error with an error).
    pub fn error_reply(&self, error: &StanzaError) -> Option<Element> {
        answerable(&self.element).then(|| error_reply(&self.element, error))
    }
}

/// RFC 6120 §8.3.1 and §8.2.3: errors are never answered with errors, and iq results
/// are never answered at all.
pub fn answerable(element: &Element) -> bool {
    match element.attr("type") {
        Some("error") => false,
        Some("result") => element.name() != "iq",
        _ => true,
    }
}

/// The `result` to an iq request (RFC 6120 §8.2.3): same id, to the requester (`to`, its
/// full JID once bound), from whom the request was addressed to. The only place iq results
/// are built; [`error_reply`] builds the errors.
pub fn result_reply(request: &Element, to: Option<&str>) -> Element {
    let mut reply = Element::builder("iq", NS_CLIENT).build();
    reply.set("type", "result");
    if let Some(id) = request.attr("id") {
        reply.set("id", id);
    }
    if let Some(to) = to {
        reply.set("to", to);
    }
    if let Some(from) = request.attr("to").filter(|to| parse_address(to).is_ok()) {
        reply.set("from", from);
    }
    reply
}

/// Builds the error reply to any element: addresses swapped, same id, original children kept.
pub fn error_reply(original: &Element, error: &StanzaError) -> Element {
    let mut reply = Element::builder(original.name(), original.ns()).build();
    if let Some(from) = original.attr("from") {
        reply.set("to", from);
    }
    // A malformed `to` is not echoed: clients would drop an error "from" garbage.
    if let Some(to) = original.attr("to").filter(|to| parse_address(to).is_ok()) {
        reply.set("from", to);
    }
    if let Some(id) = original.attr("id") {
        reply.set("id", id);
    }
    reply.set("type", "error");
    for child in original.children() {
        if !child.is("error", NS_CLIENT) {
            reply.append_child(child.clone());
        }
    }
    reply.append_child(error.to_element());
    reply
}

type Header = (Kind, Option<Jid>, Option<Jid>, Option<String>);

fn parse_header(element: &Element) -> Result<Header, ParseError> {
    if !element.has_ns(NS_CLIENT) {
        return Err(ParseError::NotAStanza);
    }
    // One pass over the attributes, not a map lookup for each of the four.
    let (mut type_attr, mut to, mut from, mut id) = (None, None, None, None);
    for ((ns, name), value) in element.attrs().iter() {
        if !ns.is_none() {
            continue;
        }
        match name.as_str() {
            "type" => type_attr = Some(value.as_str()),
            "to" => to = Some(value.as_str()),
            "from" => from = Some(value.as_str()),
            "id" => id = Some(value.as_str()),
            _ => {}
        }
    }
    let kind = match element.name() {
        "message" => Kind::Message(message_type(type_attr)?),
        "presence" => Kind::Presence(presence_type(type_attr)?),
        "iq" => Kind::Iq(iq_type(type_attr)?),
        _ => return Err(ParseError::NotAStanza),
    };
    let to = parse_jid(to)?;
    let from = parse_jid(from)?;
    let id = id.map(str::to_owned);
    if let Kind::Iq(t) = kind {
        check_iq(t, id.as_deref(), element)?;
    }
    Ok((kind, to, from, id))
}

fn bad_request(text: &str) -> ParseError {
    ParseError::Invalid(StanzaError::with_text(Condition::BadRequest, text))
}

/// Parses a stanza address into a JID that parses again to itself (found by fuzz/jid).
///
/// RFC 7622 §3.2: a final dot of the domainpart is stripped before the JID is used
/// (routing, comparing). jid 0.12 strips it only from a JID that is a domain alone: it
/// keeps `a@b.` as is and mis-splits `a@b./r` (domain `b`, resource `/r`), so the dot goes
/// before parsing. And jid 0.12 checks IDNA before nameprep, so `a@ß--x` becomes `a@ss--x`,
/// which it refuses: an address whose normal form does not parse again is refused too.
pub fn parse_address(value: &str) -> Result<Jid, xmpp_parsers::jid::Error> {
    let (head, resource) = value.split_at(value.find('/').unwrap_or(value.len()));
    let jid = match head.strip_suffix('.') {
        // `a@b..`: an empty label, not a domain (jid would take it as `b.`, then as `b`).
        Some(head) if head.ends_with('.') => return Err(xmpp_parsers::jid::Error::Idna),
        Some(head) => Jid::new(&format!("{head}{resource}"))?,
        None => Jid::new(value)?,
    };
    if jid.as_str() == value {
        // Already in normal form: it parses again to itself, as it just did.
        return Ok(jid);
    }
    match Jid::new(jid.as_str()) {
        Ok(again) if again == jid => Ok(jid),
        Ok(_) => Err(xmpp_parsers::jid::Error::NamePrep),
        Err(e) => Err(e),
    }
}

fn parse_jid(value: Option<&str>) -> Result<Option<Jid>, ParseError> {
    value
        .map(|v| {
            parse_address(v)
                .map_err(|e| ParseError::Invalid(StanzaError::with_text(Condition::JidMalformed, &e.to_string())))
        })
        .transpose()
}

fn message_type(value: Option<&str>) -> Result<MessageType, ParseError> {
    Ok(match value {
        None | Some("normal") => MessageType::Normal,
        Some("chat") => MessageType::Chat,
        Some("groupchat") => MessageType::Groupchat,
        Some("headline") => MessageType::Headline,
        Some("error") => MessageType::Error,
        // RFC 6121 §5.2.2: an unknown type is treated as normal.
        Some(_) => MessageType::Normal,
    })
}

fn presence_type(value: Option<&str>) -> Result<PresenceType, ParseError> {
    Ok(match value {
        None => PresenceType::Available,
        Some("unavailable") => PresenceType::Unavailable,
        Some("subscribe") => PresenceType::Subscribe,
        Some("subscribed") => PresenceType::Subscribed,
        Some("unsubscribe") => PresenceType::Unsubscribe,
        Some("unsubscribed") => PresenceType::Unsubscribed,
        Some("probe") => PresenceType::Probe,
        Some("error") => PresenceType::Error,
        Some(_) => return Err(bad_request("unknown presence type")),
    })
}

fn iq_type(value: Option<&str>) -> Result<IqType, ParseError> {
    Ok(match value {
        Some("get") => IqType::Get,
        Some("set") => IqType::Set,
        Some("result") => IqType::Result,
        Some("error") => IqType::Error,
        _ => return Err(bad_request("iq needs a type of get, set, result or error")),
    })
}

/// RFC 6120 §8.2.3: an id is required; get and set carry exactly one child element.
fn check_iq(kind: IqType, id: Option<&str>, element: &Element) -> Result<(), ParseError> {
    if id.is_none_or(str::is_empty) {
        return Err(bad_request("iq needs an id"));
    }
    let children = element.children().count();
    match kind {
        IqType::Get | IqType::Set if children != 1 => Err(bad_request("iq get/set needs exactly one child")),
        IqType::Result if children > 1 => Err(bad_request("iq result has at most one child")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Result<Stanza, Box<(ParseError, Element)>> {
        Stanza::parse(xml.parse().expect("test XML"))
    }

    #[test]
    fn message_keeps_unknown_attributes() {
        let s = parse("<message xmlns='jabber:client' to='b@x' t='123' type='chat'><body>hi</body></message>")
            .expect("valid");
        assert_eq!(s.kind, Kind::Message(MessageType::Chat));
        assert_eq!(s.element.attr("t"), Some("123"));
    }

    #[test]
    fn faults_are_stanza_errors() {
        let cases = [
            ("<iq xmlns='jabber:client' type='get'><ping xmlns='urn:xmpp:ping'/></iq>", Condition::BadRequest),
            ("<iq xmlns='jabber:client' id='1' type='get'/>", Condition::BadRequest),
            ("<iq xmlns='jabber:client' id='1' type='fetch'><a xmlns='b'/></iq>", Condition::BadRequest),
            ("<message xmlns='jabber:client' to='@@'/>", Condition::JidMalformed),
        ];
        for (xml, condition) in cases {
            match parse(xml).map(|s| s.kind).map_err(|b| b.0) {
                Err(ParseError::Invalid(e)) => assert_eq!(e.condition, condition, "{xml}"),
                other => panic!("{xml}: {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_message_type_is_normal_and_results_are_never_answered() {
        let s = parse("<message xmlns='jabber:client' type='shout' to='b@x'/>").expect("valid");
        assert_eq!(s.kind, Kind::Message(MessageType::Normal));
        assert_eq!(s.element.attr("type"), Some("shout"), "forwarded unchanged");
        let result = parse("<iq xmlns='jabber:client' type='result' id='1'/>").expect("valid");
        assert!(result.error_reply(&StanzaError::new(Condition::BadRequest)).is_none());
        let bad_to: Element = "<message xmlns='jabber:client' to='@@' id='1'/>".parse().expect("xml");
        assert_eq!(error_reply(&bad_to, &StanzaError::new(Condition::JidMalformed)).attr("from"), None);
    }

    #[test]
    fn a_final_dot_of_the_domain_is_stripped() {
        for (written, meant) in [
            ("bob@localhost./b", "bob@localhost/b"),
            ("bob@localhost.", "bob@localhost"),
            ("localhost./r", "localhost/r"),
            ("localhost.", "localhost"),
            ("bob@localhost/a.b.", "bob@localhost/a.b."),
        ] {
            let jid = parse_address(written).expect("valid");
            assert_eq!(jid, Jid::new(meant).expect("valid"), "{written}");
            assert_eq!(jid.as_str(), meant);
        }
        let s = parse("<message xmlns='jabber:client' to='bob@localhost./b'/>").expect("valid");
        let to = s.to.expect("to");
        assert_eq!((to.domain().as_str(), to.resource().map(|r| r.as_str())), ("localhost", Some("b")));
        for bad in ["bob@./b", "bob@localhost../b", "localhost..", ".", "\u{D1}@\u{DF}--bexaeII"] {
            assert!(parse_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_elements_are_not_stanzas() {
        for xml in ["<foo xmlns='jabber:client'/>", "<message xmlns='jabber:server'/>"] {
            assert!(matches!(parse(xml).map_err(|b| b.0), Err(ParseError::NotAStanza)), "{xml}");
        }
    }

    #[test]
    fn error_reply_swaps_addresses_and_keeps_payload() {
        let s = parse("<iq xmlns='jabber:client' id='q' from='a@x/r' to='x' type='get'><q xmlns='u'/></iq>")
            .expect("valid");
        let reply = s.error_reply(&StanzaError::new(Condition::ServiceUnavailable)).expect("reply");
        assert_eq!(reply.attr("to"), Some("a@x/r"));
        assert_eq!(reply.attr("from"), Some("x"));
        assert_eq!(reply.attr("type"), Some("error"));
        assert!(reply.get_child("q", "u").is_some());
        let error = reply.get_child("error", NS_CLIENT).expect("error child");
        assert_eq!(error.attr("type"), Some("cancel"));
        assert!(error.get_child("service-unavailable", crate::xml::NS_STANZA_ERRORS).is_some());
    }
}
