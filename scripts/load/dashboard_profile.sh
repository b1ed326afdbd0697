#!/usr/bin/env bash
# Where a loaded dashboard's CPU goes:
#
#   scripts/load/dashboard_profile.sh [DURATION] [CONNECTIONS]      (defaults: 10s 32)
#
# Runs the reference app (release build, response cache off, the orders
# service in-process over gRPC, the loyalty responder over NATS) for a
# customer with a wallet and an order, and loads GET /api/v1/dashboard with
# wrk after a 2 s warm-up. Meanwhile it reads the CPU time of every process
# involved (the app, PostgreSQL's processes, redis-server, nats-server, wrk)
# from /proc, and prints each one's share and its CPU microseconds per
# dashboard. With perf (Debian's linux-perf) it also samples the app's stacks
# and prints the share of the app's CPU under each part of the request
# (inclusive: JWT, session check, rate limiter, each query, gRPC, NATS, JSON).
#
# Needs wrk, curl and python3, and Postgres, Redis and NATS on loopback as for
# `cargo run -p bff-app`. PERF=0 skips the stack sampling.
set -euo pipefail
cd "$(dirname "$0")/../.."

duration=${1:-10s}
connections=${2:-32}
out=$(mktemp -d)
run=$(date +%s)
app=
cleanup() {
  [ -n "$app" ] && kill "$app" 2>/dev/null || true
  wait 2>/dev/null || true
  psql -qAt -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS bff_profile_$run WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$out"
}
trap cleanup EXIT

cargo build --release --locked -q -p bff-app
password="profile password $run"
BFF_DATABASE_URL="postgres://postgres@127.0.0.1:5432/bff_profile_$run" \
BFF_REDIS_PREFIX="profile:$run:" BFF_NATS_PREFIX="PROFILE_${run}_" \
BFF_HTTP_ADDR=127.0.0.1:18220 BFF_KEY_DIR="$out/keys" \
BFF_SEED_PASSWORD="$password" BFF_DASHBOARD_CACHE_TTL=0s \
BFF_RATE_LIMIT_PER_IP=100000000/1m BFF_RATE_LIMIT_PER_USER=100000000/1m \
BFF_NOTIFIER=false RUST_LOG=warn \
  target/release/bff >"$out/bff.log" 2>&1 &
app=$!
for _ in $(seq 1 300); do
  curl -fsS -o /dev/null http://127.0.0.1:18220/healthz/ready 2>/dev/null && break
  sleep 0.1
done
token=$(curl -fsS http://127.0.0.1:18220/api/v1/auth/login -H 'content-type: application/json' \
  -d "{\"identifier\":\"customer@example.com\",\"password\":\"$password\"}" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
auth="Authorization: Bearer $token"
curl -fsS http://127.0.0.1:18220/api/v1/wallets -H "$auth" -H 'content-type: application/json' -d '{"currency":"EUR"}' >/dev/null
curl -fsS http://127.0.0.1:18220/api/v1/orders -H "$auth" -H 'content-type: application/json' \
  -d '{"currency":"EUR","items":[{"sku":"A","quantity":1,"unit_price":"9.99"}]}' >/dev/null
curl -fsS http://127.0.0.1:18220/api/v1/dashboard -H "$auth" | python3 -c '
import json, sys
meta = json.load(sys.stdin)["meta"]
assert meta["complete"], meta
'

url=http://127.0.0.1:18220/api/v1/dashboard
wrk -t2 -c"$connections" -d2s -H "$auth" "$url" >/dev/null

# CPU ticks of the processes by group, before and after the measured run.
ticks() {
  python3 - "$app" <<'PY'
import os, sys
app = sys.argv[1]
groups = {"app (bff)": 0, "postgres": 0, "redis-server": 0, "nats-server": 0, "wrk": 0}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        continue
    name = stat[stat.index("(") + 1:stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2:].split()
    used = int(fields[11]) + int(fields[12])
    if pid == app:
        groups["app (bff)"] += used
    elif name.startswith("postgres"):
        groups["postgres"] += used
    elif name in groups:
        groups[name] += used
print(" ".join(f"{k.replace(' ', '_')}={v}" for k, v in groups.items()))
PY
}

before=$(ticks)
if [ "${PERF:-1}" != 0 ] && command -v perf >/dev/null; then
  perf record -q -F 499 --call-graph dwarf,32768 -p "$app" -o "$out/perf.data" -- sleep 6 >/dev/null 2>&1 &
  perf_pid=$!
fi
wrk -t2 -c"$connections" -d"$duration" --latency -H "$auth" "$url" >"$out/wrk.txt"
after=$(ticks)
[ -n "${perf_pid:-}" ] && wait "$perf_pid" || true
cat "$out/wrk.txt" >&2

python3 - "$out/wrk.txt" "$before" "$after" "$(getconf CLK_TCK)" "$duration" <<'PY'
import re, sys
text, before, after, hz, duration = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
total = int(re.search(r"(\d+) requests in", text).group(1))
seconds = float(duration.rstrip("s"))
parse = lambda s: {k: int(v) for k, v in (p.split("=") for p in s.split())}
b, a = parse(before), parse(after)
print(f"GET /api/v1/dashboard: {rps:,.0f} req/s ({total} in {duration}); CPU of 2 cores by process:")
print(f"{'process':<14}{'cores':>7}{'share':>8}{'CPU µs / dashboard':>21}")
used_total = sum(a[k] - b[k] for k in a)
for k in a:
    used = (a[k] - b[k]) / hz
    print(f"{k.replace('_', ' '):<14}{used / seconds:>7.2f}{100 * (a[k] - b[k]) / max(used_total, 1):>7.0f}%{1e6 * used / max(total, 1):>21.0f}")
print(f"{'all':<14}{used_total / hz / seconds:>7.2f}{'100%':>8}{1e6 * used_total / hz / max(total, 1):>21.0f}")
PY

if [ -f "$out/perf.data" ]; then
  perf report -i "$out/perf.data" --children --sort symbol --stdio -g none --percent-limit 0.3 2>/dev/null |
    grep -E '^ +[0-9]' >"$out/perf.txt" || true
  python3 - "$out/perf.txt" <<'PY'
import re, sys
rows = []
for line in open(sys.argv[1]):
    m = re.match(r"\s+([\d.]+)%\s+([\d.]+)%\s+\[\S\]\s+(.*)", line)
    if m:
        rows.append((float(m.group(1)), float(m.group(2)), m.group(3).strip()))
# Parts of a dashboard request, each by the first (outermost) frames that are it;
# inclusive shares overlap across nesting levels, so each part takes the
# largest inclusive share among its patterns.
parts = [
    ("HTTP server (hyper, whole request)", [r"hyper::proto::h1::dispatch::Dispatcher.*::poll_loop"]),
    ("JWT layer (verify or cache hit)", [r"bff_auth::layer::.*authenticate", r"JwtLayer"]),
    ("session check (Redis)", [r"session.*is_live", r"SessionGuard", r"session.*check"]),
    ("rate limiter (Redis)", [r"bff_cache::ratelimit"]),
    ("aggregate run", [r"bff_aggregate::aggregate::.*run"]),
    ("Postgres (sqlx, client side)", [r"sqlx_core::", r"sqlx_postgres::"]),
    ("gRPC client + in-process server (tonic)", [r"tonic::"]),
    ("NATS (async-nats)", [r"async_nats::"]),
    ("JSON (serde_json)", [r"serde_json::"]),
    ("token minting (Ed25519 signing)", [r"bff_auth::mint::", r"josekit::"]),
    ("Ed25519 / OpenSSL", [r"curve25519|ed25519", r"^EVP_|^ossl_|^ED25519"]),
    ("metrics", [r"metrics::|metrics_exporter|metrics_util"]),
    ("tracing / logging", [r"tracing::|tracing_core::|tracing_subscriber::"]),
    ("allocator", [r"^malloc$|^free$|^_int_malloc|^_int_free|^cfree|^realloc"]),
    ("kernel: network syscalls", [r"^__x64_sys_(sendto|recvfrom|write|read|writev|epoll_wait)|^tcp_sendmsg|^tcp_recvmsg"]),
]
print("\nThe app's CPU by part of the request (perf, inclusive; parts nest, so they do not add up):")
for label, patterns in parts:
    share = max((c for c, _, sym in rows if any(re.search(p, sym) for p in patterns)), default=0.0)
    print(f"  {label:<42}{share:>6.1f}%")
print("\nTop functions by own time:")
for c, s, sym in sorted(rows, key=lambda r: -r[1])[:15]:
    print(f"  {s:>5.1f}%  {sym[:100]}")
PY
fi
