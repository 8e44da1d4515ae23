//! Authorization: one pure function, [`authorize`], from who asks, what for and on
//! what, to Allow or Deny. The access check calls it once per request; handlers call it
//! only for what that check cannot see (a copy source, each key of DeleteObjects).
//!
//! Order of evaluation:
//! 1. the root key (the operator's) may do everything;
//! 2. a bucket that does not exist is not anyone's: a signed request goes on and gets
//!    NoSuchBucket (or creates it); an unsigned one is refused;
//! 3. a bucket's policy, its public access block and its configuration of both are the
//!    owner's alone (S3 never lets a policy lock its owner out of changing it);
//! 4. an explicit Deny in the bucket policy refuses, the owner's keys included;
//! 5. the owner's keys may do everything else;
//! 6. an Allow in the bucket policy grants — unless only public statements grant it
//!    and the bucket's public access block says RestrictPublicBuckets;
//! 7. a grant in the bucket's ACL, or in the ACL of the object version asked for,
//!    grants what its permission covers (`crate::acl`) — unless the bucket's ownership
//!    controls turn ACLs off, and not through a public grant when its public access
//!    block says IgnorePublicAcls;
//! 8. everything else is refused.

use crate::acl::{Acl, Ownership, Permission, Requester, bucket_permission, object_permission};
use crate::policy::Policy;
use crate::policy::actions::{action_of, on_object};
use crate::policy::eval::{Context, Outcome, Request, Who};

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The operator's root key: the root tenant, allowed everything.
    Root,
    /// A tenant's access key.
    Tenant {
        /// The tenant.
        tenant: String,
        /// The tenant's canonical id.
        canonical_id: String,
        /// The key's user, if any.
        user: Option<String>,
        /// The access key id.
        access_key: String,
    },
    /// An unsigned request.
    Anonymous,
}

impl Principal {
    /// The owner name a bucket created by this principal gets (`""` = root tenant);
    /// `None` for anonymous requests.
    pub fn owner(&self) -> Option<&str> {
        match self {
            Principal::Root => Some(""),
            Principal::Tenant { tenant, .. } => Some(tenant),
            Principal::Anonymous => None,
        }
    }

    /// A label for logs and metrics: `root`, the tenant's name, or `anonymous`.
    pub fn label(&self) -> &str {
        match self {
            Principal::Root => s3dedup_storage::identity::ROOT_TENANT,
            Principal::Tenant { tenant, .. } => tenant,
            Principal::Anonymous => "anonymous",
        }
    }
}

/// A bucket's public access block (S3's four switches; all off when none is set).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublicAccessBlock {
    /// Refuse requests that set a public ACL.
    pub block_public_acls: bool,
    /// Ignore public ACL grants.
    pub ignore_public_acls: bool,
    /// Refuse a public bucket policy.
    pub block_public_policy: bool,
    /// Grant nothing to anyone outside the owner through public policy statements.
    pub restrict_public_buckets: bool,
}

impl PublicAccessBlock {
    /// Stored form: one byte of flags.
    pub fn encode(self) -> Vec<u8> {
        vec![
            u8::from(self.block_public_acls)
                | u8::from(self.ignore_public_acls) << 1
                | u8::from(self.block_public_policy) << 2
                | u8::from(self.restrict_public_buckets) << 3,
        ]
    }

    /// Reads the stored form.
    pub fn decode(b: &[u8]) -> Option<Self> {
        match b {
            [f] if *f < 16 => Some(PublicAccessBlock {
                block_public_acls: f & 1 != 0,
                ignore_public_acls: f & 2 != 0,
                block_public_policy: f & 4 != 0,
                restrict_public_buckets: f & 8 != 0,
            }),
            _ => None,
        }
    }
}

/// An existing bucket, as authorization needs it.
#[derive(Debug, Clone, Copy)]
pub struct BucketAccess<'a> {
    /// Its owner (`""` = root tenant).
    pub owner: &'a str,
    /// Its policy.
    pub policy: Option<&'a Policy>,
    /// Its public access block.
    pub block: PublicAccessBlock,
    /// Its ACL (`None`: the owner's alone).
    pub acl: Option<&'a Acl>,
    /// Its ownership controls (whether ACLs count).
    pub ownership: Ownership,
}

/// What is known of the bucket a request names.
#[derive(Debug, Clone, Copy)]
pub enum BucketFacts<'a> {
    /// The request names no bucket (ListBuckets).
    None,
    /// The bucket named does not exist.
    Missing,
    /// The bucket exists.
    Exists(BucketAccess<'a>),
}

/// One authorization question.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// Who asks.
    pub principal: &'a Principal,
    /// The S3 operation (s3s's name: `GetObject`, `ListObjectsV2`, `CreateBucket` …).
    pub operation: &'a str,
    /// The bucket.
    pub bucket: BucketFacts<'a>,
    /// The bucket's name.
    pub bucket_name: &'a str,
    /// The object key, for object operations.
    pub key: Option<&'a str>,
    /// Whether the request names a version id.
    pub versioned: bool,
    /// The request's condition keys.
    pub context: &'a Context,
    /// The ACL of the object version the request names, when the caller looked it up
    /// (only needed when nothing else grants an object operation).
    pub object_acl: Option<&'a Acl>,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go on.
    Allow,
    /// Refuse with AccessDenied; the reason is for the message and the metric label.
    Deny(Denial),
}

/// Why a request is denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// Unsigned, and nothing grants anonymous access.
    Anonymous,
    /// Another tenant's bucket, and nothing grants access to it.
    NotOwner,
    /// The bucket policy denies it explicitly.
    ExplicitDeny,
    /// Only public policy statements grant it, and the bucket restricts public access.
    Restricted,
    /// Unsigned, on a bucket that does not exist: S3 says so (404 NoSuchBucket) before
    /// it says AccessDenied, as bucket names are global.
    NoSuchBucket,
}

impl Denial {
    /// A metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Denial::Anonymous => "anonymous",
            Denial::NotOwner => "not_owner",
            Denial::ExplicitDeny => "explicit_deny",
            Denial::Restricted => "restricted",
            Denial::NoSuchBucket => "no_such_bucket",
        }
    }

    /// The message of the AccessDenied error.
    pub fn message(self) -> &'static str {
        match self {
            Denial::Anonymous => "Access Denied: anonymous access is not allowed; sign the request",
            Denial::NotOwner => {
                "Access Denied: the bucket belongs to another tenant and its policy grants nothing for this request"
            }
            Denial::ExplicitDeny => "Access Denied: the bucket policy denies this request",
            Denial::Restricted => {
                "Access Denied: only a public policy statement grants this, and the bucket's public access block restricts public access"
            }
            Denial::NoSuchBucket => "The specified bucket does not exist",
        }
    }
}

/// Operations only a bucket's owner may run, whatever its policy says.
fn owner_only(operation: &str) -> bool {
    matches!(
        operation,
        "GetBucketPolicy"
            | "PutBucketPolicy"
            | "DeleteBucketPolicy"
            | "GetBucketPolicyStatus"
            | "GetPublicAccessBlock"
            | "PutPublicAccessBlock"
            | "DeletePublicAccessBlock"
            | "GetBucketOwnershipControls"
            | "PutBucketOwnershipControls"
            | "DeleteBucketOwnershipControls"
    )
}

/// The resource ARN of a request.
pub fn resource_arn(operation: &str, bucket: &str, key: Option<&str>) -> String {
    match key {
        Some(k) if on_object(operation) || operation == "BypassGovernanceRetention" => {
            format!("arn:aws:s3:::{bucket}/{k}")
        }
        _ => format!("arn:aws:s3:::{bucket}"),
    }
}

/// Decides one request. Pure: everything it needs is in `ask`.
pub fn authorize(ask: &Ask<'_>) -> Decision {
    let (who, mine) = match ask.principal {
        Principal::Root => return Decision::Allow,
        Principal::Anonymous => (Who::Anonymous, None),
        Principal::Tenant {
            tenant,
            user,
            canonical_id,
            ..
        } => (
            Who::Tenant {
                tenant,
                user: user.as_deref(),
                canonical_id,
            },
            Some(tenant.as_str()),
        ),
    };
    let refused = if mine.is_some() {
        Denial::NotOwner
    } else {
        Denial::Anonymous
    };
    let b = match ask.bucket {
        // ListBuckets (filtered to the caller's), or a bucket nobody owns: NoSuchBucket
        // or its creation follows.
        BucketFacts::None | BucketFacts::Missing if mine.is_some() => return Decision::Allow,
        BucketFacts::Missing if ask.operation != "CreateBucket" => {
            return Decision::Deny(Denial::NoSuchBucket);
        }
        BucketFacts::None | BucketFacts::Missing => return Decision::Deny(Denial::Anonymous),
        BucketFacts::Exists(b) => b,
    };
    // CreateBucket of an existing name is the handler's to answer (BucketAlreadyExists
    // / BucketAlreadyOwnedByYou).
    if ask.operation == "CreateBucket" && mine.is_some() {
        return Decision::Allow;
    }
    let owner = mine == Some(b.owner);
    if owner_only(ask.operation) {
        return if owner {
            Decision::Allow
        } else {
            Decision::Deny(refused)
        };
    }
    let outcome = b.policy.map_or(Outcome::NoMatch, |p| {
        let action = action_of(ask.operation, ask.versioned);
        let resource = resource_arn(ask.operation, ask.bucket_name, ask.key);
        p.evaluate(&Request {
            who,
            action: &action,
            resource: &resource,
            context: ask.context,
        })
    });
    let acl_grants = || {
        let who = match ask.principal {
            Principal::Tenant { canonical_id, .. } => Requester::Tenant(canonical_id),
            _ => Requester::Anonymous,
        };
        let grants = |acl: Option<&Acl>, needed: Option<Permission>| {
            needed.is_some_and(|needed| {
                acl.is_some_and(|acl| acl.allows(who, needed, b.block.ignore_public_acls))
            })
        };
        b.ownership.acls_enabled()
            && (grants(b.acl, bucket_permission(ask.operation, ask.versioned))
                || grants(ask.object_acl, object_permission(ask.operation)))
    };
    match outcome {
        Outcome::ExplicitDeny => Decision::Deny(Denial::ExplicitDeny),
        _ if owner => Decision::Allow,
        Outcome::Allow { public: false } => Decision::Allow,
        Outcome::Allow { public: true } if !b.block.restrict_public_buckets => Decision::Allow,
        _ if acl_grants() => Decision::Allow,
        Outcome::Allow { .. } => Decision::Deny(Denial::Restricted),
        Outcome::NoMatch => Decision::Deny(refused),
    }
}

#[cfg(test)]
mod tests;
