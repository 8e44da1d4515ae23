#!/usr/bin/env bash
# Edge hardening figures (issue 11), release build, one gateway:
#  1. peak RSS while 3 unauthenticated 1 GiB form POSTs are refused;
#  2. a normal client's HEAD latency (p50/p99 of 500) and the gateway's CPU, with no
#     idle connections held and then with 2,000 held open — side by side in one run.
#   conformance/bench/edge.sh
# Not part of CI. Needs target/pyenv (scripts/test.sh makes it). Data under target/bench-edge.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p s3dedup-gateway --bin s3dedup
base=${BENCH_DIR:-$PWD/target/bench-edge}
rm -rf "$base"; mkdir -p "$base"
AK=BENCHACCESSKEY000001
SK=bench-secret-key-0123456789abcdefghijklmn
ulimit -n 8192
S3DEDUP_ROOT_ACCESS_KEY=$AK S3DEDUP_ROOT_SECRET_KEY=$SK S3DEDUP_LOG=warn \
  target/release/s3dedup serve --data-dir "$base/data" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
  > "$base/gw.out" 2> "$base/gw.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait 2>/dev/null; rm -rf "$base/data"' EXIT
for _ in $(seq 100); do grep -q "s3dedup listening" "$base/gw.out" 2>/dev/null && break; sleep 0.2; done
url=$(grep -o 's3=http://[^ ]*' "$base/gw.out" | cut -d= -f2)
echo "== $(nproc) cores, sha_ni: $(grep -qo sha_ni /proc/cpuinfo && echo yes || echo no); gateway $url pid $pid"
target/pyenv/bin/python - "$url" "$pid" "$AK" "$SK" <<'PY'
import socket, statistics, sys, threading, time
import boto3
from botocore.config import Config

url, pid, ak, sk = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
host, port = url.split("//")[1].split(":"); port = int(port)

def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
def cpu():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / 100.0

# 1. three unauthenticated 1 GiB form POSTs
base = rss(); peak = base; done = []
def post(i):
    s = socket.create_connection((host, port))
    s.sendall((f"POST /b{i} HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary=X\r\n"
               f"Content-Length: {1 << 30}\r\n\r\n--X\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n").encode())
    chunk = b"a" * (1 << 20); sent = 0
    try:
        while sent < (1 << 30):
            s.sendall(chunk); sent += len(chunk)
    except OSError:
        pass
    status = s.recv(64).split()[1:2]
    done.append((status, sent))
ts = [threading.Thread(target=post, args=(i,)) for i in range(3)]
for t in ts: t.start()
while any(t.is_alive() for t in ts):
    peak = max(peak, rss()); time.sleep(0.01)
print(f"form POSTs: answers {[d[0] for d in done]}, sent before refusal {[d[1] >> 20 for d in done]} MiB; "
      f"RSS {base >> 20} MiB -> peak {peak >> 20} MiB (+{(peak - base) >> 10} KiB)")

# 2. normal-client latency with 0 and 2,000 idle connections held
c = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id=ak,
                 aws_secret_access_key=sk, config=Config(retries={"max_attempts": 1}))
c.create_bucket(Bucket="edge"); c.put_object(Bucket="edge", Key="k", Body=b"x" * 4096)
def measure(label, n=500):
    lat = []; c0 = cpu(); t0 = time.time()
    for _ in range(n):
        s = time.perf_counter(); c.head_object(Bucket="edge", Key="k"); lat.append(time.perf_counter() - s)
    wall = time.time() - t0; used = cpu() - c0
    lat.sort()
    print(f"{label}: HEAD p50 {statistics.median(lat) * 1000:.2f} ms, p99 {lat[int(n * 0.99) - 1] * 1000:.2f} ms; "
          f"gateway CPU {used / wall * 100:.0f} % of a core over {wall:.1f} s; RSS {rss() >> 20} MiB")
    return lat
measure("no idle connections")
held = [socket.create_connection((host, port)) for _ in range(2000)]
time.sleep(1)
c0 = cpu(); time.sleep(3); idle = (cpu() - c0) / 3
print(f"2,000 idle connections held: gateway CPU while idle {idle * 100:.1f} %")
measure("2,000 idle connections held")
for s in held: s.close()
PY
