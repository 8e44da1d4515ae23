//! The gateway as a real process, driven by the aws CLI v2 (Debian's `awscli`) and the
//! latest aws CLI v1 (PyPI, in `target/pyenv`), both installed by `scripts/test.sh`;
//! override the paths with `S3DEDUP_AWS_CLI_V2` / `S3DEDUP_AWS_CLI_V1`.

use std::path::Path;

use rand::{RngCore, SeedableRng, rngs::SmallRng};
use s3dedup_conformance::Gateway;

fn aws(g: &Gateway, home: &Path, args: &[&str]) -> (bool, String, String) {
    let cli = std::fs::read_to_string(home.join("cli")).unwrap();
    let out = s3dedup_conformance::aws_command(&cli, g, home)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {cli}: {e} (scripts/test.sh installs awscli)"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(g: &Gateway, home: &Path, args: &[&str]) -> String {
    let (success, out, err) = aws(g, home, args);
    assert!(success, "aws {args:?} failed:\n{err}\n{out}");
    out
}

#[test]
fn aws_cli_v2() {
    let cli = std::env::var("S3DEDUP_AWS_CLI_V2").unwrap_or_else(|_| "/usr/bin/aws".into());
    suite(&cli, "aws-cli/2.");
}

#[test]
fn aws_cli_v1() {
    let cli = std::env::var("S3DEDUP_AWS_CLI_V1")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target/pyenv/bin/aws").into());
    suite(&cli, "aws-cli/1.");
}

fn suite(cli: &str, version_prefix: &str) {
    let g = Gateway::start().unwrap();
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    std::fs::write(h.join("cli"), cli).unwrap();
    let version = ok(&g, h, &["--version"]);
    assert!(version.starts_with(version_prefix), "{cli}: {version}");
    std::fs::write(
        h.join("config"),
        "[default]\ns3 =\n  multipart_threshold = 8MB\n  multipart_chunksize = 8MB\n",
    )
    .unwrap();
    ok(&g, h, &["s3", "mb", "s3://cli"]);

    // Edge sizes, single-part and (10 MiB, 200 MiB) multipart, up and down.
    for (i, len) in [0usize, 1, 65_535, 65_536, 65_537, 10 << 20, 200 << 20]
        .into_iter()
        .enumerate()
    {
        let mut body = vec![0u8; len];
        SmallRng::seed_from_u64(100 + i as u64).fill_bytes(&mut body);
        let up = h.join(format!("up-{len}"));
        std::fs::write(&up, &body).unwrap();
        let url = format!("s3://cli/size-{len}");
        ok(&g, h, &["s3", "cp", up.to_str().unwrap(), &url]);
        let down = h.join(format!("down-{len}"));
        ok(&g, h, &["s3", "cp", &url, down.to_str().unwrap()]);
        assert_eq!(std::fs::read(&down).unwrap(), body, "size {len}");
        std::fs::remove_file(&up).unwrap();
        std::fs::remove_file(&down).unwrap();
        ok(&g, h, &["s3", "rm", &url]);
    }

    // A 100 MiB file goes up multipart and comes back identical.
    let mut big = vec![0u8; 100 << 20];
    SmallRng::seed_from_u64(4).fill_bytes(&mut big);
    let src = h.join("big.bin");
    std::fs::write(&src, &big).unwrap();
    ok(
        &g,
        h,
        &["s3", "cp", src.to_str().unwrap(), "s3://cli/big.bin"],
    );
    let back = h.join("back.bin");
    ok(
        &g,
        h,
        &["s3", "cp", "s3://cli/big.bin", back.to_str().unwrap()],
    );
    assert_eq!(std::fs::read(&back).unwrap(), big);
    let head = ok(
        &g,
        h,
        &[
            "s3api",
            "head-object",
            "--bucket",
            "cli",
            "--key",
            "big.bin",
        ],
    );
    assert!(head.contains("\"ContentLength\": 104857600"), "{head}");
    assert!(
        head.contains("-13\\\""),
        "multipart ETag (8 MB parts): {head}"
    );
    if version_prefix == "aws-cli/1." {
        crc64nvme_full_object(&g, h, &src, &big);
    }

    // A folder: sync twice (the second transfers nothing), list, ranged get, remove.
    let dir = h.join("tree");
    for i in 0..500 {
        let sub = dir.join(format!("d{}", i % 5));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(
            sub.join(format!("f{i}.txt")),
            format!("file {i}\n").repeat(i % 50 + 1),
        )
        .unwrap();
    }
    let out = ok(
        &g,
        h,
        &["s3", "sync", dir.to_str().unwrap(), "s3://cli/tree"],
    );
    assert_eq!(out.matches("upload:").count(), 500, "{out}");
    let out = ok(
        &g,
        h,
        &["s3", "sync", dir.to_str().unwrap(), "s3://cli/tree"],
    );
    assert_eq!(
        out.matches("upload:").count(),
        0,
        "second sync transferred: {out}"
    );
    let out = ok(&g, h, &["s3", "ls", "--recursive", "s3://cli/tree/"]);
    assert_eq!(out.lines().count(), 500);
    let part = h.join("part.bin");
    ok(
        &g,
        h,
        &[
            "s3api",
            "get-object",
            "--bucket",
            "cli",
            "--key",
            "big.bin",
            "--range",
            "bytes=1000-1999",
            part.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read(&part).unwrap(), &big[1000..2000]);
    ok(&g, h, &["s3", "rm", "--recursive", "s3://cli/tree/"]);
    let out = ok(&g, h, &["s3", "ls", "--recursive", "s3://cli/"]);
    assert_eq!(out.lines().count(), 1, "{out}");
    let (success, _, err) = aws(&g, h, &["s3", "rb", "s3://cli"]);
    assert!(!success && err.contains("BucketNotEmpty"), "{err}");
}

/// The CLI's CRC64NVME (FULL_OBJECT) multipart upload: the object's checksum combined
/// from the parts equals the one a single PUT of the same bytes gets (which the CLI
/// sends and the gateway verifies), and the file comes back identical.
fn crc64nvme_full_object(g: &Gateway, h: &Path, src: &Path, big: &[u8]) {
    let head = |key: &str| -> serde_json::Value {
        let out = ok(
            g,
            h,
            &[
                "s3api",
                "head-object",
                "--bucket",
                "cli",
                "--key",
                key,
                "--checksum-mode",
                "ENABLED",
            ],
        );
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    };
    let file = src.to_str().unwrap();
    ok(
        g,
        h,
        &[
            "s3",
            "cp",
            file,
            "s3://cli/crc64-mp.bin",
            "--checksum-algorithm",
            "CRC64NVME",
        ],
    );
    ok(
        g,
        h,
        &[
            "s3api",
            "put-object",
            "--bucket",
            "cli",
            "--key",
            "crc64-single.bin",
            "--body",
            file,
            "--checksum-algorithm",
            "CRC64NVME",
        ],
    );
    let (mp, single) = (head("crc64-mp.bin"), head("crc64-single.bin"));
    assert_eq!(mp["ChecksumType"], "FULL_OBJECT", "{mp}");
    assert!(mp["ETag"].as_str().is_some_and(|e| e.contains('-')), "{mp}");
    assert!(mp["ChecksumCRC64NVME"].is_string(), "{mp}");
    assert_eq!(mp["ChecksumCRC64NVME"], single["ChecksumCRC64NVME"]);
    let back = h.join("crc64-back.bin");
    ok(
        g,
        h,
        &["s3", "cp", "s3://cli/crc64-mp.bin", back.to_str().unwrap()],
    );
    assert!(std::fs::read(&back).unwrap() == big);
    std::fs::remove_file(&back).unwrap();
    for key in ["crc64-mp.bin", "crc64-single.bin"] {
        ok(g, h, &["s3", "rm", &format!("s3://cli/{key}")]);
    }
}
