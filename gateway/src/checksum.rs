//! Request checksums: `x-amz-checksum-*` (CRC32, CRC32C, CRC64NVME, SHA1, SHA256) computed
//! over the decoded payload as it streams, and compared with what the client sent in a
//! header or a trailer. Pure: bytes in, values out.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use crc_fast::{CrcAlgorithm, Digest as CrcDigest};
use sha1::Digest as _;

/// A checksum algorithm S3 clients may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// CRC-32 (ISO-HDLC), 4 bytes.
    Crc32,
    /// CRC-32C (Castagnoli), 4 bytes.
    Crc32c,
    /// CRC-64/NVME, 8 bytes.
    Crc64Nvme,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
}

impl Algorithm {
    /// Every algorithm.
    pub const ALL: [Algorithm; 5] = [
        Algorithm::Crc32,
        Algorithm::Crc32c,
        Algorithm::Crc64Nvme,
        Algorithm::Sha1,
        Algorithm::Sha256,
    ];

    /// The S3 name (`ChecksumAlgorithm` value).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "CRC32",
            Algorithm::Crc32c => "CRC32C",
            Algorithm::Crc64Nvme => "CRC64NVME",
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
        }
    }

    /// The header carrying the value.
    pub fn header(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "x-amz-checksum-crc32",
            Algorithm::Crc32c => "x-amz-checksum-crc32c",
            Algorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Algorithm::Sha1 => "x-amz-checksum-sha1",
            Algorithm::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// Parses an S3 algorithm name, case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s))
    }

    /// Its CRC parameters, for the CRCs.
    fn crc(self) -> Option<CrcAlgorithm> {
        match self {
            Algorithm::Crc32 => Some(CrcAlgorithm::Crc32IsoHdlc),
            Algorithm::Crc32c => Some(CrcAlgorithm::Crc32Iscsi),
            Algorithm::Crc64Nvme => Some(CrcAlgorithm::Crc64Nvme),
            Algorithm::Sha1 | Algorithm::Sha256 => None,
        }
    }

    /// Whether a multipart object may have a FULL_OBJECT checksum in this algorithm
    /// (the CRCs: they combine across parts).
    pub fn full_object_allowed(self) -> bool {
        self.crc().is_some()
    }

    /// Whether a multipart object may have a COMPOSITE checksum in this algorithm
    /// (all but CRC64NVME, which S3 defines as full-object only).
    pub fn composite_allowed(self) -> bool {
        self != Algorithm::Crc64Nvme
    }

    /// The raw digest of a well-formed base64 value.
    fn raw(self, value: &str) -> Option<Vec<u8>> {
        B64.decode(value.trim())
            .ok()
            .filter(|b| b.len() == self.digest_len())
    }

    fn digest_len(self) -> usize {
        match self {
            Algorithm::Crc32 | Algorithm::Crc32c => 4,
            Algorithm::Crc64Nvme => 8,
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
        }
    }

    /// Whether `value` is well-formed base64 of the right length for this algorithm.
    pub fn valid_value(self, value: &str) -> bool {
        B64.decode(value.trim())
            .is_ok_and(|b| b.len() == self.digest_len())
    }
}

enum State {
    Crc(CrcDigest, usize),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

/// Streaming computation of a set of checksums.
pub struct Hasher {
    states: Vec<(Algorithm, State)>,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let algos: Vec<_> = self.states.iter().map(|(a, _)| a.name()).collect();
        f.debug_struct("Hasher")
            .field("algorithms", &algos)
            .finish()
    }
}

impl Hasher {
    /// A hasher for `algos` (duplicates are ignored).
    pub fn new(algos: impl IntoIterator<Item = Algorithm>) -> Self {
        let mut states: Vec<(Algorithm, State)> = Vec::new();
        for a in algos {
            if states.iter().any(|(b, _)| *b == a) {
                continue;
            }
            let s = match a {
                Algorithm::Crc32 => State::Crc(CrcDigest::new(CrcAlgorithm::Crc32IsoHdlc), 4),
                Algorithm::Crc32c => State::Crc(CrcDigest::new(CrcAlgorithm::Crc32Iscsi), 4),
                Algorithm::Crc64Nvme => State::Crc(CrcDigest::new(CrcAlgorithm::Crc64Nvme), 8),
                Algorithm::Sha1 => State::Sha1(sha1::Sha1::new()),
                Algorithm::Sha256 => State::Sha256(sha2::Sha256::new()),
            };
            states.push((a, s));
        }
        Hasher { states }
    }

    /// Whether nothing is computed.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// Feeds payload bytes.
    pub fn update(&mut self, data: &[u8]) {
        for (_, s) in &mut self.states {
            match s {
                State::Crc(d, _) => d.update(data),
                State::Sha1(h) => h.update(data),
                State::Sha256(h) => h.update(data),
            }
        }
    }

    /// The base64 values, as S3 returns them.
    pub fn finish(self) -> Vec<(Algorithm, String)> {
        self.states
            .into_iter()
            .map(|(a, s)| {
                let bytes = match s {
                    State::Crc(d, n) => d.finalize().to_be_bytes()[8 - n..].to_vec(),
                    State::Sha1(h) => h.finalize().to_vec(),
                    State::Sha256(h) => h.finalize().to_vec(),
                };
                (a, B64.encode(bytes))
            })
            .collect()
    }
}

/// The engine feeds the body to the hasher in the same sink as its MD5 (inline for
/// small bodies, on a blocking thread for large ones).
impl s3dedup_storage::ingest::BodyDigest for Hasher {
    fn update(&mut self, data: &[u8]) {
        Hasher::update(self, data);
    }

    fn finish(self: Box<Self>) -> Vec<(&'static str, String)> {
        Hasher::finish(*self)
            .into_iter()
            .map(|(a, v)| (a.name(), v))
            .collect()
    }
}

/// The FULL_OBJECT checksum of a multipart object from its parts' checksums (base64)
/// and sizes, without reading a byte: CRC(a‖b) follows from CRC(a), CRC(b) and the
/// length of b (the GF(2) shift of CRC(a) by len(b) bytes, then xor). `None` for a
/// non-CRC algorithm, no parts, or a malformed part value.
pub fn combine_full(a: Algorithm, parts: &[(&str, u64)]) -> Option<String> {
    let crc = a.crc()?;
    let width = a.digest_len();
    let value = |v: &str| -> Option<u64> {
        let raw = a.raw(v)?;
        let mut b = [0u8; 8];
        b[8 - width..].copy_from_slice(&raw);
        Some(u64::from_be_bytes(b))
    };
    let ((first, _), rest) = parts.split_first()?;
    let mut acc = value(first)?;
    for (v, len) in rest {
        acc = crc_fast::checksum_combine(crc, acc, value(v)?, *len);
    }
    Some(B64.encode(&acc.to_be_bytes()[8 - width..]))
}

/// The COMPOSITE checksum of a multipart object: the algorithm over the concatenated raw
/// part checksums, then `-N` (the part count). `None` for no parts or a malformed value.
pub fn composite(a: Algorithm, parts: &[&str]) -> Option<String> {
    if parts.is_empty() {
        return None;
    }
    let mut h = Hasher::new([a]);
    for v in parts {
        h.update(&a.raw(v)?);
    }
    let (_, value) = h.finish().pop()?;
    Some(format!("{value}-{}", parts.len()))
}

/// Base64 of an MD5 (the `Content-MD5` form).
pub fn md5_base64(md5: &[u8; 16]) -> String {
    B64.encode(md5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // Reference values for "hello world" as returned by AWS S3 / the AWS SDKs.
        let mut h = Hasher::new(Algorithm::ALL);
        h.update(b"hello ");
        h.update(b"world");
        let got: std::collections::HashMap<_, _> = h.finish().into_iter().collect();
        assert_eq!(got[&Algorithm::Crc32], "DUoRhQ==");
        assert_eq!(got[&Algorithm::Crc32c], "yZRlqg==");
        assert_eq!(got[&Algorithm::Crc64Nvme], "jSnVw/bqjr4=");
        assert_eq!(got[&Algorithm::Sha1], "Kq5sNclPz7QV2+lfQIuc6R7oRu0=");
        assert_eq!(
            got[&Algorithm::Sha256],
            "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="
        );
        assert!(Algorithm::Crc32.valid_value("DUoRhQ=="));
        assert!(!Algorithm::Crc32.valid_value("jSnVw/bqjr4="));
        assert_eq!(Algorithm::parse("crc64nvme"), Some(Algorithm::Crc64Nvme));
    }

    fn one(a: Algorithm, data: &[u8]) -> String {
        let mut h = Hasher::new([a]);
        h.update(data);
        h.finish().pop().unwrap().1
    }

    #[test]
    fn full_object_checksums_combine_to_the_checksum_of_the_whole() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..40 {
            let len = (next() % 200_000) as usize;
            let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Random cut points, empty parts included now and then.
            let mut cuts: Vec<usize> = (0..(next() % 6))
                .map(|_| if len == 0 { 0 } else { (next() as usize) % len })
                .collect();
            if round % 5 == 0 {
                cuts.push(0);
            }
            cuts.sort_unstable();
            let mut bounds = vec![0];
            bounds.extend(cuts);
            bounds.push(len);
            for a in [Algorithm::Crc32, Algorithm::Crc32c, Algorithm::Crc64Nvme] {
                let parts: Vec<(String, u64)> = bounds
                    .windows(2)
                    .map(|w| (one(a, &data[w[0]..w[1]]), (w[1] - w[0]) as u64))
                    .collect();
                let refs: Vec<(&str, u64)> = parts.iter().map(|(v, n)| (v.as_str(), *n)).collect();
                assert_eq!(
                    combine_full(a, &refs).unwrap(),
                    one(a, &data),
                    "{a:?}, {len} bytes cut at {bounds:?}"
                );
            }
        }
        assert_eq!(combine_full(Algorithm::Sha256, &[("x", 1)]), None);
        assert_eq!(combine_full(Algorithm::Crc32, &[]), None);
        assert_eq!(combine_full(Algorithm::Crc32, &[("not base64!", 1)]), None);
    }

    #[test]
    fn composite_is_the_checksum_of_the_raw_part_checksums() {
        let p1 = one(Algorithm::Crc32, b"hello ");
        let p2 = one(Algorithm::Crc32, b"world");
        let mut raw = B64.decode(&p1).unwrap();
        raw.extend(B64.decode(&p2).unwrap());
        // CRC-32 of the 8 raw bytes, computed here with a bitwise reference.
        let mut crc = 0xffff_ffffu32;
        for b in raw {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        let want = format!("{}-2", B64.encode((!crc).to_be_bytes()));
        assert_eq!(composite(Algorithm::Crc32, &[&p1, &p2]).unwrap(), want);
        assert_eq!(composite(Algorithm::Crc32, &[]), None);
    }
}
