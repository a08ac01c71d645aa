//! `<stream:features/>` for each stage of negotiation (RFC 6120 §4.3.2).

use crate::config::Config;
use crate::core::module::Modules;
use crate::sasl::{self, CbType, ChannelBindings};
use crate::xml::{NS_BIND, NS_LIMITS, NS_SASL, NS_SASL_CB, NS_SESSION, NS_TLS};

/// Before TLS on the STARTTLS port: TLS, required unless plaintext is allowed.
pub fn before_tls(config: &Config) -> String {
    if config.auth.allow_plaintext {
        let mechanisms = mechanisms(&ChannelBindings::default(), false, true);
        return format!("<stream:features><starttls xmlns='{NS_TLS}'/>{mechanisms}</stream:features>");
    }
    format!("<stream:features><starttls xmlns='{NS_TLS}'><required/></starttls></stream:features>")
}

/// Before authentication on a secure stream: SASL, with XEP-0440 channel-binding types.
pub fn before_auth(config: &Config, cb: &ChannelBindings, secure: bool) -> String {
    let mechanisms = mechanisms(cb, secure, config.auth.allow_plaintext);
    let bindings: String =
        cb.offered().into_iter().map(|t| format!("<channel-binding type='{}'/>", cb_name(t))).collect();
    let bindings = if bindings.is_empty() {
        String::new()
    } else {
        format!("<sasl-channel-binding xmlns='{NS_SASL_CB}'>{bindings}</sasl-channel-binding>")
    };
    format!("<stream:features>{mechanisms}{bindings}</stream:features>")
}

/// After authentication: bind, the legacy session, what the modules offer, stream
/// management and XEP-0478 limits.
pub fn after_auth(config: &Config, modules: &Modules) -> String {
    format!(
        "<stream:features><bind xmlns='{NS_BIND}'/><session xmlns='{NS_SESSION}'><optional/></session>{}{}{}</stream:features>",
        modules.stream_features(),
        stream_management(config),
        limits(config)
    )
}

/// XEP-0198 §2: stream management, offered after authentication (for enable and resume).
fn stream_management(config: &Config) -> String {
    match config.stream_management.enabled {
        true => format!("<sm xmlns='{}'/>", crate::c2s::session::sm::NS),
        false => String::new(),
    }
}

/// XEP-0478: the largest stanza we accept and how long we tolerate silence.
fn limits(config: &Config) -> String {
    let idle = config.timeouts.ping_interval_secs + config.timeouts.ping_timeout_secs;
    format!(
        "<limits xmlns='{NS_LIMITS}'><max-bytes>{}</max-bytes><idle-seconds>{idle}</idle-seconds></limits>",
        config.limits.max_stanza_bytes
    )
}

fn mechanisms(cb: &ChannelBindings, secure: bool, allow_plain_insecure: bool) -> String {
    let list: String = sasl::advertised(cb, secure, allow_plain_insecure)
        .into_iter()
        .map(|m| format!("<mechanism>{}</mechanism>", m.name()))
        .collect();
    format!("<mechanisms xmlns='{NS_SASL}'>{list}</mechanisms>")
}

pub fn cb_name(t: CbType) -> &'static str {
    match t {
        CbType::TlsExporter => "tls-exporter",
        CbType::TlsServerEndPoint => "tls-server-end-point",
    }
}
