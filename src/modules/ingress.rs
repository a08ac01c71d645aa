//! What a client may not send: content only the server makes, which a careless receiving
//! client could believe (docs/security.md, "Spoofing"). Applied to every stanza from a
//! client after its `from` is stamped, before anything routes or stores it.

use crate::core::module::{Hook, Module, Registrar, Slots, Soon};
use crate::core::state::ServerState;
use crate::xml::Element;
use crate::xmpp::error::{Condition, StanzaError};
use crate::xmpp::stanza::{IqType, Kind, Stanza};
use std::sync::Arc;
use xmpp_parsers::jid::BareJid;

use crate::xml::ns::DELAY as NS_DELAY;
use crate::xml::ns::LEGACY_DELAY as NS_LEGACY_DELAY;
/// Archive result namespaces: the current one and earlier drafts clients still parse.
const NS_MAM: [&str; 3] = [crate::xml::ns::MAM, crate::xml::ns::MAM_1, crate::xml::ns::MAM_TMP];

/// Checks (and cleans) one stanza from `sender`; an error to answer it with when refused.
pub fn check(stanza: &mut Stanza, sender: &BareJid, serves: impl Fn(&str) -> bool) -> Result<(), StanzaError> {
    match stanza.kind {
        Kind::Message(_) => {
            // XEP-0280 §11 and XEP-0313 §5: carbon copies and archive results come from
            // the server alone (a client that skips the `from` check would show a forged
            // conversation as real).
            let forged = stanza.element.children().any(|child| {
                (child.has_ns(crate::modules::carbons::NS) && matches!(child.name(), "sent" | "received"))
                    || (child.name() == "result" && NS_MAM.contains(&child.ns().as_str()))
            });
            if forged {
                return Err(StanzaError::with_text(Condition::Forbidden, "only the server sends this"));
            }
            strip_server_delays(&mut stanza.element, &serves);
        }
        Kind::Presence(_) => {
            strip_server_delays(&mut stanza.element, &serves);
        }
        Kind::Iq(IqType::Get | IqType::Set) => {
            // RFC 6121 §2.1.6, XEP-0191 §3: roster and block-list pushes come from the
            // account itself (the server); another account cannot send one.
            let to_other = stanza.to.as_ref().is_some_and(|to| to.to_bare() != *sender && to.node().is_some());
            let push = stanza
                .element
                .children()
                .any(|c| c.is("query", crate::modules::roster::NS) || c.has_ns(crate::modules::blocking::NS));
            if to_other && push {
                return Err(StanzaError::with_text(Condition::Forbidden, "only the server sends this"));
            }
        }
        Kind::Iq(_) => {}
    }
    Ok(())
}

/// XEP-0203: a delay stamped by one of our domains is ours (offline storage); one a
/// client wrote would fake when a message was stored.
fn strip_server_delays(element: &mut Element, serves: &impl Fn(&str) -> bool) {
    let ours = |child: &Element| {
        (child.is("delay", NS_DELAY) || child.is("x", NS_LEGACY_DELAY)) && child.attr("from").is_some_and(serves)
    };
    if element.children().any(ours) {
        let kept: Vec<Element> = element.children().filter(|c| !ours(c)).cloned().collect();
        while element.remove_child("delay", NS_DELAY).is_some() {}
        while element.remove_child("x", NS_LEGACY_DELAY).is_some() {}
        for child in kept.into_iter().filter(|c| c.is("delay", NS_DELAY) || c.is("x", NS_LEGACY_DELAY)) {
            element.append_child(child);
        }
    }
}

/// Applies [`check`] to every stanza a client sends.
pub struct Ingress;

impl Module for Ingress {
    fn name(&self) -> &'static str {
        "ingress filtering"
    }

    fn register(self: Arc<Self>, api: &mut Registrar) {
        api.hook(Hook::Inbound);
    }

    fn inbound<'a>(
        &'a self,
        state: &'a ServerState,
        sender: &'a BareJid,
        stanza: &'a mut Stanza,
        _slots: &'a mut Slots,
    ) -> Soon<'a, Result<(), StanzaError>> {
        Soon::ready(check(stanza, sender, |domain| state.config.serves(domain)).inspect_err(|error| {
            tracing::debug!(condition = error.condition.name(), "refused server-only content from a client");
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stanza(xml: &str) -> Stanza {
        let element: Element = xml.parse().expect("xml");
        Stanza::parse(element).map_err(|_| "not a stanza").expect("stanza")
    }

    fn check_from_alice(xml: &str) -> (Result<(), StanzaError>, Stanza) {
        let mut stanza = stanza(xml);
        let alice = BareJid::new("alice@localhost").expect("jid");
        let result = check(&mut stanza, &alice, |domain| domain == "localhost");
        (result, stanza)
    }

    #[test]
    fn carbons_and_archive_results_from_a_client_are_refused() {
        for child in [
            "<received xmlns='urn:xmpp:carbons:2'/>",
            "<sent xmlns='urn:xmpp:carbons:2'/>",
            "<result xmlns='urn:xmpp:mam:2' id='x'/>",
            "<result xmlns='urn:xmpp:mam:1' id='x'/>",
        ] {
            let xml = format!("<message xmlns='jabber:client' to='bob@localhost'>{child}</message>");
            let (result, _) = check_from_alice(&xml);
            assert_eq!(result.map_err(|e| e.condition), Err(Condition::Forbidden), "{child}");
        }
        let private =
            "<message xmlns='jabber:client' to='bob@localhost'><private xmlns='urn:xmpp:carbons:2'/></message>";
        assert!(check_from_alice(private).0.is_ok(), "the private hint is the client's");
    }

    #[test]
    fn delays_in_our_name_are_stripped_others_kept() {
        let xml = "<message xmlns='jabber:client' to='bob@localhost'><body>hi</body>\
                   <delay xmlns='urn:xmpp:delay' from='localhost' stamp='2001-01-01T00:00:00Z'/>\
                   <delay xmlns='urn:xmpp:delay' from='alice@localhost/r' stamp='2020-01-01T00:00:00Z'/>\
                   <x xmlns='jabber:x:delay' from='localhost' stamp='20010101T00:00:00'/></message>";
        let (result, stanza) = check_from_alice(xml);
        assert!(result.is_ok());
        let delays: Vec<_> = stanza.element.children().filter(|c| c.is("delay", NS_DELAY)).collect();
        assert_eq!(delays.len(), 1);
        assert_eq!(delays[0].attr("from"), Some("alice@localhost/r"));
        assert!(stanza.element.get_child("x", NS_LEGACY_DELAY).is_none());
        assert!(stanza.element.get_child("body", "jabber:client").is_some());
    }

    #[test]
    fn pushes_to_another_account_are_refused_own_requests_pass() {
        let push = "<iq xmlns='jabber:client' type='set' id='1' to='bob@localhost/r'>\
                    <query xmlns='jabber:iq:roster'><item jid='eve@localhost'/></query></iq>";
        assert_eq!(check_from_alice(push).0.map_err(|e| e.condition), Err(Condition::Forbidden));
        let block = "<iq xmlns='jabber:client' type='set' id='2' to='bob@localhost'>\
                     <block xmlns='urn:xmpp:blocking'><item jid='eve@localhost'/></block></iq>";
        assert_eq!(check_from_alice(block).0.map_err(|e| e.condition), Err(Condition::Forbidden));
        let own = "<iq xmlns='jabber:client' type='set' id='3'><query xmlns='jabber:iq:roster'><item jid='bob@localhost'/></query></iq>";
        assert!(check_from_alice(own).0.is_ok());
        let own_bare =
            "<iq xmlns='jabber:client' type='get' id='4' to='alice@localhost'><query xmlns='jabber:iq:roster'/></iq>";
        assert!(check_from_alice(own_bare).0.is_ok());
    }
}
