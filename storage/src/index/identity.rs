//! Identities: the `identities` table ((kind, name) → encoded record) holding tenants
//! (`tenant`, name), users (`user`, `tenant/user`) and access keys (`key`, access key
//! id), tenants' dedup domains (`domain`, canonical id) and deleted tenants' names
//! (`retired`, name → the tenant's last record); see `crate::identity`.
//! Every change is journaled as [`Change::Identity`].
//!
//! A tenant that owns buckets cannot be deleted (its data stays reachable by its
//! owner); deleting a tenant removes its users and keys, deleting a user its keys.

use redb::{ReadableDatabase, ReadableTable, WriteTransaction};

use super::{BUCKETS, IDENTITIES, Index, journal};
use crate::crypto::IdScheme;
use crate::crypto::Keyring;
use crate::error::{Error, Result};
use crate::identity::{AccessKey, DedupDomain, KeyStatus, StoredSecret, Tenant, Uploader, User};
use crate::journal::entry::Change;
use crate::quota::{QUOTA_KIND, Quota};
use crate::rates::{RATE_KIND, RateLimits};
use crate::records::BucketRecord;

pub(crate) const TENANT: &str = "tenant";
pub(crate) const USER: &str = "user";
pub(crate) const KEY: &str = "key";
pub(crate) const DOMAIN: &str = "domain";
/// Names of deleted tenants (their last record): never given to a new tenant, so that a
/// bucket policy naming a deleted tenant grants nothing to a newcomer.
pub(crate) const RETIRED: &str = "retired";

/// The codec's name of the domain of anonymous uploads into the buckets of the tenant
/// with `canonical_id` (not a canonical id: those are hex).
fn anonymous_domain(canonical_id: &str) -> String {
    format!("{canonical_id}/anonymous")
}

/// The secret of that domain: derived from the tenant's, so it needs no record of its
/// own, and distinct from it, so an unsigned writer cannot probe the owner's content.
fn derive_anonymous(secret: &[u8; 32]) -> [u8; 32] {
    IdScheme::Keyed(*secret)
        .id_of(b"s3dedup dedup domain: anonymous uploads")
        .0
}

fn user_name(tenant: &str, user: &str) -> String {
    format!("{tenant}/{user}")
}

/// Checks that an encoded identity record decodes as its kind says.
pub(super) fn check_record(kind: &str, b: &[u8]) -> Result<()> {
    match kind {
        TENANT | RETIRED => Tenant::decode(b).map(drop),
        USER => User::decode(b).map(drop),
        KEY => AccessKey::decode(b).map(drop),
        DOMAIN => DedupDomain::decode(b).map(drop),
        QUOTA_KIND => crate::quota::Quota::decode(b).map(drop),
        RATE_KIND => RateLimits::decode(b).map(drop),
        other => Err(Error::corrupt(
            "identity record",
            format!("unknown kind {other:?}"),
        )),
    }
}

/// Puts (`Some`) or removes (`None`) a record, journaled.
fn put(txn: &WriteTransaction, kind: &str, name: &str, value: Option<Vec<u8>>) -> Result<()> {
    let mut t = txn.open_table(IDENTITIES)?;
    match &value {
        Some(v) => t.insert((kind, name), v.as_slice())?,
        None => t.remove((kind, name))?,
    };
    drop(t);
    journal::append(
        txn,
        vec![Change::Identity {
            kind: kind.to_owned(),
            name: name.to_owned(),
            value: value.unwrap_or_default(),
        }],
    )
}

fn exists(txn: &WriteTransaction, kind: &str, name: &str) -> Result<bool> {
    Ok(txn.open_table(IDENTITIES)?.get((kind, name))?.is_some())
}

/// Every record of `kind` in a table, decoded.
fn all<T, R>(t: &T, kind: &str, decode: fn(&[u8]) -> Result<R>) -> Result<Vec<R>>
where
    T: ReadableTable<(&'static str, &'static str), &'static [u8]>,
{
    let mut out = Vec::new();
    for r in t.range((kind, "")..)? {
        let (k, v) = r?;
        if k.value().0 != kind {
            break;
        }
        out.push(decode(v.value())?);
    }
    Ok(out)
}

/// Removes every key matching `doomed`, journaled.
fn remove_keys(txn: &WriteTransaction, doomed: impl Fn(&AccessKey) -> bool) -> Result<()> {
    let keys = all(&txn.open_table(IDENTITIES)?, KEY, AccessKey::decode)?;
    for k in keys.iter().filter(|k| doomed(k)) {
        put(txn, KEY, &k.access_key, None)?;
    }
    Ok(())
}

fn no_tenant(name: &str) -> Error {
    Error::NoSuchIdentity(format!("tenant {name:?} does not exist"))
}

impl Index {
    /// Creates a tenant.
    ///
    /// # Errors
    /// [`Error::IdentityExists`].
    /// With `domain`, the tenant gets its own dedup domain: its secret is registered
    /// before the commit is submitted (an upload by the tenant can follow at once; a
    /// secret that cannot be registered fails the creation before anything is written;
    /// a registered secret whose commit fails is never used).
    pub(crate) fn create_tenant(
        &self,
        t: Tenant,
        domain: Option<DedupDomain>,
    ) -> impl Future<Output = Result<()>> + use<> {
        let submitted = match domain.as_ref().map(|d| self.register_domain(d)) {
            Some(Err(e)) => Err(e),
            _ => Ok(self.committer.submit(move |txn| {
                if exists(txn, TENANT, &t.name)? {
                    return Err(Error::IdentityExists(format!(
                        "tenant {:?} already exists",
                        t.name
                    )));
                }
                if exists(txn, RETIRED, &t.name)? {
                    return Err(Error::IdentityExists(format!(
                        "tenant name {:?} belonged to a deleted tenant, and names are never \
                         reused (a bucket policy naming it must not grant a newcomer \
                         anything): choose another name",
                        t.name
                    )));
                }
                if let Some(d) = &domain {
                    put(txn, DOMAIN, &d.canonical_id, Some(d.encode()))?;
                }
                put(txn, TENANT, &t.name, Some(t.encode()))
            })),
        };
        async move { submitted?.await }
    }

    /// Makes a dedup domain's secrets known to the codec: the tenant's own, and the one
    /// derived from it for anonymous uploads into its buckets.
    fn register_domain(&self, d: &DedupDomain) -> Result<()> {
        let secret = d.reveal(self.codec.keys.as_deref())?;
        let domains = &self.codec.domains;
        domains.insert(anonymous_domain(&d.canonical_id), derive_anonymous(&secret));
        domains.insert(d.canonical_id.clone(), secret);
        Ok(())
    }

    /// Loads every dedup domain's secret into the codec (at open).
    pub(super) fn load_domains(&self) -> Result<usize> {
        let txn = self.db.begin_read()?;
        let domains = all(&txn.open_table(IDENTITIES)?, DOMAIN, DedupDomain::decode)?;
        for d in &domains {
            self.register_domain(d)?;
        }
        Ok(domains.len())
    }

    /// How the chunks `uploader` writes are named (see [`Uploader`]).
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`] for an anonymous upload into a bucket that does not
    /// exist; [`Error::Index`] or a damaged record.
    pub(crate) fn id_scheme_for(&self, uploader: Uploader<'_>) -> Result<IdScheme> {
        let store = || self.codec.ids.clone();
        let bucket = match uploader {
            Uploader::Root => return Ok(store()),
            Uploader::Tenant(canonical_id) => {
                return Ok(self.codec.domain(canonical_id).unwrap_or_else(store));
            }
            Uploader::Anonymous { bucket } if self.codec.has_domains() => bucket,
            Uploader::Anonymous { .. } => return Ok(store()),
        };
        let txn = self.db.begin_read()?;
        let owner = match txn.open_table(BUCKETS)?.get(bucket)? {
            Some(v) => BucketRecord::decode(v.value())?.owner,
            None => return Err(Error::NoSuchBucket(bucket.to_owned())),
        };
        if owner.is_empty() {
            return Ok(store());
        }
        let tenant = txn
            .open_table(IDENTITIES)?
            .get((TENANT, owner.as_str()))?
            .map(|v| Tenant::decode(v.value()))
            .transpose()?;
        Ok(tenant
            .and_then(|t| self.codec.domain(&anonymous_domain(&t.canonical_id)))
            .unwrap_or_else(store))
    }

    /// Whether the tenant with `canonical_id` has its own dedup domain.
    pub(crate) fn dedup_scope_of(&self, canonical_id: &str) -> crate::identity::DedupScope {
        if self.codec.domain(canonical_id).is_some() {
            crate::identity::DedupScope::Tenant
        } else {
            crate::identity::DedupScope::Global
        }
    }

    /// Deletes a tenant that owns no bucket, with its users and keys.
    ///
    /// # Errors
    /// [`Error::NoSuchIdentity`], [`Error::IdentityInUse`].
    pub(crate) fn delete_tenant(&self, name: &str) -> impl Future<Output = Result<()>> + use<> {
        let name = name.to_owned();
        self.committer.submit(move |txn| {
            if !exists(txn, TENANT, &name)? {
                return Err(no_tenant(&name));
            }
            let mut owned = Vec::new();
            for r in txn.open_table(BUCKETS)?.iter()? {
                let (k, v) = r?;
                if BucketRecord::decode(v.value())?.owner == name {
                    owned.push(k.value().to_owned());
                }
            }
            if !owned.is_empty() {
                return Err(Error::IdentityInUse(format!(
                    "tenant {name:?} owns {} bucket(s) ({}): delete them first",
                    owned.len(),
                    owned.join(", ")
                )));
            }
            remove_keys(txn, |k| k.tenant == name)?;
            let users = all(&txn.open_table(IDENTITIES)?, USER, User::decode)?;
            for u in users.iter().filter(|u| u.tenant == name) {
                put(txn, USER, &user_name(&u.tenant, &u.name), None)?;
            }
            let last = txn
                .open_table(IDENTITIES)?
                .get((TENANT, name.as_str()))?
                .map(|v| v.value().to_vec());
            put(txn, RETIRED, &name, last)?;
            for kind in [QUOTA_KIND, RATE_KIND] {
                if exists(txn, kind, &name)? {
                    put(txn, kind, &name, None)?;
                }
            }
            put(txn, TENANT, &name, None)
        })
    }

    /// Sets (`Some`, unless unlimited) or removes a tenant's quota, journaled.
    ///
    /// # Errors
    /// [`Error::NoSuchIdentity`].
    pub(crate) fn set_tenant_quota(
        &self,
        name: &str,
        quota: Option<Quota>,
    ) -> impl Future<Output = Result<()>> + use<> {
        let name = name.to_owned();
        self.committer.submit(move |txn| {
            if !exists(txn, TENANT, &name)? {
                return Err(no_tenant(&name));
            }
            let value = quota.filter(|q| !q.is_unlimited()).map(|q| q.encode());
            if value.is_none() && !exists(txn, QUOTA_KIND, &name)? {
                return Ok(());
            }
            put(txn, QUOTA_KIND, &name, value)
        })
    }

    /// Sets (`Some`, unless empty) or removes a tenant's rate limits, journaled.
    ///
    /// # Errors
    /// [`Error::NoSuchIdentity`].
    pub(crate) fn set_tenant_rates(
        &self,
        name: &str,
        rates: Option<RateLimits>,
    ) -> impl Future<Output = Result<()>> + use<> {
        let name = name.to_owned();
        self.committer.submit(move |txn| {
            if !exists(txn, TENANT, &name)? {
                return Err(no_tenant(&name));
            }
            let value = rates.filter(|r| !r.is_empty()).map(|r| r.encode());
            if value.is_none() && !exists(txn, RATE_KIND, &name)? {
                return Ok(());
            }
            put(txn, RATE_KIND, &name, value)
        })
    }

    /// Every tenant's rate limits.
    ///
    /// # Errors
    /// [`Error::Corrupt`].
    pub(crate) fn tenant_rates(&self) -> Result<Vec<(String, RateLimits)>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(IDENTITIES)?;
        let mut out = Vec::new();
        for r in t.range((RATE_KIND, "")..)? {
            let (k, v) = r?;
            let (kind, name) = k.value();
            if kind != RATE_KIND {
                break;
            }
            out.push((name.to_owned(), RateLimits::decode(v.value())?));
        }
        Ok(out)
    }

    /// A tenant's quota, if it has one.
    ///
    /// # Errors
    /// [`Error::Corrupt`].
    pub(crate) fn tenant_quota(&self, name: &str) -> Result<Option<Quota>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(IDENTITIES)?;
        let raw = t.get((QUOTA_KIND, name))?;
        raw.map(|v| Quota::decode(v.value())).transpose()
    }

    /// Creates a user of an existing tenant.
    ///
    /// # Errors
    /// [`Error::NoSuchIdentity`], [`Error::IdentityExists`].
    pub(crate) fn create_user(&self, u: User) -> impl Future<Output = Result<()>> + use<> {
        self.committer.submit(move |txn| {
            if !exists(txn, TENANT, &u.tenant)? {
                return Err(no_tenant(&u.tenant));
            }
            let name = user_name(&u.tenant, &u.name);
            if exists(txn, USER, &name)? {
                return Err(Error::IdentityExists(format!(
                    "user {:?} of tenant {:?} already exists",
                    u.name, u.tenant
                )));
            }
            put(txn, USER, &name, Some(u.encode()))
        })
    }

    /// Deletes a user and its keys.
    ///
    /// # Errors
    /// [`Error::NoSuchIdentity`].
    pub(crate) fn delete_user(
        &self,
        tenant: &str,
        user: &str,
    ) -> impl Future<Output = Result<()>> + use<> {
        let (tenant, user) = (tenant.to_owned(), user.to_owned());
        self.committer.submit(move |txn| {
            let name = user_name(&tenant, &user);
            if !exists(txn, USER, &name)? {
                return Err(Error::NoSuchIdentity(format!(
                    "user {user:?} of tenant {tenant:?} does not exist"
                )));
            }
            remove_keys(txn, |k| {
                k.tenant == tenant && k.user.as_deref() == Some(user.as_str())
            })?;
            put(txn, USER, &name, None)
        })
    }

    /// Creates an access key of an existing tenant (and user).
    ///
    /// # Errors
    /// [`Error::NoSuchIdentity`], [`Error::IdentityExists`] (an id already taken).
    pub(crate) fn create_key(&self, k: AccessKey) -> impl Future<Output = Result<()>> + use<> {
        self.committer.submit(move |txn| {
            if !exists(txn, TENANT, &k.tenant)? {
                return Err(no_tenant(&k.tenant));
            }
            if let Some(u) = &k.user
                && !exists(txn, USER, &user_name(&k.tenant, u))?
            {
                return Err(Error::NoSuchIdentity(format!(
                    "user {u:?} of tenant {:?} does not exist",
                    k.tenant
                )));
            }
            if exists(txn, KEY, &k.access_key)? {
                return Err(Error::IdentityExists(format!(
                    "access key {:?} already exists",
                    k.access_key
                )));
            }
            put(txn, KEY, &k.access_key, Some(k.encode()))
        })
    }

    /// Sets a key's status; returns the key as it now is.
    ///
    /// # Errors
    /// [`Error::NoSuchIdentity`].
    pub(crate) fn set_key_status(
        &self,
        access_key: &str,
        status: KeyStatus,
    ) -> impl Future<Output = Result<AccessKey>> + use<> {
        let id = access_key.to_owned();
        self.committer.submit(move |txn| {
            let mut k = key_in(txn, &id)?;
            if k.status != status {
                k.status = status;
                put(txn, KEY, &id, Some(k.encode()))?;
            }
            Ok(k)
        })
    }

    /// Deletes a key.
    ///
    /// # Errors
    /// [`Error::NoSuchIdentity`].
    pub(crate) fn delete_key(&self, access_key: &str) -> impl Future<Output = Result<()>> + use<> {
        let id = access_key.to_owned();
        self.committer.submit(move |txn| {
            key_in(txn, &id)?;
            put(txn, KEY, &id, None)
        })
    }

    /// A tenant's record.
    ///
    /// # Errors
    /// [`Error::Index`], a damaged record.
    pub(crate) fn tenant(&self, name: &str) -> Result<Option<Tenant>> {
        let txn = self.db.begin_read()?;
        txn.open_table(IDENTITIES)?
            .get((TENANT, name))?
            .map(|v| Tenant::decode(v.value()))
            .transpose()
    }

    /// Every tenant, by name.
    ///
    /// # Errors
    /// [`Error::Index`], a damaged record.
    pub(crate) fn tenants(&self) -> Result<Vec<Tenant>> {
        let txn = self.db.begin_read()?;
        all(&txn.open_table(IDENTITIES)?, TENANT, Tenant::decode)
    }

    /// The users of `tenant` (every user for `None`), by tenant and name.
    ///
    /// # Errors
    /// [`Error::Index`], a damaged record.
    pub(crate) fn users(&self, tenant: Option<&str>) -> Result<Vec<User>> {
        let txn = self.db.begin_read()?;
        let mut v = all(&txn.open_table(IDENTITIES)?, USER, User::decode)?;
        v.retain(|u| tenant.is_none_or(|t| u.tenant == t));
        Ok(v)
    }

    /// One access key.
    ///
    /// # Errors
    /// [`Error::Index`], a damaged record.
    pub(crate) fn access_key(&self, id: &str) -> Result<Option<AccessKey>> {
        let txn = self.db.begin_read()?;
        txn.open_table(IDENTITIES)?
            .get((KEY, id))?
            .map(|v| AccessKey::decode(v.value()))
            .transpose()
    }

    /// The access keys of `tenant` (every key for `None`), by id.
    ///
    /// # Errors
    /// [`Error::Index`], a damaged record.
    pub(crate) fn access_keys(&self, tenant: Option<&str>) -> Result<Vec<AccessKey>> {
        let txn = self.db.begin_read()?;
        let mut v = all(&txn.open_table(IDENTITIES)?, KEY, AccessKey::decode)?;
        v.retain(|k| tenant.is_none_or(|t| k.tenant == t));
        Ok(v)
    }
}

/// Seals again, in the opening transaction, every secret [`StoredSecret::stale`]
/// under `keys` (a new active key, or encryption turned on); returns how many.
///
/// # Errors
/// A secret none of `keys` opens.
pub(super) fn reseal_secrets(txn: &WriteTransaction, keys: Option<&Keyring>) -> Result<usize> {
    let all_keys = all(&txn.open_table(IDENTITIES)?, KEY, AccessKey::decode)?;
    let mut n = 0;
    for mut k in all_keys {
        if k.secret.stale(keys) {
            let plain = k.secret.reveal(&k.access_key, keys)?;
            k.secret = StoredSecret::protect(&k.access_key, &plain, keys);
            put(txn, KEY, &k.access_key, Some(k.encode()))?;
            n += 1;
        }
    }
    let domains = all(&txn.open_table(IDENTITIES)?, DOMAIN, DedupDomain::decode)?;
    for d in domains {
        if d.secret.stale(keys) {
            put(
                txn,
                DOMAIN,
                &d.canonical_id,
                Some(d.resealed(keys)?.encode()),
            )?;
            n += 1;
        }
    }
    Ok(n)
}

fn key_in(txn: &WriteTransaction, id: &str) -> Result<AccessKey> {
    txn.open_table(IDENTITIES)?
        .get((KEY, id))?
        .map(|v| AccessKey::decode(v.value()))
        .transpose()?
        .ok_or_else(|| Error::NoSuchIdentity(format!("access key {id:?} does not exist")))
}
