//! rclone, restic and s3cmd (Debian packages, installed by `scripts/test.sh`) against the
//! real gateway. Each prints one line per client; any failure fails the test.

use std::path::Path;
use std::process::Command;

use rand::{RngCore, SeedableRng, rngs::SmallRng};
use s3dedup_conformance::{ACCESS_KEY, Gateway, SECRET_KEY};

/// Runs a client; returns stdout and stderr separately (clients log notices to stderr).
fn run_both(cmd: &mut Command) -> (String, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (scripts/test.sh installs it)"));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{stdout}\n{stderr}");
    (stdout, stderr)
}

fn run(cmd: &mut Command) -> String {
    run_both(cmd).0
}

fn random_file(path: &Path, seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    SmallRng::seed_from_u64(seed).fill_bytes(&mut v);
    std::fs::write(path, &v).unwrap();
    v
}

fn tree(dir: &Path, files: usize) {
    for i in 0..files {
        let sub = dir.join(format!("d{}", i % 4));
        std::fs::create_dir_all(&sub).unwrap();
        random_file(&sub.join(format!("f{i}.bin")), i as u64, 1000 + i * 3000);
    }
}

fn same_tree(a: &Path, b: &Path) {
    let mut n = 0;
    for e in walk(a) {
        let rel = e.strip_prefix(a).unwrap();
        assert_eq!(
            std::fs::read(&e).unwrap(),
            std::fs::read(b.join(rel)).unwrap(),
            "{}",
            rel.display()
        );
        n += 1;
    }
    assert_eq!(n, walk(b).len(), "file counts differ");
}

fn walk(p: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap().path();
        if e.is_dir() {
            out.extend(walk(&e))
        } else {
            out.push(e)
        }
    }
    out
}

#[test]
fn rclone() {
    let g = Gateway::start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let rc = |args: &[&str]| {
        let mut c = s3dedup_conformance::rclone(&g, t);
        c.args(args)
            .args(["--s3-upload-cutoff", "10M", "--s3-chunk-size", "8M"]);
        run(&mut c)
    };
    let src = t.join("src");
    tree(&src, 40);
    rc(&["mkdir", "s3d:rclone"]);
    rc(&["copy", src.to_str().unwrap(), "s3d:rclone/tree"]);
    rc(&["check", src.to_str().unwrap(), "s3d:rclone/tree"]); // compares sizes and MD5s
    std::fs::remove_file(src.join("d0/f0.bin")).unwrap();
    random_file(&src.join("d1/new.bin"), 99, 5000);
    rc(&["sync", src.to_str().unwrap(), "s3d:rclone/tree"]);
    rc(&["check", src.to_str().unwrap(), "s3d:rclone/tree"]);
    let listing = rc(&["lsf", "-R", "--files-only", "s3d:rclone/tree"]);
    assert_eq!(listing.lines().count(), 40, "{listing}");
    // 100 MiB: multipart with 8 MiB chunks.
    let big = t.join("big.bin");
    let data = random_file(&big, 7, 100 << 20);
    rc(&["copyto", big.to_str().unwrap(), "s3d:rclone/big.bin"]);
    let back = t.join("back.bin");
    rc(&["copyto", "s3d:rclone/big.bin", back.to_str().unwrap()]);
    assert_eq!(std::fs::read(&back).unwrap(), data);
    rc(&["delete", "s3d:rclone/tree"]);
    let left = rc(&["lsf", "-R", "s3d:rclone"]);
    assert_eq!(left.trim(), "big.bin", "{left}");
    println!("rclone: ok");
}

/// rclone's `--s3-versions` on a versioned bucket: old versions are listed (as
/// `name-v<time>.ext`) and read back byte-exact.
#[test]
fn rclone_lists_and_reads_old_versions() {
    let g = Gateway::start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let rc = |args: &[&str]| {
        let mut c = s3dedup_conformance::rclone(&g, t);
        c.args(args);
        run(&mut c)
    };
    rc(&["mkdir", "s3d:rver"]);
    enable_versioning(&g, t, "rver").unwrap();
    let f = t.join("f.bin");
    let mut bodies = Vec::new();
    for seed in 0..3u64 {
        bodies.push(random_file(&f, 500 + seed, 200_000));
        rc(&["copyto", f.to_str().unwrap(), "s3d:rver/f.bin"]);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let current = rc(&["lsf", "s3d:rver"]);
    assert_eq!(current.trim(), "f.bin", "{current}");
    let all = rc(&["lsf", "--s3-versions", "s3d:rver"]);
    let old: Vec<&str> = all.lines().filter(|l| l.starts_with("f-v")).collect();
    assert_eq!(old.len(), 2, "two old versions listed: {all}");
    let mut seen = Vec::new();
    for name in old {
        let back = t.join(format!("back-{name}"));
        rc(&[
            "copyto",
            "--s3-versions",
            &format!("s3d:rver/{name}"),
            back.to_str().unwrap(),
        ]);
        seen.push(std::fs::read(&back).unwrap());
    }
    seen.sort();
    let mut want = bodies[..2].to_vec();
    want.sort();
    assert!(
        seen == want,
        "the old versions read back are the first two uploads"
    );
    println!("rclone --s3-versions: ok ({all:?})");
}

/// `PutBucketVersioning Enabled` through the aws CLI.
fn enable_versioning(g: &Gateway, home: &Path, bucket: &str) -> anyhow::Result<()> {
    let o = s3dedup_conformance::aws_command("aws", g, home)
        .args([
            "s3api",
            "put-bucket-versioning",
            "--bucket",
            bucket,
            "--versioning-configuration",
            "Status=Enabled",
        ])
        .output()?;
    anyhow::ensure!(
        o.status.success(),
        "put-bucket-versioning: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Ok(())
}

#[test]
fn restic() {
    restic_suite(false);
}

/// The same restic run on a bucket with versioning enabled (created before `restic
/// init`): restic works unchanged, and what its prune deleted stays as noncurrent
/// versions (what protects a backup from a compromised client).
#[test]
fn restic_on_a_versioned_bucket() {
    restic_suite(true);
}

fn restic_suite(versioned: bool) {
    let g = Gateway::start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let rs = |args: &[&str]| {
        let mut c = Command::new("restic");
        c.args(args)
            .env("RESTIC_REPOSITORY", format!("s3:{}/restic", g.s3_url))
            .env("RESTIC_PASSWORD", "s3dedup-test")
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("RESTIC_CACHE_DIR", t.join("cache"));
        run(&mut c)
    };
    let src = t.join("data");
    tree(&src, 30);
    random_file(&src.join("large.bin"), 5, 20 << 20);
    if versioned {
        let mut mb = s3dedup_conformance::aws_command("aws", &g, t);
        run(mb.args(["s3", "mb", "s3://restic"]));
        enable_versioning(&g, t, "restic").unwrap();
    }
    // restic creates the bucket itself (or uses the versioned one made above).
    rs(&["init"]);
    rs(&["backup", src.to_str().unwrap()]);
    // Edit some files, add one, remove one; back up again.
    random_file(&src.join("d2/f2.bin"), 1234, 40_000);
    random_file(&src.join("d3/added.bin"), 4321, 10_000);
    std::fs::remove_file(src.join("d1/f1.bin")).unwrap();
    // New content for the large file: pruning the first snapshot frees its old data.
    random_file(&src.join("large.bin"), 6, 20 << 20);
    rs(&["backup", src.to_str().unwrap()]);
    let out = t.join("restore");
    rs(&["restore", "latest", "--target", out.to_str().unwrap()]);
    same_tree(&src, &out.join(src.strip_prefix("/").unwrap()));
    rs(&["check", "--read-data"]);
    rs(&["forget", "--keep-last", "1", "--prune"]);
    rs(&["check", "--read-data"]);
    let snaps = rs(&["snapshots", "--compact"]);
    assert!(snaps.contains("1 snapshots"), "{snaps}");
    // What restic pruned is freed by the gateway's GC: afterwards the gateway stores
    // little more than the objects restic keeps.
    let usage = |g: &Gateway| -> serde_json::Value {
        let o = g.admin_cli(&["usage", "--json"]).unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let pruned = usage(&g);
    let o = g.admin_cli(&["gc", "--grace", "0s", "--wait"]).unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let after = usage(&g);
    let (kept, stored) = (
        after["logical_bytes"].as_u64().unwrap(),
        after["stored_bytes"].as_u64().unwrap(),
    );
    if versioned {
        // Pruned packs and snapshots became noncurrent versions, not freed bytes.
        let noncurrent = g.metric("s3dedup_noncurrent_versions ").unwrap();
        let markers = g.metric("s3dedup_delete_markers ").unwrap();
        assert!(noncurrent > 0.0 && markers > 0.0, "{noncurrent} {markers}");
    }
    assert!(
        stored * 10 <= kept * 11,
        "gateway stores {stored} bytes for {kept} bytes of restic objects (before gc: {})",
        pruned["stored_bytes"]
    );
    rs(&["check", "--read-data"]);
    let again = t.join("restore-after-gc");
    rs(&["restore", "latest", "--target", again.to_str().unwrap()]);
    same_tree(&src, &again.join(src.strip_prefix("/").unwrap()));
    println!(
        "restic: ok; after forget --prune the gateway stored {} bytes, after gc {stored} for {kept} bytes of objects",
        pruned["stored_bytes"]
    );
}

#[test]
fn s3cmd() {
    let g = Gateway::start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let cfg = t.join("s3cfg");
    std::fs::write(
        &cfg,
        format!(
            "[default]\naccess_key = {ACCESS_KEY}\nsecret_key = {SECRET_KEY}\nhost_base = {h}\nhost_bucket = {h}\nuse_https = False\nsignature_v2 = False\nmultipart_chunk_size_mb = 15\n",
            h = g.s3_addr()
        ),
    )
    .unwrap();
    let sc = |args: &[&str]| run(Command::new("s3cmd").arg("-c").arg(&cfg).args(args));
    sc(&["mb", "s3://s3cmd"]);
    let big = t.join("big.bin");
    let data = random_file(&big, 11, 40 << 20);
    let (_, debug) = run_both(Command::new("s3cmd").arg("-c").arg(&cfg).args([
        "put",
        "--debug",
        big.to_str().unwrap(),
        "s3://s3cmd/big.bin",
    ]));
    assert!(debug.contains("in 3 parts"), "expected a 3-part upload");
    let back = t.join("back.bin");
    sc(&["get", "s3://s3cmd/big.bin", back.to_str().unwrap()]);
    assert_eq!(std::fs::read(&back).unwrap(), data);
    let src = t.join("tree");
    tree(&src, 20);
    sc(&["sync", &format!("{}/", src.display()), "s3://s3cmd/tree/"]);
    let again = sc(&["sync", &format!("{}/", src.display()), "s3://s3cmd/tree/"]);
    assert!(!again.contains("upload:"), "second sync uploaded: {again}");
    let ls = sc(&["ls", "-r", "s3://s3cmd/"]);
    assert_eq!(ls.lines().count(), 21, "{ls}");
    sc(&["del", "--recursive", "--force", "s3://s3cmd/"]);
    sc(&["rb", "s3://s3cmd"]);
    let buckets = sc(&["ls"]);
    assert!(!buckets.contains("s3cmd"), "{buckets}");
    println!("s3cmd: ok");
}
