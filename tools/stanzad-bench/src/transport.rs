//! The byte stream under XMPP: plain TCP, or TLS after STARTTLS (the server's own type,
//! over a client-side TLS stream).

use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

pub type Transport = stanzad::transport::stream::Transport<TlsStream<TcpStream>>;
