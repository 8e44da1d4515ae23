//! S3 operations as IAM actions: which action a request needs, and the actions a
//! policy may name.

/// The IAM action an S3 operation (s3s's name) needs; `versioned` = the request names
/// a version id (GetObject of a version needs `s3:GetObjectVersion`, as in S3).
pub fn action_of(operation: &str, versioned: bool) -> String {
    let a = match (operation, versioned) {
        ("GetObject" | "HeadObject", false) => "GetObject",
        ("GetObject" | "HeadObject", true) => "GetObjectVersion",
        ("GetObjectAttributes", true) => "GetObjectVersionAttributes",
        ("GetObjectTagging", true) => "GetObjectVersionTagging",
        ("PutObjectTagging", true) => "PutObjectVersionTagging",
        ("DeleteObjectTagging", true) => "DeleteObjectVersionTagging",
        ("DeleteBucketTagging", _) => "PutBucketTagging",
        ("GetBucketCors", _) => "GetBucketCORS",
        ("PutBucketCors" | "DeleteBucketCors", _) => "PutBucketCORS",
        ("DeleteObject", false) => "DeleteObject",
        ("DeleteObject", true) => "DeleteObjectVersion",
        ("DeleteObjects", _) => "DeleteObject",
        (
            "PutObject"
            | "CopyObject"
            | "CreateMultipartUpload"
            | "UploadPart"
            | "UploadPartCopy"
            | "CompleteMultipartUpload",
            _,
        ) => "PutObject",
        ("ListParts", _) => "ListMultipartUploadParts",
        ("ListObjects" | "ListObjectsV2" | "HeadBucket", _) => "ListBucket",
        ("ListObjectVersions", _) => "ListBucketVersions",
        ("ListMultipartUploads", _) => "ListBucketMultipartUploads",
        ("ListBuckets", _) => "ListAllMyBuckets",
        ("GetObjectLockConfiguration", _) => "GetBucketObjectLockConfiguration",
        ("PutObjectLockConfiguration", _) => "PutBucketObjectLockConfiguration",
        ("GetBucketLifecycleConfiguration", _) => "GetLifecycleConfiguration",
        ("PutBucketLifecycleConfiguration" | "DeleteBucketLifecycle", _) => {
            "PutLifecycleConfiguration"
        }
        ("GetPublicAccessBlock", _) => "GetBucketPublicAccessBlock",
        ("PutPublicAccessBlock" | "DeletePublicAccessBlock", _) => "PutBucketPublicAccessBlock",
        (other, _) => other,
    };
    format!("s3:{a}")
}

/// Whether an operation acts on an object (its resource is `bucket/key`) rather than
/// on the bucket.
pub fn on_object(operation: &str) -> bool {
    matches!(
        operation,
        "GetObject"
            | "HeadObject"
            | "PutObject"
            | "CopyObject"
            | "DeleteObject"
            | "CreateMultipartUpload"
            | "UploadPart"
            | "UploadPartCopy"
            | "CompleteMultipartUpload"
            | "AbortMultipartUpload"
            | "ListParts"
            | "GetObjectRetention"
            | "PutObjectRetention"
            | "GetObjectLegalHold"
            | "PutObjectLegalHold"
            | "GetObjectAcl"
            | "PutObjectAcl"
            | "GetObjectAttributes"
            | "GetObjectTagging"
            | "PutObjectTagging"
            | "DeleteObjectTagging"
    )
}

/// Every action a policy may name (without the `s3:` prefix): a name not here, or a
/// wildcard that matches none of these, is a malformed policy.
pub const KNOWN: &[&str] = &[
    "AbortMultipartUpload",
    "BypassGovernanceRetention",
    "CreateBucket",
    "DeleteBucket",
    "DeleteBucketPolicy",
    "DeleteObject",
    "DeleteObjectTagging",
    "DeleteObjectVersion",
    "DeleteObjectVersionTagging",
    "GetBucketAcl",
    "GetBucketCORS",
    "GetBucketLocation",
    "GetBucketObjectLockConfiguration",
    "GetBucketOwnershipControls",
    "GetBucketPolicy",
    "GetBucketPolicyStatus",
    "GetBucketPublicAccessBlock",
    "GetBucketTagging",
    "GetBucketVersioning",
    "GetLifecycleConfiguration",
    "GetObject",
    "GetObjectAcl",
    "GetObjectAttributes",
    "GetObjectLegalHold",
    "GetObjectRetention",
    "GetObjectTagging",
    "GetObjectVersion",
    "GetObjectVersionAttributes",
    "GetObjectVersionTagging",
    "ListAllMyBuckets",
    "ListBucket",
    "ListBucketMultipartUploads",
    "ListBucketVersions",
    "ListMultipartUploadParts",
    "PutBucketAcl",
    "PutBucketCORS",
    "PutBucketObjectLockConfiguration",
    "PutBucketOwnershipControls",
    "PutBucketPolicy",
    "PutBucketPublicAccessBlock",
    "PutBucketTagging",
    "PutBucketVersioning",
    "PutLifecycleConfiguration",
    "PutObject",
    "PutObjectAcl",
    "PutObjectLegalHold",
    "PutObjectRetention",
    "PutObjectTagging",
    "PutObjectVersionTagging",
];

/// `*` matches any run of characters, `?` any one (IAM's wildcards); case-sensitive
/// unless `fold` (actions are case-insensitive).
pub fn wildcard(pattern: &str, text: &str, fold: bool) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = if fold {
        (
            pattern.to_lowercase().chars().collect(),
            text.to_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), text.chars().collect())
    };
    // Iterative matcher with backtracking to the last `*`: linear in practice.
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard("s3:Get*", "s3:GetObject", false));
        assert!(wildcard("s3:get*", "s3:GetObject", true));
        assert!(!wildcard("s3:get*", "s3:GetObject", false));
        assert!(wildcard("a?c", "abc", false));
        assert!(!wildcard("a?c", "ac", false));
        assert!(wildcard("*", "", false));
        assert!(wildcard("pub/*/x*", "pub/a/b/xyz", false));
        assert!(!wildcard("pub/*", "private/x", false));
        assert!(wildcard("**a", "bba", false));
    }

    #[test]
    fn actions() {
        assert_eq!(action_of("HeadObject", false), "s3:GetObject");
        assert_eq!(action_of("GetObject", true), "s3:GetObjectVersion");
        assert_eq!(action_of("ListObjectsV2", false), "s3:ListBucket");
        assert_eq!(action_of("UploadPart", false), "s3:PutObject");
        assert_eq!(
            action_of("GetBucketVersioning", false),
            "s3:GetBucketVersioning"
        );
        for op in ["GetObject", "PutObject", "ListParts", "DeleteObject"] {
            let a = action_of(op, false);
            assert!(KNOWN.contains(&&a[3..]), "{a}");
        }
        assert!(on_object("UploadPart") && !on_object("ListObjectsV2"));
    }
}
