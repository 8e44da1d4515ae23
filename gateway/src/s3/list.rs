//! ListObjects (v1) and ListObjectsV2.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as TOKEN;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use s3dedup_storage::{ListEntry, ListPage};
use s3s::dto;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::{Gateway, etag, timestamp};
use crate::error::to_s3;

/// Characters left as they are by `encoding-type=url` (unreserved, and `/`).
const KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

pub(super) fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// A continuation token: the name listing resumes after (base64url, opaque to
/// clients as S3's tokens are).
pub(super) fn encode_token(after: &str) -> String {
    TOKEN.encode(after)
}

/// The name a continuation token resumes after.
///
/// # Errors
/// InvalidArgument for a token this gateway did not write.
pub(super) fn decode_token(t: &str) -> S3Result<String> {
    TOKEN
        .decode(t)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "The continuation token provided is incorrect"
            )
        })
}

pub(super) fn max_keys(v: Option<i32>) -> S3Result<usize> {
    match v {
        None => Ok(1000),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must not be negative")),
        Some(n) => Ok((n as usize).min(1000)),
    }
}

pub(super) struct Encoder(bool);

impl Encoder {
    pub(super) fn new(t: Option<&dto::EncodingType>) -> S3Result<Self> {
        match t.map(dto::EncodingType::as_str) {
            None => Ok(Encoder(false)),
            Some(s) if s.eq_ignore_ascii_case(dto::EncodingType::URL) => Ok(Encoder(true)),
            Some(s) => Err(s3_error!(
                InvalidArgument,
                "Invalid Encoding Method specified: {s}"
            )),
        }
    }
    pub(super) fn enc(&self, s: String) -> String {
        if self.0 {
            utf8_percent_encode(&s, KEEP).to_string()
        } else {
            s
        }
    }
}

struct Listing {
    objects: Vec<dto::Object>,
    prefixes: Vec<dto::CommonPrefix>,
    next_marker: Option<String>,
    is_truncated: bool,
    count: i32,
}

fn convert(page: ListPage, enc: &Encoder, owner: Option<&dto::Owner>) -> Listing {
    let next_marker = page
        .is_truncated
        .then(|| page.entries.last().map(|e| e.marker().to_owned()))
        .flatten();
    let count = page.entries.len() as i32;
    // `max-keys=0` lists nothing and, as S3 answers it, is not truncated.
    let is_truncated = page.is_truncated && count > 0;
    let (mut objects, mut prefixes) = (Vec::new(), Vec::new());
    for e in page.entries {
        match e {
            ListEntry::Object { key, record } => objects.push(dto::Object {
                key: Some(enc.enc(key)),
                size: Some(record.size as i64),
                e_tag: Some(etag(&record)),
                last_modified: Some(timestamp(record.mtime_ms)),
                storage_class: Some(dto::ObjectStorageClass::from_static(
                    dto::ObjectStorageClass::STANDARD,
                )),
                owner: owner.cloned(),
                checksum_algorithm: record
                    .meta
                    .checksums
                    .first()
                    .map(|(n, _)| vec![dto::ChecksumAlgorithm::from(n.clone())]),
                checksum_type: super::checksums::checksum_type(&record.meta.checksums),
                ..Default::default()
            }),
            ListEntry::Prefix(p) => prefixes.push(dto::CommonPrefix {
                prefix: Some(enc.enc(p)),
            }),
        }
    }
    Listing {
        objects,
        prefixes,
        next_marker,
        is_truncated,
        count,
    }
}

impl Gateway {
    pub(super) async fn list_objects_impl(
        &self,
        req: S3Request<dto::ListObjectsInput>,
    ) -> S3Result<S3Response<dto::ListObjectsOutput>> {
        let i = req.input;
        let enc = Encoder::new(i.encoding_type.as_ref())?;
        let max = max_keys(i.max_keys)?;
        let prefix = non_empty(i.prefix).unwrap_or_default();
        let delimiter = non_empty(i.delimiter);
        let marker = non_empty(i.marker);
        let page = self
            .store
            .list_objects(
                &i.bucket,
                &prefix,
                delimiter.as_deref(),
                marker.as_deref(),
                max,
            )
            .await
            .map_err(to_s3)?;
        let owner = self.bucket_owner(&i.bucket).await?;
        let l = convert(page, &enc, Some(&owner));
        Ok(S3Response::new(dto::ListObjectsOutput {
            name: Some(i.bucket),
            prefix: Some(enc.enc(prefix)),
            marker: Some(enc.enc(marker.unwrap_or_default())),
            next_marker: l.next_marker.map(|m| enc.enc(m)),
            delimiter: delimiter.map(|d| enc.enc(d)),
            max_keys: Some(max as i32),
            is_truncated: Some(l.is_truncated),
            contents: Some(l.objects),
            common_prefixes: Some(l.prefixes),
            encoding_type: i.encoding_type,
            ..Default::default()
        }))
    }

    pub(super) async fn list_objects_v2_impl(
        &self,
        req: S3Request<dto::ListObjectsV2Input>,
    ) -> S3Result<S3Response<dto::ListObjectsV2Output>> {
        let i = req.input;
        let enc = Encoder::new(i.encoding_type.as_ref())?;
        let max = max_keys(i.max_keys)?;
        let prefix = non_empty(i.prefix).unwrap_or_default();
        let delimiter = non_empty(i.delimiter);
        let token = non_empty(i.continuation_token.clone());
        let after = match &token {
            Some(t) => Some(decode_token(t)?),
            None => non_empty(i.start_after.clone()),
        };
        let page = self
            .store
            .list_objects(
                &i.bucket,
                &prefix,
                delimiter.as_deref(),
                after.as_deref(),
                max,
            )
            .await
            .map_err(to_s3)?;
        let owner = match i.fetch_owner {
            Some(true) => Some(self.bucket_owner(&i.bucket).await?),
            _ => None,
        };
        let l = convert(page, &enc, owner.as_ref());
        Ok(S3Response::new(dto::ListObjectsV2Output {
            name: Some(i.bucket),
            prefix: Some(enc.enc(prefix)),
            delimiter: delimiter.map(|d| enc.enc(d)),
            max_keys: Some(max as i32),
            key_count: Some(l.count),
            is_truncated: Some(l.is_truncated),
            continuation_token: i.continuation_token,
            next_continuation_token: l.next_marker.map(|m| encode_token(&m)),
            start_after: non_empty(i.start_after).map(|s| enc.enc(s)),
            contents: Some(l.objects),
            common_prefixes: Some(l.prefixes),
            encoding_type: i.encoding_type,
            ..Default::default()
        }))
    }
}
