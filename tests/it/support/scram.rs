//! A small SCRAM client (RFC 5802) with a free GS2 header and channel-binding data.
//!
//! The `sasl` crate's client covers `n,,`, `y,,` and `p=tls-exporter`; it has no
//! `tls-server-end-point` (RFC 5929), which this one adds. It implements the crate's
//! [`Mechanism`] trait so both go through the same XML exchange.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sasl::client::{Mechanism, MechanismError};
use sasl::common::Credentials;
use sha1::Sha1;
use sha2::{Digest, Sha256};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hash {
    Sha1,
    Sha256,
}

pub struct ScramClient {
    hash: Hash,
    name: String,
    user: String,
    password: String,
    gs2_header: String,
    cb_data: Vec<u8>,
    nonce: String,
    first_bare: String,
    server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    /// `gs2_header` is sent as is (e.g. `p=tls-server-end-point,,`); `cb_data` is appended
    /// to it in the client-final `c=` attribute.
    pub fn new(hash: Hash, plus: bool, user: &str, password: &str, gs2_header: &str, cb_data: Vec<u8>) -> Self {
        let base = match hash {
            Hash::Sha1 => "SCRAM-SHA-1",
            Hash::Sha256 => "SCRAM-SHA-256",
        };
        let name = if plus { format!("{base}-PLUS") } else { base.to_owned() };
        let nonce: [u8; 18] = rand::random();
        ScramClient {
            hash,
            name,
            user: user.to_owned(),
            password: password.to_owned(),
            gs2_header: gs2_header.to_owned(),
            cb_data,
            nonce: STANDARD.encode(nonce),
            first_bare: String::new(),
            server_signature: None,
        }
    }

    fn hmac(&self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self.hash {
            Hash::Sha1 => {
                let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("any key length");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            Hash::Sha256 => {
                let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    fn digest(&self, data: &[u8]) -> Vec<u8> {
        match self.hash {
            Hash::Sha1 => Sha1::digest(data).to_vec(),
            Hash::Sha256 => Sha256::digest(data).to_vec(),
        }
    }

    fn salted_password(&self, salt: &[u8], iterations: u32) -> Vec<u8> {
        match self.hash {
            Hash::Sha1 => {
                let mut out = [0u8; 20];
                pbkdf2::pbkdf2_hmac::<Sha1>(self.password.as_bytes(), salt, iterations, &mut out);
                out.to_vec()
            }
            Hash::Sha256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(self.password.as_bytes(), salt, iterations, &mut out);
                out.to_vec()
            }
        }
    }
}

impl Mechanism for ScramClient {
    fn name(&self) -> &str {
        &self.name
    }

    fn from_credentials(_: Credentials) -> Result<Self, MechanismError> {
        Err(MechanismError::InvalidState)
    }

    fn initial(&mut self) -> Vec<u8> {
        self.first_bare = format!("n={},r={}", self.user, self.nonce);
        format!("{}{}", self.gs2_header, self.first_bare).into_bytes()
    }

    fn response(&mut self, challenge: &[u8]) -> Result<Vec<u8>, MechanismError> {
        let server_first = std::str::from_utf8(challenge).map_err(|_| MechanismError::CannotDecodeChallenge)?;
        let field =
            |key: &str| server_first.split(',').find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')));
        let nonce = field("r").ok_or(MechanismError::NoServerNonce)?;
        if !nonce.starts_with(&self.nonce) {
            return Err(MechanismError::NoServerNonce);
        }
        let salt = field("s").and_then(|s| STANDARD.decode(s).ok()).ok_or(MechanismError::NoServerSalt)?;
        let iterations: u32 = field("i").and_then(|i| i.parse().ok()).ok_or(MechanismError::NoServerIterations)?;
        let mut cbind = self.gs2_header.as_bytes().to_vec();
        cbind.extend_from_slice(&self.cb_data);
        let final_bare = format!("c={},r={nonce}", STANDARD.encode(&cbind));
        let auth_message = format!("{},{server_first},{final_bare}", self.first_bare);
        let salted = self.salted_password(&salt, iterations);
        let client_key = self.hmac(&salted, b"Client Key");
        let stored_key = self.digest(&client_key);
        let signature = self.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        let server_key = self.hmac(&salted, b"Server Key");
        self.server_signature = Some(self.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{final_bare},p={}", STANDARD.encode(proof)).into_bytes())
    }

    fn success(&mut self, data: &[u8]) -> Result<(), MechanismError> {
        let text = std::str::from_utf8(data).map_err(|_| MechanismError::CannotDecodeSuccessResponse)?;
        let v = text
            .strip_prefix("v=")
            .and_then(|v| STANDARD.decode(v).ok())
            .ok_or(MechanismError::NoSignatureInSuccessResponse)?;
        match &self.server_signature {
            Some(expected) if *expected == v => Ok(()),
            _ => Err(MechanismError::InvalidSignatureInSuccessResponse),
        }
    }
}
