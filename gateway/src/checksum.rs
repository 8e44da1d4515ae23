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
}
