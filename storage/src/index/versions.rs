//! Versions: where a key's versions live and how writes and deletes move them.
//!
//! A key's current object (its newest version, unless that is a delete marker) is in
//! `objects`, exactly as in an unversioned bucket, so reads and listings of current
//! objects cost what they always did. Every other version (noncurrent object versions,
//! every delete marker) is in `versions` under `(bucket, key, u64::MAX - seq)`: newest
//! first within a key. Invariant: a key's entry in `objects` is newer than all of its
//! entries in `versions`.
//!
//! Each version holds its own manifest and chunk references; moving a version between
//! the two tables moves no references. Every move is journaled as the operation
//! (`Demote`, `Promote`, `Marker`, `VersionGone`) so a replay repeats it.

use redb::{ReadableTable, WriteTransaction};

use super::usage;
use super::{
    BUCKETS, OBJECTS, STATS, VERSIONS, add_stat, drop_manifest, journal, locks, now_ms, stat,
};
use crate::error::{Error, Result};
use crate::journal::entry::Change;
use crate::records::{BucketRecord, ObjectRecord};
use crate::version_entry::{DeleteMarker, VersionEntry};
use crate::versions::{Version, VersionSel, Versioning, version_key};

/// Counter of the last version sequence number handed out (in `stats`).
pub(crate) const LAST_VERSION_SEQ: &str = "last_version_seq";

/// The bucket's record, or [`Error::NoSuchBucket`].
pub(super) fn bucket_record(txn: &WriteTransaction, bucket: &str) -> Result<BucketRecord> {
    txn.open_table(BUCKETS)?
        .get(bucket)?
        .map(|v| BucketRecord::decode(v.value()))
        .transpose()?
        .ok_or_else(|| Error::NoSuchBucket(bucket.to_owned()))
}

/// A new version for a write under `state`: sequence numbers increase with creation
/// (milliseconds in the high bits, so they also increase across a rebuild that lost the
/// counter), and the version is `null` unless versioning is enabled.
pub(super) fn new_version(txn: &WriteTransaction, state: Versioning) -> Result<Version> {
    let mut t = txn.open_table(STATS)?;
    let last = t.get(LAST_VERSION_SEQ)?.map_or(0, |v| v.value());
    let seq = (last + 1).max(now_ms() << 16);
    t.insert(LAST_VERSION_SEQ, seq)?;
    Ok(Version {
        seq,
        null: state != Versioning::Enabled,
    })
}

type VersionsTable<'t> = redb::Table<'t, (&'static str, &'static str, u64), &'static [u8]>;

/// The entries of bucket/key in `versions`, newest first.
fn entries_of(t: &VersionsTable<'_>, bucket: &str, key: &str) -> Result<Vec<(u64, VersionEntry)>> {
    let mut out = Vec::new();
    for r in t.range((bucket, key, 0u64)..=(bucket, key, u64::MAX))? {
        let (k, v) = r?;
        out.push((k.value().2, VersionEntry::decode(v.value())?));
    }
    Ok(out)
}

fn journal1(txn: &WriteTransaction, c: Change) -> Result<()> {
    journal::append(txn, vec![c])
}

/// Moves `old`, the current object being replaced or deleted, to where `state` says:
/// released (unversioned bucket; the `null` version under suspension) or kept as a
/// noncurrent version. The caller has removed or is overwriting its `objects` entry.
pub(super) fn retire_current(
    txn: &WriteTransaction,
    (bucket, key): (&str, &str),
    old: ObjectRecord,
    state: Versioning,
) -> Result<()> {
    add_stat(txn, stat::OBJECTS, -1)?;
    if !kept_when_replaced(state, Some(&old)) {
        locks::check_deletable(txn, (bucket, key), old.version, false)?;
        locks::set_lock(txn, (bucket, key), old.version.seq, Default::default())?;
        drop_manifest(txn, old.manifest)?;
        usage::add(txn, bucket, -i128::from(old.size), -1)?;
        return add_stat(txn, stat::LOGICAL_BYTES, -i128::from(old.size));
    }
    add_stat(txn, stat::NONCURRENT_VERSIONS, 1)?;
    add_stat(txn, stat::NONCURRENT_BYTES, i128::from(old.size))?;
    let k = version_key(old.version.seq);
    txn.open_table(VERSIONS)?.insert(
        (bucket, key, k),
        VersionEntry::Object(old).encode().as_slice(),
    )?;
    journal1(
        txn,
        Change::Demote {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        },
    )
}

/// Whether `old`, a key's current object, stays as a noncurrent version when a write
/// or delete under `state` replaces it (otherwise it is released).
pub(super) fn kept_when_replaced(state: Versioning, old: Option<&ObjectRecord>) -> bool {
    match state {
        Versioning::Unversioned => false,
        Versioning::Enabled => true,
        Versioning::Suspended => old.is_some_and(|o| !o.version.null),
    }
}

/// Releases a version of `bucket` taken out of `versions`.
fn release(txn: &WriteTransaction, bucket: &str, e: &VersionEntry) -> Result<()> {
    match e {
        VersionEntry::Object(r) => {
            drop_manifest(txn, r.manifest)?;
            usage::add(txn, bucket, -i128::from(r.size), -1)?;
            add_stat(txn, stat::LOGICAL_BYTES, -i128::from(r.size))?;
            add_stat(txn, stat::NONCURRENT_VERSIONS, -1)?;
            add_stat(txn, stat::NONCURRENT_BYTES, -i128::from(r.size))
        }
        VersionEntry::Marker(_) => add_stat(txn, stat::DELETE_MARKERS, -1),
    }
}

/// Removes entry `k` of bucket/key from `versions` and releases it, unless object lock
/// protects it.
pub(super) fn remove_entry(
    txn: &WriteTransaction,
    (bucket, key): (&str, &str),
    k: u64,
    bypass: bool,
) -> Result<()> {
    let e = txn
        .open_table(VERSIONS)?
        .get((bucket, key, k))?
        .map(|v| VersionEntry::decode(v.value()))
        .transpose()?;
    if let Some(e) = &e {
        locks::check_deletable(txn, (bucket, key), e.version(), bypass)?;
        locks::set_lock(txn, (bucket, key), e.version().seq, Default::default())?;
        txn.open_table(VERSIONS)?.remove((bucket, key, k))?;
    }
    if let Some(e) = e {
        release(txn, bucket, &e)?;
        journal1(
            txn,
            Change::VersionGone {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                seq: e.version().seq,
            },
        )?;
    }
    Ok(())
}

/// Removes the `null` version of bucket/key from `versions`, if it is there (a write
/// or delete under suspension replaces it).
pub(super) fn remove_null(txn: &WriteTransaction, at: (&str, &str)) -> Result<()> {
    let found = {
        let t = txn.open_table(VERSIONS)?;
        entries_of(&t, at.0, at.1)?
            .into_iter()
            .find(|(_, e)| e.version().null)
    };
    match found {
        Some((k, _)) => remove_entry(txn, at, k, false),
        None => Ok(()),
    }
}

/// Adds a delete marker for bucket/key (the newest version).
pub(super) fn add_marker(
    txn: &WriteTransaction,
    (bucket, key): (&str, &str),
    version: Version,
) -> Result<DeleteMarker> {
    let m = DeleteMarker {
        version,
        mtime_ms: now_ms(),
    };
    txn.open_table(VERSIONS)?.insert(
        (bucket, key, version_key(version.seq)),
        VersionEntry::Marker(m).encode().as_slice(),
    )?;
    add_stat(txn, stat::DELETE_MARKERS, 1)?;
    journal1(
        txn,
        Change::Marker {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            marker: m,
        },
    )?;
    Ok(m)
}

/// When bucket/key has no current object and its newest version is an object version,
/// makes that version current again (a delete of the current version or of the newest
/// delete marker uncovers it).
pub(super) fn promote_newest(txn: &WriteTransaction, (bucket, key): (&str, &str)) -> Result<()> {
    if txn.open_table(OBJECTS)?.get((bucket, key))?.is_some() {
        return Ok(());
    }
    let newest = {
        let t = txn.open_table(VERSIONS)?;
        let first = t
            .range((bucket, key, 0u64)..=(bucket, key, u64::MAX))?
            .next()
            .transpose()?;
        first
            .map(|(k, v)| VersionEntry::decode(v.value()).map(|e| (k.value().2, e)))
            .transpose()?
    };
    let Some((k, VersionEntry::Object(rec))) = newest else {
        return Ok(());
    };
    txn.open_table(VERSIONS)?.remove((bucket, key, k))?;
    add_stat(txn, stat::NONCURRENT_VERSIONS, -1)?;
    add_stat(txn, stat::NONCURRENT_BYTES, -i128::from(rec.size))?;
    add_stat(txn, stat::OBJECTS, 1)?;
    let seq = rec.version.seq;
    txn.open_table(OBJECTS)?
        .insert((bucket, key), rec.encode().as_slice())?;
    journal1(
        txn,
        Change::Promote {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            seq,
        },
    )
}

/// What a delete did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deleted {
    /// The object version that stopped being current (deleted or kept as noncurrent).
    pub object: Option<ObjectRecord>,
    /// The delete marker created (versioned and suspended buckets) or, for a delete of
    /// a version id, the marker removed.
    pub marker: Option<Version>,
    /// The version id removed by a delete that named one.
    pub version: Option<Version>,
}

/// How a delete is asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// `x-amz-bypass-governance-retention`: GOVERNANCE retention does not protect.
    pub bypass_governance: bool,
    /// `If-Match`: the version deleted (the current object without a version id) must
    /// have this ETag (or exist, for `*`), checked in the deleting transaction.
    pub if_match: Option<String>,
}

/// Checks `If-Match` against the version a delete targets.
fn check_if_match(
    if_match: Option<&str>,
    target: Option<&ObjectRecord>,
    (bucket, key): (&str, &str),
) -> Result<()> {
    let Some(want) = if_match else {
        return Ok(());
    };
    match target {
        None => Err(Error::NoSuchKey {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        }),
        Some(r) if r.etag.matches(want) => Ok(()),
        Some(_) => Err(Error::PreconditionFailed),
    }
}

/// Deletes bucket/key without a version id: in an unversioned bucket the object goes;
/// otherwise a delete marker becomes the newest version.
pub(super) fn delete_current(
    txn: &WriteTransaction,
    at: (&str, &str),
    opts: &DeleteOptions,
) -> Result<Deleted> {
    let state = bucket_record(txn, at.0)?.versioning;
    let current = txn
        .open_table(OBJECTS)?
        .get(at)?
        .map(|v| ObjectRecord::decode(v.value()))
        .transpose()?;
    check_if_match(opts.if_match.as_deref(), current.as_ref(), at)?;
    let old = txn
        .open_table(OBJECTS)?
        .remove(at)?
        .map(|v| ObjectRecord::decode(v.value()))
        .transpose()?;
    if let Some(old) = &old {
        // Demote is journaled by `retire_current`; a released version needs its own.
        if !kept_when_replaced(state, Some(old)) {
            journal1(
                txn,
                Change::ObjectGone {
                    bucket: at.0.to_owned(),
                    key: at.1.to_owned(),
                },
            )?;
        }
        retire_current(txn, at, old.clone(), state)?;
    }
    if state == Versioning::Unversioned {
        return Ok(Deleted {
            object: old,
            ..Default::default()
        });
    }
    if state == Versioning::Suspended {
        remove_null(txn, at)?;
    }
    let v = new_version(txn, state)?;
    let m = add_marker(txn, at, v)?;
    Ok(Deleted {
        object: old,
        marker: Some(m.version),
        version: None,
    })
}

/// Deletes one version of bucket/key for good (S3 DeleteObject with `versionId`).
/// A version that does not exist is not an error (S3 answers 204).
pub(super) fn delete_version(
    txn: &WriteTransaction,
    at: (&str, &str),
    sel: VersionSel,
    opts: &DeleteOptions,
) -> Result<Deleted> {
    bucket_record(txn, at.0)?;
    let bypass = opts.bypass_governance;
    let current = txn
        .open_table(OBJECTS)?
        .get(at)?
        .map(|v| ObjectRecord::decode(v.value()))
        .transpose()?;
    if let Some(cur) = current.filter(|c| c.version.is(sel)) {
        check_if_match(opts.if_match.as_deref(), Some(&cur), at)?;
        locks::check_deletable(txn, at, cur.version, bypass)?;
        locks::set_lock(txn, at, cur.version.seq, Default::default())?;
        txn.open_table(OBJECTS)?.remove(at)?;
        journal1(
            txn,
            Change::ObjectGone {
                bucket: at.0.to_owned(),
                key: at.1.to_owned(),
            },
        )?;
        drop_manifest(txn, cur.manifest)?;
        usage::add(txn, at.0, -i128::from(cur.size), -1)?;
        add_stat(txn, stat::OBJECTS, -1)?;
        add_stat(txn, stat::LOGICAL_BYTES, -i128::from(cur.size))?;
        promote_newest(txn, at)?;
        return Ok(Deleted {
            version: Some(cur.version),
            object: Some(cur),
            marker: None,
        });
    }
    let found = {
        let t = txn.open_table(VERSIONS)?;
        find_in(&t, at.0, at.1, sel)?
    };
    let target = match &found {
        Some((_, VersionEntry::Object(r))) => Some(r),
        _ => None,
    };
    if opts.if_match.is_some() && found.is_some() && target.is_none() {
        // A delete marker has no ETag to match.
        return Err(Error::PreconditionFailed);
    }
    check_if_match(opts.if_match.as_deref(), target, at)?;
    let Some((k, e)) = found else {
        return Ok(Deleted::default());
    };
    remove_entry(txn, at, k, bypass)?;
    promote_newest(txn, at)?;
    Ok(match e {
        VersionEntry::Object(r) => Deleted {
            version: Some(r.version),
            object: Some(r),
            marker: None,
        },
        VersionEntry::Marker(m) => Deleted {
            version: Some(m.version),
            object: None,
            marker: Some(m.version),
        },
    })
}

/// Finds version `sel` of bucket/key in a `versions` table.
pub(super) fn find_in<T>(
    t: &T,
    bucket: &str,
    key: &str,
    sel: VersionSel,
) -> Result<Option<(u64, VersionEntry)>>
where
    T: ReadableTable<(&'static str, &'static str, u64), &'static [u8]>,
{
    match sel {
        VersionSel::Seq(seq) => {
            let k = version_key(seq);
            let Some(v) = t.get((bucket, key, k))? else {
                return Ok(None);
            };
            let e = VersionEntry::decode(v.value())?;
            Ok(e.version().is(sel).then_some((k, e)))
        }
        VersionSel::Null => {
            for r in t.range((bucket, key, 0u64)..=(bucket, key, u64::MAX))? {
                let (k, v) = r?;
                let e = VersionEntry::decode(v.value())?;
                if e.version().null {
                    return Ok(Some((k.value().2, e)));
                }
            }
            Ok(None)
        }
    }
}

/// The newest entry of bucket/key in a `versions` table.
pub(super) fn newest_in<T>(t: &T, bucket: &str, key: &str) -> Result<Option<VersionEntry>>
where
    T: ReadableTable<(&'static str, &'static str, u64), &'static [u8]>,
{
    t.range((bucket, key, 0u64)..=(bucket, key, u64::MAX))?
        .next()
        .transpose()?
        .map(|(_, v)| VersionEntry::decode(v.value()))
        .transpose()
}

/// Version `sel` of bucket/key (its current object when `None`), from the two tables of
/// one read or write transaction: the one place that decides which record a version id
/// names and what a delete marker or a missing version answers.
///
/// # Errors
/// [`Error::NoSuchKey`], [`Error::NoSuchVersion`], [`Error::DeleteMarker`].
pub(super) fn lookup<O, V>(
    objects: &O,
    versions: &V,
    (bucket, key): (&str, &str),
    sel: Option<VersionSel>,
) -> Result<ObjectRecord>
where
    O: ReadableTable<(&'static str, &'static str), &'static [u8]>,
    V: ReadableTable<(&'static str, &'static str, u64), &'static [u8]>,
{
    let current = objects
        .get((bucket, key))?
        .map(|v| ObjectRecord::decode(v.value()))
        .transpose()?;
    let marker = |m: DeleteMarker, by_id: bool| Error::DeleteMarker {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        version: m.version.id(),
        mtime_ms: m.mtime_ms,
        by_id,
    };
    match sel {
        None => match current {
            Some(rec) => Ok(rec),
            None => match newest_in(versions, bucket, key)? {
                Some(VersionEntry::Marker(m)) => Err(marker(m, false)),
                _ => Err(Error::NoSuchKey {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                }),
            },
        },
        Some(sel) => {
            if let Some(rec) = current.filter(|c| c.version.is(sel)) {
                return Ok(rec);
            }
            match find_in(versions, bucket, key, sel)? {
                Some((_, VersionEntry::Object(rec))) => Ok(rec),
                Some((_, VersionEntry::Marker(m))) => Err(marker(m, true)),
                None => Err(Error::NoSuchVersion {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                    version: sel.id(),
                }),
            }
        }
    }
}

/// The source of a copy: version `sel` of bucket/key, or its current object.
pub(super) fn source_version(
    txn: &WriteTransaction,
    at: (&str, &str),
    sel: Option<VersionSel>,
) -> Result<ObjectRecord> {
    bucket_record(txn, at.0)?;
    match lookup(&txn.open_table(OBJECTS)?, &txn.open_table(VERSIONS)?, at, sel) {
        // S3 answers a copy from a delete marker named by its id with 400.
        Err(Error::DeleteMarker { by_id: true, .. }) => Err(Error::InvalidArgument(
            "The source of a copy request may not specifically refer to a delete marker by version id"
                .into(),
        )),
        r => r,
    }
}

/// Sets a bucket's versioning state (journaled as the bucket's new record).
pub(super) fn set_versioning(
    txn: &WriteTransaction,
    bucket: &str,
    state: Versioning,
) -> Result<()> {
    let mut rec = bucket_record(txn, bucket)?;
    if state == Versioning::Suspended && rec.lock.enabled {
        return Err(Error::InvalidBucketState(
            "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed"
                .into(),
        ));
    }
    if state == Versioning::Unversioned && rec.versioning != Versioning::Unversioned {
        return Err(Error::InvalidArgument(
            "versioning cannot be turned off once enabled; suspend it".into(),
        ));
    }
    rec.versioning = state;
    txn.open_table(BUCKETS)?
        .insert(bucket, rec.encode().as_slice())?;
    journal1(
        txn,
        Change::Bucket {
            name: bucket.to_owned(),
            record: rec,
        },
    )
}

/// Whether the bucket holds any version or delete marker in `versions`.
pub(super) fn bucket_has_versions(txn: &WriteTransaction, bucket: &str) -> Result<bool> {
    Ok(txn
        .open_table(VERSIONS)?
        .range((bucket, "", 0u64)..)?
        .next()
        .transpose()?
        .is_some_and(|(k, _)| k.value().0 == bucket))
}
