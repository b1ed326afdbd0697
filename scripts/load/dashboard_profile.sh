#!/usr/bin/env bash
# Where a loaded dashboard's CPU goes:
#
#   scripts/load/dashboard_profile.sh [DURATION] [CONNECTIONS]      (defaults: 10s 32)
#
# Runs the reference app (release build, response cache off, the orders
# service in-process over gRPC, the loyalty responder over NATS) for a
# customer with a wallet and an order, and loads GET /api/v1/dashboard with
# wrk after a 2 s warm-up. Meanwhile it reads the CPU time of every process
# involved (the app, PostgreSQL's processes, redis-server, nats-server; wrk
# has the rest of the two cores)
# from /proc, and prints each one's share and its CPU microseconds per
# dashboard. With perf (Debian's linux-perf) it also samples the app for 6 s
# and prints the app's CPU by component (self time: kernel networking,
# allocator, sqlx, tonic, async-nats, redis, hyper, serde_json, tokio,
# tracing, metrics, crypto, our crates) and its top functions.
#
# Needs wrk, curl and python3, and Postgres, Redis and NATS on loopback as for
# `cargo run -p bff-app`. PERF=0 skips the stack sampling; BFF_BIN picks the
# binary (default: a release build, made if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."

duration=${1:-10s}
connections=${2:-32}
source scripts/load/lib.sh
export BFF_DASHBOARD_CACHE_TTL=0s BFF_NOTIFIER=false
export BFF_RATE_LIMIT_PER_IP=100000000/1m BFF_RATE_LIMIT_PER_USER=100000000/1m
app_start dashboard_profile 18220
out=$work
token=$(app_login)
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
groups = {"app (bff)": 0, "postgres": 0, "redis-server": 0, "nats-server": 0}
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
  perf record -q -F 999 -p "$app" -o "$out/perf.data" -- sleep 6 >/dev/null 2>&1 &
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
  perf report -i "$out/perf.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null |
    grep -E '^ +[0-9]' >"$out/perf.txt" || true
  python3 - "$out/perf.txt" <<'PY'
import re, sys
# Self time (each sample counted once, so the groups add up to 100%), grouped
# by what the function belongs to.
groups = [
    ("kernel: TCP, syscalls, scheduling", lambda dso, sym: dso.startswith("[kernel")),
    ("allocator (malloc, free)", lambda dso, sym: re.search(r"malloc|free|realloc|unlink_chunk|consolidate", sym)),
    ("memcpy, memmove, memcmp", lambda dso, sym: re.search(r"mem(cpy|move|cmp|set)", sym)),
    ("Postgres client (sqlx)", lambda dso, sym: "sqlx" in sym),
    ("gRPC (tonic, h2, prost)", lambda dso, sym: re.search(r"\b(tonic|h2|prost)::", sym)),
    ("NATS (async-nats)", lambda dso, sym: "async_nats" in sym),
    ("Redis (redis, combine)", lambda dso, sym: re.search(r"\b(redis|combine)::", sym)),
    ("HTTP (hyper, httparse, http)", lambda dso, sym: re.search(r"\b(hyper|httparse|http|hyper_util)::", sym)),
    ("JSON (serde_json)", lambda dso, sym: "serde_json" in sym),
    ("tokio (scheduler, I/O, timers, channels)", lambda dso, sym: "tokio" in sym),
    ("tracing", lambda dso, sym: re.search(r"\btracing(_core|_subscriber)?::", sym)),
    ("metrics", lambda dso, sym: re.search(r"\bmetrics(_util|_exporter_prometheus)?::", sym)),
    ("crypto (SHA-256, Ed25519, OpenSSL)", lambda dso, sym: re.search(r"sha2|curve25519|ed25519|libcrypto", sym + dso)),
    ("the app and the bff crates", lambda dso, sym: re.search(r"\bbff_(app|core|auth|rbac|cache|aggregate)::|<bff_", sym)),
]
totals = {label: 0.0 for label, _ in groups}
other = 0.0
top = []
for line in open(sys.argv[1]):
    m = re.match(r"\s+([\d.]+)%\s+(\S+)\s+\[\S\]\s+(.*)", line)
    if not m:
        continue
    share, dso, sym = float(m.group(1)), m.group(2), m.group(3).strip()
    top.append((share, sym))
    for label, test in groups:
        if test(dso, sym):
            totals[label] += share
            break
    else:
        other += share
print("\nThe app's CPU by component (perf, self time):")
for label, _ in groups:
    print(f"  {label:<44}{totals[label]:>6.1f}%")
print(f"  {'other (std, futures, compression, ...)':<44}{other:>6.1f}%")
print("\nTop functions by self time:")
for share, sym in sorted(top, reverse=True)[:12]:
    print(f"  {share:>5.1f}%  {sym[:100]}")
PY
fi
