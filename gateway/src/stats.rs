//! `s3dedup stats`: what is stored and what dedup saves, overall and per bucket.

use serde::{Deserialize, Serialize};

use s3dedup_storage::{Store, VersionEntry, VersionItem};

/// Usage of one bucket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BucketUsage {
    /// Bucket name.
    pub name: String,
    /// Current objects in it.
    pub objects: u64,
    /// Sum of the sizes of every object version in it (current and noncurrent).
    pub logical_bytes: u64,
    /// Noncurrent object versions (versioned buckets).
    pub noncurrent_versions: u64,
    /// Their sizes (part of `logical_bytes`): what deleting old versions could free at
    /// most.
    pub noncurrent_bytes: u64,
    /// Delete markers.
    pub delete_markers: u64,
    /// Its quota, if it has one.
    #[serde(default)]
    pub quota: Option<QuotaLimits>,
}

/// A quota's limits (`None` = unlimited); usage counts logical bytes and object
/// versions (see `s3dedup_storage::quota`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct QuotaLimits {
    /// Most logical bytes.
    pub max_bytes: Option<u64>,
    /// Most object versions.
    pub max_objects: Option<u64>,
}

impl From<s3dedup_storage::quota::Quota> for QuotaLimits {
    fn from(q: s3dedup_storage::quota::Quota) -> Self {
        QuotaLimits {
            max_bytes: q.max_bytes,
            max_objects: q.max_objects,
        }
    }
}

/// What a tenant holds, over all its buckets.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TenantUsage {
    /// Tenant name.
    pub name: String,
    /// Object versions in its buckets.
    pub objects: u64,
    /// Their logical bytes.
    pub logical_bytes: u64,
    /// Its quota, if it has one.
    pub quota: Option<QuotaLimits>,
}

fn limits(q: Option<QuotaLimits>) -> String {
    q.map_or_else(
        || "-".into(),
        |q| {
            format!(
                "{} / {}",
                q.max_bytes.map_or("-".into(), human),
                q.max_objects.map_or("-".into(), |n| format!("{n} obj"))
            )
        },
    )
}

/// The whole report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StatsReport {
    /// Current objects.
    pub objects: u64,
    /// Sum of object version sizes (current and noncurrent): what clients stored.
    pub logical_bytes: u64,
    /// Noncurrent object versions.
    pub noncurrent_versions: u64,
    /// Their sizes (part of `logical_bytes`).
    pub noncurrent_bytes: u64,
    /// Delete markers.
    pub delete_markers: u64,
    /// Sum of the sizes of the distinct chunks they reference.
    pub unique_bytes: u64,
    /// Distinct chunks referenced.
    pub chunks: u64,
    /// Bytes held in the backing store.
    pub stored_bytes: u64,
    /// Of those, bytes no live object needs (GC and compaction reclaim them).
    pub garbage_bytes: u64,
    /// `logical_bytes − stored_bytes` (0 if storing costs more than it saves).
    pub saved_bytes: u64,
    /// `logical_bytes / stored_bytes` (1 when nothing is stored), to two decimals.
    pub dedup_ratio: f64,
    /// Raw bytes of the referenced chunks over the bytes they are stored in (what
    /// compression saves on top of dedup), to two decimals.
    pub compression_ratio: f64,
    /// Per bucket, by name.
    pub buckets: Vec<BucketUsage>,
    /// Per tenant, by name (the root's buckets are in no tenant).
    #[serde(default)]
    pub tenants: Vec<TenantUsage>,
}

/// Reads the counters and walks every bucket's listing.
///
/// # Errors
/// The store's error.
pub async fn collect(store: &Store) -> s3dedup_storage::Result<StatsReport> {
    let s = store.stats().await?;
    let mut buckets = Vec::new();
    for (name, _) in store.buckets().await? {
        let mut usage = BucketUsage {
            name: name.clone(),
            objects: 0,
            logical_bytes: 0,
            noncurrent_versions: 0,
            noncurrent_bytes: 0,
            delete_markers: 0,
            quota: store.quota_state(&name).await?.bucket_quota.map(Into::into),
        };
        let (mut km, mut vm): (Option<String>, Option<String>) = (None, None);
        loop {
            let page = store
                .list_versions(&name, "", None, (km.as_deref(), vm.as_deref()), 1000)
                .await?;
            for item in &page.items {
                match item {
                    VersionItem::Version {
                        entry: VersionEntry::Object(r),
                        latest,
                        ..
                    } => {
                        usage.logical_bytes += r.size;
                        if *latest {
                            usage.objects += 1;
                        } else {
                            usage.noncurrent_versions += 1;
                            usage.noncurrent_bytes += r.size;
                        }
                    }
                    VersionItem::Version {
                        entry: VersionEntry::Marker(_),
                        ..
                    } => usage.delete_markers += 1,
                    VersionItem::Prefix(_) => {}
                }
            }
            if !page.is_truncated {
                break;
            }
            (km, vm) = (page.next_key_marker, page.next_version_marker);
        }
        buckets.push(usage);
    }
    buckets.sort_by(|a, b| a.name.cmp(&b.name));
    let mut tenants = Vec::new();
    for t in store.tenants().await? {
        let (quota, usage) = store.tenant_quota(&t.name).await?;
        tenants.push(TenantUsage {
            name: t.name,
            objects: usage.objects,
            logical_bytes: usage.bytes,
            quota: quota.map(Into::into),
        });
    }
    tenants.sort_by(|a, b| a.name.cmp(&b.name));
    #[allow(clippy::cast_precision_loss)]
    // As the metric: 1 when nothing is stored.
    let ratio = if s.stored_bytes == 0 {
        1.0
    } else {
        s.logical_bytes as f64 / s.stored_bytes as f64
    };
    #[allow(clippy::cast_precision_loss)]
    let compression = if s.live_stored_bytes == 0 {
        1.0
    } else {
        s.unique_bytes as f64 / s.live_stored_bytes as f64
    };
    Ok(StatsReport {
        objects: s.objects,
        logical_bytes: s.logical_bytes,
        noncurrent_versions: s.noncurrent_versions,
        noncurrent_bytes: s.noncurrent_bytes,
        delete_markers: s.delete_markers,
        unique_bytes: s.unique_bytes,
        chunks: s.chunks,
        stored_bytes: s.stored_bytes,
        garbage_bytes: s.garbage_bytes(),
        saved_bytes: s.logical_bytes.saturating_sub(s.stored_bytes),
        dedup_ratio: (ratio * 100.0).round() / 100.0,
        compression_ratio: (compression * 100.0).round() / 100.0,
        buckets,
        tenants,
    })
}

fn human(n: u64) -> String {
    bytesize::ByteSize(n).display().iec().to_string()
}

impl StatsReport {
    /// One JSON object (byte counts in bytes).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// A table for people.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let row = |out: &mut String, k: &str, v: String| {
            let _ = writeln!(out, "{k:<10} {v:>14}");
        };
        row(&mut out, "objects", self.objects.to_string());
        row(&mut out, "logical", human(self.logical_bytes));
        row(&mut out, "unique", human(self.unique_bytes));
        row(&mut out, "stored", human(self.stored_bytes));
        row(&mut out, "garbage", human(self.garbage_bytes));
        row(&mut out, "saved", human(self.saved_bytes));
        row(&mut out, "ratio", format!("{:.2}x", self.dedup_ratio));
        row(
            &mut out,
            "compressed",
            format!("{:.2}x", self.compression_ratio),
        );
        let _ = writeln!(out);
        let width = self
            .buckets
            .iter()
            .map(|b| b.name.len())
            .max()
            .unwrap_or(0)
            .max("bucket".len());
        let _ = writeln!(
            out,
            "{:<width$} {:>10} {:>14} {:>11} {:>14}  quota",
            "bucket", "objects", "logical", "noncurrent", "noncurrent b"
        );
        for b in &self.buckets {
            let _ = writeln!(
                out,
                "{:<width$} {:>10} {:>14} {:>11} {:>14}  {}",
                b.name,
                b.objects,
                human(b.logical_bytes),
                b.noncurrent_versions,
                human(b.noncurrent_bytes),
                limits(b.quota)
            );
        }
        if !self.tenants.is_empty() {
            let width = self
                .tenants
                .iter()
                .map(|t| t.name.len())
                .max()
                .unwrap_or(0)
                .max(6);
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "{:<width$} {:>10} {:>14}  quota",
                "tenant", "versions", "logical"
            );
            for t in &self.tenants {
                let _ = writeln!(
                    out,
                    "{:<width$} {:>10} {:>14}  {}",
                    t.name,
                    t.objects,
                    human(t.logical_bytes),
                    limits(t.quota)
                );
            }
        }
        out
    }
}
