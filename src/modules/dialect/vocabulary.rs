//! The dialect's vocabulary (docs/dialect.md, schemas/dialect.xsd), and the translations
//! between it and standard XMPP.

use crate::xml::{Element, ElementExt};

pub use crate::xml::ns::DIALECT as NS;

/// The last-seen attribute on unavailable presence: Unix seconds.
pub const LAST: &str = "last";

/// The server-time attribute on ping results: Unix seconds.
pub const TIME: &str = "t";

/// A copy of an unavailable presence carrying `last`.
pub fn with_last(presence: &Element, unix_seconds: u64) -> Element {
    let mut copy = presence.clone();
    copy.set(LAST, unix_seconds.to_string());
    copy
}

/// `<ib from='domain'><offline count='N'/></ib>`: how many messages wait (docs/dialect.md).
pub fn offline_count(domain: &str, count: u64) -> Element {
    crate::xml::el("ib", NS)
        .with("from", domain)
        .with_child(crate::xml::el("offline", NS).with("count", count.to_string()))
}

/// `<ack id='..' t='..'/>`: the server took the message with this id (the "sent" tick).
pub fn sent_ack(id: &str, unix_seconds: u64) -> Element {
    crate::xml::el("ack", NS).with("id", id).with(TIME, unix_seconds.to_string())
}

pub use crate::xml::ns::MARKERS as NS_MARKERS;
pub use crate::xml::ns::RECEIPTS as NS_RECEIPTS;

/// A dialect `<receipt id='..' to='..' [type='read'] [participant='..']/>` as the standard
/// message every recipient understands: XEP-0184 `<received/>`, or XEP-0333 `<displayed/>`
/// for a read receipt. `participant` rides along in the dialect namespace and is removed
/// for standard recipients.
pub fn receipt_to_message(receipt: &Element, message_id: &str) -> Result<Element, crate::xmpp::error::StanzaError> {
    use crate::xmpp::error::{Condition, StanzaError};
    let bad = |text: &str| StanzaError::with_text(Condition::BadRequest, text);
    let id = receipt.attr("id").filter(|id| !id.is_empty()).ok_or_else(|| bad("a receipt needs the message id"))?;
    let to = receipt.attr("to").ok_or_else(|| bad("a receipt needs a 'to'"))?;
    let marker = match receipt.attr("type") {
        None | Some("delivery") => crate::xml::el("received", NS_RECEIPTS),
        Some("read") => crate::xml::el("displayed", NS_MARKERS),
        Some(_) => return Err(bad("a receipt type is 'delivery' or 'read'")),
    };
    let mut message = crate::xml::el("message", crate::xml::NS_CLIENT)
        .with("to", to)
        .with("id", message_id)
        .with_child(marker.with("id", id));
    if let Some(participant) = receipt.attr("participant") {
        message.append_child(crate::xml::el("participant", NS).with("jid", participant));
    }
    Ok(message)
}

/// A `<receipt/>` as delivered to a dialect session, back in its routed form (for a
/// session that ended before taking it).
pub fn receipt_back_to_message(receipt: &Element) -> Option<Element> {
    if !receipt.is("receipt", NS) {
        return None;
    }
    let id = format!("receipt-rerouted-{}", receipt.attr("id").unwrap_or_default());
    let mut message = receipt_to_message(receipt, &id).ok()?;
    if let Some(from) = receipt.attr("from") {
        message.set("from", from);
    }
    // A receipt out of offline storage keeps the delay it was stored with (XEP-0203).
    let domain =
        receipt.attr("to").and_then(|to| xmpp_parsers::jid::Jid::new(to).ok()).map(|to| to.domain().to_string());
    if let (Some(stamp), Some(domain)) = (receipt.attr("stamp"), domain) {
        message.append_child(crate::xml::el("delay", crate::xml::ns::DELAY).with("from", domain).with("stamp", stamp));
    }
    Some(message)
}

/// The dialect form of a receipt message, for a dialect recipient; None if the message is
/// not a receipt (it then goes as it is).
pub fn message_to_receipt(message: &Element) -> Option<Element> {
    let (id, read) = message.children().find_map(|c| {
        if c.is("received", NS_RECEIPTS) {
            Some((c.attr("id")?, false))
        } else if c.is("displayed", NS_MARKERS) {
            Some((c.attr("id")?, true))
        } else {
            None
        }
    })?;
    if message.get_child("body", crate::xml::NS_CLIENT).is_some() {
        return None;
    }
    let mut receipt = crate::xml::el("receipt", NS).with("id", id);
    for attr in ["from", "to"] {
        if let Some(value) = message.attr(attr) {
            receipt.set(attr, value);
        }
    }
    if read {
        receipt.set("type", "read");
    }
    if let Some(p) = message.get_child("participant", NS).and_then(|p| p.attr("jid")) {
        receipt.set("participant", p);
    }
    // The time it was stored: our server's delay (the recipient's domain), not a client's.
    let ours = message.attr("to").and_then(|to| xmpp_parsers::jid::Jid::new(to).ok()).map(|to| to.domain().to_string());
    let delay = message.children().find(|d| d.is("delay", crate::xml::ns::DELAY) && d.attr("from") == ours.as_deref());
    if let Some(stamp) = delay.and_then(|d| d.attr("stamp")) {
        receipt.set("stamp", stamp);
    }
    Some(receipt)
}

/// What a standard session may see: the stanza without the `last` attribute and without
/// dialect elements, at any depth (a carbon copy forwards a whole message).
pub fn for_standard(element: &Element) -> Option<Element> {
    if element.attr(LAST).is_none() && !has_dialect_inside(element) {
        return None;
    }
    let mut copy = element.clone();
    copy.unset(LAST);
    strip_dialect(&mut copy);
    Some(copy)
}

fn has_dialect_inside(element: &Element) -> bool {
    element.children().any(|child| child.has_ns(NS) || has_dialect_inside(child))
}

fn strip_dialect(element: &mut Element) {
    let names: Vec<String> = element.children().filter(|c| c.has_ns(NS)).map(|c| c.name().to_owned()).collect();
    for name in names {
        while element.remove_child(&name, NS).is_some() {}
    }
    for child in element.children_mut() {
        strip_dialect(child);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn xml(text: &str) -> Element {
        text.parse().expect("test XML")
    }

    #[test]
    fn receipts_cross_between_the_dialect_and_standard_forms() {
        let read = xml("<receipt xmlns='urn:stanzad:dialect:0' id='m1' to='alice@x' type='read' participant='p@x'/>");
        let message = receipt_to_message(&read, "r1").expect("valid");
        assert_eq!(message.get_child("displayed", NS_MARKERS).and_then(|d| d.attr("id")), Some("m1"));
        let standard = for_standard(&message).expect("participant removed");
        assert!(standard.get_child("participant", NS).is_none());
        assert!(standard.get_child("displayed", NS_MARKERS).is_some());
        let back = message_to_receipt(&message).expect("a receipt");
        assert_eq!(
            (back.attr("id"), back.attr("type"), back.attr("participant")),
            (Some("m1"), Some("read"), Some("p@x"))
        );

        let received = xml("<message xmlns='jabber:client' from='bob@x/b' to='alice@x'><received xmlns='urn:xmpp:receipts' id='m2'/></message>");
        let receipt = message_to_receipt(&received).expect("a receipt");
        assert_eq!(
            (receipt.attr("id"), receipt.attr("type"), receipt.attr("from")),
            (Some("m2"), None, Some("bob@x/b"))
        );
        let chat = xml("<message xmlns='jabber:client'><body>hi</body><request xmlns='urn:xmpp:receipts'/></message>");
        assert!(message_to_receipt(&chat).is_none(), "a message is not a receipt");
        assert!(for_standard(&chat).is_none(), "nothing to remove");
        assert!(receipt_to_message(&xml("<receipt xmlns='urn:stanzad:dialect:0' to='a@x'/>"), "r").is_err());
    }

    /// Names, namespaces, attribute names and children: the shape, not the values.
    pub(crate) fn assert_same_shape(made: &Element, golden: &Element) {
        assert_eq!((made.name(), made.ns()), (golden.name(), golden.ns()));
        let names = |e: &Element| {
            let mut names: Vec<String> = e.attrs().iter().map(|((_, name), _)| name.to_string()).collect();
            names.sort();
            names
        };
        assert_eq!(names(made), names(golden), "attributes of <{}>", made.name());
        assert_eq!(made.children().count(), golden.children().count(), "children of <{}>", made.name());
        for (m, g) in made.children().zip(golden.children()) {
            assert_same_shape(m, g);
        }
    }

    /// The golden examples in schemas/examples/ (validated against schemas/dialect.xsd in
    /// CI by tests/schemas/validate.py) are what the code sends and accepts.
    #[test]
    fn the_code_speaks_the_golden_examples() {
        let golden = |text: &str| xml(text.trim());
        assert_same_shape(&offline_count("localhost", 5), &golden(include_str!("../../../schemas/examples/ib.xml")));
        assert_same_shape(&sent_ack("x1", 1), &golden(include_str!("../../../schemas/examples/ack.xml")));
        let enabled = crate::xml::el("enabled", NS);
        assert_same_shape(&enabled, &golden(include_str!("../../../schemas/examples/enabled.xml")));
        for sent in [
            include_str!("../../../schemas/examples/receipt-sent.xml"),
            include_str!("../../../schemas/examples/receipt-read-sent.xml"),
        ] {
            let message = receipt_to_message(&golden(sent), "r1").expect("a valid receipt");
            let mut message = message.clone();
            message.set("from", "bob@localhost/phone");
            message.append_child(
                crate::xml::el("delay", "urn:xmpp:delay")
                    .with("from", "localhost")
                    .with("stamp", "2026-11-22T19:05:27Z"),
            );
            let delivered = message_to_receipt(&message).expect("back to a receipt");
            if sent.contains("read") {
                let golden_delivered = golden(include_str!("../../../schemas/examples/receipt-delivered.xml"));
                assert_same_shape(&delivered, &golden_delivered);
            }
        }
    }
}
