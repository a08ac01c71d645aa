//! Chunk values as sled keeps them: an archive's or a conversation index's records,
//! LZ4-compressed behind a marker byte. Sled writes each value several times over (its
//! log, then each rewrite of the node holding it), so fewer bytes per chunk are fewer
//! bytes written per archived message, and a smaller database (measured in
//! docs/performance.md).
//!
//! A packed value: [`PACKED`], the records' length (4, little-endian), the LZ4 block.
//! Values written before were the records as they are; a record starts with a place,
//! whose first byte is the top byte of a stamp in µs, 0 until the year 4253, so such a
//! value never starts with [`PACKED`] and is read as it is.

use super::records::corrupt;
use crate::storage::StorageError;
use std::borrow::Cow;

/// The first byte of a packed value.
const PACKED: u8 = 0xc1;
/// The most one byte of an LZ4 block can stand for (a length byte of 255 per byte of
/// block, a little more for a sequence's head): a value claiming more is damaged, and
/// its length is refused rather than allocated.
const MOST_PER_BYTE: usize = 255;

/// `records` packed (as they are, should LZ4 refuse them: read back all the same).
pub fn pack(records: &[u8]) -> Vec<u8> {
    let Ok(len) = u32::try_from(records.len()) else { return records.to_vec() };
    let mut value = vec![0; 5 + lz4_flex::block::get_maximum_output_size(records.len())];
    value[0] = PACKED;
    value[1..5].copy_from_slice(&len.to_le_bytes());
    match lz4_flex::block::compress_into(records, &mut value[5..]) {
        Ok(written) => {
            value.truncate(5 + written);
            value
        }
        Err(_) => records.to_vec(),
    }
}

/// The records a value holds.
pub fn unpack(value: &[u8]) -> Result<Cow<'_, [u8]>, StorageError> {
    let Some((&PACKED, rest)) = value.split_first() else { return Ok(Cow::Borrowed(value)) };
    let Some((len, block)) = rest.split_first_chunk::<4>() else { return Err(corrupt("short packed chunk")) };
    let len = u32::from_le_bytes(*len) as usize;
    if len > block.len().saturating_mul(MOST_PER_BYTE).saturating_add(64) {
        return Err(corrupt("packed chunk too long for its bytes"));
    }
    let records = lz4_flex::block::decompress(block, len).map_err(corrupt)?;
    if records.len() != len {
        return Err(corrupt("packed chunk of the wrong length"));
    }
    Ok(Cow::Owned(records))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_records_come_back_and_older_values_read_as_they_are() {
        let records: Vec<u8> = (0..6000u32).map(|i| (i % 7) as u8).collect();
        let value = pack(&records);
        assert!(value.len() < records.len() / 4, "{} bytes", value.len());
        assert_eq!(unpack(&value).expect("unpack").as_ref(), records.as_slice());
        let older = [0u8, 0, 1, 2, 3];
        assert!(matches!(unpack(&older), Ok(Cow::Borrowed(v)) if v == older));
        assert_eq!(unpack(&pack(b"")).expect("empty").as_ref(), b"");
    }

    #[test]
    fn a_damaged_value_is_corrupt_not_a_panic_or_a_huge_allocation() {
        let value = pack(b"records records records records");
        for cut in 1..value.len() {
            assert!(unpack(&value[..cut]).is_err(), "cut at {cut}");
        }
        let mut huge = vec![PACKED];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(&value[5..]);
        assert!(unpack(&huge).is_err());
        // The bound comes from LZ4's format, and what compresses best still fits it.
        let one_byte = vec![b'x'; 8 << 20];
        assert_eq!(unpack(&pack(&one_byte)).expect("8 MiB of one byte").len(), one_byte.len());
        let mut flipped = value.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        let _ = unpack(&flipped);
    }
}
