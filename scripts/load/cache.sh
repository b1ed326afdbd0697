#!/usr/bin/env bash
# A cached GET through bff-cache's rate limiter and response cache, against a
# bare hyper hello-world, one after the other in the same run, with wrk:
#
#   scripts/load/cache.sh [DURATION] [CONNECTIONS]      (defaults: 15s 64)
#
# Prints each server's requests per second and the layered server's share of
# the bare one's. Needs wrk (Debian package `wrk`). No other infrastructure.
set -euo pipefail
cd "$(dirname "$0")/../.."

duration=${1:-15s}
connections=${2:-64}
threads=2

cargo build --release --locked -q --example load_target
binary=target/release/examples/load_target

run() {
  local mode=$1 port=$2
  "$binary" "$mode" "127.0.0.1:$port" &
  local pid=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/" >/dev/null 2>&1 && break
    sleep 0.05
  done
  # Warm the cache and the connections, then measure.
  wrk -t"$threads" -c"$connections" -d2s "http://127.0.0.1:$port/" >/dev/null
  wrk -t"$threads" -c"$connections" -d"$duration" "http://127.0.0.1:$port/" | tee "/tmp/bff-load-$mode.txt" >&2
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  awk '/Requests\/sec/ {print $2}' "/tmp/bff-load-$mode.txt"
}

bare=$(run bare 18101)
layered=$(run layered 18102)
python3 - "$bare" "$layered" <<'PY'
import sys
bare, layered = float(sys.argv[1]), float(sys.argv[2])
print(f"bare hyper hello-world: {bare:,.0f} requests/s")
print(f"through rate limit + response cache (HIT): {layered:,.0f} requests/s")
print(f"layered / bare: {100 * layered / bare:.0f}%")
PY
