//! [`Store`] lifecycle: a bucket's configuration (Put/Get/DeleteBucketLifecycle) and
//! the run that applies every bucket's rules (the background worker and
//! `s3dedup admin lifecycle`).
//!
//! A run pages through each configured bucket's keys in read transactions, keeps the
//! keys with something due, and applies each in its own write (group-committed), which
//! plans the key again from what it reads: a PUT or DELETE that raced the scan is
//! judged as it is now. Locked versions are never removed; they are counted.

use super::Store;
use crate::error::{Error, Result};
use crate::index::{KeyOutcome, LIFECYCLE_KIND};
use crate::lifecycle::{Clock, Lifecycle};

/// Keys looked at per read transaction.
const PAGE: usize = 512;
/// Uploads looked at per read.
const UPLOAD_PAGE: usize = 1000;

/// What a lifecycle run did (so far, while it runs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LifecycleReport {
    /// Buckets with a lifecycle configuration.
    pub buckets: u64,
    /// Keys with something due (applied or locked).
    pub keys_due: u64,
    /// Current versions expired (deleted, or hidden under a new delete marker).
    pub current_expired: u64,
    /// Delete markers added by expiring a current version.
    pub markers_added: u64,
    /// Noncurrent object versions removed for good.
    pub versions_removed: u64,
    /// Delete markers removed.
    pub markers_removed: u64,
    /// Logical bytes released (GC frees what no other version shares).
    pub bytes_released: u64,
    /// Versions that were due but object lock protects (kept).
    pub locked: u64,
    /// Incomplete multipart uploads aborted.
    pub uploads_aborted: u64,
}

impl LifecycleReport {
    fn add(&mut self, o: &KeyOutcome) {
        self.current_expired += o.current_expired;
        self.markers_added += o.markers_added;
        self.versions_removed += o.versions_removed;
        self.markers_removed += o.markers_removed;
        self.bytes_released += o.bytes_released;
        self.locked += o.locked;
    }
}

impl Store {
    /// Sets a bucket's lifecycle configuration (validated by the caller), replacing
    /// any.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`].
    pub async fn put_lifecycle(&self, bucket: &str, config: &Lifecycle) -> Result<()> {
        self.index
            .set_bucket_config(bucket, LIFECYCLE_KIND, Some(config.encode()))
            .await
    }

    /// A bucket's lifecycle configuration, if it has one.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`], [`Error::Corrupt`].
    pub async fn lifecycle_config(&self, bucket: &str) -> Result<Option<Lifecycle>> {
        let bucket = bucket.to_owned();
        let raw = self
            .with_index(move |i| i.bucket_config(&bucket, LIFECYCLE_KIND))
            .await?;
        raw.map(|b| Lifecycle::decode(&b)).transpose()
    }

    /// Removes a bucket's lifecycle configuration (nothing to remove is not an error).
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`].
    pub async fn delete_lifecycle(&self, bucket: &str) -> Result<()> {
        self.index
            .set_bucket_config(bucket, LIFECYCLE_KIND, None)
            .await
    }

    /// Applies every bucket's lifecycle rules as of `clock`; `progress` sees the report
    /// after every page.
    ///
    /// # Errors
    /// The index's; a run stopped by an error can simply run again (each key's change
    /// is one transaction).
    pub async fn lifecycle(
        &self,
        clock: Clock,
        progress: &(dyn Fn(&LifecycleReport) + Send + Sync),
    ) -> Result<LifecycleReport> {
        let mut report = LifecycleReport::default();
        let configs = self
            .with_index(|i| i.bucket_configs(LIFECYCLE_KIND))
            .await?;
        for (bucket, raw) in configs {
            let rules = Lifecycle::decode(&raw)?;
            report.buckets += 1;
            match self
                .lifecycle_bucket(&bucket, &rules, clock, &mut report, progress)
                .await
            {
                Ok(()) | Err(Error::NoSuchBucket(_)) => {} // deleted meanwhile
                Err(e) => return Err(e),
            }
            progress(&report);
        }
        Ok(report)
    }

    async fn lifecycle_bucket(
        &self,
        bucket: &str,
        rules: &Lifecycle,
        clock: Clock,
        report: &mut LifecycleReport,
        progress: &(dyn Fn(&LifecycleReport) + Send + Sync),
    ) -> Result<()> {
        let mut after: Option<String> = None;
        loop {
            let (b, r, a) = (bucket.to_owned(), rules.clone(), after.take());
            let (due, last) = self
                .with_index(move |i| i.lifecycle_candidates(&b, &r, a.as_deref(), PAGE, clock))
                .await?;
            report.keys_due += due.len() as u64;
            let writes = due
                .iter()
                .map(|key| self.index.apply_lifecycle(bucket, key, clock));
            for outcome in futures::future::join_all(writes).await {
                match outcome {
                    Ok(o) => report.add(&o),
                    // A removal refused by a lock the scan did not see: nothing changed.
                    Err(Error::ObjectLocked(_)) => report.locked += 1,
                    Err(e) => return Err(e),
                }
            }
            progress(report);
            match last {
                Some(l) => after = Some(l),
                None => break,
            }
        }
        if !rules.active().any(|r| r.abort_multipart_days.is_some()) {
            return Ok(());
        }
        let mut after: Option<(String, String)> = None;
        loop {
            let page = self
                .list_uploads(bucket, "", after.take(), UPLOAD_PAGE)
                .await?;
            for u in &page {
                let due = rules
                    .abort_days(&u.key)
                    .is_some_and(|d| clock.reached(u.initiated_ms, d));
                if !due {
                    continue;
                }
                match self.abort_upload(&u.upload_id).await {
                    Ok(()) => report.uploads_aborted += 1,
                    Err(Error::NoSuchUpload(_)) => {} // completed or aborted meanwhile
                    Err(e) => return Err(e),
                }
            }
            match page.last() {
                Some(u) if page.len() == UPLOAD_PAGE => {
                    after = Some((u.key.clone(), u.upload_id.clone()));
                }
                _ => break,
            }
        }
        Ok(())
    }
}
