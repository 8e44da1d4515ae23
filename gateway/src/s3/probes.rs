//! GETs of bucket configurations s3dedup does not keep, answered as S3 answers for a
//! bucket without that configuration (clients and consoles probe them; a 501 would
//! read as a broken server): the specific "not found" error, or the empty or default
//! document. The PUTs stay NotImplemented. GetBucketEncryption reflects the store:
//! the AES256 (SSE-S3) default when chunks are encrypted at rest, none otherwise.

use s3s::dto;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use crate::error::to_s3;

impl Gateway {
    /// Refuses a missing bucket (404 NoSuchBucket), as every probe must first.
    async fn existing(&self, bucket: &str) -> S3Result<()> {
        match self.store.bucket(bucket).await.map_err(to_s3)? {
            Some(_) => Ok(()),
            None => Err(s3_error!(
                NoSuchBucket,
                "The specified bucket does not exist: {bucket}"
            )),
        }
    }

    pub(super) async fn get_bucket_website_impl(
        &self,
        req: S3Request<dto::GetBucketWebsiteInput>,
    ) -> S3Result<S3Response<dto::GetBucketWebsiteOutput>> {
        self.existing(&req.input.bucket).await?;
        Err(s3_error!(
            NoSuchWebsiteConfiguration,
            "The specified bucket does not have a website configuration"
        ))
    }

    pub(super) async fn get_bucket_replication_impl(
        &self,
        req: S3Request<dto::GetBucketReplicationInput>,
    ) -> S3Result<S3Response<dto::GetBucketReplicationOutput>> {
        self.existing(&req.input.bucket).await?;
        Err(s3_error!(
            ReplicationConfigurationNotFoundError,
            "The replication configuration was not found"
        ))
    }

    pub(super) async fn get_bucket_encryption_impl(
        &self,
        req: S3Request<dto::GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<dto::GetBucketEncryptionOutput>> {
        self.existing(&req.input.bucket).await?;
        if self.store.encryption().active_key.is_none() {
            let mut e = s3_error!(
                ServerSideEncryptionConfigurationNotFoundError,
                "The server side encryption configuration was not found (this store does not encrypt data at rest)"
            );
            e.set_status_code(http::StatusCode::NOT_FOUND);
            return Err(e);
        }
        let rule = dto::ServerSideEncryptionRule {
            apply_server_side_encryption_by_default: Some(dto::ServerSideEncryptionByDefault {
                sse_algorithm: dto::ServerSideEncryption::from_static(
                    dto::ServerSideEncryption::AES256,
                ),
                kms_master_key_id: None,
            }),
            bucket_key_enabled: Some(false),
        };
        Ok(S3Response::new(dto::GetBucketEncryptionOutput {
            server_side_encryption_configuration: Some(dto::ServerSideEncryptionConfiguration {
                rules: vec![rule],
            }),
        }))
    }

    pub(super) async fn get_bucket_logging_impl(
        &self,
        req: S3Request<dto::GetBucketLoggingInput>,
    ) -> S3Result<S3Response<dto::GetBucketLoggingOutput>> {
        self.existing(&req.input.bucket).await?;
        Ok(S3Response::new(dto::GetBucketLoggingOutput::default()))
    }

    pub(super) async fn get_bucket_notification_configuration_impl(
        &self,
        req: S3Request<dto::GetBucketNotificationConfigurationInput>,
    ) -> S3Result<S3Response<dto::GetBucketNotificationConfigurationOutput>> {
        self.existing(&req.input.bucket).await?;
        Ok(S3Response::new(
            dto::GetBucketNotificationConfigurationOutput::default(),
        ))
    }

    pub(super) async fn get_bucket_accelerate_configuration_impl(
        &self,
        req: S3Request<dto::GetBucketAccelerateConfigurationInput>,
    ) -> S3Result<S3Response<dto::GetBucketAccelerateConfigurationOutput>> {
        self.existing(&req.input.bucket).await?;
        Ok(S3Response::new(
            dto::GetBucketAccelerateConfigurationOutput::default(),
        ))
    }

    pub(super) async fn get_bucket_request_payment_impl(
        &self,
        req: S3Request<dto::GetBucketRequestPaymentInput>,
    ) -> S3Result<S3Response<dto::GetBucketRequestPaymentOutput>> {
        self.existing(&req.input.bucket).await?;
        Ok(S3Response::new(dto::GetBucketRequestPaymentOutput {
            payer: Some(dto::Payer::from_static(dto::Payer::BUCKET_OWNER)),
        }))
    }
}
