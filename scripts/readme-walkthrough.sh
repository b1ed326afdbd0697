#!/usr/bin/env bash
# Follows the README's walkthrough literally, as a newcomer would on a fresh
# checkout: first the README's run command (`cargo run -p bff-app`, no
# settings), stopped with Ctrl-C (SIGINT); then every line of the block after
# `<!-- walkthrough -->`, in order, in one bash session. A command followed by
# `#>` lines must answer what they show (`…` matches anything).
# Usage: bash scripts/readme-walkthrough.sh
# Needs Postgres, Redis and NATS as in the README. Uses a database, a Redis
# prefix and a NATS prefix of its own (environment only: the commands are the
# README's), and port 8080 unless something else holds it.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
db="bff_walkthrough_$$"
export BFF_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db"
export BFF_REDIS_PREFIX="walkthrough-$$:"
export BFF_NATS_PREFIX="WALKTHROUGH_$$_"
unset BFF_SEED_PASSWORD BFF_HTTP_ADDR
first_pid=""
cleanup() {
  [ -n "$first_pid" ] && kill "$first_pid" 2>/dev/null || true
  # The walkthrough's own server, if a failure left it running.
  [ -f "$work/pids" ] && xargs -r kill <"$work/pids" 2>/dev/null || true
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -f bff.log
  rm -rf "$work"
}
trap cleanup EXIT

port=8080
if (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  echo "port 8080 is taken here: the walkthrough runs on $port instead (BFF_HTTP_ADDR, and its URLs rewritten)"
  export BFF_HTTP_ADDR="127.0.0.1:$port"
fi

cargo build --locked -q -p bff-app

echo "--- the first command: cargo run -p bff-app"
cargo run --locked -q -p bff-app 2>"$work/first.log" &
first_pid=$!
ready=""
for _ in $(seq 1 240); do
  if curl -fs "localhost:$port/healthz/ready" >/dev/null 2>&1; then ready=yes; break; fi
  kill -0 "$first_pid" 2>/dev/null || break
  sleep 0.5
done
[ -n "$ready" ] || { echo "the first run did not become ready:" >&2; cat "$work/first.log" >&2; exit 1; }
grep -q 'created demo accounts with a generated password' "$work/first.log" ||
  { echo "the first run did not seed with a generated password:" >&2; cat "$work/first.log" >&2; exit 1; }
kill -INT "$first_pid"
wait "$first_pid" || true
first_pid=""

echo "--- the walkthrough"
python3 - README.md "$port" "$work/walkthrough.sh" <<'PY'
import re, sys
readme, port, out = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(readme, encoding="utf-8").read()
marker = text.index("<!-- walkthrough -->")
block = text[marker:].split("```sh\n", 1)[1].split("\n```", 1)[0]
if port != "8080":
    block = block.replace("localhost:8080", f"localhost:{port}")

# Steps: a command (with its continuation lines) and the answer it shows.
steps, command, answer = [], [], []
def flush():
    if command:
        steps.append(("\n".join(command), "\n".join(answer)))
    command.clear(); answer.clear()
for line in block.splitlines():
    if line.startswith("#>"):
        answer.append(line[2:].strip())
    elif not line.strip() or line.lstrip().startswith("#"):
        flush()
    elif command and (command[-1].endswith("\\") or command[-1].endswith("|")):
        command.append(line)
    else:
        flush()
        command.append(line)
flush()

script = ["set -uo pipefail", f"check() {{ python3 {out}.check \"$1\" \"$2\" \"$3\"; }}"]
for number, (cmd, expected) in enumerate(steps, 1):
    script.append("echo " + "'$ " + cmd.splitlines()[0].replace("'", "'\\''") + (" …'" if "\n" in cmd else "'"))
    if expected:
        script.append(f"__out=$({cmd}\n) || {{ echo 'step {number} failed' >&2; exit 1; }}")
        script.append(f"check {number} \"$__expected_{number}\" \"$__out\" || exit 1")
    else:
        script.append(cmd)
        script.append(f"[ $? -eq 0 ] || {{ echo 'step {number} failed' >&2; exit 1; }}")
        if cmd.rstrip().endswith("&"):
            script.append(f"echo $! >> {out.rsplit('/', 1)[0]}/pids")
# The expected answers as shell variables (quoted once, here).
def sh_quote(value):
    return "'" + value.replace("'", "'\\''") + "'"
preamble = [f"__expected_{n}={sh_quote(e)}" for n, (_, e) in enumerate(steps, 1) if e]
open(out, "w").write("\n".join(script[:2] + preamble + script[2:]) + "\n")
open(out + ".check", "w").write('''import re, sys
number, expected, actual = sys.argv[1], sys.argv[2].strip(), sys.argv[3].strip()
pattern = ".*".join(re.escape(part) for part in expected.split("\\u2026"))
if re.fullmatch(pattern, actual, re.S):
    print(f"   ok: {actual[:100]}{'…' if len(actual) > 100 else ''}")
    sys.exit(0)
print(f"step {number}: the answer is not the README's\\n  README: {expected}\\n  got:    {actual}", file=sys.stderr)
sys.exit(1)
''')
print(f"{len(steps)} steps, {sum(1 for _, e in steps if e)} answers checked")
PY
timeout 900 bash "$work/walkthrough.sh" ||
  { echo "the README's walkthrough failed (above); the app's log:" >&2; tail -n 80 bff.log >&2 || true; exit 1; }
grep -q "set the demo accounts' password to BFF_SEED_PASSWORD" bff.log ||
  { echo "the restart did not give the demo accounts BFF_SEED_PASSWORD" >&2; exit 1; }
echo "the README's walkthrough gives the answers it shows"
