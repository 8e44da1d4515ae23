//! Tenants on the real binary: identities made with `s3dedup admin tenant|user|key`,
//! used by the Rust SDK, the aws CLI v2, boto3 and rclone. Each tenant sees only its own
//! buckets; every cross-tenant operation is AccessDenied and leaves the data as it was;
//! a key disabled, expired or deleted is refused on its next request; the root key
//! keeps working throughout.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use s3dedup_conformance::{Gateway, get_bytes, refusal, sdk_client, sdk_client_with};

struct Key {
    access: String,
    secret: String,
}

/// `s3dedup admin key create … --json`, checked against the issue's JSON fields.
fn create_key(g: &Gateway, args: &[&str]) -> Key {
    let v = g.create_key(args);
    let tenant = args
        .iter()
        .skip_while(|a| **a != "--tenant")
        .nth(1)
        .unwrap();
    assert_eq!(v["tenant"], *tenant, "{v}");
    Key {
        access: v["access_key"].as_str().unwrap().to_owned(),
        secret: v["secret_key"].as_str().unwrap().to_owned(),
    }
}

fn client(g: &Gateway, k: &Key) -> aws_sdk_s3::Client {
    let creds = aws_sdk_s3::config::Credentials::new(&k.access, &k.secret, None, None, "tenant");
    sdk_client_with(&g.s3_url, |b| b.credentials_provider(creds))
}

/// `s3dedup admin ARGS` that must fail: its stderr.
fn admin_fails(g: &Gateway, args: &[&str]) -> String {
    let o = g.admin_cli(args).unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "s3dedup admin {args:?} succeeded");
    err
}

fn bucket_names(out: &aws_sdk_s3::operation::list_buckets::ListBucketsOutput) -> Vec<String> {
    out.buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_see_only_their_own_buckets_and_objects() {
    let mut g = Gateway::start().unwrap();
    assert!(
        g.admin_cli_ok(&["tenant", "create", "acme"])
            .contains("acme")
    );
    g.admin_cli_ok(&["tenant", "create", "beta"]);
    g.admin_cli_ok(&["user", "create", "--tenant", "beta", "bob"]);
    let a = client(&g, &create_key(&g, &["--tenant", "acme"]));
    let b = client(&g, &create_key(&g, &["--tenant", "beta", "--user", "bob"]));
    let root = sdk_client(&g.s3_url);

    a.create_bucket().bucket("acme-data").send().await.unwrap();
    b.create_bucket().bucket("beta-data").send().await.unwrap();
    root.create_bucket()
        .bucket("root-data")
        .send()
        .await
        .unwrap();
    let secret = b"acme's secret object".repeat(1000);
    a.put_object()
        .bucket("acme-data")
        .key("doc")
        .body(ByteStream::from(secret.clone()))
        .send()
        .await
        .unwrap();
    b.put_object()
        .bucket("beta-data")
        .key("mine")
        .body(ByteStream::from_static(b"beta"))
        .send()
        .await
        .unwrap();

    // ListBuckets: each its own; Owner is the tenant's canonical id and name.
    let acme_id = g.canonical_id("acme");
    let la = a.list_buckets().send().await.unwrap();
    assert_eq!(bucket_names(&la), ["acme-data"]);
    let owner = la.owner().unwrap();
    assert_eq!(
        (owner.id(), owner.display_name()),
        (Some(acme_id.as_str()), Some("acme"))
    );
    assert_eq!(
        bucket_names(&b.list_buckets().send().await.unwrap()),
        ["beta-data"]
    );
    assert_eq!(
        bucket_names(&root.list_buckets().send().await.unwrap()),
        ["root-data"]
    );
    let listed = a
        .list_objects_v2()
        .bucket("acme-data")
        .fetch_owner(true)
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed.contents()[0].owner().and_then(|o| o.id()),
        Some(acme_id.as_str())
    );

    // Names are global.
    let (s, code) = refusal(b.create_bucket().bucket("acme-data").send().await);
    assert_eq!((s, code.as_str()), (409, "BucketAlreadyExists"));
    let (s, code) = refusal(a.create_bucket().bucket("acme-data").send().await);
    assert_eq!((s, code.as_str()), (409, "BucketAlreadyOwnedByYou"));

    // Beta against acme's bucket: every operation refused.
    let denied = |(s, c): (u16, String), what: &str| {
        assert_eq!((s, c.as_str()), (403, "AccessDenied"), "{what}")
    };
    denied(
        refusal(b.get_object().bucket("acme-data").key("doc").send().await),
        "GET",
    );
    // A HEAD answer has no body, so no code: its status says it.
    let head = refusal(b.head_object().bucket("acme-data").key("doc").send().await);
    assert_eq!(head.0, 403, "HEAD");
    denied(
        refusal(
            b.put_object()
                .bucket("acme-data")
                .key("doc")
                .body(ByteStream::from_static(b"overwritten"))
                .send()
                .await,
        ),
        "PUT",
    );
    denied(
        refusal(
            b.put_object()
                .bucket("acme-data")
                .key("new")
                .body(ByteStream::from_static(b"x"))
                .send()
                .await,
        ),
        "PUT new",
    );
    denied(
        refusal(b.list_objects_v2().bucket("acme-data").send().await),
        "LIST",
    );
    denied(
        refusal(b.list_objects().bucket("acme-data").send().await),
        "LIST v1",
    );
    denied(
        refusal(
            b.delete_object()
                .bucket("acme-data")
                .key("doc")
                .send()
                .await,
        ),
        "DELETE",
    );
    let head = refusal(b.head_bucket().bucket("acme-data").send().await);
    assert_eq!(head.0, 403, "HEAD bucket");
    denied(
        refusal(b.delete_bucket().bucket("acme-data").send().await),
        "DELETE bucket",
    );
    denied(
        refusal(b.get_bucket_versioning().bucket("acme-data").send().await),
        "GET versioning",
    );
    denied(
        refusal(
            b.create_multipart_upload()
                .bucket("acme-data")
                .key("mp")
                .send()
                .await,
        ),
        "CreateMultipartUpload",
    );
    // Copy: acme's object as the source of beta's copy, and beta's object into acme's bucket.
    denied(
        refusal(
            b.copy_object()
                .bucket("beta-data")
                .key("stolen")
                .copy_source("acme-data/doc")
                .send()
                .await,
        ),
        "COPY from",
    );
    denied(
        refusal(
            b.copy_object()
                .bucket("acme-data")
                .key("planted")
                .copy_source("beta-data/mine")
                .send()
                .await,
        ),
        "COPY into",
    );
    // Multipart: beta's own upload cannot copy a part from acme; acme's upload is not beta's.
    let mine = b
        .create_multipart_upload()
        .bucket("beta-data")
        .key("mp")
        .send()
        .await
        .unwrap();
    let mine_id = mine.upload_id().unwrap();
    denied(
        refusal(
            b.upload_part_copy()
                .bucket("beta-data")
                .key("mp")
                .upload_id(mine_id)
                .part_number(1)
                .copy_source("acme-data/doc")
                .send()
                .await,
        ),
        "UploadPartCopy from",
    );
    let theirs = a
        .create_multipart_upload()
        .bucket("acme-data")
        .key("mp")
        .send()
        .await
        .unwrap();
    let theirs_id = theirs.upload_id().unwrap();
    denied(
        refusal(
            b.upload_part()
                .bucket("acme-data")
                .key("mp")
                .upload_id(theirs_id)
                .part_number(1)
                .body(ByteStream::from_static(b"x"))
                .send()
                .await,
        ),
        "UploadPart",
    );
    denied(
        refusal(
            b.list_parts()
                .bucket("acme-data")
                .key("mp")
                .upload_id(theirs_id)
                .send()
                .await,
        ),
        "ListParts",
    );
    denied(
        refusal(b.list_multipart_uploads().bucket("acme-data").send().await),
        "ListMultipartUploads",
    );
    denied(
        refusal(
            b.abort_multipart_upload()
                .bucket("acme-data")
                .key("mp")
                .upload_id(theirs_id)
                .send()
                .await,
        ),
        "Abort",
    );
    denied(
        refusal(
            b.complete_multipart_upload()
                .bucket("acme-data")
                .key("mp")
                .upload_id(theirs_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .parts(CompletedPart::builder().part_number(1).e_tag("x").build())
                        .build(),
                )
                .send()
                .await,
        ),
        "Complete",
    );
    // DeleteObjects is judged key by key, as in S3: each key is an AccessDenied entry.
    let out = b
        .delete_objects()
        .bucket("acme-data")
        .delete(
            aws_sdk_s3::types::Delete::builder()
                .objects(
                    aws_sdk_s3::types::ObjectIdentifier::builder()
                        .key("doc")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(out.deleted().is_empty(), "{out:?}");
    let errs: Vec<_> = out.errors().iter().map(|e| (e.key(), e.code())).collect();
    assert_eq!(errs, [(Some("doc"), Some("AccessDenied"))]);
    // Unsigned: refused (no policy or ACL grants anonymous access yet), never a 500.
    for (method, path) in [
        ("GET", "/acme-data/doc"),
        ("GET", "/acme-data"),
        ("PUT", "/acme-data/anon"),
        ("GET", "/"),
    ] {
        let (status, body) =
            s3dedup_conformance::http_request(g.s3_addr(), method, path, &[], &[]).unwrap();
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, 403, "anonymous {method} {path}: {body}");
        assert!(
            body.contains("<Code>AccessDenied</Code>"),
            "anonymous {method} {path}: {body}"
        );
    }
    // A bucket nobody has is NoSuchBucket for anyone, as in S3.
    let (s, code) = refusal(b.get_object().bucket("nobody-has-it").key("k").send().await);
    assert_eq!((s, code.as_str()), (404, "NoSuchBucket"));

    // Nothing changed: acme's data is exact, nothing was planted, its upload goes on.
    assert!(get_bytes(&a, "acme-data", "doc").await == secret);
    let keys: Vec<String> = a
        .list_objects_v2()
        .bucket("acme-data")
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    assert_eq!(keys, ["doc"]);
    a.upload_part()
        .bucket("acme-data")
        .key("mp")
        .upload_id(theirs_id)
        .part_number(1)
        .body(ByteStream::from_static(b"part"))
        .send()
        .await
        .unwrap();
    // The owner copies within its tenant; the root key (the operator's) reaches everything.
    a.copy_object()
        .bucket("acme-data")
        .key("copy")
        .copy_source("acme-data/doc")
        .send()
        .await
        .unwrap();
    assert!(get_bytes(&root, "acme-data", "copy").await == secret);
    assert!(get_bytes(&b, "beta-data", "mine").await == b"beta");

    // Counted by reason and by tenant.
    assert!(
        g.metric_sum("s3dedup_auth_failures_total", &["reason=\"not_owner\""])
            .unwrap()
            >= 19.0
    );
    assert!(
        g.metric_sum("s3dedup_tenant_requests_total", &["tenant=\"acme\""])
            .unwrap()
            > 0.0
    );
    assert!(
        g.metric_sum("s3dedup_tenant_requests_total", &["tenant=\"beta\""])
            .unwrap()
            > 0.0
    );

    // A tenant owning buckets is not deleted; unknown names are clear errors.
    assert!(admin_fails(&g, &["tenant", "delete", "acme"]).contains("acme-data"));
    assert!(
        admin_fails(&g, &["key", "create", "--tenant", "nope"])
            .contains("tenant \"nope\" does not exist")
    );
    assert!(
        admin_fails(&g, &["user", "create", "--tenant", "nope", "x"]).contains("does not exist")
    );
    assert!(
        admin_fails(&g, &["key", "disable", "S3DKNOSUCHKEY0000000"]).contains("does not exist")
    );
    assert!(admin_fails(&g, &["tenant", "create", "root"]).contains("reserved"));
    assert!(admin_fails(&g, &["tenant", "create", "acme"]).contains("already exists"));
    // A deleted tenant's name is never reused.
    g.admin_cli_ok(&["tenant", "create", "gone"]);
    g.admin_cli_ok(&["tenant", "delete", "gone"]);
    assert!(admin_fails(&g, &["tenant", "create", "gone"]).contains("never reused"));

    // Ownership survives a restart.
    let dir = g.data_dir.clone();
    g.stop().unwrap();
    g.assert_fsck("after the tenant run");
    let g2 = Gateway::start_in(&dir).unwrap();
    let b2 = client(&g2, &create_key(&g2, &["--tenant", "beta"]));
    denied(
        refusal(b2.get_object().bucket("acme-data").key("doc").send().await),
        "GET after restart",
    );
    assert_eq!(
        bucket_names(&b2.list_buckets().send().await.unwrap()),
        ["beta-data"]
    );
}

fn pyenv_python() -> String {
    std::env::var("S3DEDUP_PYTHON").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/pyenv/bin/python").to_owned()
    })
}

/// aws CLI v2 with `k`; (success, stdout + stderr).
fn aws(g: &Gateway, home: &Path, k: &Key, args: &[&str]) -> (bool, String) {
    let o = s3dedup_conformance::aws_command("/usr/bin/aws", g, home)
        .env("AWS_ACCESS_KEY_ID", &k.access)
        .env("AWS_SECRET_ACCESS_KEY", &k.secret)
        .env("AWS_MAX_ATTEMPTS", "1")
        .args(args)
        .output()
        .expect("aws CLI v2 (scripts/test.sh installs awscli)");
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

const BOTO3: &str = r#"
import os, sys, boto3, botocore
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=os.environ["EP"], region_name="us-east-1",
    aws_access_key_id=os.environ["AK"], aws_secret_access_key=os.environ["SK"],
    config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}))
try:
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.put_object(Bucket="keyed", Key="boto3", Body=b"from boto3")
    body = s3.get_object(Bucket="keyed", Key="boto3")["Body"].read()
    print("ok", ",".join(names), body.decode())
except botocore.exceptions.ClientError as e:
    print("refused", e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"])
"#;

fn boto3(g: &Gateway, k: &Key) -> String {
    let o = Command::new(pyenv_python())
        .args(["-c", BOTO3])
        .env("EP", &g.s3_url)
        .env("AK", &k.access)
        .env("SK", &k.secret)
        .env_remove("AWS_CA_BUNDLE")
        .output()
        .expect("python with boto3 (scripts/test.sh creates target/pyenv)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

/// rclone with `k`; (success, output).
fn rclone(g: &Gateway, dir: &Path, k: &Key, args: &[&str]) -> (bool, String) {
    let o = s3dedup_conformance::rclone(g, dir)
        .env("RCLONE_CONFIG_S3D_ACCESS_KEY_ID", &k.access)
        .env("RCLONE_CONFIG_S3D_SECRET_ACCESS_KEY", &k.secret)
        .args(["--retries", "1", "--low-level-retries", "1"])
        .args(args)
        .output()
        .expect("rclone (scripts/test.sh installs it)");
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// One request with every client; each must succeed (`true`) or be refused with
/// InvalidAccessKeyId.
fn all_clients(g: &Gateway, home: &Path, k: &Key, work: bool, when: &str) {
    let (ok, out) = aws(g, home, k, &["s3", "ls", "s3://keyed"]);
    assert_eq!(ok, work, "aws CLI {when}: {out}");
    if !work {
        assert!(out.contains("InvalidAccessKeyId"), "aws CLI {when}: {out}");
    }
    let py = boto3(g, k);
    if work {
        assert_eq!(py, "ok keyed from boto3", "boto3 {when}");
    } else {
        assert_eq!(py, "refused InvalidAccessKeyId 403", "boto3 {when}");
    }
    let (ok, out) = rclone(g, home, k, &["lsf", "s3d:keyed"]);
    assert_eq!(ok, work, "rclone {when}: {out}");
    if work {
        assert!(out.contains("boto3"), "rclone {when}: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_works_until_disabled_expired_or_deleted() {
    let g = Gateway::start().unwrap();
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    g.admin_cli_ok(&["tenant", "create", "keyco"]);
    let k = create_key(&g, &["--tenant", "keyco"]);
    let (ok, out) = aws(&g, h, &k, &["s3", "mb", "s3://keyed"]);
    assert!(ok, "{out}");
    std::fs::write(h.join("f"), b"from the aws CLI").unwrap();
    let (ok, out) = aws(
        &g,
        h,
        &k,
        &["s3", "cp", h.join("f").to_str().unwrap(), "s3://keyed/cli"],
    );
    assert!(ok, "{out}");
    all_clients(&g, h, &k, true, "while active");
    let listed = g.admin_cli_ok(&["key", "list", "--tenant", "keyco"]);
    assert!(
        listed.contains(&k.access) && listed.contains("active"),
        "{listed}"
    );
    assert!(
        !listed.contains(&k.secret),
        "key list shows a secret: {listed}"
    );

    g.admin_cli_ok(&["key", "disable", &k.access]);
    all_clients(&g, h, &k, false, "after disable");
    let (s, code) = refusal(client(&g, &k).list_buckets().send().await);
    assert_eq!((s, code.as_str()), (403, "InvalidAccessKeyId"));
    g.admin_cli_ok(&["key", "enable", &k.access]);
    all_clients(&g, h, &k, true, "after enable");

    // Expiry: honoured from the next request after it passes.
    let short = create_key(&g, &["--tenant", "keyco", "--expires", "3s"]);
    client(&g, &short).list_buckets().send().await.unwrap();
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let (s, code) = refusal(client(&g, &short).list_buckets().send().await);
    assert_eq!((s, code.as_str()), (403, "InvalidAccessKeyId"), "expired");

    g.admin_cli_ok(&["key", "delete", &k.access]);
    all_clients(&g, h, &k, false, "after delete");
    assert!(!g.admin_cli_ok(&["key", "list"]).contains(&k.access));
    // A wrong secret for a live key is a signature error, counted as such.
    let forged = Key {
        access: short.access.clone(),
        secret: "x".repeat(40),
    };
    let fresh = create_key(&g, &["--tenant", "keyco"]);
    let wrong = Key {
        access: fresh.access.clone(),
        secret: forged.secret,
    };
    let (s, code) = refusal(client(&g, &wrong).list_buckets().send().await);
    assert_eq!((s, code.as_str()), (403, "SignatureDoesNotMatch"));
    for reason in ["disabled", "expired", "unknown_key", "signature"] {
        let n = g
            .metric_sum(
                "s3dedup_auth_failures_total",
                &[&format!("reason=\"{reason}\"")],
            )
            .unwrap();
        assert!(n >= 1.0, "auth failures by {reason}: {n}");
    }
    // The root key was never affected.
    let root = sdk_client(&g.s3_url);
    root.create_bucket()
        .bucket("root-bucket")
        .send()
        .await
        .unwrap();
    assert!(get_bytes(&root, "keyed", "cli").await == b"from the aws CLI");
}
