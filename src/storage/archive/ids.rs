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
/// a four-round Feistel network whose round function is SHA-256 of key, round and half
/// (fixed-length input, so a pseudo-random function). Decoding an id is one step.
pub struct Ids(pub [u8; 32]);

impl Ids {
    fn round(&self, round: u8, half: u64) -> u64 {
        let digest =
            Sha256::new().chain_update(self.0).chain_update([round]).chain_update(half.to_be_bytes()).finalize();
        let mut first = [0; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first)
    }

    pub fn encode(&self, place: Place) -> String {
        let (mut left, mut right) = ((place >> 64) as u64, place as u64);
        for round in 0..ROUNDS {
            (left, right) = (right, left ^ self.round(round, right));
        }
        format!("{left:016x}{right:016x}")
    }

    /// The place behind an id; None for anything [`Ids::encode`] cannot have made.
    pub fn decode(&self, id: &str) -> Option<Place> {
        let canonical = id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !canonical {
            return None;
        }
        let mut left = u64::from_str_radix(id.get(..16)?, 16).ok()?;
        let mut right = u64::from_str_radix(id.get(16..)?, 16).ok()?;
        for round in (0..ROUNDS).rev() {
            (left, right) = (right ^ self.round(round, left), left);
        }
        Some(place(left, right))
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
            assert_eq!((id.len(), ids.decode(&id)), (32, Some(p)), "{id}");
            assert_ne!(other.encode(p), id, "another key, other ids");
            if id != id.to_uppercase() {
                assert_eq!(ids.decode(&id.to_uppercase()), None, "lower case only");
            }
            assert_eq!(ids.decode(&format!("+{}", &id[1..])), None);
            assert_eq!(ids.decode(&id[1..]), None);
        }
        let (a, b) = (ids.encode(places[1]), ids.encode(places[2]));
        assert!(a[..16] != b[..16] && a[16..] != b[16..], "neighbours look unrelated: {a} {b}");
        assert_eq!(ids.decode("ü"), None);
    }
}
