//! The client against the RFC examples and against the server side (`Exchange`).

use super::*;
use crate::sasl::test_support::MemLookup;
use crate::sasl::{ChannelBindings, Exchange, SaslError, Step};

/// Replays one RFC example: client-first, client-final, server-final.
fn replay(hash: HashAlg, nonce: &str, server_first: &str, client_final: &str, server_final: &str) {
    let mut client = ScramClient::with_nonce(hash, "user", "pencil", nonce).expect("client");
    assert_eq!(client.client_first(), format!("n,,n=user,r={nonce}"));
    assert!(client.verify_server_final(server_final.as_bytes()).is_err(), "server-final before server-first");
    assert_eq!(client.client_final(server_first.as_bytes()).expect("final"), client_final);
    client.verify_server_final(server_final.as_bytes()).expect("server signature");
    assert_eq!(client.verify_server_final(b"v=AAAA"), Err(ScramClientError::ServerSignature));
}

#[test]
fn rfc5802_sha1_example() {
    replay(
        HashAlg::Sha1,
        "fyko+d2lbbFgONRv9qkxdawL",
        "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
    );
}

#[test]
fn rfc7677_sha256_example() {
    replay(
        HashAlg::Sha256,
        "rOprNGfwEbeRWgbNEkqO",
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
         p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
    );
}

const EXPORTER: &[u8] = &[0xE7; 32];
const END_POINT: &[u8] = &[0x5E; 32];

fn both() -> ChannelBindings {
    ChannelBindings { tls_exporter: Some(EXPORTER.to_vec()), tls_server_end_point: Some(END_POINT.to_vec()) }
}

/// A whole exchange against the server side: its success (username, authzid), or its
/// failure. The server's signature is checked on success.
fn log_in(client: &mut ScramClient, cb: ChannelBindings, lookup: &MemLookup) -> Result<(String, Option<String>), Step> {
    let mut server = Exchange::start(client.mechanism(), cb, true, false);
    let first = server.step(Some(client.client_first().as_bytes()), lookup);
    let Step::Challenge(server_first) = first else { return Err(first) };
    let client_final = client.client_final(&server_first).expect("client-final");
    match server.step(Some(client_final.as_bytes()), lookup) {
        Step::Success { username, authzid, additional_data } => {
            client.verify_server_final(&additional_data.expect("server-final")).expect("server signature");
            Ok((username, authzid))
        }
        other => Err(other),
    }
}

fn client(hash: HashAlg, password: &str) -> ScramClient {
    ScramClient::new(hash, "user", password).expect("client")
}

#[test]
fn logs_in_with_every_mechanism_and_binding() {
    let lookup = MemLookup::with("user", "pencil");
    let user = Ok(("user".to_owned(), None));
    for hash in [HashAlg::Sha1, HashAlg::Sha256] {
        assert_eq!(log_in(&mut client(hash, "pencil"), ChannelBindings::default(), &lookup), user);
        // `n` while binding is available is the client's choice; `y` only without it.
        assert_eq!(log_in(&mut client(hash, "pencil"), both(), &lookup), user);
        let mut y = client(hash, "pencil").with_binding(Binding::Unsupported);
        assert_eq!(log_in(&mut y, ChannelBindings::default(), &lookup), user);
        for (cb, data) in [(CbType::TlsExporter, EXPORTER), (CbType::TlsServerEndPoint, END_POINT)] {
            let mut plus = client(hash, "pencil").with_binding(Binding::Required(cb, data.to_vec()));
            assert!(plus.mechanism().is_plus());
            assert!(plus.client_first().starts_with(&format!("p={},,n=user,r=", cb.name())));
            assert_eq!(log_in(&mut plus, both(), &lookup), user, "{cb:?}");
        }
    }
}

#[test]
fn the_server_refuses_a_wrong_password_or_binding() {
    let lookup = MemLookup::with("user", "pencil");
    let refused = Err(Step::Failure(SaslError::NotAuthorized));
    for hash in [HashAlg::Sha1, HashAlg::Sha256] {
        assert_eq!(log_in(&mut client(hash, "pencil2"), ChannelBindings::default(), &lookup), refused);
        // Another channel's data, and the other type's data.
        let mut mitm = client(hash, "pencil").with_binding(Binding::Required(CbType::TlsExporter, vec![0; 32]));
        assert_eq!(log_in(&mut mitm, both(), &lookup), refused);
        let other = Binding::Required(CbType::TlsServerEndPoint, EXPORTER.to_vec());
        assert_eq!(log_in(&mut client(hash, "pencil").with_binding(other), both(), &lookup), refused);
        // `y` while the server offers binding: a downgrade.
        let mut y = client(hash, "pencil").with_binding(Binding::Unsupported);
        assert_eq!(log_in(&mut y, both(), &lookup), refused);
    }
}

#[test]
fn names_are_prepared_and_escaped() {
    let mut lookup = MemLookup::with("user", "pencil");
    lookup.add("us,er=x", "pencil");
    let client = ScramClient::with_nonce(HashAlg::Sha1, "a=b,c", "p", "n").expect("client");
    assert_eq!(client.client_first(), "n,,n=a=3Db=2Cc,r=n");
    let client = client.with_authzid("x,y@z");
    assert_eq!(client.client_first(), "n,a=x=2Cy@z,n=a=3Db=2Cc,r=n");
    let mut escaped = ScramClient::new(HashAlg::Sha256, "us,er=x", "pencil").expect("client").with_authzid("us,er=x@h");
    assert_eq!(
        log_in(&mut escaped, ChannelBindings::default(), &lookup),
        Ok(("us,er=x".to_owned(), Some("us,er=x@h".to_owned())))
    );
    // SOFT HYPHEN is mapped to nothing, in the username and in the password.
    let mut prepped = ScramClient::new(HashAlg::Sha256, "us\u{AD}er", "pen\u{AD}cil").expect("client");
    assert!(prepped.client_first().contains(",n=user,"));
    assert_eq!(log_in(&mut prepped, ChannelBindings::default(), &lookup), Ok(("user".to_owned(), None)));
    assert_eq!(ScramClient::new(HashAlg::Sha1, "us\u{7}er", "p").err(), Some(ScramClientError::Saslprep("username")));
}

#[test]
fn refuses_bad_server_messages_before_deriving_keys() {
    let mut client = ScramClient::with_nonce(HashAlg::Sha256, "user", "pencil", "abc").expect("client");
    for bad in [
        &b"r=xyz123,s=QSXCR+Q6sek8bf92,i=4096"[..],
        b"r=abc,s=QSXCR+Q6sek8bf92,i=4096",
        b"m=ext,r=abcdef,s=QSXCR+Q6sek8bf92,i=4096",
        b"r=abcdef,s=***,i=4096",
        b"r=abcdef,s=QSXCR+Q6sek8bf92,i=0",
        b"r=abcdef,s=QSXCR+Q6sek8bf92,i=99999999",
        b"r=abcdef,s=QSXCR+Q6sek8bf92",
        b"s=QSXCR+Q6sek8bf92,i=1",
        b"r=abcdef,s=\xff,i=1",
    ] {
        let derived = std::cell::Cell::new(false);
        let result = client.client_final_with(bad, |_, _, _, _| {
            derived.set(true);
            Vec::new()
        });
        assert!(result.is_err(), "{}", String::from_utf8_lossy(bad));
        assert!(!derived.get(), "keys derived for {}", String::from_utf8_lossy(bad));
    }
    assert_eq!(
        client.verify_server_final(b"e=invalid-proof"),
        Err(ScramClientError::ServerError("invalid-proof".into()))
    );
    assert_eq!(client.verify_server_final(b"x=1"), Err(ScramClientError::ServerFinal("no v=")));
}

#[test]
fn server_first_attributes_come_in_any_order() {
    let parsed = ServerFirst::parse("s=QSXCR+Q6sek8bf92,x=1,i=7,r=abc").expect("parse");
    assert_eq!(
        parsed,
        ServerFirst { nonce: "abc".into(), salt: STANDARD.decode("QSXCR+Q6sek8bf92").expect("b64"), iterations: 7 }
    );
}
