#!/usr/bin/env bash
# The gateway over its local directory vs over an S3 bucket (s3s-fs on loopback), same
# client and data, alternating runs; prints per-run JSON, medians, ratios, both gateways'
# peak RSS and the S3 gateway's backend request counts.
#   RUNS=3 conformance/bench/s3-store.sh
# Not part of CI. Data directories go under $BENCH_DIR (default: target/bench-data-s3).
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${RUNS:-3}
cargo build --release -q -p s3dedup-gateway --bin s3dedup -p s3dedup-conformance --bin s3dedup-bench
if [ ! -x target/bench-tools/bin/s3s-fs ]; then
  cargo install -q --locked s3s-fs --version 0.14.1 --features binary --root target/bench-tools
fi
base=${BENCH_DIR:-$PWD/target/bench-data-s3}
rm -rf "$base"; mkdir -p "$base/s3s-fs/packs"
AK=BENCHACCESSKEY000001
SK=bench-secret-key-0123456789abcdefghijklmn
results="$base/results.jsonl"

fs_port=$((20000 + RANDOM % 20000))
target/bench-tools/bin/s3s-fs --host 127.0.0.1 --port "$fs_port" --access-key BACKENDKEY --secret-key backend-secret \
  "$base/s3s-fs" > "$base/s3s-fs.log" 2>&1 &
fs_pid=$!
start_gateway() { # name, extra env...
  local name=$1; shift
  env S3DEDUP_ROOT_ACCESS_KEY=$AK S3DEDUP_ROOT_SECRET_KEY=$SK S3DEDUP_LOG=warn "$@" \
    target/release/s3dedup serve --data-dir "$base/$name" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    > "$base/$name.out" 2> "$base/$name.log" &
}
start_gateway local
local_pid=$!
start_gateway s3 S3DEDUP_STORE=s3://packs/bench S3DEDUP_STORE_ENDPOINT="http://127.0.0.1:$fs_port" \
  S3DEDUP_STORE_PATH_STYLE=true S3DEDUP_STORE_ACCESS_KEY=BACKENDKEY S3DEDUP_STORE_SECRET_KEY=backend-secret
s3_pid=$!
trap 'kill $local_pid $s3_pid $fs_pid 2>/dev/null || true; wait 2>/dev/null; rm -rf "$base/local" "$base/s3" "$base/s3s-fs"' EXIT
for f in local s3; do
  for _ in $(seq 50); do grep -q "s3dedup listening" "$base/$f.out" 2>/dev/null && break; sleep 0.2; done
done
local_url=$(grep -o 's3=http://[^ ]*' "$base/local.out" | cut -d= -f2)
s3_url=$(grep -o 's3=http://[^ ]*' "$base/s3.out" | cut -d= -f2)
s3_admin=$(grep -o 'admin=http://[^ ]*' "$base/s3.out" | cut -d= -f2)
echo "local store at $local_url, S3 store at $s3_url (s3s-fs :$fs_port); $runs runs; $(nproc) cores"

scenarios=(
  "large --streams 1 --size-mib 1024 --dup-fraction 0"
  "large --streams 4 --size-mib 256 --dup-fraction 0"
  "small --count 2000 --size-kib 64 --concurrency 32"
)
for run in $(seq "$runs"); do
  for sc in "${scenarios[@]}"; do
    if [ $((run % 2)) -eq 1 ]; then order="local s3"; else order="s3 local"; fi
    for who in $order; do
      url=$local_url; [ "$who" = s3 ] && url=$s3_url
      # shellcheck disable=SC2086
      target/release/s3dedup-bench --endpoint "$url" --access-key $AK --secret-key $SK \
        --label "$who" --seed "$run" $sc | tee -a "$results"
    done
  done
done
local_peak=$(grep VmHWM /proc/$local_pid/status | awk '{print $2}')
s3_peak=$(grep VmHWM /proc/$s3_pid/status | awk '{print $2}')
echo; curl -s "$s3_admin/metrics" | grep -E '^s3dedup_backend_(requests|retries|fast)' || true
python3 conformance/bench/medians.py "$results" s3 local
printf "\\n%s\\n" "peak RSS: local-store gateway $((local_peak / 1024)) MiB, S3-store gateway $((s3_peak / 1024)) MiB"
