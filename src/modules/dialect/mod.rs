//! The opt-in dialect (docs/dialect.md, schemas/dialect.xsd), all of it: the stream
//! feature; `<enable/>`, answered `<enabled/>` and the count of waiting messages; the
//! client's `<receipt/>`s, turned into the standard receipt messages every recipient
//! understands; what each session is shown (receipts as `<receipt/>`, unavailable presence
//! with `last` for a dialect session; no dialect element or attribute for a standard one);
//! and the "sent" `<ack/>` for each message the server took.
//!
//! Its vocabulary and translations are in [`vocabulary`]. A session's choice is a flag of
//! its registry entry ([`Viewer::dialect`]), so any node can show it stanzas.

pub mod vocabulary;

use crate::core::module::{Client, Hook, Module, Registrar, Soon, Viewer, Writes};
use crate::core::state::ServerState;
use crate::xml::{el, writer, Element, ElementExt};
use crate::xmpp::error::StanzaError;
use crate::xmpp::stanza::{Kind, MessageType, Stanza};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
pub use vocabulary::{NS, TIME};
use xmpp_parsers::jid::BareJid;

pub struct Dialect;

/// The id prefix of the messages the server makes from `<receipt/>`s: the client never
/// gave them an id, so no `<ack/>` answers them.
const RECEIPT_ID: &str = "receipt-";

impl Module for Dialect {
    fn name(&self) -> &'static str {
        "stanzad dialect"
    }

    fn register(self: Arc<Self>, api: &mut Registrar) {
        api.stream_feature(&format!("<dialect xmlns='{NS}'/>"));
        api.element(Some("enable"), NS);
        api.stanzas(NS);
        for hook in [Hook::Inbound, Hook::Shown, Hook::MessageTaken] {
            api.hook(hook);
        }
    }

    /// `<enable/>`: the session speaks the dialect from now on (idempotent). Before
    /// anything else its client learns how many messages wait for it.
    fn element<'a>(&'a self, _element: &'a Element, client: Client<'a>) -> Soon<'a, Result<Writes, String>> {
        client.viewer.dialect = true;
        client.state.registry.set_dialect(client.jid, client.session);
        Soon::later(async move {
            let bare = client.jid.to_bare();
            let count = client.state.store.offline_count(&bare).await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "reading the offline count failed");
                0
            });
            let ib = vocabulary::offline_count(bare.domain().as_str(), count);
            Ok(Writes { stream: vec![writer::to_bytes(&el("enabled", NS))], stanzas: vec![writer::to_bytes(&ib)] })
        })
    }

    /// A dialect session's `<receipt/>` becomes the standard receipt message, routed and
    /// stored like any other. Anything else in the namespace is not a stanza.
    fn stanza_from_client(&self, element: &mut Element, viewer: Viewer, session: u64) -> Result<(), StanzaError> {
        static MADE: AtomicU64 = AtomicU64::new(0);
        if !viewer.dialect || !element.is("receipt", NS) {
            return Ok(());
        }
        let id = format!("{RECEIPT_ID}{session}-{}", MADE.fetch_add(1, Ordering::Relaxed));
        *element = vocabulary::receipt_to_message(element, &id)?;
        Ok(())
    }

    /// `last` is the server's to give, on any presence a client sends, directed included.
    fn inbound<'a>(
        &'a self,
        _state: &'a ServerState,
        _sender: &'a BareJid,
        stanza: &'a mut Stanza,
        _slots: &'a mut crate::core::module::Slots,
    ) -> Soon<'a, Result<(), StanzaError>> {
        if matches!(stanza.kind, Kind::Presence(_)) {
            stanza.element.unset(vocabulary::LAST);
        }
        Soon::ready(Ok(()))
    }

    /// A dialect session sees receipt messages as `<receipt/>`s, and when a contact that
    /// went offline was last seen; a standard session sees no dialect element or attribute.
    fn shown(&self, element: &Element, viewer: Viewer, last_seen: Option<u64>) -> Option<Element> {
        if !viewer.dialect {
            return vocabulary::for_standard(element);
        }
        match (element.name(), last_seen) {
            ("message", _) if element.attr("type") == Some("error") => None,
            ("message", _) => vocabulary::message_to_receipt(element),
            (_, Some(at)) => Some(vocabulary::with_last(element, at)),
            _ => None,
        }
    }

    fn shows_stored_differently(&self, bytes: &[u8], viewer: Viewer) -> bool {
        let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        viewer.dialect || contains(NS.as_bytes()) || contains(b" last=")
    }

    fn routed_form(&self, element: &Element) -> Option<Element> {
        vocabulary::receipt_back_to_message(element)
    }

    /// The "sent" tick: `<ack id='..' t='..'/>` for a message with an id the client gave.
    fn message_taken(&self, stanza: &Stanza, viewer: Viewer) -> Vec<Vec<u8>> {
        let id = stanza.id.as_deref().filter(|id| !id.starts_with(RECEIPT_ID));
        match (viewer.dialect, id, stanza.kind) {
            (false, _, _) | (_, None, _) | (_, _, Kind::Message(MessageType::Error)) => Vec::new(),
            (true, Some(id), _) => vec![writer::to_bytes(&vocabulary::sent_ack(id, crate::core::presence::unix_now()))],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::module::Modules;
    use crate::xml::Element;

    fn xml(text: &str) -> Element {
        text.parse().expect("test XML")
    }

    /// The feature is the golden example of schemas/examples/ (validated against
    /// schemas/dialect.xsd in CI).
    #[test]
    fn the_offered_feature_is_the_golden_example() {
        let mut modules = Modules::default();
        modules.add(&crate::config::Config::default(), Dialect);
        let offered: Element = modules.stream_features().parse().expect("the feature");
        let golden: Element = include_str!("../../../schemas/examples/feature.xml").trim().parse().expect("golden");
        vocabulary::tests::assert_same_shape(&offered, &golden);
    }

    #[test]
    fn receipts_count_as_stanzas_and_enable_does_not() {
        let mut modules = Modules::default();
        modules.add(&crate::config::Config::default(), Dialect);
        assert!(modules.stands_for_stanza(&xml("<receipt xmlns='urn:stanzad:dialect:0'/>")));
        assert!(!modules.stands_for_stanza(&xml("<enable xmlns='urn:stanzad:dialect:0'/>")));
        assert!(!modules.stands_for_stanza(&xml("<message xmlns='jabber:client'/>")));
    }

    #[test]
    fn a_standard_session_sees_no_dialect_even_inside_a_copy() {
        let carbon = xml("<message xmlns='jabber:client'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'><participant xmlns='urn:stanzad:dialect:0' jid='p@x'/></message></forwarded></sent></message>");
        let shown = Dialect.shown(&carbon, Viewer::default(), None).expect("stripped");
        assert!(!String::from_utf8_lossy(&writer::to_bytes(&shown)).contains("dialect"), "{shown:?}");
        assert!(Dialect.shown(&carbon, Viewer { dialect: true }, None).is_none(), "a dialect session sees it all");
    }

    #[test]
    fn a_stored_receipt_goes_back_to_its_routed_form_with_its_delay() {
        let stored = xml("<receipt xmlns='urn:stanzad:dialect:0' from='bob@localhost/b' to='alice@localhost' id='m1' stamp='2026-11-22T19:05:27Z'/>");
        let message = Dialect.routed_form(&stored).expect("a message");
        let delay = message.get_child("delay", crate::xml::ns::DELAY).expect("its delay");
        assert_eq!((delay.attr("from"), delay.attr("stamp")), (Some("localhost"), Some("2026-11-22T19:05:27Z")));
        assert!(crate::core::offline::is_from_storage(&message, "localhost"));
    }

    #[tokio::test]
    async fn the_last_a_client_claims_is_dropped_from_any_presence() {
        let state = crate::core::state::with_accounts(&["a@localhost"]);
        let sender = BareJid::new("a@localhost").expect("jid");
        let mut slots = crate::core::module::Slots::default();
        let mut stanza = Stanza::parse(xml("<presence xmlns='jabber:client' to='b@localhost' last='1'/>"))
            .map_err(|_| "stanza")
            .expect("stanza");
        Dialect.inbound(&state, &sender, &mut stanza, &mut slots).await.expect("taken");
        assert!(stanza.element.attr("last").is_none());
    }
}
