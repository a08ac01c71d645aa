//! RFC 6120 §11 (XML restrictions) and §4.9.3 (the stream errors for them), the size,
//! depth and attribute limits, whitespace keepalives, and graceful shutdown.

use crate::support::{Client, TestServer};

/// A server with small limits: 10 000 bytes after authentication, 4096 before, depth 8.
async fn small_limits() -> TestServer {
    let server = TestServer::with(|c| {
        c.limits.max_stanza_bytes = 10_000;
        c.limits.preauth_stanza_bytes = 4096;
        c.limits.max_depth = 8;
        c.limits.max_attributes = 16;
    })
    .await;
    server.add_user("alice@localhost", "pw").await;
    server
}

/// Sends `bytes` in a bound session; the stream must end with `condition`.
async fn in_session(bytes: &[u8], condition: &str) {
    let server = small_limits().await;
    let mut client = server.session("alice", "pw", "r").await;
    client.send_bytes(bytes).await;
    client.expect_stream_error(condition).await;
}

/// Sends `bytes` right after the stream header, before authentication.
async fn before_auth(bytes: &[u8], condition: &str) {
    let server = small_limits().await;
    let mut client = server.connect().await;
    client.open_stream().await;
    client.send_bytes(bytes).await;
    client.expect_stream_error(condition).await;
}

/// A message to alice's own full JID wrapping `inner` (unescaped).
fn message(inner: &str) -> Vec<u8> {
    format!("<message to='alice@localhost/r' type='chat' id='m1'>{inner}</message>").into_bytes()
}

/// Sends a message to itself and checks what comes back.
async fn round_trip(client: &mut Client, sent: &[u8], expected_body: &str) {
    client.send_bytes(sent).await;
    client
        .expect(&format!(
            "<message to='alice@localhost/r' from='alice@localhost/r' type='chat' id='m1'><body>{expected_body}</body></message>"
        ))
        .await;
}

// ---- restricted-xml ----

#[tokio::test]
async fn doctype_is_restricted_xml() {
    in_session(b"<!DOCTYPE message>", "restricted-xml").await;
}

#[tokio::test]
async fn doctype_with_internal_subset_is_restricted_xml() {
    in_session(b"<!DOCTYPE message [<!ENTITY x 'boom'>]>", "restricted-xml").await;
}

#[tokio::test]
async fn doctype_before_the_stream_header_is_restricted_xml() {
    let server = small_limits().await;
    let mut client = server.connect().await;
    client
        .send(&format!(
            "<?xml version='1.0'?><!DOCTYPE stream:stream>{}",
            crate::support::stream_header("localhost").trim_start_matches("<?xml version='1.0'?>")
        ))
        .await;
    client.expect_stream_error("restricted-xml").await;
}

#[tokio::test]
async fn processing_instruction_is_restricted_xml() {
    in_session(&message("<?evil data?><body>x</body>"), "restricted-xml").await;
}

#[tokio::test]
async fn comment_is_restricted_xml() {
    in_session(&message("<!-- hello --><body>x</body>"), "restricted-xml").await;
}

#[tokio::test]
async fn comment_between_stanzas_is_restricted_xml() {
    in_session(b"<!-- keepalive -->", "restricted-xml").await;
}

#[tokio::test]
async fn comment_before_auth_is_restricted_xml() {
    before_auth(b"<!-- hello -->", "restricted-xml").await;
}

// ---- not-well-formed ----

#[tokio::test]
async fn undeclared_entity_is_not_well_formed() {
    in_session(&message("<body>a&nbsp;b</body>"), "not-well-formed").await;
}

#[tokio::test]
async fn character_reference_to_nul_is_not_well_formed() {
    in_session(&message("<body>a&#0;b</body>"), "not-well-formed").await;
}

#[tokio::test]
async fn raw_control_character_is_not_well_formed() {
    in_session(&message("<body>a\u{1}b</body>"), "not-well-formed").await;
}

#[tokio::test]
async fn invalid_utf8_is_not_well_formed() {
    let mut bytes = b"<message to='alice@localhost/r' id='m1'><body>a".to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe, 0xc3]);
    bytes.extend_from_slice(b"b</body></message>");
    in_session(&bytes, "not-well-formed").await;
}

#[tokio::test]
async fn invalid_utf8_in_an_attribute_is_not_well_formed() {
    let mut bytes = b"<message to='alice@localhost/r' id='".to_vec();
    bytes.extend_from_slice(&[0xc0, 0x80]);
    bytes.extend_from_slice(b"'><body>b</body></message>");
    in_session(&bytes, "not-well-formed").await;
}

#[tokio::test]
async fn duplicate_attribute_is_not_well_formed() {
    in_session(b"<message to='alice@localhost/r' to='bob@localhost'><body>x</body></message>", "not-well-formed").await;
}

#[tokio::test]
async fn duplicate_attribute_by_expanded_name_is_not_well_formed() {
    in_session(&message("<x xmlns='urn:x' xmlns:a='urn:same' xmlns:b='urn:same' a:k='1' b:k='2'/>"), "not-well-formed")
        .await;
}

#[tokio::test]
async fn unbound_prefix_is_not_well_formed() {
    in_session(&message("<foo:body>x</foo:body>"), "not-well-formed").await;
}

#[tokio::test]
async fn unbound_attribute_prefix_is_not_well_formed() {
    in_session(&message("<body foo:a='1'>x</body>"), "not-well-formed").await;
}

#[tokio::test]
async fn invalid_element_name_is_not_well_formed() {
    in_session(&message("<1a/>"), "not-well-formed").await;
}

#[tokio::test]
async fn less_than_in_attribute_value_is_not_well_formed() {
    in_session(b"<message to='alice@localhost/r' id='a<b'><body>x</body></message>", "not-well-formed").await;
}

#[tokio::test]
async fn mismatched_end_tag_is_not_well_formed() {
    in_session(&message("<body>x</bodx>"), "not-well-formed").await;
}

#[tokio::test]
async fn unquoted_attribute_is_not_well_formed() {
    in_session(b"<message to=alice@localhost/r><body>x</body></message>", "not-well-formed").await;
}

#[tokio::test]
async fn text_between_stanzas_is_not_well_formed() {
    in_session(b"hello<message/>", "not-well-formed").await;
}

#[tokio::test]
async fn cdata_end_in_text_is_not_well_formed() {
    in_session(&message("<body>a]]>b</body>"), "not-well-formed").await;
}

/// `<?xml?>` is only allowed at the very start of the entity: elsewhere it is not a
/// processing instruction (the target `xml` is reserved) but a well-formedness error
/// (XML 1.0 §2.6, §2.8); the framer's own module documentation says so too.
#[tokio::test]
async fn xml_declaration_inside_the_stream_is_not_well_formed() {
    in_session(b"<?xml version='1.0'?>", "not-well-formed").await;
}

#[tokio::test]
async fn nul_character_reference_before_auth_is_not_well_formed() {
    before_auth(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>&#0;</auth>", "not-well-formed")
        .await;
}

// ---- what is allowed ----

/// CDATA sections, predefined entities and character references are plain XML.
#[tokio::test]
async fn cdata_and_references_are_accepted() {
    let server = small_limits().await;
    let mut client = server.session("alice", "pw", "r").await;
    round_trip(&mut client, &message("<body><![CDATA[a<b]]>&amp;&#x41;&#66;&quot;</body>"), "a&lt;b&amp;AB\"").await;
}

/// RFC 6120 §4.6.1: whitespace between stanzas is a keepalive, not data.
#[tokio::test]
async fn whitespace_keepalives_between_stanzas_are_fine() {
    let server = small_limits().await;
    let mut client = server.session("alice", "pw", "r").await;
    client.send(" ").await;
    client.send("\n\r\n\t  ").await;
    round_trip(&mut client, &message("<body>one</body>"), "one").await;
    for _ in 0..3 {
        client.send("\n").await;
    }
    let mut both = b"  \n".to_vec();
    both.extend(message("<body>two</body>"));
    both.extend(b"\n\n ");
    round_trip(&mut client, &both, "two").await;
    client.expect_silence(100).await;
}

/// A stanza split across many small writes is reassembled.
#[tokio::test]
async fn a_stanza_in_small_pieces_is_reassembled() {
    let server = small_limits().await;
    let mut client = server.session("alice", "pw", "r").await;
    let bytes = message("<body>p\u{e9}ce by piece \u{1f600}</body>");
    for chunk in bytes.chunks(3) {
        client.send_bytes(chunk).await;
    }
    client
        .expect("<message to='alice@localhost/r' from='alice@localhost/r' type='chat' id='m1'><body>p\u{e9}ce by piece \u{1f600}</body></message>")
        .await;
}

// ---- limits ----

#[tokio::test]
async fn stanza_larger_than_the_limit_is_policy_violation() {
    let body = "x".repeat(12_000);
    in_session(&message(&format!("<body>{body}</body>")), "policy-violation").await;
}

#[tokio::test]
async fn stanza_just_under_the_limit_is_accepted() {
    let server = small_limits().await;
    let mut client = server.session("alice", "pw", "r").await;
    let overhead = message("<body></body>").len();
    let body = "y".repeat(10_000 - overhead);
    round_trip(&mut client, &message(&format!("<body>{body}</body>")), &body).await;
}

/// The limit holds while a single token is still arriving: the error comes although the
/// client never finishes the attribute (the server must not buffer it all first).
#[tokio::test]
async fn unfinished_huge_attribute_is_policy_violation_without_the_rest() {
    let mut bytes = b"<message to='alice@localhost/r' a='".to_vec();
    bytes.extend(std::iter::repeat_n(b'z', 20_000));
    in_session(&bytes, "policy-violation").await;
}

#[tokio::test]
async fn unfinished_huge_text_is_policy_violation_without_the_rest() {
    let mut bytes = b"<message to='alice@localhost/r'><body>".to_vec();
    bytes.extend(std::iter::repeat_n(b'z', 20_000));
    in_session(&bytes, "policy-violation").await;
}

#[tokio::test]
async fn unfinished_huge_attribute_before_auth_is_policy_violation() {
    let mut bytes = b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='".to_vec();
    bytes.extend(std::iter::repeat_n(b'z', 20_000));
    before_auth(&bytes, "policy-violation").await;
}

/// 6000 bytes: over the pre-authentication limit (4096), under the session's (10 000).
fn iq_of_6000_bytes() -> Vec<u8> {
    let head = "<iq type='get' id='big'><x xmlns='urn:example:big'>";
    let tail = "</x></iq>";
    let fill = "f".repeat(6000 - head.len() - tail.len());
    format!("{head}{fill}{tail}").into_bytes()
}

#[tokio::test]
async fn preauth_limit_is_smaller_than_the_session_limit() {
    let server = small_limits().await;
    // After authentication the element is fine (and answered)...
    let mut client = server.session("alice", "pw", "r").await;
    let bytes = iq_of_6000_bytes();
    assert_eq!(bytes.len(), 6000);
    client.send_bytes(&bytes).await;
    let reply = client.recv().await;
    assert_eq!(reply.attr("type"), Some("error"));
    assert_eq!(reply.attr("id"), Some("big"));
    // ...before authentication it is too big.
    let mut early = server.connect().await;
    early.open_stream().await;
    early.send_bytes(&bytes).await;
    early.expect_stream_error("policy-violation").await;
}

#[tokio::test]
async fn preauth_limit_applies_after_starttls_too() {
    let server = small_limits().await;
    let mut client = server.connect().await;
    client.open_stream().await;
    client.starttls(&server.cert_path).await;
    client.send_bytes(&iq_of_6000_bytes()).await;
    client.expect_stream_error("policy-violation").await;
}

fn nested(depth: usize) -> String {
    // iq (depth 1) > a with xmlns (depth 2) > `depth - 2` more levels of <a>.
    let inner = depth - 2;
    format!(
        "<iq type='get' id='deep'><a xmlns='urn:example:deep'>{}{}</a></iq>",
        "<a>".repeat(inner),
        "</a>".repeat(inner)
    )
}

#[tokio::test]
async fn nesting_at_max_depth_is_accepted() {
    let server = small_limits().await;
    let mut client = server.session("alice", "pw", "r").await;
    client.send(&nested(8)).await;
    let reply = client.recv().await;
    assert_eq!(reply.attr("type"), Some("error"), "{}", crate::support::xml::show(&reply));
    assert_eq!(reply.attr("id"), Some("deep"));
}

#[tokio::test]
async fn nesting_deeper_than_max_depth_is_policy_violation() {
    in_session(nested(9).as_bytes(), "policy-violation").await;
}

#[tokio::test]
async fn too_many_attributes_is_policy_violation() {
    let attrs: String = (0..20).map(|i| format!(" a{i}='v'")).collect();
    in_session(format!("<message to='alice@localhost/r'{attrs}/>").as_bytes(), "policy-violation").await;
}

// ---- shutdown ----

#[tokio::test]
async fn graceful_shutdown_sends_system_shutdown() {
    let server = small_limits().await;
    let mut bound = server.session("alice", "pw", "r").await;
    let mut negotiating = server.connect().await;
    negotiating.open_stream().await;
    let addr = server.addr;
    let admin_socket = stanzad::admin::socket_path(&server.data_dir);
    assert!(admin_socket.exists());
    let ((), (), ()) = tokio::join!(
        server.stop(),
        bound.expect_stream_error("system-shutdown"),
        negotiating.expect_stream_error("system-shutdown"),
    );
    assert!(!admin_socket.exists(), "the admin socket is removed");
    // The listener task is aborted; its socket closes when the runtime drops the task.
    let deadline = tokio::time::Instant::now() + crate::support::TIMEOUT;
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "the listener is still open after shutdown");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
