#!/usr/bin/env bash
# What tracing costs the dashboard:
#
#   scripts/load/tracing_overhead.sh [DURATION] [CONNECTIONS] [ROUNDS]   (defaults: 10s 32 2)
#
# Runs the reference app (release build, response cache off, orders in-process
# over gRPC, loyalty over NATS) twice per round: with BFF_TRACING off, then on
# with every trace sampled (OTEL_TRACES_SAMPLER=always_on, or the sampler and
# OTEL_TRACES_SAMPLER_ARG set in the environment) and exported over
# OTLP/HTTP to a local sink that accepts each batch (a small Python server
# reading and discarding the protobuf, as a collector's receiver would). Each
# run loads GET /api/v1/dashboard with wrk after a 2 s warm-up; rounds
# alternate so drift on a noisy machine hits both sides. Prints each run, the
# spans exported and dropped, and the ratio of throughputs.
#
# Needs wrk, curl and python3, and Postgres, Redis and NATS on loopback as for
# `cargo run -p bff-app`. BFF_BIN picks the binary (default: a release build).
set -euo pipefail
cd "$(dirname "$0")/../.."

duration=${1:-10s}
connections=${2:-32}
rounds=${3:-2}
sink_port=18390
sampler=${OTEL_TRACES_SAMPLER:-always_on}
results=$(mktemp)

# The OTLP/HTTP sink: 200 with an empty ExportTraceServiceResponse.
python3 scripts/load/otlp_sink.py "$sink_port" &
sink=$!
trap 'kill $sink 2>/dev/null || true; rm -f "$results"' EXIT

# CPU seconds (user + system) a process has used so far.
cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"
}

one_run() {
  local tracing=$1 port=$2
  (
    export BFF_DASHBOARD_CACHE_TTL=0s BFF_NOTIFIER=false
    export BFF_RATE_LIMIT_PER_IP=100000000/1m BFF_RATE_LIMIT_PER_USER=100000000/1m
    export BFF_TRACING=$tracing OTEL_TRACES_SAMPLER=$sampler
    export OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf
    export OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$sink_port"
    source scripts/load/lib.sh
    app_start "tracing_$tracing" "$port"
    token=$(app_login)
    auth="Authorization: Bearer $token"
    curl -fsS "$base/api/v1/wallets" -H "$auth" -H 'content-type: application/json' -d '{"currency":"EUR"}' >/dev/null
    curl -fsS "$base/api/v1/orders" -H "$auth" -H 'content-type: application/json' \
      -d '{"currency":"EUR","items":[{"sku":"A","quantity":1,"unit_price":"9.99"}]}' >/dev/null
    url="$base/api/v1/dashboard"
    wrk -t2 -c"$connections" -d2s -H "$auth" "$url" >/dev/null
    sink_before=$(cpu_seconds "$sink")
    wrk -t2 -c"$connections" -d"$duration" --latency -H "$auth" "$url" >"$work/wrk.txt"
    sink_cpu=$(python3 -c "print(f'{$(cpu_seconds "$sink") - $sink_before:.1f}')")
    sleep 6 # the last batch leaves (OTEL_BSP_SCHEDULE_DELAY is 5 s)
    spans=$(curl -fsS "$base/metrics" | awk '/^bff_trace_spans_(exported|dropped)_total /{printf "%s=%s ", $1, $2}')
    rps=$(awk '/Requests\/sec/{print $2}' "$work/wrk.txt")
    p50=$(awk '$1=="50%"{print $2}' "$work/wrk.txt")
    p99=$(awk '$1=="99%"{print $2}' "$work/wrk.txt")
    echo "tracing=$tracing rps=$rps p50=$p50 p99=$p99 sink_cpu=${sink_cpu}s ${spans:-no spans}" | tee -a "$results"
  )
}

for round in $(seq 1 "$rounds"); do
  one_run false 18391
  one_run true 18392
done

python3 - "$results" "sampler $sampler${OTEL_TRACES_SAMPLER_ARG:+ $OTEL_TRACES_SAMPLER_ARG}" <<'PY'
import re, statistics, sys
runs = {"false": [], "true": []}
for line in open(sys.argv[1]):
    tracing = re.search(r"tracing=(\w+)", line).group(1)
    runs[tracing].append(float(re.search(r"rps=([\d.]+)", line).group(1)))
off, on = statistics.median(runs["false"]), statistics.median(runs["true"])
print(f"median rps: tracing off {off:,.0f}, on ({sys.argv[2]}, exported) {on:,.0f}; on/off = {on / off:.3f} ({(1 - on / off) * 100:.1f}% fewer)")
PY
