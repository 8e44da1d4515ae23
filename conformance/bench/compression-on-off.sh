#!/usr/bin/env bash
# PUT/GET throughput of incompressible data with compression off, zstd (the default), and
# zstd + encryption (aead): three gateways, same client and data (s3dedup-bench writes
# random bytes), alternating order per run.
#   RUNS=3 conformance/bench/compression-on-off.sh
# Not part of CI. Data goes under $BENCH_DIR (default: target/bench-compression).
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${RUNS:-3}
cargo build --release -q -p s3dedup-gateway --bin s3dedup -p s3dedup-conformance --bin s3dedup-bench
base=${BENCH_DIR:-$PWD/target/bench-compression}
rm -rf "$base"; mkdir -p "$base"
AK=BENCHACCESSKEY000001
SK=bench-secret-key-0123456789abcdefghijklmn
results="$base/results.jsonl"
keyfile="$(mktemp)"
printf '1:%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$keyfile"

start_gw() { # name, extra env...
  local name=$1; shift
  env "$@" S3DEDUP_ROOT_ACCESS_KEY=$AK S3DEDUP_ROOT_SECRET_KEY=$SK S3DEDUP_LOG=warn \
    target/release/s3dedup serve --data-dir "$base/$name" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    > "$base/$name.out" 2> "$base/$name.log" &
  echo $!
}
off_pid=$(start_gw off S3DEDUP_COMPRESSION=off)
zstd_pid=$(start_gw zstd S3DEDUP_COMPRESSION=zstd)
aead_pid=$(start_gw aead S3DEDUP_COMPRESSION=zstd S3DEDUP_ENCRYPTION=aead S3DEDUP_ENCRYPTION_KEY_FILE="$keyfile")
trap 'kill $off_pid $zstd_pid $aead_pid 2>/dev/null || true; wait 2>/dev/null; rm -rf "$base/off" "$base/zstd" "$base/aead" "$keyfile"' EXIT
for who in off zstd aead; do
  for _ in $(seq 100); do
    grep -q "s3dedup listening" "$base/$who.out" 2>/dev/null && break
    sleep 0.2
  done
done
url() { grep -o 's3=http://[^ ]*' "$base/$1.out" | cut -d= -f2; }
echo "off at $(url off), zstd at $(url zstd), zstd+aead at $(url aead); $runs runs; $(nproc) cores; sha_ni: $(grep -c sha_ni /proc/cpuinfo)"

scenarios=(
  "large --streams 1 --size-mib 512 --dup-fraction 0"
  "large --streams 4 --size-mib 128 --dup-fraction 0"
  "large --streams 1 --size-mib 512 --dup-fraction 0.9"
)
for run in $(seq "$runs"); do
  for sc in "${scenarios[@]}"; do
    case $((run % 3)) in 1) order="off zstd aead";; 2) order="zstd aead off";; *) order="aead off zstd";; esac
    for who in $order; do
      # shellcheck disable=SC2086
      target/release/s3dedup-bench --endpoint "$(url $who)" --access-key $AK --secret-key $SK \
        --label "$who" --seed "$run" $sc | tee -a "$results"
    done
  done
done
echo "== zstd vs off"
python3 conformance/bench/medians.py "$results" zstd off
echo "== zstd+aead vs off"
python3 conformance/bench/medians.py "$results" aead off
