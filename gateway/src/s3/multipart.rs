//! Multipart uploads. Parts may arrive concurrently and in any order; each is verified
//! like a PUT and holds references to its chunks until the upload completes or aborts.

use s3dedup_storage::ByteRange;
use s3dedup_storage::records::{CompletedUploadRecord, UploadRecord};
use s3s::dto::{self, StreamingBlob};
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::checksums::claimed_values;
use super::checksums::{self, CompletionClaims, WithChecksums, checksum_fields};
use super::ingest::{Claims, ingest_verified};
use super::{Gateway, StdHeaders, check_new_key, check_user_metadata, object_meta, timestamp};
use crate::checksum::Algorithm;
use crate::error::to_s3;
use crate::scan::{Subject, UploadScan};

const MAX_PART_NUMBER: i32 = 10_000;

fn part_number(n: i32) -> S3Result<u32> {
    if (1..=MAX_PART_NUMBER).contains(&n) {
        Ok(n as u32)
    } else {
        Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive"
        ))
    }
}

fn part_copy_output(rec: &s3dedup_storage::records::PartRecord) -> dto::UploadPartCopyOutput {
    dto::UploadPartCopyOutput {
        copy_part_result: Some(
            dto::CopyPartResult {
                e_tag: Some(dto::ETag::Strong(rec.etag().to_string())),
                last_modified: Some(timestamp(rec.mtime_ms)),
                ..Default::default()
            }
            .with_checksums(checksum_fields(&rec.checksums)),
        ),
        ..Default::default()
    }
}

/// `x-amz-copy-source-range`: exactly `bytes=first-last`, first ≤ last (S3 takes no
/// open or suffix range here).
fn copy_range(r: &str) -> S3Result<ByteRange> {
    let parsed = r
        .strip_prefix("bytes=")
        .and_then(|v| v.split_once('-'))
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
        .filter(|(a, b)| a <= b);
    match parsed {
        Some((a, b)) => Ok(ByteRange::FromTo(a, b)),
        None => Err(s3_error!(
            InvalidArgument,
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy"
        )),
    }
}

/// The checksum values one `<Part>` of a CompleteMultipartUpload carries.
fn completed_part_values(p: &dto::CompletedPart) -> Vec<(crate::checksum::Algorithm, String)> {
    claimed_values(
        p.checksum_crc32.as_ref(),
        p.checksum_crc32c.as_ref(),
        p.checksum_crc64nvme.as_ref(),
        p.checksum_sha1.as_ref(),
        p.checksum_sha256.as_ref(),
    )
}

impl Gateway {
    /// The upload, checked to exist and to belong to bucket/key.
    async fn upload_for(&self, upload_id: &str, bucket: &str, key: &str) -> S3Result<UploadRecord> {
        let up = self.store.upload(upload_id).await.map_err(to_s3)?;
        if up.bucket != bucket || up.key != key {
            return Err(s3_error!(
                NoSuchUpload,
                "The specified upload does not exist"
            ));
        }
        Ok(up)
    }

    pub(super) async fn create_multipart_upload_impl(
        &self,
        req: S3Request<dto::CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::CreateMultipartUploadOutput>> {
        let i = req.input;
        check_new_key(&i.key)?;
        check_user_metadata(i.metadata.as_ref())?;
        let spec = checksums::upload_spec(i.checksum_algorithm.as_ref(), i.checksum_type.as_ref())?;
        let tags = super::tagging::from_header(i.tagging.as_deref())?;
        // An upload whose object could never be published (object count full) is not
        // started.
        self.quota_room(&i.bucket, &i.key).await?;
        // Kept with the upload and given to the object at completion.
        let lock = super::locks::lock_request(
            i.object_lock_mode.as_ref(),
            i.object_lock_retain_until_date.as_ref(),
            i.object_lock_legal_hold_status.as_ref(),
        )?;
        let meta = object_meta(
            i.content_type.as_ref(),
            StdHeaders {
                cache_control: i.cache_control.as_ref(),
                content_disposition: i.content_disposition.as_ref(),
                content_encoding: i.content_encoding.as_ref(),
                content_language: i.content_language.as_ref(),
                expires: i.expires.as_ref(),
            },
            i.metadata.as_ref(),
        );
        let acl = self
            .object_acl_for_write(
                &i.bucket,
                i.acl.as_ref().map(dto::ObjectCannedACL::as_str),
                super::acls::object_write_grants_of!(i),
            )
            .await?;
        let id = self
            .store
            .create_upload_with_acl(&i.bucket, &i.key, meta, lock, acl, (spec.clone(), tags))
            .await
            .map_err(to_s3)?;
        let (checksum_algorithm, checksum_type) = checksums::spec_fields(spec.as_ref());
        Ok(S3Response::new(dto::CreateMultipartUploadOutput {
            bucket: Some(i.bucket),
            key: Some(i.key),
            upload_id: Some(id),
            checksum_algorithm,
            checksum_type,
            ..Default::default()
        }))
    }

    pub(super) async fn upload_part_impl(
        &self,
        req: S3Request<dto::UploadPartInput>,
    ) -> S3Result<S3Response<dto::UploadPartOutput>> {
        let principal = super::authorize::principal(&req);
        let trailers = req.trailing_headers;
        let mut i = req.input;
        let n = part_number(i.part_number)?;
        let up = self.upload_for(&i.upload_id, &i.bucket, &i.key).await?;
        let values = claimed_values(
            i.checksum_crc32.as_ref(),
            i.checksum_crc32c.as_ref(),
            i.checksum_crc64nvme.as_ref(),
            i.checksum_sha1.as_ref(),
            i.checksum_sha256.as_ref(),
        );
        let sdk_algorithm = match &i.checksum_algorithm {
            None => None,
            Some(a) => Some(checksums::algorithm_of(a)?),
        };
        let sent: Vec<_> = values
            .iter()
            .map(|(a, _)| *a)
            .chain(sdk_algorithm)
            .collect();
        checksums::check_part_algorithm(up.checksum.as_ref(), &sent)?;
        // The upload's algorithm is computed for every part, sent or not: completion
        // combines it.
        let algorithm = i.checksum_algorithm.clone().or_else(|| {
            up.checksum
                .as_ref()
                .map(|c| dto::ChecksumAlgorithm::from(c.algorithm.clone()))
        });
        // A part that alone cannot fit can never be completed.
        let room = self.quota_room(&i.bucket, &i.key).await?;
        let claims = Claims {
            content_md5: i.content_md5.as_ref(),
            content_length: i.content_length,
            algorithm: algorithm.as_ref(),
            values,
            room,
            extra: up.checksum.is_none().then_some(Algorithm::Crc64Nvme),
        };
        // Parts are not scanned one by one: the whole object is, at completion.
        let (pending, checksums) = ingest_verified(
            self,
            super::authorize::uploader(&principal, &i.bucket),
            i.body.take(),
            claims,
            trailers,
            &UploadScan::off(),
        )
        .await?;
        let rec = self
            .store
            .put_part(&i.upload_id, n, pending, checksums)
            .await
            .map_err(to_s3)?;
        let c = checksum_fields(&rec.checksums);
        Ok(S3Response::new(
            dto::UploadPartOutput {
                e_tag: Some(dto::ETag::Strong(rec.etag().to_string())),
                ..Default::default()
            }
            .with_checksums(c),
        ))
    }

    /// Copies (a range of) an object into a part. A whole single-part object is copied
    /// by reference. Otherwise the bytes are streamed back through the ingest path: every
    /// chunk deduplicates, so no data is stored twice, but the part's MD5 (its ETag) is
    /// computed from the bytes.
    pub(super) async fn upload_part_copy_impl(
        &self,
        req: S3Request<dto::UploadPartCopyInput>,
    ) -> S3Result<S3Response<dto::UploadPartCopyOutput>> {
        let (principal, checked) = super::authorize::auth_of(&req);
        let i = req.input;
        let n = part_number(i.part_number)?;
        let up = self.upload_for(&i.upload_id, &i.bucket, &i.key).await?;
        let need = up.checksum.as_ref().map(|c| c.algorithm.clone());
        let (sb, sk, version_id) = super::authorize::readable_source(
            &self.store,
            &principal,
            checked.as_ref(),
            &i.copy_source,
        )
        .await?;
        let range = i.copy_source_range.as_deref().map(copy_range).transpose()?;
        let src_version = version_id.as_deref();
        let src = self
            .store
            .head_version(sb, sk, src_version)
            .await
            .map_err(to_s3)?;
        super::check_copy_source_conditions(
            &src,
            i.copy_source_if_match.as_ref(),
            i.copy_source_if_none_match.as_ref(),
            i.copy_source_if_modified_since.as_ref(),
            i.copy_source_if_unmodified_since.as_ref(),
        )?;
        if let Some(ByteRange::FromTo(_, last)) = range
            && last >= src.size
        {
            return Err(s3_error!(
                InvalidArgument,
                "Range specified is not valid for source object of size: {}",
                src.size
            ));
        }
        // A whole single-part source is copied by reference: no byte is read.
        let whole = match range {
            None => true,
            Some(r) => r.resolve(src.size).map_err(to_s3)? == (0, src.size),
        };
        if whole
            && let Some(rec) = self
                .store
                .copy_version_to_part((sb, sk), src_version, &i.upload_id, n, need.as_deref())
                .await
                .map_err(to_s3)?
        {
            return Ok(S3Response::new(part_copy_output(&rec)));
        }
        let reader = self
            .store
            .get_version(sb, sk, src_version, range)
            .await
            .map_err(to_s3)?;
        let len = reader.range.1 - reader.range.0;
        let blob = StreamingBlob::new(crate::body::ObjectBody::new(None, reader.body, len));
        let room = self.quota_room(&i.bucket, &i.key).await?;
        super::quota::check_declared(i64::try_from(len).ok(), room)?;
        let algorithm = need.map(dto::ChecksumAlgorithm::from);
        let claims = Claims {
            content_md5: None,
            content_length: None,
            algorithm: algorithm.as_ref(),
            values: Vec::new(),
            room,
            extra: up.checksum.is_none().then_some(Algorithm::Crc64Nvme),
        };
        let (pending, checksums) = ingest_verified(
            self,
            super::authorize::uploader(&principal, &i.bucket),
            Some(blob),
            claims,
            None,
            &UploadScan::off(),
        )
        .await?;
        let rec = self
            .store
            .put_part(&i.upload_id, n, pending, checksums)
            .await
            .map_err(to_s3)?;
        Ok(S3Response::new(part_copy_output(&rec)))
    }

    pub(super) async fn complete_multipart_upload_impl(
        &self,
        req: S3Request<dto::CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::CompleteMultipartUploadOutput>> {
        let access_key = super::access_key(req.credentials.as_ref());
        let i = req.input;
        let parts = i
            .multipart_upload
            .and_then(|m| m.parts)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                s3_error!(
                    MalformedXML,
                    "The XML you provided was not well-formed or did not validate against our published schema"
                )
            })?;
        let mut listed = Vec::with_capacity(parts.len());
        let mut claims = CompletionClaims {
            parts: Vec::with_capacity(parts.len()),
            object: claimed_values(
                i.checksum_crc32.as_ref(),
                i.checksum_crc32c.as_ref(),
                i.checksum_crc64nvme.as_ref(),
                i.checksum_sha1.as_ref(),
                i.checksum_sha256.as_ref(),
            ),
            kind: i.checksum_type.as_ref().map(|t| t.as_str().to_owned()),
        };
        for p in parts {
            claims.parts.push(completed_part_values(&p));
            let (Some(n), Some(tag)) = (p.part_number, p.e_tag) else {
                return Err(s3_error!(
                    MalformedXML,
                    "Each part needs a PartNumber and an ETag"
                ));
            };
            listed.push((part_number(n)?, tag.value().to_owned()));
        }
        // A retry of a completion whose answer was lost: the same part list gets the
        // same answer, as from AWS (an SDK would otherwise report a stored object as
        // failed). Asked again after a NoSuchUpload: the first attempt may have
        // completed it while this one was being scanned.
        if let Some(out) = self
            .remembered_completion(&i.upload_id, &i.bucket, &i.key, &listed)
            .await?
        {
            return Ok(out);
        }
        let fresh = async {
            let up = self.upload_for(&i.upload_id, &i.bucket, &i.key).await?;
            let cond = super::write_condition(i.if_match.as_ref(), i.if_none_match.as_ref())?;
            let checksums = self
                .completion_checksum(&i.upload_id, &up, &listed, &claims, i.mpu_object_size)
                .await?;
            // Invariant 2: the assembled object is scanned as a whole (a signature split
            // across parts is caught), and exactly the scanned bytes are published.
            let expect_digest = if self.settings.scan.enabled() {
                let (size, digest, body) = self
                    .store
                    .read_upload(&i.upload_id, listed.clone(), self.settings.min_part_size)
                    .await
                    .map_err(to_s3)?;
                let who = Subject {
                    access_key: &access_key,
                    bucket: &i.bucket,
                    key: &i.key,
                };
                self.settings
                    .scan
                    .scan_stored(size, digest, body, who)
                    .await?;
                Some(digest)
            } else {
                None
            };
            let (bucket, key, rec) = self
                .store
                .complete_upload_summed(
                    &i.upload_id,
                    listed.clone(),
                    self.settings.min_part_size,
                    checksums,
                    cond,
                    expect_digest,
                )
                .await
                .map_err(to_s3)?;
            Ok(S3Response::new(
                dto::CompleteMultipartUploadOutput {
                    version_id: super::versions::new_version_header(&rec),
                    bucket: Some(bucket.clone()),
                    key: Some(key.clone()),
                    e_tag: Some(super::etag(&rec)),
                    location: Some(format!("/{bucket}/{key}")),
                    checksum_type: checksums::checksum_type(&rec.meta.checksums),
                    ..Default::default()
                }
                .with_checksums(checksum_fields(&rec.meta.checksums)),
            ))
        };
        let r: S3Result<S3Response<dto::CompleteMultipartUploadOutput>> = fresh.await;
        match r {
            Err(e) if *e.code() == s3s::S3ErrorCode::NoSuchUpload => {
                match self
                    .remembered_completion(&i.upload_id, &i.bucket, &i.key, &listed)
                    .await?
                {
                    Some(out) => Ok(out),
                    None => Err(e),
                }
            }
            r => r,
        }
    }

    /// The checksum the completed object gets, verified against the completion's claims
    /// (see [`checksums::completed_checksum`]) and `x-amz-mp-object-size`, with the
    /// listed parts' checksums it was combined from (the commit checks they still hold).
    ///
    /// # Errors
    /// InvalidPart for a listed part not uploaded or with another ETag; see
    /// [`checksums::completed_checksum`].
    async fn completion_checksum(
        &self,
        upload_id: &str,
        up: &UploadRecord,
        listed: &[(u32, String)],
        claims: &CompletionClaims,
        object_size: Option<i64>,
    ) -> S3Result<(Vec<(String, String)>, Vec<Option<String>>)> {
        checksums::check_part_claims(claims)?;
        let all = self
            .store
            .list_parts(upload_id, 0, MAX_PART_NUMBER as usize)
            .await
            .map_err(to_s3)?;
        let mut chosen = Vec::with_capacity(listed.len());
        for (n, tag) in listed {
            let part = all
                .iter()
                .find(|(pn, p)| pn == n && tag.trim().trim_matches('"') == p.etag().to_string())
                .map(|(_, p)| p)
                .ok_or_else(|| s3_error!(InvalidPart, "{}", checksums::INVALID_PART))?;
            chosen.push(part);
        }
        if let Some(want) = object_size {
            let size: u64 = chosen.iter().map(|p| p.size).sum();
            if want < 0 {
                return Err(s3_error!(
                    InvalidRequest,
                    "Value for x-amz-mp-object-size header is less than zero: '{want}'"
                ));
            }
            if u64::try_from(want).ok() != Some(size) {
                return Err(s3_error!(
                    InvalidRequest,
                    "The provided 'x-amz-mp-object-size' header value {want} does not match what was computed: {size}"
                ));
            }
        }
        let numbers: Vec<u32> = listed.iter().map(|(n, _)| *n).collect();
        let object =
            checksums::completed_checksum(up.checksum.as_ref(), &numbers, &chosen, claims)?;
        let part_sums = match object.first().and_then(|(n, _)| Algorithm::parse(n)) {
            None => Vec::new(),
            Some(a) => chosen
                .iter()
                .map(|p| checksums::value_of(&p.checksums, a).map(str::to_owned))
                .collect(),
        };
        Ok((object, part_sums))
    }

    /// The remembered answer to a completion of this upload with this part list.
    async fn remembered_completion(
        &self,
        upload_id: &str,
        bucket: &str,
        key: &str,
        listed: &[(u32, String)],
    ) -> S3Result<Option<S3Response<dto::CompleteMultipartUploadOutput>>> {
        let done = self
            .store
            .completed_upload(upload_id)
            .await
            .map_err(to_s3)?
            .filter(|d| {
                d.bucket == bucket
                    && d.key == key
                    && d.parts_digest == CompletedUploadRecord::digest_parts(listed)
            });
        Ok(done.map(|d| {
            S3Response::new(dto::CompleteMultipartUploadOutput {
                location: Some(format!("/{}/{}", d.bucket, d.key)),
                bucket: Some(d.bucket),
                key: Some(d.key),
                e_tag: Some(dto::ETag::Strong(d.etag.to_string())),
                ..Default::default()
            })
        }))
    }

    pub(super) async fn abort_multipart_upload_impl(
        &self,
        req: S3Request<dto::AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::AbortMultipartUploadOutput>> {
        let i = req.input;
        self.upload_for(&i.upload_id, &i.bucket, &i.key).await?;
        self.store.abort_upload(&i.upload_id).await.map_err(to_s3)?;
        Ok(S3Response::with_status(
            dto::AbortMultipartUploadOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }

    pub(super) async fn list_parts_impl(
        &self,
        req: S3Request<dto::ListPartsInput>,
    ) -> S3Result<S3Response<dto::ListPartsOutput>> {
        let i = req.input;
        let up = self.upload_for(&i.upload_id, &i.bucket, &i.key).await?;
        let max = i.max_parts.map_or(1000, |m| m.clamp(0, 1000) as usize);
        let after = match i.part_number_marker {
            None => 0,
            Some(m) => u32::try_from(m)
                .map_err(|_| s3_error!(InvalidArgument, "Invalid part-number-marker"))?,
        };
        let mut parts = self
            .store
            .list_parts(&i.upload_id, after, max + 1)
            .await
            .map_err(to_s3)?;
        let truncated = parts.len() > max;
        parts.truncate(max);
        let next = parts.last().map(|(n, _)| *n as i32);
        let owner = self.bucket_owner(&i.bucket).await?;
        let (checksum_algorithm, checksum_type) = checksums::spec_fields(up.checksum.as_ref());
        Ok(S3Response::new(dto::ListPartsOutput {
            checksum_algorithm,
            checksum_type,
            bucket: Some(i.bucket),
            key: Some(i.key),
            upload_id: Some(i.upload_id),
            max_parts: Some(max as i32),
            is_truncated: Some(truncated),
            part_number_marker: i.part_number_marker,
            next_part_number_marker: if truncated { next } else { None },
            parts: Some(
                parts
                    .into_iter()
                    .map(|(n, p)| {
                        dto::Part {
                            part_number: Some(n as i32),
                            e_tag: Some(dto::ETag::Strong(p.etag().to_string())),
                            size: Some(p.size as i64),
                            last_modified: Some(timestamp(p.mtime_ms)),
                            ..Default::default()
                        }
                        .with_checksums(checksum_fields(&p.checksums))
                    })
                    .collect(),
            ),
            initiator: Some(dto::Initiator {
                display_name: owner.display_name.clone(),
                id: owner.id.clone(),
            }),
            owner: Some(owner),
            ..Default::default()
        }))
    }

    pub(super) async fn list_multipart_uploads_impl(
        &self,
        req: S3Request<dto::ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<dto::ListMultipartUploadsOutput>> {
        let i = req.input;
        let max = i.max_uploads.map_or(1000, |m| m.clamp(0, 1000) as usize);
        let prefix = i.prefix.clone().unwrap_or_default();
        let key_marker = i.key_marker.clone().filter(|k| !k.is_empty());
        // Without an upload-id marker, every upload of the marker key is skipped too.
        let after = key_marker.clone().map(|k| {
            let id = i
                .upload_id_marker
                .clone()
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| "\u{10FFFF}".into());
            (k, id)
        });
        let mut ups = self
            .store
            .list_uploads(&i.bucket, &prefix, after, max + 1)
            .await
            .map_err(to_s3)?;
        let truncated = ups.len() > max;
        ups.truncate(max);
        let last = ups.last().map(|u| (u.key.clone(), u.upload_id.clone()));
        Ok(S3Response::new(dto::ListMultipartUploadsOutput {
            bucket: Some(i.bucket),
            prefix: i.prefix,
            key_marker: i.key_marker,
            upload_id_marker: i.upload_id_marker,
            max_uploads: Some(max as i32),
            is_truncated: Some(truncated),
            next_key_marker: truncated.then(|| last.clone().map(|l| l.0)).flatten(),
            next_upload_id_marker: truncated.then(|| last.map(|l| l.1)).flatten(),
            uploads: Some(
                ups.into_iter()
                    .map(|u| {
                        let (checksum_algorithm, checksum_type) =
                            checksums::spec_fields(u.checksum.as_ref());
                        dto::MultipartUpload {
                            key: Some(u.key),
                            upload_id: Some(u.upload_id),
                            initiated: Some(timestamp(u.initiated_ms)),
                            checksum_algorithm,
                            checksum_type,
                            ..Default::default()
                        }
                    })
                    .collect(),
            ),
            ..Default::default()
        }))
    }
}
