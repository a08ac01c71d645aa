//! XEP-0153 vCard-based avatars, on the server's side: the SHA-1 of a vCard's photo is
//! worked out when the vCard is set and stored with it (`VcardStore::avatar`), and the
//! available presence of the account's clients carries it, unless the client advertises
//! an avatar itself.

use super::NS;
use crate::core::state::ServerState;
use crate::storage::vcard::Avatar;
use crate::xml::{el, Element, ElementExt};
use crate::xmpp::stanza::{Kind, PresenceType, Stanza};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use sha1::{Digest, Sha1};
use xmpp_parsers::jid::BareJid;

pub use crate::xml::ns::VCARD_UPDATE as NS_UPDATE;

/// §4.5: base64Binary, whatever the padding; white space is ignored before decoding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The avatar of a vCard being set (§3.1): the SHA-1 of its photo's binary value, in
/// lower-case hex (§3.1: "the historical use ... has established lower-case"). A vCard
/// without `<PHOTO><BINVAL/>` data (none, an empty one, only an `EXTVAL`) has no avatar to
/// hash. A `BINVAL` that is not base64 is refused, with the reason.
pub fn of(vcard: &Element) -> Result<Avatar, &'static str> {
    let Some(binval) = vcard.get_child("PHOTO", NS).and_then(|photo| photo.get_child("BINVAL", NS)) else {
        return Ok(Avatar::NoPhoto);
    };
    let text: String = binval.text().chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if text.is_empty() {
        return Ok(Avatar::NoPhoto);
    }
    let image = BASE64.decode(text).map_err(|_| "the PHOTO's BINVAL is not base64")?;
    let digest = Sha1::digest(&image);
    Ok(Avatar::Sha1(digest.iter().map(|byte| format!("{byte:02x}")).collect()))
}

/// `<x xmlns='vcard-temp:x:update'><photo>…</photo></x>` (§3.1), the photo empty when the
/// vCard has none (§4.1: "If there is no avatar image to be advertised, the photo element
/// MUST be empty").
pub fn update(avatar: &Avatar) -> Element {
    let photo = match avatar {
        Avatar::NoPhoto => el("photo", NS_UPDATE),
        Avatar::Sha1(hash) => el("photo", NS_UPDATE).with_text(hash.as_str()),
    };
    el("x", NS_UPDATE).with_child(photo)
}

/// Whether `stanza` is a presence [`advertise`] adds the avatar to.
pub fn wanted(stanza: &Stanza) -> bool {
    stanza.kind == Kind::Presence(PresenceType::Available) && stanza.element.get_child("x", NS_UPDATE).is_none()
}

/// Adds the account's avatar to an available presence from one of its clients, broadcast
/// or directed (§4.1: the update goes in both), when the client sent none: a client that
/// includes `<x xmlns='vcard-temp:x:update'/>`, even empty, speaks for itself (§4.1, §4.3).
/// An account that never set a vCard advertises nothing. One key read, nothing parsed.
pub async fn advertise(state: &ServerState, owner: &BareJid, stanza: &mut Stanza) {
    if !wanted(stanza) {
        return;
    }
    let avatar = match state.store.avatar(owner).await {
        Ok(Some(avatar)) => avatar,
        Ok(None) => return,
        Err(e) => {
            // The presence goes as the client sent it.
            tracing::error!(error = %e, "reading the avatar of a vCard failed");
            return;
        }
    };
    stanza.element.append_child(update(&avatar));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vcard(xml: &str) -> Element {
        xml.parse().expect("a vCard")
    }

    #[test]
    fn the_hash_is_of_the_decoded_photo_in_lower_case_hex() {
        // SHA-1 of the bytes 0, 1, 2; the base64 split over lines, as RFC 2045 §6.8 allows.
        let photo =
            vcard("<vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE><BINVAL>AA\n EC</BINVAL></PHOTO></vCard>");
        assert_eq!(of(&photo), Ok(Avatar::Sha1("0c7a623fd2bbc05b06423be359e4021d36e721ad".into())));
        let unpadded = vcard("<vCard xmlns='vcard-temp'><PHOTO><BINVAL>AAE</BINVAL></PHOTO></vCard>");
        assert!(matches!(of(&unpadded), Ok(Avatar::Sha1(_))), "padding is not required");
    }

    #[test]
    fn no_photo_data_is_no_avatar_and_garbage_is_refused() {
        for xml in [
            "<vCard xmlns='vcard-temp'/>",
            "<vCard xmlns='vcard-temp'><PHOTO><BINVAL> </BINVAL></PHOTO></vCard>",
            "<vCard xmlns='vcard-temp'><PHOTO><EXTVAL>https://example.org/a.png</EXTVAL></PHOTO></vCard>",
        ] {
            assert_eq!(of(&vcard(xml)), Ok(Avatar::NoPhoto), "{xml}");
        }
        let garbage = vcard("<vCard xmlns='vcard-temp'><PHOTO><BINVAL>not*base64</BINVAL></PHOTO></vCard>");
        assert!(of(&garbage).is_err());
    }
}
