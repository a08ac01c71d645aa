//! Sans-IO SASL server engine: SCRAM-SHA-1/-256 (RFC 5802, RFC 7677) with and
//! without channel binding (RFC 5056, RFC 5929 `tls-server-end-point`,
//! RFC 9266 `tls-exporter`), and PLAIN (RFC 4616).
//!
//! The caller owns the XML and base64 layers: it decodes `<auth/>`/`<response/>`
//! payloads with [`decode_b64`], feeds the bytes to [`Exchange::step`], and turns
//! the returned [`Step`] into `<challenge/>`, `<success/>` or `<failure/>`.

pub mod client;
pub mod credentials;
mod plain;
mod scram;

use base64::{engine::general_purpose::STANDARD, Engine};

pub use credentials::{HashAlg, ScramKeys, StoredCredentials, DEFAULT_ITERATIONS};

/// A SASL mechanism this engine implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    ScramSha256Plus,
    ScramSha1Plus,
    ScramSha256,
    ScramSha1,
    Plain,
}

impl Mechanism {
    /// All mechanisms, in order of preference.
    pub const ALL: [Mechanism; 5] = [
        Mechanism::ScramSha256Plus,
        Mechanism::ScramSha1Plus,
        Mechanism::ScramSha256,
        Mechanism::ScramSha1,
        Mechanism::Plain,
    ];

    /// The IANA-registered mechanism name.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
            Mechanism::ScramSha1Plus => "SCRAM-SHA-1-PLUS",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::Plain => "PLAIN",
        }
    }

    /// Exact (case-sensitive) match on the mechanism name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == s)
    }

    /// Whether this is a channel-binding (`-PLUS`) mechanism.
    pub fn is_plus(self) -> bool {
        matches!(self, Mechanism::ScramSha256Plus | Mechanism::ScramSha1Plus)
    }
}

/// A channel-binding type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CbType {
    /// RFC 9266 (TLS 1.3).
    TlsExporter,
    /// RFC 5929 §4.
    TlsServerEndPoint,
}

impl CbType {
    /// The registered name as used in the GS2 header (`p=<name>`).
    pub fn name(self) -> &'static str {
        match self {
            CbType::TlsExporter => "tls-exporter",
            CbType::TlsServerEndPoint => "tls-server-end-point",
        }
    }

    /// Exact match on the registered name.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "tls-exporter" => Some(CbType::TlsExporter),
            "tls-server-end-point" => Some(CbType::TlsServerEndPoint),
            _ => None,
        }
    }
}

/// What the connection knows about its TLS channel, given at the start of an exchange.
/// An empty `Vec` counts as absent.
#[derive(Clone, Debug, Default)]
pub struct ChannelBindings {
    pub tls_exporter: Option<Vec<u8>>,
    pub tls_server_end_point: Option<Vec<u8>>,
}

impl ChannelBindings {
    /// The types with data available, `tls-exporter` first (for XEP-0440).
    pub fn offered(&self) -> Vec<CbType> {
        [CbType::TlsExporter, CbType::TlsServerEndPoint].into_iter().filter(|t| self.data(*t).is_some()).collect()
    }

    /// Whether any channel binding is available.
    pub fn any(&self) -> bool {
        !self.offered().is_empty()
    }

    /// The binding data for `t`, if present and non-empty.
    pub fn data(&self, t: CbType) -> Option<&[u8]> {
        let d = match t {
            CbType::TlsExporter => self.tls_exporter.as_deref(),
            CbType::TlsServerEndPoint => self.tls_server_end_point.as_deref(),
        };
        d.filter(|d| !d.is_empty())
    }
}

/// Failure conditions of RFC 6120 §6.5 the engine can produce.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error("not authorized")]
    NotAuthorized,
    #[error("invalid mechanism")]
    InvalidMechanism,
    #[error("malformed request")]
    MalformedRequest,
    #[error("incorrect encoding")]
    IncorrectEncoding,
    #[error("aborted")]
    Aborted,
    #[error("temporary authentication failure")]
    TemporaryAuthFailure,
    #[error("encryption required")]
    EncryptionRequired,
    #[error("invalid authzid")]
    InvalidAuthzid,
}

impl SaslError {
    /// The element name inside `<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`.
    pub fn condition(&self) -> &'static str {
        match self {
            SaslError::NotAuthorized => "not-authorized",
            SaslError::InvalidMechanism => "invalid-mechanism",
            SaslError::MalformedRequest => "malformed-request",
            SaslError::IncorrectEncoding => "incorrect-encoding",
            SaslError::Aborted => "aborted",
            SaslError::TemporaryAuthFailure => "temporary-auth-failure",
            SaslError::EncryptionRequired => "encryption-required",
            SaslError::InvalidAuthzid => "invalid-authzid",
        }
    }
}

/// The outcome of one [`Exchange::step`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Raw bytes; the caller base64-encodes them into `<challenge/>` (empty → `=`).
    Challenge(Vec<u8>),
    /// Authentication succeeded.
    Success {
        /// The authcid after escape decoding and SASLprep (the localpart as the
        /// client sent it; the caller applies nodeprep/JID rules).
        username: String,
        /// The authzid the client asked for, if any (escape-decoded, otherwise
        /// unchanged). The caller must check it and fail with `InvalidAuthzid`
        /// if the user may not act as it.
        authzid: Option<String>,
        /// SCRAM: the server-final message `v=...` for `<success/>`. PLAIN: `None`.
        additional_data: Option<Vec<u8>>,
    },
    /// Authentication failed; the exchange is over.
    Failure(SaslError),
}

/// Lookup of stored credentials by username (the caller maps it to a JID and asks storage).
pub trait CredentialLookup {
    /// `Err(())` = storage fault → `TemporaryAuthFailure`. `Ok(None)` = unknown user.
    #[allow(clippy::result_unit_err)]
    fn lookup(&self, username: &str) -> Result<Option<StoredCredentials>, ()>;

    /// Iteration count shown to clients for unknown users, so they look like
    /// real ones. Should equal the count used when accounts are created.
    fn fake_iterations(&self) -> u32 {
        DEFAULT_ITERATIONS
    }

    /// The name as the store knows it (case-folded, normalised): the fake credentials of
    /// an unknown user are keyed on it, so `Alice` and `alice` get the same answer whether
    /// or not the account exists.
    fn canonical(&self, username: &str) -> String {
        username.to_owned()
    }
}

enum State {
    /// Start-time failure, reported at the first step.
    Rejected(SaslError),
    Scram(Box<scram::ScramServer>),
    Plain(plain::PlainServer),
    /// Success or failure has been returned.
    Done,
}

/// One SASL exchange (server side).
pub struct Exchange {
    mech: Mechanism,
    state: State,
    /// The username the client authenticated as (or tried to), once the engine saw it.
    authcid: Option<String>,
}

/// Remembers which username the mechanism looked up.
struct Recorder<'a> {
    inner: &'a dyn CredentialLookup,
    seen: std::cell::RefCell<Option<String>>,
}

impl CredentialLookup for Recorder<'_> {
    fn lookup(&self, username: &str) -> Result<Option<StoredCredentials>, ()> {
        *self.seen.borrow_mut() = Some(username.to_owned());
        self.inner.lookup(username)
    }

    fn fake_iterations(&self) -> u32 {
        self.inner.fake_iterations()
    }

    fn canonical(&self, username: &str) -> String {
        self.inner.canonical(username)
    }
}

impl Exchange {
    /// Begin an exchange for `mech`.
    ///
    /// `secure` = the stream is TLS-protected. PLAIN without `secure` fails with
    /// `EncryptionRequired` unless `allow_plain_insecure`; a `-PLUS` mechanism
    /// when `cb` has no binding data fails with `InvalidMechanism`. Such failures
    /// are returned by the first [`step`](Self::step) (see also
    /// [`rejected`](Self::rejected)).
    pub fn start(mech: Mechanism, cb: ChannelBindings, secure: bool, allow_plain_insecure: bool) -> Self {
        let state = match mech {
            Mechanism::Plain => {
                if secure || allow_plain_insecure {
                    State::Plain(plain::PlainServer::new())
                } else {
                    State::Rejected(SaslError::EncryptionRequired)
                }
            }
            m if m.is_plus() && !cb.any() => State::Rejected(SaslError::InvalidMechanism),
            m => State::Scram(Box::new(scram::ScramServer::new(m, cb, None))),
        };
        Exchange { mech, state, authcid: None }
    }

    /// Test hook: fixed server nonce suffix so RFC example exchanges can be replayed.
    #[cfg(test)]
    pub(crate) fn start_with_nonce(mech: Mechanism, cb: ChannelBindings, nonce: &str) -> Self {
        Exchange {
            mech,
            authcid: None,
            state: State::Scram(Box::new(scram::ScramServer::new(mech, cb, Some(nonce.to_owned())))),
        }
    }

    /// The username (SASLprepped) the client gave, once a step has seen it.
    pub fn authcid(&self) -> Option<&str> {
        self.authcid.as_deref()
    }

    /// The mechanism of this exchange.
    pub fn mechanism(&self) -> Mechanism {
        self.mech
    }

    /// The failure `start` decided on, if any (the first `step` returns it).
    pub fn rejected(&self) -> Option<SaslError> {
        match &self.state {
            State::Rejected(e) => Some(e.clone()),
            _ => None,
        }
    }

    /// Whether a `Success` or `Failure` has been returned.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The username the next [`step`](Self::step) with `input` will look up, if it looks
    /// one up: the caller can fetch the credentials first (from a store that answers
    /// later) and answer the step's lookup with them.
    pub fn username_in(&self, input: Option<&[u8]>) -> Option<String> {
        match (&self.state, input) {
            (State::Scram(s), Some(input)) => s.username_in(input),
            (State::Plain(_), Some(input)) => plain::username_in(input),
            _ => None,
        }
    }

    /// Feed the decoded initial response / response. `None` = no initial
    /// response was sent; `Some(&[])` = a zero-length one (`=` in XML).
    /// After `Success`/`Failure` every further step is `Failure(MalformedRequest)`.
    pub fn step(&mut self, input: Option<&[u8]>, lookup: &dyn CredentialLookup) -> Step {
        let recorder = Recorder { inner: lookup, seen: Default::default() };
        let out = match &mut self.state {
            State::Done => Step::Failure(SaslError::MalformedRequest),
            State::Rejected(e) => Step::Failure(e.clone()),
            State::Scram(s) => s.step(input, &recorder),
            State::Plain(p) => p.step(input, &recorder),
        };
        if let Some(name) = recorder.seen.into_inner() {
            self.authcid = Some(name);
        }
        if !matches!(out, Step::Challenge(_)) {
            self.state = State::Done;
        }
        out
    }
}

/// Mechanisms to advertise, in order of preference: `-PLUS` only if
/// `cb.any()`, PLAIN only if `secure || allow_plain_insecure`.
pub fn advertised(cb: &ChannelBindings, secure: bool, allow_plain_insecure: bool) -> Vec<Mechanism> {
    Mechanism::ALL
        .into_iter()
        .filter(|m| match m {
            Mechanism::ScramSha256Plus | Mechanism::ScramSha1Plus => cb.any(),
            Mechanism::Plain => secure || allow_plain_insecure,
            _ => true,
        })
        .collect()
}

/// Decode the text content of `<auth/>` or `<response/>`: surrounding
/// whitespace is trimmed, `""` → `None` (no data), `"="` → `Some(empty)`,
/// anything else must be padded standard base64 (else `IncorrectEncoding`).
pub fn decode_b64(text: &str) -> Result<Option<Vec<u8>>, SaslError> {
    let t = text.trim();
    match t {
        "" => Ok(None),
        "=" => Ok(Some(Vec::new())),
        _ => STANDARD.decode(t).map(Some).map_err(|_| SaslError::IncorrectEncoding),
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use std::collections::HashMap;

    /// In-memory credential store for tests.
    #[derive(Default)]
    pub struct MemLookup {
        pub users: HashMap<String, StoredCredentials>,
        pub fail: bool,
    }

    impl MemLookup {
        pub fn with(user: &str, password: &str) -> Self {
            let mut m = MemLookup::default();
            m.add(user, password);
            m
        }
        pub fn add(&mut self, user: &str, password: &str) {
            let c = StoredCredentials::derive(password, 64).expect("derive");
            self.users.insert(user.to_owned(), c);
        }
    }

    impl CredentialLookup for MemLookup {
        fn lookup(&self, username: &str) -> Result<Option<StoredCredentials>, ()> {
            if self.fail {
                return Err(());
            }
            Ok(self.users.get(username).cloned())
        }
        fn fake_iterations(&self) -> u32 {
            64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::MemLookup;
    use super::*;

    #[test]
    fn names_roundtrip() {
        for m in Mechanism::ALL {
            assert_eq!(Mechanism::from_name(m.name()), Some(m));
        }
        assert_eq!(Mechanism::from_name("SCRAM-SHA-512"), None);
        assert_eq!(Mechanism::from_name("plain"), None);
        assert_eq!(CbType::TlsExporter.name(), "tls-exporter");
        assert_eq!(CbType::TlsServerEndPoint.name(), "tls-server-end-point");
        assert_eq!(CbType::from_name("tls-unique"), None);
    }

    #[test]
    fn conditions() {
        assert_eq!(SaslError::NotAuthorized.condition(), "not-authorized");
        assert_eq!(SaslError::InvalidMechanism.condition(), "invalid-mechanism");
        assert_eq!(SaslError::MalformedRequest.condition(), "malformed-request");
        assert_eq!(SaslError::IncorrectEncoding.condition(), "incorrect-encoding");
        assert_eq!(SaslError::Aborted.condition(), "aborted");
        assert_eq!(SaslError::TemporaryAuthFailure.condition(), "temporary-auth-failure");
        assert_eq!(SaslError::EncryptionRequired.condition(), "encryption-required");
        assert_eq!(SaslError::InvalidAuthzid.condition(), "invalid-authzid");
    }

    #[test]
    fn channel_bindings_offered() {
        let none = ChannelBindings::default();
        assert!(!none.any());
        assert!(none.offered().is_empty());
        let empty = ChannelBindings { tls_exporter: Some(Vec::new()), tls_server_end_point: None };
        assert!(!empty.any());
        let both = ChannelBindings { tls_exporter: Some(vec![1]), tls_server_end_point: Some(vec![2]) };
        assert_eq!(both.offered(), vec![CbType::TlsExporter, CbType::TlsServerEndPoint]);
        let ep = ChannelBindings { tls_exporter: None, tls_server_end_point: Some(vec![2]) };
        assert_eq!(ep.offered(), vec![CbType::TlsServerEndPoint]);
        assert!(ep.any());
    }

    #[test]
    fn advertised_lists() {
        let none = ChannelBindings::default();
        let cb = ChannelBindings { tls_exporter: Some(vec![1; 32]), tls_server_end_point: None };
        assert_eq!(
            advertised(&cb, true, false),
            vec![
                Mechanism::ScramSha256Plus,
                Mechanism::ScramSha1Plus,
                Mechanism::ScramSha256,
                Mechanism::ScramSha1,
                Mechanism::Plain
            ]
        );
        assert_eq!(
            advertised(&none, true, false),
            vec![Mechanism::ScramSha256, Mechanism::ScramSha1, Mechanism::Plain]
        );
        assert_eq!(advertised(&none, false, false), vec![Mechanism::ScramSha256, Mechanism::ScramSha1]);
        assert_eq!(
            advertised(&none, false, true),
            vec![Mechanism::ScramSha256, Mechanism::ScramSha1, Mechanism::Plain]
        );
    }

    #[test]
    fn decode_b64_cases() {
        assert_eq!(decode_b64(""), Ok(None));
        assert_eq!(decode_b64("  \n "), Ok(None));
        assert_eq!(decode_b64("="), Ok(Some(Vec::new())));
        assert_eq!(decode_b64(" = "), Ok(Some(Vec::new())));
        assert_eq!(decode_b64("biws"), Ok(Some(b"n,,".to_vec())));
        assert_eq!(decode_b64("\n  biws\t"), Ok(Some(b"n,,".to_vec())));
        assert_eq!(decode_b64("AGE="), Ok(Some(b"\0a".to_vec())));
        assert_eq!(decode_b64("AGE"), Err(SaslError::IncorrectEncoding));
        assert_eq!(decode_b64("b!ws"), Err(SaslError::IncorrectEncoding));
        assert_eq!(decode_b64("bi ws"), Err(SaslError::IncorrectEncoding));
        assert_eq!(decode_b64("=="), Err(SaslError::IncorrectEncoding));
    }

    #[test]
    fn plus_without_cb_is_invalid_mechanism() {
        let l = MemLookup::with("user", "pencil");
        for m in [Mechanism::ScramSha256Plus, Mechanism::ScramSha1Plus] {
            let mut ex = Exchange::start(m, ChannelBindings::default(), true, false);
            assert_eq!(ex.rejected(), Some(SaslError::InvalidMechanism));
            assert_eq!(ex.step(Some(b"p=tls-exporter,,n=user,r=abc"), &l), Step::Failure(SaslError::InvalidMechanism));
            assert!(ex.is_finished());
            assert_eq!(ex.step(Some(b"x"), &l), Step::Failure(SaslError::MalformedRequest));
        }
    }

    #[test]
    fn step_after_end_is_malformed() {
        let l = MemLookup::with("user", "pencil");
        let mut ex = Exchange::start(Mechanism::Plain, ChannelBindings::default(), true, false);
        assert!(matches!(ex.step(Some(b"\0user\0pencil"), &l), Step::Success { .. }));
        assert!(ex.is_finished());
        assert_eq!(ex.step(Some(b"\0user\0pencil"), &l), Step::Failure(SaslError::MalformedRequest));
        assert_eq!(ex.step(None, &l), Step::Failure(SaslError::MalformedRequest));
    }

    /// What a step will look up is known before it runs, so that a caller can fetch the
    /// credentials first; and it is the very name the step then asks for.
    #[test]
    fn the_name_a_step_looks_up_is_known_before_it() {
        let l = MemLookup::with("user", "pencil");
        let plain = Exchange::start(Mechanism::Plain, ChannelBindings::default(), true, false);
        assert_eq!(plain.username_in(Some(b"\0user\0pencil")), Some("user".into()));
        assert_eq!(plain.username_in(Some(b"garbage")), None);
        let mut scram = Exchange::start(Mechanism::ScramSha256, ChannelBindings::default(), true, false);
        assert_eq!(scram.username_in(None), None);
        let first = b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL";
        assert_eq!(scram.username_in(Some(first)), Some("user".into()));
        assert!(matches!(scram.step(Some(first), &l), Step::Challenge(_)));
        assert_eq!(scram.authcid(), Some("user"));
        assert_eq!(scram.username_in(Some(b"c=biws,r=x,p=y")), None, "the final message looks nothing up");
    }
}
