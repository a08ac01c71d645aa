//! RFC 6120 §5 (STARTTLS) and XEP-0368 (direct TLS with ALPN `xmpp-client`).

use crate::support::client::tls_config;
use crate::support::xml::assert_matches;
use crate::support::{Client, Mech, TestServer, NS_TLS};
use rustls::ProtocolVersion;

const FEATURES_TLS_REQUIRED: &str = "<stream:features>\
    <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>\
    </stream:features>";

/// What a TLS 1.3 stream offers before authentication.
pub const FEATURES_TLS13: &str = "<stream:features>\
    <mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
      <mechanism>SCRAM-SHA-256-PLUS</mechanism><mechanism>SCRAM-SHA-1-PLUS</mechanism>\
      <mechanism>SCRAM-SHA-256</mechanism><mechanism>SCRAM-SHA-1</mechanism>\
      <mechanism>PLAIN</mechanism>\
    </mechanisms>\
    <sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>\
      <channel-binding type='tls-exporter'/><channel-binding type='tls-server-end-point'/>\
    </sasl-channel-binding>\
    </stream:features>";

#[tokio::test]
async fn tls_required_features_offer_only_starttls() {
    let server = TestServer::start_tls_required().await;
    let mut client = server.connect().await;
    let features = client.open_stream().await;
    assert_matches(&features, FEATURES_TLS_REQUIRED);
}

#[tokio::test]
async fn auth_before_tls_is_policy_violation() {
    let server = TestServer::start_tls_required().await;
    server.add_user("alice@localhost", "pw").await;
    let mut client = server.connect().await;
    client.open_stream().await;
    // PLAIN "\0alice\0pw"
    client.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHB3</auth>").await;
    client.expect_stream_error("policy-violation").await;
}

#[tokio::test]
async fn scram_auth_before_tls_is_policy_violation() {
    let server = TestServer::start_tls_required().await;
    server.add_user("alice@localhost", "pw").await;
    let mut client = server.connect().await;
    client.open_stream().await;
    // "n,,n=alice,r=abcdefgh"
    client
        .send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>biwsbj1hbGljZSxyPWFiY2RlZmdo</auth>")
        .await;
    client.expect_stream_error("policy-violation").await;
}

#[tokio::test]
async fn starttls_then_sasl_works() {
    let server = TestServer::start_tls_required().await;
    server.add_user("alice@localhost", "pw").await;
    let mut client = server.connect().await;
    client.open_stream().await;
    let features = client.starttls(&server.cert_path).await;
    assert_eq!(client.tls().version, Some(ProtocolVersion::TLSv1_3));
    assert_eq!(client.tls().alpn, None);
    assert_matches(&features, FEATURES_TLS13);
    client.authenticate(Mech::ScramSha256, "alice", "pw").await.expect("login over TLS");
    client.bind(Some("laptop")).await;
    client.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    client.expect("<iq type='result' id='p1' from='localhost' to='alice@localhost/laptop'/>").await;
}

#[tokio::test]
async fn starttls_is_offered_and_works_when_plaintext_is_allowed() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.open_stream().await;
    let features = client.starttls(&server.cert_path).await;
    assert_matches(&features, FEATURES_TLS13);
}

/// CVE-2011-0411: bytes pipelined behind `<starttls/>` must never be read as if they
/// came over TLS. RFC 6120 §5.4.2.2: `<failure/>`, then the stream and connection close.
#[tokio::test]
async fn pipelined_plaintext_after_starttls_is_refused() {
    let server = TestServer::start_tls_required().await;
    let mut client = server.connect().await;
    client.open_stream().await;
    client
        .send(&format!(
            "<starttls xmlns='{NS_TLS}'/><iq type='get' id='x' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
        ))
        .await;
    client.expect(&format!("<failure xmlns='{NS_TLS}'/>")).await;
    client.expect_closed().await;
}

#[tokio::test]
async fn second_starttls_is_refused() {
    let server = TestServer::start_tls_required().await;
    let mut client = server.connect().await;
    client.open_stream().await;
    client.starttls(&server.cert_path).await;
    client.send(&format!("<starttls xmlns='{NS_TLS}'/>")).await;
    client.expect_stream_error("policy-violation").await;
}

#[tokio::test]
async fn direct_tls_with_alpn_xmpp_client() {
    let server = TestServer::start_tls_required().await;
    server.add_user("alice@localhost", "pw").await;
    let mut client =
        Client::connect_tls(server.tls_addr, &server.cert_path, &[b"xmpp-client"]).await.expect("TLS handshake");
    assert_eq!(client.tls().alpn.as_deref(), Some(&b"xmpp-client"[..]));
    let features = client.open_stream().await;
    assert_matches(&features, FEATURES_TLS13);
    client
        .authenticate(Mech::ScramSha256Plus(crate::support::client::Cb::TlsExporter), "alice", "pw")
        .await
        .expect("login over direct TLS");
    client.bind(Some("phone")).await;
}

#[tokio::test]
async fn direct_tls_without_alpn() {
    let server = TestServer::start_tls_required().await;
    let mut client = Client::connect_tls(server.tls_addr, &server.cert_path, &[]).await.expect("TLS handshake");
    assert_eq!(client.tls().alpn, None);
    let features = client.open_stream().await;
    assert_matches(&features, FEATURES_TLS13);
}

#[tokio::test]
async fn direct_tls_with_only_h2_alpn_fails() {
    let server = TestServer::start_tls_required().await;
    let result = Client::connect_tls(server.tls_addr, &server.cert_path, &[b"h2"]).await;
    let error = result.err().expect("the handshake must fail");
    assert!(
        error.to_string().contains("NoApplicationProtocol")
            || error.to_string().to_lowercase().contains("application protocol"),
        "{error}"
    );
}

#[tokio::test]
async fn direct_tls_with_h2_and_xmpp_client_picks_xmpp_client() {
    let server = TestServer::start_tls_required().await;
    let client =
        Client::connect_tls(server.tls_addr, &server.cert_path, &[b"h2", b"xmpp-client"]).await.expect("TLS handshake");
    assert_eq!(client.tls().alpn.as_deref(), Some(&b"xmpp-client"[..]));
}

/// RFC 9266: `tls-exporter` is for TLS 1.3 only; on TLS 1.2 only `tls-server-end-point`.
#[tokio::test]
async fn tls12_offers_only_server_end_point_binding() {
    let server = TestServer::start_tls_required().await;
    let mut client = server.connect().await;
    client.open_stream().await;
    let config = tls_config(&server.cert_path, &[], &[&rustls::version::TLS12]);
    let features = client.starttls_with(config).await;
    assert_eq!(client.tls().version, Some(ProtocolVersion::TLSv1_2));
    assert_matches(
        &features,
        "<stream:features>\
         <mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
           <mechanism>SCRAM-SHA-256-PLUS</mechanism><mechanism>SCRAM-SHA-1-PLUS</mechanism>\
           <mechanism>SCRAM-SHA-256</mechanism><mechanism>SCRAM-SHA-1</mechanism>\
           <mechanism>PLAIN</mechanism>\
         </mechanisms>\
         <sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>\
           <channel-binding type='tls-server-end-point'/>\
         </sasl-channel-binding>\
         </stream:features>",
    );
}

/// A header and `<starttls/>` written together are fine: nothing follows `<starttls/>`.
#[tokio::test]
async fn header_and_starttls_in_one_write() {
    let server = TestServer::start_tls_required().await;
    let mut client = server.connect().await;
    client.send(&format!("{}<starttls xmlns='{NS_TLS}'/>", crate::support::stream_header("localhost"))).await;
    client.expect_header().await;
    assert_matches(&client.recv().await, FEATURES_TLS_REQUIRED);
    client.expect(&format!("<proceed xmlns='{NS_TLS}'/>")).await;
}

/// Whitespace after `<starttls/>` is a keepalive, not injected data (RFC 6120 §4.6.1):
/// it must not make the server refuse TLS (clients that end every element with a newline
/// could never log in).
#[tokio::test]
async fn whitespace_after_starttls_does_not_prevent_tls() {
    let server = TestServer::start_tls_required().await;
    let mut client = server.connect().await;
    client.open_stream().await;
    client.send(&format!("<starttls xmlns='{NS_TLS}'/>\n")).await;
    client.expect(&format!("<proceed xmlns='{NS_TLS}'/>")).await;
    client.upgrade_tls(tls_config(&server.cert_path, &[], &[])).await;
    assert_matches(&client.open_stream().await, FEATURES_TLS13);
}

/// ...but whitespace followed by data is still pipelined plaintext: refused.
#[tokio::test]
async fn whitespace_then_data_after_starttls_is_refused() {
    let server = TestServer::start_tls_required().await;
    let mut client = server.connect().await;
    client.open_stream().await;
    client
        .send(&format!(
            "<starttls xmlns='{NS_TLS}'/>\n  <iq type='get' id='x' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
        ))
        .await;
    client.expect(&format!("<failure xmlns='{NS_TLS}'/>")).await;
    client.expect_closed().await;
}
