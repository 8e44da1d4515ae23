//! Who asks, and what a handler must still check: the copy source of CopyObject and
//! UploadPartCopy, each key of DeleteObjects (the access check sees neither); Owner
//! fields.

use s3dedup_storage::Store;
use s3s::dto;
use s3s::{S3Request, S3Result};

use super::Gateway;

impl Gateway {
    /// The Owner of a bucket and of every object in it (a bucket's owner owns its
    /// objects, as with S3's BucketOwnerEnforced).
    pub(super) async fn bucket_owner(&self, bucket: &str) -> S3Result<dto::Owner> {
        let owner = self
            .store
            .bucket(bucket)
            .await
            .map_err(crate::error::to_s3)?
            .map(|r| r.owner)
            .unwrap_or_default();
        self.owner_named(&owner).await
    }

    /// The Owner of tenant `owner` (`""` = the root tenant): its canonical id and name.
    pub(super) async fn owner_named(&self, owner: &str) -> S3Result<dto::Owner> {
        use s3dedup_storage::identity::{ROOT_TENANT, Tenant};
        if owner.is_empty() {
            return Ok(dto::Owner {
                display_name: Some(ROOT_TENANT.into()),
                id: Some(Tenant::root_canonical_id()),
            });
        }
        let t = self
            .store
            .tenant(owner)
            .await
            .map_err(crate::error::to_s3)?;
        Ok(dto::Owner {
            display_name: Some(owner.to_owned()),
            id: Some(t.map_or_else(|| owner.to_owned(), |t| t.canonical_id)),
        })
    }
}

/// Who sent `req` (put there by the access check; anonymous if it is missing).
pub(super) fn principal<T>(req: &S3Request<T>) -> crate::authz::Principal {
    req.extensions
        .get::<crate::authz::Principal>()
        .cloned()
        .unwrap_or(crate::authz::Principal::Anonymous)
}

/// The dedup domain an upload by `principal` into `bucket` is named in.
pub(super) fn uploader<'a>(
    principal: &'a crate::authz::Principal,
    bucket: &'a str,
) -> s3dedup_storage::identity::Uploader<'a> {
    use s3dedup_storage::identity::Uploader;
    match principal {
        crate::authz::Principal::Root => Uploader::Root,
        crate::authz::Principal::Tenant { canonical_id, .. } => Uploader::Tenant(canonical_id),
        crate::authz::Principal::Anonymous => Uploader::Anonymous { bucket },
    }
}

/// Who sent `req` and what the access check found (see `crate::access::Checked`).
pub(super) fn auth_of<T>(
    req: &S3Request<T>,
) -> (crate::authz::Principal, Option<crate::access::Checked>) {
    (
        principal(req),
        req.extensions.get::<crate::access::Checked>().cloned(),
    )
}

/// Whether `principal` may run `operation` on `bucket`'s `key`, judged with `bucket` as
/// loaded (`None`: it does not exist) and the object's ACL if looked up; with `bypass`,
/// also `s3:BypassGovernanceRetention`.
#[allow(clippy::too_many_arguments)]
fn decide_in(
    principal: &crate::authz::Principal,
    loaded: Option<&crate::access::LoadedBucket>,
    context: Option<&crate::policy::eval::Context>,
    bucket: &str,
    operation: &str,
    key: &str,
    versioned: bool,
    bypass: bool,
    object_acl: Option<&crate::acl::Acl>,
) -> crate::authz::Decision {
    use crate::authz::{Ask, BucketFacts, Decision, Principal, authorize};
    if *principal == Principal::Root {
        return Decision::Allow;
    }
    let empty = crate::policy::eval::Context::default();
    let facts = loaded.map_or(BucketFacts::Missing, |l| BucketFacts::Exists(l.access()));
    let ask = |operation| Ask {
        principal,
        operation,
        bucket: facts,
        bucket_name: bucket,
        key: Some(key),
        versioned,
        context: context.unwrap_or(&empty),
        object_acl,
    };
    let mut d = authorize(&ask(operation));
    if d == Decision::Allow && bypass {
        d = authorize(&ask("BypassGovernanceRetention"));
    }
    d
}

/// A decision as the handler's answer (a denial counted once, here).
fn conclude(d: crate::authz::Decision, bucket: &str, key: &str) -> S3Result<()> {
    match d {
        crate::authz::Decision::Allow => Ok(()),
        crate::authz::Decision::Deny(why) => {
            Err(crate::access::denied(why, &format!("{bucket}/{key}")))
        }
    }
}

/// The copy source of CopyObject or UploadPartCopy — bucket, key, version — once
/// `principal` may read it (the access check does not see it); 501 for an access point.
pub(super) async fn readable_source<'a>(
    store: &Store,
    principal: &crate::authz::Principal,
    checked: Option<&crate::access::Checked>,
    source: &'a dto::CopySource,
) -> S3Result<(&'a str, &'a str, Option<String>)> {
    let dto::CopySource::Bucket {
        bucket,
        key,
        version_id,
    } = source
    else {
        return Err(s3s::s3_error!(
            NotImplemented,
            "Only bucket copy sources are supported"
        ));
    };
    let granted = authorize_source(
        store,
        principal,
        checked,
        bucket,
        key,
        version_id.as_deref(),
    )
    .await?;
    // Granted by one version's ACL: that version is the one copied.
    let version = granted.map_or_else(
        || version_id.as_deref().map(str::to_owned),
        |v| Some(v.to_string()),
    );
    Ok((bucket, key, version))
}

/// AccessDenied unless `principal` may read the copy source `bucket`/`key` (which the
/// access check does not see); the version whose ACL granted it, when only that did.
async fn authorize_source(
    store: &Store,
    principal: &crate::authz::Principal,
    checked: Option<&crate::access::Checked>,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> S3Result<Option<s3dedup_storage::Version>> {
    if *principal == crate::authz::Principal::Root {
        return Ok(None);
    }
    let loaded = crate::access::load_bucket(store, bucket).await?;
    let ask = |object_acl| {
        decide_in(
            principal,
            loaded.as_ref(),
            checked.map(|c| &c.context),
            bucket,
            "GetObject",
            key,
            version.is_some(),
            false,
            object_acl,
        )
    };
    let mut d = ask(None);
    let mut granted = None;
    // What nothing else grants, the source version's own ACL may.
    if let (crate::authz::Decision::Deny(why), Some(l)) = (&d, &loaded)
        && *why != crate::authz::Denial::ExplicitDeny
        && let Some((acl, v)) = crate::access::object_acl(store, l, bucket, key, version).await?
    {
        d = ask(Some(&acl));
        granted = Some(v);
    }
    conclude(d, bucket, key).map(|()| granted)
}

/// AccessDenied unless `principal` may delete `key` of the request's bucket (each key
/// of DeleteObjects).
pub(super) fn authorize_delete(
    principal: &crate::authz::Principal,
    checked: Option<&crate::access::Checked>,
    bucket: &str,
    key: &str,
    versioned: bool,
    bypass: bool,
) -> S3Result<()> {
    let d = decide_in(
        principal,
        checked.and_then(|c| c.bucket.as_ref()),
        checked.map(|c| &c.context),
        bucket,
        "DeleteObject",
        key,
        versioned,
        bypass,
        None,
    );
    conclude(d, bucket, key)
}
