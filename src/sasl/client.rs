//! The client side of SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677), with and without
//! channel binding (`tls-exporter`, RFC 9266; `tls-server-end-point`, RFC 5929), sans-IO:
//! the caller carries the messages (base64 in `<auth/>`, `<response/>`, `<success/>`).
//!
//! The server never runs it. It serves the integration tests, the load generator
//! (`stanzad-bench`) and the fuzz harness, which confirms every success of the server
//! side with [`client_proof`] and [`server_signature`]. It shares only the hash primitives
//! ([`HashAlg`]) with the server side; its tests replay the RFC examples and log in to the
//! server side.
//!
//! ```text
//! let mut client = ScramClient::new(HashAlg::Sha256, "alice", "pw")?;
//! send(client.mechanism().name(), client.client_first());
//! let client_final = client.client_final(&server_first)?;
//! send(client_final);
//! client.verify_server_final(&success_data)?;
//! ```

use base64::{engine::general_purpose::STANDARD, Engine};

pub use super::credentials::HashAlg;
use super::{CbType, Mechanism};

/// Largest iteration count the client agrees to compute: each iteration is an HMAC, and
/// the count comes from the server.
pub const MAX_ITERATIONS: u32 = 1_000_000;

/// Random bytes in a client nonce (base64: 24 characters).
const NONCE_BYTES: usize = 18;

/// Why a client step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramClientError {
    /// The username or password is refused by SASLprep (RFC 4013).
    #[error("the {0} cannot be prepared with SASLprep")]
    Saslprep(&'static str),
    /// The server-first message is malformed or asks for what the client does not do.
    #[error("server-first: {0}")]
    ServerFirst(&'static str),
    /// The server's nonce does not extend the client's.
    #[error("the server nonce does not extend the client's")]
    Nonce,
    /// The server-final message is malformed or came before server-first.
    #[error("server-final: {0}")]
    ServerFinal(&'static str),
    /// The server-final message is an error (`e=`).
    #[error("server-final error {0}")]
    ServerError(String),
    /// The server-final signature is wrong: the server does not know the keys.
    #[error("wrong server signature")]
    ServerSignature,
    /// HMAC refused a key (it takes keys of any length: not expected).
    #[error("HMAC failed")]
    Hmac,
}

/// What the client says about channel binding in its GS2 header (RFC 5802 §6, §7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Binding {
    /// `n`: the client does not bind.
    None,
    /// `y`: the client could bind but thinks the server cannot (no `-PLUS` was offered).
    Unsupported,
    /// `p=<type>`: a `-PLUS` mechanism, bound to this channel data.
    Required(CbType, Vec<u8>),
}

/// The fields of a server-first message (RFC 5802 §5.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerFirst {
    /// The client nonce followed by the server's.
    pub nonce: String,
    pub salt: Vec<u8>,
    pub iterations: u32,
}

impl ServerFirst {
    /// Parses `r=`, `s=` and `i=` (in any order; unknown optional attributes are
    /// ignored). A mandatory extension (`m=`) and iteration counts of 0 or over
    /// [`MAX_ITERATIONS`] are refused.
    pub fn parse(text: &str) -> Result<Self, ScramClientError> {
        let bad = ScramClientError::ServerFirst;
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for attr in text.split(',') {
            match attr.split_at_checked(2) {
                Some(("m=", _)) => return Err(bad("unsupported mandatory extension")),
                Some(("r=", v)) => nonce = Some(v.to_owned()),
                Some(("s=", v)) => salt = Some(STANDARD.decode(v).map_err(|_| bad("salt is not base64"))?),
                Some(("i=", v)) => iterations = Some(v.parse::<u32>().map_err(|_| bad("bad iteration count"))?),
                _ => {}
            }
        }
        let iterations = iterations.ok_or(bad("no iteration count"))?;
        if iterations == 0 || iterations > MAX_ITERATIONS {
            return Err(bad("iteration count out of range"));
        }
        Ok(ServerFirst { nonce: nonce.ok_or(bad("no nonce"))?, salt: salt.ok_or(bad("no salt"))?, iterations })
    }
}

/// ClientProof := ClientKey XOR HMAC(H(ClientKey), AuthMessage), with
/// ClientKey := HMAC(SaltedPassword, "Client Key") (RFC 5802 §3).
pub fn client_proof(hash: HashAlg, salted_password: &[u8], auth_message: &str) -> Result<Vec<u8>, ScramClientError> {
    let client_key = hash.hmac(salted_password, b"Client Key").map_err(|_| ScramClientError::Hmac)?;
    let stored_key = hash.hash(&client_key);
    let signature = hash.hmac(&stored_key, auth_message.as_bytes()).map_err(|_| ScramClientError::Hmac)?;
    Ok(client_key.iter().zip(&signature).map(|(k, s)| k ^ s).collect())
}

/// ServerSignature := HMAC(ServerKey, AuthMessage), with
/// ServerKey := HMAC(SaltedPassword, "Server Key") (RFC 5802 §3).
pub fn server_signature(
    hash: HashAlg,
    salted_password: &[u8],
    auth_message: &str,
) -> Result<Vec<u8>, ScramClientError> {
    let server_key = hash.hmac(salted_password, b"Server Key").map_err(|_| ScramClientError::Hmac)?;
    hash.hmac(&server_key, auth_message.as_bytes()).map_err(|_| ScramClientError::Hmac)
}

/// `saslname` (RFC 5802 §5.1): `=` and `,` escaped.
fn saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// One SCRAM exchange, client side.
pub struct ScramClient {
    hash: HashAlg,
    binding: Binding,
    /// The escaped authzid of the GS2 header, if any.
    authzid: Option<String>,
    /// SASLprepped.
    password: String,
    nonce: String,
    client_first_bare: String,
    /// The ServerSignature expected in server-final, once client-final was built.
    server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    /// An exchange for `username` (SASLprepped and escaped) with a random nonce, without
    /// channel binding or authzid (GS2 header `n,,`).
    pub fn new(hash: HashAlg, username: &str, password: &str) -> Result<Self, ScramClientError> {
        Self::with_nonce(hash, username, password, &STANDARD.encode(rand::random::<[u8; NONCE_BYTES]>()))
    }

    /// As [`new`](Self::new) with a given nonce (printable ASCII without `,`), so that an
    /// exchange can be replayed (the RFC examples, tests).
    pub fn with_nonce(hash: HashAlg, username: &str, password: &str, nonce: &str) -> Result<Self, ScramClientError> {
        let user = stringprep::saslprep(username).map_err(|_| ScramClientError::Saslprep("username"))?;
        let password = stringprep::saslprep(password).map_err(|_| ScramClientError::Saslprep("password"))?;
        Ok(ScramClient {
            hash,
            binding: Binding::None,
            authzid: None,
            password: password.into_owned(),
            nonce: nonce.to_owned(),
            client_first_bare: format!("n={},r={nonce}", saslname(&user)),
            server_signature: None,
        })
    }

    /// Sets what the GS2 header says about channel binding (`n` by default).
    pub fn with_binding(mut self, binding: Binding) -> Self {
        self.binding = binding;
        self
    }

    /// Asks to act as `authzid` (`a=` in the GS2 header, escaped).
    pub fn with_authzid(mut self, authzid: &str) -> Self {
        self.authzid = Some(saslname(authzid));
        self
    }

    /// The mechanism this exchange is (`-PLUS` when bound).
    pub fn mechanism(&self) -> Mechanism {
        match (self.hash, matches!(self.binding, Binding::Required(..))) {
            (HashAlg::Sha1, false) => Mechanism::ScramSha1,
            (HashAlg::Sha1, true) => Mechanism::ScramSha1Plus,
            (HashAlg::Sha256, false) => Mechanism::ScramSha256,
            (HashAlg::Sha256, true) => Mechanism::ScramSha256Plus,
        }
    }

    /// `gs2-header`: the binding flag, the authzid, and the comma before the bare message.
    fn gs2_header(&self) -> String {
        let flag = match &self.binding {
            Binding::None => "n",
            Binding::Unsupported => "y",
            Binding::Required(cb, _) => return format!("p={},{},", cb.name(), self.authzid_field()),
        };
        format!("{flag},{},", self.authzid_field())
    }

    fn authzid_field(&self) -> String {
        self.authzid.as_deref().map(|a| format!("a={a}")).unwrap_or_default()
    }

    /// The client-first message (the initial response of `<auth/>`).
    pub fn client_first(&self) -> String {
        format!("{}{}", self.gs2_header(), self.client_first_bare)
    }

    /// Answers the server-first message with the client-final message.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<String, ScramClientError> {
        self.client_final_with(server_first, |hash, password, salt, iterations| {
            hash.salted_password(password.as_bytes(), salt, iterations)
        })
    }

    /// As [`client_final`](Self::client_final), with the salted password (the PBKDF2,
    /// the expensive step) from `salted_password(hash, SASLprepped password, salt,
    /// iterations)`, which may remember it. Called only for a well-formed server-first
    /// that extends the client's nonce.
    pub fn client_final_with<S: AsRef<[u8]>>(
        &mut self,
        server_first: &[u8],
        salted_password: impl FnOnce(HashAlg, &str, &[u8], u32) -> S,
    ) -> Result<String, ScramClientError> {
        let text = std::str::from_utf8(server_first).map_err(|_| ScramClientError::ServerFirst("not UTF-8"))?;
        let first = ServerFirst::parse(text)?;
        if !first.nonce.starts_with(&self.nonce) || first.nonce.len() <= self.nonce.len() {
            return Err(ScramClientError::Nonce);
        }
        let salted = salted_password(self.hash, &self.password, &first.salt, first.iterations);
        let mut cbind_input = self.gs2_header().into_bytes();
        if let Binding::Required(_, data) = &self.binding {
            cbind_input.extend_from_slice(data);
        }
        let without_proof = format!("c={},r={}", STANDARD.encode(&cbind_input), first.nonce);
        let auth_message = format!("{},{text},{without_proof}", self.client_first_bare);
        let proof = client_proof(self.hash, salted.as_ref(), &auth_message)?;
        self.server_signature = Some(server_signature(self.hash, salted.as_ref(), &auth_message)?);
        Ok(format!("{without_proof},p={}", STANDARD.encode(proof)))
    }

    /// Checks the server-final message: `v=` must prove that the server knows the keys.
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), ScramClientError> {
        let bad = ScramClientError::ServerFinal;
        let text = std::str::from_utf8(server_final).map_err(|_| bad("not UTF-8"))?;
        if let Some(error) = text.strip_prefix("e=") {
            return Err(ScramClientError::ServerError(error.to_owned()));
        }
        let value = text.split(',').find_map(|a| a.strip_prefix("v=")).ok_or(bad("no v="))?;
        let got = STANDARD.decode(value).map_err(|_| bad("v= is not base64"))?;
        match &self.server_signature {
            Some(expected) if *expected == got => Ok(()),
            Some(_) => Err(ScramClientError::ServerSignature),
            None => Err(bad("before server-first")),
        }
    }
}

#[cfg(test)]
mod tests;
