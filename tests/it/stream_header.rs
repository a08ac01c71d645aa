//! RFC 6120 §4.7–§4.9: the client's stream header, and the server's answer to it.

use crate::support::{stream_header, TestServer, NS_CLIENT, NS_SASL, NS_STREAM, NS_TLS};

/// Sends `header`; the server must answer with its own header, then `condition`, then close.
async fn header_error(header: &str, condition: &str) {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.send(header).await;
    client.expect_header().await;
    client.expect_stream_error(condition).await;
}

#[tokio::test]
async fn good_header_gets_header_and_features() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    let features = client.open_stream().await;
    // allow_plaintext: STARTTLS offered (not required) and SASL without -PLUS.
    crate::support::xml::assert_matches(
        &features,
        &format!(
            "<stream:features><starttls xmlns='{NS_TLS}'/>\
             <mechanisms xmlns='{NS_SASL}'><mechanism>SCRAM-SHA-256</mechanism>\
             <mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></mechanisms>\
             </stream:features>"
        ),
    );
}

#[tokio::test]
async fn wrong_stream_namespace_is_invalid_namespace() {
    let header = format!(
        "<?xml version='1.0'?><stream:stream xmlns='{NS_CLIENT}' \
         xmlns:stream='http://etherx.jabber.org/streams/wrong' to='localhost' version='1.0'>"
    );
    header_error(&header, "invalid-namespace").await;
}

#[tokio::test]
async fn wrong_root_name_is_invalid_namespace() {
    let header = format!("<stream:strim xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}' to='localhost' version='1.0'>");
    header_error(&header, "invalid-namespace").await;
}

#[tokio::test]
async fn server_content_namespace_is_invalid_namespace() {
    let header =
        format!("<stream:stream xmlns='jabber:server' xmlns:stream='{NS_STREAM}' to='localhost' version='1.0'>");
    header_error(&header, "invalid-namespace").await;
}

#[tokio::test]
async fn missing_content_namespace_is_invalid_namespace() {
    let header = format!("<stream:stream xmlns:stream='{NS_STREAM}' to='localhost' version='1.0'>");
    header_error(&header, "invalid-namespace").await;
}

#[tokio::test]
async fn unknown_host_is_host_unknown() {
    header_error(&stream_header("example.net"), "host-unknown").await;
}

#[tokio::test]
async fn missing_to_is_host_unknown() {
    let header = format!("<stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}' version='1.0'>");
    header_error(&header, "host-unknown").await;
}

#[tokio::test]
async fn to_with_localpart_is_improper_addressing() {
    header_error(&stream_header("user@localhost"), "improper-addressing").await;
}

#[tokio::test]
async fn missing_version_is_unsupported_version() {
    let header = format!("<stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}' to='localhost'>");
    header_error(&header, "unsupported-version").await;
}

#[tokio::test]
async fn version_0_9_is_unsupported_version() {
    let header = format!("<stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}' to='localhost' version='0.9'>");
    header_error(&header, "unsupported-version").await;
}

/// RFC 6120 §4.7.5: a higher minor version is answered with ours (1.0).
#[tokio::test]
async fn version_1_1_is_answered_with_1_0() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    let header = format!("<stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}' to='localhost' version='1.1'>");
    client.open_stream_with(&header).await; // expect_header checks version='1.0'
}

/// Namespace prefixes are not fixed: only the namespace matters (RFC 6120 §4.8.5).
#[tokio::test]
async fn other_stream_prefix_is_accepted() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "pw").await;
    let mut client = server.connect().await;
    let header = format!(
        "<?xml version='1.0'?><s:stream xmlns:s='{NS_STREAM}' xmlns='{NS_CLIENT}' \
         to='localhost' version='1.0'>"
    );
    client.open_stream_with(&header).await;
    assert!(client.mechanisms().contains(&"PLAIN".to_owned()));
    // The stream works: a login, and the closing tag with the same prefix.
    client.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHB3</auth>").await;
    client.expect("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>").await;
}

#[tokio::test]
async fn host_is_case_insensitive() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.open_stream_with(&stream_header("LocalHost")).await; // from='localhost'
}

/// RFC 6120 §4.7.2: the response header's `to` is the initiating header's `from`.
#[tokio::test]
async fn client_from_is_echoed_as_to() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    let header = format!(
        "<stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}' to='localhost' \
         from='alice@localhost' version='1.0'>"
    );
    client.send(&header).await;
    let answer = client.expect_header().await;
    assert_eq!(answer.to.as_deref(), Some("alice@localhost"));
}

#[tokio::test]
async fn text_before_the_header_is_not_well_formed() {
    let bytes = format!("hello{}", stream_header("localhost"));
    header_error(&bytes, "not-well-formed").await;
}

#[tokio::test]
async fn closing_the_stream_is_answered_with_close() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.open_stream().await;
    client.send("</stream:stream>").await;
    client.expect_closed().await;
}

/// RFC 7622 §3.2: a trailing dot in the domainpart is stripped before comparison.
#[tokio::test]
async fn domain_with_trailing_dot_is_the_same_host() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.open_stream_with(&stream_header("localhost.")).await; // from='localhost'
}

/// A connection that does not finish negotiating in time is closed (timeouts.negotiation_secs).
#[tokio::test]
async fn slow_negotiation_is_connection_timeout() {
    let server = TestServer::with(|c| c.timeouts.negotiation_secs = 1).await;
    let mut client = server.connect().await;
    client.open_stream().await;
    client.expect_stream_error("connection-timeout").await;
}

/// The negotiation deadline stops mattering once a resource is bound.
#[tokio::test]
async fn negotiation_deadline_does_not_apply_to_a_bound_session() {
    let server = TestServer::with(|c| c.timeouts.negotiation_secs = 1).await;
    server.add_user("alice@localhost", "pw").await;
    let mut client = server.session("alice", "pw", "r").await;
    client.expect_silence(1500).await;
    client.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    client.expect("<iq type='result' id='p1' from='localhost' to='alice@localhost/r'/>").await;
}

/// RFC 6120 §4.9.3.22 (its example): a stream declared in another encoding gets
/// `unsupported-encoding`.
#[tokio::test]
async fn non_utf8_encoding_declaration_is_unsupported_encoding() {
    let header = format!(
        "<?xml version='1.0' encoding='UTF-16'?><stream:stream xmlns='{NS_CLIENT}' \
         xmlns:stream='{NS_STREAM}' to='localhost' version='1.0'>"
    );
    header_error(&header, "unsupported-encoding").await;
}

#[tokio::test]
async fn utf8_encoding_declaration_is_accepted() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    let header = format!(
        "<?xml version='1.0' encoding='utf-8' standalone='yes'?><stream:stream xmlns='{NS_CLIENT}' \
         xmlns:stream='{NS_STREAM}' to='localhost' version='1.0'>"
    );
    client.open_stream_with(&header).await;
}

/// The pre-authentication size limit covers the stream header too.
#[tokio::test]
async fn huge_stream_header_is_policy_violation() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    let header = format!(
        "<stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}' to='localhost' version='1.0' x='{}'>",
        "h".repeat(40_000)
    );
    let _ = client.try_send_bytes(header.as_bytes()).await; // the server may stop reading early
    client.expect_header().await;
    client.expect_stream_error("policy-violation").await;
}

/// Connections beyond limits.max_connections hear `resource-constraint` (after a stream
/// header, RFC 6120 §4.9.1.2) and are closed at once; others are unaffected.
#[tokio::test]
async fn connections_beyond_the_limit_are_refused() {
    let server = TestServer::with(|c| c.limits.max_connections = 1).await;
    let mut first = server.connect().await;
    first.open_stream().await;
    let mut second = server.connect().await;
    second.expect_header().await;
    second.expect_stream_error("resource-constraint").await;
    first.send("</stream:stream>").await;
    first.expect_closed().await;
    for _ in 0..100 {
        if server.server().connections() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let mut third = server.connect().await;
    third.open_stream().await;
}
