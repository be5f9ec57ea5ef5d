# syntax=docker/dockerfile:1
#
# One image with both service binaries: /usr/local/bin/server (the gateway,
# and the single-process default) and /usr/local/bin/canvas-api. The
# Kubernetes manifests in k8s/ pick one with `command`; without one the
# image runs the single-process server on 0.0.0.0:8080 with its board in
# /data.
#
#   docker build -t pixel-canvas .
#   docker run --rm -p 8080:8080 -v pixel-canvas:/data pixel-canvas

FROM rust:1.95-bookworm AS builder
WORKDIR /src
# Every workspace member's manifest must be present for cargo to load the
# workspace, so all five crates are copied; web/ is compiled into the
# gateway (server/src/web.rs includes its files).
COPY Cargo.toml Cargo.lock ./
COPY protocol protocol
COPY plumbing plumbing
COPY canvas-api canvas-api
COPY server server
COPY tests tests
COPY web web
# The registry and target folders are BuildKit caches, so a rebuild after a
# source change recompiles only the workspace's own crates; the binaries
# are copied out of the cache before the step ends.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p server -p canvas-api \
    && mkdir -p /out/bin /out/data \
    && cp target/release/server target/release/canvas-api /out/bin/

# glibc and libgcc, nothing else: no shell, no package manager. Neither
# binary links OpenSSL (Redis and the canvas-api client speak plain TCP).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/bin/ /usr/local/bin/
# The embedded store's folder for the single-process default; Kubernetes
# runs both services on Redis and never writes it.
COPY --from=builder --chown=65532:65532 /out/data /data
ENV LISTEN_ADDR=0.0.0.0:8080 \
    DATA_DIR=/data
# distroless's `nonroot` user, by number so Kubernetes can check
# runAsNonRoot against it.
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/server"]
