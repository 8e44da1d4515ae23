//! Records of multipart uploads (uploads, parts, completions remembered for retries)
//! and what a completed upload leaves in its object record: the part table and the
//! checksum choice. Layout versions are those of the parent module.

use super::{Etag, ManifestRef, ObjectMeta, V1, V2, V3, V4, V5};
use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::lock::LockRequest;

/// One part of a multipart object, as GET `partNumber` and GetObjectAttributes need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartInfo {
    /// Size in bytes.
    pub size: u64,
    /// The part's checksum in the upload's algorithm (base64), when the upload had one.
    pub checksum: Option<String>,
}

/// The checksum a multipart upload's object gets (`x-amz-checksum-algorithm` and
/// `x-amz-checksum-type` on CreateMultipartUpload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecksumSpec {
    /// Algorithm name as S3 spells it (`CRC64NVME`, `SHA256` …).
    pub algorithm: String,
    /// FULL_OBJECT (a checksum of the whole object, combined from the parts') rather
    /// than COMPOSITE (a checksum of the part checksums, `-N`).
    pub full_object: bool,
}

impl ChecksumSpec {
    fn write(spec: Option<&Self>, w: &mut Writer) {
        match spec {
            None => w.u8(0),
            Some(s) => w.u8(if s.full_object { 2 } else { 1 }).str(&s.algorithm),
        };
    }
    fn read(r: &mut Reader<'_>) -> Result<Option<Self>> {
        Ok(match r.u8()? {
            0 => None,
            t @ (1 | 2) => Some(ChecksumSpec {
                algorithm: r.string()?,
                full_object: t == 2,
            }),
            t => return Err(Error::corrupt(r.what(), format!("checksum type {t}"))),
        })
    }
}

/// Bytes one encoded part takes at least (size, checksum flag): bounds the count.
const PART_INFO_MIN: usize = 9;

pub(super) fn write_parts(w: &mut Writer, parts: &[PartInfo]) {
    w.u32(u32::try_from(parts.len()).expect("at most 10000 parts"));
    for p in parts {
        w.u64(p.size);
        match &p.checksum {
            None => w.u8(0),
            Some(c) => w.u8(1).str(c),
        };
    }
}

pub(super) fn read_parts(r: &mut Reader<'_>) -> Result<Vec<PartInfo>> {
    let n = r.u32()? as usize;
    if n.saturating_mul(PART_INFO_MIN) > r.remaining() {
        return Err(Error::corrupt(
            r.what(),
            format!("{n} parts do not fit {} bytes", r.remaining()),
        ));
    }
    let mut parts = Vec::with_capacity(n);
    for _ in 0..n {
        let size = r.u64()?;
        let checksum = match r.u8()? {
            0 => None,
            1 => Some(r.string()?),
            t => return Err(Error::corrupt(r.what(), format!("part checksum flag {t}"))),
        };
        parts.push(PartInfo { size, checksum });
    }
    Ok(parts)
}

/// An in-progress multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRecord {
    /// Target bucket.
    pub bucket: String,
    /// Target key.
    pub key: String,
    /// Initiation time, ms.
    pub initiated_ms: u64,
    /// Metadata the object will get.
    pub meta: ObjectMeta,
    /// The lock the object will get (`x-amz-object-lock-*` on CreateMultipartUpload).
    pub lock: LockRequest,
    /// The ACL the object will get, as the gateway encodes it (`None`: the bucket
    /// owner's alone).
    pub acl: Option<Vec<u8>>,
    /// The checksum the object will get, if the upload asked for one.
    pub checksum: Option<ChecksumSpec>,
    /// The tags the object will get (`x-amz-tagging` on CreateMultipartUpload).
    pub tags: Vec<(String, String)>,
}

impl UploadRecord {
    /// Encodes the record (version 5: version 3 with the ACL, the checksum spec and the
    /// tags).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(V5)
            .str(&self.bucket)
            .str(&self.key)
            .u64(self.initiated_ms);
        self.meta.write(&mut w);
        self.lock.write(&mut w);
        match &self.acl {
            None => w.u8(0),
            Some(acl) => w.u8(1).bytes(acl),
        };
        ChecksumSpec::write(self.checksum.as_ref(), &mut w);
        w.pairs(&self.tags);
        w.seal()
    }
    /// Decodes a record.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::UnsupportedFormat`].
    pub fn decode(b: &[u8]) -> Result<Self> {
        let (v, mut r) = Reader::open_versions(b, "upload record", V1, V2..=V5)?;
        let mut rec = UploadRecord {
            bucket: r.string()?,
            key: r.string()?,
            initiated_ms: r.u64()?,
            meta: ObjectMeta::read(&mut r)?,
            lock: if v >= V3 {
                LockRequest::read(&mut r)?
            } else {
                LockRequest::default()
            },
            acl: None,
            checksum: None,
            tags: Vec::new(),
        };
        if v >= V4 {
            rec.acl = match r.u8()? {
                0 => None,
                1 => Some(r.bytes()?.to_vec()),
                n => return Err(Error::corrupt("upload record", format!("bad ACL flag {n}"))),
            };
        }
        if v >= V5 {
            rec.checksum = ChecksumSpec::read(&mut r)?;
            rec.tags = r.pairs()?;
        }
        r.finish()?;
        Ok(rec)
    }
}

/// One uploaded part of a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRecord {
    /// Size in bytes.
    pub size: u64,
    /// MD5 of the part (its ETag).
    pub md5: [u8; 16],
    /// Upload time, ms.
    pub mtime_ms: u64,
    /// Checksums of the part, as for objects.
    pub checksums: Vec<(String, String)>,
    /// Its manifest; the part holds references to its chunks.
    pub manifest: ManifestRef,
}

impl PartRecord {
    /// The part's ETag.
    pub fn etag(&self) -> Etag {
        Etag {
            md5: self.md5,
            parts: 0,
        }
    }
    /// Encodes the record (version 2).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(V2)
            .u64(self.size)
            .raw(&self.md5)
            .u64(self.mtime_ms)
            .pairs(&self.checksums)
            .u64(self.manifest.id)
            .u64(self.manifest.slices);
        w.seal()
    }
    /// Decodes a record.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::UnsupportedFormat`].
    pub fn decode(b: &[u8]) -> Result<Self> {
        let (_, mut r) = Reader::open(b, "part record", V1, V2)?;
        let rec = PartRecord {
            size: r.u64()?,
            md5: r.array()?,
            mtime_ms: r.u64()?,
            checksums: r.pairs()?,
            manifest: ManifestRef {
                id: r.u64()?,
                slices: r.u64()?,
            },
        };
        r.finish()?;
        Ok(rec)
    }
}

/// A completed multipart upload, remembered for a while so a retried
/// CompleteMultipartUpload (its first answer was lost) gets the same answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedUploadRecord {
    /// Target bucket.
    pub bucket: String,
    /// Target key.
    pub key: String,
    /// When it completed, ms.
    pub completed_ms: u64,
    /// SHA-256 over the listed (part number, ETag) pairs it completed with.
    pub parts_digest: [u8; 32],
    /// The object's ETag.
    pub etag: Etag,
}

impl CompletedUploadRecord {
    /// Encodes the record (version 2: this record has existed only sealed).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(V2)
            .str(&self.bucket)
            .str(&self.key)
            .u64(self.completed_ms)
            .raw(&self.parts_digest)
            .raw(&self.etag.md5)
            .u32(self.etag.parts);
        w.seal()
    }
    /// Decodes a record.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::UnsupportedFormat`].
    pub fn decode(b: &[u8]) -> Result<Self> {
        let (_, mut r) = Reader::open(b, "completed upload record", V2, V2)?;
        let rec = CompletedUploadRecord {
            bucket: r.string()?,
            key: r.string()?,
            completed_ms: r.u64()?,
            parts_digest: r.array()?,
            etag: Etag {
                md5: r.array()?,
                parts: r.u32()?,
            },
        };
        r.finish()?;
        Ok(rec)
    }

    /// The digest of a part list, as stored in `parts_digest`.
    pub fn digest_parts(listed: &[(u32, String)]) -> [u8; 32] {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        for (n, etag) in listed {
            h.update(n.to_le_bytes());
            let tag = etag.trim().trim_matches('"');
            h.update((tag.len() as u32).to_le_bytes());
            h.update(tag.as_bytes());
        }
        h.finalize().into()
    }
}
