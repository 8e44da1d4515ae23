//! The authorization table: principal × action × resource × condition × explicit deny
//! × bucket ACL, against [`authorize`], with one bucket policy that uses every supported
//! element and bucket ACLs with every kind of grantee.

use super::*;
use crate::acl::Ownership;
use crate::policy::Policy;
use crate::policy::eval::Context;

const GAMMA_ID: &str = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

fn shared_policy() -> Policy {
    let json = format!(
        r#"{{
      "Version": "2012-10-17",
      "Id": "table",
      "Statement": [
        {{"Sid": "BetaReadsPub", "Effect": "Allow", "Principal": {{"AWS": "arn:aws:iam::beta:root"}},
          "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::shared/pub/*"}},
        {{"Sid": "BetaListsPub", "Effect": "Allow", "Principal": {{"AWS": "beta"}},
          "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::shared",
          "Condition": {{"StringLike": {{"s3:prefix": "pub/*"}}}}}},
        {{"Sid": "BobWrites", "Effect": "Allow", "Principal": {{"AWS": "arn:aws:iam::beta:user/bob"}},
          "Action": "s3:Put*", "Resource": "arn:aws:s3:::shared/inbox/*"}},
        {{"Sid": "AclRequired", "Effect": "Deny", "Principal": {{"AWS": ["beta"]}},
          "Action": "s3:PutObject", "Resource": "arn:aws:s3:::shared/inbox/*",
          "Condition": {{"StringNotEquals": {{"s3:x-amz-acl": "bucket-owner-full-control"}}}}}},
        {{"Sid": "AnyoneReadsPublic", "Effect": "Allow", "Principal": "*",
          "Action": "s3:GetObject", "Resource": "arn:aws:s3:::shared/public/*"}},
        {{"Sid": "OfficeOnly", "Effect": "Allow", "Principal": {{"AWS": "*"}},
          "Action": "s3:GetObject", "Resource": "arn:aws:s3:::shared/office/*",
          "Condition": {{"IpAddress": {{"aws:SourceIp": ["10.1.0.0/16", "2001:db8::/32"]}}}}}},
        {{"Sid": "NoDeletes", "Effect": "Deny", "Principal": "*",
          "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"], "Resource": "arn:aws:s3:::shared/keep/*"}},
        {{"Sid": "TlsForSecrets", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
          "Resource": "arn:aws:s3:::shared/secret/*",
          "Condition": {{"Bool": {{"aws:SecureTransport": false}}}}}},
        {{"Sid": "GammaAllButDeletes", "Effect": "Allow", "Principal": {{"CanonicalUser": "{GAMMA_ID}"}},
          "NotAction": "s3:Delete*", "NotResource": "arn:aws:s3:::shared/private/*"}}
      ]
    }}"#
    );
    Policy::parse(&json, "shared", &|t| {
        ["beta", "gamma", "delta"].contains(&t)
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn tenant(t: &str, user: Option<&str>, canonical_id: &str) -> Principal {
    Principal::Tenant {
        tenant: t.into(),
        canonical_id: canonical_id.into(),
        user: user.map(Into::into),
        access_key: format!("AK-{t}"),
    }
}

/// A request's context, from `k=v;k=v`.
fn cx(spec: &str) -> Context {
    let mut c = Context::default();
    c.set("aws:SecureTransport", "false");
    for kv in spec.split(';').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap();
        c.set(k, v);
    }
    c
}

#[derive(Clone, Copy)]
enum B {
    Shared,
    SharedRestricted,
    NoPolicy,
    Missing,
    NoBucket,
    /// No policy; an ACL granting beta READ, delta WRITE, gamma READ_ACP.
    Acl,
    /// No policy; an ACL granting everyone READ and every signed request READ_ACP.
    AclPublic,
    /// `AclPublic` with IgnorePublicAcls.
    AclPublicIgnored,
    /// `Acl` with ownership controls BucketOwnerEnforced (ACLs off).
    AclEnforced,
    /// The shared policy and `Acl`.
    SharedWithAcl,
}

fn table_acl(public: bool) -> crate::acl::Acl {
    use crate::acl::{Acl, Grant, Grantee, Permission};
    let g = |grantee, permission| Grant {
        grantee,
        permission,
    };
    let mut grants = vec![g(
        Grantee::Canonical("aa".repeat(32)),
        Permission::FullControl,
    )];
    if public {
        grants.push(g(Grantee::AllUsers, Permission::Read));
        grants.push(g(Grantee::AuthenticatedUsers, Permission::ReadAcp));
    } else {
        grants.push(g(Grantee::Canonical("bb".repeat(32)), Permission::Read));
        grants.push(g(Grantee::Canonical("dd".repeat(32)), Permission::Write));
        grants.push(g(Grantee::Canonical(GAMMA_ID.into()), Permission::ReadAcp));
    }
    Acl { grants }
}

/// principal, operation, bucket, key, versioned, context, expected decision.
type Case<'a> = (
    &'a Principal,
    &'a str,
    B,
    Option<&'a str>,
    bool,
    &'a str,
    Decision,
);

#[test]
fn authorization_table() {
    use Decision::{Allow, Deny};
    use Denial::{Anonymous, ExplicitDeny, NoSuchBucket, NotOwner, Restricted};
    let policy = shared_policy();
    let acme = tenant("acme", None, &"aa".repeat(32));
    let beta = tenant("beta", None, &"bb".repeat(32));
    let bob = tenant("beta", Some("bob"), &"bb".repeat(32));
    let alice = tenant("beta", Some("alice"), &"bb".repeat(32));
    let gamma = tenant("gamma", None, GAMMA_ID);
    let delta = tenant("delta", None, &"dd".repeat(32));
    let anon = Principal::Anonymous;
    let root = Principal::Root;
    let acl = "s3:x-amz-acl=bucket-owner-full-control";
    #[rustfmt::skip]
    let cases: Vec<Case<'_>> = vec![
        // The owner: everything, except what the policy denies explicitly.
        (&acme, "GetObject", B::Shared, Some("any/x"), false, "", Allow),
        (&acme, "PutObject", B::Shared, Some("keep/x"), false, "", Allow),
        (&acme, "DeleteObject", B::Shared, Some("keep/x"), false, "", Deny(ExplicitDeny)),
        (&acme, "DeleteObject", B::Shared, Some("keep/x"), true, "", Deny(ExplicitDeny)),
        (&acme, "DeleteObject", B::Shared, Some("other/x"), false, "", Allow),
        (&acme, "GetObject", B::Shared, Some("secret/x"), false, "", Deny(ExplicitDeny)),
        (&acme, "GetObject", B::Shared, Some("secret/x"), false, "aws:SecureTransport=true", Allow),
        (&acme, "PutBucketPolicy", B::Shared, None, false, "", Allow),
        (&acme, "DeleteBucketPolicy", B::Shared, None, false, "", Allow),
        (&acme, "ListObjectsV2", B::Shared, None, false, "", Allow),
        (&acme, "DeleteBucket", B::NoPolicy, None, false, "", Allow),
        // Another tenant, granted a prefix.
        (&beta, "GetObject", B::Shared, Some("pub/a"), false, "", Allow),
        (&beta, "HeadObject", B::Shared, Some("pub/a/b"), false, "", Allow),
        (&beta, "GetObject", B::Shared, Some("pub/a"), true, "", Deny(NotOwner)),
        (&beta, "GetObject", B::Shared, Some("pub"), false, "", Deny(NotOwner)),
        (&beta, "GetObject", B::Shared, Some("priv/a"), false, "", Deny(NotOwner)),
        (&beta, "PutObject", B::Shared, Some("pub/a"), false, "", Deny(NotOwner)),
        (&beta, "DeleteObject", B::Shared, Some("pub/a"), false, "", Deny(NotOwner)),
        (&beta, "ListObjectsV2", B::Shared, None, false, "s3:prefix=pub/", Allow),
        (&beta, "ListObjects", B::Shared, None, false, "s3:prefix=pub/x", Allow),
        (&beta, "ListObjectsV2", B::Shared, None, false, "s3:prefix=priv/", Deny(NotOwner)),
        (&beta, "ListObjectsV2", B::Shared, None, false, "", Deny(NotOwner)),
        (&beta, "ListObjectVersions", B::Shared, None, false, "s3:prefix=pub/", Deny(NotOwner)),
        (&beta, "GetBucketPolicy", B::Shared, None, false, "", Deny(NotOwner)),
        (&beta, "PutBucketPolicy", B::Shared, None, false, "", Deny(NotOwner)),
        (&beta, "PutPublicAccessBlock", B::Shared, None, false, "", Deny(NotOwner)),
        (&beta, "DeleteBucket", B::Shared, None, false, "", Deny(NotOwner)),
        (&beta, "GetObject", B::Shared, Some("public/x"), false, "", Allow),
        (&beta, "GetObject", B::SharedRestricted, Some("public/x"), false, "", Deny(Restricted)),
        (&beta, "GetObject", B::SharedRestricted, Some("pub/a"), false, "", Allow),
        (&beta, "GetObject", B::Shared, Some("office/x"), false, "aws:SourceIp=10.1.2.3", Allow),
        (&beta, "GetObject", B::Shared, Some("office/x"), false, "aws:SourceIp=10.2.0.1", Deny(NotOwner)),
        (&beta, "GetObject", B::Shared, Some("office/x"), false, "aws:SourceIp=2001:db8::7", Allow),
        (&beta, "GetObject", B::Shared, Some("office/x"), false, "aws:SourceIp=::ffff:10.1.0.9", Allow),
        (&beta, "DeleteObject", B::Shared, Some("keep/x"), false, "", Deny(ExplicitDeny)),
        (&beta, "GetObject", B::NoPolicy, Some("pub/a"), false, "", Deny(NotOwner)),
        (&beta, "CreateBucket", B::Shared, None, false, "", Allow),
        (&beta, "GetObject", B::Missing, Some("k"), false, "", Allow),
        (&beta, "ListBuckets", B::NoBucket, None, false, "", Allow),
        // A user of that tenant: the tenant's grants, plus the user's own.
        (&bob, "PutObject", B::Shared, Some("inbox/x"), false, acl, Allow),
        (&bob, "CreateMultipartUpload", B::Shared, Some("inbox/x"), false, acl, Allow),
        (&bob, "PutObject", B::Shared, Some("inbox/x"), false, "", Deny(ExplicitDeny)),
        (&bob, "PutObject", B::Shared, Some("inbox/x"), false, "s3:x-amz-acl=private", Deny(ExplicitDeny)),
        (&bob, "PutObject", B::Shared, Some("outbox/x"), false, acl, Deny(NotOwner)),
        (&bob, "GetObject", B::Shared, Some("pub/a"), false, "", Allow),
        (&bob, "GetObject", B::Shared, Some("inbox/x"), false, "", Deny(NotOwner)),
        (&bob, "BypassGovernanceRetention", B::Shared, Some("inbox/x"), false, "", Deny(NotOwner)),
        (&alice, "PutObject", B::Shared, Some("inbox/x"), false, acl, Deny(NotOwner)),
        (&alice, "GetObject", B::Shared, Some("pub/a"), false, "", Allow),
        // A tenant named by canonical id, with NotAction and NotResource.
        (&gamma, "GetObject", B::Shared, Some("any/x"), false, "", Allow),
        (&gamma, "PutObject", B::Shared, Some("any/x"), false, "", Allow),
        (&gamma, "ListObjectsV2", B::Shared, None, false, "", Allow),
        (&gamma, "PutBucketVersioning", B::Shared, None, false, "", Allow),
        (&gamma, "BypassGovernanceRetention", B::Shared, Some("any/x"), false, "", Allow),
        (&gamma, "DeleteObject", B::Shared, Some("any/x"), false, "", Deny(NotOwner)),
        (&gamma, "GetObject", B::Shared, Some("private/x"), false, "", Deny(NotOwner)),
        (&gamma, "GetBucketPolicy", B::Shared, None, false, "", Deny(NotOwner)),
        (&gamma, "DeleteObject", B::Shared, Some("keep/x"), false, "", Deny(ExplicitDeny)),
        (&gamma, "GetObject", B::Shared, Some("secret/x"), false, "", Deny(ExplicitDeny)),
        // A tenant the policy does not name: public statements only.
        (&delta, "GetObject", B::Shared, Some("public/x"), false, "", Allow),
        (&delta, "GetObject", B::Shared, Some("pub/a"), false, "", Deny(NotOwner)),
        (&delta, "PutObject", B::Shared, Some("public/x"), false, "", Deny(NotOwner)),
        // Unsigned requests.
        (&anon, "GetObject", B::Shared, Some("public/x"), false, "", Allow),
        (&anon, "HeadObject", B::Shared, Some("public/x"), false, "", Allow),
        (&anon, "GetObject", B::SharedRestricted, Some("public/x"), false, "", Deny(Restricted)),
        (&anon, "GetObject", B::Shared, Some("office/x"), false, "aws:SourceIp=10.1.0.5", Allow),
        (&anon, "GetObject", B::SharedRestricted, Some("office/x"), false, "aws:SourceIp=10.1.0.5", Allow),
        (&anon, "GetObject", B::Shared, Some("office/x"), false, "", Deny(Anonymous)),
        (&anon, "GetObject", B::Shared, Some("pub/a"), false, "", Deny(Anonymous)),
        (&anon, "PutObject", B::Shared, Some("public/x"), false, "", Deny(Anonymous)),
        (&anon, "ListObjectsV2", B::Shared, None, false, "s3:prefix=pub/", Deny(Anonymous)),
        (&anon, "GetObject", B::Shared, Some("secret/x"), false, "", Deny(ExplicitDeny)),
        (&anon, "DeleteObject", B::Shared, Some("keep/x"), false, "", Deny(ExplicitDeny)),
        (&anon, "GetBucketPolicy", B::Shared, None, false, "", Deny(Anonymous)),
        (&anon, "GetObject", B::NoPolicy, Some("k"), false, "", Deny(Anonymous)),
        (&anon, "GetObject", B::Missing, Some("k"), false, "", Deny(NoSuchBucket)),
        (&anon, "PutObject", B::Missing, Some("k"), false, "", Deny(NoSuchBucket)),
        (&anon, "CreateBucket", B::Missing, None, false, "", Deny(Anonymous)),
        (&anon, "ListBuckets", B::NoBucket, None, false, "", Deny(Anonymous)),
        // Bucket ACLs: what each permission covers, for whom.
        (&beta, "ListObjectsV2", B::Acl, None, false, "", Allow),
        (&beta, "ListObjectVersions", B::Acl, None, false, "", Allow),
        (&beta, "HeadBucket", B::Acl, None, false, "", Allow),
        (&beta, "GetObject", B::Acl, Some("k"), false, "", Deny(NotOwner)),
        (&beta, "PutObject", B::Acl, Some("k"), false, "", Deny(NotOwner)),
        (&beta, "GetBucketAcl", B::Acl, None, false, "", Deny(NotOwner)),
        (&bob, "ListObjects", B::Acl, None, false, "", Allow),
        (&delta, "PutObject", B::Acl, Some("k"), false, "", Allow),
        (&delta, "CreateMultipartUpload", B::Acl, Some("k"), false, "", Allow),
        (&delta, "DeleteObject", B::Acl, Some("k"), false, "", Allow),
        (&delta, "DeleteObject", B::Acl, Some("k"), true, "", Deny(NotOwner)),
        (&delta, "ListObjectsV2", B::Acl, None, false, "", Deny(NotOwner)),
        (&delta, "PutBucketAcl", B::Acl, None, false, "", Deny(NotOwner)),
        (&gamma, "GetBucketAcl", B::Acl, None, false, "", Allow),
        (&gamma, "PutBucketAcl", B::Acl, None, false, "", Deny(NotOwner)),
        (&gamma, "GetBucketPolicy", B::Acl, None, false, "", Deny(NotOwner)),
        (&gamma, "PutBucketOwnershipControls", B::Acl, None, false, "", Deny(NotOwner)),
        (&acme, "PutBucketAcl", B::Acl, None, false, "", Allow),
        (&acme, "PutBucketOwnershipControls", B::Acl, None, false, "", Allow),
        (&anon, "ListObjectsV2", B::Acl, None, false, "", Deny(Anonymous)),
        (&anon, "ListObjectsV2", B::AclPublic, None, false, "", Allow),
        (&anon, "GetObject", B::AclPublic, Some("k"), false, "", Deny(Anonymous)),
        (&anon, "GetBucketAcl", B::AclPublic, None, false, "", Deny(Anonymous)),
        (&anon, "PutObject", B::AclPublic, Some("k"), false, "", Deny(Anonymous)),
        (&delta, "GetBucketAcl", B::AclPublic, None, false, "", Allow),
        (&delta, "ListObjectsV2", B::AclPublic, None, false, "", Allow),
        (&anon, "ListObjectsV2", B::AclPublicIgnored, None, false, "", Deny(Anonymous)),
        (&delta, "GetBucketAcl", B::AclPublicIgnored, None, false, "", Deny(NotOwner)),
        (&beta, "ListObjectsV2", B::AclEnforced, None, false, "", Deny(NotOwner)),
        (&delta, "PutObject", B::AclEnforced, Some("k"), false, "", Deny(NotOwner)),
        (&acme, "ListObjectsV2", B::AclEnforced, None, false, "", Allow),
        (&delta, "DeleteObject", B::SharedWithAcl, Some("keep/x"), false, "", Deny(ExplicitDeny)),
        (&delta, "PutObject", B::SharedWithAcl, Some("any/x"), false, "", Allow),
        (&beta, "ListObjectsV2", B::SharedWithAcl, None, false, "", Allow),
        (&beta, "GetObject", B::SharedWithAcl, Some("secret/x"), false, "", Deny(ExplicitDeny)),
        // The operator's root key: never refused.
        (&root, "DeleteObject", B::Shared, Some("keep/x"), false, "", Allow),
        (&root, "GetObject", B::Shared, Some("secret/x"), false, "", Allow),
        (&root, "PutBucketPolicy", B::Shared, None, false, "", Allow),
        (&root, "ListBuckets", B::NoBucket, None, false, "", Allow),
    ];
    assert!(cases.len() >= 60, "{} cases", cases.len());
    for (i, (principal, operation, bucket, key, versioned, context, want)) in
        cases.iter().enumerate()
    {
        let restricted = PublicAccessBlock {
            restrict_public_buckets: true,
            ..Default::default()
        };
        let access = |policy: Option<&'static Policy>, block| BucketAccess {
            owner: "acme",
            policy,
            block,
            acl: None,
            ownership: Ownership::default(),
        };
        let leaked: &'static Policy = Box::leak(Box::new(policy.clone()));
        let private: &'static crate::acl::Acl = Box::leak(Box::new(table_acl(false)));
        let public: &'static crate::acl::Acl = Box::leak(Box::new(table_acl(true)));
        let ignore = PublicAccessBlock {
            ignore_public_acls: true,
            ..Default::default()
        };
        let none = PublicAccessBlock::default();
        let facts = match bucket {
            B::Shared => BucketFacts::Exists(access(Some(leaked), none)),
            B::SharedRestricted => BucketFacts::Exists(access(Some(leaked), restricted)),
            B::NoPolicy => BucketFacts::Exists(access(None, none)),
            B::Missing => BucketFacts::Missing,
            B::NoBucket => BucketFacts::None,
            B::Acl => BucketFacts::Exists(BucketAccess {
                acl: Some(private),
                ..access(None, none)
            }),
            B::AclPublic => BucketFacts::Exists(BucketAccess {
                acl: Some(public),
                ..access(None, none)
            }),
            B::AclPublicIgnored => BucketFacts::Exists(BucketAccess {
                acl: Some(public),
                ..access(None, ignore)
            }),
            B::AclEnforced => BucketFacts::Exists(BucketAccess {
                acl: Some(private),
                ownership: Ownership::BucketOwnerEnforced,
                ..access(None, none)
            }),
            B::SharedWithAcl => BucketFacts::Exists(BucketAccess {
                acl: Some(private),
                ..access(Some(leaked), none)
            }),
        };
        let context = cx(context);
        let got = authorize(&Ask {
            principal,
            operation,
            bucket: facts,
            bucket_name: "shared",
            key: *key,
            versioned: *versioned,
            context: &context,
            object_acl: None,
        });
        assert_eq!(
            &got, want,
            "case {i}: {principal:?} {operation} {key:?} {context:?}"
        );
    }
}

#[test]
fn malformed_policies_are_refused_with_a_reason() {
    let ok_stmt =
        r#""Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*""#;
    let cases = [
        ("not json", "invalid Json"),
        (r#"[]"#, "JSON object"),
        (r#"{"Statement":[]}"#, "Version"),
        (r#"{"Version":"2012-10-17"}"#, "Statement"),
        (r#"{"Version":"2012-10-17","Statement":[]}"#, "Statement"),
        (r#"{"Version":"2011-01-01","Statement":{}}"#, "version"),
        (
            &format!(r#"{{"Version":"2012-10-17","Extra":1,"Statement":{{{ok_stmt}}}}}"#),
            "Unknown field Extra",
        ),
        (
            &format!(r#"{{"Version":"2012-10-17","Statement":{{{ok_stmt},"Bogus":1}}}}"#),
            "Unknown field Bogus",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Maybe","Principal":"*","Action":"s3:GetObject","Resource":"*"}}"#,
            "effect",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","NotPrincipal":"*","Action":"s3:GetObject","Resource":"*"}}"#,
            "NotPrincipal",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"Service":"x"},"Action":"s3:GetObject","Resource":"*"}}"#,
            "Service",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"nosuch"},"Action":"s3:GetObject","Resource":"*"}}"#,
            "no tenant",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"ec2:RunInstances","Resource":"*"}}"#,
            "invalid action",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"s3:Fly*","Resource":"*"}}"#,
            "invalid action",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::other/*"}}"#,
            "not in bucket",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"b/*"}}"#,
            "invalid resource",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/${aws:username}/*"}}"#,
            "policy variables",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","NotAction":"s3:PutObject","Resource":"*"}}"#,
            "exactly one of Action",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject"}}"#,
            "exactly one of Resource",
        ),
        (
            &format!(
                r#"{{"Version":"2012-10-17","Statement":{{{ok_stmt},"Condition":{{"StringSortOf":{{"s3:prefix":"a"}}}}}}}}"#
            ),
            "Unknown condition operator",
        ),
        (
            &format!(
                r#"{{"Version":"2012-10-17","Statement":{{{ok_stmt},"Condition":{{"StringEquals":{{"aws:NoSuchKey":"a"}}}}}}}}"#
            ),
            "invalid condition key",
        ),
        (
            &format!(
                r#"{{"Version":"2012-10-17","Statement":{{{ok_stmt},"Condition":{{"IpAddress":{{"aws:SourceIp":"10.0.0.0/99"}}}}}}}}"#
            ),
            "invalid IP",
        ),
        (
            &format!(
                r#"{{"Version":"2012-10-17","Statement":{{{ok_stmt},"Condition":{{"ForAnyValue:StringEquals":{{"s3:prefix":"a"}}}}}}}}"#
            ),
            "set operators",
        ),
        (
            &format!(
                r#"{{"Version":"2012-10-17","Statement":{{{ok_stmt},"Condition":{{"Bool":{{"aws:SecureTransport":"yes"}}}}}}}}"#
            ),
            "true or false",
        ),
    ];
    for (doc, want) in cases {
        let err = Policy::parse(doc, "b", &|t| t == "beta").expect_err(doc);
        assert!(err.contains(want), "{doc}: {err:?} should mention {want:?}");
    }
    let big = format!(
        r#"{{"Version":"2012-10-17","Id":"{}","Statement":{{{ok_stmt}}}}}"#,
        "x".repeat(21_000)
    );
    assert!(Policy::parse(&big, "b", &|_| true).is_err());
    let good = format!(r#"{{"Version":"2012-10-17","Statement":{{{ok_stmt}}}}}"#);
    assert!(Policy::parse(&good, "b", &|_| true).unwrap().is_public());
}

#[test]
fn public_means_granted_to_everyone_without_a_source_restriction() {
    let parse = |stmt: &str| {
        Policy::parse(
            &format!(r#"{{"Version":"2012-10-17","Statement":{stmt}}}"#),
            "b",
            &|_| true,
        )
        .unwrap()
    };
    let public = r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}"#;
    let by_ip = r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}"#;
    let by_everything = r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}}"#;
    let tenant = r#"{"Effect":"Allow","Principal":{"AWS":"beta"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}"#;
    let deny = r#"{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}"#;
    assert!(parse(public).is_public());
    assert!(!parse(by_ip).is_public());
    assert!(parse(by_everything).is_public());
    assert!(!parse(tenant).is_public());
    assert!(!parse(deny).is_public());
}

#[test]
fn public_access_block_round_trips() {
    for f in 0u8..16 {
        let b = PublicAccessBlock::decode(&[f]).unwrap();
        assert_eq!(b.encode(), vec![f]);
    }
    assert!(PublicAccessBlock::decode(&[16]).is_none());
    assert!(PublicAccessBlock::decode(&[]).is_none());
}

#[test]
fn labels_and_owners() {
    assert_eq!(Principal::Root.owner(), Some(""));
    assert_eq!(tenant("acme", None, "x").owner(), Some("acme"));
    assert_eq!(Principal::Anonymous.owner(), None);
    assert_eq!(Principal::Root.label(), "root");
    assert_eq!(Principal::Anonymous.label(), "anonymous");
}

/// principal, operation, key, bucket, the object's ACL, expected decision.
type ObjectCase<'a> = (
    &'a Principal,
    &'a str,
    Option<&'a str>,
    BucketAccess<'a>,
    &'a crate::acl::Acl,
    Decision,
);

/// Object ACLs: what a version's own ACL grants (READ reads that object, READ_ACP and
/// WRITE_ACP its ACL), under the same rules as bucket ACLs (explicit Deny wins,
/// IgnorePublicAcls, BucketOwnerEnforced).
#[test]
fn object_acls_grant_reads_of_their_version() {
    use crate::acl::{Acl, Grant, Grantee, Permission};
    use Decision::{Allow, Deny};
    use Denial::{Anonymous, ExplicitDeny, NotOwner};
    let beta = tenant("beta", None, &"bb".repeat(32));
    let delta = tenant("delta", None, &"dd".repeat(32));
    let anon = Principal::Anonymous;
    let g = |grantee, permission| Grant {
        grantee,
        permission,
    };
    let object_acl = Acl {
        grants: vec![
            g(Grantee::Canonical("bb".repeat(32)), Permission::Read),
            g(Grantee::Canonical("dd".repeat(32)), Permission::ReadAcp),
            g(Grantee::AllUsers, Permission::Read),
        ],
    };
    let private_object = Acl {
        grants: vec![g(
            Grantee::Canonical("bb".repeat(32)),
            Permission::FullControl,
        )],
    };
    let policy = shared_policy();
    let none = PublicAccessBlock::default();
    let ignore = PublicAccessBlock {
        ignore_public_acls: true,
        ..Default::default()
    };
    let bucket = |policy, block, ownership| BucketAccess {
        owner: "acme",
        policy,
        block,
        acl: None,
        ownership,
    };
    let open = Ownership::default();
    let enforced = Ownership::BucketOwnerEnforced;
    #[rustfmt::skip]
    let cases: Vec<ObjectCase<'_>> = vec![
        (&beta, "GetObject", Some("k"), bucket(None, none, open), &object_acl, Allow),
        (&beta, "HeadObject", Some("k"), bucket(None, none, open), &object_acl, Allow),
        (&beta, "PutObject", Some("k"), bucket(None, none, open), &object_acl, Deny(NotOwner)),
        (&beta, "DeleteObject", Some("k"), bucket(None, none, open), &object_acl, Deny(NotOwner)),
        (&beta, "GetObjectAcl", Some("k"), bucket(None, none, open), &object_acl, Deny(NotOwner)),
        (&delta, "GetObjectAcl", Some("k"), bucket(None, none, open), &object_acl, Allow),
        (&delta, "PutObjectAcl", Some("k"), bucket(None, none, open), &object_acl, Deny(NotOwner)),
        (&beta, "PutObjectAcl", Some("k"), bucket(None, none, open), &private_object, Allow),
        (&delta, "GetObject", Some("k"), bucket(None, none, open), &object_acl, Allow),
        (&delta, "GetObject", Some("k"), bucket(None, ignore, open), &object_acl, Deny(NotOwner)),
        (&anon, "GetObject", Some("k"), bucket(None, none, open), &object_acl, Allow),
        (&anon, "GetObject", Some("k"), bucket(None, ignore, open), &object_acl, Deny(Anonymous)),
        (&anon, "GetObject", Some("k"), bucket(None, none, open), &private_object, Deny(Anonymous)),
        (&beta, "GetObject", Some("k"), bucket(None, none, enforced), &object_acl, Deny(NotOwner)),
        (&anon, "GetObject", Some("secret/k"), bucket(Some(&policy), none, open), &object_acl, Deny(ExplicitDeny)),
        (&beta, "GetObject", Some("priv/k"), bucket(Some(&policy), none, open), &object_acl, Allow),
    ];
    let context = cx("");
    for (i, (principal, operation, key, b, acl, want)) in cases.iter().enumerate() {
        let got = authorize(&Ask {
            principal,
            operation,
            bucket: BucketFacts::Exists(*b),
            bucket_name: "shared",
            key: *key,
            versioned: false,
            context: &context,
            object_acl: Some(acl),
        });
        assert_eq!(
            &got, want,
            "object case {i}: {principal:?} {operation} {key:?}"
        );
    }
}
