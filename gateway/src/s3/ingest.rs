//! The verified upload path shared by PutObject, UploadPart and UploadPartCopy: the
//! body streams through the scanner tee and the engine's ingest while MD5 and the
//! requested checksums are computed, then every claim (length, Content-MD5,
//! `x-amz-checksum-*` as header or trailer) is checked before anything is published.

use base64::Engine as _;
use s3dedup_storage::PendingObject;
use s3dedup_storage::identity::Uploader;
use s3s::dto::{self, StreamingBlob};
use s3s::{S3Result, TrailingHeaders, s3_error};

use super::Gateway;
use crate::checksum::{Algorithm, Hasher};
use crate::error::to_s3;
use crate::scan::UploadScan;

/// Largest single PUT or part S3 accepts.
const MAX_OBJECT_SIZE: i64 = 5 << 30;

/// What the client claims about an upload body.
pub(super) struct Claims<'a> {
    pub(super) content_md5: Option<&'a String>,
    pub(super) content_length: Option<i64>,
    pub(super) algorithm: Option<&'a dto::ChecksumAlgorithm>,
    /// Values sent as headers, by algorithm.
    pub(super) values: Vec<(Algorithm, String)>,
    /// Bytes the quotas leave (`None` = unlimited): more is refused.
    pub(super) room: Option<u64>,
    /// An algorithm computed whatever the client sends (a part of an upload that named
    /// none gets S3's default CRC64NVME, which completion combines).
    pub(super) extra: Option<Algorithm>,
}

/// Ingests an upload body and verifies it: length, Content-MD5, and every
/// `x-amz-checksum-*` sent as a header or trailer (computed over the decoded payload).
/// Returns the pending object and the checksums computed (name, base64 value).
pub(super) async fn ingest_verified(
    gw: &Gateway,
    uploader: Uploader<'_>,
    body: Option<StreamingBlob>,
    claims: Claims<'_>,
    trailers: Option<TrailingHeaders>,
    scan: &UploadScan,
) -> S3Result<(PendingObject, Vec<(String, String)>)> {
    if claims.content_length.is_some_and(|n| n > MAX_OBJECT_SIZE) {
        return Err(s3_error!(
            EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed size of 5 GiB"
        ));
    }
    let md5 = match claims.content_md5 {
        None => None,
        Some(v) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .ok()
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .ok_or_else(|| {
                    s3_error!(InvalidDigest, "The Content-MD5 you specified was invalid.")
                })?,
        ),
    };
    let requested = match claims.algorithm {
        None => None,
        Some(a) => Some(super::checksums::algorithm_of(a)?),
    };
    for (a, v) in &claims.values {
        if !a.valid_value(v) {
            return Err(s3_error!(
                InvalidRequest,
                "Value for {} header is invalid.",
                a.header()
            ));
        }
    }
    if claims.values.len() > 1 {
        return Err(s3_error!(
            InvalidRequest,
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
        ));
    }
    if let (Some(a), Some((sent, _))) = (requested, claims.values.first())
        && a != *sent
    {
        return Err(s3_error!(
            InvalidRequest,
            "Value for x-amz-sdk-checksum-algorithm header is invalid."
        ));
    }
    // As S3 does, an upload that names no checksum gets a CRC64NVME (a part's combines
    // into its object's at completion).
    let default = (requested.is_none() && claims.values.is_empty())
        .then_some(Algorithm::Crc64Nvme)
        .or(claims.extra);
    let hasher = Hasher::new(
        requested
            .into_iter()
            .chain(claims.values.iter().map(|(a, _)| *a))
            .chain(default),
    );
    if let Err(e) = super::quota::check_declared(claims.content_length, claims.room) {
        super::quota::drain(body);
        return Err(e);
    }
    let stream = body.unwrap_or_else(|| StreamingBlob::from(s3s::Body::empty()));
    let stream = super::quota::capped(stream, claims.room);
    let stream = scan.tee(stream, gw.settings.scan.policy());
    let pending = gw
        .store
        .ingest_into(uploader, stream, Some(Box::new(hasher)))
        .await
        .map_err(|e| gw.settings.scan.abort_error(&e).unwrap_or_else(|| to_s3(e)))?;
    crate::metrics::record_ingest(&pending.stats, pending.size);

    if let Some(len) = claims.content_length
        && u64::try_from(len).ok() != Some(pending.size)
    {
        return Err(s3_error!(
            IncompleteBody,
            "Received {} bytes, Content-Length said {len}",
            pending.size
        ));
    }
    if let Some(want) = md5
        && want != pending.md5
    {
        return Err(s3_error!(
            BadDigest,
            "The Content-MD5 you specified did not match what we received"
        ));
    }
    let computed: Vec<(Algorithm, String)> = pending
        .digests
        .iter()
        .filter_map(|(name, v)| Some((Algorithm::parse(name)?, v.clone())))
        .collect();
    // Values sent in a trailer arrive only after the body; s3s exposes them now.
    let mut claimed = claims.values;
    if let Some(a) = requested
        && !claimed.iter().any(|(c, _)| *c == a)
        && let Some(t) = trailers.and_then(|t| t.take())
        && let Some(v) = t.get(a.header()).and_then(|v| v.to_str().ok())
    {
        if !a.valid_value(v) {
            return Err(s3_error!(
                InvalidRequest,
                "Value for {} trailing header is invalid.",
                a.header()
            ));
        }
        claimed.push((a, v.trim().to_owned()));
    }
    for (a, v) in &claimed {
        let ours = computed.iter().find(|(c, _)| c == a).map(|(_, v)| v);
        if ours != Some(v) {
            return Err(s3_error!(
                BadDigest,
                "The {} you specified did not match the calculated checksum.",
                a.name()
            ));
        }
    }
    let checksums = computed
        .into_iter()
        .map(|(a, v)| (a.name().to_owned(), v))
        .collect();
    Ok((pending, checksums))
}
