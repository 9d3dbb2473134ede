# Medallion image. CGO is on because the DuckDB engine links DuckDB's C++ library.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -o /out/medallion ./cmd/medallion

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 medallion \
    && mkdir -p /etc/medallion/domains
COPY --from=build /out/medallion /usr/local/bin/medallion
# The reference domains are built in; /etc/medallion/domains is where a
# deployment mounts its own <domain>.yaml files, which replace or add domains.
USER medallion
WORKDIR /var/lib/medallion
ENTRYPOINT ["medallion"]
CMD ["--help"]
