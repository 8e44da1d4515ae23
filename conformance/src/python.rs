//! boto3 suites: the virtualenv's Python and a runner for `conformance/python/*.py`.

use std::path::Path;
use std::process::Command;

use crate::{ACCESS_KEY, Gateway, SECRET_KEY};

/// The Python with boto3 that `scripts/test.sh` installs (`target/pyenv`), or
/// `S3DEDUP_PYTHON`.
pub fn python() -> String {
    std::env::var("S3DEDUP_PYTHON").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/pyenv/bin/python").to_owned()
    })
}

/// Runs the boto3 suite `conformance/python/<script>` against `g` with the root key and
/// panics with its output unless it exits 0 having printed `ok_line`; its stdout.
pub fn run_python_suite(g: &Gateway, script: &str, ok_line: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(script);
    let out = Command::new(python())
        .arg(&path)
        .env("S3DEDUP_ENDPOINT", &g.s3_url)
        .env("S3DEDUP_ACCESS_KEY", ACCESS_KEY)
        .env("S3DEDUP_SECRET_KEY", SECRET_KEY)
        .env_remove("AWS_CA_BUNDLE")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/test.sh creates the virtualenv)", python()));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{text}");
    assert!(
        out.status.success() && text.contains(ok_line),
        "{script} failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}
