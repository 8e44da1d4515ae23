//! Tagging: Put/Get/DeleteObjectTagging (per version, kept with the version's lock and
//! ACL record, journaled), `x-amz-tagging` on PutObject, CopyObject (with
//! `x-amz-tagging-directive`) and CreateMultipartUpload, `x-amz-tagging-count` on GET,
//! and Put/Get/DeleteBucketTagging (a bucket document). S3's limits and error codes:
//! 10 tags per object, 50 per bucket, keys of 1–128 and values of 0–256 Unicode
//! characters from letters, digits, spaces and `_ . : / = + - @`, no duplicate key, no
//! `aws:` prefix.

use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use s3dedup_storage::Versioning;
use s3s::dto;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use crate::error::to_s3;

/// Tags per object version.
const MAX_OBJECT_TAGS: usize = 10;
/// Tags per bucket.
const MAX_BUCKET_TAGS: usize = 50;
/// The bucket document kind holding a bucket's tags (`k=v&…`, as the header).
const BUCKET_TAGS_KIND: &str = "tagging";

/// Tags as stored: (key, value) in the order given.
pub(super) type Tags = Vec<(String, String)>;

fn invalid_tag(message: &str) -> S3Error {
    let mut e = S3Error::with_message(S3ErrorCode::Custom("InvalidTag".into()), message.to_owned());
    e.set_status_code(http::StatusCode::BAD_REQUEST);
    e
}

fn bad_request(message: String) -> S3Error {
    let mut e = S3Error::with_message(S3ErrorCode::Custom("BadRequest".into()), message);
    e.set_status_code(http::StatusCode::BAD_REQUEST);
    e
}

fn allowed(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c)
}

/// Checks a tag set against S3's limits (`bucket`: the bucket's 50, else 10).
fn check(tags: &Tags, bucket: bool) -> S3Result<()> {
    let (max, what) = if bucket {
        (MAX_BUCKET_TAGS, "Bucket tag count")
    } else {
        (MAX_OBJECT_TAGS, "Object tags")
    };
    if tags.len() > max {
        return Err(bad_request(format!("{what} cannot be greater than {max}")));
    }
    for (i, (k, v)) in tags.iter().enumerate() {
        let n = k.chars().count();
        if n == 0 || n > 128 || !k.chars().all(allowed) {
            return Err(invalid_tag("The TagKey you have provided is invalid"));
        }
        if k.starts_with("aws:") {
            return Err(invalid_tag("Your TagKey cannot be prefixed with aws:"));
        }
        if v.chars().count() > 256 || !v.chars().all(allowed) {
            return Err(invalid_tag("The TagValue you have provided is invalid"));
        }
        if tags[..i].iter().any(|(other, _)| other == k) {
            return Err(invalid_tag(
                "Cannot provide multiple Tags with the same key",
            ));
        }
    }
    Ok(())
}

/// The tags of an `x-amz-tagging` header (URL query form, `k=v&k2=v2`; a bare `k` is an
/// empty value), checked. No header: none.
///
/// # Errors
/// InvalidArgument for a malformed header or a repeated key; the limits' errors.
pub(super) fn from_header(header: Option<&str>) -> S3Result<Tags> {
    let Some(h) = header.filter(|h| !h.is_empty()) else {
        return Ok(Vec::new());
    };
    let malformed = || {
        s3_error!(
            InvalidArgument,
            "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates."
        )
    };
    let decode = |s: &str| -> S3Result<String> {
        // A `%` not followed by two hex digits is malformed (lenient decoders keep it).
        let b = s.as_bytes();
        for (i, _) in s.match_indices('%') {
            let hex = b.get(i + 1..i + 3).ok_or_else(malformed)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err(malformed());
            }
        }
        percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| malformed())
    };
    let mut tags: Tags = Vec::new();
    for pair in h.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (decode(k)?, decode(v)?);
        if k.is_empty() || tags.iter().any(|(o, _)| *o == k) {
            return Err(malformed());
        }
        tags.push((k, v));
    }
    check(&tags, false)?;
    Ok(tags)
}

/// A tag set as the header form (what a bucket's tags are stored as).
fn to_header(tags: &Tags) -> String {
    tags.iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, NON_ALPHANUMERIC),
                utf8_percent_encode(v, NON_ALPHANUMERIC)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The tags of a `<Tagging>` document, checked.
fn from_xml(t: dto::Tagging, bucket: bool) -> S3Result<Tags> {
    let tags: Tags = t
        .tag_set
        .into_iter()
        .map(|tag| (tag.key.unwrap_or_default(), tag.value.unwrap_or_default()))
        .collect();
    check(&tags, bucket)?;
    Ok(tags)
}

fn tag_set(tags: Tags) -> Vec<dto::Tag> {
    tags.into_iter()
        .map(|(k, v)| dto::Tag {
            key: Some(k),
            value: Some(v),
        })
        .collect()
}

/// `x-amz-tagging-directive`: whether CopyObject replaces the tags (else copies them).
///
/// # Errors
/// InvalidArgument for a value other than COPY or REPLACE.
pub(super) fn replaces(directive: Option<&dto::TaggingDirective>) -> S3Result<bool> {
    match directive.map(dto::TaggingDirective::as_str) {
        None => Ok(false),
        Some(d) if d.eq_ignore_ascii_case(dto::TaggingDirective::COPY) => Ok(false),
        Some(d) if d.eq_ignore_ascii_case(dto::TaggingDirective::REPLACE) => Ok(true),
        Some(_) => Err(s3_error!(InvalidArgument, "Unknown tagging directive.")),
    }
}

fn version_id(v: s3dedup_storage::Version, state: Versioning) -> Option<String> {
    (!v.null || state != Versioning::Unversioned).then(|| v.id())
}

impl Gateway {
    async fn set_tags(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
        tags: Tags,
    ) -> S3Result<Option<String>> {
        let v = self
            .store
            .set_object_tags(bucket, key, version, tags)
            .await
            .map_err(to_s3)?;
        Ok(version_id(v, self.versioning(bucket).await?))
    }

    pub(super) async fn put_object_tagging_impl(
        &self,
        req: S3Request<dto::PutObjectTaggingInput>,
    ) -> S3Result<S3Response<dto::PutObjectTaggingOutput>> {
        let i = req.input;
        let tags = from_xml(i.tagging, false)?;
        let version_id = self
            .set_tags(&i.bucket, &i.key, i.version_id.as_deref(), tags)
            .await?;
        Ok(S3Response::new(dto::PutObjectTaggingOutput { version_id }))
    }

    pub(super) async fn get_object_tagging_impl(
        &self,
        req: S3Request<dto::GetObjectTaggingInput>,
    ) -> S3Result<S3Response<dto::GetObjectTaggingOutput>> {
        let i = req.input;
        let (rec, side) = self
            .store
            .object_lock(&i.bucket, &i.key, i.version_id.as_deref())
            .await
            .map_err(to_s3)?;
        let state = self.versioning(&i.bucket).await?;
        Ok(S3Response::new(dto::GetObjectTaggingOutput {
            tag_set: tag_set(side.tags),
            version_id: version_id(rec.version, state),
        }))
    }

    pub(super) async fn delete_object_tagging_impl(
        &self,
        req: S3Request<dto::DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<dto::DeleteObjectTaggingOutput>> {
        let i = req.input;
        let version_id = self
            .set_tags(&i.bucket, &i.key, i.version_id.as_deref(), Vec::new())
            .await?;
        Ok(S3Response::with_status(
            dto::DeleteObjectTaggingOutput { version_id },
            http::StatusCode::NO_CONTENT,
        ))
    }

    pub(super) async fn put_bucket_tagging_impl(
        &self,
        req: S3Request<dto::PutBucketTaggingInput>,
    ) -> S3Result<S3Response<dto::PutBucketTaggingOutput>> {
        let i = req.input;
        let tags = from_xml(i.tagging, true)?;
        let doc = (!tags.is_empty()).then(|| to_header(&tags));
        self.store
            .set_bucket_document(
                &i.bucket,
                BUCKET_TAGS_KIND,
                doc.as_deref().map(str::as_bytes),
            )
            .await
            .map_err(to_s3)?;
        Ok(S3Response::with_status(
            dto::PutBucketTaggingOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }

    pub(super) async fn get_bucket_tagging_impl(
        &self,
        req: S3Request<dto::GetBucketTaggingInput>,
    ) -> S3Result<S3Response<dto::GetBucketTaggingOutput>> {
        let doc = self
            .store
            .bucket_document(&req.input.bucket, BUCKET_TAGS_KIND)
            .await
            .map_err(to_s3)?;
        let Some(doc) = doc else {
            return Err(s3_error!(NoSuchTagSet, "The TagSet does not exist"));
        };
        let text = String::from_utf8(doc)
            .map_err(|_| s3_error!(InternalError, "The bucket's stored tags are damaged"))?;
        // Stored in the header form this module wrote (and checked) itself.
        let tags = from_stored(&text)?;
        Ok(S3Response::new(dto::GetBucketTaggingOutput {
            tag_set: tag_set(tags),
        }))
    }

    pub(super) async fn delete_bucket_tagging_impl(
        &self,
        req: S3Request<dto::DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketTaggingOutput>> {
        self.store
            .set_bucket_document(&req.input.bucket, BUCKET_TAGS_KIND, None)
            .await
            .map_err(to_s3)?;
        Ok(S3Response::with_status(
            dto::DeleteBucketTaggingOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }
}

/// A bucket's stored tags (up to 50: not the header's object limit).
fn from_stored(text: &str) -> S3Result<Tags> {
    let damaged = || s3_error!(InternalError, "The bucket's stored tags are damaged");
    text.split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').ok_or_else(damaged)?;
            let d = |s: &str| {
                percent_decode_str(s)
                    .decode_utf8()
                    .map(|c| c.into_owned())
                    .map_err(|_| damaged())
            };
            Ok((d(k)?, d(v)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(e: &S3Error) -> String {
        e.code().as_str().to_owned()
    }

    #[test]
    fn header_form_and_limits() {
        let t = from_header(Some("a=1&b=two%20words&c")).unwrap();
        assert_eq!(
            t,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "two words".into()),
                ("c".into(), String::new())
            ]
        );
        assert!(from_header(None).unwrap().is_empty());
        for bad in ["=", "k=v&k=w", "key%", "k%zz=v", "&"] {
            assert_eq!(
                code(&from_header(Some(bad)).unwrap_err()),
                "InvalidArgument",
                "{bad}"
            );
        }
        let eleven: Vec<String> = (0..11).map(|i| format!("k{i}=v")).collect();
        assert_eq!(
            code(&from_header(Some(&eleven.join("&"))).unwrap_err()),
            "BadRequest"
        );
        let long_key = format!("{}=v", "k".repeat(129));
        assert_eq!(
            code(&from_header(Some(&long_key)).unwrap_err()),
            "InvalidTag"
        );
        let long_value = format!("k={}", "v".repeat(257));
        assert_eq!(
            code(&from_header(Some(&long_value)).unwrap_err()),
            "InvalidTag"
        );
        assert_eq!(
            code(&from_header(Some("aws%3Aname=v")).unwrap_err()),
            "InvalidTag"
        );
        assert_eq!(
            code(&from_header(Some("k=%3Cv%3E")).unwrap_err()),
            "InvalidTag"
        );
        // 128 Unicode characters is fine even when longer in bytes.
        let key = "ä".repeat(128);
        assert!(from_header(Some(&format!("{key}=v"))).is_ok());
    }

    #[test]
    fn stored_form_round_trips() {
        let tags: Tags = vec![
            ("Project".into(), "säule 7 / x+y=z".into()),
            ("empty".into(), String::new()),
        ];
        assert_eq!(from_stored(&to_header(&tags)).unwrap(), tags);
    }
}
