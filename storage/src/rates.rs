//! A tenant's own rate limits (identity kind `rate_limit`), overriding the gateway's
//! per-key defaults for that tenant's keys. Journaled with the other identity records.

use crate::error::Result;

/// Identity kind of a tenant's rate limits.
pub const RATE_KIND: &str = "rate_limit";

/// Per-key rates for one tenant's keys; `None` = the gateway's setting applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// Requests per second per access key (0 = unlimited).
    pub requests_per_sec: Option<u64>,
    /// Request bytes per second per access key (0 = unlimited).
    pub bytes_per_sec: Option<u64>,
}

impl RateLimits {
    /// Whether it overrides nothing.
    pub fn is_empty(&self) -> bool {
        self.requests_per_sec.is_none() && self.bytes_per_sec.is_none()
    }

    /// Encodes the record (sealed).
    pub fn encode(&self) -> Vec<u8> {
        crate::codec::encode_limits(self.requests_per_sec, self.bytes_per_sec)
    }

    /// Decodes a record.
    ///
    /// # Errors
    /// [`crate::Error::Corrupt`] for a damaged record.
    pub fn decode(b: &[u8]) -> Result<Self> {
        let (requests_per_sec, bytes_per_sec) = crate::codec::decode_limits(b, "rate limits")?;
        Ok(Self {
            requests_per_sec,
            bytes_per_sec,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let r = RateLimits {
            requests_per_sec: Some(100),
            bytes_per_sec: None,
        };
        let b = r.encode();
        assert_eq!(RateLimits::decode(&b).unwrap(), r);
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 0x10;
            assert!(RateLimits::decode(&bad).is_err(), "byte {i}");
        }
    }
}
