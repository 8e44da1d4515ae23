//! The S3 API over the storage engine.
//!
//! Layout:
//! - `mod.rs` — [`Gateway`], the `s3s::S3` impl (one line per operation; the server
//!   times, counts and logs each request) and shared helpers (metadata, conditions,
//!   names);
//! - `buckets.rs` — bucket operations;
//! - `objects.rs` — PUT/GET/HEAD/DELETE/COPY of objects, DeleteObjects;
//! - `list.rs` — ListObjects v1 and v2;
//! - `multipart.rs` — multipart uploads;
//! - `versions.rs` — bucket versioning, ListObjectVersions, version headers;
//! - `locks.rs` — object lock configuration, retention, legal holds;
//! - `authorize.rs` — who asks, Owner fields, the checks the access check cannot make;
//! - `policies.rs` — bucket policies and public access blocks.

mod acls;
mod authorize;
mod buckets;
mod lifecycle;
mod list;
mod locks;
mod multipart;
mod objects;
mod policies;
mod quota;
mod versions;

use std::time::UNIX_EPOCH;

use s3dedup_storage::{ObjectMeta, ObjectRecord, Store, WriteCondition};
use s3s::dto::{self, ETag, Timestamp};
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};

use crate::checksum::Algorithm;

/// Settings the S3 layer needs.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// Region reported by GetBucketLocation.
    pub region: String,
    /// Minimum size of every multipart part but the last.
    pub min_part_size: u64,
    /// Virus scanning.
    pub scan: std::sync::Arc<crate::scan::ScanService>,
}

/// The S3 service: an `s3s::S3` implementation over a [`Store`].
#[derive(Debug, Clone)]
pub struct Gateway {
    store: Store,
    settings: GatewaySettings,
}

impl Gateway {
    /// A gateway serving `store`.
    pub fn new(store: Store, settings: GatewaySettings) -> Self {
        Gateway { store, settings }
    }
}

/// The write condition of PutObject and CompleteMultipartUpload (one builder, so both
/// accept and refuse the same headers): `If-Match` (an ETag or `*`) and
/// `If-None-Match: *`; an `If-None-Match` naming an ETag is not implemented.
pub(super) fn write_condition(
    if_match: Option<&dto::ETagCondition>,
    if_none_match: Option<&dto::ETagCondition>,
) -> S3Result<WriteCondition> {
    let if_none_match_any = match if_none_match {
        None => false,
        Some(dto::ETagCondition::Any) => true,
        Some(_) => {
            return Err(s3_error!(
                NotImplemented,
                "Conditional writes support only If-None-Match: *"
            ));
        }
    };
    let if_match = if_match.map(|c| match c {
        dto::ETagCondition::Any => "*".to_owned(),
        dto::ETagCondition::ETag(e) => e.value().to_owned(),
    });
    Ok(WriteCondition {
        if_match,
        if_none_match_any,
        ..Default::default()
    })
}

/// The request's access key, for audit lines.
fn access_key(c: Option<&s3s::auth::Credentials>) -> String {
    c.map_or_else(|| "anonymous".to_owned(), |c| c.access_key.clone())
}

/// Timestamp of a record's mtime. A stored time is checked when its record is
/// decoded; this still never panics on one beyond year 9999 (clamped).
fn timestamp(ms: u64) -> Timestamp {
    const MAX_MS: u64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
    Timestamp::from(UNIX_EPOCH + std::time::Duration::from_millis(ms.min(MAX_MS)))
}

fn etag(rec: &ObjectRecord) -> ETag {
    ETag::Strong(rec.etag.to_string())
}

/// Whole seconds since the epoch, as HTTP dates compare.
fn seconds(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

/// S3 keys are at most 1024 bytes of UTF-8.
fn check_key(key: &str) -> S3Result<()> {
    if key.is_empty() {
        return Err(s3_error!(
            InvalidArgument,
            "The object key must not be empty"
        ));
    }
    if key.len() > 1024 {
        return Err(s3_error!(
            KeyTooLongError,
            "Your key is {} bytes; the maximum is 1024",
            key.len()
        ));
    }
    Ok(())
}

/// The key of an object being written: as [`check_key`], and no character XML 1.0
/// cannot carry (control characters but tab, LF and CR; U+FFFE, U+FFFF). Such a key
/// could never be listed in a well-formed ListObjects response.
fn check_new_key(key: &str) -> S3Result<()> {
    check_key(key)?;
    let bad = key.chars().find(|&c| {
        (c < '\u{20}' && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{FFFE}' | '\u{FFFF}')
    });
    if let Some(c) = bad {
        return Err(s3_error!(
            InvalidArgument,
            "The object key contains the character U+{:04X}, which XML 1.0 cannot carry",
            c as u32
        ));
    }
    Ok(())
}

/// S3's limit on user metadata: the UTF-8 bytes of every key (without `x-amz-meta-`)
/// and value, summed.
const MAX_USER_METADATA: usize = 2048;

/// Refuses user metadata over S3's 2 KB limit (before any body byte is read).
fn check_user_metadata(m: Option<&dto::Metadata>) -> S3Result<()> {
    let size: usize = m.map_or(0, |m| m.iter().map(|(k, v)| k.len() + v.len()).sum());
    if size > MAX_USER_METADATA {
        return Err(s3_error!(
            MetadataTooLarge,
            "Your metadata headers are {size} bytes; the maximum is {MAX_USER_METADATA}"
        ));
    }
    Ok(())
}

/// Evaluates GET/HEAD conditional headers (RFC 9110 order) against the current version.
fn check_read_conditions(
    rec: &ObjectRecord,
    if_match: Option<&dto::ETagCondition>,
    if_none_match: Option<&dto::ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let tag = rec.etag.to_string();
    let matches = |c: &dto::ETagCondition| match c {
        dto::ETagCondition::Any => true,
        dto::ETagCondition::ETag(e) => e.value() == tag,
    };
    let mtime = (rec.mtime_ms / 1000) as i64;
    if let Some(c) = if_match {
        if !matches(c) {
            return Err(s3_error!(PreconditionFailed, "If-Match did not match"));
        }
    } else if let Some(t) = if_unmodified_since
        && mtime > seconds(t)
    {
        return Err(s3_error!(
            PreconditionFailed,
            "The object was modified since the given time"
        ));
    }
    let not_modified = match (if_none_match, if_modified_since) {
        (Some(c), _) => matches(c),
        (None, Some(t)) => mtime <= seconds(t),
        (None, None) => false,
    };
    if not_modified {
        let mut e = s3_error!(NotModified);
        let mut headers = http::HeaderMap::new();
        if let Ok(v) = http::HeaderValue::from_str(&format!("\"{tag}\"")) {
            headers.insert(http::header::ETAG, v);
        }
        e.set_headers(headers);
        return Err(e);
    }
    Ok(())
}

/// Evaluates `x-amz-copy-source-if-*` against the source: any failure is 412 (S3 never
/// answers 304 to a copy).
fn check_copy_source_conditions(
    src: &ObjectRecord,
    if_match: Option<&dto::ETagCondition>,
    if_none_match: Option<&dto::ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    match check_read_conditions(
        src,
        if_match,
        if_none_match,
        if_modified_since,
        if_unmodified_since,
    ) {
        Err(e) if e.code() == &s3s::S3ErrorCode::NotModified => Err(s3_error!(
            PreconditionFailed,
            "A copy-source condition did not hold"
        )),
        r => r,
    }
}

/// Standard headers kept with an object, as (lowercase name, value).
struct StdHeaders<'a> {
    cache_control: Option<&'a String>,
    content_disposition: Option<&'a String>,
    content_encoding: Option<&'a String>,
    content_language: Option<&'a String>,
    expires: Option<&'a Timestamp>,
}

fn object_meta(
    content_type: Option<&String>,
    h: StdHeaders<'_>,
    user: Option<&dto::Metadata>,
) -> ObjectMeta {
    let mut headers = Vec::new();
    let mut push = |name: &str, v: Option<&String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            headers.push((name.to_owned(), v.clone()));
        }
    };
    push("cache-control", h.cache_control);
    push("content-disposition", h.content_disposition);
    // aws-chunked is a transfer detail of the upload, not a property of the object.
    let encoding = h.content_encoding.map(|e| {
        e.split(',')
            .map(str::trim)
            .filter(|p| !p.eq_ignore_ascii_case("aws-chunked") && !p.is_empty())
            .collect::<Vec<_>>()
            .join(", ")
    });
    push("content-encoding", encoding.as_ref());
    push("content-language", h.content_language);
    if let Some(t) = h.expires {
        let mut s = Vec::new();
        if t.format(dto::TimestampFormat::HttpDate, &mut s).is_ok() {
            headers.push(("expires".into(), String::from_utf8_lossy(&s).into_owned()));
        }
    }
    let mut user: Vec<(String, String)> = user
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    user.sort();
    ObjectMeta {
        content_type: content_type.cloned(),
        headers,
        user,
        checksums: Vec::new(),
    }
}

fn header<'a>(meta: &'a ObjectMeta, name: &str) -> Option<&'a String> {
    meta.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

fn user_metadata(meta: &ObjectMeta) -> Option<dto::Metadata> {
    (!meta.user.is_empty()).then(|| meta.user.iter().cloned().collect())
}

fn expires(meta: &ObjectMeta) -> Option<Timestamp> {
    header(meta, "expires").and_then(|v| Timestamp::parse(dto::TimestampFormat::HttpDate, v).ok())
}

/// Checksum values of a record for the given algorithm set, as output fields.
#[derive(Default)]
struct ChecksumFields {
    crc32: Option<String>,
    crc32c: Option<String>,
    crc64nvme: Option<String>,
    sha1: Option<String>,
    sha256: Option<String>,
}

/// S3 outputs that carry the five `checksum_*` fields.
trait WithChecksums: Sized {
    fn with_checksums(self, c: ChecksumFields) -> Self;
}

macro_rules! impl_with_checksums {
    ($($t:ty),*) => {$(
        impl WithChecksums for $t {
            fn with_checksums(mut self, c: ChecksumFields) -> Self {
                self.checksum_crc32 = c.crc32;
                self.checksum_crc32c = c.crc32c;
                self.checksum_crc64nvme = c.crc64nvme;
                self.checksum_sha1 = c.sha1;
                self.checksum_sha256 = c.sha256;
                self
            }
        }
    )*};
}
impl_with_checksums!(
    dto::PutObjectOutput,
    dto::GetObjectOutput,
    dto::HeadObjectOutput,
    dto::UploadPartOutput,
    dto::CopyObjectResult
);

fn checksum_fields(values: &[(String, String)]) -> ChecksumFields {
    let mut f = ChecksumFields::default();
    for (name, v) in values {
        let slot = match Algorithm::parse(name) {
            Some(Algorithm::Crc32) => &mut f.crc32,
            Some(Algorithm::Crc32c) => &mut f.crc32c,
            Some(Algorithm::Crc64Nvme) => &mut f.crc64nvme,
            Some(Algorithm::Sha1) => &mut f.sha1,
            Some(Algorithm::Sha256) => &mut f.sha256,
            None => continue,
        };
        *slot = Some(v.clone());
    }
    f
}

#[async_trait::async_trait]
impl S3 for Gateway {
    async fn list_buckets(
        &self,
        req: S3Request<dto::ListBucketsInput>,
    ) -> S3Result<S3Response<dto::ListBucketsOutput>> {
        self.list_buckets_impl(req).await
    }
    async fn create_bucket(
        &self,
        req: S3Request<dto::CreateBucketInput>,
    ) -> S3Result<S3Response<dto::CreateBucketOutput>> {
        self.create_bucket_impl(req).await
    }
    async fn head_bucket(
        &self,
        req: S3Request<dto::HeadBucketInput>,
    ) -> S3Result<S3Response<dto::HeadBucketOutput>> {
        self.head_bucket_impl(req).await
    }
    async fn delete_bucket(
        &self,
        req: S3Request<dto::DeleteBucketInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketOutput>> {
        self.delete_bucket_impl(req).await
    }
    async fn get_bucket_location(
        &self,
        req: S3Request<dto::GetBucketLocationInput>,
    ) -> S3Result<S3Response<dto::GetBucketLocationOutput>> {
        self.get_bucket_location_impl(req).await
    }
    async fn put_object(
        &self,
        req: S3Request<dto::PutObjectInput>,
    ) -> S3Result<S3Response<dto::PutObjectOutput>> {
        self.put_object_impl(req).await
    }
    async fn get_object(
        &self,
        req: S3Request<dto::GetObjectInput>,
    ) -> S3Result<S3Response<dto::GetObjectOutput>> {
        self.get_object_impl(req).await
    }
    async fn head_object(
        &self,
        req: S3Request<dto::HeadObjectInput>,
    ) -> S3Result<S3Response<dto::HeadObjectOutput>> {
        self.head_object_impl(req).await
    }
    async fn delete_object(
        &self,
        req: S3Request<dto::DeleteObjectInput>,
    ) -> S3Result<S3Response<dto::DeleteObjectOutput>> {
        self.delete_object_impl(req).await
    }
    async fn delete_objects(
        &self,
        req: S3Request<dto::DeleteObjectsInput>,
    ) -> S3Result<S3Response<dto::DeleteObjectsOutput>> {
        self.delete_objects_impl(req).await
    }
    async fn copy_object(
        &self,
        req: S3Request<dto::CopyObjectInput>,
    ) -> S3Result<S3Response<dto::CopyObjectOutput>> {
        self.copy_object_impl(req).await
    }
    async fn list_objects(
        &self,
        req: S3Request<dto::ListObjectsInput>,
    ) -> S3Result<S3Response<dto::ListObjectsOutput>> {
        self.list_objects_impl(req).await
    }
    async fn list_objects_v2(
        &self,
        req: S3Request<dto::ListObjectsV2Input>,
    ) -> S3Result<S3Response<dto::ListObjectsV2Output>> {
        self.list_objects_v2_impl(req).await
    }
    async fn create_multipart_upload(
        &self,
        req: S3Request<dto::CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::CreateMultipartUploadOutput>> {
        self.create_multipart_upload_impl(req).await
    }
    async fn upload_part(
        &self,
        req: S3Request<dto::UploadPartInput>,
    ) -> S3Result<S3Response<dto::UploadPartOutput>> {
        self.upload_part_impl(req).await
    }
    async fn upload_part_copy(
        &self,
        req: S3Request<dto::UploadPartCopyInput>,
    ) -> S3Result<S3Response<dto::UploadPartCopyOutput>> {
        self.upload_part_copy_impl(req).await
    }
    async fn complete_multipart_upload(
        &self,
        req: S3Request<dto::CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::CompleteMultipartUploadOutput>> {
        self.complete_multipart_upload_impl(req).await
    }
    async fn abort_multipart_upload(
        &self,
        req: S3Request<dto::AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::AbortMultipartUploadOutput>> {
        self.abort_multipart_upload_impl(req).await
    }
    async fn list_parts(
        &self,
        req: S3Request<dto::ListPartsInput>,
    ) -> S3Result<S3Response<dto::ListPartsOutput>> {
        self.list_parts_impl(req).await
    }
    async fn list_multipart_uploads(
        &self,
        req: S3Request<dto::ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<dto::ListMultipartUploadsOutput>> {
        self.list_multipart_uploads_impl(req).await
    }
    async fn get_bucket_versioning(
        &self,
        req: S3Request<dto::GetBucketVersioningInput>,
    ) -> S3Result<S3Response<dto::GetBucketVersioningOutput>> {
        self.get_bucket_versioning_impl(req).await
    }
    async fn put_bucket_versioning(
        &self,
        req: S3Request<dto::PutBucketVersioningInput>,
    ) -> S3Result<S3Response<dto::PutBucketVersioningOutput>> {
        self.put_bucket_versioning_impl(req).await
    }
    async fn put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<dto::PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<dto::PutBucketLifecycleConfigurationOutput>> {
        self.put_bucket_lifecycle_configuration_impl(req).await
    }
    async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<dto::GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<dto::GetBucketLifecycleConfigurationOutput>> {
        self.get_bucket_lifecycle_configuration_impl(req).await
    }
    async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<dto::DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketLifecycleOutput>> {
        self.delete_bucket_lifecycle_impl(req).await
    }
    async fn put_object_lock_configuration(
        &self,
        req: S3Request<dto::PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<dto::PutObjectLockConfigurationOutput>> {
        self.put_object_lock_configuration_impl(req).await
    }
    async fn get_object_lock_configuration(
        &self,
        req: S3Request<dto::GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<dto::GetObjectLockConfigurationOutput>> {
        self.get_object_lock_configuration_impl(req).await
    }
    async fn put_object_retention(
        &self,
        req: S3Request<dto::PutObjectRetentionInput>,
    ) -> S3Result<S3Response<dto::PutObjectRetentionOutput>> {
        self.put_object_retention_impl(req).await
    }
    async fn get_object_retention(
        &self,
        req: S3Request<dto::GetObjectRetentionInput>,
    ) -> S3Result<S3Response<dto::GetObjectRetentionOutput>> {
        self.get_object_retention_impl(req).await
    }
    async fn put_object_legal_hold(
        &self,
        req: S3Request<dto::PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<dto::PutObjectLegalHoldOutput>> {
        self.put_object_legal_hold_impl(req).await
    }
    async fn get_object_legal_hold(
        &self,
        req: S3Request<dto::GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<dto::GetObjectLegalHoldOutput>> {
        self.get_object_legal_hold_impl(req).await
    }
    async fn list_object_versions(
        &self,
        req: S3Request<dto::ListObjectVersionsInput>,
    ) -> S3Result<S3Response<dto::ListObjectVersionsOutput>> {
        self.list_object_versions_impl(req).await
    }
    async fn put_bucket_policy(
        &self,
        req: S3Request<dto::PutBucketPolicyInput>,
    ) -> S3Result<S3Response<dto::PutBucketPolicyOutput>> {
        self.put_bucket_policy_impl(req).await
    }
    async fn get_bucket_policy(
        &self,
        req: S3Request<dto::GetBucketPolicyInput>,
    ) -> S3Result<S3Response<dto::GetBucketPolicyOutput>> {
        self.get_bucket_policy_impl(req).await
    }
    async fn delete_bucket_policy(
        &self,
        req: S3Request<dto::DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketPolicyOutput>> {
        self.delete_bucket_policy_impl(req).await
    }
    async fn get_bucket_policy_status(
        &self,
        req: S3Request<dto::GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<dto::GetBucketPolicyStatusOutput>> {
        self.get_bucket_policy_status_impl(req).await
    }
    async fn put_public_access_block(
        &self,
        req: S3Request<dto::PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<dto::PutPublicAccessBlockOutput>> {
        self.put_public_access_block_impl(req).await
    }
    async fn get_public_access_block(
        &self,
        req: S3Request<dto::GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<dto::GetPublicAccessBlockOutput>> {
        self.get_public_access_block_impl(req).await
    }
    async fn delete_public_access_block(
        &self,
        req: S3Request<dto::DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<dto::DeletePublicAccessBlockOutput>> {
        self.delete_public_access_block_impl(req).await
    }
    async fn put_bucket_acl(
        &self,
        req: S3Request<dto::PutBucketAclInput>,
    ) -> S3Result<S3Response<dto::PutBucketAclOutput>> {
        self.put_bucket_acl_impl(req).await
    }
    async fn get_bucket_acl(
        &self,
        req: S3Request<dto::GetBucketAclInput>,
    ) -> S3Result<S3Response<dto::GetBucketAclOutput>> {
        self.get_bucket_acl_impl(req).await
    }
    async fn get_object_acl(
        &self,
        req: S3Request<dto::GetObjectAclInput>,
    ) -> S3Result<S3Response<dto::GetObjectAclOutput>> {
        self.get_object_acl_impl(req).await
    }
    async fn put_object_acl(
        &self,
        req: S3Request<dto::PutObjectAclInput>,
    ) -> S3Result<S3Response<dto::PutObjectAclOutput>> {
        self.put_object_acl_impl(req).await
    }
    async fn put_bucket_ownership_controls(
        &self,
        req: S3Request<dto::PutBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<dto::PutBucketOwnershipControlsOutput>> {
        self.put_bucket_ownership_controls_impl(req).await
    }
    async fn get_bucket_ownership_controls(
        &self,
        req: S3Request<dto::GetBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<dto::GetBucketOwnershipControlsOutput>> {
        self.get_bucket_ownership_controls_impl(req).await
    }
    async fn delete_bucket_ownership_controls(
        &self,
        req: S3Request<dto::DeleteBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketOwnershipControlsOutput>> {
        self.delete_bucket_ownership_controls_impl(req).await
    }
}
