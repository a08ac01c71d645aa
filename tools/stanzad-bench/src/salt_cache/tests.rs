//! The cache under the library's SCRAM client, against stanzad's own server engine.

use super::*;
use stanzad::sasl::client::ScramClient;
use stanzad::sasl::{ChannelBindings, CredentialLookup, Exchange, Mechanism, Step, StoredCredentials};

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
    let mut client = ScramClient::new(hash, "bench1", password).map_err(|e| e.to_string())?;
    let Step::Challenge(first) = server.step(Some(client.client_first().as_bytes()), user) else {
        return Err("no server-first".into());
    };
    let client_final =
        client.client_final_with(&first, |h, p, s, i| cache.salted(h, p, s, i)).map_err(|e| e.to_string())?;
    match server.step(Some(client_final.as_bytes()), user) {
        Step::Success { additional_data: Some(data), .. } => {
            client.verify_server_final(&data).map_err(|e| e.to_string())
        }
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
