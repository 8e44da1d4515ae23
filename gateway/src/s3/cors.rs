//! Put/Get/DeleteBucketCors: a bucket's CORS rules, checked as S3 checks them and kept
//! as a bucket document (journaled, removed with the bucket). Preflights and the
//! `Access-Control-*` headers of other requests are answered by [`crate::cors`] at the
//! server, before and after s3s.

use s3s::dto;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use crate::cors::{CORS_KIND, Rule, Rules};
use crate::error::to_s3;

fn rules_of(c: dto::CORSConfiguration) -> Rules {
    Rules {
        rules: c
            .cors_rules
            .into_iter()
            .map(|r| Rule {
                id: r.id,
                origins: r.allowed_origins,
                methods: r.allowed_methods,
                headers: r.allowed_headers.unwrap_or_default(),
                expose: r.expose_headers.unwrap_or_default(),
                max_age: r.max_age_seconds,
            })
            .collect(),
    }
}

fn dto_of(r: Rules) -> Vec<dto::CORSRule> {
    r.rules
        .into_iter()
        .map(|r| dto::CORSRule {
            id: r.id,
            allowed_origins: r.origins,
            allowed_methods: r.methods,
            allowed_headers: (!r.headers.is_empty()).then_some(r.headers),
            expose_headers: (!r.expose.is_empty()).then_some(r.expose),
            max_age_seconds: r.max_age,
        })
        .collect()
}

impl Gateway {
    pub(super) async fn put_bucket_cors_impl(
        &self,
        req: S3Request<dto::PutBucketCorsInput>,
    ) -> S3Result<S3Response<dto::PutBucketCorsOutput>> {
        let i = req.input;
        let rules = rules_of(i.cors_configuration);
        if let Err((code, message)) = rules.check() {
            let mut e = S3Error::with_message(
                S3ErrorCode::from_bytes(code.as_bytes()).unwrap_or(S3ErrorCode::InvalidRequest),
                message,
            );
            e.set_status_code(http::StatusCode::BAD_REQUEST);
            return Err(e);
        }
        self.store
            .set_bucket_document(&i.bucket, CORS_KIND, Some(&rules.encode()))
            .await
            .map_err(to_s3)?;
        Ok(S3Response::new(dto::PutBucketCorsOutput::default()))
    }

    pub(super) async fn get_bucket_cors_impl(
        &self,
        req: S3Request<dto::GetBucketCorsInput>,
    ) -> S3Result<S3Response<dto::GetBucketCorsOutput>> {
        let doc = self
            .store
            .bucket_document(&req.input.bucket, CORS_KIND)
            .await
            .map_err(to_s3)?;
        let Some(doc) = doc else {
            return Err(s3_error!(
                NoSuchCORSConfiguration,
                "The CORS configuration does not exist"
            ));
        };
        let rules = Rules::decode(&doc).ok_or_else(|| {
            s3_error!(InternalError, "The bucket's stored CORS rules are damaged")
        })?;
        Ok(S3Response::new(dto::GetBucketCorsOutput {
            cors_rules: Some(dto_of(rules)),
        }))
    }

    pub(super) async fn delete_bucket_cors_impl(
        &self,
        req: S3Request<dto::DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketCorsOutput>> {
        self.store
            .set_bucket_document(&req.input.bucket, CORS_KIND, None)
            .await
            .map_err(to_s3)?;
        Ok(S3Response::with_status(
            dto::DeleteBucketCorsOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }
}
