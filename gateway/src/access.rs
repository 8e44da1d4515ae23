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

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use s3dedup_storage::Store;
use s3dedup_storage::identity::AccessKey;
use s3s::S3Result;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::s3_error;

use crate::acl::{Acl, Ownership};
use crate::authz::{self, Ask, BucketAccess, BucketFacts, Decision, Principal, PublicAccessBlock};
use crate::clock::now_ms;
use crate::error::to_s3;
use crate::policy::Policy;
use crate::policy::eval::Context;

/// What one request resolved to.
#[derive(Debug, Default, Clone)]
pub struct RequestInfo {
    /// The S3 operation, once routed.
    pub operation: Option<String>,
    /// The principal's label (`root`, a tenant, `anonymous`), once authenticated.
    pub principal: Option<String>,
    /// The bucket and key s3s resolved (path or virtual-hosted style), once routed.
    pub target: Option<(String, Option<String>)>,
    /// The tenant key whose secret was handed to s3s (so a refusal after that is a
    /// bad signature).
    key: Option<AccessKey>,
    /// Its tenant's canonical id.
    canonical_id: Option<String>,
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

/// Counts an authentication or authorization failure.
pub fn count_failure(reason: &'static str) {
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
        let Some((key, secret, tenant)) = self
            .store
            .access_key_for_request(access_key)
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
        let canonical_id = match tenant {
            Some(t) => t.canonical_id,
            // A key whose tenant is gone (never left behind by a delete): refused.
            None => {
                count_failure("unknown_key");
                return Err(s3_error!(
                    InvalidAccessKeyId,
                    "The AWS access key Id you provided does not exist in our records"
                ));
            }
        };
        with_info(|i| {
            i.key = Some(key);
            i.canonical_id = Some(canonical_id);
        });
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
    /// Read-only mode and the capacity guard, checked once the request is allowed.
    pub gate: std::sync::Arc<crate::write_gate::WriteGate>,
    /// Per-key rate limits, charged once the request is authenticated.
    pub rates: std::sync::Arc<crate::limits::Limits>,
}

/// The client's IP address, put in each request's extensions by the server.
#[derive(Debug, Clone, Copy)]
pub struct PeerIp(pub std::net::IpAddr);

/// The bucket configuration kind of a bucket policy (its JSON, as put).
pub const POLICY_KIND: &str = "policy";
/// The bucket configuration kind of a public access block.
pub const BLOCK_KIND: &str = "public_access_block";
/// The bucket configuration kind of a bucket ACL (`crate::acl::Acl`'s stored form).
pub const ACL_KIND: &str = "acl";
/// The bucket configuration kind of ownership controls (the S3 name of the setting).
pub const OWNERSHIP_KIND: &str = "ownership";

/// An existing bucket as authorization needs it, loaded once per request.
#[derive(Debug, Clone)]
pub struct LoadedBucket {
    /// Its owner (`""` = root tenant).
    pub owner: String,
    /// Its policy, parsed.
    pub policy: Option<Arc<Policy>>,
    /// Its public access block.
    pub block: PublicAccessBlock,
    /// Its ACL.
    pub acl: Option<Acl>,
    /// Its ownership controls.
    pub ownership: Ownership,
}

impl LoadedBucket {
    /// The borrowed form [`authz::authorize`] takes.
    pub fn access(&self) -> BucketAccess<'_> {
        BucketAccess {
            owner: &self.owner,
            policy: self.policy.as_deref(),
            block: self.block,
            acl: self.acl.as_ref(),
            ownership: self.ownership,
        }
    }
}

/// What the access check found, for the handlers (in the request's extensions).
#[derive(Debug, Clone)]
pub struct Checked {
    /// The bucket named, if it exists.
    pub bucket: Option<LoadedBucket>,
    /// The request's condition keys.
    pub context: Context,
    /// When only the object's ACL granted the request: the version it is the ACL of
    /// (the handler must act on that version, or refuse).
    pub acl_version: Option<s3dedup_storage::Version>,
}

/// Parsed policies by bucket, with the document they were parsed from (a policy is
/// parsed once, not on every request).
static POLICIES: OnceLock<Mutex<PolicyCache>> = OnceLock::new();

/// Bucket → (the stored document, its parse).
type PolicyCache = HashMap<String, (Vec<u8>, Arc<Policy>)>;

/// Loads `bucket`'s owner, policy and public access block (`None`: no such bucket).
///
/// # Errors
/// Index errors; a stored policy that no longer parses (500, logged).
pub async fn load_bucket(store: &Store, bucket: &str) -> S3Result<Option<LoadedBucket>> {
    const KINDS: &[&str] = &[POLICY_KIND, BLOCK_KIND, ACL_KIND, OWNERSHIP_KIND];
    let Some((rec, mut docs)) = store
        .bucket_with_documents(bucket, KINDS)
        .await
        .map_err(to_s3)?
    else {
        return Ok(None);
    };
    let ownership_doc = docs.pop().flatten();
    let acl_doc = docs.pop().flatten();
    let block_doc = docs.pop().flatten();
    let policy =
        match docs.pop().flatten() {
            None => None,
            Some(raw) => {
                let cache = POLICIES.get_or_init(Mutex::default);
                let hit = {
                    let c = cache
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    c.get(bucket)
                        .filter(|(r, _)| *r == raw)
                        .map(|(_, p)| Arc::clone(p))
                };
                match hit {
                    Some(p) => Some(p),
                    None => {
                        let text = String::from_utf8_lossy(&raw);
                        // Principals were checked when the policy was put; a tenant deleted
                        // since then simply matches no key.
                        let p = Arc::new(Policy::parse(&text, bucket, &|_| true).map_err(|e| {
                        tracing::warn!(bucket, error = %e, "stored bucket policy does not parse");
                        s3_error!(InternalError, "The bucket policy of {bucket} cannot be read")
                    })?);
                        cache
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .insert(bucket.to_owned(), (raw, Arc::clone(&p)));
                        Some(p)
                    }
                }
            }
        };
    let block = block_doc
        .and_then(|b| PublicAccessBlock::decode(&b))
        .unwrap_or_default();
    let acl = match acl_doc {
        None => None,
        Some(raw) => Some(Acl::decode(&raw).ok_or_else(|| {
            tracing::warn!(bucket, "stored bucket ACL does not decode");
            s3_error!(InternalError, "The ACL of bucket {bucket} cannot be read")
        })?),
    };
    let ownership = match ownership_doc {
        None => Ownership::default(),
        Some(raw) => Ownership::parse(&String::from_utf8_lossy(&raw)).ok_or_else(|| {
            tracing::warn!(bucket, "stored ownership controls do not parse");
            s3_error!(
                InternalError,
                "The ownership controls of bucket {bucket} cannot be read"
            )
        })?,
    };
    Ok(Some(LoadedBucket {
        owner: rec.owner,
        policy,
        block,
        acl,
        ownership,
    }))
}

/// The condition keys of a request (see `crate::policy::CONDITION_KEYS`).
fn request_context(
    cx: &S3AccessContext<'_>,
    principal: &Principal,
    peer: Option<PeerIp>,
) -> Context {
    let mut c = Context::default();
    if let Some(PeerIp(ip)) = peer {
        c.set("aws:SourceIp", ip.to_string());
    }
    // TLS is not served yet (every request is plain HTTP).
    c.set("aws:SecureTransport", "false");
    let h = cx.headers();
    let header = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
    for (key, name) in [
        ("aws:Referer", "referer"),
        ("aws:UserAgent", "user-agent"),
        ("s3:x-amz-acl", "x-amz-acl"),
        ("s3:x-amz-copy-source", "x-amz-copy-source"),
        ("s3:x-amz-metadata-directive", "x-amz-metadata-directive"),
        (
            "s3:x-amz-server-side-encryption",
            "x-amz-server-side-encryption",
        ),
        ("s3:x-amz-storage-class", "x-amz-storage-class"),
        ("s3:object-lock-mode", "x-amz-object-lock-mode"),
        (
            "s3:object-lock-retain-until-date",
            "x-amz-object-lock-retain-until-date",
        ),
        ("s3:object-lock-legal-hold", "x-amz-object-lock-legal-hold"),
    ] {
        if let Some(v) = header(name) {
            c.set(key, v);
        }
    }
    let signed_in_query = cx
        .uri()
        .query()
        .is_some_and(|q| q.contains("X-Amz-Algorithm="));
    if header("authorization").is_some_and(|a| a.starts_with("AWS4-")) || signed_in_query {
        c.set("s3:signatureversion", "AWS4-HMAC-SHA256");
    }
    // Names decoded as s3s decodes them (`version%49d` is `versionId` to the handler).
    for (k, v) in crate::edge::query_pairs(cx.uri()) {
        let key = match k.as_str() {
            "prefix" => "s3:prefix",
            "delimiter" => "s3:delimiter",
            "max-keys" => "s3:max-keys",
            "versionId" => "s3:VersionId",
            _ => continue,
        };
        c.set(key, v);
    }
    match principal {
        Principal::Tenant { tenant, user, .. } => {
            c.set("aws:PrincipalAccount", tenant.as_str());
            match user {
                Some(u) => {
                    c.set("aws:username", u.as_str());
                    c.set("aws:PrincipalType", "User");
                }
                None => c.set("aws:PrincipalType", "Account"),
            }
        }
        Principal::Root => c.set("aws:PrincipalType", "Account"),
        Principal::Anonymous => c.set("aws:PrincipalType", "Anonymous"),
    }
    c
}

/// The ACL of version `version` (current when `None`) of `bucket`/`key` and that
/// version, when ACLs count in the bucket and the version has one; `None` also for a
/// version that does not exist (nothing is granted; the handler answers for it).
///
/// # Errors
/// A stored ACL that does not decode (500, logged).
pub async fn object_acl(
    store: &Store,
    loaded: &LoadedBucket,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> S3Result<Option<(Acl, s3dedup_storage::Version)>> {
    if !loaded.ownership.acls_enabled() {
        return Ok(None);
    }
    let Ok((object, rec)) = store.object_lock(bucket, key, version).await else {
        return Ok(None);
    };
    match rec.acl {
        None => Ok(None),
        Some(raw) => match Acl::decode(&raw) {
            Some(acl) => Ok(Some((acl, object.version))),
            None => {
                tracing::warn!(bucket, key, "stored object ACL does not decode");
                Err(s3_error!(
                    InternalError,
                    "The ACL of {bucket}/{key} cannot be read"
                ))
            }
        },
    }
}

/// Refuses when only an object ACL granted the request (`checked.acl_version`) and
/// `served` is another version than the one that ACL belongs to (it changed since).
///
/// # Errors
/// AccessDenied.
pub fn check_acl_version(
    checked: Option<&Checked>,
    served: s3dedup_storage::Version,
) -> S3Result<()> {
    match checked.and_then(|c| c.acl_version) {
        Some(granted) if granted != served => {
            count_failure("not_owner");
            Err(s3_error!(
                AccessDenied,
                "Access Denied: the object changed since its ACL was checked; retry"
            ))
        }
        _ => Ok(()),
    }
}

/// Counts and converts a denial.
pub fn denied(why: authz::Denial, what: &str) -> s3s::S3Error {
    count_failure(why.as_str());
    if why == authz::Denial::NoSuchBucket {
        return s3_error!(NoSuchBucket, "{}", why.message());
    }
    if what.is_empty() {
        s3_error!(AccessDenied, "{}", why.message())
    } else {
        s3_error!(AccessDenied, "{} ({what})", why.message())
    }
}

/// 503 SlowDown with `Retry-After`.
fn slow_down(r: &crate::limits::Refusal) -> s3s::S3Error {
    let refusal = crate::edge::Refusal::of_limit(r);
    let retry = refusal.retry_after_secs();
    let mut e = s3s::S3Error::with_message(s3s::S3ErrorCode::SlowDown, refusal.message);
    if let Some(secs) = retry {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::RETRY_AFTER, secs.into());
        e.set_headers(h);
    }
    e
}

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let peer = cx.extensions_mut().get::<PeerIp>().copied();
        let operation = cx.s3_op().name();
        let principal = match cx.credentials() {
            None => Principal::Anonymous,
            Some(c) if c.access_key == self.root_access_key => Principal::Root,
            Some(c) => {
                let found = with_info(|i| i.key.clone().zip(i.canonical_id.clone())).flatten();
                match found.filter(|(k, _)| k.access_key == c.access_key) {
                    Some((k, canonical_id)) => Principal::Tenant {
                        tenant: k.tenant,
                        canonical_id,
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
        // Only an authenticated key is charged: a forged request naming someone's key id
        // never reaches here.
        let tenant = match &principal {
            Principal::Tenant { tenant, .. } => Some(tenant.as_str()),
            _ => None,
        };
        if let Some(c) = cx.credentials()
            && let Err(r) = self.rates.check_key(
                &c.access_key,
                tenant,
                crate::limits::declared_length(cx.headers()),
            )
        {
            return Err(slow_down(&r));
        }
        let (bucket, key) = match cx.s3_path() {
            s3s::path::S3Path::Root => (None, None),
            s3s::path::S3Path::Bucket { bucket } => (Some(bucket.to_string()), None),
            s3s::path::S3Path::Object { bucket, key } => {
                (Some(bucket.to_string()), Some(key.to_string()))
            }
        };
        with_info(|i| i.target = bucket.clone().map(|b| (b, key.clone())));
        // The root key is allowed everything: no lookup on its path.
        let gated = self.gate.check(operation);
        if principal == Principal::Root {
            cx.extensions_mut().insert(principal);
            return gated;
        }
        let loaded = match &bucket {
            Some(b) => load_bucket(&self.store, b).await?,
            None => None,
        };
        let mut context = request_context(cx, &principal, peer);
        let facts = match (&bucket, &loaded) {
            (None, _) => BucketFacts::None,
            (Some(_), None) => BucketFacts::Missing,
            (Some(_), Some(l)) => BucketFacts::Exists(l.access()),
        };
        let bucket_name = bucket.as_deref().unwrap_or("");
        // Decoded as s3s decodes it, so that the version judged is the version served;
        // a repeated versionId could be read differently by the two, so it is refused.
        let versions: Vec<String> = crate::edge::query_pairs(cx.uri())
            .filter(|(k, _)| k == "versionId")
            .map(|(_, v)| v)
            .collect();
        if versions.len() > 1 {
            return Err(s3_error!(
                InvalidArgument,
                "versionId is given more than once"
            ));
        }
        let version = versions.into_iter().next();
        let versioned = version.is_some();
        // `s3:ExistingObjectTag/<key>`: the tags of the version asked about, looked up
        // only when the bucket's policy reads them (a missing version has none).
        if let (Some(l), Some(k)) = (&loaded, &key)
            && l.policy.as_ref().is_some_and(|p| p.reads_object_tags())
            && let Ok((_, side)) = self
                .store
                .object_lock(bucket_name, k, version.as_deref())
                .await
        {
            for (name, value) in side.tags {
                context.set(
                    &format!("{}{name}", crate::policy::EXISTING_OBJECT_TAG),
                    value,
                );
            }
        }
        // The object's ACL, when looked up below (declared first: `ask` borrows it).
        let found_acl: Option<Acl>;
        let ask = |operation, object_acl| Ask {
            principal: &principal,
            operation,
            bucket: facts,
            bucket_name,
            key: key.as_deref(),
            versioned,
            context: &context,
            object_acl,
        };
        // DeleteObjects names its keys in the body: its handler asks for each one.
        let mut decision = if operation == "DeleteObjects" && loaded.is_some() {
            Decision::Allow
        } else {
            authz::authorize(&ask(operation, None))
        };
        // What nothing else grants, the object's own ACL may: looked up only then. The
        // version it was granted on is kept: the handler serves that version or refuses.
        let mut acl_version = None;
        if let (Decision::Deny(why), Some(l), Some(k)) = (&decision, &loaded, &key)
            && *why != authz::Denial::ExplicitDeny
            && crate::acl::object_permission(operation).is_some()
            && let Some((acl, v)) =
                object_acl(&self.store, l, bucket_name, k, version.as_deref()).await?
        {
            found_acl = Some(acl);
            decision = authz::authorize(&ask(operation, found_acl.as_ref()));
            acl_version = (decision == Decision::Allow).then_some(v);
        }
        // Object lock headers on a write are not the writer's to set unless the owner
        // or the policy lets it set retention or holds (no ACL grants that).
        if decision == Decision::Allow
            && matches!(
                operation,
                "PutObject" | "CopyObject" | "CreateMultipartUpload"
            )
        {
            let has = |h: &str| cx.headers().contains_key(h);
            if has("x-amz-object-lock-mode") || has("x-amz-object-lock-retain-until-date") {
                decision = authz::authorize(&ask("PutObjectRetention", None));
            }
            if decision == Decision::Allow && has("x-amz-object-lock-legal-hold") {
                decision = authz::authorize(&ask("PutObjectLegalHold", None));
            }
            // Tags set with the write need the tagging permission, as on S3.
            let replaces_tags = cx
                .headers()
                .get("x-amz-tagging-directive")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"REPLACE"));
            if decision == Decision::Allow && (has("x-amz-tagging") || replaces_tags) {
                decision = authz::authorize(&ask("PutObjectTagging", None));
            }
        }
        let bypass = cx
            .headers()
            .get("x-amz-bypass-governance-retention")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
        if decision == Decision::Allow && bypass && operation != "DeleteObjects" {
            decision = authz::authorize(&ask("BypassGovernanceRetention", None));
        }
        cx.extensions_mut().insert(principal);
        cx.extensions_mut().insert(Checked {
            bucket: loaded.clone(),
            context: context.clone(),
            acl_version,
        });
        match decision {
            Decision::Allow => gated,
            Decision::Deny(why) => Err(denied(why, "")),
        }
    }
}
