//! Quotas against the real gateway: bucket and tenant quotas on logical bytes and
//! object versions, refused before the body when the size is declared, cut when it is
//! not (aws-chunked without a decoded length), checked at multipart completion, exact
//! usage after deletes, and concurrent uploads that cannot overshoot together.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use s3dedup_conformance::{Gateway, error_code, error_message, error_status, sdk_client_with};

fn no_retries(b: aws_sdk_s3::config::Builder) -> aws_sdk_s3::config::Builder {
    b.retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
}

fn data(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

async fn put(
    c: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
) -> Result<(), (u16, String, String)> {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .map(drop)
        .map_err(|e| (error_status(&e), error_code(&e), error_message(&e)))
}

fn assert_quota_refusal(r: Result<(), (u16, String, String)>, what: &str) {
    let (status, code, message) = r.expect_err(what);
    assert_eq!(
        (status, code.as_str()),
        (403, "QuotaExceeded"),
        "{what}: {message}"
    );
    assert!(message.contains("quota"), "{what}: {message}");
}

async fn exists(c: &aws_sdk_s3::Client, bucket: &str, key: &str) -> bool {
    c.head_object().bucket(bucket).key(key).send().await.is_ok()
}

fn usage(g: &Gateway, scope: &str, name: &str) -> (u64, u64) {
    let v: serde_json::Value =
        serde_json::from_str(&g.admin_cli_ok(&["quota", "show", scope, name, "--json"])).unwrap();
    (
        v["usage"]["bytes"].as_u64().unwrap(),
        v["usage"]["objects"].as_u64().unwrap(),
    )
}

/// A PUT framed as aws-chunked (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`, the SDKs'
/// default), declaring its decoded length or not.
fn chunked_put(g: &Gateway, path: &str, payload: &[u8], declare: bool) -> (u16, String) {
    let url = format!("{}{path}", g.s3_url);
    let mut headers = vec![
        ("host", g.s3_addr().to_owned()),
        ("content-encoding", "aws-chunked".to_owned()),
        ("x-amz-trailer", "x-amz-checksum-crc32".to_owned()),
    ];
    if declare {
        headers.push(("x-amz-decoded-content-length", payload.len().to_string()));
    }
    let signed = s3dedup_conformance::sign_as_root(
        "PUT",
        &url,
        &headers,
        aws_sigv4::http_request::SignableBody::StreamingUnsignedPayloadTrailer,
    );
    let all: Vec<(&str, String)> = signed
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let mut body = Vec::new();
    for part in payload.chunks(64 << 10) {
        body.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        body.extend_from_slice(part);
        body.extend_from_slice(b"\r\n");
    }
    // (Never reached when refused first; were it reached, a wrong value would be
    // BadDigest, not QuotaExceeded.)
    body.extend_from_slice(b"0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n");
    // The gateway may answer before reading the body and close: writes may fail.
    use std::io::{Read, Write};
    let mut head = format!(
        "PUT {path} HTTP/1.1\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in &all {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut s = std::net::TcpStream::connect(g.s3_addr()).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(&body);
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[test]
fn a_bucket_quota_refuses_what_does_not_fit_and_counts_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let mut g = Gateway::start_in(tmp.path()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = sdk_client_with(&g.s3_url, no_retries);
    rt.block_on(async { c.create_bucket().bucket("quota").send().await.unwrap() });
    let out = g.admin_cli_ok(&[
        "quota",
        "set",
        "--bucket",
        "quota",
        "--bytes",
        "1MiB",
        "--objects",
        "3",
    ]);
    assert_eq!(out.trim(), "bucket quota: 0 B of 1.0 MiB, 0 of 3 objects");

    rt.block_on(async {
        put(&c, "quota", "a", data(1, 600 << 10)).await.unwrap();
        // Declared size over the room: refused before the body is read.
        assert_quota_refusal(
            put(&c, "quota", "b", data(2, 600 << 10)).await,
            "single PUT",
        );
        assert!(!exists(&c, "quota", "b").await);
    });
    // aws-chunked declares the decoded size: refused before the body too.
    let (status, body) = chunked_put(&g, "/quota/c", &data(3, 600 << 10), true);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("<Code>QuotaExceeded</Code>"), "{body}");
    // Without the declaration S3 (and s3s) refuse aws-chunked outright.
    let (status, body) = chunked_put(&g, "/quota/c", &data(3, 600 << 10), false);
    assert_eq!(status, 411, "{body}");
    rt.block_on(async {
        assert!(!exists(&c, "quota", "c").await);
        // Replacing an object in an unversioned bucket is judged on the net change.
        put(&c, "quota", "a", data(4, 900 << 10)).await.unwrap();
    });
    assert_eq!(usage(&g, "--bucket", "quota"), (900 << 10, 1));

    // Multipart: each part fits, the whole does not; completion is refused, nothing
    // is published, and the upload can still be aborted.
    g.admin_cli_ok(&[
        "quota",
        "set",
        "--bucket",
        "quota",
        "--bytes",
        "12MiB",
        "--objects",
        "3",
    ]);
    rt.block_on(async {
        let up = c
            .create_multipart_upload()
            .bucket("quota")
            .key("mp")
            .send()
            .await
            .unwrap();
        let id = up.upload_id().unwrap();
        let mut parts = Vec::new();
        for n in 1..=3 {
            let p = c
                .upload_part()
                .bucket("quota")
                .key("mp")
                .upload_id(id)
                .part_number(n)
                .body(ByteStream::from(data(10 + n as u32, 5 << 20)))
                .send()
                .await
                .unwrap();
            parts.push(
                CompletedPart::builder()
                    .part_number(n)
                    .e_tag(p.e_tag().unwrap())
                    .build(),
            );
        }
        let done = c
            .complete_multipart_upload()
            .bucket("quota")
            .key("mp")
            .upload_id(id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await;
        let e = done.expect_err("a completion over the quota was published");
        assert_eq!(error_code(&e), "QuotaExceeded", "{}", error_message(&e));
        assert!(!exists(&c, "quota", "mp").await);
        c.abort_multipart_upload()
            .bucket("quota")
            .key("mp")
            .upload_id(id)
            .send()
            .await
            .unwrap();
        // A part that alone is larger than the room is refused before it is read.
        let up = c
            .create_multipart_upload()
            .bucket("quota")
            .key("mp2")
            .send()
            .await
            .unwrap();
        let big = c
            .upload_part()
            .bucket("quota")
            .key("mp2")
            .upload_id(up.upload_id().unwrap())
            .part_number(1)
            .body(ByteStream::from(vec![0u8; 12 << 20]))
            .send()
            .await;
        assert_eq!(
            error_code(&big.expect_err("an oversized part was stored")),
            "QuotaExceeded"
        );
        c.abort_multipart_upload()
            .bucket("quota")
            .key("mp2")
            .upload_id(up.upload_id().unwrap())
            .send()
            .await
            .unwrap();

        // The object count: 3 at most.
        put(&c, "quota", "x", b"x".to_vec()).await.unwrap();
        put(&c, "quota", "y", b"y".to_vec()).await.unwrap();
        assert_quota_refusal(put(&c, "quota", "z", b"z".to_vec()).await, "fourth object");
        let mpu = c
            .create_multipart_upload()
            .bucket("quota")
            .key("z")
            .send()
            .await;
        assert_eq!(
            error_code(&mpu.expect_err("a fourth object's upload started")),
            "QuotaExceeded"
        );
        // Replacing one of the three is fine; deleting one makes room.
        put(&c, "quota", "x", b"xx".to_vec()).await.unwrap();
        c.delete_object()
            .bucket("quota")
            .key("y")
            .send()
            .await
            .unwrap();
        put(&c, "quota", "z", b"zzz".to_vec()).await.unwrap();
    });
    assert_eq!(usage(&g, "--bucket", "quota"), ((900 << 10) + 5, 3));
    let report: serde_json::Value =
        serde_json::from_str(&g.admin_cli_ok(&["usage", "--json"])).unwrap();
    let b = &report["buckets"][0];
    assert_eq!(b["quota"]["max_bytes"], 12u64 << 20);
    assert_eq!(b["quota"]["max_objects"], 3);
    rt.block_on(async {
        for k in ["a", "x", "z"] {
            c.delete_object()
                .bucket("quota")
                .key(k)
                .send()
                .await
                .unwrap();
        }
    });
    assert_eq!(usage(&g, "--bucket", "quota"), (0, 0));
    g.admin_cli_ok(&["quota", "clear", "--bucket", "quota"]);
    assert_eq!(
        g.admin_cli_ok(&["quota", "show", "--bucket", "quota"])
            .trim(),
        "bucket quota: 0 B of unlimited, 0 of unlimited objects"
    );
    assert!(g.metric("s3dedup_quota_rejections_total").unwrap() >= 6.0);
    g.stop().unwrap();
    g.assert_fsck("after quota refusals");
}

#[test]
fn a_tenant_quota_covers_all_its_buckets_and_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let mut g = Gateway::start_in(tmp.path()).unwrap();
    g.admin_cli_ok(&["tenant", "create", "acme"]);
    let key = g.create_key(&["--tenant", "acme"]);
    let c = g.client_for(&key);
    let out = g.admin_cli_ok(&["quota", "set", "--tenant", "acme", "--bytes", "1MiB"]);
    assert_eq!(
        out.trim(),
        "tenant acme: 0 B of 1.0 MiB, 0 of unlimited objects"
    );
    let missing = g
        .admin_cli(&["quota", "set", "--tenant", "nobody", "--bytes", "1"])
        .unwrap();
    assert!(!missing.status.success());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for b in ["acme-one", "acme-two"] {
            c.create_bucket().bucket(b).send().await.unwrap();
        }
        c.put_bucket_versioning()
            .bucket("acme-one")
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        put(&c, "acme-one", "k", data(1, 400 << 10)).await.unwrap();
        // A second version counts too (versioned bucket: nothing is replaced).
        put(&c, "acme-one", "k", data(2, 400 << 10)).await.unwrap();
        assert_quota_refusal(
            put(&c, "acme-two", "k", data(3, 400 << 10)).await,
            "other bucket",
        );
        put(&c, "acme-two", "small", data(4, 100 << 10))
            .await
            .unwrap();
    });
    assert_eq!(usage(&g, "--tenant", "acme"), ((900 << 10), 3));
    let report: serde_json::Value =
        serde_json::from_str(&g.admin_cli_ok(&["usage", "--json"])).unwrap();
    let t = report["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "acme")
        .unwrap()
        .clone();
    assert_eq!(t["logical_bytes"], 900u64 << 10);
    assert_eq!(t["quota"]["max_bytes"], 1u64 << 20);
    g.stop().unwrap();
    g.assert_fsck("tenant quota");
}

#[test]
fn concurrent_uploads_cannot_overshoot_a_quota_together() {
    let tmp = tempfile::tempdir().unwrap();
    let mut g = Gateway::start_in(tmp.path()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = sdk_client_with(&g.s3_url, no_retries);
    rt.block_on(async { c.create_bucket().bucket("race").send().await.unwrap() });
    g.admin_cli_ok(&["quota", "set", "--bucket", "race", "--bytes", "10MiB"]);
    // Eight 3 MiB uploads at once: each fits alone when it starts; three fit together.
    let results = rt.block_on(async {
        let tasks: Vec<_> = (0..8u32)
            .map(|i| {
                let c = c.clone();
                tokio::spawn(async move {
                    put(&c, "race", &format!("k{i}"), data(100 + i, 3 << 20)).await
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let ok = results.iter().filter(|r| r.is_ok()).count();
    for r in results.iter().filter(|r| r.is_err()) {
        let (status, code, _) = r.as_ref().unwrap_err();
        assert_eq!((*status, code.as_str()), (403, "QuotaExceeded"));
    }
    assert_eq!(ok, 3, "{results:?}");
    assert_eq!(usage(&g, "--bucket", "race"), (9 << 20, 3));
    let listed = rt.block_on(async { c.list_objects_v2().bucket("race").send().await.unwrap() });
    assert_eq!(listed.key_count(), Some(3));
    // What the refused uploads stored is garbage: GC frees it.
    g.admin_cli_ok(&["gc", "--grace", "0s", "--wait"]);
    let stored = g.store_bytes().unwrap();
    println!("after gc: {stored} bytes stored for 9 MiB of objects");
    assert!(
        stored < (9 << 20) + (1 << 20),
        "{stored} bytes stored after GC"
    );
    g.stop().unwrap();
    g.assert_fsck("after the race");
}
