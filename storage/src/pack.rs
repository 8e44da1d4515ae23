//! Packs: many stored chunks in one backing-store blob.
//!
//! ```text
//! "S3DPACK1"                                  8-byte magic
//! chunk 0 | chunk 1 | …                       stored chunks (see `chunk`)
//! table: per chunk: id (32) | offset u64 | stored_len u32 | crc32c u32     (48 bytes each)
//! trailer: table_offset u64 | count u32 | table crc32c u32 | version u16 | key u16 | "S3DPEND1"
//! ```
//!
//! The table makes a pack self-describing: the chunk index can be rebuilt from the store
//! alone. All integers are little endian. Building and parsing are pure.
//!
//! Version 1 has a plain table and `key` 0. Version 2 (written with encryption on) seals
//! the table under key `key`: the table region is nonce (12) | the sealed entries | tag
//! (16), with the pack id as associated data, so the pack reveals neither chunk ids nor
//! which chunk lies where; the CRC32C then covers the sealed region.

use std::time::{SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use bytes::Bytes;

use crate::chunk;
use crate::crypto::{Keyring, SEAL_OVERHEAD};
use crate::error::{Error, Result};
use crate::id::ChunkId;

const MAGIC: &[u8; 8] = b"S3DPACK1";
const END_MAGIC: &[u8; 8] = b"S3DPEND1";
const VERSION_PLAIN: u16 = 1;
const VERSION_SEALED: u16 = 2;
const ENTRY_LEN: usize = 48;
/// Length of the fixed pack trailer.
pub const TRAILER_LEN: usize = 8 + 4 + 4 + 2 + 2 + 8;

/// One chunk as listed in a pack's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackEntry {
    /// Chunk id.
    pub id: ChunkId,
    /// Offset of its stored bytes in the pack.
    pub offset: u64,
    /// Stored length.
    pub stored_len: u32,
    /// CRC32C of the stored bytes.
    pub crc: u32,
}

/// Bytes of a pack of `chunks` chunks that are not chunk data: magic, table, trailer.
pub fn overhead(chunks: u32) -> u64 {
    (MAGIC.len() + TRAILER_LEN) as u64 + u64::from(chunks) * ENTRY_LEN as u64
}

/// Allocates a pack id: milliseconds since the epoch in the top 48 bits (so GC can tell
/// a pack's age from its name) and 80 random bits.
pub fn new_pack_id() -> u128 {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis()) as u64;
    (u128::from(ms & 0xFFFF_FFFF_FFFF) << 80) | (rand::random::<u128>() >> 48)
}

/// Creation time (ms) encoded in a pack id.
pub fn pack_id_ms(id: u128) -> u64 {
    (id >> 80) as u64
}

/// Prefix of every pack's blob name.
pub const PACKS_PREFIX: &str = "packs/";

/// Backing-store name of a pack. Derived from the id only; nothing client-controlled.
pub fn blob_name(id: u128) -> String {
    format!("{PACKS_PREFIX}{:02x}/{id:032x}.pack", (id & 0xff) as u8)
}

/// Parses a blob name back into a pack id (`None` for anything else).
pub fn parse_blob_name(name: &str) -> Option<u128> {
    let file = name.strip_prefix("packs/")?.split_once('/')?.1;
    let hexid = file.strip_suffix(".pack")?;
    if hexid.len() != 32 {
        return None;
    }
    let id = u128::from_str_radix(hexid, 16).ok()?;
    (blob_name(id) == name).then_some(id)
}

/// Encodes one pack as a stream of pieces, without holding the pack in memory: write
/// [`PackEncoder::start`], then each piece [`PackEncoder::push`] returns, then the tail
/// [`PackEncoder::finish`] returns.
#[derive(Debug)]
pub struct PackEncoder {
    id: u128,
    len: u64,
    entries: Vec<PackEntry>,
    keys: Option<Arc<Keyring>>,
}

impl PackEncoder {
    /// A new pack with a plain table; returns it and its first bytes (the magic).
    pub fn start() -> (Self, Bytes) {
        Self::start_sealed(None)
    }

    /// A new pack whose table is sealed under the active key of `keys` (plain without).
    pub fn start_sealed(keys: Option<Arc<Keyring>>) -> (Self, Bytes) {
        let enc = PackEncoder {
            id: new_pack_id(),
            len: MAGIC.len() as u64,
            entries: Vec::new(),
            keys,
        };
        (enc, Bytes::from_static(MAGIC))
    }

    /// The pack's id.
    pub fn id(&self) -> u128 {
        self.id
    }

    /// Bytes so far (without the table).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no chunk was added yet.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds a chunk; returns its entry (offset, stored length, checksum) and its stored
    /// bytes, which go next in the pack.
    pub fn push(&mut self, id: ChunkId, raw: &[u8]) -> (PackEntry, Bytes) {
        let stored = chunk::encode(raw);
        let entry = PackEntry {
            id,
            offset: self.len,
            stored_len: u32::try_from(stored.len()).expect("chunk fits u32"),
            crc: chunk::checksum(&stored),
        };
        self.len += stored.len() as u64;
        self.entries.push(entry);
        (entry, stored)
    }

    /// Adds a chunk already in its stored form (compaction copies chunks between packs
    /// verbatim); `crc` is its stored bytes' CRC32C, already verified by the caller.
    pub fn push_stored(&mut self, id: ChunkId, stored: Bytes, crc: u32) -> (PackEntry, Bytes) {
        let entry = PackEntry {
            id,
            offset: self.len,
            stored_len: u32::try_from(stored.len()).expect("chunk fits u32"),
            crc,
        };
        self.len += stored.len() as u64;
        self.entries.push(entry);
        (entry, stored)
    }

    /// Ends the pack; returns its id, its last bytes (table and trailer) and its entries.
    pub fn finish(self) -> (u128, Bytes, Vec<PackEntry>) {
        let mut table = Vec::with_capacity(self.entries.len() * ENTRY_LEN);
        for e in &self.entries {
            table.extend_from_slice(&e.id.0);
            table.extend_from_slice(&e.offset.to_le_bytes());
            table.extend_from_slice(&e.stored_len.to_le_bytes());
            table.extend_from_slice(&e.crc.to_le_bytes());
        }
        let (version, key, mut tail) = match &self.keys {
            None => (VERSION_PLAIN, 0, table),
            Some(keys) => {
                let key = keys.active();
                let mut sealed = Vec::with_capacity(table.len() + SEAL_OVERHEAD + TRAILER_LEN);
                keys.seal_into(key, &table, &table_aad(self.id), &mut sealed);
                (VERSION_SEALED, key, sealed)
            }
        };
        let table_crc = crc32c::crc32c(&tail);
        let count = u32::try_from(self.entries.len()).expect("pack chunk count fits u32");
        tail.extend_from_slice(&self.len.to_le_bytes());
        tail.extend_from_slice(&count.to_le_bytes());
        tail.extend_from_slice(&table_crc.to_le_bytes());
        tail.extend_from_slice(&version.to_le_bytes());
        tail.extend_from_slice(&key.to_le_bytes());
        tail.extend_from_slice(END_MAGIC);
        (self.id, Bytes::from(tail), self.entries)
    }
}

/// Builds a whole pack in memory (tests, fixtures, tools); the engine streams packs
/// with [`PackEncoder`] instead.
#[derive(Debug)]
pub struct PackBuilder {
    enc: PackEncoder,
    buf: Vec<u8>,
}

impl PackBuilder {
    /// A new empty pack with room for `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        let (enc, magic) = PackEncoder::start();
        let mut buf = Vec::with_capacity(capacity + TRAILER_LEN);
        buf.extend_from_slice(&magic);
        PackBuilder { enc, buf }
    }

    /// Appends a chunk; returns its entry (offset, stored length, checksum).
    pub fn push(&mut self, id: ChunkId, raw: &[u8]) -> PackEntry {
        let (entry, stored) = self.enc.push(id, raw);
        self.buf.extend_from_slice(&stored);
        entry
    }

    /// Appends the table and trailer; returns the blob bytes and the entries.
    pub fn finish(mut self) -> (u128, Bytes, Vec<PackEntry>) {
        let (id, tail, entries) = self.enc.finish();
        self.buf.extend_from_slice(&tail);
        (id, Bytes::from(self.buf), entries)
    }
}

/// Where a pack's table lies, read from its trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// Offset of the table.
    pub table_offset: u64,
    /// Number of entries.
    pub count: u32,
    /// CRC32C of the table bytes.
    pub table_crc: u32,
    /// The key the table is sealed under (version 2), `None` for a plain table.
    pub key: Option<u16>,
}

impl Trailer {
    /// Bytes of the table region.
    pub fn table_len(&self) -> u64 {
        u64::from(self.count) * ENTRY_LEN as u64
            + if self.key.is_some() {
                SEAL_OVERHEAD as u64
            } else {
                0
            }
    }
}

/// Associated data of a sealed table: it opens only as the table of its own pack.
fn table_aad(pack: u128) -> [u8; 32] {
    let mut aad = [0u8; 32];
    aad[..16].copy_from_slice(b"s3dedup table v2");
    aad[16..].copy_from_slice(&pack.to_le_bytes());
    aad
}

/// Parses the trailer (the last [`TRAILER_LEN`] bytes of a pack of `pack_len` bytes).
///
/// # Errors
/// [`Error::Corrupt`] on bad magic or bounds; [`Error::UnsupportedFormat`] on a newer version.
pub fn parse_trailer(tail: &[u8], pack_len: u64) -> Result<Trailer> {
    if tail.len() != TRAILER_LEN || pack_len < (MAGIC.len() + TRAILER_LEN) as u64 {
        return Err(Error::corrupt("pack", "too short for a trailer"));
    }
    if &tail[20..28] != END_MAGIC {
        return Err(Error::corrupt(
            "pack",
            "bad trailer magic (truncated pack?)",
        ));
    }
    let version = u16::from_le_bytes([tail[16], tail[17]]);
    let key = u16::from_le_bytes([tail[18], tail[19]]);
    let key = match version {
        VERSION_PLAIN => None,
        VERSION_SEALED => Some(key),
        _ => {
            return Err(Error::UnsupportedFormat {
                what: "pack",
                version: version.into(),
            });
        }
    };
    let t = Trailer {
        table_offset: u64::from_le_bytes(tail[0..8].try_into().expect("8 bytes")),
        count: u32::from_le_bytes(tail[8..12].try_into().expect("4 bytes")),
        table_crc: u32::from_le_bytes(tail[12..16].try_into().expect("4 bytes")),
        key,
    };
    // Stored numbers: checked arithmetic, a crafted offset must not wrap around.
    let table_end = t
        .table_len()
        .checked_add(t.table_offset)
        .and_then(|e| e.checked_add(TRAILER_LEN as u64));
    if t.table_offset < MAGIC.len() as u64 || table_end != Some(pack_len) {
        return Err(Error::corrupt(
            "pack",
            "table bounds disagree with pack size",
        ));
    }
    Ok(t)
}

/// Parses the table bytes of pack `id`, checking its checksum, opening it when it is
/// sealed, and checking every entry's bounds.
///
/// # Errors
/// [`Error::Corrupt`]; [`Error::KeyMissing`] for a sealed table without its key.
pub fn parse_table(
    table: &[u8],
    trailer: &Trailer,
    id: u128,
    keys: Option<&Keyring>,
) -> Result<Vec<PackEntry>> {
    if table.len() as u64 != trailer.table_len() {
        return Err(Error::corrupt("pack", "table length mismatch"));
    }
    if crc32c::crc32c(table) != trailer.table_crc {
        return Err(Error::corrupt("pack", "table checksum mismatch"));
    }
    let opened;
    let table = match trailer.key {
        None => table,
        Some(key) => {
            let keys = keys.ok_or(Error::KeyMissing { id: key })?;
            opened = keys.open(key, table, &table_aad(id), "pack table")?;
            &opened[..]
        }
    };
    let entries: Vec<PackEntry> = table
        .chunks_exact(ENTRY_LEN)
        .map(|e| PackEntry {
            id: ChunkId(e[0..32].try_into().expect("32 bytes")),
            offset: u64::from_le_bytes(e[32..40].try_into().expect("8 bytes")),
            stored_len: u32::from_le_bytes(e[40..44].try_into().expect("4 bytes")),
            crc: u32::from_le_bytes(e[44..48].try_into().expect("4 bytes")),
        })
        .collect();
    for e in &entries {
        let end = e.offset.checked_add(u64::from(e.stored_len));
        if e.offset < MAGIC.len() as u64 || end.is_none_or(|end| end > trailer.table_offset) {
            return Err(Error::corrupt(
                "pack",
                format!("entry {} out of bounds", e.id),
            ));
        }
    }
    Ok(entries)
}

/// Parses a whole plain pack held in memory: magic, trailer and table.
///
/// # Errors
/// [`Error::Corrupt`] or [`Error::UnsupportedFormat`]; [`Error::KeyMissing`] for a pack
/// with a sealed table (see [`parse_sealed`]).
pub fn parse(pack: &[u8]) -> Result<Vec<PackEntry>> {
    parse_sealed(pack, 0, None)
}

/// Parses a whole pack `id` held in memory, opening a sealed table with `keys`.
///
/// # Errors
/// As [`parse`]; [`Error::Corrupt`] when a sealed table does not authenticate.
pub fn parse_sealed(pack: &[u8], id: u128, keys: Option<&Keyring>) -> Result<Vec<PackEntry>> {
    if pack.len() < MAGIC.len() + TRAILER_LEN || &pack[..MAGIC.len()] != MAGIC {
        return Err(Error::corrupt("pack", "bad magic"));
    }
    let trailer = parse_trailer(&pack[pack.len() - TRAILER_LEN..], pack.len() as u64)?;
    let start = trailer.table_offset as usize;
    parse_table(&pack[start..pack.len() - TRAILER_LEN], &trailer, id, keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (u128, Bytes, Vec<PackEntry>) {
        let mut b = PackBuilder::new(1024);
        for i in 0..5u8 {
            let raw = vec![i; 100 + usize::from(i)];
            b.push(ChunkId::of(&raw), &raw);
        }
        b.finish()
    }

    #[test]
    fn round_trip() {
        let (_, bytes, entries) = sample();
        assert_eq!(parse(&bytes).unwrap(), entries);
        for (i, e) in entries.iter().enumerate() {
            let stored =
                bytes.slice(e.offset as usize..(e.offset + u64::from(e.stored_len)) as usize);
            let raw = chunk::decode_verified(stored, e.crc, 100 + i as u32).unwrap();
            assert_eq!(ChunkId::of(&raw), e.id);
        }
    }

    #[test]
    fn truncation_and_corruption_are_detected() {
        let (_, bytes, _) = sample();
        for cut in [1, 7, TRAILER_LEN, 60, bytes.len() - 9] {
            assert!(parse(&bytes[..bytes.len() - cut]).is_err(), "cut {cut}");
        }
        let table_byte = bytes.len() - TRAILER_LEN - 3;
        let mut bad = bytes.to_vec();
        bad[table_byte] ^= 1;
        assert!(matches!(parse(&bad), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn sealed_tables_open_only_with_their_key_and_pack() {
        let keys = Arc::new(Keyring::generate());
        let (mut enc, magic) = PackEncoder::start_sealed(Some(Arc::clone(&keys)));
        let mut bytes = magic.to_vec();
        let raw = b"some chunk bytes";
        let (_, stored) = enc.push(ChunkId::of(raw), raw);
        bytes.extend_from_slice(&stored);
        let (id, tail, entries) = enc.finish();
        bytes.extend_from_slice(&tail);
        assert!(
            !bytes.windows(32).any(|w| w == ChunkId::of(raw).0),
            "the sealed table does not show the chunk id"
        );
        assert_eq!(parse_sealed(&bytes, id, Some(&keys)).unwrap(), entries);
        assert!(matches!(parse(&bytes), Err(Error::KeyMissing { id: 1 })));
        assert!(
            parse_sealed(&bytes, id ^ 1, Some(&keys)).is_err(),
            "another pack's id"
        );
        let other = Keyring::generate();
        assert!(
            parse_sealed(&bytes, id, Some(&other)).is_err(),
            "another key"
        );
        let table_byte = bytes.len() - TRAILER_LEN - 3;
        bytes[table_byte] ^= 1;
        assert!(parse_sealed(&bytes, id, Some(&keys)).is_err());
    }

    #[test]
    fn names_round_trip() {
        let id = new_pack_id();
        assert_eq!(parse_blob_name(&blob_name(id)), Some(id));
        assert!(parse_blob_name("packs/00/../../etc.pack").is_none());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        assert!(now.abs_diff(pack_id_ms(id)) < 60_000);
    }
}
