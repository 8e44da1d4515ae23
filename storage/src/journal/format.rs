//! The container every journal blob is written in: journal segments, snapshot parts
//! and snapshot manifests.
//!
//! ```text
//! magic 8 ("S3DJSEG1" segment | "S3DJSNP1" snapshot part | "S3DJSNM1" snapshot manifest)
//! version u16 (1) | flags u16 (bit 0: zstd, bit 1: sealed) | key u16
//! store_id: len u16 | bytes
//! first u64 | last u64 | count u32 | created_ms u64 | raw_len u32 | payload_len u32
//! payload (zstd of the raw payload; sealed: nonce | ciphertext | tag)
//! crc32c u32 of everything before
//! ```
//!
//! Sealed payloads use the blob's name and every header byte as associated data: a
//! segment cannot be moved to another name, store or sequence range without failing
//! to authenticate. The CRC32C catches damage before any decryption is tried, and the
//! raw length bounds decompression (a damaged length cannot ask for unbounded memory).

use crate::crypto::Keyring;
use crate::error::{Error, Result};

const VERSION: u16 = 1;
const FLAG_ZSTD: u16 = 1;
const FLAG_SEALED: u16 = 2;
/// Raw payloads above this are refused (a writer cuts segments and parts far below).
pub(crate) const MAX_RAW: usize = 256 << 20;
const ZSTD_LEVEL: i32 = 3;

/// What a journal blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Journal entries `first..=last`.
    Segment,
    /// Part of a snapshot: the state's records.
    SnapshotPart,
    /// A snapshot's manifest: written last, lists its parts.
    SnapshotManifest,
}

impl Kind {
    fn magic(self) -> &'static [u8; 8] {
        match self {
            Kind::Segment => b"S3DJSEG1",
            Kind::SnapshotPart => b"S3DJSNP1",
            Kind::SnapshotManifest => b"S3DJSNM1",
        }
    }
}

/// A journal blob's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    /// The store it belongs to (its `s3dedup-store-id`).
    pub(crate) store_id: String,
    /// First sequence number covered (a snapshot: the sequence it is taken at).
    pub(crate) first: u64,
    /// Last sequence number covered.
    pub(crate) last: u64,
    /// Items in the payload.
    pub(crate) count: u32,
    /// When it was written.
    pub(crate) created_ms: u64,
    /// Key the payload is sealed under (`None` = plaintext).
    pub(crate) key: Option<u16>,
}

fn header_bytes(kind: Kind, h: &Header, flags: u16, raw_len: u32, payload_len: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(64 + h.store_id.len());
    b.extend_from_slice(kind.magic());
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&flags.to_le_bytes());
    b.extend_from_slice(&h.key.unwrap_or(0).to_le_bytes());
    let id = h.store_id.as_bytes();
    b.extend_from_slice(
        &u16::try_from(id.len())
            .expect("store id is short")
            .to_le_bytes(),
    );
    b.extend_from_slice(id);
    b.extend_from_slice(&h.first.to_le_bytes());
    b.extend_from_slice(&h.last.to_le_bytes());
    b.extend_from_slice(&h.count.to_le_bytes());
    b.extend_from_slice(&h.created_ms.to_le_bytes());
    b.extend_from_slice(&raw_len.to_le_bytes());
    b.extend_from_slice(&payload_len.to_le_bytes());
    b
}

/// Associated data of a sealed payload: the blob name and the header.
fn aad(name: &str, header: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(name.len() + 1 + header.len());
    a.extend_from_slice(name.as_bytes());
    a.push(0);
    a.extend_from_slice(header);
    a
}

/// Writes a blob of `kind` named `name` holding `raw`, compressed and (with `keys`)
/// sealed under the active key. `header.key` is set from `keys`.
pub(crate) fn seal(
    kind: Kind,
    name: &str,
    mut header: Header,
    raw: &[u8],
    keys: Option<&Keyring>,
) -> Vec<u8> {
    assert!(
        raw.len() <= MAX_RAW,
        "journal blobs are cut below {MAX_RAW} bytes"
    );
    let compressed = zstd::bulk::compress(raw, ZSTD_LEVEL).expect("zstd compresses any input");
    header.key = keys.map(Keyring::active);
    let flags = FLAG_ZSTD | if keys.is_some() { FLAG_SEALED } else { 0 };
    let payload_len = compressed.len() + keys.map_or(0, |_| crate::crypto::SEAL_OVERHEAD);
    let head = header_bytes(
        kind,
        &header,
        flags,
        raw.len() as u32,
        u32::try_from(payload_len).expect("bounded"),
    );
    let mut out = head.clone();
    match keys {
        Some(k) => k.seal_into(k.active(), &compressed, &aad(name, &head), &mut out),
        None => out.extend_from_slice(&compressed),
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| Error::corrupt("journal blob", "header is truncated"))?;
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2")))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
}

/// A blob's header, read and checked (CRC, kind, version, flags, bounds), with where
/// its payload is.
struct Parsed<'a> {
    header: Header,
    flags: u16,
    raw_len: usize,
    /// The header bytes (associated data of a sealed payload).
    head: &'a [u8],
    payload: &'a [u8],
}

fn parse<'a>(kind: Kind, name: &str, blob: &'a [u8]) -> Result<Parsed<'a>> {
    let what = "journal blob";
    let Some(split) = blob.len().checked_sub(4) else {
        return Err(Error::corrupt(
            what,
            format!("{name}: {} bytes", blob.len()),
        ));
    };
    let (body, crc) = blob.split_at(split);
    let want = u32::from_le_bytes(crc.try_into().expect("4 bytes"));
    if crc32c::crc32c(body) != want {
        return Err(Error::corrupt(
            what,
            format!("{name}: checksum mismatch (damaged or truncated)"),
        ));
    }
    let mut c = Cursor { buf: body, at: 0 };
    if c.take(8)? != kind.magic() {
        return Err(Error::corrupt(what, format!("{name}: not a {kind:?} blob")));
    }
    let version = c.u16()?;
    if version != VERSION {
        return Err(Error::UnsupportedFormat {
            what: "journal blob",
            version: version.into(),
        });
    }
    let flags = c.u16()?;
    let key = c.u16()?;
    let id_len = c.u16()? as usize;
    let store_id = String::from_utf8_lossy(c.take(id_len)?).into_owned();
    let header = Header {
        store_id,
        first: c.u64()?,
        last: c.u64()?,
        count: c.u32()?,
        created_ms: c.u64()?,
        key: (flags & FLAG_SEALED != 0).then_some(key),
    };
    let raw_len = c.u32()? as usize;
    let payload_len = c.u32()? as usize;
    let head_len = c.at;
    let payload = c.take(payload_len)?;
    if c.at != body.len() {
        return Err(Error::corrupt(what, format!("{name}: trailing bytes")));
    }
    if flags & !(FLAG_ZSTD | FLAG_SEALED) != 0 {
        return Err(Error::corrupt(
            what,
            format!("{name}: unknown flags {flags:#x}"),
        ));
    }
    Ok(Parsed {
        header,
        flags,
        raw_len,
        head: &body[..head_len],
        payload,
    })
}

/// The store id a blob's header names (checksum, kind and version checked; the
/// payload is not opened, so no key is needed).
///
/// # Errors
/// As [`open`] for the header.
pub(crate) fn store_id(kind: Kind, name: &str, blob: &[u8]) -> Result<String> {
    Ok(parse(kind, name, blob)?.header.store_id)
}

/// Reads a blob written by [`seal`]: checks its CRC, kind, version and (when
/// `expected_store` is given) store identity, then authenticates and decompresses it.
///
/// # Errors
/// [`Error::Corrupt`] for damage or truncation; [`Error::UnsupportedFormat`] for a newer
/// version; [`Error::JournalForeign`] for another store's blob;
/// [`Error::EncryptionRequired`] for a sealed blob without keys; [`Error::KeyMissing`].
pub(crate) fn open(
    kind: Kind,
    name: &str,
    blob: &[u8],
    expected_store: Option<&str>,
    keys: Option<&Keyring>,
) -> Result<(Header, Vec<u8>)> {
    let what = "journal blob";
    let Parsed {
        header,
        flags,
        raw_len,
        head,
        payload,
    } = parse(kind, name, blob)?;
    if let Some(expected) = expected_store
        && expected != header.store_id
    {
        return Err(Error::JournalForeign {
            blob: name.to_owned(),
            found: header.store_id,
            expected: expected.to_owned(),
        });
    }
    if raw_len > MAX_RAW {
        return Err(Error::corrupt(
            what,
            format!("{name}: raw length {raw_len}"),
        ));
    }
    let opened;
    let compressed = match header.key {
        None => payload,
        Some(id) => {
            let keys = keys.ok_or_else(|| Error::EncryptionRequired {
                detail: format!("journal blob {name} is sealed under key {id}"),
            })?;
            opened = keys.open(id, payload, &aad(name, head), "journal blob")?;
            &opened[..]
        }
    };
    let raw = if flags & FLAG_ZSTD != 0 {
        zstd::bulk::decompress(compressed, raw_len)
            .map_err(|e| Error::corrupt(what, format!("{name}: zstd: {e}")))?
    } else {
        compressed.to_vec()
    };
    if raw.len() != raw_len {
        return Err(Error::corrupt(
            what,
            format!("{name}: {} bytes, header says {raw_len}", raw.len()),
        ));
    }
    Ok((header, raw))
}

/// Appends a length-prefixed item to a raw payload.
pub(crate) fn push_item(raw: &mut Vec<u8>, item: &[u8]) {
    raw.extend_from_slice(
        &u32::try_from(item.len())
            .expect("items are small")
            .to_le_bytes(),
    );
    raw.extend_from_slice(item);
}

/// Splits a raw payload into its length-prefixed items.
///
/// # Errors
/// [`Error::Corrupt`] when a length runs past the end.
pub(crate) fn items(raw: &[u8]) -> Result<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < raw.len() {
        let len = raw
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4")) as usize)
            .ok_or_else(|| Error::corrupt("journal blob", "item length is truncated"))?;
        at += 4;
        let item = raw
            .get(at..at + len)
            .ok_or_else(|| Error::corrupt("journal blob", "item is truncated"))?;
        out.push(item);
        at += len;
    }
    Ok(out)
}
