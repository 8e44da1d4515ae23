//! Parts of the S3 surface clients use and probe, against the real gateway with boto3
//! (conformance/python/surface_suite.py) and the Rust SDK: tagging; bucket
//! configurations s3dedup does not keep answer as S3 answers for a bucket without them
//! (never a generic 501), a missing bucket is 404 NoSuchBucket first; listing corner
//! cases.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Tag, Tagging, TaggingDirective};
use s3dedup_conformance::{
    Gateway, error_code, error_status, http_request, run_python_suite, sdk_client,
};

#[test]
fn boto3_tagging_and_probes() {
    let mut g = Gateway::start().unwrap();
    run_python_suite(&g, "surface_suite.py", "boto3 surface: ok");
    g.stop().unwrap();
    g.assert_fsck("after the boto3 surface suite");
}

fn tagging(pairs: &[(&str, &str)]) -> Tagging {
    Tagging::builder()
        .set_tag_set(Some(
            pairs
                .iter()
                .map(|(k, v)| Tag::builder().key(*k).value(*v).build().unwrap())
                .collect(),
        ))
        .build()
        .unwrap()
}

fn pairs(tags: &[Tag]) -> Vec<(String, String)> {
    tags.iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect()
}

/// Tags with the Rust SDK: set on PUT and by PutObjectTagging, counted on GET, copied
/// or replaced by CopyObject, kept across a restart (they live in the index), refused
/// beyond S3's limits; bucket tags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_tagging() {
    let tmp = tempfile::tempdir().unwrap();
    let mut g = Gateway::start_in(tmp.path()).unwrap();
    let c = sdk_client(&g.s3_url);
    c.create_bucket().bucket("tags").send().await.unwrap();
    c.put_object()
        .bucket("tags")
        .key("k")
        .tagging("env=prod&owner=data%20team")
        .body(ByteStream::from_static(b"tagged"))
        .send()
        .await
        .unwrap();
    let got = c.get_object().bucket("tags").key("k").send().await.unwrap();
    assert_eq!(got.tag_count(), Some(2));
    c.copy_object()
        .bucket("tags")
        .key("replaced")
        .copy_source("tags/k")
        .tagging_directive(TaggingDirective::Replace)
        .tagging("copy=yes")
        .send()
        .await
        .unwrap();
    let e = c
        .put_object_tagging()
        .bucket("tags")
        .key("k")
        .tagging(tagging(&[("bad<key", "v")]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (error_status(&e), error_code(&e).as_str()),
        (400, "InvalidTag")
    );
    c.put_bucket_tagging()
        .bucket("tags")
        .tagging(tagging(&[("cost", "7")]))
        .send()
        .await
        .unwrap();

    // Everything is in the index: a restart keeps it.
    g.stop().unwrap();
    drop(g);
    let mut g = Gateway::start_in(tmp.path()).unwrap();
    let c = sdk_client(&g.s3_url);
    let t = c
        .get_object_tagging()
        .bucket("tags")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(
        pairs(t.tag_set()),
        vec![
            ("env".into(), "prod".into()),
            ("owner".into(), "data team".into())
        ]
    );
    let t = c
        .get_object_tagging()
        .bucket("tags")
        .key("replaced")
        .send()
        .await
        .unwrap();
    assert_eq!(pairs(t.tag_set()), vec![("copy".into(), "yes".into())]);
    let t = c.get_bucket_tagging().bucket("tags").send().await.unwrap();
    assert_eq!(pairs(t.tag_set()), vec![("cost".into(), "7".into())]);
    c.delete_object_tagging()
        .bucket("tags")
        .key("k")
        .send()
        .await
        .unwrap();
    let got = c.get_object().bucket("tags").key("k").send().await.unwrap();
    assert_eq!(got.tag_count(), None);
    g.stop().unwrap();
    g.assert_fsck("after tagging");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconfigured_bucket_subresources_answer_as_s3() {
    let g = Gateway::start().unwrap();
    let c = sdk_client(&g.s3_url);
    c.create_bucket().bucket("probed").send().await.unwrap();

    let e = c
        .get_bucket_cors()
        .bucket("probed")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (error_status(&e), error_code(&e).as_str()),
        (404, "NoSuchCORSConfiguration")
    );
    let e = c
        .get_bucket_tagging()
        .bucket("probed")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (error_status(&e), error_code(&e).as_str()),
        (404, "NoSuchTagSet")
    );
    let e = c
        .get_bucket_website()
        .bucket("probed")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (error_status(&e), error_code(&e).as_str()),
        (404, "NoSuchWebsiteConfiguration")
    );
    let e = c
        .get_bucket_replication()
        .bucket("probed")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (error_status(&e), error_code(&e).as_str()),
        (404, "ReplicationConfigurationNotFoundError")
    );
    // The harness store does not encrypt at rest: no default encryption to report.
    let e = c
        .get_bucket_encryption()
        .bucket("probed")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (error_status(&e), error_code(&e).as_str()),
        (404, "ServerSideEncryptionConfigurationNotFoundError")
    );
    let l = c
        .get_bucket_logging()
        .bucket("probed")
        .send()
        .await
        .unwrap();
    assert!(l.logging_enabled().is_none());
    let n = c
        .get_bucket_notification_configuration()
        .bucket("probed")
        .send()
        .await
        .unwrap();
    assert!(n.topic_configurations().is_empty() && n.queue_configurations().is_empty());
    let a = c
        .get_bucket_accelerate_configuration()
        .bucket("probed")
        .send()
        .await
        .unwrap();
    assert!(a.status().is_none());
    let p = c
        .get_bucket_request_payment()
        .bucket("probed")
        .send()
        .await
        .unwrap();
    assert_eq!(p.payer().map(|p| p.as_str()), Some("BucketOwner"));
    let v = c
        .get_bucket_versioning()
        .bucket("probed")
        .send()
        .await
        .unwrap();
    assert!(v.status().is_none());
    for e in [
        c.get_bucket_lifecycle_configuration()
            .bucket("probed")
            .send()
            .await
            .map(|_| ())
            .unwrap_err()
            .into_service_error()
            .to_string(),
        c.get_bucket_policy()
            .bucket("probed")
            .send()
            .await
            .map(|_| ())
            .unwrap_err()
            .into_service_error()
            .to_string(),
        c.get_object_lock_configuration()
            .bucket("probed")
            .send()
            .await
            .map(|_| ())
            .unwrap_err()
            .into_service_error()
            .to_string(),
    ] {
        assert!(!e.contains("NotImplemented"), "{e}");
    }

    // A missing bucket is NoSuchBucket, not an empty answer.
    let e = c
        .get_bucket_cors()
        .bucket("absent")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (error_status(&e), error_code(&e).as_str()),
        (404, "NoSuchBucket")
    );
    let e = c
        .get_bucket_logging()
        .bucket("absent")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (error_status(&e), error_code(&e).as_str()),
        (404, "NoSuchBucket")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_keys_zero_lists_nothing() {
    let g = Gateway::start().unwrap();
    let c = sdk_client(&g.s3_url);
    c.create_bucket().bucket("zero").send().await.unwrap();
    for k in ["a", "b"] {
        c.put_object()
            .bucket("zero")
            .key(k)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
    }
    let l = c
        .list_objects_v2()
        .bucket("zero")
        .max_keys(0)
        .send()
        .await
        .unwrap();
    assert!(l.contents().is_empty());
    assert_eq!(l.is_truncated(), Some(false));
    let l = c
        .list_objects()
        .bucket("zero")
        .max_keys(0)
        .send()
        .await
        .unwrap();
    assert!(l.contents().is_empty());
    assert_eq!(l.is_truncated(), Some(false));
}

/// ListBuckets pages: `max-buckets`, the continuation token, `prefix`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_buckets_pages() {
    let g = Gateway::start().unwrap();
    let c = sdk_client(&g.s3_url);
    let names: Vec<String> = (0..7).map(|i| format!("page-{i:02}")).collect();
    for n in names.iter().chain([&"other-bucket".to_owned()]) {
        c.create_bucket().bucket(n).send().await.unwrap();
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let r = c
            .list_buckets()
            .max_buckets(3)
            .prefix("page-")
            .set_continuation_token(token.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.prefix(), Some("page-"));
        let page: Vec<String> = r
            .buckets()
            .iter()
            .filter_map(|b| b.name().map(str::to_owned))
            .collect();
        assert!(page.len() <= 3, "{page:?}");
        seen.extend(page);
        token = r.continuation_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen, names, "every page-* bucket once, in order");
    let all = c.list_buckets().send().await.unwrap();
    assert_eq!(all.buckets().len(), 8);
    assert!(all.continuation_token().is_none());
    let e = c.list_buckets().max_buckets(0).send().await.unwrap_err();
    assert_eq!(
        (error_status(&e), error_code(&e).as_str()),
        (400, "InvalidArgument")
    );
}

/// A missing bucket is 404 NoSuchBucket even to an unsigned request (bucket names are
/// global: S3 says so before AccessDenied); an unsigned request to an existing bucket is
/// still 403. Presigned URLs: an expired one is 403 "Request has expired", an expiry
/// beyond a week 400 AuthorizationQueryParametersError; every error body's RequestId is
/// the `x-amz-request-id` header's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_buckets_and_presign_errors() {
    use aws_sdk_s3::presigning::PresigningConfig;
    use std::time::Duration;
    let g = Gateway::start().unwrap();
    let c = sdk_client(&g.s3_url);
    c.create_bucket().bucket("there").send().await.unwrap();
    c.put_object()
        .bucket("there")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    for path in ["/absent/k", "/absent"] {
        let (status, body) = http_request(g.s3_addr(), "GET", path, &[], &[]).unwrap();
        assert_eq!(status, 404, "{path}: {}", text(body.clone()));
        assert!(text(body).contains("<Code>NoSuchBucket</Code>"));
    }
    let (status, body) = http_request(g.s3_addr(), "PUT", "/absent/k", &[], b"x").unwrap();
    assert_eq!(status, 404, "{}", text(body));
    let (status, body) = http_request(g.s3_addr(), "GET", "/there/k", &[], &[]).unwrap();
    assert_eq!(status, 403, "{}", text(body));
    // Anonymous CreateBucket stays AccessDenied.
    let (status, _) = http_request(g.s3_addr(), "PUT", "/newbucket", &[], &[]).unwrap();
    assert_eq!(status, 403);

    let url = c
        .get_object()
        .bucket("there")
        .key("k")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(1)).unwrap())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let path = url
        .uri()
        .split_once(&g.s3_url)
        .map(|(_, p)| p.to_owned())
        .unwrap();
    let (status, body) = http_request(g.s3_addr(), "GET", &path, &[], &[]).unwrap();
    let body = text(body);
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("<Code>AccessDenied</Code>") && body.contains("Request has expired"),
        "{body}"
    );
    let week = path.replace("X-Amz-Expires=1", "X-Amz-Expires=604801");
    let (status, body) = http_request(g.s3_addr(), "GET", &week, &[], &[]).unwrap();
    assert_eq!(status, 400);
    assert!(text(body).contains("AuthorizationQueryParametersError"));

    // RequestId in the body is the header's (the SDK reads the header).
    let e = c
        .get_object()
        .bucket("there")
        .key("missing")
        .send()
        .await
        .unwrap_err();
    let raw = e.raw_response().unwrap();
    let header = raw.headers().get("x-amz-request-id").unwrap().to_owned();
    let body = text(raw.body().bytes().unwrap().to_vec());
    assert!(
        body.contains(&format!("<RequestId>{header}</RequestId>")),
        "{header}: {body}"
    );
}

/// CORS with the Rust SDK: rules set, read back and kept across a restart; a preflight
/// answered from them (raw HTTP, as a browser sends it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_cors() {
    use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
    let tmp = tempfile::tempdir().unwrap();
    let mut g = Gateway::start_in(tmp.path()).unwrap();
    let c = sdk_client(&g.s3_url);
    c.create_bucket().bucket("web").send().await.unwrap();
    let rule = CorsRule::builder()
        .allowed_origins("https://site.example")
        .allowed_methods("PUT")
        .allowed_headers("*")
        .max_age_seconds(60)
        .build()
        .unwrap();
    c.put_bucket_cors()
        .bucket("web")
        .cors_configuration(
            CorsConfiguration::builder()
                .cors_rules(rule)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    g.stop().unwrap();
    drop(g);
    let mut g = Gateway::start_in(tmp.path()).unwrap();
    let c = sdk_client(&g.s3_url);
    let got = c.get_bucket_cors().bucket("web").send().await.unwrap();
    assert_eq!(got.cors_rules().len(), 1);
    assert_eq!(
        got.cors_rules()[0].allowed_origins(),
        ["https://site.example"]
    );
    let preflight = |origin: &str| {
        http_request(
            g.s3_addr(),
            "OPTIONS",
            "/web/upload.bin",
            &[
                ("origin", origin.to_owned()),
                ("access-control-request-method", "PUT".to_owned()),
                ("access-control-request-headers", "x-amz-meta-a".to_owned()),
            ],
            &[],
        )
        .unwrap()
        .0
    };
    assert_eq!(preflight("https://site.example"), 200);
    assert_eq!(preflight("https://other.example"), 403);
    c.delete_bucket_cors().bucket("web").send().await.unwrap();
    let e = c.get_bucket_cors().bucket("web").send().await.unwrap_err();
    assert_eq!(error_code(&e), "NoSuchCORSConfiguration");
    g.stop().unwrap();
    g.assert_fsck("after CORS");
}
