#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this).
# On a fresh Debian machine with the Rust toolchain it installs what the tests need,
# then runs the gates: formatting, clippy with warnings denied, every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step prints how long the previous one took, and the total at the end.
t0=$SECONDS; t_step=$SECONDS; step_name=""
step() {
  [ -n "$step_name" ] && printf '   (%s: %ds)\n' "$step_name" $((SECONDS - t_step))
  step_name="$*"; t_step=$SECONDS
  printf '\n== %s\n' "$*"
}

step "toolchain"
cargo --version
rustup component list --installed 2>/dev/null | grep -E '^(rustfmt|clippy)' || true

# System packages the end-to-end suites need (awscli = the aws CLI v2 at /usr/bin/aws;
# rclone, restic, s3cmd for the client suites; clamav-daemon for the scanning suite,
# which starts its own private clamd with its own one-line signature database; prometheus
# for promtool, which checks the live /metrics output in conformance/tests/first_contact.rs;
# curl for the HTTPS admin port in conformance/tests/tls.rs).
NEEDED_DEBS=(awscli rclone restic s3cmd python3-venv clamav-daemon prometheus curl)
if [ ${#NEEDED_DEBS[@]} -gt 0 ]; then
  missing=()
  # "install ok installed" only: a removed package keeps a dpkg record (config-files).
  for p in "${NEEDED_DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    step "installing ${missing[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
  fi
fi

# PyPI packages: the latest boto3 (with the CRT extra for CRC32C/CRC64NVME) and the aws CLI v1,
# in a virtualenv under target/ (conformance/tests/boto3.rs uses target/pyenv/bin/python).
step "python virtualenv: boto3, awscli v1"
[ -x target/pyenv/bin/python ] || python3 -m venv target/pyenv
target/pyenv/bin/pip install -q --disable-pip-version-check --upgrade boto3 "botocore[crt]" awscli
target/pyenv/bin/python -c 'import boto3, botocore; print("boto3", boto3.__version__, "botocore", botocore.__version__)'

step "cargo fmt --check"
cargo fmt --all -- --check

step "module boundaries: no import cycle between a crate's files, no file over 700 lines"
python3 scripts/modcycles.py 700

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

# One build of every target with the feature set `cargo test --workspace` uses, so the
# tests below compile nothing again (building only the binaries first resolved features
# differently and compiled ~50 crates twice). It builds the s3dedup binary and the test S3
# server (conformance/src/bin/s3-test-server.rs) that the end-to-end tests start.
step "build every target once"
cargo build --workspace --all-targets --locked
# The end-to-end tests start this binary; without it set they would build the gateway
# package alone, whose feature set differs, and compile the SDK and s3s a second time.
export S3DEDUP_BIN="$PWD/target/debug/s3dedup"

step "cargo test"
cargo test --workspace --locked --no-fail-fast

# The gateway's SDK, protocol, GC, encryption and rekey-crash suites once more, with packs in a bucket of a real S3
# server (each harness gateway starts its own s3s-fs) instead of the local directory. The
# client suites (aws CLI, boto3, rclone, restic, s3cmd, scanning) test the S3 API, which
# does not change with the store, so they run once; the S3 store itself has its own
# contract, backend and fault-injection suites above. Versioned writes killed over an S3
# store are covered by disaster_recovery's SIGKILL rounds (always on their own S3 server).
step "gateway suites over the S3 backing store"
S3DEDUP_TEST_STORE=s3 cargo test --workspace --locked --test sdk --test protocol --test gc --test gc_crash \
  --test encryption --test rekey_crash

step "all tests passed"
printf '   total: %ds\n' $((SECONDS - t0))
