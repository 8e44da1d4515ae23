//! Objects: PUT, GET, HEAD, DELETE, DeleteObjects, COPY.

use futures::StreamExt;
use s3dedup_storage::{ByteRange, DeleteOptions, WriteCondition};
use s3s::dto::{self, StreamingBlob};
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::checksums::{
    WithChecksums, checksum_fields, checksum_type, claimed_values, served_checksums,
    wants_checksums,
};
use super::ingest::{Claims, ingest_verified};
use super::{
    Gateway, StdHeaders, check_key, check_new_key, check_read_conditions, check_user_metadata,
    etag, expires, header, object_meta, timestamp, user_metadata,
};
use crate::error::to_s3;
use crate::scan::Subject;

pub(super) fn resolve_range(r: &dto::Range) -> ByteRange {
    match *r {
        dto::Range::Int {
            first,
            last: Some(last),
        } => ByteRange::FromTo(first, last),
        dto::Range::Int { first, last: None } => ByteRange::From(first),
        dto::Range::Suffix { length } => ByteRange::Suffix(length),
    }
}

impl Gateway {
    pub(super) async fn put_object_impl(
        &self,
        req: S3Request<dto::PutObjectInput>,
    ) -> S3Result<S3Response<dto::PutObjectOutput>> {
        let principal = super::authorize::principal(&req);
        let trailers = req.trailing_headers;
        let access_key = super::access_key(req.credentials.as_ref());
        let mut input = req.input;
        check_new_key(&input.key)?;
        check_user_metadata(input.metadata.as_ref())?;
        let mut cond =
            super::write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
        cond.lock = super::locks::lock_request(
            input.object_lock_mode.as_ref(),
            input.object_lock_retain_until_date.as_ref(),
            input.object_lock_legal_hold_status.as_ref(),
        )?;
        cond.tags = super::tagging::from_header(input.tagging.as_deref())?;
        // Refuse before reading the body, not after storing it.
        self.require_bucket(&input.bucket).await?;
        let room = self.quota_room(&input.bucket, &input.key).await?;
        cond.acl = self
            .object_acl_for_write(
                &input.bucket,
                input.acl.as_ref().map(dto::ObjectCannedACL::as_str),
                super::acls::object_write_grants_of!(input),
            )
            .await?;
        let claims = Claims {
            content_md5: input.content_md5.as_ref(),
            content_length: input.content_length,
            algorithm: input.checksum_algorithm.as_ref(),
            values: claimed_values(
                input.checksum_crc32.as_ref(),
                input.checksum_crc32c.as_ref(),
                input.checksum_crc64nvme.as_ref(),
                input.checksum_sha1.as_ref(),
                input.checksum_sha256.as_ref(),
            ),
            room,
            extra: None,
        };
        let body = input.body.take();
        let who = Subject {
            access_key: &access_key,
            bucket: &input.bucket,
            key: &input.key,
        };
        let scan = self.settings.scan.begin(
            input.content_length.and_then(|n| u64::try_from(n).ok()),
            who,
        )?;
        let (pending, checksums) = ingest_verified(
            self,
            super::authorize::uploader(&principal, &input.bucket),
            body,
            claims,
            trailers,
            &scan,
        )
        .await?;
        // Invariant 2: nothing is committed without a clean verdict.
        self.settings.scan.conclude(scan, &pending, who).await?;
        let mut meta = object_meta(
            input.content_type.as_ref(),
            StdHeaders {
                cache_control: input.cache_control.as_ref(),
                content_disposition: input.content_disposition.as_ref(),
                content_encoding: input.content_encoding.as_ref(),
                content_language: input.content_language.as_ref(),
                expires: input.expires.as_ref(),
            },
            input.metadata.as_ref(),
        );
        meta.checksums = checksums;
        let rec = self
            .store
            .put_object(&input.bucket, &input.key, pending, meta, cond)
            .await
            .map_err(to_s3)?;
        let c = checksum_fields(&rec.meta.checksums);
        Ok(S3Response::new(
            dto::PutObjectOutput {
                e_tag: Some(etag(&rec)),
                version_id: super::versions::new_version_header(&rec),
                checksum_type: checksum_type(&rec.meta.checksums),
                ..Default::default()
            }
            .with_checksums(c),
        ))
    }

    pub(super) async fn get_object_impl(
        &self,
        req: S3Request<dto::GetObjectInput>,
    ) -> S3Result<S3Response<dto::GetObjectOutput>> {
        let (_, checked) = super::authorize::auth_of(&req);
        let input = req.input;
        let version = input.version_id.as_deref();
        // Conditions first, against the version read (S3 answers 304/412 before 416).
        let head = self
            .store
            .head_version(&input.bucket, &input.key, version)
            .await
            .map_err(to_s3)?;
        check_read_conditions(
            &head,
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        )?;
        let part = match input.part_number {
            None => None,
            Some(n) => Some(super::attributes::part_read(
                &head,
                n,
                input.range.is_some(),
            )?),
        };
        let range = match &part {
            Some(p) => p.range,
            None => input.range.as_ref().map(resolve_range),
        };
        // An empty part is no bytes, never the whole object (a range of nothing
        // cannot be asked of the store: an empty read of the version is).
        let empty_part = part.as_ref().is_some_and(|p| p.range.is_none());
        let reader = self
            .store
            .get_version(&input.bucket, &input.key, version, range)
            .await
            .map_err(to_s3)?;
        let rec = reader.record;
        if part.is_some() && (rec.version != head.version || rec.etag != head.etag) {
            // The part boundaries were those of the version looked at first.
            return Err(s3_error!(
                SlowDown,
                "The object changed while its part was being read; retry"
            ));
        }
        crate::access::check_acl_version(checked.as_ref(), rec.version)?;
        let (start, end) = if empty_part { (0, 0) } else { reader.range };
        let mut body = if empty_part {
            Box::pin(futures::stream::empty()) as futures::stream::BoxStream<'static, _>
        } else {
            reader.body
        };
        // Read the first piece before answering: a damaged object fails with a 500
        // instead of a 200 with a cut-off body, in the common case.
        let first = match body.next().await {
            None => None,
            Some(Ok(b)) => Some(b),
            Some(Err(e)) => {
                metrics::counter!(crate::metrics::READ_VERIFY_FAILURES).increment(1);
                return Err(to_s3(e));
            }
        };
        let len = end - start;
        let full = range.is_none();
        let (c, kind) = served_checksums(
            &rec,
            part.as_ref().map(|p| p.checksum.as_slice()),
            (start, end),
            wants_checksums(input.checksum_mode.as_ref()),
        );
        let meta = &rec.meta;
        let (version_id, lock) = self.read_headers(&input.bucket, &input.key, &rec).await?;
        let out = dto::GetObjectOutput {
            body: Some(StreamingBlob::new(crate::body::ObjectBody::new(
                first, body, len,
            ))),
            content_length: Some(len as i64),
            content_range: (!full).then(|| format!("bytes {start}-{}/{}", end - 1, rec.size)),
            accept_ranges: Some("bytes".into()),
            e_tag: Some(etag(&rec)),
            last_modified: Some(timestamp(rec.mtime_ms)),
            content_type: input
                .response_content_type
                .or_else(|| meta.content_type.clone()),
            cache_control: input
                .response_cache_control
                .or_else(|| header(meta, "cache-control").cloned()),
            content_disposition: input
                .response_content_disposition
                .or_else(|| header(meta, "content-disposition").cloned()),
            content_encoding: input
                .response_content_encoding
                .or_else(|| header(meta, "content-encoding").cloned()),
            content_language: input
                .response_content_language
                .or_else(|| header(meta, "content-language").cloned()),
            expires: input.response_expires.or_else(|| expires(meta)),
            metadata: user_metadata(meta),
            parts_count: part.and_then(|p| p.parts_count),
            version_id,
            object_lock_mode: lock.mode,
            object_lock_retain_until_date: lock.until,
            object_lock_legal_hold_status: lock.hold,
            tag_count: lock.tag_count,
            checksum_type: kind,
            ..Default::default()
        }
        .with_checksums(c);
        Ok(S3Response::new(out))
    }

    pub(super) async fn head_object_impl(
        &self,
        req: S3Request<dto::HeadObjectInput>,
    ) -> S3Result<S3Response<dto::HeadObjectOutput>> {
        let (_, checked) = super::authorize::auth_of(&req);
        let input = req.input;
        let rec = self
            .store
            .head_version(&input.bucket, &input.key, input.version_id.as_deref())
            .await
            .map_err(to_s3)?;
        crate::access::check_acl_version(checked.as_ref(), rec.version)?;
        check_read_conditions(
            &rec,
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        )?;
        let part = match input.part_number {
            None => None,
            Some(n) => Some(super::attributes::part_read(
                &rec,
                n,
                input.range.is_some(),
            )?),
        };
        let range = match &part {
            Some(p) => p.range,
            None => input.range.as_ref().map(resolve_range),
        };
        let (start, end) = match range {
            None if part.is_some() => (0, 0),
            None => (0, rec.size),
            Some(r) => r.resolve(rec.size).map_err(to_s3)?,
        };
        let content_range = range.map(|_| format!("bytes {start}-{}/{}", end - 1, rec.size));
        let content_length = end - start;
        let (c, kind) = served_checksums(
            &rec,
            part.as_ref().map(|p| p.checksum.as_slice()),
            (start, end),
            wants_checksums(input.checksum_mode.as_ref()),
        );
        let status = if content_range.is_some() {
            http::StatusCode::PARTIAL_CONTENT
        } else {
            http::StatusCode::OK
        };
        let meta = &rec.meta;
        let (version_id, lock) = self.read_headers(&input.bucket, &input.key, &rec).await?;
        Ok(S3Response::with_status(
            dto::HeadObjectOutput {
                content_length: Some(content_length as i64),
                content_range,
                accept_ranges: Some("bytes".into()),
                e_tag: Some(etag(&rec)),
                last_modified: Some(timestamp(rec.mtime_ms)),
                content_type: meta.content_type.clone(),
                cache_control: header(meta, "cache-control").cloned(),
                content_disposition: header(meta, "content-disposition").cloned(),
                content_encoding: header(meta, "content-encoding").cloned(),
                content_language: header(meta, "content-language").cloned(),
                expires: expires(meta),
                metadata: user_metadata(meta),
                parts_count: part.and_then(|p| p.parts_count),
                version_id,
                object_lock_mode: lock.mode,
                object_lock_retain_until_date: lock.until,
                object_lock_legal_hold_status: lock.hold,
                checksum_type: kind,
                ..Default::default()
            }
            .with_checksums(c),
            status,
        ))
    }

    pub(super) async fn delete_object_impl(
        &self,
        req: S3Request<dto::DeleteObjectInput>,
    ) -> S3Result<S3Response<dto::DeleteObjectOutput>> {
        let input = req.input;
        let version = input.version_id.as_deref();
        // If-Match is checked in the deleting transaction: nothing can slip in between.
        let opts = DeleteOptions {
            bypass_governance: input.bypass_governance_retention == Some(true),
            if_match: input.if_match.as_ref().map(|c| match c {
                dto::ETagCondition::Any => "*".to_owned(),
                dto::ETagCondition::ETag(e) => e.value().to_owned(),
            }),
        };
        let d = self
            .store
            .delete_version(&input.bucket, &input.key, version, opts)
            .await
            .map_err(to_s3)?;
        Ok(S3Response::with_status(
            dto::DeleteObjectOutput {
                delete_marker: d.marker.is_some().then_some(true),
                version_id: match version {
                    Some(v) => Some(v.to_owned()),
                    None => d.marker.map(|m| m.id()),
                },
                ..Default::default()
            },
            http::StatusCode::NO_CONTENT,
        ))
    }

    pub(super) async fn delete_objects_impl(
        &self,
        req: S3Request<dto::DeleteObjectsInput>,
    ) -> S3Result<S3Response<dto::DeleteObjectsOutput>> {
        let (principal, checked) = super::authorize::auth_of(&req);
        let input = req.input;
        if input.delete.objects.len() > 1000 {
            return Err(s3_error!(
                MalformedXML,
                "DeleteObjects takes at most 1000 keys"
            ));
        }
        self.require_bucket(&input.bucket).await?;
        let quiet = input.delete.quiet.unwrap_or(false);
        let bypass = input.bypass_governance_retention == Some(true);
        let (mut deleted, mut errors) = (Vec::new(), Vec::new());
        for obj in input.delete.objects {
            let version = obj.version_id.as_deref();
            let allowed = check_key(&obj.key).and_then(|()| {
                super::authorize::authorize_delete(
                    &principal,
                    checked.as_ref(),
                    &input.bucket,
                    &obj.key,
                    version.is_some(),
                    bypass,
                )
            });
            let r = match allowed {
                Err(e) => Err(e),
                Ok(()) => self
                    .store
                    .delete_version(
                        &input.bucket,
                        &obj.key,
                        version,
                        DeleteOptions {
                            bypass_governance: bypass,
                            // The per-key ETag condition of DeleteObjects.
                            if_match: obj.e_tag.as_ref().map(|e| e.value().to_owned()),
                        },
                    )
                    .await
                    .map_err(to_s3),
            };
            match r {
                Ok(d) => {
                    if !quiet {
                        deleted.push(dto::DeletedObject {
                            key: Some(obj.key),
                            version_id: obj.version_id,
                            delete_marker: d.marker.is_some().then_some(true),
                            delete_marker_version_id: d.marker.map(|m| m.id()),
                        });
                    }
                }
                Err(e) => errors.push(dto::Error {
                    key: Some(obj.key),
                    version_id: obj.version_id,
                    code: Some(e.code().as_str().to_owned()),
                    message: e.message().map(str::to_owned),
                }),
            }
        }
        Ok(S3Response::new(dto::DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }

    pub(super) async fn copy_object_impl(
        &self,
        req: S3Request<dto::CopyObjectInput>,
    ) -> S3Result<S3Response<dto::CopyObjectOutput>> {
        // The destination's If-Match / If-None-Match: s3s 0.14 has no fields for them.
        let dest_condition = |name: &str| {
            req.headers
                .get(name)
                .map(|v| {
                    dto::ETagCondition::parse_http_header(v.as_bytes())
                        .map_err(|_| s3_error!(InvalidArgument, "Invalid {name} header"))
                })
                .transpose()
        };
        let (if_match, if_none_match) = (
            dest_condition("if-match")?,
            dest_condition("if-none-match")?,
        );
        let (principal, checked) = super::authorize::auth_of(&req);
        let input = req.input;
        check_new_key(&input.key)?;
        check_user_metadata(input.metadata.as_ref())?;
        let (sb, sk, version_id) = super::authorize::readable_source(
            &self.store,
            &principal,
            checked.as_ref(),
            &input.copy_source,
        )
        .await?;
        let src_version = version_id.as_deref();
        let src = match self.store.head_version(sb, sk, src_version).await {
            Ok(src) => src,
            // S3 refuses a copy from a delete marker named by its version id as 400.
            Err(s3dedup_storage::Error::DeleteMarker { by_id: true, .. }) => {
                return Err(s3_error!(
                    InvalidRequest,
                    "The source of a copy request may not specifically refer to a delete marker by version id."
                ));
            }
            Err(e) => return Err(to_s3(e)),
        };
        // Copy-source conditions: failures are 412 (S3 uses 412 for both here).
        super::check_copy_source_conditions(
            &src,
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_none_match.as_ref(),
            input.copy_source_if_modified_since.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
        )?;
        let replace = input.metadata_directive.as_ref().is_some_and(|d| {
            d.as_str()
                .eq_ignore_ascii_case(dto::MetadataDirective::REPLACE)
        });
        if !replace && *sb == *input.bucket && *sk == *input.key && src_version.is_none() {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata"
            ));
        }
        let meta = replace.then(|| {
            let mut m = object_meta(
                input.content_type.as_ref(),
                StdHeaders {
                    cache_control: input.cache_control.as_ref(),
                    content_disposition: input.content_disposition.as_ref(),
                    content_encoding: input.content_encoding.as_ref(),
                    content_language: input.content_language.as_ref(),
                    expires: input.expires.as_ref(),
                },
                input.metadata.as_ref(),
            );
            // The bytes are the same, so their checksums still hold.
            m.checksums = src.meta.checksums.clone();
            m
        });
        let acl = self
            .object_acl_for_write(
                &input.bucket,
                input.acl.as_ref().map(dto::ObjectCannedACL::as_str),
                super::acls::object_write_grants_of!(input),
            )
            .await?;
        // x-amz-tagging-directive: the request's tags, or (read with the bytes, in the
        // copying transaction) the source version's.
        let replace_tags = super::tagging::replaces(input.tagging_directive.as_ref())?;
        let cond = WriteCondition {
            tags: if replace_tags {
                super::tagging::from_header(input.tagging.as_deref())?
            } else {
                Vec::new()
            },
            copy_tags: !replace_tags,
            lock: super::locks::lock_request(
                input.object_lock_mode.as_ref(),
                input.object_lock_retain_until_date.as_ref(),
                input.object_lock_legal_hold_status.as_ref(),
            )?,
            acl,
            ..super::write_condition(if_match.as_ref(), if_none_match.as_ref())?
        };
        let rec = self
            .store
            .copy_version(
                (sb, sk),
                src_version,
                (&input.bucket, &input.key),
                meta,
                cond,
            )
            .await
            .map_err(to_s3)?;
        let c = checksum_fields(&rec.meta.checksums);
        Ok(S3Response::new(dto::CopyObjectOutput {
            copy_source_version_id: self.version_header(sb, &src).await?,
            version_id: super::versions::new_version_header(&rec),
            copy_object_result: Some(
                dto::CopyObjectResult {
                    e_tag: Some(etag(&rec)),
                    last_modified: Some(timestamp(rec.mtime_ms)),
                    checksum_type: checksum_type(&rec.meta.checksums),
                    ..Default::default()
                }
                .with_checksums(c),
            ),
            ..Default::default()
        }))
    }
}
