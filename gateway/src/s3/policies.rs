//! Bucket policies (Put/Get/DeleteBucketPolicy, GetBucketPolicyStatus) and public
//! access blocks (Put/Get/DeletePublicAccessBlock). Only a bucket's owner (or the root
//! key) reaches these: see `crate::authz`.

use s3s::dto;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use crate::access::{BLOCK_KIND, POLICY_KIND};
use crate::authz::PublicAccessBlock;
use crate::error::to_s3;
use crate::policy::Policy;

fn no_content<T>(out: T) -> S3Response<T> {
    S3Response::with_status(out, http::StatusCode::NO_CONTENT)
}

impl Gateway {
    async fn block_of(&self, bucket: &str) -> S3Result<Option<PublicAccessBlock>> {
        let raw = self
            .store
            .bucket_document(bucket, BLOCK_KIND)
            .await
            .map_err(to_s3)?;
        Ok(raw.and_then(|b| PublicAccessBlock::decode(&b)))
    }

    async fn policy_of(&self, bucket: &str) -> S3Result<Option<String>> {
        let raw = self
            .store
            .bucket_document(bucket, POLICY_KIND)
            .await
            .map_err(to_s3)?;
        Ok(raw.map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    pub(super) async fn put_bucket_policy_impl(
        &self,
        req: S3Request<dto::PutBucketPolicyInput>,
    ) -> S3Result<S3Response<dto::PutBucketPolicyOutput>> {
        let i = req.input;
        self.require_bucket(&i.bucket).await?;
        let tenants: Vec<String> = self
            .store
            .tenants()
            .await
            .map_err(to_s3)?
            .into_iter()
            .map(|t| t.name)
            .collect();
        let policy = Policy::parse(&i.policy, &i.bucket, &|t| tenants.iter().any(|n| n == t))
            .map_err(|m| S3Error::with_message(S3ErrorCode::MalformedPolicy, m))?;
        if policy.is_public()
            && self
                .block_of(&i.bucket)
                .await?
                .is_some_and(|b| b.block_public_policy)
        {
            return Err(s3_error!(
                AccessDenied,
                "Access Denied: this policy grants public access, and the bucket's public access block has BlockPublicPolicy set"
            ));
        }
        self.store
            .set_bucket_document(&i.bucket, POLICY_KIND, Some(i.policy.as_bytes()))
            .await
            .map_err(to_s3)?;
        Ok(no_content(dto::PutBucketPolicyOutput::default()))
    }

    pub(super) async fn get_bucket_policy_impl(
        &self,
        req: S3Request<dto::GetBucketPolicyInput>,
    ) -> S3Result<S3Response<dto::GetBucketPolicyOutput>> {
        let b = &req.input.bucket;
        self.require_bucket(b).await?;
        match self.policy_of(b).await? {
            Some(p) => Ok(S3Response::new(dto::GetBucketPolicyOutput {
                policy: Some(p),
            })),
            None => Err(s3_error!(
                NoSuchBucketPolicy,
                "The bucket policy does not exist: {b}"
            )),
        }
    }

    pub(super) async fn delete_bucket_policy_impl(
        &self,
        req: S3Request<dto::DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketPolicyOutput>> {
        let b = &req.input.bucket;
        self.require_bucket(b).await?;
        self.store
            .set_bucket_document(b, POLICY_KIND, None)
            .await
            .map_err(to_s3)?;
        Ok(no_content(dto::DeleteBucketPolicyOutput::default()))
    }

    pub(super) async fn get_bucket_policy_status_impl(
        &self,
        req: S3Request<dto::GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<dto::GetBucketPolicyStatusOutput>> {
        let b = &req.input.bucket;
        self.require_bucket(b).await?;
        let Some(text) = self.policy_of(b).await? else {
            return Err(s3_error!(
                NoSuchBucketPolicy,
                "The bucket policy does not exist: {b}"
            ));
        };
        let public = Policy::parse(&text, b, &|_| true).is_ok_and(|p| p.is_public());
        Ok(S3Response::new(dto::GetBucketPolicyStatusOutput {
            policy_status: Some(dto::PolicyStatus {
                is_public: Some(public),
            }),
        }))
    }

    pub(super) async fn put_public_access_block_impl(
        &self,
        req: S3Request<dto::PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<dto::PutPublicAccessBlockOutput>> {
        let i = req.input;
        self.require_bucket(&i.bucket).await?;
        let c = i.public_access_block_configuration;
        let block = PublicAccessBlock {
            block_public_acls: c.block_public_acls.unwrap_or(false),
            ignore_public_acls: c.ignore_public_acls.unwrap_or(false),
            block_public_policy: c.block_public_policy.unwrap_or(false),
            restrict_public_buckets: c.restrict_public_buckets.unwrap_or(false),
        };
        self.store
            .set_bucket_document(&i.bucket, BLOCK_KIND, Some(&block.encode()))
            .await
            .map_err(to_s3)?;
        Ok(S3Response::new(dto::PutPublicAccessBlockOutput::default()))
    }

    pub(super) async fn get_public_access_block_impl(
        &self,
        req: S3Request<dto::GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<dto::GetPublicAccessBlockOutput>> {
        let b = &req.input.bucket;
        self.require_bucket(b).await?;
        let Some(block) = self.block_of(b).await? else {
            let mut e = S3Error::with_message(
                S3ErrorCode::Custom("NoSuchPublicAccessBlockConfiguration".into()),
                format!("The public access block configuration was not found: {b}"),
            );
            e.set_status_code(http::StatusCode::NOT_FOUND);
            return Err(e);
        };
        Ok(S3Response::new(dto::GetPublicAccessBlockOutput {
            public_access_block_configuration: Some(dto::PublicAccessBlockConfiguration {
                block_public_acls: Some(block.block_public_acls),
                ignore_public_acls: Some(block.ignore_public_acls),
                block_public_policy: Some(block.block_public_policy),
                restrict_public_buckets: Some(block.restrict_public_buckets),
            }),
        }))
    }

    pub(super) async fn delete_public_access_block_impl(
        &self,
        req: S3Request<dto::DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<dto::DeletePublicAccessBlockOutput>> {
        let b = &req.input.bucket;
        self.require_bucket(b).await?;
        self.store
            .set_bucket_document(b, BLOCK_KIND, None)
            .await
            .map_err(to_s3)?;
        Ok(no_content(dto::DeletePublicAccessBlockOutput::default()))
    }
}
