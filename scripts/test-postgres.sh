#!/usr/bin/env bash
# Starts or stops a throwaway PostgreSQL 15 server for the test suite (Debian's postgresql package):
# its own cluster in a temporary directory, on 127.0.0.1:${MUSTER_TEST_PG_PORT:-55432}, trust auth,
# fsync off unless MUSTER_TEST_PG_FSYNC=on (the benchmark turns it on). TLS is on, with a certificate from a
# throwaway CA ($DIR/tls/ca.pem) naming localhost and 127.0.0.1; the server also listens on 127.0.0.2, an
# address the certificate does not name, so sslmode=verify-full can be seen to refuse it.
# initdb and pg_ctl refuse root, so they run as the postgres user.
#   scripts/test-postgres.sh start   # a fresh cluster (the tests read MUSTER_TEST_POSTGRES_URL)
#   scripts/test-postgres.sh stop|start-again
set -euo pipefail
PORT="${MUSTER_TEST_PG_PORT:-55432}"
DIR="${MUSTER_TEST_PGDATA:-/tmp/muster-test-pg-$PORT}"
BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
as_postgres() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

make_tls() {
    local tls="$DIR/tls"
    mkdir -p "$tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=muster test PostgreSQL CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
        -keyout "$tls/ca.key" -out "$tls/ca.pem" 2>/dev/null
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
        -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$tls/ext.cnf"
    openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial -days 2 \
        -extfile "$tls/ext.cnf" -out "$tls/server.pem" 2>/dev/null
    chown -R postgres:postgres "$tls" 2>/dev/null || true
    chmod 0600 "$tls/server.key" "$tls/ca.key"
    chmod 0644 "$tls/ca.pem"
}

start_server() {
    as_postgres "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w \
        -o "-c listen_addresses=127.0.0.1,127.0.0.2 -p $PORT -k $DIR -c max_connections=300 -c shared_preload_libraries=pg_stat_statements -c fsync=${MUSTER_TEST_PG_FSYNC:-off} -c ssl=on -c ssl_cert_file=$DIR/tls/server.pem -c ssl_key_file=$DIR/tls/server.key" start >/dev/null
}

case "${1:-start}" in
start)
    if [[ -f "$DIR/data/postmaster.pid" ]] && as_postgres "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
        as_postgres "$BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null
    fi
    rm -rf "$DIR"
    mkdir -p "$DIR"
    chown postgres:postgres "$DIR" 2>/dev/null || true
    as_postgres "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust -E UTF8 >/dev/null
    make_tls
    start_server
    ;;
stop)
    as_postgres "$BIN/pg_ctl" -D "$DIR/data" -m fast stop >/dev/null
    ;;
start-again)
    start_server
    ;;
*) echo "usage: $0 start|stop|start-again" >&2; exit 2 ;;
esac
