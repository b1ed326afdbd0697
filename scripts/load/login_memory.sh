#!/usr/bin/env bash
# Memory under a login flood: POST /api/v1/auth/login with the default argon2id
# parameters (19 MiB, 2 passes) until LOGINS logins are done, printing the
# app's resident memory (VmRSS) before, every 2,000 logins, and after, its peak
# (VmHWM), and the login rate.
#
#   scripts/load/login_memory.sh [LOGINS] [CONNECTIONS]      (defaults: 10000 8)
#
# BFF_BIN picks the binary (default: a release build, made if missing). Uses a
# database and Redis and NATS prefixes of its own (scripts/load/lib.sh).
# Needs curl and python3.
set -euo pipefail
cd "$(dirname "$0")/../.."

logins=${1:-10000}
connections=${2:-8}
source scripts/load/lib.sh
export BFF_SEED_PASSWORD="login memory password"
export BFF_RATE_LIMIT_PER_IP="100000000/1m"
app_start login_memory 18089
port=18089

python3 - "$port" "$app" "$logins" "$connections" <<'PY'
import http.client, json, os, sys, threading, time
port, pid, total, connections = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

def memory():
    fields = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status"))
    return tuple(int(fields[k].split()[0]) // 1024 for k in ("VmRSS", "VmHWM"))

body = json.dumps({"identifier": "customer@example.com", "password": os.environ["BFF_SEED_PASSWORD"]})
lock = threading.Lock()
state = {"done": 0, "statuses": {}, "next_report": 2000}
started = time.time()
print(f"before: RSS {memory()[0]} MB")

def worker():
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while True:
        with lock:
            if state["done"] >= total:
                return
            state["done"] += 1
        conn.request("POST", "/api/v1/auth/login", body, {"content-type": "application/json"})
        response = conn.getresponse()
        response.read()
        with lock:
            state["statuses"][response.status] = state["statuses"].get(response.status, 0) + 1
            if state["done"] >= state["next_report"]:
                state["next_report"] += 2000
                rss, _ = memory()
                print(f"{state['done']:6} logins: RSS {rss} MB ({state['done'] / (time.time() - started):.1f}/s)", flush=True)

threads = [threading.Thread(target=worker) for _ in range(connections)]
for t in threads: t.start()
for t in threads: t.join()
elapsed = time.time() - started
rss, peak = memory()
print(f"after {total} logins in {elapsed:.0f} s ({total / elapsed:.1f}/s, statuses {state['statuses']}): RSS {rss} MB, peak {peak} MB")
PY
