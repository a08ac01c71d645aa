//! The byte stream under XMPP (RFC 6120 §3): plain TCP until STARTTLS, or TLS from the
//! start. Framed by the strict framer on the reading side.

use crate::sasl::ChannelBindings;
use crate::xml::framer::{Frame, Framer, FramerError, Limits};
use crate::xml::seam::{ByteWriter, FrameReader, Io};
use std::any::Any;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// Plain TCP or TLS over it. The server's is the default; the load tool and the tests'
/// client use the same type over a client-side TLS stream.
pub enum Transport<Tls = TlsStream<TcpStream>> {
    Plain(TcpStream),
    Tls(Box<Tls>),
}

impl Transport {
    pub fn is_secure(&self) -> bool {
        matches!(self, Transport::Tls(_))
    }

    /// Channel-binding data for SCRAM-*-PLUS: `tls-exporter` (RFC 9266, TLS 1.3 only)
    /// and `tls-server-end-point` (RFC 5929) from our certificate's hash.
    pub fn channel_bindings(&self, end_point: &[u8]) -> ChannelBindings {
        let Transport::Tls(tls) = self else {
            return ChannelBindings::default();
        };
        let conn = tls.get_ref().1;
        let tls_exporter = (conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3))
            .then(|| conn.export_keying_material(vec![0u8; 32], b"EXPORTER-Channel-Binding", None).ok())
            .flatten();
        ChannelBindings { tls_exporter, tls_server_end_point: Some(end_point.to_vec()) }
    }
}

impl<Tls: AsyncRead + Unpin> AsyncRead for Transport<Tls> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl<Tls: AsyncWrite + Unpin> AsyncWrite for Transport<Tls> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The framed reading half of a byte stream.
pub struct StreamReader(Framer<ReadHalf<Transport>>);

/// The writing half of a byte stream.
pub struct StreamWriter(WriteHalf<Transport>);

/// Splits a byte stream into the two halves the seam uses, the reader framing within
/// `limits`.
pub fn split(transport: Transport, limits: Limits) -> (Box<dyn FrameReader>, Box<dyn ByteWriter>) {
    let (read, write) = tokio::io::split(transport);
    (Box::new(StreamReader(Framer::new(read, limits))), Box::new(StreamWriter(write)))
}

/// The byte stream the two halves came from (for STARTTLS); None if they are not a byte
/// stream's.
pub fn reunite(reader: Box<dyn FrameReader>, writer: Box<dyn ByteWriter>) -> Option<Transport> {
    let reader = reader.into_any().downcast::<StreamReader>().ok()?;
    let writer = writer.into_any().downcast::<StreamWriter>().ok()?;
    Some(reader.0.into_inner().unsplit(writer.0))
}

impl FrameReader for StreamReader {
    fn next_frame(&mut self) -> Io<'_, Result<Frame, FramerError>> {
        Box::pin(self.0.next())
    }

    fn restart(&mut self) {
        self.0.reset();
    }

    fn set_limits(&mut self, limits: Limits) {
        self.0.set_limits(limits);
    }

    fn has_buffered_content(&self) -> bool {
        self.0.has_buffered_content()
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}

impl ByteWriter for StreamWriter {
    fn write_all<'a>(&'a mut self, bytes: &'a [u8]) -> Io<'a, io::Result<()>> {
        Box::pin(self.0.write_all(bytes))
    }

    fn flush(&mut self) -> Io<'_, io::Result<()>> {
        Box::pin(self.0.flush())
    }

    fn shutdown(&mut self) -> Io<'_, io::Result<()>> {
        Box::pin(self.0.shutdown())
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}
