//! Parts of the S3 surface clients probe, with the Rust SDK against the real gateway:
//! bucket configurations s3dedup does not keep answer as S3 answers for a bucket
//! without them (never a generic 501), a missing bucket is 404 NoSuchBucket first, and
//! listing corner cases.

use aws_sdk_s3::primitives::ByteStream;
use s3dedup_conformance::{Gateway, error_code, error_status, sdk_client};

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
