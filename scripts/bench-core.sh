#!/usr/bin/env bash
# Core control-plane benchmark (not a test): a release muster-core, 100,000 packages created over HTTP,
# then filtered and paged list latency (p50/p99), Core's RSS, and the create rate, on SQLite and on a
# throwaway PostgreSQL 15 server. Usage: scripts/bench-core.sh [PACKAGES]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
swift build -c release --product muster-core
# fsync on: the create rate is measured with durable commits on both databases.
export MUSTER_TEST_PG_PORT=55433 MUSTER_TEST_PGDATA=/tmp/muster-bench-pg MUSTER_TEST_PG_FSYNC=on
scripts/test-postgres.sh start
trap 'scripts/test-postgres.sh stop >/dev/null 2>&1 || true' EXIT
python3 Benchmarks/core_bench.py --bin "$(swift build -c release --show-bin-path)/muster-core" \
    --packages "${1:-100000}" --postgres "postgres://postgres@127.0.0.1:55433/postgres"
