//! Authentication and access control around s3s, and the per-request facts s3s does
//! not carry to the outer server (the operation, the principal).
//!
//! - [`Keys`] gives s3s the secret of an access key: the root key's, or a tenant key's
//!   from the index, looked up on every request (a disabled, expired or deleted key is
//!   refused at once, with `InvalidAccessKeyId`).
//! - [`Access::check`] runs once s3s has routed and authenticated a request, before
//!   the body is read: it resolves the [`Principal`], puts it in the request's
//!   extensions for the handlers, and asks [`authz::authorize`].
//! - A task-local slot carries the operation and the principal's label to the server's
//!   one log line and its metrics.

use std::sync::{Arc, Mutex};

use s3dedup_storage::Store;
use s3dedup_storage::identity::AccessKey;
use s3s::S3Result;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::s3_error;

use crate::authz::{self, Ask, BucketFacts, Decision, Principal};
use crate::error::to_s3;

/// What one request resolved to.
#[derive(Debug, Default, Clone)]
pub struct RequestInfo {
    /// The S3 operation, once routed.
    pub operation: Option<String>,
    /// The principal's label (`root`, a tenant, `anonymous`), once authenticated.
    pub principal: Option<String>,
    /// The tenant key whose secret was handed to s3s (so a refusal after that is a
    /// bad signature).
    key: Option<AccessKey>,
}

tokio::task_local! {
    static INFO: Arc<Mutex<RequestInfo>>;
}

fn with_info<T>(f: impl FnOnce(&mut RequestInfo) -> T) -> Option<T> {
    INFO.try_with(|slot| {
        f(&mut slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    })
    .ok()
}

/// The operation name for a request s3s refused before routing it (bad signature,
/// unknown access key, malformed path).
pub const UNRESOLVED: &str = "Unresolved";

/// Runs `fut` (one request) with a request-info slot; returns its output and what it
/// resolved to.
pub async fn with_request_info<F: Future>(fut: F) -> (F::Output, RequestInfo) {
    let slot = Arc::new(Mutex::new(RequestInfo::default()));
    let out = INFO.scope(Arc::clone(&slot), fut).await;
    let info = slot
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    (out, info)
}

impl RequestInfo {
    /// The operation, or [`UNRESOLVED`].
    pub fn operation(&self) -> &str {
        self.operation.as_deref().unwrap_or(UNRESOLVED)
    }

    /// Whether a key's secret was given to s3s but the request never got routed: its
    /// signature did not verify.
    pub fn bad_signature(&self) -> bool {
        self.key.is_some() && self.operation.is_none()
    }
}

/// The root credentials accepted by the S3 API.
#[derive(Clone)]
pub struct Credentials {
    /// Access key id.
    pub access_key: String,
    /// Secret key.
    pub secret_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Counts an authentication or authorization failure.
fn count_failure(reason: &'static str) {
    metrics::counter!(crate::metrics::AUTH_FAILURES, "reason" => reason).increment(1);
}

/// Secrets for s3s: the root key, or tenants' keys from the index.
#[derive(Debug)]
pub struct Keys {
    /// The root key.
    pub root: Credentials,
    /// Where tenants' keys are.
    pub store: Store,
}

#[async_trait::async_trait]
impl S3Auth for Keys {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if access_key == self.root.access_key {
            return Ok(SecretKey::from(self.root.secret_key.as_str()));
        }
        let Some((key, secret)) = self
            .store
            .access_key_secret(access_key)
            .await
            .map_err(to_s3)?
        else {
            count_failure("unknown_key");
            return Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS access key Id you provided does not exist in our records"
            ));
        };
        if let Err(why) = key.usable_at(now_ms()) {
            count_failure(why.as_str());
            return Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS access key Id you provided is {}",
                why.as_str()
            ));
        }
        with_info(|i| i.key = Some(key));
        Ok(SecretKey::from(secret.as_str()))
    }
}

/// Access control after authentication (see the module docs).
#[derive(Debug)]
pub struct Access {
    /// The root key's id.
    pub root_access_key: String,
    /// Bucket owners.
    pub store: Store,
}

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let operation = cx.s3_op().name();
        let principal = match cx.credentials() {
            None => Principal::Anonymous,
            Some(c) if c.access_key == self.root_access_key => Principal::Root,
            Some(c) => {
                let key = with_info(|i| i.key.clone()).flatten();
                match key.filter(|k| k.access_key == c.access_key) {
                    Some(k) => Principal::Tenant {
                        tenant: k.tenant,
                        user: k.user,
                        access_key: k.access_key,
                    },
                    // Authenticated outside this task (never expected): refuse.
                    None => {
                        return Err(s3_error!(
                            InvalidAccessKeyId,
                            "The AWS access key Id you provided does not exist in our records"
                        ));
                    }
                }
            }
        };
        with_info(|i| {
            i.operation = Some(operation.to_owned());
            i.principal = Some(principal.label().to_owned());
        });
        let (bucket, key) = match cx.s3_path() {
            s3s::path::S3Path::Root => (None, None),
            s3s::path::S3Path::Bucket { bucket } => (Some(bucket.to_string()), None),
            s3s::path::S3Path::Object { bucket, key } => {
                (Some(bucket.to_string()), Some(key.to_string()))
            }
        };
        // The root key is allowed everything: no lookup on its path.
        let record = match (&principal, &bucket) {
            (Principal::Root, _) | (_, None) => None,
            (_, Some(b)) => self.store.bucket(b).await.map_err(to_s3)?,
        };
        let facts = match (&bucket, &record) {
            (None, _) => BucketFacts::None,
            (Some(_), None) => BucketFacts::Missing,
            (Some(_), Some(r)) => BucketFacts::Owned(&r.owner),
        };
        let decision = authz::authorize(&Ask {
            principal: &principal,
            operation,
            bucket: facts,
            key: key.as_deref(),
        });
        cx.extensions_mut().insert(principal);
        match decision {
            Decision::Allow => Ok(()),
            Decision::Deny(why) => {
                count_failure(why.as_str());
                Err(s3_error!(AccessDenied, "{}", why.message()))
            }
        }
    }
}
