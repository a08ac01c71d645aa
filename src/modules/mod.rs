//! Feature modules, one file or folder per specification. Each implements
//! [`Module`](crate::core::module::Module) and is registered below, in one line; disco#info
//! and the stream features are built from what they register (docs/architecture.md).

pub mod blocking;
pub mod carbons;
pub mod commands;
pub mod csi;
pub mod dedup;
pub mod dialect;
pub mod disco;
pub mod ingress;
pub mod last;
pub mod mam;
pub mod offline;
pub mod ping;
pub mod private;
pub mod roster;
pub mod session;
pub mod vcard;
pub mod version;

use crate::config::Config;
pub use crate::core::module::{push_iq, storage_fault, Request, Target};
use crate::core::module::{Delivering, Flag, Modules, Registrar, Slots};
use crate::core::{Delivery, PushKind};
use crate::xml::Element;
use crate::xmpp::error::Condition;

/// Every feature this server offers, registered in this order (hooks run in it too).
pub fn standard(config: &Config) -> Modules {
    let mut modules = Modules::default();
    modules.add(config, ingress::Ingress);
    modules.add(config, dedup::Dedup::configured(config));
    modules.add(config, disco::Disco);
    modules.add(config, ping::Ping);
    modules.add(config, version::Version);
    modules.add(config, last::LastActivity);
    modules.add(config, session::LegacySession);
    modules.add(config, roster::Roster::default());
    modules.add(config, blocking::Blocking::default());
    modules.add(config, offline::FlexibleOffline);
    // The archive before carbons: a sent carbon carries the sender's archive id.
    modules.add(config, mam::Archive);
    modules.add(config, carbons::Carbons);
    modules.add(config, dialect::Dialect);
    modules.add(config, csi::ClientState);
    modules.add(config, vcard::Vcard);
    modules.add(config, private::PrivateStorage);
    // Last: it lists the commands the modules above offer.
    modules.add(config, commands::Commands);
    modules
}

/// Pushes of one list go only to the sessions that fetched it (RFC 6121 §2.1.6, XEP-0191
/// §3.3): a session flag, set when its client gets the list. (A flag, not a slot: nearly
/// every client fetches its roster, and a slot would cost each session a map.)
pub struct PushInterest {
    kind: PushKind,
    flag: std::sync::OnceLock<Flag>,
}

impl PushInterest {
    pub const fn new(kind: PushKind) -> PushInterest {
        PushInterest { kind, flag: std::sync::OnceLock::new() }
    }

    /// Claims the flag, at registration.
    pub fn register(&self, api: &mut Registrar) -> Flag {
        *self.flag.get_or_init(|| api.session_flag())
    }

    /// The client of this request fetched the list, if it asked for its own.
    pub fn fetched(flag: Flag, request: &mut Request) {
        if request.is_get() && request.own_account().is_ok() {
            request.slots.set(flag);
        }
    }

    /// A push of this list to a session that never fetched it is dropped.
    pub fn delivering(&self, delivery: &Delivery, slots: &Slots) -> Delivering {
        match (delivery, self.flag.get()) {
            (Delivery::Push(kind, _), Some(flag)) if *kind == self.kind && !slots.has(*flag) => Delivering::Dropped,
            _ => Delivering::Pass,
        }
    }
}

/// Stored XML read back, as a module answers with it; a read that fails, or bytes that
/// no longer parse, is `internal-server-error`.
pub async fn stored_xml(read: crate::storage::Reply<'_, Option<Vec<u8>>>) -> Result<Option<Element>, Condition> {
    let Some(bytes) = read.await.map_err(storage_fault)? else { return Ok(None) };
    match crate::xml::read_stanza(&bytes).await {
        Some(element) => Ok(Some(element)),
        None => {
            tracing::error!(bytes = bytes.len(), "stored XML cannot be read back");
            Err(Condition::InternalServerError)
        }
    }
}

#[cfg(test)]
mod tests {
    /// `commands` lists the commands of the modules registered before it: every command is
    /// answered at its node (a module registered after it would not be).
    #[test]
    fn every_command_is_listed() {
        let modules = super::standard(&crate::config::Config::default());
        assert!(!modules.commands().is_empty());
        for command in modules.commands() {
            assert!(modules.disco_node(command.node()).is_some(), "{} is not listed", command.node());
        }
        assert!(modules.disco_node(super::commands::NS).is_some());
    }
}
