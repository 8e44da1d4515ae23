//! [`Store`] identities: tenants, users and access keys (see `crate::identity`), and
//! buckets created on a tenant's behalf.

use super::Store;
use crate::error::{Error, Result};
use crate::identity::{
    AccessKey, DedupDomain, DedupScope, KeyStatus, StoredSecret, Tenant, User, new_access_key_id,
    new_secret_key, tenant_name_problem, user_name_problem,
};
use crate::index::now_ms;
use crate::records::BucketRecord;

/// A key just created: its record and its secret (shown once).
#[derive(Debug, Clone)]
pub struct NewKey {
    /// The record.
    pub key: AccessKey,
    /// The secret, in the clear.
    pub secret: String,
}

impl Store {
    /// Creates bucket `name` owned by `owner` (a tenant name; `""` = the root tenant),
    /// with object lock (and so versioning) when `lock`.
    ///
    /// # Errors
    /// [`Error::BucketExists`].
    pub async fn create_bucket_owned(&self, name: &str, owner: &str, lock: bool) -> Result<()> {
        self.index.create_bucket(name, owner, lock).await
    }

    /// Creates a tenant with the configured dedup scope.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad name, [`Error::IdentityExists`].
    pub async fn create_tenant(&self, name: &str) -> Result<Tenant> {
        self.create_tenant_scoped(name, self.cfg.dedup_scope).await
    }

    /// Creates a tenant whose chunks dedup within `scope`: with
    /// [`DedupScope::Tenant`] it gets a dedup domain of its own (a fresh id secret).
    ///
    /// # Errors
    /// As [`Store::create_tenant`].
    pub async fn create_tenant_scoped(&self, name: &str, scope: DedupScope) -> Result<Tenant> {
        if let Some(p) = tenant_name_problem(name) {
            return Err(Error::InvalidArgument(format!("tenant name {name:?}: {p}")));
        }
        let now = now_ms();
        let t = Tenant::new(name, now);
        let domain = (scope == DedupScope::Tenant)
            .then(|| DedupDomain::new(&t.canonical_id, now, self.index.codec().keys.as_deref()));
        self.index.create_tenant(t.clone(), domain).await?;
        Ok(t)
    }

    /// The dedup scope of a tenant (fixed when it was created).
    pub fn dedup_scope(&self, tenant: &Tenant) -> DedupScope {
        self.index.dedup_scope_of(&tenant.canonical_id)
    }

    /// Deletes a tenant that owns no bucket, with its users and keys.
    ///
    /// # Errors
    /// [`Error::NoSuchIdentity`], [`Error::IdentityInUse`].
    pub async fn delete_tenant(&self, name: &str) -> Result<()> {
        self.index.delete_tenant(name).await
    }

    /// A tenant.
    ///
    /// # Errors
    /// [`Error::Index`].
    pub async fn tenant(&self, name: &str) -> Result<Option<Tenant>> {
        let name = name.to_owned();
        self.with_index(move |i| i.tenant(&name)).await
    }

    /// Every tenant, by name.
    ///
    /// # Errors
    /// [`Error::Index`].
    pub async fn tenants(&self) -> Result<Vec<Tenant>> {
        self.with_index(|i| i.tenants()).await
    }

    /// Creates a user of a tenant.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad name, [`Error::NoSuchIdentity`],
    /// [`Error::IdentityExists`].
    pub async fn create_user(&self, tenant: &str, name: &str) -> Result<User> {
        if let Some(p) = user_name_problem(name) {
            return Err(Error::InvalidArgument(format!("user name {name:?}: {p}")));
        }
        let u = User {
            tenant: tenant.to_owned(),
            name: name.to_owned(),
            created_ms: now_ms(),
        };
        self.index.create_user(u.clone()).await?;
        Ok(u)
    }

    /// Deletes a user and its keys.
    ///
    /// # Errors
    /// [`Error::NoSuchIdentity`].
    pub async fn delete_user(&self, tenant: &str, name: &str) -> Result<()> {
        self.index.delete_user(tenant, name).await
    }

    /// The users of a tenant (all users for `None`).
    ///
    /// # Errors
    /// [`Error::NoSuchIdentity`] for an unknown tenant.
    pub async fn users(&self, tenant: Option<&str>) -> Result<Vec<User>> {
        let tenant = tenant.map(str::to_owned);
        self.with_index(move |i| {
            if let Some(t) = &tenant
                && i.tenant(t)?.is_none()
            {
                return Err(Error::NoSuchIdentity(format!(
                    "tenant {t:?} does not exist"
                )));
            }
            i.users(tenant.as_deref())
        })
        .await
    }

    /// Creates an access key for `tenant` (and `user`), expiring at `expires_ms`; its
    /// secret is sealed when encryption is configured.
    ///
    /// # Errors
    /// [`Error::NoSuchIdentity`].
    pub async fn create_key(
        &self,
        tenant: &str,
        user: Option<&str>,
        expires_ms: Option<u64>,
    ) -> Result<NewKey> {
        let access_key = new_access_key_id();
        let secret = new_secret_key();
        let key = AccessKey {
            secret: StoredSecret::protect(&access_key, &secret, self.index.codec().keys.as_deref()),
            access_key,
            tenant: tenant.to_owned(),
            user: user.map(str::to_owned),
            status: KeyStatus::Active,
            created_ms: now_ms(),
            expires_ms,
        };
        self.index.create_key(key.clone()).await?;
        Ok(NewKey { key, secret })
    }

    /// Access keys of a tenant (all keys for `None`).
    ///
    /// # Errors
    /// [`Error::Index`].
    pub async fn access_keys(&self, tenant: Option<&str>) -> Result<Vec<AccessKey>> {
        let tenant = tenant.map(str::to_owned);
        self.with_index(move |i| i.access_keys(tenant.as_deref()))
            .await
    }

    /// One access key and its secret in the clear (what SigV4 verification needs).
    ///
    /// # Errors
    /// [`Error::Index`], a secret the configured keys cannot open.
    pub async fn access_key_secret(&self, id: &str) -> Result<Option<(AccessKey, String)>> {
        Ok(self
            .access_key_for_request(id)
            .await?
            .map(|(k, secret, _)| (k, secret)))
    }

    /// [`Store::access_key_secret`] and the key's tenant, in one index read (the
    /// per-request lookup of a tenant key).
    ///
    /// # Errors
    /// [`Error::Index`], a secret the configured keys cannot open.
    pub async fn access_key_for_request(
        &self,
        id: &str,
    ) -> Result<Option<(AccessKey, String, Option<Tenant>)>> {
        let id = id.to_owned();
        self.with_index(move |i| {
            let Some(k) = i.access_key(&id)? else {
                return Ok(None);
            };
            let secret = k.secret.reveal(&k.access_key, i.codec().keys.as_deref())?;
            let tenant = i.tenant(&k.tenant)?;
            Ok(Some((k, secret, tenant)))
        })
        .await
    }

    /// One access key.
    ///
    /// # Errors
    /// [`Error::Index`].
    pub async fn access_key(&self, id: &str) -> Result<Option<AccessKey>> {
        let id = id.to_owned();
        self.with_index(move |i| i.access_key(&id)).await
    }

    /// Enables or disables a key; takes effect on the next request.
    ///
    /// # Errors
    /// [`Error::NoSuchIdentity`].
    pub async fn set_key_status(&self, id: &str, status: KeyStatus) -> Result<AccessKey> {
        self.index.set_key_status(id, status).await
    }

    /// Deletes a key.
    ///
    /// # Errors
    /// [`Error::NoSuchIdentity`].
    pub async fn delete_key(&self, id: &str) -> Result<()> {
        self.index.delete_key(id).await
    }
}

/// Layout version of a bucket document (see [`Store::set_bucket_document`]).
const DOCUMENT_V1: u8 = 1;

impl Store {
    /// Sets (`Some`) or removes (`None`) bucket `bucket`'s document of `kind` (a bucket
    /// policy, a public access block …): opaque bytes the gateway owns, kept versioned
    /// and sealed with a CRC32C, journaled, and removed with the bucket.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`].
    pub async fn set_bucket_document(
        &self,
        bucket: &str,
        kind: &'static str,
        doc: Option<&[u8]>,
    ) -> Result<()> {
        let sealed = doc.map(seal_document);
        self.index.set_bucket_config(bucket, kind, sealed).await
    }

    /// Bucket `bucket`'s document of `kind`, if set.
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`], [`Error::Corrupt`] for a damaged document.
    pub async fn bucket_document(
        &self,
        bucket: &str,
        kind: &'static str,
    ) -> Result<Option<Vec<u8>>> {
        let bucket = bucket.to_owned();
        let raw = self
            .with_index(move |i| i.bucket_config(&bucket, kind))
            .await?;
        raw.map(|b| unseal_document(&b)).transpose()
    }

    /// A bucket's record and its documents of `kinds` (in that order), in one index
    /// read (the per-request lookup of authorization); `None` when it does not exist.
    ///
    /// # Errors
    /// [`Error::Index`], [`Error::Corrupt`] for a damaged document.
    pub async fn bucket_with_documents(
        &self,
        bucket: &str,
        kinds: &'static [&'static str],
    ) -> Result<Option<(BucketRecord, Vec<Option<Vec<u8>>>)>> {
        let bucket = bucket.to_owned();
        self.with_index(move |i| {
            let Some(rec) = i.bucket(&bucket)? else {
                return Ok(None);
            };
            let mut docs = Vec::with_capacity(kinds.len());
            for kind in kinds {
                let raw = match i.bucket_config(&bucket, kind) {
                    // Deleted between the two reads: as if it had none.
                    Err(Error::NoSuchBucket(_)) => None,
                    other => other?,
                };
                docs.push(raw.map(|b| unseal_document(&b)).transpose()?);
            }
            Ok(Some((rec, docs)))
        })
        .await
    }
}

/// A bucket document as stored: `version (1) | document | crc32c` of what precedes.
pub fn seal_document(doc: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(doc.len() + 5);
    v.push(DOCUMENT_V1);
    v.extend_from_slice(doc);
    let crc = crc32c::crc32c(&v);
    v.extend_from_slice(&crc.to_le_bytes());
    v
}

/// The document inside a sealed bucket document.
///
/// # Errors
/// [`Error::Corrupt`] (checksum, truncation), [`Error::UnsupportedFormat`].
pub fn unseal_document(b: &[u8]) -> Result<Vec<u8>> {
    let bad = |d: &str| Error::corrupt("bucket document", d);
    if b.len() < 5 || crc32c::crc32c(&b[..b.len() - 4]).to_le_bytes() != b[b.len() - 4..] {
        return Err(bad("checksum mismatch or truncated"));
    }
    if b[0] != DOCUMENT_V1 {
        return Err(Error::UnsupportedFormat {
            what: "bucket document",
            version: b[0].into(),
        });
    }
    Ok(b[1..b.len() - 4].to_vec())
}

impl Store {}
