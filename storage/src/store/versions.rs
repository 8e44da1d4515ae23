//! [`Store`] operations that name object versions (S3 versioning).

use super::Store;
use crate::error::Result;
use crate::index::{DeleteOptions, Deleted, LockChange, VersionPage, VersionQuery, WriteCondition};
use crate::lock::{LockConfig, LockRecord, Retention};
use crate::read::{ByteRange, ObjectReader};
use crate::records::{ObjectMeta, ObjectRecord, PartRecord};
use crate::versions::{Version, VersionSel, Versioning};

fn parse(version: Option<&str>) -> Result<Option<VersionSel>> {
    version.map(VersionSel::parse).transpose()
}

impl Store {
    /// Sets a bucket's versioning state (enabled or suspended; never back to
    /// unversioned).
    ///
    /// # Errors
    /// [`crate::Error::NoSuchBucket`], [`crate::Error::InvalidArgument`].
    pub async fn set_versioning(&self, bucket: &str, state: Versioning) -> Result<()> {
        self.index.set_versioning(bucket, state).await
    }

    /// The record of version `version` of bucket/key (its current object when `None`).
    ///
    /// # Errors
    /// [`crate::Error::NoSuchBucket`], [`crate::Error::NoSuchKey`],
    /// [`crate::Error::NoSuchVersion`], [`crate::Error::DeleteMarker`],
    /// [`crate::Error::InvalidArgument`] (a malformed version id).
    pub async fn head_version(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<ObjectRecord> {
        let sel = parse(version)?;
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.with_index(move |i| i.object(&bucket, &key, sel)).await
    }

    /// Opens version `version` of bucket/key (its current object when `None`) for
    /// reading, optionally a byte range of it.
    ///
    /// # Errors
    /// As [`Store::head_version`], and [`crate::Error::InvalidRange`]; read and
    /// verification errors come through the body stream.
    pub async fn get_version(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
        range: Option<ByteRange>,
    ) -> Result<ObjectReader> {
        let sel = parse(version)?;
        let (b, k) = (bucket.to_owned(), key.to_owned());
        // Before the plan's read transaction: GC keeps every pack this read may use.
        let lease = self.index.inflight.read_lease();
        let plan = self
            .with_index(move |i| {
                i.plan_read((&b, &k), sel, |rec| match range {
                    None => Ok((0, rec.size)),
                    Some(r) => r.resolve(rec.size),
                })
            })
            .await?;
        Ok(ObjectReader {
            record: plan.record,
            range: plan.range,
            body: self.read_chunks(plan.chunks, lease),
        })
    }

    /// Copies version `src_version` of `src` (its current object when `None`) by
    /// reference.
    ///
    /// # Errors
    /// See [`crate::index::Index::copy_object`]; [`crate::Error::InvalidArgument`] for a
    /// malformed version id.
    pub async fn copy_version(
        &self,
        src: (&str, &str),
        src_version: Option<&str>,
        dst: (&str, &str),
        meta: Option<ObjectMeta>,
        cond: WriteCondition,
    ) -> Result<ObjectRecord> {
        let sel = parse(src_version)?;
        self.index.copy_object(src, sel, dst, meta, cond).await
    }

    /// UploadPartCopy of a whole single-part version by reference; `Ok(None)` when the
    /// source is a multipart object or has no checksum in algorithm `need`.
    ///
    /// # Errors
    /// As [`Store::copy_version`].
    pub async fn copy_version_to_part(
        &self,
        src: (&str, &str),
        src_version: Option<&str>,
        upload_id: &str,
        part: u32,
        need: Option<&str>,
    ) -> Result<Option<PartRecord>> {
        let sel = parse(src_version)?;
        self.index
            .copy_object_to_part(src, sel, upload_id, part, need.map(str::to_owned))
            .await
    }

    /// Deletes bucket/key: version `version` for good, or (without one) the current
    /// object in an unversioned bucket / by adding a delete marker in a versioned one.
    /// A version object lock protects is refused (`opts.bypass_governance` lets the
    /// request delete one under GOVERNANCE retention); `opts.if_match` is checked in the
    /// same transaction.
    ///
    /// # Errors
    /// [`crate::Error::NoSuchBucket`], [`crate::Error::InvalidArgument`],
    /// [`crate::Error::ObjectLocked`], [`crate::Error::PreconditionFailed`],
    /// [`crate::Error::NoSuchKey`] (`If-Match` on a missing object).
    pub async fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
        opts: DeleteOptions,
    ) -> Result<Deleted> {
        let sel = parse(version)?;
        self.index.delete_object(bucket, key, sel, opts).await
    }

    /// Versions object lock protects right now, and their bytes (one pass over every
    /// lock record).
    ///
    /// # Errors
    /// [`crate::Error::Index`].
    pub async fn locked(&self) -> Result<(u64, u64)> {
        self.with_index(|i| i.locked()).await
    }

    /// Creates a bucket with object lock enabled (and so versioning enabled).
    ///
    /// # Errors
    /// [`crate::Error::BucketExists`].
    pub async fn create_bucket_with_lock(&self, name: &str) -> Result<()> {
        self.index.create_bucket(name, "", true).await
    }

    /// Sets a bucket's object lock configuration (enabling it needs versioning enabled).
    ///
    /// # Errors
    /// [`crate::Error::NoSuchBucket`], [`crate::Error::InvalidBucketState`].
    pub async fn set_lock_config(&self, bucket: &str, config: LockConfig) -> Result<()> {
        self.index.set_lock_config(bucket, config).await
    }

    /// Sets (or, with `None`, removes) the retention of version `version` (current
    /// when `None`); returns the version changed.
    ///
    /// # Errors
    /// [`crate::Error::NoObjectLock`], [`crate::Error::ObjectLocked`] (COMPLIANCE never
    /// shortened or removed, GOVERNANCE only with `bypass_governance`), and as
    /// [`Store::head_version`].
    pub async fn put_retention(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
        retention: Option<Retention>,
        bypass_governance: bool,
    ) -> Result<Version> {
        let sel = parse(version)?;
        self.index
            .change_lock(
                bucket,
                key,
                sel,
                LockChange::Retention(retention, bypass_governance),
            )
            .await
    }

    /// Turns the legal hold of version `version` (current when `None`) on or off.
    ///
    /// # Errors
    /// As [`Store::put_retention`].
    pub async fn put_legal_hold(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
        on: bool,
    ) -> Result<Version> {
        let sel = parse(version)?;
        self.index
            .change_lock(bucket, key, sel, LockChange::LegalHold(on))
            .await
    }

    /// Sets (`None`: removes) the ACL of version `version` (current when `None`) of
    /// bucket/key, as the gateway encodes it; journaled like the lock state. With
    /// `expect`, only if that is the version found (else [`crate::Error::Conflict`]).
    ///
    /// # Errors
    /// As [`Store::head_version`]; [`crate::Error::Conflict`].
    pub async fn set_object_acl(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
        expect: Option<Version>,
        acl: Option<Vec<u8>>,
    ) -> Result<Version> {
        let sel = parse(version)?;
        self.index.set_acl(bucket, key, sel, expect, acl).await
    }

    /// Sets the tags of version `version` (current when `None`) of bucket/key (empty:
    /// removes them), journaled like the lock state; returns the version changed.
    ///
    /// # Errors
    /// As [`Store::head_version`].
    pub async fn set_object_tags(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
        tags: Vec<(String, String)>,
    ) -> Result<Version> {
        let sel = parse(version)?;
        self.index.set_tags(bucket, key, sel, tags).await
    }

    /// The per-version record (lock, ACL, tags) of `version` of bucket/key, without
    /// looking the version up again (empty when it has none or is gone): what a read
    /// of a version it already has needs.
    ///
    /// # Errors
    /// [`crate::Error::Index`] or a decode error.
    pub async fn version_record(
        &self,
        bucket: &str,
        key: &str,
        version: Version,
    ) -> Result<LockRecord> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.with_index(move |i| i.version_record(&bucket, &key, version.seq))
            .await
    }

    /// The object lock state of version `version` (current when `None`), with its record.
    ///
    /// # Errors
    /// As [`Store::head_version`].
    pub async fn object_lock(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<(ObjectRecord, LockRecord)> {
        let sel = parse(version)?;
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.with_index(move |i| i.object_lock(&bucket, &key, sel))
            .await
    }

    /// Lists versions and delete markers (ListObjectVersions).
    ///
    /// # Errors
    /// [`crate::Error::NoSuchBucket`], [`crate::Error::InvalidArgument`].
    pub async fn list_versions(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        (key_marker, version_marker): (Option<&str>, Option<&str>),
        max_keys: usize,
    ) -> Result<VersionPage> {
        let version_marker = parse(version_marker)?;
        let (bucket, prefix) = (bucket.to_owned(), prefix.to_owned());
        let delimiter = delimiter.map(str::to_owned);
        let key_marker = key_marker.map(str::to_owned);
        self.with_index(move |i| {
            let q = VersionQuery {
                prefix: &prefix,
                delimiter: delimiter.as_deref(),
                key_marker: key_marker.as_deref(),
                version_marker,
                max_keys,
            };
            i.list_versions(&bucket, &q)
        })
        .await
    }
}
