//! Objects: commit, copy, delete, list, read plans.

use std::ops::Bound;
use std::sync::Arc;

use redb::{ReadTransaction, ReadableDatabase, ReadableTable, WriteTransaction};

use super::locks::{self, LockRequest};
use super::version_list::prefix_successor;
use super::versions::{self, DeleteOptions, Deleted};
use super::{
    BUCKETS, CHUNKS, Index, MANIFESTS, OBJECTS, Staged, VERSIONS, add_refs, add_stat, journal,
    now_ms, register_packs, slice_counts, stat, write_manifest,
};
use crate::error::{Error, Result};
use crate::id::ChunkId;
use crate::journal::entry::object_changes;
use crate::records::{
    ChunkRecord, ChunkState, Etag, Location, ManifestRef, ManifestSegment, ObjectMeta,
    ObjectRecord, Slice,
};
use crate::versions::{VersionSel, Versioning};

/// Conditions checked, and options applied, atomically with a write (S3 conditional
/// writes, object lock headers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteCondition {
    /// `If-Match`: the current version's ETag must match (missing object → `NoSuchKey`).
    pub if_match: Option<String>,
    /// `If-None-Match: *`: no current version may exist.
    pub if_none_match_any: bool,
    /// Object lock the new version gets (`x-amz-object-lock-*`); the bucket's default
    /// retention when it asks for none.
    pub lock: LockRequest,
    /// The ACL the new version gets, as the gateway encodes it (`None`: the bucket
    /// owner's alone).
    pub acl: Option<Vec<u8>>,
    /// The tags the new version gets.
    pub tags: Vec<(String, String)>,
    /// A copy's new version gets its source version's tags instead of `tags`.
    pub copy_tags: bool,
}

impl WriteCondition {
    pub(super) fn check(
        &self,
        bucket: &str,
        key: &str,
        current: Option<&ObjectRecord>,
    ) -> Result<()> {
        if self.if_none_match_any && current.is_some() {
            return Err(Error::PreconditionFailed);
        }
        if let Some(want) = &self.if_match {
            let cur = current.ok_or_else(|| Error::NoSuchKey {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            })?;
            if !cur.etag.matches(want) {
                return Err(Error::PreconditionFailed);
            }
        }
        Ok(())
    }
}

/// A list request. `delimiter: Some("")` is treated as no delimiter.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListQuery<'a> {
    /// Only keys starting with this.
    pub prefix: &'a str,
    /// Roll keys up to the first occurrence of this after the prefix.
    pub delimiter: Option<&'a str>,
    /// Only entries strictly after this (marker / start-after / continuation token).
    pub start_after: Option<&'a str>,
    /// At most this many entries (objects plus common prefixes).
    pub max_keys: usize,
}

/// One listed entry, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListEntry {
    /// An object.
    Object {
        /// Its key.
        key: String,
        /// Its record.
        record: ObjectRecord,
    },
    /// A common prefix (ends with the delimiter).
    Prefix(String),
}

impl ListEntry {
    /// The key or prefix: what a client passes back as the next marker.
    pub fn marker(&self) -> &str {
        match self {
            ListEntry::Object { key, .. } => key,
            ListEntry::Prefix(p) => p,
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Entries in order.
    pub entries: Vec<ListEntry>,
    /// Whether more entries follow the last one.
    pub is_truncated: bool,
}

/// A chunk to read for an object read, and which of its bytes to emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlannedChunk {
    /// Chunk id.
    pub id: ChunkId,
    /// Raw length.
    pub raw_len: u32,
    /// CRC32C of the stored bytes.
    pub crc: u32,
    /// Where the stored bytes are.
    pub location: Location,
    /// First raw byte to emit.
    pub start: u32,
    /// One past the last raw byte to emit.
    pub end: u32,
}

/// Everything needed to stream an object (or a range of it), from one snapshot.
#[derive(Debug, Clone)]
pub(crate) struct ReadPlan {
    /// The object version being read.
    pub record: ObjectRecord,
    /// `start..end` of the object being read.
    pub range: (u64, u64),
    /// Its chunks in order, clipped to the range.
    pub chunks: Vec<PlannedChunk>,
}

/// Version `sel` of bucket/key (its current object when `None`) in a read snapshot.
pub(super) fn find_object(
    txn: &ReadTransaction,
    bucket: &str,
    key: &str,
    sel: Option<VersionSel>,
) -> Result<ObjectRecord> {
    if txn.open_table(BUCKETS)?.get(bucket)?.is_none() {
        return Err(Error::NoSuchBucket(bucket.to_owned()));
    }
    versions::lookup(
        &txn.open_table(OBJECTS)?,
        &txn.open_table(VERSIONS)?,
        (bucket, key),
        sel,
    )
}

/// Plans the read of one manifest slice minus `skip` leading and `cut` trailing bytes.
pub(super) fn plan_slice<T: ReadableTable<&'static [u8; 32], &'static [u8]>>(
    chunks: &T,
    s: &Slice,
    skip: u32,
    cut: u32,
) -> Result<PlannedChunk> {
    let rec = chunks
        .get(&s.chunk.0)?
        .map(|v| ChunkRecord::decode(v.value()))
        .transpose()?
        .ok_or_else(|| Error::corrupt("index", format!("referenced chunk {} missing", s.chunk)))?;
    if rec.damaged {
        return Err(Error::corrupt(
            "chunk",
            format!(
                "chunk {} is damaged (its stored bytes failed verification); uploading the \
                 same content again repairs it",
                s.chunk
            ),
        ));
    }
    if rec.state == ChunkState::Deleting {
        return Err(Error::corrupt(
            "index",
            format!("referenced chunk {} is being deleted", s.chunk),
        ));
    }
    let (start, end) = s
        .offset
        .checked_add(s.len)
        .filter(|&e| e <= rec.raw_len && skip.saturating_add(cut) <= s.len)
        .map(|e| (s.offset + skip, e - cut))
        .ok_or_else(|| {
            Error::corrupt(
                "manifest",
                format!(
                    "slice {}+{} of chunk {} exceeds its {} bytes",
                    s.offset, s.len, s.chunk, rec.raw_len
                ),
            )
        })?;
    Ok(PlannedChunk {
        id: s.chunk,
        raw_len: rec.raw_len,
        crc: rec.crc,
        location: rec.location,
        start,
        end,
    })
}

pub(super) fn bucket_must_exist(txn: &WriteTransaction, bucket: &str) -> Result<()> {
    if txn.open_table(BUCKETS)?.get(bucket)?.is_none() {
        return Err(Error::NoSuchBucket(bucket.to_owned()));
    }
    Ok(())
}

fn get_object(txn: &WriteTransaction, bucket: &str, key: &str) -> Result<Option<ObjectRecord>> {
    txn.open_table(OBJECTS)?
        .get((bucket, key))?
        .map(|v| ObjectRecord::decode(v.value()))
        .transpose()
}

/// Installs `record` as the current object of bucket/key. The old current object is
/// released or kept as a noncurrent version as the bucket's versioning `state` says;
/// under suspension a noncurrent `null` version is replaced too.
pub(super) fn install_object(
    txn: &WriteTransaction,
    (bucket, key): (&str, &str),
    record: &ObjectRecord,
    slices: &[Slice],
    old: Option<ObjectRecord>,
    state: Versioning,
) -> Result<()> {
    // What the replaced version gives back in this transaction: a write that does not
    // grow usage net of it is never refused by a quota (even one lowered below usage).
    let released = old
        .as_ref()
        .filter(|o| !versions::kept_when_replaced(state, Some(o)))
        .map_or(0, |o| o.size);
    let grows = old.is_none()
        || versions::kept_when_replaced(state, old.as_ref())
        || record.size > released;
    // The old version goes first: a kept one is journaled as moved before the new
    // version's entry replaces it in a replay. Its references are dropped after the
    // new version took its own, so shared chunks never touch zero.
    if let Some(old) = old {
        versions::retire_current(txn, (bucket, key), old, state)?;
    }
    if state == Versioning::Suspended {
        versions::remove_null(txn, (bucket, key))?;
    }
    txn.open_table(OBJECTS)?
        .insert((bucket, key), record.encode().as_slice())?;
    journal::append(txn, object_changes(bucket, key, record, slices))?;
    add_stat(txn, stat::LOGICAL_BYTES, i128::from(record.size))?;
    add_stat(txn, stat::OBJECTS, 1)?;
    // Last: the replaced version was released above, so a quota sees the net change.
    super::usage::add_checked(txn, bucket, (i128::from(record.size), 1), grows)
}

impl Index {
    /// Commits an uploaded object as the current version of bucket/key.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`], [`Error::PreconditionFailed`], [`Error::NoSuchKey`]
    /// (`If-Match` on a missing key), [`Error::ChunkGone`].
    pub(crate) fn commit_object(
        &self,
        bucket: String,
        key: String,
        staged: Arc<Staged>,
        (size, etag, meta): (u64, Etag, ObjectMeta),
        cond: WriteCondition,
    ) -> impl Future<Output = Result<ObjectRecord>> + use<> {
        self.committer.submit(move |txn| {
            let (bucket, key) = (bucket.as_str(), key.as_str());
            let b = versions::bucket_record(txn, bucket)?;
            let old = get_object(txn, bucket, key)?;
            cond.check(bucket, key, old.as_ref())?;
            register_packs(txn, &staged.packs)?;
            add_refs(txn, &slice_counts(&staged.slices), &staged.new_chunks)?;
            let manifest = write_manifest(txn, &staged.slices)?;
            let record = ObjectRecord {
                size,
                etag,
                mtime_ms: now_ms(),
                meta: meta.clone(),
                manifest,
                version: versions::new_version(txn, b.versioning)?,
                parts: Vec::new(),
            };
            locks::lock_new_version(
                txn,
                (bucket, key),
                record.version,
                &b.lock,
                &cond.lock,
                (cond.acl.clone(), cond.tags.clone()),
            )?;
            install_object(
                txn,
                (bucket, key),
                &record,
                &staged.slices,
                old,
                b.versioning,
            )?;
            Ok(record)
        })
    }

    /// Copies an object without copying data: the new version shares the source's
    /// manifest contents and takes its own references. `meta: None` keeps the source's
    /// metadata (COPY directive). `src_version` names a version of the source (its
    /// current object when `None`).
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`], [`Error::NoSuchKey`] / [`Error::NoSuchVersion`] /
    /// [`Error::DeleteMarker`] (source), [`Error::PreconditionFailed`].
    pub(crate) fn copy_object(
        &self,
        src: (&str, &str),
        src_version: Option<VersionSel>,
        dst: (&str, &str),
        meta: Option<ObjectMeta>,
        cond: WriteCondition,
    ) -> impl Future<Output = Result<ObjectRecord>> + use<> {
        let (sb, sk, db, dk) = (
            src.0.to_owned(),
            src.1.to_owned(),
            dst.0.to_owned(),
            dst.1.to_owned(),
        );
        self.committer.submit(move |txn| {
            let (src, dst) = ((sb.as_str(), sk.as_str()), (db.as_str(), dk.as_str()));
            let meta = meta.clone();
            let source = versions::source_version(txn, src, src_version)?;
            let b = versions::bucket_record(txn, dst.0)?;
            let old = get_object(txn, dst.0, dst.1)?;
            cond.check(dst.0, dst.1, old.as_ref())?;
            let slices = {
                let t = txn.open_table(MANIFESTS)?;
                super::read_manifest(&t, source.manifest)?
            };
            add_refs(txn, &slice_counts(&slices), &Default::default())?;
            let manifest = write_manifest(txn, &slices)?;
            let record = ObjectRecord {
                size: source.size,
                etag: source.etag,
                mtime_ms: now_ms(),
                // Replaced metadata keeps the checksums of the bytes copied: those of
                // the version read here, not of one the caller may have looked at.
                meta: match meta {
                    Some(m) => ObjectMeta {
                        checksums: source.meta.checksums.clone(),
                        ..m
                    },
                    None => source.meta,
                },
                manifest,
                version: versions::new_version(txn, b.versioning)?,
                // Same bytes, same ETag: the part table (and so `partNumber` reads and a
                // composite checksum) stays true of the copy.
                parts: source.parts,
            };
            // The copied version's own tags (x-amz-tagging-directive COPY), read here
            // with its bytes.
            let tags = if cond.copy_tags {
                locks::lock_of(&txn.open_table(super::LOCKS)?, src, source.version.seq)?
                    .map(|l| l.tags)
                    .unwrap_or_default()
            } else {
                cond.tags.clone()
            };
            locks::lock_new_version(
                txn,
                dst,
                record.version,
                &b.lock,
                &cond.lock,
                (cond.acl.clone(), tags),
            )?;
            install_object(txn, dst, &record, &slices, old, b.versioning)?;
            Ok(record)
        })
    }

    /// Deletes bucket/key: with `version`, that version for good; without, the current
    /// object (unversioned bucket) or by adding a delete marker (versioned bucket).
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`].
    pub(crate) fn delete_object(
        &self,
        bucket: &str,
        key: &str,
        version: Option<VersionSel>,
        opts: DeleteOptions,
    ) -> impl Future<Output = Result<Deleted>> + use<> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.committer.submit(move |txn| {
            let at = (bucket.as_str(), key.as_str());
            match version {
                None => versions::delete_current(txn, at, &opts),
                Some(sel) => versions::delete_version(txn, at, sel, &opts),
            }
        })
    }

    /// Sets a bucket's versioning state.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`], [`Error::InvalidArgument`] (unversioned again).
    pub(crate) fn set_versioning(
        &self,
        bucket: &str,
        state: Versioning,
    ) -> impl Future<Output = Result<()>> + use<> {
        let bucket = bucket.to_owned();
        self.committer
            .submit(move |txn| versions::set_versioning(txn, &bucket, state))
    }

    /// Version `sel` of an object (its current object when `None`).
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`], [`Error::NoSuchKey`], [`Error::NoSuchVersion`],
    /// [`Error::DeleteMarker`].
    pub(crate) fn object(
        &self,
        bucket: &str,
        key: &str,
        sel: Option<VersionSel>,
    ) -> Result<ObjectRecord> {
        find_object(&self.db.begin_read()?, bucket, key, sel)
    }

    /// The lock record of version `sel` (current when `None`) of bucket/key.
    ///
    /// # Errors
    /// As [`Index::object`].
    pub(crate) fn object_lock(
        &self,
        bucket: &str,
        key: &str,
        sel: Option<VersionSel>,
    ) -> Result<(ObjectRecord, crate::lock::LockRecord)> {
        use redb::ReadableDatabase;
        // One snapshot: the version and its lock as of the same moment.
        let txn = self.db.begin_read()?;
        let rec = find_object(&txn, bucket, key, sel)?;
        let lock = locks::lock_of(
            &txn.open_table(super::LOCKS)?,
            (bucket, key),
            rec.version.seq,
        )?;
        Ok((rec, lock.unwrap_or_default()))
    }

    /// The per-version record (lock, ACL, tags) of version `seq` of bucket/key; empty
    /// when it has none (or the version is gone).
    ///
    /// # Errors
    /// [`Error::Index`] or a decode error.
    pub(crate) fn version_record(
        &self,
        bucket: &str,
        key: &str,
        seq: u64,
    ) -> Result<crate::lock::LockRecord> {
        use redb::ReadableDatabase;
        let txn = self.db.begin_read()?;
        let t = txn.open_table(super::LOCKS)?;
        Ok(locks::lock_of(&t, (bucket, key), seq)?.unwrap_or_default())
    }

    /// Plans the read of `range` (`start..end`, already clipped to the object) of the
    /// current version of bucket/key, from a single snapshot.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`], [`Error::NoSuchKey`], [`Error::Corrupt`] when a referenced
    /// chunk is missing from the index.
    pub(crate) fn plan_read(
        &self,
        (bucket, key): (&str, &str),
        sel: Option<VersionSel>,
        range: impl FnOnce(&ObjectRecord) -> Result<(u64, u64)>,
    ) -> Result<ReadPlan> {
        let txn = self.db.begin_read()?;
        let record = find_object(&txn, bucket, key, sel)?;
        let (start, end) = range(&record)?;
        let manifests = txn.open_table(MANIFESTS)?;
        let chunks_t = txn.open_table(CHUNKS)?;
        let mut chunks = Vec::new();
        let corrupt =
            |detail: String| Error::corrupt("manifest", format!("{bucket}/{key}: {detail}"));
        let m: ManifestRef = record.manifest;
        let segs: Vec<_> = manifests
            .range((m.id, 0)..=(m.id, u32::MAX))?
            .collect::<std::result::Result<_, _>>()?;
        // The manifest must cover exactly the object's size before a status line is
        // sent: its last segment's start plus its slices must equal the size (a flipped
        // size or a lost segment would otherwise be served as a short, "complete" 200).
        // Decoded once: it is also the first segment a read of the object's tail uses.
        let mut last = segs
            .last()
            .map(|(_, v)| ManifestSegment::decode(v.value()))
            .transpose()?;
        let covered = match &last {
            None => 0,
            Some(seg) => seg
                .slices
                .iter()
                .try_fold(seg.start, |a, s| a.checked_add(u64::from(s.len)))
                .ok_or_else(|| corrupt("slice lengths overflow".into()))?,
        };
        if covered != record.size {
            return Err(corrupt(format!(
                "manifest covers {covered} bytes, the object has {}",
                record.size
            )));
        }
        if start < end {
            let mut expected_start = None;
            for (i, (_, v)) in segs.iter().enumerate() {
                // Skip segments that end before the range without decoding their slices.
                if let Some((_, next)) = segs.get(i + 1)
                    && ManifestSegment::decode_start(next.value())? <= start
                {
                    continue;
                }
                let seg = match last.take_if(|_| i + 1 == segs.len()) {
                    Some(seg) => seg,
                    None => ManifestSegment::decode(v.value())?,
                };
                if expected_start.is_some_and(|e| e != seg.start) {
                    return Err(corrupt(format!(
                        "segment {i} starts at {}, the previous one ends at {expected_start:?}",
                        seg.start
                    )));
                }
                let mut pos = seg.start;
                for s in seg.slices {
                    let (s_start, s_end) = (pos, pos.saturating_add(u64::from(s.len)));
                    pos = s_end;
                    if s_end <= start {
                        continue;
                    }
                    if s_start >= end {
                        break;
                    }
                    let skip = start.saturating_sub(s_start) as u32;
                    let cut = s_end.saturating_sub(end) as u32;
                    chunks.push(plan_slice(&chunks_t, &s, skip, cut)?);
                }
                expected_start = Some(pos);
                if pos >= end {
                    break;
                }
            }
            let planned: u64 = chunks.iter().map(|c| u64::from(c.end - c.start)).sum();
            if planned != end - start {
                return Err(corrupt(format!(
                    "manifest yields {planned} bytes for a range of {}",
                    end - start
                )));
            }
        }
        Ok(ReadPlan {
            record,
            range: (start, end),
            chunks,
        })
    }

    /// Lists objects of a bucket in key order (UTF-8 byte order, as S3).
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`].
    pub(crate) fn list_objects(&self, bucket: &str, q: &ListQuery<'_>) -> Result<ListPage> {
        let txn = self.db.begin_read()?;
        if txn.open_table(BUCKETS)?.get(bucket)?.is_none() {
            return Err(Error::NoSuchBucket(bucket.to_owned()));
        }
        let t = txn.open_table(OBJECTS)?;
        let delimiter = q.delimiter.filter(|d| !d.is_empty());
        let mut lower: String = match q.start_after {
            Some(m) if m >= q.prefix => m.to_owned(),
            _ => q.prefix.to_owned(),
        };
        let mut lower_inclusive = !matches!(q.start_after, Some(m) if m >= q.prefix);
        let mut entries: Vec<ListEntry> = Vec::new();
        // Collect one extra entry to know whether the page is truncated.
        'scan: while entries.len() <= q.max_keys {
            let lo = if lower_inclusive {
                Bound::Included((bucket, lower.as_str()))
            } else {
                Bound::Excluded((bucket, lower.as_str()))
            };
            let iter = t.range::<(&str, &str)>((lo, Bound::Unbounded))?;
            for r in iter {
                let (k, v) = r?;
                let (b, key) = k.value();
                if b != bucket || !key.starts_with(q.prefix) {
                    break 'scan;
                }
                if let Some(d) = delimiter
                    && let Some(i) = key[q.prefix.len()..].find(d)
                {
                    let cp = &key[..q.prefix.len() + i + d.len()];
                    let already = entries.last().is_some_and(|e| e.marker() == cp);
                    let before_marker = q.start_after.is_some_and(|m| cp <= m);
                    if !already && !before_marker {
                        entries.push(ListEntry::Prefix(cp.to_owned()));
                    }
                    // Jump past every key under this prefix instead of walking them.
                    if let Some(next) = prefix_successor(cp) {
                        lower = next;
                        lower_inclusive = true;
                        continue 'scan;
                    }
                    if entries.len() > q.max_keys {
                        break 'scan;
                    }
                    continue;
                }
                entries.push(ListEntry::Object {
                    key: key.to_owned(),
                    record: ObjectRecord::decode(v.value())?,
                });
                if entries.len() > q.max_keys {
                    break 'scan;
                }
            }
            break;
        }
        let is_truncated = entries.len() > q.max_keys;
        entries.truncate(q.max_keys);
        Ok(ListPage {
            entries,
            is_truncated,
        })
    }
}
