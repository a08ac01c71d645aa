//! The SCRAM client against the RFC examples and against stanzad's own server engine.

use super::*;
use stanzad::sasl::{ChannelBindings, CredentialLookup, Exchange, Mechanism, Step, StoredCredentials};

/// Replays one RFC example: client-first, client-final, server-final.
fn replay(hash: HashAlg, nonce: &str, server_first: &str, client_final: &str, server_final: &str) {
    let cache = SaltCache::default();
    let mut client = ScramClient::with_nonce(hash, "user", "pencil", nonce).expect("client");
    assert_eq!(client.client_first(), format!("n,,n=user,r={nonce}"));
    assert_eq!(client.client_final(server_first.as_bytes(), &cache).expect("final"), client_final);
    client.verify_server_final(server_final.as_bytes()).expect("server signature");
    assert!(client.verify_server_final(b"v=AAAA").is_err());
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

/// One account with fixed credentials (one salt per hash).
struct OneUser(StoredCredentials);

impl CredentialLookup for OneUser {
    fn lookup(&self, username: &str) -> Result<Option<StoredCredentials>, ()> {
        Ok((username == "bench1").then(|| self.0.clone()))
    }
}

/// Runs a whole exchange against stanzad's server engine; `Err` if the server refused.
fn against_server(
    mech: Mechanism,
    hash: HashAlg,
    user: &OneUser,
    password: &str,
    cache: &SaltCache,
) -> Result<(), String> {
    let mut server = Exchange::start(mech, ChannelBindings::default(), false, false);
    let mut client = ScramClient::new(hash, "bench1", password)?;
    let Step::Challenge(first) = server.step(Some(client.client_first().as_bytes()), user) else {
        return Err("no server-first".into());
    };
    let client_final = client.client_final(&first, cache)?;
    match server.step(Some(client_final.as_bytes()), user) {
        Step::Success { additional_data: Some(data), .. } => client.verify_server_final(&data),
        other => Err(format!("{other:?}")),
    }
}

#[test]
fn logs_in_to_the_stanzad_engine_and_caches_the_salted_password() {
    let user = OneUser(StoredCredentials::derive("s3cret", 4096).expect("derive"));
    for (mech, hash) in [(Mechanism::ScramSha1, HashAlg::Sha1), (Mechanism::ScramSha256, HashAlg::Sha256)] {
        let cache = SaltCache::default();
        against_server(mech, hash, &user, "s3cret", &cache).expect("first login");
        against_server(mech, hash, &user, "s3cret", &cache).expect("second login");
        assert_eq!(cache.counts(), (1, 1), "one PBKDF2 for two logins with the same salt");
        assert!(against_server(mech, hash, &user, "wrong", &cache).is_err());
    }
}

#[test]
fn refuses_bad_server_first_messages() {
    let cache = SaltCache::default();
    let mut client = ScramClient::with_nonce(HashAlg::Sha256, "user", "pencil", "abc").expect("client");
    for bad in [
        "r=xyz123,s=QSXCR+Q6sek8bf92,i=4096",
        "r=abc,s=QSXCR+Q6sek8bf92,i=4096",
        "m=ext,r=abcdef,s=QSXCR+Q6sek8bf92,i=4096",
        "r=abcdef,s=***,i=4096",
        "r=abcdef,s=QSXCR+Q6sek8bf92,i=0",
        "r=abcdef,s=QSXCR+Q6sek8bf92,i=99999999",
        "r=abcdef,s=QSXCR+Q6sek8bf92",
    ] {
        assert!(client.client_final(bad.as_bytes(), &cache).is_err(), "{bad}");
    }
    assert_eq!(cache.counts(), (0, 0));
    assert!(client.verify_server_final(b"e=invalid-proof").is_err());
}

#[test]
fn escapes_the_username() {
    let client = ScramClient::with_nonce(HashAlg::Sha1, "a=b,c", "p", "n").expect("client");
    assert_eq!(client.client_first(), "n,,n=a=3Db=2Cc,r=n");
}
