//! Where an archived entry stands, and the id clients see for it: the same for every
//! backend.
//!
//! A place is the stamp (µs) and a store-wide sequence number: within an archive stamps
//! never decrease, so places sort in arrival order and time bounds are place bounds. An id
//! is the place under a keyed permutation ([`Ids`]).

use sha2::{Digest, Sha256};

/// Stamp in the high half, sequence number in the low half.
pub type Place = u128;

pub fn place(stamp: u64, seq: u64) -> Place {
    (Place::from(stamp) << 64) | Place::from(seq)
}

pub fn stamp_of(place: Place) -> u64 {
    (place >> 64) as u64
}

const ROUNDS: u8 = 4;

/// XEP-0313 §3 and XEP-0359 §5: ids are unpredictable and tell nothing (not the size of
/// an archive, nor the server's traffic), so a place is shown through a keyed permutation:
/// a four-round Feistel network whose round function is a pseudo-random function of key,
/// round and half. Decoding an id is one step.
///
/// Ids are 26 characters of lowercase base32 (RFC 4648), under SipHash-2-4 rounds. Ids
/// handed out before (32 lowercase hex characters, under SHA-256 rounds, which cost a
/// hash per round: an eighth of an archived message's work) still decode to their places.
pub struct Ids(pub [u8; 32]);

/// The RFC 4648 base32 alphabet, lowercase.
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// Characters of an id: 128 bits, 5 per character.
const ID_LEN: usize = 26;

impl Ids {
    /// The SipHash key: the first 128 of the store key's 256 random bits.
    fn sip_keys(&self) -> (u64, u64) {
        let word = |at: usize| {
            let mut bytes = [0; 8];
            bytes.copy_from_slice(&self.0[at..at + 8]);
            u64::from_le_bytes(bytes)
        };
        (word(0), word(8))
    }

    fn round(&self, keys: (u64, u64), round: u8, half: u64) -> u64 {
        use std::hash::Hasher;
        let mut hasher = siphasher::sip::SipHasher24::new_with_keys(keys.0, keys.1);
        hasher.write_u8(round);
        hasher.write_u64(half);
        hasher.finish()
    }

    pub fn encode(&self, place: Place) -> String {
        let keys = self.sip_keys();
        let (mut left, mut right) = ((place >> 64) as u64, place as u64);
        for round in 0..ROUNDS {
            (left, right) = (right, left ^ self.round(keys, round, right));
        }
        let value = (u128::from(left) << 64) | u128::from(right);
        let mut id = [0; ID_LEN];
        for (at, digit) in id.iter_mut().zip((0..ID_LEN).rev()) {
            *at = BASE32[((value >> (5 * digit)) & 31) as usize];
        }
        // Base32 digits are ASCII.
        String::from_utf8_lossy(&id).into_owned()
    }

    /// The place behind an id; None for anything [`Ids::encode`] cannot have made (nor
    /// the earlier hex ids).
    pub fn decode(&self, id: &str) -> Option<Place> {
        if id.len() == 32 {
            return self.decode_hex(id);
        }
        if id.len() != ID_LEN {
            return None;
        }
        let mut value: u128 = 0;
        for byte in id.bytes() {
            let digit = BASE32.iter().position(|b| *b == byte)? as u128;
            // 26 digits hold 130 bits: a first digit over 3 is no id of ours.
            value = value.checked_mul(32)? | digit;
        }
        let keys = self.sip_keys();
        let (mut left, mut right) = ((value >> 64) as u64, value as u64);
        for round in (0..ROUNDS).rev() {
            (left, right) = (right ^ self.round(keys, round, left), left);
        }
        Some(place(left, right))
    }

    /// The ids of before: SHA-256 rounds, 32 lowercase hex characters.
    fn sha_round(&self, round: u8, half: u64) -> u64 {
        let digest =
            Sha256::new().chain_update(self.0).chain_update([round]).chain_update(half.to_be_bytes()).finalize();
        let mut first = [0; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first)
    }

    fn decode_hex(&self, id: &str) -> Option<Place> {
        let canonical = id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !canonical {
            return None;
        }
        let mut left = u64::from_str_radix(id.get(..16)?, 16).ok()?;
        let mut right = u64::from_str_radix(id.get(16..)?, 16).ok()?;
        for round in (0..ROUNDS).rev() {
            (left, right) = (right ^ self.sha_round(round, left), left);
        }
        Some(place(left, right))
    }

    /// An id as handed out before (tests of the old format).
    #[cfg(test)]
    fn encode_hex(&self, place: Place) -> String {
        let (mut left, mut right) = ((place >> 64) as u64, place as u64);
        for round in 0..ROUNDS {
            (left, right) = (right, left ^ self.sha_round(round, right));
        }
        format!("{left:016x}{right:016x}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_opaque_and_decode_to_their_place() {
        use super::{place, Ids};
        let (ids, other) = (Ids([7; 32]), Ids([8; 32]));
        let places = [place(0, 0), place(1_700_000_000_000_000, 41), place(1_700_000_000_000_000, 42), u128::MAX];
        for p in places {
            let id = ids.encode(p);
            assert_eq!((id.len(), ids.decode(&id)), (26, Some(p)), "{id}");
            let old = ids.encode_hex(p);
            assert_eq!((old.len(), ids.decode(&old)), (32, Some(p)), "ids handed out before still decode: {old}");
            assert_ne!(other.encode(p), id, "another key, other ids");
            if id != id.to_uppercase() {
                assert_eq!(ids.decode(&id.to_uppercase()), None, "lower case only");
            }
            assert_eq!(ids.decode(&format!("+{}", &id[1..])), None);
            assert_eq!(ids.decode(&id[1..]), None);
        }
        // Clients keep ids: the same place, under the same key, always gets the same one.
        assert_eq!(ids.encode(places[1]), "cxlor4omfldcvrvrnw22unhz5e");
        let (a, b) = (ids.encode(places[1]), ids.encode(places[2]));
        assert!(a[..13] != b[..13] && a[13..] != b[13..], "neighbours look unrelated: {a} {b}");
        assert_eq!(ids.decode(&"7".repeat(26)), None, "more than 128 bits");
        assert_eq!(ids.decode("ü"), None);
    }
}
