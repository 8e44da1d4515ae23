//! Checksums in S3 answers, and the checksum model of multipart uploads: the algorithm
//! and type an upload asks for (COMPOSITE, a checksum of the part checksums with `-N`;
//! FULL_OBJECT, the CRCs of the parts combined into the whole object's), the
//! verification of what CompleteMultipartUpload claims, and `ChecksumType` answers.

use s3dedup_storage::ChecksumSpec;
use s3dedup_storage::records::PartRecord;
use s3s::dto;
use s3s::{S3Result, s3_error};

use crate::checksum::{self, Algorithm};

/// Checksum values of a record for the given algorithm set, as output fields.
#[derive(Default)]
pub(super) struct ChecksumFields {
    crc32: Option<String>,
    crc32c: Option<String>,
    crc64nvme: Option<String>,
    sha1: Option<String>,
    sha256: Option<String>,
}

/// S3 outputs that carry the five `checksum_*` fields.
pub(super) trait WithChecksums: Sized {
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
    dto::CopyObjectResult,
    dto::CompleteMultipartUploadOutput,
    dto::CopyPartResult,
    dto::Part,
    dto::ObjectPart,
    dto::Checksum
);

pub(super) fn checksum_fields(values: &[(String, String)]) -> ChecksumFields {
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

/// `ChecksumType` of stored checksum values: COMPOSITE when a value carries a part count
/// (`…-N`, which base64 never contains), FULL_OBJECT otherwise; none without a value.
pub(super) fn checksum_type(values: &[(String, String)]) -> Option<dto::ChecksumType> {
    let (_, v) = values.first()?;
    Some(dto::ChecksumType::from(
        if v.contains('-') {
            dto::ChecksumType::COMPOSITE
        } else {
            dto::ChecksumType::FULL_OBJECT
        }
        .to_owned(),
    ))
}

/// A requested checksum algorithm.
///
/// # Errors
/// InvalidRequest for one S3 does not know (or this gateway does not compute).
pub(super) fn algorithm_of(a: &dto::ChecksumAlgorithm) -> S3Result<Algorithm> {
    Algorithm::parse(a.as_str()).ok_or_else(|| {
        s3_error!(
            InvalidRequest,
            "Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]"
        )
    })
}

/// The checksum a CreateMultipartUpload asks for: the algorithm, and the type (given,
/// or S3's default for the algorithm: FULL_OBJECT for CRC64NVME, COMPOSITE otherwise).
///
/// # Errors
/// InvalidRequest for a type without an algorithm, an unknown algorithm or type, or a
/// type the algorithm cannot have (SHA with FULL_OBJECT, CRC64NVME with COMPOSITE).
pub(super) fn upload_spec(
    algorithm: Option<&dto::ChecksumAlgorithm>,
    kind: Option<&dto::ChecksumType>,
) -> S3Result<Option<ChecksumSpec>> {
    let Some(a) = algorithm else {
        if kind.is_some() {
            return Err(s3_error!(
                InvalidRequest,
                "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header."
            ));
        }
        return Ok(None);
    };
    let a = algorithm_of(a)?;
    let full_object = match kind.map(dto::ChecksumType::as_str) {
        None => !a.composite_allowed(),
        Some(t) if t.eq_ignore_ascii_case(dto::ChecksumType::FULL_OBJECT) => true,
        Some(t) if t.eq_ignore_ascii_case(dto::ChecksumType::COMPOSITE) => false,
        Some(_) => {
            return Err(s3_error!(
                InvalidRequest,
                "Value for x-amz-checksum-type header is invalid."
            ));
        }
    };
    if full_object && !a.full_object_allowed() || !full_object && !a.composite_allowed() {
        return Err(s3_error!(
            InvalidRequest,
            "The {} checksum type cannot be used with the {} checksum algorithm.",
            type_name(full_object),
            a.name().to_ascii_lowercase()
        ));
    }
    Ok(Some(ChecksumSpec {
        algorithm: a.name().to_owned(),
        full_object,
    }))
}

fn type_name(full_object: bool) -> &'static str {
    if full_object {
        dto::ChecksumType::FULL_OBJECT
    } else {
        dto::ChecksumType::COMPOSITE
    }
}

/// The `ChecksumAlgorithm` and `ChecksumType` fields describing an upload's checksum.
pub(super) fn spec_fields(
    spec: Option<&ChecksumSpec>,
) -> (Option<dto::ChecksumAlgorithm>, Option<dto::ChecksumType>) {
    match spec {
        None => (None, None),
        Some(s) => (
            Some(dto::ChecksumAlgorithm::from(s.algorithm.clone())),
            Some(dto::ChecksumType::from(type_name(s.full_object).to_owned())),
        ),
    }
}

/// The algorithm of an upload's checksum.
pub(super) fn spec_algorithm(spec: &ChecksumSpec) -> S3Result<Algorithm> {
    Algorithm::parse(&spec.algorithm).ok_or_else(|| {
        s3_error!(
            InternalError,
            "The upload records an unknown checksum algorithm {}",
            spec.algorithm
        )
    })
}

/// An UploadPart's checksum claims against its upload's algorithm: a part may send the
/// upload's algorithm, never another; it must send it to a COMPOSITE upload (a
/// FULL_OBJECT upload's part checksum is computed when not sent, as S3 does).
///
/// # Errors
/// InvalidRequest naming both algorithms (`null` when none was sent).
pub(super) fn check_part_algorithm(
    spec: Option<&ChecksumSpec>,
    sent: &[Algorithm],
) -> S3Result<()> {
    let Some(spec) = spec else { return Ok(()) };
    let want = spec_algorithm(spec)?;
    let other = match sent.iter().find(|a| **a != want) {
        Some(a) => a.name().to_ascii_lowercase(),
        None if sent.is_empty() && !spec.full_object => "null".to_owned(),
        None => return Ok(()),
    };
    Err(s3_error!(
        InvalidRequest,
        "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {other}",
        want.name().to_ascii_lowercase()
    ))
}

/// The value of a stored checksum list for algorithm `a`.
pub(super) fn value_of(values: &[(String, String)], a: Algorithm) -> Option<&str> {
    values
        .iter()
        .find(|(n, _)| Algorithm::parse(n) == Some(a))
        .map(|(_, v)| v.as_str())
}

/// What a CompleteMultipartUpload says about checksums.
pub(super) struct CompletionClaims {
    /// Per listed part (in order): the checksum values its `<Part>` carries.
    pub(super) parts: Vec<Vec<(Algorithm, String)>>,
    /// Whole-object values from `x-amz-checksum-*` headers.
    pub(super) object: Vec<(Algorithm, String)>,
    /// `x-amz-checksum-type`.
    pub(super) kind: Option<String>,
}

/// The form of the part checksums a completion lists (S3 checks it before the parts'
/// order and ETags).
///
/// # Errors
/// InvalidArgument for a malformed value or several on one part.
pub(super) fn check_part_claims(claims: &CompletionClaims) -> S3Result<()> {
    if claims
        .parts
        .iter()
        .any(|c| c.len() > 1 || c.iter().any(|(a, v)| !a.valid_value(v)))
    {
        return Err(s3_error!(
            InvalidArgument,
            "Invalid Base64 or multiple checksums present in request"
        ));
    }
    Ok(())
}

pub(super) const INVALID_PART: &str = "One or more of the specified parts could not be found.  The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.";

/// The object checksum of a completed upload (name, value), checked against what the
/// completion claims: each listed part's checksum must be the stored one, the
/// checksum type (if sent) the upload's, the whole-object value (if sent) the computed
/// one. `chosen` are the listed parts' records, in order. An upload created without an
/// algorithm gets S3's default, a FULL_OBJECT CRC64NVME, when every part has one
/// (claims about it are ignored, as S3 ignores them).
///
/// # Errors
/// InvalidRequest (type mismatch, a COMPOSITE part without its checksum, a malformed
/// whole-object value), InvalidArgument (a malformed part value), InvalidPart (a part's
/// checksum differs), BadDigest (another algorithm's part value, or the whole-object
/// value differs).
pub(super) fn completed_checksum(
    spec: Option<&ChecksumSpec>,
    listed: &[u32],
    chosen: &[&PartRecord],
    claims: &CompletionClaims,
) -> S3Result<Vec<(String, String)>> {
    if let Some(k) = &claims.kind {
        let valid = [dto::ChecksumType::COMPOSITE, dto::ChecksumType::FULL_OBJECT]
            .iter()
            .any(|t| t.eq_ignore_ascii_case(k));
        if !valid {
            return Err(s3_error!(
                InvalidRequest,
                "Value for x-amz-checksum-type header is invalid."
            ));
        }
        let mode = spec.map_or("null", |s| type_name(s.full_object));
        if !k.eq_ignore_ascii_case(mode) {
            return Err(s3_error!(
                InvalidRequest,
                "The upload was created using the {mode} checksum mode. The complete request must use the same checksum mode."
            ));
        }
    }
    check_part_claims(claims)?;
    let Some(spec) = spec else {
        if claims.parts.iter().any(|c| !c.is_empty()) {
            return Err(s3_error!(InvalidPart, "{INVALID_PART}"));
        }
        let a = Algorithm::Crc64Nvme;
        let values: Option<Vec<(&str, u64)>> = chosen
            .iter()
            .map(|p| value_of(&p.checksums, a).map(|v| (v, p.size)))
            .collect();
        return Ok(values
            .and_then(|v| checksum::combine_full(a, &v))
            .map(|v| vec![(a.name().to_owned(), v)])
            .unwrap_or_default());
    };
    let a = spec_algorithm(spec)?;
    let lower = a.name().to_ascii_lowercase();
    let mut values = Vec::with_capacity(chosen.len());
    for ((n, rec), claimed) in listed.iter().zip(chosen).zip(&claims.parts) {
        if let Some((other, _)) = claimed.iter().find(|(c, _)| *c != a) {
            return Err(s3_error!(
                BadDigest,
                "The {} you specified for part {n} did not match what we received.",
                other.name().to_ascii_lowercase()
            ));
        }
        let Some(stored) = value_of(&rec.checksums, a) else {
            return Err(s3_error!(
                InvalidPart,
                "Part {n} has no {} checksum; upload it again",
                a.name()
            ));
        };
        match claimed.first() {
            Some((_, v)) if v.trim() != stored => {
                if !spec.full_object && !claims.object.is_empty() {
                    return Err(s3_error!(
                        BadDigest,
                        "The {lower} you specified did not match the calculated checksum."
                    ));
                }
                return Err(s3_error!(InvalidPart, "{INVALID_PART}"));
            }
            None if !spec.full_object => {
                return Err(s3_error!(
                    InvalidRequest,
                    "The upload was created using a {lower} checksum. The complete request must include the checksum for each part. It was missing for part {n} in the request."
                ));
            }
            _ => {}
        }
        values.push((stored, rec.size));
    }
    let value = if spec.full_object {
        checksum::combine_full(a, &values)
    } else {
        let raw: Vec<&str> = values.iter().map(|(v, _)| *v).collect();
        checksum::composite(a, &raw)
    }
    .ok_or_else(|| s3_error!(InternalError, "A stored part checksum is malformed"))?;
    for (c, v) in &claims.object {
        // A COMPOSITE value may be sent with or without its `-N`.
        let (base, count) = match v.trim().split_once('-') {
            Some((b, n)) => (b, Some(n)),
            None => (v.trim(), None),
        };
        let well_formed = c.valid_value(base)
            && count.is_none_or(|n| !spec.full_object && n.parse::<u32>().is_ok());
        if !well_formed {
            return Err(s3_error!(
                InvalidRequest,
                "Value for {} header is invalid.",
                c.header()
            ));
        }
        let matches = *c == a
            && (v.trim() == value || count.is_none() && value.split('-').next() == Some(base));
        if !matches {
            return Err(s3_error!(
                BadDigest,
                "The {} you specified did not match the calculated checksum.",
                c.name().to_ascii_lowercase()
            ));
        }
    }
    Ok(vec![(a.name().to_owned(), value)])
}

/// Checksum values sent as headers (or in a `<Part>`), by algorithm.
pub(super) fn claimed_values(
    crc32: Option<&String>,
    crc32c: Option<&String>,
    crc64nvme: Option<&String>,
    sha1: Option<&String>,
    sha256: Option<&String>,
) -> Vec<(Algorithm, String)> {
    [
        (Algorithm::Crc32, crc32),
        (Algorithm::Crc32c, crc32c),
        (Algorithm::Crc64Nvme, crc64nvme),
        (Algorithm::Sha1, sha1),
        (Algorithm::Sha256, sha256),
    ]
    .into_iter()
    .filter_map(|(a, v)| v.map(|v| (a, v.trim().to_owned())))
    .collect()
}

pub(super) fn wants_checksums(mode: Option<&dto::ChecksumMode>) -> bool {
    mode.is_some_and(|m| m.as_str().eq_ignore_ascii_case(dto::ChecksumMode::ENABLED))
}

/// The checksums a GET/HEAD answers with (asked for with `x-amz-checksum-mode`): a
/// part's own for `partNumber`, the object's when the whole object is served (also
/// through a Range covering it), none for a partial Range (they would not describe
/// the bytes served).
pub(super) fn served_checksums(
    rec: &s3dedup_storage::ObjectRecord,
    part: Option<&[(String, String)]>,
    (start, end): (u64, u64),
    wanted: bool,
) -> (ChecksumFields, Option<dto::ChecksumType>) {
    let values = match part {
        _ if !wanted => return Default::default(),
        Some(p) => p,
        None if (start, end) == (0, rec.size) => &rec.meta.checksums,
        None => return Default::default(),
    };
    if values.is_empty() {
        return Default::default();
    }
    (checksum_fields(values), checksum_type(&rec.meta.checksums))
}
