//! Encryption at rest through the real gateway (`encryption = "aead"`, a key file):
//!
//! - after uploading known plaintext (single PUTs and a multipart upload, under long
//!   object keys), no blob in the backing store contains any 32-byte window of the
//!   plaintext or of the object keys, nor the plain SHA-256 of any chunk;
//! - `s3dedup_build_info` says `encryption="aead"`; admin status names the key;
//! - a wrong key at start is refused with a clear error and nothing is written;
//! - rotation: key 2 added, `s3dedup admin rekey --wait`, key 1 removed, every object
//!   reads back byte-exact, `s3dedup fsck --read-data` is clean.
//!
//! Runs on the local store, and on the S3 store with `S3DEDUP_TEST_STORE=s3`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use rand::{Rng, SeedableRng};
use s3dedup_conformance::{Gateway, binary, sdk_client};
use s3dedup_storage::ChunkerParams;
use s3dedup_storage::chunker::Chunker;

const K1: &str = "1:5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";
const K2: &str = "2:c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3";
const WRONG: &str = "1:0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f";

fn random(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill(&mut v[..]);
    v
}

/// Compressible text that is still unique everywhere.
fn text(seed: u64, len: usize) -> Vec<u8> {
    let noise = random(seed, len);
    let mut out = Vec::with_capacity(len + 64);
    let mut i = 0;
    while out.len() < len {
        out.extend_from_slice(
            format!("line {i}: account {} balance {}\n", noise[i], noise[i + 1]).as_bytes(),
        );
        i += 2;
    }
    out.truncate(len);
    out
}

fn env(key_file: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("S3DEDUP_ENCRYPTION", "aead".into()),
        (
            "S3DEDUP_ENCRYPTION_KEY_FILE",
            key_file.display().to_string(),
        ),
        ("S3DEDUP_PACK_TARGET", "1MiB".into()),
        ("S3DEDUP_GC_INTERVAL", "0s".into()),
    ]
}

fn start(dir: &Path, key_file: &Path) -> anyhow::Result<Gateway> {
    let e = env(key_file);
    let refs: Vec<(&str, &str)> = e.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Gateway::start_with(dir, &refs)
}

/// Where the backing store keeps its bytes: the local store's directory, or the S3
/// server's.
fn store_root(dir: &Path) -> PathBuf {
    if s3dedup_conformance::testing_s3_store() {
        dir.join("backend-s3")
    } else {
        dir.join("store")
    }
}

fn files(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn chunk_hashes(data: &[u8]) -> Vec<[u8; 32]> {
    Chunker::cut_all(ChunkerParams::default(), data)
        .unwrap()
        .iter()
        .map(|b| s3dedup_storage::ChunkId::of(b).0)
        .collect()
}

async fn put(c: &aws_sdk_s3::Client, key: &str, body: &[u8]) {
    c.put_object()
        .bucket("vault")
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap();
}

async fn get(c: &aws_sdk_s3::Client, key: &str) -> Vec<u8> {
    s3dedup_conformance::get_bytes(c, "vault", key).await
}

async fn multipart(c: &aws_sdk_s3::Client, key: &str, parts: &[&[u8]]) {
    let up = c
        .create_multipart_upload()
        .bucket("vault")
        .key(key)
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let mut done = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let n = i32::try_from(i + 1).unwrap();
        let r = c
            .upload_part()
            .bucket("vault")
            .key(key)
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from(p.to_vec()))
            .send()
            .await
            .unwrap();
        done.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(r.e_tag().unwrap())
                .build(),
        );
    }
    c.complete_multipart_upload()
        .bucket("vault")
        .key(key)
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .unwrap();
}

fn run_offline(dir: &Path, key_file: &Path, args: &[&str], g_env: &[(String, String)]) -> String {
    let mut cmd = Command::new(binary().unwrap());
    cmd.args(args).arg("--data-dir").arg(dir);
    for (k, v) in env(key_file) {
        cmd.env(k, v);
    }
    cmd.envs(g_env.iter().cloned());
    let o = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{args:?}: {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_store_reveals_nothing_refuses_wrong_keys_and_rotates() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("keys");
    std::fs::write(&key_file, format!("{K1}\n")).unwrap();

    let names = [
        "confidential/board-minutes-2026-quarter-four-final.txt",
        "confidential/customer-ledger-export-with-balances.csv",
        "confidential/multipart-archive-of-the-engineering-wiki.tar",
    ];
    let secret_text = text(1, 3 << 20);
    let secret_random = random(2, 3 << 20);
    let (p1, p2) = (random(3, 5 << 20), text(4, 2 << 20));
    let mut objects = vec![
        (names[0].to_owned(), secret_text.clone()),
        (names[1].to_owned(), secret_random.clone()),
        (names[2].to_owned(), [&p1[..], &p2[..]].concat()),
    ];

    let mut g = start(&dir, &key_file).unwrap();
    let c = sdk_client(&g.s3_url);
    c.create_bucket().bucket("vault").send().await.unwrap();
    put(&c, names[0], &secret_text).await;
    put(&c, names[1], &secret_random).await;
    multipart(&c, names[2], &[&p1, &p2]).await;
    for (k, v) in &objects {
        assert!(get(&c, k).await == *v, "{k} reads back");
    }
    let metrics = s3dedup_conformance::http_request(&g.admin_addr, "GET", "/metrics", &[], &[])
        .unwrap()
        .1;
    assert!(
        String::from_utf8_lossy(&metrics)
            .lines()
            .any(|l| l.starts_with("s3dedup_build_info{") && l.contains("encryption=\"aead\"")),
        "build_info says encryption is on"
    );
    let (status, s) = g.admin_api("GET", "/admin/v1/status").unwrap();
    assert_eq!(status, 200);
    assert_eq!(s["encryption"]["active_key"], 1, "{s}");
    assert_eq!(s["encryption"]["id_scheme"], "hmac-sha256", "{s}");
    g.stop().unwrap();

    // Nothing in the backing store reveals the plaintext, the names or chunk hashes.
    let stored = files(&store_root(&dir));
    assert!(stored.len() >= 5, "{} files", stored.len());
    // The metadata journal and snapshot (shipped at the stop) are scanned too.
    for part in ["journal/seg/", "journal/snap/"] {
        assert!(
            stored
                .iter()
                .any(|(p, _)| p.to_string_lossy().contains(part)),
            "the store holds {part} blobs"
        );
    }
    let mut windows: HashSet<&[u8]> = HashSet::new();
    for (name, data) in &objects {
        windows.extend(data.windows(32));
        windows.extend(name.as_bytes().windows(32));
    }
    let mut hashes: Vec<[u8; 32]> = Vec::new();
    for (_, data) in &objects {
        hashes.extend(chunk_hashes(data));
    }
    hashes.extend(chunk_hashes(&p1));
    hashes.extend(chunk_hashes(&p2));
    let hashes: HashSet<&[u8]> = hashes.iter().map(|h| &h[..]).collect();
    for (path, bytes) in &stored {
        for w in bytes.windows(32) {
            assert!(!windows.contains(w), "{} holds plaintext", path.display());
            assert!(!hashes.contains(w), "{} holds a chunk hash", path.display());
        }
    }

    // A wrong key: refused at start with a clear error, and nothing written.
    let wrong_file = keys.path().join("wrong");
    std::fs::write(&wrong_file, format!("{WRONG}\n")).unwrap();
    let err = start(&dir, &wrong_file).unwrap_err().to_string();
    assert!(err.contains("wrong encryption key"), "{err}");
    assert!(
        !err.contains("0f0f0f"),
        "the error never shows a key: {err}"
    );
    assert!(files(&store_root(&dir)) == stored, "the store is untouched");

    // Rotation: add key 2, rekey, remove key 1.
    std::fs::write(&key_file, format!("{K1}\n{K2}\n")).unwrap();
    let mut g = start(&dir, &key_file).unwrap();
    let c = sdk_client(&g.s3_url);
    let late = text(5, 1 << 20);
    put(&c, "after-rotation", &late).await;
    objects.push(("after-rotation".into(), late));
    let out = g.admin_cli_ok(&["rekey", "--wait", "--json"]);
    let run: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let r = &run["report"];
    assert_eq!(r["active_key"], 2, "{run}");
    assert!(r["packs_stale"].as_u64().unwrap() > 0, "{run}");
    assert_eq!(r["stale_packs_left"], 0, "{run}");
    assert_eq!(r["stale_inline_left"], 0, "{run}");
    // The old packs are deleted once no read holds them; a GC run finishes that.
    let o = g.admin_cli(&["gc", "--wait", "--grace", "0s"]).unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    g.stop().unwrap();

    std::fs::write(&key_file, format!("{K2}\n")).unwrap();
    let mut g = start(&dir, &key_file).unwrap();
    let c = sdk_client(&g.s3_url);
    for (k, v) in &objects {
        assert!(get(&c, k).await == *v, "{k} reads back under key 2 alone");
    }
    g.stop().unwrap();
    let report = run_offline(&dir, &key_file, &["fsck", "--read-data"], &g.store_env());
    assert!(report.contains("clean"), "{report}");

    // Rekey resealed the journal too: with key 2 alone the bucket rebuilds the index.
    std::fs::rename(dir.join("index.redb"), dir.join("index.before-rebuild")).unwrap();
    let _ = std::fs::remove_dir_all(dir.join("index-snapshots"));
    let out = run_offline(
        &dir,
        &key_file,
        &["rebuild-index", "--json"],
        &g.store_env(),
    );
    let rebuilt: serde_json::Value =
        serde_json::from_str(out.lines().find(|l| l.starts_with("{\"")).unwrap()).unwrap();
    assert_eq!(rebuilt["complete"], true, "{rebuilt:#}");
    assert_eq!(rebuilt["objects"], objects.len(), "{rebuilt:#}");
    let g = start(&dir, &key_file).unwrap();
    let c = sdk_client(&g.s3_url);
    for (k, v) in &objects {
        assert!(
            get(&c, k).await == *v,
            "{k} reads back from the rebuilt index"
        );
    }
}
