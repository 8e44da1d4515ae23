//! `s3dedup stats`: what is stored and what dedup saves, overall and per bucket.

use serde::{Deserialize, Serialize};

use s3dedup_storage::{ListEntry, Store};

/// Usage of one bucket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BucketUsage {
    /// Bucket name.
    pub name: String,
    /// Objects in it.
    pub objects: u64,
    /// Sum of their sizes.
    pub logical_bytes: u64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StatsReport {
    /// Committed objects.
    pub objects: u64,
    /// Sum of object sizes: what clients stored.
    pub logical_bytes: u64,
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
        };
        let mut after: Option<String> = None;
        loop {
            let page = store
                .list_objects(&name, "", None, after.as_deref(), 1000)
                .await?;
            for e in &page.entries {
                if let ListEntry::Object { record, .. } = e {
                    usage.objects += 1;
                    usage.logical_bytes += record.size;
                }
            }
            match (page.is_truncated, page.entries.last()) {
                (true, Some(last)) => after = Some(last.marker().to_owned()),
                _ => break,
            }
        }
        buckets.push(usage);
    }
    buckets.sort_by(|a, b| a.name.cmp(&b.name));
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
        unique_bytes: s.unique_bytes,
        chunks: s.chunks,
        stored_bytes: s.stored_bytes,
        garbage_bytes: s.garbage_bytes(),
        saved_bytes: s.logical_bytes.saturating_sub(s.stored_bytes),
        dedup_ratio: (ratio * 100.0).round() / 100.0,
        compression_ratio: (compression * 100.0).round() / 100.0,
        buckets,
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
            "{:<width$} {:>10} {:>14}",
            "bucket", "objects", "logical"
        );
        for b in &self.buckets {
            let _ = writeln!(
                out,
                "{:<width$} {:>10} {:>14}",
                b.name,
                b.objects,
                human(b.logical_bytes)
            );
        }
        out
    }
}
