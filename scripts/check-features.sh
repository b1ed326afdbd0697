#!/usr/bin/env bash
# Checks that every library crate builds with each of its features on its own:
#
#   scripts/check-features.sh [CRATE...]     (default: the five library crates)
#
# A workspace build unifies features (the reference app turns most of them on),
# so a crate that forgets to enable a feature it uses, or code that a `cfg`
# leaves without an import, only shows up when the crate is built alone. For
# each crate this runs `cargo check --all-targets` (tests, examples and benches
# included; targets whose `required-features` are missing are skipped by cargo)
# with no default features, then with each feature alone, then with its
# defaults and with all features. `cargo check` only: nothing is linked or run.
# Extra arguments for cargo go in CHECK_FEATURES_ARGS (default `--locked`).
set -euo pipefail
cd "$(dirname "$0")/.."

crates=("$@")
if [ "${#crates[@]}" -eq 0 ]; then
  crates=(bff-core bff-auth bff-rbac bff-cache bff-aggregate)
fi
read -r -a extra <<<"${CHECK_FEATURES_ARGS:---locked}"

# The features of a crate, but `default`, from cargo's own metadata.
features_of() {
  cargo metadata --format-version 1 --no-deps "${extra[@]}" | python3 -c '
import json, sys
name = sys.argv[1]
for package in json.load(sys.stdin)["packages"]:
    if package["name"] == name:
        print("\n".join(sorted(f for f in package["features"] if f != "default")))
' "$1"
}

check() {
  local crate=$1
  shift
  printf '\n=== %s %s\n' "$crate" "$*"
  cargo check -q -p "$crate" --all-targets "${extra[@]}" "$@"
}

for crate in "${crates[@]}"; do
  check "$crate" --no-default-features
  for feature in $(features_of "$crate"); do
    check "$crate" --no-default-features --features "$feature"
  done
  check "$crate"
  check "$crate" --all-features
done
printf '\nevery feature of %s builds on its own\n' "${crates[*]}"
