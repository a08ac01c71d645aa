//! Who may open a connection: at most `limits.max_connections` in all and
//! `limits.max_connections_per_ip` from one address (XEP-0205 §3.1), IPv6 counted per /64
//! (one subscriber's prefix). A refused connection is told why with an RFC 6120 stream
//! error (after the opening stream header, §4.9.1.2) and closed.

use crate::config::Limits;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The connection counts of one server (all its listeners).
#[derive(Debug)]
pub struct Admission {
    total: AtomicUsize,
    per_source: Mutex<HashMap<IpAddr, usize>>,
    max_total: usize,
    max_per_source: usize,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The server holds `max_connections` already.
    Full,
    /// Its address (or IPv6 /64) holds `max_connections_per_ip` already.
    TooManyFromSource,
}

/// An admitted connection; counted until dropped.
#[derive(Debug)]
pub struct Admitted {
    admission: Arc<Admission>,
    source: IpAddr,
}

impl Admission {
    pub fn new(limits: &Limits) -> Arc<Admission> {
        Arc::new(Admission {
            total: AtomicUsize::new(0),
            per_source: Mutex::new(HashMap::new()),
            max_total: limits.max_connections,
            max_per_source: limits.max_connections_per_ip,
        })
    }

    /// Counts a new connection from `ip`, or says why it may not be.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Refusal> {
        let source = source_of(ip);
        let mut per_source = self.per_source.lock().unwrap_or_else(|p| p.into_inner());
        if self.total.load(Ordering::Relaxed) >= self.max_total {
            return Err(Refusal::Full);
        }
        let count = per_source.entry(source).or_insert(0);
        if *count >= self.max_per_source {
            return Err(Refusal::TooManyFromSource);
        }
        *count += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Ok(Admitted { admission: self.clone(), source })
    }

    /// Open connections.
    pub fn active(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut per_source = self.admission.per_source.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = per_source.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                per_source.remove(&self.source);
            }
        }
        self.admission.total.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What one source is: an IPv4 address (IPv4-mapped IPv6 included), or an IPv6 /64.
pub fn source_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(prefix.into())
        }
        v4 => v4,
    }
}

impl Refusal {
    /// The stream error a refused client reads (RFC 6120 §4.9.3.15, §4.9.3.18).
    pub fn stream_error(self, host: &str) -> String {
        let (condition, text) = match self {
            Refusal::Full => ("resource-constraint", "the server holds all the connections it can"),
            Refusal::TooManyFromSource => ("policy-violation", "too many connections from your address"),
        };
        let id = format!("{:016x}", rand::random::<u64>());
        let header = crate::xml::writer::stream_header(host, &id, None);
        header + &crate::xml::writer::stream_error(condition, Some(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(total: usize, per_ip: usize) -> Arc<Admission> {
        let limits = Limits { max_connections: total, max_connections_per_ip: per_ip, ..Limits::default() };
        Admission::new(&limits)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn each_address_has_its_own_count_and_gets_it_back() {
        let admission = admission(10, 2);
        let a1 = admission.admit(ip("127.0.0.1")).expect("first");
        let _a2 = admission.admit(ip("127.0.0.1")).expect("second");
        assert_eq!(admission.admit(ip("127.0.0.1")).err(), Some(Refusal::TooManyFromSource));
        let _b = admission.admit(ip("127.0.0.2")).expect("another address");
        drop(a1);
        let _a3 = admission.admit(ip("127.0.0.1")).expect("a closed connection is given back");
        assert_eq!(admission.active(), 3);
    }

    #[test]
    fn the_total_bounds_every_address() {
        let admission = admission(2, 5);
        let _a = admission.admit(ip("10.0.0.1")).expect("first");
        let _b = admission.admit(ip("10.0.0.2")).expect("second");
        assert_eq!(admission.admit(ip("10.0.0.3")).err(), Some(Refusal::Full));
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let admission = admission(10, 1);
        let _a = admission.admit(ip("2001:db8:1:2::1")).expect("first");
        assert_eq!(admission.admit(ip("2001:db8:1:2:ffff::9")).err(), Some(Refusal::TooManyFromSource));
        assert!(admission.admit(ip("2001:db8:1:3::1")).is_ok(), "another /64");
        let _v4 = admission.admit(ip("192.0.2.7")).expect("v4");
        assert_eq!(admission.admit(ip("::ffff:192.0.2.7")).err(), Some(Refusal::TooManyFromSource));
    }

    #[test]
    fn the_refusal_is_a_stream_error_after_a_header() {
        let text = Refusal::TooManyFromSource.stream_error("example.org");
        assert!(text.starts_with("<?xml version='1.0'?><stream:stream "), "{text}");
        assert!(text.contains("<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"), "{text}");
        assert!(text.ends_with("</stream:stream>"), "{text}");
    }
}
