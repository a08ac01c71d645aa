//! PLAIN (RFC 4616): `[authzid] NUL authcid NUL passwd`.

use super::credentials::{dummy_verify, saslprep};
use super::{CredentialLookup, SaslError, Step};

enum PlainState {
    /// Nothing received yet.
    Initial,
    /// Sent the empty challenge after an absent initial response.
    AwaitingResponse,
}

/// Server side of one PLAIN exchange (wrapped by [`super::Exchange`]).
pub(crate) struct PlainServer {
    state: PlainState,
}

impl PlainServer {
    pub(crate) fn new() -> Self {
        PlainServer { state: PlainState::Initial }
    }

    pub(crate) fn step(&mut self, input: Option<&[u8]>, lookup: &dyn CredentialLookup) -> Step {
        match (&self.state, input) {
            (PlainState::Initial, None) => {
                self.state = PlainState::AwaitingResponse;
                Step::Challenge(Vec::new())
            }
            (_, None) => Step::Failure(SaslError::MalformedRequest),
            (_, Some(msg)) => match authenticate(msg, lookup) {
                Ok(s) => s,
                Err(e) => Step::Failure(e),
            },
        }
    }
}

/// The three fields of a PLAIN message, not yet prepared.
struct PlainMessage<'a> {
    authzid: Option<&'a str>,
    authcid: &'a str,
    password: &'a str,
}

fn parse(msg: &[u8]) -> Result<PlainMessage<'_>, SaslError> {
    let text = std::str::from_utf8(msg).map_err(|_| SaslError::MalformedRequest)?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(authcid), Some(password), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::MalformedRequest);
    };
    if authcid.is_empty() || password.is_empty() {
        return Err(SaslError::MalformedRequest);
    }
    Ok(PlainMessage { authzid: (!authzid.is_empty()).then_some(authzid), authcid, password })
}

/// The prepared username of a PLAIN message, which the step looks up.
pub(crate) fn username_in(msg: &[u8]) -> Option<String> {
    let m = parse(msg).ok()?;
    saslprep(m.authcid).ok().filter(|name| !name.is_empty())
}

fn authenticate(msg: &[u8], lookup: &dyn CredentialLookup) -> Result<Step, SaslError> {
    let m = parse(msg)?;
    // A name or password that cannot be SASLprepped can match no account.
    let username = saslprep(m.authcid).map_err(|_| SaslError::NotAuthorized)?;
    if username.is_empty() {
        return Err(SaslError::MalformedRequest);
    }
    let ok = match lookup.lookup(&username).map_err(|()| SaslError::TemporaryAuthFailure)? {
        Some(creds) => creds.verify_password(m.password),
        None => {
            dummy_verify(m.password, lookup.fake_iterations());
            false
        }
    };
    if !ok {
        return Err(SaslError::NotAuthorized);
    }
    Ok(Step::Success { username, authzid: m.authzid.map(str::to_owned), additional_data: None })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::MemLookup;
    use super::super::{ChannelBindings, Exchange, Mechanism};
    use super::*;

    fn run(secure: bool, insecure_ok: bool, input: Option<&[u8]>, l: &MemLookup) -> Step {
        let mut ex = Exchange::start(Mechanism::Plain, ChannelBindings::default(), secure, insecure_ok);
        ex.step(input, l)
    }

    #[test]
    fn good() {
        let l = MemLookup::with("user", "pencil");
        assert_eq!(
            run(true, false, Some(b"\0user\0pencil"), &l),
            Step::Success { username: "user".into(), authzid: None, additional_data: None }
        );
        assert_eq!(
            run(true, false, Some(b"user@example.com\0user\0pencil"), &l),
            Step::Success { username: "user".into(), authzid: Some("user@example.com".into()), additional_data: None }
        );
    }

    #[test]
    fn saslprep_applied() {
        let l = MemLookup::with("user", "pencil");
        // SOFT HYPHEN maps to nothing in both authcid and password.
        assert!(matches!(
            run(
                true,
                false,
                Some("\0us\u{00AD}er\0pen\u{00AD}cil".as_bytes()),
                &l
            ),
            Step::Success { ref username, .. } if username == "user"
        ));
        // Prohibited character in the password.
        assert_eq!(run(true, false, Some(b"\0user\0pen\x07cil"), &l), Step::Failure(SaslError::NotAuthorized));
    }

    #[test]
    fn bad_password_and_unknown_user() {
        let l = MemLookup::with("user", "pencil");
        assert_eq!(run(true, false, Some(b"\0user\0pencil2"), &l), Step::Failure(SaslError::NotAuthorized));
        assert_eq!(run(true, false, Some(b"\0nobody\0pencil"), &l), Step::Failure(SaslError::NotAuthorized));
        let broken = MemLookup { fail: true, ..MemLookup::default() };
        assert_eq!(run(true, false, Some(b"\0user\0pencil"), &broken), Step::Failure(SaslError::TemporaryAuthFailure));
    }

    /// No timing oracle: a wrong password costs one key derivation with the account's
    /// iteration count, and an unknown account one with the count accounts are created
    /// with, whether or not the password survives SASLprep.
    #[test]
    fn every_wrong_password_costs_one_key_derivation() {
        use crate::sasl::credentials::{key_derivations, StoredCredentials};
        let mut l = MemLookup::default();
        l.users.insert("user".into(), StoredCredentials::derive("pencil", 100).expect("derive"));
        let fake = l.fake_iterations();
        let cases: [(&[u8], u32); 4] = [
            (b"\0user\0wrong", 100),
            (b"\0user\0pen\x07cil", 100),
            (b"\0nobody\0wrong", fake),
            (b"\0nobody\0pen\x07cil", fake),
        ];
        for (message, iterations) in cases {
            key_derivations::take();
            assert_eq!(run(true, false, Some(message), &l), Step::Failure(SaslError::NotAuthorized));
            assert_eq!(key_derivations::take(), vec![iterations], "{}", String::from_utf8_lossy(message));
        }
        // And the right password as much.
        assert!(matches!(run(true, false, Some(b"\0user\0pencil"), &l), Step::Success { .. }));
        assert_eq!(key_derivations::take(), vec![100]);
    }

    #[test]
    fn malformed() {
        let l = MemLookup::with("user", "pencil");
        for bad in [
            &b""[..],
            b"user",
            b"\0user",
            b"user\0pencil",
            b"\0\0pencil",
            b"\0user\0",
            b"\0user\0pencil\0",
            b"a\0user\0pencil\0x",
            b"\0us\xffer\0pencil",
            b"\0\xc3\0pencil",
        ] {
            assert_eq!(run(true, false, Some(bad), &l), Step::Failure(SaslError::MalformedRequest), "{bad:?}");
        }
    }

    #[test]
    fn insecure() {
        let l = MemLookup::with("user", "pencil");
        assert_eq!(run(false, false, Some(b"\0user\0pencil"), &l), Step::Failure(SaslError::EncryptionRequired));
        assert!(matches!(run(false, true, Some(b"\0user\0pencil"), &l), Step::Success { .. }));
    }

    #[test]
    fn no_initial_response() {
        let l = MemLookup::with("user", "pencil");
        let mut ex = Exchange::start(Mechanism::Plain, ChannelBindings::default(), true, false);
        assert_eq!(ex.step(None, &l), Step::Challenge(Vec::new()));
        assert!(matches!(ex.step(Some(b"\0user\0pencil"), &l), Step::Success { .. }));
        // A second absent response is malformed.
        let mut ex = Exchange::start(Mechanism::Plain, ChannelBindings::default(), true, false);
        assert_eq!(ex.step(None, &l), Step::Challenge(Vec::new()));
        assert_eq!(ex.step(None, &l), Step::Failure(SaslError::MalformedRequest));
    }
}
