//! Bucket versioning: Put/GetBucketVersioning, ListObjectVersions, and the version
//! headers every object operation sends.

use s3dedup_storage::{ObjectRecord, VersionEntry, VersionItem, Versioning};
use s3s::dto;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::list::{Encoder, max_keys, non_empty};
use super::{Gateway, etag, timestamp};
use crate::error::to_s3;

/// The `x-amz-version-id` of a write's answer: the new version's id, none for a `null`
/// version.
pub(super) fn new_version_header(rec: &ObjectRecord) -> Option<String> {
    (!rec.version.null).then(|| rec.version.id())
}

/// The `x-amz-version-id` of a read of `rec` in a bucket in `state`: its id once the
/// bucket's versioning was ever set (`null` for its null version), none before.
pub(super) fn read_version_id(rec: &ObjectRecord, state: Versioning) -> Option<String> {
    (!rec.version.null || state != Versioning::Unversioned).then(|| rec.version.id())
}

impl Gateway {
    /// The `x-amz-version-id` to send for `rec` of `bucket`: its id in a bucket whose
    /// versioning was ever set (`null` for its null version), none in an unversioned
    /// bucket (S3 never sends `null` there).
    pub(super) async fn version_header(
        &self,
        bucket: &str,
        rec: &ObjectRecord,
    ) -> S3Result<Option<String>> {
        if !rec.version.null {
            return Ok(Some(rec.version.id()));
        }
        Ok(read_version_id(rec, self.versioning(bucket).await?))
    }

    /// A bucket's versioning state (NoSuchBucket when it does not exist).
    ///
    /// Writes answer differently from reads: a PUT, copy or completion names the
    /// version it created only when that is not the `null` version (S3 sends no
    /// `x-amz-version-id` for a write in a suspended bucket), see [`new_version_header`].
    pub(super) async fn versioning(&self, bucket: &str) -> S3Result<Versioning> {
        match self.store.bucket(bucket).await.map_err(to_s3)? {
            Some(b) => Ok(b.versioning),
            None => Err(s3_error!(
                NoSuchBucket,
                "The specified bucket does not exist: {bucket}"
            )),
        }
    }

    pub(super) async fn put_bucket_versioning_impl(
        &self,
        req: S3Request<dto::PutBucketVersioningInput>,
    ) -> S3Result<S3Response<dto::PutBucketVersioningOutput>> {
        let i = req.input;
        let c = i.versioning_configuration;
        if c.mfa_delete
            .as_ref()
            .is_some_and(|m| m.as_str() == dto::MFADelete::ENABLED)
        {
            return Err(s3_error!(NotImplemented, "MFA delete is not supported"));
        }
        let state = match c.status.as_ref().map(dto::BucketVersioningStatus::as_str) {
            Some(dto::BucketVersioningStatus::ENABLED) => Versioning::Enabled,
            Some(dto::BucketVersioningStatus::SUSPENDED) => Versioning::Suspended,
            _ => {
                return Err(s3_error!(
                    MalformedXML,
                    "The versioning Status must be Enabled or Suspended"
                ));
            }
        };
        self.store
            .set_versioning(&i.bucket, state)
            .await
            .map_err(to_s3)?;
        Ok(S3Response::new(dto::PutBucketVersioningOutput::default()))
    }

    /// An empty configuration for a bucket whose versioning was never set, as S3.
    pub(super) async fn get_bucket_versioning_impl(
        &self,
        req: S3Request<dto::GetBucketVersioningInput>,
    ) -> S3Result<S3Response<dto::GetBucketVersioningOutput>> {
        let status = match self.versioning(&req.input.bucket).await? {
            Versioning::Unversioned => None,
            Versioning::Enabled => Some(dto::BucketVersioningStatus::ENABLED),
            Versioning::Suspended => Some(dto::BucketVersioningStatus::SUSPENDED),
        };
        Ok(S3Response::new(dto::GetBucketVersioningOutput {
            status: status.map(dto::BucketVersioningStatus::from_static),
            ..Default::default()
        }))
    }

    pub(super) async fn list_object_versions_impl(
        &self,
        req: S3Request<dto::ListObjectVersionsInput>,
    ) -> S3Result<S3Response<dto::ListObjectVersionsOutput>> {
        let i = req.input;
        let enc = Encoder::new(i.encoding_type.as_ref())?;
        let max = max_keys(i.max_keys)?;
        let prefix = non_empty(i.prefix).unwrap_or_default();
        let delimiter = non_empty(i.delimiter);
        let key_marker = non_empty(i.key_marker);
        let version_marker = non_empty(i.version_id_marker);
        if version_marker.is_some() && key_marker.is_none() {
            return Err(s3_error!(
                InvalidArgument,
                "A version-id marker cannot be specified without a key marker."
            ));
        }
        let page = self
            .store
            .list_versions(
                &i.bucket,
                &prefix,
                delimiter.as_deref(),
                (key_marker.as_deref(), version_marker.as_deref()),
                max,
            )
            .await
            .map_err(to_s3)?;
        let owner = self.bucket_owner(&i.bucket).await?;
        let (mut versions, mut markers, mut prefixes) = (Vec::new(), Vec::new(), Vec::new());
        for item in page.items {
            match item {
                VersionItem::Version {
                    key,
                    entry: VersionEntry::Object(r),
                    latest,
                } => versions.push(dto::ObjectVersion {
                    key: Some(enc.enc(key)),
                    version_id: Some(r.version.id()),
                    is_latest: Some(latest),
                    size: Some(r.size as i64),
                    e_tag: Some(etag(&r)),
                    last_modified: Some(timestamp(r.mtime_ms)),
                    storage_class: Some(dto::ObjectVersionStorageClass::from_static(
                        dto::ObjectVersionStorageClass::STANDARD,
                    )),
                    owner: Some(owner.clone()),
                    ..Default::default()
                }),
                VersionItem::Version {
                    key,
                    entry: VersionEntry::Marker(m),
                    latest,
                } => markers.push(dto::DeleteMarkerEntry {
                    key: Some(enc.enc(key)),
                    version_id: Some(m.version.id()),
                    is_latest: Some(latest),
                    last_modified: Some(timestamp(m.mtime_ms)),
                    owner: Some(owner.clone()),
                }),
                VersionItem::Prefix(p) => prefixes.push(dto::CommonPrefix {
                    prefix: Some(enc.enc(p)),
                }),
            }
        }
        Ok(S3Response::new(dto::ListObjectVersionsOutput {
            name: Some(i.bucket),
            prefix: Some(enc.enc(prefix)),
            delimiter: delimiter.map(|d| enc.enc(d)),
            key_marker: Some(key_marker.map(|k| enc.enc(k)).unwrap_or_default()),
            version_id_marker: Some(version_marker.unwrap_or_default()),
            max_keys: Some(max as i32),
            is_truncated: Some(page.is_truncated),
            next_key_marker: page.next_key_marker.map(|k| enc.enc(k)),
            next_version_id_marker: page.next_version_marker,
            versions: Some(versions),
            delete_markers: Some(markers),
            common_prefixes: Some(prefixes),
            encoding_type: i.encoding_type,
            ..Default::default()
        }))
    }
}
