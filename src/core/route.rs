//! RFC 6120 §10.4: where a stanza's `to` points. A hosted domain's JIDs are accounts; a
//! domain a module registered is that module's service (a MUC service, an upload service);
//! any other domain is another server's.

use super::state::ServerState;
use xmpp_parsers::jid::{BareJid, Jid};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// An account of a hosted domain (RFC 6121 §8.5), by its bare JID.
    Account(BareJid),
    /// A domain a module serves: the module takes the stanza.
    Service(String),
    /// Another server's domain (RFC 6120 §10.4.3, server-to-server).
    Remote(String),
}

pub fn destination(state: &ServerState, to: &Jid) -> Destination {
    let domain = to.domain().as_str();
    if state.config.serves(domain) {
        Destination::Account(to.to_bare())
    } else if state.modules.service(domain).is_some() {
        Destination::Service(domain.to_owned())
    } else {
        Destination::Remote(domain.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::delivery::{self, Routed};
    use crate::core::module::{Module, Modules, Registrar, Soon};
    use crate::xmpp::error::{Condition, StanzaError};
    use crate::xmpp::stanza::Stanza;
    use std::sync::{Arc, Mutex};

    /// A service that keeps the ids of what it is sent and refuses iq.
    #[derive(Default)]
    struct Echo {
        taken: Mutex<Vec<String>>,
    }

    impl Module for Arc<Echo> {
        fn name(&self) -> &'static str {
            "echo"
        }

        fn register(self: Arc<Self>, api: &mut Registrar) {
            api.service("echo.localhost");
        }

        fn to_service<'a>(
            &'a self,
            _state: &'a ServerState,
            stanza: &'a Stanza,
        ) -> Soon<'a, Result<Routed, StanzaError>> {
            if stanza.element.name() == "iq" {
                return Soon::ready(Err(StanzaError::new(Condition::FeatureNotImplemented)));
            }
            self.taken.lock().expect("lock").push(stanza.id.clone().unwrap_or_default());
            Soon::ready(Ok(Routed::Delivered))
        }
    }

    fn stanza(text: &str) -> Stanza {
        Stanza::parse(text.parse().expect("xml")).map_err(|_| "a stanza").expect("stanza")
    }

    #[tokio::test]
    async fn accounts_services_and_other_servers_are_told_apart() {
        let echo = Arc::new(Echo::default());
        let config = crate::config::Config::default();
        let mut modules = Modules::default();
        modules.add(&config, echo.clone());
        let state = crate::core::state::with_accounts_and(&["alice@localhost"], config, modules);
        let to = |jid: &str| Jid::new(jid).expect("jid");
        assert_eq!(
            destination(&state, &to("alice@localhost/r")),
            Destination::Account(to("alice@localhost").to_bare())
        );
        assert_eq!(destination(&state, &to("room@echo.localhost/n")), Destination::Service("echo.localhost".into()));
        assert_eq!(destination(&state, &to("bob@example.org")), Destination::Remote("example.org".into()));

        let message =
            stanza("<message xmlns='jabber:client' from='alice@localhost/r' id='m1'><body>x</body></message>");
        let outcome = delivery::route(&state, &message, &to("room@echo.localhost")).await;
        assert_eq!(outcome.map_err(|e| e.condition), Ok(Routed::Delivered));
        assert_eq!(*echo.taken.lock().expect("lock"), vec!["m1".to_owned()], "the module took it");

        let iq = stanza("<iq xmlns='jabber:client' type='get' from='alice@localhost/r' id='q'><x xmlns='urn:x'/></iq>");
        let refused = delivery::route(&state, &iq, &to("echo.localhost")).await;
        assert_eq!(refused.map_err(|e| e.condition), Err(Condition::FeatureNotImplemented), "its error, for a request");
        let elsewhere = delivery::route(&state, &message, &to("bob@example.org")).await;
        assert_eq!(elsewhere.map_err(|e| e.condition), Err(Condition::RemoteServerNotFound));
    }
}
