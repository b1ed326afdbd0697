#!/usr/bin/env bash
# Load test of POST /api/v1/auth/refresh against a release build of the app on
# this machine's Postgres, Redis and NATS. Prints wrk's report.
#
#   scripts/load/refresh.sh [DURATION] [CONNECTIONS]      (defaults: 20s 32)
#
# It uses a database (bff_load) and a Redis prefix (load:) of its own and drops
# the database afterwards. Needs wrk (Debian package `wrk`), curl and python3.
set -euo pipefail
cd "$(dirname "$0")/../.."

duration=${1:-20s}
connections=${2:-32}
threads=2
port=18088
sessions=$((connections * 2))
work=$(mktemp -d)
export BFF_HTTP_ADDR="127.0.0.1:$port"
export BFF_DATABASE_URL="postgres://postgres@127.0.0.1:5432/bff_load"
export BFF_REDIS_PREFIX="load:"
export BFF_SEED_PASSWORD="load test password"
export BFF_KEY_DIR="$work/keys"
export RUST_LOG=warn

cargo build --release --locked -q -p bff-app
target/release/bff >"$work/app.log" 2>&1 &
app=$!
cleanup() {
  kill "$app" 2>/dev/null || true
  wait "$app" 2>/dev/null || true
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS bff_load WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 1 120); do
  curl -fsS "http://127.0.0.1:$port/healthz/ready" >/dev/null 2>&1 && break
  sleep 0.5
done

echo "logging in $sessions sessions..."
for _ in $(seq 1 "$sessions"); do
  curl -fsS "http://127.0.0.1:$port/api/v1/auth/login" -H 'content-type: application/json' \
    -d '{"identifier":"customer@example.com","password":"load test password"}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["refresh_token"])'
done >"$work/tokens"

echo "wrk -t$threads -c$connections -d$duration (POST /api/v1/auth/refresh)"
TOKENS_FILE="$work/tokens" WRK_THREADS=$threads \
  wrk -t"$threads" -c"$connections" -d"$duration" --latency -s scripts/load/refresh.lua "http://127.0.0.1:$port"
