//! Versioned encodings of everything stored in the redb index.
//!
//! Every value starts with a format version byte; `decode` refuses versions it does not
//! know instead of guessing. Version 2 of every record is version 1's layout followed by
//! a CRC32C of the encoded bytes, checked on every decode; version 1 records (written
//! before checksums existed) still decode. `tests/formats.rs` decodes fixtures written
//! by version 1 so a layout change that would misread old data fails the build's tests.
//!
//! Decoders never trust a length or a count: each is checked against the bytes that
//! remain before anything is allocated, and a failure is an [`Error::Corrupt`] value.

use std::fmt;

use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::id::ChunkId;
use crate::lock::LockConfig;
use crate::versions::{Version, Versioning};

mod upload;
pub use upload::{ChecksumSpec, CompletedUploadRecord, PartInfo, PartRecord, UploadRecord};
use upload::{read_parts, write_parts};

/// Layout without a checksum (read only).
const V1: u8 = 1;
/// The same layout, sealed with a CRC32C (what most records are written as).
const V2: u8 = 2;
/// Chunk and pack records with the fields GC and scrub need (a chunk's damage flag;
/// a pack's live accounting and deletion state); object records with their version;
/// bucket records with their versioning state; upload records with their lock request.
/// Sealed as V2.
const V3: u8 = 3;
/// Upload records with the ACL their object gets. Sealed as V2.
const V4: u8 = 4;
/// Object records with their part table (multipart objects); upload records with the
/// checksum their object gets. Sealed as V2. (No object record is version 4.)
const V5: u8 = 5;

/// An S3 ETag: hex MD5 of the object, or MD5 of the part MD5s with `-N` for multipart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Etag {
    /// The MD5 (of the bytes, or of the concatenated part MD5s).
    pub md5: [u8; 16],
    /// Number of parts for a multipart object; 0 for a single PUT.
    pub parts: u32,
}

impl fmt::Display for Etag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.md5))?;
        if self.parts > 0 {
            write!(f, "-{}", self.parts)?;
        }
        Ok(())
    }
}

impl Etag {
    /// Whether `s` (optionally quoted, or `*`) names this ETag.
    pub fn matches(&self, s: &str) -> bool {
        let s = s.trim();
        s == "*" || s.trim_matches('"') == self.to_string()
    }
}

/// Client-visible object metadata, stored verbatim.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// Other standard headers kept with the object (Cache-Control, Content-Disposition,
    /// Content-Encoding, Content-Language, Expires …), as lowercase name → value.
    pub headers: Vec<(String, String)>,
    /// User metadata (`x-amz-meta-*`), lowercase name without the prefix → value.
    pub user: Vec<(String, String)>,
    /// Checksums computed by the gateway, algorithm name (e.g. `CRC32C`) → value as
    /// returned to clients.
    pub checksums: Vec<(String, String)>,
}

impl ObjectMeta {
    fn write(&self, w: &mut Writer) {
        w.opt_str(self.content_type.as_deref())
            .pairs(&self.headers)
            .pairs(&self.user)
            .pairs(&self.checksums);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(ObjectMeta {
            content_type: r.opt_string()?,
            headers: r.pairs()?,
            user: r.pairs()?,
            checksums: r.pairs()?,
        })
    }
}

/// A committed object version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRecord {
    /// Size in bytes.
    pub size: u64,
    /// Its ETag.
    pub etag: Etag,
    /// Last-modified time, milliseconds since the Unix epoch.
    pub mtime_ms: u64,
    /// Metadata.
    pub meta: ObjectMeta,
    /// Where its manifest lives (table `manifests`).
    pub manifest: ManifestRef,
    /// Which version of its key it is ([`Version::LEGACY`] for records written
    /// before versions existed).
    pub version: Version,
    /// A multipart object's parts in order (empty for a single PUT, and for multipart
    /// objects recorded before part tables existed).
    pub parts: Vec<PartInfo>,
}

/// Handle of a manifest stored in segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManifestRef {
    /// Manifest id (unique per object version or part).
    pub id: u64,
    /// Number of slices over all segments.
    pub slices: u64,
}

impl ObjectRecord {
    /// Encodes the record (version 5: version 2's layout, the version, the part table).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(V5)
            .u64(self.size)
            .raw(&self.etag.md5)
            .u32(self.etag.parts)
            .u64(self.mtime_ms)
            .u64(self.manifest.id)
            .u64(self.manifest.slices);
        self.meta.write(&mut w);
        self.version.write(&mut w);
        write_parts(&mut w, &self.parts);
        w.seal()
    }

    /// Decodes a record.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::UnsupportedFormat`].
    pub fn decode(b: &[u8]) -> Result<Self> {
        let (v, mut r) = Reader::open_versions(b, "object record", V1, V2..=V5)?;
        if v == V4 {
            return Err(Error::UnsupportedFormat {
                what: "object record",
                version: u32::from(v),
            });
        }
        let mut rec = ObjectRecord {
            size: r.u64()?,
            etag: Etag {
                md5: r.array()?,
                parts: r.u32()?,
            },
            mtime_ms: r.u64()?,
            manifest: ManifestRef {
                id: r.u64()?,
                slices: r.u64()?,
            },
            meta: ObjectMeta::read(&mut r)?,
            version: Version::LEGACY,
            parts: Vec::new(),
        };
        if v >= V3 {
            rec.version = Version::read(&mut r)?;
        }
        if v >= V5 {
            rec.parts = read_parts(&mut r)?;
        }
        r.finish()?;
        Ok(rec)
    }
}

/// A bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketRecord {
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
    /// Owning tenant ("" until tenants exist).
    pub owner: String,
    /// Versioning state.
    pub versioning: Versioning,
    /// Object lock configuration.
    pub lock: LockConfig,
}

impl BucketRecord {
    /// Encodes the record (version 2, or 3 with the versioning state and object lock
    /// configuration once versioning was ever set — object lock needs it — so that
    /// buckets that never used versions keep their old encoding).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        if self.versioning == Versioning::Unversioned && self.lock == LockConfig::default() {
            w.u8(V2).u64(self.created_ms).str(&self.owner);
        } else {
            w.u8(V3)
                .u64(self.created_ms)
                .str(&self.owner)
                .u8(self.versioning.to_u8());
            self.lock.write(&mut w);
        }
        w.seal()
    }
    /// Decodes a record.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::UnsupportedFormat`].
    pub fn decode(b: &[u8]) -> Result<Self> {
        let (v, mut r) = Reader::open_versions(b, "bucket record", V1, V2..=V3)?;
        let mut rec = BucketRecord {
            created_ms: r.u64()?,
            owner: r.string()?,
            versioning: Versioning::Unversioned,
            lock: LockConfig::default(),
        };
        if v == V3 {
            rec.versioning = Versioning::from_u8(r.u8()?)?;
            rec.lock = LockConfig::read(&mut r)?;
        }
        r.finish()?;
        Ok(rec)
    }
}

/// Life-cycle state of a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkState {
    /// Referenced (refcount > 0).
    Live,
    /// Unreferenced since this time (ms); queued for GC after the grace period.
    Zero {
        /// When the refcount reached zero.
        since_ms: u64,
    },
    /// GC has claimed it; uploads must not reuse it.
    Deleting,
}

/// Where a chunk's stored bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// In a pack blob.
    Pack {
        /// Pack id (its blob name derives from it).
        pack: u128,
        /// Offset of the stored chunk in the pack.
        offset: u64,
        /// Stored length (header + payload).
        stored_len: u32,
    },
    /// Stored in the index itself (small chunks): the stored form, header included.
    Inline(Vec<u8>),
}

/// Index entry of a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRecord {
    /// References held by committed objects and multipart parts.
    pub refcount: u64,
    /// State.
    pub state: ChunkState,
    /// Raw (decoded) length.
    pub raw_len: u32,
    /// CRC32C of the stored bytes.
    pub crc: u32,
    /// Where it is stored.
    pub location: Location,
    /// Scrub (or a read) found its stored bytes damaged: reads fail fast and the next
    /// upload of the same content stores it again (version 3; older records: `false`).
    pub damaged: bool,
}

impl ChunkRecord {
    /// Encodes the record (version 3).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(V3).u64(self.refcount);
        match self.state {
            ChunkState::Live => w.u8(0).u64(0),
            ChunkState::Zero { since_ms } => w.u8(1).u64(since_ms),
            ChunkState::Deleting => w.u8(2).u64(0),
        };
        w.u32(self.raw_len).u32(self.crc);
        match &self.location {
            Location::Pack {
                pack,
                offset,
                stored_len,
            } => w.u8(0).u128(*pack).u64(*offset).u32(*stored_len),
            Location::Inline(data) => w.u8(1).bytes(data),
        };
        w.u8(u8::from(self.damaged));
        w.seal()
    }
    /// Decodes a record.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::UnsupportedFormat`].
    pub fn decode(b: &[u8]) -> Result<Self> {
        let (version, mut r) = Reader::open_versions(b, "chunk record", V1, V2..=V3)?;
        let refcount = r.u64()?;
        let state = match (r.u8()?, r.u64()?) {
            (0, _) => ChunkState::Live,
            (1, since_ms) => ChunkState::Zero { since_ms },
            (2, _) => ChunkState::Deleting,
            (t, _) => return Err(Error::corrupt("chunk record", format!("state {t}"))),
        };
        let raw_len = r.u32()?;
        let crc = r.u32()?;
        let location = match r.u8()? {
            0 => Location::Pack {
                pack: r.u128()?,
                offset: r.u64()?,
                stored_len: r.u32()?,
            },
            1 => Location::Inline(r.bytes()?.to_vec()),
            t => return Err(Error::corrupt("chunk record", format!("location {t}"))),
        };
        let damaged = match if version >= V3 { r.u8()? } else { 0 } {
            0 => false,
            1 => true,
            f => return Err(Error::corrupt("chunk record", format!("flags {f}"))),
        };
        r.finish()?;
        Ok(ChunkRecord {
            refcount,
            state,
            raw_len,
            crc,
            location,
            damaged,
        })
    }
}

/// A pack known to the index.
///
/// Its live accounting is exact (kept in the transactions that move chunks in and out
/// of it, recounted by `fsck`): `live_chunks`/`live_bytes` are the chunks the index
/// locates in this pack, whatever their refcount, and their stored bytes. A pack with
/// no live chunk is deleted by GC; one whose live fraction is low is compacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackRecord {
    /// Blob size in bytes.
    pub size: u64,
    /// Chunks the pack holds (including ones another pack won the race for).
    pub chunks: u32,
    /// When it was first referenced by a commit, ms.
    pub committed_ms: u64,
    /// Chunks the index locates in this pack.
    pub live_chunks: u32,
    /// Stored bytes of those chunks.
    pub live_bytes: u64,
    /// `Some(ms)`: no chunk is located here any more and the blob is being deleted
    /// (since then); the record goes once the blob is gone.
    pub deleting_since_ms: Option<u64>,
}

impl PackRecord {
    /// Encodes the record (version 3).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(V3)
            .u64(self.size)
            .u32(self.chunks)
            .u64(self.committed_ms)
            .u32(self.live_chunks)
            .u64(self.live_bytes);
        match self.deleting_since_ms {
            None => w.u8(0).u64(0),
            Some(ms) => w.u8(1).u64(ms),
        };
        w.seal()
    }
    /// Decodes a record. Versions 1 and 2 carry no live accounting: they decode as
    /// fully live, and opening an index of format 2 or older recounts it (`index`).
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::UnsupportedFormat`].
    pub fn decode(b: &[u8]) -> Result<Self> {
        let (version, mut r) = Reader::open_versions(b, "pack record", V1, V2..=V3)?;
        let (size, chunks, committed_ms) = (r.u64()?, r.u32()?, r.u64()?);
        let mut rec = PackRecord {
            size,
            chunks,
            committed_ms,
            live_chunks: chunks,
            live_bytes: size,
            deleting_since_ms: None,
        };
        if version >= V3 {
            rec.live_chunks = r.u32()?;
            rec.live_bytes = r.u64()?;
            rec.deleting_since_ms = match (r.u8()?, r.u64()?) {
                (0, _) => None,
                (1, ms) => Some(ms),
                (t, _) => return Err(Error::corrupt("pack record", format!("state {t}"))),
            };
        }
        r.finish()?;
        Ok(rec)
    }
}

/// A run of bytes inside a chunk: the unit of a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    /// The chunk.
    pub chunk: ChunkId,
    /// Offset of the run inside the chunk's raw bytes.
    pub offset: u32,
    /// Length of the run.
    pub len: u32,
}

/// Slices per manifest segment: bounds the size of any one redb value (~40 KiB).
pub const SEGMENT_SLICES: usize = 1024;
const SLICE_LEN: usize = 40;

/// One segment of a manifest: slices starting at a logical offset of the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestSegment {
    /// Offset in the object of the first byte of the first slice.
    pub start: u64,
    /// The slices, in object order.
    pub slices: Vec<Slice>,
}

impl ManifestSegment {
    /// Encodes the segment (version 2).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(17 + SLICE_LEN * self.slices.len()));
        w.u8(V2).u64(self.start);
        write_slices(&mut w, &self.slices);
        w.seal()
    }
    /// Reads only the start offset of an encoded segment.
    ///
    /// # Errors
    /// As [`Self::decode`].
    pub fn decode_start(b: &[u8]) -> Result<u64> {
        let (_, mut r) = Reader::open(b, "manifest segment", V1, V2)?;
        r.u64()
    }
    /// Decodes a segment.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::UnsupportedFormat`].
    pub fn decode(b: &[u8]) -> Result<Self> {
        let (_, mut r) = Reader::open(b, "manifest segment", V1, V2)?;
        let start = r.u64()?;
        let slices = read_slices(&mut r)?;
        r.finish()?;
        Ok(ManifestSegment { start, slices })
    }
}

/// Writes a slice list: count u32, then per slice chunk id (32) | offset u32 | len u32.
pub(crate) fn write_slices(w: &mut Writer, slices: &[Slice]) {
    w.u32(u32::try_from(slices.len()).expect("fewer than 4G slices"));
    for s in slices {
        w.raw(&s.chunk.0).u32(s.offset).u32(s.len);
    }
}

/// Reads a slice list written by [`write_slices`] that ends the record: the count must
/// match the bytes that remain exactly (checked before anything is allocated).
pub(crate) fn read_slices(r: &mut Reader<'_>) -> Result<Vec<Slice>> {
    let n = r.u32()? as usize;
    if n.checked_mul(SLICE_LEN) != Some(r.remaining()) {
        return Err(Error::corrupt(
            r.what(),
            format!("{n} slices do not fit {} bytes", r.remaining()),
        ));
    }
    let mut slices = Vec::with_capacity(n);
    for _ in 0..n {
        slices.push(Slice {
            chunk: ChunkId(r.array()?),
            offset: r.u32()?,
            len: r.u32()?,
        });
    }
    Ok(slices)
}

/// Index-wide settings recorded at creation (table `meta`, key `chunker`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkerRecord {
    /// The parameters new data is cut with.
    pub params: crate::chunker::ChunkerParams,
}

impl ChunkerRecord {
    /// Encodes the record (version 2).
    pub fn encode(&self) -> Vec<u8> {
        let p = self.params;
        let mut w = Writer::default();
        // Algorithm tag 1 = FastCDC v2020 with the crate's default gear table.
        w.u8(V2).u8(1).u32(p.min).u32(p.avg).u32(p.max).u8(p.level);
        w.seal()
    }
    /// Decodes a record.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::UnsupportedFormat`].
    pub fn decode(b: &[u8]) -> Result<Self> {
        let (_, mut r) = Reader::open(b, "chunker record", V1, V2)?;
        let algo = r.u8()?;
        if algo != 1 {
            return Err(Error::UnsupportedFormat {
                what: "chunker algorithm",
                version: algo.into(),
            });
        }
        let params = crate::chunker::ChunkerParams {
            min: r.u32()?,
            avg: r.u32()?,
            max: r.u32()?,
            level: r.u8()?,
        };
        r.finish()?;
        Ok(ChunkerRecord { params })
    }
}
