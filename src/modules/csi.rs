//! XEP-0352 client state indication: while a client says it is inactive (a phone in a
//! pocket), presence updates are held, only the latest per sender, and sent when it is
//! active again (or when too much is held: `core::held`). Messages and everything else
//! go at once.
//!
//! All of it is here: the stream feature, the `<active/>`/`<inactive/>` elements, and the
//! presence held per session, in a slot that exists only while the client is inactive.

use crate::core::held::Held;
use crate::core::module::{Client, Delivering, Hook, Module, Registrar, SessionEvent, Slots, Soon, Writes};
use crate::core::Delivery;
use crate::xml::Element;
use std::sync::Arc;

pub use crate::xml::ns::CSI as NS;

pub struct ClientState;

/// A session whose client said `<inactive/>`: what it has not been sent yet.
#[derive(Default)]
struct Inactive {
    held: Held,
}

impl Module for ClientState {
    fn name(&self) -> &'static str {
        "XEP-0352"
    }

    fn register(self: Arc<Self>, api: &mut Registrar) {
        api.stream_feature(&format!("<csi xmlns='{NS}'/>"));
        api.element(None, NS);
        api.hook(Hook::Delivering);
        api.hook(Hook::SessionEvents);
    }

    /// §5.2: the state is not restored when a stream is resumed: the resumed stream is
    /// active, and what was held goes out.
    fn session_event(&self, event: SessionEvent, slots: &mut Slots) -> Vec<Vec<u8>> {
        match event {
            SessionEvent::Resumed => {
                slots.remove::<Inactive>().map(|mut inactive| inactive.held.take()).unwrap_or_default()
            }
            SessionEvent::Hibernated | SessionEvent::Ended => Vec::new(),
        }
    }

    /// §5: `<inactive/>` holds presence updates; `<active/>` releases them. Anything else
    /// in the namespace ends the stream (it is not a stanza).
    fn element<'a>(&'a self, element: &'a Element, client: Client<'a>) -> Soon<'a, Result<Writes, String>> {
        let slots = client.slots;
        Soon::ready(match element.name() {
            "inactive" => {
                slots.get_or_default::<Inactive>();
                Ok(Writes::default())
            }
            "active" => {
                let held = slots.remove::<Inactive>().map(|mut inactive| inactive.held.take()).unwrap_or_default();
                Ok(Writes::stanzas(held))
            }
            other => Err(format!("<{other}/> is not a client state")),
        })
    }

    /// §6: while inactive, availability presence waits, the latest per sender.
    fn delivering(&self, delivery: &Delivery, slots: &mut Slots) -> Delivering {
        let (Delivery::Bytes(bytes), Some(inactive)) = (delivery, slots.get_mut::<Inactive>()) else {
            return Delivering::Pass;
        };
        match Held::sender(bytes) {
            Some(from) => Delivering::Held(inactive.held.hold(from, bytes.to_vec())),
            None => Delivering::Pass,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The module's answer to a client element `xml` in its namespace: the stanzas written.
    async fn element(csi: &ClientState, name: &str, slots: &mut Slots) -> Result<Vec<Vec<u8>>, String> {
        let state = crate::core::state::with_accounts(&[]);
        let jid = xmpp_parsers::jid::FullJid::new("a@localhost/r").expect("jid");
        let mut viewer = crate::core::module::Viewer::default();
        let client = Client { state: &state, jid: &jid, session: 1, viewer: &mut viewer, slots };
        let element: Element = format!("<{name} xmlns='{NS}'/>").parse().expect("xml");
        let writes = csi.element(&element, client).await?;
        assert!(writes.stream.is_empty(), "CSI answers no stream-level element");
        Ok(writes.stanzas)
    }

    fn presence(from: &str) -> Delivery {
        let xml = format!("<presence xmlns='jabber:client' from='{from}'/>");
        Delivery::Bytes(xml.into_bytes().into())
    }

    #[tokio::test]
    async fn presence_waits_while_inactive_and_an_active_client_costs_nothing() {
        let (csi, mut slots) = (ClientState, Slots::default());
        assert_eq!(csi.delivering(&presence("a@x/r"), &mut slots), Delivering::Pass, "active by default");
        assert!(slots.get::<Inactive>().is_none());
        assert_eq!(element(&csi, "inactive", &mut slots).await, Ok(Vec::new()));
        assert_eq!(csi.delivering(&presence("a@x/r"), &mut slots), Delivering::Held(Vec::new()));
        assert_eq!(csi.delivering(&presence("b@x/r"), &mut slots), Delivering::Held(Vec::new()));
        assert_eq!(csi.delivering(&presence("a@x/r"), &mut slots), Delivering::Held(Vec::new()));
        let message = Delivery::Message(b"<message xmlns='jabber:client'/>".to_vec().into());
        assert_eq!(csi.delivering(&message, &mut slots), Delivering::Pass, "messages go at once");
        let released = element(&csi, "active", &mut slots).await.expect("released");
        let senders: Vec<_> = released.iter().map(|b| Held::sender(b).expect("presence")).collect();
        assert_eq!(senders, ["b@x/r", "a@x/r"], "the latest of each, in the order they last changed");
        assert!(slots.get::<Inactive>().is_none(), "nothing kept once active");
        assert!(element(&csi, "sleepy", &mut slots).await.is_err());
    }

    #[tokio::test]
    async fn a_resumed_stream_is_active_again() {
        let (csi, mut slots) = (ClientState, Slots::default());
        element(&csi, "inactive", &mut slots).await.expect("inactive");
        assert_eq!(csi.delivering(&presence("a@x/r"), &mut slots), Delivering::Held(Vec::new()));
        assert!(csi.session_event(SessionEvent::Hibernated, &mut slots).is_empty(), "still inactive");
        assert_eq!(csi.session_event(SessionEvent::Resumed, &mut slots).len(), 1, "what was held goes out");
        assert_eq!(csi.delivering(&presence("a@x/r"), &mut slots), Delivering::Pass, "active after resumption");
    }
}
