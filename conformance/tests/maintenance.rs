//! Read-only mode (`s3dedup admin mode`, the `read_only` setting) and the capacity guard
//! (`min_free_space`), against the real gateway.

use aws_sdk_s3::primitives::ByteStream;
use s3dedup_conformance::{Gateway, error_code, error_message, error_status, sdk_client};

async fn put(c: &aws_sdk_s3::Client, key: &str) -> Result<(), String> {
    c.put_object()
        .bucket("maint")
        .key(key)
        .body(ByteStream::from(b"some bytes".to_vec()))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            format!(
                "{} {} {}",
                error_status(&e),
                error_code(&e),
                error_message(&e)
            )
        })
}

fn retries_off(b: aws_sdk_s3::config::Builder) -> aws_sdk_s3::config::Builder {
    b.retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
}

#[test]
fn read_only_mode_refuses_writes_serves_reads_and_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut g = Gateway::start_in(tmp.path()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = s3dedup_conformance::sdk_client_with(&g.s3_url, retries_off);
    rt.block_on(async {
        c.create_bucket().bucket("maint").send().await.unwrap();
        put(&c, "before").await.unwrap();
    });
    assert_eq!(g.admin_cli_ok(&["mode"]).trim(), "read-write");
    assert_eq!(g.admin_cli_ok(&["mode", "read-only"]).trim(), "read-only");
    assert_eq!(g.metric("s3dedup_read_only").unwrap(), 1.0);
    let check = |c: &aws_sdk_s3::Client| {
        rt.block_on(async {
            let e = put(c, "during").await.unwrap_err();
            assert!(e.starts_with("503 ServiceUnavailable"), "{e}");
            assert!(e.contains("read-only mode"), "{e}");
            let del = c.delete_object().bucket("maint").key("before").send().await;
            assert_eq!(error_status(&del.unwrap_err()), 503);
            let mpu = c
                .create_multipart_upload()
                .bucket("maint")
                .key("mpu")
                .send()
                .await;
            assert_eq!(error_status(&mpu.unwrap_err()), 503);
            let bucket = c.create_bucket().bucket("another").send().await;
            assert_eq!(error_status(&bucket.unwrap_err()), 503);
            // Reads go on.
            let got = s3dedup_conformance::get_bytes(c, "maint", "before").await;
            assert_eq!(got, b"some bytes");
            let listed = c.list_objects_v2().bucket("maint").send().await.unwrap();
            assert_eq!(listed.key_count(), Some(1));
        });
    };
    check(&c);
    // Runs that move stored bytes wait too.
    let gc = g.admin_cli(&["gc", "--grace", "0s"]).unwrap();
    assert!(!gc.status.success());
    assert!(String::from_utf8_lossy(&gc.stderr).contains("read-only mode"));

    // A restart (crash or planned) keeps the mode.
    g.kill();
    let g = Gateway::start_in(tmp.path()).unwrap();
    let c = s3dedup_conformance::sdk_client_with(&g.s3_url, retries_off);
    assert_eq!(g.admin_cli_ok(&["mode"]).trim(), "read-only");
    check(&c);
    assert_eq!(g.admin_cli_ok(&["mode", "read-write"]).trim(), "read-write");
    rt.block_on(async { put(&c, "after").await.unwrap() });
    assert_eq!(g.metric("s3dedup_read_only").unwrap(), 0.0);
    assert!(
        g.metric_sum("s3dedup_writes_refused_total", &["reason=\"read_only\""])
            .unwrap()
            >= 4.0,
        "counted since the restart"
    );
}

#[test]
fn the_read_only_setting_cannot_be_lifted_at_run_time() {
    let tmp = tempfile::tempdir().unwrap();
    let g = Gateway::start_with(tmp.path(), &[("S3DEDUP_READ_ONLY", "true")]).unwrap();
    assert_eq!(
        g.admin_cli_ok(&["mode"]).trim(),
        "read-only (set by the read_only setting)"
    );
    let o = g.admin_cli(&["mode", "read-write"]).unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("read_only setting"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = sdk_client(&g.s3_url);
        let e = c.create_bucket().bucket("maint").send().await.unwrap_err();
        assert_eq!(error_status(&e), 503);
    });
}

#[test]
fn uploads_wait_for_free_space_deletes_do_not_and_readiness_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    // First with room: a bucket and an object.
    let mut g = Gateway::start_in(tmp.path()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = sdk_client(&g.s3_url);
        c.create_bucket().bucket("maint").send().await.unwrap();
        put(&c, "kept").await.unwrap();
        put(&c, "dropped").await.unwrap();
    });
    assert_eq!(g.admin_get("/health/ready").unwrap().0, 200);
    g.stop().unwrap();
    // Then with more free space asked for than any disk has.
    let g = Gateway::start_with(tmp.path(), &[("S3DEDUP_MIN_FREE_SPACE", "1PiB")]).unwrap();
    let c = s3dedup_conformance::sdk_client_with(&g.s3_url, retries_off);
    rt.block_on(async {
        let e = put(&c, "new").await.unwrap_err();
        assert!(e.starts_with("503 ServiceUnavailable"), "{e}");
        assert!(e.contains("min_free_space"), "{e}");
        let mpu = c
            .create_multipart_upload()
            .bucket("maint")
            .key("mpu")
            .send()
            .await;
        assert_eq!(error_status(&mpu.unwrap_err()), 503);
        // Deleting frees space: allowed.
        c.delete_object()
            .bucket("maint")
            .key("dropped")
            .send()
            .await
            .unwrap();
        assert_eq!(
            s3dedup_conformance::get_bytes(&c, "maint", "kept").await,
            b"some bytes"
        );
    });
    let (status, body) = g.admin_get("/health/ready").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("min_free_space"), "{body}");
    assert!(g.metric("s3dedup_data_disk_free_bytes").unwrap() > 0.0);
    assert!(
        g.metric_sum("s3dedup_writes_refused_total", &["reason=\"disk_full\""])
            .unwrap()
            >= 2.0
    );
}
