//! Garbage collection through the real binary and real clients: deleting everything
//! frees the store (local directory, or the bucket with `S3DEDUP_TEST_STORE=s3`), the
//! admin API refuses without its token and runs one GC at a time, concurrent identical
//! uploads end as one copy, and writers racing a GC loop never lose an acknowledged byte.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use s3dedup_conformance::{Gateway, binary, get_bytes, http_request, sdk_client};

fn random(seed: u64, len: usize) -> Vec<u8> {
    use rand::{Rng, SeedableRng};
    let mut v = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill(&mut v[..]);
    v
}

fn ok(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn deleting_everything_and_collecting_frees_the_store() {
    let mut g = Gateway::start().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = sdk_client(&g.s3_url);
    let a = random(1, 80 << 20);
    let b = random(2, 50 << 20);
    rt.block_on(async {
        c.create_bucket().bucket("gc-all").send().await.unwrap();
        for (k, body) in [("a", &a), ("a-copy", &a), ("b", &b)] {
            c.put_object()
                .bucket("gc-all")
                .key(k)
                .body(ByteStream::from(body.clone()))
                .send()
                .await
                .unwrap();
        }
        // Multipart: three 20 MiB parts, the middle one a duplicate of `b`'s start.
        let up = c
            .create_multipart_upload()
            .bucket("gc-all")
            .key("mp")
            .send()
            .await
            .unwrap();
        let id = up.upload_id().unwrap();
        let mut parts = Vec::new();
        for (n, body) in [
            (1, random(3, 20 << 20)),
            (2, b[..20 << 20].to_vec()),
            (3, random(4, 20 << 20)),
        ] {
            let p = c
                .upload_part()
                .bucket("gc-all")
                .key("mp")
                .upload_id(id)
                .part_number(n)
                .body(ByteStream::from(body))
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
        c.complete_multipart_upload()
            .bucket("gc-all")
            .key("mp")
            .upload_id(id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        for i in 0..20 {
            c.put_object()
                .bucket("gc-all")
                .key(format!("small-{i}"))
                .body(ByteStream::from(random(100 + i, 3000)))
                .send()
                .await
                .unwrap();
        }
    });
    let before = g.store_bytes().unwrap();
    assert!(before > 170 << 20, "stored {before}");
    let metric = g.metric("s3dedup_stored_bytes ").unwrap() as u64;
    // The index's count of stored bytes is the store's (the marker and inline chunks
    // aside): within 1 %.
    assert!(
        metric.abs_diff(before) * 100 <= before,
        "s3dedup_stored_bytes {metric} vs {before} in the store"
    );
    assert_eq!(g.metric("s3dedup_garbage_bytes ").unwrap(), 0.0);

    // Without the token, or with a wrong one: 401, nothing done.
    let (status, _) =
        http_request(&g.admin_addr, "POST", "/admin/v1/gc?grace=0s", &[], &[]).unwrap();
    assert_eq!(status, 401);
    let (status, _) = http_request(
        &g.admin_addr,
        "POST",
        "/admin/v1/gc?grace=0s",
        &[("Authorization", "Bearer wrong-token-0123456789".into())],
        &[],
    )
    .unwrap();
    assert_eq!(status, 401);
    let (status, st) = g.admin_api("GET", "/admin/v1/status").unwrap();
    assert_eq!(status, 200);
    assert!(
        st["gc"]["last"].is_null() && st["gc"]["running"].is_null(),
        "{st}"
    );
    let (status, body) = g.admin_api("POST", "/admin/v1/gc?grace=soon").unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("grace=soon"),
        "{body}"
    );
    // The metrics and health endpoints stay open.
    assert_eq!(g.admin_get("/health/live").unwrap().0, 200);

    rt.block_on(async {
        let keys = c.list_objects_v2().bucket("gc-all").send().await.unwrap();
        for o in keys.contents() {
            c.delete_object()
                .bucket("gc-all")
                .key(o.key().unwrap())
                .send()
                .await
                .unwrap();
        }
    });
    let garbage = g.metric("s3dedup_garbage_bytes ").unwrap() as u64;
    assert!(garbage > 130 << 20, "garbage {garbage}");

    // One run at a time: a second request while the first runs is 409 naming it.
    let (status, first) = g.admin_api("POST", "/admin/v1/gc?grace=0s").unwrap();
    assert_eq!(status, 202, "{first}");
    let (status, second) = g.admin_api("POST", "/admin/v1/gc?grace=0s").unwrap();
    if status == 409 {
        assert_eq!(second["run"]["id"], first["id"], "{second}");
    } else {
        // Only if the first had already finished.
        assert_eq!(status, 202, "{second}");
        let (_, run1) = g.admin_api("GET", "/admin/v1/gc/runs/1").unwrap();
        assert_ne!(run1["result"], "running", "{run1}");
    }
    // And the CLI waits for a run of its own.
    let out = ok(&g.admin_cli(&["gc", "--grace", "0s", "--wait"]).unwrap());
    assert!(out.contains("finished"), "{out}");
    let after = g.store_bytes().unwrap();
    assert!(
        after * 100 <= before,
        "{after} bytes left of {before} (more than 1 %)"
    );
    assert_eq!(g.metric("s3dedup_stored_bytes ").unwrap(), 0.0);
    assert_eq!(g.metric("s3dedup_garbage_bytes ").unwrap(), 0.0);
    assert!(
        g.metric_sum("s3dedup_gc_runs_total", &["result=\"ok\""])
            .unwrap()
            >= 2.0
    );
    assert!(
        g.metric("s3dedup_gc_reclaimed_bytes_total").unwrap() as u64 >= before - after - (1 << 20)
    );
    assert!(g.metric("s3dedup_gc_deleted_packs_total").unwrap() > 5.0);
    let status = ok(&g.admin_cli(&["status", "--json"]).unwrap());
    let st: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(st["gc"]["last"]["result"], "ok", "{st}");
    assert_eq!(st["garbage_bytes"], 0, "{st}");
    let usage: serde_json::Value =
        serde_json::from_str(&ok(&g.admin_cli(&["usage", "--json"]).unwrap())).unwrap();
    assert_eq!(usage["stored_bytes"], 0, "{usage}");
    println!("delete-everything: {before} bytes in the store before, {after} after gc");

    // Offline: fsck is clean, and `s3dedup gc` refuses a running server but runs on
    // a stopped one.
    let store_env = g.store_env();
    let dir = g.data_dir.to_str().unwrap().to_owned();
    let offline = |args: &[&str]| {
        let mut cmd = Command::new(binary().unwrap());
        cmd.args(args)
            .args(["--data-dir", &dir])
            .envs(store_env.iter().cloned());
        cmd.output().unwrap()
    };
    let o = offline(&["gc", "--grace", "0s"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("the gateway is running"));
    g.stop().unwrap();
    let out = ok(&offline(&["gc", "--grace", "0s", "--dry-run"]));
    assert!(out.contains("reclaimed"), "{out}");
    ok(&offline(&["fsck"]));
}

#[test]
fn concurrent_identical_uploads_are_stored_once_after_gc() {
    let g = Gateway::start().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = sdk_client(&g.s3_url);
    let body = random(9, 8 << 20);
    rt.block_on(async {
        c.create_bucket().bucket("same").send().await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..8 {
            let (c, body) = (c.clone(), body.clone());
            tasks.push(tokio::spawn(async move {
                c.put_object()
                    .bucket("same")
                    .key(format!("copy-{i}"))
                    .body(ByteStream::from(body))
                    .send()
                    .await
                    .unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let raced = g.store_bytes().unwrap();
    ok(&g.admin_cli(&["gc", "--grace", "0s", "--wait"]).unwrap());
    let after = g.store_bytes().unwrap();
    let limit = (8u64 << 20) * 11 / 10;
    assert!(
        after <= limit,
        "{after} bytes stored after gc (raced: {raced}), limit {limit}"
    );
    rt.block_on(async {
        for i in 0..8 {
            let got = get_bytes(&c, "same", format!("copy-{i}")).await;
            assert!(got == body, "copy-{i} differs");
        }
    });
    println!("8 identical 8 MiB PUTs: {raced} bytes stored when they raced, {after} after gc");
}

/// The P5 promise over HTTP, on whichever store the harness runs: writers re-upload
/// content whose last reference other writers delete, while GC with no grace runs
/// back to back through the admin API.
#[test]
fn writers_racing_continuous_gc_never_lose_acknowledged_bytes() {
    const MIN_RUNS: u32 = 12;
    let tmp = tempfile::tempdir().unwrap();
    let g = Gateway::start_with(tmp.path(), &[("S3DEDUP_PACK_TARGET", "256KiB")]).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = sdk_client(&g.s3_url);
    let shared = random(20, 100_000);
    let contents: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..4)
            .map(|i| [shared.clone(), random(30 + i, 30_000 + 20_000 * i as usize)].concat())
            .collect(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    // GC runs started so far: the writers go on until enough of them raced (how many
    // fit in a fixed number of cycles depends on the machine's load).
    let runs = Arc::new(AtomicU32::new(0));
    let gc_loop = {
        let (stop, runs) = (Arc::clone(&stop), Arc::clone(&runs));
        let admin = (g.admin_addr.clone(), g.data_dir.clone());
        std::thread::spawn(move || {
            let token = std::fs::read_to_string(admin.1.join("admin-token")).unwrap();
            let auth = format!("Bearer {}", token.trim());
            while !stop.load(Ordering::Relaxed) {
                let (status, _) = http_request(
                    &admin.0,
                    "POST",
                    "/admin/v1/gc?grace=0s",
                    &[("Authorization", auth.clone())],
                    &[],
                )
                .unwrap();
                assert!(status == 202 || status == 409, "{status}");
                runs.fetch_add(u32::from(status == 202), Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        })
    };
    let cycles = rt.block_on(async {
        c.create_bucket().bucket("race").send().await.unwrap();
        let mut tasks = Vec::new();
        for w in 0..4usize {
            let (c, contents, runs) = (c.clone(), Arc::clone(&contents), Arc::clone(&runs));
            tasks.push(tokio::spawn(async move {
                let mut n = 0usize;
                while n < 260 || runs.load(Ordering::Relaxed) < MIN_RUNS {
                    assert!(
                        n < 20_000,
                        "only {} gc runs started during {n} cycles",
                        runs.load(Ordering::Relaxed)
                    );
                    let i = (n + w) % contents.len();
                    let key = format!("w{w}");
                    c.put_object()
                        .bucket("race")
                        .key(&key)
                        .body(ByteStream::from(contents[i].clone()))
                        .send()
                        .await
                        .expect("an upload racing GC is never refused");
                    let got = get_bytes(&c, "race", &key).await;
                    assert!(got == contents[i], "{key} cycle {n}: wrong bytes");
                    c.delete_object()
                        .bucket("race")
                        .key(&key)
                        .send()
                        .await
                        .unwrap();
                    n += 1;
                }
                n
            }));
        }
        let mut cycles = 0;
        for t in tasks {
            cycles += t.await.unwrap();
        }
        cycles
    });
    stop.store(true, Ordering::Relaxed);
    gc_loop.join().unwrap();
    let runs = runs.load(Ordering::Relaxed);
    assert!(runs >= MIN_RUNS, "only {runs} gc runs raced the writers");
    let removed = g.metric("s3dedup_gc_removed_chunks_total").unwrap();
    assert!(removed > 0.0);
    println!(
        "gc race over HTTP ({}): {cycles} put/get/delete cycles, {runs} gc runs, {removed} chunks removed; every read exact",
        if g.backend.is_some() {
            "S3 store"
        } else {
            "local store"
        }
    );
    let mut g = g;
    g.stop().unwrap();
    let mut cmd = Command::new(binary().unwrap());
    cmd.args(["fsck", "--data-dir"])
        .arg(&g.data_dir)
        .envs(g.store_env());
    ok(&cmd.output().unwrap());
}

#[test]
fn scrub_finds_a_flipped_byte_reads_fail_and_a_reupload_repairs() {
    let g = Gateway::start().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = sdk_client(&g.s3_url);
    let bodies: Vec<Vec<u8>> = (0..4).map(|i| random(50 + i, 3 << 20)).collect();
    let get = |key: String| {
        let c = c.clone();
        async move {
            match c.get_object().bucket("scrub").key(&key).send().await {
                Ok(o) => Ok(o.body.collect().await.unwrap().into_bytes().to_vec()),
                Err(e) => Err(s3dedup_conformance::error_status(&e)),
            }
        }
    };
    rt.block_on(async {
        c.create_bucket().bucket("scrub").send().await.unwrap();
        for (i, b) in bodies.iter().enumerate() {
            c.put_object()
                .bucket("scrub")
                .key(format!("o{i}"))
                .body(ByteStream::from(b.clone()))
                .send()
                .await
                .unwrap();
        }
    });
    let out = ok(&g.admin_cli(&["scrub", "--wait"]).unwrap());
    assert!(out.contains(" 0 damaged"), "{out}");

    let file = g.first_pack_file().unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[8 + 100] ^= 0x04;
    std::fs::write(&file, bytes).unwrap();
    let o = g.admin_cli(&["scrub", "--wait"]).unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(3), "{out}");
    assert_eq!(
        out.matches("damaged chunk ").count(),
        1,
        "exactly one chunk: {out}"
    );
    assert_eq!(g.metric("s3dedup_scrub_damaged_chunks_total").unwrap(), 1.0);
    // The object using it fails (500, never wrong bytes); the others read.
    let results: Vec<_> = rt.block_on(async {
        let mut r = Vec::new();
        for i in 0..bodies.len() {
            r.push(get(format!("o{i}")).await);
        }
        r
    });
    let broken: Vec<usize> = (0..bodies.len()).filter(|&i| results[i].is_err()).collect();
    assert_eq!(
        broken.len(),
        1,
        "{:?}",
        results.iter().map(Result::is_ok).collect::<Vec<_>>()
    );
    for (i, r) in results.iter().enumerate() {
        match r {
            Ok(b) => assert!(b == &bodies[i], "o{i}: wrong bytes"),
            Err(status) => assert_eq!(*status, 500, "o{i}"),
        }
    }
    // Uploading the same content again repairs the object that used the chunk.
    let b = broken[0];
    rt.block_on(async {
        c.put_object()
            .bucket("scrub")
            .key("repair")
            .body(ByteStream::from(bodies[b].clone()))
            .send()
            .await
            .unwrap();
        assert!(get(format!("o{b}")).await.unwrap() == bodies[b]);
    });
    let out = ok(&g.admin_cli(&["scrub", "--wait"]).unwrap());
    assert!(out.contains(" 0 damaged"), "the next scrub is clean: {out}");
    println!(
        "scrub: one flipped byte → one damaged chunk, o{b} failed with 500 until re-uploaded; next scrub clean"
    );
}
