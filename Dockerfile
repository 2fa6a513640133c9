# syntax=docker/dockerfile:1
#
# Junction's image: `docker build -t junction .` (the default target: the engine), and
# `docker build --target simulators -t junction-simulators .` (the outside systems of the
# offline demo, for deploy/compose.yaml). See deploy/README.md.

# --- build: the release binaries ------------------------------------------------------------
# The toolchain rust-toolchain.toml pins. RUSTUP_TOOLCHAIN names the image's own, so rustup
# does not fetch the file's rustfmt and clippy, which a build does not use.
FROM rust:1.95.0-bookworm AS build
ENV RUSTUP_TOOLCHAIN=1.95.0
# librdkafka (the kafka connector) is built from source by rdkafka-sys: a C compiler, make,
# pkg-config, zlib and OpenSSL headers; aws-lc-sys (rustls) may fall back to cmake.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake pkg-config zlib1g-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The engine without the `simulators` feature (a production build), and the simulators as
# their own binary. The cache mounts keep crates and objects between builds; the binaries are
# copied out of the cached target folder.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --no-default-features -p junction -p junction-simulators \
 && mkdir -p /out \
 && cp target/release/junction target/release/junction-simulators /out/

# --- base: what both runtime images share ---------------------------------------------------
FROM debian:bookworm-slim AS base
# CA roots for TLS to partners; libssl3 for librdkafka's TLS (linked dynamically).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/*
# A numeric, unprivileged user, so Kubernetes' runAsNonRoot can check it.
RUN groupadd --system --gid 10001 junction \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin junction

# --- simulators: amoCRM, 1C, Direct, VK Ads, ClickHouse, OpenAI (one per container) ---------
FROM base AS simulators
COPY --from=build /out/junction-simulators /usr/local/bin/junction-simulators
USER 10001:10001
# They stop on Ctrl-C (SIGINT), not SIGTERM.
STOPSIGNAL SIGINT
ENTRYPOINT ["junction-simulators"]
CMD ["--help"]

# --- runtime: the engine and the MasterDeal project (the default target) ---------------------
FROM base AS runtime
COPY --from=build /out/junction /usr/local/bin/junction
WORKDIR /app
# The project `junction run /app` runs: the root config, its routes, transforms, schemas and
# prompt packages. (simulators.yaml is left out: this build has no simulators.) In Kubernetes
# the routes come from ConfigMaps mounted over each folder of routes/ instead.
COPY --chown=10001:10001 junction.yaml prompts.lock ./
COPY --chown=10001:10001 routes/ routes/
COPY --chown=10001:10001 transforms/ transforms/
COPY --chown=10001:10001 schemas/ schemas/
COPY --chown=10001:10001 prompts/ prompts/
# data/ holds the SQLite store when JUNCTION_STORE is left at its default.
RUN mkdir -p /app/data && chown 10001:10001 /app/data
USER 10001:10001
# In a container the listeners face the container's network; the admin API (probes, metrics,
# /admin with its token) belongs on a private network all the same.
ENV JUNCTION_LISTEN=0.0.0.0:8080 \
    JUNCTION_ADMIN_LISTEN=0.0.0.0:9090
# 8080: the gateway (routes' endpoints, the MasterDeal API); 9090: admin, /healthz, /readyz, /metrics.
EXPOSE 8080 9090
# No curl in a slim image: bash's /dev/tcp asks /readyz on the admin listener.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9090 && printf 'GET /readyz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["junction"]
CMD ["run", "/app"]
