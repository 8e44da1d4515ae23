//! Bucket lifecycle: Put/Get/DeleteBucketLifecycleConfiguration. The rules are
//! checked here as S3 checks them (every refusal names what is wrong, nothing is
//! stored in part) and applied by the background worker (`s3dedup admin lifecycle`).

use std::collections::HashSet;

use s3dedup_storage::lifecycle::{
    DAY_MS, Expiration, Filter, Lifecycle, NoncurrentExpiration, Rule,
};
use s3s::dto;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::locks::ms_of;
use super::{Gateway, timestamp};
use crate::error::to_s3;

/// Most rules a configuration holds (as in S3).
const MAX_RULES: usize = 1000;

fn positive(v: Option<i32>, what: &str) -> S3Result<u32> {
    match v {
        Some(n) if n > 0 => Ok(n.unsigned_abs()),
        _ => Err(s3_error!(
            InvalidArgument,
            "'{what}' must be a positive integer"
        )),
    }
}

fn size(v: Option<i64>, what: &str) -> S3Result<Option<u64>> {
    v.map(|n| {
        u64::try_from(n).map_err(|_| s3_error!(InvalidArgument, "'{what}' must not be negative"))
    })
    .transpose()
}

fn tags(set: impl IntoIterator<Item = dto::Tag>) -> S3Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for t in set {
        let key = t.key.unwrap_or_default();
        if key.is_empty() {
            return Err(s3_error!(InvalidArgument, "A tag in a filter needs a Key"));
        }
        if out.iter().any(|(k, _)| *k == key) {
            return Err(s3_error!(
                InvalidArgument,
                "Duplicate Tag Keys are not allowed: {key:?}"
            ));
        }
        out.push((key, t.value.unwrap_or_default()));
    }
    Ok(out)
}

fn filter(f: dto::LifecycleRuleFilter) -> S3Result<Filter> {
    let given = usize::from(f.prefix.is_some())
        + usize::from(f.tag.is_some())
        + usize::from(f.and.is_some())
        + usize::from(f.object_size_greater_than.is_some())
        + usize::from(f.object_size_less_than.is_some());
    if given > 1 {
        return Err(s3_error!(
            MalformedXML,
            "A Filter holds one of Prefix, Tag, ObjectSizeGreaterThan, ObjectSizeLessThan or \
             And; use And to combine them"
        ));
    }
    let out = match f.and {
        Some(a) => Filter {
            prefix: a.prefix.unwrap_or_default(),
            tags: tags(a.tags.unwrap_or_default())?,
            size_greater_than: size(a.object_size_greater_than, "ObjectSizeGreaterThan")?,
            size_less_than: size(a.object_size_less_than, "ObjectSizeLessThan")?,
        },
        None => Filter {
            prefix: f.prefix.unwrap_or_default(),
            tags: tags(f.tag)?,
            size_greater_than: size(f.object_size_greater_than, "ObjectSizeGreaterThan")?,
            size_less_than: size(f.object_size_less_than, "ObjectSizeLessThan")?,
        },
    };
    if let (Some(g), Some(l)) = (out.size_greater_than, out.size_less_than)
        && g >= l
    {
        return Err(s3_error!(
            InvalidArgument,
            "ObjectSizeGreaterThan ({g}) must be less than ObjectSizeLessThan ({l})"
        ));
    }
    Ok(out)
}

fn expiration(e: dto::LifecycleExpiration) -> S3Result<Option<Expiration>> {
    let marker = e.expired_object_delete_marker == Some(true);
    let given = usize::from(e.days.is_some())
        + usize::from(e.date.is_some())
        + usize::from(e.expired_object_delete_marker.is_some());
    if given > 1 {
        return Err(s3_error!(
            MalformedXML,
            "Expiration holds one of Days, Date or ExpiredObjectDeleteMarker"
        ));
    }
    if given == 0 {
        return Err(s3_error!(
            MalformedXML,
            "Expiration needs Days, Date or ExpiredObjectDeleteMarker"
        ));
    }
    if e.days.is_some() {
        return Ok(Some(Expiration::Days(positive(e.days, "Days")?)));
    }
    if let Some(d) = &e.date {
        let ms = ms_of(d);
        if !ms.is_multiple_of(DAY_MS) {
            return Err(s3_error!(
                InvalidArgument,
                "'Date' must be at midnight GMT (an ISO 8601 date such as 2027-01-01T00:00:00Z)"
            ));
        }
        return Ok(Some(Expiration::Date(ms)));
    }
    Ok(marker.then_some(Expiration::DeleteMarkers))
}

fn rule(r: dto::LifecycleRule, n: usize) -> S3Result<Rule> {
    let id =
        r.id.filter(|s| !s.is_empty())
            .unwrap_or_else(|| format!("rule-{n}"));
    if id.len() > 255 {
        return Err(s3_error!(
            InvalidArgument,
            "The rule ID is {} characters long; at most 255 are allowed",
            id.len()
        ));
    }
    let enabled = match r.status.as_str() {
        dto::ExpirationStatus::ENABLED => true,
        dto::ExpirationStatus::DISABLED => false,
        other => {
            return Err(s3_error!(
                MalformedXML,
                "Rule {id:?}: Status must be Enabled or Disabled, not {other:?}"
            ));
        }
    };
    if r.transitions.as_ref().is_some_and(|t| !t.is_empty())
        || r.noncurrent_version_transitions
            .as_ref()
            .is_some_and(|t| !t.is_empty())
    {
        return Err(s3_error!(
            NotImplemented,
            "Rule {id:?}: storage class transitions are not supported (s3dedup keeps every \
             object in one storage class, STANDARD); only expiration actions are"
        ));
    }
    let filter = match (r.filter, r.prefix) {
        (Some(_), Some(_)) => {
            return Err(s3_error!(
                MalformedXML,
                "Rule {id:?}: a rule holds either Filter or Prefix, not both"
            ));
        }
        (Some(f), None) => filter(f)?,
        (None, Some(p)) => Filter {
            prefix: p,
            ..Filter::default()
        },
        (None, None) => {
            return Err(s3_error!(
                MalformedXML,
                "Rule {id:?}: a rule needs a Filter (or the older Prefix)"
            ));
        }
    };
    let expiration = r.expiration.map(expiration).transpose()?.flatten();
    if expiration == Some(Expiration::DeleteMarkers) && !filter.tags.is_empty() {
        return Err(s3_error!(
            InvalidRequest,
            "Rule {id:?}: ExpiredObjectDeleteMarker cannot be specified with a tag filter"
        ));
    }
    let noncurrent = r
        .noncurrent_version_expiration
        .map(|n| -> S3Result<NoncurrentExpiration> {
            let newer_versions = match n.newer_noncurrent_versions {
                None => None,
                Some(v @ 1..=100) => Some(v.unsigned_abs()),
                Some(v) => {
                    return Err(s3_error!(
                        InvalidArgument,
                        "'NewerNoncurrentVersions' must be between 1 and 100, not {v}"
                    ));
                }
            };
            Ok(NoncurrentExpiration {
                days: positive(n.noncurrent_days, "NoncurrentDays")?,
                newer_versions,
            })
        })
        .transpose()?;
    let abort_multipart_days = r
        .abort_incomplete_multipart_upload
        .map(|a| positive(a.days_after_initiation, "DaysAfterInitiation"))
        .transpose()?;
    if abort_multipart_days.is_some() {
        if !filter.tags.is_empty() {
            return Err(s3_error!(
                InvalidRequest,
                "Rule {id:?}: AbortIncompleteMultipartUpload cannot be specified with Tags"
            ));
        }
        if filter.size_greater_than.is_some() || filter.size_less_than.is_some() {
            return Err(s3_error!(
                InvalidRequest,
                "Rule {id:?}: AbortIncompleteMultipartUpload cannot be specified with an \
                 object size filter"
            ));
        }
    }
    if expiration.is_none() && noncurrent.is_none() && abort_multipart_days.is_none() {
        return Err(s3_error!(
            InvalidRequest,
            "Rule {id:?}: at least one action needs to be specified in a rule"
        ));
    }
    Ok(Rule {
        id,
        enabled,
        filter,
        expiration,
        noncurrent,
        abort_multipart_days,
    })
}

/// A configuration as a client sent it, checked.
fn from_dto(c: dto::BucketLifecycleConfiguration) -> S3Result<Lifecycle> {
    if c.rules.is_empty() {
        return Err(s3_error!(
            MalformedXML,
            "A lifecycle configuration needs at least one Rule"
        ));
    }
    if c.rules.len() > MAX_RULES {
        return Err(s3_error!(
            InvalidRequest,
            "A lifecycle configuration holds at most {MAX_RULES} rules, not {}",
            c.rules.len()
        ));
    }
    let mut seen = HashSet::new();
    let mut rules = Vec::with_capacity(c.rules.len());
    for (n, r) in c.rules.into_iter().enumerate() {
        let r = rule(r, n + 1)?;
        if !seen.insert(r.id.clone()) {
            return Err(s3_error!(
                InvalidArgument,
                "Rule ID must be unique. Found same ID for more than one rule: {:?}",
                r.id
            ));
        }
        rules.push(r);
    }
    Ok(Lifecycle { rules })
}

fn filter_dto(f: &Filter) -> dto::LifecycleRuleFilter {
    let parts = usize::from(!f.prefix.is_empty())
        + f.tags.len()
        + usize::from(f.size_greater_than.is_some())
        + usize::from(f.size_less_than.is_some());
    let gt = f
        .size_greater_than
        .map(|n| i64::try_from(n).unwrap_or(i64::MAX));
    let lt = f
        .size_less_than
        .map(|n| i64::try_from(n).unwrap_or(i64::MAX));
    let tag = |(k, v): &(String, String)| dto::Tag {
        key: Some(k.clone()),
        value: Some(v.clone()),
    };
    if parts > 1 {
        return dto::LifecycleRuleFilter {
            and: Some(dto::LifecycleRuleAndOperator {
                prefix: (!f.prefix.is_empty()).then(|| f.prefix.clone()),
                tags: (!f.tags.is_empty()).then(|| f.tags.iter().map(tag).collect()),
                object_size_greater_than: gt,
                object_size_less_than: lt,
            }),
            ..Default::default()
        };
    }
    dto::LifecycleRuleFilter {
        prefix: (!f.prefix.is_empty()).then(|| f.prefix.clone()),
        tag: f.tags.first().map(tag),
        object_size_greater_than: gt,
        object_size_less_than: lt,
        ..Default::default()
    }
}

fn rule_dto(r: &Rule) -> dto::LifecycleRule {
    dto::LifecycleRule {
        id: Some(r.id.clone()),
        status: dto::ExpirationStatus::from(
            if r.enabled {
                dto::ExpirationStatus::ENABLED
            } else {
                dto::ExpirationStatus::DISABLED
            }
            .to_owned(),
        ),
        filter: Some(filter_dto(&r.filter)),
        prefix: None,
        expiration: r.expiration.map(|e| match e {
            Expiration::Days(d) => dto::LifecycleExpiration {
                days: Some(i32::try_from(d).unwrap_or(i32::MAX)),
                ..Default::default()
            },
            Expiration::Date(ms) => dto::LifecycleExpiration {
                date: Some(timestamp(ms)),
                ..Default::default()
            },
            Expiration::DeleteMarkers => dto::LifecycleExpiration {
                expired_object_delete_marker: Some(true),
                ..Default::default()
            },
        }),
        noncurrent_version_expiration: r.noncurrent.map(|n| dto::NoncurrentVersionExpiration {
            noncurrent_days: Some(i32::try_from(n.days).unwrap_or(i32::MAX)),
            newer_noncurrent_versions: n
                .newer_versions
                .map(|v| i32::try_from(v).unwrap_or(i32::MAX)),
        }),
        abort_incomplete_multipart_upload: r.abort_multipart_days.map(|d| {
            dto::AbortIncompleteMultipartUpload {
                days_after_initiation: Some(i32::try_from(d).unwrap_or(i32::MAX)),
            }
        }),
        noncurrent_version_transitions: None,
        transitions: None,
    }
}

impl Gateway {
    pub(super) async fn put_bucket_lifecycle_configuration_impl(
        &self,
        req: S3Request<dto::PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<dto::PutBucketLifecycleConfigurationOutput>> {
        let i = req.input;
        let Some(c) = i.lifecycle_configuration else {
            return Err(s3_error!(
                MalformedXML,
                "The request needs a LifecycleConfiguration body"
            ));
        };
        let config = from_dto(c)?;
        self.store
            .put_lifecycle(&i.bucket, &config)
            .await
            .map_err(to_s3)?;
        Ok(S3Response::new(
            dto::PutBucketLifecycleConfigurationOutput::default(),
        ))
    }

    pub(super) async fn get_bucket_lifecycle_configuration_impl(
        &self,
        req: S3Request<dto::GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<dto::GetBucketLifecycleConfigurationOutput>> {
        let bucket = req.input.bucket;
        match self.store.lifecycle_config(&bucket).await.map_err(to_s3)? {
            Some(c) => Ok(S3Response::new(
                dto::GetBucketLifecycleConfigurationOutput {
                    rules: Some(c.rules.iter().map(rule_dto).collect()),
                    ..Default::default()
                },
            )),
            None => Err(s3_error!(
                NoSuchLifecycleConfiguration,
                "The lifecycle configuration does not exist: bucket {bucket} has none"
            )),
        }
    }

    pub(super) async fn delete_bucket_lifecycle_impl(
        &self,
        req: S3Request<dto::DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketLifecycleOutput>> {
        self.store
            .delete_lifecycle(&req.input.bucket)
            .await
            .map_err(to_s3)?;
        Ok(S3Response::new(dto::DeleteBucketLifecycleOutput::default()))
    }
}
