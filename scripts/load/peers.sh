#!/usr/bin/env bash
# bff-aggregate side by side with the peers of ../shared/peers, in one run:
#
#   scripts/load/peers.sh [DURATION] [CONNECTIONS]      (defaults: 8s 64)
#
# The work (../shared/peers/README.md): three JSON backends (nginx + lua, one
# worker, 127.0.0.1:18081-18083) and an aggregator answering GET /agg with the
# three bodies fetched at once, each parsed as JSON, merged into one object.
# Aggregators: nginx + lua (capture_multi) with 1 and 2 workers, Go's standard
# library, Node.js Fastify + undici (2 processes), and bff-aggregate on bare
# hyper (`cargo run --release --example aggregate_load -- peer`) calling the
# backends with `http::Backend`, and the same with hyper-util's general client
# (`peer-legacy`: `http::send`). Each is
# measured with `wrk -t1 -cCONNECTIONS` after a 2 s warm-up, once with
# backends answering at once and once with 20 ms backends (`?d=20`, compared
# with the slowest backend called alone). The ratios are to bff-aggregate.
#
# Installs what the peers need from Debian's packages and the npm registry
# when it can (root, or sudo); a peer whose packages are missing is skipped
# with a message. PEERS_DIR overrides where the peers are. BASELINE_BIN=path
# adds the `peer` mode of another build of the example (say, of the commit
# before a change) as "bff-aggregate, baseline", measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

duration=${1:-8s}
connections=${2:-64}
peers=$(cd "${PEERS_DIR:-$root/../shared/peers}" && pwd)
work=$(mktemp -d)
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  for pid in "$work"/nginx-*.pid; do
    [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi; }
have_package() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
# ensure PACKAGE...: installs the missing ones; fails if it cannot.
ensure() {
  local missing=()
  for pkg in "$@"; do have_package "$pkg" || missing+=("$pkg"); done
  [ "${#missing[@]}" -eq 0 ] && return 0
  echo "installing ${missing[*]}" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 ||
    { as_root apt-get update -qq >/dev/null 2>&1 &&
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; }
}

# wait_for URL
source scripts/load/lib.sh

command -v wrk >/dev/null || ensure wrk || { echo "wrk is needed (apt: wrk)" >&2; exit 1; }
if ! ensure nginx-light libnginx-mod-http-lua lua-cjson; then
  echo "the backends need nginx + lua (apt: nginx-light libnginx-mod-http-lua lua-cjson): cannot run" >&2
  exit 1
fi

# nginx writes its pid where the peers' configs say (/tmp/nginx-*.pid); run
# copies that write into this run's directory instead.
sed "s|/tmp/nginx-backends.pid|$work/nginx-backends.pid|" "$peers/nginx-lua/backends.conf" >"$work/backends.conf"
sed "s|/tmp/nginx-agg.pid|$work/nginx-agg.pid|" "$peers/nginx-lua/agg.conf" >"$work/agg.conf"
nginx -p "$work" -c "$work/backends.conf"
wait_for "http://127.0.0.1:18081/"

# name -> URL of /agg, in the order measured.
names=()
declare -A url

echo "building bff-aggregate's peer (release)" >&2
cargo build --release --locked -q --example aggregate_load -p bff-examples
target/release/examples/aggregate_load peer 127.0.0.1:18092 &
pids+=($!)
target/release/examples/aggregate_load peer-legacy 127.0.0.1:18093 &
pids+=($!)
wait_for http://127.0.0.1:18092/hello
wait_for http://127.0.0.1:18093/hello
names+=("bff-aggregate"); url[bff-aggregate]=http://127.0.0.1:18092/agg
names+=("bff-aggregate, legacy"); url["bff-aggregate, legacy"]=http://127.0.0.1:18093/agg
if [ -n "${BASELINE_BIN:-}" ]; then
  "$BASELINE_BIN" peer 127.0.0.1:18094 &
  pids+=($!)
  wait_for http://127.0.0.1:18094/hello
  names+=("bff-aggregate, baseline"); url["bff-aggregate, baseline"]=http://127.0.0.1:18094/agg
fi

if ensure golang-go; then
  (cd "$peers/go-agg" && GOCACHE="$work/gocache" GOFLAGS=-mod=mod go build -o "$work/go-agg" main.go)
  GOMAXPROCS=2 "$work/go-agg" 127.0.0.1:18090 &
  pids+=($!)
  wait_for http://127.0.0.1:18090/hello
  names+=("Go net/http"); url["Go net/http"]=http://127.0.0.1:18090/agg
else
  echo "skipping Go: golang-go is not installed and could not be" >&2
fi

if command -v node >/dev/null && command -v npm >/dev/null; then
  cp -r "$peers/node-agg" "$work/node-agg"
  if (cd "$work/node-agg" && npm install --silent --no-audit --no-fund >/dev/null 2>&1); then
    (cd "$work/node-agg" && WORKERS=2 exec node server.js 18091) &
    pids+=($!)
    wait_for http://127.0.0.1:18091/hello
    names+=("Node Fastify + undici"); url["Node Fastify + undici"]=http://127.0.0.1:18091/agg
  else
    echo "skipping Node: npm install of fastify and undici failed" >&2
  fi
else
  echo "skipping Node: node and npm are not installed" >&2
fi

# measure NAME URL: one line "NAME<TAB>rps<TAB>p50 ms<TAB>p99 ms".
measure() {
  wrk -t1 -c"$connections" -d2s "$2" >/dev/null
  wrk -t1 -c"$connections" -d"$duration" --latency "$2" | python3 -c '
import re, sys
name, text = sys.argv[1], sys.stdin.read()
def ms(q):
    m = re.search(str(q) + r"%\s+([\d.]+)(us|ms|s)\b", text)
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
errors = re.search(r"Socket errors: .*", text)
if bad or errors:
    print(f"{name}: {(bad or errors).group(0)}", file=sys.stderr)
print(f"{name}\t{rps:.0f}\t{ms(50):.2f}\t{ms(99):.2f}")
' "$1"
}

# nginx + lua runs one configuration at a time on port 18080.
stop_nginx_agg() {
  [ -f "$work/nginx-agg.pid" ] || return 0
  kill "$(cat "$work/nginx-agg.pid")" 2>/dev/null || true
  # nginx removes its pid file as it exits.
  for _ in $(seq 1 100); do [ -f "$work/nginx-agg.pid" ] || return 0; sleep 0.1; done
}
nginx_agg() {
  stop_nginx_agg
  nginx -p "$work" -c "$work/agg.conf" -g "worker_processes $1;"
  wait_for http://127.0.0.1:18080/hello
}

run() {
  local query=$1
  for name in "${names[@]}"; do measure "$name" "${url[$name]}$query"; done
  nginx_agg 1
  measure "nginx + lua, 1 worker" "http://127.0.0.1:18080/agg$query"
  nginx_agg 2
  measure "nginx + lua, 2 workers" "http://127.0.0.1:18080/agg$query"
  stop_nginx_agg
}

echo "measuring, backends answering at once" >&2
run "" >"$work/fast.tsv"
echo "measuring, 20 ms backends" >&2
measure "slowest backend alone" "http://127.0.0.1:18083/?d=20" >"$work/slow.tsv"
run "?d=20" >>"$work/slow.tsv"

python3 - "$work" "$connections" <<'PY'
import sys
work, connections = sys.argv[1], sys.argv[2]
def read(name):
    return [(n, float(r), float(p50), float(p99))
            for n, r, p50, p99 in (l.rstrip("\n").split("\t") for l in open(f"{work}/{name}.tsv"))]
fast, slow = read("fast"), read("slow")
ours = next(r for r in fast if r[0] == "bff-aggregate")
print(f"GET /agg, backends answering at once (wrk -t1 -c{connections}):")
print(f"{'aggregator':<26}{'rps':>9}{'p50 ms':>9}{'p99 ms':>9}{'bff-aggregate / it':>21}")
for name, rps, p50, p99 in fast:
    print(f"{name:<26}{rps:>9,.0f}{p50:>9.2f}{p99:>9.2f}{ours[1] / rps:>20.2f}x")
best = max((r for r in fast if r[0].startswith("nginx")), default=None)
if best:
    print(f"bff-aggregate / nginx + lua's best: {ours[1] / best[1]:.2f}x throughput, "
          f"p99 {ours[3]:.2f} ms vs {best[3]:.2f} ms")
alone = slow[0]
print(f"\nGET /agg?d=20, 20 ms backends; slowest backend alone: p50 {alone[2]:.2f} ms")
print(f"{'aggregator':<26}{'rps':>9}{'p50 ms':>9}{'p99 ms':>9}{'p50 over alone':>16}")
for name, rps, p50, p99 in slow[1:]:
    print(f"{name:<26}{rps:>9,.0f}{p50:>9.2f}{p99:>9.2f}{p50 - alone[2]:>+15.2f}")
PY
