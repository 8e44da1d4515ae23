//! Inline virus scanning with a real clamd (DESIGN.md invariant 2): nothing infected is
//! ever published, a scanner failure fails closed unless fail-open is set, clean
//! duplicates hit the verdict cache. Each test starts its own clamd (`Clamd`) with a
//! one-line EICAR signature and its own gateway pointed at it.

use std::path::Path;
use std::process::Command;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use rand::{RngCore, SeedableRng, rngs::SmallRng};
use s3dedup_conformance::clamd::{Clamd, EICAR, SIGNATURE};
use s3dedup_conformance::{
    ACCESS_KEY, Gateway, SECRET_KEY, error_code as code, error_message as message,
    error_status as status,
};

fn random(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    SmallRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

fn scanning_gateway(clamd: &Clamd, extra: &[(&str, &str)]) -> (tempfile::TempDir, Gateway) {
    let dir = tempfile::tempdir().unwrap();
    let addr = clamd.address();
    let mut env = vec![("S3DEDUP_CLAMD", addr.as_str())];
    env.extend_from_slice(extra);
    let g = Gateway::start_with(dir.path(), &env).unwrap();
    (dir, g)
}

/// An SDK client for `g`, with the bucket `scan` created.
async fn client_with_bucket(g: &Gateway) -> Client {
    let c = s3dedup_conformance::sdk_client(&g.s3_url);
    c.create_bucket().bucket("scan").send().await.unwrap();
    c
}

/// Sum of every series of metric `name` whose labels contain all of `labels`
/// (0 when none exists yet).
fn metric(g: &Gateway, name: &str, labels: &[&str]) -> f64 {
    let (_, text) = g.admin_get("/metrics").unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn put(c: &Client, b: &str, k: &str, body: &[u8]) -> Result<(), String> {
    c.put_object()
        .bucket(b)
        .key(k)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("{} {} {}", status(&e), code(&e), message(&e)))
}

/// Asserts that the object is not there in any way a client could see it.
async fn invisible(c: &Client, b: &str, k: &str) {
    assert!(
        c.head_object().bucket(b).key(k).send().await.is_err(),
        "{k} is visible (HEAD)"
    );
    assert!(
        c.get_object().bucket(b).key(k).send().await.is_err(),
        "{k} is readable (GET)"
    );
    let listed = c.list_objects_v2().bucket(b).send().await.unwrap();
    assert!(
        !listed.contents().iter().any(|o| o.key() == Some(k)),
        "{k} is listed"
    );
}

fn assert_rejected(r: Result<(), String>, what: &str) {
    let e = r.expect_err(&format!("{what} was accepted"));
    assert!(
        e.starts_with("403 VirusDetected") && e.contains(SIGNATURE),
        "{what}: expected 403 VirusDetected naming {SIGNATURE}, got {e}"
    );
}

/// Archives made by Python's standard library (zip, tar.gz) around `payload`.
fn archive(dir: &Path, kind: &str, payload: &[u8]) -> Vec<u8> {
    let src = dir.join("payload.bin");
    std::fs::write(&src, payload).unwrap();
    let out = dir.join(format!("a.{kind}"));
    let script = match kind {
        "zip" => {
            "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[2], 'w', zipfile.ZIP_DEFLATED) as z: z.write(sys.argv[1], 'docs/readme.txt')"
        }
        "tar.gz" => {
            "import sys, tarfile\nwith tarfile.open(sys.argv[2], 'w:gz') as t: t.add(sys.argv[1], 'docs/readme.txt')"
        }
        _ => unreachable!(),
    };
    let st = Command::new("python3")
        .args(["-c", script])
        .arg(&src)
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::read(out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infected_uploads_are_rejected_and_never_visible() {
    let clamd = Clamd::start().unwrap();
    let (_d, g) = scanning_gateway(&clamd, &[]);
    let c = client_with_bucket(&g).await;
    let tmp = tempfile::tempdir().unwrap();
    let chunks_before = metric(&g, "s3dedup_chunks", &[]);

    // The EICAR string as a whole object.
    assert_rejected(put(&c, "scan", "eicar.com", EICAR).await, "EICAR");
    // In the middle of 20 MiB of random data.
    let mut big = random(1, 10 << 20);
    big.extend_from_slice(EICAR);
    big.extend(random(2, 10 << 20));
    assert_rejected(put(&c, "scan", "big.bin", &big).await, "EICAR in 20 MiB");
    // Inside a .zip (deflated) and a .tar.gz.
    let mut text = b"hello\n".repeat(1000);
    text.extend_from_slice(EICAR);
    let zip = archive(tmp.path(), "zip", &text);
    assert!(
        !zip.windows(EICAR.len()).any(|w| w == EICAR),
        "zip not compressed"
    );
    assert_rejected(put(&c, "scan", "a.zip", &zip).await, "EICAR in zip");
    let tgz = archive(tmp.path(), "tar.gz", &text);
    assert_rejected(put(&c, "scan", "a.tar.gz", &tgz).await, "EICAR in tar.gz");
    for k in ["eicar.com", "big.bin", "a.zip", "a.tar.gz"] {
        invisible(&c, "scan", k).await;
    }

    // Split across the boundary of two multipart parts: each part alone is clean.
    let half = EICAR.len() / 2;
    let mut p1 = random(3, 5 << 20);
    p1.extend_from_slice(&EICAR[..half]);
    let mut p2 = EICAR[half..].to_vec();
    p2.extend(random(4, 1 << 20));
    let up = c
        .create_multipart_upload()
        .bucket("scan")
        .key("split.bin")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let mut parts = Vec::new();
    for (n, body) in [(1, &p1), (2, &p2)] {
        let r = c
            .upload_part()
            .bucket("scan")
            .key("split.bin")
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(r.e_tag().unwrap())
                .build(),
        );
    }
    let done = c
        .complete_multipart_upload()
        .bucket("scan")
        .key("split.bin")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("{} {} {}", status(&e), code(&e), message(&e)));
    assert_rejected(done, "EICAR split across parts");
    invisible(&c, "scan", "split.bin").await;
    // As in S3, a failed completion leaves the upload for the client to retry or abort;
    // its parts were never readable.
    c.abort_multipart_upload()
        .bucket("scan")
        .key("split.bin")
        .upload_id(id)
        .send()
        .await
        .unwrap();

    assert_eq!(
        metric(&g, "s3dedup_infected_rejected_total", &[]),
        5.0,
        "one rejection per infected upload"
    );
    // Nothing referenced: the rejected uploads' chunks are not part of the live data.
    assert_eq!(metric(&g, "s3dedup_chunks", &[]), chunks_before);
    assert_eq!(metric(&g, "s3dedup_objects", &[]), 0.0);
    // Every rejection left an audit line naming who, what and the signature.
    let log = std::fs::read_to_string(g.data_dir.join("gateway.log")).unwrap();
    let audits = log
        .lines()
        .filter(|l| l.contains("virus_rejected"))
        .collect::<Vec<_>>();
    assert_eq!(audits.len(), 5, "{log}");
    assert!(
        audits
            .iter()
            .all(|l| l.contains(ACCESS_KEY) && l.contains(SIGNATURE))
    );
    assert!(audits.iter().any(|l| l.contains("split.bin")));

    // The scanner is reported in readiness.
    assert_eq!(g.admin_get("/health/ready").unwrap().0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_objects_pass_and_duplicates_hit_the_cache() {
    let clamd = Clamd::start().unwrap();
    let (_d, g) = scanning_gateway(&clamd, &[]);
    let c = client_with_bucket(&g).await;
    let body = random(10, 3 << 20);
    put(&c, "scan", "a.bin", &body).await.unwrap();
    let got = c
        .get_object()
        .bucket("scan")
        .key("a.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        &body[..]
    );
    let clean = |src| metric(&g, "s3dedup_scans_total", &["verdict=\"clean\"", src]);
    assert_eq!(clean("source=\"scanned\""), 1.0);
    assert_eq!(clean("source=\"cache_hit\""), 0.0);
    // The same bytes again, under another key: served from the verdict cache.
    put(&c, "scan", "b.bin", &body).await.unwrap();
    assert_eq!(clean("source=\"scanned\""), 1.0);
    assert_eq!(clean("source=\"cache_hit\""), 1.0);
    // A copy is metadata-only and not rescanned.
    c.copy_object()
        .bucket("scan")
        .key("c.bin")
        .copy_source("scan/a.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(
        clean("source=\"scanned\"") + clean("source=\"cache_hit\""),
        2.0
    );
    // Different bytes are scanned.
    put(&c, "scan", "d.bin", &random(11, 1000)).await.unwrap();
    assert_eq!(clean("source=\"scanned\""), 2.0);
    assert!(metric(&g, "s3dedup_scanned_bytes_total", &[]) >= (3 << 20) as f64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clamd_down_fails_closed_and_scanning_resumes_when_it_is_back() {
    let mut clamd = Clamd::start().unwrap();
    let (_d, g) = scanning_gateway(&clamd, &[]);
    let c = client_with_bucket(&g).await;
    put(&c, "scan", "before.bin", &random(20, 100_000))
        .await
        .unwrap();

    clamd.stop();
    let e = put(&c, "scan", "down.bin", &random(21, 2 << 20))
        .await
        .expect_err("accepted with clamd down");
    assert!(e.starts_with("503 ServiceUnavailable"), "{e}");
    invisible(&c, "scan", "down.bin").await;
    assert_eq!(g.admin_get("/health/ready").unwrap().0, 503);
    assert!(metric(&g, "s3dedup_scan_errors_total", &[]) >= 1.0);
    assert_eq!(metric(&g, "s3dedup_scan_fail_open_total", &[]), 0.0);

    // Same gateway process: scanning resumes once clamd is back.
    clamd.restart().unwrap();
    put(&c, "scan", "after.bin", &random(22, 100_000))
        .await
        .unwrap();
    assert_rejected(put(&c, "scan", "eicar", EICAR).await, "EICAR after restart");
    assert_eq!(g.admin_get("/health/ready").unwrap().0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_publishes_unscanned_and_counts_it() {
    let mut clamd = Clamd::start().unwrap();
    let (_d, g) = scanning_gateway(&clamd, &[("S3DEDUP_SCAN_ON_FAILURE", "fail-open")]);
    let c = client_with_bucket(&g).await;
    // With clamd up, fail-open changes nothing: infected is still rejected.
    assert_rejected(
        put(&c, "scan", "eicar", EICAR).await,
        "EICAR (fail-open, clamd up)",
    );
    clamd.stop();
    let body = random(30, 1 << 20);
    put(&c, "scan", "open.bin", &body).await.unwrap();
    assert_eq!(metric(&g, "s3dedup_scan_fail_open_total", &[]), 1.0);
    let log = std::fs::read_to_string(g.data_dir.join("gateway.log")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("fail_open") && l.contains("open.bin")),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_over_the_scan_limit_follow_the_policy() {
    let clamd = Clamd::start().unwrap();
    let limit = (1u64 << 20).to_string();
    let (_d, g) = scanning_gateway(&clamd, &[("S3DEDUP_SCAN_MAX_SIZE", &limit)]);
    let c = client_with_bucket(&g).await;
    let e = put(&c, "scan", "big", &random(40, 2 << 20))
        .await
        .expect_err("oversize accepted");
    assert!(e.starts_with("400 EntityTooLarge"), "{e}");
    invisible(&c, "scan", "big").await;
    put(&c, "scan", "small", &random(41, 1 << 20))
        .await
        .unwrap();

    let (_d2, g2) = scanning_gateway(
        &clamd,
        &[
            ("S3DEDUP_SCAN_MAX_SIZE", &limit),
            ("S3DEDUP_SCAN_OVERSIZE", "allow-unscanned"),
        ],
    );
    let c2 = client_with_bucket(&g2).await;
    put(&c2, "scan", "big", &random(40, 2 << 20)).await.unwrap();
    assert_eq!(
        metric(&g2, "s3dedup_scan_oversize_total", &["outcome=\"allowed\""]),
        1.0
    );
}

/// The aws CLI (v2), boto3 and rclone see the rejection as an error naming the signature.
#[test]
fn real_clients_see_the_rejection() {
    let clamd = Clamd::start().unwrap();
    let (_d, g) = scanning_gateway(&clamd, &[]);
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let infected = t.join("infected.txt");
    let mut body = b"report\n".repeat(100);
    body.extend_from_slice(EICAR);
    std::fs::write(&infected, &body).unwrap();
    let clean = t.join("clean.txt");
    std::fs::write(&clean, b"clean\n".repeat(100)).unwrap();

    let aws = |args: &[&str]| {
        let out = Command::new("/usr/bin/aws")
            .args(["--endpoint-url", &g.s3_url, "--region", "us-east-1"])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_CONFIG_FILE", t.join("nope"))
            .env("AWS_SHARED_CREDENTIALS_FILE", t.join("nope"))
            .env("AWS_MAX_ATTEMPTS", "1")
            .env_remove("AWS_CA_BUNDLE")
            .output()
            .expect("aws CLI v2 (scripts/test.sh installs awscli)");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    assert!(aws(&["s3", "mb", "s3://clients"]).0);
    let inf = infected.to_str().unwrap();
    let (ok, out) = aws(&["s3", "cp", inf, "s3://clients/aws.txt"]);
    assert!(
        !ok && out.contains("VirusDetected") && out.contains(SIGNATURE),
        "aws: {out}"
    );
    assert!(
        aws(&[
            "s3",
            "cp",
            clean.to_str().unwrap(),
            "s3://clients/clean.txt"
        ])
        .0
    );
    println!("aws CLI v2: rejected, named the signature");

    let python = std::env::var("S3DEDUP_PYTHON").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/pyenv/bin/python").to_owned()
    });
    let script = r#"
import sys, boto3, botocore
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3],
                  config=botocore.config.Config(retries={"max_attempts": 1}))
try:
    s3.upload_file(sys.argv[4], "clients", "boto3.txt")
except Exception as e:
    print("error:", e)
    sys.exit(0)
print("accepted")
sys.exit(1)
"#;
    let out = Command::new(&python)
        .args(["-c", script, &g.s3_url, ACCESS_KEY, SECRET_KEY, inf])
        .env_remove("AWS_CA_BUNDLE")
        .output()
        .expect("python in target/pyenv (scripts/test.sh creates it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("VirusDetected") && text.contains(SIGNATURE),
        "boto3: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("boto3: rejected, named the signature");

    let out = s3dedup_conformance::rclone(&g, t)
        .args(["copyto", inf, "s3d:clients/rclone.txt", "--retries", "1"])
        .args(["--low-level-retries", "1"])
        .output()
        .expect("rclone (scripts/test.sh installs it)");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && text.contains(SIGNATURE),
        "rclone: {text}"
    );
    println!("rclone: rejected, named the signature");

    // Only the clean object exists.
    let (ok, listing) = aws(&["s3", "ls", "s3://clients/"]);
    assert!(ok, "{listing}");
    assert!(listing.contains("clean.txt"), "{listing}");
    for k in ["aws.txt", "boto3.txt", "rclone.txt"] {
        assert!(!listing.contains(k), "{k} listed: {listing}");
    }
}

/// Objects stored while scanning was off are found by `s3dedup rescan`, reported (exit
/// 3), then quarantined: moved out of their bucket into `s3dedup-quarantine`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescan_reports_then_quarantines_stored_infected_objects() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Gateway::start_in(dir.path()).unwrap(); // scanning off
    let c = s3dedup_conformance::sdk_client(&g.s3_url);
    c.create_bucket().bucket("old").send().await.unwrap();
    let mut infected = random(50, 300_000);
    infected.extend_from_slice(EICAR);
    put(&c, "old", "bad/one.bin", &infected).await.unwrap();
    put(&c, "old", "good.bin", &random(51, 300_000))
        .await
        .unwrap();
    g.stop().unwrap();

    let clamd = Clamd::start().unwrap();
    let rescan = |action: &str| {
        let out = Command::new(s3dedup_conformance::binary().unwrap())
            .args(["rescan", "--action", action, "--data-dir"])
            .arg(dir.path())
            .envs(g.store_env())
            .env("S3DEDUP_CLAMD", clamd.address())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = rescan("report");
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains("old/bad/one.bin: INFECTED") && out.contains(SIGNATURE),
        "{out}"
    );
    assert!(out.contains("old/good.bin: clean"), "{out}");
    assert!(out.contains("rescan: 2 objects"), "{out}");
    let (code, out) = rescan("quarantine");
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains("moved to s3dedup-quarantine/old/bad/one.bin"),
        "{out}"
    );
    // After quarantine, a new rescan finds nothing (the quarantine bucket is skipped).
    let (code, out) = rescan("report");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("rescan: 1 objects"), "{out}");

    let g = Gateway::start_in(dir.path()).unwrap();
    let c = s3dedup_conformance::sdk_client(&g.s3_url);
    invisible(&c, "old", "bad/one.bin").await;
    let q = c
        .get_object()
        .bucket("s3dedup-quarantine")
        .key("old/bad/one.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(
        q.body.collect().await.unwrap().into_bytes().as_ref(),
        &infected[..]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clamd_over_a_unix_socket() {
    let clamd = Clamd::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let addr = clamd.unix_address();
    let g = Gateway::start_with(dir.path(), &[("S3DEDUP_CLAMD", addr.as_str())]).unwrap();
    let c = client_with_bucket(&g).await;
    put(&c, "scan", "clean", &random(60, 200_000))
        .await
        .unwrap();
    assert_rejected(
        put(&c, "scan", "eicar", EICAR).await,
        "EICAR over unix socket",
    );
    assert_eq!(g.admin_get("/health/ready").unwrap().0, 200);
}
