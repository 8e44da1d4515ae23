//! The admin API's identity endpoints: tenants, users, access keys. Changes take
//! effect on the next S3 request (keys are looked up on every request).
//!
//! | method, path | what |
//! |---|---|
//! | `GET /admin/v1/tenants` | every tenant, with its users, keys and buckets counted |
//! | `PUT /admin/v1/tenants/{t}` | creates tenant `t`: 201; 409 if it exists |
//! | `DELETE /admin/v1/tenants/{t}` | deletes it with its users and keys; 409 while it owns buckets |
//! | `GET /admin/v1/tenants/{t}/users` | its users |
//! | `PUT /admin/v1/tenants/{t}/users/{u}` | creates user `u`: 201 |
//! | `DELETE /admin/v1/tenants/{t}/users/{u}` | deletes it and its keys |
//! | `GET /admin/v1/keys?tenant=` | access keys (never their secrets) |
//! | `POST /admin/v1/keys?tenant=&user=&expires=30d` | creates a key: 201 with its secret, shown this once |
//! | `POST /admin/v1/keys/{id}/disable`, `…/enable` | refuses / accepts it from the next request |
//! | `DELETE /admin/v1/keys/{id}` | deletes it |

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response, StatusCode};
use serde_json::{Value, json};

use s3dedup_storage::Error as StorageError;
use s3dedup_storage::identity::{AccessKey, DedupScope, KeyStatus};

use super::{AdminApi, error, json_response, param};
use crate::clock::now_ms;

/// The JSON of a key (without its secret).
pub fn key_json(k: &AccessKey) -> Value {
    json!({
        "access_key": k.access_key,
        "tenant": k.tenant,
        "user": k.user,
        "status": k.status.as_str(),
        "created_ms": k.created_ms,
        "expires_ms": k.expires_ms,
    })
}

pub(super) fn storage_error(e: &StorageError) -> Response<Full<Bytes>> {
    match e {
        StorageError::NoSuchIdentity(m) => error(StatusCode::NOT_FOUND, "not_found", m.clone()),
        StorageError::NoSuchBucket(b) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("bucket {b:?} does not exist"),
        ),
        StorageError::IdentityExists(m) | StorageError::IdentityInUse(m) => {
            error(StatusCode::CONFLICT, "conflict", m.clone())
        }
        StorageError::InvalidArgument(m) => {
            error(StatusCode::BAD_REQUEST, "bad_request", m.clone())
        }
        other => {
            tracing::warn!(error = %other, "admin identity request failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                other.to_string(),
            )
        }
    }
}

pub(super) fn answer<T>(
    r: Result<T, StorageError>,
    status: StatusCode,
    body: impl FnOnce(T) -> Value,
) -> Response<Full<Bytes>> {
    match r {
        Ok(v) => json_response(status, &body(v)),
        Err(e) => storage_error(&e),
    }
}

impl AdminApi {
    /// Answers an identity request (`rest` is the path after `/admin/v1`), or `None`
    /// when `rest` is not an identity path.
    pub(super) async fn serve_identity(
        &self,
        method: &Method,
        rest: &str,
        query: Option<&str>,
    ) -> Option<Response<Full<Bytes>>> {
        let segs: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
        let decoded: Vec<String> = segs
            .iter()
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        let d: Vec<&str> = decoded.iter().map(String::as_str).collect();
        let s = &self.store;
        Some(match (method, d.as_slice()) {
            (&Method::GET, ["tenants"]) => self.list_tenants().await,
            (&Method::PUT, ["tenants", t]) => {
                let scope = match param(query, "dedup_scope") {
                    None => s.config().dedup_scope,
                    Some(v) => match v.parse::<DedupScope>() {
                        Ok(scope) => scope,
                        Err(e) => {
                            let msg = format!("dedup_scope: {e}");
                            return Some(error(StatusCode::BAD_REQUEST, "bad_request", msg));
                        }
                    },
                };
                let r = s.create_tenant_scoped(t, scope).await;
                if r.is_ok() {
                    tracing::info!(
                        tenant = t,
                        dedup_scope = scope.as_str(),
                        "admin: tenant created"
                    );
                }
                answer(r, StatusCode::CREATED, |t| {
                    json!({"name": t.name, "canonical_id": t.canonical_id,
                        "created_ms": t.created_ms, "dedup_scope": scope.as_str()})
                })
            }
            (&Method::DELETE, ["tenants", t]) => {
                let r = s.delete_tenant(t).await;
                if r.is_ok() {
                    tracing::info!(tenant = t, "admin: tenant deleted with its users and keys");
                }
                answer(r, StatusCode::OK, |()| json!({"deleted": t}))
            }
            (&Method::GET, ["tenants", t, "users"]) => {
                answer(s.users(Some(t)).await, StatusCode::OK, |us| {
                    json!({"users": us.iter().map(|u| json!({
                    "tenant": u.tenant, "name": u.name, "created_ms": u.created_ms,
                })).collect::<Vec<_>>()})
                })
            }
            (&Method::PUT, ["tenants", t, "users", u]) => {
                let r = s.create_user(t, u).await;
                if r.is_ok() {
                    tracing::info!(tenant = t, user = u, "admin: user created");
                }
                answer(
                    r,
                    StatusCode::CREATED,
                    |u| json!({"tenant": u.tenant, "name": u.name, "created_ms": u.created_ms}),
                )
            }
            (&Method::DELETE, ["tenants", t, "users", u]) => {
                let r = s.delete_user(t, u).await;
                if r.is_ok() {
                    tracing::info!(tenant = t, user = u, "admin: user deleted with its keys");
                }
                answer(r, StatusCode::OK, |()| json!({"deleted": u, "tenant": t}))
            }
            (&Method::GET, ["keys"]) => {
                let tenant = param(query, "tenant");
                if let Some(t) = &tenant {
                    match s.tenant(t).await {
                        Ok(Some(_)) => {}
                        Ok(None) => {
                            return Some(error(
                                StatusCode::NOT_FOUND,
                                "not_found",
                                format!("tenant {t:?} does not exist"),
                            ));
                        }
                        Err(e) => return Some(storage_error(&e)),
                    }
                }
                answer(
                    s.access_keys(tenant.as_deref()).await,
                    StatusCode::OK,
                    |ks| json!({"keys": ks.iter().map(key_json).collect::<Vec<_>>()}),
                )
            }
            (&Method::POST, ["keys"]) => self.create_key(query).await,
            (&Method::POST, ["keys", id, action @ ("disable" | "enable")]) => {
                let status = if *action == "disable" {
                    KeyStatus::Disabled
                } else {
                    KeyStatus::Active
                };
                let r = s.set_key_status(id, status).await;
                if r.is_ok() {
                    tracing::info!(
                        access_key = id,
                        status = status.as_str(),
                        "admin: key status set"
                    );
                }
                answer(r, StatusCode::OK, |k| key_json(&k))
            }
            (&Method::DELETE, ["keys", id]) => {
                let r = s.delete_key(id).await;
                if r.is_ok() {
                    tracing::info!(access_key = id, "admin: key deleted");
                }
                answer(r, StatusCode::OK, |()| json!({"deleted": id}))
            }
            (
                _,
                ["tenants"]
                | ["tenants", _]
                | ["tenants", _, "users"]
                | ["tenants", _, "users", _]
                | ["keys"]
                | ["keys", _]
                | ["keys", _, _],
            ) => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{method} is not allowed on /admin/v1{rest}"),
            ),
            _ => return None,
        })
    }

    async fn create_key(&self, query: Option<&str>) -> Response<Full<Bytes>> {
        let Some(tenant) = param(query, "tenant").filter(|t| !t.is_empty()) else {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "tenant= is required",
            );
        };
        let user = param(query, "user").filter(|u| !u.is_empty());
        let expires_ms = match param(query, "expires") {
            None => None,
            Some(e) => match crate::config::parse_duration(&e) {
                Ok(d) if !d.is_zero() => Some(now_ms().saturating_add(d.as_millis() as u64)),
                Ok(_) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        "expires=0: a key must live a while",
                    );
                }
                Err(m) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        format!("expires={e}: {m}"),
                    );
                }
            },
        };
        match self
            .store
            .create_key(&tenant, user.as_deref(), expires_ms)
            .await
        {
            Ok(n) => {
                tracing::info!(
                    access_key = n.key.access_key,
                    tenant,
                    user,
                    "admin: key created"
                );
                let mut body = key_json(&n.key);
                body["secret_key"] = Value::String(n.secret);
                json_response(StatusCode::CREATED, &body)
            }
            Err(e) => storage_error(&e),
        }
    }

    async fn list_tenants(&self) -> Response<Full<Bytes>> {
        let s = &self.store;
        let (tenants, users, keys, buckets) = match (
            s.tenants().await,
            s.users(None).await,
            s.access_keys(None).await,
            s.buckets().await,
        ) {
            (Ok(t), Ok(u), Ok(k), Ok(b)) => (t, u, k, b),
            (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), _) | (.., Err(e)) => {
                return storage_error(&e);
            }
        };
        let list: Vec<Value> = tenants
            .iter()
            .map(|t| {
                json!({
                    "name": t.name,
                    "canonical_id": t.canonical_id,
                    "created_ms": t.created_ms,
                    "dedup_scope": s.dedup_scope(t).as_str(),
                    "users": users.iter().filter(|u| u.tenant == t.name).count(),
                    "keys": keys.iter().filter(|k| k.tenant == t.name).count(),
                    "buckets": buckets.iter().filter(|(_, b)| b.owner == t.name)
                        .map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
                })
            })
            .collect();
        json_response(StatusCode::OK, &json!({"tenants": list}))
    }
}
