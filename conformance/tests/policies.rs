//! Bucket policies and public access blocks on the real binary: a grant to another
//! tenant for exactly one prefix, an explicit Deny that binds the owner too (also per
//! key of DeleteObjects), a public-read bucket served to curl without credentials and
//! switched off by a public access block, governance bypass only for who is granted
//! it, and malformed documents refused with their reason.

use std::process::Command;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    Delete, ObjectIdentifier, ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode,
    PublicAccessBlockConfiguration,
};
use s3dedup_conformance::{Gateway, error_message, get_bytes, refusal};
use serde_json::{Value, json};

fn tenant_client(g: &Gateway, tenant: &str) -> aws_sdk_s3::Client {
    g.admin_cli_ok(&["tenant", "create", tenant]);
    g.client_for(&g.create_key(&["--tenant", tenant]))
}

async fn put(c: &aws_sdk_s3::Client, b: &str, k: &str, body: &[u8]) {
    c.put_object()
        .bucket(b)
        .key(k)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {b}/{k}: {e:?}"));
}

async fn put_policy(
    c: &aws_sdk_s3::Client,
    b: &str,
    p: &Value,
) -> Result<(), (u16, String, String)> {
    match c
        .put_bucket_policy()
        .bucket(b)
        .policy(p.to_string())
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => Err((
            s3dedup_conformance::error_status(&e),
            s3dedup_conformance::error_code(&e),
            error_message(&e),
        )),
    }
}

async fn keys(
    c: &aws_sdk_s3::Client,
    b: &str,
    prefix: Option<&str>,
) -> Result<Vec<String>, (u16, String)> {
    match c
        .list_objects_v2()
        .bucket(b)
        .set_prefix(prefix.map(Into::into))
        .send()
        .await
    {
        Ok(o) => Ok(o
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect()),
        Err(e) => Err((
            s3dedup_conformance::error_status(&e),
            s3dedup_conformance::error_code(&e),
        )),
    }
}

fn denied<T: std::fmt::Debug, E: aws_sdk_s3::error::ProvideErrorMetadata>(
    r: Result<T, aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
    what: &str,
) {
    let (s, code) = refusal(r);
    assert_eq!((s, code.as_str()), (403, "AccessDenied"), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_grants_another_tenant_exactly_one_prefix() {
    let g = Gateway::start().unwrap();
    let a = tenant_client(&g, "acme");
    let b = tenant_client(&g, "beta");
    a.create_bucket().bucket("acme-share").send().await.unwrap();
    for k in [
        "pub/a.txt",
        "pub/sub/b.txt",
        "private/c.txt",
        "keep/x",
        "other/y",
    ] {
        put(&a, "acme-share", k, format!("body of {k}").as_bytes()).await;
    }
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "BetaReadsPub", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::beta:root"},
             "Action": "s3:GetObject", "Resource": "arn:aws:s3:::acme-share/pub/*"},
            {"Sid": "BetaListsPub", "Effect": "Allow", "Principal": {"AWS": "beta"},
             "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::acme-share",
             "Condition": {"StringLike": {"s3:prefix": "pub/*"}}},
            {"Sid": "NobodyDeletesKeep", "Effect": "Deny", "Principal": "*",
             "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::acme-share/keep/*"}
        ]
    });
    put_policy(&a, "acme-share", &policy).await.unwrap();

    // Exactly the prefix.
    assert!(get_bytes(&b, "acme-share", "pub/a.txt").await == b"body of pub/a.txt");
    assert!(get_bytes(&b, "acme-share", "pub/sub/b.txt").await == b"body of pub/sub/b.txt");
    denied(
        b.get_object()
            .bucket("acme-share")
            .key("private/c.txt")
            .send()
            .await,
        "GET outside the prefix",
    );
    assert_eq!(
        keys(&b, "acme-share", Some("pub/")).await.unwrap(),
        ["pub/a.txt", "pub/sub/b.txt"]
    );
    assert_eq!(
        keys(&b, "acme-share", None).await,
        Err((403, "AccessDenied".into()))
    );
    assert_eq!(
        keys(&b, "acme-share", Some("private/")).await,
        Err((403, "AccessDenied".into()))
    );
    denied(
        b.put_object()
            .bucket("acme-share")
            .key("pub/new")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await,
        "PUT",
    );
    denied(
        b.delete_object()
            .bucket("acme-share")
            .key("pub/a.txt")
            .send()
            .await,
        "DELETE",
    );
    denied(
        b.copy_object()
            .bucket("acme-share")
            .key("pub/copy")
            .copy_source("acme-share/pub/a.txt")
            .send()
            .await,
        "COPY into",
    );
    // A granted source may be copied into one's own bucket.
    b.create_bucket().bucket("beta-own").send().await.unwrap();
    b.copy_object()
        .bucket("beta-own")
        .key("a")
        .copy_source("acme-share/pub/a.txt")
        .send()
        .await
        .unwrap();
    denied(
        b.copy_object()
            .bucket("beta-own")
            .key("c")
            .copy_source("acme-share/private/c.txt")
            .send()
            .await,
        "COPY from outside",
    );
    // The policy itself is the owner's.
    denied(
        b.get_bucket_policy().bucket("acme-share").send().await,
        "GetBucketPolicy by another tenant",
    );
    denied(
        b.delete_bucket_policy().bucket("acme-share").send().await,
        "DeleteBucketPolicy by another tenant",
    );
    let got = a
        .get_bucket_policy()
        .bucket("acme-share")
        .send()
        .await
        .unwrap();
    let got: Value = serde_json::from_str(got.policy().unwrap()).unwrap();
    assert_eq!(got, policy);
    let status = a
        .get_bucket_policy_status()
        .bucket("acme-share")
        .send()
        .await
        .unwrap();
    assert_eq!(
        status.policy_status().and_then(|s| s.is_public()),
        Some(false)
    );

    // An explicit Deny binds the owner's keys too, and DeleteObjects key by key.
    denied(
        a.delete_object()
            .bucket("acme-share")
            .key("keep/x")
            .send()
            .await,
        "owner DELETE under Deny",
    );
    let out = a
        .delete_objects()
        .bucket("acme-share")
        .delete(
            Delete::builder()
                .objects(ObjectIdentifier::builder().key("keep/x").build().unwrap())
                .objects(ObjectIdentifier::builder().key("other/y").build().unwrap())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let errs: Vec<_> = out
        .errors()
        .iter()
        .map(|e| (e.key().unwrap_or(""), e.code().unwrap_or("")))
        .collect();
    assert_eq!(errs, [("keep/x", "AccessDenied")]);
    let done: Vec<_> = out.deleted().iter().filter_map(|d| d.key()).collect();
    assert_eq!(done, ["other/y"]);
    assert!(get_bytes(&a, "acme-share", "keep/x").await == b"body of keep/x");

    // Malformed documents: refused with the reason, nothing stored.
    for (bad, want) in [
        (
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::acme-share/*", "Extra": 1}]}),
            "Unknown field Extra",
        ),
        (
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "nosuch"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::acme-share/*"}]}),
            "no tenant",
        ),
        (
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::other-bucket/*"}]}),
            "not in bucket",
        ),
        (
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::acme-share/*", "Condition": {"StringEquals": {"s3:bogus": "x"}}}]}),
            "invalid condition key",
        ),
    ] {
        let (s, code, msg) = put_policy(&a, "acme-share", &bad).await.unwrap_err();
        assert_eq!((s, code.as_str()), (400, "MalformedPolicy"), "{bad}");
        assert!(msg.contains(want), "{bad}: {msg}");
    }
    let raw = a
        .put_bucket_policy()
        .bucket("acme-share")
        .policy("{not json")
        .send()
        .await;
    assert_eq!(refusal(raw), (400, "MalformedPolicy".into()));
    let still: Value = serde_json::from_str(
        a.get_bucket_policy()
            .bucket("acme-share")
            .send()
            .await
            .unwrap()
            .policy()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(still, policy, "a refused policy replaced nothing");

    // Without the policy, nothing is granted any more.
    a.delete_bucket_policy()
        .bucket("acme-share")
        .send()
        .await
        .unwrap();
    denied(
        b.get_object()
            .bucket("acme-share")
            .key("pub/a.txt")
            .send()
            .await,
        "GET after DeleteBucketPolicy",
    );
    let (s, code) = refusal(a.get_bucket_policy().bucket("acme-share").send().await);
    assert_eq!((s, code.as_str()), (404, "NoSuchBucketPolicy"));
    assert!(
        g.metric_sum("s3dedup_auth_failures_total", &["reason=\"explicit_deny\""])
            .unwrap()
            >= 2.0
    );
}

/// curl without credentials: (status, body).
fn curl(g: &Gateway, method: &str, path: &str) -> (u16, String) {
    let url = format!("{}{path}", g.s3_url);
    // HEAD with -I: `-X HEAD` would wait for a body that never comes.
    let how: &[&str] = if method == "HEAD" {
        &["-I"]
    } else {
        &["-X", method]
    };
    let o = Command::new("curl")
        .args(["-s", "--max-time", "20", "-w", "\n%{http_code}"])
        .args(how)
        .arg(&url)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.trim().parse().unwrap(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_read_bucket_serves_anyone_until_its_public_access_block_says_no() {
    let g = Gateway::start().unwrap();
    let a = tenant_client(&g, "pubco");
    a.create_bucket().bucket("downloads").send().await.unwrap();
    put(&a, "downloads", "release/tool.tar", b"the release bytes").await;
    let (s, body) = curl(&g, "GET", "/downloads/release/tool.tar");
    assert_eq!(s, 403, "private before the policy: {body}");
    assert!(body.contains("AccessDenied"), "{body}");
    let public = json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject", "s3:ListBucket"],
             "Resource": ["arn:aws:s3:::downloads", "arn:aws:s3:::downloads/*"]}
        ]
    });
    put_policy(&a, "downloads", &public).await.unwrap();
    let status = a
        .get_bucket_policy_status()
        .bucket("downloads")
        .send()
        .await
        .unwrap();
    assert_eq!(
        status.policy_status().and_then(|s| s.is_public()),
        Some(true)
    );

    assert_eq!(
        curl(&g, "GET", "/downloads/release/tool.tar"),
        (200, "the release bytes".into())
    );
    assert_eq!(curl(&g, "HEAD", "/downloads/release/tool.tar").0, 200);
    let (s, listing) = curl(&g, "GET", "/downloads?list-type=2");
    assert_eq!(s, 200, "{listing}");
    assert!(listing.contains("<Key>release/tool.tar</Key>"), "{listing}");
    for (method, path) in [
        ("PUT", "/downloads/planted"),
        ("DELETE", "/downloads/release/tool.tar"),
        ("GET", "/"),
        ("GET", "/downloads?policy"),
    ] {
        let (s, body) = curl(&g, method, path);
        assert_eq!(s, 403, "anonymous {method} {path}: {body}");
        assert!(
            body.contains("<Code>AccessDenied</Code>"),
            "anonymous {method} {path}: {body}"
        );
    }
    assert!(
        g.metric_sum("s3dedup_tenant_requests_total", &["tenant=\"anonymous\""])
            .unwrap()
            >= 3.0
    );

    // No block yet.
    let (s, code) = refusal(a.get_public_access_block().bucket("downloads").send().await);
    assert_eq!(
        (s, code.as_str()),
        (404, "NoSuchPublicAccessBlockConfiguration")
    );
    // RestrictPublicBuckets turns the public grant off; deleting the block turns it on.
    let restrict = PublicAccessBlockConfiguration::builder()
        .restrict_public_buckets(true)
        .build();
    a.put_public_access_block()
        .bucket("downloads")
        .public_access_block_configuration(restrict)
        .send()
        .await
        .unwrap();
    assert_eq!(curl(&g, "GET", "/downloads/release/tool.tar").0, 403);
    assert_eq!(curl(&g, "GET", "/downloads?list-type=2").0, 403);
    assert!(
        get_bytes(&a, "downloads", "release/tool.tar").await == b"the release bytes",
        "the owner still reads"
    );
    a.delete_public_access_block()
        .bucket("downloads")
        .send()
        .await
        .unwrap();
    assert_eq!(curl(&g, "GET", "/downloads/release/tool.tar").0, 200);

    // BlockPublicPolicy refuses a public policy, not a private one.
    let block = PublicAccessBlockConfiguration::builder()
        .block_public_policy(true)
        .build();
    a.put_public_access_block()
        .bucket("downloads")
        .public_access_block_configuration(block)
        .send()
        .await
        .unwrap();
    let got = a
        .get_public_access_block()
        .bucket("downloads")
        .send()
        .await
        .unwrap();
    let c = got.public_access_block_configuration().unwrap();
    assert_eq!(
        (
            c.block_public_acls(),
            c.ignore_public_acls(),
            c.block_public_policy(),
            c.restrict_public_buckets()
        ),
        (Some(false), Some(false), Some(true), Some(false))
    );
    let (s, code, msg) = put_policy(&a, "downloads", &public).await.unwrap_err();
    assert_eq!((s, code.as_str()), (403, "AccessDenied"));
    assert!(msg.contains("BlockPublicPolicy"), "{msg}");
    let by_ip = json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::downloads/*", "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}}]
    });
    put_policy(&a, "downloads", &by_ip).await.unwrap();
    // curl comes from 127.0.0.1: inside the block.
    assert_eq!(curl(&g, "GET", "/downloads/release/tool.tar").0, 200);
    let elsewhere = json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::downloads/*", "Condition": {"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}}}]
    });
    put_policy(&a, "downloads", &elsewhere).await.unwrap();
    assert_eq!(curl(&g, "GET", "/downloads/release/tool.tar").0, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn governance_bypass_needs_its_own_permission() {
    let g = Gateway::start().unwrap();
    let a = tenant_client(&g, "lockco");
    let b = tenant_client(&g, "cleaner");
    a.create_bucket()
        .bucket("locked")
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    let until = aws_sdk_s3::primitives::DateTime::from_secs(
        (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600) as i64,
    );
    let v = a
        .put_object()
        .bucket("locked")
        .key("doc")
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(until)
        .body(ByteStream::from_static(b"governed"))
        .send()
        .await
        .unwrap();
    let vid = v.version_id().unwrap().to_owned();
    let grant = |actions: Value| {
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "cleaner"},
            "Action": actions, "Resource": "arn:aws:s3:::locked/*"}]})
    };
    put_policy(
        &a,
        "locked",
        &grant(json!(["s3:DeleteObjectVersion", "s3:PutObjectRetention"])),
    )
    .await
    .unwrap();
    let del = || {
        b.delete_object()
            .bucket("locked")
            .key("doc")
            .version_id(&vid)
            .bypass_governance_retention(true)
            .send()
    };
    denied(del().await, "bypass without s3:BypassGovernanceRetention");
    let shorten = b
        .put_object_retention()
        .bucket("locked")
        .key("doc")
        .version_id(&vid)
        .bypass_governance_retention(true)
        .retention(
            ObjectLockRetention::builder()
                .mode(ObjectLockRetentionMode::Governance)
                .retain_until_date(until)
                .build(),
        )
        .send()
        .await;
    denied(
        shorten,
        "retention change with bypass, without the permission",
    );
    // Without bypass the lock itself refuses.
    let plain = b
        .delete_object()
        .bucket("locked")
        .key("doc")
        .version_id(&vid)
        .send()
        .await;
    denied(plain, "locked version");
    put_policy(
        &a,
        "locked",
        &grant(json!([
            "s3:DeleteObjectVersion",
            "s3:BypassGovernanceRetention"
        ])),
    )
    .await
    .unwrap();
    del().await.unwrap();
    let (s, _) = refusal(
        a.head_object()
            .bucket("locked")
            .key("doc")
            .version_id(&vid)
            .send()
            .await,
    );
    assert!(s == 404 || s == 400, "version is gone: {s}");
}

/// Tags in policies: `s3:ExistingObjectTag/<key>` reads the tags of the version asked
/// about (a public bucket that denies what is tagged secret), and tags set with a write
/// need `s3:PutObjectTagging` besides `s3:PutObject`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_tags_in_policies() {
    let g = Gateway::start().unwrap();
    let a = tenant_client(&g, "tagco");
    a.create_bucket().bucket("tagged").send().await.unwrap();
    a.put_object()
        .bucket("tagged")
        .key("open.txt")
        .body(ByteStream::from_static(b"open"))
        .send()
        .await
        .unwrap();
    a.put_object()
        .bucket("tagged")
        .key("secret.txt")
        .tagging("classification=secret")
        .body(ByteStream::from_static(b"secret"))
        .send()
        .await
        .unwrap();
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
             "Resource": "arn:aws:s3:::tagged/*"},
            {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
             "Resource": "arn:aws:s3:::tagged/*",
             "Condition": {"StringEquals": {"s3:ExistingObjectTag/classification": "secret"}}}
        ]
    });
    put_policy(&a, "tagged", &policy).await.unwrap();
    assert_eq!(curl(&g, "GET", "/tagged/open.txt"), (200, "open".into()));
    assert_eq!(curl(&g, "GET", "/tagged/secret.txt").0, 403);
    // The tag removed, the Deny no longer applies.
    a.delete_object_tagging()
        .bucket("tagged")
        .key("secret.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(
        curl(&g, "GET", "/tagged/secret.txt"),
        (200, "secret".into())
    );

    // Another tenant granted PutObject alone may write, but not tags.
    let b = tenant_client(&g, "writer");
    let grant = json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "writer"}, "Action": "s3:PutObject",
             "Resource": "arn:aws:s3:::tagged/in/*"}
        ]
    });
    put_policy(&a, "tagged", &grant).await.unwrap();
    put(&b, "tagged", "in/plain", b"x").await;
    let e = b
        .put_object()
        .bucket("tagged")
        .key("in/tagged")
        .tagging("k=v")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(s3dedup_conformance::error_code(&e), "AccessDenied");
    assert!(
        a.head_object()
            .bucket("tagged")
            .key("in/tagged")
            .send()
            .await
            .is_err()
    );
}
