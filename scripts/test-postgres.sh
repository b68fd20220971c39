#!/usr/bin/env bash
# Starts or stops a throwaway PostgreSQL 15 server for the test suite (Debian's postgresql package):
# its own cluster in a temporary directory, on 127.0.0.1:${MUSTER_TEST_PG_PORT:-55432}, trust auth,
# fsync off unless MUSTER_TEST_PG_FSYNC=on (the benchmark turns it on).
# initdb and pg_ctl refuse root, so they run as the postgres user.
#   scripts/test-postgres.sh start   # a fresh cluster (the tests read MUSTER_TEST_POSTGRES_URL)
#   scripts/test-postgres.sh stop|start-again
set -euo pipefail
PORT="${MUSTER_TEST_PG_PORT:-55432}"
DIR="${MUSTER_TEST_PGDATA:-/tmp/muster-test-pg-$PORT}"
BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
as_postgres() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "${1:-start}" in
start)
    if [[ -f "$DIR/data/postmaster.pid" ]] && as_postgres "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
        as_postgres "$BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null
    fi
    rm -rf "$DIR"
    mkdir -p "$DIR"
    chown postgres:postgres "$DIR" 2>/dev/null || true
    as_postgres "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust -E UTF8 >/dev/null
    as_postgres "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c max_connections=300 -c fsync=${MUSTER_TEST_PG_FSYNC:-off}" start >/dev/null
    ;;
stop)
    as_postgres "$BIN/pg_ctl" -D "$DIR/data" -m fast stop >/dev/null
    ;;
start-again)
    as_postgres "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c max_connections=300 -c fsync=${MUSTER_TEST_PG_FSYNC:-off}" start >/dev/null
    ;;
*) echo "usage: $0 start|stop|start-again" >&2; exit 2 ;;
esac
