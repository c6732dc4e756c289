# Floe: multi-stage build of the `floe` binary into a slim runtime image.
# Same steps as the README: `cargo build --release -p floe`, then `floe serve`.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN ./scripts/setup.sh && cargo build --release --locked -p floe --bin floe

FROM debian:bookworm-slim
RUN useradd --system --create-home --home-dir /var/lib/floe floe \
    && mkdir -p /var/lib/floe/data && chown -R floe /var/lib/floe
COPY --from=build /src/target/release/floe /usr/local/bin/floe
USER floe
VOLUME ["/var/lib/floe/data"]
EXPOSE 5432
# Listen on all interfaces inside the container; publish the port to reach it.
ENTRYPOINT ["floe", "serve", "--listen", "0.0.0.0:5432", "--data-dir", "/var/lib/floe/data"]
