# filegate: multi-stage build, small non-root runtime image.
#
#   docker build -t filegate .
#   docker compose up -d            # filegate + PostgreSQL (see docker-compose.yml, README "Run the stack")

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# The release build alone: no dev-dependencies, no test targets.
COPY Cargo.toml Cargo.lock ./
COPY vendor ./vendor
COPY migrations ./migrations
COPY src ./src
RUN cargo build --release --locked --bin filegate \
 && strip target/release/filegate \
 && mkdir -p /out/srv/filegate

# glibc and libgcc only (TLS is rustls; no OpenSSL), no shell, user "nonroot" (65532).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/filegate /usr/local/bin/filegate
COPY config/compose.toml /etc/filegate/filegate.toml
# One volume for files, upload staging, host key and certificates: staging and files must
# share a filesystem (uploads are renamed into place).
COPY --from=build --chown=65532:65532 /out/srv/filegate /srv/filegate
USER 65532:65532
VOLUME ["/srv/filegate"]
# SFTP, FTP control, FTP passive range, WebDAV, REST API.
EXPOSE 2222 2121 50000-50019 8080 8081
ENTRYPOINT ["/usr/local/bin/filegate", "--config", "/etc/filegate/filegate.toml"]
CMD ["serve"]
