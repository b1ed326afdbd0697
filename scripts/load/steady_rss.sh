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
run=$(date +%s)
work=$(mktemp -d)
port=18230
bin=${BFF_BIN:-target/release/bff}
if [ -z "${BFF_BIN:-}" ]; then cargo build --release --locked -q -p bff-app; fi
password="steady password $run"
BFF_DATABASE_URL="postgres://postgres@127.0.0.1:5432/bff_steady_$run" \
BFF_REDIS_PREFIX="steady:$run:" BFF_NATS_PREFIX="STEADY_${run}_" \
BFF_HTTP_ADDR="127.0.0.1:$port" BFF_KEY_DIR="$work/keys" \
BFF_SEED_PASSWORD="$password" BFF_NOTIFIER=false RUST_LOG=warn \
BFF_RATE_LIMIT_PER_IP=100000000/1m BFF_RATE_LIMIT_PER_USER=100000000/1m \
  "$bin" >"$work/app.log" 2>&1 &
app=$!
cleanup() {
  kill "$app" 2>/dev/null || true
  wait "$app" 2>/dev/null || true
  psql -qAt -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS bff_steady_$run WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 1 300); do
  curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz/ready" 2>/dev/null && break
  sleep 0.1
done
token=$(curl -fsS "http://127.0.0.1:$port/api/v1/auth/login" -H 'content-type: application/json' \
  -d "{\"identifier\":\"customer@example.com\",\"password\":\"$password\"}" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

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
