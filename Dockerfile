# stage-host and the example stage plugins, for running one stage per container.
#
#   docker build -t stage-host:0.1.0 .
#   docker run --rm stage-host:0.1.0 --plugin /opt/stage-host/plugins/libstage_two.so ...
#
# The plugins must be built by the same toolchain and plugin-api as the host (abi_stable checks
# the layout at load time), so they are built here together. Your own plugins: build them in
# the same build stage, or mount them into /opt/stage-host/plugins, each under a new file
# name per version (a running process's library is never overwritten).
#
# Binaries built already (the same workspace, `cargo build --release` on Debian bookworm) can
# take the place of the build stage: a named build context called `binaries` holding
# stage-host and the three libstage_*.so replaces the stage of that name, and the compiling
# stages are skipped. deploy/build-images does that (with podman, against local base images):
#
#   docker build --build-context binaries=DIR -t stage-host:0.1.0 .

# The images the stages start from. Defaults: Docker Hub's. Builds without a registry pass
# local ones (deploy/build-images: --build-arg RUNTIME_IMAGE=localhost/debian:bookworm-slim).
ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# cmake and a C toolchain for librdkafka (built from source by rdkafka-sys), OpenSSL headers.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake pkg-config libssl-dev \
    && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cargo build --release --locked -p stage-host -p stage-one -p stage-two -p stage-three

# What the runtime stage takes from the build: the binary and the plugins, flat. A named
# build context `binaries` replaces this stage.
FROM scratch AS binaries
COPY --from=build /src/target/release/stage-host /src/target/release/libstage_one.so /src/target/release/libstage_two.so /src/target/release/libstage_three.so /

FROM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title=stage-host \
      org.opencontainers.image.description="stage-host and the example stage plugins"
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home stage
COPY --from=binaries /stage-host /usr/local/bin/stage-host
COPY --from=binaries /libstage_one.so /libstage_two.so /libstage_three.so /opt/stage-host/plugins/
USER 10001
ENV STAGE_HOST_LOG_FORMAT=json
# SIGTERM (docker stop, a Kubernetes pod deletion) drains: finish the batch, flush, commit,
# leave the group. Give it time: stop_grace_period / terminationGracePeriodSeconds.
STOPSIGNAL SIGTERM
ENTRYPOINT ["stage-host"]
CMD ["--help"]
