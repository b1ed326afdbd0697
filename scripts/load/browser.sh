#!/usr/bin/env bash
# The cost of browser mode: GET /api/v1/me authenticated by the session cookie
# (a Redis lookup that extends the idle timeout, plus the CSRF rule) against the
# same request with a bearer token (a JWT verified from the layer's cache plus
# the session check), in one run, against a release build of the app on this
# machine's Postgres, Redis and NATS. Prints both wrk reports and the ratio.
#
#   scripts/load/browser.sh [DURATION] [CONNECTIONS]      (defaults: 10s 32)
#
# It uses a database (bff_load_browser) and a Redis prefix of its own and drops
# the database afterwards. Needs wrk, curl and python3.
set -euo pipefail
cd "$(dirname "$0")/../.."

duration=${1:-10s}
connections=${2:-32}
threads=2
port=18089
work=$(mktemp -d)
export BFF_HTTP_ADDR="127.0.0.1:$port"
export BFF_DATABASE_URL="postgres://postgres@127.0.0.1:5432/bff_load_browser"
export BFF_REDIS_PREFIX="load-browser:"
export BFF_NATS_PREFIX="LOAD_BROWSER_"
export BFF_SEED_PASSWORD="load test password"
export BFF_KEY_DIR="$work/keys"
export BFF_RATE_LIMIT=false
export BFF_DEMO=false
export RUST_LOG=warn

cargo build --release --locked -q -p bff-app
target/release/bff >"$work/app.log" 2>&1 &
app=$!
cleanup() {
  kill "$app" 2>/dev/null || true
  wait "$app" 2>/dev/null || true
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS bff_load_browser WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 1 120); do
  curl -fsS "http://127.0.0.1:$port/healthz/ready" >/dev/null 2>&1 && break
  sleep 0.5
done

base="http://127.0.0.1:$port"
body='{"identifier":"customer@example.com","password":"load test password"}'
token=$(curl -fsS "$base/api/v1/auth/login" -H 'content-type: application/json' -d "$body" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
cookie=$(curl -fsS -D - -o /dev/null "$base/bff/login" -H 'content-type: application/json' -H 'x-csrf: 1' -d "$body" |
  tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: \(__Host-Http-bff=[^;]*\).*/\1/p')
[ -n "$cookie" ] || { echo "no session cookie" >&2; exit 1; }

run() {
  local name=$1
  shift
  wrk -t"$threads" -c"$connections" -d2s "$@" "$base/api/v1/me" >/dev/null
  wrk -t"$threads" -c"$connections" -d"$duration" --latency "$@" "$base/api/v1/me" >"$work/$name.txt"
  echo "== $name"
  grep -E "Requests/sec|^ +(50|99)%|Non-2xx" "$work/$name.txt" || true
}
run bearer -H "Authorization: Bearer $token"
run cookie -H "Cookie: $cookie" -H "X-CSRF: 1"
python3 - "$work/bearer.txt" "$work/cookie.txt" <<'PY'
import re, sys
rps = [float(re.search(r"Requests/sec:\s+([\d.]+)", open(p).read()).group(1)) for p in sys.argv[1:]]
print(f"cookie / bearer throughput: {rps[1] / rps[0]:.2f}")
PY
