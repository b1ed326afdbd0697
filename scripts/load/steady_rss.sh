#!/usr/bin/env bash
# Resident memory under a steady rate: GET /api/v1/me at RATE requests per
# second for DURATION, with oha (`cargo install oha`, from crates.io), printing
# the app's RSS before, every 10 s, after, its peak (VmHWM), and what oha got.
#
#   scripts/load/steady_rss.sh [RATE] [DURATION]      (defaults: 5000 60s)
#
# BFF_BIN picks the binary (default: a release build, made if missing). Uses a
# database and Redis and NATS prefixes of its own. Needs curl and python3, and
# Postgres, Redis and NATS on loopback as for `cargo run -p bff-app`.
set -euo pipefail
cd "$(dirname "$0")/../.."

rate=${1:-5000}
duration=${2:-60s}
command -v oha >/dev/null || { echo "oha is needed: cargo install oha" >&2; exit 1; }
source scripts/load/lib.sh
export BFF_NOTIFIER=false
export BFF_RATE_LIMIT_PER_IP=100000000/1m BFF_RATE_LIMIT_PER_USER=100000000/1m
app_start steady_rss 18230
port=18230
token=$(app_login)

memory() { awk '/^VmRSS|^VmHWM/ {printf "%s %d MB  ", $1, $2 / 1024}' "/proc/$app/status"; echo; }
echo "before: $(memory)"
oha --no-tui -z "$duration" -q "$rate" -c 64 -H "Authorization: Bearer $token" \
  "http://127.0.0.1:$port/api/v1/me" >"$work/oha.txt" 2>&1 &
load=$!
seconds=0
while kill -0 "$load" 2>/dev/null; do
  sleep 10
  seconds=$((seconds + 10))
  kill -0 "$load" 2>/dev/null && echo "${seconds} s: $(memory)"
done
wait "$load" || true
echo "after: $(memory)"
grep -E "Success rate|Requests/sec|Slowest|Fastest|Average|  50.00%|  99.00%|\[200\]|\[[0-9]{3}\]" "$work/oha.txt" || cat "$work/oha.txt"
