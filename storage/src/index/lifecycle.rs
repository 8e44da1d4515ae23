//! Lifecycle in the index: finding the keys a bucket's rules may make due (a read
//! transaction per page) and applying what is due to one key (a write transaction
//! that plans again from what it reads, so nothing is expired on a stale view).

use redb::{ReadableDatabase, ReadableTable, WriteTransaction};

use super::{BUCKET_CONFIGS, Index, LOCKS, OBJECTS, VERSIONS, configs, locks, versions};
use crate::error::{Error, Result};
use crate::lifecycle::{Clock, KeyState, Lifecycle, Plan, plan};
use crate::lock::LockRecord;
use crate::records::{BucketRecord, ObjectRecord};
use crate::version_entry::VersionEntry;
use crate::versions::version_key;

/// The kind under which a bucket's lifecycle configuration is kept.
pub(crate) const KIND: &str = "lifecycle";

/// What applying the rules to one key did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct KeyOutcome {
    /// Current versions expired (deleted, or hidden under a new delete marker).
    pub(crate) current_expired: u64,
    /// Delete markers added by expiring a current version.
    pub(crate) markers_added: u64,
    /// Noncurrent object versions removed for good.
    pub(crate) versions_removed: u64,
    /// Delete markers removed (noncurrent ones and expired object delete markers).
    pub(crate) markers_removed: u64,
    /// Logical bytes released (object versions that are gone for good).
    pub(crate) bytes_released: u64,
    /// Versions that were due but object lock protects.
    pub(crate) locked: u64,
}

/// Whether object lock protects version `seq` of bucket/key from deletion at `now_ms`
/// (a lock record that cannot be read protects: when in doubt, keep the data).
fn is_locked<T>(t: &T, at: (&str, &str), seq: u64, now_ms: u64) -> bool
where
    T: ReadableTable<(&'static str, &'static str, u64), &'static [u8]>,
{
    match locks::lock_of(t, at, seq) {
        Ok(l) => l.is_some_and(|l: LockRecord| l.protects(now_ms, false).is_some()),
        Err(_) => true,
    }
}

/// The entries of bucket/key in `versions`, newest first.
fn entries<T>(t: &T, (bucket, key): (&str, &str)) -> Result<Vec<VersionEntry>>
where
    T: ReadableTable<(&'static str, &'static str, u64), &'static [u8]>,
{
    let mut out = Vec::new();
    for r in t.range((bucket, key, 0u64)..=(bucket, key, u64::MAX))? {
        let (_, v) = r?;
        out.push(VersionEntry::decode(v.value())?);
    }
    Ok(out)
}

fn current<T>(t: &T, at: (&str, &str)) -> Result<Option<ObjectRecord>>
where
    T: ReadableTable<(&'static str, &'static str), &'static [u8]>,
{
    t.get(at)?
        .map(|v| ObjectRecord::decode(v.value()))
        .transpose()
}

/// The up to `max` smallest distinct keys of `bucket` after `after` among current
/// objects and other versions.
fn next_keys<O, V>(
    objects: &O,
    versions: &V,
    bucket: &str,
    after: Option<&str>,
    max: usize,
) -> Result<Vec<String>>
where
    O: ReadableTable<(&'static str, &'static str), &'static [u8]>,
    V: ReadableTable<(&'static str, &'static str, u64), &'static [u8]>,
{
    let from = after.unwrap_or("");
    let mut keys: Vec<String> = Vec::new();
    for r in objects.range((bucket, from)..)? {
        let (k, _) = r?;
        let (b, key) = k.value();
        if b != bucket || keys.len() >= max {
            break;
        }
        if Some(key) != after {
            keys.push(key.to_owned());
        }
    }
    let mut from_versions: Vec<String> = Vec::new();
    for r in versions.range((bucket, from, 0u64)..)? {
        let (k, _) = r?;
        let (b, key, _) = k.value();
        if b != bucket {
            break;
        }
        if Some(key) == after || from_versions.last().is_some_and(|l| l == key) {
            continue;
        }
        if from_versions.len() >= max {
            break;
        }
        from_versions.push(key.to_owned());
    }
    keys.extend(from_versions);
    keys.sort_unstable();
    keys.dedup();
    keys.truncate(max);
    Ok(keys)
}

/// Plans one key from one transaction's tables.
fn plan_key<O, V, L>(
    (objects, versions_t, locks_t): (&O, &V, &L),
    rules: &Lifecycle,
    bucket: &BucketRecord,
    at: (&str, &str),
    clock: Clock,
) -> Result<(Plan, Option<ObjectRecord>, Vec<VersionEntry>)>
where
    O: ReadableTable<(&'static str, &'static str), &'static [u8]>,
    V: ReadableTable<(&'static str, &'static str, u64), &'static [u8]>,
    L: ReadableTable<(&'static str, &'static str, u64), &'static [u8]>,
{
    let cur = current(objects, at)?;
    let others = entries(versions_t, at)?;
    let p = plan(
        rules,
        KeyState {
            key: at.1,
            versioning: bucket.versioning,
            current: cur.as_ref(),
            versions: &others,
        },
        clock,
        // Object lock is judged by real time, whatever clock the rules run on.
        &|seq| is_locked(locks_t, at, seq, super::now_ms()),
        // A record that does not decode has no tags to match: nothing is selected by
        // them (data is kept).
        &|seq| {
            locks::lock_of(locks_t, at, seq)
                .ok()
                .flatten()
                .map(|l| l.tags)
                .unwrap_or_default()
        },
    );
    Ok((p, cur, others))
}

/// Applies what is due to bucket/key now, planned from this transaction's view.
fn apply_key(txn: &WriteTransaction, at: (&str, &str), clock: Clock) -> Result<KeyOutcome> {
    let mut out = KeyOutcome::default();
    let Some(raw) = configs::get(&txn.open_table(BUCKET_CONFIGS)?, at.0, KIND)? else {
        return Ok(out); // the configuration was removed meanwhile
    };
    let rules = Lifecycle::decode(&raw)?;
    let bucket = versions::bucket_record(txn, at.0)?;
    let (p, cur, others) = {
        let (o, v, l) = (
            txn.open_table(OBJECTS)?,
            txn.open_table(VERSIONS)?,
            txn.open_table(LOCKS)?,
        );
        plan_key((&o, &v, &l), &rules, &bucket, at, clock)?
    };
    out.locked = p.locked;
    for seq in p.remove.iter().copied().chain(p.remove_marker) {
        match others.iter().find(|e| e.version().seq == seq) {
            Some(VersionEntry::Object(r)) => {
                out.versions_removed += 1;
                out.bytes_released += r.size;
            }
            Some(VersionEntry::Marker(_)) => out.markers_removed += 1,
            None => {}
        }
        versions::remove_entry(txn, at, version_key(seq), false)?;
    }
    if p.expire_current {
        let d = versions::delete_current(txn, at, &versions::DeleteOptions::default())?;
        out.current_expired += 1;
        out.markers_added += u64::from(d.marker.is_some());
        // The current version is gone for good unless it is kept as noncurrent; under
        // suspension an older `null` version goes too.
        if versions::kept_when_replaced(bucket.versioning, cur.as_ref()) {
            if bucket.versioning == crate::versions::Versioning::Suspended
                && let Some(VersionEntry::Object(r)) = others.iter().find(|e| e.version().null)
            {
                out.versions_removed += 1;
                out.bytes_released += r.size;
            }
        } else {
            out.bytes_released += cur.as_ref().map_or(0, |c| c.size);
        }
    }
    versions::promote_newest(txn, at)?;
    Ok(out)
}

impl Index {
    /// The up to `max` keys of `bucket` after `after` for which `rules` have something
    /// due at `clock` (or due but locked), from one read transaction; and the last key
    /// looked at (`None` when the bucket is done).
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`], [`Error::Index`].
    pub(crate) fn lifecycle_candidates(
        &self,
        bucket: &str,
        rules: &Lifecycle,
        after: Option<&str>,
        max: usize,
        clock: Clock,
    ) -> Result<(Vec<String>, Option<String>)> {
        let txn = self.db.begin_read()?;
        let rec = txn
            .open_table(super::BUCKETS)?
            .get(bucket)?
            .map(|v| BucketRecord::decode(v.value()))
            .transpose()?
            .ok_or_else(|| Error::NoSuchBucket(bucket.to_owned()))?;
        let (o, v, l) = (
            txn.open_table(OBJECTS)?,
            txn.open_table(VERSIONS)?,
            txn.open_table(LOCKS)?,
        );
        let keys = next_keys(&o, &v, bucket, after, max)?;
        let last = keys.last().cloned();
        let mut due = Vec::new();
        for key in keys {
            let (p, _, _) = plan_key((&o, &v, &l), rules, &rec, (bucket, &key), clock)?;
            if !p.is_empty() || p.locked > 0 {
                due.push(key);
            }
        }
        Ok((due, last))
    }

    /// Applies the bucket's lifecycle rules to bucket/key at `clock`, planned again
    /// inside the write (a version written or deleted since the scan is judged as it
    /// is now).
    ///
    /// # Errors
    /// [`Error::ObjectLocked`] if a removal the plan did not foresee is refused (the
    /// write then changes nothing); [`Error::Index`].
    pub(crate) fn apply_lifecycle(
        &self,
        bucket: &str,
        key: &str,
        clock: Clock,
    ) -> impl Future<Output = Result<KeyOutcome>> + use<> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.committer
            .submit(move |txn| apply_key(txn, (bucket.as_str(), key.as_str()), clock))
    }
}
