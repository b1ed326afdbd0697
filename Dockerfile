# syntax=docker/dockerfile:1.7
#
# One multi-stage build, four images: the same `bff` binary with the command
# each role runs. Build one with its target:
#
#   docker build --target server   -t bff-server .
#   docker build --target migrator -t bff-migrator .
#   docker build --target seeder   -t bff-seeder .
#   docker build --target orders   -t bff-orders .
#
# Dependencies are compiled in their own layer (cargo-chef), so a change to the
# workspace's code rebuilds only the workspace. Nothing secret is baked in:
# keys, passwords and URLs come from the environment at run time.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS chef
# josekit links OpenSSL; pkg-config finds it.
RUN apt-get update \
    && apt-get install -y --no-install-recommends pkg-config libssl-dev \
    && rm -rf /var/lib/apt/lists/*
RUN cargo install cargo-chef --locked --version 0.1.73
WORKDIR /build

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /build/recipe.json recipe.json
# The dependency layer: rebuilt only when Cargo.toml or Cargo.lock change.
RUN cargo chef cook --release --locked --recipe-path recipe.json --package bff-app
COPY . .
RUN cargo build --release --locked --package bff-app --bin bff \
    && install -m 0755 target/release/bff /usr/local/bin/bff

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="bff" \
      org.opencontainers.image.description="The reference Backend-For-Frontend built on the bff crates" \
      org.opencontainers.image.source="https://github.com/bff-rs/bff" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
# libssl3 for josekit, CA roots for TLS to SMTP relays and webhooks, curl for
# the health checks.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 bff \
    && useradd --system --uid 10001 --gid bff --home-dir /var/lib/bff --create-home bff
COPY --from=builder /usr/local/bin/bff /usr/local/bin/bff
WORKDIR /var/lib/bff
USER 10001:10001
# Inside a container the service must listen beyond loopback; the dev
# profile's generated keys go to a directory a volume can keep.
ENV BFF_HTTP_ADDR=0.0.0.0:8080 \
    BFF_ORDERS_ADDR=0.0.0.0:50051 \
    BFF_KEY_DIR=/var/lib/bff/keys \
    BFF_LOG_FORMAT=json
ENTRYPOINT ["/usr/local/bin/bff"]

# The HTTP API.
FROM runtime AS server
LABEL org.opencontainers.image.title="bff-server"
EXPOSE 8080
# Ready means Postgres, Redis and NATS answer too: a replica that cannot reach
# them is taken out of rotation, not restarted.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/healthz/ready"]
CMD ["serve"]

# Applies the migrations of the BFF and of the orders service, then exits.
FROM runtime AS migrator
LABEL org.opencontainers.image.title="bff-migrator"
CMD ["migrate"]

# Creates the demo accounts (dev profile only; a no-op in prod), then exits.
FROM runtime AS seeder
LABEL org.opencontainers.image.title="bff-seeder"
CMD ["seed"]

# The orders gRPC service with the loyalty responder.
FROM runtime AS orders
LABEL org.opencontainers.image.title="bff-orders"
EXPOSE 50051
# A real gRPC health check with curl alone: an empty HealthCheckRequest frame
# over HTTP/2 and, in the answer, the frame of `status: SERVING` (08 01).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/bin/sh", "-c", "printf '\\000\\000\\000\\000\\000' | curl -fsS --http2-prior-knowledge -H 'content-type: application/grpc' -H 'te: trailers' --data-binary @- http://127.0.0.1:50051/grpc.health.v1.Health/Check | od -An -tx1 | tr -d ' \\n' | grep -q '00000000020801'"]
CMD ["orders"]
