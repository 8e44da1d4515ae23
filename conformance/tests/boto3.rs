//! boto3 (latest from PyPI, in the virtualenv `scripts/test.sh` creates) against the real
//! gateway, with default (`when_supported`) and `when_required` checksums.

use std::process::Command;

use s3dedup_conformance::{ACCESS_KEY, Gateway, SECRET_KEY};

#[test]
fn boto3_suite() {
    let g = Gateway::start().unwrap();
    let python = std::env::var("S3DEDUP_PYTHON").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/pyenv/bin/python").to_owned()
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/boto3_suite.py");
    let out = Command::new(&python)
        .arg(script)
        .env("S3DEDUP_ENDPOINT", &g.s3_url)
        .env("S3DEDUP_ACCESS_KEY", ACCESS_KEY)
        .env("S3DEDUP_SECRET_KEY", SECRET_KEY)
        .env_remove("AWS_CA_BUNDLE")
        .output()
        .unwrap_or_else(|e| panic!("{python}: {e} (scripts/test.sh creates the virtualenv)"));
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        out.status.success(),
        "boto3 suite failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("boto3: ok"));
}
