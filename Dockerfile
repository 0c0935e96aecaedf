# syntax=docker/dockerfile:1
#
# gavel's container image: gavel and gavel-hook, statically linked, on
# distroless (no shell, no package manager), running as nonroot (uid 65532).
# The root filesystem can be mounted read-only: gavel writes only to its data
# directory, /var/lib/gavel, a volume.
#
#   make image                       # docker build (or podman) with the version from git
#   docker build --build-arg VERSION=v1.2.3 -t gavel:v1.2.3 .

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
# CGO_ENABLED=0: the SQLite driver is pure Go, so the binaries need no libc.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/ ./cmd/gavel ./cmd/gavel-hook \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/gavel /out/gavel-hook /
# The data directory belongs to nonroot, so a fresh named volume mounted
# there starts out writable.
COPY --from=build --chown=65532:65532 /out/data /var/lib/gavel
# Numeric, so Kubernetes' runAsNonRoot can verify it without a runAsUser.
USER 65532:65532
VOLUME ["/var/lib/gavel"]
# 8181 HTTP (API, /metrics, /healthz, /readyz), 9191 ext_authz gRPC, 18000 xDS.
EXPOSE 8181 9191 18000
# No HEALTHCHECK: distroless has no shell or curl to run one. Orchestrators
# probe GET /healthz (liveness) and GET /readyz (readiness) on port 8181.
ENTRYPOINT ["/gavel"]
# gavel listens on loopback by default; inside a container it must listen on
# every interface to be reachable at all.
CMD ["serve", "--http-addr", "0.0.0.0:8181", "--authz-addr", "0.0.0.0:9191", "--xds-addr", "0.0.0.0:18000", "--data-dir", "/var/lib/gavel"]
