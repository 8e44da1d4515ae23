//! The stored chunk codec.
//!
//! A chunk is named by the SHA-256 of its raw bytes ([`ChunkId`], in its own leaf
//! module `id`). What is stored (in a pack or
//! inline in the index) is a small versioned header followed by the payload:
//!
//! ```text
//! offset  size  field
//! 0       1     format version (1)
//! 1       1     flags: bit 0 = zstd payload, bit 1 = AEAD-encrypted payload (reserved, unused in v1)
//! 2       2     reserved, zero
//! 4       4     raw length, little endian
//! 8       ..    payload
//! ```
//!
//! Every stored chunk also has a CRC32C of its stored bytes recorded in the index when
//! it is written; reads check that before any byte leaves the engine. Scrub re-derives
//! the SHA-256.

use bytes::Bytes;

use crate::error::{Error, Result};
pub use crate::id::ChunkId;

/// Size of the chunk header in bytes.
pub const HEADER_LEN: usize = 8;
/// Current chunk format version.
pub const FORMAT_V1: u8 = 1;
const KNOWN_FLAGS: u8 = 0;

/// Length of the stored form of a raw chunk of `raw_len` bytes.
pub fn stored_len(raw_len: usize) -> usize {
    HEADER_LEN + raw_len
}

/// CRC32C of stored chunk bytes, recorded in the index for read verification.
pub fn checksum(stored: &[u8]) -> u32 {
    crc32c::crc32c(stored)
}

/// Verifies stored chunk bytes against the checksum recorded at write time and
/// decodes them into the raw bytes.
///
/// # Errors
/// [`Error::Corrupt`] if the checksum, the header or the length disagree;
/// [`Error::UnsupportedFormat`] for an unknown version or flag.
pub fn decode_verified(stored: Bytes, crc: u32, raw_len: u32) -> Result<Bytes> {
    let actual = checksum(&stored);
    if actual != crc {
        return Err(Error::corrupt(
            "chunk",
            format!("crc32c {actual:08x} != recorded {crc:08x}"),
        ));
    }
    decode(stored, raw_len)
}

/// Decodes stored chunk bytes without checksum verification (used after another check).
///
/// # Errors
/// As [`decode_verified`], minus the checksum.
pub fn decode(mut stored: Bytes, raw_len: u32) -> Result<Bytes> {
    if stored.len() < HEADER_LEN {
        return Err(Error::corrupt("chunk", "shorter than its header"));
    }
    let version = stored[0];
    if version != FORMAT_V1 {
        return Err(Error::UnsupportedFormat {
            what: "chunk",
            version: version.into(),
        });
    }
    let flags = stored[1];
    if flags & !KNOWN_FLAGS != 0 {
        return Err(Error::UnsupportedFormat {
            what: "chunk flags",
            version: flags.into(),
        });
    }
    let len = u32::from_le_bytes([stored[4], stored[5], stored[6], stored[7]]);
    if len != raw_len || stored.len() - HEADER_LEN != len as usize {
        return Err(Error::corrupt(
            "chunk",
            format!(
                "header says {len} bytes, index says {raw_len}, payload has {}",
                stored.len() - HEADER_LEN
            ),
        ));
    }
    Ok(stored.split_off(HEADER_LEN))
}

/// Encodes raw chunk bytes into their stored form (header + payload).
pub fn encode(raw: &[u8]) -> Bytes {
    let len = u32::try_from(raw.len()).expect("chunks are at most a few MiB");
    let mut v = Vec::with_capacity(stored_len(raw.len()));
    v.extend_from_slice(&[FORMAT_V1, 0, 0, 0]);
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(raw);
    Bytes::from(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_detects_flips() {
        let raw = b"hello chunk".to_vec();
        let stored = encode(&raw);
        let crc = checksum(&stored);
        let back = decode_verified(stored.clone(), crc, raw.len() as u32).unwrap();
        assert_eq!(&back[..], &raw[..]);
        for i in 0..stored.len() {
            let mut bad = stored.to_vec();
            bad[i] ^= 0x40;
            assert!(decode_verified(Bytes::from(bad), crc, raw.len() as u32).is_err());
        }
        assert!(matches!(
            decode(stored.clone(), 3),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn id_is_sha256() {
        assert_eq!(
            ChunkId::of(b"abc").to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
