//! Quotas in the admin API (see `s3dedup_storage::quota`):
//!
//! | method, path | what |
//! |---|---|
//! | `GET /admin/v1/quotas/buckets/{b}` | `{"quota": {"max_bytes", "max_objects"} or null, "usage": {"bytes", "objects"}}` |
//! | `PUT /admin/v1/quotas/buckets/{b}?bytes=10GiB&objects=1000000` | sets it (a limit not given is unlimited; neither = removed) |
//! | `DELETE /admin/v1/quotas/buckets/{b}` | removes it |
//! | the same under `/admin/v1/quotas/tenants/{t}` | a tenant's (all its buckets together) |
//! | `GET/PUT/DELETE /admin/v1/rate-limits/tenants/{t}?requests=N&bytes=SIZE` | a tenant's own per-key rates (over the `rate_limit_key_*` settings): `{"tenant", "requests_per_sec", "bytes_per_sec", "effective": {…}}` |

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response, StatusCode};
use serde_json::{Value, json};

use s3dedup_storage::quota::{Quota, Usage};

use super::identity::{answer, storage_error};
use super::{AdminApi, error, param};

fn quota_json(q: Option<Quota>) -> Value {
    q.map_or(
        Value::Null,
        |q| json!({"max_bytes": q.max_bytes, "max_objects": q.max_objects}),
    )
}

fn usage_json(u: Usage) -> Value {
    json!({"bytes": u.bytes, "objects": u.objects})
}

/// The quota in `?bytes=&objects=` (sizes as in the settings: `10GiB`, plain bytes); at
/// least one, and nothing else (a misspelt limit must not remove a quota).
fn parse_quota(query: Option<&str>) -> Result<Quota, String> {
    for kv in query.unwrap_or("").split('&').filter(|kv| !kv.is_empty()) {
        let name = kv.split_once('=').map_or(kv, |(k, _)| k);
        if name != "bytes" && name != "objects" {
            return Err(format!(
                "unknown parameter {name:?}: expected bytes and/or objects"
            ));
        }
    }
    if param(query, "bytes").is_none() && param(query, "objects").is_none() {
        return Err("give bytes and/or objects (DELETE removes a quota)".into());
    }
    let bytes = param(query, "bytes")
        .map(|v| crate::config::parse_size(&v).map_err(|e| format!("bytes={v}: {e}")))
        .transpose()?;
    let objects = param(query, "objects")
        .map(|v| v.parse::<u64>().map_err(|e| format!("objects={v}: {e}")))
        .transpose()?;
    Ok(Quota {
        max_bytes: bytes,
        max_objects: objects,
    })
}

/// The rates in `?requests=&bytes=`: at least one, nothing else.
fn parse_rates(query: Option<&str>) -> Result<s3dedup_storage::rates::RateLimits, String> {
    for kv in query.unwrap_or("").split('&').filter(|kv| !kv.is_empty()) {
        let name = kv.split_once('=').map_or(kv, |(k, _)| k);
        if name != "requests" && name != "bytes" {
            return Err(format!(
                "unknown parameter {name:?}: expected requests and/or bytes"
            ));
        }
    }
    let requests = param(query, "requests")
        .map(|v| v.parse::<u64>().map_err(|e| format!("requests={v}: {e}")))
        .transpose()?;
    let bytes = param(query, "bytes")
        .map(|v| crate::config::parse_size(&v).map_err(|e| format!("bytes={v}: {e}")))
        .transpose()?;
    if requests.is_none() && bytes.is_none() {
        return Err("give requests and/or bytes (DELETE removes them)".into());
    }
    if bytes.is_some_and(|b| b > 0 && b < 1024) {
        return Err("bytes: at least 1KiB per second (or 0 = unlimited)".into());
    }
    Ok(s3dedup_storage::rates::RateLimits {
        requests_per_sec: requests,
        bytes_per_sec: bytes,
    })
}

impl AdminApi {
    /// `/rate-limits/tenants/{t}` (module docs).
    pub(super) async fn serve_rates(
        &self,
        method: &Method,
        rest: &str,
        query: Option<&str>,
    ) -> Option<Response<Full<Bytes>>> {
        let name = rest.strip_prefix("/rate-limits/tenants/")?;
        let name = percent_encoding::percent_decode_str(name)
            .decode_utf8_lossy()
            .into_owned();
        let s = &self.store;
        let set = match *method {
            Method::GET => None,
            Method::PUT => match parse_rates(query) {
                Ok(r) => Some(Some(r)),
                Err(e) => return Some(error(StatusCode::BAD_REQUEST, "bad_request", e)),
            },
            Method::DELETE => Some(None),
            _ => {
                return Some(error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    format!("{method} is not allowed on rate limits"),
                ));
            }
        };
        if let Some(r) = set {
            if let Err(e) = s.set_tenant_rates(&name, r).await {
                return Some(storage_error(&e));
            }
            self.rates.set_tenant(&name, r);
            tracing::info!(tenant = name, rates = ?r, "admin: tenant rate limits set");
        }
        let own = match s.tenant_rates().await {
            Ok(all) => all.into_iter().find(|(t, _)| *t == name).map(|(_, r)| r),
            Err(e) => return Some(storage_error(&e)),
        };
        Some(match s.tenant(&name).await {
            Ok(Some(_)) => {
                let (req, bytes) = self.rates.key_rates(Some(&name));
                super::json_response(
                    StatusCode::OK,
                    &json!({
                        "tenant": name,
                        "requests_per_sec": own.and_then(|r| r.requests_per_sec),
                        "bytes_per_sec": own.and_then(|r| r.bytes_per_sec),
                        "effective": {"requests_per_sec": req, "bytes_per_sec": bytes},
                    }),
                )
            }
            Ok(None) => error(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("tenant {name:?} does not exist"),
            ),
            Err(e) => storage_error(&e),
        })
    }

    pub(super) async fn serve_quota(
        &self,
        method: &Method,
        rest: &str,
        query: Option<&str>,
    ) -> Option<Response<Full<Bytes>>> {
        let rest = rest.strip_prefix("/quotas/")?;
        let (scope, name) = rest.split_once('/')?;
        let name = percent_encoding::percent_decode_str(name)
            .decode_utf8_lossy()
            .into_owned();
        let bucket = match scope {
            "buckets" => true,
            "tenants" => false,
            _ => return None,
        };
        let s = &self.store;
        let set = match *method {
            Method::GET => None,
            Method::PUT => match parse_quota(query) {
                Ok(q) => Some(Some(q)),
                Err(e) => return Some(error(StatusCode::BAD_REQUEST, "bad_request", e)),
            },
            Method::DELETE => Some(None),
            _ => {
                return Some(error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    format!("{method} is not allowed on quotas"),
                ));
            }
        };
        if let Some(q) = set {
            let r = if bucket {
                s.set_bucket_quota(&name, q).await
            } else {
                s.set_tenant_quota(&name, q).await
            };
            if let Err(e) = r {
                return Some(storage_error(&e));
            }
            tracing::info!(scope, name, quota = ?q, "admin: quota set");
        }
        Some(if bucket {
            answer(s.quota_state(&name).await, StatusCode::OK, |st| {
                json!({"bucket": name, "quota": quota_json(st.bucket_quota),
                    "usage": usage_json(st.bucket), "tenant": st.tenant})
            })
        } else {
            match s.tenant(&name).await {
                Ok(Some(_)) => answer(
                    s.tenant_quota(&name).await,
                    StatusCode::OK,
                    |(q, u)| json!({"tenant": name, "quota": quota_json(q), "usage": usage_json(u)}),
                ),
                Ok(None) => error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("tenant {name:?} does not exist"),
                ),
                Err(e) => storage_error(&e),
            }
        })
    }
}
