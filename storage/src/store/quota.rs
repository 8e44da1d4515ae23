//! Quotas and usage (see [`crate::quota`]), tenants' rate limits ([`crate::rates`]).

use super::Store;
use crate::error::Result;
use crate::quota::{QUOTA_KIND, Quota, QuotaState, Usage};
use crate::versions::Versioning;

impl Store {
    /// Sets (`Some`, unless unlimited) or removes a bucket's quota, journaled.
    ///
    /// # Errors
    /// [`crate::Error::NoSuchBucket`].
    pub async fn set_bucket_quota(&self, bucket: &str, quota: Option<Quota>) -> Result<()> {
        let value = quota.filter(|q| !q.is_unlimited()).map(|q| q.encode());
        self.index
            .set_bucket_config(bucket, QUOTA_KIND, value)
            .await
    }

    /// Sets (`Some`, unless unlimited) or removes a tenant's quota, journaled.
    ///
    /// # Errors
    /// [`crate::Error::NoSuchIdentity`].
    pub async fn set_tenant_quota(&self, tenant: &str, quota: Option<Quota>) -> Result<()> {
        self.index.set_tenant_quota(tenant, quota).await
    }

    /// Sets (`Some`, unless empty) or removes a tenant's rate limits, journaled.
    ///
    /// # Errors
    /// [`crate::Error::NoSuchIdentity`].
    pub async fn set_tenant_rates(
        &self,
        tenant: &str,
        rates: Option<crate::rates::RateLimits>,
    ) -> Result<()> {
        self.index.set_tenant_rates(tenant, rates).await
    }

    /// Every tenant's rate limits.
    ///
    /// # Errors
    /// [`crate::Error::Corrupt`].
    pub async fn tenant_rates(&self) -> Result<Vec<(String, crate::rates::RateLimits)>> {
        self.with_index(|i| i.tenant_rates()).await
    }

    /// A tenant's quota and usage.
    ///
    /// # Errors
    /// [`crate::Error::Corrupt`].
    pub async fn tenant_quota(&self, tenant: &str) -> Result<(Option<Quota>, Usage)> {
        let tenant = tenant.to_owned();
        self.with_index(move |i| Ok((i.tenant_quota(&tenant)?, i.tenant_usage(&tenant)?)))
            .await
    }

    /// The usage and quotas that govern writes into `bucket`.
    ///
    /// # Errors
    /// [`crate::Error::NoSuchBucket`].
    pub async fn quota_state(&self, bucket: &str) -> Result<QuotaState> {
        let bucket = bucket.to_owned();
        self.with_index(move |i| i.quota_state(&bucket).map(|(s, _)| s))
            .await
    }

    /// Bytes a new version of bucket/key may bring before a quota refuses it (`None` =
    /// no byte quota applies); in an unversioned bucket the version it replaces is
    /// credited. The commit checks again, exactly: this is for refusing early.
    ///
    /// # Errors
    /// [`crate::Error::QuotaExceeded`] when even an empty object is refused;
    /// [`crate::Error::NoSuchBucket`].
    pub async fn quota_room(&self, bucket: &str, key: &str) -> Result<Option<u64>> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.with_index(move |i| {
            let (state, rec) = i.quota_state(&bucket)?;
            if state.bucket_quota.is_none() && state.tenant_quota.is_none() {
                return Ok(None);
            }
            // What the commit will release: the current version in an unversioned
            // bucket, the current `null` version under suspension.
            let credit = match (rec.versioning, i.current_size(&bucket, &key)?) {
                (Versioning::Unversioned, Some((size, _)))
                | (Versioning::Suspended, Some((size, true))) => (size, 1),
                _ => (0, 0),
            };
            state.room(credit)
        })
        .await
    }
}
