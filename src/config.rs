//! The server's configuration: one typed TOML document with a default for every field.
//!
//! Every option is documented in `docs/configuration.md`. Bounds are checked by
//! [`Config::validate`], which `stanzad check-config` and `stanzad serve` both run.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
    #[error("invalid setting {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { field, reason: reason.into() }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Virtual hosts: every domain this server serves accounts for. The first is the default.
    pub hosts: Vec<String>,
    /// Where sled keeps its database, and the admin socket lives.
    pub data_dir: PathBuf,
    pub storage: Storage,
    pub listeners: Listeners,
    pub tls: Tls,
    pub auth: Auth,
    pub limits: Limits,
    pub timeouts: Timeouts,
    pub stream_management: StreamManagement,
    pub archive: Archive,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Listeners {
    /// Client-to-server with STARTTLS (RFC 6120). `"off"` disables it.
    #[serde(deserialize_with = "addr_or_off")]
    pub c2s: Option<SocketAddr>,
    /// Client-to-server with direct TLS (XEP-0368, ALPN `xmpp-client`). `"off"` disables it.
    #[serde(deserialize_with = "addr_or_off")]
    pub c2s_tls: Option<SocketAddr>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    /// PEM certificate chain. When neither `cert` nor `key` is set, a self-signed
    /// certificate for every host is generated into `cert_dir` on first start.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub cert_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// Allow client streams without TLS, and SASL PLAIN on them. For tests and benchmarks only.
    pub allow_plaintext: bool,
    /// PBKDF2 iteration count for newly stored SCRAM credentials.
    pub scram_iterations: u32,
    /// Failed SASL attempts allowed on one stream before it is closed (RFC 6120 §6.4.5).
    pub max_failed_attempts: u32,
    /// Delay added to the first failed login of an account or address; doubles per failure.
    pub failure_delay_ms: u64,
    /// Ceiling for that delay.
    pub max_failure_delay_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest top-level element accepted after authentication (advertised with XEP-0478).
    pub max_stanza_bytes: usize,
    /// Largest top-level element accepted before authentication.
    pub preauth_stanza_bytes: usize,
    /// Deepest element nesting inside one stanza.
    pub max_depth: usize,
    /// Most attributes on one element.
    pub max_attributes: usize,
    /// Stanzas queued for one session's writer before the sender gets `resource-constraint`.
    pub session_queue: usize,
    /// Bytes queued for one session before the sender gets `resource-constraint`.
    pub session_queue_bytes: usize,
    /// Most simultaneous client connections.
    pub max_connections: usize,
    /// Most simultaneous client connections from one IP address.
    pub max_connections_per_ip: usize,
    /// Stanzas per second one session may send; faster clients are read more slowly
    /// (TCP back-pressure), never refused.
    pub stanzas_per_sec: u32,
    /// Stanzas a session may send in a burst above that rate.
    pub stanza_burst: u32,
    /// Most items in one account's roster.
    pub max_roster_items: usize,
    /// Most bytes of JIDs, names and groups in one account's roster (read whole for
    /// every presence broadcast).
    pub max_roster_bytes: u64,
    /// Most bytes of JIDs in one account's block list (kept in memory, consulted for
    /// every stanza to or from the account).
    pub max_blocklist_bytes: u64,
    /// Most bytes of JIDs in one account's archive preferences (consulted for every
    /// archived message).
    pub max_archive_prefs_bytes: u64,
    /// Largest vCard an account may set (XEP-0054), as stored: the serialised `<vCard/>`.
    pub max_vcard_bytes: u64,
    /// Most bytes of private XML one account may keep (XEP-0049), over all its namespaces:
    /// each entry weighs its namespace and its serialised elements.
    pub max_private_bytes: u64,
    /// Largest subscription request kept until its recipient answers (RFC 6121 §3.1.3),
    /// as stored: the presence with its payloads.
    pub max_subscription_request_bytes: usize,
    /// Messages kept for one account while it is offline; more get `resource-constraint`.
    pub offline_quota: u64,
    /// The same bound in bytes, so no sender can fill an account's storage (or the memory
    /// of a XEP-0013 fetch) with large messages.
    pub offline_quota_bytes: u64,
    /// How long a retransmitted message (same sender, id, recipient and payload) is
    /// recognised and not delivered twice.
    pub dedup_window_secs: u64,
    /// How many recent messages per sender are remembered for that.
    pub dedup_ids: usize,
    /// The kernel's send buffer for each client connection (0: the kernel's default).
    /// Small, so that little waits in the kernel for a client that stopped reading.
    pub send_buffer_bytes: usize,
    /// Most resources one account may have bound at once; one more bind gets
    /// `resource-constraint` (RFC 6120 §7.6.2.1).
    pub max_resources_per_account: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// Time allowed from TCP accept to a bound resource.
    pub negotiation_secs: u64,
    /// Idle time after which the server pings a client (XEP-0199).
    pub ping_interval_secs: u64,
    /// Time a client has to answer that ping before `connection-timeout`.
    pub ping_timeout_secs: u64,
    /// Time given to sessions to close on shutdown.
    pub shutdown_grace_secs: u64,
}

/// XEP-0198 stream management.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamManagement {
    /// Offer stream management at all.
    pub enabled: bool,
    /// How long a resumable session whose connection died waits for its client
    /// (the client may ask for less, never for more).
    pub resume_timeout_secs: u64,
    /// The server asks for an acknowledgement after this many unacknowledged stanzas...
    pub ack_request_every: usize,
    /// ...or when the oldest unacknowledged stanza is this old.
    pub ack_request_delay_secs: u64,
    /// Time a client has to answer `<r/>` before its connection counts as dead.
    pub ack_timeout_secs: u64,
    /// Unacknowledged stanzas a session may have; a client that does not acknowledge is
    /// disconnected at this bound (what it did not acknowledge is kept offline).
    pub max_unacked: usize,
    /// ...or with more than this many bytes of them.
    pub max_unacked_bytes: usize,
}

impl Default for StreamManagement {
    fn default() -> Self {
        StreamManagement {
            enabled: true,
            resume_timeout_secs: 300,
            ack_request_every: 5,
            ack_request_delay_secs: 5,
            ack_timeout_secs: 30,
            max_unacked: 1000,
            max_unacked_bytes: 8 << 20,
        }
    }
}

/// XEP-0313 message archive.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Archive {
    /// Archive conversations at all (and offer `urn:xmpp:mam:2`).
    pub enabled: bool,
    /// How long archived messages are kept: a number and a unit (`s`, `m`, `h`, `d`, `w`),
    /// or `never` (kept for ever, as `0` is). Default `365d`.
    pub max_age: Option<String>,
    /// The older spelling of `max_age`, in days (0: kept for ever); not both.
    pub retention_days: Option<u64>,
    /// What is archived for an account that set no preferences: always, roster or never.
    pub default: String,
    /// Results per page when a query names no size, and the largest page.
    pub default_page: usize,
    pub max_page: usize,
}

impl Default for Archive {
    fn default() -> Self {
        Archive {
            enabled: true,
            max_age: None,
            retention_days: None,
            default: "always".into(),
            default_page: 50,
            max_page: 250,
        }
    }
}

impl Archive {
    /// How long archived messages are kept; None: for ever.
    pub fn max_age(&self) -> Option<std::time::Duration> {
        let age = match (&self.max_age, self.retention_days) {
            (Some(text), _) => parse_age(text).unwrap_or_default(),
            (None, Some(days)) => std::time::Duration::from_secs(days * 86_400),
            (None, None) => std::time::Duration::from_secs(365 * 86_400),
        };
        (!age.is_zero()).then_some(age)
    }

    pub fn default_preference(&self) -> crate::storage::archive::Default {
        self.default.parse().unwrap_or(crate::storage::archive::Default::Always)
    }
}

/// Where the server keeps its data.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    /// `sled` (on disk, in `data_dir`) or `memory` (nothing survives a restart).
    pub backend: String,
}

impl Default for Storage {
    fn default() -> Self {
        Storage { backend: "sled".into() }
    }
}

impl Storage {
    /// The configured backend; an error naming the field when it is unknown.
    pub fn backend(&self) -> Result<crate::storage::Backend, ConfigError> {
        self.backend.parse().map_err(|()| {
            let names = crate::storage::Backend::NAMES;
            invalid("storage.backend", format!("{:?} is not a storage backend (known: {names})", self.backend))
        })
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hosts: vec!["localhost".into()],
            data_dir: PathBuf::from("data"),
            storage: Storage::default(),
            listeners: Listeners::default(),
            tls: Tls::default(),
            auth: Auth::default(),
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            stream_management: StreamManagement::default(),
            archive: Archive::default(),
        }
    }
}

impl Default for Listeners {
    fn default() -> Self {
        Listeners {
            c2s: Some(SocketAddr::from(([0, 0, 0, 0], 5222))),
            c2s_tls: Some(SocketAddr::from(([0, 0, 0, 0], 5223))),
        }
    }
}

impl Default for Tls {
    fn default() -> Self {
        Tls { cert: None, key: None, cert_dir: PathBuf::from("certs") }
    }
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            allow_plaintext: false,
            scram_iterations: 10_000,
            max_failed_attempts: 3,
            failure_delay_ms: 250,
            max_failure_delay_ms: 8_000,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_stanza_bytes: 256 * 1024,
            preauth_stanza_bytes: 16 * 1024,
            max_depth: 32,
            max_attributes: 64,
            session_queue: 512,
            session_queue_bytes: 4 << 20,
            max_connections: 10_000,
            max_connections_per_ip: 100,
            stanzas_per_sec: 100,
            stanza_burst: 500,
            max_roster_items: 2000,
            max_roster_bytes: 512 << 10,
            max_blocklist_bytes: 128 << 10,
            max_archive_prefs_bytes: 64 << 10,
            max_vcard_bytes: 64 << 10,
            max_private_bytes: 256 << 10,
            max_subscription_request_bytes: 8 << 10,
            offline_quota: 10_000,
            offline_quota_bytes: 64 << 20,
            dedup_window_secs: 600,
            dedup_ids: 1000,
            send_buffer_bytes: 64 << 10,
            max_resources_per_account: 10,
        }
    }
}

impl Limits {
    /// What one roster may hold (`max_roster_items`, `max_roster_bytes`).
    pub fn roster_quota(&self) -> crate::storage::roster::ListQuota {
        crate::storage::roster::ListQuota { items: self.max_roster_items, bytes: self.max_roster_bytes }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { negotiation_secs: 60, ping_interval_secs: 300, ping_timeout_secs: 60, shutdown_grace_secs: 5 }
    }
}

impl Config {
    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let config = Config::parse(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse { path: path.to_owned(), source },
            other => other,
        })?;
        Ok(config)
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let mut config: Config =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: PathBuf::new(), source: Box::new(e) })?;
        config.normalize_hosts()?;
        config.validate()?;
        Ok(config)
    }

    /// The default virtual host: the first configured domain.
    pub fn default_host(&self) -> &str {
        self.hosts.first().map(String::as_str).unwrap_or("localhost")
    }

    pub fn serves(&self, domain: &str) -> bool {
        self.hosts.iter().any(|h| h == domain)
    }

    /// Lower-cases and checks every host as a JID domainpart (RFC 7622 §3.2).
    pub fn normalize_hosts(&mut self) -> Result<(), ConfigError> {
        for host in &mut self.hosts {
            let jid = xmpp_parsers::jid::BareJid::new(host)
                .map_err(|e| invalid("hosts", format!("{host:?} is not a domain: {e}")))?;
            if jid.node().is_some() {
                return Err(invalid("hosts", format!("{host:?} has a localpart")));
            }
            *host = jid.domain().to_string();
        }
        Ok(())
    }

    /// Checks every bound; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.hosts.is_empty() {
            return Err(invalid("hosts", "at least one host is required"));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = self.hosts.iter().find(|h| !seen.insert(*h)) {
            return Err(invalid("hosts", format!("{dup} is listed twice")));
        }
        self.storage.backend()?;
        if self.listeners.c2s.is_none() && self.listeners.c2s_tls.is_none() {
            return Err(invalid("listeners", "at least one listener is required"));
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err(invalid("tls", "cert and key must be set together"));
        }
        check_range("auth.scram_iterations", self.auth.scram_iterations as u64, 4096, 1_000_000)?;
        // RFC 6120 §6.4.5: at least 2 and no more than 5 retries.
        check_range("auth.max_failed_attempts", self.auth.max_failed_attempts as u64, 2, 5)?;
        check_range("auth.max_failure_delay_ms", self.auth.max_failure_delay_ms, 0, 60_000)?;
        check_range("auth.failure_delay_ms", self.auth.failure_delay_ms, 0, self.auth.max_failure_delay_ms)?;
        let l = &self.limits;
        check_range("limits.max_stanza_bytes", l.max_stanza_bytes as u64, 10_000, 64 << 20)?;
        check_range("limits.preauth_stanza_bytes", l.preauth_stanza_bytes as u64, 4096, l.max_stanza_bytes as u64)?;
        check_range("limits.max_depth", l.max_depth as u64, 8, 1024)?;
        check_range("limits.max_attributes", l.max_attributes as u64, 8, 1024)?;
        check_range("limits.session_queue", l.session_queue as u64, 16, 1_000_000)?;
        check_range("limits.session_queue_bytes", l.session_queue_bytes as u64, l.max_stanza_bytes as u64, 1 << 30)?;
        check_range("limits.max_connections", l.max_connections as u64, 1, 10_000_000)?;
        check_range("limits.max_connections_per_ip", l.max_connections_per_ip as u64, 1, 10_000_000)?;
        check_range("limits.stanzas_per_sec", l.stanzas_per_sec as u64, 1, 10_000_000)?;
        check_range("limits.stanza_burst", l.stanza_burst as u64, 1, 10_000_000)?;
        check_range("limits.max_roster_items", l.max_roster_items as u64, 10, 1_000_000)?;
        check_range("limits.max_roster_bytes", l.max_roster_bytes, 16 << 10, 1 << 30)?;
        // At most what one shard of the store's memory cache holds (storage/sled/cache.rs),
        // so the largest list is still answered from memory.
        check_range("limits.max_blocklist_bytes", l.max_blocklist_bytes, 4 << 10, 1 << 20)?;
        check_range("limits.max_archive_prefs_bytes", l.max_archive_prefs_bytes, 4 << 10, 512 << 10)?;
        check_range("limits.max_vcard_bytes", l.max_vcard_bytes, 1 << 10, 64 << 20)?;
        check_range("limits.max_private_bytes", l.max_private_bytes, 4 << 10, 64 << 20)?;
        let request = l.max_subscription_request_bytes as u64;
        check_range("limits.max_subscription_request_bytes", request, 1024, l.max_stanza_bytes as u64)?;
        check_range("limits.offline_quota", l.offline_quota, 1, 10_000_000)?;
        check_range("limits.offline_quota_bytes", l.offline_quota_bytes, l.max_stanza_bytes as u64, 1 << 40)?;
        check_range("limits.dedup_window_secs", l.dedup_window_secs, 0, 86_400)?;
        check_range("limits.dedup_ids", l.dedup_ids as u64, 0, 100_000)?;
        check_range("limits.send_buffer_bytes", l.send_buffer_bytes as u64, 0, 64 << 20)?;
        check_range("limits.max_resources_per_account", l.max_resources_per_account as u64, 1, 1000)?;
        let t = &self.timeouts;
        check_range("timeouts.negotiation_secs", t.negotiation_secs, 1, 3600)?;
        check_range("timeouts.ping_interval_secs", t.ping_interval_secs, 1, 86_400)?;
        check_range("timeouts.ping_timeout_secs", t.ping_timeout_secs, 1, 3600)?;
        check_range("timeouts.shutdown_grace_secs", t.shutdown_grace_secs, 0, 600)?;
        let sm = &self.stream_management;
        check_range("stream_management.resume_timeout_secs", sm.resume_timeout_secs, 0, 86_400)?;
        check_range("stream_management.ack_request_every", sm.ack_request_every as u64, 1, 10_000)?;
        check_range("stream_management.ack_request_delay_secs", sm.ack_request_delay_secs, 0, 3600)?;
        check_range("stream_management.ack_timeout_secs", sm.ack_timeout_secs, 1, 3600)?;
        check_range("stream_management.max_unacked", sm.max_unacked as u64, 16, 1_000_000)?;
        let most = sm.max_unacked_bytes as u64;
        check_range("stream_management.max_unacked_bytes", most, self.limits.max_stanza_bytes as u64, 1 << 32)?;
        let a = &self.archive;
        if let Some(days) = a.retention_days {
            check_range("archive.retention_days", days, 0, 36_500)?;
        }
        if let Some(text) = &a.max_age {
            if a.retention_days.is_some() {
                return Err(invalid("archive.max_age", "set max_age or retention_days (its older spelling), not both"));
            }
            let age = parse_age(text).map_err(|why| invalid("archive.max_age", why))?;
            check_range("archive.max_age (seconds)", age.as_secs(), 0, 36_500 * 86_400)?;
        }
        check_range("archive.max_page", a.max_page as u64, 1, 1000)?;
        check_range("archive.default_page", a.default_page as u64, 1, a.max_page as u64)?;
        if a.default.parse::<crate::storage::archive::Default>().is_err() {
            return Err(invalid("archive.default", format!("{:?} is not always, roster or never", a.default)));
        }
        Ok(())
    }
}

fn addr_or_off<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    if text.is_empty() || text == "off" {
        return Ok(None);
    }
    text.parse().map(Some).map_err(serde::de::Error::custom)
}

/// `never`, or a number and a unit: `90s`, `30m`, `12h`, `30d`, `4w` (`0` alone: never).
fn parse_age(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    if text == "never" || text == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let unit_at = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(unit_at);
    let number: u64 =
        number.parse().map_err(|_| format!("{text:?} is not a number and a unit (s, m, h, d, w) or never"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("{text:?}: the unit is one of s, m, h, d, w")),
    };
    Ok(std::time::Duration::from_secs(number.saturating_mul(seconds)))
}

fn check_range(field: &'static str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(invalid(field, format!("{value} is outside {min}..={max}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_the_defaults() {
        let c = Config::parse("").expect("defaults are valid");
        assert_eq!(c.hosts, vec!["localhost"]);
        assert_eq!(c.limits.max_stanza_bytes, 262_144);
        assert!(!c.auth.allow_plaintext);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = Config::parse("colour = 'blue'").expect_err("unknown field");
        assert!(err.to_string().contains("colour"), "{err}");
        assert!(Config::parse("[limits]\nmax_stanzas = 3").is_err());
    }

    #[test]
    fn bounds_are_checked_and_named() {
        let err = Config::parse("[limits]\nmax_depth = 2").expect_err("too shallow");
        assert!(err.to_string().contains("limits.max_depth"), "{err}");
        let err = Config::parse("[limits]\nmax_resources_per_account = 0").expect_err("no resource at all");
        assert!(err.to_string().contains("limits.max_resources_per_account"), "{err}");
        assert!(Config::parse("[limits]\nmax_resources_per_account = 1001").is_err());
        let c = Config::parse("[limits]\nmax_resources_per_account = 1000").expect("the largest");
        assert_eq!(c.limits.max_resources_per_account, 1000);
        assert_eq!(Config::default().limits.max_resources_per_account, 10);
        let err = Config::parse("[tls]\ncert = 'a.pem'").expect_err("cert without key");
        assert!(err.to_string().contains("tls"), "{err}");
    }

    #[test]
    fn the_archive_max_age_takes_units_and_the_older_spelling() {
        let age = |toml: &str| Config::parse(toml).map(|c| c.archive.max_age());
        let day = std::time::Duration::from_secs(86_400);
        assert_eq!(age("").expect("default"), Some(365 * day));
        assert_eq!(age("[archive]\nmax_age = '30d'").expect("days"), Some(30 * day));
        assert_eq!(age("[archive]\nmax_age = '12h'").expect("hours"), Some(day / 2));
        assert_eq!(age("[archive]\nmax_age = '2w'").expect("weeks"), Some(14 * day));
        assert_eq!(age("[archive]\nmax_age = 'never'").expect("never"), None);
        assert_eq!(age("[archive]\nretention_days = 90").expect("older spelling"), Some(90 * day));
        assert_eq!(age("[archive]\nretention_days = 0").expect("for ever"), None);
        for bad in ["'30'", "'30 days'", "'d'", "'-1d'", "'99999999w'"] {
            let err = age(&format!("[archive]\nmax_age = {bad}")).expect_err(bad);
            assert!(err.to_string().contains("archive.max_age"), "{bad}: {err}");
        }
        let both = age("[archive]\nmax_age = '1d'\nretention_days = 1").expect_err("both");
        assert!(both.to_string().contains("not both"), "{both}");
    }

    #[test]
    fn the_storage_backend_is_sled_unless_chosen() {
        use crate::storage::Backend;
        assert_eq!(Config::default().storage.backend().expect("default"), Backend::Sled);
        let c = Config::parse("[storage]\nbackend = 'memory'").expect("memory");
        assert_eq!(c.storage.backend().expect("memory"), Backend::Memory);
        let err = Config::parse("[storage]\nbackend = 'postgres'").expect_err("unknown backend").to_string();
        assert!(err.contains("storage.backend") && err.contains("postgres") && err.contains("sled"), "{err}");
    }

    #[test]
    fn hosts_are_normalised_and_checked() {
        let c = Config::parse("hosts = ['Example.ORG', 'localhost']").expect("valid");
        assert_eq!(c.hosts, vec!["example.org", "localhost"]);
        assert!(Config::parse("hosts = ['user@example.org']").is_err());
        assert!(Config::parse("hosts = ['a.org', 'A.org']").is_err());
        assert!(Config::parse("hosts = []").is_err());
    }

    #[test]
    fn the_documented_example_is_valid() {
        let doc = include_str!("../docs/configuration.md");
        let start = doc.find("```toml\n").expect("an example") + "```toml\n".len();
        let end = start + doc[start..].find("```").expect("end of example");
        let c = Config::parse(&doc[start..end]).expect("the example in docs/configuration.md is valid");
        assert_eq!(c.hosts, vec!["example.org", "chat.example.net"]);
    }

    #[test]
    fn listeners_parse_and_switch_off() {
        let c = Config::parse("[listeners]\nc2s = '127.0.0.1:5000'\nc2s_tls = 'off'").expect("valid");
        assert_eq!(c.listeners.c2s, Some(SocketAddr::from(([127, 0, 0, 1], 5000))));
        assert_eq!(c.listeners.c2s_tls, None);
        assert!(Config::parse("[listeners]\nc2s = 'nowhere'").is_err());
        assert!(Config::parse("[listeners]\nc2s = 'off'\nc2s_tls = 'off'").is_err());
    }
}
