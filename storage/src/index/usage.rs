//! Exact usage per bucket and per tenant (`bucket_usage`, `tenant_usage`: name →
//! (logical bytes, object versions)), changed in the same transaction as the object
//! versions they count, and the quota check that decides (see [`crate::quota`]).
//!
//! The choke points: a version is installed (`objects::install_object`), a replaced
//! current version is released or kept (`versions::retire_current`), a noncurrent one
//! released (`versions::release`), an unversioned current one deleted
//! (`versions::delete_current`). Usage is derived data: rebuilds and upgrades recompute
//! it (`recompute`), fsck recounts it (`verify`), the journal does not carry it.

use std::collections::BTreeMap;

use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::{BUCKET_CONFIGS, BUCKETS, IDENTITIES, OBJECTS, VERSIONS};
use crate::error::{Error, Result};
use crate::quota::{QUOTA_KIND, Quota, QuotaState, Usage};
use crate::records::{BucketRecord, ObjectRecord};
use crate::version_entry::VersionEntry;

/// Usage per bucket (format 10).
pub(crate) const BUCKET_USAGE: TableDefinition<&str, (u64, u64)> =
    TableDefinition::new("bucket_usage");
/// Usage per tenant: the sum over the buckets it owns (the root's under "").
pub(crate) const TENANT_USAGE: TableDefinition<&str, (u64, u64)> =
    TableDefinition::new("tenant_usage");

fn bump(
    t: &mut redb::Table<'_, &'static str, (u64, u64)>,
    name: &str,
    bytes: i128,
    objects: i128,
) -> Result<Usage> {
    let (b, o) = t.get(name)?.map_or((0, 0), |v| v.value());
    let nb = u64::try_from(i128::from(b) + bytes);
    let no = u64::try_from(i128::from(o) + objects);
    let (Ok(nb), Ok(no)) = (nb, no) else {
        return Err(Error::corrupt(
            "usage",
            format!("{name}: ({b}, {o}) + ({bytes}, {objects}) is negative"),
        ));
    };
    if nb == 0 && no == 0 {
        t.remove(name)?;
    } else {
        t.insert(name, (nb, no))?;
    }
    Ok(Usage {
        bytes: nb,
        objects: no,
    })
}

fn owner_of(txn: &WriteTransaction, bucket: &str) -> Result<String> {
    let t = txn.open_table(BUCKETS)?;
    let rec = t
        .get(bucket)?
        .ok_or_else(|| Error::NoSuchBucket(bucket.to_owned()))?;
    Ok(BucketRecord::decode(rec.value())?.owner)
}

/// Adds `bytes` and `objects` (either may be negative) to `bucket` and its owner.
/// When either grows, the quotas of both are checked: over one, the transaction must
/// not commit ([`Error::QuotaExceeded`]).
pub(super) fn add(txn: &WriteTransaction, bucket: &str, bytes: i128, objects: i128) -> Result<()> {
    add_checked(txn, bucket, (bytes, objects), bytes > 0 || objects > 0)
}

/// [`add`], checking the quotas only when `check` (a write whose net change, with what
/// it released in the same transaction, does not grow usage is never refused).
pub(super) fn add_checked(
    txn: &WriteTransaction,
    bucket: &str,
    (bytes, objects): (i128, i128),
    check: bool,
) -> Result<()> {
    if bytes == 0 && objects == 0 {
        return Ok(());
    }
    let owner = owner_of(txn, bucket)?;
    let in_bucket = bump(&mut txn.open_table(BUCKET_USAGE)?, bucket, bytes, objects)?;
    let in_tenant = bump(&mut txn.open_table(TENANT_USAGE)?, &owner, bytes, objects)?;
    if check {
        if let Some(q) = bucket_quota(txn, bucket)?
            && let Some(why) = q.exceeded_by(in_bucket)
        {
            return Err(Error::QuotaExceeded(format!("bucket {bucket}: {why}")));
        }
        if let Some(q) = tenant_quota(txn, &owner)?
            && let Some(why) = q.exceeded_by(in_tenant)
        {
            return Err(Error::QuotaExceeded(format!("tenant {owner}: {why}")));
        }
    }
    Ok(())
}

fn bucket_quota(txn: &WriteTransaction, bucket: &str) -> Result<Option<Quota>> {
    let t = txn.open_table(BUCKET_CONFIGS)?;
    let raw = t.get((bucket, QUOTA_KIND))?;
    raw.map(|v| Quota::decode(v.value())).transpose()
}

fn tenant_quota(txn: &WriteTransaction, tenant: &str) -> Result<Option<Quota>> {
    let t = txn.open_table(IDENTITIES)?;
    let raw = t.get((QUOTA_KIND, tenant))?;
    raw.map(|v| Quota::decode(v.value())).transpose()
}

/// Usage recounted from the object tables: (per bucket, per tenant).
type Recount = (BTreeMap<String, Usage>, BTreeMap<String, Usage>);

fn recount<T: redb::ReadableTable<&'static str, &'static [u8]>>(
    buckets: &T,
    objects: impl Iterator<Item = (String, u64)>,
) -> Result<Recount> {
    let mut per_bucket: BTreeMap<String, Usage> = BTreeMap::new();
    for (bucket, size) in objects {
        let u = per_bucket.entry(bucket).or_default();
        u.bytes += size;
        u.objects += 1;
    }
    let mut per_tenant: BTreeMap<String, Usage> = BTreeMap::new();
    for (bucket, u) in &per_bucket {
        let owner = match buckets.get(bucket.as_str())? {
            Some(v) => BucketRecord::decode(v.value())?.owner,
            None => continue, // fsck reports objects without a bucket
        };
        let t = per_tenant.entry(owner).or_default();
        t.bytes += u.bytes;
        t.objects += u.objects;
    }
    Ok((per_bucket, per_tenant))
}

/// Every object version: (bucket, size). Damaged records count for nothing (fsck
/// reports them).
fn versions_of(
    objects: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    versions: &impl ReadableTable<(&'static str, &'static str, u64), &'static [u8]>,
) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for r in objects.iter()? {
        let (k, v) = r?;
        if let Ok(rec) = ObjectRecord::decode(v.value()) {
            out.push((k.value().0.to_owned(), rec.size));
        }
    }
    for r in versions.iter()? {
        let (k, v) = r?;
        if let Ok(VersionEntry::Object(rec)) = VersionEntry::decode(v.value()) {
            out.push((k.value().0.to_owned(), rec.size));
        }
    }
    Ok(out)
}

/// Recomputes both tables from the object tables (rebuild, upgrade to format 10).
pub(super) fn recompute(txn: &WriteTransaction) -> Result<()> {
    let all = versions_of(&txn.open_table(OBJECTS)?, &txn.open_table(VERSIONS)?)?;
    let (per_bucket, per_tenant) = recount(&txn.open_table(BUCKETS)?, all.into_iter())?;
    for (table, rows) in [(BUCKET_USAGE, per_bucket), (TENANT_USAGE, per_tenant)] {
        txn.delete_table(table)?;
        let mut t = txn.open_table(table)?;
        for (name, u) in rows {
            t.insert(name.as_str(), (u.bytes, u.objects))?;
        }
    }
    Ok(())
}

/// What fsck finds: the recorded usage rows that differ from a recount, as problems.
pub(super) fn verify(txn: &redb::ReadTransaction) -> Result<Vec<String>> {
    let all = versions_of(&txn.open_table(OBJECTS)?, &txn.open_table(VERSIONS)?)?;
    let (per_bucket, per_tenant) = recount(&txn.open_table(BUCKETS)?, all.into_iter())?;
    let mut problems = Vec::new();
    for (what, table, want) in [
        ("bucket", BUCKET_USAGE, per_bucket),
        ("tenant", TENANT_USAGE, per_tenant),
    ] {
        let mut recorded: BTreeMap<String, Usage> = BTreeMap::new();
        // A table missing (an index never written by format 10) reads as empty.
        if let Ok(t) = txn.open_table(table) {
            for r in t.iter()? {
                let (k, v) = r?;
                let (bytes, objects) = v.value();
                recorded.insert(k.value().to_owned(), Usage { bytes, objects });
            }
        }
        if recorded != want {
            problems.push(format!(
                "{what} usage recorded {recorded:?}, recounted {want:?}"
            ));
        }
    }
    Ok(problems)
}

/// Usage of a bucket and of a tenant, as recorded.
pub(super) fn read(
    txn: &redb::ReadTransaction,
    table: TableDefinition<&str, (u64, u64)>,
    name: &str,
) -> Result<Usage> {
    let t = match txn.open_table(table) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Usage::default()),
        Err(e) => return Err(e.into()),
    };
    Ok(t.get(name)?.map_or(Usage::default(), |v| {
        let (bytes, objects) = v.value();
        Usage { bytes, objects }
    }))
}

impl super::Index {
    /// The usage and quotas that govern writes into `bucket`.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`], [`Error::Corrupt`].
    pub(crate) fn quota_state(&self, bucket: &str) -> Result<(QuotaState, BucketRecord)> {
        let txn = self.db.begin_read()?;
        let rec = txn
            .open_table(BUCKETS)?
            .get(bucket)?
            .map(|v| BucketRecord::decode(v.value()))
            .transpose()?
            .ok_or_else(|| Error::NoSuchBucket(bucket.to_owned()))?;
        let quota = |table: TableDefinition<(&str, &str), &[u8]>,
                     k: (&str, &str)|
         -> Result<Option<Quota>> {
            let t = txn.open_table(table)?;
            let raw = t.get(k)?;
            raw.map(|v| Quota::decode(v.value())).transpose()
        };
        let state = QuotaState {
            bucket: read(&txn, BUCKET_USAGE, bucket)?,
            bucket_quota: quota(BUCKET_CONFIGS, (bucket, QUOTA_KIND))?,
            tenant_usage: read(&txn, TENANT_USAGE, &rec.owner)?,
            tenant_quota: quota(IDENTITIES, (QUOTA_KIND, &rec.owner))?,
            tenant: rec.owner.clone(),
        };
        Ok((state, rec))
    }

    /// Size of the current object at bucket/key, and whether it is the `null` version,
    /// if there is one.
    ///
    /// # Errors
    /// [`Error::Corrupt`].
    pub(crate) fn current_size(&self, bucket: &str, key: &str) -> Result<Option<(u64, bool)>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(OBJECTS)?;
        let raw = t.get((bucket, key))?;
        raw.map(|v| ObjectRecord::decode(v.value()).map(|r| (r.size, r.version.null)))
            .transpose()
    }

    /// Usage of tenant `name` (its buckets together).
    ///
    /// # Errors
    /// [`Error::Corrupt`].
    pub(crate) fn tenant_usage(&self, name: &str) -> Result<Usage> {
        read(&self.db.begin_read()?, TENANT_USAGE, name)
    }
}
