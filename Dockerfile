# syntax=docker/dockerfile:1
# The tinkops image: tink-server, tink and tink-worker, static, on an empty
# base, running as a non-root user, serving on 42113.
#
# Two ways to build it:
#   make image      builds the binaries on the host and the "local" stage (first in
#                   this file, so that even the classic builder, which builds every
#                   stage before the target, pulls nothing: our machines reach no
#                   registry).
#   docker build .  the last stage, "release", whose binaries come from the "build"
#                   stage: for builders that can pull golang:1.26.

# local: the same image from binaries built on the host (make image puts
# them, a CA bundle and an empty data directory in .image/).
FROM scratch AS local
COPY .image/ca-certificates.crt /etc/ssl/certs/
COPY .image/bin/ /usr/local/bin/
COPY --chown=65532:65532 .image/data /data
COPY examples/repo /examples/repo
USER 65532:65532
WORKDIR /data
EXPOSE 42113
ENTRYPOINT ["/usr/local/bin/tink-server"]
CMD ["--listen", "0.0.0.0:42113", "--insecure", "--data-dir", "/data", "--repo", "/examples/repo"]

# build: compiles the binaries (needs the golang image).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/... \
 && mkdir -p /out/data

# release: the image, from the build stage.
FROM scratch AS release
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/
COPY --from=build /out/tink* /usr/local/bin/
COPY --from=build --chown=65532:65532 /out/data /data
COPY examples/repo /examples/repo
USER 65532:65532
WORKDIR /data
EXPOSE 42113
ENTRYPOINT ["/usr/local/bin/tink-server"]
CMD ["--listen", "0.0.0.0:42113", "--insecure", "--data-dir", "/data", "--repo", "/examples/repo"]
