//! [`Store`]: the engine's API — ingest, commit, read, copy, delete, list, multipart.
//!
//! Blocking index work runs on tokio's blocking pool; backend I/O is async. The store
//! is cheap to clone and safe to share between requests.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;
use futures::stream::{self, BoxStream};

use crate::blob::{BlobStore, FsBlobStore};
use crate::chunker::ChunkerParams;
pub use crate::config::StoreConfig;
use crate::error::{BoxError, Error, Result};
use crate::index::{
    FsckReport, Index, ListPage, ListQuery, PlannedChunk, Stats, UploadSummary, WriteCondition,
};
use crate::ingest::{self, PendingObject, record_orphans_now};
use crate::read;
pub use crate::read::{ByteRange, ObjectReader};
use crate::records::{BucketRecord, ObjectMeta, ObjectRecord, PartRecord, UploadRecord};
pub use lifecycle::LifecycleReport;

mod identity;
mod lifecycle;
mod quota;
mod versions;

pub use identity::{NewKey, seal_document, unseal_document};

/// Name of the store's identity marker blob (see [`Store::open`]).
pub const STORE_ID_BLOB: &str = "s3dedup-store-id";

/// The storage engine.
#[derive(Debug, Clone)]
pub struct Store {
    index: Arc<Index>,
    blobs: Arc<dyn BlobStore>,
    cfg: StoreConfig,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await?
}

impl Store {
    /// Opens a store with its index at `index_path` over `blobs`.
    ///
    /// # Errors
    /// See [`Index::open`].
    pub async fn open(
        index_path: &Path,
        blobs: Arc<dyn BlobStore>,
        cfg: StoreConfig,
    ) -> Result<Self> {
        // A missing or zero-length index is created here; refuse to do that over a store
        // that already holds packs (a lost index is not a new store).
        let fresh = std::fs::metadata(index_path).map_or(true, |m| m.len() == 0);
        if fresh && let Some(first) = blobs.list(crate::pack::PACKS_PREFIX).await?.first() {
            return Err(Error::IndexMissing {
                index: index_path.display().to_string(),
                first: first.name.clone(),
            });
        }
        let path = index_path.to_owned();
        let (params, cache) = (cfg.chunker, cfg.index_cache);
        let (compression, keys) = (cfg.compression, cfg.keys.clone());
        let index = blocking(move || Index::open(&path, params, cache, compression, keys)).await?;
        let store = Store {
            index: Arc::new(index),
            blobs,
            cfg,
        };
        store.claim_store().await?;
        store.journal_catch_up().await?;
        Ok(store)
    }

    /// The store identity check: the backing store carries a marker blob naming the
    /// index that owns it, recorded in that index too. An index never opens over (and
    /// so never sweeps) a store another index claimed. A new pair is claimed here; an
    /// index from before identities claims its store if nobody else has.
    async fn claim_store(&self) -> Result<()> {
        let recorded = self.index.store_id()?;
        match (recorded, self.store_marker().await?) {
            (Some(mine), Some(found)) if mine != found => Err(Error::StoreOwnedElsewhere {
                found,
                expected: mine,
            }),
            (Some(_), Some(_)) => Ok(()),
            (Some(mine), None) => self.blobs.put(STORE_ID_BLOB, Bytes::from(mine)).await,
            (None, Some(found)) => Err(Error::StoreOwnedElsewhere {
                found,
                expected: "none".into(),
            }),
            (None, None) => {
                let id = format!("{:032x}", rand::random::<u128>());
                self.blobs
                    .put(STORE_ID_BLOB, Bytes::from(id.clone()))
                    .await?;
                self.index.set_store_id(id).await
            }
        }
    }

    /// The identity in the store's marker blob, if it has one.
    pub(crate) async fn store_marker(&self) -> Result<Option<String>> {
        match self.blobs.get(STORE_ID_BLOB).await {
            Ok(b) => Ok(Some(String::from_utf8_lossy(&b).trim().to_owned())),
            Err(Error::BlobNotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Opens the embedded default layout: `<dir>/index.redb` and packs under `<dir>/store`.
    ///
    /// # Errors
    /// As [`Store::open`], or if the directory cannot be created.
    pub async fn open_dir(dir: &Path, cfg: StoreConfig) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(Error::backend)?;
        let blobs = FsBlobStore::open(dir.join("store"))?;
        Self::open(&dir.join("index.redb"), Arc::new(blobs), cfg).await
    }

    /// The index (crate-internal: everything outside goes through `Store` methods, so a
    /// later index backend implements the same functions).
    pub(crate) fn index(&self) -> &Arc<Index> {
        &self.index
    }

    /// Verifies every page checksum of the index file at `path` (the gateway must not
    /// hold it open): `Ok(true)` when clean, `Ok(false)` when an interrupted commit was
    /// rolled back.
    ///
    /// # Errors
    /// [`Error::Index`] naming the damage.
    pub fn verify_index_file(path: &Path) -> Result<bool> {
        Index::verify_file(path)
    }

    /// Index commit counters (group commit), for metrics.
    pub fn commit_counters(&self) -> &crate::index::CommitCounters {
        self.index.commit_counters()
    }

    /// The chunker parameters recorded when the store was created.
    ///
    /// # Errors
    /// [`Error::Index`], [`Error::Corrupt`].
    pub fn recorded_chunker_params(&self) -> Result<ChunkerParams> {
        self.index.recorded_params()
    }

    /// Packs recorded as orphans (written by uploads that did not commit), with the
    /// time they were recorded.
    ///
    /// # Errors
    /// [`Error::Index`].
    pub fn orphan_packs(&self) -> Result<Vec<(u128, u64)>> {
        self.index.orphan_packs()
    }

    /// Chunks whose refcount reached 0, with the time (ms) they got there: what GC may
    /// remove once the grace period has passed.
    ///
    /// # Errors
    /// [`Error::Index`].
    pub fn gc_queue(&self) -> Result<Vec<(u64, crate::ChunkId)>> {
        self.index.gc_queue()
    }

    /// Packs the index knows, by id.
    ///
    /// # Errors
    /// [`Error::Index`], [`Error::Corrupt`].
    pub fn packs(&self) -> Result<Vec<(u128, crate::records::PackRecord)>> {
        self.index.packs()
    }

    /// The backing store.
    pub fn blobs(&self) -> &Arc<dyn BlobStore> {
        &self.blobs
    }

    /// What this store encrypts with: the active key, the configured ones, the id scheme.
    pub fn encryption(&self) -> crate::crypto::Encryption {
        let codec = self.index.codec();
        crate::crypto::Encryption {
            active_key: codec.active_key(),
            keys: codec.keys.as_ref().map(|k| k.ids()).unwrap_or_default(),
            id_scheme: codec.ids.name(),
        }
    }

    /// The engine settings.
    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    async fn with_index<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Index) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let index = Arc::clone(&self.index);
        blocking(move || f(&index)).await
    }

    /// Creates a bucket.
    ///
    /// # Errors
    /// [`Error::BucketExists`].
    pub async fn create_bucket(&self, name: &str) -> Result<()> {
        self.index.create_bucket(name, "", false).await
    }

    /// Deletes an empty bucket.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`], [`Error::BucketNotEmpty`].
    pub async fn delete_bucket(&self, name: &str) -> Result<()> {
        self.index.delete_bucket(name).await
    }

    /// A bucket's record, if it exists.
    ///
    /// # Errors
    /// [`Error::Index`].
    pub async fn bucket(&self, name: &str) -> Result<Option<BucketRecord>> {
        let name = name.to_owned();
        self.with_index(move |i| i.bucket(&name)).await
    }

    /// All buckets.
    ///
    /// # Errors
    /// [`Error::Index`].
    pub async fn buckets(&self) -> Result<Vec<(String, BucketRecord)>> {
        self.with_index(Index::buckets).await
    }

    /// Chunks, hashes and stores a byte stream; see [`PendingObject`].
    ///
    /// # Errors
    /// [`Error::Body`] if the stream fails, backend errors; nothing becomes visible.
    pub async fn ingest<S, E>(&self, body: S) -> Result<PendingObject>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin + Send,
        E: Into<BoxError>,
    {
        let ids = self.index.codec().ids.clone();
        ingest::ingest(&self.index, &self.blobs, &self.cfg, body, None, ids).await
    }

    /// [`Store::ingest`] of an upload by `uploader` (its chunks named in the uploader's
    /// dedup domain, see [`crate::identity::Uploader`]), also computing `digest` (if any)
    /// over the body in the same sink as the MD5 (off the async workers for large
    /// bodies); its results are in [`PendingObject::digests`].
    ///
    /// # Errors
    /// As [`Store::ingest`]; [`Error::NoSuchBucket`] for an anonymous upload into a
    /// bucket that does not exist.
    pub async fn ingest_into<S, E>(
        &self,
        uploader: crate::identity::Uploader<'_>,
        body: S,
        digest: Option<Box<dyn ingest::BodyDigest>>,
    ) -> Result<PendingObject>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin + Send,
        E: Into<BoxError>,
    {
        let ids = match uploader {
            crate::identity::Uploader::Anonymous { bucket } if self.index.codec().has_domains() => {
                let bucket = bucket.to_owned();
                self.with_index(move |i| {
                    i.id_scheme_for(crate::identity::Uploader::Anonymous { bucket: &bucket })
                })
                .await?
            }
            other => self.index.id_scheme_for(other)?,
        };
        ingest::ingest(&self.index, &self.blobs, &self.cfg, body, digest, ids).await
    }

    /// Ingests bytes already in memory.
    ///
    /// # Errors
    /// As [`Store::ingest`].
    pub async fn ingest_bytes(&self, data: Bytes) -> Result<PendingObject> {
        self.ingest(stream::iter([Ok::<_, std::convert::Infallible>(data)]))
            .await
    }

    /// Publishes an ingested object as bucket/key in one durable transaction.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`], [`Error::PreconditionFailed`], [`Error::ChunkGone`]; on
    /// error nothing is published and the upload's packs are recorded for GC.
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        mut pending: PendingObject,
        meta: ObjectMeta,
        cond: WriteCondition,
    ) -> Result<ObjectRecord> {
        let staged = Arc::new(pending.take_staged());
        let etag = crate::records::Etag {
            md5: pending.md5,
            parts: 0,
        };
        let r = self
            .index
            .commit_object(
                bucket.to_owned(),
                key.to_owned(),
                Arc::clone(&staged),
                (pending.size, etag, meta),
                cond,
            )
            .await;
        if r.is_err() {
            record_orphans_now(&self.index, staged.packs.clone()).await;
        }
        r
    }

    /// Commits an ingested part of a multipart upload.
    ///
    /// # Errors
    /// [`Error::NoSuchUpload`], [`Error::ChunkGone`].
    pub async fn put_part(
        &self,
        upload_id: &str,
        part: u32,
        mut pending: PendingObject,
        checksums: Vec<(String, String)>,
    ) -> Result<PartRecord> {
        let staged = Arc::new(pending.take_staged());
        let r = self
            .index
            .commit_part(
                upload_id.to_owned(),
                part,
                Arc::clone(&staged),
                (pending.size, pending.md5),
                checksums,
            )
            .await;
        if r.is_err() {
            record_orphans_now(&self.index, staged.packs.clone()).await;
        }
        r
    }

    /// UploadPartCopy of a whole single-part object by reference (no data read);
    /// `Ok(None)` when the source is a multipart object.
    ///
    /// # Errors
    /// See [`Index::copy_object_to_part`].
    pub async fn copy_object_to_part(
        &self,
        src: (&str, &str),
        upload_id: &str,
        part: u32,
    ) -> Result<Option<PartRecord>> {
        self.index
            .copy_object_to_part(src, None, upload_id, part, None)
            .await
    }

    /// The current version's record.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`], [`Error::NoSuchKey`].
    pub async fn head_object(&self, bucket: &str, key: &str) -> Result<ObjectRecord> {
        self.head_version(bucket, key, None).await
    }

    /// Opens the current version for reading, optionally a byte range of it.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`], [`Error::NoSuchKey`], [`Error::InvalidRange`]; read and
    /// verification errors come through the body stream.
    pub async fn get_object(
        &self,
        bucket: &str,
        key: &str,
        range: Option<ByteRange>,
    ) -> Result<ObjectReader> {
        self.get_version(bucket, key, None, range).await
    }

    /// Streams planned chunks (see [`crate::read`]), holding the read's lease until
    /// the stream is dropped.
    pub(crate) fn read_chunks(
        &self,
        chunks: Vec<PlannedChunk>,
        lease: crate::inflight::ReadLease,
    ) -> BoxStream<'static, Result<Bytes>> {
        use futures::StreamExt as _;
        read::read_chunks(
            Arc::clone(&self.blobs),
            self.index.codec().clone(),
            &self.cfg,
            chunks,
        )
        .map(move |item| {
            let _held = &lease;
            item
        })
        .boxed()
    }

    /// Opens the object the listed parts of an upload would complete to, for reading
    /// before completing it (scanning the whole object): its size,
    /// [`content_digest`](crate::index::content_digest) (pass it to
    /// [`Store::complete_upload`] so exactly these bytes get published) and bytes.
    ///
    /// # Errors
    /// See [`Index::plan_upload_read`]; read errors come through the stream.
    pub async fn read_upload(
        &self,
        upload_id: &str,
        listed: Vec<(u32, String)>,
        min_part_size: u64,
    ) -> Result<(u64, [u8; 32], BoxStream<'static, Result<Bytes>>)> {
        let id = upload_id.to_owned();
        let lease = self.index.inflight.read_lease();
        let (size, digest, chunks) = self
            .with_index(move |i| i.plan_upload_read(&id, &listed, min_part_size))
            .await?;
        Ok((size, digest, self.read_chunks(chunks, lease)))
    }

    /// Copies an object by reference (no data is read or written).
    ///
    /// # Errors
    /// See [`Index::copy_object`].
    pub async fn copy_object(
        &self,
        src: (&str, &str),
        dst: (&str, &str),
        meta: Option<ObjectMeta>,
        cond: WriteCondition,
    ) -> Result<ObjectRecord> {
        self.index.copy_object(src, None, dst, meta, cond).await
    }

    /// Deletes bucket/key without a version id (in a versioned bucket: adds a delete
    /// marker); returns the object that stopped being current, if any.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`].
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectRecord>> {
        Ok(self
            .index
            .delete_object(bucket, key, None, Default::default())
            .await?
            .object)
    }

    /// Lists a bucket.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`].
    pub async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        start_after: Option<&str>,
        max_keys: usize,
    ) -> Result<ListPage> {
        let (bucket, prefix) = (bucket.to_owned(), prefix.to_owned());
        let delimiter = delimiter.map(str::to_owned);
        let start_after = start_after.map(str::to_owned);
        self.with_index(move |i| {
            let q = ListQuery {
                prefix: &prefix,
                delimiter: delimiter.as_deref(),
                start_after: start_after.as_deref(),
                max_keys,
            };
            i.list_objects(&bucket, &q)
        })
        .await
    }

    /// Starts a multipart upload; the object gets `lock` at completion.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`]; [`Error::NoObjectLock`] for a lock in a bucket without
    /// object lock.
    pub async fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        meta: ObjectMeta,
        lock: crate::lock::LockRequest,
    ) -> Result<String> {
        self.index
            .create_upload(bucket, key, meta, lock, None, (None, Vec::new()))
            .await
    }

    /// [`Store::create_upload`] of an object that gets `acl` (as the gateway encodes
    /// it), with `checksum` that checksum (its parts are recorded with theirs), and
    /// `tags`.
    ///
    /// # Errors
    /// As [`Store::create_upload`].
    pub async fn create_upload_with_acl(
        &self,
        bucket: &str,
        key: &str,
        meta: ObjectMeta,
        lock: crate::lock::LockRequest,
        acl: Option<Vec<u8>>,
        (checksum, tags): (Option<crate::records::ChecksumSpec>, Vec<(String, String)>),
    ) -> Result<String> {
        self.index
            .create_upload(bucket, key, meta, lock, acl, (checksum, tags))
            .await
    }

    /// Completes a multipart upload; returns bucket, key and the new record.
    ///
    /// # Errors
    /// See [`Index::complete_upload`].
    pub async fn complete_upload(
        &self,
        upload_id: &str,
        parts: Vec<(u32, String)>,
        min_part_size: u64,
        checksums: Vec<(String, String)>,
        cond: WriteCondition,
        expect_digest: Option<[u8; 32]>,
    ) -> Result<(String, String, ObjectRecord)> {
        self.complete_upload_summed(
            upload_id,
            parts,
            min_part_size,
            (checksums, Vec::new()),
            cond,
            expect_digest,
        )
        .await
    }

    /// [`Store::complete_upload`] of an object whose checksum (`checksums.0`) was
    /// combined from the listed parts' checksums `checksums.1` (each in the object's
    /// algorithm): the completion fails with [`crate::Error::Conflict`] if a part has
    /// another checksum by the time it commits.
    ///
    /// # Errors
    /// See [`Index::complete_upload`].
    pub async fn complete_upload_summed(
        &self,
        upload_id: &str,
        parts: Vec<(u32, String)>,
        min_part_size: u64,
        checksums: (Vec<(String, String)>, Vec<Option<String>>),
        cond: WriteCondition,
        expect_digest: Option<[u8; 32]>,
    ) -> Result<(String, String, ObjectRecord)> {
        self.index
            .complete_upload(
                upload_id,
                parts,
                min_part_size,
                checksums,
                cond,
                expect_digest,
            )
            .await
    }

    /// A multipart upload completed within the last 24 hours, if `upload_id` is one.
    ///
    /// # Errors
    /// [`Error::Index`] or a decode error.
    pub async fn completed_upload(
        &self,
        upload_id: &str,
    ) -> Result<Option<crate::records::CompletedUploadRecord>> {
        let id = upload_id.to_owned();
        self.with_index(move |i| i.completed_upload(&id)).await
    }

    /// Aborts a multipart upload.
    ///
    /// # Errors
    /// [`Error::NoSuchUpload`].
    pub async fn abort_upload(&self, upload_id: &str) -> Result<()> {
        self.index.abort_upload(upload_id).await
    }

    /// An upload's record.
    ///
    /// # Errors
    /// [`Error::NoSuchUpload`].
    pub async fn upload(&self, upload_id: &str) -> Result<UploadRecord> {
        let upload_id = upload_id.to_owned();
        self.with_index(move |i| i.upload(&upload_id)).await
    }

    /// Parts of an upload after part number `after`.
    ///
    /// # Errors
    /// [`Error::NoSuchUpload`].
    pub async fn list_parts(
        &self,
        upload_id: &str,
        after: u32,
        max: usize,
    ) -> Result<Vec<(u32, PartRecord)>> {
        let upload_id = upload_id.to_owned();
        self.with_index(move |i| i.list_parts(&upload_id, after, max))
            .await
    }

    /// In-progress uploads of a bucket.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`].
    pub async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<(String, String)>,
        max: usize,
    ) -> Result<Vec<UploadSummary>> {
        let (bucket, prefix) = (bucket.to_owned(), prefix.to_owned());
        self.with_index(move |i| {
            let after = after.as_ref().map(|(k, u)| (k.as_str(), u.as_str()));
            i.list_uploads(&bucket, &prefix, after, max)
        })
        .await
    }

    /// Counters.
    ///
    /// # Errors
    /// [`Error::Index`].
    pub async fn stats(&self) -> Result<Stats> {
        self.with_index(Index::stats).await
    }

    /// Writes a snapshot of the index into `dir` and keeps the newest `keep` there.
    ///
    /// # Errors
    /// See [`Index::snapshot`].
    pub async fn snapshot_index(
        &self,
        dir: &Path,
        keep: usize,
    ) -> Result<crate::index::SnapshotInfo> {
        let dir = dir.to_owned();
        self.with_index(move |i| {
            let info = i.snapshot(&dir)?;
            crate::index::prune_snapshots(&dir, keep.max(1))?;
            Ok(info)
        })
        .await
    }

    /// Writes a consistent copy of the live index to `path` (a redb file that
    /// `s3dedup serve` opens as its `index.redb`; see the README "Restoring the index").
    ///
    /// # Errors
    /// See [`Index::snapshot`].
    pub async fn backup_index(&self, path: &Path) -> Result<crate::index::SnapshotInfo> {
        let path = path.to_owned();
        self.with_index(move |i| i.snapshot_to(&path)).await
    }

    /// Recounts references; see [`FsckReport`].
    ///
    /// # Errors
    /// [`Error::Index`] or a decode error.
    pub async fn fsck(&self) -> Result<FsckReport> {
        self.with_index(Index::fsck).await
    }
}
