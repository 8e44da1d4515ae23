//! A damaged, rolled-back or lost index: flipped sizes and pages, snapshots, retried completions, a lost index over a full store.

use super::*;

/// Finds the object record of an object of `size` bytes with ETag `md5_hex` in the
/// index file (any record version) and overwrites its size field with `new_size`.
/// Returns how many copies were changed (redb may keep freed old copies too).
fn flip_object_size(index: &Path, md5_hex: &str, size: u64, new_size: u64) -> usize {
    let md5 = hex::decode(md5_hex).unwrap();
    let mut file = std::fs::read(index).unwrap();
    let mut changed = 0;
    let mut at = 0;
    while let Some(p) = file[at..].windows(16).position(|w| w == md5.as_slice()) {
        let pos = at + p;
        at = pos + 1;
        if pos < 9 {
            continue;
        }
        let field = pos - 8;
        let version = file[field - 1];
        if matches!(version, 1..=3 | 5) && file[field..pos] == size.to_le_bytes() {
            file[field..pos].copy_from_slice(&new_size.to_le_bytes());
            changed += 1;
        }
    }
    std::fs::write(index, &file).unwrap();
    changed
}

fn fsck(g: &Gateway, dir: &Path) -> (bool, String) {
    let out = Command::new(s3dedup_conformance::binary().unwrap())
        .args(["fsck", "--data-dir"])
        .arg(dir)
        .envs(g.store_env())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn a_flipped_size_is_a_500_never_a_short_200() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut g = Gateway::start_in(&dir).unwrap();
    bucket(&g, "bkt").await;
    let data: Vec<u8> = (0..10_485_760u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let etag = put(&g, "bkt", "victim", data).await;
    put(&g, "bkt", "bystander", b"still fine".to_vec()).await;
    g.stop().unwrap();
    let n = flip_object_size(&dir.join("index.redb"), &etag, 10_485_760, 6_225_920);
    assert!(n >= 1, "object record not found in the index file");
    let g = Gateway::start_in(&dir).unwrap();
    let c = sdk_client(&g.s3_url);
    let e = c.get_object().bucket("bkt").key("victim").send().await;
    match e {
        Ok(r) => {
            let len = r
                .body
                .collect()
                .await
                .map(|b| b.into_bytes().len())
                .unwrap_or(0);
            panic!("GET of a damaged record answered 200 with {len} bytes");
        }
        Err(e) => assert_eq!(error_status(&e), 500, "{e:?}"),
    }
    let e = c
        .head_object()
        .bucket("bkt")
        .key("victim")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_status(&e), 500);
    // Deleting, copying or overwriting it fails cleanly; the process stays up.
    let e = c
        .delete_object()
        .bucket("bkt")
        .key("victim")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_status(&e), 500);
    let e = c
        .copy_object()
        .bucket("bkt")
        .key("copy")
        .copy_source("bkt/victim")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_status(&e), 500);
    let got = c
        .get_object()
        .bucket("bkt")
        .key("bystander")
        .send()
        .await
        .unwrap();
    assert_eq!(
        &got.body.collect().await.unwrap().into_bytes()[..],
        b"still fine"
    );
    assert!(g.metric_sum("s3dedup_corrupt_records_total", &[]).unwrap() >= 1.0);
    let mut g = g;
    g.stop().unwrap();
    let (ok, out) = fsck(&g, &dir);
    assert!(!ok, "fsck passed a damaged index:\n{out}");
    assert!(out.contains("damaged object bkt/victim"), "{out}");
}

#[tokio::test]
async fn a_flipped_page_and_an_unclean_stop_leave_the_rest_readable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut g = Gateway::start_in(&dir).unwrap();
    bucket(&g, "aaa").await;
    bucket(&g, "mmm").await;
    bucket(&g, "zzz").await;
    let victim: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let etag = put(&g, "aaa", "victim", victim).await;
    // Enough objects after it that later writes touch other leaves of the tree.
    for i in 0..300 {
        put(
            &g,
            "mmm",
            &format!("filler-{i:04}"),
            format!("filler {i}").into_bytes(),
        )
        .await;
    }
    g.stop().unwrap();
    assert!(flip_object_size(&dir.join("index.redb"), &etag, 300_000, 299_999) >= 1);
    let mut g = Gateway::start_in(&dir).unwrap();
    for i in 0..20 {
        put(
            &g,
            "zzz",
            &format!("after-{i}"),
            format!("written after the flip {i}").into_bytes(),
        )
        .await;
    }
    g.kill(); // unclean stop
    let g = Gateway::start_in(&dir).expect("the index must open after an unclean stop");
    let c = sdk_client(&g.s3_url);
    let e = c
        .get_object()
        .bucket("aaa")
        .key("victim")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_status(&e), 500);
    for i in [0, 150, 299] {
        let r = c
            .get_object()
            .bucket("mmm")
            .key(format!("filler-{i:04}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.body.collect().await.unwrap().into_bytes(),
            format!("filler {i}").into_bytes()
        );
    }
    let r = c
        .get_object()
        .bucket("zzz")
        .key("after-19")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.body.collect().await.unwrap().into_bytes(),
        b"written after the flip 19".to_vec()
    );
}

#[tokio::test]
async fn snapshots_roll_the_index_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let env = [
        ("S3DEDUP_INDEX_SNAPSHOT_INTERVAL", "1"),
        ("S3DEDUP_INDEX_SNAPSHOTS", "2"),
    ];
    let mut g = Gateway::start_with(&dir, &env).unwrap();
    bucket(&g, "snap").await;
    put(&g, "snap", "kept", b"in the snapshot".to_vec()).await;
    let snaps = dir.join("index-snapshots");
    let deadline = Instant::now() + Duration::from_secs(20);
    let list = |d: &Path| -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .map(|r| r.filter_map(|e| Some(e.ok()?.path())).collect())
            .unwrap_or_default();
        v.retain(|p| p.extension().is_some_and(|e| e == "redb"));
        v.sort();
        v
    };
    while list(&snaps).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "no snapshots in {}",
            snaps.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));
    assert!(list(&snaps).len() <= 2, "more snapshots kept than asked");
    g.stop().unwrap();
    // The documented procedure: stop, move the damaged index aside, copy the newest
    // snapshot in, start, fsck.
    let newest = list(&snaps).pop().unwrap();
    std::fs::rename(dir.join("index.redb"), dir.join("index.redb.damaged")).unwrap();
    std::fs::copy(&newest, dir.join("index.redb")).unwrap();
    let (ok, out) = fsck(&g, &dir);
    assert!(ok, "{out}");
    let g = Gateway::start_with(&dir, &env).unwrap();
    let r = sdk_client(&g.s3_url)
        .get_object()
        .bucket("snap")
        .key("kept")
        .send()
        .await
        .unwrap();
    assert_eq!(
        &r.body.collect().await.unwrap().into_bytes()[..],
        b"in the snapshot"
    );
}

#[tokio::test]
async fn a_retried_completion_gets_the_same_answer() {
    let g = Gateway::start().unwrap();
    let c = sdk_client(&g.s3_url);
    bucket(&g, "multi").await;
    let up = c
        .create_multipart_upload()
        .bucket("multi")
        .key("k")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let part = c
        .upload_part()
        .bucket("multi")
        .key("k")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from(vec![7u8; 100_000]))
        .send()
        .await
        .unwrap();
    let parts = CompletedMultipartUpload::builder()
        .parts(
            CompletedPart::builder()
                .part_number(1)
                .e_tag(part.e_tag().unwrap())
                .build(),
        )
        .build();
    let complete = || {
        c.complete_multipart_upload()
            .bucket("multi")
            .key("k")
            .upload_id(id)
            .multipart_upload(parts.clone())
            .send()
    };
    let first = complete().await.unwrap();
    let again = complete().await.expect("a retried completion succeeds");
    assert_eq!(first.e_tag(), again.e_tag());
    // Another part list for the same id is not the same request.
    let other = CompletedMultipartUpload::builder()
        .parts(
            CompletedPart::builder()
                .part_number(2)
                .e_tag(part.e_tag().unwrap())
                .build(),
        )
        .build();
    let e = c
        .complete_multipart_upload()
        .bucket("multi")
        .key("k")
        .upload_id(id)
        .multipart_upload(other)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&e), "NoSuchUpload");
    // Nothing was stored twice: one object with the first answer's ETag, fsck clean.
    let listed = c.list_objects_v2().bucket("multi").send().await.unwrap();
    assert_eq!(listed.contents().len(), 1);
    assert_eq!(listed.contents()[0].e_tag(), first.e_tag());
    let mut g = g;
    g.stop().unwrap();
    let (ok, out) = fsck(&g, &g.data_dir);
    assert!(ok, "{out}");
}

#[tokio::test]
async fn a_lost_index_is_not_taken_for_a_new_store() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut g = Gateway::start_in(&dir).unwrap();
    bucket(&g, "lost").await;
    put(&g, "lost", "k", vec![5u8; 200_000]).await;
    g.stop().unwrap();
    let index = dir.join("index.redb");
    std::fs::rename(&index, dir.join("index.redb.saved")).unwrap();
    let e = Gateway::start_in(&dir).expect_err("started over a store whose index is gone");
    assert!(format!("{e:#}").contains("not a new store"), "{e:#}");
    std::fs::write(&index, b"").unwrap();
    let e = Gateway::start_in(&dir).expect_err("started over an empty index");
    assert!(format!("{e:#}").contains("not a new store"), "{e:#}");
    // Put back, it serves again.
    std::fs::rename(dir.join("index.redb.saved"), &index).unwrap();
    let g = Gateway::start_in(&dir).unwrap();
    let r = sdk_client(&g.s3_url)
        .get_object()
        .bucket("lost")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(r.body.collect().await.unwrap().into_bytes().len(), 200_000);
}
