//! Validation of the client's `<stream:stream>` header (RFC 6120 §4.7, §4.9.3).

use super::error::{StreamCondition, StreamEnd};
use crate::config::Config;
use crate::xml::framer::StreamHeader;
use crate::xml::{NS_CLIENT, NS_STREAM};
use xmpp_parsers::jid::BareJid;

/// Returns the hosted domain the client asked for.
pub fn validate(header: &StreamHeader, config: &Config) -> Result<String, StreamEnd> {
    if header.ns.as_deref() != Some(NS_STREAM) || header.local_name != "stream" {
        return Err(StreamEnd::error(
            StreamCondition::InvalidNamespace,
            "the root must be stream in the streams namespace",
        ));
    }
    if header.default_ns.as_deref() != Some(NS_CLIENT) {
        return Err(StreamEnd::error(StreamCondition::InvalidNamespace, "the content namespace must be jabber:client"));
    }
    check_version(header.version.as_deref())?;
    let to = header
        .to
        .as_deref()
        .ok_or_else(|| StreamEnd::error(StreamCondition::HostUnknown, "the stream header needs a 'to'"))?;
    let domain = match BareJid::new(to) {
        Ok(jid) if jid.node().is_none() => jid.domain().to_string(),
        _ => return Err(StreamEnd::error(StreamCondition::ImproperAddressing, format!("'{to}' is not a domain"))),
    };
    if !config.serves(&domain) {
        return Err(StreamEnd::error(StreamCondition::HostUnknown, format!("{domain} is not served here")));
    }
    Ok(domain)
}

/// RFC 6120 §4.7.5: we speak 1.0; a missing version means pre-1.0, which we do not.
/// A higher minor (or major) version is answered with ours, and the client decides.
fn check_version(version: Option<&str>) -> Result<(), StreamEnd> {
    let unsupported = |text: &str| StreamEnd::error(StreamCondition::UnsupportedVersion, text);
    let version = version.ok_or_else(|| unsupported("version 1.0 is required"))?;
    let (major, minor) = version.split_once('.').ok_or_else(|| unsupported("malformed version"))?;
    let major: u32 = major.parse().map_err(|_| unsupported("malformed version"))?;
    let _minor: u32 = minor.parse().map_err(|_| unsupported("malformed version"))?;
    if major < 1 {
        return Err(unsupported("version 1.0 is required"));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A valid client header to `localhost`.
    pub(crate) fn header() -> StreamHeader {
        StreamHeader {
            ns: Some(NS_STREAM.into()),
            local_name: "stream".into(),
            default_ns: Some(NS_CLIENT.into()),
            to: Some("localhost".into()),
            from: None,
            id: None,
            version: Some("1.0".into()),
            lang: None,
        }
    }

    fn condition(h: &StreamHeader) -> Option<StreamCondition> {
        match validate(h, &Config::default()) {
            Ok(_) => None,
            Err(StreamEnd::Error(c, _)) => Some(c),
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn good_header_names_the_domain() {
        assert_eq!(validate(&header(), &Config::default()).ok().as_deref(), Some("localhost"));
        let upper = StreamHeader { to: Some("LocalHost".into()), ..header() };
        assert_eq!(validate(&upper, &Config::default()).ok().as_deref(), Some("localhost"));
    }

    #[test]
    fn each_fault_has_its_condition() {
        use StreamCondition::*;
        let cases = [
            (StreamHeader { ns: Some("urn:wrong".into()), ..header() }, InvalidNamespace),
            (StreamHeader { local_name: "strim".into(), ..header() }, InvalidNamespace),
            (StreamHeader { default_ns: Some("jabber:server".into()), ..header() }, InvalidNamespace),
            (StreamHeader { to: None, ..header() }, HostUnknown),
            (StreamHeader { to: Some("example.net".into()), ..header() }, HostUnknown),
            (StreamHeader { to: Some("user@localhost".into()), ..header() }, ImproperAddressing),
            (StreamHeader { version: None, ..header() }, UnsupportedVersion),
            (StreamHeader { version: Some("0.9".into()), ..header() }, UnsupportedVersion),
            (StreamHeader { version: Some("one".into()), ..header() }, UnsupportedVersion),
        ];
        for (h, expected) in cases {
            assert_eq!(condition(&h), Some(expected), "{h:?}");
        }
        assert_eq!(condition(&StreamHeader { version: Some("1.1".into()), ..header() }), None);
    }
}
