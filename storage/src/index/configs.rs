//! Bucket configurations: the `bucket_configs` table ((bucket, kind) → the encoded
//! configuration), one row per kind (`lifecycle` now; policies, CORS, notification
//! configurations later). Every change is journaled as [`Change::BucketConfig`]; a
//! bucket's configurations go with it.

use redb::{ReadableDatabase, ReadableTable, WriteTransaction};

use super::{BUCKET_CONFIGS, Index, journal};
use crate::error::{Error, Result};
use crate::journal::entry::Change;

/// Checks that an encoded configuration is sealed (ends with the CRC32C of the bytes
/// before it), as every kind's encoding is.
pub(super) fn check_sealed(b: &[u8]) -> Result<()> {
    let bad = |d: &str| Error::corrupt("bucket configuration", d);
    let split = b
        .len()
        .checked_sub(4)
        .filter(|&n| n >= 1)
        .ok_or_else(|| bad("record is truncated"))?;
    let (body, crc) = b.split_at(split);
    if crc32c::crc32c(body).to_le_bytes() != crc {
        return Err(bad("checksum mismatch"));
    }
    Ok(())
}

/// Removes every configuration of `bucket` (the bucket is being deleted; its
/// `BucketGone` entry says so to a replay).
pub(super) fn remove_all(txn: &WriteTransaction, bucket: &str) -> Result<()> {
    let mut t = txn.open_table(BUCKET_CONFIGS)?;
    let kinds: Vec<String> = t
        .range((bucket, "")..)?
        .map_while(|r| match r {
            Ok((k, _)) if k.value().0 == bucket => Some(Ok(k.value().1.to_owned())),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
        .collect::<std::result::Result<_, _>>()?;
    for kind in kinds {
        t.remove((bucket, kind.as_str()))?;
    }
    Ok(())
}

/// The configuration of `kind` of `bucket` in a transaction.
pub(super) fn get<T>(t: &T, bucket: &str, kind: &str) -> Result<Option<Vec<u8>>>
where
    T: ReadableTable<(&'static str, &'static str), &'static [u8]>,
{
    Ok(t.get((bucket, kind))?.map(|v| v.value().to_vec()))
}

impl Index {
    /// Sets (`Some`) or removes (`None`) the configuration of `kind` of `bucket`.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`].
    pub(crate) fn set_bucket_config(
        &self,
        bucket: &str,
        kind: &'static str,
        value: Option<Vec<u8>>,
    ) -> impl Future<Output = Result<()>> + use<> {
        let bucket = bucket.to_owned();
        self.committer.submit(move |txn| {
            super::versions::bucket_record(txn, &bucket)?;
            let mut t = txn.open_table(BUCKET_CONFIGS)?;
            match &value {
                Some(v) => t.insert((bucket.as_str(), kind), v.as_slice())?,
                None => t.remove((bucket.as_str(), kind))?,
            };
            journal::append(
                txn,
                vec![Change::BucketConfig {
                    bucket: bucket.clone(),
                    kind: kind.to_owned(),
                    value: value.clone().unwrap_or_default(),
                }],
            )
        })
    }

    /// The configuration of `kind` of `bucket`, if set.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`].
    pub(crate) fn bucket_config(&self, bucket: &str, kind: &str) -> Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read()?;
        if txn.open_table(super::BUCKETS)?.get(bucket)?.is_none() {
            return Err(Error::NoSuchBucket(bucket.to_owned()));
        }
        get(&txn.open_table(BUCKET_CONFIGS)?, bucket, kind)
    }

    /// Every bucket with a configuration of `kind`, with it.
    ///
    /// # Errors
    /// [`Error::Index`].
    pub(crate) fn bucket_configs(&self, kind: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let txn = self.db.begin_read()?;
        let mut out = Vec::new();
        for r in txn.open_table(BUCKET_CONFIGS)?.iter()? {
            let (k, v) = r?;
            let (bucket, k) = k.value();
            if k == kind {
                out.push((bucket.to_owned(), v.value().to_vec()));
            }
        }
        Ok(out)
    }
}
