#!/usr/bin/env bash
# Load test of POST /api/v1/auth/refresh against a release build of the app on
# this machine's Postgres, Redis and NATS. Prints wrk's report.
#
#   scripts/load/refresh.sh [DURATION] [CONNECTIONS]      (defaults: 20s 32)
#
# It uses a database and Redis and NATS prefixes of its own and drops the
# database afterwards (scripts/load/lib.sh). Needs wrk (Debian package `wrk`), curl and python3.
set -euo pipefail
cd "$(dirname "$0")/../.."

duration=${1:-20s}
connections=${2:-32}
threads=2
sessions=$((connections * 2))
source scripts/load/lib.sh
app_start refresh 18088
port=18088

echo "logging in $sessions sessions..."
for _ in $(seq 1 "$sessions"); do app_login refresh_token; done >"$work/tokens"

echo "wrk -t$threads -c$connections -d$duration (POST /api/v1/auth/refresh)"
TOKENS_FILE="$work/tokens" WRK_THREADS=$threads \
  wrk -t"$threads" -c"$connections" -d"$duration" --latency -s scripts/load/refresh.lua "http://127.0.0.1:$port"
