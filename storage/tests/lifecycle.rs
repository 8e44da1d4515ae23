//! Lifecycle rules at engine level: what each action expires and when, object lock
//! keeping what rules make due, writes racing a run never expired on a stale view,
//! and the configuration surviving a rebuild from the journal. Days are one second
//! long here (`Clock::day_ms`), as the gateway's `lifecycle_day` allows in tests.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use s3dedup_storage::blob::{BlobStore, MemoryBlobStore};
use s3dedup_storage::journal::rebuild::rebuild_index;
use s3dedup_storage::lifecycle::{
    Clock, Expiration, Filter, Lifecycle, NoncurrentExpiration, Rule,
};
use s3dedup_storage::lock::{Retention, RetentionMode};
use s3dedup_storage::store::LifecycleReport;
use s3dedup_storage::{Error, ObjectMeta, Store, VersionEntry, VersionItem, Versioning};

const DAY: u64 = 1000;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// `days` lifecycle days from now.
fn after(days: u64) -> Clock {
    Clock {
        now_ms: now_ms() + days * DAY,
        day_ms: DAY,
    }
}

fn rule(id: &str, prefix: &str) -> Rule {
    Rule {
        id: id.into(),
        enabled: true,
        filter: Filter {
            prefix: prefix.into(),
            ..Filter::default()
        },
        expiration: None,
        noncurrent: None,
        abort_multipart_days: None,
    }
}

async fn put(store: &Store, bucket: &str, key: &str, data: &[u8]) -> String {
    let pending = store
        .ingest_bytes(Bytes::copy_from_slice(data))
        .await
        .unwrap();
    common::commit_to(store, bucket, key, pending)
        .await
        .version
        .id()
}

async fn read(store: &Store, bucket: &str, key: &str, v: Option<&str>) -> Result<Vec<u8>, Error> {
    let r = store.get_version(bucket, key, v, None).await?;
    let parts: Vec<Bytes> = r.body.try_collect().await?;
    Ok(parts.concat())
}

/// (key, version id, is a marker) newest first per key.
async fn listing(store: &Store, bucket: &str) -> Vec<(String, String, bool)> {
    let page = store
        .list_versions(bucket, "", None, (None, None), 10_000)
        .await
        .unwrap();
    page.items
        .iter()
        .map(|i| match i {
            VersionItem::Version { key, entry, .. } => (
                key.clone(),
                entry.version().id(),
                matches!(entry, VersionEntry::Marker(_)),
            ),
            other => panic!("no delimiter, yet {other:?}"),
        })
        .collect()
}

async fn run(store: &Store, clock: Clock) -> LifecycleReport {
    store.lifecycle(clock, &|_| {}).await.unwrap()
}

#[tokio::test]
async fn expiration_in_an_unversioned_bucket_deletes_by_age_prefix_and_size() {
    let (_dir, store) = common::fresh_store().await;
    store.create_bucket("u").await.unwrap();
    put(&store, "u", "logs/small", &[1; 10]).await;
    put(&store, "u", "logs/big", &common::random_bytes(1, 5000)).await;
    put(&store, "u", "keep/x", &[2; 10]).await;
    let mut r = rule("logs", "logs/");
    r.filter.size_less_than = Some(1000);
    r.expiration = Some(Expiration::Days(2));
    let mut off = rule("off", "");
    off.enabled = false;
    off.expiration = Some(Expiration::Days(1));
    store
        .put_lifecycle(
            "u",
            &Lifecycle {
                rules: vec![r, off],
            },
        )
        .await
        .unwrap();

    // Not yet two days old: nothing (and the disabled rule never acts).
    let rep = run(&store, after(1)).await;
    assert_eq!(rep.current_expired, 0, "{rep:?}");
    assert_eq!(listing(&store, "u").await.len(), 3);

    let rep = run(&store, after(4)).await;
    assert_eq!(rep.current_expired, 1, "{rep:?}");
    assert_eq!(rep.markers_added, 0);
    assert_eq!(rep.bytes_released, 10);
    let keys: Vec<String> = listing(&store, "u")
        .await
        .into_iter()
        .map(|l| l.0)
        .collect();
    assert_eq!(keys, ["keep/x", "logs/big"]);
    // Nothing left to do: a second run changes nothing.
    assert_eq!(run(&store, after(4)).await.current_expired, 0);
    common::assert_fsck_clean(&store).await;
}

#[tokio::test]
async fn a_date_rule_expires_everything_it_selects_once_the_date_passed() {
    let (_dir, store) = common::fresh_store().await;
    store.create_bucket("u").await.unwrap();
    put(&store, "u", "a", b"a").await;
    let mut r = rule("date", "");
    let tomorrow = (now_ms() / 86_400_000 + 1) * 86_400_000;
    r.expiration = Some(Expiration::Date(tomorrow));
    store
        .put_lifecycle("u", &Lifecycle { rules: vec![r] })
        .await
        .unwrap();
    let real = Clock {
        now_ms: now_ms(),
        day_ms: 86_400_000,
    };
    assert_eq!(run(&store, real).await.current_expired, 0);
    let later = Clock {
        now_ms: tomorrow,
        ..real
    };
    assert_eq!(run(&store, later).await.current_expired, 1);
    assert!(matches!(
        read(&store, "u", "a", None).await,
        Err(Error::NoSuchKey { .. })
    ));
}

#[tokio::test]
async fn versioned_expiration_noncurrent_versions_and_expired_delete_markers() {
    let (_dir, store) = common::fresh_store().await;
    store.create_bucket("v").await.unwrap();
    store
        .set_versioning("v", Versioning::Enabled)
        .await
        .unwrap();
    let v1 = put(&store, "v", "k", b"one").await;
    let v2 = put(&store, "v", "k", b"two").await;
    let v3 = put(&store, "v", "k", b"three").await;
    let other = put(&store, "v", "other/x", b"x").await;
    let mut all = rule("all", "k");
    all.expiration = Some(Expiration::Days(1));
    all.noncurrent = Some(NoncurrentExpiration {
        days: 1,
        newer_versions: Some(1),
    });
    let mut markers = rule("markers", "");
    markers.expiration = Some(Expiration::DeleteMarkers);
    store
        .put_lifecycle(
            "v",
            &Lifecycle {
                rules: vec![all, markers],
            },
        )
        .await
        .unwrap();

    // First run: the current version expires under a new delete marker; of the two
    // noncurrent versions the newest is kept (NewerNoncurrentVersions 1), v1 goes.
    let rep = run(&store, after(3)).await;
    assert_eq!(
        (rep.current_expired, rep.markers_added, rep.versions_removed),
        (1, 1, 1),
        "{rep:?}"
    );
    assert_eq!(rep.bytes_released, 3);
    let l = listing(&store, "v").await;
    let k: Vec<_> = l.iter().filter(|e| e.0 == "k").collect();
    assert_eq!(k.len(), 3, "{l:?}");
    assert!(k[0].2, "the newest version is the new delete marker: {l:?}");
    assert_eq!(
        (k[1].1.as_str(), k[2].1.as_str()),
        (v3.as_str(), v2.as_str())
    );
    assert_eq!(read(&store, "v", "k", Some(&v2)).await.unwrap(), b"two");
    assert!(matches!(
        read(&store, "v", "k", Some(&v1)).await,
        Err(Error::NoSuchVersion { .. })
    ));
    // "other/x" matched no expiring rule (the markers rule does not expire objects).
    assert_eq!(
        read(&store, "v", "other/x", Some(&other)).await.unwrap(),
        b"x"
    );

    // Second run, a while later: v2 is now past the newest noncurrent one and goes;
    // v3 stays (the newest noncurrent), so the marker is not alone.
    let rep = run(&store, after(3)).await;
    assert_eq!(
        (rep.versions_removed, rep.markers_removed),
        (1, 0),
        "{rep:?}"
    );
    assert_eq!(read(&store, "v", "k", Some(&v3)).await.unwrap(), b"three");

    // Deleting v3 by hand leaves the marker alone: the markers rule removes it.
    store
        .delete_version("v", "k", Some(&v3), Default::default())
        .await
        .unwrap();
    let rep = run(&store, after(0)).await;
    assert_eq!(rep.markers_removed, 1, "{rep:?}");
    let keys: Vec<String> = listing(&store, "v")
        .await
        .into_iter()
        .map(|l| l.0)
        .collect();
    assert_eq!(keys, ["other/x"]);
    common::assert_fsck_clean(&store).await;
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.noncurrent_versions, stats.delete_markers), (0, 0));
}

#[tokio::test]
async fn suspended_expiration_replaces_the_null_version_with_a_null_marker() {
    let (_dir, store) = common::fresh_store().await;
    store.create_bucket("s").await.unwrap();
    store
        .set_versioning("s", Versioning::Enabled)
        .await
        .unwrap();
    let kept = put(&store, "s", "k", b"versioned").await;
    store
        .set_versioning("s", Versioning::Suspended)
        .await
        .unwrap();
    put(&store, "s", "k", b"null one").await;
    let mut r = rule("r", "");
    r.expiration = Some(Expiration::Days(1));
    store
        .put_lifecycle("s", &Lifecycle { rules: vec![r] })
        .await
        .unwrap();
    let rep = run(&store, after(3)).await;
    assert_eq!((rep.current_expired, rep.markers_added), (1, 1), "{rep:?}");
    assert_eq!(rep.bytes_released, 8, "the null version is gone for good");
    let l = listing(&store, "s").await;
    assert_eq!(l.len(), 2, "{l:?}");
    assert_eq!((l[0].1.as_str(), l[0].2), ("null", true));
    assert_eq!(l[1].1, kept);
    common::assert_fsck_clean(&store).await;
}

#[tokio::test]
async fn object_lock_keeps_what_rules_make_due_even_on_a_clock_past_retention() {
    let (_dir, store) = common::fresh_store().await;
    store.create_bucket_with_lock("l").await.unwrap();
    store
        .set_versioning("l", Versioning::Enabled)
        .await
        .unwrap();
    let old = put(&store, "l", "k", b"protected").await;
    let held = put(&store, "l", "h", b"held").await;
    put(&store, "l", "k", b"newer").await;
    put(&store, "l", "h", b"newer").await;
    store
        .put_retention(
            "l",
            "k",
            Some(&old),
            Some(Retention {
                mode: RetentionMode::Compliance,
                until_ms: now_ms() + 60_000,
            }),
            false,
        )
        .await
        .unwrap();
    store
        .put_legal_hold("l", "h", Some(&held), true)
        .await
        .unwrap();
    let mut r = rule("r", "");
    r.noncurrent = Some(NoncurrentExpiration {
        days: 1,
        newer_versions: None,
    });
    r.expiration = Some(Expiration::Days(1));
    store
        .put_lifecycle("l", &Lifecycle { rules: vec![r] })
        .await
        .unwrap();
    // The clock says a year later; lock is judged by real time and holds.
    let rep = run(&store, after(365 * 86_400)).await;
    assert_eq!(rep.versions_removed, 0, "{rep:?}");
    assert!(rep.locked >= 2, "{rep:?}");
    // Expiring the current versions only adds delete markers (allowed under lock).
    assert_eq!((rep.current_expired, rep.markers_added), (2, 2), "{rep:?}");
    assert_eq!(
        read(&store, "l", "k", Some(&old)).await.unwrap(),
        b"protected"
    );
    assert_eq!(read(&store, "l", "h", Some(&held)).await.unwrap(), b"held");
    // Lift the hold: the next run removes that version (and the unlocked newer ones).
    store
        .put_legal_hold("l", "h", Some(&held), false)
        .await
        .unwrap();
    run(&store, after(365 * 86_400)).await;
    assert!(matches!(
        read(&store, "l", "h", Some(&held)).await,
        Err(Error::NoSuchVersion { .. })
    ));
    assert_eq!(
        read(&store, "l", "k", Some(&old)).await.unwrap(),
        b"protected"
    );
    common::assert_fsck_clean(&store).await;
}

#[tokio::test]
async fn incomplete_multipart_uploads_are_aborted_after_their_days() {
    let (_dir, store) = common::fresh_store().await;
    store.create_bucket("m").await.unwrap();
    let old = store
        .create_upload("m", "tmp/a", ObjectMeta::default(), Default::default())
        .await
        .unwrap();
    let other = store
        .create_upload("m", "keep/b", ObjectMeta::default(), Default::default())
        .await
        .unwrap();
    let mut r = rule("mp", "tmp/");
    r.abort_multipart_days = Some(2);
    store
        .put_lifecycle("m", &Lifecycle { rules: vec![r] })
        .await
        .unwrap();
    assert_eq!(run(&store, after(1)).await.uploads_aborted, 0);
    assert_eq!(run(&store, after(4)).await.uploads_aborted, 1);
    assert!(matches!(
        store.upload(&old).await,
        Err(Error::NoSuchUpload(_))
    ));
    store.upload(&other).await.unwrap();
}

/// Writers overwrite and delete a few keys while lifecycle runs back to back with a
/// one-second day: a run judges each key inside the write that applies it, so a
/// version written less than a day before the run's clock is never expired, whatever
/// the scan saw. Checked after every run against what the writers were told.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_racing_a_run_are_judged_as_they_are_now() {
    let (_dir, store) = common::fresh_store().await;
    store.create_bucket("r").await.unwrap();
    store
        .set_versioning("r", Versioning::Enabled)
        .await
        .unwrap();
    let mut r = rule("r", "");
    r.expiration = Some(Expiration::Days(1));
    r.noncurrent = Some(NoncurrentExpiration {
        days: 1,
        newer_versions: None,
    });
    store
        .put_lifecycle("r", &Lifecycle { rules: vec![r] })
        .await
        .unwrap();
    // (key, version id) → write time, for every acknowledged write.
    let told: Arc<std::sync::Mutex<BTreeMap<(String, String), u64>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..3u64 {
        let (store, told, stop) = (store.clone(), Arc::clone(&told), Arc::clone(&stop));
        writers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let key = format!("k{}", (n * 7 + w) % 40);
                let t0 = now_ms();
                let id = put(&store, "r", &key, format!("{w}-{n}").as_bytes()).await;
                told.lock().unwrap().insert((key, id), t0);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    let mut expired = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(12);
    while std::time::Instant::now() < deadline {
        // The run's clock: versions written within the last lifecycle day (and up to
        // the next day boundary) are not due, whatever happens during the run.
        let clock = Clock {
            now_ms: now_ms(),
            day_ms: DAY,
        };
        let rep = run(&store, clock).await;
        expired += rep.current_expired + rep.versions_removed;
        // What the writers were told before the listing is taken.
        let known = told.lock().unwrap().clone();
        let l = listing(&store, "r").await;
        let present: std::collections::HashSet<(String, String)> =
            l.iter().map(|(k, v, _)| (k.clone(), v.clone())).collect();
        let mut newest_is_marker = std::collections::HashSet::new();
        for (i, (k, _, marker)) in l.iter().enumerate() {
            if (i == 0 || l[i - 1].0 != *k) && *marker {
                newest_is_marker.insert(k.clone());
            }
        }
        for ((key, id), t0) in &known {
            // Written less than a lifecycle day before the run's clock: not due, so
            // neither removed nor hidden under a delete marker (writers never delete).
            if *t0 + DAY > clock.now_ms {
                assert!(
                    present.contains(&(key.clone(), id.clone())),
                    "version {id} of {key}, written at {t0}, was removed by a run at {}",
                    clock.now_ms
                );
                assert!(
                    !newest_is_marker.contains(key),
                    "{key} has a version written at {t0} yet a run at {} expired it",
                    clock.now_ms
                );
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    assert!(
        expired > 0,
        "the runs expired nothing: the test proves nothing"
    );
    common::assert_fsck_clean(&store).await;
}

#[tokio::test]
async fn the_configuration_survives_a_rebuild_and_goes_with_its_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let dir2 = tempfile::tempdir().unwrap();
    let blobs = Arc::new(MemoryBlobStore::default());
    let cfg = common::small_config();
    let store = common::open_mem(dir.path(), Arc::clone(&blobs), cfg.clone()).await;
    store.create_bucket("b").await.unwrap();
    store.create_bucket("gone").await.unwrap();
    let mut r = rule("keep", "x/");
    r.expiration = Some(Expiration::Days(30));
    r.abort_multipart_days = Some(7);
    let config = Lifecycle { rules: vec![r] };
    store.put_lifecycle("b", &config).await.unwrap();
    store.put_lifecycle("gone", &config).await.unwrap();
    store.delete_bucket("gone").await.unwrap();
    assert!(matches!(
        store.lifecycle_config("gone").await,
        Err(Error::NoSuchBucket(_))
    ));
    store.create_bucket("gone").await.unwrap();
    assert_eq!(store.lifecycle_config("gone").await.unwrap(), None);
    store.ship_journal().await.unwrap();
    let report = rebuild_index(
        &dir2.path().join("index.redb"),
        Arc::clone(&blobs) as Arc<dyn BlobStore>,
        &cfg,
    )
    .await
    .unwrap();
    assert!(report.complete(), "{report:#?}");
    let rebuilt = common::open_mem(dir2.path(), Arc::clone(&blobs), cfg.clone()).await;
    assert_eq!(rebuilt.lifecycle_config("b").await.unwrap(), Some(config));
    assert_eq!(rebuilt.lifecycle_config("gone").await.unwrap(), None);
    // Deleting the configuration is journaled too.
    drop(rebuilt);
    store.delete_lifecycle("b").await.unwrap();
    assert_eq!(store.lifecycle_config("b").await.unwrap(), None);
}
