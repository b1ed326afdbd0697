#!/usr/bin/env bash
# Checks deploy/kubernetes (run by .ci/run):
#
#   scripts/check-kubernetes.sh
#
# - every manifest validates, strictly (no unknown fields), against the
#   Kubernetes API schemas of the oldest release we support and of the newest
#   that kubernetes-validate (PyPI) knows;
# - the kustomization lists every manifest but the Secrets' example, and, when
#   `kubectl` is installed, what `kubectl kustomize` renders validates too;
# - every container runs a `bff` subcommand that exists, and every BFF_* name
#   it is given (its env, the ConfigMap and Secret keys it reads) is a setting
#   of that subcommand (`bff <command> --help`); every BFF_* name anywhere in
#   the manifests, comments included, is a setting of some subcommand.
#
# BFF_BIN: the binary to ask (default: `cargo run -p bff-app`).
set -euo pipefail
cd "$(dirname "$0")/.."

oldest=1.29
dir=deploy/kubernetes
venv="$(mktemp -d)"
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv/venv"
"$venv/venv/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==1.37.0" "PyYAML==6.0.*"

manifests=()
for file in "$dir"/*.yaml; do
  [ "$(basename "$file")" = kustomization.yaml ] || manifests+=("$file")
done
for version in "$oldest" 1.37; do
  "$venv/venv/bin/kubernetes-validate" --strict --quiet -k "$version" "${manifests[@]}"
done
if command -v kubectl >/dev/null; then
  kubectl kustomize "$dir" >"$venv/rendered.yaml"
  "$venv/venv/bin/kubernetes-validate" --strict --quiet "$venv/rendered.yaml"
else
  echo "kubectl is not installed: the kustomization's output is not rendered (each manifest is validated)" >&2
fi

bff() {
  if [ -n "${BFF_BIN:-}" ]; then "$BFF_BIN" "$@"; else cargo run --locked -q -p bff-app -- "$@"; fi
}
for command in serve orders migrate seed; do
  bff "$command" --help | grep -oE 'BFF_[A-Z0-9_]+' | sort -u >"$venv/$command.names"
done

"$venv/venv/bin/python" - "$dir" "$venv" <<'PY'
import pathlib, re, sys, yaml

directory, work = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
known = {c: set((work / f"{c}.names").read_text().split()) for c in ("serve", "orders", "migrate", "seed")}
everything = set().union(*known.values())
problems = []

files = sorted(p for p in directory.glob("*.yaml") if p.name != "kustomization.yaml")
kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
listed = set(kustomization.get("resources", []))
expected = {p.name for p in files if p.name != "secret.example.yaml"}
for name in sorted(expected - listed):
    problems.append(f"kustomization.yaml does not list {name}")
for name in sorted(listed - expected):
    problems.append(f"kustomization.yaml lists {name}, which is not a manifest here")

docs = [(p, d) for p in files for d in yaml.safe_load_all(p.read_text()) if d]
config_maps = {d["metadata"]["name"]: set(d.get("data", {})) for _, d in docs if d["kind"] == "ConfigMap"}
secrets = {d["metadata"]["name"]: set(d.get("stringData", {})) for _, d in docs if d["kind"] == "Secret"}

def names_given(container):
    names = {e["name"] for e in container.get("env", [])}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            names |= config_maps.get(source["configMapRef"]["name"], set())
        if "secretRef" in source:
            names |= secrets.get(source["secretRef"]["name"], set())
    return {n for n in names if n.startswith("BFF_")}

shared = set()
for path, doc in docs:
    spec = doc.get("spec", {})
    pod = spec.get("template", {}).get("spec") if doc["kind"] in ("Deployment", "Job") else None
    if pod is None:
        continue
    for container in pod["containers"]:
        command = (container.get("args") or [""])[0]
        where = f"{path.name}: {doc['kind']}/{doc['metadata']['name']}"
        if command not in known:
            problems.append(f"{where} runs `bff {command}`, which is not a subcommand")
            continue
        given = names_given(container)
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                # The ConfigMap is shared: a process ignores the names of others.
                shared |= config_maps.get(source["configMapRef"]["name"], set())
                given -= config_maps.get(source["configMapRef"]["name"], set())
        for name in sorted(given - known[command]):
            problems.append(f"{where}: {name} is not in `bff {command} --help`")

for name in sorted({n for n in shared if n.startswith("BFF_")} - known["serve"] - known["orders"]):
    problems.append(f"the ConfigMap's {name} is in neither `bff serve --help` nor `bff orders --help`")
for path in files + [directory / "kustomization.yaml"]:
    for name in sorted(set(re.findall(r"BFF_[A-Z0-9_]*[A-Z0-9]", path.read_text())) - everything):
        problems.append(f"{path.name} names {name}, which no subcommand has")

for problem in problems:
    print(problem, file=sys.stderr)
if problems:
    sys.exit(1)
print(f"deploy/kubernetes: {len(docs)} resources valid, every BFF_* name a real setting")
PY
