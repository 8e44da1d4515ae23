//! `dedup_scope = tenant` on the real binary (issue 16): tenants the CLI creates under
//! that setting name their chunks in a dedup domain of their own, so content another
//! tenant stored is stored again for them (and uploads of it are no faster: the timing
//! figures are `conformance/bench/side-channel.sh`'s), while their own repeats still
//! dedup; a writer into another tenant's bucket (a bucket policy allows it), by the SDK's
//! multipart upload or unsigned, names its chunks in its own domain, not the owner's;
//! domains survive a restart and `fsck --read-data` stays clean.

use aws_sdk_s3::primitives::ByteStream;
use s3dedup_conformance::{Gateway, get_bytes, sdk_client};
use serde_json::Value;

/// `s3dedup admin ARGS` that must fail: its stderr.
fn admin_fails(g: &Gateway, args: &[&str]) -> String {
    let o = g.admin_cli(args).unwrap();
    assert!(!o.status.success(), "s3dedup admin {args:?} succeeded");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Chunks the gateway stored anew so far (`s3dedup_ingested_chunks_total{result="new"}`).
fn new_chunks(g: &Gateway) -> f64 {
    g.metric_sum("s3dedup_ingested_chunks_total", &["result=\"new\""])
        .unwrap()
}

/// Chunks the gateway found already stored so far.
fn deduped_chunks(g: &Gateway) -> f64 {
    g.metric_sum("s3dedup_ingested_chunks_total", &["result=\"deduped\""])
        .unwrap()
}

/// `dedup_scope = tenant` on the real binary: tenants the CLI creates under that setting
/// name their chunks in a dedup domain of their own, so content another tenant (or the
/// root tenant) stored is stored again for them, while their own repeats still dedup; a
/// tenant created with `--dedup-scope global` shares the root tenant's ids. Domains
/// survive a restart, and fsck stays clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_dedup_scope_keeps_each_tenants_chunks_apart() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("S3DEDUP_DEDUP_SCOPE", "tenant"),
        ("S3DEDUP_MIN_PART_SIZE", "1MiB"),
    ];
    let mut g = Gateway::start_with(dir.path(), &env).unwrap();
    for t in ["alpha", "beta"] {
        let out = g.admin_cli_ok(&["tenant", "create", t]);
        assert!(out.contains("dedup scope tenant"), "{out}");
    }
    g.admin_cli_ok(&["tenant", "create", "gamma", "--dedup-scope", "global"]);
    let err = admin_fails(&g, &["tenant", "create", "delta", "--dedup-scope", "both"]);
    assert!(err.contains("global") && err.contains("tenant"), "{err}");
    let (status, body) = g
        .admin_api("PUT", "/admin/v1/tenants/delta?dedup_scope=both")
        .unwrap();
    assert_eq!(status, 400, "{body}");
    let list: Value = serde_json::from_str(&g.admin_cli_ok(&["tenant", "list", "--json"])).unwrap();
    let scope_of = |name: &str| {
        list["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .map(|t| t["dedup_scope"].as_str().unwrap().to_owned())
    };
    assert_eq!(scope_of("alpha").as_deref(), Some("tenant"), "{list}");
    assert_eq!(scope_of("beta").as_deref(), Some("tenant"), "{list}");
    assert_eq!(scope_of("gamma").as_deref(), Some("global"), "{list}");
    assert_eq!(
        scope_of("delta"),
        None,
        "a bad scope created the tenant: {list}"
    );

    let clients: Vec<(&str, aws_sdk_s3::Client)> = vec![
        ("alpha", g.client_for(&g.create_key(&["--tenant", "alpha"]))),
        ("beta", g.client_for(&g.create_key(&["--tenant", "beta"]))),
        ("gamma", g.client_for(&g.create_key(&["--tenant", "gamma"]))),
        ("root", sdk_client(&g.s3_url)),
    ];
    for (t, c) in &clients {
        c.create_bucket()
            .bucket(format!("{t}-b"))
            .send()
            .await
            .unwrap();
    }
    let data: Vec<u8> = {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(16);
        (0..(3 << 20)).map(|_| rng.random()).collect()
    };
    // What each upload of the same 3 MiB stored anew, in this order.
    let mut stored_new = Vec::new();
    for (t, c) in clients.iter().chain(&clients[..1]) {
        let before = new_chunks(&g);
        let key = format!("copy-{}", stored_new.len());
        c.put_object()
            .bucket(format!("{t}-b"))
            .key(&key)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        assert!(
            get_bytes(c, &format!("{t}-b"), &key).await == data,
            "{t}/{key}"
        );
        stored_new.push((*t, new_chunks(&g) - before));
    }
    let first = stored_new[0].1;
    assert!(
        first >= 20.0,
        "3 MiB of fresh data is ≥ 20 chunks: {stored_new:?}"
    );
    assert_eq!(
        stored_new,
        vec![
            ("alpha", first), // fresh
            ("beta", first),  // alpha's chunks are not beta's
            ("gamma", first), // global, and the first there
            ("root", 0.0),    // the root tenant shares gamma's ids
            ("alpha", 0.0),   // alpha's own repeat dedups
        ],
        "new chunks per upload"
    );

    // Writers into another tenant's bucket name chunks in their own domain, not the
    // owner's: beta lets anyone write `drop/*` of its bucket and stores `mine` first.
    let (alpha, beta) = (&clients[0].1, &clients[1].1);
    let mine: Vec<u8> = data.iter().rev().copied().collect();
    let policy = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": "*", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::beta-b/drop/*"}]});
    beta.put_bucket_policy()
        .bucket("beta-b")
        .policy(policy.to_string())
        .send()
        .await
        .unwrap();
    // (new, deduped) chunks since `before`.
    let counts = |g: &Gateway| (new_chunks(g), deduped_chunks(g));
    let since = |g: &Gateway, before: (f64, f64)| {
        let now = counts(g);
        (now.0 - before.0, now.1 - before.1)
    };
    let before = counts(&g);
    beta.put_object()
        .bucket("beta-b")
        .key("mine")
        .body(ByteStream::from(mine.clone()))
        .send()
        .await
        .unwrap();
    let (fresh, reused) = since(&g, before);
    assert!(
        fresh >= 20.0 && reused == 0.0,
        "fresh for beta: {fresh} new, {reused} reused"
    );
    // alpha's multipart upload of it into beta's bucket reuses nothing of beta's …
    let before = counts(&g);
    let up = alpha
        .create_multipart_upload()
        .bucket("beta-b")
        .key("drop/from-alpha")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let half = mine.len() / 2;
    let mut parts = Vec::new();
    for (n, piece) in [(1, &mine[..half]), (2, &mine[half..])] {
        let p = alpha
            .upload_part()
            .bucket("beta-b")
            .key("drop/from-alpha")
            .upload_id(id)
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
    alpha
        .complete_multipart_upload()
        .bucket("beta-b")
        .key("drop/from-alpha")
        .upload_id(id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let (new, reused) = since(&g, before);
    assert!(
        new >= fresh && reused == 0.0,
        "alpha's parts: {new} new, {reused} reused"
    );
    assert!(get_bytes(beta, "beta-b", "drop/from-alpha").await == mine);
    // … and was named in alpha's domain: alpha's own copy now stores nothing.
    let before = counts(&g);
    alpha
        .put_object()
        .bucket("alpha-b")
        .key("mine-too")
        .body(ByteStream::from(mine.clone()))
        .send()
        .await
        .unwrap();
    // (The chunks around the part boundary differ from the single PUT's.)
    let (new, reused) = since(&g, before);
    assert!(
        new <= 2.0 && reused + 2.0 >= fresh,
        "alpha's parts were not named in its domain: {new} new, {reused} reused"
    );
    // Unsigned writers get a domain of their own for beta's buckets: nothing of beta's
    // or alpha's is reused, and a repeat dedups.
    for n in [1, 2] {
        let before = counts(&g);
        let (status, body) = s3dedup_conformance::http_request(
            g.s3_addr(),
            "PUT",
            &format!("/beta-b/drop/anonymous-{n}"),
            &[],
            &mine,
        )
        .unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let (new, reused) = since(&g, before);
        if n == 1 {
            assert!(
                new >= fresh && reused == 0.0,
                "anonymous: {new} new, {reused} reused"
            );
        } else {
            assert_eq!(new, 0.0, "the anonymous repeat stored chunks again");
        }
    }
    assert!(get_bytes(beta, "beta-b", "drop/anonymous-2").await == mine);

    // Restarted: the domains are the same (alpha's repeat still dedups, beta's too).
    drop(clients);
    g.stop().unwrap();
    let mut g = Gateway::start_with(dir.path(), &env).unwrap();
    let beta = g.client_for(&g.create_key(&["--tenant", "beta"]));
    let before = new_chunks(&g);
    beta.put_object()
        .bucket("beta-b")
        .key("again")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        new_chunks(&g) - before,
        0.0,
        "beta's domain changed across a restart"
    );
    assert!(get_bytes(&beta, "beta-b", "copy-1").await == data);
    g.stop().unwrap();
    // Every chunk verifies (its bytes hash to its id in one of the domains).
    let o = std::process::Command::new(s3dedup_conformance::binary().unwrap())
        .args(["fsck", "--read-data", "--data-dir"])
        .arg(&g.data_dir)
        .envs(g.store_env())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "fsck --read-data:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}
