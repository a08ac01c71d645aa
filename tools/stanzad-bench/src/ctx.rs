//! What every connection of a run shares: target, accounts, TLS, SASL cache, time limits.

use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use crate::cli::{Common, Mech};
use crate::error::{BenchError, Result};
use crate::net::Dialer;
use crate::salt_cache::SaltCache;
use crate::tls::{self, Trust};
use crate::{accounts, net};

pub struct Ctx {
    pub domain: String,
    pub prefix: String,
    pub first: u64,
    pub password: String,
    pub resource: String,
    pub mech: Mech,
    /// Set with `--starttls`.
    pub tls: Option<TlsConnector>,
    pub salts: SaltCache,
    /// Longest wait for one network event.
    pub wait: Duration,
    /// The hard stop of the run (`--max-secs`).
    pub deadline: Instant,
    pub dialer: Dialer,
    pub server_pid: Option<u32>,
    /// Random per run: marks our messages (stale ones from other runs are told apart).
    pub run_tag: String,
}

impl Ctx {
    /// Validates the common options. `connections` is how many the scenario opens in total.
    pub fn new(common: &Common, connections: u64) -> Result<Ctx, String> {
        let server = net::parse_server(&common.server)?;
        accounts::check(&common.prefix, &common.domain, &common.password)?;
        let tls = match (common.starttls, &common.ca, common.insecure) {
            (false, _, _) => None,
            (true, Some(path), _) => Some(tls::connector(Trust::Pem(path))?),
            (true, None, true) => Some(tls::connector(Trust::Insecure)?),
            (true, None, false) => return Err("--starttls needs --ca FILE or --insecure".into()),
        };
        if let Some(pid) = common.server_pid {
            crate::procfs::cpu_ticks(Some(pid)).map_err(|e| format!("--server-pid {pid}: {e}"))?;
        }
        Ok(Ctx {
            domain: common.domain.clone(),
            prefix: common.prefix.clone(),
            first: common.first,
            password: common.password.clone(),
            resource: common.resource.clone(),
            mech: common.mech,
            tls,
            salts: SaltCache::default(),
            wait: Duration::from_secs(common.timeout),
            deadline: Instant::now() + Duration::from_secs(common.max_secs),
            dialer: Dialer { server, per_source: common.conns_per_source, total: connections },
            server_pid: common.server_pid,
            run_tag: format!("{:08x}", rand::random::<u32>()),
        })
    }

    /// The localpart of the account at `offset` from `--first`.
    pub fn localpart(&self, offset: u64) -> String {
        accounts::localpart(&self.prefix, self.first.saturating_add(offset))
    }

    /// The bare JID of the account at `offset` from `--first`.
    pub fn bare_jid(&self, offset: u64) -> String {
        format!("{}@{}", self.localpart(offset), self.domain)
    }

    /// Whether the run's time is over.
    pub fn expired(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Awaits `fut` for at most `--timeout`, and never past the deadline.
    pub async fn within<T>(&self, what: &'static str, fut: impl Future<Output = T>) -> Result<T> {
        let limit = (Instant::now() + self.wait).min(self.deadline);
        match tokio::time::timeout_at(limit, fut).await {
            Ok(value) => Ok(value),
            Err(_) if limit == self.deadline => Err(BenchError::Deadline),
            Err(_) => Err(BenchError::Timeout(what)),
        }
    }

    /// Sleeps until `until`, but not past the deadline; `false` if the deadline cut it short.
    pub async fn sleep_until(&self, until: Instant) -> bool {
        tokio::time::sleep_until(until.min(self.deadline)).await;
        until <= self.deadline
    }
}
