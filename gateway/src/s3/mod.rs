//! The S3 API over the storage engine.
//!
//! Layout:
//! - `mod.rs` — [`Gateway`], the `s3s::S3` impl (one line per operation; the server
//!   times, counts and logs each request) and shared helpers (metadata, conditions,
//!   names);
//! - `buckets.rs` — bucket operations;
//! - `objects.rs` — PUT/GET/HEAD/DELETE/COPY of objects, DeleteObjects;
//! - `ingest.rs` — the verified upload path of PUT and parts;
//! - `list.rs` — ListObjects v1 and v2;
//! - `multipart.rs` — multipart uploads;
//! - `checksums.rs` — checksum answers and the multipart checksum model;
//! - `attributes.rs` — GET/HEAD `partNumber`, GetObjectAttributes;
//! - `versions.rs` — bucket versioning, ListObjectVersions, version headers;
//! - `locks.rs` — object lock configuration, retention, legal holds;
//! - `authorize.rs` — who asks, Owner fields, the checks the access check cannot make;
//! - `policies.rs` — bucket policies and public access blocks;
//! - `probes.rs` — GETs of bucket configurations s3dedup does not keep;
//! - `tagging.rs` — object and bucket tagging;
//! - `cors.rs` — Put/Get/DeleteBucketCors (the rules' logic is `crate::cors`).

mod acls;
mod attributes;
mod authorize;
mod buckets;
mod checksums;
mod cors;
mod ingest;
mod lifecycle;
mod list;
mod locks;
mod multipart;
mod objects;
mod policies;
mod probes;
mod quota;
mod tagging;
mod versions;

use std::time::UNIX_EPOCH;

use s3dedup_storage::{ObjectMeta, ObjectRecord, Store, WriteCondition};
use s3s::dto::{self, ETag, Timestamp};
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};

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

/// The `s3s::S3` implementation: each operation delegates to its `*_impl` method
/// (an operation not listed answers s3s's NotImplemented).
macro_rules! s3_operations {
    ($($op:ident($input:ident, $output:ident) => $imp:ident;)*) => {
        #[async_trait::async_trait]
        impl S3 for Gateway {
            $(
                async fn $op(
                    &self,
                    req: S3Request<dto::$input>,
                ) -> S3Result<S3Response<dto::$output>> {
                    self.$imp(req).await
                }
            )*
        }
    };
}

s3_operations! {
    list_buckets(ListBucketsInput, ListBucketsOutput) => list_buckets_impl;
    create_bucket(CreateBucketInput, CreateBucketOutput) => create_bucket_impl;
    head_bucket(HeadBucketInput, HeadBucketOutput) => head_bucket_impl;
    delete_bucket(DeleteBucketInput, DeleteBucketOutput) => delete_bucket_impl;
    get_bucket_location(GetBucketLocationInput, GetBucketLocationOutput) => get_bucket_location_impl;
    put_object(PutObjectInput, PutObjectOutput) => put_object_impl;
    get_object(GetObjectInput, GetObjectOutput) => get_object_impl;
    get_object_attributes(GetObjectAttributesInput, GetObjectAttributesOutput) => get_object_attributes_impl;
    head_object(HeadObjectInput, HeadObjectOutput) => head_object_impl;
    delete_object(DeleteObjectInput, DeleteObjectOutput) => delete_object_impl;
    delete_objects(DeleteObjectsInput, DeleteObjectsOutput) => delete_objects_impl;
    copy_object(CopyObjectInput, CopyObjectOutput) => copy_object_impl;
    list_objects(ListObjectsInput, ListObjectsOutput) => list_objects_impl;
    list_objects_v2(ListObjectsV2Input, ListObjectsV2Output) => list_objects_v2_impl;
    create_multipart_upload(CreateMultipartUploadInput, CreateMultipartUploadOutput) => create_multipart_upload_impl;
    upload_part(UploadPartInput, UploadPartOutput) => upload_part_impl;
    upload_part_copy(UploadPartCopyInput, UploadPartCopyOutput) => upload_part_copy_impl;
    complete_multipart_upload(CompleteMultipartUploadInput, CompleteMultipartUploadOutput) => complete_multipart_upload_impl;
    abort_multipart_upload(AbortMultipartUploadInput, AbortMultipartUploadOutput) => abort_multipart_upload_impl;
    list_parts(ListPartsInput, ListPartsOutput) => list_parts_impl;
    list_multipart_uploads(ListMultipartUploadsInput, ListMultipartUploadsOutput) => list_multipart_uploads_impl;
    get_bucket_versioning(GetBucketVersioningInput, GetBucketVersioningOutput) => get_bucket_versioning_impl;
    put_bucket_versioning(PutBucketVersioningInput, PutBucketVersioningOutput) => put_bucket_versioning_impl;
    put_bucket_lifecycle_configuration(PutBucketLifecycleConfigurationInput, PutBucketLifecycleConfigurationOutput) => put_bucket_lifecycle_configuration_impl;
    get_bucket_lifecycle_configuration(GetBucketLifecycleConfigurationInput, GetBucketLifecycleConfigurationOutput) => get_bucket_lifecycle_configuration_impl;
    delete_bucket_lifecycle(DeleteBucketLifecycleInput, DeleteBucketLifecycleOutput) => delete_bucket_lifecycle_impl;
    put_object_lock_configuration(PutObjectLockConfigurationInput, PutObjectLockConfigurationOutput) => put_object_lock_configuration_impl;
    get_object_lock_configuration(GetObjectLockConfigurationInput, GetObjectLockConfigurationOutput) => get_object_lock_configuration_impl;
    put_object_retention(PutObjectRetentionInput, PutObjectRetentionOutput) => put_object_retention_impl;
    get_object_retention(GetObjectRetentionInput, GetObjectRetentionOutput) => get_object_retention_impl;
    put_object_legal_hold(PutObjectLegalHoldInput, PutObjectLegalHoldOutput) => put_object_legal_hold_impl;
    get_object_legal_hold(GetObjectLegalHoldInput, GetObjectLegalHoldOutput) => get_object_legal_hold_impl;
    list_object_versions(ListObjectVersionsInput, ListObjectVersionsOutput) => list_object_versions_impl;
    put_bucket_policy(PutBucketPolicyInput, PutBucketPolicyOutput) => put_bucket_policy_impl;
    get_bucket_policy(GetBucketPolicyInput, GetBucketPolicyOutput) => get_bucket_policy_impl;
    delete_bucket_policy(DeleteBucketPolicyInput, DeleteBucketPolicyOutput) => delete_bucket_policy_impl;
    get_bucket_policy_status(GetBucketPolicyStatusInput, GetBucketPolicyStatusOutput) => get_bucket_policy_status_impl;
    put_public_access_block(PutPublicAccessBlockInput, PutPublicAccessBlockOutput) => put_public_access_block_impl;
    get_public_access_block(GetPublicAccessBlockInput, GetPublicAccessBlockOutput) => get_public_access_block_impl;
    delete_public_access_block(DeletePublicAccessBlockInput, DeletePublicAccessBlockOutput) => delete_public_access_block_impl;
    put_bucket_acl(PutBucketAclInput, PutBucketAclOutput) => put_bucket_acl_impl;
    get_bucket_acl(GetBucketAclInput, GetBucketAclOutput) => get_bucket_acl_impl;
    get_object_acl(GetObjectAclInput, GetObjectAclOutput) => get_object_acl_impl;
    put_object_acl(PutObjectAclInput, PutObjectAclOutput) => put_object_acl_impl;
    put_bucket_ownership_controls(PutBucketOwnershipControlsInput, PutBucketOwnershipControlsOutput) => put_bucket_ownership_controls_impl;
    get_bucket_ownership_controls(GetBucketOwnershipControlsInput, GetBucketOwnershipControlsOutput) => get_bucket_ownership_controls_impl;
    delete_bucket_ownership_controls(DeleteBucketOwnershipControlsInput, DeleteBucketOwnershipControlsOutput) => delete_bucket_ownership_controls_impl;
    get_bucket_website(GetBucketWebsiteInput, GetBucketWebsiteOutput) => get_bucket_website_impl;
    get_bucket_replication(GetBucketReplicationInput, GetBucketReplicationOutput) => get_bucket_replication_impl;
    get_bucket_encryption(GetBucketEncryptionInput, GetBucketEncryptionOutput) => get_bucket_encryption_impl;
    get_bucket_logging(GetBucketLoggingInput, GetBucketLoggingOutput) => get_bucket_logging_impl;
    get_bucket_notification_configuration(GetBucketNotificationConfigurationInput, GetBucketNotificationConfigurationOutput) => get_bucket_notification_configuration_impl;
    get_bucket_accelerate_configuration(GetBucketAccelerateConfigurationInput, GetBucketAccelerateConfigurationOutput) => get_bucket_accelerate_configuration_impl;
    get_bucket_request_payment(GetBucketRequestPaymentInput, GetBucketRequestPaymentOutput) => get_bucket_request_payment_impl;
    get_bucket_tagging(GetBucketTaggingInput, GetBucketTaggingOutput) => get_bucket_tagging_impl;
    put_bucket_tagging(PutBucketTaggingInput, PutBucketTaggingOutput) => put_bucket_tagging_impl;
    delete_bucket_tagging(DeleteBucketTaggingInput, DeleteBucketTaggingOutput) => delete_bucket_tagging_impl;
    get_object_tagging(GetObjectTaggingInput, GetObjectTaggingOutput) => get_object_tagging_impl;
    put_object_tagging(PutObjectTaggingInput, PutObjectTaggingOutput) => put_object_tagging_impl;
    delete_object_tagging(DeleteObjectTaggingInput, DeleteObjectTaggingOutput) => delete_object_tagging_impl;
    get_bucket_cors(GetBucketCorsInput, GetBucketCorsOutput) => get_bucket_cors_impl;
    put_bucket_cors(PutBucketCorsInput, PutBucketCorsOutput) => put_bucket_cors_impl;
    delete_bucket_cors(DeleteBucketCorsInput, DeleteBucketCorsOutput) => delete_bucket_cors_impl;
}
