//! Multipart uploads: parts hold references until the upload completes or aborts.

use std::sync::Arc;

use md5::{Digest, Md5};
use redb::{ReadableDatabase, ReadableTable, WriteTransaction};

use super::objects::{PlannedChunk, WriteCondition, install_object, plan_slice};
use super::{
    BUCKETS, CHUNKS, COMPLETED_BY_TIME, COMPLETED_UPLOAD_TTL_MS, COMPLETED_UPLOADS, Index,
    MANIFESTS, OBJECTS, PARTS, Staged, UPLOADS, UPLOADS_BY_KEY, add_refs, content_digest,
    drop_manifest, now_ms, read_manifest, register_packs, slice_counts,
};
use crate::error::{Error, Result};
use crate::lock::LockRequest;
use crate::records::{
    ChecksumSpec, CompletedUploadRecord, Etag, ManifestRef, ObjectMeta, ObjectRecord, PartInfo,
    PartRecord, UploadRecord,
};
use crate::versions::VersionSel;

/// Most expired completion records one completion removes (bounds its transaction).
const EXPIRE_PER_COMPLETION: usize = 64;

/// Remembers a completion and forgets ones older than the TTL.
fn remember_completion(
    txn: &WriteTransaction,
    upload_id: &str,
    rec: &CompletedUploadRecord,
) -> Result<()> {
    let mut by_id = txn.open_table(COMPLETED_UPLOADS)?;
    let mut by_time = txn.open_table(COMPLETED_BY_TIME)?;
    let horizon = rec.completed_ms.saturating_sub(COMPLETED_UPLOAD_TTL_MS);
    let expired: Vec<(u64, String)> = by_time
        .range(..(horizon, ""))?
        .take(EXPIRE_PER_COMPLETION)
        .map(|r| r.map(|(k, _)| (k.value().0, k.value().1.to_owned())))
        .collect::<std::result::Result<_, _>>()?;
    for (t, id) in &expired {
        by_time.remove((*t, id.as_str()))?;
        by_id.remove(id.as_str())?;
    }
    by_id.insert(upload_id, rec.encode().as_slice())?;
    by_time.insert((rec.completed_ms, upload_id), ())?;
    Ok(())
}

/// An upload as listed by [`Index::list_uploads`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSummary {
    /// Object key.
    pub key: String,
    /// Upload id.
    pub upload_id: String,
    /// When it was initiated, ms.
    pub initiated_ms: u64,
    /// The checksum its object gets, if it asked for one.
    pub checksum: Option<ChecksumSpec>,
}

fn get_upload(txn: &WriteTransaction, id: &str) -> Result<UploadRecord> {
    txn.open_table(UPLOADS)?
        .get(id)?
        .map(|v| UploadRecord::decode(v.value()))
        .transpose()?
        .ok_or_else(|| Error::NoSuchUpload(id.to_owned()))
}

fn parts_of(txn: &WriteTransaction, id: &str) -> Result<Vec<(u32, PartRecord)>> {
    parts_in(&txn.open_table(PARTS)?, id)
}

fn parts_in<T: ReadableTable<(&'static str, u32), &'static [u8]>>(
    t: &T,
    id: &str,
) -> Result<Vec<(u32, PartRecord)>> {
    let mut out = Vec::new();
    for r in t.range((id, 0)..=(id, u32::MAX))? {
        let (k, v) = r?;
        out.push((k.value().1, PartRecord::decode(v.value())?));
    }
    Ok(out)
}

fn remove_upload(txn: &WriteTransaction, id: &str, up: &UploadRecord) -> Result<()> {
    txn.open_table(PARTS)?
        .retain_in((id, 0)..=(id, u32::MAX), |_, _| false)?;
    txn.open_table(UPLOADS)?.remove(id)?;
    txn.open_table(UPLOADS_BY_KEY)?
        .remove((up.bucket.as_str(), up.key.as_str(), id))?;
    Ok(())
}

/// The uploaded parts `listed` names, checked: each was uploaded with that ETag, and
/// every part but the last is at least `min_part_size`.
fn choose_parts(
    all: &[(u32, PartRecord)],
    listed: &[(u32, String)],
    min_part_size: u64,
) -> Result<Vec<PartRecord>> {
    let mut chosen = Vec::with_capacity(listed.len());
    for (i, (n, etag)) in listed.iter().enumerate() {
        let part =
            all.iter()
                .find(|(pn, _)| pn == n)
                .map(|(_, p)| p)
                .ok_or(Error::InvalidPart {
                    part: *n,
                    reason: "was not uploaded",
                })?;
        if etag.trim().trim_matches('"') != part.etag().to_string() {
            return Err(Error::InvalidPart {
                part: *n,
                reason: "ETag does not match the uploaded part",
            });
        }
        if i + 1 < listed.len() && part.size < min_part_size {
            return Err(Error::EntityTooSmall {
                part: *n,
                size: part.size,
                min: min_part_size,
            });
        }
        chosen.push(part.clone());
    }
    Ok(chosen)
}

/// Stores a part, releasing the part it replaces (same number), if any.
fn install_part(
    txn: &WriteTransaction,
    upload_id: &str,
    part: u32,
    rec: &PartRecord,
) -> Result<()> {
    let old = txn
        .open_table(PARTS)?
        .insert((upload_id, part), rec.encode().as_slice())?
        .map(|v| PartRecord::decode(v.value()))
        .transpose()?;
    if let Some(old) = old {
        drop_manifest(txn, old.manifest)?;
    }
    Ok(())
}

/// Aborts an upload inside `txn`: releases every part's references.
pub(super) fn abort_in(txn: &WriteTransaction, id: &str) -> Result<()> {
    let up = get_upload(txn, id)?;
    for (_, part) in parts_of(txn, id)? {
        drop_manifest(txn, part.manifest)?;
    }
    remove_upload(txn, id, &up)
}

impl Index {
    /// Starts a multipart upload; returns its id.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`].
    pub(crate) fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        meta: ObjectMeta,
        lock: LockRequest,
        acl: Option<Vec<u8>>,
        (checksum, tags): (Option<ChecksumSpec>, Vec<(String, String)>),
    ) -> impl Future<Output = Result<String>> + use<> {
        // Chosen outside the write: a replayed write must reuse the same id.
        let id = format!("{:032x}", rand::random::<u128>());
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        let initiated_ms = now_ms();
        self.committer.submit(move |txn| {
            let (bucket, key) = (bucket.as_str(), key.as_str());
            let b = super::versions::bucket_record(txn, bucket)?;
            if !lock.is_empty() && !b.lock.enabled {
                return Err(Error::NoObjectLock(
                    "Bucket is missing Object Lock Configuration".into(),
                ));
            }
            let rec = UploadRecord {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                initiated_ms,
                meta: meta.clone(),
                lock,
                acl: acl.clone(),
                checksum: checksum.clone(),
                tags: tags.clone(),
            };
            txn.open_table(UPLOADS)?
                .insert(id.as_str(), rec.encode().as_slice())?;
            txn.open_table(UPLOADS_BY_KEY)?
                .insert((bucket, key, id.as_str()), ())?;
            Ok(id.clone())
        })
    }

    /// Commits an uploaded part, replacing (and releasing) any earlier part with the
    /// same number.
    ///
    /// # Errors
    /// [`Error::NoSuchUpload`], [`Error::ChunkGone`].
    pub(crate) fn commit_part(
        &self,
        upload_id: String,
        part: u32,
        staged: Arc<Staged>,
        (size, md5): (u64, [u8; 16]),
        checksums: Vec<(String, String)>,
    ) -> impl Future<Output = Result<PartRecord>> + use<> {
        self.committer.submit(move |txn| {
            let upload_id = upload_id.as_str();
            get_upload(txn, upload_id)?;
            register_packs(txn, &staged.packs)?;
            add_refs(txn, &slice_counts(&staged.slices), &staged.new_chunks)?;
            let manifest = super::write_manifest(txn, &staged.slices)?;
            let rec = PartRecord {
                size,
                md5,
                mtime_ms: now_ms(),
                checksums: checksums.clone(),
                manifest,
            };
            install_part(txn, upload_id, part, &rec)?;
            Ok(rec)
        })
    }

    /// UploadPartCopy of a whole single-part object without reading it: the part names
    /// the source's chunks (taking its own references) and its MD5 is the source's ETag.
    /// `Ok(None)` when the source is a multipart object (its ETag is not an MD5 of the
    /// bytes), or lacks a checksum in algorithm `need` (the upload's), so the caller
    /// must compute the part's MD5 and checksums from the data.
    ///
    /// # Errors
    /// [`Error::NoSuchUpload`], [`Error::NoSuchBucket`], [`Error::NoSuchKey`].
    pub(crate) fn copy_object_to_part(
        &self,
        src: (&str, &str),
        src_version: Option<VersionSel>,
        upload_id: &str,
        part: u32,
        need: Option<String>,
    ) -> impl Future<Output = Result<Option<PartRecord>>> + use<> {
        let (sb, sk, upload_id) = (src.0.to_owned(), src.1.to_owned(), upload_id.to_owned());
        self.committer.submit(move |txn| {
            get_upload(txn, &upload_id)?;
            let source = super::versions::source_version(txn, (&sb, &sk), src_version)?;
            if source.etag.parts > 0
                || need
                    .as_ref()
                    .is_some_and(|a| !source.meta.checksums.iter().any(|(n, _)| n == a))
            {
                return Ok(None);
            }
            let slices = read_manifest(&txn.open_table(MANIFESTS)?, source.manifest)?;
            add_refs(txn, &slice_counts(&slices), &Default::default())?;
            let manifest = super::write_manifest(txn, &slices)?;
            let rec = PartRecord {
                size: source.size,
                md5: source.etag.md5,
                mtime_ms: now_ms(),
                checksums: source.meta.checksums.clone(),
                manifest,
            };
            install_part(txn, &upload_id, part, &rec)?;
            Ok(Some(rec))
        })
    }

    /// Plans reading the object the listed parts would complete to, from one snapshot:
    /// its size, [`content_digest`] and chunks. Parts are checked as
    /// [`Index::complete_upload`] checks them.
    ///
    /// # Errors
    /// [`Error::NoSuchUpload`], [`Error::InvalidPart`], [`Error::EntityTooSmall`].
    pub(crate) fn plan_upload_read(
        &self,
        upload_id: &str,
        listed: &[(u32, String)],
        min_part_size: u64,
    ) -> Result<(u64, [u8; 32], Vec<PlannedChunk>)> {
        let txn = self.db.begin_read()?;
        if txn.open_table(UPLOADS)?.get(upload_id)?.is_none() {
            return Err(Error::NoSuchUpload(upload_id.to_owned()));
        }
        let all = parts_in(&txn.open_table(PARTS)?, upload_id)?;
        let chosen = choose_parts(&all, listed, min_part_size)?;
        let manifests = txn.open_table(MANIFESTS)?;
        let chunks_t = txn.open_table(CHUNKS)?;
        let mut slices = Vec::new();
        let mut size = 0u64;
        for p in &chosen {
            slices.extend(read_manifest(&manifests, p.manifest)?);
            size += p.size;
        }
        let chunks = slices
            .iter()
            .map(|s| plan_slice(&chunks_t, s, 0, 0))
            .collect::<Result<Vec<_>>>()?;
        Ok((size, content_digest(&slices), chunks))
    }

    /// Completes an upload from the listed parts (ascending part numbers with their
    /// ETags). Listed parts' references move to the object; unlisted parts are released.
    /// With `expect_digest`, the assembled object must have that [`content_digest`]
    /// (what was scanned is what gets published), else [`Error::Conflict`].
    ///
    /// # Errors
    /// [`Error::NoSuchUpload`], [`Error::InvalidPart`], [`Error::InvalidPartOrder`],
    /// [`Error::EntityTooSmall`], [`Error::PreconditionFailed`], [`Error::NoSuchBucket`].
    pub(crate) fn complete_upload(
        &self,
        upload_id: &str,
        listed: Vec<(u32, String)>,
        min_part_size: u64,
        (checksums, part_sums): (Vec<(String, String)>, Vec<Option<String>>),
        cond: WriteCondition,
        expect_digest: Option<[u8; 32]>,
    ) -> impl Future<Output = Result<(String, String, ObjectRecord)>> + use<> {
        let upload_id = upload_id.to_owned();
        self.committer.submit(move |txn| {
            let upload_id = upload_id.as_str();
            let listed = listed.as_slice();
            let up = get_upload(txn, upload_id)?;
            if txn.open_table(BUCKETS)?.get(up.bucket.as_str())?.is_none() {
                return Err(Error::NoSuchBucket(up.bucket.clone()));
            }
            if listed.is_empty() {
                return Err(Error::InvalidArgument(
                    "CompleteMultipartUpload needs at least one part".into(),
                ));
            }
            if listed.windows(2).any(|w| w[0].0 >= w[1].0) {
                return Err(Error::InvalidPartOrder);
            }
            let all = parts_of(txn, upload_id)?;
            let chosen = choose_parts(&all, listed, min_part_size)?;
            let b = super::versions::bucket_record(txn, &up.bucket)?;
            let old = txn
                .open_table(OBJECTS)?
                .get((up.bucket.as_str(), up.key.as_str()))?
                .map(|v| ObjectRecord::decode(v.value()))
                .transpose()?;
            cond.check(&up.bucket, &up.key, old.as_ref())?;

            // The object's manifest is the listed parts' slices in order. Their references
            // transfer from the parts to the object, so no refcount changes for them.
            let mut slices = Vec::new();
            let mut md5s = Md5::new();
            let mut size = 0u64;
            {
                let t = txn.open_table(MANIFESTS)?;
                for p in &chosen {
                    slices.extend(read_manifest(&t, p.manifest)?);
                    md5s.update(p.md5);
                    size += p.size;
                }
            }
            if let Some(want) = expect_digest
                && content_digest(&slices) != want
            {
                return Err(Error::Conflict(
                    "a part changed while the upload was being completed".into(),
                ));
            }
            let manifest = super::write_manifest(txn, &slices)?;
            {
                let mut t = txn.open_table(MANIFESTS)?;
                for p in &chosen {
                    let m: ManifestRef = p.manifest;
                    t.retain_in((m.id, 0)..=(m.id, u32::MAX), |_, _| false)?;
                }
            }
            for (n, p) in &all {
                if !listed.iter().any(|(ln, _)| ln == n) {
                    drop_manifest(txn, p.manifest)?;
                }
            }
            remove_upload(txn, upload_id, &up)?;
            let mut meta = up.meta.clone();
            meta.checksums = checksums.clone();
            // Each part's checksum in the object's algorithm (the upload's, or S3's
            // default CRC64NVME the gateway combined).
            let algorithm = checksums.first().map(|(n, _)| n.as_str());
            let parts: Vec<PartInfo> = chosen
                .iter()
                .map(|p| PartInfo {
                    size: p.size,
                    checksum: algorithm.and_then(|a| {
                        p.checksums
                            .iter()
                            .find(|(n, _)| n == a)
                            .map(|(_, v)| v.clone())
                    }),
                })
                .collect();
            // The object's checksum was combined from these parts' checksums, read
            // before this transaction: a part replaced since (same ETag, other
            // checksum) would publish a checksum of other bytes.
            if !part_sums.is_empty() && !parts.iter().map(|p| &p.checksum).eq(part_sums.iter()) {
                return Err(Error::Conflict(
                    "a part changed while the upload was being completed".into(),
                ));
            }
            let record = ObjectRecord {
                size,
                etag: Etag {
                    md5: md5s.finalize().into(),
                    parts: listed.len() as u32,
                },
                mtime_ms: now_ms(),
                meta,
                manifest,
                version: super::versions::new_version(txn, b.versioning)?,
                parts,
            };
            let at = (up.bucket.as_str(), up.key.as_str());
            // A lock asked for at completion (none in S3 today) wins over the upload's.
            let lock = if cond.lock.is_empty() {
                up.lock
            } else {
                cond.lock
            };
            let acl = cond.acl.clone().or_else(|| up.acl.clone());
            let tags = if cond.tags.is_empty() {
                up.tags.clone()
            } else {
                cond.tags.clone()
            };
            super::locks::lock_new_version(txn, at, record.version, &b.lock, &lock, (acl, tags))?;
            install_object(txn, at, &record, &slices, old, b.versioning)?;
            let done = CompletedUploadRecord {
                bucket: up.bucket.clone(),
                key: up.key.clone(),
                completed_ms: record.mtime_ms,
                parts_digest: CompletedUploadRecord::digest_parts(listed),
                etag: record.etag,
            };
            remember_completion(txn, upload_id, &done)?;
            Ok((up.bucket, up.key, record))
        })
    }

    /// A completed upload remembered within the TTL, if `upload_id` is one.
    ///
    /// # Errors
    /// [`Error::Index`] or a decode error.
    pub(crate) fn completed_upload(
        &self,
        upload_id: &str,
    ) -> Result<Option<CompletedUploadRecord>> {
        let txn = self.db.begin_read()?;
        let rec = txn
            .open_table(COMPLETED_UPLOADS)?
            .get(upload_id)?
            .map(|v| CompletedUploadRecord::decode(v.value()))
            .transpose()?;
        Ok(rec.filter(|r| r.completed_ms + COMPLETED_UPLOAD_TTL_MS > now_ms()))
    }

    /// Aborts an upload, releasing its parts.
    ///
    /// # Errors
    /// [`Error::NoSuchUpload`].
    pub(crate) fn abort_upload(&self, upload_id: &str) -> impl Future<Output = Result<()>> + use<> {
        let upload_id = upload_id.to_owned();
        self.committer.submit(move |txn| abort_in(txn, &upload_id))
    }

    /// An upload's record.
    ///
    /// # Errors
    /// [`Error::NoSuchUpload`].
    pub(crate) fn upload(&self, upload_id: &str) -> Result<UploadRecord> {
        let txn = self.db.begin_read()?;
        txn.open_table(UPLOADS)?
            .get(upload_id)?
            .map(|v| UploadRecord::decode(v.value()))
            .transpose()?
            .ok_or_else(|| Error::NoSuchUpload(upload_id.to_owned()))
    }

    /// Parts of an upload with numbers greater than `after`, at most `max`.
    ///
    /// # Errors
    /// [`Error::NoSuchUpload`].
    pub(crate) fn list_parts(
        &self,
        upload_id: &str,
        after: u32,
        max: usize,
    ) -> Result<Vec<(u32, PartRecord)>> {
        let txn = self.db.begin_read()?;
        if txn.open_table(UPLOADS)?.get(upload_id)?.is_none() {
            return Err(Error::NoSuchUpload(upload_id.to_owned()));
        }
        let t = txn.open_table(PARTS)?;
        let mut out = Vec::new();
        if after == u32::MAX {
            return Ok(out);
        }
        for r in t.range((upload_id, after + 1)..=(upload_id, u32::MAX))? {
            if out.len() >= max {
                break;
            }
            let (k, v) = r?;
            out.push((k.value().1, PartRecord::decode(v.value())?));
        }
        Ok(out)
    }

    /// In-progress uploads of a bucket, by key then upload id, whose key starts with
    /// `prefix` and sorts after `(key_marker, id_marker)`.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`].
    pub(crate) fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<(&str, &str)>,
        max: usize,
    ) -> Result<Vec<UploadSummary>> {
        let txn = self.db.begin_read()?;
        if txn.open_table(BUCKETS)?.get(bucket)?.is_none() {
            return Err(Error::NoSuchBucket(bucket.to_owned()));
        }
        let by_key = txn.open_table(UPLOADS_BY_KEY)?;
        let uploads = txn.open_table(UPLOADS)?;
        let (k0, i0) = after.unwrap_or((prefix, ""));
        let mut out = Vec::new();
        for r in by_key.range((bucket, k0, i0)..)? {
            let (k, _) = r?;
            let (b, key, id) = k.value();
            if b != bucket || !key.starts_with(prefix) && key > prefix {
                break;
            }
            if after == Some((key, id)) || !key.starts_with(prefix) {
                continue;
            }
            if out.len() >= max {
                break;
            }
            let rec = uploads
                .get(id)?
                .map(|v| UploadRecord::decode(v.value()))
                .transpose()?
                .ok_or_else(|| {
                    Error::corrupt("index", format!("upload {id} indexed but missing"))
                })?;
            out.push(UploadSummary {
                key: key.to_owned(),
                upload_id: id.to_owned(),
                initiated_ms: rec.initiated_ms,
                checksum: rec.checksum,
            });
        }
        Ok(out)
    }
}
