//! S3 bucket versioning against the real gateway: the boto3 suite
//! (`conformance/python/versioning_suite.py`, every check against Amazon S3's documented
//! behaviour), and the aws CLI keeping ten versions of a 100 MiB file that changes by 1 %
//! each time, which must cost little more than the file once plus what changed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use s3dedup_conformance::{ACCESS_KEY, Gateway, SECRET_KEY, aws_command};

#[test]
fn boto3_versioning_suite() {
    let g = Gateway::start().unwrap();
    let python = std::env::var("S3DEDUP_PYTHON").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/pyenv/bin/python").to_owned()
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/versioning_suite.py");
    let mut cmd = Command::new(&python);
    cmd.arg(script)
        .env("S3DEDUP_ENDPOINT", &g.s3_url)
        .env("S3DEDUP_ACCESS_KEY", ACCESS_KEY)
        .env("S3DEDUP_SECRET_KEY", SECRET_KEY)
        .env_remove("AWS_CA_BUNDLE");
    let out = run_with_timeout(&mut cmd, Duration::from_secs(300));
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        out.status.success(),
        "versioning suite failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("versioning: ok"), "{text}");
}

/// Object size, and the share of it each new version changes: `REGIONS` regions of
/// `REGION` bytes, one in each tenth of the file at a random place (10 × 100 KiB =
/// 0.98 % of 100 MiB).
const SIZE: usize = 100 << 20;
const REGION: usize = 100 << 10;
const REGIONS: usize = 10;
const VERSIONS: usize = 10;

#[test]
fn aws_cli_versioned_overwrites_cost_what_changed() {
    let g = Gateway::start().unwrap();
    let tmp = tempfile::Builder::new()
        .prefix("s3dedup-versioning-")
        .tempdir()
        .unwrap();
    let t = tmp.path();
    let home = t.join("aws-home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join("config"),
        "[default]\ns3 =\n  multipart_threshold = 8MB\n  multipart_chunksize = 8MB\n",
    )
    .unwrap();
    let aws = |args: &[&str]| aws_ok(&g, &home, args);

    aws(&["s3", "mb", "s3://versioned"]);
    aws(&[
        "s3api",
        "put-bucket-versioning",
        "--bucket",
        "versioned",
        "--versioning-configuration",
        "Status=Enabled",
    ]);
    let status = json(&aws(&[
        "s3api",
        "get-bucket-versioning",
        "--bucket",
        "versioned",
    ]));
    assert_eq!(status["Status"], "Enabled", "{status}");

    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut data = vec![0u8; SIZE];
    rng.fill(&mut data);
    let file = t.join("big.bin");
    let mut digests = Vec::new();
    let mut ids = Vec::new();
    let mut stored = Vec::new();
    for v in 0..VERSIONS {
        if v > 0 {
            let slot = SIZE / REGIONS;
            for r in 0..REGIONS {
                let at =
                    r * slot + usize::try_from(rng.next_u64() % (slot - REGION) as u64).unwrap();
                rng.fill(&mut data[at..at + REGION]);
            }
        }
        std::fs::write(&file, &data).unwrap();
        digests.push(sha256_file(&file));
        aws(&[
            "s3",
            "cp",
            "--quiet",
            file.to_str().unwrap(),
            "s3://versioned/big.bin",
        ]);
        let head = json(&aws(&[
            "s3api",
            "head-object",
            "--bucket",
            "versioned",
            "--key",
            "big.bin",
        ]));
        assert_eq!(
            head["ContentLength"].as_u64(),
            Some(SIZE as u64),
            "upload {v}: {head}"
        );
        let id = head["VersionId"]
            .as_str()
            .unwrap_or_else(|| panic!("upload {v}: no VersionId in {head}"))
            .to_owned();
        assert!(
            id != "null" && !ids.contains(&id),
            "upload {v}: version id {id:?} not new (earlier: {ids:?})"
        );
        ids.push(id);
        stored.push(g.store_bytes().unwrap());
    }
    println!("versions: {ids:?}");
    for (v, bytes) in stored.iter().enumerate() {
        println!("store after version {}: {bytes} bytes", v + 1);
    }

    // Ten versions, newest first, the newest latest.
    let listed = json(&aws(&[
        "s3api",
        "list-object-versions",
        "--bucket",
        "versioned",
    ]));
    let versions = listed["Versions"].as_array().cloned().unwrap_or_default();
    let listed_ids: Vec<&str> = versions
        .iter()
        .map(|v| v["VersionId"].as_str().unwrap_or(""))
        .collect();
    let want: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    assert_eq!(listed_ids, want, "10 versions, newest first: {listed}");
    let latest: Vec<bool> = versions
        .iter()
        .map(|v| v["IsLatest"].as_bool() == Some(true))
        .collect();
    assert!(
        latest[0] && latest.iter().filter(|l| **l).count() == 1,
        "only the newest IsLatest: {listed}"
    );
    assert!(
        versions
            .iter()
            .all(|v| v["Size"].as_u64() == Some(SIZE as u64)),
        "{listed}"
    );

    let get_version = |id: &str, name: &str| -> PathBuf {
        let to = t.join(name);
        let out = json(&aws(&[
            "s3api",
            "get-object",
            "--bucket",
            "versioned",
            "--key",
            "big.bin",
            "--version-id",
            id,
            to.to_str().unwrap(),
        ]));
        assert_eq!(out["VersionId"], id, "{out}");
        to
    };
    let first = get_version(ids[0].as_str(), "first.bin");
    assert_eq!(
        sha256_file(&first),
        digests[0],
        "the first version reads back byte-exact"
    );
    std::fs::remove_file(&first).unwrap();

    // A simple delete: a delete marker hides the object; old versions stay readable.
    let del = json(&aws(&[
        "s3api",
        "delete-object",
        "--bucket",
        "versioned",
        "--key",
        "big.bin",
    ]));
    assert_eq!(del["DeleteMarker"], true, "{del}");
    let marker = del["VersionId"]
        .as_str()
        .unwrap_or_else(|| panic!("delete marker without a version id: {del}"))
        .to_owned();
    assert!(!ids.contains(&marker), "{marker} is a new id");
    let (ok, out, err) = aws_run(
        &g,
        &home,
        &[
            "s3api",
            "get-object",
            "--bucket",
            "versioned",
            "--key",
            "big.bin",
            t.join("gone.bin").to_str().unwrap(),
        ],
    );
    assert!(
        !ok && err.contains("NoSuchKey"),
        "get under a delete marker must fail with NoSuchKey:\n{out}\n{err}"
    );
    let listed = json(&aws(&[
        "s3api",
        "list-object-versions",
        "--bucket",
        "versioned",
    ]));
    assert_eq!(
        listed["DeleteMarkers"][0]["VersionId"],
        marker.as_str(),
        "{listed}"
    );
    assert_eq!(listed["DeleteMarkers"][0]["IsLatest"], true, "{listed}");
    assert_eq!(
        listed["Versions"].as_array().map(Vec::len),
        Some(VERSIONS),
        "{listed}"
    );
    let middle = get_version(ids[4].as_str(), "fifth.bin");
    assert_eq!(
        sha256_file(&middle),
        digests[4],
        "an old version reads back byte-exact under the delete marker"
    );
    std::fs::remove_file(&middle).unwrap();

    // Removing the marker by id restores the newest version.
    let undel = json(&aws(&[
        "s3api",
        "delete-object",
        "--bucket",
        "versioned",
        "--key",
        "big.bin",
        "--version-id",
        &marker,
    ]));
    assert_eq!(undel["DeleteMarker"], true, "{undel}");
    assert_eq!(undel["VersionId"], marker.as_str(), "{undel}");
    let back = t.join("back.bin");
    let out = json(&aws(&[
        "s3api",
        "get-object",
        "--bucket",
        "versioned",
        "--key",
        "big.bin",
        back.to_str().unwrap(),
    ]));
    assert_eq!(out["VersionId"], ids[VERSIONS - 1].as_str(), "{out}");
    assert_eq!(
        sha256_file(&back),
        digests[VERSIONS - 1],
        "after the marker is deleted the 10th version is current, byte-exact"
    );
    let listed = json(&aws(&[
        "s3api",
        "list-object-versions",
        "--bucket",
        "versioned",
    ]));
    assert!(
        listed
            .get("DeleteMarkers")
            .is_none_or(|m| m.as_array().is_some_and(Vec::is_empty)),
        "no marker left: {listed}"
    );

    // What the ten versions cost: the first in full, then about what changed.
    let logical = (SIZE * VERSIONS) as u64;
    let total = *stored.last().unwrap();
    #[allow(clippy::cast_precision_loss)]
    let ratio = total as f64 / SIZE as f64;
    println!(
        "10 versions of {SIZE} bytes ({logical} logical): store holds {total} bytes, \
         {ratio:.3} × one version"
    );
    // Random bytes do not compress: the store can hold no less than one version.
    assert!(
        stored[0] >= SIZE as u64,
        "store holds {} bytes after the first 100 MiB upload: not measuring the data?",
        stored[0]
    );
    assert!(
        total * 10 <= SIZE as u64 * 13,
        "10 versions, each changing ~1 %, store {total} bytes = {ratio:.3} × one version \
         (limit 1.3); per version: {stored:?}"
    );
    // `admin usage` shows what the old versions hold, per bucket.
    let o = g.admin_cli(&["usage", "--json"]).unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let u: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let b = u["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "versioned")
        .unwrap_or_else(|| panic!("{u:#}"));
    assert_eq!(b["objects"], 1, "{b}");
    assert_eq!(b["noncurrent_versions"], VERSIONS - 1, "{b}");
    assert_eq!(b["noncurrent_bytes"], (SIZE * (VERSIONS - 1)) as u64, "{b}");
    assert_eq!(b["logical_bytes"], logical, "{b}");
    assert_eq!(u["noncurrent_versions"], VERSIONS - 1, "{u:#}");
}

/// xorshift64: seeded, reproducible bytes.
#[derive(Debug)]
struct XorShift(u64);

impl XorShift {
    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// `sha256sum FILE` (coreutils): the hex digest.
fn sha256_file(path: &Path) -> String {
    let out = run_with_timeout(
        Command::new("sha256sum").arg(path),
        Duration::from_secs(120),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "sha256sum {}: {text}{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    text.split_whitespace()
        .next()
        .unwrap_or_else(|| panic!("sha256sum printed nothing for {}", path.display()))
        .to_owned()
}

/// Runs an aws CLI command (JSON output, no pager); (success, stdout, stderr).
fn aws_run(g: &Gateway, home: &Path, args: &[&str]) -> (bool, String, String) {
    let mut cmd = aws_command("aws", g, home);
    cmd.args(args)
        .args(["--output", "json"])
        .env("AWS_PAGER", "");
    let out = run_with_timeout(&mut cmd, Duration::from_secs(600));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// [`aws_run`], asserting success; its stdout.
fn aws_ok(g: &Gateway, home: &Path, args: &[&str]) -> String {
    let (ok, out, err) = aws_run(g, home, args);
    assert!(ok, "aws {args:?} failed:\n{out}\n{err}");
    out
}

/// Runs `cmd` to completion, its output collected; kills it and panics (with what it
/// printed so far) when it takes longer than `limit`.
fn run_with_timeout(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (scripts/test.sh installs the tools)"));
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    match status {
        Some(status) => Output {
            status,
            stdout,
            stderr,
        },
        None => panic!(
            "{cmd:?} still running after {limit:?}, killed:\n{}\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    }
}

/// Reads `r` to its end on a thread of its own (so a full pipe never blocks the child).
fn drain(mut r: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}
