//! The writing side of a connection during negotiation, and how every stream ends.

use super::error::StreamEnd;
use crate::xml::seam::ByteWriter;

/// How long the last bytes of a stream may take to leave.
const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub struct Wire {
    pub out: Box<dyn ByteWriter>,
    /// Whether our stream header went out on the current stream.
    pub header_sent: bool,
    /// The domain we speak as: the one the client asked for once known, else the default host.
    pub domain: String,
}

impl Wire {
    pub fn new(out: Box<dyn ByteWriter>, domain: String) -> Wire {
        Wire { out, header_sent: false, domain }
    }

    pub async fn send(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.out.write_all(data).await?;
        self.out.flush().await
    }

    /// Sends our stream header with a fresh stream id (RFC 6120 §4.7.3).
    pub async fn open(&mut self, client_from: Option<&str>) -> std::io::Result<()> {
        let id = new_stream_id();
        let header = self.out.framing().open(&self.domain, &id, client_from);
        self.header_sent = true;
        self.send(header.as_bytes()).await
    }

    /// Ends the stream: a stream error (after our header, if none was sent yet, §4.9.1.1),
    /// or just our closing tag; then the transport is shut down.
    pub async fn close(&mut self, end: &StreamEnd) {
        let mut bytes = String::new();
        if let StreamEnd::Error(..) | StreamEnd::PeerClosed | StreamEnd::ServerClosed(_) = end {
            if !self.header_sent {
                bytes.push_str(&self.out.framing().open(&self.domain, &new_stream_id(), None));
            }
        }
        match end {
            StreamEnd::Error(condition, text) => {
                bytes.push_str(&self.out.framing().error(condition.name(), Some(text)))
            }
            StreamEnd::PeerClosed | StreamEnd::ServerClosed(_) => bytes.push_str(self.out.framing().close()),
            StreamEnd::Io(_) => return,
        }
        // A peer that stopped reading gets a few seconds, not forever.
        let close = async {
            let _ = self.send(bytes.as_bytes()).await;
            let _ = self.out.shutdown().await;
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, close).await;
    }
}

pub fn new_stream_id() -> String {
    use rand::Rng;
    let bytes: [u8; 12] = rand::thread_rng().gen();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
