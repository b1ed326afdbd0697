#!/usr/bin/env bash
# The cost of browser mode: GET /api/v1/me authenticated by the session cookie
# (a Redis lookup that extends the idle timeout, plus the CSRF rule) against the
# same request with a bearer token (a JWT verified from the layer's cache plus
# the session check), in one run, against a release build of the app on this
# machine's Postgres, Redis and NATS. Prints both wrk reports and the ratio.
#
#   scripts/load/browser.sh [DURATION] [CONNECTIONS]      (defaults: 10s 32)
#
# It uses a database and Redis and NATS prefixes of its own and drops the
# database afterwards (scripts/load/lib.sh). Needs wrk, curl and python3.
set -euo pipefail
cd "$(dirname "$0")/../.."

duration=${1:-10s}
connections=${2:-32}
threads=2
source scripts/load/lib.sh
export BFF_RATE_LIMIT=false BFF_DEMO=false
app_start browser 18089

body="{\"identifier\":\"customer@example.com\",\"password\":\"$BFF_SEED_PASSWORD\"}"
token=$(app_login)
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
