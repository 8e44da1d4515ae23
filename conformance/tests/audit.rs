//! The audit log against the real gateway: a scripted session produces exactly the
//! expected lines, `s3dedup audit verify` passes, and editing a byte, removing a line,
//! swapping two, or rewriting the chain without the key is caught and named; rotated
//! files verify as one chain.

use std::path::{Path, PathBuf};
use std::process::Command;

use aws_sdk_s3::primitives::ByteStream;
use s3dedup_conformance::{Gateway, binary, error_code, sdk_client_with};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn verify(data_dir: &Path, files: &[PathBuf]) -> (bool, String) {
    let o = Command::new(binary().unwrap())
        .args(["audit", "verify", "--data-dir"])
        .arg(data_dir)
        .args(files)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, ls: &[String]) {
    std::fs::write(path, ls.join("\n") + "\n").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_session_is_audited_line_by_line_and_tampering_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("gw");
    let log = tmp.path().join("audit.log");
    let mut g = Gateway::start_with(&dir, &[("S3DEDUP_AUDIT_LOG", log.to_str().unwrap())]).unwrap();
    g.admin_cli_ok(&["tenant", "create", "acme"]);
    let key = g.create_key(&["--tenant", "acme"]);
    let root = s3dedup_conformance::sdk_client(&g.s3_url);
    root.create_bucket().bucket("audited").send().await.unwrap();
    for k in ["a", "b"] {
        root.put_object()
            .bucket("audited")
            .key(k)
            .body(ByteStream::from(vec![1u8; 1000]))
            .send()
            .await
            .unwrap();
    }
    root.delete_object()
        .bucket("audited")
        .key("a")
        .send()
        .await
        .unwrap();
    // Reads are not audited.
    root.get_object()
        .bucket("audited")
        .key("b")
        .send()
        .await
        .unwrap();
    root.list_objects_v2()
        .bucket("audited")
        .send()
        .await
        .unwrap();
    // A denied read and a bad signature are.
    let tenant = g.client_for(&key);
    let denied = tenant
        .get_object()
        .bucket("audited")
        .key("b")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&denied), "AccessDenied");
    let forged = sdk_client_with(&g.s3_url, |b| {
        b.retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                s3dedup_conformance::ACCESS_KEY,
                "a-wrong-secret-key",
                None,
                None,
                "t",
            ))
    });
    forged.list_buckets().send().await.unwrap_err();
    g.stop().unwrap();

    let all = lines(&log);
    let events: Vec<Value> = all
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["kind"] != "checkpoint")
        .collect();
    let summary: Vec<String> = events
        .iter()
        .map(|v| {
            format!(
                "{} {} {} {} {} {} {}",
                v["kind"].as_str().unwrap(),
                v["tenant"].as_str().unwrap(),
                v["operation"].as_str().unwrap().split('?').next().unwrap(),
                v["bucket"].as_str().unwrap(),
                v["key"].as_str().unwrap(),
                v["status"],
                v["detail"].as_str().unwrap().split('&').next().unwrap()
            )
        })
        .collect();
    println!("{}", all.join("\n"));
    assert_eq!(
        summary,
        [
            "admin admin PUT /admin/v1/tenants/acme   201 ",
            "admin admin POST /admin/v1/keys   201 tenant=acme",
            "s3 root CreateBucket audited  200 ",
            "s3 root PutObject audited a 200 ",
            "s3 root PutObject audited b 200 ",
            "s3 root DeleteObject audited a 204 ",
            "s3 acme GetObject audited b 403 AccessDenied",
            "s3 anonymous Unresolved   403 SignatureDoesNotMatch",
        ],
        "{all:#?}"
    );
    // Every line names its request: id, address, key id, bytes.
    assert!(events[3]["request_id"].as_str().unwrap().len() == 16);
    assert_eq!(events[3]["ip"], "127.0.0.1");
    assert_eq!(events[3]["key_id"], s3dedup_conformance::ACCESS_KEY);
    assert_eq!(events[3]["bytes"], 1000);
    assert_eq!(events[6]["key_id"], key["access_key"]);
    // The tail is anchored by the checkpoint written at shutdown.
    let last: Value = serde_json::from_str(all.last().unwrap()).unwrap();
    assert_eq!(last["kind"], "checkpoint");

    let (ok, out) = verify(&dir, std::slice::from_ref(&log));
    assert!(ok, "{out}");
    assert!(out.contains(&format!("{} lines", all.len())), "{out}");

    // One byte edited in line 4.
    let mut edited = all.clone();
    edited[3] = edited[3].replacen("\"a\"", "\"z\"", 1);
    assert_ne!(edited[3], all[3]);
    write_lines(&log, &edited);
    let (ok, out) = verify(&dir, std::slice::from_ref(&log));
    assert!(!ok && out.contains("line 4: edited"), "{out}");
    // Line 4 removed.
    let mut removed = all.clone();
    removed.remove(3);
    write_lines(&log, &removed);
    let (ok, out) = verify(&dir, std::slice::from_ref(&log));
    assert!(
        !ok && out.contains("line 4: seq 4 where 3 was due"),
        "{out}"
    );
    // Lines 4 and 5 swapped.
    let mut swapped = all.clone();
    swapped.swap(3, 4);
    write_lines(&log, &swapped);
    let (ok, out) = verify(&dir, std::slice::from_ref(&log));
    assert!(
        !ok && out.contains("line 4: seq 4 where 3 was due"),
        "{out}"
    );
    // Line 4 edited and every later prev recomputed: each line's MAC needs the key.
    let mut rewritten = all.clone();
    rewritten[3] = rewritten[3].replacen("\"a\"", "\"z\"", 1);
    for i in 4..rewritten.len() {
        let prev = hex::encode(Sha256::digest(rewritten[i - 1].as_bytes()));
        let mut v: Value = serde_json::from_str(&rewritten[i]).unwrap();
        v["prev"] = prev.into();
        rewritten[i] = serde_json::to_string(&v).unwrap();
    }
    write_lines(&log, &rewritten);
    let (ok, out) = verify(&dir, std::slice::from_ref(&log));
    assert!(!ok && out.contains("line 4: edited"), "{out}");
    write_lines(&log, &all);
    assert!(verify(&dir, std::slice::from_ref(&log)).0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_files_verify_as_one_chain_and_a_missing_one_is_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("gw");
    let log = tmp.path().join("audit.log");
    let mut g = Gateway::start_with(
        &dir,
        &[
            ("S3DEDUP_AUDIT_LOG", log.to_str().unwrap()),
            ("S3DEDUP_AUDIT_LOG_MAX_SIZE", "8KiB"),
        ],
    )
    .unwrap();
    let c = s3dedup_conformance::sdk_client(&g.s3_url);
    c.create_bucket().bucket("rotated").send().await.unwrap();
    for i in 0..150 {
        c.put_object()
            .bucket("rotated")
            .key(format!("k{i}"))
            .body(ByteStream::from(b"x".to_vec()))
            .send()
            .await
            .unwrap();
    }
    g.stop().unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("audit.log.")
        })
        .collect();
    files.sort();
    assert!(files.len() >= 3, "only {} rotations", files.len());
    files.push(log.clone());
    let (ok, out) = verify(&dir, &files);
    assert!(ok, "{out}");
    let total: usize = files.iter().map(|f| lines(f).len()).sum();
    assert!(out.contains(&format!("{total} lines")), "{out}");
    // A middle file missing breaks the chain where the next one starts.
    let mut gap = files.clone();
    let missing = gap.remove(1);
    let (ok, out) = verify(&dir, &gap);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("{} line 1: seq", gap[1].display())),
        "{out}"
    );
    let _ = missing;
}
