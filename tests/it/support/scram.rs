//! The `sasl` crate's client [`Mechanism`] over the library's SCRAM client
//! (`stanzad::sasl::client`), which adds what the crate's client lacks:
//! `tls-server-end-point` (RFC 5929) and an authzid. Both go through the same XML
//! exchange.

use sasl::client::{Mechanism, MechanismError};
use sasl::common::Credentials;
pub use stanzad::sasl::client::{Binding, HashAlg, ScramClient, ScramClientError};
pub use stanzad::sasl::CbType;

pub struct ScramMechanism {
    client: ScramClient,
    name: &'static str,
}

impl ScramMechanism {
    pub fn new(client: ScramClient) -> Self {
        ScramMechanism { name: client.mechanism().name(), client }
    }
}

/// A SCRAM client for `user` with this binding (no authzid).
pub fn scram(hash: HashAlg, user: &str, password: &str, binding: Binding) -> ScramMechanism {
    ScramMechanism::new(ScramClient::new(hash, user, password).expect("SASLprep").with_binding(binding))
}

impl Mechanism for ScramMechanism {
    fn name(&self) -> &str {
        self.name
    }

    fn from_credentials(_: Credentials) -> Result<Self, MechanismError> {
        Err(MechanismError::InvalidState)
    }

    fn initial(&mut self) -> Vec<u8> {
        self.client.client_first().into_bytes()
    }

    fn response(&mut self, challenge: &[u8]) -> Result<Vec<u8>, MechanismError> {
        match self.client.client_final(challenge) {
            Ok(message) => Ok(message.into_bytes()),
            Err(ScramClientError::Nonce) => Err(MechanismError::NoServerNonce),
            Err(_) => Err(MechanismError::CannotDecodeChallenge),
        }
    }

    fn success(&mut self, data: &[u8]) -> Result<(), MechanismError> {
        match self.client.verify_server_final(data) {
            Ok(()) => Ok(()),
            Err(ScramClientError::ServerSignature) => Err(MechanismError::InvalidSignatureInSuccessResponse),
            Err(_) => Err(MechanismError::NoSignatureInSuccessResponse),
        }
    }
}
