#!/usr/bin/env bash
# Two s3dedup binaries side by side (e.g. the last landing against this change), same
# client, data and machine, alternating which goes first; prints per-run JSON, medians
# and ratios (new / old), and each gateway's peak RSS.
#   RUNS=3 conformance/bench/two-builds.sh OLD_BINARY NEW_BINARY
# Not part of CI. Data directories go under $BENCH_DIR (default: target/bench-two).
set -euo pipefail
cd "$(dirname "$0")/../.."
old=$1 new=$2
runs=${RUNS:-3}
cargo build --release -q -p s3dedup-conformance --bin s3dedup-bench
base=${BENCH_DIR:-$PWD/target/bench-two}
rm -rf "$base"; mkdir -p "$base"
AK=BENCHACCESSKEY000001
SK=bench-secret-key-0123456789abcdefghijklmn
results="$base/results.jsonl"
start() { # name binary
  S3DEDUP_ROOT_ACCESS_KEY=$AK S3DEDUP_ROOT_SECRET_KEY=$SK S3DEDUP_LOG=warn \
    "$2" serve --data-dir "$base/$1" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    > "$base/$1.out" 2> "$base/$1.log" &
  echo $!
}
old_pid=$(start old "$old")
new_pid=$(start new "$new")
trap 'kill $old_pid $new_pid 2>/dev/null || true; wait 2>/dev/null; rm -rf "$base/old" "$base/new"' EXIT
for who in old new; do
  for _ in $(seq 50); do grep -q "s3dedup listening" "$base/$who.out" 2>/dev/null && break; sleep 0.2; done
done
old_url=$(grep -o 's3=http://[^ ]*' "$base/old.out" | cut -d= -f2)
new_url=$(grep -o 's3=http://[^ ]*' "$base/new.out" | cut -d= -f2)
echo "old $old at $old_url, new $new at $new_url; $runs runs; $(nproc) cores; sha_ni: $(grep -c sha_ni /proc/cpuinfo || true)"
scenarios=(
  "large --streams 1 --size-mib 1024 --dup-fraction 0"
  "large --streams 8 --size-mib 128 --dup-fraction 0.9"
  "small --count 5000 --size-kib 4 --concurrency 32"
)
for run in $(seq "$runs"); do
  for sc in "${scenarios[@]}"; do
    if [ $((run % 2)) -eq 1 ]; then order="old new"; else order="new old"; fi
    for who in $order; do
      url=$old_url; [ "$who" = new ] && url=$new_url
      # shellcheck disable=SC2086
      target/release/s3dedup-bench --endpoint "$url" --access-key $AK --secret-key $SK \
        --label "$who" --seed "$run" $sc | tee -a "$results"
    done
  done
done
python3 conformance/bench/medians.py "$results" new old
for who in old new; do
  pid=$old_pid; [ "$who" = new ] && pid=$new_pid
  printf "peak RSS %s: %s MiB\n" "$who" $(($(grep VmHWM /proc/$pid/status | awk '{print $2}') / 1024))
done
