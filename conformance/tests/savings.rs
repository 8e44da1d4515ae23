//! What dedup plus compression store for a versioned source tree, against restic.
//!
//! Ten successive releases of one source tree (tokio 1.39.0 ..= 1.48.0 from crates.io,
//! as tar files with normalised headers: `conformance/bench/releases.py`) are uploaded
//! with the aws CLI twice, into one bucket with multipart uploads (1 MiB parts) and into
//! another with single PUTs. The gateway's logical, unique and stored bytes are then
//! compared with the repository restic 0.14 writes for the same files (`restic backup`
//! into a local repository, default compression). Every object is read back and checked.
//!
//! The target, stored ≤ 0.45 × restic, is NOT met (docs/BENCHMARKS.md): each
//! 64 KiB chunk is compressed alone (ratio 4.9 here), where restic compresses ~1 MiB
//! blobs. What is asserted is today's standing, so that a regression fails: stored at
//! most restic's repository size (2 % slack for restic's run-to-run variation), and
//! compression at least 4×.
//!
//! The figures go to stdout and to `target/savings.json`. `S3DEDUP_SAVINGS_RELEASES` may
//! name another set (`--crate NAME V1 V2 …` or `--npm NAME V1 …`); the figures are then
//! reported, not asserted.

use std::path::Path;
use std::process::Command;

use s3dedup_conformance::{Gateway, binary, dir_bytes};

const DEFAULT_RELEASES: &str = "--crate tokio 1.39.0 1.40.0 1.41.0 1.42.0 1.43.0 1.44.0 1.45.0 \
                                1.46.0 1.47.0 1.48.0";

fn workspace() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn run(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{cmd:?} failed:\n{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

fn aws(g: &Gateway, home: &Path, args: &[&str]) -> String {
    run(s3dedup_conformance::aws_command("aws", g, home).args(args))
}

#[test]
fn versioned_tree_stores_no_more_than_restic() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let releases = t.join("releases");
    let spec = std::env::var("S3DEDUP_SAVINGS_RELEASES").ok();
    let custom = spec.is_some();
    let spec = spec.unwrap_or_else(|| DEFAULT_RELEASES.to_owned());
    let listed = run(Command::new("python3")
        .arg(workspace().join("conformance/bench/releases.py"))
        .args(spec.split_whitespace())
        .arg("--out")
        .arg(&releases)
        .arg("--cache")
        .arg(workspace().join("target/datasets")));
    let files: Vec<(String, u64)> = listed
        .lines()
        .map(|l| {
            let (p, n) = l.rsplit_once(' ').unwrap();
            (p.to_owned(), n.parse().unwrap())
        })
        .collect();
    assert!(files.len() >= 2, "{listed}");
    let tree_bytes: u64 = files.iter().map(|(_, n)| n).sum();

    // restic, as a user would run it: a local repository, default compression.
    let repo = t.join("restic-repo");
    let restic = |args: &[&str]| {
        run(Command::new("restic")
            .args(args)
            .env("RESTIC_REPOSITORY", &repo)
            .env("RESTIC_PASSWORD", "savings")
            .env("RESTIC_CACHE_DIR", t.join("restic-cache")))
    };
    let version = restic(&["version"]);
    restic(&["init"]);
    restic(&["backup", "--quiet", releases.to_str().unwrap()]);
    let restic_bytes = dir_bytes(&repo).unwrap();

    let data = t.join("gw");
    let mut g = Gateway::start_with(&data, &[("S3DEDUP_MIN_PART_SIZE", "1MiB")]).unwrap();
    let home = t.join("aws-home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join("config"),
        "[default]\ns3 =\n  multipart_threshold = 1MB\n  multipart_chunksize = 1MB\n",
    )
    .unwrap();
    aws(&g, &home, &["s3", "mb", "s3://multipart"]);
    aws(&g, &home, &["s3", "mb", "s3://single"]);
    let dir = releases.to_str().unwrap();
    aws(
        &g,
        &home,
        &["s3", "cp", "--recursive", "--quiet", dir, "s3://multipart/"],
    );
    std::fs::write(
        home.join("config"),
        "[default]\ns3 =\n  multipart_threshold = 5GB\n",
    )
    .unwrap();
    aws(
        &g,
        &home,
        &["s3", "cp", "--recursive", "--quiet", dir, "s3://single/"],
    );
    let back = t.join("back");
    for bucket in ["multipart", "single"] {
        let to = back.join(bucket);
        aws(
            &g,
            &home,
            &[
                "s3",
                "cp",
                "--recursive",
                "--quiet",
                &format!("s3://{bucket}/"),
                to.to_str().unwrap(),
            ],
        );
        for (path, _) in &files {
            let name = Path::new(path).file_name().unwrap();
            assert!(
                std::fs::read(to.join(name)).unwrap() == std::fs::read(path).unwrap(),
                "{bucket}/{name:?} reads back byte-exact"
            );
        }
    }
    g.stop().unwrap();
    let stats: serde_json::Value = serde_json::from_str(&run(Command::new(binary().unwrap())
        .args(["stats", "--json", "--data-dir"])
        .arg(&data)
        .envs(g.store_env())))
    .unwrap();
    let n = |k: &str| stats[k].as_u64().unwrap();
    let (logical, unique, stored) = (n("logical_bytes"), n("unique_bytes"), n("stored_bytes"));
    assert_eq!(logical, 2 * tree_bytes, "{stats}");
    // What the data needs: the stored bytes less the garbage GC reclaims. Uploads
    // running at once can each write a copy of the same new chunk before either is
    // committed; the copies that lose are garbage (0–7 % here, by timing) until GC.
    let kept = stored - n("garbage_bytes");
    #[allow(clippy::cast_precision_loss)]
    let ratio = kept as f64 / restic_bytes as f64;
    let report = serde_json::json!({
        "releases": spec,
        "tree_bytes": tree_bytes,
        "uploads": ["aws s3 cp multipart (1 MiB parts)", "aws s3 cp single PUT"],
        "logical_bytes": logical,
        "unique_bytes": unique,
        "stored_bytes": stored,
        "garbage_bytes": stored - kept,
        "kept_bytes": kept,
        "compression_ratio": stats["compression_ratio"],
        "restic_version": version.trim(),
        "restic_repo_bytes": restic_bytes,
        "stored_over_restic": (ratio * 1000.0).round() / 1000.0,
    });
    println!("{report:#}");
    std::fs::write(workspace().join("target/savings.json"), report.to_string()).unwrap();
    if !custom {
        assert!(
            // 2 % of slack: restic's repository size varies by a few KB between runs.
            ratio <= 1.02,
            "kept {kept} bytes (stored {stored}), restic {restic_bytes}: {ratio:.3} × restic"
        );
        let compression = stats["compression_ratio"].as_f64().unwrap();
        assert!(compression >= 4.0, "compression {compression}");
    }
}
