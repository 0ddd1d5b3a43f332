# The warmgate container image: the release binary on a slim Debian base,
# run as a non-root user. Built and run for real by `cargo xtask image-test`.
#
# From source (needs the registry's images):
#
#   docker build -t warmgate .
#
# From a release binary built beforehand (`cargo build --release --locked
# -p warmgate`), without the Rust image: the build context is a folder that
# holds just that binary, named `warmgate`, less its debug sections:
#
#   mkdir -p /tmp/warmgate-context
#   objcopy --strip-debug target/release/warmgate /tmp/warmgate-context/warmgate
#   docker build --build-arg BINARY_STAGE=prebuilt -f Dockerfile -t warmgate /tmp/warmgate-context
#
# The binary links against glibc, so build it on Debian bookworm (or older)
# for this base. `--build-arg BASE=IMAGE` picks another Debian bookworm base,
# such as one made locally; `cargo xtask image` does all of this.
#
# Running it: the public listener is 0.0.0.0:$PORT (8080 here; Cloud Run sets
# PORT itself). `--listen` or WARMGATE_LISTEN override PORT. Without a config
# file warmgate runs its embedded default plan; mount one and name it with
# WARMGATE_CONFIG (or `--config`), for example
# `-v ./warmgate.toml:/etc/warmgate/warmgate.toml:ro -e WARMGATE_CONFIG=/etc/warmgate/warmgate.toml`.
# The admin listener stays on 127.0.0.1:9090 unless WARMGATE_ADMIN_LISTEN
# moves it (off loopback it needs an admin token); probes use the public
# listener's /livez, /readyz and /startupz.

ARG BASE=debian:bookworm-slim
# Where the binary comes from: `build` (compiled below) or `prebuilt` (the
# build context's `warmgate`). Only the stages it names are built.
ARG BINARY_STAGE=build

# === build: the release binary, from source ===
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The release profile keeps line tables for profiling; the image ships the
# same code without them (17 MB instead of 84 MB).
RUN cargo build --release --locked -p warmgate \
    && objcopy --strip-debug target/release/warmgate /usr/local/bin/warmgate

# === prebuilt: a release binary built outside the image ===
FROM scratch AS prebuilt
# Marks this stage's images, which no image is built on, for cleaning up.
LABEL warmgate.stage="prebuilt"
COPY warmgate /usr/local/bin/warmgate

# === binary: whichever of the two BINARY_STAGE names ===
FROM ${BINARY_STAGE} AS binary

# === runtime ===
FROM ${BASE} AS runtime
# The CA bundle serves https checks, JWKS and OTLP over TLS. A base that
# already has it (such as one made with debootstrap) is used as it is, so
# that the image builds offline; the registry's slim image gets it from
# Debian. The version is not pinned: bookworm's point releases replace it,
# and the current one is the one to trust.
# hadolint ignore=DL3008
RUN set -eu; \
    if [ ! -s /etc/ssl/certs/ca-certificates.crt ]; then \
        apt-get update; \
        apt-get install -y --no-install-recommends ca-certificates; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    test -s /etc/ssl/certs/ca-certificates.crt; \
    groupadd --gid 10001 warmgate; \
    useradd --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin warmgate
COPY --from=binary /usr/local/bin/warmgate /usr/local/bin/warmgate
USER 10001:10001
ENV PORT=8080
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/warmgate"]
