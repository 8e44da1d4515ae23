#!/usr/bin/env bash
# Storage engine benchmark (issue: storage engine). Release build, real disk, medians.
#   conformance/bench/storage-bench.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-5}
cargo build --release -q -p s3dedup-conformance --bin storage-bench
bin=target/release/storage-bench
echo "== $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), data dir on $(df --output=source . | tail -1)"
$bin throughput --size-mib 1024 --runs "$runs"
$bin small --count 10000 --object-kib 4 --concurrency 1,32 --runs "$runs"
for i in $(seq 1 3); do $bin rss --size-mib 5120; done
