//! Reads by part: GET/HEAD `partNumber` (the bytes of one part of a multipart object,
//! from its part table) and GetObjectAttributes (ETag, checksum, parts with pagination,
//! storage class, size).

use s3dedup_storage::{ByteRange, ObjectRecord, PartInfo};
use s3s::dto;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::checksums::{WithChecksums, checksum_fields, checksum_type};
use super::{Gateway, timestamp};
use crate::error::to_s3;

const MAX_PART_NUMBER: i32 = 10_000;

/// What GET/HEAD `partNumber=n` serves.
pub(super) struct PartRead {
    /// The bytes of the part; `None`: none (an empty part, or an empty object).
    pub(super) range: Option<ByteRange>,
    /// `x-amz-mp-parts-count` (multipart objects only).
    pub(super) parts_count: Option<i32>,
    /// The part's own checksum (name, value), when known.
    pub(super) checksum: Vec<(String, String)>,
}

/// Part `n` of `rec`, as S3 selects it: a multipart object's part from its part table;
/// part 1 of a single-PUT object is the whole object.
///
/// # Errors
/// InvalidArgument (not 1..=10000), InvalidRequest (with a Range), InvalidPartNumber
/// (416: past the last part), NotImplemented (a multipart object written before part
/// tables were recorded).
pub(super) fn part_read(rec: &ObjectRecord, n: i32, with_range: bool) -> S3Result<PartRead> {
    if with_range {
        return Err(s3_error!(
            InvalidRequest,
            "Cannot specify both Range header and partNumber query parameter"
        ));
    }
    if !(1..=MAX_PART_NUMBER).contains(&n) {
        return Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive"
        ));
    }
    let not_satisfiable = crate::error::invalid_part_number;
    let whole = |size: u64| (size > 0).then(|| ByteRange::FromTo(0, size - 1));
    if rec.etag.parts == 0 {
        if n != 1 {
            return Err(not_satisfiable());
        }
        return Ok(PartRead {
            range: whole(rec.size),
            parts_count: None,
            checksum: rec.meta.checksums.clone(),
        });
    }
    if rec.parts.is_empty() {
        // A multipart object written before part tables were recorded: its boundaries
        // are unknown, so it answers as one part (part-based downloaders then read it
        // whole, without a part count to follow).
        if n != 1 {
            return Err(not_satisfiable());
        }
        return Ok(PartRead {
            range: whole(rec.size),
            parts_count: None,
            checksum: Vec::new(),
        });
    }
    let i = (n - 1) as usize;
    let Some(part) = rec.parts.get(i) else {
        return Err(not_satisfiable());
    };
    let start: u64 = rec.parts[..i].iter().map(|p| p.size).sum();
    let checksum = match (&part.checksum, rec.meta.checksums.first()) {
        (Some(v), Some((name, _))) => vec![(name.clone(), v.clone())],
        _ => Vec::new(),
    };
    Ok(PartRead {
        range: (part.size > 0).then(|| ByteRange::FromTo(start, start + part.size - 1)),
        parts_count: Some(rec.parts.len() as i32),
        checksum,
    })
}

fn object_part(n: usize, p: &PartInfo, algorithm: Option<&str>) -> dto::ObjectPart {
    let values: Vec<(String, String)> = match (algorithm, &p.checksum) {
        (Some(a), Some(v)) => vec![(a.to_owned(), v.clone())],
        _ => Vec::new(),
    };
    dto::ObjectPart {
        part_number: Some(n as i32),
        size: Some(p.size as i64),
        ..Default::default()
    }
    .with_checksums(checksum_fields(&values))
}

impl Gateway {
    pub(super) async fn get_object_attributes_impl(
        &self,
        req: S3Request<dto::GetObjectAttributesInput>,
    ) -> S3Result<S3Response<dto::GetObjectAttributesOutput>> {
        let (_, checked) = super::authorize::auth_of(&req);
        let i = req.input;
        let mut want = Vec::new();
        // One header with a comma list (boto3) or one header per attribute (the Rust
        // SDK): both arrive here.
        for a in i
            .object_attributes
            .iter()
            .flat_map(|a| a.as_str().split(','))
        {
            let a = a.trim();
            if a.is_empty() {
                continue;
            }
            let known = [
                dto::ObjectAttributes::CHECKSUM,
                dto::ObjectAttributes::ETAG,
                dto::ObjectAttributes::OBJECT_PARTS,
                dto::ObjectAttributes::OBJECT_SIZE,
                dto::ObjectAttributes::STORAGE_CLASS,
            ];
            if !known.contains(&a) {
                return Err(s3_error!(
                    InvalidArgument,
                    "Invalid attribute name specified."
                ));
            }
            want.push(a.to_owned());
        }
        if want.is_empty() {
            return Err(s3_error!(
                InvalidRequest,
                "The x-amz-object-attributes header specifying the attributes to be retrieved is either missing or empty"
            ));
        }
        let asks = |a: &str| want.iter().any(|w| w == a);
        let rec = self
            .store
            .head_version(&i.bucket, &i.key, i.version_id.as_deref())
            .await
            .map_err(to_s3)?;
        crate::access::check_acl_version(checked.as_ref(), rec.version)?;
        let (version_id, _) = self.read_headers(&i.bucket, &i.key, &rec).await?;
        let checksum = (asks(dto::ObjectAttributes::CHECKSUM) && !rec.meta.checksums.is_empty())
            .then(|| {
                dto::Checksum {
                    checksum_type: checksum_type(&rec.meta.checksums),
                    ..Default::default()
                }
                .with_checksums(checksum_fields(&rec.meta.checksums))
            });
        let object_parts = if asks(dto::ObjectAttributes::OBJECT_PARTS) && rec.etag.parts > 0 {
            Some(self.parts_page(&rec, i.max_parts, i.part_number_marker)?)
        } else {
            None
        };
        Ok(S3Response::new(dto::GetObjectAttributesOutput {
            e_tag: asks(dto::ObjectAttributes::ETAG)
                .then(|| dto::ETag::Strong(rec.etag.to_string())),
            checksum,
            object_parts,
            storage_class: asks(dto::ObjectAttributes::STORAGE_CLASS)
                .then(|| dto::StorageClass::from_static(dto::StorageClass::STANDARD)),
            object_size: asks(dto::ObjectAttributes::OBJECT_SIZE).then_some(rec.size as i64),
            last_modified: Some(timestamp(rec.mtime_ms)),
            version_id,
            ..Default::default()
        }))
    }

    /// One page of a multipart object's parts. As S3: the part list only when the
    /// parts have checksums (else the count alone).
    fn parts_page(
        &self,
        rec: &ObjectRecord,
        max_parts: Option<i32>,
        marker: Option<i32>,
    ) -> S3Result<dto::GetObjectAttributesParts> {
        let max = match max_parts {
            None => 1000,
            Some(m) if m >= 0 => (m as usize).min(1000),
            Some(_) => return Err(s3_error!(InvalidArgument, "max-parts cannot be negative")),
        };
        let after = match marker {
            None => 0,
            Some(m) if m >= 0 => m as usize,
            Some(_) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "part-number-marker cannot be negative"
                ));
            }
        };
        let algorithm = rec.meta.checksums.first().map(|(n, _)| n.as_str());
        let listed = algorithm.is_some() && rec.parts.iter().all(|p| p.checksum.is_some());
        let mut page = dto::GetObjectAttributesParts {
            total_parts_count: Some(rec.etag.parts as i32),
            ..Default::default()
        };
        if listed {
            let parts: Vec<_> = rec
                .parts
                .iter()
                .enumerate()
                .skip(after)
                .take(max)
                .map(|(i, p)| object_part(i + 1, p, algorithm))
                .collect();
            let last = after + parts.len();
            let truncated = last < rec.parts.len();
            page.max_parts = Some(max as i32);
            page.part_number_marker = Some(after as i32);
            page.is_truncated = Some(truncated);
            page.next_part_number_marker = Some(last as i32);
            page.parts = Some(parts);
        }
        Ok(page)
    }
}
