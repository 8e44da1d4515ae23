//! Bucket ACLs (Put/GetBucketAcl, and the ACL of CreateBucket), object ACLs (Put/
//! GetObjectAcl, and the ACL of PutObject, CopyObject and CreateMultipartUpload), and
//! bucket ownership controls (Put/Get/DeleteBucketOwnershipControls). See `crate::acl`.

use s3s::dto;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use crate::access::{ACL_KIND, BLOCK_KIND, OWNERSHIP_KIND};
use crate::acl::{Acl, AclError, Ownership, Permission};
use crate::authz::PublicAccessBlock;
use crate::error::to_s3;

/// The five `x-amz-grant-*` headers of an input that has them all (read, write,
/// read-acp, write-acp, full-control), as [`AclRequest::grants`] takes them.
macro_rules! grants_of {
    ($i:expr) => {
        [
            $i.grant_read.as_deref(),
            $i.grant_write.as_deref(),
            $i.grant_read_acp.as_deref(),
            $i.grant_write_acp.as_deref(),
            $i.grant_full_control.as_deref(),
        ]
    };
}

/// Those of an object write (PutObject, CopyObject, CreateMultipartUpload: no
/// `x-amz-grant-write`).
macro_rules! object_write_grants_of {
    ($i:expr) => {
        [
            $i.grant_read.as_deref(),
            None,
            $i.grant_read_acp.as_deref(),
            $i.grant_write_acp.as_deref(),
            $i.grant_full_control.as_deref(),
        ]
    };
}
pub(super) use {grants_of, object_write_grants_of};

/// The ACL a request asks for: a canned ACL, `x-amz-grant-*` headers or a body (at most
/// one kind); `None` when it names none.
pub(super) struct AclRequest<'a> {
    /// `x-amz-acl`.
    pub canned: Option<&'a str>,
    /// `x-amz-grant-read`, `-write`, `-read-acp`, `-write-acp`, `-full-control`.
    pub grants: [Option<&'a str>; 5],
    /// An `AccessControlPolicy` body.
    pub body: Option<&'a dto::AccessControlPolicy>,
}

fn not_supported() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::AccessControlListNotSupported,
        "The bucket does not allow ACLs: its ownership controls are BucketOwnerEnforced",
    )
}

fn with_enforced_ownership() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::InvalidBucketAclWithObjectOwnership,
        "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
    )
}

impl Gateway {
    /// Canonical ids of every tenant (and the root tenant): who an ACL may name.
    async fn canonical_ids(&self) -> S3Result<Vec<String>> {
        let mut ids: Vec<String> = self
            .store
            .tenants()
            .await
            .map_err(to_s3)?
            .into_iter()
            .map(|t| t.canonical_id)
            .collect();
        ids.push(s3dedup_storage::identity::Tenant::root_canonical_id());
        Ok(ids)
    }

    /// The ACL `r` asks for, for a bucket owned by `owner_id`.
    pub(super) async fn requested_acl(
        &self,
        r: &AclRequest<'_>,
        owner_id: &str,
    ) -> S3Result<Option<Acl>> {
        let has_grants = r.grants.iter().any(Option::is_some);
        if (r.canned.is_some() && (has_grants || r.body.is_some()))
            || (has_grants && r.body.is_some())
        {
            return Err(AclError::Both.to_s3());
        }
        if let Some(c) = r.canned {
            return Acl::canned(c, owner_id).map(Some).map_err(|e| e.to_s3());
        }
        if !has_grants && r.body.is_none() {
            return Ok(None);
        }
        let ids = self.canonical_ids().await?;
        let known = |id: &str| ids.iter().any(|k| k == id);
        if let Some(body) = r.body {
            return Acl::from_policy(body, &known)
                .map(Some)
                .map_err(|e| e.to_s3());
        }
        let [read, write, read_acp, write_acp, full] = r.grants;
        Acl::from_headers(
            [
                (Permission::Read, read),
                (Permission::Write, write),
                (Permission::ReadAcp, read_acp),
                (Permission::WriteAcp, write_acp),
                (Permission::FullControl, full),
            ],
            &known,
        )
        .map_err(|e| e.to_s3())
    }

    /// Checks `acl` against the bucket's settings: ACLs off (only the owner's own ACL is
    /// accepted), BlockPublicAcls (no public grant).
    fn acl_allowed(
        acl: &Acl,
        owner_id: &str,
        ownership: Ownership,
        block: PublicAccessBlock,
    ) -> S3Result<()> {
        if !ownership.acls_enabled() && !acl.owner_only(owner_id) {
            return Err(not_supported());
        }
        if block.block_public_acls && acl.is_public() {
            return Err(s3_error!(
                AccessDenied,
                "Access Denied: this ACL grants public access, and the bucket's public access block has BlockPublicAcls set"
            ));
        }
        Ok(())
    }

    async fn ownership_of(&self, bucket: &str) -> S3Result<Option<Ownership>> {
        let raw = self
            .store
            .bucket_document(bucket, OWNERSHIP_KIND)
            .await
            .map_err(to_s3)?;
        Ok(raw.and_then(|b| Ownership::parse(&String::from_utf8_lossy(&b))))
    }

    async fn acl_of(&self, bucket: &str) -> S3Result<Option<Acl>> {
        let raw = self
            .store
            .bucket_document(bucket, ACL_KIND)
            .await
            .map_err(to_s3)?;
        Ok(raw.and_then(|b| Acl::decode(&b)))
    }

    /// The bucket's owner and its canonical id.
    async fn owner_and_id(&self, bucket: &str) -> S3Result<(dto::Owner, String)> {
        let rec = self
            .store
            .bucket(bucket)
            .await
            .map_err(to_s3)?
            .ok_or_else(|| {
                s3_error!(
                    NoSuchBucket,
                    "The specified bucket does not exist: {bucket}"
                )
            })?;
        let owner = self.owner_named(&rec.owner).await?;
        let id = owner.id.clone().unwrap_or_default();
        Ok((owner, id))
    }

    /// Sets the ACL and ownership controls a CreateBucket asked for, once the bucket
    /// exists (checked beforehand by [`Gateway::check_new_bucket_acl`]).
    pub(super) async fn apply_new_bucket_acl(
        &self,
        bucket: &str,
        acl: Option<&Acl>,
        ownership: Option<Ownership>,
    ) -> S3Result<()> {
        if let Some(o) = ownership {
            self.store
                .set_bucket_document(bucket, OWNERSHIP_KIND, Some(o.as_str().as_bytes()))
                .await
                .map_err(to_s3)?;
        }
        if let Some(acl) = acl {
            self.store
                .set_bucket_document(bucket, ACL_KIND, Some(&acl.encode()))
                .await
                .map_err(to_s3)?;
        }
        Ok(())
    }

    /// The ACL and ownership a CreateBucket asks for, checked before the bucket is made.
    pub(super) async fn check_new_bucket_acl(
        &self,
        r: &AclRequest<'_>,
        ownership: Option<&dto::ObjectOwnership>,
        owner_id: &str,
    ) -> S3Result<(Option<Acl>, Option<Ownership>)> {
        let ownership = match ownership {
            None => None,
            Some(o) => Some(Ownership::parse(o.as_str()).ok_or_else(|| {
                s3_error!(
                    InvalidArgument,
                    "Invalid x-amz-object-ownership {:?}",
                    o.as_str()
                )
            })?),
        };
        let acl = self.requested_acl(r, owner_id).await?;
        if let Some(acl) = &acl
            && ownership.is_some_and(|o| !o.acls_enabled())
            && !acl.owner_only(owner_id)
        {
            return Err(with_enforced_ownership());
        }
        Ok((acl, ownership))
    }

    pub(super) async fn put_bucket_acl_impl(
        &self,
        req: S3Request<dto::PutBucketAclInput>,
    ) -> S3Result<S3Response<dto::PutBucketAclOutput>> {
        let i = req.input;
        let (_, owner_id) = self.owner_and_id(&i.bucket).await?;
        let r = AclRequest {
            canned: i.acl.as_ref().map(dto::BucketCannedACL::as_str),
            grants: grants_of!(i),
            body: i.access_control_policy.as_ref(),
        };
        let acl = self.requested_acl(&r, &owner_id).await?.ok_or_else(|| {
            AclError::Malformed("no ACL given: send x-amz-acl, x-amz-grant-* headers or an AccessControlPolicy body".into()).to_s3()
        })?;
        let block = self
            .store
            .bucket_document(&i.bucket, BLOCK_KIND)
            .await
            .map_err(to_s3)?
            .and_then(|b| PublicAccessBlock::decode(&b))
            .unwrap_or_default();
        let ownership = self.ownership_of(&i.bucket).await?.unwrap_or_default();
        Self::acl_allowed(&acl, &owner_id, ownership, block)?;
        self.store
            .set_bucket_document(&i.bucket, ACL_KIND, Some(&acl.encode()))
            .await
            .map_err(to_s3)?;
        Ok(S3Response::new(dto::PutBucketAclOutput::default()))
    }

    pub(super) async fn get_bucket_acl_impl(
        &self,
        req: S3Request<dto::GetBucketAclInput>,
    ) -> S3Result<S3Response<dto::GetBucketAclOutput>> {
        let b = &req.input.bucket;
        let (owner, owner_id) = self.owner_and_id(b).await?;
        let enabled = self
            .ownership_of(b)
            .await?
            .unwrap_or_default()
            .acls_enabled();
        let acl = match self.acl_of(b).await? {
            Some(acl) if enabled => acl,
            _ => Acl::canned("private", &owner_id).map_err(|e| e.to_s3())?,
        };
        Ok(S3Response::new(dto::GetBucketAclOutput {
            grants: Some(acl.to_dto()),
            owner: Some(owner),
        }))
    }

    /// The bucket's ownership controls and public access block.
    async fn acl_settings(&self, bucket: &str) -> S3Result<(Ownership, PublicAccessBlock)> {
        let block = self
            .store
            .bucket_document(bucket, BLOCK_KIND)
            .await
            .map_err(to_s3)?
            .and_then(|b| PublicAccessBlock::decode(&b))
            .unwrap_or_default();
        let ownership = self.ownership_of(bucket).await?.unwrap_or_default();
        Ok((ownership, block))
    }

    /// The ACL an object write asks for (`x-amz-acl`, `x-amz-grant-*`), checked against
    /// the bucket's settings and encoded for storage; `None` when it asks for none or
    /// grants only the owner (what every object has without one).
    pub(super) async fn object_acl_for_write(
        &self,
        bucket: &str,
        canned: Option<&str>,
        grants: [Option<&str>; 5],
    ) -> S3Result<Option<Vec<u8>>> {
        if canned.is_none() && grants.iter().all(Option::is_none) {
            return Ok(None);
        }
        let (_, owner_id) = self.owner_and_id(bucket).await?;
        let r = AclRequest {
            canned,
            grants,
            body: None,
        };
        let Some(acl) = self.requested_acl(&r, &owner_id).await? else {
            return Ok(None);
        };
        let (ownership, block) = self.acl_settings(bucket).await?;
        Self::acl_allowed(&acl, &owner_id, ownership, block)?;
        Ok((!acl.owner_only(&owner_id)).then(|| acl.encode()))
    }

    pub(super) async fn get_object_acl_impl(
        &self,
        req: S3Request<dto::GetObjectAclInput>,
    ) -> S3Result<S3Response<dto::GetObjectAclOutput>> {
        let (_, checked) = super::authorize::auth_of(&req);
        let i = req.input;
        let (owner, owner_id) = self.owner_and_id(&i.bucket).await?;
        let (object, rec) = self
            .store
            .object_lock(&i.bucket, &i.key, i.version_id.as_deref())
            .await
            .map_err(to_s3)?;
        crate::access::check_acl_version(checked.as_ref(), object.version)?;
        let enabled = self
            .ownership_of(&i.bucket)
            .await?
            .unwrap_or_default()
            .acls_enabled();
        let acl = match rec.acl.as_deref().map(Acl::decode) {
            Some(Some(acl)) if enabled => acl,
            Some(None) => {
                tracing::warn!(bucket = %i.bucket, key = %i.key, "stored object ACL does not decode");
                return Err(s3_error!(
                    InternalError,
                    "The ACL of {}/{} cannot be read",
                    i.bucket,
                    i.key
                ));
            }
            _ => Acl::canned("private", &owner_id).map_err(|e| e.to_s3())?,
        };
        Ok(S3Response::new(dto::GetObjectAclOutput {
            grants: Some(acl.to_dto()),
            owner: Some(owner),
            request_charged: None,
        }))
    }

    pub(super) async fn put_object_acl_impl(
        &self,
        req: S3Request<dto::PutObjectAclInput>,
    ) -> S3Result<S3Response<dto::PutObjectAclOutput>> {
        let (_, checked) = super::authorize::auth_of(&req);
        let i = req.input;
        let (_, owner_id) = self.owner_and_id(&i.bucket).await?;
        let r = AclRequest {
            canned: i.acl.as_ref().map(dto::ObjectCannedACL::as_str),
            grants: grants_of!(i),
            body: i.access_control_policy.as_ref(),
        };
        let acl = self.requested_acl(&r, &owner_id).await?.ok_or_else(|| {
            AclError::Malformed("no ACL given: send x-amz-acl, x-amz-grant-* headers or an AccessControlPolicy body".into()).to_s3()
        })?;
        let (ownership, block) = self.acl_settings(&i.bucket).await?;
        Self::acl_allowed(&acl, &owner_id, ownership, block)?;
        let stored = (!acl.owner_only(&owner_id)).then(|| acl.encode());
        // Granted by the ACL of one version: that version's ACL is the one changed.
        let expect = checked.as_ref().and_then(|c| c.acl_version);
        self.store
            .set_object_acl(&i.bucket, &i.key, i.version_id.as_deref(), expect, stored)
            .await
            .map_err(|e| match e {
                s3dedup_storage::Error::Conflict(_) => s3_error!(
                    AccessDenied,
                    "Access Denied: the object changed since its ACL was checked; retry"
                ),
                e => to_s3(e),
            })?;
        Ok(S3Response::new(dto::PutObjectAclOutput::default()))
    }

    pub(super) async fn put_bucket_ownership_controls_impl(
        &self,
        req: S3Request<dto::PutBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<dto::PutBucketOwnershipControlsOutput>> {
        let i = req.input;
        let (_, owner_id) = self.owner_and_id(&i.bucket).await?;
        let [rule] = i.ownership_controls.rules.as_slice() else {
            return Err(s3_error!(
                MalformedXML,
                "OwnershipControls must hold exactly one Rule"
            ));
        };
        let o = rule.object_ownership.as_str();
        let ownership = Ownership::parse(o)
            .ok_or_else(|| s3_error!(MalformedXML, "Unknown ObjectOwnership {o:?}"))?;
        if !ownership.acls_enabled()
            && self
                .acl_of(&i.bucket)
                .await?
                .is_some_and(|acl| !acl.owner_only(&owner_id))
        {
            return Err(with_enforced_ownership());
        }
        self.store
            .set_bucket_document(
                &i.bucket,
                OWNERSHIP_KIND,
                Some(ownership.as_str().as_bytes()),
            )
            .await
            .map_err(to_s3)?;
        Ok(S3Response::new(
            dto::PutBucketOwnershipControlsOutput::default(),
        ))
    }

    pub(super) async fn get_bucket_ownership_controls_impl(
        &self,
        req: S3Request<dto::GetBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<dto::GetBucketOwnershipControlsOutput>> {
        let b = &req.input.bucket;
        self.require_bucket(b).await?;
        let Some(o) = self.ownership_of(b).await? else {
            return Err(S3Error::with_message(
                S3ErrorCode::OwnershipControlsNotFoundError,
                format!("The bucket ownership controls were not found: {b}"),
            ));
        };
        Ok(S3Response::new(dto::GetBucketOwnershipControlsOutput {
            ownership_controls: Some(dto::OwnershipControls {
                rules: vec![dto::OwnershipControlsRule {
                    object_ownership: dto::ObjectOwnership::from_static(o.as_str()),
                }],
            }),
        }))
    }

    pub(super) async fn delete_bucket_ownership_controls_impl(
        &self,
        req: S3Request<dto::DeleteBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketOwnershipControlsOutput>> {
        let b = &req.input.bucket;
        self.require_bucket(b).await?;
        self.store
            .set_bucket_document(b, OWNERSHIP_KIND, None)
            .await
            .map_err(to_s3)?;
        Ok(S3Response::with_status(
            dto::DeleteBucketOwnershipControlsOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }
}
