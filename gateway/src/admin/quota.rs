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

type Parse = fn(&str) -> Result<u64, String>;

fn count(v: &str) -> Result<u64, String> {
    v.parse::<u64>().map_err(|e| e.to_string())
}

/// Two limits from the query (`names` with their parsers): at least one, and nothing
/// else (a misspelt limit must not remove a setting).
fn two_limits(
    query: Option<&str>,
    [(a, parse_a), (b, parse_b)]: [(&str, Parse); 2],
) -> Result<(Option<u64>, Option<u64>), String> {
    for kv in query.unwrap_or("").split('&').filter(|kv| !kv.is_empty()) {
        let name = kv.split_once('=').map_or(kv, |(k, _)| k);
        if name != a && name != b {
            return Err(format!(
                "unknown parameter {name:?}: expected {a} and/or {b}"
            ));
        }
    }
    let get = |name: &str, parse: Parse| {
        param(query, name)
            .map(|v| parse(&v).map_err(|e| format!("{name}={v}: {e}")))
            .transpose()
    };
    let (va, vb) = (get(a, parse_a)?, get(b, parse_b)?);
    if va.is_none() && vb.is_none() {
        return Err(format!("give {a} and/or {b} (DELETE removes them)"));
    }
    Ok((va, vb))
}

/// What a request asks of a limits resource: `None` = read it, `Some(None)` = remove
/// it, `Some(Some(v))` = set it; or the error answer.
fn change<T>(
    method: &Method,
    query: Option<&str>,
    parse: impl FnOnce(Option<&str>) -> Result<T, String>,
) -> Result<Option<Option<T>>, Box<Response<Full<Bytes>>>> {
    match *method {
        Method::GET => Ok(None),
        Method::PUT => parse(query)
            .map(|v| Some(Some(v)))
            .map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, "bad_request", e))),
        Method::DELETE => Ok(Some(None)),
        _ => Err(Box::new(error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed here"),
        ))),
    }
}

/// The quota in `?bytes=&objects=` (sizes as in the settings: `10GiB`, plain bytes).
fn parse_quota(query: Option<&str>) -> Result<Quota, String> {
    let size: Parse = crate::config::parse_size;
    let (max_bytes, max_objects) = two_limits(query, [("bytes", size), ("objects", count)])?;
    Ok(Quota {
        max_bytes,
        max_objects,
    })
}

/// The rates in `?requests=&bytes=`.
fn parse_rates(query: Option<&str>) -> Result<s3dedup_storage::rates::RateLimits, String> {
    let size: Parse = crate::config::parse_size;
    let (requests, bytes) = two_limits(query, [("requests", count), ("bytes", size)])?;
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
        let set = match change(method, query, parse_rates) {
            Ok(set) => set,
            Err(answer) => return Some(*answer),
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
        let set = match change(method, query, parse_quota) {
            Ok(set) => set,
            Err(answer) => return Some(*answer),
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
