#!/usr/bin/env bash
# How many crates a new user's service builds when it takes one layer of the
# workspace, against an axum hello world and the usual rate limiters:
#
#   scripts/crate-weights.sh [DIR]        (default: a new temporary directory)
#
# For each line it writes a scratch crate DIR/NAME outside the workspace (an
# axum hello world: axum with its default features and tokio's multi-threaded
# runtime, plus the one dependency measured, the workspace's crates by path),
# copies the workspace's Cargo.lock beside it so the versions are the
# workspace's (cargo adds what the lock lacks, e.g. tower_governor, at the
# newest version), and counts the unique crates of
#
#   cargo tree -e normal,build --prefix none | sed 's/ (\*)//' | sort -u | wc -l
#
# that is the crates compiled for the binary (build scripts and proc macros
# included, dev-dependencies not), the scratch crate itself included. Nothing
# is built: `cargo tree` only resolves (it may download the index and the
# crates' manifests).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-$(mktemp -d)/weights}"
mkdir -p "$dir"

count() {
  local name=$1 dep=$2
  local crate="$dir/$name"
  mkdir -p "$crate/src"
  cat >"$crate/Cargo.toml" <<EOF
[package]
name = "weight-$name"
version = "0.0.0"
edition = "2024"
publish = false

# Not a member of any workspace above it.
[workspace]

[dependencies]
axum = "0.8"
tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
$dep
EOF
  cat >"$crate/src/main.rs" <<'EOF'
use axum::{Router, routing::get};

#[tokio::main]
async fn main() {
    let app = Router::new().route("/", get(|| async { "Hello, World!" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await.unwrap();
    axum::serve(listener, app).await.unwrap();
}
EOF
  cp "$root/Cargo.lock" "$crate/Cargo.lock"
  local n
  n=$(cd "$crate" && cargo tree -q -e normal,build --prefix none | sed 's/ (\*)//' | sort -u | wc -l)
  printf '| %-28s | %4s |\n' "$name" "$n"
}

printf '| %-28s | %4s |\n' "scratch crate" "crates"
printf '| %-28s | %4s |\n' "----------------------------" "----:"
count hello-axum ""
count governor 'governor = "0.10"'
count tower-governor 'tower_governor = "0.8"'
count bff-core-minimal "bff-core = { path = \"$root/bff-core\", default-features = false }"
count bff-core-default "bff-core = { path = \"$root/bff-core\" }"
count bff-cache-ratelimit "bff-cache = { path = \"$root/bff-cache\", default-features = false, features = [\"ratelimit\"] }"
count bff-cache-default "bff-cache = { path = \"$root/bff-cache\" }"
count bff-auth-default "bff-auth = { path = \"$root/bff-auth\" }"
count bff-rbac-no-auth "bff-rbac = { path = \"$root/bff-rbac\", default-features = false }"
count bff-rbac-default "bff-rbac = { path = \"$root/bff-rbac\" }"
