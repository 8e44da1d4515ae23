//! A tenant's own rate limits (identity kind `rate_limit`), overriding the gateway's
//! per-key defaults for that tenant's keys. Journaled with the other identity records.

use crate::codec::{Reader, Writer};
use crate::error::Result;

/// Identity kind of a tenant's rate limits.
pub const RATE_KIND: &str = "rate_limit";

const V1: u8 = 1;

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
        let mut w = Writer::default();
        let flags = u8::from(self.requests_per_sec.is_some())
            | (u8::from(self.bytes_per_sec.is_some()) << 1);
        w.u8(V1)
            .u8(flags)
            .u64(self.requests_per_sec.unwrap_or(0))
            .u64(self.bytes_per_sec.unwrap_or(0));
        w.seal()
    }

    /// Decodes a record.
    ///
    /// # Errors
    /// [`crate::Error::Corrupt`] for a damaged record.
    pub fn decode(b: &[u8]) -> Result<Self> {
        const WHAT: &str = "rate limits";
        let (_, mut r) = Reader::open(b, WHAT, V1, V1)?;
        let flags = r.u8()?;
        let (requests, bytes) = (r.u64()?, r.u64()?);
        r.finish()?;
        if flags & !3 != 0 {
            return Err(crate::Error::corrupt(
                WHAT,
                format!("unknown flags {flags:#x}"),
            ));
        }
        Ok(RateLimits {
            requests_per_sec: (flags & 1 != 0).then_some(requests),
            bytes_per_sec: (flags & 2 != 0).then_some(bytes),
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
