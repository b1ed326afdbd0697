# Shared by the load scripts that run the reference app (source it, do not run it).
#
#   source scripts/load/lib.sh
#   app_start NAME PORT     # after exporting any extra BFF_* settings
#   token=$(app_login "$BFF_SEED_PASSWORD")
#
# app_start gives the app a database (bff_load_NAME), Redis and NATS prefixes
# and a key directory of its own, starts BFF_BIN (default: a release build,
# made if missing) with RUST_LOG=warn, waits until it is ready, and on exit
# stops it, drops the database and removes $work. It sets $app (the pid),
# $base (http://127.0.0.1:PORT) and $work (a scratch directory).

# wait_for URL: until URL answers 2xx, at most 30 s.
wait_for() {
  for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "timed out waiting for $1" >&2
  return 1
}

app_start() {
  local name=$1 port=$2
  work=${work:-$(mktemp -d)}
  base="http://127.0.0.1:$port"
  load_database="bff_load_$name"
  export BFF_HTTP_ADDR="127.0.0.1:$port"
  export BFF_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$load_database"
  export BFF_REDIS_PREFIX="load-$name:"
  export BFF_NATS_PREFIX="LOAD_${name^^}_"
  export BFF_KEY_DIR="$work/keys"
  export BFF_SEED_PASSWORD=${BFF_SEED_PASSWORD:-"load test password"}
  export RUST_LOG=${RUST_LOG:-warn}
  local bin=${BFF_BIN:-target/release/bff}
  if [ -z "${BFF_BIN:-}" ]; then cargo build --release --locked -q -p bff-app; fi
  "$bin" >"$work/app.log" 2>&1 &
  app=$!
  trap app_stop EXIT
  wait_for "$base/healthz/ready" || { cat "$work/app.log" >&2; return 1; }
}

app_stop() {
  kill "$app" 2>/dev/null || true
  wait "$app" 2>/dev/null || true
  psql -qAt -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $load_database WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}

# app_login [FIELD]: logs the seeded customer in and prints FIELD of the
# answer (default access_token).
app_login() {
  curl -fsS "$base/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"identifier\":\"customer@example.com\",\"password\":\"$BFF_SEED_PASSWORD\"}" |
    python3 -c "import json,sys; print(json.load(sys.stdin)[\"${1:-access_token}\"])"
}
