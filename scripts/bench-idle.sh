#!/usr/bin/env bash
# Idle benchmark (not a test): a release muster-core on a throwaway PostgreSQL with N open WatchPackages streams;
# Core CPU and database statements per second with the event hub's wake-ups and with the old 0.5 s poll.
# Usage: scripts/bench-idle.sh [STREAMS]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/test-postgres.sh start
trap 'scripts/test-postgres.sh stop >/dev/null 2>&1 || true' EXIT
swift build -c release --scratch-path .build-release --product muster-core
python3 Benchmarks/idle_streams_bench.py --bin "$(swift build -c release --scratch-path .build-release --show-bin-path)/muster-core" \
    --postgres "postgres://postgres@127.0.0.1:${MUSTER_TEST_PG_PORT:-55432}/postgres" --streams "${1:-2000}"
