//! Authorization: one pure function, [`authorize`], from who asks, what for and on
//! what, to Allow or Deny. Handlers and the access check call it; nothing else decides.
//!
//! Today it evaluates ownership: the root key (the operator's) may do everything; a
//! tenant's key may do everything on its tenant's buckets and their objects, create
//! buckets and list its own; every other request on another tenant's bucket is denied;
//! an unsigned request is denied. A bucket that does not exist is not anyone's: the
//! operation goes on and answers NoSuchBucket (as S3 does), or creates it.

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The operator's root key: the root tenant, allowed everything.
    Root,
    /// A tenant's access key.
    Tenant {
        /// The tenant.
        tenant: String,
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

/// What is known of the bucket a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketFacts<'a> {
    /// The request names no bucket (ListBuckets).
    None,
    /// The bucket named does not exist.
    Missing,
    /// The bucket exists and belongs to this owner (`""` = root tenant).
    Owned(&'a str),
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
    /// The object key, for object operations.
    pub key: Option<&'a str>,
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
}

impl Denial {
    /// A metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Denial::Anonymous => "anonymous",
            Denial::NotOwner => "not_owner",
        }
    }

    /// The message of the AccessDenied error.
    pub fn message(self) -> &'static str {
        match self {
            Denial::Anonymous => "Access Denied: anonymous access is not allowed; sign the request",
            Denial::NotOwner => "Access Denied: the bucket belongs to another tenant",
        }
    }
}

/// Decides one request. Pure: everything it needs is in `ask`.
pub fn authorize(ask: &Ask<'_>) -> Decision {
    let owner = match ask.principal {
        Principal::Root => return Decision::Allow,
        Principal::Anonymous => return Decision::Deny(Denial::Anonymous),
        Principal::Tenant { tenant, .. } => tenant.as_str(),
    };
    match ask.bucket {
        // ListBuckets (filtered to the caller's), or a bucket nobody owns: NoSuchBucket
        // or its creation follows. CreateBucket of an existing bucket is answered by the
        // handler (BucketAlreadyExists / BucketAlreadyOwnedByYou), not denied here.
        BucketFacts::None | BucketFacts::Missing => Decision::Allow,
        _ if ask.operation == "CreateBucket" => Decision::Allow,
        BucketFacts::Owned(o) if o == owner => Decision::Allow,
        BucketFacts::Owned(_) => Decision::Deny(Denial::NotOwner),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(t: &str) -> Principal {
        Principal::Tenant {
            tenant: t.into(),
            user: None,
            access_key: format!("AK-{t}"),
        }
    }

    /// principal × operation × bucket → decision.
    #[test]
    fn ownership_table() {
        use BucketFacts::{Missing, None as NoBucket, Owned};
        use Decision::{Allow, Deny};
        let a = tenant("acme");
        let alice = Principal::Tenant {
            tenant: "acme".into(),
            user: Some("alice".into()),
            access_key: "AK-alice".into(),
        };
        let cases: &[(&Principal, &str, BucketFacts<'_>, Option<&str>, Decision)] = &[
            (
                &Principal::Root,
                "GetObject",
                Owned("acme"),
                Some("k"),
                Allow,
            ),
            (&Principal::Root, "DeleteBucket", Owned("beta"), None, Allow),
            (&Principal::Root, "ListBuckets", NoBucket, None, Allow),
            (&Principal::Root, "PutObject", Owned(""), Some("k"), Allow),
            (&a, "GetObject", Owned("acme"), Some("k"), Allow),
            (&a, "PutObject", Owned("acme"), Some("k"), Allow),
            (&a, "DeleteObject", Owned("acme"), Some("k"), Allow),
            (&a, "ListObjectsV2", Owned("acme"), None, Allow),
            (&alice, "GetObject", Owned("acme"), Some("k"), Allow),
            (
                &alice,
                "PutObject",
                Owned("beta"),
                Some("k"),
                Deny(Denial::NotOwner),
            ),
            (
                &a,
                "GetObject",
                Owned("beta"),
                Some("k"),
                Deny(Denial::NotOwner),
            ),
            (
                &a,
                "PutObject",
                Owned("beta"),
                Some("k"),
                Deny(Denial::NotOwner),
            ),
            (
                &a,
                "DeleteObject",
                Owned("beta"),
                Some("k"),
                Deny(Denial::NotOwner),
            ),
            (
                &a,
                "ListObjectsV2",
                Owned("beta"),
                None,
                Deny(Denial::NotOwner),
            ),
            (
                &a,
                "DeleteBucket",
                Owned("beta"),
                None,
                Deny(Denial::NotOwner),
            ),
            (
                &a,
                "HeadBucket",
                Owned("beta"),
                None,
                Deny(Denial::NotOwner),
            ),
            (
                &a,
                "CreateMultipartUpload",
                Owned("beta"),
                Some("k"),
                Deny(Denial::NotOwner),
            ),
            (
                &a,
                "PutBucketVersioning",
                Owned("beta"),
                None,
                Deny(Denial::NotOwner),
            ),
            // The root tenant's buckets are not a tenant's.
            (
                &a,
                "GetObject",
                Owned(""),
                Some("k"),
                Deny(Denial::NotOwner),
            ),
            (&a, "CreateBucket", Owned("beta"), None, Allow),
            (&a, "CreateBucket", Missing, None, Allow),
            (&a, "GetObject", Missing, Some("k"), Allow),
            (&a, "ListBuckets", NoBucket, None, Allow),
            (
                &Principal::Anonymous,
                "GetObject",
                Owned("acme"),
                Some("k"),
                Deny(Denial::Anonymous),
            ),
            (
                &Principal::Anonymous,
                "ListBuckets",
                NoBucket,
                None,
                Deny(Denial::Anonymous),
            ),
            (
                &Principal::Anonymous,
                "CreateBucket",
                Missing,
                None,
                Deny(Denial::Anonymous),
            ),
            (
                &Principal::Anonymous,
                "GetObject",
                Missing,
                Some("k"),
                Deny(Denial::Anonymous),
            ),
        ];
        for (i, (principal, operation, bucket, key, want)) in cases.iter().enumerate() {
            let got = authorize(&Ask {
                principal,
                operation,
                bucket: *bucket,
                key: *key,
            });
            assert_eq!(&got, want, "case {i}: {principal:?} {operation} {bucket:?}");
        }
    }

    #[test]
    fn labels_and_owners() {
        assert_eq!(Principal::Root.owner(), Some(""));
        assert_eq!(tenant("acme").owner(), Some("acme"));
        assert_eq!(Principal::Anonymous.owner(), None);
        assert_eq!(Principal::Root.label(), "root");
        assert_eq!(Principal::Anonymous.label(), "anonymous");
    }
}
