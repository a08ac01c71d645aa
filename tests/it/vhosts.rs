//! Several hosted domains on one server: accounts, streams and routing are per domain.

use crate::support::{stream_header, Client, Mech, TestServer};

async fn two_hosts() -> TestServer {
    let server = TestServer::with(|c| c.hosts = vec!["localhost".into(), "example.org".into()]).await;
    server.add_user("alice@localhost", "pw-local").await;
    server.add_user("alice@example.org", "pw-org").await;
    server.add_user("bob@example.org", "pw-bob").await;
    server
}

/// Opens a stream to `domain` (checking the server answers as that domain).
async fn open_to(server: &TestServer, domain: &str) -> Client {
    let mut client = server.connect().await;
    client.send(&stream_header(domain)).await;
    let header = client.next_header().await;
    assert_eq!(header.from.as_deref(), Some(domain), "{header:?}");
    let features = client.recv().await;
    assert!(features.is("features", crate::support::NS_STREAM));
    client.features = Some(features);
    client
}

#[tokio::test]
async fn each_domain_has_its_own_accounts() {
    let server = two_hosts().await;
    let mut org = open_to(&server, "example.org").await;
    let mut wrong = org.mechanism(Mech::ScramSha256, "alice", "pw-local");
    assert_eq!(org.sasl(wrong.as_mut()).await, Err("not-authorized".to_owned()));
    let mut right = org.mechanism(Mech::ScramSha256, "alice", "pw-org");
    org.sasl(right.as_mut()).await.expect("alice@example.org");
}

#[tokio::test]
async fn session_on_the_second_domain() {
    let server = two_hosts().await;
    let mut client = open_to(&server, "example.org").await;
    let mut mechanism = client.mechanism(Mech::ScramSha256, "bob", "pw-bob");
    client.sasl(mechanism.as_mut()).await.expect("bob@example.org");
    client.reset_framer();
    client.send(&stream_header("example.org")).await;
    client.next_header().await;
    client.recv().await;
    assert_eq!(client.bind(Some("r")).await, "bob@example.org/r");
    client.send("<iq type='get' id='p1' to='example.org'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    client.expect("<iq type='result' id='p1' from='example.org' to='bob@example.org/r'/>").await;
}

/// The restarted stream after SASL must be to the same domain.
#[tokio::test]
async fn changing_domain_on_restart_is_refused() {
    let server = two_hosts().await;
    let mut client = open_to(&server, "example.org").await;
    let mut mechanism = client.mechanism(Mech::ScramSha256, "bob", "pw-bob");
    client.sasl(mechanism.as_mut()).await.expect("bob@example.org");
    client.reset_framer();
    client.send(&stream_header("localhost")).await;
    client.expect_stream_error("host-unknown").await;
}

#[tokio::test]
async fn messages_cross_local_domains() {
    let server = two_hosts().await;
    let mut local = server.available("alice", "pw-local", "a", 0).await;
    let mut org = open_to(&server, "example.org").await;
    let mut mechanism = org.mechanism(Mech::ScramSha256, "bob", "pw-bob");
    org.sasl(mechanism.as_mut()).await.expect("bob@example.org");
    org.reset_framer();
    org.send(&stream_header("example.org")).await;
    org.next_header().await;
    org.recv().await;
    org.bind(Some("b")).await;
    org.send("<presence/>").await;
    org.expect("<presence from='bob@example.org/b'/>").await;
    local.send("<message to='bob@example.org' type='chat' id='x1'><body>hi org</body></message>").await;
    org.expect(
        "<message to='bob@example.org' from='alice@localhost/a' type='chat' id='x1'><body>hi org</body></message>",
    )
    .await;
    org.send("<message to='alice@localhost/a' type='chat' id='x2'><body>hi local</body></message>").await;
    local
        .expect("<message to='alice@localhost/a' from='bob@example.org/b' type='chat' id='x2'><body>hi local</body></message>")
        .await;
}
