//! Where the tool may connect (loopback only) and from which source address.

use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::net::{TcpSocket, TcpStream};

/// Parses `--server`: an IP literal with port, or `localhost:PORT`; refuses anything that is
/// not in 127.0.0.0/8 or `::1`.
pub fn parse_server(text: &str) -> Result<SocketAddr, String> {
    let addr = match text.strip_prefix("localhost:") {
        Some(port) => {
            let port: u16 = port.parse().map_err(|_| format!("{text:?}: bad port"))?;
            SocketAddr::from((Ipv4Addr::LOCALHOST, port))
        }
        None => text.parse().map_err(|_| format!("{text:?}: expected IP:PORT or [::1]:PORT"))?,
    };
    if !is_loopback(addr.ip()) {
        return Err(format!("{text}: only loopback targets (127.0.0.0/8, ::1) are allowed"));
    }
    if addr.port() == 0 {
        return Err(format!("{text}: port 0"));
    }
    Ok(addr)
}

/// 127.0.0.0/8 or `::1` (an IPv4-mapped address does not count).
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.octets()[0] == 127,
        IpAddr::V6(v6) => v6 == Ipv6Addr::LOCALHOST,
    }
}

/// Opens TCP connections to the server, spreading them over source addresses.
#[derive(Debug, Clone)]
pub struct Dialer {
    pub server: SocketAddr,
    /// Connections per source address.
    pub per_source: u64,
    /// Connections the scenario opens in total: below `per_source` the kernel picks the
    /// source address.
    pub total: u64,
}

impl Dialer {
    /// The source address of connection number `index` (0-based), if one must be bound.
    pub fn source(&self, index: u64) -> Result<Option<IpAddr>, String> {
        if self.total <= self.per_source {
            return Ok(None);
        }
        let IpAddr::V4(_) = self.server.ip() else {
            return Err("more connections than --conns-per-source need an IPv4 server address".into());
        };
        // 127.0.0.2, 127.0.0.3, …: at most 16M addresses, all inside 127.0.0.0/8.
        let slot = index / self.per_source;
        let base = u32::from(Ipv4Addr::new(127, 0, 0, 2));
        let ip = u32::try_from(slot).ok().and_then(|s| base.checked_add(s)).map(Ipv4Addr::from);
        match ip.map(IpAddr::V4) {
            Some(ip) if is_loopback(ip) => Ok(Some(ip)),
            _ => Err(format!("connection {index}: no loopback source address left")),
        }
    }

    /// Connects connection number `index`, with TCP_NODELAY and keepalive.
    pub async fn connect(&self, index: u64) -> io::Result<TcpStream> {
        let source = self.source(index).map_err(io::Error::other)?;
        let stream = match source {
            None => TcpStream::connect(self.server).await?,
            Some(ip) => bound_socket(ip)?.connect(self.server).await?,
        };
        stream.set_nodelay(true)?;
        let keepalive = TcpKeepalive::new().with_time(std::time::Duration::from_secs(60));
        SockRef::from(&stream).set_tcp_keepalive(&keepalive)?;
        Ok(stream)
    }
}

/// A socket bound to `ip`, port 0: the kernel picks a port free on that address, so each
/// source address has its own ephemeral port range.
fn bound_socket(ip: IpAddr) -> io::Result<TcpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::new(ip, 0).into())?;
    Ok(TcpSocket::from_std_stream(socket.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        assert!(parse_server("127.0.0.1:5222").is_ok());
        assert!(parse_server("127.255.0.9:1").is_ok());
        assert!(parse_server("[::1]:5222").is_ok());
        assert_eq!(parse_server("localhost:15222"), Ok(SocketAddr::from(([127, 0, 0, 1], 15222))));
        for bad in ["10.0.0.1:5222", "192.168.1.1:5222", "8.8.8.8:53", "[::ffff:127.0.0.1]:5222", "[fe80::1]:5222"] {
            assert!(parse_server(bad).is_err(), "{bad}");
        }
        for bad in ["example.org:5222", "127.0.0.1", "localhost", "localhost:x", "127.0.0.1:0"] {
            assert!(parse_server(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn source_addresses_rotate_per_block() {
        let server = SocketAddr::from(([127, 0, 0, 1], 5222));
        let small = Dialer { server, per_source: 20_000, total: 20_000 };
        assert_eq!(small.source(19_999), Ok(None));
        let big = Dialer { server, per_source: 20_000, total: 50_000 };
        assert_eq!(big.source(0), Ok(Some(IpAddr::from([127, 0, 0, 2]))));
        assert_eq!(big.source(20_000), Ok(Some(IpAddr::from([127, 0, 0, 3]))));
        assert_eq!(big.source(49_999), Ok(Some(IpAddr::from([127, 0, 0, 4]))));
        let many = Dialer { server, per_source: 1, total: 1 << 30 };
        assert_eq!(many.source(254), Ok(Some(IpAddr::from([127, 0, 1, 0]))));
        assert!(many.source(1 << 25).is_err(), "never leaves 127.0.0.0/8");
        let v6 = Dialer { server: "[::1]:5222".parse().expect("addr"), per_source: 1, total: 2 };
        assert!(v6.source(0).is_err());
    }
}
