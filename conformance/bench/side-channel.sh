#!/usr/bin/env bash
# The cross-tenant timing side channel of dedup (issue 16), in both dedup scopes, one run:
# tenant "victim" stores TRIALS objects of random content; tenant "probe" then PUTs, in a
# shuffled order, TRIALS objects whose content the victim already stored ("known") and
# TRIALS of fresh random content ("fresh"), timing each PUT. The figure is the AUC of the
# best one-threshold classifier on latency ("known" if faster): P(known PUT faster than a
# fresh PUT), with a bootstrap 95 % interval. 0.5 = latency tells nothing.
#   conformance/bench/side-channel.sh                 # release build
#   S3DEDUP_BIN=target/debug/s3dedup conformance/bench/side-channel.sh
# Settings: TRIALS (200), SIZE (bytes per object, 1048576), SCOPES ("global tenant").
# Not part of CI. Needs target/pyenv (scripts/test.sh makes it). Data under target/bench-side.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${S3DEDUP_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release -q -p s3dedup-gateway --bin s3dedup
  bin=target/release/s3dedup
fi
base=${BENCH_DIR:-$PWD/target/bench-side}
TRIALS=${TRIALS:-200}
SIZE=${SIZE:-1048576}
AK=BENCHACCESSKEY000001
SK=bench-secret-key-0123456789abcdefghijklmn
echo "== $(nproc) cores, sha_ni: $(grep -qo sha_ni /proc/cpuinfo && echo yes || echo no); $bin; $TRIALS trials each of $SIZE bytes"
pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null || true' EXIT
for scope in ${SCOPES:-global tenant}; do
  rm -rf "$base"; mkdir -p "$base"
  S3DEDUP_ROOT_ACCESS_KEY=$AK S3DEDUP_ROOT_SECRET_KEY=$SK S3DEDUP_LOG=warn S3DEDUP_DEDUP_SCOPE=$scope \
    "$bin" serve --data-dir "$base/data" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    > "$base/gw.out" 2> "$base/gw.log" &
  pid=$!
  for _ in $(seq 100); do grep -q "s3dedup listening" "$base/gw.out" 2>/dev/null && break; sleep 0.2; done
  url=$(grep -o 's3=http://[^ ]*' "$base/gw.out" | cut -d= -f2)
  admin() { "$bin" admin "$@" --data-dir "$base/data"; }
  admin tenant create victim > /dev/null
  admin tenant create probe > /dev/null
  victim=$(admin key create --tenant victim --json)
  probe=$(admin key create --tenant probe --json)
  echo "-- dedup_scope = $scope"
  target/pyenv/bin/python - "$url" "$victim" "$probe" "$TRIALS" "$SIZE" <<'PY'
import json, os, random, statistics, sys, time
import boto3
from botocore.config import Config

url, victim, probe = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
trials, size = int(sys.argv[4]), int(sys.argv[5])

def client(k):
    return boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id=k["access_key"], aws_secret_access_key=k["secret_key"],
                        config=Config(retries={"max_attempts": 1}))

v, p = client(victim), client(probe)
v.create_bucket(Bucket="victim-b"); p.create_bucket(Bucket="probe-b")
# All bodies are made up front, interleaved, and the victim stores a random half of them:
# "known" and "fresh" bodies differ only in whether the victim stored them (not in when
# the client made them, which shows in latency on its own).
bodies = [os.urandom(size) for _ in range(2 * trials)]
pick = random.Random(16)
pick.shuffle(bodies)
known, fresh = bodies[:trials], bodies[trials:]
for i, d in enumerate(known):
    v.put_object(Bucket="victim-b", Key=f"o{i}", Body=d)
for i in range(20):  # warm-up, not counted
    p.put_object(Bucket="probe-b", Key=f"warm{i}", Body=os.urandom(size))
plan = [("known", d) for d in known] + [("fresh", d) for d in fresh]
pick.shuffle(plan)
lat = {"known": [], "fresh": []}
for i, (kind, body) in enumerate(plan):
    t = time.perf_counter()
    p.put_object(Bucket="probe-b", Key=f"p{i}", Body=body)
    lat[kind].append(time.perf_counter() - t)

def auc(k, f):
    # Mann-Whitney U by ranks: P(a known PUT is faster than a fresh one), ties half.
    allv = sorted([(x, 0) for x in k] + [(x, 1) for x in f])
    ranks, i = {}, 0
    rank_sum_fresh = 0.0
    while i < len(allv):
        j = i
        while j < len(allv) and allv[j][0] == allv[i][0]:
            j += 1
        r = (i + j + 1) / 2
        rank_sum_fresh += r * sum(1 for x in allv[i:j] if x[1] == 1)
        i = j
    u = rank_sum_fresh - len(f) * (len(f) + 1) / 2
    return u / (len(k) * len(f))

k, f = lat["known"], lat["fresh"]
a = auc(k, f)
rng = random.Random(7)
boot = sorted(auc([rng.choice(k) for _ in k], [rng.choice(f) for _ in f]) for _ in range(300))
ms = lambda xs: statistics.median(xs) * 1000
q = lambda xs, p: sorted(xs)[int(p * (len(xs) - 1))] * 1000
print(f"   known: median {ms(k):.2f} ms (p10 {q(k, .1):.2f}, p90 {q(k, .9):.2f}), n={len(k)}")
print(f"   fresh: median {ms(f):.2f} ms (p10 {q(f, .1):.2f}, p90 {q(f, .9):.2f}), n={len(f)}")
print(f"   AUC {a:.3f} (bootstrap 95 % {boot[7]:.3f}..{boot[292]:.3f})")
PY
  kill $pid; wait $pid 2>/dev/null || true; pid=""
done
rm -rf "$base/data"
