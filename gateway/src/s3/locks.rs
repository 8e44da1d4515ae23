//! Object lock: Put/GetObjectLockConfiguration, Put/GetObjectRetention,
//! Put/GetObjectLegalHold, and the `x-amz-object-lock-*` headers of writes and reads.

use s3dedup_storage::lock::{LockConfig, LockRecord, Period, Retention, RetentionMode};
use s3dedup_storage::{LockRequest, ObjectRecord};
use s3s::dto::{self, Timestamp};
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::{Gateway, timestamp};
use crate::clock::now_ms;
use crate::error::to_s3;

pub(super) fn ms_of(t: &Timestamp) -> u64 {
    let t = time::OffsetDateTime::from(t.clone());
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

fn mode(s: &str) -> S3Result<RetentionMode> {
    RetentionMode::parse(s).map_err(|_| {
        s3_error!(
            InvalidArgument,
            "Unknown wormMode directive {s:?}: it must be GOVERNANCE or COMPLIANCE"
        )
    })
}

fn legal_hold(s: &str) -> S3Result<bool> {
    match s {
        dto::ObjectLockLegalHoldStatus::ON => Ok(true),
        dto::ObjectLockLegalHoldStatus::OFF => Ok(false),
        other => Err(s3_error!(
            InvalidArgument,
            "Legal hold status must be ON or OFF, not {other:?}"
        )),
    }
}

/// A retention a client asks for: both mode and date, the date in the future.
fn retention(m: Option<&str>, until: Option<&Timestamp>) -> S3Result<Option<Retention>> {
    match (m, until) {
        (None, None) => Ok(None),
        (Some(m), Some(u)) => {
            let until_ms = ms_of(u);
            if until_ms <= now_ms() {
                return Err(s3_error!(
                    InvalidArgument,
                    "The retain until date must be in the future!"
                ));
            }
            Ok(Some(Retention {
                mode: mode(m)?,
                until_ms,
            }))
        }
        _ => Err(s3_error!(
            InvalidArgument,
            "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied"
        )),
    }
}

/// The lock a PUT or copy asks for in its `x-amz-object-lock-*` headers.
pub(super) fn lock_request(
    m: Option<&dto::ObjectLockMode>,
    until: Option<&Timestamp>,
    hold: Option<&dto::ObjectLockLegalHoldStatus>,
) -> S3Result<LockRequest> {
    Ok(LockRequest {
        retention: retention(m.map(dto::ObjectLockMode::as_str), until)?,
        legal_hold: hold.map(|h| legal_hold(h.as_str())).transpose()?,
    })
}

/// The `x-amz-object-lock-*` (and `x-amz-tagging-count`) headers of a GET or HEAD.
#[derive(Default)]
pub(super) struct LockHeaders {
    pub(super) mode: Option<dto::ObjectLockMode>,
    pub(super) until: Option<Timestamp>,
    pub(super) hold: Option<dto::ObjectLockLegalHoldStatus>,
    /// `x-amz-tagging-count`: how many tags the version has, when it has any.
    pub(super) tag_count: Option<i32>,
}

fn headers_of(lock: &LockRecord) -> LockHeaders {
    LockHeaders {
        mode: lock
            .retention
            .map(|r| dto::ObjectLockMode::from_static(r.mode.as_str())),
        until: lock.retention.map(|r| timestamp(r.until_ms)),
        hold: lock.legal_hold.then(|| {
            dto::ObjectLockLegalHoldStatus::from_static(dto::ObjectLockLegalHoldStatus::ON)
        }),
        tag_count: None,
    }
}

fn no_object_lock() -> s3s::S3Error {
    s3_error!(
        NoSuchObjectLockConfiguration,
        "The specified object does not have a ObjectLock configuration"
    )
}

fn no_lock_config() -> s3s::S3Error {
    s3_error!(
        ObjectLockConfigurationNotFoundError,
        "Object Lock configuration does not exist for this bucket"
    )
}

impl Gateway {
    /// A read's `x-amz-version-id` (see [`Gateway::version_header`]),
    /// `x-amz-object-lock-*` and `x-amz-tagging-count` headers.
    pub(super) async fn read_headers(
        &self,
        bucket: &str,
        key: &str,
        rec: &ObjectRecord,
    ) -> S3Result<(Option<String>, LockHeaders)> {
        let b = self
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
        let version = super::versions::read_version_id(rec, b.versioning);
        // The version's own record: its lock (in a bucket with object lock) and tags.
        let side = self
            .store
            .version_record(bucket, key, rec.version)
            .await
            .map_err(to_s3)?;
        let mut h = if b.lock.enabled {
            headers_of(&side)
        } else {
            LockHeaders::default()
        };
        h.tag_count = (!side.tags.is_empty()).then_some(side.tags.len() as i32);
        Ok((version, h))
    }

    pub(super) async fn put_object_lock_configuration_impl(
        &self,
        req: S3Request<dto::PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<dto::PutObjectLockConfigurationOutput>> {
        let i = req.input;
        let c = i.object_lock_configuration.ok_or_else(|| {
            s3_error!(
                MalformedXML,
                "The request carries no ObjectLockConfiguration"
            )
        })?;
        if c.object_lock_enabled
            .as_ref()
            .map(dto::ObjectLockEnabled::as_str)
            != Some(dto::ObjectLockEnabled::ENABLED)
        {
            return Err(s3_error!(MalformedXML, "ObjectLockEnabled must be Enabled"));
        }
        let default = match c.rule.and_then(|r| r.default_retention) {
            None => None,
            Some(d) => {
                let m = d
                    .mode
                    .as_ref()
                    .ok_or_else(|| s3_error!(MalformedXML, "DefaultRetention needs a Mode"))?;
                let period = match (d.days, d.years) {
                    (Some(n), None) if n > 0 => Period::Days(n as u32),
                    (None, Some(n)) if n > 0 => Period::Years(n as u32),
                    (Some(_), Some(_)) => {
                        return Err(s3_error!(
                            MalformedXML,
                            "DefaultRetention takes Days or Years, not both"
                        ));
                    }
                    (None, None) => {
                        return Err(s3_error!(
                            MalformedXML,
                            "DefaultRetention needs Days or Years"
                        ));
                    }
                    _ => {
                        return Err(s3_error!(
                            InvalidArgument,
                            "Default retention period must be a positive integer value"
                        ));
                    }
                };
                Some((mode(m.as_str())?, period))
            }
        };
        self.store
            .set_lock_config(
                &i.bucket,
                LockConfig {
                    enabled: true,
                    default,
                },
            )
            .await
            .map_err(to_s3)?;
        Ok(S3Response::new(
            dto::PutObjectLockConfigurationOutput::default(),
        ))
    }

    pub(super) async fn get_object_lock_configuration_impl(
        &self,
        req: S3Request<dto::GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<dto::GetObjectLockConfigurationOutput>> {
        let b = self
            .store
            .bucket(&req.input.bucket)
            .await
            .map_err(to_s3)?
            .ok_or_else(|| {
                s3_error!(
                    NoSuchBucket,
                    "The specified bucket does not exist: {}",
                    req.input.bucket
                )
            })?;
        if !b.lock.enabled {
            return Err(no_lock_config());
        }
        let rule = b.lock.default.map(|(m, p)| dto::ObjectLockRule {
            default_retention: Some(dto::DefaultRetention {
                mode: Some(dto::ObjectLockRetentionMode::from_static(m.as_str())),
                days: match p {
                    Period::Days(d) => Some(d as i32),
                    Period::Years(_) => None,
                },
                years: match p {
                    Period::Years(y) => Some(y as i32),
                    Period::Days(_) => None,
                },
            }),
        });
        Ok(S3Response::new(dto::GetObjectLockConfigurationOutput {
            object_lock_configuration: Some(dto::ObjectLockConfiguration {
                object_lock_enabled: Some(dto::ObjectLockEnabled::from_static(
                    dto::ObjectLockEnabled::ENABLED,
                )),
                rule,
            }),
        }))
    }

    pub(super) async fn put_object_retention_impl(
        &self,
        req: S3Request<dto::PutObjectRetentionInput>,
    ) -> S3Result<S3Response<dto::PutObjectRetentionOutput>> {
        let i = req.input;
        let r = i.retention.unwrap_or_default();
        let new = retention(
            r.mode.as_ref().map(dto::ObjectLockRetentionMode::as_str),
            r.retain_until_date.as_ref(),
        )?;
        self.store
            .put_retention(
                &i.bucket,
                &i.key,
                i.version_id.as_deref(),
                new,
                i.bypass_governance_retention == Some(true),
            )
            .await
            .map_err(to_s3)?;
        Ok(S3Response::new(dto::PutObjectRetentionOutput::default()))
    }

    pub(super) async fn get_object_retention_impl(
        &self,
        req: S3Request<dto::GetObjectRetentionInput>,
    ) -> S3Result<S3Response<dto::GetObjectRetentionOutput>> {
        let i = req.input;
        let lock = self
            .version_lock(&i.bucket, &i.key, i.version_id.as_deref())
            .await?;
        let r = lock.retention.ok_or_else(no_object_lock)?;
        Ok(S3Response::new(dto::GetObjectRetentionOutput {
            retention: Some(dto::ObjectLockRetention {
                mode: Some(dto::ObjectLockRetentionMode::from_static(r.mode.as_str())),
                retain_until_date: Some(timestamp(r.until_ms)),
            }),
        }))
    }

    pub(super) async fn put_object_legal_hold_impl(
        &self,
        req: S3Request<dto::PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<dto::PutObjectLegalHoldOutput>> {
        let i = req.input;
        let status = i
            .legal_hold
            .and_then(|h| h.status)
            .ok_or_else(|| s3_error!(MalformedXML, "LegalHold needs a Status"))?;
        let on = legal_hold(status.as_str())?;
        self.store
            .put_legal_hold(&i.bucket, &i.key, i.version_id.as_deref(), on)
            .await
            .map_err(to_s3)?;
        Ok(S3Response::new(dto::PutObjectLegalHoldOutput::default()))
    }

    pub(super) async fn get_object_legal_hold_impl(
        &self,
        req: S3Request<dto::GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<dto::GetObjectLegalHoldOutput>> {
        let i = req.input;
        let lock = self
            .version_lock(&i.bucket, &i.key, i.version_id.as_deref())
            .await?;
        if !lock.has_lock() {
            return Err(no_object_lock());
        }
        let status = if lock.legal_hold {
            dto::ObjectLockLegalHoldStatus::ON
        } else {
            dto::ObjectLockLegalHoldStatus::OFF
        };
        Ok(S3Response::new(dto::GetObjectLegalHoldOutput {
            legal_hold: Some(dto::ObjectLockLegalHold {
                status: Some(dto::ObjectLockLegalHoldStatus::from_static(status)),
            }),
        }))
    }

    /// The lock record of a version, in a bucket that must have object lock.
    async fn version_lock(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> S3Result<LockRecord> {
        self.require_lock(bucket).await?;
        let (_, lock) = self
            .store
            .object_lock(bucket, key, version)
            .await
            .map_err(to_s3)?;
        Ok(lock)
    }

    /// 400 InvalidRequest unless the bucket has object lock enabled.
    async fn require_lock(&self, bucket: &str) -> S3Result<()> {
        let b = self
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
        if b.lock.enabled {
            Ok(())
        } else {
            Err(s3_error!(
                InvalidRequest,
                "Bucket is missing Object Lock Configuration"
            ))
        }
    }
}
