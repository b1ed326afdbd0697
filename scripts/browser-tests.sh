#!/usr/bin/env bash
# The end-to-end suite of browser mode in a real Chromium (Debian's `chromium`,
# driven by Python Playwright; no browser is downloaded).
# Usage: bash scripts/browser-tests.sh
# Needs Postgres (trust auth for postgres on 127.0.0.1), Redis and NATS as in
# the README, and the apt package `chromium`. Uses target/debug/bff (built with
# `cargo build -p bff-app` if missing). Writes target/browser-tests/ (the
# screenshot of the demo page after login, the app's log).
set -euo pipefail
cd "$(dirname "$0")/.."

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
PLAYWRIGHT_VERSION=1.65.2
if [ ! -x "$CHROMIUM" ]; then
  echo "$CHROMIUM is missing: apt-get install -y chromium" >&2
  exit 1
fi
[ -x target/debug/bff ] || cargo build --locked -q -p bff-app

out="$PWD/target/browser-tests"
mkdir -p "$out"
work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
app_port=$(free_port)
evil_port=$(free_port)
upstream_port=$(free_port)
gone_port=$(free_port) # nothing listens there: the proxy's 502
db="bff_browser_$$"
password="browser suite $$"
app_log="$out/app.log"
app_pid=""
cleanup() {
  if [ -n "$app_pid" ]; then kill "$app_pid" 2>/dev/null || true; wait "$app_pid" 2>/dev/null || true; fi
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

venv="${BROWSER_VENV:-$work/venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import playwright' 2>/dev/null; then
  python3 -m venv "$venv"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 "$venv/bin/pip" install -q --disable-pip-version-check \
    "playwright==$PLAYWRIGHT_VERSION"
fi

BFF_HTTP_ADDR="127.0.0.1:$app_port" \
  BFF_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" \
  BFF_REDIS_PREFIX="browser-$$:" \
  BFF_NATS_PREFIX="BROWSER_$$_" \
  BFF_SEED_PASSWORD="$password" \
  BFF_DEMO=true \
  BFF_PROXY_UPSTREAMS="echo=http://127.0.0.1:$upstream_port/base,gone=http://127.0.0.1:$gone_port/api" \
  BFF_PROXY_TIMEOUT=1s \
  target/debug/bff >"$app_log" 2>&1 &
app_pid=$!
ready=""
for _ in $(seq 1 120); do
  if curl -fsS "http://127.0.0.1:$app_port/healthz/ready" >/dev/null 2>&1; then ready=yes; break; fi
  kill -0 "$app_pid" 2>/dev/null || break
  sleep 0.5
done
if [ -z "$ready" ]; then
  echo "the app did not become ready; its log:" >&2
  cat "$app_log" >&2
  exit 1
fi

PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 "$venv/bin/python" reference-app/tests/browser/browser_suite.py \
  --app-port "$app_port" --evil-port "$evil_port" --upstream-port "$upstream_port" \
  --password "$password" --out "$out" --app-log "$app_log" --chromium "$CHROMIUM" ||
  { echo "the browser suite failed; the app's log: $app_log (last lines below)" >&2; tail -n 50 "$app_log" >&2; exit 1; }
