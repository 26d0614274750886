# Build: a static binary.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/inlet ./cmd/inlet

# Run: Debian slim with PostgreSQL's server binaries, so that the embedded
# default works in the container too; in production set DATABASE_URL and
# NATS_URL and the binaries simply go unused. Runs as an unprivileged user.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/inlet --create-home --uid 10001 inlet
COPY --from=build /out/inlet /usr/local/bin/inlet
COPY packs /etc/inlet/packs
COPY configs/inlet.yaml /etc/inlet/inlet.yaml
USER inlet
WORKDIR /var/lib/inlet
ENV INLET_CONFIG=/etc/inlet/inlet.yaml \
    INLET_PACKS_DIR=/etc/inlet/packs \
    INLET_DATA_DIR=/var/lib/inlet/data \
    INLET_HTTP_ADDR=:8080
EXPOSE 8080
VOLUME /var/lib/inlet
ENTRYPOINT ["/usr/local/bin/inlet"]
CMD ["serve"]
