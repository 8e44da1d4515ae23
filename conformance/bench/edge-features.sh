#!/usr/bin/env bash
# What the edge protections cost per request: two gateways, same client and data,
# alternating runs — "plain" (defaults: connection limits, write gate, quota lookup,
# lockout counting) against "guarded" (also the audit log on every write, and per-key and
# per-IP rate limits set high enough never to refuse).
#   RUNS=3 conformance/bench/edge-features.sh
# Not part of CI. Data goes under $BENCH_DIR (default: target/bench-edge-features).
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${RUNS:-3}
cargo build --release -q -p s3dedup-gateway --bin s3dedup -p s3dedup-conformance --bin s3dedup-bench
base=${BENCH_DIR:-$PWD/target/bench-edge-features}
rm -rf "$base"; mkdir -p "$base"
AK=BENCHACCESSKEY000001
SK=bench-secret-key-0123456789abcdefghijklmn
results="$base/results.jsonl"

start_gw() { # name, extra env...
  local name=$1; shift
  env "$@" S3DEDUP_ROOT_ACCESS_KEY=$AK S3DEDUP_ROOT_SECRET_KEY=$SK S3DEDUP_LOG=warn \
    target/release/s3dedup serve --data-dir "$base/$name" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    > "$base/$name.out" 2> "$base/$name.log" &
  echo $!
}
plain_pid=$(start_gw plain)
guarded_pid=$(start_gw guarded S3DEDUP_AUDIT_LOG="$base/audit.log" \
  S3DEDUP_RATE_LIMIT_KEY_REQUESTS=1000000 S3DEDUP_RATE_LIMIT_KEY_BYTES=100GiB \
  S3DEDUP_RATE_LIMIT_IP_REQUESTS=1000000 S3DEDUP_RATE_LIMIT_IP_BYTES=100GiB)
trap 'kill $plain_pid $guarded_pid 2>/dev/null || true; wait 2>/dev/null; rm -rf "$base/plain" "$base/guarded"' EXIT
for _ in $(seq 100); do
  grep -q "s3dedup listening" "$base/plain.out" 2>/dev/null && grep -q "s3dedup listening" "$base/guarded.out" 2>/dev/null && break
  sleep 0.2
done
url() { grep -o 's3=http://[^ ]*' "$base/$1.out" | cut -d= -f2; }
echo "plain at $(url plain), guarded at $(url guarded); $runs runs; $(nproc) cores"

scenarios=(
  "small --count 3000 --size-kib 4 --concurrency 32"
  "large --streams 1 --size-mib 200 --dup-fraction 0"
)
for run in $(seq "$runs"); do
  for sc in "${scenarios[@]}"; do
    if [ $((run % 2)) -eq 1 ]; then order="plain guarded"; else order="guarded plain"; fi
    for who in $order; do
      # shellcheck disable=SC2086
      target/release/s3dedup-bench --endpoint "$(url $who)" --access-key $AK --secret-key $SK \
        --label "$who" --seed "$run" $sc | tee -a "$results"
    done
  done
done
python3 conformance/bench/medians.py "$results" guarded plain
echo "audit lines written: $(wc -l < "$base/audit.log")"
target/release/s3dedup audit verify --data-dir "$base/guarded" "$base/audit.log"
