#!/usr/bin/env bash
# GC benchmark (issue 13): an index of >= 1,000,000 chunks with 50 % garbage.
#   RUNS=3 CHUNKS=1000000 conformance/bench/gc-bench.sh
# Per run: build a fresh store, one GC run in its own process (time per phase, peak RSS,
# compaction MB/s); build again, then a unique PUT idle and while GC and compaction run.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${RUNS:-3}
chunks=${CHUNKS:-1000000}
cargo build --release -q -p s3dedup-conformance --bin gc-bench
bin=target/release/gc-bench
dir=$(mktemp -d -p . gc-bench.XXXX)
trap 'rm -rf "$dir"' EXIT
echo "== $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), SHA-NI: $(grep -q sha_ni /proc/cpuinfo && echo yes || echo no)"
for i in $(seq 1 "$runs"); do
  echo "-- run $i"
  $bin build --dir "$dir/s" --chunks "$chunks"
  $bin gc --dir "$dir/s"
  $bin build --dir "$dir/s" --chunks "$chunks" > /dev/null
  $bin put-during-gc --dir "$dir/s"
done
