#!/usr/bin/env bash
# PUT/GET throughput with inline scanning on vs off: two gateways, same client and data,
# alternating runs; a private clamd (Debian's clamav-daemon) with a one-line signature.
#   RUNS=3 conformance/bench/scan-on-off.sh
# Not part of CI. Data goes under $BENCH_DIR (default: target/bench-scan).
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${RUNS:-3}
cargo build --release -q -p s3dedup-gateway --bin s3dedup -p s3dedup-conformance --bin s3dedup-bench
base=${BENCH_DIR:-$PWD/target/bench-scan}
rm -rf "$base"; mkdir -p "$base/clamd/db"
AK=BENCHACCESSKEY000001
SK=bench-secret-key-0123456789abcdefghijklmn
results="$base/results.jsonl"

eicar='X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'
printf 'S3dedup.Test.EICAR:0:*:%s\n' "$(printf '%s' "$eicar" | od -An -tx1 | tr -d ' \n')" \
  > "$base/clamd/db/test.ndb"
clamd_port=$((20000 + RANDOM % 20000))
cat > "$base/clamd/clamd.conf" <<CONF
Foreground yes
TCPAddr 127.0.0.1
TCPSocket $clamd_port
DatabaseDirectory $base/clamd/db
LogFile $base/clamd/clamd.log
TemporaryDirectory $base/clamd
StreamMaxLength 256M
MaxFileSize 256M
MaxScanSize 512M
AlertExceedsMax yes
CONF
/usr/sbin/clamd -c "$base/clamd/clamd.conf" > /dev/null 2>&1 &
clamd_pid=$!

start_gw() { # name, extra env...
  local name=$1; shift
  env "$@" S3DEDUP_ROOT_ACCESS_KEY=$AK S3DEDUP_ROOT_SECRET_KEY=$SK S3DEDUP_LOG=warn \
    target/release/s3dedup serve --data-dir "$base/$name" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    > "$base/$name.out" 2> "$base/$name.log" &
  echo $!
}
off_pid=$(start_gw off)
on_pid=$(start_gw on S3DEDUP_CLAMD=tcp://127.0.0.1:$clamd_port S3DEDUP_SCAN_MAX_SIZE=$((256 << 20)))
# Stop everything and drop the data directories; keep the results.
trap 'kill $off_pid $on_pid $clamd_pid 2>/dev/null || true; wait 2>/dev/null; rm -rf "$base/off" "$base/on"' EXIT
for _ in $(seq 100); do
  grep -q "s3dedup listening" "$base/off.out" 2>/dev/null && grep -q "s3dedup listening" "$base/on.out" 2>/dev/null && break
  sleep 0.2
done
url() { grep -o 's3=http://[^ ]*' "$base/$1.out" | cut -d= -f2; }
for _ in $(seq 300); do
  curl -fs "http://$(grep -o 'admin=http://[^ ]*' "$base/on.out" | cut -d/ -f3)/health/ready" > /dev/null && break
  sleep 0.5
done
echo "scan off at $(url off), scan on at $(url on) (clamd :$clamd_port); $runs runs; $(nproc) cores"

scenarios=(
  "large --streams 1 --size-mib 200 --dup-fraction 0"
  "large --streams 4 --size-mib 100 --dup-fraction 0"
  "small --count 2000 --size-kib 4 --concurrency 32"
)
for run in $(seq "$runs"); do
  for sc in "${scenarios[@]}"; do
    if [ $((run % 2)) -eq 1 ]; then order="off on"; else order="on off"; fi
    for who in $order; do
      # shellcheck disable=SC2086
      target/release/s3dedup-bench --endpoint "$(url $who)" --access-key $AK --secret-key $SK \
        --label "scan-$who" --seed "$run" $sc | tee -a "$results"
    done
  done
done
python3 conformance/bench/medians.py "$results" scan-on scan-off
