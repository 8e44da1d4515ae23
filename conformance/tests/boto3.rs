//! boto3 (latest from PyPI, in the virtualenv `scripts/test.sh` creates) against the real
//! gateway, with default (`when_supported`) and `when_required` checksums.

use s3dedup_conformance::{Gateway, run_python_suite};

#[test]
fn boto3_suite() {
    let g = Gateway::start().unwrap();
    run_python_suite(&g, "boto3_suite.py", "boto3: ok");
}
