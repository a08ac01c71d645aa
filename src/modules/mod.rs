//! Feature modules, one file or folder per specification. Each implements
//! [`Module`](crate::core::module::Module) and is registered below, in one line; disco#info
//! and the stream features are built from what they register (docs/architecture.md).

pub mod blocking;
pub mod carbons;
pub mod csi;
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
use crate::core::module::Modules;
pub use crate::core::module::{push_iq, storage_fault, Request, Target};
use crate::core::state::ServerState;
use crate::storage::StorageError;
use crate::xml::Element;
use crate::xmpp::error::Condition;
use std::sync::Arc;

/// Every feature this server offers, registered in this order (hooks run in it too).
pub fn standard(config: &Config) -> Modules {
    let mut modules = Modules::default();
    modules.add(config, ingress::Ingress);
    modules.add(config, disco::Disco);
    modules.add(config, ping::Ping);
    modules.add(config, version::Version);
    modules.add(config, last::LastActivity);
    modules.add(config, session::LegacySession);
    modules.add(config, roster::Roster);
    modules.add(config, blocking::Blocking);
    modules.add(config, offline::FlexibleOffline);
    modules.add(config, carbons::Carbons);
    modules.add(config, mam::Archive);
    modules.add(config, dialect::Dialect);
    modules.add(config, csi::ClientState);
    modules.add(config, vcard::Vcard);
    modules.add(config, private::PrivateStorage);
    modules
}

/// XML a module stored, read back for a handler that answers later: the store is read on
/// the blocking pool (a large value may come from disk; the session's worker serves other
/// sessions meanwhile), then parsed. None when nothing is stored; a storage fault or
/// unreadable XML is `internal-server-error`, logged.
pub async fn read_stored(
    state: Arc<ServerState>,
    read: impl FnOnce(&ServerState) -> Result<Option<Vec<u8>>, StorageError> + Send + 'static,
) -> Result<Option<Element>, Condition> {
    let stored = match tokio::task::spawn_blocking(move || read(&state)).await {
        Ok(stored) => stored.map_err(storage_fault)?,
        Err(e) => {
            tracing::error!(error = %e, "a storage read did not finish");
            return Err(Condition::InternalServerError);
        }
    };
    let Some(bytes) = stored else { return Ok(None) };
    match crate::xml::read_stanza(&bytes).await {
        Some(element) => Ok(Some(element)),
        None => {
            tracing::error!(bytes = bytes.len(), "stored XML cannot be read back");
            Err(Condition::InternalServerError)
        }
    }
}
