//! Bucket ACLs and ownership controls on the real binary, with the Rust SDK, the aws CLI
//! and unsigned HTTP requests: grants by canonical id to another tenant (READ lists,
//! WRITE writes and deletes, neither reads objects), canned ACLs on a bucket and at its
//! creation (public-read lists to anyone), the public access block's IgnorePublicAcls and
//! BlockPublicAcls, BucketOwnerEnforced turning ACLs off, object ACLs as far as they
//! exist, and every refusal with its S3 error.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    AccessControlPolicy, BucketCannedAcl, Grant, Grantee, ObjectCannedAcl, ObjectOwnership, Owner,
    OwnershipControls, OwnershipControlsRule, Permission, PublicAccessBlockConfiguration, Type,
};
use s3dedup_conformance::{Gateway, get_bytes, http_request, refusal, sdk_client};
use serde_json::Value;

/// The AllUsers group's URI, as S3 writes it.
const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";

/// An unsigned request: its status.
fn anonymous(g: &Gateway, method: &str, path: &str) -> u16 {
    http_request(g.s3_addr(), method, path, &[], b"x")
        .unwrap()
        .0
}

/// A PUT signed with the root key (SigV4, the body's SHA-256): status and body.
fn signed_put(g: &Gateway, path_and_query: &str, body: &[u8]) -> (u16, String) {
    let url = format!("{}{path_and_query}", g.s3_url);
    let headers = s3dedup_conformance::sign_as_root(
        "PUT",
        &url,
        &[("host", g.s3_addr().to_owned())],
        aws_sigv4::http_request::SignableBody::Bytes(body),
    );
    let headers: Vec<(&str, String)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let (status, resp) = http_request(g.s3_addr(), "PUT", path_and_query, &headers, body).unwrap();
    (status, String::from_utf8_lossy(&resp).into_owned())
}

/// BucketOwnerEnforced ownership controls.
fn enforced() -> OwnershipControls {
    OwnershipControls::builder()
        .rules(
            OwnershipControlsRule::builder()
                .object_ownership(ObjectOwnership::BucketOwnerEnforced)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_acls_grant_what_they_say_and_nothing_more() {
    let g = Gateway::start().unwrap();
    g.admin_cli_ok(&["tenant", "create", "acme"]);
    g.admin_cli_ok(&["tenant", "create", "beta"]);
    let (acme_id, beta_id) = (g.canonical_id("acme"), g.canonical_id("beta"));
    let acme = g.client_for(&g.create_key(&["--tenant", "acme"]));
    let beta = g.client_for(&g.create_key(&["--tenant", "beta"]));
    acme.create_bucket().bucket("shelf").send().await.unwrap();
    acme.put_object()
        .bucket("shelf")
        .key("k")
        .body(ByteStream::from_static(b"acme's"))
        .send()
        .await
        .unwrap();
    // No ACL yet: the owner's alone.
    let acl = acme.get_bucket_acl().bucket("shelf").send().await.unwrap();
    assert_eq!(acl.owner().and_then(Owner::id), Some(acme_id.as_str()));
    assert_eq!(acl.grants().len(), 1, "{acl:?}");
    assert_eq!(acl.grants()[0].permission(), Some(&Permission::FullControl));
    let r = beta.list_objects_v2().bucket("shelf").send().await;
    assert_eq!(refusal(r), (403, "AccessDenied".into()));

    // READ to beta: beta lists, and still neither reads objects nor the ACL.
    acme.put_bucket_acl()
        .bucket("shelf")
        .grant_read(format!("id=\"{beta_id}\""))
        .grant_full_control(format!("id={acme_id}"))
        .send()
        .await
        .unwrap();
    let listed = beta.list_objects_v2().bucket("shelf").send().await.unwrap();
    assert_eq!(listed.contents().len(), 1);
    let r = beta.get_object().bucket("shelf").key("k").send().await;
    assert_eq!(refusal(r).0, 403);
    let r = beta.get_bucket_acl().bucket("shelf").send().await;
    assert_eq!(refusal(r).0, 403);
    let r = beta
        .put_object()
        .bucket("shelf")
        .key("beta's")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_eq!(refusal(r).0, 403);
    let acl = acme.get_bucket_acl().bucket("shelf").send().await.unwrap();
    let read = acl
        .grants()
        .iter()
        .find(|g| g.permission() == Some(&Permission::Read))
        .expect("a READ grant");
    assert_eq!(read.grantee().and_then(Grantee::id), Some(beta_id.as_str()));

    // WRITE to beta: it writes and deletes, and lists nothing.
    acme.put_bucket_acl()
        .bucket("shelf")
        .grant_write(format!("id=\"{beta_id}\""))
        .send()
        .await
        .unwrap();
    beta.put_object()
        .bucket("shelf")
        .key("from-beta")
        .body(ByteStream::from_static(b"beta's"))
        .send()
        .await
        .unwrap();
    assert!(get_bytes(&acme, "shelf", "from-beta").await == b"beta's");
    beta.delete_object()
        .bucket("shelf")
        .key("from-beta")
        .send()
        .await
        .unwrap();
    let r = beta.list_objects_v2().bucket("shelf").send().await;
    assert_eq!(refusal(r).0, 403);

    // Canned public-read: anyone lists; objects, the ACL and writes stay closed.
    assert_eq!(anonymous(&g, "GET", "/shelf"), 403);
    acme.put_bucket_acl()
        .bucket("shelf")
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous(&g, "GET", "/shelf"), 200);
    assert_eq!(anonymous(&g, "GET", "/shelf/k"), 403);
    assert_eq!(anonymous(&g, "GET", "/shelf?acl"), 403);
    assert_eq!(anonymous(&g, "PUT", "/shelf/anon"), 403);
    // IgnorePublicAcls turns that off; without the block it is back.
    let block = |ignore: bool, block: bool| {
        PublicAccessBlockConfiguration::builder()
            .ignore_public_acls(ignore)
            .block_public_acls(block)
            .build()
    };
    acme.put_public_access_block()
        .bucket("shelf")
        .public_access_block_configuration(block(true, false))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous(&g, "GET", "/shelf"), 403);
    acme.delete_public_access_block()
        .bucket("shelf")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous(&g, "GET", "/shelf"), 200);
    // BlockPublicAcls refuses a public ACL (and keeps the one in place).
    acme.put_public_access_block()
        .bucket("shelf")
        .public_access_block_configuration(block(false, true))
        .send()
        .await
        .unwrap();
    let r = acme
        .put_bucket_acl()
        .bucket("shelf")
        .acl(BucketCannedAcl::PublicReadWrite)
        .send()
        .await;
    assert_eq!(refusal(r), (403, "AccessDenied".into()));
    assert_eq!(anonymous(&g, "PUT", "/shelf/anon"), 403);

    // Ownership controls: BucketOwnerEnforced needs an owner-only ACL, then turns ACLs off.
    let r = acme
        .put_bucket_ownership_controls()
        .bucket("shelf")
        .ownership_controls(enforced())
        .send()
        .await;
    assert_eq!(
        refusal(r),
        (400, "InvalidBucketAclWithObjectOwnership".into())
    );
    let r = acme
        .get_bucket_ownership_controls()
        .bucket("shelf")
        .send()
        .await;
    assert_eq!(refusal(r), (404, "OwnershipControlsNotFoundError".into()));
    acme.put_bucket_acl()
        .bucket("shelf")
        .acl(BucketCannedAcl::Private)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous(&g, "GET", "/shelf"), 403);
    acme.put_bucket_ownership_controls()
        .bucket("shelf")
        .ownership_controls(enforced())
        .send()
        .await
        .unwrap();
    let got = acme
        .get_bucket_ownership_controls()
        .bucket("shelf")
        .send()
        .await
        .unwrap();
    let rule = &got.ownership_controls().unwrap().rules()[0];
    assert_eq!(
        rule.object_ownership(),
        &ObjectOwnership::BucketOwnerEnforced
    );
    let r = acme
        .put_bucket_acl()
        .bucket("shelf")
        .grant_read(format!("id=\"{beta_id}\""))
        .send()
        .await;
    assert_eq!(refusal(r), (400, "AccessControlListNotSupported".into()));
    let r = beta
        .put_bucket_ownership_controls()
        .bucket("shelf")
        .ownership_controls(enforced())
        .send()
        .await;
    assert_eq!(refusal(r).0, 403, "only the owner sets ownership controls");
    acme.delete_bucket_ownership_controls()
        .bucket("shelf")
        .send()
        .await
        .unwrap();

    // Bad input, each with its error; the ACL in place stays.
    acme.delete_public_access_block()
        .bucket("shelf")
        .send()
        .await
        .unwrap();
    let bad_grants = [
        (
            "emailAddress=\"a@example.com\"",
            "UnresolvableGrantByEmailAddress",
        ),
        ("id=\"0123\"", "InvalidArgument"),
        (&*format!("id=\"{}\"", "e".repeat(64)), "InvalidArgument"),
        (
            "uri=\"http://acs.amazonaws.com/groups/s3/LogDelivery\"",
            "MalformedACLError",
        ),
        ("nonsense", "MalformedACLError"),
    ];
    for (grant, code) in bad_grants {
        let r = acme
            .put_bucket_acl()
            .bucket("shelf")
            .grant_read(grant)
            .send()
            .await;
        assert_eq!(refusal(r), (400, code.to_owned()), "{grant}");
    }
    let r = acme
        .put_bucket_acl()
        .bucket("shelf")
        .acl(BucketCannedAcl::PublicRead)
        .grant_read(format!("id=\"{beta_id}\""))
        .send()
        .await;
    assert_eq!(refusal(r), (400, "InvalidRequest".into()));
    let owner = Owner::builder().id(&acme_id).build();
    let grant = |permission: Option<Permission>| {
        let mut b = Grant::builder().grantee(
            Grantee::builder()
                .r#type(Type::CanonicalUser)
                .id(&beta_id)
                .build()
                .unwrap(),
        );
        if let Some(p) = permission {
            b = b.permission(p);
        }
        b.build()
    };
    for (policy, what) in [
        (
            AccessControlPolicy::builder()
                .grants(grant(Some(Permission::Read)))
                .build(),
            "no Owner",
        ),
        (
            AccessControlPolicy::builder()
                .owner(owner.clone())
                .grants(grant(None))
                .build(),
            "a grant without permission",
        ),
    ] {
        let r = acme
            .put_bucket_acl()
            .bucket("shelf")
            .access_control_policy(policy)
            .send()
            .await;
        assert_eq!(refusal(r), (400, "MalformedACLError".into()), "{what}");
    }
    // A well-formed body works.
    acme.put_bucket_acl()
        .bucket("shelf")
        .access_control_policy(
            AccessControlPolicy::builder()
                .owner(owner)
                .grants(grant(Some(Permission::Read)))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(beta.list_objects_v2().bucket("shelf").send().await.is_ok());
    assert_eq!(anonymous(&g, "GET", "/shelf"), 403);

    // An object without an ACL of its own: its bucket owner's FULL_CONTROL.
    let oacl = acme
        .get_object_acl()
        .bucket("shelf")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(oacl.owner().and_then(Owner::id), Some(acme_id.as_str()));
    assert_eq!(oacl.grants().len(), 1);
    let r = acme
        .get_object_acl()
        .bucket("shelf")
        .key("nope")
        .send()
        .await;
    assert_eq!(refusal(r).0, 404);
}

/// Object ACLs: set by PutObject, CopyObject, CreateMultipartUpload and PutObjectAcl,
/// kept per version, granting GET/HEAD (and copying) of that version and its ACL; the
/// public access block and BucketOwnerEnforced apply to them too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_acls_grant_reads_of_their_version() {
    let dir = tempfile::tempdir().unwrap();
    let g = Gateway::start_with(dir.path(), &[("S3DEDUP_MIN_PART_SIZE", "1MiB")]).unwrap();
    g.admin_cli_ok(&["tenant", "create", "acme"]);
    g.admin_cli_ok(&["tenant", "create", "beta"]);
    let beta_id = g.canonical_id("beta");
    let acme = g.client_for(&g.create_key(&["--tenant", "acme"]));
    let beta = g.client_for(&g.create_key(&["--tenant", "beta"]));
    acme.create_bucket().bucket("files").send().await.unwrap();
    beta.create_bucket()
        .bucket("beta-files")
        .send()
        .await
        .unwrap();
    let put = |key: &'static str, acl: Option<ObjectCannedAcl>| {
        let mut p = acme
            .put_object()
            .bucket("files")
            .key(key)
            .body(ByteStream::from_static(b"contents"));
        if let Some(a) = acl {
            p = p.acl(a);
        }
        p.send()
    };
    put("public", Some(ObjectCannedAcl::PublicRead))
        .await
        .unwrap();
    put("private", None).await.unwrap();
    put("owner-full", Some(ObjectCannedAcl::BucketOwnerFullControl))
        .await
        .unwrap();
    assert_eq!(anonymous(&g, "GET", "/files/public"), 200);
    assert_eq!(anonymous(&g, "HEAD", "/files/public"), 200);
    assert_eq!(anonymous(&g, "GET", "/files/private"), 403);
    assert_eq!(anonymous(&g, "GET", "/files/owner-full"), 403);
    assert_eq!(
        anonymous(&g, "GET", "/files"),
        403,
        "an object ACL lists nothing"
    );
    assert_eq!(anonymous(&g, "GET", "/files/public?acl"), 403);
    let got = acme
        .get_object_acl()
        .bucket("files")
        .key("public")
        .send()
        .await
        .unwrap();
    let uris: Vec<_> = got
        .grants()
        .iter()
        .filter_map(|g| g.grantee().and_then(Grantee::uri))
        .collect();
    assert_eq!(uris, [ALL_USERS]);

    // PutObjectAcl: a grant to beta lets it read (and copy) that object only.
    acme.put_object_acl()
        .bucket("files")
        .key("private")
        .grant_read(format!("id=\"{beta_id}\""))
        .send()
        .await
        .unwrap();
    assert!(get_bytes(&beta, "files", "private").await == b"contents");
    beta.head_object()
        .bucket("files")
        .key("private")
        .send()
        .await
        .unwrap();
    let r = beta
        .get_object()
        .bucket("files")
        .key("owner-full")
        .send()
        .await;
    assert_eq!(refusal(r).0, 403);
    let r = beta
        .get_object_acl()
        .bucket("files")
        .key("private")
        .send()
        .await;
    assert_eq!(refusal(r).0, 403, "READ is not READ_ACP");
    let r = beta
        .put_object_acl()
        .bucket("files")
        .key("private")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await;
    assert_eq!(refusal(r).0, 403, "READ is not WRITE_ACP");
    beta.copy_object()
        .bucket("beta-files")
        .key("copied")
        .copy_source("files/private")
        .send()
        .await
        .unwrap();
    assert!(get_bytes(&beta, "beta-files", "copied").await == b"contents");
    let r = beta
        .copy_object()
        .bucket("beta-files")
        .key("copied-2")
        .copy_source("files/owner-full")
        .send()
        .await;
    assert_eq!(refusal(r).0, 403);
    // Back to private: the grant is gone.
    acme.put_object_acl()
        .bucket("files")
        .key("private")
        .acl(ObjectCannedAcl::Private)
        .send()
        .await
        .unwrap();
    let r = beta
        .get_object()
        .bucket("files")
        .key("private")
        .send()
        .await;
    assert_eq!(refusal(r).0, 403);
    // An overwrite without an ACL is private again (the ACL was the old version's).
    put("public", None).await.unwrap();
    assert_eq!(anonymous(&g, "GET", "/files/public"), 403);

    // CopyObject and multipart uploads give their object the ACL asked for.
    acme.copy_object()
        .bucket("files")
        .key("public-copy")
        .copy_source("files/private")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous(&g, "GET", "/files/public-copy"), 200);
    let up = acme
        .create_multipart_upload()
        .bucket("files")
        .key("big")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let p = acme
        .upload_part()
        .bucket("files")
        .key("big")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from(vec![7u8; 100_000]))
        .send()
        .await
        .unwrap();
    acme.complete_multipart_upload()
        .bucket("files")
        .key("big")
        .upload_id(id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .parts(
                    aws_sdk_s3::types::CompletedPart::builder()
                        .part_number(1)
                        .e_tag(p.e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous(&g, "GET", "/files/big"), 200);

    // IgnorePublicAcls: public object grants count no more; BlockPublicAcls: refused.
    let block = |ignore: bool, block: bool| {
        PublicAccessBlockConfiguration::builder()
            .ignore_public_acls(ignore)
            .block_public_acls(block)
            .build()
    };
    acme.put_public_access_block()
        .bucket("files")
        .public_access_block_configuration(block(true, true))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous(&g, "GET", "/files/big"), 403);
    let r = put("blocked", Some(ObjectCannedAcl::PublicRead)).await;
    assert_eq!(refusal(r), (403, "AccessDenied".into()));
    let r = acme
        .head_object()
        .bucket("files")
        .key("blocked")
        .send()
        .await;
    assert_eq!(refusal(r).0, 404, "a refused PUT stores nothing");
    let r = acme
        .put_object_acl()
        .bucket("files")
        .key("private")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await;
    assert_eq!(refusal(r), (403, "AccessDenied".into()));
    acme.delete_public_access_block()
        .bucket("files")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous(&g, "GET", "/files/big"), 200);

    // BucketOwnerEnforced: object ACLs count no more, and only the owner's are taken.
    acme.put_bucket_ownership_controls()
        .bucket("files")
        .ownership_controls(enforced())
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous(&g, "GET", "/files/big"), 403);
    let r = put("enforced", Some(ObjectCannedAcl::PublicRead)).await;
    assert_eq!(refusal(r), (400, "AccessControlListNotSupported".into()));
    put("enforced", Some(ObjectCannedAcl::BucketOwnerFullControl))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_at_bucket_creation_and_with_the_aws_cli() {
    let g = Gateway::start().unwrap();
    let root = sdk_client(&g.s3_url);
    root.create_bucket()
        .bucket("born-public")
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous(&g, "GET", "/born-public"), 200);
    // A public ACL with ACLs off is refused, and no bucket is made.
    let r = root
        .create_bucket()
        .bucket("never-made")
        .acl(BucketCannedAcl::PublicRead)
        .object_ownership(ObjectOwnership::BucketOwnerEnforced)
        .send()
        .await;
    assert_eq!(
        refusal(r),
        (400, "InvalidBucketAclWithObjectOwnership".into())
    );
    assert!(
        root.head_bucket()
            .bucket("never-made")
            .send()
            .await
            .is_err()
    );
    root.create_bucket()
        .bucket("enforced")
        .object_ownership(ObjectOwnership::BucketOwnerEnforced)
        .send()
        .await
        .unwrap();
    let r = root
        .put_bucket_acl()
        .bucket("enforced")
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await;
    assert_eq!(refusal(r), (400, "AccessControlListNotSupported".into()));

    // An ACL body that is not XML: MalformedACLError, as S3 answers.
    for path in ["/enforced?acl", "/born-public?acl"] {
        let (status, body) = signed_put(&g, path, b"<AccessControlPolicy><Owner>");
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("<Code>MalformedACLError</Code>"), "{body}");
    }

    // The aws CLI: put-bucket-acl, get-bucket-acl.
    let home = tempfile::tempdir().unwrap();
    root.create_bucket().bucket("cli-acl").send().await.unwrap();
    let aws = |args: &[&str]| {
        let o = s3dedup_conformance::aws_command("aws", &g, home.path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "aws {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    aws(&[
        "s3api",
        "put-bucket-acl",
        "--bucket",
        "cli-acl",
        "--acl",
        "public-read",
    ]);
    let got: Value =
        serde_json::from_str(&aws(&["s3api", "get-bucket-acl", "--bucket", "cli-acl"])).unwrap();
    let uris: Vec<&str> = got["Grants"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["Grantee"]["URI"].as_str())
        .collect();
    assert_eq!(uris, [ALL_USERS], "{got}");
    assert_eq!(anonymous(&g, "GET", "/cli-acl"), 200);
    aws(&[
        "s3api",
        "put-bucket-acl",
        "--bucket",
        "cli-acl",
        "--acl",
        "private",
    ]);
    assert_eq!(anonymous(&g, "GET", "/cli-acl"), 403);
}

/// The version judged is the version served: an old private version stays private
/// behind a public current one, however its version id parameter is spelled; a bucket
/// WRITE grant never deletes versions; object lock headers are not a WRITE grantee's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_and_lock_headers_are_judged_on_what_is_served() {
    let g = Gateway::start().unwrap();
    g.admin_cli_ok(&["tenant", "create", "acme"]);
    g.admin_cli_ok(&["tenant", "create", "beta"]);
    let beta_id = g.canonical_id("beta");
    let acme = g.client_for(&g.create_key(&["--tenant", "acme"]));
    let beta = g.client_for(&g.create_key(&["--tenant", "beta"]));
    acme.create_bucket()
        .bucket("vers")
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    let put = |acl: Option<ObjectCannedAcl>| {
        let mut p = acme
            .put_object()
            .bucket("vers")
            .key("k")
            .body(ByteStream::from_static(b"v"));
        if let Some(a) = acl {
            p = p.acl(a);
        }
        p.send()
    };
    let v1 = put(None).await.unwrap().version_id().unwrap().to_owned();
    let v2 = put(Some(ObjectCannedAcl::PublicRead))
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_owned();
    assert_eq!(anonymous(&g, "GET", "/vers/k"), 200);
    assert_eq!(
        anonymous(&g, "GET", &format!("/vers/k?versionId={v2}")),
        200
    );
    assert_eq!(
        anonymous(&g, "GET", &format!("/vers/k?versionId={v1}")),
        403
    );
    assert_eq!(
        anonymous(&g, "GET", &format!("/vers/k?version%49d={v1}")),
        403
    );
    assert_eq!(
        anonymous(&g, "HEAD", &format!("/vers/k?versio%6EId={v1}")),
        403
    );
    assert_eq!(
        anonymous(&g, "GET", &format!("/vers/k?versionId={v2}&versionId={v1}")),
        400
    );
    // A version's own ACL, set by its id.
    acme.put_object_acl()
        .bucket("vers")
        .key("k")
        .version_id(&v1)
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    assert_eq!(
        anonymous(&g, "GET", &format!("/vers/k?versionId={v1}")),
        200
    );

    // WRITE for everyone: objects can be written, versions are not deleted.
    acme.put_bucket_acl()
        .bucket("vers")
        .acl(BucketCannedAcl::PublicReadWrite)
        .send()
        .await
        .unwrap();
    for path in [
        format!("/vers/k?versionId={v1}"),
        format!("/vers/k?version%49d={v1}"),
    ] {
        assert_eq!(anonymous(&g, "DELETE", &path), 403, "{path}");
    }
    acme.head_object()
        .bucket("vers")
        .key("k")
        .version_id(&v1)
        .send()
        .await
        .unwrap();

    // A WRITE grantee writes, but may not lock what it writes.
    acme.put_bucket_acl()
        .bucket("vers")
        .grant_write(format!("id=\"{beta_id}\""))
        .send()
        .await
        .unwrap();
    beta.put_object()
        .bucket("vers")
        .key("from-beta")
        .body(ByteStream::from_static(b"b"))
        .send()
        .await
        .unwrap();
    let until = aws_sdk_s3::primitives::DateTime::from_secs(4_000_000_000);
    let r = beta
        .put_object()
        .bucket("vers")
        .key("locked-by-beta")
        .object_lock_mode(aws_sdk_s3::types::ObjectLockMode::Compliance)
        .object_lock_retain_until_date(until)
        .body(ByteStream::from_static(b"b"))
        .send()
        .await;
    assert_eq!(refusal(r).0, 403);
    let r = beta
        .put_object()
        .bucket("vers")
        .key("held-by-beta")
        .object_lock_legal_hold_status(aws_sdk_s3::types::ObjectLockLegalHoldStatus::On)
        .body(ByteStream::from_static(b"b"))
        .send()
        .await;
    assert_eq!(refusal(r).0, 403);
    let r = acme
        .head_object()
        .bucket("vers")
        .key("locked-by-beta")
        .send()
        .await;
    assert_eq!(refusal(r).0, 404, "the refused write stored nothing");
}
