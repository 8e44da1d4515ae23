//! `dedup_scope = tenant` on the real binary (issue 16): tenants the CLI creates under
//! that setting name their chunks in a dedup domain of their own, so content another
//! tenant stored is stored again for them (and uploads of it are no faster: the timing
//! figures are `conformance/bench/side-channel.sh`'s), while their own repeats still
//! dedup; domains survive a restart and fsck stays clean.

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

/// `dedup_scope = tenant` on the real binary: tenants the CLI creates under that setting
/// name their chunks in a dedup domain of their own, so content another tenant (or the
/// root tenant) stored is stored again for them, while their own repeats still dedup; a
/// tenant created with `--dedup-scope global` shares the root tenant's ids. Domains
/// survive a restart, and fsck stays clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_dedup_scope_keeps_each_tenants_chunks_apart() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("S3DEDUP_DEDUP_SCOPE", "tenant")];
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

    // Restarted: the domains are the same (alpha's repeat still dedups, beta's too).
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
    g.assert_fsck("after the dedup-scope uploads");
}
