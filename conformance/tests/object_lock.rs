//! Object lock through the Rust SDK against the real gateway: the ransomware drill.
//!
//! A version under COMPLIANCE retention (a few seconds ahead) survives every attempt to
//! destroy it — deleting the version (with and without the governance bypass),
//! shortening, weakening or dropping its retention, DeleteObjects, deleting the bucket,
//! suspending versioning, lifecycle rules that make it due, GC — and reads back
//! byte-exact; once the date has passed it can be deleted and GC reclaims its bytes.
//! GOVERNANCE yields to the bypass, a legal hold only to its removal, a bucket default
//! applies to new versions, and bad input is refused as S3 refuses it.

use std::time::{Duration, SystemTime};

use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketVersioningStatus, DefaultRetention, Delete,
    ExpirationStatus, LifecycleRule, LifecycleRuleFilter, NoncurrentVersionExpiration,
    ObjectIdentifier, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockLegalHold,
    ObjectLockLegalHoldStatus, ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode,
    ObjectLockRule, VersioningConfiguration,
};
use rand::{Rng, SeedableRng};
use s3dedup_conformance::{Gateway, refusal as code, sdk_client};

fn at(t: SystemTime) -> DateTime {
    DateTime::from(t)
}

fn gc(g: &Gateway) {
    let out = g.admin_cli_ok(&["gc", "--grace", "0s", "--wait"]);
    assert!(out.contains("finished"), "{out}");
}

async fn read(c: &aws_sdk_s3::Client, bucket: &str, key: &str, version: &str) -> Vec<u8> {
    let o = c
        .get_object()
        .bucket(bucket)
        .key(key)
        .version_id(version)
        .send()
        .await
        .unwrap();
    o.body.collect().await.unwrap().into_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ransomware_drill_compliance_retention_outlasts_every_attack() {
    let tmp = tempfile::tempdir().unwrap();
    // A lifecycle day of one second, so the drill's rules are due within it.
    let g = Gateway::start_with(
        tmp.path(),
        &[
            ("S3DEDUP_LIFECYCLE_DAY", "1s"),
            ("S3DEDUP_LIFECYCLE_INTERVAL", "0s"),
        ],
    )
    .unwrap();
    let c = sdk_client(&g.s3_url);
    let b = "vault";
    c.create_bucket()
        .bucket(b)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    let v = c.get_bucket_versioning().bucket(b).send().await.unwrap();
    assert_eq!(v.status(), Some(&BucketVersioningStatus::Enabled));
    let cfg = c
        .get_object_lock_configuration()
        .bucket(b)
        .send()
        .await
        .unwrap();
    let cfg = cfg.object_lock_configuration().unwrap();
    assert_eq!(cfg.object_lock_enabled(), Some(&ObjectLockEnabled::Enabled));
    assert!(cfg.rule().is_none());

    let mut data = vec![0u8; 3_000_000];
    rand::rngs::StdRng::seed_from_u64(9).fill(&mut data[..]);
    let until = SystemTime::now() + Duration::from_secs(9);
    let put = c
        .put_object()
        .bucket(b)
        .key("backup.tar")
        .body(ByteStream::from(data.clone()))
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(at(until))
        .send()
        .await
        .unwrap();
    let vid = put.version_id().unwrap().to_owned();
    let h = c
        .head_object()
        .bucket(b)
        .key("backup.tar")
        .send()
        .await
        .unwrap();
    assert_eq!(h.object_lock_mode(), Some(&ObjectLockMode::Compliance));
    let r = c
        .get_object_retention()
        .bucket(b)
        .key("backup.tar")
        .version_id(&vid)
        .send()
        .await
        .unwrap();
    let r = r.retention().unwrap();
    assert_eq!(r.mode(), Some(&ObjectLockRetentionMode::Compliance));
    assert_eq!(
        r.retain_until_date().unwrap().secs(),
        at(until).secs(),
        "retain-until date round-trips"
    );
    let stored_locked = g.store_bytes().unwrap();
    assert_eq!(g.metric("s3dedup_locked_versions ").unwrap(), 1.0);
    assert_eq!(
        g.metric("s3dedup_locked_bytes ").unwrap(),
        data.len() as f64
    );

    // The attacks.
    for bypass in [false, true] {
        let d = c
            .delete_object()
            .bucket(b)
            .key("backup.tar")
            .version_id(&vid)
            .bypass_governance_retention(bypass)
            .send()
            .await;
        assert_eq!(
            code(d),
            (403, "AccessDenied".into()),
            "delete, bypass={bypass}"
        );
        for (mode, t) in [
            (
                ObjectLockRetentionMode::Compliance,
                until - Duration::from_secs(3),
            ),
            (ObjectLockRetentionMode::Governance, until),
        ] {
            let p = c
                .put_object_retention()
                .bucket(b)
                .key("backup.tar")
                .version_id(&vid)
                .bypass_governance_retention(bypass)
                .retention(
                    ObjectLockRetention::builder()
                        .mode(mode.clone())
                        .retain_until_date(at(t))
                        .build(),
                )
                .send()
                .await;
            assert_eq!(
                code(p),
                (403, "AccessDenied".into()),
                "shorten/weaken to {mode:?}"
            );
        }
        let p = c
            .put_object_retention()
            .bucket(b)
            .key("backup.tar")
            .version_id(&vid)
            .bypass_governance_retention(bypass)
            .retention(ObjectLockRetention::builder().build())
            .send()
            .await;
        assert_eq!(code(p), (403, "AccessDenied".into()), "remove retention");
    }
    let many = c
        .delete_objects()
        .bucket(b)
        .bypass_governance_retention(true)
        .delete(
            Delete::builder()
                .objects(
                    ObjectIdentifier::builder()
                        .key("backup.tar")
                        .version_id(&vid)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(many.errors().len(), 1, "{many:?}");
    assert_eq!(many.errors()[0].code(), Some("AccessDenied"));
    // A delete marker hides the object; it destroys nothing.
    let m = c
        .delete_object()
        .bucket(b)
        .key("backup.tar")
        .send()
        .await
        .unwrap();
    assert_eq!(m.delete_marker(), Some(true));
    let marker = m.version_id().unwrap().to_owned();
    assert_eq!(
        code(c.delete_bucket().bucket(b).send().await),
        (409, "BucketNotEmpty".into())
    );
    let s = c
        .put_bucket_versioning()
        .bucket(b)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Suspended)
                .build(),
        )
        .send()
        .await;
    assert_eq!(code(s), (409, "InvalidBucketState".into()));
    // Lifecycle rules that make it due (noncurrent for a lifecycle day) keep it.
    c.put_bucket_lifecycle_configuration()
        .bucket(b)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(
                    LifecycleRule::builder()
                        .id("wipe")
                        .status(ExpirationStatus::Enabled)
                        .filter(LifecycleRuleFilter::builder().prefix("").build())
                        .noncurrent_version_expiration(
                            NoncurrentVersionExpiration::builder()
                                .noncurrent_days(1)
                                .build(),
                        )
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert!(
        SystemTime::now() < until,
        "the drill is too slow for its retention"
    );
    let out = g.admin_cli_ok(&["lifecycle", "--wait", "--json"]);
    let run: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(run["report"]["versions_removed"], 0, "{run}");
    assert!(run["report"]["locked_kept"].as_u64() >= Some(1), "{run}");
    assert_eq!(
        read(&c, b, "backup.tar", &vid).await,
        data,
        "intact after lifecycle"
    );
    c.delete_bucket_lifecycle().bucket(b).send().await.unwrap();
    gc(&g);
    assert_eq!(
        read(&c, b, "backup.tar", &vid).await,
        data,
        "intact after GC"
    );
    // Extending is always allowed.
    let later = until + Duration::from_secs(1);
    c.put_object_retention()
        .bucket(b)
        .key("backup.tar")
        .version_id(&vid)
        .retention(
            ObjectLockRetention::builder()
                .mode(ObjectLockRetentionMode::Compliance)
                .retain_until_date(at(later))
                .build(),
        )
        .send()
        .await
        .unwrap();

    // GOVERNANCE yields to the bypass; a legal hold only to its removal.
    let gv = c
        .put_object()
        .bucket(b)
        .key("gov")
        .body(ByteStream::from_static(b"governed"))
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(at(SystemTime::now() + Duration::from_secs(3600)))
        .send()
        .await
        .unwrap();
    let gv = gv.version_id().unwrap();
    let d = c
        .delete_object()
        .bucket(b)
        .key("gov")
        .version_id(gv)
        .send()
        .await;
    assert_eq!(code(d), (403, "AccessDenied".into()));
    c.delete_object()
        .bucket(b)
        .key("gov")
        .version_id(gv)
        .bypass_governance_retention(true)
        .send()
        .await
        .unwrap();
    let held = c
        .put_object()
        .bucket(b)
        .key("held")
        .body(ByteStream::from_static(b"evidence"))
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .send()
        .await
        .unwrap();
    let held = held.version_id().unwrap();
    let lh = c
        .get_object_legal_hold()
        .bucket(b)
        .key("held")
        .send()
        .await
        .unwrap();
    assert_eq!(
        lh.legal_hold().unwrap().status(),
        Some(&ObjectLockLegalHoldStatus::On)
    );
    let d = c
        .delete_object()
        .bucket(b)
        .key("held")
        .version_id(held)
        .bypass_governance_retention(true)
        .send()
        .await;
    assert_eq!(code(d), (403, "AccessDenied".into()));
    c.put_object_legal_hold()
        .bucket(b)
        .key("held")
        .legal_hold(
            ObjectLockLegalHold::builder()
                .status(ObjectLockLegalHoldStatus::Off)
                .build(),
        )
        .send()
        .await
        .unwrap();
    c.delete_object()
        .bucket(b)
        .key("held")
        .version_id(held)
        .send()
        .await
        .unwrap();

    // A bucket default applies to versions that ask for none.
    c.put_object_lock_configuration()
        .bucket(b)
        .object_lock_configuration(
            ObjectLockConfiguration::builder()
                .object_lock_enabled(ObjectLockEnabled::Enabled)
                .rule(
                    ObjectLockRule::builder()
                        .default_retention(
                            DefaultRetention::builder()
                                .mode(ObjectLockRetentionMode::Governance)
                                .days(1)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let dv = c
        .put_object()
        .bucket(b)
        .key("defaulted")
        .body(ByteStream::from_static(b"d"))
        .send()
        .await
        .unwrap();
    let r = c
        .get_object_retention()
        .bucket(b)
        .key("defaulted")
        .version_id(dv.version_id().unwrap())
        .send()
        .await
        .unwrap();
    let r = r.retention().unwrap();
    assert_eq!(r.mode(), Some(&ObjectLockRetentionMode::Governance));
    let in_a_day = at(SystemTime::now() + Duration::from_secs(86_400)).secs();
    assert!((r.retain_until_date().unwrap().secs() - in_a_day).abs() < 60);
    c.delete_object()
        .bucket(b)
        .key("defaulted")
        .version_id(dv.version_id().unwrap())
        .bypass_governance_retention(true)
        .send()
        .await
        .unwrap();

    // Bad input.
    let past = c
        .put_object()
        .bucket(b)
        .key("p")
        .body(ByteStream::from_static(b"p"))
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(at(SystemTime::now() - Duration::from_secs(60)))
        .send()
        .await;
    assert_eq!(code(past), (400, "InvalidArgument".into()));
    let half = c
        .put_object()
        .bucket(b)
        .key("p")
        .body(ByteStream::from_static(b"p"))
        .object_lock_mode(ObjectLockMode::Compliance)
        .send()
        .await;
    assert_eq!(code(half), (400, "InvalidArgument".into()));
    c.create_bucket().bucket("plain").send().await.unwrap();
    let nolock = c
        .put_object()
        .bucket("plain")
        .key("p")
        .body(ByteStream::from_static(b"p"))
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .send()
        .await;
    assert_eq!(code(nolock), (400, "InvalidRequest".into()));
    assert!(
        c.head_object()
            .bucket("plain")
            .key("p")
            .send()
            .await
            .is_err(),
        "nothing written"
    );
    let cfg = c
        .get_object_lock_configuration()
        .bucket("plain")
        .send()
        .await;
    assert_eq!(
        code(cfg),
        (404, "ObjectLockConfigurationNotFoundError".into())
    );
    let enable = c
        .put_object_lock_configuration()
        .bucket("plain")
        .object_lock_configuration(
            ObjectLockConfiguration::builder()
                .object_lock_enabled(ObjectLockEnabled::Enabled)
                .build(),
        )
        .send()
        .await;
    assert_eq!(code(enable), (409, "InvalidBucketState".into()));
    let both = c
        .put_object_lock_configuration()
        .bucket(b)
        .object_lock_configuration(
            ObjectLockConfiguration::builder()
                .object_lock_enabled(ObjectLockEnabled::Enabled)
                .rule(
                    ObjectLockRule::builder()
                        .default_retention(
                            DefaultRetention::builder()
                                .mode(ObjectLockRetentionMode::Governance)
                                .days(1)
                                .years(1)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .send()
        .await;
    assert_eq!(code(both), (400, "MalformedXML".into()));

    // After the date: the version can go, and GC gives its bytes back.
    assert_eq!(read(&c, b, "backup.tar", &vid).await, data);
    let wait =
        later.duration_since(SystemTime::now()).unwrap_or_default() + Duration::from_millis(1200);
    tokio::time::sleep(wait).await;
    c.delete_object()
        .bucket(b)
        .key("backup.tar")
        .version_id(&vid)
        .send()
        .await
        .unwrap();
    c.delete_object()
        .bucket(b)
        .key("backup.tar")
        .version_id(&marker)
        .send()
        .await
        .unwrap();
    gc(&g);
    let after = g.store_bytes().unwrap();
    assert!(
        after + 2_500_000 < stored_locked,
        "GC reclaimed the expired version: {stored_locked} -> {after} bytes"
    );
    assert_eq!(g.metric("s3dedup_locked_versions ").unwrap(), 0.0);
    let left = c.list_object_versions().bucket(b).send().await.unwrap();
    assert!(
        left.versions().is_empty() && left.delete_markers().is_empty(),
        "{left:?}"
    );
    c.delete_bucket().bucket(b).send().await.unwrap();
}

/// `x-amz-object-lock-*` on CreateMultipartUpload: kept with the upload (across a
/// restart) and given to the object at completion; refused at creation in a bucket
/// without object lock, as S3 refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_upload_gets_the_lock_asked_for_at_its_creation() {
    let tmp = tempfile::tempdir().unwrap();
    let mut g = Gateway::start_in(tmp.path()).unwrap();
    let c = sdk_client(&g.s3_url);
    let b = "mp-locked";
    c.create_bucket()
        .bucket(b)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    let until = SystemTime::now() + Duration::from_secs(3600);
    let up = c
        .create_multipart_upload()
        .bucket(b)
        .key("big")
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(at(until))
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap().to_owned();

    // The lock request survives a restart of the gateway between creation and completion.
    g.stop().unwrap();
    let mut g = Gateway::start_in(tmp.path()).unwrap();
    let c = sdk_client(&g.s3_url);
    let mut data = vec![0u8; 5 * 1024 * 1024 + 3000];
    rand::rngs::StdRng::seed_from_u64(7).fill(&mut data[..]);
    let mut parts = Vec::new();
    for (n, piece) in data.chunks(5 * 1024 * 1024).enumerate() {
        let n = i32::try_from(n).unwrap() + 1;
        let p = c
            .upload_part()
            .bucket(b)
            .key("big")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(piece.to_vec()))
            .send()
            .await
            .unwrap();
        parts.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(n)
                .e_tag(p.e_tag().unwrap())
                .build(),
        );
    }
    let done = c
        .complete_multipart_upload()
        .bucket(b)
        .key("big")
        .upload_id(&id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let vid = done.version_id().unwrap().to_owned();
    let head = c
        .head_object()
        .bucket(b)
        .key("big")
        .version_id(&vid)
        .send()
        .await
        .unwrap();
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Governance));
    assert_eq!(
        head.object_lock_retain_until_date().map(DateTime::secs),
        Some(at(until).secs()),
        "the retention asked for at creation"
    );
    assert_eq!(
        head.object_lock_legal_hold_status(),
        Some(&ObjectLockLegalHoldStatus::On)
    );
    assert_eq!(read(&c, b, "big", &vid).await, data);

    // The legal hold yields to nothing; with it off, GOVERNANCE yields to the bypass.
    let delete = |bypass: bool| {
        c.delete_object()
            .bucket(b)
            .key("big")
            .version_id(&vid)
            .bypass_governance_retention(bypass)
            .send()
    };
    for bypass in [false, true] {
        assert_eq!(
            code(delete(bypass).await),
            (403, "AccessDenied".into()),
            "legal hold, bypass {bypass}"
        );
    }
    c.put_object_legal_hold()
        .bucket(b)
        .key("big")
        .version_id(&vid)
        .legal_hold(
            ObjectLockLegalHold::builder()
                .status(ObjectLockLegalHoldStatus::Off)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(delete(false).await),
        (403, "AccessDenied".into()),
        "GOVERNANCE"
    );
    delete(true).await.unwrap();

    // Refused at creation, and no upload is left behind.
    c.create_bucket().bucket("mp-plain").send().await.unwrap();
    let nolock = c
        .create_multipart_upload()
        .bucket("mp-plain")
        .key("k")
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .send()
        .await;
    assert_eq!(code(nolock), (400, "InvalidRequest".into()));
    let half = c
        .create_multipart_upload()
        .bucket(b)
        .key("k")
        .object_lock_mode(ObjectLockMode::Compliance)
        .send()
        .await;
    assert_eq!(code(half), (400, "InvalidArgument".into()));
    let past = c
        .create_multipart_upload()
        .bucket(b)
        .key("k")
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(at(SystemTime::now() - Duration::from_secs(60)))
        .send()
        .await;
    assert_eq!(code(past), (400, "InvalidArgument".into()));
    for bucket in ["mp-plain", b] {
        let ups = c
            .list_multipart_uploads()
            .bucket(bucket)
            .send()
            .await
            .unwrap();
        assert!(ups.uploads().is_empty(), "{bucket}: {ups:?}");
    }
    g.stop().unwrap();
    g.assert_fsck("after locked multipart uploads");
}
