//! Quotas: most logical bytes and most objects a bucket or a tenant may hold.
//!
//! Both count **logical** data: the sizes of stored object versions (current and
//! noncurrent) and their number, as clients see them. Physical bytes depend on what
//! other tenants stored first (dedup), on compression and on GC timing: a quota on them
//! would let one tenant's usage move with another's uploads and leak what they hold.
//! Delete markers count for neither.
//!
//! The usage they are checked against is kept exact in the index, in the same
//! transaction as every change of object versions (`index::usage`), and the check that
//! decides is made there too, so concurrent uploads cannot overshoot together.

use crate::error::Result;

/// Bucket configuration kind (and identity kind, for tenants) of a quota record.
pub const QUOTA_KIND: &str = "quota";

/// Limits; `None` = unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    /// Most logical bytes (every version's size).
    pub max_bytes: Option<u64>,
    /// Most object versions (delete markers excluded).
    pub max_objects: Option<u64>,
}

/// What a bucket or tenant holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Logical bytes: every stored version's size.
    pub bytes: u64,
    /// Object versions (current and noncurrent).
    pub objects: u64,
}

/// A bucket's and its owner's usage and quotas, as one read snapshot saw them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuotaState {
    /// The bucket's usage.
    pub bucket: Usage,
    /// The bucket's quota.
    pub bucket_quota: Option<Quota>,
    /// The owning tenant ("" for the root).
    pub tenant: String,
    /// The tenant's usage (all its buckets).
    pub tenant_usage: Usage,
    /// The tenant's quota.
    pub tenant_quota: Option<Quota>,
}

impl QuotaState {
    /// Bytes one more object version may bring (`None` = no byte quota applies), given
    /// that it replaces `credit` = (bytes, objects) released in the same commit; or why
    /// even an empty one is refused (the object count is full).
    ///
    /// # Errors
    /// [`crate::Error::QuotaExceeded`] naming the quota.
    pub fn room(&self, credit: (u64, u64)) -> Result<Option<u64>> {
        let mut room: Option<u64> = None;
        for (what, usage, quota) in [
            ("bucket quota".to_owned(), self.bucket, self.bucket_quota),
            (
                format!("tenant {} quota", self.tenant),
                self.tenant_usage,
                self.tenant_quota,
            ),
        ] {
            let Some(q) = quota else { continue };
            if let Some(max) = q.max_objects
                && (usage.objects + 1).saturating_sub(credit.1) > max
            {
                return Err(crate::Error::QuotaExceeded(format!(
                    "the {what} allows {max} objects and {} are stored",
                    usage.objects
                )));
            }
            if let Some(max) = q.max_bytes {
                let r = max.saturating_add(credit.0).saturating_sub(usage.bytes);
                room = Some(room.map_or(r, |x| x.min(r)));
            }
        }
        Ok(room)
    }
}

impl Quota {
    /// Whether it limits nothing.
    pub fn is_unlimited(&self) -> bool {
        self.max_bytes.is_none() && self.max_objects.is_none()
    }

    /// Why `usage` is over the quota, if it is.
    pub fn exceeded_by(&self, usage: Usage) -> Option<String> {
        if let Some(max) = self.max_bytes
            && usage.bytes > max
        {
            return Some(format!(
                "{} bytes would exceed the quota of {max} bytes",
                usage.bytes
            ));
        }
        if let Some(max) = self.max_objects
            && usage.objects > max
        {
            return Some(format!(
                "{} objects would exceed the quota of {max} objects",
                usage.objects
            ));
        }
        None
    }

    /// Encodes the record (sealed).
    pub fn encode(&self) -> Vec<u8> {
        crate::codec::encode_limits(self.max_bytes, self.max_objects)
    }

    /// Decodes a record.
    ///
    /// # Errors
    /// [`crate::Error::Corrupt`] for a damaged record.
    pub fn decode(b: &[u8]) -> Result<Self> {
        let (max_bytes, max_objects) = crate::codec::decode_limits(b, "quota")?;
        Ok(Self {
            max_bytes,
            max_objects,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        for q in [
            Quota::default(),
            Quota {
                max_bytes: Some(10 << 30),
                max_objects: None,
            },
            Quota {
                max_bytes: Some(0),
                max_objects: Some(1_000_000),
            },
        ] {
            let b = q.encode();
            assert_eq!(Quota::decode(&b).unwrap(), q);
            for i in 0..b.len() {
                let mut bad = b.clone();
                bad[i] ^= 0x40;
                assert!(Quota::decode(&bad).is_err(), "byte {i}");
            }
        }
    }

    #[test]
    fn limits_are_inclusive() {
        let q = Quota {
            max_bytes: Some(100),
            max_objects: Some(2),
        };
        assert!(
            q.exceeded_by(Usage {
                bytes: 100,
                objects: 2
            })
            .is_none()
        );
        assert!(
            q.exceeded_by(Usage {
                bytes: 101,
                objects: 1
            })
            .unwrap()
            .contains("100 bytes")
        );
        assert!(
            q.exceeded_by(Usage {
                bytes: 1,
                objects: 3
            })
            .unwrap()
            .contains("2 objects")
        );
    }
}
