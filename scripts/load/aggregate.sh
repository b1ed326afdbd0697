#!/usr/bin/env bash
# The dashboard's fan-out, measured in one run with wrk:
#
#   scripts/load/aggregate.sh [DURATION] [CONNECTIONS]      (defaults: 10s 32)
#
# 1. Three HTTP backends answering after 10, 15 and 20 ms, and a bare hyper BFF
#    serving the three calls through bff-aggregate (/dashboard), the same calls
#    one after another (/sequential), and a hello-world (/hello, the ceiling).
# 2. The reference app's real GET /api/v1/dashboard (Postgres, gRPC orders
#    service, NATS loyalty; release build, cache off), with the sources'
#    durations from its `meta`.
#
# Needs wrk, curl and python3; part 2 needs Postgres, Redis and NATS on
# loopback as for `cargo run -p bff-app`.
set -euo pipefail
cd "$(dirname "$0")/../.."

duration=${1:-10s}
connections=${2:-32}
threads=2
out=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

# wait_for URL
source scripts/load/lib.sh

# measure NAME CONNECTIONS URL [wrk options]
measure() {
  local name=$1 c=$2
  shift 2
  local t=$((c < threads ? c : threads))
  wrk -t"$t" -c"$c" -d2s "$@" >/dev/null
  wrk -t"$t" -c"$c" -d"$duration" --latency "$@" >"$out/$name.txt"
  cat "$out/$name.txt" >&2
}

cargo build --release --locked -q --example aggregate_load -p bff-examples
cargo build --release --locked -q -p bff-app
load=target/release/examples/aggregate_load

"$load" backends 127.0.0.1:18201 &
pids+=($!)
"$load" bff 127.0.0.1:18200 127.0.0.1:18201 &
pids+=($!)
wait_for http://127.0.0.1:18200/hello
measure hello "$connections" http://127.0.0.1:18200/hello
# The slowest backend alone: what the dashboard's p50 is compared with.
measure slowest "$connections" http://127.0.0.1:18201/loyalty
measure dashboard "$connections" http://127.0.0.1:18200/dashboard
measure sequential "$connections" http://127.0.0.1:18200/sequential

# The reference app, release build, its own database and prefixes.
run=$(date +%s)
password="load test password $run"
BFF_DATABASE_URL="postgres://postgres@127.0.0.1:5432/bff_load_$run" \
BFF_REDIS_PREFIX="load:$run:" BFF_NATS_PREFIX="LOAD_${run}_" \
BFF_HTTP_ADDR=127.0.0.1:18210 BFF_KEY_DIR="$out/keys" \
BFF_SEED_PASSWORD="$password" BFF_DASHBOARD_CACHE_TTL=0s \
BFF_RATE_LIMIT_PER_IP=100000000/1m BFF_RATE_LIMIT_PER_USER=100000000/1m \
BFF_NOTIFIER=false RUST_LOG=warn \
  target/release/bff >"$out/bff.log" 2>&1 &
pids+=($!)
wait_for http://127.0.0.1:18210/healthz/ready
token=$(curl -fsS http://127.0.0.1:18210/api/v1/auth/login -H 'content-type: application/json' \
  -d "{\"identifier\":\"customer@example.com\",\"password\":\"$password\"}" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
auth="Authorization: Bearer $token"
curl -fsS http://127.0.0.1:18210/api/v1/wallets -H "$auth" -H 'content-type: application/json' -d '{"currency":"EUR"}' >/dev/null
curl -fsS http://127.0.0.1:18210/api/v1/orders -H "$auth" -H 'content-type: application/json' \
  -d '{"currency":"EUR","items":[{"sku":"A","quantity":1,"unit_price":"9.99"}]}' >/dev/null
for _ in $(seq 1 50); do
  curl -fsS http://127.0.0.1:18210/api/v1/dashboard -H "$auth" >>"$out/samples.jsonl"
  echo >>"$out/samples.jsonl"
done
# Latency with one client (no queueing), then throughput under load.
measure app1 1 http://127.0.0.1:18210/api/v1/dashboard -H "$auth"
measure app "$connections" http://127.0.0.1:18210/api/v1/dashboard -H "$auth"
psql_cleanup() { psql -qAt -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS bff_load_$run WITH (FORCE)" >/dev/null 2>&1 || true; }

python3 - "$out" <<'PY'
import json, re, statistics, sys
out = sys.argv[1]

def wrk(name):
    text = open(f"{out}/{name}.txt").read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", text)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50.group(2)]
    return rps, float(p50.group(1)) * scale

hello, slowest, dash, seq, app1, app = (
    wrk(n) for n in ("hello", "slowest", "dashboard", "sequential", "app1", "app"))
print(f"hello-world (ceiling):        {hello[0]:>10,.0f} req/s  p50 {hello[1]:7.2f} ms")
print(f"slowest backend alone (20ms): {slowest[0]:>10,.0f} req/s  p50 {slowest[1]:7.2f} ms")
print(f"bff-aggregate, 10/15/20 ms:   {dash[0]:>10,.0f} req/s  p50 {dash[1]:7.2f} ms  (p50 over the slowest source's: {dash[1] - slowest[1]:+.2f} ms)")
print(f"sequential, 10+15+20 ms:      {seq[0]:>10,.0f} req/s  p50 {seq[1]:7.2f} ms")
print(f"aggregate / sequential:       {dash[0] / seq[0]:.2f}x throughput")
samples = [json.loads(l) for l in open(f"{out}/samples.jsonl") if l.strip()]
slowest_ms = [max(s["duration_ms"] for s in d["meta"]["sources"].values()) for d in samples]
complete = sum(d["meta"]["complete"] for d in samples)
print(f"reference app dashboard, 1 client: {app1[0]:>7,.0f} req/s  p50 {app1[1]:7.2f} ms  "
      f"(median slowest source {statistics.median(slowest_ms):.0f} ms, whole-ms resolution; {complete}/{len(samples)} complete)")
print(f"reference app dashboard, loaded:   {app[0]:>7,.0f} req/s  p50 {app[1]:7.2f} ms  (CPU-bound: the 2 cores also run wrk and the backends)")
PY
kill "${pids[@]}" 2>/dev/null || true
wait 2>/dev/null || true
psql_cleanup
