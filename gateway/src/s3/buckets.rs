//! Bucket operations.

use s3s::dto;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::{Gateway, timestamp};
use crate::error::to_s3;

/// S3 bucket naming rules (general purpose buckets).
#[cfg(test)]
fn valid_bucket_name(name: &str) -> bool {
    crate::bucket_name::problem(name).is_none()
}

impl Gateway {
    pub(super) async fn list_buckets_impl(
        &self,
        req: S3Request<dto::ListBucketsInput>,
    ) -> S3Result<S3Response<dto::ListBucketsOutput>> {
        // The caller's tenant's buckets (the root key's: the root tenant's).
        let mine = super::authorize::principal(&req)
            .owner()
            .unwrap_or("")
            .to_owned();
        let i = &req.input;
        let max = match i.max_buckets {
            None => usize::MAX,
            Some(n @ 1..=10_000) => n as usize,
            Some(_) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "Argument max-buckets must be an integer between 1 and 10000."
                ));
            }
        };
        // The token is the last name of the previous page (base64url: opaque to
        // clients, as S3's are).
        let after = match i.continuation_token.as_deref().filter(|t| !t.is_empty()) {
            None => None,
            Some(t) => Some(super::list::decode_token(t)?),
        };
        let prefix = i.prefix.clone().unwrap_or_default();
        let mut buckets = self.store.buckets().await.map_err(to_s3)?;
        buckets.retain(|(name, rec)| {
            rec.owner == mine
                && name.starts_with(&prefix)
                && after.as_ref().is_none_or(|a| name > a)
        });
        let more = buckets.len() > max;
        buckets.truncate(max);
        let token = more
            .then(|| buckets.last().map(|(n, _)| n.clone()))
            .flatten()
            .map(|n| super::list::encode_token(&n));
        Ok(S3Response::new(dto::ListBucketsOutput {
            buckets: Some(
                buckets
                    .into_iter()
                    .map(|(name, rec)| dto::Bucket {
                        name: Some(name),
                        creation_date: Some(timestamp(rec.created_ms)),
                        ..Default::default()
                    })
                    .collect(),
            ),
            owner: Some(self.owner_named(&mine).await?),
            continuation_token: token,
            prefix: i.prefix.clone(),
        }))
    }

    pub(super) async fn create_bucket_impl(
        &self,
        req: S3Request<dto::CreateBucketInput>,
    ) -> S3Result<S3Response<dto::CreateBucketOutput>> {
        let principal = super::authorize::principal(&req);
        let owner = principal.owner().unwrap_or("").to_owned();
        let owner_id = match &principal {
            crate::authz::Principal::Tenant { canonical_id, .. } => canonical_id.clone(),
            _ => s3dedup_storage::identity::Tenant::root_canonical_id(),
        };
        let i = &req.input;
        let asked = super::acls::AclRequest {
            canned: i.acl.as_ref().map(dto::BucketCannedACL::as_str),
            grants: super::acls::grants_of!(i),
            body: None,
        };
        // Checked before the bucket exists: a refused ACL creates nothing.
        let (acl, ownership) = self
            .check_new_bucket_acl(&asked, i.object_ownership.as_ref(), &owner_id)
            .await?;
        let name = req.input.bucket;
        let lock = req.input.object_lock_enabled_for_bucket == Some(true);
        if let Some(rule) = crate::bucket_name::problem(&name) {
            return Err(s3_error!(
                InvalidBucketName,
                "The specified bucket is not valid: {name:?}: {rule}"
            ));
        }
        if let Some(c) = req
            .input
            .create_bucket_configuration
            .and_then(|c| c.location_constraint)
            && !c.as_str().is_empty()
            && c.as_str() != self.settings.region
            && !(c.as_str() == "US" && self.settings.region == "us-east-1")
        {
            return Err(s3_error!(
                InvalidLocationConstraint,
                "This endpoint serves region {}",
                self.settings.region
            ));
        }
        match self.store.create_bucket_owned(&name, &owner, lock).await {
            Ok(()) => {}
            // Names are global: whose it is decides the answer.
            Err(s3dedup_storage::Error::BucketExists(_)) => {
                let theirs = self.store.bucket(&name).await.map_err(to_s3)?;
                return Err(match theirs {
                    Some(r) if r.owner != owner => s3_error!(
                        BucketAlreadyExists,
                        "The requested bucket name is not available: {name} belongs to another \
                         tenant; select a different name and try again"
                    ),
                    _ => s3_error!(BucketAlreadyOwnedByYou, "You already own bucket {name}"),
                });
            }
            Err(e) => return Err(to_s3(e)),
        }
        self.apply_new_bucket_acl(&name, acl.as_ref(), ownership)
            .await?;
        Ok(S3Response::new(dto::CreateBucketOutput {
            location: Some(format!("/{name}")),
        }))
    }

    pub(super) async fn head_bucket_impl(
        &self,
        req: S3Request<dto::HeadBucketInput>,
    ) -> S3Result<S3Response<dto::HeadBucketOutput>> {
        match self.store.bucket(&req.input.bucket).await.map_err(to_s3)? {
            Some(_) => Ok(S3Response::new(dto::HeadBucketOutput {
                bucket_region: Some(self.settings.region.clone()),
                ..Default::default()
            })),
            None => Err(s3_error!(
                NoSuchBucket,
                "The specified bucket does not exist: {}",
                req.input.bucket
            )),
        }
    }

    pub(super) async fn delete_bucket_impl(
        &self,
        req: S3Request<dto::DeleteBucketInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketOutput>> {
        self.store
            .delete_bucket(&req.input.bucket)
            .await
            .map_err(to_s3)?;
        Ok(S3Response::with_status(
            dto::DeleteBucketOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }

    pub(super) async fn get_bucket_location_impl(
        &self,
        req: S3Request<dto::GetBucketLocationInput>,
    ) -> S3Result<S3Response<dto::GetBucketLocationOutput>> {
        self.require_bucket(&req.input.bucket).await?;
        // us-east-1 is reported as an empty constraint, as S3 does.
        let region = &self.settings.region;
        Ok(S3Response::new(dto::GetBucketLocationOutput {
            location_constraint: (region != "us-east-1")
                .then(|| dto::BucketLocationConstraint::from(region.clone())),
        }))
    }

    /// NoSuchBucket unless `bucket` exists (checked before reading a request body; the
    /// commit checks again, authoritatively).
    pub(super) async fn require_bucket(&self, bucket: &str) -> S3Result<()> {
        match self.store.bucket(bucket).await.map_err(to_s3)? {
            Some(_) => Ok(()),
            None => Err(s3_error!(
                NoSuchBucket,
                "The specified bucket does not exist: {bucket}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::valid_bucket_name;

    #[test]
    fn bucket_names() {
        for ok in ["abc", "my-bucket.data", "a1b", &"a".repeat(63)] {
            assert!(valid_bucket_name(ok), "{ok}");
        }
        for bad in [
            "ab",
            "Abc",
            "-abc",
            "abc-",
            "a..b",
            "192.168.1.1",
            "a_b",
            "xn--abc",
            &"a".repeat(64),
            "a.-b",
        ] {
            assert!(!valid_bucket_name(bad), "{bad}");
        }
    }
}
