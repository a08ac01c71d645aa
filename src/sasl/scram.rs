//! SCRAM (RFC 5802, RFC 7677) server side, with channel binding
//! (`tls-exporter`, RFC 9266; `tls-server-end-point`, RFC 5929).

use base64::{engine::general_purpose::STANDARD, Engine};
use subtle::ConstantTimeEq;

use super::credentials::{fake_bytes, random_bytes, saslprep, HashAlg, ScramKeys, SALT_LEN};
use super::{CbType, ChannelBindings, CredentialLookup, Mechanism, SaslError, Step};

/// Random bytes in the server's part of the nonce (base64-encoded: 24 characters).
const SERVER_NONCE_BYTES: usize = 18;

/// The GS2 channel-binding flag of the client-first message.
#[derive(Clone, Debug, PartialEq, Eq)]
enum CbFlag {
    /// `n`: the client does not support channel binding.
    None,
    /// `y`: the client supports it but thinks the server does not.
    ClientOnly,
    /// `p=<name>`: the client requires it, with this type.
    Required(String),
}

/// What is kept between server-first and client-final.
struct Pending {
    username: String,
    authzid: Option<String>,
    /// gs2-header followed by the channel-binding data (for `p=`): what `c=` must encode.
    cbind_input: Vec<u8>,
    /// client nonce + server nonce.
    nonce: String,
    /// `client-first-message-bare "," server-first-message ","`.
    auth_prefix: String,
    keys: ScramKeys,
    /// False when the keys are fakes for an unknown user.
    known: bool,
}

enum ScramState {
    /// Nothing received yet.
    Initial,
    /// Sent an empty challenge; the client-first message comes next.
    AwaitingClientFirst,
    /// Sent server-first; the client-final message comes next.
    AwaitingClientFinal(Box<Pending>),
}

/// Server side of one SCRAM exchange (wrapped by [`super::Exchange`]).
pub(crate) struct ScramServer {
    mech: Mechanism,
    alg: HashAlg,
    cb: ChannelBindings,
    /// Test hook: fixed server nonce suffix.
    fixed_nonce: Option<String>,
    state: ScramState,
}

impl ScramServer {
    /// `mech` must be a SCRAM mechanism (PLAIN is treated as SCRAM-SHA-256, never reached).
    pub(crate) fn new(mech: Mechanism, cb: ChannelBindings, fixed_nonce: Option<String>) -> Self {
        let alg = match mech {
            Mechanism::ScramSha1 | Mechanism::ScramSha1Plus => HashAlg::Sha1,
            _ => HashAlg::Sha256,
        };
        ScramServer { mech, alg, cb, fixed_nonce, state: ScramState::Initial }
    }

    pub(crate) fn step(&mut self, input: Option<&[u8]>, lookup: &dyn CredentialLookup) -> Step {
        let input = input.unwrap_or_default();
        let state = std::mem::replace(&mut self.state, ScramState::AwaitingClientFirst);
        let result = match state {
            ScramState::Initial if input.is_empty() => {
                self.state = ScramState::AwaitingClientFirst;
                return Step::Challenge(Vec::new());
            }
            ScramState::Initial | ScramState::AwaitingClientFirst => {
                self.client_first(input, lookup).map(|(pending, challenge)| {
                    self.state = ScramState::AwaitingClientFinal(Box::new(pending));
                    Step::Challenge(challenge)
                })
            }
            ScramState::AwaitingClientFinal(p) => self.client_final(input, &p),
        };
        result.unwrap_or_else(Step::Failure)
    }

    /// The name the next step would look up: the prepared username of a client-first
    /// message, when one is due.
    pub(crate) fn username_in(&self, input: &[u8]) -> Option<String> {
        if !matches!(self.state, ScramState::Initial | ScramState::AwaitingClientFirst) || input.is_empty() {
            return None;
        }
        let cf = parse_client_first(std::str::from_utf8(input).ok()?).ok()?;
        saslprep(&cf.username).ok().filter(|name| !name.is_empty())
    }

    /// Parse client-first, look the user up, build server-first.
    fn client_first(&self, input: &[u8], lookup: &dyn CredentialLookup) -> Result<(Pending, Vec<u8>), SaslError> {
        let text = std::str::from_utf8(input).map_err(|_| SaslError::MalformedRequest)?;
        let cf = parse_client_first(text)?;

        // Channel-binding rules (RFC 5802 §6, RFC 5056).
        let cb_data: &[u8] = match (&cf.flag, self.mech.is_plus()) {
            // A -PLUS mechanism was chosen, yet the header says no binding.
            (CbFlag::None | CbFlag::ClientOnly, true) => return Err(SaslError::NotAuthorized),
            (CbFlag::None, false) => &[],
            // We advertise -PLUS whenever we have binding data: `y` then means
            // someone removed it from the mechanism list (downgrade).
            (CbFlag::ClientOnly, false) if self.cb.any() => return Err(SaslError::NotAuthorized),
            (CbFlag::ClientOnly, false) => &[],
            (CbFlag::Required(_), false) => return Err(SaslError::NotAuthorized),
            (CbFlag::Required(name), true) => {
                CbType::from_name(name).and_then(|t| self.cb.data(t)).ok_or(SaslError::NotAuthorized)?
            }
        };

        // A name that cannot be SASLprepped can match no account.
        let username = saslprep(&cf.username).map_err(|_| SaslError::NotAuthorized)?;
        if username.is_empty() {
            return Err(SaslError::MalformedRequest);
        }

        let (keys, known) = match lookup.lookup(&username).map_err(|()| SaslError::TemporaryAuthFailure)? {
            Some(creds) => {
                let keys = match self.alg {
                    HashAlg::Sha1 => creds.sha1,
                    HashAlg::Sha256 => creds.sha256,
                };
                (keys, true)
            }
            // Unknown user: carry on with stable fake parameters so that the
            // exchange looks the same as for a real user with a wrong password.
            None => (self.fake_keys(&lookup.canonical(&username), lookup.fake_iterations()), false),
        };

        let server_part = match &self.fixed_nonce {
            Some(n) => n.clone(),
            None => STANDARD.encode(random_bytes(SERVER_NONCE_BYTES)?),
        };
        let nonce = format!("{}{}", cf.client_nonce, server_part);
        let server_first = format!("r={},s={},i={}", nonce, STANDARD.encode(&keys.salt), keys.iterations);
        let mut cbind_input = cf.gs2_header.as_bytes().to_vec();
        cbind_input.extend_from_slice(cb_data);
        let auth_prefix = format!("{},{},", cf.bare, server_first);
        let pending = Pending { username, authzid: cf.authzid, cbind_input, nonce, auth_prefix, keys, known };
        Ok((pending, server_first.into_bytes()))
    }

    fn fake_keys(&self, username: &str, iterations: u32) -> ScramKeys {
        let (salt_label, stored_label, server_label): (&[u8], &[u8], &[u8]) = match self.alg {
            HashAlg::Sha1 => (b"scram-sha1-salt", b"scram-sha1-stored", b"scram-sha1-server"),
            HashAlg::Sha256 => (b"scram-sha256-salt", b"scram-sha256-stored", b"scram-sha256-server"),
        };
        ScramKeys {
            salt: fake_bytes(salt_label, username, SALT_LEN),
            iterations: iterations.max(1),
            stored_key: fake_bytes(stored_label, username, self.alg.len()),
            server_key: fake_bytes(server_label, username, self.alg.len()),
        }
    }

    /// Check client-final; on success produce server-final.
    fn client_final(&self, input: &[u8], p: &Pending) -> Result<Step, SaslError> {
        let text = std::str::from_utf8(input).map_err(|_| SaslError::MalformedRequest)?;
        let (without_proof, proof_attr) = text.rsplit_once(',').ok_or(SaslError::MalformedRequest)?;
        let proof_b64 = proof_attr.strip_prefix("p=").ok_or(SaslError::MalformedRequest)?;
        let mut attrs = without_proof.split(',');
        let c_b64 = attrs.next().and_then(|a| a.strip_prefix("c=")).ok_or(SaslError::MalformedRequest)?;
        let nonce = attrs.next().and_then(|a| a.strip_prefix("r=")).ok_or(SaslError::MalformedRequest)?;
        for ext in attrs {
            check_extension(ext)?;
        }
        let cbind = STANDARD.decode(c_b64).map_err(|_| SaslError::MalformedRequest)?;
        let proof = STANDARD.decode(proof_b64).map_err(|_| SaslError::MalformedRequest)?;

        let cb_ok = cbind.ct_eq(&p.cbind_input);
        let nonce_ok = nonce.as_bytes().ct_eq(p.nonce.as_bytes());

        let auth_message = format!("{}{}", p.auth_prefix, without_proof);
        let alg = self.alg;
        let client_signature = alg.hmac(&p.keys.stored_key, auth_message.as_bytes())?;
        let client_key: Vec<u8> = proof.iter().zip(client_signature.iter()).map(|(a, b)| a ^ b).collect();
        let proof_ok = alg.hash(&client_key).ct_eq(&p.keys.stored_key)
            & u8::from(proof.len() == alg.len()).ct_eq(&1)
            & u8::from(p.known).ct_eq(&1);

        if !bool::from(cb_ok & nonce_ok & proof_ok) {
            return Err(SaslError::NotAuthorized);
        }
        let server_signature = alg.hmac(&p.keys.server_key, auth_message.as_bytes())?;
        let server_final = format!("v={}", STANDARD.encode(server_signature));
        Ok(Step::Success {
            username: p.username.clone(),
            authzid: p.authzid.clone(),
            additional_data: Some(server_final.into_bytes()),
        })
    }
}

/// A parsed client-first message.
#[derive(Debug)]
struct ClientFirst<'a> {
    flag: CbFlag,
    /// Including the trailing comma.
    gs2_header: &'a str,
    authzid: Option<String>,
    /// `client-first-message-bare`.
    bare: &'a str,
    /// Escape-decoded, not yet SASLprepped.
    username: String,
    client_nonce: &'a str,
}

/// `gs2-header client-first-message-bare` (RFC 5802 §7).
fn parse_client_first(text: &str) -> Result<ClientFirst<'_>, SaslError> {
    let (flag_str, rest) = text.split_once(',').ok_or(SaslError::MalformedRequest)?;
    let (authzid_str, bare) = rest.split_once(',').ok_or(SaslError::MalformedRequest)?;
    let gs2_len = flag_str.len() + authzid_str.len() + 2;
    let gs2_header = text.get(..gs2_len).ok_or(SaslError::MalformedRequest)?;

    let flag = match flag_str {
        "n" => CbFlag::None,
        "y" => CbFlag::ClientOnly,
        f => match f.strip_prefix("p=") {
            Some(name)
                if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') =>
            {
                CbFlag::Required(name.to_owned())
            }
            _ => return Err(SaslError::MalformedRequest),
        },
    };

    let authzid = if authzid_str.is_empty() {
        None
    } else {
        let v = authzid_str.strip_prefix("a=").ok_or(SaslError::MalformedRequest)?;
        Some(decode_saslname(v)?)
    };

    let mut attrs = bare.split(',');
    let user_attr = attrs.next().ok_or(SaslError::MalformedRequest)?;
    // `m=` (reserved-mext) is a mandatory extension we do not support.
    let username = user_attr.strip_prefix("n=").ok_or(SaslError::MalformedRequest)?;
    let username = decode_saslname(username)?;
    let client_nonce = attrs.next().and_then(|a| a.strip_prefix("r=")).ok_or(SaslError::MalformedRequest)?;
    if client_nonce.is_empty() || !client_nonce.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(SaslError::MalformedRequest);
    }
    for ext in attrs {
        check_extension(ext)?;
    }
    Ok(ClientFirst { flag, gs2_header, authzid, bare, username, client_nonce })
}

/// An optional extension `attr=value` (ignored): `attr` is letters, never `m`
/// (mandatory extension) nor a standard attribute appearing twice.
fn check_extension(ext: &str) -> Result<(), SaslError> {
    let (key, _value) = ext.split_once('=').ok_or(SaslError::MalformedRequest)?;
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(SaslError::MalformedRequest);
    }
    if matches!(key, "m" | "n" | "r" | "c" | "p" | "a") {
        return Err(SaslError::MalformedRequest);
    }
    Ok(())
}

/// `saslname`: non-empty, no NUL, `=2C` → `,`, `=3D` → `=`, any other `=` → error.
fn decode_saslname(s: &str) -> Result<String, SaslError> {
    if s.is_empty() {
        return Err(SaslError::MalformedRequest);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find(['=', '\0']) {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(t) = tail.strip_prefix("=2C") {
            out.push(',');
            rest = t;
        } else if let Some(t) = tail.strip_prefix("=3D") {
            out.push('=');
            rest = t;
        } else {
            return Err(SaslError::MalformedRequest);
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::MemLookup;
    use super::super::{client, Exchange, StoredCredentials};
    use super::*;

    /// A minimal SCRAM client for tests: builds client-final for any GS2
    /// header / binding data and a username sent as it is, so that each rule can be
    /// exercised (the proofs are `sasl::client`'s).
    struct TestClient {
        alg: HashAlg,
        password: String,
        gs2_header: String,
        cb_data: Vec<u8>,
        bare: String,
        server_signature: Vec<u8>,
    }

    impl TestClient {
        fn new(alg: HashAlg, user: &str, password: &str, gs2_header: &str, cb: &[u8]) -> Self {
            TestClient {
                alg,
                password: password.into(),
                gs2_header: gs2_header.into(),
                cb_data: cb.to_vec(),
                bare: format!("n={user},r=clientnonce123"),
                server_signature: Vec::new(),
            }
        }
        fn first(&self) -> Vec<u8> {
            format!("{}{}", self.gs2_header, self.bare).into_bytes()
        }
        fn final_msg(&mut self, server_first: &[u8]) -> Vec<u8> {
            let sf = std::str::from_utf8(server_first).expect("utf8");
            let mut nonce = "";
            let mut salt = Vec::new();
            let mut iters = 0u32;
            for a in sf.split(',') {
                if let Some(v) = a.strip_prefix("r=") {
                    nonce = v;
                } else if let Some(v) = a.strip_prefix("s=") {
                    salt = STANDARD.decode(v).expect("salt");
                } else if let Some(v) = a.strip_prefix("i=") {
                    iters = v.parse().expect("i");
                }
            }
            let mut cbind = self.gs2_header.as_bytes().to_vec();
            cbind.extend_from_slice(&self.cb_data);
            let without_proof = format!("c={},r={}", STANDARD.encode(&cbind), nonce);
            let am = format!("{},{},{}", self.bare, sf, without_proof);
            let alg = self.alg;
            let salted = alg.salted_password(self.password.as_bytes(), &salt, iters);
            let proof = client::client_proof(alg, &salted, &am).expect("hmac");
            self.server_signature = client::server_signature(alg, &salted, &am).expect("hmac");
            format!("{},p={}", without_proof, STANDARD.encode(proof)).into_bytes()
        }
        fn expected_v(&self) -> Vec<u8> {
            format!("v={}", STANDARD.encode(&self.server_signature)).into_bytes()
        }
    }

    fn alg_of(m: Mechanism) -> HashAlg {
        match m {
            Mechanism::ScramSha1 | Mechanism::ScramSha1Plus => HashAlg::Sha1,
            _ => HashAlg::Sha256,
        }
    }

    fn exporter() -> ChannelBindings {
        ChannelBindings { tls_exporter: Some(vec![0xE7; 32]), tls_server_end_point: None }
    }

    fn both() -> ChannelBindings {
        ChannelBindings { tls_exporter: Some(vec![0xE7; 32]), tls_server_end_point: Some(vec![0x5E; 32]) }
    }

    /// Full exchange with `TestClient`; returns the final step.
    fn run(mech: Mechanism, cb: ChannelBindings, l: &MemLookup, client: &mut TestClient) -> (Step, Step) {
        let mut ex = Exchange::start(mech, cb, true, false);
        let first = ex.step(Some(&client.first()), l);
        let Step::Challenge(sf) = &first else {
            return (first, Step::Failure(SaslError::Aborted));
        };
        let cf = client.final_msg(sf);
        let last = ex.step(Some(&cf), l);
        (first, last)
    }

    fn assert_success(step: &Step, client: &TestClient, user: &str) {
        match step {
            Step::Success { username, additional_data, .. } => {
                assert_eq!(username, user);
                assert_eq!(additional_data.as_deref(), Some(&client.expected_v()[..]));
            }
            other => panic!("expected success, got {other:?}"),
        }
    }

    #[test]
    fn rfc5802_sha1_vector() {
        let salt = STANDARD.decode("QSXCR+Q6sek8bf92").expect("b64");
        let creds = StoredCredentials::derive_with_salts("pencil", 4096, salt, vec![0; 16]).expect("derive");
        let mut l = MemLookup::default();
        l.users.insert("user".into(), creds);
        let mut ex = Exchange::start_with_nonce(Mechanism::ScramSha1, ChannelBindings::default(), "3rfcNHYJY1ZVvWVs7j");
        assert_eq!(
            ex.step(Some(b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"), &l),
            Step::Challenge(b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096".to_vec())
        );
        assert_eq!(
            ex.step(Some(b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="), &l),
            Step::Success {
                username: "user".into(),
                authzid: None,
                additional_data: Some(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=".to_vec()),
            }
        );
    }

    #[test]
    fn rfc7677_sha256_vector() {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("b64");
        let creds = StoredCredentials::derive_with_salts("pencil", 4096, vec![0; 16], salt).expect("derive");
        let mut l = MemLookup::default();
        l.users.insert("user".into(), creds);
        let mut ex = Exchange::start_with_nonce(
            Mechanism::ScramSha256,
            ChannelBindings::default(),
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        );
        assert_eq!(
            ex.step(Some(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"), &l),
            Step::Challenge(
                b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096".to_vec()
            )
        );
        assert_eq!(
            ex.step(
                Some(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
                &l
            ),
            Step::Success {
                username: "user".into(),
                authzid: None,
                additional_data: Some(
                    b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec()
                ),
            }
        );
    }

    #[test]
    fn good_exchange_both_hashes() {
        let l = MemLookup::with("user", "pencil");
        for m in [Mechanism::ScramSha1, Mechanism::ScramSha256] {
            let mut c = TestClient::new(alg_of(m), "user", "pencil", "n,,", b"");
            let (first, last) = run(m, ChannelBindings::default(), &l, &mut c);
            let Step::Challenge(sf) = first else { panic!("no challenge") };
            let sf = String::from_utf8(sf).expect("utf8");
            // Server nonce: client nonce + 24 base64 characters (18 bytes).
            let r = sf.split(',').next().expect("r").trim_start_matches("r=");
            assert!(r.starts_with("clientnonce123"));
            assert_eq!(r.len(), "clientnonce123".len() + 24);
            assert_success(&last, &c, "user");
        }
    }

    #[test]
    fn server_nonce_is_random() {
        let l = MemLookup::with("user", "pencil");
        let mut a = Exchange::start(Mechanism::ScramSha256, ChannelBindings::default(), true, false);
        let mut b = Exchange::start(Mechanism::ScramSha256, ChannelBindings::default(), true, false);
        let sa = a.step(Some(b"n,,n=user,r=abc"), &l);
        let sb = b.step(Some(b"n,,n=user,r=abc"), &l);
        assert!(matches!(sa, Step::Challenge(_)));
        assert_ne!(sa, sb);
    }

    #[test]
    fn wrong_password() {
        let l = MemLookup::with("user", "pencil");
        for m in [Mechanism::ScramSha1, Mechanism::ScramSha256] {
            let mut c = TestClient::new(alg_of(m), "user", "pencil2", "n,,", b"");
            let (first, last) = run(m, ChannelBindings::default(), &l, &mut c);
            assert!(matches!(first, Step::Challenge(_)));
            assert_eq!(last, Step::Failure(SaslError::NotAuthorized));
        }
    }

    #[test]
    fn unknown_user_looks_like_wrong_password() {
        let l = MemLookup::with("user", "pencil");
        for m in [Mechanism::ScramSha1, Mechanism::ScramSha256] {
            let mut c = TestClient::new(alg_of(m), "nobody", "pencil", "n,,", b"");
            let (first, last) = run(m, ChannelBindings::default(), &l, &mut c);
            let Step::Challenge(sf) = first else { panic!("unknown user revealed early: {first:?}") };
            assert_eq!(last, Step::Failure(SaslError::NotAuthorized));
            // Same shape as a real user's challenge: 16-byte salt, configured iterations.
            let sf = String::from_utf8(sf).expect("utf8");
            let parts: Vec<&str> = sf.split(',').collect();
            assert_eq!(parts.len(), 3);
            let salt = STANDARD.decode(parts[1].trim_start_matches("s=")).expect("salt");
            assert_eq!(salt.len(), SALT_LEN);
            assert_eq!(parts[2], "i=64");
            // Deterministic per user: a second attempt shows the same salt.
            let mut ex = Exchange::start(m, ChannelBindings::default(), true, false);
            let Step::Challenge(sf2) = ex.step(Some(b"n,,n=nobody,r=zzz"), &l) else { panic!("no challenge") };
            let sf2 = String::from_utf8(sf2).expect("utf8");
            assert_eq!(sf2.split(',').nth(1), Some(parts[1]));
            // A different unknown user gets a different salt.
            let mut ex = Exchange::start(m, ChannelBindings::default(), true, false);
            let Step::Challenge(sf3) = ex.step(Some(b"n,,n=nobody2,r=zzz"), &l) else { panic!("no challenge") };
            let sf3 = String::from_utf8(sf3).expect("utf8");
            assert_ne!(sf3.split(',').nth(1), Some(parts[1]));
        }
    }

    #[test]
    fn storage_fault_is_temporary() {
        let l = MemLookup { fail: true, ..MemLookup::default() };
        let mut ex = Exchange::start(Mechanism::ScramSha256, ChannelBindings::default(), true, false);
        assert_eq!(ex.step(Some(b"n,,n=user,r=abc"), &l), Step::Failure(SaslError::TemporaryAuthFailure));
    }

    #[test]
    fn empty_initial_response_gets_empty_challenge() {
        let l = MemLookup::with("user", "pencil");
        for input in [None, Some(&b""[..])] {
            let mut ex = Exchange::start(Mechanism::ScramSha256, ChannelBindings::default(), true, false);
            let mut c = TestClient::new(HashAlg::Sha256, "user", "pencil", "n,,", b"");
            assert_eq!(ex.step(input, &l), Step::Challenge(Vec::new()));
            let Step::Challenge(sf) = ex.step(Some(&c.first()), &l) else { panic!("no server-first") };
            let cf = c.final_msg(&sf);
            assert_success(&ex.step(Some(&cf), &l), &c, "user");
        }
        // Twice empty is malformed.
        let mut ex = Exchange::start(Mechanism::ScramSha1, ChannelBindings::default(), true, false);
        assert_eq!(ex.step(None, &l), Step::Challenge(Vec::new()));
        assert_eq!(ex.step(Some(b""), &l), Step::Failure(SaslError::MalformedRequest));
    }

    #[test]
    fn plus_tls_exporter_and_server_end_point() {
        let l = MemLookup::with("user", "pencil");
        for m in [Mechanism::ScramSha1Plus, Mechanism::ScramSha256Plus] {
            let mut c = TestClient::new(alg_of(m), "user", "pencil", "p=tls-exporter,,", &[0xE7; 32]);
            let (_, last) = run(m, both(), &l, &mut c);
            assert_success(&last, &c, "user");

            let mut c = TestClient::new(alg_of(m), "user", "pencil", "p=tls-server-end-point,,", &[0x5E; 32]);
            let (_, last) = run(m, both(), &l, &mut c);
            assert_success(&last, &c, "user");
        }
    }

    #[test]
    fn plus_wrong_cb_data_fails() {
        let l = MemLookup::with("user", "pencil");
        for m in [Mechanism::ScramSha1Plus, Mechanism::ScramSha256Plus] {
            // Binding data of another channel (MITM).
            let mut c = TestClient::new(alg_of(m), "user", "pencil", "p=tls-exporter,,", &[0x00; 32]);
            let (first, last) = run(m, both(), &l, &mut c);
            assert!(matches!(first, Step::Challenge(_)));
            assert_eq!(last, Step::Failure(SaslError::NotAuthorized));
            // The other type's data.
            let mut c = TestClient::new(alg_of(m), "user", "pencil", "p=tls-server-end-point,,", &[0xE7; 32]);
            let (_, last) = run(m, both(), &l, &mut c);
            assert_eq!(last, Step::Failure(SaslError::NotAuthorized));
            // Header says p= but c= carries only the header.
            let mut c = TestClient::new(alg_of(m), "user", "pencil", "p=tls-exporter,,", b"");
            let (_, last) = run(m, both(), &l, &mut c);
            assert_eq!(last, Step::Failure(SaslError::NotAuthorized));
        }
    }

    #[test]
    fn c_must_match_gs2_header_without_cb() {
        let l = MemLookup::with("user", "pencil");
        // Client sends "n,," first but claims "y,," in c=.
        let mut ex = Exchange::start(Mechanism::ScramSha256, ChannelBindings::default(), true, false);
        let mut c = TestClient::new(HashAlg::Sha256, "user", "pencil", "y,,", b"");
        let Step::Challenge(sf) = ex.step(Some(b"n,,n=user,r=clientnonce123"), &l) else { panic!("no challenge") };
        let cf = c.final_msg(&sf);
        assert_eq!(ex.step(Some(&cf), &l), Step::Failure(SaslError::NotAuthorized));
    }

    #[test]
    fn plus_with_n_or_y_is_not_authorized() {
        let l = MemLookup::with("user", "pencil");
        for m in [Mechanism::ScramSha1Plus, Mechanism::ScramSha256Plus] {
            for h in ["n,,", "y,,"] {
                let mut ex = Exchange::start(m, exporter(), true, false);
                let msg = format!("{h}n=user,r=abc");
                assert_eq!(ex.step(Some(msg.as_bytes()), &l), Step::Failure(SaslError::NotAuthorized), "{m:?} {h}");
            }
        }
    }

    #[test]
    fn y_flag_downgrade_rules() {
        let l = MemLookup::with("user", "pencil");
        // With binding available, `y` means -PLUS was stripped: refuse.
        let mut ex = Exchange::start(Mechanism::ScramSha256, exporter(), true, false);
        assert_eq!(ex.step(Some(b"y,,n=user,r=abc"), &l), Step::Failure(SaslError::NotAuthorized));
        // Without binding, `y` is fine.
        let mut c = TestClient::new(HashAlg::Sha256, "user", "pencil", "y,,", b"");
        let (_, last) = run(Mechanism::ScramSha256, ChannelBindings::default(), &l, &mut c);
        assert_success(&last, &c, "user");
        // `n` with binding available on a non-PLUS mechanism is the client's choice.
        let mut c = TestClient::new(HashAlg::Sha1, "user", "pencil", "n,,", b"");
        let (_, last) = run(Mechanism::ScramSha1, exporter(), &l, &mut c);
        assert_success(&last, &c, "user");
    }

    #[test]
    fn p_flag_rules() {
        let l = MemLookup::with("user", "pencil");
        // p= on a non-PLUS mechanism.
        let mut ex = Exchange::start(Mechanism::ScramSha256, exporter(), true, false);
        assert_eq!(ex.step(Some(b"p=tls-exporter,,n=user,r=abc"), &l), Step::Failure(SaslError::NotAuthorized));
        // Type we do not support at all, or not on this connection.
        for h in ["p=tls-unique,,", "p=tls-server-end-point,,"] {
            let mut ex = Exchange::start(Mechanism::ScramSha256Plus, exporter(), true, false);
            let msg = format!("{h}n=user,r=abc");
            assert_eq!(ex.step(Some(msg.as_bytes()), &l), Step::Failure(SaslError::NotAuthorized), "{h}");
        }
        // Garbage channel-binding names / flags.
        for h in ["p=,,", "p=tls_exporter,,", "p=tls exporter,,", "x,,", "N,,", "p,,", "yy,,"] {
            let mut ex = Exchange::start(Mechanism::ScramSha256Plus, exporter(), true, false);
            let msg = format!("{h}n=user,r=abc");
            assert_eq!(ex.step(Some(msg.as_bytes()), &l), Step::Failure(SaslError::MalformedRequest), "{h}");
        }
    }

    #[test]
    fn authzid_and_escapes() {
        let mut l = MemLookup::default();
        l.add("us,er=x", "pencil");
        let mut c = TestClient::new(HashAlg::Sha256, "us=2Cer=3Dx", "pencil", "n,a=us=2Cer=3Dx@example.com,", b"");
        let (_, last) = run(Mechanism::ScramSha256, ChannelBindings::default(), &l, &mut c);
        match last {
            Step::Success { username, authzid, .. } => {
                assert_eq!(username, "us,er=x");
                assert_eq!(authzid.as_deref(), Some("us,er=x@example.com"));
            }
            other => panic!("{other:?}"),
        }
        // The authzid is part of the GS2 header, hence of c= too.
        let mut c = TestClient::new(HashAlg::Sha256, "us=2Cer=3Dx", "pencil", "n,a=admin@example.com,", b"");
        let (_, last) = run(Mechanism::ScramSha256, ChannelBindings::default(), &l, &mut c);
        assert!(matches!(last, Step::Success { authzid: Some(ref a), .. } if a == "admin@example.com"));
    }

    #[test]
    fn decode_saslname_cases() {
        assert_eq!(decode_saslname("a=2Cb=3Dc").as_deref(), Ok("a,b=c"));
        assert_eq!(decode_saslname("=3D=3D").as_deref(), Ok("=="));
        for bad in ["", "a=", "a=2", "a=2c", "a=41", "a=3d", "a\0b", "="] {
            assert_eq!(decode_saslname(bad), Err(SaslError::MalformedRequest), "{bad:?}");
        }
    }

    #[test]
    fn malformed_client_first() {
        let l = MemLookup::with("user", "pencil");
        let cases: &[&[u8]] = &[
            b"n,,",
            b"n",
            b"n,",
            b"n,,n=user",
            b"n,,n=user,",
            b"n,,n=user,r=",
            b"n,,r=abc,n=user",
            b"n,,m=ext,n=user,r=abc",
            b"n,,n=user,r=abc,m=ext",
            b"n,,n=,r=abc",
            b"n,,n=us=41er,r=abc",
            b"n,,n=us\0er,r=abc",
            b"n,,n=user,r=a b",
            b"n,,n=user,r=ab\x7f",
            b"n,,n=user,r=\xc3\xa9",
            b"n,,n=user,r=abc,1=x",
            b"n,,n=user,r=abc,novalue",
            b"n,b=x,n=user,r=abc",
            b"n,a=,n=user,r=abc",
            b"n,a=x=2,n=user,r=abc",
            b"n,,n=\xff,r=abc",
            b"\xff",
            b"garbage",
        ];
        for &case in cases {
            let mut ex = Exchange::start(Mechanism::ScramSha256, ChannelBindings::default(), true, false);
            assert_eq!(
                ex.step(Some(case), &l),
                Step::Failure(SaslError::MalformedRequest),
                "{:?}",
                String::from_utf8_lossy(case)
            );
        }
        // Unknown optional extensions are ignored.
        let mut ex = Exchange::start(Mechanism::ScramSha256, ChannelBindings::default(), true, false);
        assert!(matches!(ex.step(Some(b"n,,n=user,r=abc,x=1,tokenauth=true"), &l), Step::Challenge(_)));
    }

    #[test]
    fn malformed_client_final() {
        let l = MemLookup::with("user", "pencil");
        let mut good = TestClient::new(HashAlg::Sha256, "user", "pencil", "n,,", b"");
        let start = || {
            let mut ex = Exchange::start(Mechanism::ScramSha256, ChannelBindings::default(), true, false);
            let Step::Challenge(sf) = ex.step(Some(b"n,,n=user,r=clientnonce123"), &l) else { panic!("no challenge") };
            (ex, sf)
        };
        let (_, sf) = start();
        let valid = String::from_utf8(good.final_msg(&sf)).expect("utf8");
        let nonce = String::from_utf8(sf).expect("utf8");
        let nonce = nonce.split(',').next().expect("r").to_owned();
        let cases = [
            String::new(),
            "c=biws".to_owned(),
            format!("c=biws,{nonce}"),
            format!("{nonce},c=biws,p=AAAA"),
            format!("c=biws,{nonce},p=!!!"),
            format!("c=b!ws,{nonce},p=AAAA"),
            format!("c=biws,{nonce},x,p=AAAA"),
            format!("c=biws,{nonce},p=AAAA,x=1"),
            "p=AAAA".to_owned(),
            "\u{0}".to_owned(),
        ];
        for case in cases {
            let (mut ex, _) = start();
            assert_eq!(ex.step(Some(case.as_bytes()), &l), Step::Failure(SaslError::MalformedRequest), "{case:?}");
        }
        let (mut ex, _) = start();
        assert_eq!(ex.step(Some(b"c=biws,\xff"), &l), Step::Failure(SaslError::MalformedRequest));
        let (mut ex, _) = start();
        assert_eq!(ex.step(None, &l), Step::Failure(SaslError::MalformedRequest));
        // Valid structure but tampered values fail as not-authorized.
        for tampered in [
            valid.replacen("r=clientnonce123", "r=clientnonce124", 1),
            valid.replacen("c=biws", "c=eSws", 1),
            format!("{},p=AAAA", valid.rsplit_once(',').expect("p").0),
        ] {
            let (mut ex, _) = start();
            assert_eq!(ex.step(Some(tampered.as_bytes()), &l), Step::Failure(SaslError::NotAuthorized), "{tampered}");
        }
    }

    #[test]
    fn input_after_end_is_malformed() {
        let l = MemLookup::with("user", "pencil");
        let mut c = TestClient::new(HashAlg::Sha1, "user", "pencil", "n,,", b"");
        let mut ex = Exchange::start(Mechanism::ScramSha1, ChannelBindings::default(), true, false);
        let Step::Challenge(sf) = ex.step(Some(&c.first()), &l) else { panic!() };
        let cf = c.final_msg(&sf);
        assert_success(&ex.step(Some(&cf), &l), &c, "user");
        assert_eq!(ex.step(Some(&cf), &l), Step::Failure(SaslError::MalformedRequest));
        assert_eq!(ex.step(None, &l), Step::Failure(SaslError::MalformedRequest));
        // After a failure too.
        let mut ex = Exchange::start(Mechanism::ScramSha1, ChannelBindings::default(), true, false);
        assert_eq!(ex.step(Some(b"bad"), &l), Step::Failure(SaslError::MalformedRequest));
        assert_eq!(ex.step(Some(&c.first()), &l), Step::Failure(SaslError::MalformedRequest));
    }

    #[test]
    fn username_saslprep() {
        let l = MemLookup::with("user", "pencil");
        // SOFT HYPHEN is mapped to nothing.
        let mut c = TestClient::new(HashAlg::Sha256, "us\u{00AD}er", "pencil", "n,,", b"");
        let (_, last) = run(Mechanism::ScramSha256, ChannelBindings::default(), &l, &mut c);
        assert_success(&last, &c, "user");
        // A prohibited character cannot name an account.
        let mut ex = Exchange::start(Mechanism::ScramSha256, ChannelBindings::default(), true, false);
        assert_eq!(ex.step(Some("n,,n=us\u{0007}er,r=abc".as_bytes()), &l), Step::Failure(SaslError::NotAuthorized));
    }

    /// Interop with the xmpp-rs `sasl` crate's client side.
    mod interop {
        use super::*;
        use sasl::client::mechanisms::Scram;
        use sasl::client::Mechanism as _;
        use sasl::common::scram::{ScramProvider, Sha1 as ClientSha1, Sha256 as ClientSha256};
        use sasl::common::ChannelBinding;

        fn drive<S: ScramProvider>(
            mech: Mechanism,
            cb: ChannelBindings,
            client_cb: ChannelBinding,
            password: &str,
        ) -> Result<(), String> {
            let l = MemLookup::with("user", "pencil");
            let mut client = Scram::<S>::new("user", password, client_cb).map_err(|e| format!("{e:?}"))?;
            assert_eq!(sasl::client::Mechanism::name(&client), mech.name());
            let mut ex = Exchange::start(mech, cb, true, false);
            let first = client.initial();
            let Step::Challenge(sf) = ex.step(Some(&first), &l) else {
                return Err("no server-first".into());
            };
            let cf = client.response(&sf).map_err(|e| format!("{e:?}"))?;
            match ex.step(Some(&cf), &l) {
                Step::Success { username, additional_data: Some(v), .. } => {
                    assert_eq!(username, "user");
                    client.success(&v).map_err(|e| format!("{e:?}"))
                }
                other => Err(format!("{other:?}")),
            }
        }

        #[test]
        fn sha1_and_sha256_without_cb() {
            drive::<ClientSha1>(Mechanism::ScramSha1, ChannelBindings::default(), ChannelBinding::None, "pencil")
                .expect("sha1");
            drive::<ClientSha256>(Mechanism::ScramSha256, ChannelBindings::default(), ChannelBinding::None, "pencil")
                .expect("sha256");
            // `y,,` when the server has no binding.
            drive::<ClientSha256>(
                Mechanism::ScramSha256,
                ChannelBindings::default(),
                ChannelBinding::Unsupported,
                "pencil",
            )
            .expect("sha256 y");
        }

        #[test]
        fn wrong_password() {
            assert_eq!(
                drive::<ClientSha256>(
                    Mechanism::ScramSha256,
                    ChannelBindings::default(),
                    ChannelBinding::None,
                    "pencil2",
                ),
                Err(format!("{:?}", Step::Failure(SaslError::NotAuthorized)))
            );
        }

        #[test]
        fn tls_exporter_plus() {
            drive::<ClientSha256>(
                Mechanism::ScramSha256Plus,
                exporter(),
                ChannelBinding::TlsExporter(vec![0xE7; 32]),
                "pencil",
            )
            .expect("sha256-plus");
            drive::<ClientSha1>(
                Mechanism::ScramSha1Plus,
                exporter(),
                ChannelBinding::TlsExporter(vec![0xE7; 32]),
                "pencil",
            )
            .expect("sha1-plus");
            assert!(drive::<ClientSha256>(
                Mechanism::ScramSha256Plus,
                exporter(),
                ChannelBinding::TlsExporter(vec![0x00; 32]),
                "pencil",
            )
            .is_err());
        }
    }
}
