//! Transports: the only place that names `TcpStream` or rustls. A byte stream (plain TCP,
//! STARTTLS, direct TLS) implements the seam of `xml::seam`, and the TCP listener hands each
//! accepted connection to the client-connection code (`c2s`) over it.

pub mod stream;
pub mod tcp;
pub mod tls;
