//! RFC 6120 §6 (SASL), RFC 5802/7677 (SCRAM), RFC 5929/9266 (channel binding),
//! XEP-0440 (advertised channel-binding types), and the login throttle.

use crate::support::client::{Cb, Client};
use crate::support::scram::{scram, Binding, CbType, HashAlg, ScramClient, ScramMechanism};
use crate::support::xml::assert_matches;
use crate::support::{Mech, TestServer, NS_SASL};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sasl::client::mechanisms::Scram;
use sasl::client::Mechanism;
use sasl::common::scram::Sha256;
use sasl::common::ChannelBinding;
use std::time::{Duration, Instant};

/// A TLS-only server with alice, and a connection to it past STARTTLS (TLS 1.3).
async fn tls_setup() -> (TestServer, Client) {
    let server = TestServer::start_tls_required().await;
    server.add_user("alice@localhost", "pw").await;
    let client = server.connect_open().await;
    (server, client)
}

async fn login_works(mech: Mech) {
    let (_server, mut client) = tls_setup().await;
    let name = client.mechanism(mech, "alice", "pw").name().to_owned();
    assert!(client.mechanisms().contains(&name), "{name} must be advertised: {:?}", client.mechanisms());
    client.authenticate(mech, "alice", "pw").await.unwrap_or_else(|c| panic!("{mech:?}: {c}"));
    assert_eq!(client.bind(Some("r")).await, "alice@localhost/r");
}

/// Sends `<auth/>` with raw content; returns the failure condition.
async fn auth_failure(client: &mut Client, mechanism: &str, content: &str) -> String {
    client.send(&format!("<auth xmlns='{NS_SASL}' mechanism='{mechanism}'>{content}</auth>")).await;
    let failure = client.recv().await;
    assert!(failure.is("failure", NS_SASL), "expected a SASL failure, got {}", crate::support::xml::show(&failure));
    crate::support::client::sasl_condition(&failure)
}

fn plain(authzid: &str, user: &str, password: &str) -> String {
    STANDARD.encode(format!("{authzid}\0{user}\0{password}"))
}

#[tokio::test]
async fn scram_sha1_succeeds() {
    login_works(Mech::ScramSha1).await;
}

#[tokio::test]
async fn scram_sha256_succeeds() {
    login_works(Mech::ScramSha256).await;
}

#[tokio::test]
async fn plain_over_tls_succeeds() {
    login_works(Mech::Plain).await;
}

#[tokio::test]
async fn scram_sha256_plus_tls_exporter_succeeds() {
    login_works(Mech::ScramSha256Plus(Cb::TlsExporter)).await;
}

#[tokio::test]
async fn scram_sha1_plus_tls_exporter_succeeds() {
    login_works(Mech::ScramSha1Plus(Cb::TlsExporter)).await;
}

#[tokio::test]
async fn scram_sha256_plus_tls_server_end_point_succeeds() {
    login_works(Mech::ScramSha256Plus(Cb::TlsServerEndPoint)).await;
}

#[tokio::test]
async fn scram_sha1_plus_tls_server_end_point_succeeds() {
    login_works(Mech::ScramSha1Plus(Cb::TlsServerEndPoint)).await;
}

/// Direct TLS has the same bindings as STARTTLS.
#[tokio::test]
async fn scram_plus_server_end_point_over_direct_tls() {
    let server = TestServer::start_tls_required().await;
    server.add_user("alice@localhost", "pw").await;
    let mut client =
        Client::connect_tls(server.tls_addr, &server.cert_path, &[b"xmpp-client"]).await.expect("TLS handshake");
    client.open_stream().await;
    client
        .authenticate(Mech::ScramSha256Plus(Cb::TlsServerEndPoint), "alice", "pw")
        .await
        .expect("SCRAM-SHA-256-PLUS with tls-server-end-point");
}

/// XEP-0440 on TLS 1.3: both types, tls-exporter first.
#[tokio::test]
async fn channel_binding_types_are_advertised_on_tls13() {
    let (_server, client) = tls_setup().await;
    let features = client.features.clone().expect("features");
    let cb = features.get_child("sasl-channel-binding", "urn:xmpp:sasl-cb:0").expect("XEP-0440 element");
    assert_matches(
        cb,
        "<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>\
         <channel-binding type='tls-exporter'/><channel-binding type='tls-server-end-point'/>\
         </sasl-channel-binding>",
    );
}

/// A -PLUS exchange whose binding data is not this channel's (a MITM) must fail.
#[tokio::test]
async fn plus_with_wrong_binding_data_is_not_authorized() {
    let (_server, mut client) = tls_setup().await;
    let mut wrong = scram(HashAlg::Sha256, "alice", "pw", Binding::Required(CbType::TlsExporter, vec![0; 32]));
    assert_eq!(client.sasl(&mut wrong).await, Err("not-authorized".to_owned()));
    let mut other = client.tls().exporter.clone().expect("exporter");
    other[0] ^= 1;
    let mut wrong = scram(HashAlg::Sha256, "alice", "pw", Binding::Required(CbType::TlsServerEndPoint, other));
    assert_eq!(client.sasl(&mut wrong).await, Err("not-authorized".to_owned()));
}

/// RFC 5802 §6: `y` (client supports binding, thinks the server does not) while the
/// server offered -PLUS means someone stripped it: fail.
#[tokio::test]
async fn y_flag_while_plus_is_offered_is_not_authorized() {
    let (_server, mut client) = tls_setup().await;
    let mut downgraded = Scram::<Sha256>::new("alice", "pw", ChannelBinding::Unsupported).expect("nonce");
    assert_eq!(client.sasl(&mut downgraded).await, Err("not-authorized".to_owned()));
}

/// Without TLS there is no channel to bind to: `y` is fine and -PLUS is not offered.
#[tokio::test]
async fn plaintext_stream_offers_no_plus_and_accepts_y_flag() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "pw").await;
    let mut client = server.connect().await;
    client.open_stream().await;
    assert!(client.mechanisms().iter().all(|m| !m.ends_with("-PLUS")));
    let mut y = Scram::<Sha256>::new("alice", "pw", ChannelBinding::Unsupported).expect("nonce");
    assert_eq!(client.sasl(&mut y).await, Ok(()));
}

#[tokio::test]
async fn plus_on_plaintext_is_invalid_mechanism() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "pw").await;
    let mut client = server.connect().await;
    client.open_stream().await;
    let first = STANDARD.encode("p=tls-exporter,,n=alice,r=abcdefghijkl");
    assert_eq!(auth_failure(&mut client, "SCRAM-SHA-256-PLUS", &first).await, "invalid-mechanism");
}

#[tokio::test]
async fn wrong_password_is_not_authorized() {
    let (_server, mut client) = tls_setup().await;
    for mech in [Mech::ScramSha256, Mech::Plain] {
        let mut mechanism = client.mechanism(mech, "alice", "wrong");
        assert_eq!(client.sasl(mechanism.as_mut()).await, Err("not-authorized".to_owned()), "{mech:?}");
    }
}

/// Unknown users fail exactly like wrong passwords (SCRAM even gets a challenge).
#[tokio::test]
async fn unknown_user_is_not_authorized() {
    let (_server, mut client) = tls_setup().await;
    for mech in [Mech::ScramSha1, Mech::Plain] {
        let mut mechanism = client.mechanism(mech, "nobody", "pw");
        assert_eq!(client.sasl(mechanism.as_mut()).await, Err("not-authorized".to_owned()), "{mech:?}");
    }
}

#[tokio::test]
async fn unknown_mechanism_is_invalid_mechanism() {
    let (_server, mut client) = tls_setup().await;
    let first = STANDARD.encode("n,,n=alice,r=abcdefghijkl");
    assert_eq!(auth_failure(&mut client, "SCRAM-SHA-512", &first).await, "invalid-mechanism");
}

#[tokio::test]
async fn missing_mechanism_attribute_is_invalid_mechanism() {
    let (_server, mut client) = tls_setup().await;
    client.send(&format!("<auth xmlns='{NS_SASL}'>=</auth>")).await;
    client.expect(&format!("<failure xmlns='{NS_SASL}'><invalid-mechanism/></failure>")).await;
}

#[tokio::test]
async fn bad_base64_is_incorrect_encoding() {
    let (_server, mut client) = tls_setup().await;
    assert_eq!(auth_failure(&mut client, "SCRAM-SHA-256", "not*base64!").await, "incorrect-encoding");
}

#[tokio::test]
async fn garbage_client_first_is_malformed_request() {
    let (_server, mut client) = tls_setup().await;
    assert_eq!(auth_failure(&mut client, "SCRAM-SHA-256", &STANDARD.encode("hello")).await, "malformed-request");
}

#[tokio::test]
async fn abort_is_aborted() {
    let (_server, mut client) = tls_setup().await;
    let mut scram = Scram::<Sha256>::new("alice", "pw", ChannelBinding::None).expect("nonce");
    let first = STANDARD.encode(scram.initial());
    client.send(&format!("<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>{first}</auth>")).await;
    client.expect(&format!("<challenge xmlns='{NS_SASL}'>{{any}}</challenge>")).await;
    client.send(&format!("<abort xmlns='{NS_SASL}'/>")).await;
    client.expect(&format!("<failure xmlns='{NS_SASL}'><aborted/></failure>")).await;
    // The stream goes on: a new attempt succeeds.
    client.authenticate(Mech::ScramSha256, "alice", "pw").await.expect("login after abort");
}

/// RFC 6120 §6.4.2: without an initial response the server sends an empty challenge.
#[tokio::test]
async fn scram_without_initial_response_gets_empty_challenge() {
    let (_server, mut client) = tls_setup().await;
    client.send(&format!("<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'/>")).await;
    let challenge = client.expect(&format!("<challenge xmlns='{NS_SASL}'>{{any}}</challenge>")).await;
    let text = challenge.text();
    assert!(matches!(text.trim(), "" | "="), "empty challenge: {text:?}");
    let mut scram = Scram::<Sha256>::new("alice", "pw", ChannelBinding::None).expect("nonce");
    let first = STANDARD.encode(scram.initial());
    client.send(&format!("<response xmlns='{NS_SASL}'>{first}</response>")).await;
    let challenge = client.expect(&format!("<challenge xmlns='{NS_SASL}'>{{any}}</challenge>")).await;
    let data = STANDARD.decode(challenge.text().trim()).expect("base64");
    let last = STANDARD.encode(scram.response(&data).expect("client-final"));
    client.send(&format!("<response xmlns='{NS_SASL}'>{last}</response>")).await;
    let success = client.expect(&format!("<success xmlns='{NS_SASL}'>{{any}}</success>")).await;
    let data = STANDARD.decode(success.text().trim()).expect("base64");
    scram.success(&data).expect("server signature");
}

/// With allow_plaintext the server offers and accepts PLAIN before TLS.
#[tokio::test]
async fn plain_on_plaintext_allowed_server_works() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "pw").await;
    let mut client = server.connect().await;
    client.open_stream().await;
    assert!(client.mechanisms().contains(&"PLAIN".to_owned()));
    client.authenticate(Mech::Plain, "alice", "pw").await.expect("PLAIN without TLS");
}

/// Without allow_plaintext, no mechanism is offered before TLS and PLAIN is refused.
#[tokio::test]
async fn plain_without_tls_is_impossible_when_tls_is_required() {
    let server = TestServer::start_tls_required().await;
    server.add_user("alice@localhost", "pw").await;
    let mut client = server.connect().await;
    client.open_stream().await;
    assert!(client.mechanisms().is_empty(), "{:?}", client.mechanisms());
    client.send(&format!("<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{}</auth>", plain("", "alice", "pw"))).await;
    client.expect_stream_error("policy-violation").await;
}

#[tokio::test]
async fn plain_authzid_own_jid_is_accepted() {
    let (_server, mut client) = tls_setup().await;
    client
        .send(&format!("<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{}</auth>", plain("alice@localhost", "alice", "pw")))
        .await;
    client.expect(&format!("<success xmlns='{NS_SASL}'/>")).await;
}

#[tokio::test]
async fn plain_authzid_of_someone_else_is_invalid_authzid() {
    let (server, mut client) = tls_setup().await;
    server.add_user("bob@localhost", "pw2").await;
    assert_eq!(auth_failure(&mut client, "PLAIN", &plain("bob@localhost", "alice", "pw")).await, "invalid-authzid");
}

/// RFC 6120 §6.4.5: retries are allowed after a failure.
#[tokio::test]
async fn login_after_one_failure_succeeds() {
    let (_server, mut client) = tls_setup().await;
    let mut wrong = client.mechanism(Mech::ScramSha256, "alice", "nope");
    assert_eq!(client.sasl(wrong.as_mut()).await, Err("not-authorized".to_owned()));
    client.authenticate(Mech::ScramSha256, "alice", "pw").await.expect("second attempt");
}

/// The third failure (auth.max_failed_attempts = 3) ends the stream.
#[tokio::test]
async fn three_failures_are_policy_violation() {
    let (_server, mut client) = tls_setup().await;
    for attempt in 1..=2 {
        let condition = auth_failure(&mut client, "PLAIN", &plain("", "alice", "wrong")).await;
        assert_eq!(condition, "not-authorized", "attempt {attempt}");
    }
    assert_eq!(auth_failure(&mut client, "PLAIN", &plain("", "alice", "wrong")).await, "not-authorized");
    client.expect_stream_error("policy-violation").await;
}

/// Every failure kind counts, not only wrong passwords.
#[tokio::test]
async fn three_malformed_attempts_are_policy_violation() {
    let (_server, mut client) = tls_setup().await;
    for _ in 0..3 {
        assert_eq!(auth_failure(&mut client, "SCRAM-SHA-256", &STANDARD.encode("hello")).await, "malformed-request");
    }
    client.expect_stream_error("policy-violation").await;
}

/// The login throttle: failure answers are delayed (auth.failure_delay_ms, doubling).
/// Lower bounds only, so scheduling noise cannot make this flaky.
#[tokio::test]
async fn failures_are_delayed_by_the_throttle() {
    let server = TestServer::with(|c| c.auth.failure_delay_ms = 200).await;
    server.add_user("alice@localhost", "pw").await;
    let mut client = server.connect().await;
    client.open_stream().await;
    let mut elapsed = Vec::new();
    for _ in 0..2 {
        let start = Instant::now();
        let condition = auth_failure(&mut client, "PLAIN", &plain("", "alice", "wrong")).await;
        assert_eq!(condition, "not-authorized");
        elapsed.push(start.elapsed());
    }
    assert!(elapsed[0] >= Duration::from_millis(150), "first failure after {:?}", elapsed[0]);
    assert!(elapsed[1] >= Duration::from_millis(350), "second failure after {:?}", elapsed[1]);
}

/// SCRAM's GS2 header may carry an authzid: our own JID is fine, another one is not.
#[tokio::test]
async fn scram_authzid_must_be_the_user_itself() {
    let (server, mut client) = tls_setup().await;
    server.add_user("bob@localhost", "pw2").await;
    let alice = || ScramClient::new(HashAlg::Sha256, "alice", "pw").expect("SASLprep");
    let mut other = ScramMechanism::new(alice().with_authzid("bob@localhost"));
    assert_eq!(client.sasl(&mut other).await, Err("invalid-authzid".to_owned()));
    let mut own = ScramMechanism::new(alice().with_authzid("alice@localhost"));
    assert_eq!(client.sasl(&mut own).await, Ok(()));
}

/// The library's SCRAM client (`stanzad::sasl::client`) logs in like the `sasl` crate's.
#[tokio::test]
async fn scram_without_channel_binding_via_the_harness_client() {
    let (_server, mut client) = tls_setup().await;
    let mut harness = scram(HashAlg::Sha1, "alice", "pw", Binding::None);
    assert_eq!(client.sasl(&mut harness).await, Ok(()));
}

/// On TLS 1.2 there is no `tls-exporter` (RFC 9266); `tls-server-end-point` works.
#[tokio::test]
async fn tls12_plus_works_with_server_end_point_only() {
    let server = TestServer::start_tls_required().await;
    server.add_user("alice@localhost", "pw").await;
    let mut client = server.connect().await;
    client.open_stream().await;
    let config = crate::support::client::tls_config(&server.cert_path, &[], &[&rustls::version::TLS12]);
    client.starttls_with(config).await;
    let mut exporter = scram(HashAlg::Sha256, "alice", "pw", Binding::Required(CbType::TlsExporter, vec![7; 32]));
    assert_eq!(client.sasl(&mut exporter).await, Err("not-authorized".to_owned()));
    client
        .authenticate(Mech::ScramSha256Plus(Cb::TlsServerEndPoint), "alice", "pw")
        .await
        .expect("tls-server-end-point on TLS 1.2");
}

/// PLAIN without an initial response: an empty challenge, then the credentials.
#[tokio::test]
async fn plain_without_initial_response() {
    let (_server, mut client) = tls_setup().await;
    client.send(&format!("<auth xmlns='{NS_SASL}' mechanism='PLAIN'/>")).await;
    let challenge = client.expect(&format!("<challenge xmlns='{NS_SASL}'>{{any}}</challenge>")).await;
    assert!(matches!(challenge.text().trim(), "" | "="), "empty challenge: {:?}", challenge.text());
    client.send(&format!("<response xmlns='{NS_SASL}'>{}</response>", plain("", "alice", "pw"))).await;
    client.expect(&format!("<success xmlns='{NS_SASL}'/>")).await;
}
