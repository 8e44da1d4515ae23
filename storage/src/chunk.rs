//! The stored chunk codec.
//!
//! A chunk is named by the SHA-256 of its raw bytes ([`ChunkId`], in its own leaf
//! module `id`). What is stored (in a pack or
//! inline in the index) is a small versioned header followed by the payload:
//!
//! ```text
//! offset  size  field
//! 0       1     format version (1)
//! 1       1     flags: bit 0 = zstd payload, bit 1 = AEAD-encrypted payload
//! 2       2     key id (little endian) when bit 1 is set, else zero
//! 4       4     raw length, little endian
//! 8       ..    payload: the raw bytes, or (bit 0) one zstd frame of them; with bit 1
//!               the payload is sealed: nonce (12) | ciphertext | tag (16), under the
//!               key named in the header, with the header and the chunk id as
//!               associated data (see `crypto`)
//! ```
//!
//! The flag bits were reserved in the first release, which refuses a chunk with an
//! unknown flag instead of returning its payload as data; chunks written before
//! compression existed (flags 0) read as they always did.
//!
//! Compression ([`Compression`]) is applied only when it saves at least 1/32 (~3 %) of
//! the chunk. Incompressible data is detected at near-zero cost: a chunk of 16 KiB or
//! more is first judged by compressing a 4 KiB sample from its middle, and stored raw
//! when that sample does not shrink by the same margin; otherwise the whole chunk is
//! compressed into a buffer capped at the saving bound, so a chunk that does not
//! shrink enough stops compressing as soon as it overflows the cap.
//!
//! Every stored chunk also has a CRC32C of its stored bytes recorded in the index when
//! it is written; reads check that *before* decrypting and decompressing, so a damaged
//! payload never reaches either (the AEAD tag is checked as well). Scrub re-derives the
//! chunk id. [`ChunkCodec`] is what the engine uses: compression, keys and the store's
//! id scheme together.

use std::cell::RefCell;
use std::io::Cursor;
use std::sync::Arc;

use bytes::Bytes;

use crate::crypto::{IdScheme, Keyring, SEAL_OVERHEAD};
use crate::error::{Error, Result};
pub use crate::id::ChunkId;

/// Size of the chunk header in bytes.
pub const HEADER_LEN: usize = 8;
/// Current chunk format version.
pub const FORMAT_V1: u8 = 1;
/// Flag: the payload is one zstd frame of the raw bytes.
pub const FLAG_ZSTD: u8 = 1;
/// Flag: the payload is AEAD-encrypted.
pub const FLAG_AEAD: u8 = 2;
const KNOWN_FLAGS: u8 = FLAG_ZSTD | FLAG_AEAD;
/// Chunks below this are not worth a compression attempt.
const MIN_COMPRESS: usize = 128;
/// Chunks from this size on are first judged by a sample.
const SAMPLE_FROM: usize = 16 << 10;
const SAMPLE_LEN: usize = 4 << 10;

/// How new chunks are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Stored raw.
    Off,
    /// zstd at this level (1–22; 3 is zstd's own default).
    Zstd {
        /// Compression level.
        level: i32,
    },
}

impl Default for Compression {
    fn default() -> Self {
        Compression::Zstd { level: 3 }
    }
}

/// Length of the stored form of a raw chunk of `raw_len` bytes, uncompressed.
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
/// [`Error::Corrupt`] if the checksum, the header, the payload or the length disagree;
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
/// An encrypted chunk needs its keys: see [`ChunkCodec`].
///
/// # Errors
/// As [`decode_verified`], minus the checksum; [`Error::KeyMissing`] for an encrypted
/// chunk.
pub fn decode(stored: Bytes, raw_len: u32) -> Result<Bytes> {
    decode_with(None, None, stored, raw_len)
}

/// The parsed header of a stored chunk.
struct Header {
    flags: u8,
    key: u16,
    raw_len: u32,
}

fn parse_header(stored: &[u8]) -> Result<Header> {
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
    Ok(Header {
        flags,
        key: u16::from_le_bytes([stored[2], stored[3]]),
        raw_len: u32::from_le_bytes([stored[4], stored[5], stored[6], stored[7]]),
    })
}

/// The key id an encrypted chunk is sealed under (`None`: not encrypted, or not a
/// chunk header).
pub fn key_of(stored: &[u8]) -> Option<u16> {
    parse_header(stored)
        .ok()
        .filter(|h| h.flags & FLAG_AEAD != 0)
        .map(|h| h.key)
}

fn decode_with(
    keys: Option<&Keyring>,
    id: Option<&ChunkId>,
    mut stored: Bytes,
    raw_len: u32,
) -> Result<Bytes> {
    let h = parse_header(&stored)?;
    let len = h.raw_len;
    let payload_len = stored.len() - HEADER_LEN;
    let plain_sized = if h.flags & FLAG_AEAD != 0 {
        payload_len.checked_sub(SEAL_OVERHEAD)
    } else {
        Some(payload_len)
    };
    let raw_sized = plain_sized.is_some_and(|n| h.flags & FLAG_ZSTD != 0 || n == len as usize);
    if len != raw_len || !raw_sized {
        return Err(Error::corrupt(
            "chunk",
            format!("header says {len} bytes, index says {raw_len}, payload has {payload_len}"),
        ));
    }
    let payload = if h.flags & FLAG_AEAD != 0 {
        let keys = keys.ok_or(Error::KeyMissing { id: h.key })?;
        let id = id.ok_or(Error::KeyMissing { id: h.key })?;
        let aad = chunk_aad(&stored[..HEADER_LEN], id);
        Bytes::from(keys.open(h.key, &stored[HEADER_LEN..], &aad, "chunk")?)
    } else {
        stored.split_off(HEADER_LEN)
    };
    if h.flags & FLAG_ZSTD == 0 {
        if payload.len() != len as usize {
            return Err(Error::corrupt("chunk", "decrypted payload length mismatch"));
        }
        return Ok(payload);
    }
    decompress(&payload, len as usize)
}

/// Associated data of an encrypted chunk: its header and its id, so a sealed payload
/// neither opens under another header (length, flags, key) nor as another chunk.
fn chunk_aad(header: &[u8], id: &ChunkId) -> [u8; HEADER_LEN + 32] {
    let mut aad = [0u8; HEADER_LEN + 32];
    aad[..HEADER_LEN].copy_from_slice(header);
    aad[HEADER_LEN..].copy_from_slice(&id.0);
    aad
}

thread_local! {
    /// One zstd compression context per thread (and level): creating one per chunk
    /// would cost more than compressing a small chunk.
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// Compresses `src` into `dst` (after what `dst` holds) if the result fits `dst`'s
/// capacity; `false` (and `dst` unchanged) when it does not.
fn compress_into(level: i32, src: &[u8], dst: &mut Vec<u8>) -> bool {
    COMPRESSOR.with_borrow_mut(|slot| {
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            *slot = zstd::bulk::Compressor::new(level).ok().map(|c| (level, c));
        }
        let Some((_, c)) = slot.as_mut() else {
            return false;
        };
        let start = dst.len();
        let mut cur = Cursor::new(std::mem::take(dst));
        cur.set_position(start as u64);
        let ok = c.compress_to_buffer(src, &mut cur).is_ok();
        *dst = cur.into_inner();
        if !ok {
            dst.truncate(start);
        }
        ok
    })
}

/// Whether compression would save at least 1/32 of `len` bytes: the most a kept
/// compressed payload may weigh.
fn saving_bound(len: usize) -> usize {
    len - len / 32
}

fn decompress(payload: &[u8], raw_len: usize) -> Result<Bytes> {
    DECOMPRESSOR.with_borrow_mut(|slot| {
        if slot.is_none() {
            *slot = Some(
                zstd::bulk::Decompressor::new()
                    .map_err(|e| Error::Internal(format!("zstd context: {e}")))?,
            );
        }
        let d = slot.as_mut().expect("set above");
        // The capacity is the recorded raw length: a frame claiming more is refused by
        // zstd instead of growing the buffer.
        let mut out = Vec::with_capacity(raw_len);
        let n = d
            .decompress_to_buffer(payload, &mut out)
            .map_err(|e| Error::corrupt("chunk", format!("zstd payload: {e}")))?;
        if n != raw_len {
            return Err(Error::corrupt(
                "chunk",
                format!("zstd payload holds {n} bytes, header says {raw_len}"),
            ));
        }
        Ok(Bytes::from(out))
    })
}

/// Encodes raw chunk bytes into their stored form (header + raw payload), uncompressed.
pub fn encode(raw: &[u8]) -> Bytes {
    encode_with(raw, Compression::Off)
}

/// Encodes raw chunk bytes into their stored form, compressed as `compression` says
/// when that saves enough (module docs).
pub fn encode_with(raw: &[u8], compression: Compression) -> Bytes {
    let len = u32::try_from(raw.len()).expect("chunks are at most a few MiB");
    let mut v = Vec::new();
    if let Compression::Zstd { level } = compression
        && raw.len() >= MIN_COMPRESS
        && worth_compressing(level, raw)
    {
        v.reserve_exact(HEADER_LEN + saving_bound(raw.len()));
        v.extend_from_slice(&[FORMAT_V1, FLAG_ZSTD, 0, 0]);
        v.extend_from_slice(&len.to_le_bytes());
        // The allocator may round the capacity up: the bound is checked, not assumed.
        if compress_into(level, raw, &mut v) && v.len() - HEADER_LEN <= saving_bound(raw.len()) {
            return Bytes::from(v);
        }
        v.clear();
    }
    v.reserve_exact(stored_len(raw.len()));
    v.extend_from_slice(&[FORMAT_V1, 0, 0, 0]);
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(raw);
    Bytes::from(v)
}

/// The sample test of the module docs: `false` when a large chunk's middle 4 KiB does
/// not shrink by 1/32.
fn worth_compressing(level: i32, raw: &[u8]) -> bool {
    if raw.len() < SAMPLE_FROM {
        return true;
    }
    let mid = raw.len() / 2 - SAMPLE_LEN / 2;
    let sample = &raw[mid..mid + SAMPLE_LEN];
    let mut out = Vec::with_capacity(saving_bound(SAMPLE_LEN));
    compress_into(level, sample, &mut out) && out.len() <= saving_bound(SAMPLE_LEN)
}

/// Whether stored chunk bytes carry a compressed payload (from the header alone).
pub fn is_compressed(stored: &[u8]) -> bool {
    stored.get(1).is_some_and(|f| f & FLAG_ZSTD != 0)
}

/// How one store names and encodes its chunks: compression for new chunks, and with
/// encryption the keyring and the store's id scheme (fixed when the store was created
/// and recorded in the index).
#[derive(Debug, Clone)]
pub struct ChunkCodec {
    /// Compression of new chunks.
    pub compression: Compression,
    /// Keys: new chunks are sealed under the active one; `None` = no encryption.
    pub keys: Option<Arc<Keyring>>,
    /// How chunk ids are derived (the store's scheme: the root tenant's, and every
    /// tenant's with `dedup_scope = global`).
    pub ids: IdScheme,
    /// The id secrets of tenants' own dedup domains (`dedup_scope = tenant`), by
    /// canonical id: what verification falls back to when a chunk's bytes do not hash to
    /// its id under the store's scheme.
    pub domains: DomainSecrets,
}

/// Tenants' dedup domain secrets, shared by every clone of a codec.
pub type DomainSecrets = Arc<Domains>;

/// Tenants' dedup domain secrets, by canonical id. Domains are only ever added (see
/// `crate::identity::DedupDomain`).
#[derive(Default)]
pub struct Domains {
    secrets: std::sync::RwLock<std::collections::BTreeMap<String, [u8; 32]>>,
    /// The secret that named the chunk verified last. Verification runs pack by pack,
    /// and a pack's chunks come from one upload (one domain), so trying it first keeps a
    /// check at one or two hashes however many domains there are.
    last_hit: std::sync::Mutex<Option<[u8; 32]>>,
}

impl std::fmt::Debug for Domains {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets.
        write!(f, "Domains({})", self.read().len())
    }
}

impl Domains {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, std::collections::BTreeMap<String, [u8; 32]>> {
        self.secrets
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds (or replaces) the domain of the tenant with `canonical_id`.
    pub fn insert(&self, canonical_id: String, secret: [u8; 32]) {
        self.secrets
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(canonical_id, secret);
    }

    /// The secret of the tenant with `canonical_id`'s domain.
    pub fn get(&self, canonical_id: &str) -> Option<[u8; 32]> {
        self.read().get(canonical_id).copied()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Whether `id` names `raw` in one of the domains.
    fn names(&self, id: &ChunkId, raw: &[u8]) -> bool {
        let hint = *self
            .last_hit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if hint.is_some_and(|s| IdScheme::Keyed(s).id_of(raw) == *id) {
            return true;
        }
        let found = self
            .read()
            .values()
            .filter(|s| Some(**s) != hint)
            .find(|s| IdScheme::Keyed(**s).id_of(raw) == *id)
            .copied();
        if found.is_some() {
            *self
                .last_hit
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = found;
        }
        found.is_some()
    }
}

impl ChunkCodec {
    /// No encryption, plain SHA-256 ids.
    pub fn plain(compression: Compression) -> Self {
        ChunkCodec {
            compression,
            keys: None,
            ids: IdScheme::Sha256,
            domains: DomainSecrets::default(),
        }
    }

    /// The id scheme of the dedup domain of the tenant with `canonical_id`, if it has one.
    pub fn domain(&self, canonical_id: &str) -> Option<IdScheme> {
        self.domains.get(canonical_id).map(IdScheme::Keyed)
    }

    /// Whether any tenant has a dedup domain of its own.
    pub fn has_domains(&self) -> bool {
        !self.domains.is_empty()
    }

    /// Whether `id` names `raw`: under the store's scheme or a tenant's dedup domain.
    pub fn names(&self, id: &ChunkId, raw: &[u8]) -> bool {
        self.ids.id_of(raw) == *id || self.domains.names(id, raw)
    }

    /// The id of raw chunk bytes.
    pub fn id_of(&self, raw: &[u8]) -> ChunkId {
        self.ids.id_of(raw)
    }

    /// The key id new chunks are sealed under (`None`: stored unencrypted).
    pub fn active_key(&self) -> Option<u16> {
        self.keys.as_ref().map(|k| k.active())
    }

    /// Encodes raw chunk bytes: compressed when that saves, then sealed when encryption
    /// is on.
    pub fn encode(&self, id: &ChunkId, raw: &[u8]) -> Bytes {
        let plain = encode_with(raw, self.compression);
        let Some(keys) = &self.keys else {
            return plain;
        };
        let key = keys.active();
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&plain[..HEADER_LEN]);
        header[1] |= FLAG_AEAD;
        header[2..4].copy_from_slice(&key.to_le_bytes());
        let mut out = Vec::with_capacity(plain.len() + SEAL_OVERHEAD);
        out.extend_from_slice(&header);
        keys.seal_into(key, &plain[HEADER_LEN..], &chunk_aad(&header, id), &mut out);
        Bytes::from(out)
    }

    /// Checks stored bytes against their recorded CRC32C, then decodes them.
    ///
    /// # Errors
    /// As [`decode_verified`]; [`Error::KeyMissing`] for a chunk sealed under a key that
    /// is not configured; [`Error::Corrupt`] when it does not authenticate.
    pub fn decode_verified(
        &self,
        id: &ChunkId,
        stored: Bytes,
        crc: u32,
        raw_len: u32,
    ) -> Result<Bytes> {
        let actual = checksum(&stored);
        if actual != crc {
            return Err(Error::corrupt(
                "chunk",
                format!("crc32c {actual:08x} != recorded {crc:08x}"),
            ));
        }
        decode_with(self.keys.as_deref(), Some(id), stored, raw_len)
    }

    /// [`ChunkCodec::decode_verified`], then re-derives the id from the raw bytes
    /// (scrub, fsck `--read-data`, compaction).
    ///
    /// # Errors
    /// As `decode_verified`; [`Error::Corrupt`] when the id differs.
    pub fn verify(&self, id: &ChunkId, stored: Bytes, crc: u32, raw_len: u32) -> Result<Bytes> {
        let raw = self.decode_verified(id, stored, crc, raw_len)?;
        if !self.names(id, &raw) {
            return Err(Error::corrupt(
                "chunk",
                "the bytes do not hash to the chunk's id",
            ));
        }
        Ok(raw)
    }

    /// Whether a stored chunk is already in the form new chunks get (sealed under the
    /// active key, or unencrypted without keys): what `rekey` leaves alone.
    pub fn is_current(&self, stored: &[u8]) -> bool {
        key_of(stored) == self.active_key()
    }
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

    fn compressible(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| b"the quick brown fox "[i % 20] ^ (i / 997) as u8)
            .collect()
    }

    #[test]
    fn compressed_round_trip_and_detects_flips() {
        let z = Compression::Zstd { level: 3 };
        for n in [200, 5000, 20_000, 70_000] {
            let raw = compressible(n);
            let stored = encode_with(&raw, z);
            assert!(is_compressed(&stored), "{n} bytes of text compress");
            assert!(stored.len() < raw.len() / 4, "{n}: {}", stored.len());
            let crc = checksum(&stored);
            let back = decode_verified(stored.clone(), crc, n as u32).unwrap();
            assert_eq!(&back[..], &raw[..]);
            // Past the CRC (which catches every flip), the decoder itself refuses a
            // damaged payload or a wrong length rather than returning other bytes.
            assert!(decode(stored.clone(), n as u32 + 1).is_err());
            let mut bad = stored.to_vec();
            let last = bad.len() - 1;
            bad[last] ^= 0xff;
            bad.truncate(last - 3);
            assert!(decode(Bytes::from(bad), n as u32).is_err());
            for i in (0..stored.len()).step_by(7) {
                let mut bad = stored.to_vec();
                bad[i] ^= 0x10;
                assert!(decode_verified(Bytes::from(bad), crc, n as u32).is_err());
            }
        }
    }

    #[test]
    fn incompressible_and_small_chunks_stay_raw() {
        let z = Compression::Zstd { level: 3 };
        let mut random = vec![0u8; 64 << 10];
        rand::fill(&mut random[..]);
        for raw in [&random[..], &random[..1000], &b"tiny"[..]] {
            let stored = encode_with(raw, z);
            assert!(!is_compressed(&stored));
            assert_eq!(stored, encode(raw));
        }
        // Off means off, however compressible.
        assert!(!is_compressed(&encode_with(
            &compressible(70_000),
            Compression::Off
        )));
        // A chunk that compresses by less than 1/32 is stored raw: half random, half
        // zeros compresses; 31/32 random does not.
        let mut mostly = random.clone();
        mostly[..1 << 10].fill(0);
        assert!(!is_compressed(&encode_with(&mostly, z)));
    }

    #[test]
    fn id_is_sha256() {
        assert_eq!(
            ChunkId::of(b"abc").to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
