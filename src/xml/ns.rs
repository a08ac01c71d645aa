//! Every XML namespace the server speaks, defined once. Feature modules re-export the ones
//! they own as their `NS`.

// RFC 6120 and RFC 6121.
pub const CLIENT: &str = "jabber:client";
pub const STREAM: &str = "http://etherx.jabber.org/streams";
pub const STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
pub const STANZA_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
pub const TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
pub const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
/// RFC 3921's session establishment, kept as a no-op (RFC 6121 Appendix E).
pub const SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
pub const ROSTER: &str = "jabber:iq:roster";

// Stream features.
/// XEP-0440.
pub const SASL_CB: &str = "urn:xmpp:sasl-cb:0";
/// XEP-0478.
pub const LIMITS: &str = "urn:xmpp:stream-limits:0";
/// XEP-0198.
pub const SM: &str = "urn:xmpp:sm:3";
/// XEP-0352.
pub const CSI: &str = "urn:xmpp:csi:0";
/// RFC 6121 §2.6.1: roster versioning.
pub const ROSTER_VERSIONING: &str = "urn:xmpp:features:rosterver";
/// RFC 6121 §3.4: subscription pre-approval.
pub const PRE_APPROVAL: &str = "urn:xmpp:features:pre-approval";

// XEPs answered or stamped by feature modules.
/// XEP-0030.
pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// XEP-0030.
pub const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
/// XEP-0004.
pub const DATA_FORMS: &str = "jabber:x:data";
/// XEP-0199.
pub const PING: &str = "urn:xmpp:ping";
/// XEP-0092.
pub const VERSION: &str = "jabber:iq:version";
/// XEP-0012.
pub const LAST: &str = "jabber:iq:last";
/// XEP-0191.
pub const BLOCKING: &str = "urn:xmpp:blocking";
/// XEP-0191 §3.6.
pub const BLOCKING_ERRORS: &str = "urn:xmpp:blocking:errors";
/// XEP-0054.
pub const VCARD: &str = "vcard-temp";
/// XEP-0153.
pub const VCARD_UPDATE: &str = "vcard-temp:x:update";
/// XEP-0049.
pub const PRIVATE: &str = "jabber:iq:private";
/// XEP-0280.
pub const CARBONS: &str = "urn:xmpp:carbons:2";
/// XEP-0297.
pub const FORWARD: &str = "urn:xmpp:forward:0";
/// XEP-0334.
pub const HINTS: &str = "urn:xmpp:hints";
/// XEP-0203.
pub const DELAY: &str = "urn:xmpp:delay";
/// XEP-0091, legacy delayed delivery.
pub const LEGACY_DELAY: &str = "jabber:x:delay";
/// XEP-0013.
pub const OFFLINE: &str = "http://jabber.org/protocol/offline";
/// XEP-0313.
pub const MAM: &str = "urn:xmpp:mam:2";
/// Earlier drafts of XEP-0313 that clients still parse.
pub const MAM_1: &str = "urn:xmpp:mam:1";
pub const MAM_TMP: &str = "urn:xmpp:mam:tmp";
/// XEP-0313 §7.1.
pub const MAM_EXTENDED: &str = "urn:xmpp:mam:2#extended";
/// XEP-0359.
pub const SID: &str = "urn:xmpp:sid:0";
/// XEP-0059.
pub const RSM: &str = "http://jabber.org/protocol/rsm";
/// XEP-0184.
pub const RECEIPTS: &str = "urn:xmpp:receipts";
/// XEP-0333.
pub const MARKERS: &str = "urn:xmpp:chat-markers:0";
/// The opt-in dialect (docs/dialect.md, schemas/dialect.xsd).
pub const DIALECT: &str = "urn:stanzad:dialect:0";
/// XEP-0122.
pub const XDATA_VALIDATE: &str = "http://jabber.org/protocol/xdata-validate";
/// XEP-0050.
pub const COMMANDS: &str = "http://jabber.org/protocol/commands";
/// This server's XEP-0050 command for an account's archive retention (docs/delivery.md).
pub const RETENTION_COMMAND: &str = "urn:stanzad:mam:retention";
