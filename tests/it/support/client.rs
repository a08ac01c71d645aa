//! A raw XML client: bytes out, elements in, every read bounded by [`TIMEOUT`].
//!
//! The server's output is parsed by stanzad's own [`Framer`] in a reader task that reads
//! one frame per request; a request that timed out stays pending and its frame is handed
//! out by the next read, so a timeout (e.g. in [`Client::expect_silence`]) never loses or
//! corrupts data. The task gives the read half back for STARTTLS and for checking that the
//! server closed the connection.

use super::scram::{scram, Binding, CbType, HashAlg};
use super::xml;
use super::{stream_header, DOMAIN, NS_BIND, NS_CLIENT, NS_SASL, NS_STREAM, NS_STREAM_ERRORS, NS_TLS, TIMEOUT};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ProtocolVersion, RootCertStore, SupportedProtocolVersion};
use sasl::client::Mechanism;
use sasl::common::ChannelBinding;
use sha2::{Digest, Sha256};
use stanzad::xml::framer::{Frame, Framer, FramerError, Limits, StreamHeader};
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;
use xmpp_parsers::minidom::Element;

/// Generous limits: the client must be able to see whatever the server sends.
const CLIENT_LIMITS: Limits = Limits { max_stanza_bytes: 16 << 20, max_depth: 1024, max_attributes: 1024 };

/// The byte stream under the client: TCP, or TLS over it (the server's own type, over a
/// client-side TLS stream).
pub type ClientStream = stanzad::transport::stream::Transport<tokio_rustls::client::TlsStream<TcpStream>>;

/// What the client learned from its TLS handshake.
#[derive(Debug, Clone)]
pub struct TlsInfo {
    pub version: Option<ProtocolVersion>,
    pub alpn: Option<Vec<u8>>,
    /// RFC 9266 `tls-exporter` (TLS 1.3 only).
    pub exporter: Option<Vec<u8>>,
    /// RFC 5929 `tls-server-end-point`: SHA-256 of the server's leaf certificate (rcgen
    /// signs with ECDSA P-256/SHA-256).
    pub end_point: Vec<u8>,
}

/// A channel-binding type for the `-PLUS` mechanisms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cb {
    TlsExporter,
    TlsServerEndPoint,
}

/// A SASL mechanism as the client runs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mech {
    Plain,
    ScramSha1,
    ScramSha256,
    ScramSha1Plus(Cb),
    ScramSha256Plus(Cb),
}

/// A client TLS configuration (ring provider) trusting the server's generated certificate.
pub fn tls_config(
    cert_path: &Path,
    alpn: &[&[u8]],
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cert_path).expect("read the server certificate") {
        roots.add(cert.expect("PEM certificate")).expect("add trust anchor");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider);
    let builder = if versions.is_empty() {
        builder.with_safe_default_protocol_versions()
    } else {
        builder.with_protocol_versions(versions)
    };
    let mut config = builder.expect("protocol versions").with_root_certificates(roots).with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

async fn tls_handshake(tcp: TcpStream, config: Arc<ClientConfig>) -> io::Result<(ClientStream, TlsInfo)> {
    let connector = tokio_rustls::TlsConnector::from(config);
    let name = ServerName::try_from(DOMAIN).expect("server name");
    let tls = timeout(TIMEOUT, connector.connect(name, tcp))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
    let conn = tls.get_ref().1;
    let version = conn.protocol_version();
    let exporter = if version == Some(ProtocolVersion::TLSv1_3) {
        conn.export_keying_material(vec![0u8; 32], b"EXPORTER-Channel-Binding", None).ok()
    } else {
        None
    };
    let leaf = conn.peer_certificates().and_then(|certs| certs.first()).expect("the server sent a certificate");
    let info = TlsInfo {
        version,
        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        exporter,
        end_point: Sha256::digest(leaf.as_ref()).to_vec(),
    };
    Ok((ClientStream::Tls(Box::new(tls)), info))
}

type Half = ReadHalf<ClientStream>;
type FrameResult = Result<Frame, FramerError>;

enum Cmd {
    Next(oneshot::Sender<FrameResult>),
    /// Stream restart: the server sends a new XML declaration and header.
    Reset,
    /// Ends the task, returning the read half and whether unparsed bytes were buffered.
    Release(oneshot::Sender<(Half, bool)>),
}

fn spawn_reader(read: Half) -> mpsc::UnboundedSender<Cmd> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut framer = Framer::new(read, CLIENT_LIMITS);
        while let Some(cmd) = rx.recv().await {
            match cmd {
                Cmd::Next(reply) => {
                    let _ = reply.send(framer.next().await);
                }
                Cmd::Reset => framer.reset(),
                Cmd::Release(reply) => {
                    let buffered = framer.has_buffered_bytes();
                    let _ = reply.send((framer.into_inner(), buffered));
                    return;
                }
            }
        }
    });
    tx
}

pub struct Client {
    reader: mpsc::UnboundedSender<Cmd>,
    pending: Option<oneshot::Receiver<FrameResult>>,
    writer: Option<WriteHalf<ClientStream>>,
    tls: Option<TlsInfo>,
    /// The server's header arrived on the current stream.
    header_seen: bool,
    /// `</stream:stream>` arrived.
    close_seen: bool,
    /// The id of the server's previous stream header on this connection.
    stream_id: Option<String>,
    /// The features of the current stream.
    pub features: Option<Element>,
    /// The full JID once bound.
    pub jid: Option<String>,
}

impl Client {
    /// A plain TCP connection.
    pub async fn connect(addr: SocketAddr) -> Client {
        Client::try_connect(addr).await.expect("connect")
    }

    /// A plain TCP connection, or why there is none (nothing listens: the server was
    /// killed, say).
    pub async fn try_connect(addr: SocketAddr) -> io::Result<Client> {
        let tcp = timeout(TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        tcp.set_nodelay(true)?;
        Ok(Client::from_stream(ClientStream::Plain(tcp), None))
    }

    /// A plain TCP connection whose receive buffer is tiny (so that a client that stops
    /// reading blocks the server's writes soon).
    pub async fn connect_small_window(addr: SocketAddr) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let tcp = timeout(TIMEOUT, socket.connect(addr)).await.expect("connect timed out").expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        Client::from_stream(ClientStream::Plain(tcp), None)
    }

    /// A direct TLS connection (XEP-0368) offering the ALPN protocols `alpn`.
    pub async fn connect_tls(addr: SocketAddr, cert_path: &Path, alpn: &[&[u8]]) -> io::Result<Client> {
        Client::connect_tls_with(addr, tls_config(cert_path, alpn, &[])).await
    }

    pub async fn connect_tls_with(addr: SocketAddr, config: Arc<ClientConfig>) -> io::Result<Client> {
        let tcp = timeout(TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        tcp.set_nodelay(true)?;
        let (stream, info) = tls_handshake(tcp, config).await?;
        Ok(Client::from_stream(stream, Some(info)))
    }

    fn from_stream(stream: ClientStream, tls: Option<TlsInfo>) -> Client {
        let (read, write) = tokio::io::split(stream);
        Client {
            reader: spawn_reader(read),
            pending: None,
            writer: Some(write),
            tls,
            header_seen: false,
            close_seen: false,
            stream_id: None,
            features: None,
            jid: None,
        }
    }

    /// The TLS details; panics on a plaintext connection.
    pub fn tls(&self) -> &TlsInfo {
        self.tls.as_ref().expect("a TLS connection")
    }

    /// The bound full JID.
    pub fn jid(&self) -> &str {
        self.jid.as_deref().expect("a bound resource")
    }

    /// The bare JID of the bound session.
    pub fn bare(&self) -> &str {
        self.jid().split('/').next().expect("JID")
    }

    // ---- writing ----

    /// Writes `bytes`; an error means the server closed the connection.
    pub async fn try_send_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        let writer = self.writer.as_mut().expect("connection open");
        timeout(TIMEOUT, async {
            writer.write_all(bytes).await?;
            writer.flush().await
        })
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "write timed out"))?
    }

    /// Ends our direction of the connection (FIN) without ending the stream: to the server,
    /// a client whose connection died. Nothing can be written after it (a write panics);
    /// the server's output can still be read.
    pub async fn shutdown_write(&mut self) {
        if let Some(mut writer) = self.writer.take() {
            let _ = timeout(TIMEOUT, writer.shutdown()).await;
        }
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.try_send_bytes(bytes).await.expect("send to the server");
    }

    pub async fn send(&mut self, xml: &str) {
        self.send_bytes(xml.as_bytes()).await;
    }

    /// Writes `xml` and resets the connection at once (SO_LINGER 0), nothing awaited in
    /// between: on the tests' one-threaded runtime the server cannot run before both are
    /// done, so it reads the bytes with the reset already there, and its answer cannot be
    /// written. Plain TCP only.
    pub async fn send_and_reset(mut self, xml: &str) {
        assert!(self.pending.is_none(), "a read is still pending");
        let (tx, rx) = oneshot::channel();
        self.reader.send(Cmd::Release(tx)).expect("reader task alive");
        let (read, _) = timeout(TIMEOUT, rx).await.expect("reader task released").expect("reader task answered");
        let ClientStream::Plain(tcp) = read.unsplit(self.writer.take().expect("connection open")) else {
            panic!("send_and_reset on a TLS connection")
        };
        let socket = socket2::SockRef::from(&tcp);
        socket.set_linger(Some(Duration::ZERO)).expect("SO_LINGER");
        assert_eq!(socket.send(xml.as_bytes()).expect("write"), xml.len(), "written at once");
        drop(tcp); // with SO_LINGER 0: a reset
    }

    // ---- reading ----

    /// The next frame, or None if nothing complete arrived within `wait`.
    pub async fn next_frame(&mut self, wait: Duration) -> Option<FrameResult> {
        let mut rx = match self.pending.take() {
            Some(rx) => rx,
            None => {
                let (tx, rx) = oneshot::channel();
                self.reader.send(Cmd::Next(tx)).expect("reader task alive");
                rx
            }
        };
        match timeout(wait, &mut rx).await {
            Ok(result) => {
                let frame = result.expect("reader task answered");
                match &frame {
                    Ok(Frame::Header(_)) => self.header_seen = true,
                    Ok(Frame::Close) => self.close_seen = true,
                    _ => {}
                }
                Some(frame)
            }
            Err(_) => {
                self.pending = Some(rx);
                None
            }
        }
    }

    async fn frame(&mut self, what: &str) -> Frame {
        match self.next_frame(TIMEOUT).await {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => panic!("waiting for {what}: the server's output failed: {e}"),
            None => panic!("waiting for {what}: nothing within {TIMEOUT:?}"),
        }
    }

    /// The next top-level element; panics on a header, the stream's end, or a timeout.
    pub async fn recv(&mut self) -> Element {
        match self.frame("an element").await {
            Frame::Stanza(element) => element,
            Frame::Header(h) => panic!("expected an element, got a stream header {h:?}"),
            Frame::Close => panic!("expected an element, the server closed the stream"),
        }
    }

    /// Receives the next element and matches it against `expected` (see [`xml`] for the rule).
    pub async fn expect(&mut self, expected: &str) -> Element {
        let want = xml::parse(expected);
        let got = self.recv().await;
        if let Err(difference) = xml::matches(&want, &got) {
            panic!("unexpected element\n  want: {expected}\n  got:  {}\n  {difference}", xml::show(&got));
        }
        got
    }

    /// Reads the server's stream header and checks its basics (RFC 6120 §4.7).
    pub async fn expect_header(&mut self) -> StreamHeader {
        let header = self.next_header().await;
        assert_eq!(header.from.as_deref(), Some(DOMAIN), "{header:?}");
        header
    }

    /// Reads the server's stream header and checks its basics, except its `from`.
    pub async fn next_header(&mut self) -> StreamHeader {
        let header = match self.frame("the server's stream header").await {
            Frame::Header(header) => header,
            Frame::Stanza(e) => panic!("expected the stream header, got {}", xml::show(&e)),
            Frame::Close => panic!("expected the stream header, got the stream's end"),
        };
        assert_eq!(header.ns.as_deref(), Some(NS_STREAM), "{header:?}");
        assert_eq!(header.local_name, "stream", "{header:?}");
        assert_eq!(header.default_ns.as_deref(), Some(NS_CLIENT), "{header:?}");
        assert_eq!(header.version.as_deref(), Some("1.0"), "{header:?}");
        let id = header.id.clone().filter(|id| !id.is_empty());
        assert!(id.is_some(), "stream id: {header:?}");
        // RFC 6120 §4.3.3: every stream, restarts included, gets a new id.
        assert_ne!(self.stream_id, id, "the restarted stream reuses the stream id");
        self.stream_id = id;
        header
    }

    /// The next element must be `<stream:error>` with `condition` (the server's header
    /// must have arrived before it); then the stream and the connection must close.
    pub async fn expect_stream_error(&mut self, condition: &str) {
        let error = loop {
            match self.frame(&format!("stream error {condition}")).await {
                Frame::Header(_) => continue,
                Frame::Stanza(e) if e.is("error", NS_STREAM) => break e,
                Frame::Stanza(e) => panic!("expected stream error {condition}, got {}", xml::show(&e)),
                Frame::Close => panic!("expected stream error {condition}, the stream closed without one"),
            }
        };
        assert!(self.header_seen, "the server must send its stream header before the error");
        let conditions: Vec<&str> =
            error.children().filter(|c| c.ns() == NS_STREAM_ERRORS && c.name() != "text").map(Element::name).collect();
        assert_eq!(conditions, vec![condition], "stream error: {}", xml::show(&error));
        self.expect_closed().await;
    }

    /// `</stream:stream>` (unless already read), then the end of the connection.
    pub async fn expect_closed(&mut self) {
        if !self.close_seen {
            match self.frame("the end of the stream").await {
                Frame::Close => {}
                Frame::Stanza(e) => panic!("expected the stream's end, got {}", xml::show(&e)),
                Frame::Header(h) => panic!("expected the stream's end, got a header {h:?}"),
            }
        }
        self.expect_eof().await;
    }

    /// Ends the stream and waits for the server's `</stream:stream>`, which it sends after
    /// the session is gone (so the account is offline again), then for the end of the
    /// connection. Presence may still be in flight.
    pub async fn log_off(mut self) {
        self.send("</stream:stream>").await;
        loop {
            match self.next_frame(TIMEOUT).await {
                Some(Ok(Frame::Close)) => break,
                Some(Ok(Frame::Stanza(e))) if e.is("presence", NS_CLIENT) => {}
                other => panic!("waiting for the end of the stream: {other:?}"),
            }
        }
        self.expect_eof().await;
    }

    /// The connection must end (EOF or reset) without any more bytes.
    pub async fn expect_eof(&mut self) {
        assert!(self.pending.is_none(), "a read is still pending");
        let (tx, rx) = oneshot::channel();
        self.reader.send(Cmd::Release(tx)).expect("reader task alive");
        let (mut read, buffered) =
            timeout(TIMEOUT, rx).await.expect("reader task released").expect("reader task answered");
        assert!(!buffered, "the server sent bytes after the end of the stream");
        let mut buf = [0u8; 256];
        match timeout(TIMEOUT, read.read(&mut buf)).await {
            Err(_) => panic!("the server did not close the connection within {TIMEOUT:?}"),
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => panic!("bytes after the end of the stream: {:?}", String::from_utf8_lossy(&buf[..n])),
            Ok(Err(e)) => assert!(
                matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::UnexpectedEof | io::ErrorKind::BrokenPipe
                ),
                "reading the end of the connection: {e}"
            ),
        }
        // Nothing can be read any more: park a reader that reports the end.
        let (tx, mut rx) = mpsc::unbounded_channel::<Cmd>();
        tokio::spawn(async move {
            while let Some(cmd) = rx.recv().await {
                if let Cmd::Next(reply) = cmd {
                    let _ = reply.send(Err(FramerError::Eof));
                }
            }
        });
        self.reader = tx;
    }

    /// Nothing may arrive within `ms` milliseconds.
    pub async fn expect_silence(&mut self, ms: u64) {
        if let Some(frame) = self.next_frame(Duration::from_millis(ms)).await {
            match frame {
                Ok(Frame::Stanza(e)) => panic!("expected silence, got {}", xml::show(&e)),
                other => panic!("expected silence, got {other:?}"),
            }
        }
    }

    // ---- stream negotiation ----

    /// Sends the standard header; reads the server's header and features.
    pub async fn open_stream(&mut self) -> Element {
        self.open_stream_with(&stream_header(DOMAIN)).await
    }

    /// Sends `header`; reads the server's header and features.
    pub async fn open_stream_with(&mut self, header: &str) -> Element {
        self.header_seen = false;
        self.send(header).await;
        self.expect_header().await;
        let features = self.recv().await;
        assert!(features.is("features", NS_STREAM), "expected stream features, got {}", xml::show(&features));
        self.features = Some(features.clone());
        features
    }

    /// The mechanisms the current features offer.
    pub fn mechanisms(&self) -> Vec<String> {
        self.features
            .as_ref()
            .and_then(|f| f.get_child("mechanisms", NS_SASL))
            .map(|m| m.children().map(Element::text).collect())
            .unwrap_or_default()
    }

    /// `<starttls/>`, `<proceed/>`, the TLS handshake, and a new stream over TLS.
    pub async fn starttls(&mut self, cert_path: &Path) -> Element {
        self.starttls_with(tls_config(cert_path, &[], &[])).await
    }

    pub async fn starttls_with(&mut self, config: Arc<ClientConfig>) -> Element {
        self.send(&format!("<starttls xmlns='{NS_TLS}'/>")).await;
        self.expect(&format!("<proceed xmlns='{NS_TLS}'/>")).await;
        self.upgrade_tls(config).await;
        self.open_stream().await
    }

    /// After `<proceed/>`: the TLS handshake on this connection (no stream opened).
    pub async fn upgrade_tls(&mut self, config: Arc<ClientConfig>) {
        assert!(self.pending.is_none(), "a read is still pending");
        let (tx, rx) = oneshot::channel();
        self.reader.send(Cmd::Release(tx)).expect("reader task alive");
        let (read, buffered) = timeout(TIMEOUT, rx).await.expect("reader task released").expect("reader task answered");
        assert!(!buffered, "the server sent bytes after <proceed/>");
        let stream = read.unsplit(self.writer.take().expect("connection open"));
        let ClientStream::Plain(tcp) = stream else { panic!("STARTTLS on a TLS connection") };
        let (stream, info) = tls_handshake(tcp, config).await.expect("TLS handshake after STARTTLS");
        let (read, write) = tokio::io::split(stream);
        self.reader = spawn_reader(read);
        self.writer = Some(write);
        self.tls = Some(info);
    }

    /// Builds the client side of `mech` for `user` (a localpart).
    pub fn mechanism(&self, mech: Mech, user: &str, password: &str) -> Box<dyn Mechanism + Send> {
        use sasl::client::mechanisms::{Plain, Scram};
        use sasl::common::scram::{Sha1, Sha256};
        let exporter = || ChannelBinding::TlsExporter(self.tls().exporter.clone().expect("TLS 1.3 exporter"));
        let end_point = |hash| {
            let data = self.tls().end_point.clone();
            Box::new(scram(hash, user, password, Binding::Required(CbType::TlsServerEndPoint, data)))
        };
        match mech {
            Mech::Plain => Box::new(Plain::new(user, password)),
            Mech::ScramSha1 => Box::new(Scram::<Sha1>::new(user, password, ChannelBinding::None).expect("nonce")),
            Mech::ScramSha256 => Box::new(Scram::<Sha256>::new(user, password, ChannelBinding::None).expect("nonce")),
            Mech::ScramSha1Plus(Cb::TlsExporter) => {
                Box::new(Scram::<Sha1>::new(user, password, exporter()).expect("nonce"))
            }
            Mech::ScramSha256Plus(Cb::TlsExporter) => {
                Box::new(Scram::<Sha256>::new(user, password, exporter()).expect("nonce"))
            }
            Mech::ScramSha1Plus(Cb::TlsServerEndPoint) => end_point(HashAlg::Sha1),
            Mech::ScramSha256Plus(Cb::TlsServerEndPoint) => end_point(HashAlg::Sha256),
        }
    }

    /// Runs a SASL exchange (`<auth/>`, challenges, responses) to its end. Ok on
    /// `<success/>` (whose SCRAM server signature is verified), Err(condition) on
    /// `<failure/>`. No stream restart.
    pub async fn sasl(&mut self, mechanism: &mut (dyn Mechanism + Send)) -> Result<(), String> {
        let initial = mechanism.initial();
        let initial = if initial.is_empty() { "=".to_owned() } else { STANDARD.encode(initial) };
        let name = mechanism.name().to_owned();
        self.send(&format!("<auth xmlns='{NS_SASL}' mechanism='{name}'>{initial}</auth>")).await;
        loop {
            let element = self.recv().await;
            assert_eq!(element.ns(), NS_SASL, "during SASL: {}", xml::show(&element));
            let data = || {
                let text = element.text();
                let text = text.trim();
                if text == "=" {
                    Vec::new()
                } else {
                    STANDARD.decode(text).expect("base64 from the server")
                }
            };
            match element.name() {
                "challenge" => {
                    let response = mechanism.response(&data()).expect("client SASL response");
                    let response = if response.is_empty() { "=".to_owned() } else { STANDARD.encode(response) };
                    self.send(&format!("<response xmlns='{NS_SASL}'>{response}</response>")).await;
                }
                "success" => {
                    mechanism.success(&data()).expect("the server proved it knows the password");
                    return Ok(());
                }
                "failure" => return Err(sasl_condition(&element)),
                _ => panic!("unexpected SASL element {}", xml::show(&element)),
            }
        }
    }

    /// Authenticates with `mech` and restarts the stream (features must offer bind).
    pub async fn authenticate(&mut self, mech: Mech, user: &str, password: &str) -> Result<(), String> {
        let mut mechanism = self.mechanism(mech, user, password);
        self.sasl(mechanism.as_mut()).await?;
        self.restart().await;
        Ok(())
    }

    /// Makes the reader expect a new XML declaration and stream header (stream restart).
    pub fn reset_framer(&mut self) {
        self.header_seen = false;
        self.reader.send(Cmd::Reset).expect("reader task alive");
    }

    /// The stream restart after SASL success.
    pub async fn restart(&mut self) -> Element {
        self.reset_framer();
        let features = self.open_stream().await;
        assert!(
            features.get_child("bind", NS_BIND).is_some(),
            "bind must be offered after authentication: {}",
            xml::show(&features)
        );
        features
    }

    /// Binds a resource (server-generated when None); returns the full JID.
    pub async fn bind(&mut self, resource: Option<&str>) -> String {
        let request = match resource {
            Some(r) => format!("<bind xmlns='{NS_BIND}'><resource>{r}</resource></bind>"),
            None => format!("<bind xmlns='{NS_BIND}'/>"),
        };
        self.send(&format!("<iq type='set' id='bind-1'>{request}</iq>")).await;
        let reply = self
            .expect(&format!("<iq type='result' id='bind-1'><bind xmlns='{NS_BIND}'><jid>{{any}}</jid></bind></iq>"))
            .await;
        let jid = reply
            .get_child("bind", NS_BIND)
            .and_then(|b| b.get_child("jid", NS_BIND))
            .map(Element::text)
            .expect("bound JID");
        self.jid = Some(jid.clone());
        jid
    }

    /// Sends available presence with `priority` and reads its echo (RFC 6121 §4.2.2).
    pub async fn available(&mut self, priority: i8) {
        let jid = self.jid().to_owned();
        self.send(&format!("<presence><priority>{priority}</priority></presence>")).await;
        // RFC 6121 §4.2.2: our own presence comes back to us, from our full JID (no `to`, like Prosody).
        self.expect(&format!("<presence from='{jid}'><priority>{priority}</priority></presence>")).await;
    }
}

/// The defined condition inside a SASL `<failure/>`.
pub fn sasl_condition(failure: &Element) -> String {
    let conditions: Vec<&str> =
        failure.children().filter(|c| c.ns() == NS_SASL && c.name() != "text").map(Element::name).collect();
    assert_eq!(conditions.len(), 1, "one condition in {}", xml::show(failure));
    conditions[0].to_owned()
}
