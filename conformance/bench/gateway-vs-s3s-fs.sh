#!/usr/bin/env bash
# s3dedup vs s3s-fs (a plain S3 server on the same s3s stack, no dedup), same client and
# data, alternating runs; prints per-run JSON, medians and ratios, and s3dedup's peak RSS.
#   RUNS=3 conformance/bench/gateway-vs-s3s-fs.sh
# Not part of CI. Data directories go under $BENCH_DIR (default: target/bench-data).
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${RUNS:-3}
cargo build --release -q -p s3dedup-gateway --bin s3dedup -p s3dedup-conformance --bin s3dedup-bench
if [ ! -x target/bench-tools/bin/s3s-fs ]; then
  cargo install -q --locked s3s-fs --version 0.14.1 --features binary --root target/bench-tools
fi
base=${BENCH_DIR:-$PWD/target/bench-data}
rm -rf "$base"; mkdir -p "$base"
AK=BENCHACCESSKEY000001
SK=bench-secret-key-0123456789abcdefghijklmn
results="$base/results.jsonl"

S3DEDUP_ROOT_ACCESS_KEY=$AK S3DEDUP_ROOT_SECRET_KEY=$SK S3DEDUP_LOG=warn \
  target/release/s3dedup serve --data-dir "$base/s3dedup" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
  > "$base/s3dedup.out" 2> "$base/s3dedup.log" &
gw_pid=$!
fs_port=$((20000 + RANDOM % 20000))
mkdir -p "$base/s3s-fs"
target/bench-tools/bin/s3s-fs --host 127.0.0.1 --port "$fs_port" --access-key $AK --secret-key $SK "$base/s3s-fs" \
  > "$base/s3s-fs.log" 2>&1 &
fs_pid=$!
# Stop both servers and drop their data (tens of GiB after 3 runs); keep the results.
trap 'kill $gw_pid $fs_pid 2>/dev/null || true; wait 2>/dev/null; rm -rf "$base/s3dedup" "$base/s3s-fs"' EXIT
for _ in $(seq 50); do grep -q "s3dedup listening" "$base/s3dedup.out" 2>/dev/null && break; sleep 0.2; done
gw_url=$(grep -o 's3=http://[^ ]*' "$base/s3dedup.out" | cut -d= -f2)
fs_url="http://127.0.0.1:$fs_port"
sleep 1
echo "s3dedup at $gw_url (pid $gw_pid), s3s-fs at $fs_url (pid $fs_pid); $runs runs; $(nproc) cores"

scenarios=(
  "large --streams 1 --size-mib 1024 --dup-fraction 0"
  "large --streams 8 --size-mib 256 --dup-fraction 0"
  "large --streams 1 --size-mib 1024 --dup-fraction 0.9"
  "large --streams 8 --size-mib 256 --dup-fraction 0.9"
  "small --count 10000 --size-kib 4 --concurrency 32"
)
for run in $(seq "$runs"); do
  for sc in "${scenarios[@]}"; do
    # Alternate which server goes first.
    if [ $((run % 2)) -eq 1 ]; then order="s3dedup s3s-fs"; else order="s3s-fs s3dedup"; fi
    for who in $order; do
      url=$gw_url; [ "$who" = s3s-fs ] && url=$fs_url
      # shellcheck disable=SC2086
      target/release/s3dedup-bench --endpoint "$url" --access-key $AK --secret-key $SK \
        --label "$who" --seed "$run" $sc | tee -a "$results"
    done
  done
done
peak=$(grep VmHWM /proc/$gw_pid/status | awk '{print $2}')
fs_peak=$(grep VmHWM /proc/$fs_pid/status | awk '{print $2}')
python3 conformance/bench/medians.py "$results" s3dedup s3s-fs
printf "\\n%s\\n" "peak RSS: s3dedup $((peak / 1024)) MiB, s3s-fs $((fs_peak / 1024)) MiB"
