//! Object lock in the index: the `locks` table ((bucket, key, seq) → [`LockRecord`]),
//! checked by every deletion of a version, set at write time from the request or the
//! bucket's default retention, and changed only as [`LockRecord`]'s rules allow.

use redb::{ReadableTable, WriteTransaction};

use super::versions::bucket_record;
use super::{Index, LOCKS, OBJECTS, VERSIONS, journal, now_ms};
use crate::error::{Error, Result};
use crate::journal::entry::Change;
pub use crate::lock::LockRequest;
use crate::lock::{LockConfig, LockRecord, Retention};
use crate::records::ObjectRecord;
use crate::version_entry::VersionEntry;
use crate::versions::{Version, VersionSel};

/// The lock record of version `seq` of bucket/key, if any.
pub(super) fn lock_of<T>(t: &T, (bucket, key): (&str, &str), seq: u64) -> Result<Option<LockRecord>>
where
    T: ReadableTable<(&'static str, &'static str, u64), &'static [u8]>,
{
    t.get((bucket, key, seq))?
        .map(|v| LockRecord::decode(v.value()))
        .transpose()
}

/// Refuses the deletion of `version` of bucket/key while its lock protects it.
///
/// # Errors
/// [`Error::ObjectLocked`].
pub(super) fn check_deletable(
    txn: &WriteTransaction,
    at: (&str, &str),
    version: Version,
    bypass: bool,
) -> Result<()> {
    let t = txn.open_table(LOCKS)?;
    if let Some(l) = lock_of(&t, at, version.seq)?
        && let Some(why) = l.protects(now_ms(), bypass)
    {
        return Err(Error::ObjectLocked(format!(
            "version {version} of {}/{} cannot be deleted: {why}",
            at.0, at.1
        )));
    }
    Ok(())
}

/// Stores (or, when empty, removes) the lock record of version `seq`, journaled.
pub(super) fn set_lock(
    txn: &WriteTransaction,
    (bucket, key): (&str, &str),
    seq: u64,
    record: LockRecord,
) -> Result<()> {
    let mut t = txn.open_table(LOCKS)?;
    let had = if record.is_empty() {
        t.remove((bucket, key, seq))?.is_some()
    } else {
        t.insert((bucket, key, seq), record.encode().as_slice())?;
        true
    };
    drop(t);
    if !had {
        return Ok(());
    }
    journal::append(
        txn,
        vec![Change::Lock {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            seq,
            record,
        }],
    )
}

/// Version `sel` (current when `None`) of bucket/key and its per-version record (empty
/// when it has none).
fn version_and_record(
    txn: &WriteTransaction,
    at: (&str, &str),
    sel: Option<VersionSel>,
) -> Result<(Version, LockRecord)> {
    let rec = super::versions::lookup(
        &txn.open_table(OBJECTS)?,
        &txn.open_table(VERSIONS)?,
        at,
        sel,
    )?;
    let record = lock_of(&txn.open_table(LOCKS)?, at, rec.version.seq)?.unwrap_or_default();
    Ok((rec.version, record))
}

/// Gives a new version the lock its write asked for (or the bucket's default retention),
/// its ACL and its tags.
///
/// # Errors
/// [`Error::NoObjectLock`] when the write asks for a lock the bucket does not have.
pub(super) fn lock_new_version(
    txn: &WriteTransaction,
    at: (&str, &str),
    version: Version,
    config: &LockConfig,
    req: &LockRequest,
    (acl, tags): (Option<Vec<u8>>, Vec<(String, String)>),
) -> Result<()> {
    if !config.enabled && !req.is_empty() {
        return Err(Error::NoObjectLock(
            "Bucket is missing Object Lock Configuration".into(),
        ));
    }
    let record = if config.enabled {
        LockRecord {
            retention: req.retention.or_else(|| config.default_retention(now_ms())),
            legal_hold: req.legal_hold.unwrap_or(false),
            acl,
            tags,
        }
    } else {
        LockRecord {
            acl,
            tags,
            ..LockRecord::default()
        }
    };
    set_lock(txn, at, version.seq, record)
}

/// What a lock change sets.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LockChange {
    /// Retention (None: remove it), bypassing governance or not.
    Retention(Option<Retention>, bool),
    /// Legal hold on or off.
    LegalHold(bool),
}

impl Index {
    /// Changes the lock of version `sel` (current when `None`) of bucket/key; returns
    /// the version changed.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`], [`Error::NoSuchKey`], [`Error::NoSuchVersion`],
    /// [`Error::DeleteMarker`], [`Error::NoObjectLock`], [`Error::ObjectLocked`].
    pub(crate) fn change_lock(
        &self,
        bucket: &str,
        key: &str,
        sel: Option<VersionSel>,
        change: LockChange,
    ) -> impl Future<Output = Result<Version>> + use<> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.committer.submit(move |txn| {
            let at = (bucket.as_str(), key.as_str());
            if !bucket_record(txn, at.0)?.lock.enabled {
                return Err(Error::NoObjectLock(
                    "Bucket is missing Object Lock Configuration".into(),
                ));
            }
            let (version, mut lock) = version_and_record(txn, at, sel)?;
            let seq = version.seq;
            match change {
                LockChange::Retention(new, bypass) => {
                    lock.check_retention_change(new, now_ms(), bypass)?;
                    lock.retention = new;
                }
                LockChange::LegalHold(on) => lock.legal_hold = on,
            }
            set_lock(txn, at, seq, lock)?;
            Ok(version)
        })
    }

    /// Sets (`None`: removes) the ACL of version `sel` (current when `None`) of
    /// bucket/key; returns the version changed.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`], [`Error::NoSuchKey`], [`Error::NoSuchVersion`],
    /// [`Error::DeleteMarker`].
    pub(crate) fn set_acl(
        &self,
        bucket: &str,
        key: &str,
        sel: Option<VersionSel>,
        expect: Option<Version>,
        acl: Option<Vec<u8>>,
    ) -> impl Future<Output = Result<Version>> + use<> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.committer.submit(move |txn| {
            let at = (bucket.as_str(), key.as_str());
            bucket_record(txn, at.0)?;
            let (version, mut record) = version_and_record(txn, at, sel)?;
            if expect.is_some_and(|v| v != version) {
                return Err(Error::Conflict(format!(
                    "{}/{} changed: version {version} is there now",
                    at.0, at.1
                )));
            }
            let seq = version.seq;
            record.acl = acl.clone();
            set_lock(txn, at, seq, record)?;
            Ok(version)
        })
    }

    /// Sets the tags of version `sel` (current when `None`) of bucket/key (empty:
    /// removes them); returns the version changed.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`], [`Error::NoSuchKey`], [`Error::NoSuchVersion`],
    /// [`Error::DeleteMarker`].
    pub(crate) fn set_tags(
        &self,
        bucket: &str,
        key: &str,
        sel: Option<VersionSel>,
        tags: Vec<(String, String)>,
    ) -> impl Future<Output = Result<Version>> + use<> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.committer.submit(move |txn| {
            let at = (bucket.as_str(), key.as_str());
            bucket_record(txn, at.0)?;
            let (version, mut record) = version_and_record(txn, at, sel)?;
            record.tags = tags.clone();
            set_lock(txn, at, version.seq, record)?;
            Ok(version)
        })
    }

    /// Versions object lock protects right now (legal hold or retention not yet passed)
    /// and their bytes: one pass over the `locks` table.
    ///
    /// # Errors
    /// [`Error::Index`] or a decode error.
    pub(crate) fn locked(&self) -> Result<(u64, u64)> {
        use redb::ReadableDatabase;
        let txn = self.db.begin_read()?;
        let (objects, versions) = (txn.open_table(OBJECTS)?, txn.open_table(VERSIONS)?);
        let now = now_ms();
        let (mut n, mut bytes) = (0u64, 0u64);
        for r in txn.open_table(LOCKS)?.iter()? {
            let (k, v) = r?;
            let (bucket, key, seq) = k.value();
            if LockRecord::decode(v.value())?
                .protects(now, false)
                .is_none()
            {
                continue;
            }
            let current = objects
                .get((bucket, key))?
                .map(|v| ObjectRecord::decode(v.value()))
                .transpose()?
                .filter(|r| r.version.seq == seq);
            let size = match current {
                Some(r) => Some(r.size),
                None => versions
                    .get((bucket, key, crate::versions::version_key(seq)))?
                    .map(|v| VersionEntry::decode(v.value()))
                    .transpose()?
                    .and_then(|e| match e {
                        VersionEntry::Object(r) => Some(r.size),
                        VersionEntry::Marker(_) => None,
                    }),
            };
            if let Some(size) = size {
                n += 1;
                bytes += size;
            }
        }
        Ok((n, bytes))
    }

    /// Sets a bucket's object lock configuration. Enabling it needs versioning enabled;
    /// it can never be disabled.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`], [`Error::InvalidBucketState`].
    pub(crate) fn set_lock_config(
        &self,
        bucket: &str,
        config: LockConfig,
    ) -> impl Future<Output = Result<()>> + use<> {
        let bucket = bucket.to_owned();
        self.committer.submit(move |txn| {
            let mut rec = bucket_record(txn, &bucket)?;
            if !config.enabled {
                return Err(Error::InvalidArgument(
                    "ObjectLockEnabled must be Enabled".into(),
                ));
            }
            if rec.versioning != crate::versions::Versioning::Enabled {
                return Err(Error::InvalidBucketState(
                    "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration"
                        .into(),
                ));
            }
            rec.lock = config;
            txn.open_table(super::BUCKETS)?
                .insert(bucket.as_str(), rec.encode().as_slice())?;
            journal::append(
                txn,
                vec![Change::Bucket {
                    name: bucket.clone(),
                    record: rec,
                }],
            )
        })
    }
}
